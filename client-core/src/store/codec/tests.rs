//! The codec, and a store whose MLS state an older client wrote as JSON:
//! converted when it opens, and used on from there.

use conclave_crypto::{CIPHERSUITE, DeviceKey, Username};
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::OpenMlsProvider;
use sqlx::SqliteConnection;

use super::*;
use crate::store::TxProvider;

/// Group settings for these tests. They are built here rather than borrowed
/// from `crate::group`, which depends on the store: the codec's tests need
/// real MLS state, not the client's exact policy.
fn create_config() -> MlsGroupCreateConfig {
    MlsGroupCreateConfig::builder()
        .ciphersuite(CIPHERSUITE)
        .use_ratchet_tree_extension(true)
        .build()
}

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(true)
        .build()
}

/// The codec the store used before this one, to write state as an
/// older client left it.
#[derive(Debug, Default)]
struct JsonCodec;

impl Codec for JsonCodec {
    type Error = serde_json::Error;

    fn to_vec<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Self::Error> {
        serde_json::to_vec(value)
    }

    fn from_slice<T: serde::de::DeserializeOwned>(slice: &[u8]) -> Result<T, Self::Error> {
        serde_json::from_slice(slice)
    }
}

/// Converted JSON must be the very bytes the codec writes for the value.
fn assert_converts_exactly<T: serde::Serialize>(value: &T) {
    let json = JsonCodec::to_vec(value).expect("json");
    let converted = cbor_of_stored(&json).expect("convert");
    assert_eq!(converted, CborCodec::to_vec(value).expect("cbor"));
    assert_eq!(cbor_of_stored(&converted).expect("again"), converted);
}

#[test]
fn converted_keys_are_the_bytes_the_codec_writes() {
    use openmls::prelude::*;
    assert_converts_exactly(&GroupId::from_slice(&[7; 16]));
    assert_converts_exactly(&GroupEpoch::from(u64::MAX));
    assert_converts_exactly(&SignaturePublicKey::from(vec![1u8, 2, 255]));
    // Maps keyed by integers (JSON writes "3" and "-5"), by text that only
    // looks like a number, unit variants, negative numbers, nothing at all.
    let mut by_number = std::collections::BTreeMap::new();
    by_number.insert(3u16, ("x".to_owned(), -5i64, None::<u8>));
    by_number.insert(65535u16, ("y".to_owned(), i64::MIN, Some(0u8)));
    assert_converts_exactly(&by_number);
    assert_converts_exactly(&std::collections::BTreeMap::from([
        (-5i64, true),
        (7, false),
    ]));
    assert_converts_exactly(&std::collections::BTreeMap::from([
        ("007".to_owned(), 1u8),
        ("x1".to_owned(), 2),
    ]));
    assert_converts_exactly(&Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519);
}

#[test]
fn values_round_trip_and_json_is_refused_once_converted() {
    let value = vec![(1u32, "a".to_owned()), (2, "b".to_owned())];
    let encoded = CborCodec::to_vec(&value).expect("encode");
    assert_eq!(encoded[..3], MAGIC);
    let decoded: Vec<(u32, String)> = CborCodec::from_slice(&encoded).expect("decode");
    assert_eq!(decoded, value);
    let json = JsonCodec::to_vec(&value).expect("json");
    assert!(matches!(
        CborCodec::from_slice::<Vec<(u32, String)>>(&json),
        Err(CodecError::Unmarked)
    ));
}

/// A provider writing state as an older client did.
type JsonProvider<'a> = TxProvider<'a, JsonCodec>;

struct Device {
    key: DeviceKey,
    credential: CredentialWithKey,
}

impl Device {
    fn new(user: &str) -> Self {
        let key = DeviceKey::generate();
        let credential = CredentialWithKey {
            credential: key
                .credential(&Username::parse(user).expect("username"))
                .to_mls(),
            signature_key: key.public().to_bytes().to_vec().into(),
        };
        Self { key, credential }
    }

    fn key_package(&self, provider: &impl openmls::storage::OpenMlsProvider) -> KeyPackage {
        KeyPackage::builder()
            .build(CIPHERSUITE, provider, &self.key, self.credential.clone())
            .expect("key package")
            .key_package()
            .clone()
    }
}

/// A message as it arrives from the relay.
fn arrived(message: &MlsMessageOut) -> MlsMessageIn {
    let bytes = message.tls_serialize_detached().expect("serialize");
    MlsMessageIn::tls_deserialize_exact(bytes.as_slice()).expect("deserialize")
}

fn welcome(message: &MlsMessageOut) -> Welcome {
    match arrived(message).extract() {
        MlsMessageBodyIn::Welcome(welcome) => welcome,
        _ => panic!("not a Welcome"),
    }
}

/// What `group` makes of `message`.
fn read(
    group: &mut MlsGroup,
    provider: &impl openmls::storage::OpenMlsProvider,
    message: &MlsMessageOut,
) -> ProcessedMessageContent {
    let message = arrived(message)
        .try_into_protocol_message()
        .expect("a group message");
    group
        .process_message(provider, message)
        .expect("process")
        .into_content()
}

fn text(content: ProcessedMessageContent) -> Vec<u8> {
    match content {
        ProcessedMessageContent::ApplicationMessage(message) => message.into_bytes(),
        _ => panic!("not an application message"),
    }
}

fn load(provider: &TxProvider<'_>, id: &GroupId) -> MlsGroup {
    MlsGroup::load(provider.storage(), id)
        .expect("load")
        .expect("the group is in the store")
}

/// How many rows of each openmls table the store holds, and that each of
/// their keys and values is CBOR.
async fn cbor_rows(db: &mut SqliteConnection) -> std::collections::BTreeMap<&'static str, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for (table, columns) in STATE_COLUMNS {
        let rows = sqlx::query(&format!("SELECT {} FROM {table}", columns.join(", ")))
            .fetch_all(&mut *db)
            .await
            .expect("select");
        for row in &rows {
            for i in 0..columns.len() {
                let stored: Vec<u8> = row.get(i);
                assert!(
                    stored.starts_with(&MAGIC),
                    "{table}.{} is not CBOR",
                    columns[i]
                );
            }
        }
        counts.insert(*table, rows.len());
    }
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn state_written_as_json_is_converted_and_keeps_working() {
    let dir = std::env::temp_dir().join(format!(
        "conclave-json-state-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let crypto = RustCrypto::default();
    let (alice, bob, carol) = (
        Device::new("alice"),
        Device::new("bob"),
        Device::new("carol"),
    );
    let (alice_home, bob_home) = (dir.join("alice"), dir.join("bob"));

    // As an older client left it: schema 11, every openmls key and value JSON.
    let mut alice_db = crate::store::open(&alice_home).await.expect("open");
    let mut bob_db = crate::store::open(&bob_home).await.expect("open");
    let (group_id, quiet_id, later_package, dropped_proposal) = {
        let alice_json = JsonProvider::with_codec(&crypto, &mut alice_db);
        let bob_json = JsonProvider::with_codec(&crypto, &mut bob_db);
        let first_package = bob.key_package(&bob_json);
        let quiet_package = bob.key_package(&bob_json);
        let later_package = bob.key_package(&bob_json);
        // A second group, where bob keeps the leaf key he joined with.
        let mut quiet = MlsGroup::new(
            &alice_json,
            &alice.key,
            &create_config(),
            alice.credential.clone(),
        )
        .expect("create");
        let (_, invitation, _) = quiet
            .add_members(&alice_json, &alice.key, &[quiet_package])
            .expect("add bob");
        quiet.merge_pending_commit(&alice_json).expect("merge");
        StagedWelcome::new_from_welcome(&bob_json, &join_config(), welcome(&invitation), None)
            .and_then(|staged| staged.into_group(&bob_json))
            .expect("bob joins");
        let mut alice_group = MlsGroup::new(
            &alice_json,
            &alice.key,
            &create_config(),
            alice.credential.clone(),
        )
        .expect("create");
        let (_, invitation, _) = alice_group
            .add_members(&alice_json, &alice.key, &[first_package])
            .expect("add bob");
        alice_group
            .merge_pending_commit(&alice_json)
            .expect("merge");
        let mut bob_group =
            StagedWelcome::new_from_welcome(&bob_json, &join_config(), welcome(&invitation), None)
                .and_then(|staged| staged.into_group(&bob_json))
                .expect("bob joins");
        let sent = alice_group
            .create_message(&alice_json, &alice.key, b"one")
            .expect("send");
        assert_eq!(text(read(&mut bob_group, &bob_json, &sent)), b"one");
        // Two proposals from bob wait in alice's store: his new leaf key
        // (its private half kept in his store) and carol.
        let carol_package = carol.key_package(&openmls_rust_crypto::OpenMlsRustCrypto::default());
        let (update, _) = bob_group
            .propose_self_update(&bob_json, &bob.key, LeafNodeParameters::default())
            .expect("propose update");
        let (add_carol, carol_ref) = bob_group
            .propose_add_member(&bob_json, &bob.key, &carol_package)
            .expect("propose carol");
        for proposal in [&update, &add_carol] {
            match read(&mut alice_group, &alice_json, proposal) {
                ProcessedMessageContent::ProposalMessage(queued) => alice_group
                    .store_pending_proposal(alice_json.storage(), *queued)
                    .expect("store proposal"),
                _ => panic!("not a proposal"),
            }
        }
        (
            alice_group.group_id().clone(),
            quiet.group_id().clone(),
            later_package,
            carol_ref,
        )
    };
    for db in [&mut alice_db, &mut bob_db] {
        let json: Vec<u8> = sqlx::query_scalar("SELECT group_id FROM openmls_group_data LIMIT 1")
            .fetch_one(&mut *db)
            .await
            .expect("a JSON row");
        assert_eq!(json.first(), Some(&b'{'), "the state starts out as JSON");
        sqlx::query("PRAGMA user_version = 11")
            .execute(&mut *db)
            .await
            .expect("schema 11");
    }
    drop((alice_db, bob_db));

    // Opened by this client: converted, every table the state uses.
    let mut alice_db = crate::store::open(&alice_home).await.expect("reopen");
    let mut bob_db = crate::store::open(&bob_home).await.expect("reopen");
    let alice_rows = cbor_rows(&mut alice_db).await;
    let bob_rows = cbor_rows(&mut bob_db).await;
    assert_eq!(alice_rows["openmls_proposal"], 2);
    for table in [
        "openmls_group_data",
        "openmls_own_leaf_node",
        "openmls_encryption_key",
        "openmls_epoch_key_pairs",
        "openmls_key_package",
    ] {
        assert!(bob_rows[table] > 0, "bob's store has no {table} row");
    }

    // Alice drops one proposal by its reference, commits the other.
    let commit = {
        let alice_cbor = TxProvider::new(&crypto, &mut alice_db);
        let mut group = load(&alice_cbor, &group_id);
        group
            .remove_pending_proposal(alice_cbor.storage(), &dropped_proposal)
            .expect("drop carol's proposal");
        assert_eq!(load(&alice_cbor, &group_id).pending_proposals().count(), 1);
        let (commit, _, _) = group
            .commit_to_pending_proposals(&alice_cbor, &alice.key)
            .expect("commit bob's update");
        group.merge_pending_commit(&alice_cbor).expect("merge");
        assert_eq!(load(&alice_cbor, &group_id).pending_proposals().count(), 0);
        commit
    };
    // Bob takes it with the leaf key he proposed, and both go on talking.
    {
        let bob_cbor = TxProvider::new(&crypto, &mut bob_db);
        let mut group = load(&bob_cbor, &group_id);
        match read(&mut group, &bob_cbor, &commit) {
            ProcessedMessageContent::StagedCommitMessage(staged) => group
                .merge_staged_commit(&bob_cbor, *staged)
                .expect("bob merges"),
            _ => panic!("not a commit"),
        }
    }
    let to_bob = {
        let alice_cbor = TxProvider::new(&crypto, &mut alice_db);
        let mut group = load(&alice_cbor, &group_id);
        group
            .create_message(&alice_cbor, &alice.key, b"two")
            .expect("send")
    };
    let to_alice = {
        let bob_cbor = TxProvider::new(&crypto, &mut bob_db);
        let mut group = load(&bob_cbor, &group_id);
        assert_eq!(text(read(&mut group, &bob_cbor, &to_bob)), b"two");
        group
            .create_message(&bob_cbor, &bob.key, b"three")
            .expect("send")
    };
    {
        let alice_cbor = TxProvider::new(&crypto, &mut alice_db);
        let mut group = load(&alice_cbor, &group_id);
        assert_eq!(group.epoch(), GroupEpoch::from(2));
        assert_eq!(text(read(&mut group, &alice_cbor, &to_alice)), b"three");
    }

    // Alice's new leaf key in the second group reaches bob under the key he
    // joined with, kept for that epoch.
    let update = {
        let alice_cbor = TxProvider::new(&crypto, &mut alice_db);
        let mut group = load(&alice_cbor, &quiet_id);
        let update = group
            .self_update(&alice_cbor, &alice.key, LeafNodeParameters::default())
            .expect("update")
            .into_commit();
        group.merge_pending_commit(&alice_cbor).expect("merge");
        update
    };
    {
        let bob_cbor = TxProvider::new(&crypto, &mut bob_db);
        let mut group = load(&bob_cbor, &quiet_id);
        match read(&mut group, &bob_cbor, &update) {
            ProcessedMessageContent::StagedCommitMessage(staged) => group
                .merge_staged_commit(&bob_cbor, *staged)
                .expect("bob merges"),
            _ => panic!("not a commit"),
        }
    }

    // A key package bob published before: a new group reaches him with it.
    let (invitation, hello) = {
        let alice_cbor = TxProvider::new(&crypto, &mut alice_db);
        let mut group = MlsGroup::new(
            &alice_cbor,
            &alice.key,
            &create_config(),
            alice.credential.clone(),
        )
        .expect("create");
        let (_, invitation, _) = group
            .add_members(&alice_cbor, &alice.key, &[later_package])
            .expect("add bob");
        group.merge_pending_commit(&alice_cbor).expect("merge");
        let hello = group
            .create_message(&alice_cbor, &alice.key, b"four")
            .expect("send");
        (invitation, hello)
    };
    {
        let bob_cbor = TxProvider::new(&crypto, &mut bob_db);
        let mut group =
            StagedWelcome::new_from_welcome(&bob_cbor, &join_config(), welcome(&invitation), None)
                .and_then(|staged| staged.into_group(&bob_cbor))
                .expect("bob joins with the older key package");
        assert_eq!(text(read(&mut group, &bob_cbor, &hello)), b"four");
    }
    cbor_rows(&mut alice_db).await;
    cbor_rows(&mut bob_db).await;
    drop((alice_db, bob_db));
    let _ = std::fs::remove_dir_all(&dir);
}
