-- Version 8: history for new members. A group may allow its members to hand
-- newcomers an encrypted bundle of its history; such a bundle is a blob only
-- its recipient (and uploader) may read.
ALTER TABLE groups ADD COLUMN history_sharing BIGINT NOT NULL DEFAULT 0;
ALTER TABLE blobs ADD COLUMN recipient TEXT;
