//! The account's devices: listed, and revoked (another device only with a
//! fresh proof, so a stolen device cannot throw its owner out).

use conclave_proto::{DeviceInfo, DeviceList, RevokedAnswer};

use super::changes::apply_change;
use super::proof::step_up_with_body;
use crate::AppState;
use crate::auth::Signed;
use crate::error::{ApiError, ApiResult};
use crate::events::{AuditAction, AuditEvent};
use crate::store::AccountChange;

/// The account's devices, for one of them.
pub(crate) async fn list_devices(state: &AppState, signed: Signed) -> ApiResult<DeviceList> {
    let user = signed.username()?;
    let this_device = signed.device_id.to_string();
    let devices = state
        .store
        .devices_of(user)
        .await?
        .into_iter()
        .map(|d| DeviceInfo {
            created_at: d.created_at,
            current: d.device_id == this_device,
            last_seen_at: d.last_seen_at,
            revoked_at: d.revoked_at,
            session_active: d.session_active,
            device_id: d.device_id,
        })
        .collect();
    Ok(DeviceList { devices })
}

/// Revokes a device of the account: this one freely, another only after a
/// fresh proof, so a stolen device cannot throw its owner out.
pub(crate) async fn revoke_device(
    state: &AppState,
    device_id: ApiResult<String>,
    signed: Signed,
) -> ApiResult<RevokedAnswer> {
    let user = signed.username()?.to_owned();
    let target = device_id?;
    let this_device = signed.device_id.to_string();
    // Signing out oneself needs no proof; revoking another device does, so a
    // stolen device cannot throw its owner's other devices out.
    if target != this_device {
        step_up_with_body(state, &signed, AuditAction::DeviceRevoked).await?;
    }
    let revoked = apply_change(
        state,
        &user,
        AccountChange::DeviceRevoked { device_id: &target },
        Some(&this_device),
        |_| {
            vec![
                AuditEvent::success(AuditAction::DeviceRevoked, &user)
                    .device(&this_device)
                    .target(format!("device:{target}"))
                    .from_ip(signed.ip),
            ]
        },
    )
    .await?;
    if !revoked.applied {
        return Err(ApiError::NotFound("device"));
    }
    Ok(RevokedAnswer { revoked: target })
}
