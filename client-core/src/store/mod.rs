//! The device's one local file: identity key, openmls group state, channels
//! and decrypted history, in SQLite with mode 0600. Every step that changes
//! MLS state commits in the same transaction as the history and cursor it
//! produces, so a crash leaves the old state or the new one, never half.
//!
//! All SQL of client-core is here, one file per family of tables; each
//! function takes the connection (or the open transaction) it works in, so
//! callers decide what commits together. openmls keeps its own tables
//! through `TxProvider`, its keys and values encoded as CBOR (`codec.rs`).

use std::path::Path;

use openmls_rust_crypto::RustCrypto;
use openmls_sqlx_storage::SqliteStorageProvider;
use openmls_traits::OpenMlsProvider;
use openmls_traits::storage::{CURRENT_VERSION, StorageProvider};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use crate::error::{ClientError, Result};
use codec::CborCodec;

pub(crate) mod bot_state;
pub(crate) mod channels;
mod codec;
pub(crate) mod devices;
pub(crate) mod group_versions;
pub(crate) mod identity;
pub(crate) mod inbox;
pub(crate) mod messages;
pub(crate) mod pending;
pub(crate) mod reactions;
pub(crate) mod send_storage;
pub(crate) mod transparency;
pub(crate) mod webhooks;

/// SQLite integers are signed: a larger count or time is clamped.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// openmls's crypto with a storage: one open transaction
/// ([`TxProvider`]), or what a send from a kept group writes
/// ([`send_storage::SendProvider`]).
pub(crate) struct Provider<'a, S> {
    crypto: &'a RustCrypto,
    storage: S,
}

/// An openmls provider whose storage is one open transaction.
pub(crate) type TxProvider<'a, C = CborCodec> = Provider<'a, SqliteStorageProvider<'a, C>>;

impl<'a> TxProvider<'a> {
    pub(crate) fn new(crypto: &'a RustCrypto, connection: &'a mut SqliteConnection) -> Self {
        Self::with_codec(crypto, connection)
    }
}

impl<'a, C: openmls_sqlx_storage::Codec> TxProvider<'a, C> {
    /// A provider whose state is encoded by `C` (tests write state as an
    /// older client did).
    pub(crate) fn with_codec(crypto: &'a RustCrypto, connection: &'a mut SqliteConnection) -> Self {
        Self {
            crypto,
            storage: SqliteStorageProvider::new(connection),
        }
    }
}

impl<S: StorageProvider<CURRENT_VERSION>> OpenMlsProvider for Provider<'_, S> {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = S;

    fn storage(&self) -> &Self::StorageProvider {
        &self.storage
    }

    fn crypto(&self) -> &Self::CryptoProvider {
        self.crypto
    }

    fn rand(&self) -> &Self::RandProvider {
        self.crypto
    }
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS identity (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    username      TEXT NOT NULL,
    device_secret BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS channels (
    group_id      TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    processed_seq INTEGER NOT NULL,
    active        INTEGER NOT NULL,
    -- 0 while a joined channel goes by its placeholder name
    named         INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS history (
    group_id TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    sender   TEXT NOT NULL,
    device   TEXT NOT NULL,
    body     TEXT NOT NULL,
    PRIMARY KEY (group_id, seq)
);
CREATE TABLE IF NOT EXISTS outgoing (
    ciphertext_hash TEXT PRIMARY KEY,
    group_id        TEXT NOT NULL,
    body            TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS announcements (
    group_id TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS pending_commits (
    group_id    TEXT PRIMARY KEY,
    commit_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS known_devices (
    device_id TEXT PRIMARY KEY,
    revoked   INTEGER NOT NULL
);
-- Key transparency: the pinned log key, and every checkpoint verified, each
-- consistent with the one before.
CREATE TABLE IF NOT EXISTS log_key (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    verifier_key TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    size      INTEGER PRIMARY KEY,
    root_hash BLOB NOT NULL,
    note      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS verified_devices (
    device_id  TEXT PRIMARY KEY,
    username   TEXT NOT NULL,
    public_key BLOB NOT NULL,
    leaf_index INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS security_alerts (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    username  TEXT NOT NULL,
    device_id TEXT NOT NULL,
    reason    TEXT NOT NULL,
    shown     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS mls_state_versions (
    group_id BLOB PRIMARY KEY,
    version  INTEGER NOT NULL
);
"#;

/// One step of [`MIGRATIONS`].
enum Migration {
    /// Statements, separated by `;`.
    Sql(&'static str),
    /// openmls's state re-encoded from JSON to CBOR (`codec.rs`).
    StateToCbor,
}

/// Changes to the schema and the stored data, applied in order once each
/// (in one transaction when the store opens); the file's `PRAGMA
/// user_version` counts those applied.
const MIGRATIONS: &[Migration] = &[
    // 1: message ids, threads, reactions, edits, deletes and search.
    Migration::Sql(
        r#"
ALTER TABLE history ADD COLUMN message_id TEXT;
ALTER TABLE history ADD COLUMN parent_id TEXT;
ALTER TABLE history ADD COLUMN kind TEXT NOT NULL DEFAULT 'text';
ALTER TABLE history ADD COLUMN edited INTEGER NOT NULL DEFAULT 0;
ALTER TABLE history ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE history ADD COLUMN mentions TEXT NOT NULL DEFAULT '';
ALTER TABLE history ADD COLUMN at INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX history_by_message ON history(group_id, message_id);
ALTER TABLE outgoing ADD COLUMN message_id TEXT;
CREATE TABLE seen_messages (
    group_id   TEXT NOT NULL,
    message_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    PRIMARY KEY (group_id, message_id)
);
CREATE INDEX seen_messages_by_seq ON seen_messages(group_id, seq);
CREATE TABLE reactions (
    group_id   TEXT NOT NULL,
    message_id TEXT NOT NULL,
    username   TEXT NOT NULL,
    emoji      TEXT NOT NULL,
    PRIMARY KEY (group_id, message_id, username, emoji)
);
CREATE VIRTUAL TABLE search_index USING fts5(
    body, group_id UNINDEXED, seq UNINDEXED, tokenize = 'unicode61 remove_diacritics 2'
);
"#,
    ),
    // 2: direct messages, topics and read positions.
    Migration::Sql(
        r#"
ALTER TABLE channels ADD COLUMN kind TEXT NOT NULL DEFAULT 'channel';
ALTER TABLE channels ADD COLUMN topic TEXT NOT NULL DEFAULT '';
ALTER TABLE channels ADD COLUMN read_seq INTEGER NOT NULL DEFAULT 0;
"#,
    ),
    // 3: archived channels.
    Migration::Sql("ALTER TABLE channels ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;"),
    // 4: shared files (the reference, with its key, as JSON).
    Migration::Sql("ALTER TABLE history ADD COLUMN attachment TEXT;"),
    // 5: history handed over by another member, and bundles waiting to be fetched.
    Migration::Sql(
        r#"
ALTER TABLE history ADD COLUMN shared_by TEXT;
CREATE TABLE history_imports (
    group_id   TEXT NOT NULL,
    message_id TEXT NOT NULL,
    sender     TEXT NOT NULL,
    reference  TEXT NOT NULL,
    PRIMARY KEY (group_id, message_id)
);
"#,
    ),
    // 6: bot accounts: the owner named in this device's credential.
    Migration::Sql("ALTER TABLE identity ADD COLUMN bot_owner TEXT;"),
    // 7: the bot SDK. Commands and messages wait in the inbox until a
    // handler has run (written in the transaction that stores the message,
    // so nothing acknowledged to the relay is lost); `reply_key` names the
    // replies, so a handler run again after a crash repeats none of them.
    // Then a bot's own durable state, and its incoming webhooks with the
    // nonces they have spent.
    Migration::Sql(
        r#"
CREATE TABLE bot_inbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id   TEXT NOT NULL,
    message_id TEXT NOT NULL,
    sender     TEXT NOT NULL,
    command    TEXT,
    body       TEXT NOT NULL,
    parent_id  TEXT,
    reply_key  TEXT NOT NULL,
    UNIQUE (group_id, message_id)
);
CREATE TABLE bot_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE webhooks (
    name     TEXT PRIMARY KEY,
    channel  TEXT NOT NULL,
    template TEXT NOT NULL,
    secret   TEXT NOT NULL
);
CREATE TABLE webhook_nonces (
    webhook    TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    -- 1 once its message was sent: from then on the nonce is a replay
    delivered  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (webhook, nonce)
);
"#,
    ),
    // 8: the device key at rest. `protection` says how it is kept: 'sealed'
    // (`sealed_key`, see key_at_rest.rs, and no `device_secret`),
    // 'unprotected' (in clear, chosen for an unattended bot) or 'clear' (in
    // clear, made before keys were sealed, sealed at the next unlock with a
    // passphrase). `device_id` names the device while its key is locked.
    Migration::Sql(
        r#"
CREATE TABLE identity_v8 (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    username      TEXT NOT NULL,
    bot_owner     TEXT,
    protection    TEXT NOT NULL CHECK (protection IN ('sealed', 'unprotected', 'clear')),
    device_secret BLOB,
    sealed_key    BLOB,
    device_id     TEXT,
    CHECK ((protection = 'sealed') = (sealed_key IS NOT NULL AND device_secret IS NULL))
);
INSERT INTO identity_v8 (id, username, bot_owner, protection, device_secret)
    SELECT id, username, bot_owner, 'clear', device_secret FROM identity;
DROP TABLE identity;
ALTER TABLE identity_v8 RENAME TO identity;
"#,
    ),
    // 9: changes to who can sign in to the account (factors, password,
    // recoveries) this device has shown its owner, by the relay's id.
    Migration::Sql(
        r#"
CREATE TABLE seen_account_changes (
    id INTEGER PRIMARY KEY
);
ALTER TABLE security_alerts ADD COLUMN kind TEXT NOT NULL DEFAULT 'key_transparency';
"#,
    ),
    // 10: a webhook posts to a channel by its group id, which stays when
    // the channel is renamed; `channel` keeps the name it was made with,
    // for a channel this device has since forgotten.
    Migration::Sql(
        r#"
ALTER TABLE webhooks ADD COLUMN group_id TEXT;
UPDATE webhooks SET group_id = (SELECT group_id FROM channels WHERE channels.name = webhooks.channel);
"#,
    ),
    // 11: the workspace's witness policy, pinned with the log key: the
    // witnesses' keys (one per line), how many must cosign a checkpoint,
    // the grace in seconds, and when a checkpoint last had the quorum (or
    // the policy was pinned). And the log keys this device pinned before a
    // signed rotation moved it on (members may still gossip their
    // checkpoints).
    Migration::Sql(
        r#"
CREATE TABLE witness_policy (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    witnesses      TEXT NOT NULL,
    quorum         INTEGER NOT NULL,
    grace          INTEGER NOT NULL,
    last_quorum_at INTEGER NOT NULL
);
CREATE TABLE retired_log_keys (
    verifier_key TEXT PRIMARY KEY
);
"#,
    ),
    // 12: openmls's state as CBOR rather than JSON (issue 19: no JSON on
    // the path of every send).
    Migration::StateToCbor,
];

/// Writes a small private file (mode 0600) whole, through a temporary file
/// and a rename, so a crash leaves the old content or the new.
#[cfg_attr(not(feature = "soft-authenticator"), allow(dead_code))]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let temporary = path.with_extension("tmp");
    let _ = std::fs::remove_file(&temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let fail = |e: std::io::Error| ClientError::store(format!("{}: {e}", path.display()));
    let mut file = options.open(&temporary).map_err(fail)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(fail)?;
    std::fs::rename(&temporary, path).map_err(fail)
}

/// Opens (creating if needed, mode 0600) the store in `home`.
/// Takes the home directory's lock (`conclave.lock`), released when the
/// returned file closes, even if the process dies.
pub(crate) fn lock_home(home: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(home)
        .map_err(|e| ClientError::store(format!("cannot create {}: {e}", home.display())))?;
    let path = home.join("conclave.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| ClientError::store(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(ClientError::HomeInUse(home.to_owned())),
        Err(std::fs::TryLockError::Error(e)) => Err(ClientError::store(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

pub(crate) async fn open(home: &Path) -> Result<SqliteConnection> {
    std::fs::create_dir_all(home)
        .map_err(|e| ClientError::store(format!("cannot create {}: {e}", home.display())))?;
    let path = home.join("conclave.db");
    create_private(&path)?;
    let mut connection = SqliteConnectOptions::new()
        .filename(&path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        // Deleted content is overwritten, not left in free pages: a device
        // key sealed after it was kept in clear leaves no clear copy behind.
        .pragma("secure_delete", "ON")
        .connect()
        .await?;
    SqliteStorageProvider::<CborCodec>::new(&mut connection)
        .run_migrations()
        .map_err(ClientError::store)?;
    let mut tx = connection.begin().await?;
    for statement in SCHEMA.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    let applied: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut *tx)
        .await?;
    for (version, migration) in MIGRATIONS.iter().enumerate().skip(applied.max(0) as usize) {
        match migration {
            Migration::Sql(statements) => {
                for statement in statements
                    .split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    sqlx::query(statement).execute(&mut *tx).await?;
                }
            }
            Migration::StateToCbor => codec::convert_json_state(&mut tx).await?,
        }
        // PRAGMA takes no bound parameters; the number is ours.
        sqlx::query(&format!("PRAGMA user_version = {}", version + 1))
            .execute(&mut *tx)
            .await?;
    }
    group_versions::install(&mut tx).await?;
    tx.commit().await?;
    Ok(connection)
}

/// A transaction on `db` whose commit does not wait until the disk has it
/// (`PRAGMA synchronous = NORMAL`; the store opens with FULL). Such a commit
/// survives the process crashing, but a power cut before the log is next
/// flushed (by any commit that waits) may undo it, with every later one:
/// never an earlier one, nor part of one.
///
/// The mode stays on the connection: the caller runs
/// [`restore_durable_commits`] afterwards, whatever happened. It is set in
/// the same trip to sqlx's worker thread as the `BEGIN`: SQLite runs both
/// from one statement list.
pub(crate) async fn begin_unflushed(
    db: &mut SqliteConnection,
) -> Result<sqlx::Transaction<'_, sqlx::Sqlite>> {
    Ok(db.begin_with("PRAGMA synchronous = NORMAL; BEGIN").await?)
}

/// Makes commits on `db` wait until the disk has them again, as the store
/// opens them (`PRAGMA synchronous = FULL`), after [`begin_unflushed`].
pub(crate) async fn restore_durable_commits(db: &mut SqliteConnection) -> Result<()> {
    sqlx::query("PRAGMA synchronous = FULL")
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// Copies what the write-ahead log holds into the main file and empties
/// the log; `false` if a reader kept it from being emptied.
pub(crate) async fn empty_log(db: &mut SqliteConnection) -> Result<bool> {
    let busy: i64 = sqlx::query_scalar("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(&mut *db)
        .await?;
    Ok(busy == 0)
}

/// Creates the database file readable by its owner only, before SQLite opens
/// it (SQLite gives its -wal and -shm files the same mode).
fn create_private(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        options
            .open(path)
            .map_err(|e| ClientError::store(format!("cannot create {}: {e}", path.display())))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| ClientError::store(format!("cannot restrict {}: {e}", path.display())))?;
    }
    #[cfg(not(unix))]
    options
        .open(path)
        .map_err(|e| ClientError::store(format!("cannot create {}: {e}", path.display())))?;
    Ok(())
}
