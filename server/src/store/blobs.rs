//! Attachment blobs: sealed chunks under random ids, each blob tied to the
//! group it was uploaded for and counted against its uploader's quota.

use sqlx::Row;

use super::{Backend, Store, StoreError, to_i64, to_u64};

/// One stored blob's bookkeeping (never its content).
#[derive(Debug, Clone)]
pub struct BlobRow {
    /// The group whose members may read it.
    pub group_id: String,
    /// The uploading account.
    pub owner: String,
    /// Sealed size in bytes.
    pub size: u64,
    /// Number of sealed chunks.
    pub chunks: u64,
    /// Every chunk arrived and the uploader said it is done.
    pub complete: bool,
    /// For a history bundle: the only account (besides the uploader) that may read it.
    pub recipient: Option<String>,
}

/// A blob about to be created.
#[derive(Debug, Clone, Copy)]
pub struct BlobSpec<'a> {
    /// Its random id.
    pub blob_id: &'a str,
    /// The group whose members may read it.
    pub group_id: &'a str,
    /// The uploading account.
    pub owner: &'a str,
    /// Sealed size in bytes.
    pub size: u64,
    /// Number of sealed chunks.
    pub chunks: u64,
    /// For a history bundle: the only other account that may read it.
    pub recipient: Option<&'a str>,
}

/// Why a new blob was not accepted.
#[derive(Debug)]
pub enum NewBlob {
    /// Accepted.
    Created,
    /// It would take the owner past `quota`; `used` is what they have now.
    OverQuota {
        /// Bytes in use now.
        used: u64,
    },
}

impl Store {
    /// Records a new, empty blob unless it would take `owner` past `quota`
    /// bytes. The check and the insert are one transaction, serialized per
    /// account, so concurrent uploads cannot both slip under the quota.
    /// `shared`, the audit entry of a history bundle, is appended in that
    /// transaction when the blob is accepted.
    pub async fn create_blob(
        &self,
        blob: &BlobSpec<'_>,
        quota: u64,
        shared: Option<conclave_audit::Event>,
    ) -> Result<NewBlob, StoreError> {
        let BlobSpec {
            blob_id,
            group_id,
            owner,
            size,
            chunks,
            recipient,
        } = *blob;
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            // Concurrent uploads of one account queue here. (On SQLite
            // `begin_write` already holds the database's write lock, which
            // does the same.)
            sqlx::query("SELECT 1 FROM accounts WHERE username = $1 FOR UPDATE")
                .bind(owner)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO blobs (blob_id, group_id, owner, size, chunks, complete, created_at, recipient)
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7)",
        )
        .bind(blob_id)
        .bind(group_id)
        .bind(owner)
        .bind(to_i64(size))
        .bind(to_i64(chunks))
        .bind(self.now())
        .bind(recipient)
        .execute(&mut *tx)
        .await?;
        // Counted after the insert, so the total includes this blob and
        // every committed one.
        let total = to_u64(
            sqlx::query(
                "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM blobs WHERE owner = $1",
            )
            .bind(owner)
            .fetch_one(&mut *tx)
            .await?
            .get(0),
        );
        if total > quota {
            tx.rollback().await?;
            return Ok(NewBlob::OverQuota {
                used: total.saturating_sub(size),
            });
        }
        if let Some(shared) = shared {
            conclave_audit::log::append(&mut tx, shared).await?;
        }
        tx.commit().await?;
        Ok(NewBlob::Created)
    }

    /// A blob's bookkeeping.
    pub async fn blob(&self, blob_id: &str) -> Result<Option<BlobRow>, StoreError> {
        let row = sqlx::query(
            "SELECT group_id, owner, size, chunks, complete, recipient FROM blobs WHERE blob_id = $1",
        )
        .bind(blob_id)
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.map(|r| BlobRow {
            group_id: r.get(0),
            owner: r.get(1),
            size: to_u64(r.get(2)),
            chunks: to_u64(r.get(3)),
            complete: r.get::<i64, _>(4) == 1,
            recipient: r.get(5),
        }))
    }

    /// Stores chunk `index` of an incomplete blob (again, if a retry sends it twice).
    /// `false` if the blob is complete or gone.
    pub async fn put_blob_chunk(
        &self,
        blob_id: &str,
        index: u64,
        data: &[u8],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let open = sqlx::query("SELECT 1 FROM blobs WHERE blob_id = $1 AND complete = 0")
            .bind(blob_id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !open {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO blob_chunks (blob_id, idx, data) VALUES ($1, $2, $3)
             ON CONFLICT (blob_id, idx) DO UPDATE SET data = excluded.data",
        )
        .bind(blob_id)
        .bind(to_i64(index))
        .bind(data)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Marks a blob complete if every chunk is there; returns how many are.
    pub async fn complete_blob(&self, blob_id: &str, chunks: u64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let stored = to_u64(
            sqlx::query("SELECT COUNT(*) FROM blob_chunks WHERE blob_id = $1")
                .bind(blob_id)
                .fetch_one(&mut *tx)
                .await?
                .get(0),
        );
        if stored == chunks {
            sqlx::query("UPDATE blobs SET complete = 1 WHERE blob_id = $1")
                .bind(blob_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(stored)
    }

    /// One sealed chunk.
    pub async fn blob_chunk(
        &self,
        blob_id: &str,
        index: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query("SELECT data FROM blob_chunks WHERE blob_id = $1 AND idx = $2")
                .bind(blob_id)
                .bind(to_i64(index))
                .fetch_optional(&self.readers)
                .await?
                .map(|r| r.get(0)),
        )
    }

    /// Deletes a blob and its chunks.
    pub async fn delete_blob(&self, blob_id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let gone = delete_blob_rows(&mut tx, blob_id).await?;
        tx.commit().await?;
        Ok(gone)
    }

    /// Bytes of attachments `owner` keeps on the relay.
    pub async fn blob_usage(&self, owner: &str) -> Result<u64, StoreError> {
        Ok(to_u64(
            sqlx::query(
                "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM blobs WHERE owner = $1",
            )
            .bind(owner)
            .fetch_one(&self.readers)
            .await?
            .get(0),
        ))
    }

    /// Deletes uploads never completed, begun before `cutoff`.
    pub async fn delete_abandoned_uploads(&self, cutoff: u64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let deleted =
            delete_blobs_where(&mut tx, "complete = 0 AND created_at < $1", None, cutoff).await?;
        tx.commit().await?;
        Ok(deleted)
    }
}

/// Deletes, inside `tx`, the blobs matching `condition` (over `$1` =
/// `group_id` if given, then the next parameter = `cutoff`); returns how
/// many went.
pub(super) async fn delete_blobs_where(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    condition: &str,
    group_id: Option<&str>,
    cutoff: u64,
) -> Result<u64, StoreError> {
    let select = format!("SELECT blob_id FROM blobs WHERE {condition}");
    let mut query = sqlx::query(&select);
    if let Some(group_id) = group_id {
        query = query.bind(group_id);
    }
    let ids: Vec<String> = query
        .bind(to_i64(cutoff))
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for id in &ids {
        delete_blob_rows(tx, id).await?;
    }
    Ok(ids.len() as u64)
}

/// Deletes one blob and its chunks inside `tx`; `false` if it was gone.
async fn delete_blob_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    blob_id: &str,
) -> Result<bool, StoreError> {
    // Explicitly, not by cascade: PostgreSQL and SQLite agree on this.
    sqlx::query("DELETE FROM blob_chunks WHERE blob_id = $1")
        .bind(blob_id)
        .execute(&mut **tx)
        .await?;
    Ok(sqlx::query("DELETE FROM blobs WHERE blob_id = $1")
        .bind(blob_id)
        .execute(&mut **tx)
        .await?
        .rows_affected()
        == 1)
}
