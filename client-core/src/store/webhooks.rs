//! A bot's incoming webhooks (`webhooks`) and the nonces their requests
//! spent (`webhook_nonces`).

use sqlx::{Row, SqliteConnection};
use zeroize::Zeroizing;

use super::to_i64;
use crate::error::Result;

/// Adds a webhook posting to the channel `group_id` (called `channel` now);
/// `false` if one of that name exists.
pub(crate) async fn add(
    db: &mut SqliteConnection,
    name: &str,
    (group_id, channel): (&str, &str),
    template: &str,
    secret: &str,
) -> Result<bool> {
    Ok(sqlx::query(
        "INSERT OR IGNORE INTO webhooks (name, group_id, channel, template, secret) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(name)
    .bind(group_id)
    .bind(channel)
    .bind(template)
    .bind(secret)
    .execute(&mut *db)
    .await?
    .rows_affected()
        == 1)
}

/// Every webhook's name, channel (the name it goes by now) and template,
/// by name.
pub(crate) async fn list(db: &mut SqliteConnection) -> Result<Vec<(String, String, String)>> {
    Ok(sqlx::query(
        "SELECT w.name, COALESCE(c.name, w.channel), w.template FROM webhooks w \
         LEFT JOIN channels c ON c.group_id = w.group_id ORDER BY w.name",
    )
    .fetch_all(&mut *db)
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect())
}

/// Removes a webhook and its spent nonces; whether it existed.
pub(crate) async fn remove(db: &mut SqliteConnection, name: &str) -> Result<bool> {
    let removed = sqlx::query("DELETE FROM webhooks WHERE name = $1")
        .bind(name)
        .execute(&mut *db)
        .await?
        .rows_affected()
        == 1;
    sqlx::query("DELETE FROM webhook_nonces WHERE webhook = $1")
        .bind(name)
        .execute(&mut *db)
        .await?;
    Ok(removed)
}

/// What a webhook posts to: its channel's group id (`None` for a webhook
/// made before webhooks kept one, whose channel was gone at the upgrade)
/// with the name it was made with, its template and its secret.
pub(crate) struct WebhookRow {
    pub(crate) group_id: Option<String>,
    pub(crate) channel: String,
    pub(crate) template: String,
    pub(crate) secret: Zeroizing<String>,
}

/// Webhook `name`, if there is one.
pub(crate) async fn get(db: &mut SqliteConnection, name: &str) -> Result<Option<WebhookRow>> {
    Ok(
        sqlx::query("SELECT group_id, channel, template, secret FROM webhooks WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *db)
            .await?
            .map(|row| WebhookRow {
                group_id: row.get(0),
                channel: row.get(1),
                template: row.get(2),
                secret: Zeroizing::new(row.get(3)),
            }),
    )
}

/// Spends `nonce` of webhook `name` until `expires_at` (dropping nonces
/// expired by `now`); `false` if a delivered request spent it already.
pub(crate) async fn spend_nonce(
    db: &mut SqliteConnection,
    name: &str,
    nonce: &str,
    now: u64,
    expires_at: u64,
) -> Result<bool> {
    sqlx::query("DELETE FROM webhook_nonces WHERE expires_at < $1")
        .bind(to_i64(now))
        .execute(&mut *db)
        .await?;
    let delivered =
        sqlx::query("SELECT delivered FROM webhook_nonces WHERE webhook = $1 AND nonce = $2")
            .bind(name)
            .bind(nonce)
            .fetch_optional(&mut *db)
            .await?
            .is_some_and(|r| r.get::<i64, _>(0) == 1);
    if delivered {
        return Ok(false);
    }
    sqlx::query(
        "INSERT OR IGNORE INTO webhook_nonces (webhook, nonce, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(name)
    .bind(nonce)
    .bind(to_i64(expires_at))
    .execute(&mut *db)
    .await?;
    Ok(true)
}

/// Notes that the request of `nonce` was delivered: from now on the nonce
/// is a replay.
pub(crate) async fn delivered(db: &mut SqliteConnection, name: &str, nonce: &str) -> Result<()> {
    sqlx::query("UPDATE webhook_nonces SET delivered = 1 WHERE webhook = $1 AND nonce = $2")
        .bind(name)
        .bind(nonce)
        .execute(&mut *db)
        .await?;
    Ok(())
}
