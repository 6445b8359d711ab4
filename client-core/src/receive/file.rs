//! A shared file: its caption shows as the message, and its reference
//! (with the key) is kept for `download`. Found by its name as well as its
//! caption.

use sqlx::SqliteConnection;

use super::{Received, new_message};
use crate::content::{FileRef, mentions_in};
use crate::error::Result;
use crate::event::Event;
use crate::store::messages;

pub(super) async fn apply(
    tx: &mut SqliteConnection,
    message: &Received<'_>,
    file: &FileRef,
) -> Result<Vec<Event>> {
    let mentions = mentions_in(&file.caption);
    message
        .insert(tx, "file", None, &file.caption, &mentions)
        .await?;
    messages::set_attachment(tx, message.group_id, message.message_id, file).await?;
    let indexed = format!("{} {}", file.name, file.caption);
    messages::reindex(tx, message.group_id, message.seq, Some(&indexed)).await?;
    // Read back: the attachment was set after the row was added.
    new_message(tx, message, None, &mentions, None).await
}
