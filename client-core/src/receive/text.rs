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

/// [`apply`] for this device's own text message, accepted by the relay,
/// with its outgoing row (`hash`) taken and its id marked seen in the same
/// trip as the history row: `None` if it was not marked (the echo came
/// first, or a replay), with nothing applied.
pub(super) async fn apply_own(
    tx: &mut SqliteConnection,
    message: &Received<'_>,
    hash: &str,
    body: &str,
    mentions: &[String],
) -> Result<Option<Vec<Event>>> {
    let Some(added) = message.insert_own(tx, hash, "text", body, mentions).await? else {
        return Ok(None);
    };
    Ok(Some(
        new_message(tx, message, added, mentions, Some((body, None))).await?,
    ))
}

pub(super) async fn apply_unsupported(
    tx: &mut SqliteConnection,
    message: &Received<'_>,
) -> Result<Vec<Event>> {
    let added = message.insert(tx, "unsupported", None, "", &[]).await?;
    Ok(vec![Event::Message(message.entry(tx, added).await?)])
}
