//! Everything the relay keeps, behind one type, for SQLite and PostgreSQL.
//!
//! What is stored, and nothing more: accounts with OPAQUE password records
//! (argon2id hashes for accounts from before, until their next login),
//! devices with public keys, recently used request nonces, key packages,
//! groups (id, epoch, public MLS state), the ciphertext message log, and one
//! delivery cursor per device and group (`memberships.acked_seq`).
//!
//! One file per family of tables, each adding its methods to [`Store`]:
//! `accounts.rs` and `account_changes.rs` (accounts, factors, sessions,
//! limits, changes to who can sign in), `devices.rs` (devices, nonces),
//! `key_packages.rs`, `groups.rs` (group state, commits, archive,
//! retention), `messages.rs` (the log and the delivery cursors, with
//! `group_commit.rs`, SQLite's one writer of appends), `channels.rs` (the
//! public directory), `blobs.rs` (attachments), `passwords.rs` (OPAQUE
//! logins in progress, the relay's sealed secrets); `migrations.rs` runs the
//! `.sql` files of `server/migrations/`. This file holds the connection and
//! the pieces every family shares.
//!
//! Ordering: each group has a `next_seq` counter. Every append updates the
//! group row first, so concurrent appends to one group serialize on that row
//! and the sequence order is the commit order. A commit additionally
//! compares-and-swaps the epoch, which is what makes "the first valid commit
//! wins" hold across processes and nodes.

mod account_changes;
mod accounts;
mod blobs;
mod channels;
mod devices;
mod group_commit;
mod groups;
mod key_packages;
mod messages;
mod migrations;
mod passwords;

pub use group_commit::Append;

pub use account_changes::{AccountChange, ChangeOutcome};
pub use accounts::{AccountSummary, ChallengeRow, CredentialRow, DeviceSession};
pub use blobs::{BlobRow, BlobSpec, NewBlob};
pub use channels::{NewGroup, PublicListing};
pub use groups::{Admission, CommitRecord, GroupAccess, GroupRow};
pub use key_packages::{KeyPackagesAdded, NewKeyPackage};
pub use messages::{Ack, PayloadHash, Pending};
pub use passwords::PendingLogin;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

use crate::clock::Clock;

/// Which SQL dialect the pool speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite (WAL mode).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Storage failures. Epoch conflicts are not errors here but return values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The audit log refused an entry or failed.
    #[error(transparent)]
    Log(#[from] conclave_audit::log::LogError),
    /// The schema could not be brought up to date.
    #[error("migrating the database schema: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The URL names no supported database.
    #[error("unsupported database URL: use postgres://… or sqlite://…")]
    UnsupportedUrl,
}

/// What kind of MLS message a log entry holds: the wire type, stored by
/// its name (`MessageKind::as_str`).
pub use conclave_proto::MessageKind;

/// The relay's database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Appends wait here for the next group commit (SQLite).
    appends: Option<tokio::sync::mpsc::Sender<group_commit::Queued>>,
    /// What "now" is for every row written and every expiry checked.
    clock: Clock,
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl Store {
    /// Connects and brings the schema up to date, on the system's clock.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_clock(url, Clock::system()).await
    }

    /// Connects, on `clock`, and brings the schema up to date.
    pub async fn connect_with_clock(url: &str, clock: Clock) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let mut options = AnyPoolOptions::new().max_connections(16);
        if backend == Backend::Sqlite {
            // A file does not drop its connection the way a server can: no
            // ping before each use (on PostgreSQL it finds dead connections).
            options = options.test_before_acquire(false);
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL + FULL: a message is on disk before the sender hears "accepted".
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(url).await?;
        let appends = (backend == Backend::Sqlite).then(|| group_commit::start(pool.clone()));
        let store = Self {
            pool,
            backend,
            appends,
            clock,
        };
        migrations::run(&store.pool, backend).await?;
        Ok(store)
    }

    /// The clock this store reads.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Now, in Unix seconds, as rows store it.
    fn now(&self) -> i64 {
        to_i64(self.clock.unix_now())
    }

    /// The connection pool, for the audit log that shares this database.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The dialect in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers and holds every migration this build
    /// knows (a node started against an older schema is not ready).
    pub async fn ready(&self) -> Result<bool, StoreError> {
        migrations::up_to_date(&self.pool, self.backend).await
    }

    /// Starts a transaction that will write. On SQLite it takes the write
    /// lock at once (`BEGIN IMMEDIATE`), queueing behind other writers for
    /// up to the busy timeout: a deferred transaction that reads first fails
    /// outright ("database is locked", SQLITE_BUSY_SNAPSHOT) when it later
    /// writes after another connection has written since its first read.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => group_commit::begin_immediate(&self.pool).await,
            Backend::Postgres => self.pool.begin().await,
        }
    }
}
