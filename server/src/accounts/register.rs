//! Registration: a new account, by invite unless the relay is open.

use std::net::IpAddr;

use conclave_proto::{RegisterAnswer, RegisterBody, SecretText};

use super::factors::INVITE_CODE;
use super::passwords::verifier_from_upload;
use super::username;
use crate::AppState;
use crate::auth::verify_secret;
use crate::error::{ApiError, ApiResult};
use crate::events::{AuditAction, AuditEvent};

/// The id of the valid, unspent invite `code`, checked and not spent:
/// `None` on a relay with open registration, where none is needed.
pub(crate) async fn checked_invite(
    state: &AppState,
    code: Option<&SecretText>,
) -> ApiResult<Option<String>> {
    if state.config.open_registration {
        return Ok(None);
    }
    let code = code.ok_or(ApiError::InviteRequired)?;
    let (id, whole) = INVITE_CODE
        .parse(code.expose())
        .ok_or(ApiError::InviteInvalid)?;
    let stored = state.store.open_invite(&id).await?;
    if !verify_secret(whole, stored).await? {
        return Err(ApiError::InviteInvalid);
    }
    Ok(Some(id))
}

/// Creates the account `body` names, spending its invite code and logging
/// it in the same transaction. The caller has counted the request against
/// the per-address limit.
pub(crate) async fn register(
    state: &AppState,
    body: RegisterBody,
    ip: Option<IpAddr>,
) -> ApiResult<RegisterAnswer> {
    let name = username(&body.username)?;
    let invite = checked_invite(state, body.invite_code.as_ref()).await?;
    let hash = verifier_from_upload(state, &body.password_record).await?;
    let mut created = AuditEvent::success(AuditAction::AccountCreated, name.as_str()).from_ip(ip);
    if let Some(id) = &invite {
        created = created.target(format!("invite:{id}"));
    }
    match state
        .store
        .create_account_with_invite(
            name.as_str(),
            &hash,
            invite.as_deref(),
            state.audit.entry(created),
        )
        .await?
    {
        Ok(()) => {}
        Err("invite") => return Err(ApiError::InviteInvalid),
        Err(_) => return Err(ApiError::Conflict("username")),
    }
    Ok(RegisterAnswer {
        username: name.as_str().to_owned(),
    })
}
