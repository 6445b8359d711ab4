//! The `bot_state` table: a bot's own durable values, by key.

use sqlx::{Row, SqliteConnection};

use crate::error::Result;

pub(crate) async fn get(db: &mut SqliteConnection, key: &str) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT value FROM bot_state WHERE key = $1")
            .bind(key)
            .fetch_optional(&mut *db)
            .await?,
    )
}

/// Every `(key, value)` under keys starting with `prefix`, by key.
pub(crate) async fn with_prefix(
    db: &mut SqliteConnection,
    prefix: &str,
) -> Result<Vec<(String, String)>> {
    Ok(sqlx::query(
        "SELECT key, value FROM bot_state WHERE substr(key, 1, length($1)) = $1 ORDER BY key",
    )
    .bind(prefix)
    .fetch_all(&mut *db)
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect())
}

pub(crate) async fn set(db: &mut SqliteConnection, key: &str, value: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO bot_state (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(key)
    .bind(value)
    .execute(&mut *db)
    .await?;
    Ok(())
}

pub(crate) async fn forget(db: &mut SqliteConnection, key: &str) -> Result<()> {
    sqlx::query("DELETE FROM bot_state WHERE key = $1")
        .bind(key)
        .execute(&mut *db)
        .await?;
    Ok(())
}
