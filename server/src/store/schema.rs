//! Versioned schema for both backends. A migration is applied once, in a
//! transaction, and recorded in `schema_version`.

/// (version, SQLite scripts, PostgreSQL scripts)
pub(super) const MIGRATIONS: &[(i64, &[&str], &[&str])] = &[
    (1, &[V1_SQLITE], &[V1_POSTGRES]),
    (2, &[V2_SQLITE], &[V2_POSTGRES]),
    (
        3,
        &[conclave_audit::log::SCHEMA_SQLITE, V3_COMMON],
        &[conclave_audit::log::SCHEMA_POSTGRES, V3_COMMON],
    ),
    (4, &[V4_COMMON], &[V4_COMMON]),
    (5, &[V5_COMMON], &[V5_COMMON]),
    (6, &[V6_COMMON], &[V6_COMMON]),
    (7, &[V7_COMMON], &[V7_COMMON]),
    (8, &[V8_COMMON], &[V8_COMMON]),
    (9, &[V9_COMMON], &[V9_COMMON]),
    (10, &[V10_COMMON], &[V10_COMMON]),
    (11, &[V11_COMMON], &[V11_COMMON]),
    (12, &[V12_SQLITE], &[V12_POSTGRES]),
    (
        13,
        &[conclave_audit::log::SCHEMA_CLIENT_IPS_SQLITE, V13_COMMON],
        &[conclave_audit::log::SCHEMA_CLIENT_IPS_POSTGRES, V13_COMMON],
    ),
];

/// Version 13: client addresses leave the log's leaves for a table of
/// their own, `audit_client_ips` (salt and address behind each entry's
/// `client-ip` commitment, for auditors only); and key packages are known
/// by the hash of their bytes, so that one package uploaded twice is
/// refused instead of stored (and logged) again.
const V13_COMMON: &str = "
ALTER TABLE key_packages ADD COLUMN package_hash TEXT;
CREATE UNIQUE INDEX key_packages_by_hash ON key_packages(package_hash);
";

/// Version 12: accounts a host administrator locked, recovery invites that
/// hand one account back to its owner, and the account changes every device
/// of the account is told about (factors added or removed, passwords,
/// recoveries). No secrets: kinds, times, device ids and credential ids.
macro_rules! v12_common {
    () => {
        "
ALTER TABLE accounts ADD COLUMN locked_at BIGINT;
ALTER TABLE invites ADD COLUMN for_account TEXT;
"
    };
}

const V12_SQLITE: &str = concat!(
    v12_common!(),
    "
CREATE TABLE account_changes (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    username  TEXT NOT NULL REFERENCES accounts(username),
    at        BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    detail    TEXT,
    device_id TEXT
);
CREATE INDEX account_changes_by_user ON account_changes(username, id);
"
);

const V12_POSTGRES: &str = concat!(
    v12_common!(),
    "
CREATE TABLE account_changes (
    id        BIGSERIAL PRIMARY KEY,
    username  TEXT NOT NULL REFERENCES accounts(username),
    at        BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    detail    TEXT,
    device_id TEXT
);
CREATE INDEX account_changes_by_user ON account_changes(username, id);
"
);

/// Version 11: application messages are known by the SHA-256 of their
/// ciphertext, so a client that re-sends one after losing the answer (its
/// node died, say) gets the first one's position instead of a second copy.
const V11_COMMON: &str = "
ALTER TABLE messages ADD COLUMN payload_hash TEXT;
CREATE UNIQUE INDEX messages_by_payload ON messages(group_id, payload_hash);
";

/// Version 10: the workspace's slash commands, each answered by a bot. No
/// secrets: a name, the bot, and a usage line.
const V10_COMMON: &str = "
CREATE TABLE slash_commands (
    name       TEXT PRIMARY KEY,
    bot        TEXT NOT NULL REFERENCES accounts(username),
    usage      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
";

/// Version 9: bot accounts, each with the account that owns it.
const V9_COMMON: &str =
    "ALTER TABLE accounts ADD COLUMN bot_owner TEXT REFERENCES accounts(username);";

/// Version 8: history for new members. A group may allow its members to
/// hand newcomers an encrypted bundle of its history; such a bundle is a
/// blob only its recipient (and uploader) may read.
const V8_COMMON: &str = "
ALTER TABLE groups ADD COLUMN history_sharing BIGINT NOT NULL DEFAULT 0;
ALTER TABLE blobs ADD COLUMN recipient TEXT;
";

/// Version 7: public channels. Their name and topic are the workspace's to
/// see, and the latest GroupInfo (public, signed by a member) lets any
/// account join by external commit. Private channels leave all three NULL.
const V7_COMMON: &str = "
ALTER TABLE groups ADD COLUMN public_name TEXT;
ALTER TABLE groups ADD COLUMN public_topic TEXT;
ALTER TABLE groups ADD COLUMN group_info BLOB;
CREATE UNIQUE INDEX groups_by_public_name ON groups (public_name);
";

/// Version 6: encrypted attachments. A blob belongs to the group it was
/// uploaded for (only its members may read it) and counts against its
/// uploader's quota; its chunks are sealed by the client, so the relay
/// holds ciphertext under a random id and nothing else.
const V6_COMMON: &str = "
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
";

/// Version 5: a channel's own retention, in days.
const V5_COMMON: &str = "ALTER TABLE groups ADD COLUMN retention_days BIGINT;";

/// Version 4: who created each group (the account), and archiving.
const V4_COMMON: &str = "
ALTER TABLE groups ADD COLUMN created_by TEXT;
ALTER TABLE groups ADD COLUMN archived_at BIGINT;
";

/// Version 3 moves security events into the transparency log; the interim
/// table goes (no release ever wrote to it).
const V3_COMMON: &str = "DROP TABLE auth_events;";

const V1_SQLITE: &str = r#"
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
"#;

const V1_POSTGRES: &str = r#"
CREATE TABLE accounts (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE TABLE devices (
    device_id  TEXT PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES accounts(username),
    public_key BYTEA NOT NULL,
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
    id          BIGSERIAL PRIMARY KEY,
    device_id   TEXT NOT NULL REFERENCES devices(device_id),
    key_package BYTEA NOT NULL,
    last_resort BOOLEAN NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX key_packages_by_device ON key_packages(device_id, last_resort, id);
CREATE TABLE groups (
    group_id     TEXT PRIMARY KEY,
    epoch        BIGINT NOT NULL,
    next_seq     BIGINT NOT NULL,
    public_state BYTEA NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE TABLE messages (
    group_id      TEXT NOT NULL REFERENCES groups(group_id),
    seq           BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    epoch         BIGINT NOT NULL,
    sender_device TEXT NOT NULL,
    payload       BYTEA NOT NULL,
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
"#;

/// Accounts that survive a breach: second factors, sessions, roles, invites,
/// rate limits and the authentication event record.
///
/// Secrets here are either sealed under the server key that lives outside
/// the database (`totp.sealed_secret`) or argon2id hashes (recovery and invite
/// codes); the rest is public material or bookkeeping.
macro_rules! v2_common {
    () => {
        r#"
ALTER TABLE accounts ADD COLUMN passwordless BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE devices ADD COLUMN session_started_at BIGINT;
ALTER TABLE devices ADD COLUMN last_seen_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN revoked_at BIGINT;
UPDATE devices SET session_started_at = created_at, last_seen_at = created_at;
CREATE TABLE account_roles (
    username   TEXT NOT NULL REFERENCES accounts(username),
    role       TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (username, role)
);
CREATE TABLE totp (
    username      TEXT PRIMARY KEY REFERENCES accounts(username),
    sealed_secret TEXT NOT NULL,
    confirmed     BOOLEAN NOT NULL,
    last_step     BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE TABLE webauthn_credentials (
    credential_id TEXT PRIMARY KEY,
    username      TEXT NOT NULL REFERENCES accounts(username),
    name          TEXT NOT NULL,
    passkey       TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE INDEX webauthn_credentials_by_user ON webauthn_credentials(username);
CREATE TABLE webauthn_challenges (
    challenge_id TEXT PRIMARY KEY,
    username     TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    state        TEXT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE TABLE recovery_codes (
    username  TEXT NOT NULL REFERENCES accounts(username),
    code_id   TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    used_at   BIGINT,
    PRIMARY KEY (username, code_id)
);
CREATE TABLE invites (
    invite_id  TEXT PRIMARY KEY,
    code_hash  TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_by    TEXT,
    used_at    BIGINT
);
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE rate_limits (
    bucket       TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    hits         BIGINT NOT NULL
);
"#
    };
}

const V2_SQLITE: &str = concat!(
    v2_common!(),
    r#"
CREATE TABLE auth_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           BIGINT NOT NULL,
    action       TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    actor        TEXT,
    actor_device TEXT,
    target       TEXT,
    client_ip    TEXT
);
"#
);

const V2_POSTGRES: &str = concat!(
    v2_common!(),
    r#"
CREATE TABLE auth_events (
    id           BIGSERIAL PRIMARY KEY,
    at           BIGINT NOT NULL,
    action       TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    actor        TEXT,
    actor_device TEXT,
    target       TEXT,
    client_ip    TEXT
);
"#
);
