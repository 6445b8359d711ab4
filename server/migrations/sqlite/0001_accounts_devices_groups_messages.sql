-- Version 1: accounts with argon2id password hashes, devices with public
-- keys, recently used request nonces, key packages, groups (id, epoch,
-- public MLS state), the ciphertext message log, and one delivery cursor per
-- device and group (memberships.acked_seq).
CREATE TABLE accounts (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE TABLE devices (
    device_id  TEXT PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES accounts(username),
    public_key BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX devices_by_user ON devices(username);
CREATE TABLE request_nonces (
    device_id  TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, nonce)
);
CREATE INDEX request_nonces_expiry ON request_nonces(expires_at);
CREATE TABLE key_packages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id   TEXT NOT NULL REFERENCES devices(device_id),
    key_package BLOB NOT NULL,
    last_resort BOOLEAN NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX key_packages_by_device ON key_packages(device_id, last_resort, id);
CREATE TABLE groups (
    group_id     TEXT PRIMARY KEY,
    epoch        BIGINT NOT NULL,
    next_seq     BIGINT NOT NULL,
    public_state BLOB NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE TABLE messages (
    group_id      TEXT NOT NULL REFERENCES groups(group_id),
    seq           BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    epoch         BIGINT NOT NULL,
    sender_device TEXT NOT NULL,
    payload       BLOB NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (group_id, seq)
);
CREATE TABLE memberships (
    group_id  TEXT NOT NULL REFERENCES groups(group_id),
    device_id TEXT NOT NULL REFERENCES devices(device_id),
    join_seq  BIGINT NOT NULL,
    leave_seq BIGINT,
    acked_seq BIGINT NOT NULL,
    PRIMARY KEY (group_id, device_id, join_seq)
);
CREATE INDEX memberships_by_device ON memberships(device_id);
