//! Key transparency and alerts: the pinned log key (`log_key`), every
//! checkpoint verified, each consistent with the one before
//! (`checkpoints`), the security alerts raised (`security_alerts`) and the
//! account changes already shown (`seen_account_changes`).

use sqlx::{Connection, Row, SqliteConnection};

use super::to_i64;
use crate::error::Result;

/// The pinned log verifier key, as text.
pub(crate) async fn log_key(db: &mut SqliteConnection) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT verifier_key FROM log_key WHERE id = 1")
            .fetch_optional(&mut *db)
            .await?,
    )
}

pub(crate) async fn pin_log_key(db: &mut SqliteConnection, key: &str) -> Result<()> {
    sqlx::query("INSERT INTO log_key (id, verifier_key) VALUES (1, $1)")
        .bind(key)
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// Pins `new` in place of `old`, which a signed rotation retired.
pub(crate) async fn rotate_log_key(db: &mut SqliteConnection, old: &str, new: &str) -> Result<()> {
    let mut tx = db.begin().await?;
    sqlx::query("UPDATE log_key SET verifier_key = $1 WHERE id = 1")
        .bind(new)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT OR IGNORE INTO retired_log_keys (verifier_key) VALUES ($1)")
        .bind(old)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The log keys a rotation retired on this device.
pub(crate) async fn retired_log_keys(db: &mut SqliteConnection) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT verifier_key FROM retired_log_keys")
            .fetch_all(&mut *db)
            .await?,
    )
}

/// The pinned witness policy.
pub(crate) struct PinnedWitnesses {
    /// Verifier keys, one per witness.
    pub(crate) witnesses: Vec<String>,
    pub(crate) quorum: u64,
    pub(crate) grace: u64,
    /// Unix seconds: the newest cosignature on a checkpoint that had the
    /// quorum (or when the policy was pinned).
    pub(crate) last_quorum_at: u64,
}

pub(crate) async fn witness_policy(db: &mut SqliteConnection) -> Result<Option<PinnedWitnesses>> {
    Ok(sqlx::query(
        "SELECT witnesses, quorum, grace, last_quorum_at FROM witness_policy WHERE id = 1",
    )
    .fetch_optional(&mut *db)
    .await?
    .map(|row| PinnedWitnesses {
        witnesses: row
            .get::<String, _>(0)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        quorum: row.get::<i64, _>(1).try_into().unwrap_or(0),
        grace: row.get::<i64, _>(2).try_into().unwrap_or(0),
        last_quorum_at: row.get::<i64, _>(3).try_into().unwrap_or(0),
    }))
}

/// Pins the witness policy (once: a pinned one is kept).
pub(crate) async fn pin_witness_policy(
    db: &mut SqliteConnection,
    policy: &PinnedWitnesses,
) -> Result<()> {
    sqlx::query(
        "INSERT OR IGNORE INTO witness_policy (id, witnesses, quorum, grace, last_quorum_at)
         VALUES (1, $1, $2, $3, $4)",
    )
    .bind(policy.witnesses.join("\n"))
    .bind(to_i64(policy.quorum))
    .bind(to_i64(policy.grace))
    .bind(to_i64(policy.last_quorum_at))
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// A checkpoint had the quorum, cosigned as late as `at`.
pub(crate) async fn quorum_seen(db: &mut SqliteConnection, at: u64) -> Result<()> {
    sqlx::query("UPDATE witness_policy SET last_quorum_at = MAX(last_quorum_at, $1) WHERE id = 1")
        .bind(to_i64(at))
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// A verified checkpoint as stored.
pub(crate) struct StoredCheckpoint {
    pub(crate) size: u64,
    pub(crate) root_hash: Vec<u8>,
    /// The signed note.
    pub(crate) note: String,
}

/// The checkpoint of the largest log verified.
pub(crate) async fn newest_checkpoint(
    db: &mut SqliteConnection,
) -> Result<Option<StoredCheckpoint>> {
    Ok(
        sqlx::query("SELECT size, root_hash, note FROM checkpoints ORDER BY size DESC LIMIT 1")
            .fetch_optional(&mut *db)
            .await?
            .map(|row| StoredCheckpoint {
                size: row.get::<i64, _>(0).try_into().unwrap_or(0),
                root_hash: row.get(1),
                note: row.get(2),
            }),
    )
}

/// Keeps a verified checkpoint (a newer note of the same tree replaces the
/// older one).
pub(crate) async fn add_checkpoint(
    db: &mut SqliteConnection,
    size: u64,
    root_hash: &[u8],
    note: &str,
) -> Result<()> {
    // The same tree again may come with more witness cosignatures: the
    // newer note is kept (never one with another root).
    sqlx::query(
        "INSERT INTO checkpoints (size, root_hash, note) VALUES ($1, $2, $3)
         ON CONFLICT (size) DO UPDATE SET note = excluded.note
         WHERE checkpoints.root_hash = excluded.root_hash",
    )
    .bind(to_i64(size))
    .bind(root_hash)
    .bind(note)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// A security alert as stored.
pub(crate) struct StoredAlert {
    pub(crate) at: u64,
    pub(crate) username: String,
    pub(crate) device_id: String,
    pub(crate) reason: String,
    /// `key_transparency`, `account_change` or `split_view`.
    pub(crate) kind: String,
}

pub(crate) async fn add_alert(db: &mut SqliteConnection, alert: &StoredAlert) -> Result<()> {
    sqlx::query(
        "INSERT INTO security_alerts (at, username, device_id, reason, kind)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(to_i64(alert.at))
    .bind(&alert.username)
    .bind(&alert.device_id)
    .bind(&alert.reason)
    .bind(&alert.kind)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// The alerts raised (with `only_unseen`, those not taken before), oldest
/// first; all are marked seen.
pub(crate) async fn take_alerts(
    db: &mut SqliteConnection,
    only_unseen: bool,
) -> Result<Vec<StoredAlert>> {
    let rows = sqlx::query(
        "SELECT at, username, device_id, reason, kind FROM security_alerts
         WHERE shown = 0 OR $1 = 0 ORDER BY id",
    )
    .bind(only_unseen)
    .fetch_all(&mut *db)
    .await?;
    sqlx::query("UPDATE security_alerts SET shown = 1")
        .execute(&mut *db)
        .await?;
    Ok(rows
        .iter()
        .map(|r| StoredAlert {
            at: r.get::<i64, _>(0).try_into().unwrap_or(0),
            username: r.get(1),
            device_id: r.get(2),
            reason: r.get(3),
            kind: r.get(4),
        })
        .collect())
}

/// Whether this device has taken note of no account change yet.
pub(crate) async fn no_account_change_seen(db: &mut SqliteConnection) -> Result<bool> {
    let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM seen_account_changes")
        .fetch_one(&mut *db)
        .await?;
    Ok(seen == 0)
}

/// Notes account change `id` as seen; `false` if it was already.
pub(crate) async fn see_account_change(db: &mut SqliteConnection, id: i64) -> Result<bool> {
    Ok(
        sqlx::query("INSERT OR IGNORE INTO seen_account_changes (id) VALUES ($1)")
            .bind(id)
            .execute(&mut *db)
            .await?
            .rows_affected()
            == 1,
    )
}
