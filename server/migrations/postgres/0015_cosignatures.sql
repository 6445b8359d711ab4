-- Version 15: cosignatures witnesses returned on the log's checkpoints
-- (C2SP tlog-cosignature lines), by witness name and checkpoint size. The
-- relay serves them with the checkpoint; the largest size per witness is
-- the old size of the next add-checkpoint request to it.
CREATE TABLE audit_cosignatures (
    witness TEXT NOT NULL,
    size    BIGINT NOT NULL,
    line    TEXT NOT NULL,
    PRIMARY KEY (witness, size)
);
