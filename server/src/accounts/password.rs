//! A new password, with a fresh proof of the old one and a second factor:
//! the client sends the new password's OPAQUE record (its setup came
//! first, `passwords::new_password_setup`), never the password.

use conclave_proto::PasswordChangeAnswer;
use webauthn_rs::prelude::PublicKeyCredential;

use super::changes::apply_change;
use super::passwords::verifier_from_upload;
use super::proof::step_up;
use crate::AppState;
use crate::auth::Signed;
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
    if !body.proof.has_password() {
        return Err(ApiError::BadRequest(
            "the current password is required to change it".into(),
        ));
    }
    step_up(state, &signed, body.proof, AuditAction::PasswordChanged).await?;
    let hash = verifier_from_upload(state, &body.new_password_record).await?;
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
