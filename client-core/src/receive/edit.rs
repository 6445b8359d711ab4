//! An edit: its author replaces a message's text (and what it mentions).
//! Only the author's own edit counts, and a deleted message stays deleted.

use sqlx::SqliteConnection;

use super::{Received, by_its_author};
use crate::content::mentions_in;
use crate::error::Result;
use crate::event::Event;
use crate::store::messages;

pub(super) async fn apply(
    tx: &mut SqliteConnection,
    message: &Received<'_>,
    target: String,
    body: &str,
) -> Result<Vec<Event>> {
    let group_id = message.group_id;
    let Some(seq_of_target) = by_its_author(tx, message, &target, "an edit").await? else {
        return Ok(Vec::new());
    };
    if !messages::edit(tx, group_id, &target, body, &mentions_in(body)).await? {
        return Ok(Vec::new());
    }
    // A file stays findable by its name as well as its new caption.
    let indexed = match messages::attachment_of(tx, group_id, &target).await? {
        Some(file) => format!("{} {body}", file.name),
        None => body.to_owned(),
    };
    messages::reindex(tx, group_id, seq_of_target, Some(&indexed)).await?;
    Ok(vec![Event::Edited(
        messages::entry(tx, group_id, message.channel, &target).await?,
    )])
}
