//! The `identity` table: who this device is, and its key as it is kept at
//! rest (sealed, or in clear; see `key_at_rest.rs`).

use sqlx::{Row, SqliteConnection};
use zeroize::Zeroizing;

use crate::error::Result;

/// The stored identity, as it is kept.
pub(crate) struct StoredIdentity {
    pub(crate) username: String,
    pub(crate) bot_owner: Option<String>,
    /// `sealed`, `unprotected` or `clear`.
    pub(crate) protection: String,
    /// The key in clear (not when sealed).
    pub(crate) device_secret: Zeroizing<Vec<u8>>,
    pub(crate) sealed_key: Option<Vec<u8>>,
    pub(crate) device_id: Option<String>,
}

pub(crate) async fn load(db: &mut SqliteConnection) -> Result<Option<StoredIdentity>> {
    Ok(sqlx::query(
        "SELECT username, bot_owner, protection, device_secret, sealed_key, device_id \
         FROM identity WHERE id = 1",
    )
    .fetch_optional(&mut *db)
    .await?
    .map(|row| StoredIdentity {
        username: row.get(0),
        bot_owner: row.get(1),
        protection: row.get(2),
        device_secret: Zeroizing::new(row.get::<Option<Vec<u8>>, _>(3).unwrap_or_default()),
        sealed_key: row.get(4),
        device_id: row.get(5),
    }))
}

/// Stores a new device's identity, its key sealed.
pub(crate) async fn insert_sealed(
    db: &mut SqliteConnection,
    username: &str,
    sealed_key: &[u8],
    device_id: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO identity (id, username, protection, sealed_key, device_id) \
         VALUES (1, $1, 'sealed', $2, $3)",
    )
    .bind(username)
    .bind(sealed_key)
    .bind(device_id)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Stores a new device's identity, its key unprotected (an unattended bot's).
pub(crate) async fn insert_unprotected(
    db: &mut SqliteConnection,
    username: &str,
    secret: &[u8],
    device_id: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO identity (id, username, protection, device_secret, device_id) \
         VALUES (1, $1, 'unprotected', $2, $3)",
    )
    .bind(username)
    .bind(secret)
    .bind(device_id)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Replaces the key kept in clear by its sealed form.
pub(crate) async fn seal(
    db: &mut SqliteConnection,
    sealed_key: &[u8],
    device_id: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE identity SET protection = 'sealed', device_secret = NULL, \
         sealed_key = $1, device_id = $2 WHERE id = 1",
    )
    .bind(sealed_key)
    .bind(device_id)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Marks this device a bot's, run by `owner`.
pub(crate) async fn set_bot_owner(db: &mut SqliteConnection, owner: &str) -> Result<()> {
    sqlx::query("UPDATE identity SET bot_owner = $1 WHERE id = 1")
        .bind(owner)
        .execute(&mut *db)
        .await?;
    Ok(())
}
