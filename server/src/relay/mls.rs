//! MLS validation without secrets.
//!
//! The relay tracks each group with openmls's `PublicGroup`: the ratchet tree,
//! group context, transcript hash and confirmation tag, all public. A commit is
//! accepted only if it verifies against that state (signature, membership tag
//! aside, tree hashes, confirmation tag, proposal rules), and then it moves the
//! state forward. Application messages stay opaque: only their group and epoch
//! are read from the unencrypted header.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use conclave_crypto::{CIPHERSUITE, DeviceCredential};
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::*;
use openmls_rust_crypto::{MemoryStorage, RustCrypto};

use crate::error::ApiError;

/// Why the relay refused an MLS message, or could not check it.
#[derive(Debug, thiserror::Error)]
pub enum MlsError {
    /// The message (or Welcome, GroupInfo, key package) is malformed or
    /// breaks a rule of RFC 9420 or of the relay; the text says which.
    #[error("{0}")]
    Invalid(String),
    /// The relay's own stored public state could not be used: its fault,
    /// not the sender's.
    #[error("{0}")]
    Internal(String),
}

impl From<MlsError> for ApiError {
    fn from(error: MlsError) -> Self {
        match error {
            MlsError::Invalid(why) => ApiError::InvalidMls(why),
            MlsError::Internal(detail) => ApiError::Internal(detail),
        }
    }
}

/// What the unencrypted framing of a message says.
#[derive(Debug)]
pub struct Framing {
    /// Hex group id.
    pub group_id: String,
    /// Epoch it was built for.
    pub epoch: u64,
    /// Handshake (PublicMessage) or application (PrivateMessage).
    pub kind: Wire,
    /// The parsed message, for [`process_handshake`]: parsed once.
    protocol: ProtocolMessage,
}

/// The two wire formats the relay takes for group messages.
#[derive(Debug, PartialEq, Eq)]
pub enum Wire {
    /// A PublicMessage commit or proposal.
    Handshake,
    /// A PrivateMessage carrying application data.
    Application,
}

/// A leaf of the tree as the relay sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// Who and which device the credential claims.
    pub credential: DeviceCredential,
    /// The leaf's signature key, which must be that device's registered key.
    pub signature_key: Vec<u8>,
}

/// A group state after validation, ready to store.
#[derive(Debug)]
pub struct ValidatedGroup {
    /// Hex group id.
    pub group_id: String,
    /// Its epoch.
    pub epoch: u64,
    /// Serialized public state.
    pub state: Vec<u8>,
    /// Its members.
    pub members: Vec<Leaf>,
}

/// What an accepted handshake message does.
#[derive(Debug)]
pub enum Handshake {
    /// A commit that moves the group to `to_epoch`.
    Commit {
        /// New public state.
        state: Vec<u8>,
        /// Epoch after the commit.
        to_epoch: u64,
        /// Leaves that are new or whose key changed: they must be checked against the directory.
        new_leaves: Vec<Leaf>,
        /// Leaves of the devices added.
        added: Vec<Leaf>,
        /// Leaves of the devices removed.
        removed: Vec<Leaf>,
        /// Key packages the Welcome must cover (hash refs).
        welcome_refs: Vec<Vec<u8>>,
    },
    /// A proposal, queued until a commit covers it.
    Proposal {
        /// New public state (proposal queue grew).
        state: Vec<u8>,
    },
}

fn invalid(what: impl std::fmt::Display) -> MlsError {
    MlsError::Invalid(what.to_string())
}

fn parse_message(bytes: &[u8]) -> Result<MlsMessageBodyIn, MlsError> {
    let message = MlsMessageIn::tls_deserialize_exact(bytes)
        .map_err(|e| invalid(format!("cannot decode MLSMessage: {e}")))?;
    Ok(message.extract())
}

/// Reads a group message's framing, refusing anything but our ciphersuite's
/// PublicMessage handshakes and PrivateMessage application data.
pub fn framing(bytes: &[u8]) -> Result<Framing, MlsError> {
    let protocol: ProtocolMessage = match parse_message(bytes)? {
        MlsMessageBodyIn::PublicMessage(m) => m.into(),
        MlsMessageBodyIn::PrivateMessage(m) => m.into(),
        _ => return Err(invalid("expected a PublicMessage or PrivateMessage")),
    };
    let kind = match (protocol.wire_format(), protocol.content_type()) {
        (WireFormat::PublicMessage, ContentType::Commit | ContentType::Proposal) => Wire::Handshake,
        (WireFormat::PrivateMessage, ContentType::Application) => Wire::Application,
        (WireFormat::PublicMessage, _) => {
            return Err(invalid("application data must be sent as PrivateMessage"));
        }
        _ => return Err(invalid("handshake messages must be sent as PublicMessage")),
    };
    Ok(Framing {
        group_id: hex::encode(protocol.group_id().as_slice()),
        epoch: protocol.epoch().as_u64(),
        kind,
        protocol,
    })
}

/// Validates a new group from its GroupInfo and ratchet tree.
pub fn validate_new_group(
    group_info: &[u8],
    ratchet_tree: &[u8],
) -> Result<ValidatedGroup, MlsError> {
    let MlsMessageBodyIn::GroupInfo(info) = parse_message(group_info)? else {
        return Err(invalid("group_info is not a GroupInfo message"));
    };
    if info.ciphersuite() != CIPHERSUITE {
        return Err(invalid(
            "group uses another ciphersuite than MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519",
        ));
    }
    let tree = RatchetTreeIn::tls_deserialize_exact(ratchet_tree)
        .map_err(|e| invalid(format!("cannot decode ratchet tree: {e}")))?;
    let storage = MemoryStorage::default();
    let (group, _) = PublicGroup::from_external(
        &RustCrypto::default(),
        &storage,
        tree,
        info,
        ProposalStore::new(),
    )
    .map_err(|e| invalid(format!("group info does not verify: {e}")))?;
    Ok(ValidatedGroup {
        group_id: hex::encode(group.group_id().as_slice()),
        epoch: group.group_context().epoch().as_u64(),
        members: leaves(&group)?,
        state: save(&storage)?,
    })
}

fn load_group(storage: &MemoryStorage, group_id: &str) -> Result<PublicGroup, MlsError> {
    let id = GroupId::from_slice(&hex::decode(group_id).map_err(|_| invalid("bad group id"))?);
    PublicGroup::load(storage, &id)
        .map_err(|e| MlsError::Internal(format!("public state: {e:?}")))?
        .ok_or_else(|| MlsError::Internal("public state missing".into()))
}

/// The group's ratchet tree (public), serialized, for a device joining by
/// external commit.
pub fn ratchet_tree(group_id: &str, state: &[u8]) -> Result<Vec<u8>, MlsError> {
    let storage = load(state)?;
    load_group(&storage, group_id)?
        .export_ratchet_tree()
        .tls_serialize_detached()
        .map_err(|e| MlsError::Internal(format!("serialize tree: {e}")))
}

/// Checks a GroupInfo a committer posted for the epoch its commit starts:
/// it must verify against the group's public state after the commit (the
/// signer a leaf of that tree, the tree hash and epoch its own), and offer
/// the key an external joiner needs.
pub fn check_group_info(
    group_info: &[u8],
    group_id: &str,
    state_after: &[u8],
    epoch: u64,
) -> Result<(), MlsError> {
    let MlsMessageBodyIn::GroupInfo(info) = parse_message(group_info)? else {
        return Err(invalid("group_info is not a GroupInfo message"));
    };
    if info.extensions().external_pub().is_none() {
        return Err(invalid("group_info lacks the external public key"));
    }
    let tree = ratchet_tree(group_id, state_after)?;
    let tree = RatchetTreeIn::tls_deserialize_exact(&tree)
        .map_err(|e| MlsError::Internal(format!("tree round trip: {e}")))?;
    let (group, _) = PublicGroup::from_external(
        &RustCrypto::default(),
        &MemoryStorage::default(),
        tree,
        info,
        ProposalStore::new(),
    )
    .map_err(|e| invalid(format!("group_info does not verify against the group: {e}")))?;
    if hex::encode(group.group_id().as_slice()) != group_id
        || group.group_context().epoch().as_u64() != epoch
    {
        return Err(invalid("group_info is for another group or epoch"));
    }
    Ok(())
}

/// Validates a handshake message against the stored state. Returns what it
/// does, its sender's leaf, and whether it is an external commit (a device
/// joining on its own).
pub fn process_handshake(
    group_id: &str,
    state: &[u8],
    framing: Framing,
) -> Result<(Handshake, Leaf, bool), MlsError> {
    if framing.kind != Wire::Handshake {
        return Err(invalid("expected a PublicMessage"));
    }
    let protocol = framing.protocol;
    let storage = load(state)?;
    let mut group = load_group(&storage, group_id)?;
    let crypto = RustCrypto::default();
    let processed = group
        .process_message(&crypto, protocol)
        .map_err(|e| invalid(format!("handshake rejected: {e}")))?;
    let external = matches!(processed.sender(), Sender::NewMemberCommit);
    let mut sender = match processed.sender() {
        Sender::Member(index) => Some(
            group
                .leaf(*index)
                .map(leaf_of)
                .transpose()?
                .ok_or_else(|| invalid("sender leaf is empty"))?,
        ),
        // The joiner's leaf exists only once the commit is merged.
        Sender::NewMemberCommit => None,
        _ => return Err(invalid("only members may send handshake messages")),
    };
    let sender_credential = DeviceCredential::from_mls(processed.credential()).map_err(invalid)?;
    let before = leaves(&group)?;
    let outcome = match processed.into_content() {
        ProcessedMessageContent::StagedCommitMessage(commit) => {
            let welcome_refs = commit
                .add_proposals()
                .map(|add| {
                    add.add_proposal()
                        .key_package()
                        .hash_ref(&crypto)
                        .map(|r| r.as_slice().to_vec())
                        .map_err(|e| MlsError::Internal(format!("hash ref: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            group
                .merge_commit(&storage, *commit)
                .map_err(|e| MlsError::Internal(format!("merge: {e:?}")))?;
            let after = leaves(&group)?;
            let devices = |set: &[Leaf]| -> BTreeMap<String, Leaf> {
                set.iter()
                    .map(|l| (l.credential.device().to_string(), l.clone()))
                    .collect()
            };
            let (old, new) = (devices(&before), devices(&after));
            if sender.is_none() {
                sender = new.get(&sender_credential.device().to_string()).cloned();
            }
            Handshake::Commit {
                to_epoch: group.group_context().epoch().as_u64(),
                new_leaves: after
                    .iter()
                    .filter(|l| !before.contains(l))
                    .cloned()
                    .collect(),
                added: new
                    .iter()
                    .filter(|(d, _)| !old.contains_key(*d))
                    .map(|(_, leaf)| leaf.clone())
                    .collect(),
                removed: old
                    .iter()
                    .filter(|(d, _)| !new.contains_key(*d))
                    .map(|(_, leaf)| leaf.clone())
                    .collect(),
                welcome_refs,
                state: save(&storage)?,
            }
        }
        ProcessedMessageContent::ProposalMessage(proposal) => {
            group
                .add_proposal(&storage, *proposal)
                .map_err(|e| MlsError::Internal(format!("queue proposal: {e:?}")))?;
            Handshake::Proposal {
                state: save(&storage)?,
            }
        }
        _ => return Err(invalid("expected a commit or a proposal")),
    };
    let sender = sender.ok_or_else(|| invalid("an external commit must add its sender"))?;
    Ok((outcome, sender, external))
}

/// Checks that a Welcome is ours and covers exactly the added key packages.
pub fn check_welcome(welcome: &[u8], expected_refs: &[Vec<u8>]) -> Result<(), MlsError> {
    let MlsMessageBodyIn::Welcome(welcome) = parse_message(welcome)? else {
        return Err(invalid("welcome is not a Welcome message"));
    };
    if welcome.ciphersuite() != CIPHERSUITE {
        return Err(invalid("welcome uses another ciphersuite"));
    }
    let mut got: Vec<Vec<u8>> = welcome
        .secrets()
        .iter()
        .map(|s| s.new_member().as_slice().to_vec())
        .collect();
    let mut want = expected_refs.to_vec();
    got.sort();
    want.sort();
    if got != want {
        return Err(invalid(
            "welcome does not match the members the commit adds",
        ));
    }
    Ok(())
}

/// A validated key package upload.
#[derive(Debug)]
pub struct CheckedKeyPackage {
    /// The device it is for.
    pub credential: DeviceCredential,
    /// Its signature key.
    pub signature_key: Vec<u8>,
    /// Whether it carries the last-resort extension.
    pub last_resort: bool,
    /// Unix seconds when it expires.
    pub not_after: u64,
}

/// Validates a key package: signature, protocol version, lifetime, ciphersuite, credential.
pub fn check_key_package(bytes: &[u8]) -> Result<CheckedKeyPackage, MlsError> {
    let package_in = match MlsMessageIn::tls_deserialize_exact(bytes).map(MlsMessageIn::extract) {
        Ok(MlsMessageBodyIn::KeyPackage(kp)) => kp,
        Ok(_) => return Err(invalid("expected a KeyPackage message")),
        Err(e) => return Err(invalid(format!("cannot decode key package: {e}"))),
    };
    let package = package_in
        .validate(&RustCrypto::default(), ProtocolVersion::Mls10)
        .map_err(|e| invalid(format!("key package rejected: {e}")))?;
    if package.ciphersuite() != CIPHERSUITE {
        return Err(invalid("key package uses another ciphersuite"));
    }
    let leaf = package.leaf_node();
    Ok(CheckedKeyPackage {
        credential: DeviceCredential::from_mls(leaf.credential()).map_err(invalid)?,
        signature_key: leaf.signature_key().as_slice().to_vec(),
        last_resort: package.last_resort(),
        not_after: package.life_time().not_after(),
    })
}

fn leaf_of(leaf: &LeafNode) -> Result<Leaf, MlsError> {
    Ok(Leaf {
        credential: DeviceCredential::from_mls(leaf.credential()).map_err(invalid)?,
        signature_key: leaf.signature_key().as_slice().to_vec(),
    })
}

fn leaves(group: &PublicGroup) -> Result<Vec<Leaf>, MlsError> {
    group
        .members()
        .map(|m| {
            Ok(Leaf {
                credential: DeviceCredential::from_mls(&m.credential).map_err(invalid)?,
                signature_key: m.signature_key,
            })
        })
        .collect()
}

// The public state is openmls's in-memory store, serialized as a sorted list
// of (key, value) pairs with u32 lengths.

fn save(storage: &MemoryStorage) -> Result<Vec<u8>, MlsError> {
    let values = storage
        .values
        .read()
        .map_err(|_| MlsError::Internal("storage lock poisoned".into()))?;
    let sorted: BTreeMap<&Vec<u8>, &Vec<u8>> = values.iter().collect();
    let mut out = Vec::new();
    for (key, value) in sorted {
        for part in [key, value] {
            let len = u32::try_from(part.len())
                .map_err(|_| MlsError::Internal("state too large".into()))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(part);
        }
    }
    Ok(out)
}

fn load(bytes: &[u8]) -> Result<MemoryStorage, MlsError> {
    let corrupt = || MlsError::Internal("stored public state is corrupt".into());
    let mut map = HashMap::new();
    let mut rest = bytes;
    let take = |rest: &mut &[u8]| -> Result<Vec<u8>, MlsError> {
        let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(corrupt)?;
        let len = u32::from_be_bytes(*len) as usize;
        let part = tail.get(..len).ok_or_else(corrupt)?.to_vec();
        *rest = &tail[len..];
        Ok(part)
    };
    while !rest.is_empty() {
        let key = take(&mut rest)?;
        let value = take(&mut rest)?;
        map.insert(key, value);
    }
    Ok(MemoryStorage {
        values: RwLock::new(map),
    })
}
