//! The message path: posting to a group, fetching what is pending, and
//! acknowledging it.
//!
//! Field order matters only for the bytes, not the meaning: the bodies that
//! the relay and the client once built with `serde_json::json!` (whose maps
//! are sorted) declare their fields in alphabetical order, so the bytes on
//! the wire stayed the same when these types replaced them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What kind of MLS message a group's log entry holds. On the wire and in
/// the relay's database, the lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// A commit (an MLS PublicMessage): moves the group to its next epoch.
    Commit,
    /// A standalone proposal (an MLS PublicMessage).
    Proposal,
    /// An application message (an MLS PrivateMessage, opaque to the relay).
    Application,
    /// A Welcome, for the devices that a commit added: delivered to them
    /// only, at the position just after that commit.
    Welcome,
}

impl MessageKind {
    /// Every kind, in the order above.
    pub const ALL: [MessageKind; 4] = [
        MessageKind::Commit,
        MessageKind::Proposal,
        MessageKind::Application,
        MessageKind::Welcome,
    ];

    /// The name on the wire and in storage.
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageKind::Commit => "commit",
            MessageKind::Proposal => "proposal",
            MessageKind::Application => "application",
            MessageKind::Welcome => "welcome",
        }
    }

    /// A message that changes nothing about the group's membership or
    /// epoch: one a stream may push in order without asking the database.
    pub const fn is_plain(self) -> bool {
        matches!(self, MessageKind::Application | MessageKind::Proposal)
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of [`MessageKind`]'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMessageKind(pub String);

impl fmt::Display for UnknownMessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown message kind {:?}: expected commit, proposal, application or welcome",
            self.0
        )
    }
}

impl std::error::Error for UnknownMessageKind {}

impl FromStr for MessageKind {
    type Err = UnknownMessageKind;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        MessageKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| UnknownMessageKind(name.to_owned()))
    }
}

/// One message as the relay delivers it to a device: an element of
/// [`FetchAnswer::messages`], and a frame of the push stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    /// The group, as lowercase hex of its MLS group id.
    pub group_id: String,
    /// Its position in the group's order (1, 2, …).
    pub seq: u64,
    /// What the payload is.
    pub kind: MessageKind,
    /// The MLS message bytes, base64.
    pub payload: String,
}

/// `POST /v1/groups/{group_id}/messages`: an MLS message for the group.
///
/// An application message or proposal carries `message` alone; a commit
/// that adds members carries their `welcome`, and a commit to a public
/// channel the new epoch's `group_info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostMessage {
    /// With a commit: the new epoch's GroupInfo, base64 (kept for public
    /// channels, so that anyone may join by external commit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_info: Option<String>,
    /// The MLS message (PrivateMessage or PublicMessage), base64.
    pub message: String,
    /// With a commit that adds members: their Welcome, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welcome: Option<String>,
}

impl PostMessage {
    /// An application message or a proposal: the message alone.
    pub fn message(message: String) -> Self {
        PostMessage {
            group_info: None,
            message,
            welcome: None,
        }
    }
}

/// The answer to [`PostMessage`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostAnswer {
    /// Set when these bytes were accepted before, from this device: `seq`
    /// is the first post's position and nothing new was delivered (a retry
    /// after a lost answer).
    #[serde(default, skip_serializing_if = "crate::is_false")]
    pub duplicate: bool,
    /// The message's position in the group's order.
    pub seq: u64,
}

/// The query of `GET /v1/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FetchQuery {
    /// Most messages to return (the relay clamps it to 1..=500; 500 if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// The answer to `GET /v1/messages`: the messages pending for this device,
/// oldest first within each group, and what else the device should know
/// without asking again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchAnswer {
    /// What changed in who can sign in to the account (factors, passwords,
    /// recoveries, revocations), so that every device can tell its owner.
    pub account_changes: Vec<AccountChange>,
    /// Hex ids of the device's groups that are archived (read-only).
    pub archived_groups: Vec<String>,
    /// The account's devices, revoked ones included.
    pub devices: Vec<DeviceStatus>,
    /// This device's key packages on the relay, to refill when they run low.
    pub key_package_stock: KeyPackageStock,
    /// The pending messages; empty when the device is up to date.
    pub messages: Vec<Delivered>,
    /// How long the relay keeps each of the device's groups' messages, so
    /// that the device prunes its own copy to match.
    pub retention: Vec<Retention>,
    /// Revoked devices that are still members of the device's groups, for
    /// a member to commit their removal.
    pub revoked_members: Vec<RevokedMember>,
}

/// One change to who can sign in to an account, as a fetch reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountChange {
    /// When it happened (Unix seconds).
    pub at: u64,
    /// What it concerned, if more than the kind says (a factor's name, say).
    pub detail: Option<String>,
    /// The device that made it, if a device did (not a host administrator).
    pub device_id: Option<String>,
    /// Increasing per relay; a device tells each id once.
    pub id: u64,
    /// What changed (`totp_added`, `password_changed`, `account_locked`, …): the relay's
    /// name for it, shown by the client as text.
    pub kind: String,
}

/// One device of the account, as a fetch reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// Hex device id.
    pub device_id: String,
    /// Revoked: it can never sign a request again.
    pub revoked: bool,
}

/// A device's key packages on the relay: the answer to
/// `GET /v1/key-packages/stock` and to an upload, and part of every fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPackageStock {
    /// Whether the device has a last-resort package (reused once the
    /// one-time ones are gone).
    pub last_resort: bool,
    /// Unused one-time packages.
    pub one_time: u64,
}

/// How long the relay keeps one group's application messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// Days.
    pub days: u32,
    /// Hex group id.
    pub group_id: String,
}

/// A revoked device still in one of this device's groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedMember {
    /// The revoked device's hex id.
    pub device_id: String,
    /// Hex group id.
    pub group_id: String,
}

/// One group's acknowledgement: everything up to and including `seq` was
/// processed and need not be delivered again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Hex group id.
    pub group_id: String,
    /// The highest position processed.
    pub seq: u64,
}

/// `POST /v1/messages/ack`, and the frame a device sends on the push stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckBody {
    /// One per group.
    pub acks: Vec<Ack>,
}

impl AckBody {
    /// Acknowledges `delivered`: the highest position per group, groups in
    /// order of their ids.
    pub fn up_to<'a>(delivered: impl IntoIterator<Item = &'a Delivered>) -> Self {
        let mut highest: BTreeMap<&str, u64> = BTreeMap::new();
        for d in delivered {
            let seq = highest.entry(&d.group_id).or_default();
            *seq = (*seq).max(d.seq);
        }
        AckBody {
            acks: highest
                .into_iter()
                .map(|(group_id, seq)| Ack {
                    group_id: group_id.to_owned(),
                    seq,
                })
                .collect(),
        }
    }
}

/// The answer to `POST /v1/messages/ack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckAnswer {
    /// How many acknowledgements the body held.
    pub acked: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;

    /// `value` serializes to exactly `json`, and `json` reads back as `value`.
    fn pinned<T: Serialize + DeserializeOwned + PartialEq + fmt::Debug>(value: &T, json: &str) {
        assert_eq!(serde_json::to_string(value).unwrap(), json);
        assert_eq!(&serde_json::from_str::<T>(json).unwrap(), value);
    }

    fn delivered(group_id: &str, seq: u64, kind: MessageKind) -> Delivered {
        Delivered {
            group_id: group_id.into(),
            seq,
            kind,
            payload: "AAEC".into(),
        }
    }

    #[test]
    fn message_kinds_keep_their_lowercase_names() {
        for (kind, name) in [
            (MessageKind::Commit, "commit"),
            (MessageKind::Proposal, "proposal"),
            (MessageKind::Application, "application"),
            (MessageKind::Welcome, "welcome"),
        ] {
            pinned(&kind, &format!("\"{name}\""));
            assert_eq!(kind.as_str(), name);
            assert_eq!(name.parse::<MessageKind>(), Ok(kind));
        }
        assert!("Commit".parse::<MessageKind>().is_err());
        assert!(serde_json::from_str::<MessageKind>("\"devices_changed\"").is_err());
    }

    #[test]
    fn delivered_is_pinned() {
        pinned(
            &delivered("ab01", 7, MessageKind::Welcome),
            r#"{"group_id":"ab01","seq":7,"kind":"welcome","payload":"AAEC"}"#,
        );
    }

    #[test]
    fn post_message_is_pinned() {
        pinned(
            &PostMessage::message("AAEC".into()),
            r#"{"message":"AAEC"}"#,
        );
        pinned(
            &PostMessage {
                group_info: Some("Z0k=".into()),
                message: "AAEC".into(),
                welcome: Some("V2U=".into()),
            },
            r#"{"group_info":"Z0k=","message":"AAEC","welcome":"V2U="}"#,
        );
        // Clients before these types sent absent parts as null.
        let old = r#"{"group_info":null,"message":"AAEC","welcome":null}"#;
        assert_eq!(
            serde_json::from_str::<PostMessage>(old).unwrap(),
            PostMessage::message("AAEC".into())
        );
    }

    #[test]
    fn post_answer_is_pinned() {
        pinned(
            &PostAnswer {
                duplicate: false,
                seq: 3,
            },
            r#"{"seq":3}"#,
        );
        pinned(
            &PostAnswer {
                duplicate: true,
                seq: 3,
            },
            r#"{"duplicate":true,"seq":3}"#,
        );
    }

    #[test]
    fn fetch_query_and_answer_are_pinned() {
        pinned(&FetchQuery { limit: Some(200) }, r#"{"limit":200}"#);
        pinned(&FetchQuery::default(), r#"{}"#);
        pinned(
            &FetchAnswer {
                account_changes: vec![
                    AccountChange {
                        at: 1_700_000_000,
                        detail: Some("totp".into()),
                        device_id: Some("d1".into()),
                        id: 4,
                        kind: "totp_added".into(),
                    },
                    AccountChange {
                        at: 1_700_000_001,
                        detail: None,
                        device_id: None,
                        id: 5,
                        kind: "account_locked".into(),
                    },
                ],
                archived_groups: vec!["ab02".into()],
                devices: vec![DeviceStatus {
                    device_id: "d1".into(),
                    revoked: false,
                }],
                key_package_stock: KeyPackageStock {
                    last_resort: true,
                    one_time: 40,
                },
                messages: vec![delivered("ab01", 1, MessageKind::Commit)],
                retention: vec![Retention {
                    days: 30,
                    group_id: "ab01".into(),
                }],
                revoked_members: vec![RevokedMember {
                    device_id: "d2".into(),
                    group_id: "ab01".into(),
                }],
            },
            concat!(
                r#"{"account_changes":["#,
                r#"{"at":1700000000,"detail":"totp","device_id":"d1","id":4,"kind":"totp_added"},"#,
                r#"{"at":1700000001,"detail":null,"device_id":null,"id":5,"kind":"account_locked"}],"#,
                r#""archived_groups":["ab02"],"#,
                r#""devices":[{"device_id":"d1","revoked":false}],"#,
                r#""key_package_stock":{"last_resort":true,"one_time":40},"#,
                r#""messages":[{"group_id":"ab01","seq":1,"kind":"commit","payload":"AAEC"}],"#,
                r#""retention":[{"days":30,"group_id":"ab01"}],"#,
                r#""revoked_members":[{"device_id":"d2","group_id":"ab01"}]}"#,
            ),
        );
    }

    #[test]
    fn acks_are_pinned_and_keep_the_highest_position_per_group() {
        let batch = [
            delivered("bb", 2, MessageKind::Application),
            delivered("aa", 9, MessageKind::Application),
            delivered("bb", 5, MessageKind::Commit),
            delivered("bb", 4, MessageKind::Application),
        ];
        pinned(
            &AckBody::up_to(&batch),
            r#"{"acks":[{"group_id":"aa","seq":9},{"group_id":"bb","seq":5}]}"#,
        );
        pinned(&AckBody::up_to(&[]), r#"{"acks":[]}"#);
        pinned(&AckAnswer { acked: 2 }, r#"{"acked":2}"#);
    }
}
