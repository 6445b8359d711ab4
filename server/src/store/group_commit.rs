//! Group commit for appends: messages posted at the same moment share one
//! transaction, and so one flush to disk, instead of one each.
//!
//! On SQLite (one writer) the relay does this itself, below. PostgreSQL
//! already shares one WAL flush among transactions that commit at the same
//! moment, so there each append is one statement in a transaction of its
//! own (`append_postgres`), many at once over the pool.
//!
//! Every append still waits until its own row is durable before it is
//! answered, and each keeps its own outcome (a position, an epoch conflict, a
//! duplicate's first position). What changes is that while one transaction
//! is being flushed, the appends that arrive meanwhile queue up and go
//! together in the next one. Under load that turns one `fsync` per message
//! into one per batch; alone, an append goes at once, as before.
//!
//! If a batch fails for any reason, its appends are retried one by one, each
//! in its own transaction, so one bad append cannot sink the rest.

use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

use super::messages::insert_message;
use super::{MessageKind, PayloadHash, StoreError, to_i64, to_u64};

/// Most appends in one transaction.
const MAX_BATCH: usize = 256;

/// One message to append.
#[derive(Debug)]
pub struct Append {
    /// Hex group id.
    pub group_id: String,
    /// The epoch it was built for: appended only if the group is still there.
    pub epoch: u64,
    /// Application or proposal (commits go through `apply_commit`).
    pub kind: MessageKind,
    /// The posting device.
    pub sender: String,
    /// The MLS message.
    pub payload: Vec<u8>,
    /// `payload`'s hash, computed once by whoever first needed it.
    pub payload_hash: PayloadHash,
    /// A proposal's new public state (it joins the proposal queue).
    pub public_state: Option<Vec<u8>>,
}

/// An append waiting for its transaction.
pub(super) struct Queued {
    pub append: Append,
    /// When the relay received it (Unix seconds, the store's clock).
    pub received_at: i64,
    pub answer: oneshot::Sender<Result<Result<u64, u64>, StoreError>>,
}

/// Starts the task that takes appends from the queue into SQLite (one
/// writer, so one committer).
pub(super) fn start(pool: AnyPool) -> mpsc::Sender<Queued> {
    let (queue, mut arrivals) = mpsc::channel::<Queued>(MAX_BATCH * 16);
    tokio::spawn(async move {
        while let Some(first) = arrivals.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match arrivals.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            commit(&pool, batch).await;
        }
        // The store is gone.
    });
    queue
}

async fn commit(pool: &AnyPool, batch: Vec<Queued>) {
    match append_all(pool, &batch).await {
        Ok(outcomes) => {
            for (queued, outcome) in batch.into_iter().zip(outcomes) {
                let _ = queued.answer.send(Ok(outcome));
            }
        }
        Err(e) => {
            if batch.len() > 1 {
                tracing::debug!(error = %e, size = batch.len(), "group commit failed; one by one");
            }
            for queued in batch {
                let outcome = append_one(pool, &queued.append, queued.received_at).await;
                let _ = queued.answer.send(outcome);
            }
        }
    }
}

/// All of `batch` in one transaction.
async fn append_all(pool: &AnyPool, batch: &[Queued]) -> Result<Vec<Result<u64, u64>>, StoreError> {
    let mut tx = begin_immediate(pool).await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for queued in batch {
        outcomes.push(append_in(&mut tx, &queued.append, queued.received_at).await?);
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// One append in a transaction of its own.
pub(super) async fn append_one(
    pool: &AnyPool,
    append: &Append,
    received_at: i64,
) -> Result<Result<u64, u64>, StoreError> {
    let mut tx = begin_immediate(pool).await?;
    match append_in(&mut tx, append, received_at).await {
        Ok(outcome) => {
            tx.commit().await?;
            Ok(outcome)
        }
        Err(StoreError::Database(sqlx::Error::Database(e))) if e.is_unique_violation() => {
            drop(tx);
            first_of_duplicate(pool, append, e).await
        }
        Err(e) => Err(e),
    }
}

/// The same bytes, committed meanwhile by another transaction (the first
/// try of a retry, on another node): that one's position.
async fn first_of_duplicate(
    pool: &AnyPool,
    append: &Append,
    violation: Box<dyn sqlx::error::DatabaseError>,
) -> Result<Result<u64, u64>, StoreError> {
    let first = sqlx::query("SELECT seq FROM messages WHERE group_id = $1 AND payload_hash = $2")
        .bind(&append.group_id)
        .bind(append.payload_hash.as_str())
        .fetch_optional(pool)
        .await?;
    match first {
        Some(row) => Ok(Ok(to_u64(row.get(0)))),
        None => Err(StoreError::Database(sqlx::Error::Database(violation))),
    }
}

/// One append as one PostgreSQL statement, committed on its own: the
/// duplicate check, the epoch compare-and-swap with the next position, and
/// the insert, in one round trip. The group's row stays locked only for
/// that statement.
pub(super) async fn append_postgres(
    pool: &AnyPool,
    append: &Append,
    received_at: i64,
) -> Result<Result<u64, u64>, StoreError> {
    let row = sqlx::query(
        "WITH existing AS (
             SELECT seq FROM messages WHERE group_id = $1 AND payload_hash = $7
         ), bumped AS (
             UPDATE groups SET next_seq = next_seq + 1, public_state = COALESCE($6, public_state)
             WHERE group_id = $1 AND epoch = $2 AND NOT EXISTS (SELECT 1 FROM existing)
             RETURNING next_seq - 1 AS seq
         ), inserted AS (
             INSERT INTO messages (group_id, seq, kind, epoch, sender_device, payload, created_at, payload_hash)
             SELECT $1, seq, $3, $2, $4, $5, $8, $7 FROM bumped
             RETURNING seq
         )
         SELECT (SELECT seq FROM existing), (SELECT seq FROM inserted),
                (SELECT epoch FROM groups WHERE group_id = $1)",
    )
    .bind(&append.group_id)
    .bind(to_i64(append.epoch))
    .bind(append.kind.as_str())
    .bind(&append.sender)
    .bind(append.payload.clone())
    .bind(append.public_state.clone())
    .bind(append.payload_hash.as_str())
    .bind(received_at)
    .fetch_one(pool)
    .await;
    let row = match row {
        Ok(row) => row,
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return first_of_duplicate(pool, append, e).await;
        }
        Err(e) => return Err(e.into()),
    };
    let existing: Option<i64> = row.get(0);
    let inserted: Option<i64> = row.get(1);
    let current: Option<i64> = row.get(2);
    Ok(match (existing, inserted) {
        (Some(first), _) => Ok(to_u64(first)),
        (None, Some(seq)) => Ok(to_u64(seq)),
        (None, None) => Err(current.map_or(0, to_u64)),
    })
}

/// A SQLite write transaction that takes the write lock at once: the
/// duplicate check reads first, and a read transaction that later wants to
/// write fails outright (SQLITE_BUSY_SNAPSHOT) if another connection wrote
/// meanwhile, instead of waiting its turn.
pub(super) async fn begin_immediate(
    pool: &AnyPool,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// Appends inside `tx`: the next position if the group is still at the
/// append's epoch, else `Err(current epoch)`. The same bytes posted again
/// (a retry) were answered before they came here (`Store::admission`); a
/// retry racing its first try fails on the unique index, and the batch is
/// retried one by one, where `append_one` answers the first position.
async fn append_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    append: &Append,
    received_at: i64,
) -> Result<Result<u64, u64>, StoreError> {
    let bumped = match &append.public_state {
        Some(state) => sqlx::query(
            "UPDATE groups SET next_seq = next_seq + 1, public_state = $3
             WHERE group_id = $1 AND epoch = $2 RETURNING next_seq - 1",
        )
        .bind(&append.group_id)
        .bind(to_i64(append.epoch))
        .bind(state.clone()),
        None => sqlx::query(
            "UPDATE groups SET next_seq = next_seq + 1
             WHERE group_id = $1 AND epoch = $2 RETURNING next_seq - 1",
        )
        .bind(&append.group_id)
        .bind(to_i64(append.epoch)),
    }
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = bumped else {
        let current = sqlx::query("SELECT epoch FROM groups WHERE group_id = $1")
            .bind(&append.group_id)
            .fetch_optional(&mut **tx)
            .await?
            .map_or(0, |r| to_u64(r.get(0)));
        return Ok(Err(current));
    };
    let seq: i64 = row.get(0);
    insert_message(
        tx,
        &append.group_id,
        seq,
        append.kind,
        append.epoch,
        &append.sender,
        &append.payload,
        Some(&append.payload_hash),
        received_at,
    )
    .await?;
    Ok(Ok(to_u64(seq)))
}
