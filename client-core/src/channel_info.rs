//! What this device lists about a channel, its group state and its members:
//! plain data, as [`Channel`](crate::Channel) hands it out.

/// A channel this device knows, as it lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Local name.
    pub name: String,
    /// MLS group id (hex).
    pub group_id: String,
    /// Whether this device is still a member.
    pub active: bool,
    /// A direct message (named `@` and the other participants) rather than a channel.
    pub direct: bool,
    /// The topic, as members set it (encrypted; the relay never sees it).
    pub topic: String,
    /// Messages from others since this device last read the channel.
    pub unread: u64,
    /// Archived by its creator or an admin: readable, but nothing more can be posted.
    pub archived: bool,
}

/// This device's view of a channel's group state. Two devices that show the
/// same epoch and code hold the same group, with the same members and keys
/// (the code is the MLS epoch authenticator, RFC 9420 §8.7): compare them
/// out of band to rule out a relay that split the channel in two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelState {
    /// How many commits the group has been through.
    pub epoch: u64,
    /// The epoch authenticator, as 8 groups of 4 hex digits.
    pub code: String,
}

/// A channel member and their devices in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Username.
    pub user: String,
    /// Device ids.
    pub devices: Vec<String>,
    /// A bot, run by this account (as its MLS credential says, which the
    /// relay accepts only as the bot account's own).
    pub bot_owner: Option<String>,
}
