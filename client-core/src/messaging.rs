//! Threads, reactions, edits, deletes, direct messages and search: the
//! calls that send them, and the local history they read. How received
//! content changes that history is in `receive/`, one file per kind.
//!
//! Search runs on the local full-text index (SQLite FTS5); nothing about it
//! leaves the device.

use conclave_proto::ErrorCode;
use sqlx::{Row, SqliteConnection};

use crate::channel::validate_channel_name;
use crate::client::Client;
use crate::content::{Content, FileRef, is_message_id, mentions_in, reaction_emoji};
use crate::error::{ClientError, Result};
use crate::history_entry::{FileInfo, HistoryEntry, Reaction};

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

pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
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

/// A message about to be added to a channel's history.
pub(crate) struct NewRow<'a> {
    pub(crate) group_id: &'a str,
    pub(crate) seq: u64,
    pub(crate) sender: &'a str,
    pub(crate) device: &'a str,
    pub(crate) message_id: &'a str,
    /// `text`, `reply`, `file`, `command`, `notice` or `unsupported`.
    pub(crate) kind: &'a str,
    pub(crate) parent: Option<&'a str>,
    pub(crate) body: &'a str,
    pub(crate) mentions: &'a [String],
    /// Unix time this device received it.
    pub(crate) at: u64,
}

/// Adds `row` to the history (once: a row already at its place stays) and
/// to the full-text index.
pub(crate) async fn insert_row(tx: &mut SqliteConnection, row: &NewRow<'_>) -> Result<()> {
    let inserted = sqlx::query(
        "INSERT OR IGNORE INTO history
           (group_id, seq, sender, device, body, message_id, kind, parent_id, mentions, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(row.group_id)
    .bind(to_i64(row.seq))
    .bind(row.sender)
    .bind(row.device)
    .bind(row.body)
    .bind(row.message_id)
    .bind(row.kind)
    .bind(row.parent)
    .bind(row.mentions.join(" "))
    .bind(to_i64(row.at))
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if inserted && !row.body.is_empty() {
        reindex(tx, row.group_id, row.seq, Some(row.body)).await?;
    }
    Ok(())
}

/// Keeps the full-text index in step with one history row.
pub(crate) async fn reindex(
    tx: &mut SqliteConnection,
    group_id: &str,
    seq: u64,
    body: Option<&str>,
) -> Result<()> {
    sqlx::query("DELETE FROM search_index WHERE group_id = $1 AND seq = $2")
        .bind(group_id)
        .bind(to_i64(seq))
        .execute(&mut *tx)
        .await?;
    if let Some(body) = body {
        sqlx::query("INSERT INTO search_index (body, group_id, seq) VALUES ($1, $2, $3)")
            .bind(body)
            .bind(group_id)
            .bind(to_i64(seq))
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// What [`Client::react`] did.
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

/// The message a reply to `id` belongs under: `id` itself, or the root of
/// the thread `id` is a reply in; `None` if this device does not have `id`.
pub(crate) async fn thread_root(
    tx: &mut SqliteConnection,
    group_id: &str,
    id: &str,
) -> Result<Option<String>> {
    let parent: Option<Option<String>> =
        sqlx::query_scalar("SELECT parent_id FROM history WHERE group_id = $1 AND message_id = $2")
            .bind(group_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    Ok(parent.map(|root| root.unwrap_or_else(|| id.to_owned())))
}

/// The seq and author of message `id` in a group.
pub(crate) async fn find(
    tx: &mut SqliteConnection,
    group_id: &str,
    id: &str,
) -> Result<Option<(u64, String)>> {
    Ok(
        sqlx::query("SELECT seq, sender FROM history WHERE group_id = $1 AND message_id = $2")
            .bind(group_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| (r.get::<i64, _>(0).try_into().unwrap_or(0), r.get(1))),
    )
}

const ENTRY_COLUMNS: &str = "seq, sender, device, body, message_id, parent_id, kind, edited, deleted, mentions, at, attachment, shared_by";

/// The file reference (with its key) of message `id`, if it shares one.
pub(crate) async fn attachment_of(
    db: &mut SqliteConnection,
    group_id: &str,
    id: &str,
) -> Result<Option<FileRef>> {
    let text: Option<String> = sqlx::query(
        "SELECT attachment FROM history WHERE group_id = $1 AND message_id = $2 AND deleted = 0",
    )
    .bind(group_id)
    .bind(id)
    .fetch_optional(&mut *db)
    .await?
    .and_then(|r| r.get(0));
    text.map(|t| serde_json::from_str(&t).map_err(ClientError::store))
        .transpose()
}

fn entry_from_row(row: &sqlx::sqlite::SqliteRow, channel: &str) -> HistoryEntry {
    let mentions: String = row.get(9);
    HistoryEntry {
        channel: channel.to_owned(),
        seq: row.get::<i64, _>(0).try_into().unwrap_or(0),
        sender: row.get(1),
        device: row.get(2),
        text: row.get(3),
        id: row.get::<Option<String>, _>(4).unwrap_or_default(),
        parent: row.get(5),
        unsupported: row.get::<String, _>(6) == "unsupported",
        edited: row.get::<i64, _>(7) != 0,
        deleted: row.get::<i64, _>(8) != 0,
        mentions: mentions.split_whitespace().map(str::to_owned).collect(),
        at: row.get::<i64, _>(10).try_into().unwrap_or(0),
        reactions: Vec::new(),
        file: row
            .get::<Option<String>, _>(11)
            .and_then(|t| serde_json::from_str::<FileRef>(&t).ok())
            .map(|f| FileInfo {
                name: f.name.clone(),
                size: f.size,
                sha256: f.sha256.clone(),
            }),
        shared_by: row.get(12),
    }
}

/// Reactions on each of `entries`, filled in.
async fn with_reactions(
    db: &mut SqliteConnection,
    group_id: &str,
    mut entries: Vec<HistoryEntry>,
) -> Result<Vec<HistoryEntry>> {
    let rows = sqlx::query(
        "SELECT message_id, emoji, username FROM reactions WHERE group_id = $1
         ORDER BY message_id, emoji, username",
    )
    .bind(group_id)
    .fetch_all(&mut *db)
    .await?;
    for row in rows {
        let (id, emoji, user): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        if let Some(entry) = entries.iter_mut().find(|e| e.id == id) {
            match entry.reactions.iter_mut().find(|r| r.emoji == emoji) {
                Some(reaction) => reaction.users.push(user),
                None => entry.reactions.push(Reaction {
                    emoji,
                    users: vec![user],
                }),
            }
        }
    }
    Ok(entries)
}

pub(crate) async fn entry(
    tx: &mut SqliteConnection,
    group_id: &str,
    channel: &str,
    id: &str,
) -> Result<HistoryEntry> {
    let row = sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS} FROM history WHERE group_id = $1 AND message_id = $2"
    ))
    .bind(group_id)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    let entries = with_reactions(tx, group_id, vec![entry_from_row(&row, channel)]).await?;
    entries
        .into_iter()
        .next()
        .ok_or_else(|| ClientError::store("history row vanished"))
}

/// A channel's history, in order, with reactions.
pub(crate) async fn history_of(
    db: &mut SqliteConnection,
    group_id: &str,
    channel: &str,
) -> Result<Vec<HistoryEntry>> {
    let rows = sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS} FROM history WHERE group_id = $1 ORDER BY seq"
    ))
    .bind(group_id)
    .fetch_all(&mut *db)
    .await?;
    let entries = rows.iter().map(|r| entry_from_row(r, channel)).collect();
    with_reactions(db, group_id, entries).await
}

/// The local name of the group of this account's own devices (hidden from
/// the channel list).
const SELF_GROUP_NAME: &str = "@self";

/// The groups of this account's own devices that this device is in.
async fn own_groups(db: &mut SqliteConnection) -> Result<Vec<String>> {
    Ok(
        sqlx::query("SELECT group_id FROM channels WHERE kind = 'self' AND active = 1")
            .fetch_all(&mut *db)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect(),
    )
}

/// The most people a group direct message may have, this account included,
/// unless the workspace sets its own limit (`conclave-server admin policy
/// --max-group-dm`, reported in [`crate::AccountStatus::max_group_dm`]).
pub const MAX_DIRECT_PARTICIPANTS: usize = 9;

impl Client {
    /// Opens the direct message with `users` (one for a DM, several for a
    /// group DM, up to the workspace's limit in all), creating it the
    /// first time, and returns its local name (`@bob`, `@bob,carol`).
    pub async fn direct(&self, users: &[&str]) -> Result<String> {
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
            return Ok(name);
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
        self.create_channel(&name).await?;
        let group_id = {
            let mut db = self.inner.db.lock().await;
            sqlx::query("UPDATE channels SET kind = 'dm' WHERE name = $1")
                .bind(&name)
                .execute(&mut *db)
                .await?;
            self.group_of(&mut db, &name).await?
        };
        // Everyone at once, with the packages claimed above.
        self.commit(&group_id, move |group, provider, key| {
            let (commit, welcome, group_info) = group
                .add_members(provider, key, &packages)
                .map_err(ClientError::mls)?;
            Ok((commit, Some(welcome), group_info))
        })
        .await?;
        Ok(name)
    }

    /// Sets a channel's topic for every member (encrypted, like everything
    /// members say).
    pub async fn set_topic(&self, channel: &str, topic: &str) -> Result<u64> {
        let content = Content::Topic {
            topic: topic.to_owned(),
        };
        if !content.is_well_formed() {
            return Err(ClientError::Invalid(format!(
                "a topic is at most {} bytes",
                crate::content::MAX_TOPIC
            )));
        }
        let seq = self.send_content(channel, content).await?;
        // A public channel's topic is listed for the workspace as well.
        let (group_id, public) = {
            let mut db = self.inner.db.lock().await;
            let group_id = self.group_of(&mut db, channel).await?;
            let public = sqlx::query("SELECT kind FROM channels WHERE group_id = $1")
                .bind(&group_id)
                .fetch_one(&mut *db)
                .await?
                .get::<String, _>(0)
                == "public";
            (group_id, public)
        };
        if public {
            self.signed(
                "POST",
                &format!("/v1/groups/{group_id}/topic"),
                Some(&serde_json::json!({ "topic": topic })),
            )
            .await?;
        }
        Ok(seq)
    }

    /// Renames a channel for every member: the new name travels encrypted,
    /// and a public channel is renamed in the workspace's directory too
    /// (refused there, with nothing sent, if another public channel has the
    /// name). Any member may, as with the topic. A direct message keeps the
    /// names of its people.
    pub async fn rename_channel(&self, channel: &str, new_name: &str) -> Result<u64> {
        validate_channel_name(new_name)?;
        let (group_id, kind) = {
            let mut db = self.inner.db.lock().await;
            let group_id = self.group_of(&mut db, channel).await?;
            let kind: String = sqlx::query_scalar("SELECT kind FROM channels WHERE group_id = $1")
                .bind(&group_id)
                .fetch_one(&mut *db)
                .await?;
            let taken = sqlx::query("SELECT 1 FROM channels WHERE name = $1")
                .bind(new_name)
                .fetch_optional(&mut *db)
                .await?
                .is_some();
            if taken && new_name != channel {
                return Err(ClientError::ChannelExists(new_name.to_owned()));
            }
            (group_id, kind)
        };
        if kind == "dm" || kind == "self" {
            return Err(ClientError::Invalid(format!(
                "{channel} is a direct message: it is named after its people and cannot be renamed"
            )));
        }
        if new_name == channel {
            return Err(ClientError::Invalid(format!(
                "{channel} is already called {new_name}"
            )));
        }
        self.active_channel(channel).await?;
        if kind == "public" {
            self.signed(
                "POST",
                &format!("/v1/groups/{group_id}/name"),
                Some(&serde_json::json!({ "name": new_name })),
            )
            .await?;
        }
        let seq = self
            .send_content(
                channel,
                Content::Rename {
                    name: new_name.to_owned(),
                },
            )
            .await?;
        // This device goes by the new name at once (its own copy of the
        // rename, fetched later, then changes nothing).
        let mut db = self.inner.db.lock().await;
        sqlx::query("UPDATE channels SET name = $2 WHERE group_id = $1")
            .bind(&group_id)
            .bind(new_name)
            .execute(&mut *db)
            .await?;
        Ok(seq)
    }

    /// Marks everything in a channel as read, on this device and, through
    /// the account's own encrypted `self` group, on its other devices.
    pub async fn mark_read(&self, channel: &str) -> Result<()> {
        let (group_id, read, moved, mine, devices) = {
            let mut db = self.inner.db.lock().await;
            let group_id = self.group_of(&mut db, channel).await?;
            let read: i64 =
                sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM history WHERE group_id = $1")
                    .bind(&group_id)
                    .fetch_one(&mut *db)
                    .await?
                    .get(0);
            let moved = sqlx::query(
                "UPDATE channels SET read_seq = $2 WHERE group_id = $1 AND read_seq < $2",
            )
            .bind(&group_id)
            .bind(read)
            .execute(&mut *db)
            .await?
            .rows_affected()
                == 1;
            let devices: i64 = sqlx::query("SELECT COUNT(*) FROM known_devices WHERE revoked = 0")
                .fetch_one(&mut *db)
                .await?
                .get(0);
            (group_id, read, moved, own_groups(&mut db).await?, devices)
        };
        if !moved {
            return Ok(());
        }
        let mine = if mine.is_empty() && devices > 1 {
            // The first read position worth sharing: make the account's own
            // group (its other devices are added by the sync that follows).
            self.create_group_named(SELF_GROUP_NAME, None, "self")
                .await?;
            let mut db = self.inner.db.lock().await;
            own_groups(&mut db).await?
        } else {
            mine
        };
        let marker = Content::ReadUpTo {
            channel: group_id,
            seq: u64::try_from(read).unwrap_or(0),
        };
        for own in mine {
            if let Err(e) = self.send_payload(&own, &marker).await {
                // The position is kept here; the other devices catch up later.
                tracing::warn!(error = %e, "could not share a read position");
            }
        }
        Ok(())
    }

    /// Replies in the thread of message `parent` (an id from the history).
    pub async fn reply(&self, channel: &str, parent: &str, text: &str) -> Result<u64> {
        if !is_message_id(parent) {
            return Err(ClientError::Invalid(format!(
                "{parent:?} is not a message id"
            )));
        }
        self.known_message(channel, parent).await?;
        // Replying to a reply answers in its thread: under the root.
        let root = {
            let mut db = self.inner.db.lock().await;
            let group_id = self.group_of(&mut db, channel).await?;
            thread_root(&mut db, &group_id, parent)
                .await?
                .unwrap_or_else(|| parent.to_owned())
        };
        let content = Content::Reply {
            parent: root,
            body: text.to_owned(),
            mentions: mentions_in(text),
        };
        self.send_content(channel, content).await
    }

    /// Adds (or with `add == false` takes back) a reaction to a message.
    /// `emoji` is an emoji or a `:shortcode:` (GitHub's names, as Slack
    /// mostly uses them), sent as the emoji itself; anything else is
    /// refused. Adding a reaction this account already gave, or taking back
    /// one it never gave, changes nothing and sends nothing.
    pub async fn react(
        &self,
        channel: &str,
        message: &str,
        emoji: &str,
        add: bool,
    ) -> Result<Reacted> {
        let emoji = reaction_emoji(emoji)?;
        self.known_message(channel, message).await?;
        let me = self.identity()?.username.to_string();
        let given = {
            let mut db = self.inner.db.lock().await;
            let group_id = self.group_of(&mut db, channel).await?;
            sqlx::query(
                "SELECT 1 FROM reactions
                 WHERE group_id = $1 AND message_id = $2 AND username = $3 AND emoji = $4",
            )
            .bind(&group_id)
            .bind(message)
            .bind(&me)
            .bind(&emoji)
            .fetch_optional(&mut *db)
            .await?
            .is_some()
        };
        if given == add {
            return Ok(Reacted::Unchanged { emoji });
        }
        let content = Content::Reaction {
            target: message.to_owned(),
            emoji: emoji.clone(),
            add,
        };
        let seq = self.send_content(channel, content).await?;
        Ok(Reacted::Sent { emoji, seq })
    }

    /// Replaces the text of one of this account's messages.
    pub async fn edit(&self, channel: &str, message: &str, text: &str) -> Result<u64> {
        self.own_message(channel, message).await?;
        let content = Content::Edit {
            target: message.to_owned(),
            body: text.to_owned(),
        };
        self.send_content(channel, content).await
    }

    /// Deletes one of this account's messages: every member keeps a tombstone.
    pub async fn delete(&self, channel: &str, message: &str) -> Result<u64> {
        self.own_message(channel, message).await?;
        let file = {
            let mut db = self.inner.db.lock().await;
            let group_id = self.group_of(&mut db, channel).await?;
            attachment_of(&mut db, &group_id, message).await?
        };
        let content = Content::Delete {
            target: message.to_owned(),
        };
        let seq = self.send_content(channel, content).await?;
        if let Some(file) = file {
            // Every member now has a tombstone; nobody needs the ciphertext.
            self.forget_blob(&file.blob).await;
        }
        Ok(seq)
    }

    /// The id of the message at `seq` in a channel (what the CLI shows as `#seq`).
    pub async fn message_id_at(&self, channel: &str, seq: u64) -> Result<String> {
        let mut db = self.inner.db.lock().await;
        let group_id = self.group_of(&mut db, channel).await?;
        sqlx::query("SELECT message_id FROM history WHERE group_id = $1 AND seq = $2")
            .bind(&group_id)
            .bind(to_i64(seq))
            .fetch_optional(&mut *db)
            .await?
            .and_then(|r| r.get::<Option<String>, _>(0))
            .ok_or_else(|| ClientError::Invalid(format!("no message #{seq} in {channel}")))
    }

    /// A thread: its first message, then every reply, in order.
    pub async fn thread(&self, channel: &str, parent: &str) -> Result<Vec<HistoryEntry>> {
        let history = self.history(channel).await?;
        let thread: Vec<HistoryEntry> = history
            .into_iter()
            .filter(|e| e.id == parent || e.parent.as_deref() == Some(parent))
            .collect();
        if thread.first().is_none_or(|first| first.id != parent) {
            return Err(ClientError::Invalid(format!(
                "no message {parent} in {channel}"
            )));
        }
        Ok(thread)
    }

    /// Searches the decrypted history on this device, best matches first.
    pub async fn search(&self, query: &SearchQuery) -> Result<Vec<HistoryEntry>> {
        let Some(fts) = fts_query(&query.words) else {
            return Err(ClientError::Invalid("search for at least one word".into()));
        };
        let mut db = self.inner.db.lock().await;
        let group = match &query.channel {
            Some(channel) => Some(self.group_of(&mut db, channel).await?),
            None => None,
        };
        let rows = sqlx::query(
            "SELECT h.seq, h.sender, h.device, h.body, h.message_id, h.parent_id, h.kind,
                    h.edited, h.deleted, h.mentions, h.at, h.attachment, h.shared_by, c.name, h.group_id
             FROM search_index s
             JOIN history h ON h.group_id = s.group_id AND h.seq = s.seq
             JOIN channels c ON c.group_id = h.group_id
             WHERE search_index MATCH $1
               AND ($2 IS NULL OR h.group_id = $2)
               AND ($3 IS NULL OR h.sender = $3)
               AND ($4 IS NULL OR h.at >= $4)
               AND ($5 IS NULL OR h.at < $5)
               AND h.deleted = 0
             ORDER BY s.rank
             LIMIT 200",
        )
        .bind(&fts)
        .bind(group)
        .bind(query.author.as_deref())
        .bind(query.since.map(to_i64))
        .bind(query.until.map(to_i64))
        .fetch_all(&mut *db)
        .await?;
        let mut found = Vec::with_capacity(rows.len());
        for row in &rows {
            let channel: String = row.get(13);
            let group_id: String = row.get(14);
            let entry = entry_from_row(row, &channel);
            found.extend(with_reactions(&mut db, &group_id, vec![entry]).await?);
        }
        Ok(found)
    }

    async fn group_of(&self, db: &mut SqliteConnection, channel: &str) -> Result<String> {
        Ok(self.channel_by_name(db, channel).await?.0)
    }

    async fn known_message(&self, channel: &str, id: &str) -> Result<(u64, String)> {
        let mut db = self.inner.db.lock().await;
        let group_id = self.group_of(&mut db, channel).await?;
        find(&mut db, &group_id, id)
            .await?
            .ok_or_else(|| ClientError::Invalid(format!("no message {id} in {channel}")))
    }

    async fn own_message(&self, channel: &str, id: &str) -> Result<()> {
        let me = self.identity()?.username.to_string();
        let (_, author) = self.known_message(channel, id).await?;
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
