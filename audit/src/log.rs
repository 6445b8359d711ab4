//! The log half: the append-only log in the relay's database, through sqlx
//! on SQLite and PostgreSQL (feature `log`).
//!
//! Five tables, created by the relay's migrations (one file per version and
//! dialect: `server/migrations/{sqlite,postgres}/0003_transparency_log.sql`,
//! `0013_client_ips_and_key_package_hash.sql` and `0014_stored_tree.sql`):
//!
//! - `audit_log`: one row per entry, `idx` from 0 with no gaps, and the
//!   canonical leaf bytes (see [`Event`](crate::Event)). A few fields are
//!   copied beside the leaf so that a device's registration can be found.
//! - `audit_log_head`: one row holding the size. Every append updates it
//!   first, in the appending transaction, so appends from any number of
//!   processes serialize on that row and commit in index order. `hashed`
//!   counts the leaves whose tree nodes are stored (equal to the size, but
//!   for a log older than `audit_tree`, until it catches up).
//! - `audit_tree`: the hash of every complete subtree (see
//!   [`stored_tree`](crate::stored_tree)), written by the append that
//!   completes it. A root or a proof reads O(log n) of them.
//! - `audit_checkpoints`: every checkpoint signed, by size.
//! - `audit_client_ips` (a later migration): the salt and address behind an
//!   entry's `client-ip` commitment, written in the appending transaction.
//!   Not part of any leaf: only auditors read it, and deleting a row hides an
//!   address without touching the tree.
//!
//! Signing takes the head row too, so no entry slips in between computing a
//! root and storing its checkpoint, and before it signs, [`TransparencyLog::checkpoint`]
//! checks that the tree still extends the last checkpoint it signed. A log
//! whose stored entries were rewritten is refused a new signature rather
//! than given one that contradicts the last.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::{AnyConnection, AnyPool, Row};

use crate::stored_tree::{self, Node, Plan};
use crate::tiles::{Tile, push_entry};
use crate::{
    Checkpoint, CheckpointError, ClientIpOpening, Event, EventError, Hash, NoteError, NoteSigner,
    ProofError, leaf_hash,
};

/// What can go wrong with the stored log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// An event cannot be encoded.
    #[error(transparent)]
    Event(#[from] EventError),
    /// An entry below the log's size is not stored.
    #[error("audit log entry {0} is missing from the database")]
    MissingEntry(u64),
    /// A tree node the log's size says is stored is not.
    #[error("audit log tree node {level}/{index} is missing from the database")]
    MissingNode {
        /// Its level.
        level: u8,
        /// Its index in the level.
        index: u64,
    },
    /// The stored entries no longer hash to the last signed checkpoint.
    #[error(
        "the audit log no longer matches the checkpoint signed at size {size}: refusing to sign a checkpoint that contradicts it"
    )]
    Inconsistent {
        /// The size of the last signed checkpoint.
        size: u64,
    },
    /// A proof was asked for outside the tree.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// The checkpoint could not be formed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The note could not be signed.
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// A checkpoint as stored: its size, root and the signed note text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// Tree size.
    pub size: u64,
    /// Root hash at that size.
    pub root_hash: Hash,
    /// The C2SP signed note.
    pub note: String,
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Index in the log.
    pub index: u64,
    /// The leaf bytes.
    pub leaf: Vec<u8>,
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Appends `event` as the next entry, inside the caller's transaction, and
/// returns its index (which overwrites `event.seq`).
///
/// Callers put the event in the same transaction as the change it records,
/// so that neither lands without the other.
pub async fn append(conn: &mut AnyConnection, mut event: Event) -> Result<u64, LogError> {
    // Both right-hand sides read the row as it was: `hashed` moves with the
    // size only while the tree is complete (a log from before `audit_tree`
    // catches up under `TransparencyLog::checkpoint` instead).
    let row = sqlx::query(
        "UPDATE audit_log_head SET size = size + 1,
             hashed = CASE WHEN hashed = size THEN size + 1 ELSE hashed END
         WHERE id = 1 RETURNING size, hashed",
    )
    .fetch_one(&mut *conn)
    .await?;
    let index = to_u64(row.get::<i64, _>(0)) - 1;
    let tree_complete = to_u64(row.get::<i64, _>(1)) == index + 1;
    event.seq = index;
    let leaf = event.encode()?;
    if tree_complete {
        let siblings = left_sibling_hashes(&mut *conn, index).await?;
        store_nodes(
            &mut *conn,
            &stored_tree::append(index, leaf_hash(&leaf), &siblings),
        )
        .await?;
    }
    sqlx::query(
        "INSERT INTO audit_log (idx, leaf, action, actor, device, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(to_i64(index))
    .bind(leaf)
    .bind(&event.action)
    .bind(event.actor.as_deref())
    .bind(event.device.as_deref())
    .bind(to_i64(event.time))
    .execute(&mut *conn)
    .await?;
    if let Some(opening) = event.client_ip_opening() {
        sqlx::query("INSERT INTO audit_client_ips (idx, salt, ip) VALUES ($1, $2, $3)")
            .bind(to_i64(index))
            .bind(opening.salt.to_vec())
            .bind(&opening.ip)
            .execute(&mut *conn)
            .await?;
    }
    Ok(index)
}

/// The hashes of the nodes leaf `index` completes subtrees with.
async fn left_sibling_hashes(conn: &mut AnyConnection, index: u64) -> Result<Vec<Hash>, LogError> {
    let needed = stored_tree::left_siblings(index);
    let found = read_nodes(&mut *conn, &needed).await?;
    needed
        .iter()
        .map(|node| found.get(node).copied().ok_or_else(|| missing(*node)))
        .collect()
}

fn missing(node: Node) -> LogError {
    LogError::MissingNode {
        level: node.level,
        index: node.index,
    }
}

/// Stores tree nodes, in one statement.
async fn store_nodes(conn: &mut AnyConnection, nodes: &[(Node, Hash)]) -> Result<(), LogError> {
    for chunk in nodes.chunks(200) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
            .collect();
        let sql = format!(
            "INSERT INTO audit_tree (level, idx, hash) VALUES {}",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for (node, hash) in chunk {
            query = query
                .bind(i64::from(node.level))
                .bind(to_i64(node.index))
                .bind(hash.to_vec());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The stored hashes of `nodes` (those that are stored), in one statement
/// per 300 nodes.
async fn read_nodes(
    conn: &mut AnyConnection,
    nodes: &[Node],
) -> Result<HashMap<Node, Hash>, LogError> {
    let mut found = HashMap::with_capacity(nodes.len());
    for chunk in nodes.chunks(300) {
        let wanted: Vec<String> = (0..chunk.len())
            .map(|i| format!("(level = ${} AND idx = ${})", 2 * i + 1, 2 * i + 2))
            .collect();
        let sql = format!(
            "SELECT level, idx, hash FROM audit_tree WHERE {}",
            wanted.join(" OR ")
        );
        let mut query = sqlx::query(&sql);
        for node in chunk {
            query = query.bind(i64::from(node.level)).bind(to_i64(node.index));
        }
        for row in query.fetch_all(&mut *conn).await? {
            let (Ok(level), Ok(hash)) = (
                u8::try_from(row.get::<i64, _>(0)),
                Hash::try_from(row.get::<Vec<u8>, _>(2)),
            ) else {
                continue;
            };
            found.insert(
                Node {
                    level,
                    index: to_u64(row.get(1)),
                },
                hash,
            );
        }
    }
    Ok(found)
}

/// The hashes `plan` folds into, from nodes read through `conn`.
async fn answer(conn: &mut AnyConnection, plan: &Plan) -> Result<Vec<Hash>, LogError> {
    let found = read_nodes(conn, &plan.nodes()).await?;
    plan.hashes(|node| found.get(&node).copied())
        .map_err(missing)
}

/// Stores the tree nodes of leaves `hashed..size` that a log from before
/// `audit_tree` lacks, inside the caller's transaction, which holds the
/// head row (so no append runs meanwhile). Returns the log's size.
async fn catch_up(conn: &mut AnyConnection) -> Result<u64, LogError> {
    let row =
        sqlx::query("UPDATE audit_log_head SET size = size WHERE id = 1 RETURNING size, hashed")
            .fetch_one(&mut *conn)
            .await?;
    let (size, mut hashed) = (to_u64(row.get(0)), to_u64(row.get(1)));
    if hashed >= size {
        return Ok(size);
    }
    // The nodes waiting for a right sibling, by level, as of leaf `hashed`.
    let pending = (0..64u8)
        .filter(|&level| (hashed >> level) & 1 == 1)
        .map(|level| Node {
            level,
            index: (hashed >> level) - 1,
        })
        .collect::<Vec<_>>();
    let found = read_nodes(&mut *conn, &pending).await?;
    let mut frontier: HashMap<u8, Hash> = HashMap::new();
    for node in pending {
        frontier.insert(node.level, *found.get(&node).ok_or_else(|| missing(node))?);
    }
    while hashed < size {
        let end = size.min(hashed + 1000);
        let entries = fetch_entries(&mut *conn, hashed, end).await?;
        let mut nodes = Vec::new();
        for (expected, entry) in (hashed..end).zip(&entries) {
            if entry.index != expected {
                return Err(LogError::MissingEntry(expected));
            }
            let siblings: Vec<Hash> = stored_tree::left_siblings(expected)
                .iter()
                .map(|node| frontier[&node.level])
                .collect();
            let new = stored_tree::append(expected, leaf_hash(&entry.leaf), &siblings);
            // The topmost node made is the one waiting for a sibling now.
            if let Some((node, hash)) = new.last() {
                frontier.insert(node.level, *hash);
            }
            nodes.extend(new);
        }
        if (entries.len() as u64) < end - hashed {
            return Err(LogError::MissingEntry(hashed + entries.len() as u64));
        }
        store_nodes(&mut *conn, &nodes).await?;
        hashed = end;
    }
    sqlx::query("UPDATE audit_log_head SET hashed = $1 WHERE id = 1")
        .bind(to_i64(size))
        .execute(&mut *conn)
        .await?;
    Ok(size)
}

/// Entries `start..end`, through `executor` (the pool, or one connection).
async fn fetch_entries<'e, E>(
    executor: E,
    start: u64,
    end: u64,
) -> Result<Vec<StoredEntry>, LogError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows =
        sqlx::query("SELECT idx, leaf FROM audit_log WHERE idx >= $1 AND idx < $2 ORDER BY idx")
            .bind(to_i64(start))
            .bind(to_i64(end))
            .fetch_all(executor)
            .await?;
    Ok(rows
        .iter()
        .map(|r| StoredEntry {
            index: to_u64(r.get(0)),
            leaf: r.get(1),
        })
        .collect())
}

/// The number of entries committed to the log stored in `pool` (no key
/// needed: a node checks this before it may create one).
pub async fn stored_size(pool: &AnyPool) -> Result<u64, LogError> {
    let row = sqlx::query("SELECT size FROM audit_log_head WHERE id = 1")
        .fetch_optional(pool)
        .await?;
    Ok(row.map_or(0, |r| to_u64(r.get(0))))
}

/// The stored log, with the key that signs its checkpoints.
///
/// Nothing is cached in memory: every root and proof reads its O(log n)
/// tree nodes from the database, so any number of relay processes sharing
/// one database answer alike, and none reads the whole log at start.
#[derive(Debug, Clone)]
pub struct TransparencyLog {
    /// Appends, checkpoints and everything else that writes.
    pool: AnyPool,
    /// Roots, proofs, entries and tiles (on SQLite, connections other than
    /// the relay's one writer, so proofs never wait behind writes).
    reads: AnyPool,
    signer: Arc<NoteSigner>,
}

impl TransparencyLog {
    /// The log stored in `pool`, signed by `signer` (whose key name is the
    /// checkpoint origin).
    pub fn new(pool: AnyPool, signer: NoteSigner) -> Self {
        Self {
            reads: pool.clone(),
            pool,
            signer: Arc::new(signer),
        }
    }

    /// The same log, reading through `reads` (another pool on the same
    /// database) and writing through the pool it was made with.
    pub fn reading_from(mut self, reads: AnyPool) -> Self {
        self.reads = reads;
        self
    }

    /// The checkpoint origin.
    pub fn origin(&self) -> &str {
        self.signer.verifier_key().name()
    }

    /// The key that verifies this log's checkpoints.
    pub fn verifier_key(&self) -> &crate::VerifierKey {
        self.signer.verifier_key()
    }

    /// Appends `event` in a transaction of its own.
    pub async fn append(&self, event: Event) -> Result<u64, LogError> {
        let mut tx = self.pool.begin().await?;
        let index = append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(index)
    }

    /// The number of entries committed.
    pub async fn size(&self) -> Result<u64, LogError> {
        stored_size(&self.reads).await
    }

    /// Entries `start..end`, as stored.
    pub async fn entries(&self, start: u64, end: u64) -> Result<Vec<StoredEntry>, LogError> {
        fetch_entries(&self.reads, start, end).await
    }

    /// The salts and addresses behind the `client-ip` commitments of
    /// entries `start..end` (for auditors only), by index.
    pub async fn client_addresses(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, ClientIpOpening)>, LogError> {
        let rows = sqlx::query(
            "SELECT idx, salt, ip FROM audit_client_ips WHERE idx >= $1 AND idx < $2 ORDER BY idx",
        )
        .bind(to_i64(start))
        .bind(to_i64(end))
        .fetch_all(&self.reads)
        .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let salt: [u8; 16] = r.get::<Vec<u8>, _>(1).try_into().ok()?;
                Some((to_u64(r.get(0)), ClientIpOpening { salt, ip: r.get(2) }))
            })
            .collect())
    }

    /// The latest signed checkpoint, if any.
    pub async fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, LogError> {
        let row = sqlx::query(
            "SELECT size, root_hash, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1",
        )
        .fetch_optional(&self.reads)
        .await?;
        Ok(row.map(|r| SignedCheckpoint {
            size: to_u64(r.get(0)),
            root_hash: r.get::<Vec<u8>, _>(1).try_into().unwrap_or([0; 32]),
            note: r.get(2),
        }))
    }

    /// Signs a checkpoint for the current size if the log has grown since
    /// the last one, and returns the latest checkpoint.
    ///
    /// Refuses ([`LogError::Inconsistent`]) if the stored entries no longer
    /// hash to the last checkpoint signed: the log was rewritten.
    pub async fn checkpoint(&self, now: u64) -> Result<SignedCheckpoint, LogError> {
        let mut tx = self.pool.begin().await?;
        // Holding the head row keeps appends out until this checkpoint is
        // stored; a log from before the stored tree gets its nodes here.
        let size = catch_up(&mut tx).await?;
        let last = sqlx::query(
            "SELECT size, root_hash, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| {
            (
                to_u64(r.get(0)),
                r.get::<Vec<u8>, _>(1),
                r.get::<String, _>(2),
            )
        });
        if let Some((last_size, root, note)) = &last
            && *last_size == size
        {
            return Ok(SignedCheckpoint {
                size,
                root_hash: root.clone().try_into().unwrap_or([0; 32]),
                note: note.clone(),
            });
        }
        // Nodes are read through this transaction's own connection (issue
        // 19: the pool's other connections may all be waiting for its write
        // lock).
        if let Some((last_size, last_root, _)) = &last {
            let consistent = *last_size <= size
                && answer(&mut tx, &Plan::root(*last_size)).await?[0].as_slice()
                    == last_root.as_slice();
            if !consistent {
                return Err(LogError::Inconsistent { size: *last_size });
            }
        }
        let root = answer(&mut tx, &Plan::root(size)).await?[0];
        let text = Checkpoint::new(self.origin(), size, root)?.to_note_text();
        let note = self.signer.sign(&text)?;
        sqlx::query(
            "INSERT INTO audit_checkpoints (size, root_hash, note, signed_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(to_i64(size))
        .bind(root.to_vec())
        .bind(&note)
        .bind(to_i64(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(SignedCheckpoint {
            size,
            root_hash: root,
            note,
        })
    }

    /// The inclusion proof of entry `index` in the tree of size `size`:
    /// O(log n) stored nodes, read in one statement.
    pub async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        self.prove(Plan::inclusion(index, size)?, size).await
    }

    /// The consistency proof from size `old` to size `new`.
    pub async fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, LogError> {
        self.prove(Plan::consistency(old, new)?, new).await
    }

    /// The bytes of `tile` (C2SP tlog-tiles): its hashes, 32 bytes each, or
    /// its entries with their length prefixes. The caller checks that the
    /// signed tree holds the tile ([`Tile::within`]).
    pub async fn tile(&self, tile: &Tile) -> Result<Vec<u8>, LogError> {
        let (start, end) = (tile.first(), tile.first() + tile.width);
        if tile.level.is_none() {
            let mut bundle = Vec::new();
            let entries = fetch_entries(&self.reads, start, end).await?;
            for (expected, entry) in (start..end).zip(&entries) {
                if entry.index != expected {
                    return Err(LogError::MissingEntry(expected));
                }
                push_entry(&mut bundle, &entry.leaf).ok_or(LogError::MissingEntry(expected))?;
            }
            if (entries.len() as u64) < tile.width {
                return Err(LogError::MissingEntry(start + entries.len() as u64));
            }
            return Ok(bundle);
        }
        let level = tile.tree_level();
        let read = || async {
            let rows = sqlx::query(
                "SELECT idx, hash FROM audit_tree WHERE level = $1 AND idx >= $2 AND idx < $3
                 ORDER BY idx",
            )
            .bind(i64::from(level))
            .bind(to_i64(start))
            .bind(to_i64(end))
            .fetch_all(&self.reads)
            .await?;
            let mut bytes = Vec::with_capacity(rows.len() * 32);
            for (expected, row) in (start..end).zip(&rows) {
                let hash: Vec<u8> = row.get(1);
                if to_u64(row.get(0)) != expected || hash.len() != 32 {
                    return Err(missing(Node {
                        level,
                        index: expected,
                    }));
                }
                bytes.extend_from_slice(&hash);
            }
            if (rows.len() as u64) < tile.width {
                return Err(missing(Node {
                    level,
                    index: start + rows.len() as u64,
                }));
            }
            Ok(bytes)
        };
        match read().await {
            Err(LogError::MissingNode { .. }) => {
                let mut tx = self.pool.begin().await?;
                catch_up(&mut tx).await?;
                tx.commit().await?;
                read().await
            }
            other => other,
        }
    }

    /// `plan`'s hashes, for a tree of `size` leaves.
    async fn prove(&self, plan: Plan, size: u64) -> Result<Vec<Hash>, LogError> {
        let stored = self.size().await?;
        if size > stored {
            return Err(ProofError::NotEnoughLeaves {
                tree_size: size,
                available: usize::try_from(stored).unwrap_or(usize::MAX),
            }
            .into());
        }
        let mut conn = self.reads.acquire().await?;
        match answer(&mut conn, &plan).await {
            // A log from before the stored tree that has not caught up yet
            // (the next checkpoint does it): catch up now, then answer.
            Err(LogError::MissingNode { .. }) => {
                drop(conn);
                let mut tx = self.pool.begin().await?;
                catch_up(&mut tx).await?;
                let hashes = answer(&mut tx, &plan).await?;
                tx.commit().await?;
                Ok(hashes)
            }
            other => other,
        }
    }

    /// Keeps witness `witness`'s cosignature `line` on the checkpoint of
    /// `size` entries (once).
    pub async fn add_cosignature(
        &self,
        witness: &str,
        size: u64,
        line: &str,
    ) -> Result<(), LogError> {
        sqlx::query(
            "INSERT INTO audit_cosignatures (witness, size, line) VALUES ($1, $2, $3)
             ON CONFLICT (witness, size) DO NOTHING",
        )
        .bind(witness)
        .bind(to_i64(size))
        .bind(line)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The cosignature lines witnesses gave the checkpoint of `size` entries.
    pub async fn cosignatures(&self, size: u64) -> Result<Vec<String>, LogError> {
        Ok(
            sqlx::query("SELECT line FROM audit_cosignatures WHERE size = $1 ORDER BY witness")
                .bind(to_i64(size))
                .fetch_all(&self.reads)
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect(),
        )
    }

    /// The size of the largest checkpoint `witness` cosigned (0: none).
    pub async fn cosigned_by(&self, witness: &str) -> Result<u64, LogError> {
        let row = sqlx::query("SELECT MAX(size) FROM audit_cosignatures WHERE witness = $1")
            .bind(witness)
            .fetch_one(&self.reads)
            .await?;
        Ok(row.get::<Option<i64>, _>(0).map_or(0, to_u64))
    }

    /// Keeps a log key rotation statement (see [`crate::rotation`]).
    pub async fn add_key_rotation(
        &self,
        new_key: &str,
        statement: &str,
        now: u64,
    ) -> Result<(), LogError> {
        sqlx::query(
            "INSERT INTO audit_key_rotations (new_key, statement, created_at) VALUES ($1, $2, $3)",
        )
        .bind(new_key)
        .bind(statement)
        .bind(to_i64(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every log key rotation statement, oldest first.
    pub async fn key_rotations(&self) -> Result<Vec<String>, LogError> {
        Ok(
            sqlx::query("SELECT statement FROM audit_key_rotations ORDER BY created_at, new_key")
                .fetch_all(&self.reads)
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect(),
        )
    }

    /// The latest entry that registered `device_id` for `username`.
    pub async fn device_registration(
        &self,
        username: &str,
        device_id: &str,
    ) -> Result<Option<StoredEntry>, LogError> {
        let row = sqlx::query(
            "SELECT idx, leaf FROM audit_log WHERE action = $1 AND actor = $2 AND device = $3
             ORDER BY idx DESC LIMIT 1",
        )
        .bind(crate::event::DEVICE_ADDED)
        .bind(username)
        .bind(device_id)
        .fetch_optional(&self.reads)
        .await?;
        Ok(row.map(|r| StoredEntry {
            index: to_u64(r.get(0)),
            leaf: r.get(1),
        }))
    }
}
