//! What the parts of one client share: the store, the crypto provider, who
//! the device is, the relay transport and the subscribers to its events.
//!
//! A [`Client`](crate::Client) is an `Arc<Session>`; its clones, and the
//! channel handles made from it, share one session.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, MutexGuard, RwLock};

use openmls_rust_crypto::RustCrypto;
use sqlx::SqliteConnection;
use tokio::sync::{Mutex, broadcast};

use crate::error::{ClientError, Result};
use crate::event::Event;
use crate::identity::Identity;
use crate::key_at_rest::AtRest;
use crate::store;
use crate::transport::Transport;

/// What the last fetch said about the account's devices, for the membership
/// upkeep that follows a sync.
#[derive(Default)]
pub(crate) struct DeviceNews {
    /// The account's devices that are not revoked.
    pub(crate) active: Vec<String>,
    /// (group id, device id) of revoked devices still in our groups.
    pub(crate) revoked_members: Vec<(String, String)>,
}

/// Groups whose every member passed the key-transparency check since their
/// membership last changed, and a count of membership changes seen (a check
/// that overlapped one does not count).
pub(crate) type MembersChecked = (u64, HashSet<String>);

/// A send the relay accepted whose place in the history is not written yet
/// (see `receive/own.rs`). No `Debug`: it holds message text.
pub(crate) struct Accepted {
    pub(crate) group_id: String,
    /// The channel's name, for the history entry and the event.
    pub(crate) channel: String,
    /// Its position in the channel.
    pub(crate) seq: u64,
    /// Hash of its ciphertext: the key of its outgoing row.
    pub(crate) hash: String,
    /// What its outgoing row holds: the plaintext, as kept, and the
    /// message id (so recording it reads nothing back).
    pub(crate) plaintext: zeroize::Zeroizing<String>,
    pub(crate) message_id: String,
}

pub(crate) struct Session {
    /// How requests reach the relay.
    pub(crate) transport: Arc<dyn Transport>,
    /// The device's store. One connection: whoever holds it may open a
    /// transaction, and nothing else changes the store meanwhile. Taken
    /// through [`Client::db`](crate::Client), which first records the sends
    /// in `accepted`.
    pub(crate) db: Arc<Mutex<SqliteConnection>>,
    /// Sends the relay accepted whose place in the history is not written
    /// yet: the next transaction on the store writes them (a send's own, or
    /// one of their own). See `receive/own.rs`.
    accepted: std::sync::Mutex<Vec<Accepted>>,
    /// openmls's crypto; its storage is a transaction of `db`
    /// (`store::TxProvider`).
    pub(crate) crypto: RustCrypto,
    /// Groups kept in memory between sends and receives, while the store
    /// agrees.
    pub(crate) groups: crate::group_cache::GroupCache,
    /// Set while the device key is in memory (unprotected, or unlocked).
    identity: RwLock<Option<Arc<Identity>>>,
    /// How the device key is kept at rest, and who it is while locked.
    at_rest: std::sync::Mutex<AtRest>,
    events: broadcast::Sender<Event>,
    /// What the last fetch said about the account's devices.
    pub(crate) device_news: Mutex<DeviceNews>,
    /// Serializes key-transparency checks, so each stored checkpoint is
    /// checked against the one stored just before it.
    pub(crate) transparency: Mutex<()>,
    members_checked: std::sync::Mutex<MembersChecked>,
    /// Checkpoint gossip: the newest checkpoint this device verified (sent
    /// with every message) and what members sent (checked after each batch).
    pub(crate) gossip: std::sync::Mutex<crate::gossip::Gossip>,
    /// Whether the password itself may be sent when the relay says the
    /// account's password predates OPAQUE (off unless the user says so:
    /// see [`Client::allow_password_from_before_opaque`](crate::Client)).
    pub(crate) legacy_password_allowed: std::sync::atomic::AtomicBool,
    /// Held while the session lives: one process per home directory, since
    /// two would race each other over the same MLS state.
    _home_lock: std::fs::File,
}

impl Session {
    /// Opens (or creates) the device store in `home`, taking its lock.
    pub(crate) async fn open(home: &Path, transport: Arc<dyn Transport>) -> Result<Self> {
        let home_lock = store::lock_home(home)?;
        let mut db = store::open(home).await?;
        let (identity, at_rest) = crate::key_at_rest::load(&mut db).await?;
        let gossip = crate::gossip::Gossip::new(
            crate::store::transparency::newest_checkpoint(&mut db)
                .await?
                .map(|checkpoint| checkpoint.note),
        );
        let (events, _) = broadcast::channel(1024);
        Ok(Self {
            transport,
            db: Arc::new(Mutex::new(db)),
            accepted: std::sync::Mutex::default(),
            crypto: RustCrypto::default(),
            groups: Default::default(),
            identity: RwLock::new(identity.map(Arc::new)),
            at_rest: std::sync::Mutex::new(at_rest),
            events,
            device_news: Mutex::new(DeviceNews::default()),
            transparency: Mutex::new(()),
            members_checked: std::sync::Mutex::default(),
            gossip: std::sync::Mutex::new(gossip),
            legacy_password_allowed: std::sync::atomic::AtomicBool::new(false),
            _home_lock: home_lock,
        })
    }

    /// Checkpoint gossip (a poisoned lock still holds usable state).
    pub(crate) fn gossip(&self) -> std::sync::MutexGuard<'_, crate::gossip::Gossip> {
        self.gossip
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The identity whose key is in memory; `None` while logged out or
    /// locked.
    pub(crate) fn identity(&self) -> Result<Option<Arc<Identity>>> {
        Ok(self
            .identity
            .read()
            .map_err(|_| ClientError::store("identity lock poisoned"))?
            .clone())
    }

    /// Makes `identity` the usable one (its key in memory).
    pub(crate) fn set_identity(&self, identity: Identity) -> Result<()> {
        *self
            .identity
            .write()
            .map_err(|_| ClientError::store("identity lock poisoned"))? = Some(Arc::new(identity));
        Ok(())
    }

    pub(crate) fn at_rest(&self) -> Result<MutexGuard<'_, AtRest>> {
        self.at_rest
            .lock()
            .map_err(|_| ClientError::store("key state lock poisoned"))
    }

    pub(crate) fn members_checked(&self) -> MutexGuard<'_, MembersChecked> {
        // The set is only ever extended with fully checked groups.
        self.members_checked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn accepted(&self) -> MutexGuard<'_, Vec<Accepted>> {
        // A list of values: usable whatever a panicking holder did.
        self.accepted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes a send the relay accepted, to be recorded with the next write;
    /// `true` if none was waiting before it.
    pub(crate) fn note_accepted(&self, accepted: Accepted) -> bool {
        let mut waiting = self.accepted();
        waiting.push(accepted);
        waiting.len() == 1
    }

    /// Whether any accepted send waits to be recorded.
    pub(crate) fn has_accepted(&self) -> bool {
        !self.accepted().is_empty()
    }

    /// Takes the accepted sends to record; whoever takes them puts them
    /// back ([`Session::restore_accepted`]) if their transaction fails.
    pub(crate) fn take_accepted(&self) -> Vec<Accepted> {
        std::mem::take(&mut *self.accepted())
    }

    /// Puts back sends taken by a transaction that did not commit, ahead
    /// of any noted since.
    pub(crate) fn restore_accepted(&self, mut taken: Vec<Accepted>) {
        let mut accepted = self.accepted();
        taken.append(&mut accepted);
        *accepted = taken;
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Tells every subscriber; nobody listening is no error.
    pub(crate) fn publish(&self, event: Event) {
        let _ = self.events.send(event);
    }
}
