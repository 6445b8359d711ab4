//! A shared file: its caption shows as the message, and its reference
//! (with the key) is kept for `download`. Found by its name as well as its
//! caption.

use sqlx::SqliteConnection;

use super::{Received, new_message};
use crate::content::{FileRef, mentions_in};
use crate::error::{ClientError, Result};
use crate::event::Event;
use crate::messaging::reindex;

pub(super) async fn apply(
    tx: &mut SqliteConnection,
    message: &Received<'_>,
    file: &FileRef,
) -> Result<Vec<Event>> {
    let mentions = mentions_in(&file.caption);
    message
        .insert(tx, "file", None, &file.caption, &mentions)
        .await?;
    let reference = serde_json::to_string(file).map_err(ClientError::store)?;
    sqlx::query("UPDATE history SET attachment = $3 WHERE group_id = $1 AND message_id = $2")
        .bind(message.group_id)
        .bind(message.message_id)
        .bind(&reference)
        .execute(&mut *tx)
        .await?;
    let indexed = format!("{} {}", file.name, file.caption);
    reindex(tx, message.group_id, message.seq, Some(&indexed)).await?;
    new_message(tx, message, &mentions, None).await
}
