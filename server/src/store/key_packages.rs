//! One-time key packages: uploaded by each device, claimed once by whoever
//! adds it to a group.

use sqlx::Row;

use super::{Backend, Store, StoreError, to_i64, to_u64};

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

impl Store {
    /// Stores key packages for a device. A new last-resort package replaces
    /// the previous one, so each device keeps exactly one. Nothing is stored
    /// if any package is already stored (or repeated in `packages`), or if
    /// the device would then hold more than `max_one_time` unused one-time
    /// packages: the count and the inserts share one write transaction,
    /// and so does `uploaded`, the upload's audit entry, appended only when
    /// the packages are stored.
    pub async fn add_key_packages(
        &self,
        device_id: &str,
        packages: &[NewKeyPackage],
        max_one_time: u64,
        uploaded: conclave_audit::Event,
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
        conclave_audit::log::append(&mut tx, uploaded).await?;
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
        .fetch_one(&self.readers)
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
        .fetch_all(&self.readers)
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
        // One transaction for every device's claim: one flush to disk for
        // a thousand devices, not a thousand, and none lost to a failure
        // half-way.
        let mut tx = self.begin_write().await?;
        let mut claimed = Vec::new();
        for device in devices {
            let one_time = sqlx::query(&claim_one_time)
                .bind(&device)
                .bind(self.now())
                .fetch_optional(&mut *tx)
                .await?;
            let package = match one_time {
                Some(row) => Some(row.get::<Vec<u8>, _>(0)),
                None => sqlx::query(
                    "SELECT key_package FROM key_packages
                     WHERE device_id = $1 AND last_resort = TRUE AND expires_at > $2 LIMIT 1",
                )
                .bind(&device)
                .bind(self.now())
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.get::<Vec<u8>, _>(0)),
            };
            if let Some(package) = package {
                claimed.push((device, package));
            }
        }
        tx.commit().await?;
        Ok(claimed)
    }
}
