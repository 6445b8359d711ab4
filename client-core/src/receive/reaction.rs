//! A reaction added or taken back: it counts only on a message of the
//! same channel that this device has.

use sqlx::SqliteConnection;

use super::Received;
use crate::error::Result;
use crate::event::Event;
use crate::store::{messages, reactions};

pub(super) async fn apply(
    tx: &mut SqliteConnection,
    message: &Received<'_>,
    target: String,
    emoji: String,
    add: bool,
) -> Result<Vec<Event>> {
    let group_id = message.group_id;
    if messages::find(tx, group_id, &target).await?.is_none() {
        tracing::debug!(group = %group_id, seq = message.seq, "reaction to an unknown message ignored");
        return Ok(Vec::new());
    }
    reactions::set(tx, group_id, &target, message.author.user, &emoji, add).await?;
    Ok(vec![Event::Reacted {
        channel: message.channel.to_owned(),
        group_id: group_id.to_owned(),
        message_id: target,
        user: message.author.user.to_owned(),
        emoji,
        added: add,
    }])
}
