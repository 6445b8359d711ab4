//! What travels inside an MLS application message: a versioned JSON
//! envelope, and the message id that rides in the MLS authenticated data.
//!
//! ```text
//! {"v":1,"kind":"text","body":"hi @bob","mentions":["bob"]}
//! {"v":1,"kind":"reply","parent":"<message id>","body":"…","mentions":[]}
//! {"v":1,"kind":"reaction","target":"<message id>","emoji":"👍","add":true}
//! {"v":1,"kind":"edit","target":"<message id>","body":"…"}
//! {"v":1,"kind":"delete","target":"<message id>"}
//! {"v":1,"kind":"channel_info","name":"general"}
//! {"v":1,"kind":"file","blob":"<blob id>","name":"plan.pdf","size":1234,
//!  "key":"<base64>","nonce":"<base64>","sha256":"<hex>","caption":""}
//! ```
//!
//! A file's key and the hash of its plaintext travel only here, inside MLS;
//! the relay holds the sealed chunks under a random blob id.
//!
//! Any envelope may also carry `"log"`: the newest transparency-log
//! checkpoint its sender verified (a signed note), gossiped to the members
//! (see `gossip.rs`). Receivers that do not know the field ignore it.
//!
//! The message id (16 random bytes, hex) is not in the JSON: it is the
//! authenticated data of the MLS message (`conclave-message-v1:<id>`), so
//! the sender's signature covers it and a member who replays someone's
//! content under a fresh MLS message cannot give it a new id. Receivers
//! keep every id they have seen per channel and drop a repeat.
//!
//! A client that meets a version or kind it does not know keeps the message
//! as "unsupported" and goes on: newer clients can add kinds freely.

use rand::RngCore;
use serde::{Deserialize, Serialize};

/// The envelope version this client writes.
pub const CONTENT_VERSION: u32 = 1;

const AAD_PREFIX: &str = "conclave-message-v1:";

/// Longest text body, in bytes.
pub const MAX_BODY: usize = 16 * 1024;

/// Longest topic, in bytes.
pub const MAX_TOPIC: usize = 250;

/// Longest reaction, in characters (an emoji sequence, or a short word).
pub const MAX_REACTION_CHARS: usize = 32;

/// A fresh message id.
pub fn new_message_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The MLS authenticated data that carries `id`.
pub fn message_aad(id: &str) -> Vec<u8> {
    format!("{AAD_PREFIX}{id}").into_bytes()
}

/// The message id in MLS authenticated data, if it is well formed.
pub fn message_id_from_aad(aad: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(aad).ok()?;
    let id = text.strip_prefix(AAD_PREFIX)?;
    is_message_id(id).then(|| id.to_owned())
}

/// Whether `id` has the shape of a message id (32 lowercase hex digits).
pub fn is_message_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// One piece of content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Content {
    /// A message, mentioning users by name.
    Text {
        /// The text.
        body: String,
        /// Usernames mentioned.
        #[serde(default)]
        mentions: Vec<String>,
    },
    /// A reply in the thread of `parent`.
    Reply {
        /// The thread's first message.
        parent: String,
        /// The text.
        body: String,
        /// Usernames mentioned.
        #[serde(default)]
        mentions: Vec<String>,
    },
    /// A reaction added to, or taken off, `target`.
    Reaction {
        /// The message reacted to.
        target: String,
        /// The emoji.
        emoji: String,
        /// `true` to add, `false` to remove.
        add: bool,
    },
    /// New text for the sender's own message `target`.
    Edit {
        /// The message edited.
        target: String,
        /// Its new text.
        body: String,
    },
    /// The sender's own message `target` is deleted (a tombstone stays).
    Delete {
        /// The message deleted.
        target: String,
    },
    /// The channel's name, for members who joined.
    ChannelInfo {
        /// The name. For a direct message, `@` and the other participants
        /// as the sender sees them (`@bob,carol`).
        name: String,
        /// A direct message rather than a channel.
        #[serde(default)]
        direct: bool,
        /// The channel's topic.
        #[serde(default)]
        topic: String,
        /// `public` for a channel listed in the workspace directory, `self`
        /// for the group of one account's own devices; empty otherwise.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        scope: String,
    },
    /// A new name for the channel (not for a direct message, nor the group
    /// of one account's own devices).
    Rename {
        /// The new name.
        name: String,
    },
    /// A new topic for the channel.
    Topic {
        /// The topic (empty to clear it).
        topic: String,
    },
    /// A file, sealed and uploaded before this message was sent.
    File(FileRef),
    /// A slash command for the bot that answers it (a member of the channel).
    Command {
        /// The command, without the slash.
        name: String,
        /// Everything after it.
        #[serde(default)]
        args: String,
        /// The bot it is for, from the workspace's registry.
        bot: String,
    },
    /// An earlier part of the channel's history, sealed for one newcomer.
    HistoryBundle {
        /// The member it is for.
        recipient: String,
        /// How many messages it holds.
        messages: u64,
        /// Where it is and how to open it.
        bundle: FileRef,
    },
    /// Sent only among one account's own devices (in their `self` group):
    /// this account has read `channel` (a group id) up to `seq`.
    ReadUpTo {
        /// The channel's MLS group id (hex).
        channel: String,
        /// The last message read.
        seq: u64,
    },
}

/// Where a shared file is and how to open it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// The relay's id for the sealed chunks.
    pub blob: String,
    /// The file's name, as the sender had it (no directories).
    pub name: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// The file key (base64): whoever has it can read the file.
    pub key: SecretText,
    /// The STREAM nonce prefix (base64).
    pub nonce: String,
    /// Lowercase hex SHA-256 of the plaintext, checked after download.
    pub sha256: String,
    /// Text shown with the file.
    #[serde(default)]
    pub caption: String,
}

/// Text that is a secret (a file key): wiped on drop, never in `Debug`.
#[derive(
    Clone, PartialEq, Eq, Serialize, Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop,
)]
#[serde(transparent)]
pub struct SecretText(String);

impl SecretText {
    /// Wraps a secret.
    pub fn new(text: String) -> Self {
        Self(text)
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText(<redacted>)")
    }
}

/// Longest file name, in bytes.
pub const MAX_FILE_NAME: usize = 255;

/// Whether `name` is a plain file name: no directories, no control
/// characters, not `.` or `..`, so a download can never land elsewhere.
pub fn is_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_FILE_NAME
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c.is_control() || matches!(c, '/' | '\\'))
}

#[derive(Serialize)]
struct OutgoingEnvelope<'a> {
    v: u32,
    #[serde(flatten)]
    content: &'a Content,
    /// The newest transparency-log checkpoint the sender verified (a signed
    /// note), gossiped to the members: see `gossip.rs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<&'a str>,
}

#[derive(Deserialize)]
struct IncomingCheckpoint {
    log: Option<String>,
}

/// The checkpoint a sender gossiped in `plaintext`, if any.
pub(crate) fn gossiped_checkpoint(plaintext: &[u8]) -> Option<String> {
    serde_json::from_slice::<IncomingCheckpoint>(plaintext)
        .ok()?
        .log
        .filter(|note| note.len() <= MAX_GOSSIPED_NOTE)
}

/// The longest checkpoint note a receiver looks at (a real one is a few
/// hundred bytes).
const MAX_GOSSIPED_NOTE: usize = 4096;

#[derive(Deserialize)]
struct IncomingVersion {
    v: u32,
}

/// What a receiver makes of a plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// Content this client understands.
    Known(Content),
    /// A newer version or kind, or something malformed: shown as
    /// "unsupported message", never an error.
    Unsupported,
}

impl Content {
    /// The plaintext to encrypt.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with_checkpoint(None)
    }

    /// The plaintext to encrypt, carrying the sender's newest verified
    /// checkpoint for the members to compare with theirs.
    pub(crate) fn encode_with_checkpoint(&self, checkpoint: Option<&str>) -> Vec<u8> {
        // Serializing these plain structs cannot fail.
        serde_json::to_vec(&OutgoingEnvelope {
            v: CONTENT_VERSION,
            content: self,
            log: checkpoint,
        })
        .unwrap_or_default()
    }

    /// Reads a plaintext, whatever it holds.
    pub fn decode(plaintext: &[u8]) -> Decoded {
        let Ok(IncomingVersion { v }) = serde_json::from_slice::<IncomingVersion>(plaintext) else {
            return Decoded::Unsupported;
        };
        if v != CONTENT_VERSION {
            return Decoded::Unsupported;
        }
        match serde_json::from_slice::<Content>(plaintext) {
            Ok(content) if content.is_well_formed() => Decoded::Known(content),
            _ => Decoded::Unsupported,
        }
    }

    /// Refuses a message text that is blank or over [`MAX_BODY`], saying
    /// which, in terms a person reads. Senders check it first; receivers
    /// enforce the same limit in [`Content::is_well_formed`].
    pub fn check_text(&self) -> Result<(), crate::ClientError> {
        let (Content::Text { body, .. } | Content::Reply { body, .. } | Content::Edit { body, .. }) =
            self
        else {
            return Ok(());
        };
        if body.trim().is_empty() {
            return Err(crate::ClientError::Invalid(
                "the message is empty (or only spaces): nothing was sent".into(),
            ));
        }
        if body.len() > MAX_BODY {
            return Err(crate::ClientError::Invalid(format!(
                "the message is {:.1} KiB; a message can be at most {} KiB ({MAX_BODY} bytes): \
                 split it, or share it as a file (`conclave upload`)",
                body.len() as f64 / 1024.0,
                MAX_BODY / 1024
            )));
        }
        Ok(())
    }

    /// Checks the limits a receiver enforces too.
    pub fn is_well_formed(&self) -> bool {
        let body_ok = |body: &str| !body.is_empty() && body.len() <= MAX_BODY;
        match self {
            Content::Text { body, .. } => body_ok(body),
            Content::Reply { parent, body, .. } => is_message_id(parent) && body_ok(body),
            Content::Reaction { target, emoji, .. } => is_message_id(target) && is_reaction(emoji),
            Content::Edit { target, body } => is_message_id(target) && body_ok(body),
            Content::Delete { target } => is_message_id(target),
            Content::Rename { name } => !name.is_empty() && name.len() <= 256,
            Content::ChannelInfo {
                name, topic, scope, ..
            } => {
                !name.is_empty()
                    && name.len() <= 256
                    && topic.len() <= MAX_TOPIC
                    && ["", "public", "self"].contains(&scope.as_str())
            }
            Content::Command { name, args, bot } => {
                conclave_crypto::is_command_name(name)
                    && args.len() <= MAX_BODY
                    && conclave_crypto::Username::parse(bot).is_ok()
            }
            Content::HistoryBundle {
                recipient, bundle, ..
            } => {
                conclave_crypto::Username::parse(recipient).is_ok()
                    && Content::File(bundle.clone()).is_well_formed()
            }
            Content::ReadUpTo { channel, .. } => {
                !channel.is_empty()
                    && channel.len() <= 128
                    && channel.bytes().all(|b| b.is_ascii_hexdigit())
            }
            Content::Topic { topic } => topic.len() <= MAX_TOPIC,
            Content::File(file) => {
                is_message_id(&file.blob)
                    && is_file_name(&file.name)
                    && file.sha256.len() == 64
                    && file
                        .sha256
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                    && conclave_crypto::attachment::FileKey::from_base64(
                        file.key.expose(),
                        &file.nonce,
                    )
                    .is_ok()
                    && file.caption.len() <= MAX_BODY
            }
        }
    }
}

/// The emoji a reaction typed as `input` stands for: an emoji (its fully
/// qualified form), or the emoji of a `:shortcode:`. Anything else is
/// refused, naming the problem.
pub fn reaction_emoji(input: &str) -> Result<String, crate::ClientError> {
    let input = input.trim();
    let found = match input
        .strip_prefix(':')
        .and_then(|rest| rest.strip_suffix(':'))
    {
        Some(shortcode) => emojis::get_by_shortcode(shortcode).ok_or_else(|| {
            crate::ClientError::Invalid(format!(
                "no emoji is called {input}: use an emoji, or a shortcode such as :tada: or :+1:"
            ))
        })?,
        None => emojis::get(input).ok_or_else(|| {
            crate::ClientError::Invalid(format!(
                "{input:?} is not an emoji: react with an emoji, or a shortcode such as :tada:"
            ))
        })?,
    };
    Ok(found.as_str().to_owned())
}

/// A reaction as it travels: 1 to 32 characters, no whitespace or control
/// characters. Sending takes emoji only ([`reaction_emoji`]); receiving
/// still shows what older clients sent.
pub fn is_reaction(emoji: &str) -> bool {
    let count = emoji.chars().count();
    (1..=MAX_REACTION_CHARS).contains(&count)
        && !emoji.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The `@name` mentions in a text, in order, each once.
pub fn mentions_in(body: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for word in body.split(|c: char| c.is_whitespace()) {
        let Some(name) = word.strip_prefix('@') else {
            continue;
        };
        let name: String = name
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(*c))
            .collect();
        let name = name.trim_end_matches(['.', '-', '_']).to_owned();
        if conclave_crypto::Username::parse(&name).is_ok() && !found.contains(&name) {
            found.push(name);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_round_trips_with_its_version() {
        let id = new_message_id();
        let all = [
            Content::Text {
                body: "hi @bob".into(),
                mentions: vec!["bob".into()],
            },
            Content::Reply {
                parent: id.clone(),
                body: "in thread".into(),
                mentions: vec![],
            },
            Content::Reaction {
                target: id.clone(),
                emoji: "\u{1f44d}".into(),
                add: true,
            },
            Content::Edit {
                target: id.clone(),
                body: "fixed".into(),
            },
            Content::Delete { target: id },
            Content::ChannelInfo {
                name: "general".into(),
                direct: false,
                topic: "launch prep".into(),
                scope: "public".into(),
            },
            Content::ReadUpTo {
                channel: "ab12".into(),
                seq: 42,
            },
            Content::Topic {
                topic: "new topic".into(),
            },
            Content::File(sample_file()),
        ];
        for content in all {
            let plaintext = content.encode();
            assert!(plaintext.starts_with(b"{\"v\":1,"), "{plaintext:?}");
            assert_eq!(Content::decode(&plaintext), Decoded::Known(content));
        }
    }

    fn sample_file() -> FileRef {
        let (key, nonce) = conclave_crypto::attachment::FileKey::generate().to_base64();
        FileRef {
            blob: new_message_id(),
            name: "plan.pdf".into(),
            size: 1234,
            key: SecretText::new(key.to_string()),
            nonce,
            sha256: "ab".repeat(32),
            caption: "the plan".into(),
        }
    }

    #[test]
    fn file_references_are_checked_and_keys_never_print() {
        let good = sample_file();
        assert!(!format!("{good:?}").contains(good.key.expose()));
        assert!(Content::File(good.clone()).is_well_formed());
        for bad in [
            FileRef {
                name: "../etc/passwd".into(),
                ..good.clone()
            },
            FileRef {
                name: "..".into(),
                ..good.clone()
            },
            FileRef {
                name: "a\nb".into(),
                ..good.clone()
            },
            FileRef {
                blob: "nope".into(),
                ..good.clone()
            },
            FileRef {
                sha256: "AB".repeat(32),
                ..good.clone()
            },
            FileRef {
                key: SecretText::new("c2hvcnQ=".into()),
                ..good.clone()
            },
        ] {
            assert!(!Content::File(bad).is_well_formed());
        }
    }

    #[test]
    fn anything_unknown_is_unsupported_not_an_error() {
        for plaintext in [
            &br#"{"v":2,"kind":"text","body":"from the future"}"#[..],
            br#"{"v":1,"kind":"poll","question":"lunch?"}"#,
            br#"{"v":1,"kind":"reaction","target":"nope","emoji":"x","add":true}"#,
            br#"{"v":1,"kind":"text","body":""}"#,
            b"not json",
            b"",
        ] {
            assert_eq!(Content::decode(plaintext), Decoded::Unsupported);
        }
    }

    #[test]
    fn an_older_channel_info_still_reads() {
        assert_eq!(
            Content::decode(br#"{"v":1,"kind":"channel_info","name":"ops"}"#),
            Decoded::Known(Content::ChannelInfo {
                name: "ops".into(),
                direct: false,
                topic: String::new(),
                scope: String::new(),
            })
        );
    }

    #[test]
    fn a_gossiped_checkpoint_rides_beside_any_content() {
        let content = Content::Text {
            body: "hi".into(),
            mentions: Vec::new(),
        };
        let note = "log.example\n5\nAAAA\n\n\u{2014} log.example abcd\n";
        let plaintext = content.encode_with_checkpoint(Some(note));
        assert_eq!(Content::decode(&plaintext), Decoded::Known(content.clone()));
        assert_eq!(gossiped_checkpoint(&plaintext).as_deref(), Some(note));
        assert_eq!(gossiped_checkpoint(&content.encode()), None);
        assert_eq!(gossiped_checkpoint(b"not json"), None);
    }

    #[test]
    fn ids_ride_in_the_authenticated_data() {
        let id = new_message_id();
        assert_eq!(message_id_from_aad(&message_aad(&id)), Some(id));
        assert_eq!(message_id_from_aad(b""), None);
        assert_eq!(message_id_from_aad(b"conclave-message-v1:XYZ"), None);
    }

    #[test]
    fn mentions_are_found_once_each() {
        assert_eq!(
            mentions_in("@bob, ask @carol. and @bob again; mail@x no @ or @Eve"),
            ["bob", "carol"]
        );
    }

    #[test]
    fn reactions_are_short_and_single() {
        assert_eq!(reaction_emoji(":tada:").unwrap(), "\u{1f389}");
        assert_eq!(reaction_emoji("\u{1f680}").unwrap(), "\u{1f680}");
        assert_eq!(reaction_emoji(" :+1: ").unwrap(), "\u{1f44d}");
        assert!(reaction_emoji(":no-such-emoji:").is_err());
        assert!(reaction_emoji("lol").is_err());
        assert!(reaction_emoji("").is_err());
        assert!(is_reaction("\u{1f44d}"));
        assert!(is_reaction(":tada:"));
        assert!(!is_reaction(""));
        assert!(!is_reaction("two words"));
        assert!(!is_reaction(&"x".repeat(33)));
    }
}
