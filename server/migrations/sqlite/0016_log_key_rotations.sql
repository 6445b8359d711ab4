-- Version 16: log key rotations. Each statement is a signed note, signed by
-- the key it retires and by the key that replaces it, naming both; clients
-- that pinned the old key follow it to the new one.
CREATE TABLE audit_key_rotations (
    new_key    TEXT PRIMARY KEY,
    statement  TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
