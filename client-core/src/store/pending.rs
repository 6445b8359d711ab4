//! What this device owes or awaits, each kept until done so a crash or a
//! lost answer skips nothing: messages sent but not yet accepted
//! (`outgoing`), its commit awaiting the relay's order (`pending_commits`),
//! channel names owed to members it added (`announcements`), and history
//! bundles handed to it, to fetch (`history_imports`).

use openmls::prelude::GroupId;
use sqlx::{Row, SqliteConnection};

use super::channels::SendCheck;
use super::group_versions;
use super::send_storage::MessageSecretsWrite;
use crate::error::Result;

/// Keeps the plaintext of a message about to be posted, by its
/// ciphertext's hash (MLS does not decrypt one's own messages). Returns the
/// version of the group's MLS state (`group_versions`; `mls_group_id` is
/// the id openmls knows the group by) that the open transaction leaves: the
/// send's last write, so the version its group is kept with.
pub(crate) async fn record_outgoing(
    db: &mut SqliteConnection,
    hash: &str,
    group_id: &str,
    plaintext: &str,
    message_id: &str,
    mls_group_id: &GroupId,
) -> Result<i64> {
    // The version is read in the same statement list as the insert: one trip
    // to sqlx's worker thread, not two (each trip wakes that thread and
    // ours, which on two shared cores costs more than the statement).
    let version: Option<i64> = sqlx::query_scalar(
        "INSERT INTO outgoing (ciphertext_hash, group_id, body, message_id) VALUES ($1, $2, $3, $4);
         SELECT version FROM mls_state_versions WHERE group_id = $5",
    )
    .bind(hash)
    .bind(group_id)
    .bind(plaintext)
    .bind(message_id)
    .bind(group_versions::key(mls_group_id)?)
    .fetch_optional(&mut *db)
    .await?;
    Ok(version.unwrap_or(0))
}

/// [`record_outgoing`] together with the one write openmls made to
/// encrypt the message (`secrets`: the group's message secrets, kept by
/// `send_storage`), in one statement list, only if the group's stored
/// version is still `kept_version` (nothing else wrote its state since the
/// group in memory was kept) and this device may still post to the
/// channel (a member, not archived). The version it left, or `None` with
/// nothing written; and the channel as the list found it, to say which
/// (`None` if there is no such channel).
#[allow(clippy::too_many_arguments)] // one row of two tables, spelled out
pub(crate) async fn record_outgoing_with_secrets(
    db: &mut SqliteConnection,
    kept_version: i64,
    secrets: &MessageSecretsWrite,
    hash: &str,
    group_id: &str,
    plaintext: &str,
    message_id: &str,
) -> Result<(Option<i64>, Option<SendCheck>)> {
    // Each insert only if the statement before it changed a row
    // (`changes()` is the count of the last statement that completed); the
    // state write bumps the version through its trigger, and the last
    // statement reads it with whether the outgoing row went in, and the
    // channel's row: the send reads nothing before its list.
    let row: Option<(i64, i64, String, i64, i64)> = sqlx::query_as(
        "INSERT OR REPLACE INTO openmls_group_data (group_id, data_type, group_data)
             SELECT $1, 'message_secrets', $2
             WHERE COALESCE((SELECT version FROM mls_state_versions WHERE group_id = $1), 0) = $3
               AND EXISTS (SELECT 1 FROM channels
                           WHERE group_id = $5 AND active <> 0 AND archived = 0);
         INSERT INTO outgoing (ciphertext_hash, group_id, body, message_id)
             SELECT $4, $5, $6, $7 WHERE changes() = 1;
         SELECT changes(), COALESCE((SELECT version FROM mls_state_versions WHERE group_id = $1), 0),
                c.name, c.active, c.archived
             FROM channels c WHERE c.group_id = $5",
    )
    .bind(secrets.group_key.as_slice())
    .bind(secrets.secrets.as_slice())
    .bind(kept_version)
    .bind(hash)
    .bind(group_id)
    .bind(plaintext)
    .bind(message_id)
    .fetch_optional(&mut *db)
    .await?;
    Ok(match row {
        Some((recorded, version, name, active, archived)) => (
            (recorded == 1).then_some(version),
            Some(SendCheck {
                name,
                active: active != 0,
                archived: archived != 0,
            }),
        ),
        None => (None, None),
    })
}

/// Takes the outgoing row of ciphertext `hash` and marks its message id
/// seen in the group at `seq`, in one statement list, for a caller that
/// still holds its plaintext: `true` if the row was there and the id new,
/// when the caller applies the message; `false` when the relay's echo was
/// applied first, or the id was seen before (a replay).
pub(crate) async fn take_outgoing_marking_seen(
    db: &mut SqliteConnection,
    hash: &str,
    group_id: &str,
    message_id: &str,
    seq: u64,
) -> Result<bool> {
    let marked: i64 = sqlx::query_scalar(
        "DELETE FROM outgoing WHERE ciphertext_hash = $1;
         INSERT OR IGNORE INTO seen_messages (group_id, message_id, seq)
             SELECT $2, $3, $4 WHERE changes() = 1;
         SELECT changes()",
    )
    .bind(hash)
    .bind(group_id)
    .bind(message_id)
    .bind(super::to_i64(seq))
    .fetch_one(&mut *db)
    .await?;
    Ok(marked == 1)
}

/// Forgets an outgoing message the relay refused.
pub(crate) async fn drop_outgoing(db: &mut SqliteConnection, hash: &str) -> Result<()> {
    sqlx::query("DELETE FROM outgoing WHERE ciphertext_hash = $1")
        .bind(hash)
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// Takes the outgoing message of ciphertext `hash`: its plaintext and id.
pub(crate) async fn take_outgoing(
    db: &mut SqliteConnection,
    hash: &str,
) -> Result<Option<(String, String)>> {
    Ok(
        sqlx::query("DELETE FROM outgoing WHERE ciphertext_hash = $1 RETURNING body, message_id")
            .bind(hash)
            .fetch_optional(&mut *db)
            .await?
            .map(|row| (row.get(0), row.get(1))),
    )
}

/// Remembers this device's commit in a group, by hash, to recognise it
/// when the relay echoes it.
pub(crate) async fn remember_commit(
    db: &mut SqliteConnection,
    group_id: &str,
    hash: &str,
) -> Result<()> {
    sqlx::query("INSERT OR REPLACE INTO pending_commits (group_id, commit_hash) VALUES ($1, $2)")
        .bind(group_id)
        .bind(hash)
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// The hash of this device's commit awaiting the relay's order in a group.
pub(crate) async fn pending_commit(
    db: &mut SqliteConnection,
    group_id: &str,
) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT commit_hash FROM pending_commits WHERE group_id = $1")
            .bind(group_id)
            .fetch_optional(&mut *db)
            .await?,
    )
}

pub(crate) async fn forget_commit(db: &mut SqliteConnection, group_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM pending_commits WHERE group_id = $1")
        .bind(group_id)
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// Notes that the members this device added are owed the channel's name.
pub(crate) async fn owe_announcement(db: &mut SqliteConnection, group_id: &str) -> Result<()> {
    sqlx::query("INSERT OR IGNORE INTO announcements (group_id) VALUES ($1)")
        .bind(group_id)
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// A channel's name owed to members this device added.
pub(crate) struct OwedAnnouncement {
    pub(crate) group_id: String,
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) topic: String,
}

/// The names owed, in channels this device is still a member of.
pub(crate) async fn owed_announcements(db: &mut SqliteConnection) -> Result<Vec<OwedAnnouncement>> {
    Ok(sqlx::query(
        "SELECT a.group_id, c.name, c.kind, c.topic FROM announcements a
         JOIN channels c ON c.group_id = a.group_id AND c.active = 1",
    )
    .fetch_all(&mut *db)
    .await?
    .iter()
    .map(|r| OwedAnnouncement {
        group_id: r.get(0),
        name: r.get(1),
        kind: r.get(2),
        topic: r.get(3),
    })
    .collect())
}

pub(crate) async fn announced(db: &mut SqliteConnection, group_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM announcements WHERE group_id = $1")
        .bind(group_id)
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// A history bundle handed to this account, to fetch.
pub(crate) struct Import {
    pub(crate) group_id: String,
    pub(crate) message_id: String,
    pub(crate) sender: String,
    /// The bundle's file reference, as JSON.
    pub(crate) reference: String,
}

pub(crate) async fn note_import(db: &mut SqliteConnection, import: &Import) -> Result<()> {
    sqlx::query(
        "INSERT OR IGNORE INTO history_imports (group_id, message_id, sender, reference)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(&import.group_id)
    .bind(&import.message_id)
    .bind(&import.sender)
    .bind(&import.reference)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// The bundles to fetch, in channels this device is still a member of.
pub(crate) async fn imports(db: &mut SqliteConnection) -> Result<Vec<Import>> {
    Ok(sqlx::query(
        "SELECT i.group_id, i.message_id, i.sender, i.reference FROM history_imports i
         JOIN channels c ON c.group_id = i.group_id AND c.active = 1",
    )
    .fetch_all(&mut *db)
    .await?
    .iter()
    .map(|r| Import {
        group_id: r.get(0),
        message_id: r.get(1),
        sender: r.get(2),
        reference: r.get(3),
    })
    .collect())
}

pub(crate) async fn imported(
    db: &mut SqliteConnection,
    group_id: &str,
    message_id: &str,
) -> Result<()> {
    sqlx::query("DELETE FROM history_imports WHERE group_id = $1 AND message_id = $2")
        .bind(group_id)
        .bind(message_id)
        .execute(&mut *db)
        .await?;
    Ok(())
}
