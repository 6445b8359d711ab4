//! A channel: the handle its operations hang on ([`Channel`]), what this
//! device lists about it, its group state and its members.
//!
//! A channel is its MLS group, named by the group id; its name is display
//! data that any member can change. Operations live where their kind is:
//! membership here, messages in `messaging.rs` and `send.rs`, files in
//! `files.rs`, history sharing in `history.rs`, slash commands in
//! `commands.rs`.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_crypto::{DeviceCredential, Username};
use conclave_proto::{
    ArchiveAnswer, CreateGroupAnswer, CreateGroupBody, GroupRetentionAnswer, GroupRetentionBody,
    PostMessage, PublicListing, routes,
};
use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::*;
use sqlx::Connection;

use crate::channel_info::{ChannelInfo, ChannelState, Member};
use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::group::{create_config, load_group, tls_bytes, users_of};
use crate::history_entry::HistoryEntry;
use crate::retry::{MAX_ATTEMPTS, backoff};
use crate::store::{self, TxProvider, channels};

/// One channel (or direct message) of this device, addressed by its group
/// id, as [`Client::channel`] and [`Client::channel_named`] give it. Cheap
/// to clone; it holds no lock, and a handle outlives renames.
///
/// ```no_run
/// # async fn example(client: conclave_client::Client) -> conclave_client::Result<()> {
/// let general = client.channel_named("general").await?;
/// general.invite("bob").await?;
/// let seq = general.send("hello, bob").await?;
/// let message = general.message_id_at(seq).await?;
/// general.react(&message, ":tada:", true).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Channel {
    pub(crate) client: Client,
    group_id: String,
    name: String,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("group_id", &self.group_id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// The channel of group `group_id` (hex), which this device knows.
    pub async fn channel(&self, group_id: &str) -> Result<Channel> {
        let mut db = self.db().await;
        let name = channels::name_of(&mut db, group_id)
            .await?
            .ok_or_else(|| ClientError::NoSuchChannel(group_id.to_owned()))?;
        Ok(Channel::new(self.clone(), group_id.to_owned(), name))
    }

    /// The channel this device calls `name` now (names are local and can
    /// change; keep the handle, or its group id, rather than the name).
    pub async fn channel_named(&self, name: &str) -> Result<Channel> {
        let mut db = self.db().await;
        let (group_id, _) = channels::by_name(&mut db, name)
            .await?
            .ok_or_else(|| ClientError::NoSuchChannel(name.to_owned()))?;
        Ok(Channel::new(self.clone(), group_id, name.to_owned()))
    }

    /// Creates a private channel with this device as its only member: its
    /// name and topic travel only inside the group, and members join by
    /// invitation.
    pub async fn create_channel(&self, name: &str) -> Result<Channel> {
        self.create_group_named(name, None, "channel").await
    }

    /// Creates a group of `kind`: a channel, public (listed with
    /// `public_topic` in the workspace directory, open to join) or private,
    /// or this account's own `self` group.
    pub(crate) async fn create_group_named(
        &self,
        name: &str,
        public_topic: Option<&str>,
        kind: &str,
    ) -> Result<Channel> {
        validate_channel_name(name)?;
        let identity = self.identity()?;
        let mut db = self.db().await;
        if self.channel_by_name(&mut db, name).await.is_ok() {
            return Err(ClientError::ChannelExists(name.to_owned()));
        }
        let mut tx = db.begin().await?;
        let (group_id, body) = {
            let provider = TxProvider::new(&self.session.crypto, &mut tx);
            let credential = CredentialWithKey {
                credential: identity.credential().to_mls(),
                signature_key: identity.key.public().to_bytes().to_vec().into(),
            };
            let group = MlsGroup::new(&provider, &identity.key, &create_config(), credential)
                .map_err(ClientError::mls)?;
            let info = group
                .export_group_info(provider.crypto(), &identity.key, false)
                .map_err(ClientError::mls)?;
            let tree = group
                .export_ratchet_tree()
                .tls_serialize_detached()
                .map_err(ClientError::mls)?;
            let body = CreateGroupBody {
                group_info: STANDARD.encode(tls_bytes(&info)?),
                public: public_topic.map(|topic| PublicListing {
                    name: name.to_owned(),
                    topic: topic.to_owned(),
                }),
                ratchet_tree: STANDARD.encode(tree),
            };
            (hex::encode(group.group_id().as_slice()), body)
        };
        // The group exists locally only if the relay accepted it: the transaction spans the call.
        let _: CreateGroupAnswer = self.exchange("POST", routes::GROUPS, &body).await?;
        let channel = channels::NewChannel {
            group_id: &group_id,
            name,
            processed_seq: 0,
            kind: if public_topic.is_some() {
                "public"
            } else {
                kind
            },
            topic: public_topic.unwrap_or(""),
            named: true,
        };
        channels::insert(&mut tx, &channel).await?;
        tx.commit().await?;
        drop(db);
        // The account's other devices belong in the channel too.
        self.sync().await?;
        Ok(Channel::new(self.clone(), group_id, name.to_owned()))
    }

    /// Channels this device knows, by name.
    pub async fn channels(&self) -> Result<Vec<ChannelInfo>> {
        let mut db = self.db().await;
        let me = self.identity()?.username.to_string();
        channels::list(&mut db, &me).await
    }
}

impl Channel {
    pub(crate) fn new(client: Client, group_id: String, name: String) -> Self {
        Self {
            client,
            group_id,
            name,
        }
    }

    /// The channel's MLS group id (hex): what names it for good.
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The name the channel had when this handle was made (for messages;
    /// [`Channel::info`] has the current one).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The channel as this device lists it now.
    pub async fn info(&self) -> Result<ChannelInfo> {
        let me = self.client.identity()?.username.to_string();
        let mut db = self.client.db().await;
        channels::info(&mut db, &me, &self.group_id)
            .await?
            .ok_or_else(|| ClientError::NoSuchChannel(self.name.clone()))
    }

    /// The group id, if this device is still a member.
    pub(crate) async fn active_group(&self) -> Result<&str> {
        let mut db = self.client.db().await;
        if channels::is_active(&mut db, &self.group_id).await? {
            Ok(&self.group_id)
        } else {
            Err(ClientError::NotInChannel(self.name.clone()))
        }
    }

    /// Adds every device of `username` to the channel.
    pub async fn invite(&self, username: &str) -> Result<()> {
        let name = Username::parse(username).map_err(|e| ClientError::Invalid(e.to_string()))?;
        let group_id = self.active_group().await?;
        if self
            .members()
            .await?
            .iter()
            .any(|m| m.user == name.as_str())
        {
            return Err(ClientError::AlreadyAMember(
                name.to_string(),
                self.name.clone(),
            ));
        }
        let packages = self.client.claim_key_packages(&name, None).await?;
        self.client
            .commit(group_id, move |group, provider, key| {
                let (commit, welcome, group_info) = group
                    .add_members(provider, key, &packages)
                    .map_err(ClientError::mls)?;
                Ok((commit, Some(welcome), group_info))
            })
            .await
    }

    /// Archives the channel (its creator or a workspace admin may): the
    /// relay refuses every later post, and members see it archived at their
    /// next sync.
    pub async fn archive(&self) -> Result<()> {
        let _: ArchiveAnswer = self
            .client
            .bodiless("POST", &routes::group_archive(&self.group_id))
            .await?;
        let mut db = self.client.db().await;
        channels::archive(&mut db, &self.group_id).await?;
        Ok(())
    }

    /// Sets how long the relay keeps this channel's message ciphertext, in
    /// days (`None`: the workspace's policy); its creator or an admin may.
    /// Every member's device prunes its own copy to match.
    pub async fn set_retention(&self, days: Option<u32>) -> Result<()> {
        let _: GroupRetentionAnswer = self
            .client
            .exchange(
                "POST",
                &routes::group_retention(&self.group_id),
                &GroupRetentionBody { days },
            )
            .await?;
        Ok(())
    }

    /// Leaves the channel: proposes the removal of every device of this
    /// account, which the next member to sync commits, and stops following
    /// the channel at once. An invitation brings the account back.
    pub async fn leave(&self) -> Result<()> {
        let group_id = self.active_group().await?;
        let client = &self.client;
        let identity = client.identity()?;
        for attempt in 1..=MAX_ATTEMPTS {
            client.sync_without_upkeep().await?;
            let proposals = {
                let mut db = client.db().await;
                // Built in a transaction that is never committed: this
                // device will not commit again in the channel, so its own
                // store must not keep the proposals.
                let mut tx = db.begin().await?;
                let provider = TxProvider::new(&client.session.crypto, &mut tx);
                let mut group = load_group(&provider, group_id)?;
                let me = group.own_leaf_index();
                let others: Vec<LeafNodeIndex> = group
                    .members()
                    .filter(|m| {
                        m.index != me
                            && DeviceCredential::from_mls(&m.credential)
                                .is_ok_and(|c| c.user() == &identity.username)
                    })
                    .map(|m| m.index)
                    .collect();
                let mut proposals = Vec::new();
                for leaf in others {
                    let (message, _) = group
                        .propose_remove_member(&provider, &identity.key, leaf)
                        .map_err(ClientError::mls)?;
                    proposals.push(tls_bytes(&message)?);
                }
                let own = group
                    .leave_group(&provider, &identity.key)
                    .map_err(ClientError::mls)?;
                proposals.push(tls_bytes(&own)?);
                proposals
            };
            let mut lost_race = false;
            for proposal in &proposals {
                let body = PostMessage::message(STANDARD.encode(proposal));
                match client.post_to_group(group_id, &body).await {
                    Ok(_) => {}
                    Err(e) if e.is_wrong_epoch() => {
                        lost_race = true;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if lost_race {
                backoff(attempt).await;
                continue;
            }
            let mut db = client.db().await;
            channels::deactivate(&mut db, group_id).await?;
            return Ok(());
        }
        Err(ClientError::TooManyConflicts(MAX_ATTEMPTS))
    }

    /// Removes every device of `username` from the channel.
    pub async fn remove(&self, username: &str) -> Result<()> {
        let name = Username::parse(username).map_err(|e| ClientError::Invalid(e.to_string()))?;
        let group_id = self.active_group().await?;
        let channel_name = self.name.clone();
        self.client
            .commit(group_id, move |group, provider, key| {
                let leaves: Vec<LeafNodeIndex> = group
                    .members()
                    .filter(|m| {
                        DeviceCredential::from_mls(&m.credential).is_ok_and(|c| c.user() == &name)
                    })
                    .map(|m| m.index)
                    .collect();
                if leaves.is_empty() {
                    return Err(ClientError::NotAMember(
                        name.to_string(),
                        channel_name.clone(),
                    ));
                }
                let (commit, welcome, group_info) = group
                    .remove_members(provider, key, &leaves)
                    .map_err(ClientError::mls)?;
                Ok((commit, welcome, group_info))
            })
            .await
    }

    /// This device's view of the channel's group: its epoch and a code to
    /// compare with other members'.
    pub async fn state(&self) -> Result<ChannelState> {
        let mut db = self.client.db().await;
        let provider = TxProvider::new(&self.client.session.crypto, &mut db);
        let group = load_group(&provider, &self.group_id)?;
        let authenticator = group.epoch_authenticator().as_slice();
        let digits = hex::encode(authenticator.get(..16).unwrap_or(authenticator));
        let code = digits
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        Ok(ChannelState {
            epoch: group.epoch().as_u64(),
            code,
        })
    }

    /// Gives this device a fresh leaf key in the channel (an MLS self-update
    /// commit): whoever may have stolen its current keys cannot read what
    /// follows (post-compromise security).
    pub async fn rotate_keys(&self) -> Result<()> {
        let group_id = self.active_group().await?;
        self.client
            .commit(group_id, |group, provider, key| {
                let bundle = group
                    .self_update(provider, key, LeafNodeParameters::default())
                    .map_err(ClientError::mls)?;
                let (commit, welcome, group_info) = bundle.into_contents();
                // Only pending Add proposals would bring a Welcome along.
                let welcome =
                    welcome.map(|w| MlsMessageOut::from_welcome(w, ProtocolVersion::default()));
                Ok((commit, welcome, group_info))
            })
            .await
    }

    /// Members of the channel, from this device's MLS state.
    pub async fn members(&self) -> Result<Vec<Member>> {
        let mut db = self.client.db().await;
        let provider = TxProvider::new(&self.client.session.crypto, &mut db);
        let group = load_group(&provider, &self.group_id)?;
        let owners: BTreeMap<String, String> = group
            .members()
            .filter_map(|m| DeviceCredential::from_mls(&m.credential).ok())
            .filter_map(|c| Some((c.user().to_string(), c.bot_owner()?.to_string())))
            .collect();
        Ok(users_of(&group)
            .into_iter()
            .map(|(user, devices)| Member {
                bot_owner: owners.get(&user).cloned(),
                user,
                devices: devices.into_iter().collect(),
            })
            .collect())
    }

    /// The decrypted history of the channel, in channel order, with threads,
    /// reactions, edits and tombstones as they stand.
    pub async fn history(&self) -> Result<Vec<HistoryEntry>> {
        let mut db = self.client.db().await;
        // Entries carry the channel's name as it is now.
        let name = channels::name(&mut db, &self.group_id).await?;
        store::messages::history_of(&mut db, &self.group_id, &name).await
    }
}

/// Channel names: 1-64 characters, no spaces or control characters, not
/// starting with '-' (where it would read as a command-line flag).
pub(crate) fn validate_channel_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.chars().count())
        && !name.chars().any(|c| c.is_control() || c.is_whitespace())
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(ClientError::Invalid(format!(
            "invalid channel name {name:?}: use 1-64 characters, no spaces, not starting with '-'"
        )))
    }
}
