-- Version 6: encrypted attachments. A blob belongs to the group it was
-- uploaded for (only its members may read it) and counts against its
-- uploader's quota; its chunks are sealed by the client, so the relay holds
-- ciphertext under a random id and nothing else.
CREATE TABLE blobs (
    blob_id    TEXT PRIMARY KEY,
    group_id   TEXT NOT NULL REFERENCES groups(group_id),
    owner      TEXT NOT NULL REFERENCES accounts(username),
    size       BIGINT NOT NULL,
    chunks     BIGINT NOT NULL,
    complete   BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX blobs_by_owner ON blobs (owner);
CREATE INDEX blobs_by_group ON blobs (group_id, created_at);
CREATE TABLE blob_chunks (
    blob_id TEXT NOT NULL REFERENCES blobs(blob_id) ON DELETE CASCADE,
    idx     BIGINT NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (blob_id, idx)
);
