//! What connected devices are told, and the [`Notifier`] that tells them:
//! this node's streams at once through an in-process broadcast, the other
//! nodes' through [`fanout`](super::fanout).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::sync::broadcast;

use crate::store::{Backend, MessageKind, Pending, Store};

/// What connected devices are told, after it is durable.
#[derive(Debug)]
pub(crate) enum Notice {
    /// A message was appended to a group (accepted at that instant), with
    /// its stream frame, made by the first stream that pushes it and shared
    /// by the others (at 1000 devices, one JSON-and-base64 encoding instead
    /// of a thousand).
    Message(Pending, Instant, OnceLock<super::delivery::Frame>),
    /// A device was revoked or its session ended: close its stream now.
    SessionEnded {
        /// Hex device id.
        device_id: String,
    },
    /// An account's device list changed: its devices should look.
    DevicesChanged {
        /// The account.
        username: String,
    },
    /// A device became a member of a group without a Welcome (it created
    /// the group, or joined by external commit): its stream should follow it.
    Joined {
        /// Hex device id.
        device_id: String,
    },
    /// Another node appended to a group: streams of its members fetch it
    /// from the database.
    Appended {
        /// Hex group id.
        group_id: String,
        /// Its position.
        seq: u64,
        /// What was appended.
        kind: MessageKind,
        /// When the other node accepted it (Unix milliseconds).
        accepted_ms: u64,
    },
    /// Notices from other nodes may have been missed: every stream looks
    /// in the database.
    Resync,
    /// This node is shutting down: streams close with "going away" (1001)
    /// so clients move to another node at once.
    GoingAway,
}

impl Notice {
    /// A message accepted at `accepted`, its frame not yet encoded.
    pub(crate) fn message(message: Pending, accepted: Instant) -> Self {
        Notice::Message(message, accepted, OnceLock::new())
    }
}

/// Tells this node's streams, and the other nodes', what changed.
#[derive(Clone, Debug)]
pub(crate) struct Notifier {
    local: broadcast::Sender<Arc<Notice>>,
    /// This process, among the relay nodes sharing the database.
    node: Arc<str>,
    /// For `pg_notify` when other nodes share the database.
    store: Store,
}

impl Notifier {
    /// How many notices a slow stream may fall behind before it is told it
    /// lagged (and looks in the database instead).
    const BACKLOG: usize = 4096;

    pub(crate) fn new(store: Store) -> Self {
        let (local, _) = broadcast::channel(Self::BACKLOG);
        Notifier {
            local,
            node: Arc::from(hex::encode(rand::random::<[u8; 8]>())),
            store,
        }
    }

    /// Tells connected devices that a message was appended (after it is durable).
    pub(crate) fn message(&self, message: Pending) {
        crate::metrics::METRICS.accepted(message.kind.as_str());
        self.tell(Notice::message(message, Instant::now()));
    }

    /// Tells this node's devices, and the other nodes'.
    pub(crate) fn tell(&self, notice: Notice) {
        super::fanout::publish(self, &notice);
        self.tell_local(notice);
    }

    /// Tells this node's connected devices only.
    pub(crate) fn tell_local(&self, notice: Notice) {
        // No receivers is fine: devices fetch on reconnect.
        let _ = self.local.send(Arc::new(notice));
    }

    /// Every notice from now on, for one stream.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Notice>> {
        self.local.subscribe()
    }

    /// This node's id among the nodes sharing the database.
    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    /// Whether other relay nodes may share this database (PostgreSQL).
    pub(crate) fn shared_database(&self) -> bool {
        self.store.backend() == Backend::Postgres
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }
}
