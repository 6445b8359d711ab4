//! A reply in a thread. Threads are one level deep, as every client shows
//! them: a reply to a reply joins the thread of that reply's root.

use sqlx::SqliteConnection;

use super::{Received, new_message};
use crate::error::Result;
use crate::event::Event;
use crate::store::messages;

pub(super) async fn apply(
    tx: &mut SqliteConnection,
    message: &Received<'_>,
    parent: &str,
    body: &str,
    mentions: &[String],
) -> Result<Vec<Event>> {
    // A reply to a message this device never had still shows, at top level.
    let parent = messages::thread_root(tx, message.group_id, parent).await?;
    let added = message
        .insert(tx, "reply", parent.as_deref(), body, mentions)
        .await?;
    new_message(
        tx,
        message,
        added,
        mentions,
        Some((body, parent.as_deref())),
    )
    .await
}
