//! Threads, reactions, edits, deletes, direct messages and search: the
//! calls that send them, and the local history they read. How received
//! content changes that history is in `receive/`, one file per kind.
//!
//! Search runs on the local full-text index (SQLite FTS5); nothing about it
//! leaves the device.

use conclave_proto::{
    ChannelNameAnswer, ChannelNameBody, ChannelTopicAnswer, ChannelTopicBody, ErrorCode, routes,
};

use crate::channel::{Channel, validate_channel_name};
use crate::client::Client;
use crate::content::{Content, is_message_id, mentions_in, reaction_emoji};
use crate::error::{ClientError, Result};
use crate::history_entry::HistoryEntry;
use crate::store::{channels, devices, messages, reactions};

/// What a search looks for; every part is optional but the words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Words to find (all of them, any order, prefixes with a trailing `*`).
    pub words: String,
    /// Only in this channel.
    pub channel: Option<String>,
    /// Only by this user.
    pub author: Option<String>,
    /// Only messages received at or after this Unix time.
    pub since: Option<u64>,
    /// Only messages received before this Unix time.
    pub until: Option<u64>,
}

/// Turns typed words into an FTS5 query that cannot be a syntax error:
/// each word quoted, a trailing `*` kept as a prefix search.
fn fts_query(words: &str) -> Option<String> {
    let terms: Vec<String> = words
        .split_whitespace()
        .filter_map(|word| {
            let (stem, prefix) = match word.strip_suffix('*') {
                Some(stem) => (stem, "*"),
                None => (word, ""),
            };
            let stem: String = stem.chars().filter(|c| *c != '"').collect();
            (!stem.is_empty()).then(|| format!("\"{stem}\"{prefix}"))
        })
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// What [`Channel::react`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reacted {
    /// The reaction (or its taking back) was sent as message `seq`.
    Sent {
        /// The emoji, as sent (a shortcode becomes its emoji).
        emoji: String,
        /// Its position in the channel.
        seq: u64,
    },
    /// Nothing to do: the reaction was already there (adding) or was never
    /// given by this account (taking back). Nothing was sent.
    Unchanged {
        /// The emoji meant.
        emoji: String,
    },
}

/// The local name of the group of this account's own devices (hidden from
/// the channel list).
const SELF_GROUP_NAME: &str = "@self";

impl Client {
    /// Opens the direct message with `users` (one for a DM, several for a
    /// group DM, up to the workspace's limit in all), creating it the
    /// first time. Its local name is `@` and the others (`@bob`, `@bob,carol`).
    pub async fn direct(&self, users: &[&str]) -> Result<Channel> {
        let me = self.identity()?.username.to_string();
        let mut others: Vec<String> = Vec::new();
        for user in users {
            let name = conclave_crypto::Username::parse(user)
                .map_err(|e| ClientError::Invalid(e.to_string()))?
                .to_string();
            if name != me && !others.contains(&name) {
                others.push(name);
            }
        }
        others.sort();
        if others.is_empty() {
            return Err(ClientError::Invalid(
                "a direct message needs someone else".into(),
            ));
        }
        let limit = self.account().await?.max_group_dm as usize;
        if others.len() + 1 > limit {
            return Err(ClientError::Invalid(format!(
                "a group direct message has at most {limit} people here; make a channel instead"
            )));
        }
        let name = format!("@{}", others.join(","));
        if self
            .channels()
            .await?
            .iter()
            .any(|c| c.name == name && c.direct && c.active)
        {
            return self.channel_named(&name).await;
        }
        // Every other person's devices are claimed before anything exists: a
        // name that is no user, or a user with no device to add, fails here,
        // and no channel is made (here or on the relay) that would linger and
        // spread to this account's other devices.
        let mut packages = Vec::new();
        for user in &others {
            let username = conclave_crypto::Username::parse(user)
                .map_err(|e| ClientError::Invalid(e.to_string()))?;
            let claimed = self
                .claim_key_packages(&username, None)
                .await
                .map_err(|e| match e {
                    ClientError::Server { code, .. } if code == ErrorCode::NotFound.as_str() => {
                        ClientError::NoSuchUser(user.clone())
                    }
                    ClientError::Server { code, .. } if code == ErrorCode::NoKeyPackages.as_str() => {
                        ClientError::Invalid(format!(
                            "{user} has no device that can be added yet; no direct message was created"
                        ))
                    }
                    other => other,
                })?;
            packages.extend(claimed);
        }
        let channel = self.create_channel(&name).await?;
        {
            let mut db = self.db().await;
            channels::make_direct(&mut db, &name).await?;
        }
        // Everyone at once, with the packages claimed above.
        self.commit(channel.group_id(), move |group, provider, key| {
            let (commit, welcome, group_info) = group
                .add_members(provider, key, &packages)
                .map_err(ClientError::mls)?;
            Ok((commit, Some(welcome), group_info))
        })
        .await?;
        Ok(channel)
    }

    /// Searches the decrypted history on this device, best matches first.
    pub async fn search(&self, query: &SearchQuery) -> Result<Vec<HistoryEntry>> {
        let Some(fts) = fts_query(&query.words) else {
            return Err(ClientError::Invalid("search for at least one word".into()));
        };
        let mut db = self.db().await;
        let group = match &query.channel {
            Some(channel) => Some(self.channel_by_name(&mut db, channel).await?.0),
            None => None,
        };
        let search = messages::Search {
            fts: &fts,
            group_id: group.as_deref(),
            author: query.author.as_deref(),
            since: query.since,
            until: query.until,
        };
        messages::search(&mut db, &search).await
    }
}

impl Channel {
    /// Sets the channel's topic for every member (encrypted, like everything
    /// members say).
    pub async fn set_topic(&self, topic: &str) -> Result<u64> {
        let content = Content::Topic {
            topic: topic.to_owned(),
        };
        if !content.is_well_formed() {
            return Err(ClientError::Invalid(format!(
                "a topic is at most {} bytes",
                crate::content::MAX_TOPIC
            )));
        }
        let seq = self.send_content(content).await?;
        // A public channel's topic is listed for the workspace as well.
        let public = {
            let mut db = self.client.db().await;
            channels::kind_of(&mut db, self.group_id())
                .await?
                .as_deref()
                == Some("public")
        };
        if public {
            let listed = ChannelTopicBody {
                topic: topic.to_owned(),
            };
            let _: ChannelTopicAnswer = self
                .client
                .exchange("POST", &routes::group_topic(self.group_id()), &listed)
                .await?;
        }
        Ok(seq)
    }

    /// Renames the channel for every member: the new name travels encrypted,
    /// and a public channel is renamed in the workspace's directory too
    /// (refused there, with nothing sent, if another public channel has the
    /// name). Any member may, as with the topic. A direct message keeps the
    /// names of its people.
    pub async fn rename(&self, new_name: &str) -> Result<u64> {
        validate_channel_name(new_name)?;
        let (current, kind) = {
            let mut db = self.client.db().await;
            let current = channels::name(&mut db, self.group_id()).await?;
            let kind = channels::kind_of(&mut db, self.group_id())
                .await?
                .unwrap_or_default();
            if channels::name_taken(&mut db, new_name).await? && new_name != current {
                return Err(ClientError::ChannelExists(new_name.to_owned()));
            }
            (current, kind)
        };
        if kind == "dm" || kind == "self" {
            return Err(ClientError::Invalid(format!(
                "{current} is a direct message: it is named after its people and cannot be renamed"
            )));
        }
        if new_name == current {
            return Err(ClientError::Invalid(format!(
                "{current} is already called {new_name}"
            )));
        }
        self.active_group().await?;
        if kind == "public" {
            let listed = ChannelNameBody {
                name: new_name.to_owned(),
            };
            let _: ChannelNameAnswer = self
                .client
                .exchange("POST", &routes::group_name(self.group_id()), &listed)
                .await?;
        }
        let seq = self
            .send_content(Content::Rename {
                name: new_name.to_owned(),
            })
            .await?;
        // This device goes by the new name at once (its own copy of the
        // rename, fetched later, then changes nothing).
        let mut db = self.client.db().await;
        channels::rename(&mut db, self.group_id(), new_name).await?;
        Ok(seq)
    }

    /// Marks everything in the channel as read, on this device and, through
    /// the account's own encrypted `self` group, on its other devices.
    pub async fn mark_read(&self) -> Result<()> {
        let client = &self.client;
        let group_id = self.group_id().to_owned();
        let (read, moved, mine, devices) = {
            let mut db = client.db().await;
            let read = messages::newest_seq(&mut db, &group_id).await?;
            let moved = channels::move_read(&mut db, &group_id, read).await?;
            let devices = devices::active_count(&mut db).await?;
            let mine = channels::own_groups(&mut db).await?;
            (read, moved, mine, devices)
        };
        if !moved {
            return Ok(());
        }
        let mine = if mine.is_empty() && devices > 1 {
            // The first read position worth sharing: make the account's own
            // group (its other devices are added by the sync that follows).
            client
                .create_group_named(SELF_GROUP_NAME, None, "self")
                .await?;
            let mut db = client.db().await;
            channels::own_groups(&mut db).await?
        } else {
            mine
        };
        let marker = Content::ReadUpTo {
            channel: group_id,
            seq: read,
        };
        for own in mine {
            if let Err(e) = client.send_payload(&own, &marker).await {
                // The position is kept here; the other devices catch up later.
                tracing::warn!(error = %e, "could not share a read position");
            }
        }
        Ok(())
    }

    /// Replies in the thread of message `parent` (an id from the history).
    pub async fn reply(&self, parent: &str, text: &str) -> Result<u64> {
        if !is_message_id(parent) {
            return Err(ClientError::Invalid(format!(
                "{parent:?} is not a message id"
            )));
        }
        self.known_message(parent).await?;
        // Replying to a reply answers in its thread: under the root.
        let root = {
            let mut db = self.client.db().await;
            messages::thread_root(&mut db, self.group_id(), parent)
                .await?
                .unwrap_or_else(|| parent.to_owned())
        };
        let content = Content::Reply {
            parent: root,
            body: text.to_owned(),
            mentions: mentions_in(text),
        };
        self.send_content(content).await
    }

    /// Adds (or with `add == false` takes back) a reaction to a message.
    /// `emoji` is an emoji or a `:shortcode:` (GitHub's names, as Slack
    /// mostly uses them), sent as the emoji itself; anything else is
    /// refused. Adding a reaction this account already gave, or taking back
    /// one it never gave, changes nothing and sends nothing.
    pub async fn react(&self, message: &str, emoji: &str, add: bool) -> Result<Reacted> {
        let emoji = reaction_emoji(emoji)?;
        self.known_message(message).await?;
        let me = self.client.identity()?.username.to_string();
        let given = {
            let mut db = self.client.db().await;
            reactions::given(&mut db, self.group_id(), message, &me, &emoji).await?
        };
        if given == add {
            return Ok(Reacted::Unchanged { emoji });
        }
        let content = Content::Reaction {
            target: message.to_owned(),
            emoji: emoji.clone(),
            add,
        };
        let seq = self.send_content(content).await?;
        Ok(Reacted::Sent { emoji, seq })
    }

    /// Replaces the text of one of this account's messages.
    pub async fn edit(&self, message: &str, text: &str) -> Result<u64> {
        self.own_message(message).await?;
        let content = Content::Edit {
            target: message.to_owned(),
            body: text.to_owned(),
        };
        self.send_content(content).await
    }

    /// Deletes one of this account's messages: every member keeps a tombstone.
    pub async fn delete(&self, message: &str) -> Result<u64> {
        self.own_message(message).await?;
        let file = {
            let mut db = self.client.db().await;
            messages::attachment_of(&mut db, self.group_id(), message).await?
        };
        let content = Content::Delete {
            target: message.to_owned(),
        };
        let seq = self.send_content(content).await?;
        if let Some(file) = file {
            // Every member now has a tombstone; nobody needs the ciphertext.
            self.client.forget_blob(&file.blob).await;
        }
        Ok(seq)
    }

    /// The id of the message at `seq` in the channel (what the CLI shows as `#seq`).
    pub async fn message_id_at(&self, seq: u64) -> Result<String> {
        let mut db = self.client.db().await;
        messages::id_at(&mut db, self.group_id(), seq)
            .await?
            .ok_or_else(|| ClientError::Invalid(format!("no message #{seq} in {}", self.name())))
    }

    /// A thread: its first message, then every reply, in order. Given a
    /// reply, the thread it is in (a reply to a reply joins its root's).
    pub async fn thread(&self, message: &str) -> Result<Vec<HistoryEntry>> {
        let root = {
            let mut db = self.client.db().await;
            messages::thread_root(&mut db, self.group_id(), message).await?
        };
        let parent = root.as_deref().unwrap_or(message);
        let history = self.history().await?;
        let thread: Vec<HistoryEntry> = history
            .into_iter()
            .filter(|e| e.id == parent || e.parent.as_deref() == Some(parent))
            .collect();
        if thread.first().is_none_or(|first| first.id != parent) {
            return Err(ClientError::Invalid(format!(
                "no message {parent} in {}",
                self.name()
            )));
        }
        Ok(thread)
    }

    async fn known_message(&self, id: &str) -> Result<(u64, String)> {
        let mut db = self.client.db().await;
        messages::find(&mut db, self.group_id(), id)
            .await?
            .ok_or_else(|| ClientError::Invalid(format!("no message {id} in {}", self.name())))
    }

    async fn own_message(&self, id: &str) -> Result<()> {
        let me = self.client.identity()?.username.to_string();
        let (_, author) = self.known_message(id).await?;
        if author != me {
            return Err(ClientError::Invalid(format!(
                "only {author} can change their message"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_words_never_become_fts_syntax() {
        assert_eq!(
            fts_query("launch plan").as_deref(),
            Some("\"launch\" \"plan\"")
        );
        assert_eq!(fts_query("deplo*").as_deref(), Some("\"deplo\"*"));
        assert_eq!(
            fts_query("\"a\" OR b) NEAR(").as_deref(),
            Some("\"a\" \"OR\" \"b)\" \"NEAR(\"")
        );
        assert_eq!(fts_query("   "), None);
        assert_eq!(fts_query("\"\""), None);
    }
}
