//! Invite codes and bot passwords: the API and the admin CLI issue them
//! the same way.

use zeroize::Zeroizing;

use super::factors::INVITE_CODE;
use crate::auth::hash_secret;
use crate::error::{ApiError, ApiResult};
use conclave_proto::{InviteAnswer, SecretText};
use webauthn_rs::prelude::PublicKeyCredential;

use super::ADMIN_ROLE;
use super::proof::{Proof, step_up};
use crate::AppState;
use crate::auth::Signed;
use crate::events::{AuditAction, AuditEvent};
use crate::store::Store;

/// A bot's password: 32 random base64url characters (192 bits).
pub(crate) fn new_bot_password() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Issues an invite code valid for `ttl` seconds: the code to hand out,
/// its id and when it expires. `issued(id)` is its audit entry, stored in
/// the same transaction as the invite.
pub(crate) async fn issue_invite(
    store: &Store,
    created_by: &str,
    ttl: u64,
    issued: impl FnOnce(&str) -> conclave_audit::Event,
) -> ApiResult<(Zeroizing<String>, String, u64)> {
    let code = INVITE_CODE.generate();
    let (id, whole) = INVITE_CODE
        .parse(&code)
        .ok_or_else(|| ApiError::Internal("generated invite code does not parse".into()))?;
    let expires_at = store.clock().unix_now() + ttl;
    let code_hash = hash_secret(whole).await?;
    store
        .create_invite(&id, &code_hash, created_by, expires_at, issued(&id))
        .await?;
    Ok((code, id, expires_at))
}

/// Longest an invite may stay open.
const MAX_INVITE_TTL: u64 = 30 * 86_400;

type InviteBody = conclave_proto::InviteBody<Box<PublicKeyCredential>>;

/// Issues an invite for an admin, after a fresh proof: a stolen admin
/// device alone mints none.
pub(crate) async fn create_invite(state: &AppState, signed: Signed) -> ApiResult<InviteAnswer> {
    let user = signed.username()?.to_owned();
    if !state
        .store
        .roles(&user)
        .await?
        .iter()
        .any(|r| r == ADMIN_ROLE)
    {
        return Err(ApiError::Forbidden("only admins issue invites"));
    }
    let body: InviteBody = if signed.body.is_empty() {
        InviteBody {
            expires_in_secs: None,
            proof: Proof::default(),
        }
    } else {
        signed.json()?
    };
    let ttl = body.expires_in_secs.unwrap_or(7 * 86_400);
    if !(60..=MAX_INVITE_TTL).contains(&ttl) {
        return Err(ApiError::BadRequest(format!(
            "expires_in_secs must be 60 to {MAX_INVITE_TTL}"
        )));
    }
    // An invite lets someone in: a stolen admin device alone must not mint them.
    step_up(state, &signed, body.proof, AuditAction::InviteCreated).await?;
    let (code, _, expires_at) = issue_invite(&state.store, &user, ttl, |invite_id| {
        state.audit.entry(
            AuditEvent::success(AuditAction::InviteCreated, &user)
                .device(signed.device_id)
                .target(format!("invite:{invite_id}")),
        )
    })
    .await?;
    Ok(InviteAnswer {
        expires_at,
        invite_code: SecretText::from(code),
    })
}
