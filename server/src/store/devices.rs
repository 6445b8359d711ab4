//! Devices and the request nonces they spent.

use sqlx::Row;

use super::{Nonce, Store, StoreError, group_commit};

/// A device as registered.
#[derive(Debug, Clone)]
pub struct DeviceRow {
    /// The owning account.
    pub username: String,
    /// The Ed25519 public key.
    pub public_key: Vec<u8>,
}

impl Store {
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
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.map(|r| DeviceRow {
            username: r.get(0),
            public_key: r.get(1),
        }))
    }

    /// Records a request nonce; `false` if it was already used (a replay).
    /// On SQLite it joins the writes waiting for the next group commit.
    pub async fn use_nonce(
        &self,
        device_id: &str,
        nonce: &str,
        expires_at: u64,
    ) -> Result<bool, StoreError> {
        self.spend_nonce(Nonce {
            device_id: device_id.to_owned(),
            nonce: nonce.to_owned(),
            expires_at,
        })
        .await
    }

    /// [`Store::use_nonce`] of a nonce already in hand.
    pub async fn spend_nonce(&self, nonce: Nonce) -> Result<bool, StoreError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let queued = group_commit::Queued::Nonce { nonce, answer };
        if let Err(refused) = self.appends.send(queued).await {
            // No committer (the runtime is shutting down): on our own.
            group_commit::write_alone(self.writes(), self.backend, refused.0).await;
        }
        answered
            .await
            .unwrap_or(Err(StoreError::Database(sqlx::Error::WorkerCrashed)))
    }

    /// Forgets nonces whose requests could no longer pass the freshness check.
    pub async fn prune_nonces(&self) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM request_nonces WHERE expires_at < $1")
            .bind(self.now())
            .execute(self.writes())
            .await?;
        Ok(result.rows_affected())
    }
}
