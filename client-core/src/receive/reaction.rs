//! A reaction added or taken back: it counts only on a message of the
//! same channel that this device has.

use sqlx::SqliteConnection;

use super::Received;
use crate::error::Result;
use crate::event::Event;
use crate::messaging::find;

pub(super) async fn apply(
    tx: &mut SqliteConnection,
    message: &Received<'_>,
    target: String,
    emoji: String,
    add: bool,
) -> Result<Vec<Event>> {
    let group_id = message.group_id;
    if find(tx, group_id, &target).await?.is_none() {
        tracing::debug!(group = %group_id, seq = message.seq, "reaction to an unknown message ignored");
        return Ok(Vec::new());
    }
    let statement = if add {
        "INSERT OR IGNORE INTO reactions (group_id, message_id, username, emoji) VALUES ($1, $2, $3, $4)"
    } else {
        "DELETE FROM reactions WHERE group_id = $1 AND message_id = $2 AND username = $3 AND emoji = $4"
    };
    sqlx::query(statement)
        .bind(group_id)
        .bind(&target)
        .bind(message.author.user)
        .bind(&emoji)
        .execute(&mut *tx)
        .await?;
    Ok(vec![Event::Reacted {
        channel: message.channel.to_owned(),
        message_id: target,
        user: message.author.user.to_owned(),
        emoji,
        added: add,
    }])
}
