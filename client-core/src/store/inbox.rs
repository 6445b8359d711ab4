//! The inbox: messages addressed to this account's handlers (a command
//! routed to it, or, for a bot, what others say in its channels), waiting
//! to be answered.
//!
//! The receive path writes an entry in the transaction that stores the
//! message, before the relay hears it arrived, so nothing addressed to the
//! account is lost to a crash, whether or not its handlers run just then.
//! Whoever answers (the bot SDK) reads entries oldest first and removes
//! each once answered. Neither side knows the other: both know this table.

use rand::RngCore;
use sqlx::{Row, SqliteConnection};

use crate::error::Result;

/// A message for the account's handlers, as the receive path files it.
pub(crate) struct Addressed<'a> {
    pub(crate) group_id: &'a str,
    pub(crate) message_id: &'a str,
    pub(crate) sender: &'a str,
    /// The command, without its slash; `None` for a plain message.
    pub(crate) command: Option<&'a str>,
    /// The command's arguments, or the message's text.
    pub(crate) body: &'a str,
    /// The thread it was said in, if any.
    pub(crate) parent: Option<&'a str>,
}

/// An entry waiting in the inbox.
pub(crate) struct Waiting {
    pub(crate) id: i64,
    pub(crate) group_id: String,
    /// The channel's local name.
    pub(crate) channel: String,
    pub(crate) message_id: String,
    pub(crate) sender: String,
    pub(crate) command: Option<String>,
    pub(crate) body: String,
    pub(crate) parent: Option<String>,
    /// A random key of this entry, from which its answers' ids derive.
    pub(crate) reply_key: String,
}

/// Files `message` (once: a redelivered message is already there).
pub(crate) async fn push(tx: &mut SqliteConnection, message: &Addressed<'_>) -> Result<()> {
    let mut key = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut key);
    sqlx::query(
        "INSERT OR IGNORE INTO bot_inbox
             (group_id, message_id, sender, command, body, parent_id, reply_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(message.group_id)
    .bind(message.message_id)
    .bind(message.sender)
    .bind(message.command)
    .bind(message.body)
    .bind(message.parent)
    .bind(hex::encode(key))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The oldest entry, if any.
pub(crate) async fn oldest(db: &mut SqliteConnection) -> Result<Option<Waiting>> {
    let row = sqlx::query(
        "SELECT b.id, b.group_id, b.message_id, b.sender, b.command, b.body, b.parent_id,
                b.reply_key, c.name
         FROM bot_inbox b JOIN channels c ON c.group_id = b.group_id
         ORDER BY b.id LIMIT 1",
    )
    .fetch_optional(&mut *db)
    .await?;
    Ok(row.map(|row| Waiting {
        id: row.get(0),
        group_id: row.get(1),
        message_id: row.get(2),
        sender: row.get(3),
        command: row.get(4),
        body: row.get(5),
        parent: row.get(6),
        reply_key: row.get(7),
        channel: row.get(8),
    }))
}

/// Removes an answered entry.
pub(crate) async fn remove(db: &mut SqliteConnection, id: i64) -> Result<()> {
    sqlx::query("DELETE FROM bot_inbox WHERE id = $1")
        .bind(id)
        .execute(&mut *db)
        .await?;
    Ok(())
}
