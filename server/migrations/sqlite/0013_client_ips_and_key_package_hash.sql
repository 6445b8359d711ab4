-- Version 13: client addresses leave the log's leaves for a table of their
-- own, audit_client_ips: the salt and address behind each entry's client-ip
-- commitment, written in the appending transaction, for auditors only (not
-- part of any leaf, so deleting a row hides an address without touching the
-- tree). And key packages are known by the hash of their bytes, so that one
-- package uploaded twice is refused instead of stored (and logged) again.
CREATE TABLE audit_client_ips (
    idx  BIGINT PRIMARY KEY REFERENCES audit_log(idx),
    salt BLOB NOT NULL,
    ip   TEXT NOT NULL
);
ALTER TABLE key_packages ADD COLUMN package_hash TEXT;
CREATE UNIQUE INDEX key_packages_by_hash ON key_packages(package_hash);
