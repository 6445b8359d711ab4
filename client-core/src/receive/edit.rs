//! An edit: its author replaces a message's text (and what it mentions).
//! Only the author's own edit counts, and a deleted message stays deleted.

use sqlx::SqliteConnection;

use super::{Received, by_its_author};
use crate::content::mentions_in;
use crate::error::Result;
use crate::event::Event;
use crate::messaging::{attachment_of, entry, reindex};

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
    let changed = sqlx::query(
        "UPDATE history SET body = $3, edited = 1, mentions = $4
         WHERE group_id = $1 AND message_id = $2 AND deleted = 0",
    )
    .bind(group_id)
    .bind(&target)
    .bind(body)
    .bind(mentions_in(body).join(" "))
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !changed {
        return Ok(Vec::new());
    }
    // A file stays findable by its name as well as its new caption.
    let indexed = match attachment_of(tx, group_id, &target).await? {
        Some(file) => format!("{} {body}", file.name),
        None => body.to_owned(),
    };
    reindex(tx, group_id, seq_of_target, Some(&indexed)).await?;
    Ok(vec![Event::Edited(
        entry(tx, group_id, message.channel, &target).await?,
    )])
}
