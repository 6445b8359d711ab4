//! The openmls side of a channel: how groups are configured, loaded from
//! the store and who is in them.

use std::collections::{BTreeMap, BTreeSet};

use conclave_crypto::{CIPHERSUITE, DeviceCredential};
use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::*;

use crate::error::{ClientError, Result};
use crate::store::TxProvider;

/// Plaintexts are padded to a multiple of this, hiding their exact length from the relay.
const PADDING: usize = 64;

pub(crate) fn create_config() -> MlsGroupCreateConfig {
    MlsGroupCreateConfig::builder()
        .ciphersuite(CIPHERSUITE)
        .use_ratchet_tree_extension(true)
        .wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
        .padding_size(PADDING)
        .build()
}

pub(crate) fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(true)
        .wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
        .padding_size(PADDING)
        .build()
}

pub(crate) fn group_id_of(hex_id: &str) -> Result<GroupId> {
    Ok(GroupId::from_slice(&hex::decode(hex_id).map_err(|_| {
        ClientError::Invalid("bad group id".into())
    })?))
}

pub(crate) fn load_group(provider: &TxProvider<'_>, group_id: &str) -> Result<MlsGroup> {
    MlsGroup::load(provider.storage(), &group_id_of(group_id)?)
        .map_err(ClientError::mls)?
        .ok_or_else(|| ClientError::store(format!("MLS state for group {group_id} is missing")))
}

pub(crate) fn tls_bytes(message: &MlsMessageOut) -> Result<Vec<u8>> {
    message.tls_serialize_detached().map_err(ClientError::mls)
}

/// Each member's username and the ids of its devices in the group.
pub(crate) fn users_of(group: &MlsGroup) -> BTreeMap<String, BTreeSet<String>> {
    let mut users: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for member in group.members() {
        if let Ok(credential) = DeviceCredential::from_mls(&member.credential) {
            users
                .entry(credential.user().to_string())
                .or_default()
                .insert(credential.device().to_string());
        }
    }
    users
}
