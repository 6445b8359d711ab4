-- Version 4: who created each group (the account), and archiving.
ALTER TABLE groups ADD COLUMN created_by TEXT;
ALTER TABLE groups ADD COLUMN archived_at BIGINT;
