//! The relay's writer of appends and request nonces: whatever is waiting
//! goes in one transaction, and so one flush to disk, instead of one each.
//!
//! One task per node commits, on SQLite (the store's one writing
//! connection) and on PostgreSQL alike. Each batch locks the rows it
//! touches in one order (nonces sorted, then, on PostgreSQL, every group row
//! at once by id) so that batches of two nodes cannot deadlock.
//!
//! Every append still waits until its own row is durable before it is
//! answered, and each keeps its own outcome (a position, an epoch conflict, a
//! duplicate's first position, a nonce already spent). What changes is that
//! while one transaction is being flushed, the writes that arrive meanwhile
//! queue up and go together in the next one. Under load that turns one
//! `fsync` per message into one per batch; alone, an append goes at once.
//!
//! A posted message's request nonce is spent in its append's transaction
//! (one flush per accepted message, not two); every other signed request's
//! nonce queues here too, beside the appends.
//!
//! If a batch fails for any reason, its writes are retried one by one, each
//! in its own transaction, so one bad append cannot sink the rest.

use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

use super::messages::insert_message;
use super::{Backend, MessageKind, PayloadHash, StoreError, to_i64, to_u64};

/// Most writes in one transaction.
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

/// A signed request's nonce, spent once: a second request carrying it is a
/// replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nonce {
    /// Hex id of the signing device.
    pub device_id: String,
    /// The nonce it chose.
    pub nonce: String,
    /// When no request carrying it could pass the freshness check any more
    /// (Unix seconds): the row may be forgotten then.
    pub expires_at: u64,
}

/// An append's outcome: its position (`Ok`), or the group's current epoch
/// if the append's epoch is gone (`Err`).
pub(super) type Appended = Result<u64, u64>;

/// A write waiting for its transaction.
pub(super) enum Queued {
    /// A message, with the nonce of the request that posted it, if unspent.
    Append {
        append: Append,
        nonce: Option<Nonce>,
        /// When the relay received it (Unix seconds, the store's clock).
        received_at: i64,
        /// `None`: the nonce was already spent, nothing was appended.
        answer: oneshot::Sender<Result<Option<Appended>, StoreError>>,
    },
    /// Another request's nonce: `false` if it was already spent.
    Nonce {
        nonce: Nonce,
        answer: oneshot::Sender<Result<bool, StoreError>>,
    },
}

/// What a write in a batch came to, before it is answered.
enum Outcome {
    Append(Option<Appended>),
    Nonce(bool),
}

/// Starts the task that takes writes from the queue into the database: one
/// per node, on either backend. (On PostgreSQL, two or four committers side
/// by side were slower in `conclave-bench`: their batches touch the same
/// group rows and wait on each other's locks.)
pub(super) fn start(pool: AnyPool, backend: Backend) -> mpsc::Sender<Queued> {
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
            commit(&pool, backend, batch).await;
        }
        // The store is gone.
    });
    queue
}

async fn commit(pool: &AnyPool, backend: Backend, mut batch: Vec<Queued>) {
    // Alone on SQLite, a plain message goes to the database in one trip.
    if backend == Backend::Sqlite
        && batch.len() == 1
        && let Some(Queued::Append {
            append,
            nonce: Some(nonce),
            received_at,
            ..
        }) = batch.first()
        && append.public_state.is_none()
    {
        // `None`: rolled back, for the path below to write (a duplicate
        // racing its first try is answered there).
        if let Some(outcome) = append_sqlite_at_once(pool, append, nonce, *received_at).await {
            if let Some(Queued::Append { answer, .. }) = batch.pop() {
                let _ = answer.send(outcome);
            }
            return;
        }
    }
    match write_all(pool, backend, &batch).await {
        Ok(outcomes) => {
            for (queued, outcome) in batch.into_iter().zip(outcomes) {
                match (queued, outcome) {
                    (Queued::Append { answer, .. }, Outcome::Append(appended)) => {
                        let _ = answer.send(Ok(appended));
                    }
                    (Queued::Nonce { answer, .. }, Outcome::Nonce(fresh)) => {
                        let _ = answer.send(Ok(fresh));
                    }
                    // `write_all` answers each write in kind.
                    _ => {}
                }
            }
        }
        Err(e) => {
            if batch.len() > 1 {
                tracing::debug!(error = %e, size = batch.len(), "group commit failed; one by one");
            }
            for queued in batch {
                write_alone(pool, backend, queued).await;
            }
        }
    }
}

/// One plain message and its nonce on SQLite, the whole transaction (the
/// nonce spent, the group's counter bumped, the message inserted, the
/// group's epoch read) as one list of statements on the writer's
/// connection: one trip to SQLite's worker thread instead of five
/// (`BEGIN IMMEDIATE`, three statements, `COMMIT`), which on two busy cores
/// cost more than the statements. Each step runs only if the one before
/// changed a row (`changes()`: a spent nonce appends nothing, a gone epoch
/// bumps nothing). If the list fails, the transaction is rolled back and
/// `None` returned, for the caller to write it the usual way; once it has
/// committed, its outcome is the answer, whatever it is (a second write
/// would find its own nonce spent).
async fn append_sqlite_at_once(
    pool: &AnyPool,
    append: &Append,
    nonce: &Nonce,
    received_at: i64,
) -> Option<Result<Option<Appended>, StoreError>> {
    const AT_ONCE: &str = "BEGIN IMMEDIATE;
        INSERT INTO request_nonces (device_id, nonce, expires_at) VALUES ($1, $2, $3)
            ON CONFLICT (device_id, nonce) DO NOTHING RETURNING 'fresh', 0;
        UPDATE groups SET next_seq = next_seq + 1
            WHERE group_id = $4 AND epoch = $5 AND changes() = 1
            RETURNING 'seq', next_seq - 1;
        INSERT INTO messages (group_id, seq, kind, epoch, sender_device, payload, created_at, payload_hash)
            SELECT $4, next_seq - 1, $6, $5, $7, $8, $9, $10 FROM groups
            WHERE group_id = $4 AND epoch = $5 AND changes() = 1;
        SELECT 'epoch', COALESCE((SELECT epoch FROM groups WHERE group_id = $4), 0);
        COMMIT";
    let mut connection = pool.acquire().await.ok()?;
    let rows = sqlx::query(AT_ONCE)
        .bind(&nonce.device_id)
        .bind(&nonce.nonce)
        .bind(to_i64(nonce.expires_at))
        .bind(&append.group_id)
        .bind(to_i64(append.epoch))
        .bind(append.kind.as_str())
        .bind(&append.sender)
        .bind(append.payload.as_slice())
        .bind(received_at)
        .bind(append.payload_hash.as_str())
        .fetch_all(&mut *connection)
        .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            tracing::debug!(error = %e, "a lone append goes the long way");
            // Stopped part way (a duplicate's unique index, a busy
            // database): whatever it did is undone. "No transaction is
            // active" when it stopped at `BEGIN` is no failure.
            if let Err(rollback) = sqlx::query("ROLLBACK").execute(&mut *connection).await
                && !rollback.to_string().contains("no transaction is active")
            {
                // Never hand a connection back in the middle of a transaction.
                connection.close_on_drop();
            }
            return None;
        }
    };
    Some(outcome_of(&rows))
}

/// What [`append_sqlite_at_once`]'s rows say: each step that changed a row
/// answered with its name (`fresh`, `seq`), and the group's epoch last.
fn outcome_of(rows: &[sqlx::any::AnyRow]) -> Result<Option<Appended>, StoreError> {
    let (mut fresh, mut seq, mut epoch) = (false, None, 0);
    for row in rows {
        let step: String = row.try_get(0)?;
        let value: i64 = row.try_get(1)?;
        match step.as_str() {
            "fresh" => fresh = true,
            "seq" => seq = Some(value),
            _ => epoch = value,
        }
    }
    Ok(match (fresh, seq) {
        (false, _) => None,
        (true, Some(seq)) => Some(Ok(to_u64(seq))),
        (true, None) => Some(Err(to_u64(epoch))),
    })
}

/// `queued` in a transaction of its own, answered on its own channel: for
/// a batch that failed, write by write, and for a write the committer could
/// not take (the runtime is shutting down).
pub(super) async fn write_alone(pool: &AnyPool, backend: Backend, queued: Queued) {
    match queued {
        Queued::Append {
            append,
            nonce,
            received_at,
            answer,
        } => {
            let outcome = match backend {
                Backend::Sqlite => append_one(pool, &append, nonce.as_ref(), received_at).await,
                Backend::Postgres => {
                    append_postgres(pool, &append, nonce.as_ref(), received_at).await
                }
            };
            let _ = answer.send(outcome);
        }
        Queued::Nonce { nonce, answer } => {
            let _ = answer.send(spend_alone(pool, &nonce).await);
        }
    }
}

/// One step of a batch that takes a group's row: a proposal (it replaces
/// the group's public state, so it goes on its own), or the plain appends
/// to one group at one epoch, in the order they came.
enum GroupStep<'a> {
    Proposal(usize),
    Run {
        group_id: &'a str,
        epoch: u64,
        members: Vec<usize>,
    },
}

impl GroupStep<'_> {
    fn group_id<'b>(&'b self, batch: &'b [Queued]) -> &'b str {
        match self {
            GroupStep::Run { group_id, .. } => group_id,
            GroupStep::Proposal(i) => match &batch[*i] {
                Queued::Append { append, .. } => &append.group_id,
                Queued::Nonce { .. } => "",
            },
        }
    }
}

/// All of `batch` in one transaction, in a few statements whatever its
/// size: every nonce in one insert, one counter bump for the positions of
/// every group and epoch, and every plain message in one multi-row insert
/// (a proposal on its own). One statement per row, each handed to SQLite's
/// worker thread in turn, or one round trip each to PostgreSQL, cost more
/// than the flush they share.
///
/// Rows are locked in one order, whatever the batch: nonces sorted, then
/// group rows by id (on PostgreSQL all at once, before any is changed). Two
/// nodes' batches committing at once then wait for each other at worst, and
/// never deadlock.
async fn write_all(
    pool: &AnyPool,
    backend: Backend,
    batch: &[Queued],
) -> Result<Vec<Outcome>, StoreError> {
    let mut tx = begin_write(pool, backend).await?;
    let mut nonces: Vec<(usize, &Nonce)> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, queued)| match queued {
            Queued::Append {
                nonce: Some(nonce), ..
            }
            | Queued::Nonce { nonce, .. } => Some((i, nonce)),
            Queued::Append { nonce: None, .. } => None,
        })
        .collect();
    // Stable: of one nonce twice, the first to come is the fresh one.
    nonces.sort_by(|(_, a), (_, b)| (&a.device_id, &a.nonce).cmp(&(&b.device_id, &b.nonce)));
    let fresh = spend_all(&mut tx, backend, &nonces).await?;

    let mut outcomes: Vec<Option<Outcome>> = batch.iter().map(|_| None).collect();
    let mut steps: Vec<GroupStep<'_>> = Vec::new();
    for (i, queued) in batch.iter().enumerate() {
        match queued {
            Queued::Nonce { .. } => outcomes[i] = Some(Outcome::Nonce(fresh[i])),
            Queued::Append { nonce, .. } if nonce.is_some() && !fresh[i] => {
                outcomes[i] = Some(Outcome::Append(None));
            }
            Queued::Append { append, .. } if append.public_state.is_some() => {
                steps.push(GroupStep::Proposal(i));
            }
            Queued::Append { append, .. } => {
                let run = steps.iter_mut().find_map(|step| match step {
                    GroupStep::Run {
                        group_id,
                        epoch,
                        members,
                    } if *group_id == append.group_id && *epoch == append.epoch => Some(members),
                    _ => None,
                });
                match run {
                    Some(members) => members.push(i),
                    None => steps.push(GroupStep::Run {
                        group_id: &append.group_id,
                        epoch: append.epoch,
                        members: vec![i],
                    }),
                }
            }
        }
    }
    // PostgreSQL: every group row the batch touches, locked at once in id
    // order (SQLite has one writer: nothing to order).
    if backend == Backend::Postgres {
        let groups: std::collections::BTreeSet<&str> =
            steps.iter().map(|step| step.group_id(batch)).collect();
        lock_groups(&mut tx, &groups).await?;
    }

    // Proposals one by one, in the order they came.
    for step in &steps {
        if let GroupStep::Proposal(i) = step
            && let Queued::Append {
                append,
                received_at,
                ..
            } = &batch[*i]
        {
            let appended = append_in(&mut tx, append, *received_at).await?;
            outcomes[*i] = Some(Outcome::Append(Some(appended)));
        }
    }

    // Every run's positions from one counter bump statement.
    let runs: Vec<(&str, u64, &[usize])> = steps
        .iter()
        .filter_map(|step| match step {
            GroupStep::Run {
                group_id,
                epoch,
                members,
            } => Some((*group_id, *epoch, members.as_slice())),
            GroupStep::Proposal(_) => None,
        })
        .collect();
    let bumped = bump_all(&mut tx, backend, &runs).await?;
    let mut rows: Vec<(i64, &Append, i64)> = Vec::new();
    for (group_id, epoch, members) in runs {
        let count = i64::try_from(members.len()).unwrap_or(i64::MAX);
        match bumped.get(&(group_id.to_owned(), to_i64(epoch))) {
            Some(next) => {
                let first = next - count;
                for (offset, &i) in (0..).zip(members) {
                    let Queued::Append {
                        append,
                        received_at,
                        ..
                    } = &batch[i]
                    else {
                        continue;
                    };
                    rows.push((first + offset, append, *received_at));
                    outcomes[i] = Some(Outcome::Append(Some(Ok(to_u64(first + offset)))));
                }
            }
            None => {
                let current = current_epoch(&mut tx, group_id).await?;
                for &i in members {
                    outcomes[i] = Some(Outcome::Append(Some(Err(current))));
                }
            }
        }
    }
    insert_all(&mut tx, backend, &rows).await?;
    tx.commit().await?;
    // Every write of the batch got its outcome above.
    Ok(outcomes
        .into_iter()
        .map(|outcome| outcome.unwrap_or(Outcome::Append(None)))
        .collect())
}

/// Locks the rows of `groups` (PostgreSQL), in id order: `FOR UPDATE`
/// locks rows as the sort hands them over.
async fn lock_groups(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    groups: &std::collections::BTreeSet<&str>,
) -> Result<(), StoreError> {
    if groups.is_empty() {
        return Ok(());
    }
    let params: Vec<String> = (1..=groups.len()).map(|n| format!("${n}")).collect();
    let statement = format!(
        "SELECT group_id FROM groups WHERE group_id IN ({}) ORDER BY group_id FOR UPDATE",
        params.join(", ")
    );
    let mut query = sqlx::query(&statement);
    for group_id in groups {
        query = query.bind(*group_id);
    }
    query.fetch_all(&mut **tx).await?;
    Ok(())
}

/// Moves the position counter of every (group, epoch) of `runs` on by its
/// number of members, in one statement: for each group still at that
/// epoch, its counter after the bump.
async fn bump_all(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    runs: &[(&str, u64, &[usize])],
) -> Result<std::collections::HashMap<(String, i64), i64>, StoreError> {
    if runs.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    // `VALUES` names its columns column1, column2, … on SQLite and
    // PostgreSQL alike; SQLite's RETURNING sees only the updated table.
    let statement = format!(
        "UPDATE groups SET next_seq = next_seq + v.column3 FROM (VALUES {}) AS v
         WHERE groups.group_id = v.column1 AND groups.epoch = v.column2
         RETURNING group_id, epoch, next_seq",
        super::parameter_rows(backend, runs.len(), 3)
    );
    let mut query = sqlx::query(&statement);
    for (group_id, epoch, members) in runs {
        query = query
            .bind(*group_id)
            .bind(to_i64(*epoch))
            .bind(i64::try_from(members.len()).unwrap_or(i64::MAX));
    }
    Ok(query
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| ((row.get(0), row.get(1)), row.get(2)))
        .collect())
}

/// Every nonce of `nonces` (batch index, nonce) spent in one statement:
/// for each batch index, whether its nonce was fresh. The same nonce twice
/// in one batch (a replay racing its original) is fresh only the first time.
async fn spend_all(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    nonces: &[(usize, &Nonce)],
) -> Result<Vec<bool>, StoreError> {
    let mut fresh = vec![false; nonces.iter().map(|(i, _)| i + 1).max().unwrap_or(0)];
    if nonces.is_empty() {
        return Ok(fresh);
    }
    let statement = format!(
        "INSERT INTO request_nonces (device_id, nonce, expires_at) VALUES {}
         ON CONFLICT (device_id, nonce) DO NOTHING RETURNING device_id, nonce",
        super::parameter_rows(backend, nonces.len(), 3)
    );
    let mut query = sqlx::query(&statement);
    for (_, nonce) in nonces {
        query = query
            .bind(&nonce.device_id)
            .bind(&nonce.nonce)
            .bind(to_i64(nonce.expires_at));
    }
    let mut inserted: std::collections::HashSet<(String, String)> = query
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    for (i, nonce) in nonces {
        fresh[*i] = inserted.remove(&(nonce.device_id.clone(), nonce.nonce.clone()));
    }
    Ok(fresh)
}

/// `rows` (position, append, received at) in multi-row inserts.
async fn insert_all(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    rows: &[(i64, &Append, i64)],
) -> Result<(), StoreError> {
    // 8 parameters a row: well inside SQLite's limit of 32,766.
    for chunk in rows.chunks(MAX_BATCH) {
        let statement = format!(
            "INSERT INTO messages (group_id, seq, kind, epoch, sender_device, payload, created_at, payload_hash)
             VALUES {}",
            super::parameter_rows(backend, chunk.len(), 8)
        );
        let mut query = sqlx::query(&statement);
        for (seq, append, received_at) in chunk {
            query = query
                .bind(&append.group_id)
                .bind(*seq)
                .bind(append.kind.as_str())
                .bind(to_i64(append.epoch))
                .bind(&append.sender)
                .bind(append.payload.clone())
                .bind(*received_at)
                .bind(append.payload_hash.as_str());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// The epoch `group_id` is at now (0 if it is gone).
async fn current_epoch(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    group_id: &str,
) -> Result<u64, StoreError> {
    Ok(sqlx::query("SELECT epoch FROM groups WHERE group_id = $1")
        .bind(group_id)
        .fetch_optional(&mut **tx)
        .await?
        .map_or(0, |r| to_u64(r.get(0))))
}

/// Spends `nonce` inside `tx`: `false` if it was spent before.
pub(super) async fn spend(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    nonce: &Nonce,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO request_nonces (device_id, nonce, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (device_id, nonce) DO NOTHING",
    )
    .bind(&nonce.device_id)
    .bind(&nonce.nonce)
    .bind(to_i64(nonce.expires_at))
    .execute(&mut **tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// One nonce in a transaction of its own.
async fn spend_alone(pool: &AnyPool, nonce: &Nonce) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let fresh = spend(&mut tx, nonce).await?;
    tx.commit().await?;
    Ok(fresh)
}

async fn spend_and_append(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    append: &Append,
    nonce: Option<&Nonce>,
    received_at: i64,
) -> Result<Option<Appended>, StoreError> {
    if let Some(nonce) = nonce
        && !spend(tx, nonce).await?
    {
        return Ok(None);
    }
    Ok(Some(append_in(tx, append, received_at).await?))
}

/// One append (and its nonce) in a transaction of its own (SQLite).
async fn append_one(
    pool: &AnyPool,
    append: &Append,
    nonce: Option<&Nonce>,
    received_at: i64,
) -> Result<Option<Appended>, StoreError> {
    let mut tx = begin_immediate(pool).await?;
    match spend_and_append(&mut tx, append, nonce, received_at).await {
        Ok(outcome) => {
            tx.commit().await?;
            Ok(outcome)
        }
        Err(StoreError::Database(sqlx::Error::Database(e))) if e.is_unique_violation() => {
            drop(tx);
            // The nonce was not spent (the transaction rolled back): spend
            // it now, then answer the first position.
            if let Some(nonce) = nonce
                && !spend_alone(pool, nonce).await?
            {
                return Ok(None);
            }
            first_of_duplicate(pool, append, e).await.map(Some)
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
) -> Result<Appended, StoreError> {
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

/// One append as one PostgreSQL statement, committed on its own (for a
/// batch that failed, write by write, or when the committers are gone): the
/// nonce, the epoch compare-and-swap with the next position, and the
/// insert, in one round trip. The group's row stays locked only for that
/// statement. The same bytes already there (a retry racing its first try,
/// which `Store::device_session_and_admission` did not see yet) fail on
/// the unique index: the first one's position is answered.
async fn append_postgres(
    pool: &AnyPool,
    append: &Append,
    nonce: Option<&Nonce>,
    received_at: i64,
) -> Result<Option<Appended>, StoreError> {
    // Without a nonce, `spent` is one row that inserted nothing.
    let spend = match nonce {
        Some(_) => {
            "INSERT INTO request_nonces (device_id, nonce, expires_at) VALUES ($9, $10, $11)
             ON CONFLICT (device_id, nonce) DO NOTHING RETURNING 1"
        }
        None => "SELECT 1",
    };
    let statement = format!(
        "WITH spent AS ({spend}), bumped AS (
             UPDATE groups SET next_seq = next_seq + 1, public_state = COALESCE($6, public_state)
             WHERE group_id = $1 AND epoch = $2 AND EXISTS (SELECT 1 FROM spent)
             RETURNING next_seq - 1 AS seq
         ), inserted AS (
             INSERT INTO messages (group_id, seq, kind, epoch, sender_device, payload, created_at, payload_hash)
             SELECT $1, seq, $3, $2, $4, $5, $8, $7 FROM bumped
             RETURNING seq
         )
         SELECT EXISTS (SELECT 1 FROM spent), (SELECT seq FROM inserted),
                (SELECT epoch FROM groups WHERE group_id = $1)"
    );
    let mut query = sqlx::query(&statement)
        .bind(&append.group_id)
        .bind(to_i64(append.epoch))
        .bind(append.kind.as_str())
        .bind(&append.sender)
        .bind(append.payload.clone())
        .bind(append.public_state.clone())
        .bind(append.payload_hash.as_str())
        .bind(received_at);
    if let Some(nonce) = nonce {
        query = query
            .bind(&nonce.device_id)
            .bind(&nonce.nonce)
            .bind(to_i64(nonce.expires_at));
    }
    let row = match query.fetch_one(pool).await {
        Ok(row) => row,
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            // Rolled back, nonce and all.
            if let Some(nonce) = nonce
                && !spend_alone(pool, nonce).await?
            {
                return Ok(None);
            }
            return first_of_duplicate(pool, append, e).await.map(Some);
        }
        Err(e) => return Err(e.into()),
    };
    let fresh: bool = row.get(0);
    let inserted: Option<i64> = row.get(1);
    let current: Option<i64> = row.get(2);
    Ok(match (fresh, inserted) {
        (false, _) => None,
        (true, Some(seq)) => Some(Ok(to_u64(seq))),
        (true, None) => Some(Err(current.map_or(0, to_u64))),
    })
}

/// A write transaction: on SQLite, `begin_immediate`.
pub(super) async fn begin_write(
    pool: &AnyPool,
    backend: Backend,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    match backend {
        Backend::Sqlite => begin_immediate(pool).await,
        Backend::Postgres => pool.begin().await,
    }
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
/// (a retry) were answered before they came here
/// (`Store::device_session_and_admission`); a retry racing its first try
/// fails on the unique index, and the batch is retried one by one, where
/// `append_one` answers the first position.
async fn append_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    append: &Append,
    received_at: i64,
) -> Result<Appended, StoreError> {
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
        return Ok(Err(current_epoch(tx, &append.group_id).await?));
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
