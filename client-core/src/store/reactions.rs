//! The `reactions` table: which user put which emoji on which message.

use sqlx::{Row, SqliteConnection};

use crate::error::Result;
use crate::history_entry::{HistoryEntry, Reaction};

/// Adds (or with `add == false` takes back) `user`'s `emoji` on a message.
pub(crate) async fn set(
    db: &mut SqliteConnection,
    group_id: &str,
    message_id: &str,
    user: &str,
    emoji: &str,
    add: bool,
) -> Result<()> {
    let statement = if add {
        "INSERT OR IGNORE INTO reactions (group_id, message_id, username, emoji) VALUES ($1, $2, $3, $4)"
    } else {
        "DELETE FROM reactions WHERE group_id = $1 AND message_id = $2 AND username = $3 AND emoji = $4"
    };
    sqlx::query(statement)
        .bind(group_id)
        .bind(message_id)
        .bind(user)
        .bind(emoji)
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// Whether `user` put `emoji` on a message.
pub(crate) async fn given(
    db: &mut SqliteConnection,
    group_id: &str,
    message_id: &str,
    user: &str,
    emoji: &str,
) -> Result<bool> {
    Ok(sqlx::query(
        "SELECT 1 FROM reactions
         WHERE group_id = $1 AND message_id = $2 AND username = $3 AND emoji = $4",
    )
    .bind(group_id)
    .bind(message_id)
    .bind(user)
    .bind(emoji)
    .fetch_optional(&mut *db)
    .await?
    .is_some())
}

/// Takes every reaction off a message.
pub(crate) async fn clear(
    db: &mut SqliteConnection,
    group_id: &str,
    message_id: &str,
) -> Result<()> {
    sqlx::query("DELETE FROM reactions WHERE group_id = $1 AND message_id = $2")
        .bind(group_id)
        .bind(message_id)
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// Deletes the reactions on messages received before `cutoff`.
pub(super) async fn prune(db: &mut SqliteConnection, group_id: &str, cutoff: i64) -> Result<()> {
    sqlx::query(
        "DELETE FROM reactions WHERE group_id = $1 AND message_id IN
           (SELECT message_id FROM history WHERE group_id = $1 AND at < $2)",
    )
    .bind(group_id)
    .bind(cutoff)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Reactions on each of `entries`, filled in.
pub(super) async fn fill(
    db: &mut SqliteConnection,
    group_id: &str,
    mut entries: Vec<HistoryEntry>,
) -> Result<Vec<HistoryEntry>> {
    let rows = sqlx::query(
        "SELECT message_id, emoji, username FROM reactions WHERE group_id = $1
         ORDER BY message_id, emoji, username",
    )
    .bind(group_id)
    .fetch_all(&mut *db)
    .await?;
    for row in rows {
        let (id, emoji, user): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        if let Some(entry) = entries.iter_mut().find(|e| e.id == id) {
            add(entry, emoji, user);
        }
    }
    Ok(entries)
}

/// Reactions on one entry, filled in: read by its message id, not the
/// channel's every reaction (each message sent or received builds one).
pub(super) async fn fill_one(
    db: &mut SqliteConnection,
    group_id: &str,
    mut entry: HistoryEntry,
) -> Result<HistoryEntry> {
    let rows = sqlx::query(
        "SELECT emoji, username FROM reactions WHERE group_id = $1 AND message_id = $2
         ORDER BY emoji, username",
    )
    .bind(group_id)
    .bind(&entry.id)
    .fetch_all(&mut *db)
    .await?;
    for row in rows {
        add(&mut entry, row.get(0), row.get(1));
    }
    Ok(entry)
}

fn add(entry: &mut HistoryEntry, emoji: String, user: String) {
    match entry.reactions.iter_mut().find(|r| r.emoji == emoji) {
        Some(reaction) => reaction.users.push(user),
        None => entry.reactions.push(Reaction {
            emoji,
            users: vec![user],
        }),
    }
}
