//! The transparency log: proofs that devices were registered (any signed-in
//! device), and the entries and proofs an auditor reads.
//!
//! The checkpoint (`GET /v1/audit/checkpoint`) and the verifier key
//! (`GET /v1/audit/key`) are text, a signed note and a key line, not JSON.
//! Hashes travel as base64 of their 32 bytes, leaves as base64 of their
//! bytes. Fields are declared alphabetically, the order in which the relay
//! wrote them before these types existed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A log entry and the proof that it is in a checkpoint's tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafInclusion {
    /// The inclusion proof: hashes, base64.
    pub inclusion: Vec<String>,
    /// The entry's index in the log.
    pub index: u64,
    /// The entry's leaf bytes, base64.
    pub leaf: String,
}

/// The query of `GET /v1/audit/devices/{username}/{device_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeviceProofQuery {
    /// The size of the newest checkpoint the client holds (0: none).
    #[serde(default)]
    pub since: u64,
}

/// The answer to `GET /v1/audit/devices/{username}/{device_id}`: the
/// entry registering the device, proven included in a fresh checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceProofAnswer {
    /// The checkpoint, as signed note text.
    pub checkpoint: String,
    /// The proof that the checkpoint extends the client's (`since`); `null`
    /// when the client holds none, or one larger than the log (which it
    /// then sees as a rollback).
    pub consistency: Option<Vec<String>>,
    /// The registration entry and its inclusion proof.
    #[serde(flatten)]
    pub registration: LeafInclusion,
}

/// `POST /v1/audit/devices`: the registrations of many devices (a
/// channel's members, up to 1000) in one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceProofsBody {
    /// The devices, in the order the answer keeps.
    pub devices: Vec<DeviceName>,
    /// The size of the newest checkpoint the client holds (0: none).
    #[serde(default)]
    pub since: u64,
}

/// A device, by account and id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceName {
    /// Hex device id.
    pub device_id: String,
    /// The account.
    pub username: String,
}

/// The answer to [`DeviceProofsBody`]: one fresh checkpoint, and each
/// device's registration proven included in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceProofsAnswer {
    /// The checkpoint, as signed note text.
    pub checkpoint: String,
    /// As in [`DeviceProofAnswer::consistency`].
    pub consistency: Option<Vec<String>>,
    /// One per device asked about, in the same order.
    pub devices: Vec<ProvenDevice>,
}

/// One device of a [`DeviceProofsAnswer`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenDevice {
    /// Hex device id, as asked.
    pub device_id: String,
    /// Its registration, or its absence.
    #[serde(flatten)]
    pub registration: RegistrationProof,
    /// The account, as asked.
    pub username: String,
}

/// What the log holds for one device: its registration with an inclusion
/// proof, or `{"missing": true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RegistrationProof {
    /// The registration entry and its inclusion proof.
    Included(LeafInclusion),
    /// The log never registered this device: a client refuses it.
    Missing {
        /// Always true.
        missing: bool,
    },
}

/// The query of `GET /v1/audit/entries` (auditors only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntriesQuery {
    /// Entries before this index (at most 1000 from `start`); the log's
    /// size if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<u64>,
    /// The first entry's index.
    pub start: u64,
}

/// The answer to `GET /v1/audit/entries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntriesAnswer {
    /// The entries, in order.
    pub entries: Vec<AuditEntry>,
    /// The log's size now.
    pub size: u64,
}

/// One entry, as an auditor reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The address behind the leaf's `client-ip` commitment, with the salt
    /// that opens it; absent when the leaf commits to none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_address: Option<ClientAddress>,
    /// The leaf, decoded; `null` if it does not decode (the auditor's
    /// tools, not the relay, decide what that means).
    pub event: Option<LoggedEvent>,
    /// The entry's index.
    pub index: u64,
    /// The leaf bytes, base64: what the log's hashes cover.
    pub leaf: String,
}

/// A client address and the salt that opens its commitment in a leaf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientAddress {
    /// The address as text, e.g. `192.0.2.1`.
    pub ip: String,
    /// 16 bytes, hex.
    pub salt: String,
}

/// A leaf's fields, decoded (`conclave_audit::Event`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedEvent {
    /// What happened, e.g. `device_added`.
    pub action: String,
    /// The acting account.
    pub actor: Option<String>,
    /// The commitment to the client's address, where the relay records
    /// addresses.
    pub client_ip: Option<String>,
    /// Further named values (public keys, counts, member lists).
    pub details: BTreeMap<String, String>,
    /// The acting device (hex id).
    pub device: Option<String>,
    /// `success` or `failure:<reason>`.
    pub outcome: String,
    /// Position in the log, from 0.
    pub seq: u64,
    /// What the action was done to.
    pub target: Option<String>,
    /// Unix seconds.
    pub time: u64,
}

/// The query of `GET /v1/audit/proof/inclusion` (auditors only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProofQuery {
    /// The entry.
    pub index: u64,
    /// The tree's size (at most the log's).
    pub size: u64,
}

/// The answer to [`InclusionProofQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProofAnswer {
    /// The entry.
    pub index: u64,
    /// The proof: hashes, base64.
    pub proof: Vec<String>,
    /// The tree's size.
    pub size: u64,
}

/// The query of `GET /v1/audit/proof/consistency` (auditors only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProofQuery {
    /// The larger tree's size (at most the log's).
    pub new: u64,
    /// The smaller tree's size.
    pub old: u64,
}

/// The answer to [`ConsistencyProofQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProofAnswer {
    /// The larger tree's size.
    pub new: u64,
    /// The smaller tree's size.
    pub old: u64,
    /// The proof: hashes, base64.
    pub proof: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pinned;

    fn included(index: u64) -> LeafInclusion {
        LeafInclusion {
            inclusion: vec!["aGFzaA==".into()],
            index,
            leaf: "bGVhZg==".into(),
        }
    }

    #[test]
    fn device_proofs_are_pinned() {
        pinned(
            &DeviceProofAnswer {
                checkpoint: "note".into(),
                consistency: None,
                registration: included(3),
            },
            r#"{"checkpoint":"note","consistency":null,"inclusion":["aGFzaA=="],"index":3,"leaf":"bGVhZg=="}"#,
        );
        pinned(
            &DeviceProofsBody {
                devices: vec![DeviceName {
                    device_id: "d1".into(),
                    username: "bob".into(),
                }],
                since: 7,
            },
            r#"{"devices":[{"device_id":"d1","username":"bob"}],"since":7}"#,
        );
        pinned(
            &DeviceProofsAnswer {
                checkpoint: "note".into(),
                consistency: Some(vec!["aGFzaA==".into()]),
                devices: vec![
                    ProvenDevice {
                        device_id: "d1".into(),
                        registration: RegistrationProof::Included(included(3)),
                        username: "bob".into(),
                    },
                    ProvenDevice {
                        device_id: "d2".into(),
                        registration: RegistrationProof::Missing { missing: true },
                        username: "bob".into(),
                    },
                ],
            },
            concat!(
                r#"{"checkpoint":"note","consistency":["aGFzaA=="],"devices":["#,
                r#"{"device_id":"d1","inclusion":["aGFzaA=="],"index":3,"leaf":"bGVhZg==","username":"bob"},"#,
                r#"{"device_id":"d2","missing":true,"username":"bob"}]}"#
            ),
        );
        // An entry with neither a proof nor `missing` is no answer at all.
        let neither = r#"{"device_id":"d1","username":"bob"}"#;
        assert!(serde_json::from_str::<ProvenDevice>(neither).is_err());
    }

    #[test]
    fn auditor_reads_are_pinned() {
        pinned(
            &AuditEntriesAnswer {
                entries: vec![
                    AuditEntry {
                        client_address: Some(ClientAddress {
                            ip: "192.0.2.1".into(),
                            salt: "00ff".into(),
                        }),
                        event: Some(LoggedEvent {
                            action: "login".into(),
                            actor: Some("alice".into()),
                            client_ip: Some("sha256:ab".into()),
                            details: BTreeMap::from([("count".into(), "2".into())]),
                            device: None,
                            outcome: "success".into(),
                            seq: 0,
                            target: None,
                            time: 1_700_000_000,
                        }),
                        index: 0,
                        leaf: "bGVhZg==".into(),
                    },
                    AuditEntry {
                        client_address: None,
                        event: None,
                        index: 1,
                        leaf: "AA==".into(),
                    },
                ],
                size: 2,
            },
            concat!(
                r#"{"entries":[{"client_address":{"ip":"192.0.2.1","salt":"00ff"},"#,
                r#""event":{"action":"login","actor":"alice","client_ip":"sha256:ab","#,
                r#""details":{"count":"2"},"device":null,"outcome":"success","seq":0,"#,
                r#""target":null,"time":1700000000},"index":0,"leaf":"bGVhZg=="},"#,
                r#"{"event":null,"index":1,"leaf":"AA=="}],"size":2}"#
            ),
        );
        pinned(
            &InclusionProofAnswer {
                index: 1,
                proof: vec!["aGFzaA==".into()],
                size: 2,
            },
            r#"{"index":1,"proof":["aGFzaA=="],"size":2}"#,
        );
        pinned(
            &ConsistencyProofAnswer {
                new: 5,
                old: 2,
                proof: vec![],
            },
            r#"{"new":5,"old":2,"proof":[]}"#,
        );
    }

    #[test]
    fn queries_are_pinned() {
        pinned(&DeviceProofQuery { since: 4 }, r#"{"since":4}"#);
        pinned(
            &AuditEntriesQuery {
                end: None,
                start: 10,
            },
            r#"{"start":10}"#,
        );
        pinned(
            &InclusionProofQuery { index: 1, size: 2 },
            r#"{"index":1,"size":2}"#,
        );
        pinned(
            &ConsistencyProofQuery { new: 5, old: 2 },
            r#"{"new":5,"old":2}"#,
        );
    }
}

/// The workspace's witness policy (`GET /v1/audit/witnesses`): which
/// witnesses cosign the log's checkpoints and how many cosignatures a client
/// requires. A client pins it the first time it pins the log key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessPolicy {
    /// The witnesses' verifier keys (C2SP tlog-cosignature, Ed25519).
    pub witnesses: Vec<String>,
    /// How many of them must have cosigned a checkpoint (0: none required).
    pub quorum: u64,
    /// Seconds a client goes on accepting checkpoints short of the quorum
    /// after the last one that had it (cosigning lags signing, and a witness
    /// may be down for a while).
    pub grace_seconds: u64,
}

/// The log's key rotations (`GET /v1/audit/key-rotations`): each a signed
/// note by the key it retires and the key that replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotations {
    /// The statements, oldest first.
    pub statements: Vec<String>,
}
