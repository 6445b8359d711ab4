//! A fresh proof that the account holder is present: the password and the
//! second factor (when the account has one), or a registered passkey. Every
//! attempt is counted before it is checked, and every failure enters the
//! audit log before it is answered.

use std::net::IpAddr;

use webauthn_rs::prelude::{Passkey, PasskeyAuthentication, PublicKeyCredential};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::ISSUER;
use super::challenges::take_challenge;
use super::factors::{self, RECOVERY_CODE};
use super::passwords::{StoredPassword, finish_login, peek_recovery_code, stored_password};
use super::recovery::recovery_window_start;
use crate::AppState;
use crate::auth::Signed;
use crate::auth::{verify_password, verify_secret};
use crate::error::{ApiError, ApiResult};
use crate::events::{AuditAction, AuditEvent};
use crate::limits::{self, ip_key};
use crate::store::Store;

/// A proof as the relay receives it: a passkey assertion travels boxed.
pub(crate) type Proof = conclave_proto::Proof<Box<PublicKeyCredential>>;
/// One second factor, as the relay receives it.
pub(crate) type SecondFactor = conclave_proto::SecondFactor<Box<PublicKeyCredential>>;

pub(crate) fn totp_context(username: &str) -> String {
    format!("conclave totp secret v1\0{username}")
}

/// Which second factor a proof used, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Factor {
    Totp,
    Webauthn,
    RecoveryCode,
}

impl Factor {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Factor::Totp => "totp",
            Factor::Webauthn => "webauthn",
            Factor::RecoveryCode => "recovery_code",
        }
    }
}

/// The kinds of second factor an account can present now.
pub(crate) async fn available_factors(store: &Store, user: &str) -> ApiResult<Vec<&'static str>> {
    let mut factors = Vec::new();
    if store.totp(user).await?.is_some_and(|t| t.confirmed) {
        factors.push("totp");
    }
    if !store.webauthn_credentials(user).await?.is_empty() {
        factors.push("webauthn");
    }
    if !factors.is_empty() && store.recovery_codes_left(user).await? > 0 {
        factors.push("recovery_code");
    }
    Ok(factors)
}

/// Who presents a proof: it decides whose password budget a guess spends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Presenter<'a> {
    /// A device the account already has (signed in, or logging in again):
    /// it has a budget of its own that failures elsewhere never touch.
    KnownDevice(&'a str),
    /// A device the account does not have yet: the account's shared budget,
    /// which slows down instead of locking.
    NewDevice,
}

/// Checks a fresh proof that the account holder is present: the password and
/// the second factor (if the account has one), or a registered passkey for a
/// passwordless account. Every attempt is counted before it is checked
/// (see `limits`), every failure enters the audit log before it is answered
/// (or the answer is 503), and a proof with nothing in it counts nothing.
/// Returns the second factor used (`None` only for an account that has none).
pub(crate) async fn verify_proof(
    state: &AppState,
    user: &str,
    proof: Proof,
    ip: Option<IpAddr>,
    action: AuditAction,
    presenter: Presenter<'_>,
    signer: &str,
) -> ApiResult<Option<Factor>> {
    let store = &state.store;
    if proof.is_empty() {
        return Err(ApiError::StepUpRequired);
    }
    if proof.opaque.is_some() && proof.password.is_some() {
        return Err(ApiError::BadRequest(
            "a proof carries the password one way: opaque, or password for an account from before OPAQUE".into(),
        ));
    }
    // An OPAQUE proof was counted when its login started.
    if proof.opaque.is_none() {
        limits::count(state, limits::LOGIN_PER_IP, &ip_key(ip)).await?;
    }
    let failed = |reason| AuditEvent::failure(action, user, reason).from_ip(ip);
    if store.account_locked(user).await? {
        state.audit.record(failed("account_locked")).await?;
        return Err(ApiError::AccountLocked);
    }
    if let Some(opaque) = proof.opaque {
        let finished = finish_login(state, user, signer, opaque, failed("bad_password")).await?;
        let Some((factor, id)) = finished.factor else {
            return second_factor_after_password(
                state,
                user,
                proof.second_factor,
                ip,
                action,
                presenter,
            )
            .await;
        };
        if proof.second_factor.is_some() {
            return Err(ApiError::BadRequest(
                "a proof carries one second factor: this one came with the password's start".into(),
            ));
        }
        match factor {
            Factor::RecoveryCode => {
                // Checked at the start, spent only now that the password held.
                if !store.spend_recovery_code(user, &id).await? {
                    return Err(ApiError::SecondFactorInvalid("wrong or used recovery code"));
                }
            }
            Factor::Webauthn => refuse_a_passkey_too_new(state, user, &id, action, ip).await?,
            Factor::Totp => {}
        }
        return factor_passed(state, user, factor, ip, presenter).await;
    }
    // A passkey cannot be guessed, so it is checked first, and a proof that
    // carries a good one is not slowed down by guesses made elsewhere.
    if matches!(proof.second_factor, Some(SecondFactor::Webauthn { .. })) {
        let Some(second_factor) = proof.second_factor else {
            return Err(ApiError::StepUpRequired);
        };
        limits::count(state, limits::SECOND_FACTOR_PER_IP, &ip_key(ip)).await?;
        let passed = match check_factor(state, user, second_factor).await? {
            Ok(passed) => passed,
            Err(reason) => return Err(factor_refused(state, user, reason, ip).await),
        };
        if let Some(passkey) = &passed.passkey {
            refuse_a_passkey_too_new(state, user, passkey, action, ip).await?;
        }
        match proof.password {
            Some(password) => {
                limits::reserve(state, limits::PASSWORD_FAILURES_WITH_PASSKEY, user).await?;
                let stored = legacy_hash(state, user).await?;
                if !verify_password(password, stored).await? {
                    state.audit.record(failed("bad_password")).await?;
                    return Err(ApiError::BadCredentials);
                }
                limits::clear(store, limits::PASSWORD_FAILURES_WITH_PASSKEY, user).await?;
            }
            None if store.passwordless(user).await? => {}
            None => {
                state.audit.record(failed("no_password")).await?;
                return Err(ApiError::BadCredentials);
            }
        }
        return factor_passed(state, user, Factor::Webauthn, ip, presenter).await;
    }
    if matches!(presenter, Presenter::NewDevice)
        && matches!(proof.second_factor, Some(SecondFactor::RecoveryCode { .. }))
    {
        return verify_with_recovery_code(state, user, proof, ip, action).await;
    }
    let Some(password) = proof.password else {
        // A TOTP or recovery code alone proves nothing.
        state.audit.record(failed("no_password")).await?;
        return Err(ApiError::BadCredentials);
    };
    let stored = legacy_hash(state, user).await?;
    let Some(stored) = stored else {
        // No such account: the same argon2 work, and one aggregated count in
        // the log per window instead of a leaf per guess (see
        // `Store::tally_unknown_login`).
        let _ = verify_password(password, None).await?;
        store.tally_unknown_login().await?;
        return Err(ApiError::BadCredentials);
    };
    match presenter {
        Presenter::KnownDevice(device) => {
            let key = format!("{user}:{device}");
            limits::reserve_backoff(state, limits::KNOWN_DEVICE_BACKOFF, &key).await?;
        }
        Presenter::NewDevice => {
            limits::reserve_backoff(state, limits::NEW_DEVICE_BACKOFF, user).await?;
        }
    }
    if !verify_password(password, Some(stored)).await? {
        match presenter {
            Presenter::KnownDevice(device) => {
                wrong_password_from_known_device(state, user, device, failed("bad_password"))
                    .await?;
            }
            Presenter::NewDevice => state.audit.record(failed("bad_password")).await?,
        }
        return Err(ApiError::BadCredentials);
    }
    clear_password_budget(state, user, presenter).await?;
    second_factor_after_password(state, user, proof.second_factor, ip, action, presenter).await
}

/// The password held: the second factor the account needs, if it has one.
async fn second_factor_after_password(
    state: &AppState,
    user: &str,
    second_factor: Option<SecondFactor>,
    ip: Option<IpAddr>,
    action: AuditAction,
    presenter: Presenter<'_>,
) -> ApiResult<Option<Factor>> {
    let store = &state.store;
    let failed = |reason| AuditEvent::failure(action, user, reason).from_ip(ip);
    let Some(second_factor) = second_factor else {
        let factors = available_factors(store, user).await?;
        if factors.is_empty() {
            return Ok(None);
        }
        state.audit.record(failed("second_factor_missing")).await?;
        return Err(ApiError::SecondFactorRequired(factors));
    };
    limits::reserve(state, limits::SECOND_FACTOR_FAILURES, user).await?;
    limits::count(state, limits::SECOND_FACTOR_PER_IP, &ip_key(ip)).await?;
    match check_factor(state, user, second_factor).await? {
        Ok(passed) => {
            limits::clear(store, limits::SECOND_FACTOR_FAILURES, user).await?;
            factor_passed(state, user, passed.factor, ip, presenter).await
        }
        Err(reason) => Err(factor_refused(state, user, reason, ip).await),
    }
}

/// A wrong password from a device the account has: logged, and once that
/// device's free tries are spent, announced to the account's other devices
/// (once a day per device) in the same transaction: a stolen device key
/// guessing the password shows up on the owner's phone.
pub(crate) async fn wrong_password_from_known_device(
    state: &AppState,
    user: &str,
    device: &str,
    failure: AuditEvent,
) -> ApiResult<()> {
    let backoff = limits::KNOWN_DEVICE_BACKOFF;
    let bucket = format!("{}:{user}:{device}", backoff.name);
    let tries = state.store.peek_bucket(&bucket, backoff.window).await?.hits;
    if tries < backoff.free {
        return state.audit.record(failure).await;
    }
    let since = state.config.clock.unix_now().saturating_sub(backoff.window);
    state
        .store
        .announce_once(
            user,
            "password_guesses",
            &format!("{tries} password tries"),
            device,
            since,
            state.audit.entry(failure),
        )
        .await?;
    Ok(())
}

/// A new device's proof with a recovery code: the owner taking the account
/// back, maybe while someone else's guesses have built up the new-device
/// backoff. A recovery code cannot be guessed, so it is checked first
/// (without being spent), and once it holds, the password is checked on a
/// budget of its own instead of the backoff. The code is spent only when
/// the password is right too.
async fn verify_with_recovery_code(
    state: &AppState,
    user: &str,
    proof: Proof,
    ip: Option<IpAddr>,
    action: AuditAction,
) -> ApiResult<Option<Factor>> {
    let store = &state.store;
    let failed = |reason| AuditEvent::failure(action, user, reason).from_ip(ip);
    let (Some(password), Some(SecondFactor::RecoveryCode { code })) =
        (proof.password, proof.second_factor)
    else {
        state.audit.record(failed("no_password")).await?;
        return Err(ApiError::BadCredentials);
    };
    let Some(stored_password) = legacy_hash(state, user).await? else {
        let _ = verify_password(password, None).await?;
        store.tally_unknown_login().await?;
        return Err(ApiError::BadCredentials);
    };
    limits::count(state, limits::SECOND_FACTOR_PER_IP, &ip_key(ip)).await?;
    let wrong_code = "wrong or used recovery code";
    let Some(code_id) = peek_recovery_code(store, user, &code).await? else {
        state
            .audit
            .record(
                AuditEvent::failure(AuditAction::RecoveryCodeUsed, user, wrong_code).from_ip(ip),
            )
            .await?;
        return Err(ApiError::SecondFactorInvalid(wrong_code));
    };
    limits::reserve(state, limits::PASSWORD_FAILURES_WITH_RECOVERY_CODE, user).await?;
    if !verify_password(password, Some(stored_password)).await? {
        state.audit.record(failed("bad_password")).await?;
        return Err(ApiError::BadCredentials);
    }
    limits::clear(store, limits::PASSWORD_FAILURES_WITH_RECOVERY_CODE, user).await?;
    // Spent only now, and only once even if two logins raced with it.
    if !store.spend_recovery_code(user, &code_id).await? {
        return Err(ApiError::SecondFactorInvalid(wrong_code));
    }
    factor_passed(state, user, Factor::RecoveryCode, ip, Presenter::NewDevice).await
}

/// Changes that take sign-in away from what the account has: a device, a
/// factor, the recovery codes or the password.
fn takes_sign_in_away(action: AuditAction) -> bool {
    matches!(
        action,
        AuditAction::DeviceRevoked
            | AuditAction::SecondFactorRemoved
            | AuditAction::RecoveryCodesIssued
            | AuditAction::PasswordChanged
    )
}

/// A passkey added inside the recovery window may be a thief's (added with
/// a phished password and code): it signs in, but it does not vouch for
/// taking sign-in away from the factors the account had before it. Those
/// changes need the password and an older factor, so the owner's recovery
/// codes and factors outlive a passkey planted in their account.
async fn refuse_a_passkey_too_new(
    state: &AppState,
    user: &str,
    passkey: &str,
    action: AuditAction,
    ip: Option<IpAddr>,
) -> ApiResult<()> {
    if !takes_sign_in_away(action) {
        return Ok(());
    }
    let ages = state.store.factor_ages(user).await?;
    let Some(added) = ages
        .passkeys
        .iter()
        .find(|(id, _)| id == passkey)
        .map(|(_, added)| *added)
    else {
        return Ok(());
    };
    if added < recovery_window_start(state) {
        return Ok(());
    }
    let older_factor = ages.totp.is_some_and(|totp| totp <= added)
        || ages
            .passkeys
            .iter()
            .any(|(id, other)| id != passkey && *other <= added);
    if !older_factor {
        return Ok(());
    }
    state
        .audit
        .record(AuditEvent::failure(action, user, "passkey_too_new").from_ip(ip))
        .await?;
    Err(ApiError::FactorTooNew(state.config.recovery_window_days))
}

/// The argon2id hash of an account whose password predates OPAQUE (`None`
/// for an account that does not exist); a 400 for an account whose
/// password is an OPAQUE record, or when this relay no longer takes the
/// old way.
async fn legacy_hash(state: &AppState, user: &str) -> ApiResult<Option<String>> {
    match stored_password(&state.store, user).await? {
        None => Ok(None),
        Some(StoredPassword::Legacy(hash)) if state.config.legacy_passwords => Ok(Some(hash)),
        Some(StoredPassword::Legacy(_)) => Err(ApiError::BadRequest(
            "this account's password predates OPAQUE and this relay no longer accepts it; \
             ask the workspace's administrator for a recovery invite"
                .into(),
        )),
        Some(StoredPassword::Opaque(_)) => Err(ApiError::BadRequest(
            "this account's password is proved with OPAQUE (start with POST /v1/password/login); \
             the password itself is never taken"
                .into(),
        )),
    }
}

/// The password was right: the guesses counted against it start over.
pub(crate) async fn clear_password_budget(
    state: &AppState,
    user: &str,
    presenter: Presenter<'_>,
) -> ApiResult<()> {
    match presenter {
        Presenter::KnownDevice(device) => {
            let key = format!("{user}:{device}");
            limits::clear_backoff(&state.store, limits::KNOWN_DEVICE_BACKOFF, &key).await
        }
        Presenter::NewDevice => {
            limits::clear_backoff(&state.store, limits::NEW_DEVICE_BACKOFF, user).await
        }
    }
}

/// A second factor that did not verify: logged (or, if the log cannot take
/// it, the request fails with 503 instead), then refused.
pub(crate) async fn factor_refused(
    state: &AppState,
    user: &str,
    reason: &'static str,
    ip: Option<IpAddr>,
) -> ApiError {
    let failure = AuditEvent::failure(AuditAction::SecondFactorUsed, user, reason).from_ip(ip);
    match state.audit.record(failure).await {
        Ok(()) => ApiError::SecondFactorInvalid(reason),
        Err(unlogged) => unlogged,
    }
}

/// A second factor passed: recorded, and the password budget starts over.
pub(crate) async fn factor_passed(
    state: &AppState,
    user: &str,
    factor: Factor,
    ip: Option<IpAddr>,
    presenter: Presenter<'_>,
) -> ApiResult<Option<Factor>> {
    clear_password_budget(state, user, presenter).await?;
    let action = match factor {
        Factor::RecoveryCode => AuditAction::RecoveryCodeUsed,
        _ => AuditAction::SecondFactorUsed,
    };
    state
        .audit
        .record(
            AuditEvent::success(action, user)
                .target(factor.as_str())
                .from_ip(ip),
        )
        .await?;
    Ok(Some(factor))
}

/// A second factor that passed: which kind, and for a passkey its
/// credential id.
#[derive(Debug)]
pub(crate) struct Passed {
    factor: Factor,
    passkey: Option<String>,
}

impl Passed {
    /// The passkey's credential id, if the factor was a passkey.
    pub(crate) fn passkey(&self) -> Option<&str> {
        self.passkey.as_deref()
    }
}

impl From<Factor> for Passed {
    fn from(factor: Factor) -> Self {
        Passed {
            factor,
            passkey: None,
        }
    }
}

/// Checks one second factor. The inner error is the reason it failed.
pub(crate) async fn check_factor(
    state: &AppState,
    user: &str,
    factor: SecondFactor,
) -> ApiResult<Result<Passed, &'static str>> {
    let store = &state.store;
    match factor {
        SecondFactor::Totp { code } => {
            let Some(row) = store.totp(user).await?.filter(|t| t.confirmed) else {
                return Ok(Err("no TOTP is enrolled"));
            };
            let secret = state
                .server_key
                .open(&totp_context(user), &row.sealed_secret)?;
            let totp = factors::totp(&secret, ISSUER, user)
                .map_err(|e| ApiError::Internal(format!("totp: {e}")))?;
            let Some(step) = factors::totp_step(&totp, code.expose(), store.clock().unix_now())
            else {
                return Ok(Err("wrong or expired TOTP code"));
            };
            // RFC 6238 §5.2: a code is accepted once. The store's compare-and-set
            // refuses this step, or any before it, if it was spent already.
            if step <= row.last_step || !store.spend_totp_step(user, step).await? {
                return Ok(Err("TOTP code already used"));
            }
            Ok(Ok(Factor::Totp.into()))
        }
        SecondFactor::RecoveryCode { code } => {
            let Some((code_id, whole)) = RECOVERY_CODE.parse(code.expose()) else {
                return Ok(Err("malformed recovery code"));
            };
            // An unknown id is checked against a dummy hash: same time, same answer.
            let stored = store.unused_recovery_code(user, &code_id).await?;
            if !verify_secret(whole, stored).await? {
                return Ok(Err("wrong or used recovery code"));
            }
            if !store.spend_recovery_code(user, &code_id).await? {
                return Ok(Err("wrong or used recovery code"));
            }
            Ok(Ok(Factor::RecoveryCode.into()))
        }
        SecondFactor::Webauthn {
            challenge_id,
            credential,
        } => {
            let Some(challenge) =
                take_challenge(store, &challenge_id, user, "authenticate").await?
            else {
                return Ok(Err("unknown, used or expired WebAuthn challenge"));
            };
            let ceremony: PasskeyAuthentication = serde_json::from_str(&challenge.state)
                .map_err(|e| ApiError::Internal(format!("challenge state: {e}")))?;
            let Ok(result) = state
                .relying_party
                .webauthn
                .finish_passkey_authentication(&credential, &ceremony)
            else {
                return Ok(Err("WebAuthn assertion did not verify"));
            };
            // Keep the signature counter current, so a cloned authenticator shows.
            for stored in store.webauthn_credentials(user).await? {
                let mut passkey: Passkey = serde_json::from_str(&stored.passkey)
                    .map_err(|e| ApiError::Internal(format!("stored passkey: {e}")))?;
                if passkey.update_credential(&result).is_some() {
                    let json = serde_json::to_string(&passkey)
                        .map_err(|e| ApiError::Internal(e.to_string()))?;
                    store
                        .update_webauthn_credential(&stored.credential_id, &json)
                        .await?;
                }
            }
            Ok(Ok(Passed {
                factor: Factor::Webauthn,
                passkey: Some(URL_SAFE_NO_PAD.encode(result.cred_id())),
            }))
        }
    }
}

/// A proof in a body that may be empty (then it proves nothing).
pub(crate) fn proof_in(signed: &Signed) -> ApiResult<Proof> {
    if signed.body.is_empty() {
        Ok(Proof::default())
    } else {
        signed.json()
    }
}

/// [`step_up`] with the proof that makes up the request's body (an empty
/// body proves nothing): the routes whose whole body is the proof.
pub(crate) async fn step_up_with_body(
    state: &AppState,
    signed: &Signed,
    action: AuditAction,
) -> ApiResult<Option<Factor>> {
    step_up(state, signed, proof_in(signed)?, action).await
}

/// Checks the step-up proof a signed-in device gives for a change to who
/// can sign in: the device's signature is not enough on its own.
pub(crate) async fn step_up(
    state: &AppState,
    signed: &Signed,
    proof: Proof,
    action: AuditAction,
) -> ApiResult<Option<Factor>> {
    let user = signed.username()?;
    let device = signed.device_id.to_string();
    verify_proof(
        state,
        user,
        proof,
        signed.ip,
        action,
        Presenter::KnownDevice(&device),
        &device,
    )
    .await
}
