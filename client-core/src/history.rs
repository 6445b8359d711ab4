//! History for new members. MLS gives a newcomer no key to what was said
//! before it joined; where a channel allows it (its creator or an admin
//! decides, and the relay enforces it), a member can hand a newcomer the
//! earlier history as a sealed bundle:
//!
//! 1. the member's client seals the bundle (JSON) like a file, and uploads
//!    it for that one recipient: the relay refuses unless the channel allows
//!    sharing, records the grant in the audit log (`history_shared`), and
//!    serves the chunks to the recipient's devices only;
//! 2. a `history_bundle` message inside MLS carries the key and hash, so
//!    every member sees that history was shared, and with whom;
//! 3. the recipient's devices fetch and check it, and add the messages they
//!    lack, each marked with who shared it: a bundle is as trustworthy as
//!    the member who sent it, and the UI says so.
//!
//! A bundle carries text, threads, edits, reactions and files: a file's key
//! and hash travel inside the sealed bundle, and the newcomer, now a member,
//! fetches its ciphertext from the relay as any member does. Deleted
//! messages are left out.

use conclave_proto::{HistorySharingAnswer, HistorySharingBody, routes};
use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::client::Client;
use crate::content::{Content, FileRef};
use crate::error::{ClientError, Result};
use crate::event::Event;
use crate::store::{channels, messages, pending, reactions};

/// Most messages one bundle carries (the latest ones).
pub const MAX_BUNDLE_MESSAGES: usize = 10_000;

/// Largest bundle a device accepts, in bytes.
const MAX_BUNDLE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
struct Bundle {
    v: u32,
    messages: Vec<BundledMessage>,
}

#[derive(Serialize, Deserialize)]
struct BundledMessage {
    seq: u64,
    id: String,
    sender: String,
    device: String,
    text: String,
    #[serde(default)]
    parent: Option<String>,
    at: u64,
    #[serde(default)]
    edited: bool,
    /// Each emoji on it, with who put it there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    reactions: Vec<BundledReaction>,
    /// The file it shares (with its key), if any; `text` is its caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<FileRef>,
}

#[derive(Serialize, Deserialize)]
struct BundledReaction {
    emoji: String,
    users: Vec<String>,
}

impl Client {
    /// Fetches the history bundles handed to this account and adds what they
    /// hold. A bundle that fails its checks is dropped with a warning.
    pub(crate) async fn import_shared_history(&self) -> Result<Vec<Event>> {
        let pending = {
            let mut db = self.db().await;
            pending::imports(&mut db).await?
        };
        let mut events = Vec::new();
        for import in pending {
            let pending::Import {
                group_id,
                message_id,
                sender,
                reference,
            } = import;
            let outcome = async {
                let reference: FileRef =
                    serde_json::from_str(&reference).map_err(ClientError::store)?;
                let bytes = zeroize::Zeroizing::new(
                    self.download_to_memory(&reference, MAX_BUNDLE_BYTES)
                        .await?,
                );
                let bundle: Bundle = serde_json::from_slice(&bytes)
                    .map_err(|e| ClientError::FileCheck(format!("history bundle: {e}")))?;
                self.add_shared(&group_id, &sender, bundle).await
            }
            .await;
            match outcome {
                Ok(Some(event)) => events.push(event),
                Ok(None) => {}
                // The relay could not be reached: keep it for the next sync.
                Err(ClientError::Transport(e)) => {
                    tracing::debug!(error = %e, "history bundle postponed");
                    continue;
                }
                Err(e) => tracing::warn!(group = %group_id, error = %e, "history bundle dropped"),
            }
            let mut db = self.db().await;
            pending::imported(&mut db, &group_id, &message_id).await?;
        }
        Ok(events)
    }

    async fn add_shared(
        &self,
        group_id: &str,
        from: &str,
        bundle: Bundle,
    ) -> Result<Option<Event>> {
        if bundle.v != 1 {
            return Err(ClientError::FileCheck(
                "a history bundle of a newer version".into(),
            ));
        }
        let mut db = self.db().await;
        let mut tx = sqlx::Connection::begin(&mut *db).await?;
        let channel = channels::name(&mut tx, group_id).await?;
        let (mut added, mut newest) = (0u64, 0u64);
        for message in bundle.messages.iter().take(MAX_BUNDLE_MESSAGES) {
            let file_fine = message
                .file
                .as_ref()
                .is_none_or(|file| Content::File(file.clone()).is_well_formed());
            let fine = crate::content::is_message_id(&message.id)
                && conclave_crypto::Username::parse(&message.sender).is_ok()
                && (!message.text.is_empty() || message.file.is_some())
                && message.text.len() <= crate::content::MAX_BODY
                && file_fine;
            if !fine {
                continue;
            }
            let row = messages::SharedRow {
                group_id,
                seq: message.seq,
                sender: &message.sender,
                device: &message.device,
                message_id: &message.id,
                parent: message.parent.as_deref(),
                body: &message.text,
                at: message.at,
                edited: message.edited,
                shared_by: from,
                file: message.file.as_ref(),
            };
            // Messages this device has (or had) stay as MLS delivered them.
            let inserted = messages::insert_shared(&mut tx, &row).await?;
            if inserted {
                added += 1;
                newest = newest.max(message.seq);
                for reaction in &message.reactions {
                    if !crate::content::is_reaction(&reaction.emoji) {
                        continue;
                    }
                    for user in &reaction.users {
                        if conclave_crypto::Username::parse(user).is_err() {
                            continue;
                        }
                        reactions::set(&mut tx, group_id, &message.id, user, &reaction.emoji, true)
                            .await?;
                    }
                }
            }
        }
        // Earlier messages are not unread.
        if added > 0 {
            channels::move_read(&mut tx, group_id, newest).await?;
        }
        tx.commit().await?;
        Ok((added > 0).then(|| Event::HistoryReceived {
            channel,
            group_id: group_id.to_owned(),
            from: from.to_owned(),
            added,
        }))
    }
}

impl Channel {
    /// Lets the channel's members hand new members its earlier history, or
    /// stops them (the channel's creator or a workspace admin).
    pub async fn set_history_sharing(&self, allowed: bool) -> Result<()> {
        let group_id = self.active_group().await?;
        let _: HistorySharingAnswer = self
            .client
            .exchange(
                "POST",
                &routes::group_history_sharing(group_id),
                &HistorySharingBody { allowed },
            )
            .await?;
        Ok(())
    }

    /// Hands `user` (a member of the channel) the channel's history as this
    /// device has it, up to [`MAX_BUNDLE_MESSAGES`] of the latest messages.
    /// Returns how many went. The relay records the grant; every member sees it.
    pub async fn share_history(&self, user: &str) -> Result<u64> {
        let me = self.client.identity()?.username.to_string();
        if user == me {
            return Err(ClientError::Invalid(
                "share history with someone else".into(),
            ));
        }
        if !self.members().await?.iter().any(|m| m.user == user) {
            return Err(ClientError::NotAMember(
                user.to_owned(),
                self.name().to_owned(),
            ));
        }
        let group_id = self.active_group().await?;
        let history = self.history().await?;
        let mut messages: Vec<BundledMessage> = Vec::new();
        for e in history {
            if e.deleted || e.unsupported || (e.text.is_empty() && e.file.is_none()) {
                continue;
            }
            let file = match e.file {
                Some(_) => {
                    let mut db = self.client.db().await;
                    messages::attachment_of(&mut db, group_id, &e.id).await?
                }
                None => None,
            };
            messages.push(BundledMessage {
                seq: e.seq,
                id: e.id,
                sender: e.sender,
                device: e.device,
                text: e.text,
                parent: e.parent,
                at: e.at,
                edited: e.edited,
                reactions: e
                    .reactions
                    .into_iter()
                    .map(|r| BundledReaction {
                        emoji: r.emoji,
                        users: r.users,
                    })
                    .collect(),
                file,
            });
        }
        if messages.len() > MAX_BUNDLE_MESSAGES {
            messages.drain(..messages.len() - MAX_BUNDLE_MESSAGES);
        }
        let count = messages.len() as u64;
        if count == 0 {
            return Err(ClientError::Invalid(format!(
                "{} has no history on this device to share",
                self.name()
            )));
        }
        let bytes = zeroize::Zeroizing::new(
            serde_json::to_vec(&Bundle { v: 1, messages }).map_err(ClientError::store)?,
        );
        let bundle = self
            .client
            .upload_for(group_id, "history.json", &bytes, user)
            .await?;
        let blob = bundle.blob.clone();
        let sent = self
            .send_content(Content::HistoryBundle {
                recipient: user.to_owned(),
                messages: count,
                bundle,
            })
            .await;
        if let Err(e) = sent {
            // Never announced: nobody should keep the ciphertext.
            self.client.forget_blob(&blob).await;
            return Err(e);
        }
        Ok(count)
    }
}
