-- Version 3: security events move into the transparency log (conclave-audit,
-- audit/src/log.rs); the interim table goes (no release ever wrote to it).
--
-- audit_log: one row per entry, idx from 0 with no gaps, and the canonical
-- leaf bytes; a few fields are copied beside the leaf so that a device's
-- registration can be found. audit_log_head: one row holding the size, which
-- every append updates first. audit_checkpoints: every checkpoint signed.
CREATE TABLE audit_log (
    idx        BIGINT PRIMARY KEY,
    leaf       BLOB NOT NULL,
    action     TEXT NOT NULL,
    actor      TEXT,
    device     TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX audit_log_by_device ON audit_log(action, actor, device);
CREATE TABLE audit_log_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL
);
INSERT INTO audit_log_head (id, size) VALUES (1, 0);
CREATE TABLE audit_checkpoints (
    size      BIGINT PRIMARY KEY,
    root_hash BLOB NOT NULL,
    note      TEXT NOT NULL,
    signed_at BIGINT NOT NULL
);
DROP TABLE auth_events;
