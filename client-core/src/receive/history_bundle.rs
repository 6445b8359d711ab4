//! A member handed a newcomer the channel's earlier history. Every member
//! sees a notice of it, and to whom; the recipient's devices note the
//! bundle, fetched and checked after the sync (see `history.rs`).

use sqlx::SqliteConnection;

use super::Received;
use crate::content::FileRef;
use crate::error::{ClientError, Result};
use crate::event::Event;

pub(super) async fn apply(
    tx: &mut SqliteConnection,
    message: &Received<'_>,
    recipient: &str,
    messages: u64,
    bundle: &FileRef,
) -> Result<Vec<Event>> {
    let notice =
        format!("shared the channel's earlier history ({messages} messages) with {recipient}");
    message.insert(tx, "notice", None, &notice, &[]).await?;
    if recipient == message.reader.user && message.by_someone_else() {
        let reference = serde_json::to_string(bundle).map_err(ClientError::store)?;
        sqlx::query(
            "INSERT OR IGNORE INTO history_imports (group_id, message_id, sender, reference)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(message.group_id)
        .bind(message.message_id)
        .bind(message.author.user)
        .bind(&reference)
        .execute(&mut *tx)
        .await?;
    }
    Ok(vec![Event::Message(message.entry(tx).await?)])
}
