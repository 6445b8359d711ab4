//! Sending: a message is encrypted, recorded as outgoing in the same
//! transaction as the MLS state that encrypted it, then posted; a commit is
//! remembered before it is posted. When another member's commit wins the
//! epoch first, the client catches up and tries again.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_crypto::{DeviceKey, sha256_hex};
use conclave_proto::{PostAnswer, PostMessage, routes};
use openmls::prelude::*;
use sqlx::{Connection, SqliteConnection};
use zeroize::Zeroizing;

use crate::channel::Channel;
use crate::client::Client;
use crate::content::{Content, MAX_BODY, mentions_in, message_aad, new_message_id};
use crate::error::{ClientError, Result};
use crate::event::Event;
use crate::group::{load_group, tls_bytes};
use crate::retry::{MAX_ATTEMPTS, backoff, retry_delay};
use crate::session::Accepted;
use crate::store::channels::SendCheck;
use crate::store::send_storage::SendProvider;
use crate::store::{TxProvider, channels, pending};

impl Client {
    /// Builds a commit on the current state and posts it; when another
    /// member's commit wins the epoch, processes it and builds again.
    pub(crate) async fn commit<F>(&self, group_id: &str, mut build: F) -> Result<()>
    where
        F: FnMut(
            &mut MlsGroup,
            &TxProvider<'_>,
            &DeviceKey,
        ) -> Result<(
            MlsMessageOut,
            Option<MlsMessageOut>,
            Option<openmls::messages::group_info::GroupInfo>,
        )>,
    {
        let identity = self.identity()?;
        for attempt in 1..=MAX_ATTEMPTS {
            self.sync_without_upkeep().await?;
            let mut db = self.db().await;
            let mut tx = db.begin().await?;
            let (commit, welcome, group_info) = {
                let provider = TxProvider::new(&self.session.crypto, &mut tx);
                let mut group = load_group(&provider, group_id)?;
                // After a full sync, a commit still pending was never accepted.
                group
                    .clear_pending_commit(provider.storage())
                    .map_err(ClientError::mls)?;
                let (commit, welcome, group_info) = build(&mut group, &provider, &identity.key)?;
                (
                    tls_bytes(&commit)?,
                    welcome.as_ref().map(tls_bytes).transpose()?,
                    group_info
                        .map(|info| tls_bytes(&MlsMessageOut::from(info)))
                        .transpose()?,
                )
            };
            // Remember our commit so we recognise it when the relay echoes it,
            // even if we crash before hearing the relay's answer.
            pending::remember_commit(&mut tx, group_id, &sha256_hex(&commit)).await?;
            tx.commit().await?;
            drop(db);
            // The new epoch's GroupInfo goes along: a public channel's relay
            // keeps it so that others can join on their own (others ignore it).
            let body = PostMessage {
                group_info: group_info.map(|g| STANDARD.encode(g)),
                message: STANDARD.encode(&commit),
                welcome: welcome.map(|w| STANDARD.encode(w)),
            };
            match self.post_to_group(group_id, &body).await {
                Ok(_) => {
                    self.sync_without_upkeep().await?;
                    return Ok(());
                }
                Err(e) if e.is_wrong_epoch() => {
                    tracing::debug!(attempt, "commit lost the race; retrying");
                    backoff(attempt).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(ClientError::TooManyConflicts(MAX_ATTEMPTS))
    }

    /// Posts an MLS message (and any Welcome) to a group, again with the
    /// same bytes if the answer is lost (the node died, the connection
    /// broke): the relay knows a message, proposal or commit by its bytes and
    /// answers a repeat with the first one's position, so a retry can neither
    /// lose it nor double it.
    pub(crate) async fn post_to_group(
        &self,
        group_id: &str,
        body: &PostMessage,
    ) -> Result<PostAnswer> {
        const TRIES: u32 = 4;
        let path = routes::group_messages(group_id);
        let mut tries = 0;
        loop {
            tries += 1;
            match self.exchange("POST", &path, body).await {
                Err(ClientError::Transport(e)) if tries < TRIES => {
                    tracing::debug!(error = %e, tries, "posting again after a lost answer");
                    tokio::time::sleep(retry_delay(tries)).await;
                }
                outcome => return outcome,
            }
        }
    }

    /// Sends `content` under `message_id`, unless it is malformed or the
    /// channel is archived.
    pub(crate) async fn send_checked(
        &self,
        group_id: &str,
        content: Content,
        message_id: &str,
    ) -> Result<u64> {
        content.check_text()?;
        if !content.is_well_formed() {
            return Err(ClientError::Invalid(format!(
                "malformed message (empty, or over {MAX_BODY} bytes)"
            )));
        }
        // A channel whose group is kept in memory (this device used it
        // since it opened) is checked in the send's own statement list; any
        // other is read here, before its group is loaded. A read that
        // recorded sends cannot change: they wait for the send's own
        // transaction.
        let channel = if self.session.groups.is_kept(group_id) {
            None
        } else {
            let mut db = self.db_for_send().await;
            let channel = channels::send_check(&mut db, group_id).await?;
            refuse_unless_open(&channel)?;
            Some(channel.name)
        };
        let plaintext = self.plaintext(&content);
        self.send_bytes(group_id, channel.as_deref(), &plaintext, message_id)
            .await
    }

    /// `content` to encrypt, with this device's newest verified checkpoint
    /// for the members to compare (see `gossip.rs`).
    fn plaintext(&self, content: &Content) -> Zeroizing<Vec<u8>> {
        let checkpoint = self.session.gossip().own();
        Zeroizing::new(content.encode_with_checkpoint(checkpoint.as_deref()))
    }

    pub(crate) async fn send_payload(&self, group_id: &str, content: &Content) -> Result<u64> {
        let plaintext = self.plaintext(content);
        let channel = self.channel_name(group_id).await?;
        self.send_bytes(group_id, Some(&channel), &plaintext, &new_message_id())
            .await
    }

    async fn channel_name(&self, group_id: &str) -> Result<String> {
        let mut db = self.db_for_send().await;
        channels::name(&mut db, group_id).await
    }

    /// Sends `plaintext` to the group of `group_id`. `channel` is its
    /// channel's name, for the history entry, when the caller read (and
    /// checked) the channel; `None` leaves both to the send's transaction.
    async fn send_bytes(
        &self,
        group_id: &str,
        channel: Option<&str>,
        plaintext: &[u8],
        message_id: &str,
    ) -> Result<u64> {
        let identity = self.identity()?;
        // Nothing is encrypted to a device the transparency log does not vouch for.
        self.check_members(group_id).await?;
        // As the outgoing row and the history keep it.
        let kept = Zeroizing::new(String::from_utf8_lossy(plaintext).into_owned());
        let outgoing = Outgoing {
            plaintext,
            kept: &kept,
            message_id,
            channel,
        };
        for attempt in 1..=MAX_ATTEMPTS {
            let mut db = self.db_for_send().await;
            // Sends accepted earlier are recorded in this send's transaction.
            let accepted = self.session.take_accepted();
            let sealed = self
                .seal(&mut db, group_id, &identity.key, &outgoing, &accepted)
                .await;
            drop(db);
            let Sealed {
                ciphertext,
                hash,
                channel,
                recorded,
            } = match sealed {
                Ok(sealed) => sealed,
                Err(e) => {
                    self.restore_accepted(accepted);
                    return Err(e);
                }
            };
            match recorded {
                Some(events) => {
                    for event in events {
                        self.session.publish(event);
                    }
                }
                None => self.restore_accepted(accepted),
            }
            let body = PostMessage::message(STANDARD.encode(&ciphertext));
            match self.post_to_group(group_id, &body).await {
                Ok(answer) => {
                    self.note_accepted(Accepted {
                        group_id: group_id.to_owned(),
                        channel,
                        seq: answer.seq,
                        hash,
                        plaintext: kept,
                        message_id: message_id.to_owned(),
                    });
                    return Ok(answer.seq);
                }
                Err(e) if e.is_wrong_epoch() => {
                    let mut db = self.db().await;
                    pending::drop_outgoing(&mut db, &hash).await?;
                    drop(db);
                    backoff(attempt).await;
                    self.sync_messages().await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(ClientError::TooManyConflicts(MAX_ATTEMPTS))
    }
}

/// A message to send: its plaintext, that plaintext as the store keeps
/// it (text), and its id.
struct Outgoing<'a> {
    plaintext: &'a [u8],
    kept: &'a str,
    message_id: &'a str,
    /// Its channel's name, if the caller read and checked the channel.
    channel: Option<&'a str>,
}

/// The refusal of a send to `channel`, if this device may not post there.
fn refuse_unless_open(channel: &SendCheck) -> Result<()> {
    if !channel.active {
        return Err(ClientError::NotInChannel(channel.name.clone()));
    }
    if channel.archived {
        return Err(ClientError::Invalid(format!(
            "{} is archived: nothing more can be posted to it",
            channel.name
        )));
    }
    Ok(())
}

/// A message encrypted and on disk, ready to leave.
struct Sealed {
    ciphertext: Vec<u8>,
    /// Hash of `ciphertext`: the key of its outgoing row.
    hash: String,
    /// The channel's name.
    channel: String,
    /// What recording the accepted sends produced to tell subscribers;
    /// `None` if they could not be recorded here (they are put back).
    recorded: Option<Vec<Event>>,
}

impl Client {
    /// The send's one local transaction, durable: the sends in `accepted`
    /// recorded, `plaintext` encrypted, and the MLS state that encrypted it
    /// with its outgoing row, on disk before the ciphertext leaves (a key is
    /// never used twice, even after a power cut). The group is kept in
    /// memory for the next send.
    async fn seal(
        &self,
        db: &mut SqliteConnection,
        group_id: &str,
        key: &DeviceKey,
        outgoing: &Outgoing<'_>,
        accepted: &[Accepted],
    ) -> Result<Sealed> {
        let mut tx = db.begin().await?;
        let mut recorded = Some(Vec::new());
        if !accepted.is_empty() {
            match self.record_accepted(&mut tx, accepted).await {
                Ok(events) => recorded = Some(events),
                Err(e) => {
                    // Not this send's failure: it goes on without them.
                    tracing::debug!(error = %e, "accepted sends not recorded with this one");
                    tx.rollback().await?;
                    tx = db.begin().await?;
                    recorded = None;
                }
            }
        }
        if let Some(kept) = self.seal_kept(&mut tx, group_id, key, outgoing).await? {
            self.session
                .groups
                .commit_and_keep_at(tx, group_id, kept.group, kept.version)
                .await?;
            return Ok(Sealed {
                ciphertext: kept.ciphertext,
                hash: kept.hash,
                channel: kept.channel,
                recorded,
            });
        }
        let channel = match outgoing.channel {
            Some(name) => name.to_owned(),
            None => {
                let channel = channels::send_check(&mut tx, group_id).await?;
                refuse_unless_open(&channel)?;
                channel.name
            }
        };
        let mut group = self
            .session
            .groups
            .take(&mut tx, &self.session.crypto, group_id)
            .await?;
        let ciphertext = {
            let provider = TxProvider::new(&self.session.crypto, &mut tx);
            if !group.is_active() {
                return Err(ClientError::NotInChannel(group_id.to_owned()));
            }
            // The id rides in the authenticated data, under the signature.
            group.set_aad(message_aad(outgoing.message_id));
            let message = group
                .create_message(&provider, key, outgoing.plaintext)
                .map_err(ClientError::mls)?;
            tls_bytes(&message)?
        };
        let hash = sha256_hex(&ciphertext);
        // Recorded before sending, so our own message is never lost even if we crash mid-call.
        let version = pending::record_outgoing(
            &mut tx,
            &hash,
            group_id,
            outgoing.kept,
            outgoing.message_id,
            group.group_id(),
        )
        .await?;
        self.session
            .groups
            .commit_and_keep_at(tx, group_id, group, version)
            .await?;
        Ok(Sealed {
            ciphertext,
            hash,
            channel,
            recorded,
        })
    }

    /// The short way of [`Client::seal`]'s encryption, for a group kept in
    /// memory: openmls's one write is kept (`store::send_storage`) and goes
    /// with the outgoing row in one statement list, only if the group's
    /// stored version is still the kept one and the channel is open to
    /// this device (read in the same list when the caller did not).
    /// `None` (nothing written, the kept group dropped) for the long way,
    /// which loads the group; a refusal if the channel is closed.
    async fn seal_kept(
        &self,
        tx: &mut SqliteConnection,
        group_id: &str,
        key: &DeviceKey,
        outgoing: &Outgoing<'_>,
    ) -> Result<Option<SealedKept>> {
        let Some((mut group, kept_version)) = self.session.groups.take_kept(group_id) else {
            return Ok(None);
        };
        if !group.is_active() {
            return Ok(None);
        }
        group.set_aad(message_aad(outgoing.message_id));
        let provider = SendProvider::new(&self.session.crypto);
        let message = match group.create_message(&provider, key, outgoing.plaintext) {
            Ok(message) => message,
            Err(e) => {
                tracing::debug!(error = %e, "a kept group could not encrypt on its own");
                return Ok(None);
            }
        };
        let Some(secrets) = provider.into_written() else {
            return Ok(None);
        };
        let ciphertext = tls_bytes(&message)?;
        let hash = sha256_hex(&ciphertext);
        let (version, channel) = pending::record_outgoing_with_secrets(
            tx,
            kept_version,
            &secrets,
            &hash,
            group_id,
            outgoing.kept,
            outgoing.message_id,
        )
        .await?;
        let Some(channel) = channel else {
            return Err(ClientError::NotInChannel(group_id.to_owned()));
        };
        refuse_unless_open(&channel)?;
        Ok(version.map(|version| SealedKept {
            ciphertext,
            hash,
            channel: channel.name,
            version,
            group,
        }))
    }
}

/// What [`Client::seal_kept`] wrote: the ciphertext, its hash, the
/// channel's name, and the group with the version its write left.
struct SealedKept {
    ciphertext: Vec<u8>,
    hash: String,
    channel: String,
    version: i64,
    group: MlsGroup,
}

impl Channel {
    /// Sends a text message to the channel. Returns its position in the channel.
    pub async fn send(&self, text: &str) -> Result<u64> {
        if text.is_empty() {
            return Err(ClientError::Invalid("message is empty".into()));
        }
        let content = Content::Text {
            body: text.to_owned(),
            mentions: mentions_in(text),
        };
        self.send_content(content).await
    }

    /// Sends any content to the channel and returns its position. The typed
    /// calls ([`Channel::reply`], [`Channel::react`], …) check more first;
    /// every receiver enforces the rules on its own either way.
    pub async fn send_content(&self, content: Content) -> Result<u64> {
        // `send_checked` refuses a channel this device left, in the same
        // read that finds it archived.
        self.client
            .send_checked(self.group_id(), content, &new_message_id())
            .await
    }

    /// Sends `plaintext` as it is, under `message_id`: for tests of how
    /// receivers treat replayed ids and content they do not know.
    #[doc(hidden)]
    pub async fn send_raw(&self, plaintext: &[u8], message_id: &str) -> Result<u64> {
        let group_id = self.active_group().await?;
        let channel = self.client.channel_name(group_id).await?;
        self.client
            .send_bytes(group_id, Some(&channel), plaintext, message_id)
            .await
    }
}
