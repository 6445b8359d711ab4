//! Devices: this account's own as the relay last listed them
//! (`known_devices`), and every device whose key the transparency log
//! vouched for (`verified_devices`).

use std::collections::BTreeMap;

use sqlx::{Row, SqliteConnection};

use super::to_i64;
use crate::error::Result;

/// Whether this device has listed none of the account's devices yet.
pub(crate) async fn none_known(db: &mut SqliteConnection) -> Result<bool> {
    let known: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM known_devices")
        .fetch_one(&mut *db)
        .await?;
    Ok(known == 0)
}

/// Whether device `device_id` of the account was revoked, if it is known.
pub(crate) async fn known_revoked(
    db: &mut SqliteConnection,
    device_id: &str,
) -> Result<Option<bool>> {
    Ok(
        sqlx::query("SELECT revoked FROM known_devices WHERE device_id = $1")
            .bind(device_id)
            .fetch_optional(&mut *db)
            .await?
            .map(|r| r.get::<i64, _>(0) != 0),
    )
}

pub(crate) async fn set_known(
    db: &mut SqliteConnection,
    device_id: &str,
    revoked: bool,
) -> Result<()> {
    sqlx::query("INSERT OR REPLACE INTO known_devices (device_id, revoked) VALUES ($1, $2)")
        .bind(device_id)
        .bind(i64::from(revoked))
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// How many of the account's devices are not revoked.
pub(crate) async fn active_count(db: &mut SqliteConnection) -> Result<u64> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM known_devices WHERE revoked = 0")
        .fetch_one(&mut *db)
        .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Every verified device's key, by (username, device id).
pub(crate) async fn verified(
    db: &mut SqliteConnection,
) -> Result<BTreeMap<(String, String), Vec<u8>>> {
    Ok(
        sqlx::query("SELECT username, device_id, public_key FROM verified_devices")
            .fetch_all(&mut *db)
            .await?
            .iter()
            .map(|r| ((r.get(0), r.get(1)), r.get(2)))
            .collect(),
    )
}

/// The verified key of one device, if it was verified.
pub(crate) async fn verified_key(
    db: &mut SqliteConnection,
    username: &str,
    device_id: &str,
) -> Result<Option<Vec<u8>>> {
    Ok(sqlx::query_scalar(
        "SELECT public_key FROM verified_devices WHERE device_id = $1 AND username = $2",
    )
    .bind(device_id)
    .bind(username)
    .fetch_optional(&mut *db)
    .await?)
}

/// Records a device the log vouched for, at `leaf_index` in the log.
pub(crate) async fn set_verified(
    db: &mut SqliteConnection,
    username: &str,
    device_id: &str,
    public_key: &[u8],
    leaf_index: u64,
) -> Result<()> {
    sqlx::query(
        "INSERT OR REPLACE INTO verified_devices (device_id, username, public_key, leaf_index)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(device_id)
    .bind(username)
    .bind(public_key)
    .bind(to_i64(leaf_index))
    .execute(&mut *db)
    .await?;
    Ok(())
}
