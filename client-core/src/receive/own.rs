//! This device's own messages. MLS does not encrypt to oneself: when the
//! relay accepts a message (or echoes it back), the device applies the
//! plaintext it kept, matched by the ciphertext's hash.

use sqlx::{Connection, SqliteConnection};

use super::{Author, Reader, Received, apply_content};
use crate::client::Client;
use crate::content::Content;
use crate::error::Result;
use crate::event::Event;
use crate::store::{channels, pending};

impl Client {
    /// Applies an own outgoing message to the history at `seq`, once the
    /// relay accepted it.
    pub(crate) async fn record_own(
        &self,
        db: &mut SqliteConnection,
        group_id: &str,
        seq: u64,
        hash: &str,
    ) -> Result<Vec<Event>> {
        let mut tx = db.begin().await?;
        let events = self.apply_own(&mut tx, group_id, seq, hash).await?;
        tx.commit().await?;
        Ok(events.unwrap_or_default())
    }

    /// Takes the outgoing row of ciphertext `hash` and applies its content
    /// as this device's message at `seq`; `None` if there is no such row.
    pub(super) async fn apply_own(
        &self,
        tx: &mut SqliteConnection,
        group_id: &str,
        seq: u64,
        hash: &str,
    ) -> Result<Option<Vec<Event>>> {
        let identity = self.identity()?;
        let Some((plaintext, message_id)) = pending::take_outgoing(tx, hash).await? else {
            return Ok(None);
        };
        let channel = channels::name(tx, group_id).await?;
        let me = identity.username.to_string();
        let device = identity.key.device_id().to_string();
        let message = Received {
            group_id,
            channel: &channel,
            seq,
            author: Author {
                user: &me,
                device: &device,
            },
            message_id: &message_id,
            reader: Reader {
                user: &me,
                bot: identity.bot_owner.is_some(),
            },
        };
        apply_content(tx, &message, Content::decode(plaintext.as_bytes()))
            .await
            .map(Some)
    }
}
