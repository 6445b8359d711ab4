-- Version 7: public channels. Their name and topic are the workspace's to
-- see, and the latest GroupInfo (public, signed by a member) lets any account
-- join by external commit. Private channels leave all three NULL.
ALTER TABLE groups ADD COLUMN public_name TEXT;
ALTER TABLE groups ADD COLUMN public_topic TEXT;
ALTER TABLE groups ADD COLUMN group_info BLOB;
CREATE UNIQUE INDEX groups_by_public_name ON groups (public_name);
