//! What a client tells its user happened: [`Event`], in the order it
//! processed it.

use crate::alert::SecurityAlert;
use crate::history_entry::HistoryEntry;

/// Something that happened in a channel, in the channel's order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A text message.
    Message(HistoryEntry),
    /// A member handed this device the channel's earlier history.
    HistoryReceived {
        /// The channel's local name.
        channel: String,
        /// The channel's group id.
        group_id: String,
        /// Who shared it.
        from: String,
        /// How many messages were added.
        added: u64,
    },
    /// Another device of this account read `channel`: its unread count changed.
    ReadElsewhere {
        /// The channel's local name.
        channel: String,
        /// The channel's group id.
        group_id: String,
    },
    /// This device joined a channel.
    Joined {
        /// The channel's local name.
        channel: String,
        /// The channel's group id.
        group_id: String,
    },
    /// Members were added or removed (usernames).
    MembersChanged {
        /// The channel.
        channel: String,
        /// The channel's group id.
        group_id: String,
        /// Users who gained their first device in the channel.
        added: Vec<String>,
        /// Users who lost their last device in the channel.
        removed: Vec<String>,
    },
    /// This device was removed from a channel.
    Removed {
        /// The channel.
        channel: String,
        /// The channel's group id.
        group_id: String,
    },
    /// A member renamed the channel.
    Renamed {
        /// The name it went by until now.
        from: String,
        /// Its name from now on (made unique among this device's channels).
        to: String,
        /// Who renamed it.
        by: String,
        /// The channel's group id.
        group_id: String,
    },
    /// A channel this device joined learned its name from a member.
    Named {
        /// The name it went by until now (`channel-<id>`).
        placeholder: String,
        /// Its name from now on.
        name: String,
        /// The channel's group id.
        group_id: String,
    },
    /// A new device signed in to this account. If it wasn't you, revoke it.
    DeviceAdded {
        /// Hex device id.
        device_id: String,
    },
    /// A device of this account was revoked.
    DeviceRevoked {
        /// Hex device id.
        device_id: String,
    },
    /// Who can sign in to this account changed on another device, or by the
    /// host administrator: a factor added or removed, the password changed,
    /// the account recovered or locked. Also kept as a [`SecurityAlert`]
    /// until shown. If it wasn't you, recover the account.
    AccountChanged(SecurityAlert),
    /// A message mentions this account (also delivered as `Message`).
    Mentioned(HistoryEntry),
    /// A direct message to this account (also delivered as `Message`).
    DirectMessage(HistoryEntry),
    /// The channel was archived: it can be read, not posted to.
    Archived {
        /// The channel.
        channel: String,
        /// The channel's group id.
        group_id: String,
    },
    /// A member set the channel's topic.
    TopicChanged {
        /// The channel.
        channel: String,
        /// The channel's group id.
        group_id: String,
        /// The new topic.
        topic: String,
        /// Who set it.
        by: String,
    },
    /// A reaction was added or taken back.
    Reacted {
        /// The channel.
        channel: String,
        /// The channel's group id.
        group_id: String,
        /// The message reacted to.
        message_id: String,
        /// Who.
        user: String,
        /// The emoji.
        emoji: String,
        /// Added, or taken back.
        added: bool,
    },
    /// A message's author changed its text.
    Edited(HistoryEntry),
    /// A message's author deleted it.
    Deleted {
        /// The channel.
        channel: String,
        /// The channel's group id.
        group_id: String,
        /// The message.
        message_id: String,
    },
    /// A device failed the key-transparency check and was refused: the
    /// relay may be trying to slip it into a channel. Show it prominently.
    SecurityAlert(SecurityAlert),
}

impl Event {
    /// The channel the event happened in (its local name), if it is tied to
    /// one; a [`Event::Named`] channel by its new name.
    pub fn channel(&self) -> Option<&str> {
        match self {
            Event::Message(entry)
            | Event::Mentioned(entry)
            | Event::DirectMessage(entry)
            | Event::Edited(entry) => Some(&entry.channel),
            Event::HistoryReceived { channel, .. }
            | Event::ReadElsewhere { channel, .. }
            | Event::Joined { channel, .. }
            | Event::MembersChanged { channel, .. }
            | Event::Removed { channel, .. }
            | Event::Archived { channel, .. }
            | Event::TopicChanged { channel, .. }
            | Event::Reacted { channel, .. }
            | Event::Deleted { channel, .. } => Some(channel),
            Event::Named { name, .. } => Some(name),
            Event::Renamed { to, .. } => Some(to),
            Event::DeviceAdded { .. }
            | Event::DeviceRevoked { .. }
            | Event::AccountChanged(_)
            | Event::SecurityAlert(_) => None,
        }
    }

    /// The group id of the channel the event happened in, if it is tied to
    /// one: what names the channel for good ([`Client::channel`](crate::Client::channel)).
    pub fn group_id(&self) -> Option<&str> {
        match self {
            Event::Message(entry)
            | Event::Mentioned(entry)
            | Event::DirectMessage(entry)
            | Event::Edited(entry) => Some(&entry.group_id),
            Event::HistoryReceived { group_id, .. }
            | Event::ReadElsewhere { group_id, .. }
            | Event::Joined { group_id, .. }
            | Event::MembersChanged { group_id, .. }
            | Event::Removed { group_id, .. }
            | Event::Archived { group_id, .. }
            | Event::TopicChanged { group_id, .. }
            | Event::Reacted { group_id, .. }
            | Event::Deleted { group_id, .. }
            | Event::Named { group_id, .. }
            | Event::Renamed { group_id, .. } => Some(group_id),
            Event::DeviceAdded { .. }
            | Event::DeviceRevoked { .. }
            | Event::AccountChanged(_)
            | Event::SecurityAlert(_) => None,
        }
    }
}
