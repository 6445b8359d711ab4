//! A member handed a newcomer the channel's earlier history. Every member
//! sees a notice of it, and to whom; the recipient's devices note the
//! bundle, fetched and checked after the sync (see `history.rs`).

use sqlx::SqliteConnection;

use super::Received;
use crate::content::FileRef;
use crate::error::{ClientError, Result};
use crate::event::Event;
use crate::store::pending;

pub(super) async fn apply(
    tx: &mut SqliteConnection,
    message: &Received<'_>,
    recipient: &str,
    messages: u64,
    bundle: &FileRef,
) -> Result<Vec<Event>> {
    let notice =
        format!("shared the channel's earlier history ({messages} messages) with {recipient}");
    let added = message.insert(tx, "notice", None, &notice, &[]).await?;
    if recipient == message.reader.user && message.by_someone_else() {
        let reference = serde_json::to_string(bundle).map_err(ClientError::store)?;
        let import = pending::Import {
            group_id: message.group_id.to_owned(),
            message_id: message.message_id.to_owned(),
            sender: message.author.user.to_owned(),
            reference,
        };
        pending::note_import(tx, &import).await?;
    }
    Ok(vec![Event::Message(message.entry(tx, added).await?)])
}
