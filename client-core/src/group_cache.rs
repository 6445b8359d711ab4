//! openmls groups kept in memory between sends and receives, so that
//! neither loads its group from the store each time: loading decodes the
//! whole ratchet tree and secret tree (a dozen reads, each through sqlx's
//! worker thread), which in a channel of a thousand devices is most of a
//! send's work.
//!
//! A kept group that no longer matched the store would encrypt with a
//! message key already used, so whether a kept group may be used does not
//! rest on every path that writes MLS state remembering to say so. The
//! database keeps a version per group, bumped by triggers on openmls's own
//! tables whatever writes them ([`crate::store::group_versions`]). A group
//! is kept with the version its own transaction left, only once that
//! transaction has committed; it is taken out, not shared, while in use; and
//! it is used only if the stored version is still that one. Anything else
//! loads the group from the store, as before.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use openmls::prelude::MlsGroup;
use openmls_rust_crypto::RustCrypto;
use sqlx::{Sqlite, SqliteConnection, Transaction};

use crate::error::Result;
use crate::group::{group_id_of, load_group};
use crate::store::{TxProvider, group_versions};

/// Most groups kept at once; the one kept longest ago (a group is kept
/// again after each use) makes room.
const CAPACITY: usize = 16;

struct Kept {
    version: i64,
    /// When it was kept, on [`GroupCache`]'s own count.
    kept_at: u64,
    group: MlsGroup,
}

#[derive(Default)]
struct Groups {
    by_id: HashMap<String, Kept>,
    count: u64,
}

/// Groups as this device's last committed transactions left them.
#[derive(Default)]
pub(crate) struct GroupCache {
    groups: Mutex<Groups>,
}

impl GroupCache {
    /// `group_id`'s group as the store holds it in `tx`: the kept one if
    /// nothing wrote the group's state since it was kept, else loaded. The
    /// kept one is taken out; [`GroupCache::commit_and_keep`] puts a group
    /// back.
    pub(crate) async fn take(
        &self,
        tx: &mut SqliteConnection,
        crypto: &RustCrypto,
        group_id: &str,
    ) -> Result<MlsGroup> {
        let version = group_versions::version(tx, &group_id_of(group_id)?).await?;
        let kept = self.lock().by_id.remove(group_id);
        if let Some(kept) = kept.filter(|kept| kept.version == version) {
            return Ok(kept.group);
        }
        load_group(&TxProvider::new(crypto, tx), group_id)
    }

    /// Whether a group is kept for `group_id` (it may still be found stale
    /// when used).
    pub(crate) fn is_kept(&self, group_id: &str) -> bool {
        self.lock().by_id.contains_key(group_id)
    }

    /// `group_id`'s kept group and the version it was kept at, taken out,
    /// for a caller that checks the version in the same statement as its
    /// own write (a send: `pending::record_outgoing_with_secrets`).
    pub(crate) fn take_kept(&self, group_id: &str) -> Option<(MlsGroup, i64)> {
        self.lock()
            .by_id
            .remove(group_id)
            .map(|kept| (kept.group, kept.version))
    }

    /// Commits `tx`, in which `group` was used and written, and keeps
    /// `group` for the next use. If the commit fails, nothing is kept.
    pub(crate) async fn commit_and_keep(
        &self,
        mut tx: Transaction<'_, Sqlite>,
        group_id: &str,
        group: MlsGroup,
    ) -> Result<()> {
        let version = group_versions::version(&mut tx, &group_id_of(group_id)?).await?;
        self.commit_and_keep_at(tx, group_id, group, version).await
    }

    /// [`GroupCache::commit_and_keep`] with the group's stored `version`
    /// already read, in `tx`, after its last write to MLS state.
    pub(crate) async fn commit_and_keep_at(
        &self,
        tx: Transaction<'_, Sqlite>,
        group_id: &str,
        group: MlsGroup,
        version: i64,
    ) -> Result<()> {
        tx.commit().await?;
        let mut groups = self.lock();
        groups.count += 1;
        let kept_at = groups.count;
        if groups.by_id.len() >= CAPACITY && !groups.by_id.contains_key(group_id) {
            let oldest = groups
                .by_id
                .iter()
                .min_by_key(|(_, kept)| kept.kept_at)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                groups.by_id.remove(&oldest);
            }
        }
        groups.by_id.insert(
            group_id.to_owned(),
            Kept {
                version,
                kept_at,
                group,
            },
        );
        Ok(())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    #[cfg(test)]
    fn holds(&self, group_id: &str) -> bool {
        self.lock().by_id.contains_key(group_id)
    }

    /// A poisoned lock still holds whole entries: each is inserted or
    /// removed in one step.
    fn lock(&self) -> MutexGuard<'_, Groups> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    //! Alice's group lives in a real store; Bob reads her messages in
    //! memory. A message key used twice is what a stale kept group would
    //! cause, and Bob's openmls refuses the second use: so every message
    //! Bob reads proves Alice's state was current when she encrypted it.

    use conclave_crypto::{CIPHERSUITE, DeviceKey, Username};
    use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
    use openmls::prelude::*;
    use openmls_rust_crypto::OpenMlsRustCrypto;
    use sqlx::Connection as _;

    use super::*;

    fn credential(user: &str, key: &DeviceKey) -> CredentialWithKey {
        CredentialWithKey {
            credential: key
                .credential(&Username::parse(user).expect("username"))
                .to_mls(),
            signature_key: key.public().to_bytes().to_vec().into(),
        }
    }

    fn arrived(message: &MlsMessageOut) -> MlsMessageIn {
        let bytes = message.tls_serialize_detached().expect("serialize");
        MlsMessageIn::tls_deserialize_exact(bytes.as_slice()).expect("deserialize")
    }

    /// Alice encrypts `text` with `group` in `tx`.
    fn encrypt(
        crypto: &RustCrypto,
        alice: &DeviceKey,
        tx: &mut SqliteConnection,
        group: &mut MlsGroup,
        text: &str,
    ) -> MlsMessageOut {
        let provider = TxProvider::new(crypto, tx);
        group
            .create_message(&provider, alice, text.as_bytes())
            .expect("encrypt")
    }

    async fn trigger_count(db: &mut SqliteConnection) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' \
             AND name LIKE '%_bumps_version'",
        )
        .fetch_one(db)
        .await
        .expect("count")
    }

    struct Channel {
        home: std::path::PathBuf,
        db: SqliteConnection,
        crypto: RustCrypto,
        alice: DeviceKey,
        group_id: String,
        bob: MlsGroup,
        bob_provider: OpenMlsRustCrypto,
    }

    impl Channel {
        /// Alice's new group in a fresh store, and Bob in it.
        async fn new() -> Self {
            let home = std::env::temp_dir().join(format!(
                "conclave-group-cache-{}-{}",
                std::process::id(),
                rand::random::<u64>()
            ));
            let mut db = crate::store::open(&home).await.expect("open");
            let crypto = RustCrypto::default();
            let alice = DeviceKey::generate();
            let bob_key = DeviceKey::generate();
            let bob_provider = OpenMlsRustCrypto::default();
            let (group_id, welcome) = {
                let mut tx = db.begin().await.expect("begin");
                let provider = TxProvider::new(&crypto, &mut tx);
                let mut group = MlsGroup::new(
                    &provider,
                    &alice,
                    &crate::group::create_config(),
                    credential("alice", &alice),
                )
                .expect("create");
                let package = KeyPackage::builder()
                    .build(
                        CIPHERSUITE,
                        &bob_provider,
                        &bob_key,
                        credential("bob", &bob_key),
                    )
                    .expect("key package");
                let (_, welcome, _) = group
                    .add_members(&provider, &alice, &[package.key_package().clone()])
                    .expect("add bob");
                group.merge_pending_commit(&provider).expect("merge");
                tx.commit().await.expect("commit");
                (hex::encode(group.group_id().as_slice()), welcome)
            };
            let MlsMessageBodyIn::Welcome(welcome) = arrived(&welcome).extract() else {
                panic!("not a Welcome");
            };
            let bob = StagedWelcome::new_from_welcome(
                &bob_provider,
                &crate::group::join_config(),
                welcome,
                None,
            )
            .and_then(|staged| staged.into_group(&bob_provider))
            .expect("bob joins");
            Self {
                home,
                db,
                crypto,
                alice,
                group_id,
                bob,
                bob_provider,
            }
        }

        /// Alice sends as the client does: the group from `cache`, kept
        /// again once the transaction commits.
        async fn send_through(&mut self, cache: &GroupCache, text: &str) -> MlsMessageOut {
            let mut tx = self.db.begin().await.expect("begin");
            let mut group = cache
                .take(&mut tx, &self.crypto, &self.group_id)
                .await
                .expect("take");
            let message = encrypt(&self.crypto, &self.alice, &mut tx, &mut group, text);
            cache
                .commit_and_keep(tx, &self.group_id, group)
                .await
                .expect("commit");
            message
        }

        /// Alice sends with the group loaded from the store, as every other
        /// path does, leaving any kept group behind.
        async fn send_loaded(&mut self, text: &str) -> MlsMessageOut {
            let mut tx = self.db.begin().await.expect("begin");
            let mut group =
                load_group(&TxProvider::new(&self.crypto, &mut tx), &self.group_id).expect("load");
            let message = encrypt(&self.crypto, &self.alice, &mut tx, &mut group, text);
            tx.commit().await.expect("commit");
            message
        }

        /// What Bob reads, or why he refuses it.
        fn bob_reads(&mut self, message: &MlsMessageOut) -> Result<Vec<u8>, String> {
            let message = arrived(message)
                .try_into_protocol_message()
                .expect("a group message");
            match self
                .bob
                .process_message(&self.bob_provider, message)
                .map_err(|e| e.to_string())?
                .into_content()
            {
                ProcessedMessageContent::ApplicationMessage(message) => Ok(message.into_bytes()),
                _ => Err("not an application message".into()),
            }
        }
    }

    impl Drop for Channel {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.home);
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_group_written_elsewhere_is_loaded_again_never_reused() {
        let mut channel = Channel::new().await;
        let cache = GroupCache::default();
        let first = channel.send_through(&cache, "one").await;
        assert_eq!(cache.len(), 1, "kept after its commit");
        // Another path moves the stored state on: the kept group is stale.
        let second = channel.send_loaded("two").await;
        let third = channel.send_through(&cache, "three").await;
        // Kept again, and current: the next send takes it as it is.
        let fourth = channel.send_through(&cache, "four").await;
        for (message, text) in [
            (&first, "one"),
            (&second, "two"),
            (&third, "three"),
            (&fourth, "four"),
        ] {
            assert_eq!(channel.bob_reads(message), Ok(text.as_bytes().to_vec()));
        }
    }

    /// The control: two copies of one stored state, each used once, as a
    /// kept group that ignored the store would be. Bob refuses the second
    /// message, which is what the test above would see if `take` returned
    /// a stale group.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_stale_copy_reuses_a_message_key_and_is_refused() {
        let mut channel = Channel::new().await;
        let mut tx = channel.db.begin().await.expect("begin");
        let provider = TxProvider::new(&channel.crypto, &mut tx);
        let mut current = load_group(&provider, &channel.group_id).expect("load");
        let mut stale = load_group(&provider, &channel.group_id).expect("load");
        let first = encrypt(
            &channel.crypto,
            &channel.alice,
            &mut tx,
            &mut current,
            "one",
        );
        let reused = encrypt(&channel.crypto, &channel.alice, &mut tx, &mut stale, "two");
        tx.commit().await.expect("commit");
        assert_eq!(channel.bob_reads(&first), Ok(b"one".to_vec()));
        let refused = channel.bob_reads(&reused).expect_err("a reused key");
        // openmls deleted the key after its first use (forward secrecy).
        assert!(refused.contains("secret was deleted"), "{refused}");
    }

    /// A send from a kept group writes openmls's state itself
    /// (`store::send_storage`): the bytes must be the ones
    /// `openmls_sqlx_storage` writes for the same encryption, or a group
    /// loaded later would not be the one that sent. Two copies of one
    /// stored state encrypt once each, one through each storage.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_send_storage_writes_what_openmls_sqlx_storage_writes() {
        let mut channel = Channel::new().await;
        let mut tx = channel.db.begin().await.expect("begin");
        let provider = TxProvider::new(&channel.crypto, &mut tx);
        let mut through_sqlx = load_group(&provider, &channel.group_id).expect("load");
        let mut kept = load_group(&provider, &channel.group_id).expect("load");
        encrypt(
            &channel.crypto,
            &channel.alice,
            &mut tx,
            &mut through_sqlx,
            "one",
        );
        let key = group_versions::key(&group_id_of(&channel.group_id).expect("id")).expect("key");
        let stored: Vec<u8> = sqlx::query_scalar(
            "SELECT group_data FROM openmls_group_data
             WHERE group_id = $1 AND data_type = 'message_secrets'",
        )
        .bind(&key)
        .fetch_one(&mut *tx)
        .await
        .expect("stored secrets");
        let send_provider = crate::store::send_storage::SendProvider::new(&channel.crypto);
        kept.create_message(&send_provider, &channel.alice, b"one")
            .expect("encrypt");
        let written = send_provider.into_written().expect("the one write");
        assert_eq!(written.group_key, key);
        assert_eq!(written.secrets.as_slice(), stored.as_slice());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_group_taken_and_not_committed_is_not_kept() {
        let mut channel = Channel::new().await;
        let cache = GroupCache::default();
        let first = channel.send_through(&cache, "one").await;
        {
            // A send that fails before its commit: the transaction rolls
            // back and the group it took is gone with it.
            let mut tx = channel.db.begin().await.expect("begin");
            let mut group = cache
                .take(&mut tx, &channel.crypto, &channel.group_id)
                .await
                .expect("take");
            let _lost = encrypt(
                &channel.crypto,
                &channel.alice,
                &mut tx,
                &mut group,
                "never sent",
            );
        }
        assert_eq!(cache.len(), 0);
        let second = channel.send_through(&cache, "two").await;
        assert_eq!(channel.bob_reads(&first), Ok(b"one".to_vec()));
        assert_eq!(channel.bob_reads(&second), Ok(b"two".to_vec()));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_version_triggers_come_back_when_the_store_opens() {
        let mut channel = Channel::new().await;
        assert_eq!(trigger_count(&mut channel.db).await, 12);
        // As a migration of openmls's that rebuilds a table would leave it.
        sqlx::query("DROP TRIGGER openmls_group_data_update_bumps_version")
            .execute(&mut channel.db)
            .await
            .expect("drop");
        let mut reopened = crate::store::open(&channel.home).await.expect("open");
        assert_eq!(trigger_count(&mut reopened).await, 12);
        // And every write of a group's state moves its version.
        let id = group_id_of(&channel.group_id).expect("id");
        let before = group_versions::version(&mut reopened, &id)
            .await
            .expect("v");
        channel.send_loaded("one").await;
        let after = group_versions::version(&mut reopened, &id)
            .await
            .expect("v");
        assert!(after > before, "{before} -> {after}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn at_most_capacity_groups_are_kept_the_oldest_goes() {
        let cache = GroupCache::default();
        let mut channels = Vec::new();
        for _ in 0..=CAPACITY {
            let mut channel = Channel::new().await;
            channel.send_through(&cache, "hello").await;
            channels.push(channel);
        }
        assert_eq!(cache.len(), CAPACITY);
        assert!(!cache.holds(&channels[0].group_id), "the oldest made room");
        assert!(channels[1..].iter().all(|c| cache.holds(&c.group_id)));
    }
}
