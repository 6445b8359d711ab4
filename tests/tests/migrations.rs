//! The relay's schema migrations on both backends: embedded SQLite always,
//! PostgreSQL when CONCLAVE_TEST_DATABASE_URL is set (as in storage.rs).
//!
//! Releases before sqlx migrations recorded their versions in a table of
//! their own, `schema_version`. A database such a release left at any
//! version must open with this one, come up to the newest version with its
//! rows intact and usable, and end with the schema a fresh database gets.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use conclave_audit::Event;
use conclave_audit::log::TransparencyLog;
use conclave_server::{KeyPackagesAdded, MessageKind, NewKeyPackage, Store};
use conclave_tests::{TempDir, fresh_postgres};
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor, Row};

/// The relay's migration files, as the relay embeds them.
static SQLITE: Migrator = sqlx::migrate!("../server/migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("../server/migrations/postgres");

/// Tables that record migrations rather than hold the relay's data.
const BOOKKEEPING: &str = "('_sqlx_migrations', 'schema_version')";

#[derive(Debug, Clone, Copy)]
enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    fn migrator(self) -> &'static Migrator {
        match self {
            Dialect::Sqlite => &SQLITE,
            Dialect::Postgres => &POSTGRES,
        }
    }

    fn newest(self) -> i64 {
        self.migrator().iter().map(|m| m.version).max().unwrap()
    }
}

/// Fresh, empty databases of one dialect: files in a temporary directory,
/// or databases on the PostgreSQL server (None if the run has none).
struct Databases {
    dialect: Dialect,
    dir: TempDir,
}

impl Databases {
    fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            dir: TempDir::new("migrations"),
        }
    }

    async fn fresh(&self, name: &str) -> Option<String> {
        match self.dialect {
            Dialect::Sqlite => Some(format!(
                "sqlite://{}?mode=rwc",
                self.dir.path().join(format!("{name}.db")).display()
            )),
            Dialect::Postgres => fresh_postgres(name).await,
        }
    }
}

async fn pool(url: &str) -> AnyPool {
    sqlx::any::install_default_drivers();
    AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap()
}

/// What an older release left: migrations 1..=`version` applied from the
/// same statements, and recorded in `schema_version` alone.
async fn older_release_database(url: &str, dialect: Dialect, version: i64) {
    let pool = pool(url).await;
    pool.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY)")
        .await
        .unwrap();
    for migration in dialect.migrator().iter().filter(|m| m.version <= version) {
        let mut tx = pool.begin().await.unwrap();
        tx.execute(migration.sql.as_ref()).await.unwrap();
        sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
            .bind(migration.version)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    seed(&pool, version).await;
    pool.close().await;
}

fn signer() -> conclave_audit::NoteSigner {
    conclave_audit::NoteSigner::new(
        "test.example/log",
        ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
    )
    .unwrap()
}

/// The bytes in every binary column `seed` fills.
const BYTES: &[u8] = b"old";

/// Rows a relay could hold, each with the version that brought its table:
/// two accounts with a device each, key packages, a group with a Welcome and
/// a message, then roles, settings, an attachment and a slash command.
const ROWS: &[(i64, &str)] = &[
    (
        1,
        "INSERT INTO accounts (username, password_hash, created_at)
         VALUES ('alice', 'hash-a', 1), ('bob', 'hash-b', 1)",
    ),
    (
        1,
        "INSERT INTO devices (device_id, username, public_key, created_at)
         VALUES ('d-alice', 'alice', $1, 1), ('d-bob', 'bob', $1, 1)",
    ),
    (
        1,
        "INSERT INTO key_packages (device_id, key_package, last_resort, expires_at)
         VALUES ('d-alice', $1, FALSE, 4102444800), ('d-alice', $1, TRUE, 4102444800)",
    ),
    (
        1,
        "INSERT INTO groups (group_id, epoch, next_seq, public_state, created_at)
         VALUES ('g1', 1, 3, $1, 1)",
    ),
    (
        1,
        "INSERT INTO memberships (group_id, device_id, join_seq, leave_seq, acked_seq)
         VALUES ('g1', 'd-alice', 0, NULL, 0), ('g1', 'd-bob', 1, NULL, 0)",
    ),
    (
        1,
        "INSERT INTO messages (group_id, seq, kind, epoch, sender_device, payload, created_at)
         VALUES ('g1', 1, 'welcome', 0, 'd-alice', $1, 1),
                ('g1', 2, 'application', 1, 'd-alice', $1, 1)",
    ),
    (
        2,
        "INSERT INTO account_roles (username, role, granted_at) VALUES ('alice', 'admin', 1)",
    ),
    (
        2,
        "INSERT INTO settings (name, value) VALUES ('retention_days', '30')",
    ),
    (
        6,
        "INSERT INTO blobs (blob_id, group_id, owner, size, chunks, complete, created_at)
         VALUES ('b1', 'g1', 'alice', 3, 1, 1, 1)",
    ),
    (
        6,
        "INSERT INTO blob_chunks (blob_id, idx, data) VALUES ('b1', 0, $1)",
    ),
    (
        10,
        "INSERT INTO slash_commands (name, bot, usage, created_at)
         VALUES ('deploy', 'bob', '/deploy <service>', 1)",
    ),
];

/// The rows valid at `version`, and from version 3 on an entry in the
/// transparency log with a checkpoint signed over it.
async fn seed(pool: &AnyPool, version: i64) {
    for (_, statement) in ROWS.iter().filter(|(since, _)| *since <= version) {
        let query = sqlx::query(statement);
        let query = if statement.contains("$1") {
            query.bind(BYTES)
        } else {
            query
        };
        query.execute(pool).await.unwrap();
    }
    if version >= 3 {
        // Written as a release of that version wrote it: no stored tree
        // before version 14, which the next checkpoint then catches up.
        let event = Event::new(0, 5, "login").actor("alice");
        let leaf = event.encode().unwrap();
        let root = conclave_audit::leaf_hash(&leaf);
        let note = signer()
            .sign(
                &conclave_audit::Checkpoint::new("test.example/log", 1, root)
                    .unwrap()
                    .to_note_text(),
            )
            .unwrap();
        pool.execute("UPDATE audit_log_head SET size = 1 WHERE id = 1")
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO audit_log (idx, leaf, action, actor, device, created_at)
             VALUES (0, $1, 'login', 'alice', NULL, 5)",
        )
        .bind(leaf)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO audit_checkpoints (size, root_hash, note, signed_at) VALUES (1, $1, $2, 6)",
        )
        .bind(root.to_vec())
        .bind(note)
        .execute(pool)
        .await
        .unwrap();
        if version >= 14 {
            pool.execute("UPDATE audit_log_head SET hashed = 1 WHERE id = 1")
                .await
                .unwrap();
            pool.execute(
                sqlx::query("INSERT INTO audit_tree (level, idx, hash) VALUES (0, 0, $1)")
                    .bind(root.to_vec()),
            )
            .await
            .unwrap();
        }
    }
}

/// The rows `seed` wrote, read back through the store, and new ones written
/// through it.
async fn assert_rows_usable(store: &Store, version: i64) {
    assert_eq!(
        store.password_hash("alice").await.unwrap().as_deref(),
        Some("hash-a")
    );
    assert_eq!(
        store.device("d-bob").await.unwrap().unwrap().public_key,
        BYTES
    );
    assert_eq!(store.group("g1").await.unwrap().unwrap().epoch, 1);
    let pending: Vec<(u64, MessageKind)> = store
        .pending("d-bob", 10)
        .await
        .unwrap()
        .iter()
        .map(|p| (p.seq, p.kind))
        .collect();
    assert_eq!(
        pending,
        [(1, MessageKind::Welcome), (2, MessageKind::Application)]
    );
    assert_eq!(store.key_package_stock("d-alice").await.unwrap(), (1, true));
    assert_eq!(
        store.claim_key_packages("alice", None).await.unwrap(),
        [("d-alice".to_owned(), BYTES.to_vec())]
    );
    if version >= 2 {
        assert_eq!(store.roles("alice").await.unwrap(), ["admin"]);
        assert_eq!(
            store.setting("retention_days").await.unwrap().as_deref(),
            Some("30")
        );
    }
    if version >= 6 {
        let blob = store.blob("b1").await.unwrap().unwrap();
        assert_eq!((blob.owner.as_str(), blob.size), ("alice", 3));
    }
    if version >= 10 {
        assert_eq!(store.commands().await.unwrap().len(), 1);
    }

    // Writes that need the newer columns and tables.
    assert!(store.create_account("carol", "hash-c").await.unwrap());
    let packages = [NewKeyPackage {
        bytes: vec![12; 8],
        last_resort: false,
        expires_at: u64::MAX / 4,
    }];
    // The second upload is refused by the hash of its bytes (version 13).
    let uploaded = || Event::new(0, 7, "key_packages_uploaded").actor("alice");
    let added = store
        .add_key_packages("d-alice", &packages, 10, uploaded())
        .await;
    let again = store
        .add_key_packages("d-alice", &packages, 10, uploaded())
        .await;
    assert_eq!(
        (added.unwrap(), again.unwrap()),
        (KeyPackagesAdded::Added, KeyPackagesAdded::Duplicate)
    );
    let sent = store
        .append("g1", 1, MessageKind::Application, "d-bob", b"new", None)
        .await
        .unwrap();
    assert_eq!(sent, Ok(3));
    let log = TransparencyLog::new(store.pool().clone(), signer());
    // The entry the older release logged (from version 3), and the one the
    // upload above entered with its packages.
    let entries_before = if version >= 3 { 2 } else { 1 };
    assert_eq!(
        log.append(Event::new(0, 7, "login").actor("bob"))
            .await
            .unwrap(),
        entries_before
    );
    // Signing checks that the tree still extends the last signed checkpoint
    // (the stored tree of an older log caught up first).
    let checkpoint = log.checkpoint(8).await.unwrap();
    assert_eq!(checkpoint.size, entries_before + 1);
    let entries = log.entries(0, checkpoint.size).await.unwrap();
    for entry in &entries {
        let proof = log
            .inclusion_proof(entry.index, checkpoint.size)
            .await
            .unwrap();
        conclave_audit::verify_inclusion(
            entry.index,
            checkpoint.size,
            &conclave_audit::leaf_hash(&entry.leaf),
            &proof,
            &checkpoint.root_hash,
        )
        .unwrap();
    }
}

/// The database's schema, bookkeeping tables left out, one line per
/// table, column, index and constraint, in a stable order.
async fn schema(store: &Store, dialect: Dialect) -> Vec<String> {
    let query = match dialect {
        Dialect::Sqlite => format!(
            "SELECT type || ' ' || name || ' ' || COALESCE(sql, '') FROM sqlite_master
             WHERE tbl_name NOT IN {BOOKKEEPING} ORDER BY type, name"
        ),
        Dialect::Postgres => format!(
            "SELECT line FROM (
                 SELECT CAST(table_name || '.' || column_name || ' #' || ordinal_position || ' '
                        || data_type || ' ' || is_nullable || ' ' || COALESCE(column_default, '')
                        AS TEXT) AS line
                 FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name NOT IN {BOOKKEEPING}
                 UNION ALL
                 SELECT CAST(indexdef AS TEXT) FROM pg_indexes
                 WHERE schemaname = current_schema() AND tablename NOT IN {BOOKKEEPING}
                 UNION ALL
                 SELECT CAST(c.conrelid::regclass AS TEXT) || ' ' || c.conname || ' '
                        || pg_get_constraintdef(c.oid)
                 FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
                 WHERE n.nspname = current_schema()
                   AND CAST(c.conrelid::regclass AS TEXT) NOT IN {BOOKKEEPING}
             ) AS schema ORDER BY line"
        ),
    };
    let lines: Vec<String> = sqlx::query_scalar(&query)
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert!(lines.len() > 50, "too little schema: {lines:?}");
    lines
}

/// sqlx's record of applied migrations: version and checksum.
async fn applied(store: &Store) -> Vec<(i64, Vec<u8>)> {
    sqlx::query("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn expected_applied(dialect: Dialect) -> Vec<(i64, Vec<u8>)> {
    dialect
        .migrator()
        .iter()
        .map(|m| (m.version, m.checksum.to_vec()))
        .collect()
}

async fn every_older_version_migrates(dialect: Dialect) {
    let databases = Databases::new(dialect);
    let Some(url) = databases.fresh("migrations-fresh").await else {
        return;
    };
    let fresh = Store::connect(&url).await.unwrap();
    assert!(fresh.ready().await.unwrap());
    assert_eq!(applied(&fresh).await, expected_applied(dialect));
    let fresh_schema = schema(&fresh, dialect).await;
    drop(fresh);

    for version in 1..dialect.newest() {
        let url = databases
            .fresh(&format!("migrations-from-{version}"))
            .await
            .unwrap();
        older_release_database(&url, dialect, version).await;

        let store = Store::connect(&url).await.unwrap();
        let from = format!("{dialect:?} from version {version}");
        assert!(store.ready().await.unwrap(), "{from}");
        // The versions the old table listed were adopted with the files'
        // checksums (sqlx would refuse the next start otherwise), the rest
        // applied.
        assert_eq!(applied(&store).await, expected_applied(dialect), "{from}");
        assert_eq!(schema(&store, dialect).await, fresh_schema, "{from}");
        // The old table stays as it was, for nodes of older releases.
        let recorded: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM schema_version ORDER BY version")
                .fetch_all(store.pool())
                .await
                .unwrap();
        assert_eq!(recorded, (1..=version).collect::<Vec<_>>(), "{from}");
        assert_rows_usable(&store, version).await;
        drop(store);

        // Opening again changes nothing.
        let again = Store::connect(&url).await.unwrap();
        assert_eq!(applied(&again).await, expected_applied(dialect), "{from}");
        assert_eq!(schema(&again, dialect).await, fresh_schema, "{from}");
        assert_eq!(
            again.password_hash("carol").await.unwrap().as_deref(),
            Some("hash-c")
        );
    }
}

/// Nodes that start together on a database an older release left: one
/// adopts and migrates, the other waits and finds nothing to do.
async fn nodes_starting_at_once_migrate_once(dialect: Dialect) {
    let databases = Databases::new(dialect);
    let Some(url) = databases.fresh("migrations-race").await else {
        return;
    };
    older_release_database(&url, dialect, 5).await;
    let (first, second) = tokio::join!(Store::connect(&url), Store::connect(&url));
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(applied(&first).await, expected_applied(dialect));
    assert!(second.ready().await.unwrap());
    assert_rows_usable(&first, 5).await;
}

/// A node restarting during a rolling upgrade, after a newer release
/// migrated the database, still starts: versions it does not know are the
/// newer release's.
async fn newer_versions_are_left_alone(dialect: Dialect) {
    let databases = Databases::new(dialect);
    let Some(url) = databases.fresh("migrations-newer").await else {
        return;
    };
    let store = Store::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES ($1, 'from a newer release', TRUE, $2, 0)",
    )
    .bind(dialect.newest() + 1)
    .bind(BYTES)
    .execute(store.pool())
    .await
    .unwrap();
    drop(store);
    let again = Store::connect(&url).await.unwrap();
    assert!(again.ready().await.unwrap());
    assert_eq!(
        applied(&again).await.len(),
        expected_applied(dialect).len() + 1
    );
}

/// On SQLite, and on PostgreSQL when the run has it.
const DIALECTS: [Dialect; 2] = [Dialect::Sqlite, Dialect::Postgres];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_at_every_older_version_migrates() {
    for dialect in DIALECTS {
        every_older_version_migrates(dialect).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_at_once_on_an_older_database_migrate_once() {
    for dialect in DIALECTS {
        nodes_starting_at_once_migrate_once(dialect).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_a_newer_release_migrated_still_opens() {
    for dialect in DIALECTS {
        newer_versions_are_left_alone(dialect).await;
    }
}
