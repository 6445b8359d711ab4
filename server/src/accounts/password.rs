//! A new password, with a fresh proof of the old one and a second factor.

use conclave_proto::PasswordChangeAnswer;
use webauthn_rs::prelude::PublicKeyCredential;

use super::changes::apply_change;
use super::check_new_password;
use super::proof::step_up;
use crate::AppState;
use crate::auth::{Signed, hash_password};
use crate::error::{ApiError, ApiResult};
use crate::events::{AuditAction, AuditEvent};
use crate::store::AccountChange;

type PasswordChangeBody = conclave_proto::PasswordChangeBody<Box<PublicKeyCredential>>;

/// Sets a new password, after a fresh proof of the old one and a second
/// factor (when the account has one).
pub(crate) async fn change_password(
    state: &AppState,
    signed: Signed,
) -> ApiResult<PasswordChangeAnswer> {
    let user = signed.username()?.to_owned();
    let this_device = signed.device_id.to_string();
    let body: PasswordChangeBody = signed.json()?;
    check_new_password(&body.new_password)?;
    if body.proof.password.is_none() {
        return Err(ApiError::BadRequest(
            "the current password is required to change it".into(),
        ));
    }
    step_up(state, &signed, body.proof, AuditAction::PasswordChanged).await?;
    let hash = hash_password(body.new_password).await?;
    let changed = apply_change(
        state,
        &user,
        AccountChange::PasswordChanged {
            hash: &hash,
            keep_device: &this_device,
        },
        Some(&this_device),
        |outcome| {
            vec![
                AuditEvent::success(AuditAction::PasswordChanged, &user).device(&this_device),
                AuditEvent::success(AuditAction::SessionsEnded, &user)
                    .device(&this_device)
                    .target("other_sessions")
                    .detail("count", outcome.devices_ended.len()),
            ]
        },
    )
    .await?;
    Ok(PasswordChangeAnswer {
        sessions_ended: changed.devices_ended.len() as u64,
    })
}
