//! This device's own messages. MLS does not encrypt to oneself: when the
//! relay accepts a message (or echoes it back), the device applies the
//! plaintext it kept, matched by the ciphertext's hash.

use sqlx::SqliteConnection;

use super::{Author, Reader, Received, apply_content};
use crate::client::Client;
use crate::content::Content;
use crate::error::{ClientError, Result};
use crate::event::Event;
use crate::store::{self, pending};

impl Client {
    /// Applies an own outgoing message to the history at `seq`, once the
    /// relay accepted it.
    ///
    /// Its commit does not wait for the disk: a send's one durable write is
    /// the one before the message left (its MLS state and outgoing row).
    /// Should the machine lose power before this commit reaches the disk,
    /// the outgoing row is still there, and the relay's copy of the message,
    /// fetched at the next sync, is applied from it as here. It runs as a
    /// task of its own, so a caller that stops waiting cannot leave the
    /// store's later commits unflushed.
    pub(crate) async fn record_own(
        &self,
        group_id: &str,
        channel: &str,
        seq: u64,
        hash: &str,
    ) -> Result<Vec<Event>> {
        let client = self.clone();
        let (group_id, channel, hash) = (group_id.to_owned(), channel.to_owned(), hash.to_owned());
        let recorded = tokio::spawn(async move {
            let mut db = client.session.db.lock().await;
            let applied = async {
                let mut tx = store::begin_unflushed(&mut db).await?;
                let events = client
                    .apply_own(&mut tx, &group_id, &channel, seq, &hash)
                    .await?;
                tx.commit().await?;
                Ok::<_, ClientError>(events.unwrap_or_default())
            }
            .await;
            // Flushing again whatever happened above.
            store::restore_durable_commits(&mut db).await?;
            applied
        });
        recorded
            .await
            .map_err(|e| ClientError::store(format!("recording a sent message: {e}")))?
    }

    /// Takes the outgoing row of ciphertext `hash` and applies its content
    /// as this device's message at `seq` in `channel` (by name); `None` if
    /// there is no such row.
    pub(super) async fn apply_own(
        &self,
        tx: &mut SqliteConnection,
        group_id: &str,
        channel: &str,
        seq: u64,
        hash: &str,
    ) -> Result<Option<Vec<Event>>> {
        let identity = self.identity()?;
        let Some((plaintext, message_id)) = pending::take_outgoing(tx, hash).await? else {
            return Ok(None);
        };
        let me = identity.username.to_string();
        let device = identity.key.device_id().to_string();
        let message = Received {
            group_id,
            channel,
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
