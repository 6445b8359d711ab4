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
    /// Deletes message ciphertext and files past each group's retention.
    /// Each group's deletion and its audit entry are one transaction: if
    /// the log cannot take the entry, nothing of that group is deleted and
    /// the next run tries again.
    pub(crate) async fn apply_retention(&self) -> ApiResult<()> {
        let now = self.store.clock().unix_now();
        let workspace = workspace_retention(self.store).await?;
        for (group_id, days) in self.store.retention(workspace).await? {
            let cutoff = now.saturating_sub(u64::from(days) * 86_400);
            self.store
                .delete_expired(&group_id, cutoff, |deleted, files| {
                    self.audit.entry(
                        AuditEvent::success(AuditAction::RetentionDeleted, "relay")
                            .target(format!("group:{group_id}"))
                            .detail("count", deleted)
                            .detail("files", files)
                            .detail("days", days),
                    )
                })
                .await?;
        }
        // Uploads begun a day ago and never finished will not be.
        self.store
            .delete_abandoned_uploads(now.saturating_sub(86_400))
            .await?;
        Ok(())
    }
}
