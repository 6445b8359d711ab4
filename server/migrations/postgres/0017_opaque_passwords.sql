-- Version 17: passwords as OPAQUE (RFC 9807). The relay keeps an OPAQUE
-- registration record per account (in accounts.password_hash, as
-- `opaque1$` and the record in base64) and never sees the password. An
-- account from before keeps its argon2id hash there until its next login
-- replaces it with a record.

-- Secrets of the relay's own that every node shares, sealed under the
-- server key (which lives in the key directory, not here): the OPAQUE
-- setup. A copy of the database alone opens none of them.
CREATE TABLE relay_secrets (
    name       TEXT PRIMARY KEY,
    sealed     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- OPAQUE logins between their start and the proof that finishes them: the
-- relay's key-exchange state, sealed under the server key, bound to the
-- account and the device that started it. Short-lived; one that expires
-- unfinished is logged as a failed password.
CREATE TABLE password_logins (
    login_id       TEXT PRIMARY KEY,
    username       TEXT NOT NULL,
    device_id      TEXT NOT NULL,
    sealed_state   TEXT NOT NULL,
    account_exists BIGINT NOT NULL,
    budget         TEXT NOT NULL,
    factor         TEXT,
    factor_id      TEXT,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX password_logins_by_expiry ON password_logins(expires_at);
