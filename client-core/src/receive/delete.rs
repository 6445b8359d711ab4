//! A delete: its author takes a message back. Every member keeps a
//! tombstone (no text, no mentions, no file, no reactions) in its place.

use sqlx::SqliteConnection;

use super::{Received, by_its_author};
use crate::error::Result;
use crate::event::Event;
use crate::store::{messages, reactions};

pub(super) async fn apply(
    tx: &mut SqliteConnection,
    message: &Received<'_>,
    target: String,
) -> Result<Vec<Event>> {
    let group_id = message.group_id;
    let Some(seq_of_target) = by_its_author(tx, message, &target, "a delete").await? else {
        return Ok(Vec::new());
    };
    messages::tombstone(tx, group_id, &target).await?;
    reactions::clear(tx, group_id, &target).await?;
    messages::reindex(tx, group_id, seq_of_target, None).await?;
    Ok(vec![Event::Deleted {
        channel: message.channel.to_owned(),
        group_id: group_id.to_owned(),
        message_id: target,
    }])
}
