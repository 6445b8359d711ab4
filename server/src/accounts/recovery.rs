//! Recovery: by the password and an unused recovery code (every other
//! device revoked, factors added in the last days removed), and by a host
//! administrator's one-time recovery invite for a locked account.

use std::net::IpAddr;

use conclave_proto::{RecoveryAnswer, SecretText};
use zeroize::Zeroizing;

use super::changes::apply_change;
use super::factors::INVITE_CODE;
use super::passwords::verifier_from_upload;
use super::proof::{Factor, Proof, SecondFactor, proof_in, step_up};
use super::recovery_codes::{new_recovery_code_set, shown};
use crate::AppState;
use crate::auth::{Signed, verify_secret};
use crate::error::{ApiError, ApiResult};
use crate::events::{AuditAction, AuditEvent};
use crate::limits::{self, ip_key};
use crate::store::{AccountChange, ChangeOutcome};

/// Redeems a host administrator's recovery invite for a locked account:
/// the account gets `new_password` and is unlocked, in one transaction with
/// its log entry. Wrong codes are slowed down like wrong passwords.
pub(crate) async fn redeem_recovery_invite(
    state: &AppState,
    user: &str,
    invite: SecretText,
    new_password_record: &SecretText,
    ip: Option<IpAddr>,
) -> ApiResult<()> {
    // A recovery invite cannot be guessed: only the per-address limit
    // applies, never the account's new-device backoff, which anyone's
    // wrong passwords build up.
    limits::count(state, limits::LOGIN_PER_IP, &ip_key(ip)).await?;
    let id = checked_recovery_invite(state, user, &invite, ip).await?;
    let hash = verifier_from_upload(state, new_password_record).await?;
    let unlocked = apply_change(
        state,
        user,
        AccountChange::Unlocked {
            hash: &hash,
            invite_id: &id,
        },
        None,
        |_| {
            vec![
                AuditEvent::success(AuditAction::AccountUnlocked, user)
                    .target(format!("invite:{id}"))
                    .from_ip(ip),
            ]
        },
    )
    .await?;
    if !unlocked.applied {
        return Err(ApiError::InviteInvalid);
    }
    limits::clear_backoff(&state.store, limits::NEW_DEVICE_BACKOFF, user).await?;
    Ok(())
}

/// The id of `user`'s valid, unspent recovery invite `invite`, checked and
/// not spent; a wrong one is logged and refused.
pub(crate) async fn checked_recovery_invite(
    state: &AppState,
    user: &str,
    invite: &SecretText,
    ip: Option<IpAddr>,
) -> ApiResult<String> {
    let (id, whole) = INVITE_CODE
        .parse(invite.expose())
        .ok_or(ApiError::InviteInvalid)?;
    let stored = state.store.open_recovery_invite(&id, user).await?;
    if !verify_secret(whole, stored).await? {
        state
            .audit
            .record(
                AuditEvent::failure(AuditAction::AccountUnlocked, user, "bad_recovery_invite")
                    .from_ip(ip),
            )
            .await?;
        return Err(ApiError::InviteInvalid);
    }
    Ok(id)
}

/// How far back a recovery reaches: factors added within this window are
/// the ones a thief could have added, and go.
pub(crate) fn recovery_window_start(state: &AppState) -> u64 {
    state
        .config
        .clock
        .unix_now()
        .saturating_sub(state.config.recovery_window_days.saturating_mul(86_400))
}

/// The owner takes the account back: every other device is revoked, every
/// factor added in the recovery window removed, passwordless sign-in turned
/// off, and a new set of recovery codes issued. Needs a proof made with the
/// password and a recovery code, which a thief holding a device (or a
/// passkey they added) does not have.
pub(crate) async fn recover_account(
    state: &AppState,
    user: &str,
    device: &str,
    ip: Option<IpAddr>,
) -> ApiResult<(ChangeOutcome, Vec<Zeroizing<String>>)> {
    let (codes, rows) = new_recovery_code_set().await?;
    let outcome = apply_change(
        state,
        user,
        AccountChange::Recovered {
            keep_device: device,
            since: recovery_window_start(state),
            codes: &rows,
        },
        Some(device),
        |outcome| {
            let mut events = vec![
                AuditEvent::success(AuditAction::AccountRecovered, user)
                    .device(device)
                    .detail("devices_revoked", outcome.devices_ended.len())
                    .detail("factors_removed", outcome.factors_removed.len())
                    .from_ip(ip),
            ];
            for revoked in &outcome.devices_ended {
                events.push(
                    AuditEvent::success(AuditAction::DeviceRevoked, user)
                        .device(device)
                        .target(format!("device:{revoked}")),
                );
            }
            for factor in &outcome.factors_removed {
                events.push(
                    AuditEvent::success(AuditAction::SecondFactorRemoved, user)
                        .device(device)
                        .target(factor),
                );
            }
            events.push(AuditEvent::success(AuditAction::RecoveryCodesIssued, user).device(device));
            events
        },
    )
    .await?;
    Ok((outcome, codes))
}

pub(crate) fn recovery_answer(
    outcome: ChangeOutcome,
    codes: Vec<Zeroizing<String>>,
) -> RecoveryAnswer {
    RecoveryAnswer {
        devices_revoked: outcome.devices_ended,
        factors_removed: outcome.factors_removed,
        recovery_codes: shown(codes),
    }
}

/// `POST /v1/account/recover`: the owner, proving the password and an
/// unused recovery code from a device just signed in, takes the account back.
pub(crate) async fn recover(state: &AppState, signed: Signed) -> ApiResult<RecoveryAnswer> {
    let user = signed.username()?.to_owned();
    let device = signed.device_id.to_string();
    let proof = proof_in(&signed)?;
    recovery_proof(&proof)?;
    if step_up(state, &signed, proof, AuditAction::AccountRecovered).await?
        != Some(Factor::RecoveryCode)
    {
        return Err(ApiError::BadRequest(
            "recovering an account needs the password and an unused recovery code".into(),
        ));
    }
    let (outcome, codes) = recover_account(state, &user, &device, signed.ip).await?;
    Ok(recovery_answer(outcome, codes))
}

/// Only the password with a recovery code recovers an account. The code
/// comes in the proof, or (with an OPAQUE proof) with the password's start:
/// which factor passed is checked again once the proof is verified.
pub(crate) fn recovery_proof(proof: &Proof) -> ApiResult<()> {
    let code_in_proof = matches!(proof.second_factor, Some(SecondFactor::RecoveryCode { .. }));
    let code_at_start = proof.opaque.is_some() && proof.second_factor.is_none();
    if !proof.has_password() || !(code_in_proof || code_at_start) {
        return Err(ApiError::BadRequest(
            "recovering an account needs the password and an unused recovery code".into(),
        ));
    }
    Ok(())
}
