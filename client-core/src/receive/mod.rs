//! The receive path: what a message the relay delivered does to this
//! device's state.
//!
//! [`Client::process`] takes each delivered message in a transaction of its
//! own, which also moves the channel's cursor: a crash leaves the message
//! either unprocessed or fully applied. A Welcome joins a channel
//! (`welcome.rs`); anything else is decrypted or merged by openmls. A commit
//! changes who is in the channel (`commit.rs`); an application message
//! is dispatched on its content kind ([`apply_content`]), one file per kind:
//!
//! | content | file |
//! |---|---|
//! | text, and kinds this client does not know | `text.rs` |
//! | a reply in a thread | `reply.rs` |
//! | a reaction added or taken back | `reaction.rs` |
//! | an edit | `edit.rs` |
//! | a delete | `delete.rs` |
//! | the channel's name, a rename, its topic | `channel_info.rs` |
//! | a shared file | `file.rs` |
//! | a slash command | `command.rs` |
//! | a member's handover of earlier history | `history_bundle.rs` |
//! | a read position from another own device | `read_up_to.rs` |
//!
//! This device's own messages come back undecryptable (MLS does not encrypt
//! to oneself) and are matched by hash to what it sent (`own.rs`).
//!
//! Every rule is enforced by each receiver on its own: an edit or a delete
//! counts only from the author of the message it names, a reaction only on
//! a message of the same channel, and a message id seen before in a channel
//! is a replay and is dropped.

mod channel_info;
mod command;
mod commit;
mod delete;
mod edit;
mod file;
mod history_bundle;
mod own;
mod reaction;
mod read_up_to;
mod reply;
mod text;
mod welcome;

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_crypto::{DeviceCredential, sha256_hex};
use conclave_proto::{Delivered, MessageKind};
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::*;
use sqlx::{Connection, SqliteConnection};

use crate::client::Client;
use crate::content::{Content, Decoded, message_id_from_aad};
use crate::error::{ClientError, Result};
use crate::event::Event;
use crate::group::users_of;
use crate::history_entry::HistoryEntry;
use crate::store::{TxProvider, channels, inbox, messages, pending};
use crate::transport::unix_now;

/// Who sent a message, as its MLS credential says.
pub(crate) struct Author<'a> {
    pub(crate) user: &'a str,
    pub(crate) device: &'a str,
}

/// Who is reading: this device's account, and whether it is a bot (a bot's
/// inbox gets the messages its handlers answer).
pub(crate) struct Reader<'a> {
    pub(crate) user: &'a str,
    pub(crate) bot: bool,
}

/// One received (or own, accepted) message, as the file of its kind
/// applies it.
pub(crate) struct Received<'a> {
    pub(crate) group_id: &'a str,
    /// The channel's local name.
    pub(crate) channel: &'a str,
    /// Its position in the channel.
    pub(crate) seq: u64,
    pub(crate) author: Author<'a>,
    pub(crate) message_id: &'a str,
    pub(crate) reader: Reader<'a>,
}

impl Received<'_> {
    /// Sent by someone other than this account.
    fn by_someone_else(&self) -> bool {
        self.author.user != self.reader.user
    }

    /// Its history row of `kind`, received now.
    fn history_row<'a>(
        &'a self,
        kind: &'a str,
        parent: Option<&'a str>,
        body: &'a str,
        mentions: &'a [String],
    ) -> messages::NewRow<'a> {
        messages::NewRow {
            group_id: self.group_id,
            seq: self.seq,
            sender: self.author.user,
            device: self.author.device,
            message_id: self.message_id,
            kind,
            parent,
            body,
            mentions,
            at: unix_now(),
        }
    }

    /// Adds it to the history as a row of `kind`, received now; its entry
    /// as added, or `None` if a row was already at its place.
    async fn insert(
        &self,
        tx: &mut SqliteConnection,
        kind: &str,
        parent: Option<&str>,
        body: &str,
        mentions: &[String],
    ) -> Result<Option<HistoryEntry>> {
        let row = self.history_row(kind, parent, body, mentions);
        let added = messages::insert(tx, &row).await?;
        Ok(added.then(|| messages::added_entry(&row, self.channel)))
    }

    /// [`Received::insert`] for this device's own message whose outgoing
    /// row (`hash`) is taken in the same trip, its id marked seen
    /// (`messages::insert_own`): `None` if it was not marked (nothing
    /// to apply), else what `insert` returns.
    async fn insert_own(
        &self,
        tx: &mut SqliteConnection,
        hash: &str,
        kind: &str,
        body: &str,
        mentions: &[String],
    ) -> Result<Option<Option<HistoryEntry>>> {
        let row = self.history_row(kind, None, body, mentions);
        Ok(match messages::insert_own(tx, hash, &row).await? {
            messages::OwnInsert::NotMarked => None,
            messages::OwnInsert::Marked { added } => {
                Some(added.then(|| messages::added_entry(&row, self.channel)))
            }
        })
    }

    /// Its history entry, as it now stands: `added` by `insert` if nothing
    /// changed it since, else read.
    async fn entry(
        &self,
        tx: &mut SqliteConnection,
        added: Option<HistoryEntry>,
    ) -> Result<HistoryEntry> {
        match added {
            Some(entry) => Ok(entry),
            None => messages::entry(tx, self.group_id, self.channel, self.message_id).await,
        }
    }
}

impl Client {
    /// Processes a batch the relay delivered, in order, and tells
    /// subscribers what happened.
    pub(crate) async fn process(&self, batch: &[Delivered]) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        let mut db = self.db().await;
        for delivered in batch {
            if delivered.kind != MessageKind::Application {
                // A commit or Welcome may change who is in the group.
                let mut checked = self.session.members_checked();
                checked.0 += 1;
                checked.1.remove(&delivered.group_id);
            }
            let mut tx = db.begin().await?;
            let (produced, group) = self.process_one(&mut tx, delivered).await?;
            match group {
                // Kept for the next message or send in the channel.
                Some(group) => {
                    self.session
                        .groups
                        .commit_and_keep(tx, &delivered.group_id, group)
                        .await?
                }
                None => tx.commit().await?,
            }
            // The group of this account's own devices is no channel the
            // user knows of: its events serve upkeep only (see
            // `without_own_devices_group`), but alerts always go out.
            // (Asked only when there is something to show: most deliveries
            // of a busy channel produce one event, many produce none.)
            let shown = produced.is_empty()
                || channels::kind_of(&mut db, &delivered.group_id)
                    .await?
                    .as_deref()
                    != Some("self");
            for event in &produced {
                if shown || event.channel().is_none() {
                    self.session.publish(event.clone());
                }
            }
            events.extend(produced);
        }
        drop(db);
        // What members gossiped in this batch, compared with this device's
        // view of the log.
        self.check_gossip().await;
        Ok(events)
    }

    /// What `delivered` did, and the channel's group if openmls used it
    /// without an error (to keep once `tx` commits).
    async fn process_one(
        &self,
        tx: &mut SqliteConnection,
        delivered: &Delivered,
    ) -> Result<(Vec<Event>, Option<MlsGroup>)> {
        let payload = STANDARD
            .decode(&delivered.payload)
            .map_err(|_| ClientError::Mls("relay sent a payload that is not base64".into()))?;
        let channel = channels::cursor(tx, &delivered.group_id).await?;
        if delivered.kind == MessageKind::Welcome {
            let events = match channel {
                Some(cursor) if cursor.active => Vec::new(), // already joined (a redelivery)
                // Removed earlier and invited again: a new membership.
                Some(cursor) => {
                    self.join_from_welcome(tx, delivered, &payload, Some(cursor.name))
                        .await?
                }
                None => {
                    self.join_from_welcome(tx, delivered, &payload, None)
                        .await?
                }
            };
            return Ok((events, None));
        }
        let Some(cursor) = channel.filter(|cursor| cursor.active) else {
            return Ok((Vec::new(), None)); // not (or no longer) ours
        };
        if delivered.seq <= cursor.processed_seq {
            return Ok((Vec::new(), None)); // redelivered after a crash before the ack
        }
        let applied = self.apply(tx, delivered, &payload, &cursor.name).await?;
        channels::set_processed(tx, &delivered.group_id, delivered.seq).await?;
        Ok(applied)
    }

    /// Decrypts (or merges) one message of a channel this device is in and
    /// applies what it carries; the group too, unless openmls failed on it.
    async fn apply(
        &self,
        tx: &mut SqliteConnection,
        delivered: &Delivered,
        payload: &[u8],
        name: &str,
    ) -> Result<(Vec<Event>, Option<MlsGroup>)> {
        let group_id = delivered.group_id.as_str();
        if messages::seen_at(tx, group_id, delivered.seq).await? {
            // Our own message, recorded when the relay accepted it.
            return Ok((Vec::new(), None));
        }
        let hash = sha256_hex(payload);
        let own_commit = pending::pending_commit(tx, group_id).await?;
        let mut outcome = Outcome::Nothing;
        let mut group = self
            .session
            .groups
            .take(tx, &self.session.crypto, group_id)
            .await?;
        // A group openmls failed on may hold changes its store does not:
        // it is loaded again next time, not kept.
        let mut failed = false;
        {
            let provider = TxProvider::new(&self.session.crypto, tx);
            let before = users_of(&group);
            if delivered.kind == MessageKind::Commit && own_commit.as_deref() == Some(hash.as_str())
            {
                group
                    .merge_pending_commit(&provider)
                    .map_err(ClientError::mls)?;
                outcome = Outcome::Membership {
                    before,
                    after: users_of(&group),
                    self_removed: false,
                    own: true,
                };
            } else {
                if delivered.kind == MessageKind::Commit && group.pending_commit().is_some() {
                    // Another member's commit won this epoch: ours is void.
                    group
                        .clear_pending_commit(provider.storage())
                        .map_err(ClientError::mls)?;
                }
                let processed = MlsMessageIn::tls_deserialize_exact(payload)
                    .map_err(ClientError::mls)
                    .and_then(|m| m.try_into_protocol_message().map_err(ClientError::mls))
                    .and_then(|m| {
                        group
                            .process_message(&provider, m)
                            .map_err(ClientError::mls)
                    });
                match processed {
                    Ok(processed) => {
                        let sender = DeviceCredential::from_mls(processed.credential())
                            .map_err(ClientError::mls)?;
                        let aad = processed.aad().to_vec();
                        match processed.into_content() {
                            ProcessedMessageContent::ApplicationMessage(app) => {
                                outcome = Outcome::Application(sender, app.into_bytes(), aad);
                            }
                            ProcessedMessageContent::StagedCommitMessage(staged) => {
                                let self_removed = staged.self_removed();
                                group
                                    .merge_staged_commit(&provider, *staged)
                                    .map_err(ClientError::mls)?;
                                outcome = Outcome::Membership {
                                    before,
                                    after: users_of(&group),
                                    self_removed,
                                    own: false,
                                };
                            }
                            ProcessedMessageContent::ProposalMessage(proposal) => {
                                group
                                    .store_pending_proposal(provider.storage(), *proposal)
                                    .map_err(ClientError::mls)?;
                            }
                            // openmls reports our own echoed ciphertext as Ok, not as an
                            // error: match it to the outgoing row by hash below.
                            ProcessedMessageContent::OwnPrivateMessage => {
                                outcome = Outcome::Undecryptable("our own message".into());
                            }
                            // Our commit, recognised by openmls even if its hash record was lost.
                            ProcessedMessageContent::OwnPendingCommit => {
                                group
                                    .merge_pending_commit(&provider)
                                    .map_err(ClientError::mls)?;
                                outcome = Outcome::Membership {
                                    before,
                                    after: users_of(&group),
                                    self_removed: false,
                                    own: true,
                                };
                            }
                            other => {
                                tracing::warn!(group = %group_id, seq = delivered.seq, kind = ?std::mem::discriminant(&other), "unexpected MLS content skipped");
                            }
                        }
                    }
                    Err(e) if delivered.kind == MessageKind::Application => {
                        failed = true;
                        outcome = Outcome::Undecryptable(e.to_string())
                    }
                    Err(e) => {
                        return Err(ClientError::mls(format!(
                            "cannot process commit {}: {e}",
                            delivered.seq
                        )));
                    }
                }
            }
        }
        let kept = (!failed).then_some(group);
        let events = match outcome {
            Outcome::Nothing => Ok(Vec::new()),
            Outcome::Membership {
                before,
                after,
                self_removed,
                own,
            } => {
                let change = commit::Change {
                    before: &before,
                    after: &after,
                    self_removed,
                    own,
                };
                commit::apply(tx, group_id, name, &change).await
            }
            Outcome::Application(sender, plaintext, aad) => {
                self.apply_application(tx, group_id, name, delivered.seq, &sender, &plaintext, &aad)
                    .await
            }
            Outcome::Undecryptable(reason) => {
                // Our own ciphertext cannot be decrypted by us: match it by hash.
                let own = self
                    .apply_own(tx, group_id, name, delivered.seq, &hash)
                    .await?;
                if own.is_none() {
                    tracing::warn!(group = %group_id, seq = delivered.seq, %reason, "undecryptable message skipped");
                }
                Ok(own.unwrap_or_default())
            }
        }?;
        Ok((events, kept))
    }

    /// Applies an application message: the content `sender` sent under the
    /// id in its authenticated data.
    #[allow(clippy::too_many_arguments)]
    async fn apply_application(
        &self,
        tx: &mut SqliteConnection,
        group_id: &str,
        name: &str,
        seq: u64,
        sender: &DeviceCredential,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<Event>> {
        let Some(message_id) = message_id_from_aad(aad) else {
            // Without an id it can be neither referenced nor deduplicated.
            tracing::warn!(group = %group_id, seq, "message without an id; skipped");
            return Ok(Vec::new());
        };
        let decoded = Content::decode(plaintext);
        if let Some(note) = crate::content::gossiped_checkpoint(plaintext) {
            self.session.gossip().heard(crate::gossip::Heard {
                group_id: group_id.to_owned(),
                channel: name.to_owned(),
                sender: sender.user().to_string(),
                device: sender.device().to_string(),
                note,
            });
        }
        let identity = self.identity()?;
        let me = identity.username.to_string();
        let mut events = Vec::new();
        if let Decoded::Known(Content::ChannelInfo {
            name: announced,
            direct,
            topic,
            scope,
        }) = &decoded
        {
            let announcement = channel_info::Announcement {
                name: announced,
                direct: *direct,
                topic,
                scope,
            };
            let event = channel_info::take_name(
                tx,
                group_id,
                name,
                &announcement,
                sender.user().as_str(),
                &me,
            )
            .await?;
            events.extend(event);
        }
        let device = sender.device().to_string();
        let message = Received {
            group_id,
            channel: name,
            seq,
            author: Author {
                user: sender.user().as_str(),
                device: &device,
            },
            message_id: &message_id,
            reader: Reader {
                user: &me,
                bot: identity.bot_owner.is_some(),
            },
        };
        events.extend(apply_content(tx, &message, decoded).await?);
        Ok(events)
    }
}

/// What openmls made of a delivered message.
enum Outcome {
    Nothing,
    /// A commit was merged.
    Membership {
        /// Users and their devices before, and after.
        before: BTreeMap<String, BTreeSet<String>>,
        after: BTreeMap<String, BTreeSet<String>>,
        /// It removed this device.
        self_removed: bool,
        /// It was this device's own commit.
        own: bool,
    },
    /// Sender, plaintext, authenticated data.
    Application(DeviceCredential, Vec<u8>, Vec<u8>),
    Undecryptable(String),
}

/// Applies one received (or own, accepted) message to the history, by the
/// kind of its content; a message id seen before in the channel is a replay
/// and changes nothing.
pub(crate) async fn apply_content(
    tx: &mut SqliteConnection,
    message: &Received<'_>,
    decoded: Decoded,
) -> Result<Vec<Event>> {
    // One id, one message: a member replaying someone's content under a new
    // MLS message gets nowhere.
    if !messages::mark_seen(tx, message.group_id, message.message_id, message.seq).await? {
        tracing::warn!(group = %message.group_id, seq = message.seq, "a message id seen before: replay dropped");
        return Ok(Vec::new());
    }
    apply_marked(tx, message, decoded).await
}

/// [`apply_content`] for a message whose id was just marked seen, by the
/// caller, for the first time.
pub(crate) async fn apply_marked(
    tx: &mut SqliteConnection,
    message: &Received<'_>,
    decoded: Decoded,
) -> Result<Vec<Event>> {
    let content = match decoded {
        Decoded::Known(content) => content,
        Decoded::Unsupported => return text::apply_unsupported(tx, message).await,
    };
    match content {
        Content::Text { body, mentions } => text::apply(tx, message, &body, &mentions).await,
        Content::Reply {
            parent,
            body,
            mentions,
        } => reply::apply(tx, message, &parent, &body, &mentions).await,
        Content::Reaction { target, emoji, add } => {
            reaction::apply(tx, message, target, emoji, add).await
        }
        Content::Edit { target, body } => edit::apply(tx, message, target, &body).await,
        Content::Delete { target } => delete::apply(tx, message, target).await,
        Content::Rename { name } => channel_info::apply_rename(tx, message, &name).await,
        Content::Topic { topic } => channel_info::apply_topic(tx, message, topic).await,
        Content::File(file) => file::apply(tx, message, &file).await,
        Content::Command { name, args, bot } => {
            command::apply(tx, message, &name, &args, &bot).await
        }
        Content::HistoryBundle {
            recipient,
            messages,
            bundle,
        } => history_bundle::apply(tx, message, &recipient, messages, &bundle).await,
        Content::ReadUpTo { channel, seq } => read_up_to::apply(tx, message, &channel, seq).await,
        // Applied by the caller before the replay check, as it always was:
        // it names a channel still going by its placeholder.
        Content::ChannelInfo { .. } => Ok(Vec::new()),
    }
}

/// Whether a new message concerns this account: it mentions it, or it is a
/// direct message to it.
async fn notifications(
    tx: &mut SqliteConnection,
    message: &HistoryEntry,
    group_id: &str,
    mentions: &[String],
    me: &str,
) -> Result<Vec<Event>> {
    if message.sender == me {
        return Ok(Vec::new());
    }
    let direct = channels::kind_of(tx, group_id).await?.as_deref() == Some("dm");
    Ok(if direct {
        vec![Event::DirectMessage(message.clone())]
    } else if mentions.iter().any(|m| m == me) {
        vec![Event::Mentioned(message.clone())]
    } else {
        Vec::new()
    })
}

/// The events of a new message people read (text, reply, file): a
/// notification if it concerns this account, then the message itself. A
/// bot account also files it in its inbox when `for_handlers` gives the
/// text and thread its handlers read.
async fn new_message(
    tx: &mut SqliteConnection,
    message: &Received<'_>,
    added: Option<HistoryEntry>,
    mentions: &[String],
    for_handlers: Option<(&str, Option<&str>)>,
) -> Result<Vec<Event>> {
    let entry = message.entry(tx, added).await?;
    let mut events =
        notifications(tx, &entry, message.group_id, mentions, message.reader.user).await?;
    if let Some((body, parent)) = for_handlers
        && message.by_someone_else()
        && message.reader.bot
    {
        let addressed = inbox::Addressed {
            group_id: message.group_id,
            message_id: message.message_id,
            sender: message.author.user,
            command: None,
            body,
            parent,
        };
        inbox::push(tx, &addressed).await?;
    }
    events.push(Event::Message(entry));
    Ok(events)
}

/// The position of message `target` if the author of `message` wrote it:
/// only its author may edit or delete a message (`action` says which was
/// tried, for the log).
async fn by_its_author(
    tx: &mut SqliteConnection,
    message: &Received<'_>,
    target: &str,
    action: &str,
) -> Result<Option<u64>> {
    let Some((seq_of_target, owner)) = messages::find(tx, message.group_id, target).await? else {
        return Ok(None);
    };
    if owner != message.author.user {
        tracing::warn!(group = %message.group_id, seq = message.seq, "{action} of someone else's message ignored");
        return Ok(None);
    }
    Ok(Some(seq_of_target))
}
