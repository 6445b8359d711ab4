//! Everything the relay keeps, behind one type, for SQLite and PostgreSQL.
//!
//! What is stored, and nothing more: accounts with argon2id password hashes,
//! devices with public keys, recently used request nonces, key packages,
//! groups (id, epoch, public MLS state), the ciphertext message log, and one
//! delivery cursor per device and group (`memberships.acked_seq`).
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
mod group_commit;
mod migrations;

pub use group_commit::Append;

pub use account_changes::{AccountChange, ChangeOutcome};
pub use accounts::{AccountSummary, ChallengeRow, CredentialRow, DeviceSession};
pub use blobs::{BlobRow, BlobSpec, NewBlob};
pub use channels::{NewGroup, PublicListing};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

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

/// A device as registered.
#[derive(Debug, Clone)]
pub struct DeviceRow {
    /// The owning account.
    pub username: String,
    /// The Ed25519 public key.
    pub public_key: Vec<u8>,
}

/// A group's public state.
#[derive(Debug, Clone)]
pub struct GroupRow {
    /// Current epoch.
    pub epoch: u64,
    /// openmls public-group state (no secrets).
    pub public_state: Vec<u8>,
    /// A public channel: listed, and open to join by external commit.
    pub public: bool,
    /// Archived: read-only.
    pub archived: bool,
    /// Members may hand newcomers the group's history.
    pub history_sharing: bool,
}

/// What the relay needs to admit a message to a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupAccess {
    /// Current epoch.
    pub epoch: u64,
    /// Whether the asking device is a current member.
    pub member: bool,
    /// Whether the group was archived (read-only).
    pub archived: bool,
}

/// The SHA-256 (hex) of a posted MLS message: how a retry of the same
/// bytes is recognised. Computed once per post and handed along.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadHash(String);

impl PayloadHash {
    /// The hash of `payload`.
    pub fn of(payload: &[u8]) -> Self {
        PayloadHash(conclave_crypto::sha256_hex(payload))
    }

    fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the relay needs to admit a posted message: the group's
/// [`GroupAccess`] for the posting device, and whether the same bytes were
/// accepted before (their position and first sender).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// Epoch, membership and archival.
    pub access: GroupAccess,
    /// The same bytes, accepted earlier: their position and the device that
    /// posted them.
    pub earlier_post: Option<(u64, String)>,
}

/// A device's acknowledgement of a group up to a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Hex device id.
    pub device_id: String,
    /// Hex group id.
    pub group_id: String,
    /// Everything up to here was received.
    pub seq: u64,
}

/// One message waiting for one device.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Hex group id.
    pub group_id: String,
    /// Position in the group's order.
    pub seq: u64,
    /// What the payload is.
    pub kind: MessageKind,
    /// The MLS message bytes.
    pub payload: Vec<u8>,
}

/// A key package to store.
#[derive(Debug, Clone)]
pub struct NewKeyPackage {
    /// TLS-serialized KeyPackage.
    pub bytes: Vec<u8>,
    /// Handed out again and again when no other is left.
    pub last_resort: bool,
    /// Unix seconds after which it must not be handed out.
    pub expires_at: u64,
}

/// How storing a device's key packages went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPackagesAdded {
    /// All stored.
    Added,
    /// A package is stored already (or came twice): nothing stored.
    Duplicate,
    /// The device's unused one-time packages would exceed the cap: nothing
    /// stored. `stocked` is how many it holds.
    StockFull {
        /// Unused one-time packages the device holds.
        stocked: u64,
    },
}

/// The changes one accepted commit makes.
#[derive(Debug)]
pub struct CommitRecord<'a> {
    /// Hex group id.
    pub group_id: &'a str,
    /// The epoch the commit was built on.
    pub from_epoch: u64,
    /// The epoch after it.
    pub to_epoch: u64,
    /// Public state after merging it.
    pub public_state: &'a [u8],
    /// The committing device.
    pub sender: &'a str,
    /// The commit message.
    pub commit: &'a [u8],
    /// The Welcome for added devices, if any were added by a member (an
    /// external commit adds its sender, who needs none).
    pub welcome: Option<&'a [u8]>,
    /// A public channel's GroupInfo for the new epoch.
    pub group_info: Option<&'a [u8]>,
    /// Devices added by the commit.
    pub added: &'a [String],
    /// Devices removed by the commit.
    pub removed: &'a [String],
    /// Log entries for the membership changes, entered with the commit.
    pub audit: Vec<conclave_audit::Event>,
}

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

    // ----- accounts and devices -------------------------------------------

    /// Creates an account; `false` if the name is taken.
    pub async fn create_account(
        &self,
        username: &str,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO accounts (username, password_hash, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (username) DO NOTHING",
        )
        .bind(username)
        .bind(password_hash)
        .bind(self.now())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The stored password hash of `username`.
    pub async fn password_hash(&self, username: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT password_hash FROM accounts WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get::<String, _>(0)))
    }

    /// Registers a device for `username`, entering `registration` in the
    /// transparency log in the same transaction: a device key is never
    /// stored without its log entry. Registering the same key again is a
    /// no-op; `false` if the device id belongs to someone else.
    pub async fn add_device(
        &self,
        username: &str,
        device_id: &str,
        public_key: &[u8],
        registration: conclave_audit::Event,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO devices (device_id, username, public_key, created_at, session_started_at, last_seen_at)
             VALUES ($1, $2, $3, $4, $4, $4)
             ON CONFLICT (device_id) DO NOTHING",
        )
        .bind(device_id)
        .bind(username)
        .bind(public_key.to_vec())
        .bind(self.now())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if inserted {
            conclave_audit::log::append(&mut tx, registration).await?;
        }
        tx.commit().await?;
        Ok(self
            .device(device_id)
            .await?
            .is_some_and(|d| d.username == username && d.public_key == public_key))
    }

    /// Looks up a device that is not revoked.
    pub async fn device(&self, device_id: &str) -> Result<Option<DeviceRow>, StoreError> {
        let row = sqlx::query(
            "SELECT username, public_key FROM devices WHERE device_id = $1 AND revoked_at IS NULL",
        )
        .bind(device_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| DeviceRow {
            username: r.get(0),
            public_key: r.get(1),
        }))
    }

    /// Records a request nonce; `false` if it was already used (a replay).
    pub async fn use_nonce(
        &self,
        device_id: &str,
        nonce: &str,
        expires_at: u64,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO request_nonces (device_id, nonce, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (device_id, nonce) DO NOTHING",
        )
        .bind(device_id)
        .bind(nonce)
        .bind(to_i64(expires_at))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Forgets nonces whose requests could no longer pass the freshness check.
    pub async fn prune_nonces(&self) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM request_nonces WHERE expires_at < $1")
            .bind(self.now())
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }

    // ----- key packages ---------------------------------------------------

    /// Stores key packages for a device. A new last-resort package replaces
    /// the previous one, so each device keeps exactly one. Nothing is stored
    /// if any package is already stored (or repeated in `packages`), or if
    /// the device would then hold more than `max_one_time` unused one-time
    /// packages: the count and the inserts share one write transaction.
    pub async fn add_key_packages(
        &self,
        device_id: &str,
        packages: &[NewKeyPackage],
        max_one_time: u64,
    ) -> Result<KeyPackagesAdded, StoreError> {
        let hashes: Vec<String> = packages
            .iter()
            .map(|p| conclave_crypto::sha256_hex(&p.bytes))
            .collect();
        let distinct: std::collections::HashSet<&String> = hashes.iter().collect();
        if distinct.len() != hashes.len() {
            return Ok(KeyPackagesAdded::Duplicate);
        }
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            // Uploads of one device take turns, so the stock count holds.
            sqlx::query("SELECT 1 FROM devices WHERE device_id = $1 FOR UPDATE")
                .bind(device_id)
                .execute(&mut *tx)
                .await?;
        }
        let stocked = sqlx::query(
            "SELECT COUNT(*) FROM key_packages
             WHERE device_id = $1 AND last_resort = FALSE AND expires_at > $2",
        )
        .bind(device_id)
        .bind(self.now())
        .fetch_one(&mut *tx)
        .await?;
        let stocked = to_u64(stocked.get::<i64, _>(0));
        let adding = packages.iter().filter(|p| !p.last_resort).count() as u64;
        if stocked + adding > max_one_time {
            return Ok(KeyPackagesAdded::StockFull { stocked });
        }
        if packages.iter().any(|p| p.last_resort) {
            sqlx::query("DELETE FROM key_packages WHERE device_id = $1 AND last_resort = TRUE")
                .bind(device_id)
                .execute(&mut *tx)
                .await?;
        }
        for (package, hash) in packages.iter().zip(&hashes) {
            let inserted = sqlx::query(
                "INSERT INTO key_packages (device_id, key_package, last_resort, expires_at, package_hash)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(device_id)
            .bind(package.bytes.clone())
            .bind(package.last_resort)
            .bind(to_i64(package.expires_at))
            .bind(hash)
            .execute(&mut *tx)
            .await;
            match inserted {
                // Already stored: the unique index decides, even between
                // two uploads at once. The transaction is dropped unused.
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    return Ok(KeyPackagesAdded::Duplicate);
                }
                other => other?,
            };
        }
        tx.commit().await?;
        Ok(KeyPackagesAdded::Added)
    }

    /// How many one-time key packages `device_id` has left, and whether it has a last-resort one.
    pub async fn key_package_stock(&self, device_id: &str) -> Result<(u64, bool), StoreError> {
        let row = sqlx::query(
            "SELECT
               COALESCE(SUM(CASE WHEN last_resort THEN 0 ELSE 1 END), 0),
               COALESCE(SUM(CASE WHEN last_resort THEN 1 ELSE 0 END), 0)
             FROM key_packages WHERE device_id = $1 AND expires_at > $2",
        )
        .bind(device_id)
        .bind(self.now())
        .fetch_one(&self.pool)
        .await?;
        Ok((to_u64(row.get::<i64, _>(0)), row.get::<i64, _>(1) > 0))
    }

    /// Hands out one key package for each device of `username` (or only for
    /// `only_device`), skipping revoked devices: a one-time
    /// package (deleted in the same statement, so two racing claims never get
    /// the same one) or else the device's last-resort package.
    pub async fn claim_key_packages(
        &self,
        username: &str,
        only_device: Option<&str>,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let devices: Vec<String> = sqlx::query(
            "SELECT device_id FROM devices WHERE username = $1 AND revoked_at IS NULL
             AND ($2 = '' OR device_id = $2) ORDER BY device_id",
        )
        .bind(username)
        .bind(only_device.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
        let lock = match self.backend {
            // Skip rows another claim holds instead of coming back empty-handed.
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            // SQLite runs one writer at a time: the DELETE is already atomic.
            Backend::Sqlite => "",
        };
        let claim_one_time = format!(
            "DELETE FROM key_packages WHERE id = (
                 SELECT id FROM key_packages
                 WHERE device_id = $1 AND last_resort = FALSE AND expires_at > $2
                 ORDER BY id LIMIT 1 {lock})
             RETURNING key_package"
        );
        let mut claimed = Vec::new();
        for device in devices {
            let one_time = sqlx::query(&claim_one_time)
                .bind(&device)
                .bind(self.now())
                .fetch_optional(&self.pool)
                .await?;
            let package = match one_time {
                Some(row) => Some(row.get::<Vec<u8>, _>(0)),
                None => sqlx::query(
                    "SELECT key_package FROM key_packages
                     WHERE device_id = $1 AND last_resort = TRUE AND expires_at > $2 LIMIT 1",
                )
                .bind(&device)
                .bind(self.now())
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.get::<Vec<u8>, _>(0)),
            };
            if let Some(package) = package {
                claimed.push((device, package));
            }
        }
        Ok(claimed)
    }

    // ----- groups and messages -------------------------------------------

    /// Creates a group with its creator (`creator` device of account
    /// `created_by`) as the only member; `false` if the id is taken.
    pub async fn create_group(
        &self,
        group_id: &str,
        epoch: u64,
        public_state: &[u8],
        creator: &str,
        created_by: &str,
        listing: Option<&PublicListing<'_>>,
    ) -> Result<NewGroup, StoreError> {
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO groups (group_id, epoch, next_seq, public_state, created_at, created_by,
                                 public_name, public_topic, group_info)
             VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8) ON CONFLICT (group_id) DO NOTHING",
        )
        .bind(group_id)
        .bind(to_i64(epoch))
        .bind(public_state.to_vec())
        .bind(self.now())
        .bind(created_by)
        .bind(listing.map(|l| l.name))
        .bind(listing.map(|l| l.topic))
        .bind(listing.map(|l| l.group_info.to_vec()))
        .execute(&mut *tx)
        .await;
        let inserted = match inserted {
            // Another public channel has the name: the unique index decides,
            // even between two creators at once.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Ok(NewGroup::NameTaken);
            }
            other => other?.rows_affected() == 1,
        };
        if !inserted {
            return Ok(NewGroup::Exists);
        }
        {
            sqlx::query(
                "INSERT INTO memberships (group_id, device_id, join_seq, leave_seq, acked_seq)
                 VALUES ($1, $2, 0, NULL, 0)",
            )
            .bind(group_id)
            .bind(creator)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(NewGroup::Created)
    }

    /// A group's epoch and public state.
    pub async fn group(&self, group_id: &str) -> Result<Option<GroupRow>, StoreError> {
        let row = sqlx::query(
            "SELECT epoch, public_state,
                    CAST(CASE WHEN public_name IS NULL THEN 0 ELSE 1 END AS BIGINT),
                    CAST(CASE WHEN archived_at IS NULL THEN 0 ELSE 1 END AS BIGINT),
                    history_sharing
             FROM groups WHERE group_id = $1",
        )
        .bind(group_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| GroupRow {
            epoch: to_u64(r.get(0)),
            public_state: r.get(1),
            public: r.get::<i64, _>(2) == 1,
            archived: r.get::<i64, _>(3) == 1,
            history_sharing: r.get::<i64, _>(4) == 1,
        }))
    }

    /// A group's current epoch and whether `device_id` is a current member,
    /// in one small query (the public state stays on disk).
    pub async fn access(
        &self,
        group_id: &str,
        device_id: &str,
    ) -> Result<Option<GroupAccess>, StoreError> {
        let row = sqlx::query(
            "SELECT g.epoch, CAST(CASE WHEN EXISTS (
                 SELECT 1 FROM memberships m
                 WHERE m.group_id = g.group_id AND m.device_id = $2 AND m.leave_seq IS NULL
             ) THEN 1 ELSE 0 END AS BIGINT),
             CAST(CASE WHEN g.archived_at IS NULL THEN 0 ELSE 1 END AS BIGINT)
             FROM groups g WHERE g.group_id = $1",
        )
        .bind(group_id)
        .bind(device_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| GroupAccess {
            epoch: to_u64(r.get(0)),
            member: r.get::<i64, _>(1) == 1,
            archived: r.get::<i64, _>(2) == 1,
        }))
    }

    /// [`Admission`] of a message with `payload_hash` posted by `device_id`
    /// to `group_id`, in one query; `None` if there is no such group.
    pub async fn admission(
        &self,
        group_id: &str,
        device_id: &str,
        payload_hash: &PayloadHash,
    ) -> Result<Option<Admission>, StoreError> {
        let row = sqlx::query(
            "SELECT g.epoch, CAST(CASE WHEN EXISTS (
                 SELECT 1 FROM memberships m
                 WHERE m.group_id = g.group_id AND m.device_id = $2 AND m.leave_seq IS NULL
             ) THEN 1 ELSE 0 END AS BIGINT),
             CAST(CASE WHEN g.archived_at IS NULL THEN 0 ELSE 1 END AS BIGINT),
             p.seq, p.sender_device
             FROM groups g
             LEFT JOIN messages p ON p.group_id = g.group_id AND p.payload_hash = $3
             WHERE g.group_id = $1",
        )
        .bind(group_id)
        .bind(device_id)
        .bind(payload_hash.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| {
            let earlier_seq: Option<i64> = r.get(3);
            let earlier_sender: Option<String> = r.get(4);
            Admission {
                access: GroupAccess {
                    epoch: to_u64(r.get(0)),
                    member: r.get::<i64, _>(1) == 1,
                    archived: r.get::<i64, _>(2) == 1,
                },
                earlier_post: earlier_seq
                    .map(|seq| (to_u64(seq), earlier_sender.unwrap_or_default())),
            }
        }))
    }

    /// The account that created a group, if the group exists.
    pub async fn group_creator(&self, group_id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT COALESCE(created_by, '') FROM groups WHERE group_id = $1")
            .bind(group_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Archives a group: from now on nothing more is appended to it.
    /// `false` if it was archived already.
    pub async fn archive_group(&self, group_id: &str) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE groups SET archived_at = $2 WHERE group_id = $1 AND archived_at IS NULL",
        )
        .bind(group_id)
        .bind(self.now())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Sets a group's own retention (`None`: the workspace's applies).
    pub async fn set_group_retention(
        &self,
        group_id: &str,
        days: Option<u32>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE groups SET retention_days = $2 WHERE group_id = $1")
            .bind(group_id)
            .bind(days.map(i64::from))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Each group's retention in days (its own, else the workspace's), for
    /// the groups that have one.
    pub async fn retention(&self, workspace_days: u32) -> Result<Vec<(String, u32)>, StoreError> {
        Ok(sqlx::query(
            "SELECT group_id, COALESCE(retention_days, $1) FROM groups
             WHERE COALESCE(retention_days, $1) > 0",
        )
        .bind(i64::from(workspace_days))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            (
                r.get(0),
                u32::try_from(r.get::<i64, _>(1)).unwrap_or(u32::MAX),
            )
        })
        .collect())
    }

    /// The retention in days of each group `device_id` belongs to that has one.
    pub async fn retention_of(
        &self,
        device_id: &str,
        workspace_days: u32,
    ) -> Result<Vec<(String, u32)>, StoreError> {
        Ok(sqlx::query(
            "SELECT DISTINCT g.group_id, COALESCE(g.retention_days, $2)
             FROM memberships m JOIN groups g ON g.group_id = m.group_id
             WHERE m.device_id = $1 AND m.leave_seq IS NULL
               AND COALESCE(g.retention_days, $2) > 0",
        )
        .bind(device_id)
        .bind(i64::from(workspace_days))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            (
                r.get(0),
                u32::try_from(r.get::<i64, _>(1)).unwrap_or(u32::MAX),
            )
        })
        .collect())
    }

    /// Deletes a group's application messages (ciphertext) stored before
    /// `cutoff` (Unix seconds). Commits and Welcomes stay: a device that was
    /// away still needs them to follow the group. Returns how many went.
    pub async fn delete_messages_before(
        &self,
        group_id: &str,
        cutoff: u64,
    ) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "DELETE FROM messages WHERE group_id = $1 AND kind = 'application' AND created_at < $2",
        )
        .bind(group_id)
        .bind(to_i64(cutoff))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// The archived groups `device_id` belongs to.
    pub async fn archived_groups_of(&self, device_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query(
            "SELECT DISTINCT g.group_id FROM memberships m JOIN groups g ON g.group_id = m.group_id
             WHERE m.device_id = $1 AND m.leave_seq IS NULL AND g.archived_at IS NOT NULL",
        )
        .bind(device_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
    }

    /// The groups `device_id` currently belongs to.
    pub async fn groups_of(&self, device_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query(
            "SELECT DISTINCT group_id FROM memberships WHERE device_id = $1 AND leave_seq IS NULL",
        )
        .bind(device_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
    }

    /// Appends a non-commit message if the group is still at `epoch`.
    /// Returns its sequence number (the first one's, if these very bytes
    /// are already there), or `Err(current_epoch)` on a conflict. A proposal
    /// also replaces the public state (it joins the proposal queue).
    ///
    /// Durable when it returns; appends made at the same moment share one
    /// transaction (see `group_commit`).
    pub async fn append(
        &self,
        group_id: &str,
        epoch: u64,
        kind: MessageKind,
        sender: &str,
        payload: &[u8],
        new_public_state: Option<&[u8]>,
    ) -> Result<Result<u64, u64>, StoreError> {
        self.append_message(Append {
            group_id: group_id.to_owned(),
            epoch,
            kind,
            sender: sender.to_owned(),
            payload: payload.to_vec(),
            payload_hash: PayloadHash::of(payload),
            public_state: new_public_state.map(<[u8]>::to_vec),
        })
        .await
    }

    /// [`Store::append`] of a message whose hash the caller has already.
    pub async fn append_message(&self, append: Append) -> Result<Result<u64, u64>, StoreError> {
        let received_at = self.now();
        let Some(queue) = &self.appends else {
            return group_commit::append_postgres(&self.pool, &append, received_at).await;
        };
        let (answer, answered) = tokio::sync::oneshot::channel();
        let queued = group_commit::Queued {
            append,
            received_at,
            answer,
        };
        match queue.send(queued).await {
            Ok(()) => match answered.await {
                Ok(outcome) => outcome,
                Err(_) => Err(StoreError::Database(sqlx::Error::WorkerCrashed)),
            },
            // No committer (the runtime is shutting down): on our own.
            Err(refused) => {
                group_commit::append_one(&self.pool, &refused.0.append, received_at).await
            }
        }
    }

    /// The message at `seq` in a group, if it is stored.
    pub async fn message_at(
        &self,
        group_id: &str,
        seq: u64,
    ) -> Result<Option<Pending>, StoreError> {
        sqlx::query("SELECT kind, payload FROM messages WHERE group_id = $1 AND seq = $2")
            .bind(group_id)
            .bind(to_i64(seq))
            .fetch_optional(&self.pool)
            .await?
            .map(|r| {
                Ok(Pending {
                    group_id: group_id.to_owned(),
                    seq,
                    kind: stored_kind(&r, 0)?,
                    payload: r.get(1),
                })
            })
            .transpose()
    }

    /// The position of a message (application, proposal or commit) already
    /// accepted with exactly these bytes, if any: a client's retry after a
    /// lost answer.
    pub async fn seq_of_payload(
        &self,
        group_id: &str,
        payload: &[u8],
    ) -> Result<Option<u64>, StoreError> {
        self.seq_of_hash(group_id, &PayloadHash::of(payload)).await
    }

    async fn seq_of_hash(
        &self,
        group_id: &str,
        hash: &PayloadHash,
    ) -> Result<Option<u64>, StoreError> {
        Ok(
            sqlx::query("SELECT seq FROM messages WHERE group_id = $1 AND payload_hash = $2")
                .bind(group_id)
                .bind(hash.as_str())
                .fetch_optional(&self.pool)
                .await?
                .map(|r| to_u64(r.get(0))),
        )
    }

    /// Applies an accepted commit if the group is still at its epoch: the
    /// commit, its Welcome and the membership changes land together or not at
    /// all. Returns the commit's sequence number, or `Err(current_epoch)`.
    pub async fn apply_commit(
        &self,
        record: &CommitRecord<'_>,
    ) -> Result<Result<u64, u64>, StoreError> {
        let commit_hash = PayloadHash::of(record.commit);
        let mut tx = self.begin_write().await?;
        let slots = if record.welcome.is_some() { 2 } else { 1 };
        let bumped = sqlx::query(
            "UPDATE groups SET epoch = $3, public_state = $4, next_seq = next_seq + $5
             WHERE group_id = $1 AND epoch = $2 RETURNING next_seq - $5",
        )
        .bind(record.group_id)
        .bind(to_i64(record.from_epoch))
        .bind(to_i64(record.to_epoch))
        .bind(record.public_state.to_vec())
        .bind(slots)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = bumped else {
            drop(tx);
            // The same commit, posted twice at once (a retry racing the
            // first try): the first moved the epoch, and this one is it.
            if let Some(first) = self.seq_of_hash(record.group_id, &commit_hash).await? {
                return Ok(Ok(first));
            }
            return Ok(Err(self.current_epoch(record.group_id).await?));
        };
        let seq: i64 = row.get(0);
        insert_message(
            &mut tx,
            record.group_id,
            seq,
            MessageKind::Commit,
            record.from_epoch,
            record.sender,
            record.commit,
            Some(&commit_hash),
            self.now(),
        )
        .await?;
        for device in record.removed {
            sqlx::query(
                "UPDATE memberships SET leave_seq = $3
                 WHERE group_id = $1 AND device_id = $2 AND leave_seq IS NULL",
            )
            .bind(record.group_id)
            .bind(device)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(welcome) = record.welcome {
            let welcome_seq = seq + 1;
            insert_message(
                &mut tx,
                record.group_id,
                welcome_seq,
                MessageKind::Welcome,
                record.to_epoch,
                record.sender,
                welcome,
                // A Welcome only ever travels with its commit: never posted
                // again on its own, so never looked up by its bytes.
                None,
                self.now(),
            )
            .await?;
            for device in record.added {
                sqlx::query(
                    "INSERT INTO memberships (group_id, device_id, join_seq, leave_seq, acked_seq)
                     VALUES ($1, $2, $3, NULL, $4)",
                )
                .bind(record.group_id)
                .bind(device)
                .bind(welcome_seq)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            }
        } else {
            // Joined by external commit: the device built its state from the
            // commit itself and reads from the next message on.
            for device in record.added {
                sqlx::query(
                    "INSERT INTO memberships (group_id, device_id, join_seq, leave_seq, acked_seq)
                     VALUES ($1, $2, $3, NULL, $3)",
                )
                .bind(record.group_id)
                .bind(device)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            }
        }
        if let Some(group_info) = record.group_info {
            sqlx::query("UPDATE groups SET group_info = $2 WHERE group_id = $1")
                .bind(record.group_id)
                .bind(group_info.to_vec())
                .execute(&mut *tx)
                .await?;
        }
        for entry in &record.audit {
            conclave_audit::log::append(&mut tx, entry.clone()).await?;
        }
        tx.commit().await?;
        Ok(Ok(to_u64(seq)))
    }

    async fn current_epoch(&self, group_id: &str) -> Result<u64, StoreError> {
        Ok(self.group(group_id).await?.map(|g| g.epoch).unwrap_or(0))
    }

    /// Messages waiting for `device_id`, oldest first within each group.
    ///
    /// A device sees its Welcome (at its `join_seq`), then every later message
    /// of the group up to and including the commit that removed it.
    pub async fn pending(&self, device_id: &str, limit: u32) -> Result<Vec<Pending>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.group_id, m.seq, m.kind, m.payload
             FROM memberships ms JOIN messages m ON m.group_id = ms.group_id
             WHERE ms.device_id = $1
               AND m.seq > ms.acked_seq
               AND ((m.seq = ms.join_seq AND m.kind = 'welcome')
                    OR (m.seq > ms.join_seq AND m.kind <> 'welcome'))
               AND (ms.leave_seq IS NULL OR m.seq <= ms.leave_seq)
             ORDER BY m.group_id, m.seq
             LIMIT $2",
        )
        .bind(device_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(pending_from_row).collect()
    }

    /// Acknowledges everything in `group_id` up to `seq` for `device_id`.
    /// Finished memberships (removed and fully acknowledged) are dropped.
    pub async fn ack(&self, device_id: &str, group_id: &str, seq: u64) -> Result<(), StoreError> {
        self.ack_many(&[Ack {
            device_id: device_id.to_owned(),
            group_id: group_id.to_owned(),
            seq,
        }])
        .await
    }

    /// [`Store::ack`] for many devices and groups, in one transaction (one
    /// flush to disk for all of them).
    pub async fn ack_many(&self, acks: &[Ack]) -> Result<(), StoreError> {
        if acks.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for ack in acks {
            let seq = to_i64(ack.seq);
            sqlx::query(
                "UPDATE memberships SET acked_seq = $3
                 WHERE device_id = $1 AND group_id = $2 AND acked_seq < $3 AND join_seq <= $3",
            )
            .bind(&ack.device_id)
            .bind(&ack.group_id)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM memberships
                 WHERE device_id = $1 AND group_id = $2 AND leave_seq IS NOT NULL AND acked_seq >= leave_seq",
            )
            .bind(&ack.device_id)
            .bind(&ack.group_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn pending_from_row(row: &AnyRow) -> Result<Pending, StoreError> {
    Ok(Pending {
        group_id: row.get(0),
        seq: to_u64(row.get(1)),
        kind: stored_kind(row, 2)?,
        payload: row.get(3),
    })
}

/// The message kind in column `index`, by its stored name.
fn stored_kind(row: &AnyRow, index: usize) -> Result<MessageKind, StoreError> {
    let name: String = row.try_get(index)?;
    name.parse()
        .map_err(|e: conclave_proto::UnknownMessageKind| {
            StoreError::Database(sqlx::Error::Decode(Box::new(e)))
        })
}

/// Inserts one message row; `hash` is that of everything a client posts and
/// may post again after a lost answer.
#[allow(clippy::too_many_arguments)]
async fn insert_message(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    group_id: &str,
    seq: i64,
    kind: MessageKind,
    epoch: u64,
    sender: &str,
    payload: &[u8],
    hash: Option<&PayloadHash>,
    created_at: i64,
) -> Result<(), sqlx::Error> {
    let hash = hash.map(PayloadHash::as_str);
    sqlx::query(
        "INSERT INTO messages (group_id, seq, kind, epoch, sender_device, payload, created_at, payload_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(group_id)
    .bind(seq)
    .bind(kind.as_str())
    .bind(to_i64(epoch))
    .bind(sender)
    .bind(payload.to_vec())
    .bind(created_at)
    .bind(hash)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
