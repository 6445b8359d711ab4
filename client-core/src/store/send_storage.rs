//! An openmls storage for encrypting one application message: it keeps in
//! memory the one write that makes ([`StorageProvider::write_message_secrets`],
//! the only storage call of openmls 0.9's `MlsGroup::create_message`, made
//! from `MlsGroup::encrypt`), encoded exactly as `openmls_sqlx_storage`
//! would store it, and refuses every other call.
//!
//! Why: through `openmls_sqlx_storage` that write is one more trip to
//! sqlx's SQLite thread in the middle of a send. Kept here, the send writes
//! it in the same statement list as its outgoing row, gated on the group's
//! stored version (`pending::record_outgoing_with_secrets`). A call this
//! storage refuses (an openmls that reads or writes more when it encrypts)
//! fails the encryption; the send then drops the group it used and sends
//! the usual way, loading the group from the store.
//!
//! The other 52 methods (those of the trait in the features this build
//! enables) are its declarations as written, each answering
//! [`UnexpectedAccess`] with its name.

use std::cell::RefCell;

use openmls_rust_crypto::RustCrypto;
use openmls_sqlx_storage::Codec;
use openmls_traits::storage::{CURRENT_VERSION, StorageProvider, traits};

use super::codec::CborCodec;

/// A storage call other than the one write a send makes.
#[derive(Debug, thiserror::Error)]
#[error("openmls asked the send storage for {0}, which it does not keep")]
pub(crate) struct UnexpectedAccess(&'static str);

/// The write `create_message` made: `openmls_group_data`'s key and value
/// for the group's message secrets, as the codec encodes them. No `Debug`:
/// the value is key material.
pub(crate) struct MessageSecretsWrite {
    pub(crate) group_key: Vec<u8>,
    pub(crate) secrets: zeroize::Zeroizing<Vec<u8>>,
}

/// See the module documentation.
#[derive(Default)]
pub(crate) struct SendStorage {
    written: RefCell<Option<MessageSecretsWrite>>,
}

impl SendStorage {
    fn keep_message_secrets<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        MessageSecrets: traits::MessageSecrets<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        message_secrets: &MessageSecrets,
    ) -> Result<(), UnexpectedAccess> {
        let encode_failed = |_| UnexpectedAccess("write_message_secrets (not encodable)");
        let write = MessageSecretsWrite {
            group_key: CborCodec::to_vec(group_id).map_err(encode_failed)?,
            secrets: zeroize::Zeroizing::new(
                CborCodec::to_vec(message_secrets).map_err(encode_failed)?,
            ),
        };
        *self.written.borrow_mut() = Some(write);
        Ok(())
    }
}

/// openmls's crypto with a [`SendStorage`].
pub(crate) type SendProvider<'a> = super::Provider<'a, SendStorage>;

impl<'a> SendProvider<'a> {
    pub(crate) fn new(crypto: &'a RustCrypto) -> Self {
        Self {
            crypto,
            storage: SendStorage::default(),
        }
    }

    /// The write the encryption made, if it made one.
    pub(crate) fn into_written(self) -> Option<MessageSecretsWrite> {
        self.storage.written.into_inner()
    }
}

impl StorageProvider<CURRENT_VERSION> for SendStorage {
    type Error = UnexpectedAccess;

    fn write_mls_join_config<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        MlsGroupJoinConfig: traits::MlsGroupJoinConfig<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
        _config: &MlsGroupJoinConfig,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("write_mls_join_config"))
    }

    fn append_own_leaf_node<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        LeafNode: traits::LeafNode<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
        _leaf_node: &LeafNode,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("append_own_leaf_node"))
    }

    fn queue_proposal<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
        QueuedProposal: traits::QueuedProposal<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
        _proposal_ref: &ProposalRef,
        _proposal: &QueuedProposal,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("queue_proposal"))
    }

    fn write_tree<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        TreeSync: traits::TreeSync<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
        _tree: &TreeSync,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("write_tree"))
    }

    fn write_interim_transcript_hash<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        InterimTranscriptHash: traits::InterimTranscriptHash<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
        _interim_transcript_hash: &InterimTranscriptHash,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("write_interim_transcript_hash"))
    }

    fn write_context<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        GroupContext: traits::GroupContext<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
        _group_context: &GroupContext,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("write_context"))
    }

    fn write_confirmation_tag<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ConfirmationTag: traits::ConfirmationTag<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
        _confirmation_tag: &ConfirmationTag,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("write_confirmation_tag"))
    }

    fn write_group_state<
        GroupState: traits::GroupState<CURRENT_VERSION>,
        GroupId: traits::GroupId<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
        _group_state: &GroupState,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("write_group_state"))
    }

    fn write_message_secrets<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        MessageSecrets: traits::MessageSecrets<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
        _message_secrets: &MessageSecrets,
    ) -> Result<(), Self::Error> {
        self.keep_message_secrets(_group_id, _message_secrets)
    }

    fn write_resumption_psk_store<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ResumptionPskStore: traits::ResumptionPskStore<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
        _resumption_psk_store: &ResumptionPskStore,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("write_resumption_psk_store"))
    }

    fn write_own_leaf_index<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        LeafNodeIndex: traits::LeafNodeIndex<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
        _own_leaf_index: &LeafNodeIndex,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("write_own_leaf_index"))
    }

    fn write_group_epoch_secrets<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        GroupEpochSecrets: traits::GroupEpochSecrets<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
        _group_epoch_secrets: &GroupEpochSecrets,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("write_group_epoch_secrets"))
    }

    fn write_signature_key_pair<
        SignaturePublicKey: traits::SignaturePublicKey<CURRENT_VERSION>,
        SignatureKeyPair: traits::SignatureKeyPair<CURRENT_VERSION>,
    >(
        &self,
        _public_key: &SignaturePublicKey,
        _signature_key_pair: &SignatureKeyPair,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("write_signature_key_pair"))
    }

    fn write_encryption_key_pair<
        EncryptionKey: traits::EncryptionKey<CURRENT_VERSION>,
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
    >(
        &self,
        _public_key: &EncryptionKey,
        _key_pair: &HpkeKeyPair,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("write_encryption_key_pair"))
    }

    fn write_encryption_epoch_key_pairs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        EpochKey: traits::EpochKey<CURRENT_VERSION>,
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
        _epoch: &EpochKey,
        _leaf_index: u32,
        _key_pairs: &[HpkeKeyPair],
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("write_encryption_epoch_key_pairs"))
    }

    fn write_key_package<
        HashReference: traits::HashReference<CURRENT_VERSION>,
        KeyPackage: traits::KeyPackage<CURRENT_VERSION>,
    >(
        &self,
        _hash_ref: &HashReference,
        _key_package: &KeyPackage,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("write_key_package"))
    }

    fn write_psk<
        PskId: traits::PskId<CURRENT_VERSION>,
        PskBundle: traits::PskBundle<CURRENT_VERSION>,
    >(
        &self,
        _psk_id: &PskId,
        _psk: &PskBundle,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("write_psk"))
    }

    fn mls_group_join_config<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        MlsGroupJoinConfig: traits::MlsGroupJoinConfig<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
    ) -> Result<Option<MlsGroupJoinConfig>, Self::Error> {
        Err(UnexpectedAccess("mls_group_join_config"))
    }

    fn own_leaf_nodes<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        LeafNode: traits::LeafNode<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
    ) -> Result<Vec<LeafNode>, Self::Error> {
        Err(UnexpectedAccess("own_leaf_nodes"))
    }

    fn queued_proposal_refs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
    ) -> Result<Vec<ProposalRef>, Self::Error> {
        Err(UnexpectedAccess("queued_proposal_refs"))
    }

    fn queued_proposals<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
        QueuedProposal: traits::QueuedProposal<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
    ) -> Result<Vec<(ProposalRef, QueuedProposal)>, Self::Error> {
        Err(UnexpectedAccess("queued_proposals"))
    }

    fn tree<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        TreeSync: traits::TreeSync<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
    ) -> Result<Option<TreeSync>, Self::Error> {
        Err(UnexpectedAccess("tree"))
    }

    fn group_context<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        GroupContext: traits::GroupContext<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
    ) -> Result<Option<GroupContext>, Self::Error> {
        Err(UnexpectedAccess("group_context"))
    }

    fn interim_transcript_hash<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        InterimTranscriptHash: traits::InterimTranscriptHash<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
    ) -> Result<Option<InterimTranscriptHash>, Self::Error> {
        Err(UnexpectedAccess("interim_transcript_hash"))
    }

    fn confirmation_tag<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ConfirmationTag: traits::ConfirmationTag<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
    ) -> Result<Option<ConfirmationTag>, Self::Error> {
        Err(UnexpectedAccess("confirmation_tag"))
    }

    fn group_state<
        GroupState: traits::GroupState<CURRENT_VERSION>,
        GroupId: traits::GroupId<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
    ) -> Result<Option<GroupState>, Self::Error> {
        Err(UnexpectedAccess("group_state"))
    }

    fn message_secrets<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        MessageSecrets: traits::MessageSecrets<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
    ) -> Result<Option<MessageSecrets>, Self::Error> {
        Err(UnexpectedAccess("message_secrets"))
    }

    fn resumption_psk_store<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ResumptionPskStore: traits::ResumptionPskStore<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
    ) -> Result<Option<ResumptionPskStore>, Self::Error> {
        Err(UnexpectedAccess("resumption_psk_store"))
    }

    fn own_leaf_index<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        LeafNodeIndex: traits::LeafNodeIndex<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
    ) -> Result<Option<LeafNodeIndex>, Self::Error> {
        Err(UnexpectedAccess("own_leaf_index"))
    }

    fn group_epoch_secrets<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        GroupEpochSecrets: traits::GroupEpochSecrets<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
    ) -> Result<Option<GroupEpochSecrets>, Self::Error> {
        Err(UnexpectedAccess("group_epoch_secrets"))
    }

    fn signature_key_pair<
        SignaturePublicKey: traits::SignaturePublicKey<CURRENT_VERSION>,
        SignatureKeyPair: traits::SignatureKeyPair<CURRENT_VERSION>,
    >(
        &self,
        _public_key: &SignaturePublicKey,
    ) -> Result<Option<SignatureKeyPair>, Self::Error> {
        Err(UnexpectedAccess("signature_key_pair"))
    }

    fn encryption_key_pair<
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
        EncryptionKey: traits::EncryptionKey<CURRENT_VERSION>,
    >(
        &self,
        _public_key: &EncryptionKey,
    ) -> Result<Option<HpkeKeyPair>, Self::Error> {
        Err(UnexpectedAccess("encryption_key_pair"))
    }

    fn encryption_epoch_key_pairs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        EpochKey: traits::EpochKey<CURRENT_VERSION>,
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
        _epoch: &EpochKey,
        _leaf_index: u32,
    ) -> Result<Vec<HpkeKeyPair>, Self::Error> {
        Err(UnexpectedAccess("encryption_epoch_key_pairs"))
    }

    fn key_package<
        KeyPackageRef: traits::HashReference<CURRENT_VERSION>,
        KeyPackage: traits::KeyPackage<CURRENT_VERSION>,
    >(
        &self,
        _hash_ref: &KeyPackageRef,
    ) -> Result<Option<KeyPackage>, Self::Error> {
        Err(UnexpectedAccess("key_package"))
    }

    fn psk<PskBundle: traits::PskBundle<CURRENT_VERSION>, PskId: traits::PskId<CURRENT_VERSION>>(
        &self,
        _psk_id: &PskId,
    ) -> Result<Option<PskBundle>, Self::Error> {
        Err(UnexpectedAccess("psk"))
    }

    fn remove_proposal<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
        _proposal_ref: &ProposalRef,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("remove_proposal"))
    }

    fn delete_own_leaf_nodes<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        _group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("delete_own_leaf_nodes"))
    }

    fn delete_group_config<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        _group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("delete_group_config"))
    }

    fn delete_tree<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        _group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("delete_tree"))
    }

    fn delete_confirmation_tag<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        _group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("delete_confirmation_tag"))
    }

    fn delete_group_state<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        _group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("delete_group_state"))
    }

    fn delete_context<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        _group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("delete_context"))
    }

    fn delete_interim_transcript_hash<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        _group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("delete_interim_transcript_hash"))
    }

    fn delete_message_secrets<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        _group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("delete_message_secrets"))
    }

    fn delete_all_resumption_psk_secrets<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        _group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("delete_all_resumption_psk_secrets"))
    }

    fn delete_own_leaf_index<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        _group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("delete_own_leaf_index"))
    }

    fn delete_group_epoch_secrets<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        _group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("delete_group_epoch_secrets"))
    }

    fn clear_proposal_queue<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("clear_proposal_queue"))
    }

    fn delete_signature_key_pair<
        SignaturePublicKey: traits::SignaturePublicKey<CURRENT_VERSION>,
    >(
        &self,
        _public_key: &SignaturePublicKey,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("delete_signature_key_pair"))
    }

    fn delete_encryption_key_pair<EncryptionKey: traits::EncryptionKey<CURRENT_VERSION>>(
        &self,
        _public_key: &EncryptionKey,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("delete_encryption_key_pair"))
    }

    fn delete_encryption_epoch_key_pairs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        EpochKey: traits::EpochKey<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
        _epoch: &EpochKey,
        _leaf_index: u32,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("delete_encryption_epoch_key_pairs"))
    }

    fn delete_key_package<KeyPackageRef: traits::HashReference<CURRENT_VERSION>>(
        &self,
        _hash_ref: &KeyPackageRef,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("delete_key_package"))
    }

    fn delete_psk<PskKey: traits::PskId<CURRENT_VERSION>>(
        &self,
        _psk_id: &PskKey,
    ) -> Result<(), Self::Error> {
        Err(UnexpectedAccess("delete_psk"))
    }
}
