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
//! `group_commit.rs`, the batches of appends and nonces), `channels.rs` (the
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

pub use group_commit::{Append, Nonce};

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

/// `rows` parenthesised lists of `width` parameters each, `(…), (…)`, for a
/// multi-row statement whose first parameter is the statement's first:
/// numbered (`$1`, `$2`, …) for PostgreSQL, anonymous (`?`) for SQLite.
/// SQLite looks a numbered parameter up by a linear search, once as it
/// parses the statement and once more for every value sqlx binds, so a
/// statement of n numbered parameters costs n² (a batch of 256 rows of 8:
/// two million steps); anonymous ones cost nothing to find.
fn parameter_rows(backend: Backend, rows: usize, width: usize) -> String {
    let mut list = String::with_capacity(rows * width * 6);
    for row in 0..rows {
        if row > 0 {
            list.push_str(", ");
        }
        list.push('(');
        for column in 0..width {
            if column > 0 {
                list.push_str(", ");
            }
            match backend {
                Backend::Sqlite => list.push('?'),
                Backend::Postgres => {
                    use std::fmt::Write as _;
                    let _ = write!(list, "${}", row * width + column + 1);
                }
            }
        }
        list.push(')');
    }
    list
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
    /// Reads. On SQLite these connections are read-only (`query_only`), so
    /// a write that strays here fails at once instead of waiting its turn.
    readers: AnyPool,
    /// Writes. On SQLite, one connection: every write of this process takes
    /// its turn here, in order, and none ever waits in SQLite's busy
    /// handler (issue 19). On PostgreSQL, the same pool as `readers`.
    writer: AnyPool,
    backend: Backend,
    /// Appends and nonces wait here for the next group commit.
    appends: tokio::sync::mpsc::Sender<group_commit::Queued>,
    /// What "now" is for every row written and every expiry checked.
    clock: Clock,
}

/// Pool options both backends share: a connection waiting more than a
/// second for its turn is logged (sqlx's warning "time to acquire exceeded
/// slow threshold"), as is a statement running more than a second.
fn pool_options(connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(connections)
        .acquire_slow_threshold(std::time::Duration::from_secs(1))
}

/// A SQLite pool: `connections` read-only ones, or the one writer.
fn sqlite_pool(connections: u32, read_only: bool) -> AnyPoolOptions {
    // A file does not drop its connection the way a server can: no ping
    // before each use (on PostgreSQL it finds dead connections).
    pool_options(connections)
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                // WAL + FULL: a message is on disk before the sender hears "accepted".
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = FULL").await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                // Only for another process (an `admin` command) holding the
                // write lock; this process's writes queue for the writer.
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                if read_only {
                    conn.execute("PRAGMA query_only = ON").await?;
                }
                Ok(())
            })
        })
}

/// How long a PostgreSQL connection may sit idle before it is pinged on its
/// next use.
const PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// A PostgreSQL pool. A restart or a failover of the database breaks the
/// connections the pool holds, and an idle one is where that goes unseen:
/// it is pinged before use once it sat idle for [`PING_AFTER_IDLE`]. A
/// connection in steady use is not (sqlx's default pings on every acquire,
/// a round trip in front of every statement of the send path).
fn postgres_pool() -> AnyPoolOptions {
    use sqlx::Connection as _;
    pool_options(16)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for < PING_AFTER_IDLE {
                    return Ok(true);
                }
                // A failed ping drops this connection (sqlx logs it as a
                // warning); the pool opens another.
                conn.ping().await.map(|()| true)
            })
        })
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
        let (readers, writer) = match backend {
            Backend::Sqlite => {
                // Readers never block the writer (WAL) nor it them; the
                // writer is alone, so the busy timeout only covers another
                // process (an `admin` command) holding the lock.
                let writer = sqlite_pool(1, false).connect(url).await?;
                // The file exists now (`mode=rwc` made it).
                let readers = sqlite_pool(16, true).connect(url).await?;
                (readers, writer)
            }
            Backend::Postgres => {
                let pool = postgres_pool().connect(url).await?;
                (pool.clone(), pool)
            }
        };
        let appends = group_commit::start(writer.clone(), backend);
        let store = Self {
            readers,
            writer,
            backend,
            appends,
            clock,
        };
        migrations::run(&store.writer, backend).await?;
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

    /// The pool that writes, for the audit log that shares this database
    /// (on SQLite its one connection: use [`Store::read_pool`] to read).
    pub fn pool(&self) -> &AnyPool {
        &self.writer
    }

    /// The pool that reads (on PostgreSQL, the same as [`Store::pool`]).
    pub fn read_pool(&self) -> &AnyPool {
        &self.readers
    }

    /// Every pool, once each: on SQLite the readers and the writer, on
    /// PostgreSQL the one pool.
    pub fn pools(&self) -> Vec<AnyPool> {
        match self.backend {
            Backend::Sqlite => vec![self.readers.clone(), self.writer.clone()],
            Backend::Postgres => vec![self.writer.clone()],
        }
    }

    /// Where every write goes.
    fn writes(&self) -> &AnyPool {
        &self.writer
    }

    /// The dialect in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers and holds every migration this build
    /// knows (a node started against an older schema is not ready).
    pub async fn ready(&self) -> Result<bool, StoreError> {
        migrations::up_to_date(&self.readers, self.backend).await
    }

    /// Starts a transaction that will write. On SQLite it takes the write
    /// lock at once (`BEGIN IMMEDIATE`), queueing behind other writers for
    /// up to the busy timeout: a deferred transaction that reads first fails
    /// outright ("database is locked", SQLITE_BUSY_SNAPSHOT) when it later
    /// writes after another connection has written since its first read.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        group_commit::begin_write(&self.writer, self.backend).await
    }
}

#[cfg(test)]
mod tests {
    use super::{Backend, parameter_rows};

    #[test]
    fn parameter_rows_number_postgres_parameters_and_leave_sqlite_ones_anonymous() {
        assert_eq!(
            parameter_rows(Backend::Sqlite, 2, 3),
            "(?, ?, ?), (?, ?, ?)"
        );
        assert_eq!(
            parameter_rows(Backend::Postgres, 2, 3),
            "($1, $2, $3), ($4, $5, $6)"
        );
        assert_eq!(parameter_rows(Backend::Postgres, 1, 1), "($1)");
    }
}
