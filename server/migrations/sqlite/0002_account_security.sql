-- Version 2: accounts that survive a breach: second factors, sessions,
-- roles, invites, rate limits and the authentication event record.
--
-- Secrets here are either sealed under the server key that lives outside the
-- database (totp.sealed_secret) or argon2id hashes (recovery and invite
-- codes); the rest is public material or bookkeeping.
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
-- An interim table for security events; version 3 drops it again.
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
