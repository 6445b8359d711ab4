//! Plain text, and content of a kind this client does not know: shown as
//! "unsupported message", never an error, so newer clients can add kinds.

use sqlx::SqliteConnection;

use super::{Received, new_message};
use crate::error::Result;
use crate::event::Event;

pub(super) async fn apply(
    tx: &mut SqliteConnection,
    message: &Received<'_>,
    body: &str,
    mentions: &[String],
) -> Result<Vec<Event>> {
    let added = message.insert(tx, "text", None, body, mentions).await?;
    new_message(tx, message, added, mentions, Some((body, None))).await
}

pub(super) async fn apply_unsupported(
    tx: &mut SqliteConnection,
    message: &Received<'_>,
) -> Result<Vec<Event>> {
    let added = message.insert(tx, "unsupported", None, "", &[]).await?;
    Ok(vec![Event::Message(message.entry(tx, added).await?)])
}
