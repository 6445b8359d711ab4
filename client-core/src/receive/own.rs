//! This device's own messages. MLS does not encrypt to oneself: when the
//! relay accepts a message (or echoes it back), the device applies the
//! plaintext it kept, matched by the ciphertext's hash.
//!
//! A send makes one local transaction, the durable one before its message
//! leaves (the MLS state that encrypted it and its outgoing row). The
//! relay's answer, the message's position, is noted in memory
//! ([`Accepted`]) and written by the next transaction on the store: the
//! next send's, in the same commit, or one that [`Client::db`] runs for
//! whoever takes the store first. So a send never waits for a second
//! transaction, and whatever reads the store after a send returned finds
//! the message in the history. If nothing takes the store, a timer records
//! it within [`RECORD_WITHIN`], so subscribers hear of it.
//!
//! Nothing is lost if the process ends first, or the machine loses power
//! before a recording reaches the disk: the outgoing row is on disk, and
//! the relay's copy of the message, fetched at the next sync, is applied
//! from it as here.

use std::sync::Arc;
use std::time::Duration;

use sqlx::SqliteConnection;
use tokio::sync::OwnedMutexGuard;

use super::{Author, Reader, Received, apply_content, apply_marked, text};
use crate::client::Client;
use crate::content::{Content, Decoded};
use crate::error::Result;
use crate::event::Event;
use crate::session::Accepted;
use crate::store::{self, pending};

/// How long an accepted send may wait for the next transaction before a
/// timer records it on its own: short enough that nobody sees the delay,
/// long enough that a client sending one message after another records
/// each in its next send's commit.
pub(crate) const RECORD_WITHIN: Duration = Duration::from_millis(5);

impl Client {
    /// The store, with every accepted send recorded in it first.
    pub(crate) async fn db(&self) -> OwnedMutexGuard<SqliteConnection> {
        let db = self.session.db.clone().lock_owned().await;
        if !self.session.has_accepted() {
            return db;
        }
        // A task of its own: a caller that stops waiting cannot leave the
        // store's later commits unflushed.
        let client = self.clone();
        let recorded = tokio::spawn(async move {
            let mut db = db;
            let accepted = client.session.take_accepted();
            match client.record_alone(&mut db, &accepted).await {
                Ok(events) => {
                    for event in events {
                        client.session.publish(event);
                    }
                }
                // Dropped, not kept: each still has its outgoing row, which
                // the next sync applies.
                Err(e) => tracing::warn!(
                    error = %e,
                    sends = accepted.len(),
                    "cannot record accepted sends now; the next sync applies them"
                ),
            }
            db
        })
        .await;
        match recorded {
            Ok(db) => db,
            // The task panicked and released the store on its way out.
            Err(_) => self.session.db.clone().lock_owned().await,
        }
    }

    /// The store as it is, accepted sends not recorded: for a send, whose
    /// transaction records them itself ([`Client::record_accepted`]).
    pub(crate) async fn db_for_send(&self) -> OwnedMutexGuard<SqliteConnection> {
        self.session.db.clone().lock_owned().await
    }

    /// Notes that the relay accepted a send, to be recorded by the next
    /// transaction, or by a timer within [`RECORD_WITHIN`].
    pub(crate) fn note_accepted(&self, accepted: Accepted) {
        // One timer for sends noted one after another: the first starts it.
        if self.session.note_accepted(accepted) {
            self.record_soon();
        }
    }

    /// Puts back accepted sends whose transaction did not commit, to be
    /// recorded as if just noted.
    pub(crate) fn restore_accepted(&self, taken: Vec<Accepted>) {
        if !taken.is_empty() {
            self.session.restore_accepted(taken);
            self.record_soon();
        }
    }

    /// Records whatever accepted sends still wait in [`RECORD_WITHIN`].
    fn record_soon(&self) {
        // A weak handle: the timer does not keep the session (and its
        // home's lock) alive after its last handle is dropped.
        let session = Arc::downgrade(&self.session);
        tokio::spawn(async move {
            tokio::time::sleep(RECORD_WITHIN).await;
            if let Some(session) = session.upgrade()
                && session.has_accepted()
            {
                drop(Client { session }.db().await);
            }
        });
    }

    /// Applies `accepted` inside `tx`, which the caller commits; the events
    /// to publish once it has.
    pub(crate) async fn record_accepted(
        &self,
        tx: &mut SqliteConnection,
        accepted: &[Accepted],
    ) -> Result<Vec<Event>> {
        let identity = self.identity()?;
        let me = identity.username.to_string();
        let device = identity.key.device_id().to_string();
        let mut events = Vec::new();
        for sent in accepted {
            let message = Received {
                group_id: &sent.group_id,
                channel: &sent.channel,
                seq: sent.seq,
                author: Author {
                    user: &me,
                    device: &device,
                },
                message_id: &sent.message_id,
                reader: Reader {
                    user: &me,
                    bot: identity.bot_owner.is_some(),
                },
            };
            let decoded = Content::decode(sent.plaintext.as_bytes());
            // A text message, the common case: its row taken, its id marked
            // and its history row written in one trip.
            if let Decoded::Known(Content::Text { body, mentions }) = &decoded {
                if let Some(applied) =
                    text::apply_own(tx, &message, &sent.hash, body, mentions).await?
                {
                    events.extend(applied);
                }
                continue;
            }
            // Anything else: the row and the id in one trip; the plaintext
            // is at hand.
            if !pending::take_outgoing_marking_seen(
                tx,
                &sent.hash,
                &sent.group_id,
                &sent.message_id,
                sent.seq,
            )
            .await?
            {
                continue;
            }
            events.extend(apply_marked(tx, &message, decoded).await?);
        }
        Ok(events)
    }

    /// `accepted` in a transaction of their own, which does not wait for
    /// the disk: the durable record of each is its outgoing row.
    async fn record_alone(
        &self,
        db: &mut SqliteConnection,
        accepted: &[Accepted],
    ) -> Result<Vec<Event>> {
        let applied = async {
            let mut tx = store::begin_unflushed(db).await?;
            let events = self.record_accepted(&mut tx, accepted).await?;
            tx.commit().await?;
            Ok(events)
        }
        .await;
        // Flushing again whatever happened above.
        store::restore_durable_commits(db).await?;
        applied
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
