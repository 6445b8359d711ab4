//! One message of a channel's history as this device shows it: text,
//! thread, reactions, file, and whether it was edited or deleted.

/// One message of a channel's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The channel's local name, as it was when this entry was read
    /// (display data: names change).
    pub channel: String,
    /// The channel's MLS group id (hex): what names it for good, for
    /// [`Client::channel`](crate::Client::channel).
    pub group_id: String,
    /// Its position in the channel's order.
    pub seq: u64,
    /// Who sent it.
    pub sender: String,
    /// From which of their devices.
    pub device: String,
    /// The text (empty once deleted, or if unsupported).
    pub text: String,
    /// The message id (what replies, reactions, edits and deletes name).
    pub id: String,
    /// The thread this message replies in, if it is a reply.
    pub parent: Option<String>,
    /// Users mentioned.
    pub mentions: Vec<String>,
    /// Its author changed the text.
    pub edited: bool,
    /// Its author deleted it: a tombstone.
    pub deleted: bool,
    /// Content of a kind this client does not know: "unsupported message".
    pub unsupported: bool,
    /// Unix time this device received it (or sent it).
    pub at: u64,
    /// Reactions, by emoji.
    pub reactions: Vec<Reaction>,
    /// The file shared with this message, if any (see [`Channel::download`](crate::Channel::download)).
    pub file: Option<FileInfo>,
    /// Not received through MLS but handed over by this member with the
    /// channel's earlier history: as trustworthy as that member.
    pub shared_by: Option<String>,
}

/// A shared file, as the history shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Its name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of its content, as the sender announced it.
    pub sha256: String,
}

/// One emoji on a message, and who put it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    /// The emoji.
    pub emoji: String,
    /// Usernames, sorted.
    pub users: Vec<String>,
}
