//! Public channels: listed by the relay with their name and topic, and
//! joined without an invitation through an MLS external commit (RFC 9420
//! §12.4.3.2) built from the GroupInfo the relay keeps. No member needs to
//! be online; every member sees the join as a commit, and each checks the
//! new device against the transparency log as it checks any other.
//!
//! Private channels never reach the directory: their name and topic travel
//! only inside the group.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_proto::{GroupInfoAnswer, PublicChannels, routes};
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::*;
use sqlx::Connection;

use crate::channel::Channel;
use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::group::{join_config, tls_bytes};
use crate::retry::{MAX_ATTEMPTS, backoff};
use crate::store::channels;

/// A public channel in the workspace directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicChannel {
    /// Its name.
    pub name: String,
    /// Its topic.
    pub topic: String,
    /// How many accounts are in it.
    pub members: u64,
    /// Whether this device is in it.
    pub joined: bool,
    /// Archived: closed to new members.
    pub archived: bool,
}

impl Client {
    /// Creates a public channel: its name and `topic` are listed for the
    /// whole workspace, and anyone in it may [`join`](Client::join). What
    /// members say in it is end-to-end encrypted all the same.
    pub async fn create_public_channel(&self, name: &str, topic: &str) -> Result<Channel> {
        if topic.len() > crate::content::MAX_TOPIC {
            return Err(ClientError::Invalid(format!(
                "a topic is at most {} bytes",
                crate::content::MAX_TOPIC
            )));
        }
        self.create_group_named(name, Some(topic), "public").await
    }

    /// The workspace's public channels, by name.
    pub async fn public_channels(&self) -> Result<Vec<PublicChannel>> {
        Ok(self
            .directory()
            .await?
            .into_iter()
            .map(|(_, channel)| channel)
            .collect())
    }

    async fn directory(&self) -> Result<Vec<(String, PublicChannel)>> {
        let listed: PublicChannels = self.fetch(routes::PUBLIC_CHANNELS).await?;
        Ok(listed
            .channels
            .into_iter()
            .map(|c| {
                (
                    c.group_id,
                    PublicChannel {
                        name: c.name,
                        topic: c.topic,
                        members: c.members,
                        joined: c.joined,
                        archived: c.archived,
                    },
                )
            })
            .collect())
    }

    /// Joins the public channel `name` on this device, by external commit.
    /// The account's other devices follow at their next sync.
    pub async fn join(&self, name: &str) -> Result<Channel> {
        let identity = self.identity()?;
        // A channel this device left keeps its name and history: joining it
        // again continues it.
        let left_before: Option<String> = {
            let mut db = self.db().await;
            match self.channel_by_name(&mut db, name).await {
                Ok((_, true)) => {
                    return Err(ClientError::AlreadyAMember(
                        identity.username.to_string(),
                        name.to_owned(),
                    ));
                }
                Ok((group_id, false)) => Some(group_id),
                Err(_) => None,
            }
        };
        for attempt in 1..=MAX_ATTEMPTS {
            let (group_id, listing) = self
                .directory()
                .await?
                .into_iter()
                .find(|(_, c)| c.name == name)
                .ok_or_else(|| ClientError::NoSuchChannel(name.to_owned()))?;
            if left_before.as_ref().is_some_and(|g| *g != group_id) {
                return Err(ClientError::ChannelExists(name.to_owned()));
            }
            if listing.archived {
                return Err(ClientError::Invalid(format!(
                    "{name} is archived: nobody can join it"
                )));
            }
            let state: GroupInfoAnswer = self.fetch(&routes::group_info(&group_id)).await?;
            let decode = |field: &str, text: &str| {
                STANDARD.decode(text).map_err(|_| {
                    ClientError::mls(format!("relay sent a {field} that is not base64"))
                })
            };
            let MlsMessageBodyIn::GroupInfo(info) =
                MlsMessageIn::tls_deserialize_exact(decode("group_info", &state.group_info)?)
                    .map_err(ClientError::mls)?
                    .extract()
            else {
                return Err(ClientError::Mls(
                    "relay sent something other than a GroupInfo".into(),
                ));
            };
            let tree =
                RatchetTreeIn::tls_deserialize_exact(decode("ratchet_tree", &state.ratchet_tree)?)
                    .map_err(ClientError::mls)?;
            if hex::encode(info.group_id().as_slice()) != group_id {
                return Err(ClientError::Mls(
                    "relay sent another group's GroupInfo".into(),
                ));
            }

            let mut db = self.db().await;
            let mut tx = db.begin().await?;
            let (commit, group_info) = {
                let provider = crate::store::TxProvider::new(&self.session.crypto, &mut tx);
                if left_before.is_some() {
                    // The old state is of no use; the join builds a new one.
                    let id =
                        GroupId::from_slice(&hex::decode(&group_id).map_err(ClientError::mls)?);
                    if let Some(mut old) =
                        MlsGroup::load(provider.storage(), &id).map_err(ClientError::mls)?
                    {
                        old.delete(provider.storage()).map_err(ClientError::mls)?;
                    }
                }
                let credential = CredentialWithKey {
                    credential: identity.credential().to_mls(),
                    signature_key: identity.key.public().to_bytes().to_vec().into(),
                };
                // The GroupInfo's signature and the tree are verified here,
                // against each other: the relay cannot forge either.
                let (_group, bundle) = MlsGroup::external_commit_builder()
                    .with_ratchet_tree(tree)
                    .with_config(join_config())
                    .build_group(&provider, info, credential)
                    .map_err(ClientError::mls)?
                    .load_psks(provider.storage())
                    .map_err(ClientError::mls)?
                    .build(provider.rand(), provider.crypto(), &identity.key, |_| true)
                    .map_err(ClientError::mls)?
                    .finalize(&provider)
                    .map_err(ClientError::mls)?;
                let (commit, _, group_info) = bundle.into_contents();
                (
                    tls_bytes(&commit)?,
                    group_info
                        .map(|g| tls_bytes(&MlsMessageOut::from(g)))
                        .transpose()?,
                )
            };
            let body = conclave_proto::PostMessage {
                group_info: group_info.map(|g| STANDARD.encode(g)),
                message: STANDARD.encode(&commit),
                welcome: None,
            };
            // The group is stored locally only if the relay accepted the join:
            // the transaction spans the call, as for a new channel.
            let accepted: Result<conclave_proto::PostAnswer> = self
                .exchange("POST", &routes::group_messages(&group_id), &body)
                .await;
            match accepted {
                Ok(accepted) => {
                    channels::join_public(&mut tx, &group_id, name, accepted.seq, &listing.topic)
                        .await?;
                    tx.commit().await?;
                    drop(db);
                    // Catch up: the account's other devices, and anything said since.
                    self.sync().await?;
                    return Ok(Channel::new(self.clone(), group_id, name.to_owned()));
                }
                Err(e) if e.is_wrong_epoch() => {
                    drop(tx);
                    drop(db);
                    tracing::debug!(attempt, "join lost a race with a commit; retrying");
                    backoff(attempt).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(ClientError::TooManyConflicts(MAX_ATTEMPTS))
    }
}
