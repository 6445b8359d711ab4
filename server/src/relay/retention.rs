//! Retention: message ciphertext and files older than their channel's
//! retention (or the workspace's) are deleted, and the log says so.

use super::Relay;
use crate::error::ApiResult;
use crate::events::{AuditAction, AuditEvent};
use crate::store::Store;

/// The workspace's retention in days (0: keep forever).
pub(crate) async fn workspace_retention(store: &Store) -> ApiResult<u32> {
    Ok(store
        .setting("retention_days")
        .await?
        .and_then(|d| d.parse().ok())
        .unwrap_or(0))
}

impl Relay<'_> {
    /// Deletes message ciphertext past each group's retention, and enters
    /// each deletion in the audit log.
    pub(crate) async fn apply_retention(&self) -> ApiResult<()> {
        let now = self.store.clock().unix_now();
        let workspace = workspace_retention(self.store).await?;
        for (group_id, days) in self.store.retention(workspace).await? {
            let cutoff = now.saturating_sub(u64::from(days) * 86_400);
            let deleted = self.store.delete_messages_before(&group_id, cutoff).await?;
            let files = self.store.delete_blobs_before(&group_id, cutoff).await?;
            if deleted > 0 || files > 0 {
                self.audit
                    .record_in_background(
                        AuditEvent::success(AuditAction::RetentionDeleted, "relay")
                            .target(format!("group:{group_id}"))
                            .detail("count", deleted)
                            .detail("files", files)
                            .detail("days", days),
                    )
                    .await;
            }
        }
        // Uploads begun a day ago and never finished will not be.
        self.store
            .delete_abandoned_uploads(now.saturating_sub(86_400))
            .await?;
        Ok(())
    }
}
