//! The log half: the append-only log in the relay's database, through sqlx
//! on SQLite and PostgreSQL (feature `log`).
//!
//! Four tables, created by the relay's migrations (one file per version and
//! dialect: `server/migrations/{sqlite,postgres}/0003_transparency_log.sql`
//! and `0013_client_ips_and_key_package_hash.sql`):
//!
//! - `audit_log`: one row per entry, `idx` from 0 with no gaps, and the
//!   canonical leaf bytes (see [`Event`](crate::Event)). A few fields are
//!   copied beside the leaf so that a device's registration can be found.
//! - `audit_log_head`: one row holding the size. Every append updates it
//!   first, in the appending transaction, so appends from any number of
//!   processes serialize on that row and commit in index order.
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

use std::sync::{Arc, Mutex};

use sqlx::{AnyConnection, AnyPool, Row};

use crate::{
    Checkpoint, CheckpointError, ClientIpOpening, Event, EventError, Hash, NoteError, NoteSigner,
    ProofError, consistency_proof, inclusion_proof, leaf_hash, root_hash_from_leaf_hashes,
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
    let row = sqlx::query("UPDATE audit_log_head SET size = size + 1 WHERE id = 1 RETURNING size")
        .fetch_one(&mut *conn)
        .await?;
    let index = to_u64(row.get::<i64, _>(0)) - 1;
    event.seq = index;
    let leaf = event.encode()?;
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
/// Leaf hashes are cached in memory as entries are read; the cache only
/// grows by contiguous indexes, so several relay processes sharing one
/// database each keep a correct prefix.
#[derive(Debug, Clone)]
pub struct TransparencyLog {
    pool: AnyPool,
    signer: Arc<NoteSigner>,
    leaf_hashes: Arc<Mutex<Vec<Hash>>>,
}

impl TransparencyLog {
    /// The log stored in `pool`, signed by `signer` (whose key name is the
    /// checkpoint origin).
    pub fn new(pool: AnyPool, signer: NoteSigner) -> Self {
        Self {
            pool,
            signer: Arc::new(signer),
            leaf_hashes: Arc::default(),
        }
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
        stored_size(&self.pool).await
    }

    /// Entries `start..end`, as stored.
    pub async fn entries(&self, start: u64, end: u64) -> Result<Vec<StoredEntry>, LogError> {
        fetch_entries(&self.pool, start, end).await
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
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let salt: [u8; 16] = r.get::<Vec<u8>, _>(1).try_into().ok()?;
                Some((to_u64(r.get(0)), ClientIpOpening { salt, ip: r.get(2) }))
            })
            .collect())
    }

    /// The hashes of the first `size` leaves, read from the database where
    /// the cache does not have them yet.
    async fn leaf_hashes(&self, size: u64) -> Result<Vec<Hash>, LogError> {
        self.leaf_hashes_through(None, size).await
    }

    /// The leaf hashes of the first `size` entries, reading what the cache
    /// lacks through `connection` when given (a caller inside a transaction
    /// must: with the write lock held, waiting for a second pooled
    /// connection deadlocks once every other one waits for that lock).
    async fn leaf_hashes_through(
        &self,
        mut connection: Option<&mut AnyConnection>,
        size: u64,
    ) -> Result<Vec<Hash>, LogError> {
        loop {
            let cached = self.cached_len();
            if cached >= size {
                let hashes = self.lock_hashes();
                return Ok(hashes[..usize::try_from(size).unwrap_or(usize::MAX)].to_vec());
            }
            let end = size.min(cached + 10_000);
            let entries = match connection.as_deref_mut() {
                Some(connection) => fetch_entries(connection, cached, end).await?,
                None => fetch_entries(&self.pool, cached, end).await?,
            };
            let mut hashes = self.lock_hashes();
            // Another task may have filled the same range meanwhile.
            if hashes.len() as u64 != cached {
                continue;
            }
            for (expected, entry) in (cached..end).zip(&entries) {
                if entry.index != expected {
                    return Err(LogError::MissingEntry(expected));
                }
                hashes.push(leaf_hash(&entry.leaf));
            }
            if (entries.len() as u64) < end - cached {
                return Err(LogError::MissingEntry(cached + entries.len() as u64));
            }
        }
    }

    fn cached_len(&self) -> u64 {
        self.lock_hashes().len() as u64
    }

    fn lock_hashes(&self) -> std::sync::MutexGuard<'_, Vec<Hash>> {
        // A poisoned cache is still a correct prefix: every push is complete.
        self.leaf_hashes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The latest signed checkpoint, if any.
    pub async fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, LogError> {
        let row = sqlx::query(
            "SELECT size, root_hash, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
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
        // Holding the head row keeps appends out until this checkpoint is stored.
        let size = to_u64(
            sqlx::query("UPDATE audit_log_head SET size = size WHERE id = 1 RETURNING size")
                .fetch_one(&mut *tx)
                .await?
                .get(0),
        );
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
        // Read through this transaction's own connection (issue 19: the
        // pool's other connections may all be waiting for its write lock).
        let hashes = self.leaf_hashes_through(Some(&mut *tx), size).await?;
        if let Some((last_size, last_root, _)) = &last {
            let prefix = usize::try_from(*last_size).unwrap_or(usize::MAX);
            let consistent = *last_size <= size
                && root_hash_from_leaf_hashes(&hashes[..prefix]).as_slice() == last_root.as_slice();
            if !consistent {
                return Err(LogError::Inconsistent { size: *last_size });
            }
        }
        let root = root_hash_from_leaf_hashes(&hashes);
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

    /// The inclusion proof of entry `index` in the tree of size `size`.
    pub async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        let hashes = self.leaf_hashes(size).await?;
        Ok(inclusion_proof(&hashes, index, size)?)
    }

    /// The consistency proof from size `old` to size `new`.
    pub async fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, LogError> {
        let hashes = self.leaf_hashes(new).await?;
        Ok(consistency_proof(&hashes, old, new)?)
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
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| StoredEntry {
            index: to_u64(r.get(0)),
            leaf: r.get(1),
        }))
    }
}
