//! The relay's schema: one file per version and dialect in
//! `server/migrations/sqlite/` and `server/migrations/postgres/`, embedded
//! by `sqlx::migrate!` and recorded in sqlx's table, `_sqlx_migrations`.
//! The transparency log's tables (`conclave-audit`) are among them.
//!
//! Releases before these files kept their own record, `schema_version`, of
//! the same versions applied from the same statements. Such a database is
//! adopted once ([`adopt_schema_version`]), and sqlx applies the rest.
//! `schema_version` stays, no longer written: nodes of those releases still
//! serving during a rolling upgrade read it for `/readyz`, and one that
//! restarts finds every version it knows there and changes nothing.

use sqlx::migrate::{Migrate, Migrator};
use sqlx::{AnyConnection, AnyPool, Connection, Row};

use super::{Backend, StoreError};

/// The PostgreSQL advisory lock one node holds while it migrates. Releases
/// before sqlx migrations took the same key, so nodes of both wait for each
/// other too.
const MIGRATION_LOCK: i64 = 0x636f_6e63_6c61_7665; // "conclave"

fn migrator(backend: Backend) -> Migrator {
    let mut migrator = match backend {
        Backend::Sqlite => sqlx::migrate!("migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("migrations/postgres"),
    };
    // A node may start after a newer release migrated the database (a node
    // restarting during a rolling upgrade): versions it does not know are
    // the newer release's business, not an error.
    migrator.set_ignore_missing(true);
    // Each backend has its one lock, taken in `run` around adoption and
    // migration alike. sqlx's own would add a second PostgreSQL key (and stay
    // held on the pooled connection after a failed migration).
    migrator.set_locking(false);
    migrator
}

/// The newest version this build knows.
fn newest(backend: Backend) -> i64 {
    migrator(backend)
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

/// Brings the schema up to date, one process at a time.
pub(super) async fn run(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    let migrator = migrator(backend);
    // `run_direct`, not `run`: `run` goes through `Acquire`, whose lifetimes
    // leave the server's future not `Send` to the compiler ("implementation
    // of `Acquire` is not general enough"); sqlx keeps `run_direct` public
    // for this.
    match backend {
        // SQLite's write lock, held from the first look to the last
        // migration, keeps out an `admin` command started beside the relay;
        // sqlx's transactions nest inside as savepoints.
        Backend::Sqlite => {
            let mut tx = super::group_commit::begin_immediate(pool).await?;
            adopt_schema_version(&mut tx, backend, &migrator).await?;
            migrator.run_direct(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        }
        // Nodes starting at once on an empty database would race even to
        // create sqlx's table (PostgreSQL's catalog refuses the second
        // CREATE TABLE IF NOT EXISTS): one node migrates at a time, under a
        // session advisory lock on the connection that does the work. Each
        // migration still commits on its own.
        Backend::Postgres => {
            let mut conn = pool.acquire().await?;
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *conn)
                .await?;
            let outcome = async {
                adopt_schema_version(&mut conn, backend, &migrator).await?;
                migrator.run_direct(&mut *conn).await?;
                Ok(())
            }
            .await;
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *conn)
                .await?;
            outcome
        }
    }
}

/// Whether the database holds every migration this build knows.
pub(super) async fn up_to_date(pool: &AnyPool, backend: Backend) -> Result<bool, StoreError> {
    let applied: Option<i64> = sqlx::query("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await?
        .get(0);
    Ok(applied.is_some_and(|v| v >= newest(backend)))
}

/// Enters the versions an older release recorded in `schema_version` into
/// `_sqlx_migrations`, with the checksums sqlx computed for the files that
/// hold the same statements, so that sqlx takes them as applied. Once: a
/// database that has `_sqlx_migrations` is sqlx's already. All or nothing,
/// in one transaction, and under the caller's lock.
async fn adopt_schema_version(
    conn: &mut AnyConnection,
    backend: Backend,
    migrator: &Migrator,
) -> Result<(), StoreError> {
    let mut tx = conn.begin().await?;
    if !table_exists(&mut tx, backend, "schema_version").await?
        || table_exists(&mut tx, backend, "_sqlx_migrations").await?
    {
        return Ok(());
    }
    let recorded: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_version")
        .fetch_all(&mut *tx)
        .await?;
    tx.ensure_migrations_table().await?;
    for migration in migrator.iter().filter(|m| recorded.contains(&m.version)) {
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES ($1, $2, TRUE, $3, 0)",
        )
        .bind(migration.version)
        .bind(migration.description.as_ref())
        .bind(migration.checksum.as_ref())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn table_exists(
    conn: &mut AnyConnection,
    backend: Backend,
    name: &str,
) -> Result<bool, StoreError> {
    let query = match backend {
        Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_name = $1"
        }
    };
    let count: i64 = sqlx::query_scalar(query).bind(name).fetch_one(conn).await?;
    Ok(count > 0)
}
