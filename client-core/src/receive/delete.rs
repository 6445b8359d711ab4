//! A delete: its author takes a message back. Every member keeps a
//! tombstone (no text, no mentions, no file, no reactions) in its place.

use sqlx::SqliteConnection;

use super::{Received, by_its_author};
use crate::error::Result;
use crate::event::Event;
use crate::messaging::reindex;

pub(super) async fn apply(
    tx: &mut SqliteConnection,
    message: &Received<'_>,
    target: String,
) -> Result<Vec<Event>> {
    let group_id = message.group_id;
    let Some(seq_of_target) = by_its_author(tx, message, &target, "a delete").await? else {
        return Ok(Vec::new());
    };
    sqlx::query(
        "UPDATE history SET body = '', deleted = 1, mentions = '', attachment = NULL
         WHERE group_id = $1 AND message_id = $2",
    )
    .bind(group_id)
    .bind(&target)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM reactions WHERE group_id = $1 AND message_id = $2")
        .bind(group_id)
        .bind(&target)
        .execute(&mut *tx)
        .await?;
    reindex(tx, group_id, seq_of_target, None).await?;
    Ok(vec![Event::Deleted {
        channel: message.channel.to_owned(),
        message_id: target,
    }])
}
