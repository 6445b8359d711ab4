-- Version 12: accounts a host administrator locked, recovery invites that
-- hand one account back to its owner, and the account changes every device of
-- the account is told about (factors added or removed, passwords,
-- recoveries). No secrets: kinds, times, device ids and credential ids.
ALTER TABLE accounts ADD COLUMN locked_at BIGINT;
ALTER TABLE invites ADD COLUMN for_account TEXT;
CREATE TABLE account_changes (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    username  TEXT NOT NULL REFERENCES accounts(username),
    at        BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    detail    TEXT,
    device_id TEXT
);
CREATE INDEX account_changes_by_user ON account_changes(username, id);
