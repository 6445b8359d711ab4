//! What a device fetches (`GET /v1/messages`) and acknowledges: its pending
//! messages, and beside them what it should act on without another round
//! trip (key package stock, its account's devices and changes, archived
//! groups, retention, revoked members to remove).

use conclave_proto::{
    AccountChange, AckAnswer, AckBody, DeviceStatus, FetchAnswer, Retention, RevokedMember,
};

use super::Relay;
use super::delivery::delivered;
use super::retention::workspace_retention;
use crate::error::{ApiError, ApiResult};
use crate::store::Ack;

/// Most messages one fetch returns.
pub(crate) const FETCH_LIMIT: u32 = 500;

/// Most acknowledgements one request may carry: a client acknowledges one
/// fetch at a time, so at most one per message of a page. Without a bound,
/// one request of a megabyte named some 15,000 groups, each a row for the
/// one writer to look up.
pub(crate) const MAX_ACKS: usize = FETCH_LIMIT as usize;

impl Relay<'_> {
    /// Up to `limit` (at most [`FETCH_LIMIT`]) pending messages of
    /// `device`, of account `user`, with what else it should act on.
    pub(crate) async fn fetch(
        &self,
        user: &str,
        device: &str,
        limit: Option<u32>,
    ) -> ApiResult<FetchAnswer> {
        let limit = limit.unwrap_or(FETCH_LIMIT).clamp(1, FETCH_LIMIT);
        let messages = self
            .store
            .pending(device, limit)
            .await?
            .iter()
            .map(delivered)
            .collect();
        // Devices learn here when their key packages run low, without an extra round trip.
        let key_package_stock = self.key_package_stock(device).await?;
        // And which devices their account has, and which revoked devices linger
        // in their groups, so that they add the one and remove the other.
        let devices = self
            .store
            .devices_of(user)
            .await?
            .into_iter()
            .map(|d| DeviceStatus {
                device_id: d.device_id,
                revoked: d.revoked_at.is_some(),
            })
            .collect();
        let archived_groups = self.store.archived_groups_of(device).await?;
        let retention = self
            .store
            .retention_of(device, workspace_retention(self.store).await?)
            .await?
            .into_iter()
            .map(|(group_id, days)| Retention { days, group_id })
            .collect();
        let revoked_members = self
            .store
            .revoked_members(device)
            .await?
            .into_iter()
            .map(|(group_id, device_id)| RevokedMember {
                device_id,
                group_id,
            })
            .collect();
        // And what changed in who can sign in to their account (factors,
        // passwords, recoveries), so that every device can tell its owner.
        let account_changes = self
            .store
            .account_changes(user)
            .await?
            .into_iter()
            .map(|c| AccountChange {
                at: c.at,
                detail: c.detail,
                device_id: c.device_id,
                id: c.id,
                kind: c.kind,
            })
            .collect();
        Ok(FetchAnswer {
            account_changes,
            archived_groups,
            devices,
            key_package_stock,
            messages,
            retention,
            revoked_members,
        })
    }

    /// Moves `device`'s cursor in each group it names.
    pub(crate) async fn ack(&self, device: &str, body: &AckBody) -> ApiResult<AckAnswer> {
        if body.acks.len() > MAX_ACKS {
            return Err(ApiError::BadRequest(format!(
                "at most {MAX_ACKS} acknowledgements per request, not {}",
                body.acks.len()
            )));
        }
        let acks: Vec<Ack> = body
            .acks
            .iter()
            .map(|ack| Ack {
                device_id: device.to_owned(),
                group_id: ack.group_id.clone(),
                seq: ack.seq,
            })
            .collect();
        self.store.ack_many(&acks).await?;
        Ok(AckAnswer {
            acked: body.acks.len() as u64,
        })
    }
}
