-- Version 14: the transparency log keeps its tree. audit_tree holds the hash
-- of every complete subtree (level 0: the leaf hashes; level L, index K: the
-- 2^L leaves from K*2^L), written by the append that completes it, so a root
-- or a proof reads O(log n) rows instead of hashing every leaf. hashed counts
-- the leaves whose nodes are stored: a log from an earlier version starts at
-- 0 and catches up at its next checkpoint (conclave_audit::log::catch_up).
CREATE TABLE audit_tree (
    level BIGINT NOT NULL,
    idx   BIGINT NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
);
ALTER TABLE audit_log_head ADD COLUMN hashed BIGINT NOT NULL DEFAULT 0;
