//! Groups: creating one, the workspace's directory of public channels and
//! slash commands, joining a public channel, and a channel's settings.
//!
//! Fields are declared alphabetically, the order in which the relay wrote
//! them before these types existed.

use serde::{Deserialize, Serialize};

/// `POST /v1/groups`: a new MLS group whose only member is the signing
/// device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateGroupBody {
    /// The group's GroupInfo, base64.
    pub group_info: String,
    /// For a public channel: how the workspace directory lists it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<PublicListing>,
    /// The group's ratchet tree, base64.
    pub ratchet_tree: String,
}

/// A public channel's entry in the workspace directory, as its creator
/// gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicListing {
    /// 1 to 64 bytes, no spaces, not starting with `@`.
    pub name: String,
    /// At most 250 bytes; empty if absent.
    #[serde(default)]
    pub topic: String,
}

/// The answer to [`CreateGroupBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateGroupAnswer {
    /// The group's epoch (0).
    pub epoch: u64,
    /// The group, as lowercase hex of its MLS group id.
    pub group_id: String,
}

/// The answer to `GET /v1/channels/public`: the workspace directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicChannels {
    /// By name.
    pub channels: Vec<ListedChannel>,
}

/// One public channel in the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedChannel {
    /// Archived: closed to new members.
    pub archived: bool,
    /// Hex group id.
    pub group_id: String,
    /// Whether the asking device is in it.
    pub joined: bool,
    /// How many accounts are in it.
    pub members: u64,
    /// Its name.
    pub name: String,
    /// Its topic.
    pub topic: String,
}

/// The answer to `GET /v1/commands`: the workspace's slash commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlashCommands {
    /// By name.
    pub commands: Vec<SlashCommand>,
}

/// One registered slash command. No secrets: clients use it to complete
/// commands and to check that the bot is in the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlashCommand {
    /// The bot that answers it.
    pub bot: String,
    /// The command, without the slash.
    pub name: String,
    /// How to call it, e.g. `/deploy SERVICE [VERSION]`.
    pub usage: String,
}

/// The answer to `GET /v1/groups/{group_id}/group-info`: what a device
/// needs to join a public channel by external commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfoAnswer {
    /// The latest GroupInfo a member signed, base64.
    pub group_info: String,
    /// The ratchet tree, base64.
    pub ratchet_tree: String,
}

/// `POST /v1/groups/{group_id}/name`: renames a public channel in the
/// directory (any member may).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelNameBody {
    /// The new name.
    pub name: String,
}

/// The answer to [`ChannelNameBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelNameAnswer {
    /// Hex group id.
    pub group_id: String,
    /// The name now listed.
    pub name: String,
}

/// `POST /v1/groups/{group_id}/topic`: changes a public channel's listed
/// topic (any member may).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelTopicBody {
    /// The new topic.
    pub topic: String,
}

/// The answer to [`ChannelTopicBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelTopicAnswer {
    /// Hex group id.
    pub group_id: String,
    /// The topic now listed.
    pub topic: String,
}

/// `POST /v1/groups/{group_id}/history-sharing`: lets members hand new
/// members the channel's earlier history, or stops them (its creator or an
/// admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistorySharingBody {
    /// Allowed from now on.
    pub allowed: bool,
}

/// The answer to [`HistorySharingBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistorySharingAnswer {
    /// Hex group id.
    pub group_id: String,
    /// Whether sharing is allowed now.
    pub history_sharing: bool,
}

/// `POST /v1/groups/{group_id}/retention`: how long the relay keeps the
/// group's message ciphertext (its creator or an admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRetentionBody {
    /// Days; `null` for the workspace's policy.
    pub days: Option<u32>,
}

/// The answer to [`GroupRetentionBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRetentionAnswer {
    /// Hex group id.
    pub group_id: String,
    /// The group's own retention in days; `null` for the workspace's.
    pub retention_days: Option<u32>,
}

/// The answer to `POST /v1/groups/{group_id}/archive` (no body): the group
/// is read-only from now on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveAnswer {
    /// Always true.
    pub archived: bool,
    /// Hex group id.
    pub group_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pinned;

    #[test]
    fn group_creation_is_pinned() {
        pinned(
            &CreateGroupBody {
                group_info: "R0k=".into(),
                public: None,
                ratchet_tree: "VA==".into(),
            },
            r#"{"group_info":"R0k=","ratchet_tree":"VA=="}"#,
        );
        pinned(
            &CreateGroupBody {
                group_info: "R0k=".into(),
                public: Some(PublicListing {
                    name: "general".into(),
                    topic: "all hands".into(),
                }),
                ratchet_tree: "VA==".into(),
            },
            r#"{"group_info":"R0k=","public":{"name":"general","topic":"all hands"},"ratchet_tree":"VA=="}"#,
        );
        let untopical: PublicListing = serde_json::from_str(r#"{"name":"general"}"#).unwrap();
        assert_eq!(untopical.topic, "");
        pinned(
            &CreateGroupAnswer {
                epoch: 0,
                group_id: "ab01".into(),
            },
            r#"{"epoch":0,"group_id":"ab01"}"#,
        );
    }

    #[test]
    fn the_directory_is_pinned() {
        pinned(
            &PublicChannels {
                channels: vec![ListedChannel {
                    archived: false,
                    group_id: "ab01".into(),
                    joined: true,
                    members: 3,
                    name: "general".into(),
                    topic: "".into(),
                }],
            },
            concat!(
                r#"{"channels":[{"archived":false,"group_id":"ab01","joined":true,"#,
                r#""members":3,"name":"general","topic":""}]}"#
            ),
        );
        pinned(
            &SlashCommands {
                commands: vec![SlashCommand {
                    bot: "deploybot".into(),
                    name: "deploy".into(),
                    usage: "/deploy SERVICE".into(),
                }],
            },
            r#"{"commands":[{"bot":"deploybot","name":"deploy","usage":"/deploy SERVICE"}]}"#,
        );
        pinned(
            &GroupInfoAnswer {
                group_info: "R0k=".into(),
                ratchet_tree: "VA==".into(),
            },
            r#"{"group_info":"R0k=","ratchet_tree":"VA=="}"#,
        );
    }

    #[test]
    fn channel_settings_are_pinned() {
        pinned(&ChannelNameBody { name: "ops".into() }, r#"{"name":"ops"}"#);
        pinned(
            &ChannelNameAnswer {
                group_id: "ab01".into(),
                name: "ops".into(),
            },
            r#"{"group_id":"ab01","name":"ops"}"#,
        );
        pinned(
            &ChannelTopicBody {
                topic: "deploys".into(),
            },
            r#"{"topic":"deploys"}"#,
        );
        pinned(
            &ChannelTopicAnswer {
                group_id: "ab01".into(),
                topic: "deploys".into(),
            },
            r#"{"group_id":"ab01","topic":"deploys"}"#,
        );
        pinned(&HistorySharingBody { allowed: true }, r#"{"allowed":true}"#);
        pinned(
            &HistorySharingAnswer {
                group_id: "ab01".into(),
                history_sharing: true,
            },
            r#"{"group_id":"ab01","history_sharing":true}"#,
        );
        pinned(&GroupRetentionBody { days: Some(30) }, r#"{"days":30}"#);
        pinned(&GroupRetentionBody { days: None }, r#"{"days":null}"#);
        pinned(
            &GroupRetentionAnswer {
                group_id: "ab01".into(),
                retention_days: None,
            },
            r#"{"group_id":"ab01","retention_days":null}"#,
        );
        pinned(
            &ArchiveAnswer {
                archived: true,
                group_id: "ab01".into(),
            },
            r#"{"archived":true,"group_id":"ab01"}"#,
        );
    }
}
