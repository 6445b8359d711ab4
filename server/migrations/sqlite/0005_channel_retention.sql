-- Version 5: a channel's own retention, in days.
ALTER TABLE groups ADD COLUMN retention_days BIGINT;
