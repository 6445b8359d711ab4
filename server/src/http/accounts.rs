//! Accounts: registration, login with a second factor, enrollment of TOTP
//! and passkeys, recovery codes, devices and their revocation, password
//! changes and invites.
//!
//! Every sensitive change (revoking another device, a new password, new
//! recovery codes, removing TOTP) asks for the same proof as a login: the
//! password and, if the account has one, a second factor. A stolen device
//! alone can't lock its owner out.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use conclave_proto::{
    AccountStatus, DEFAULT_MAX_GROUP_DM, DeviceInfo, DeviceList, FactorRemovedAnswer, InviteAnswer,
    LoginAnswer, PasskeyAddedAnswer, PasskeyInfo, PasswordChangeAnswer, RecoveryAnswer,
    RecoveryCodesAnswer, RegisterAnswer, RegisterBody, RevokedAnswer, SecretText, TotpConfirmBody,
    TotpEnrollmentAnswer, WebauthnChallenge, WebauthnChallengeBody, routes,
};
use webauthn_rs::prelude::{
    CreationChallengeResponse, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, RequestChallengeResponse,
};
use zeroize::Zeroizing;

use crate::AppState;
use crate::accounts::challenges::{put_challenge, take_challenge};
use crate::accounts::changes::apply_change;
use crate::accounts::factors::{self, INVITE_CODE};
use crate::accounts::invites::issue_invite;
use crate::accounts::proof::{Factor, Presenter, Proof, totp_context, verify_proof};
use crate::accounts::recovery::{recover_account, recovery_answer, recovery_proof};
use crate::accounts::recovery_codes::{new_recovery_code_set, shown};
use crate::accounts::{ADMIN_ROLE, ISSUER};
use crate::accounts::{check_new_password, username};
use crate::auth::{Signed, client_ip, hash_password, parse_json, read_body, verify_secret};
use crate::error::{ApiError, ApiResult};
use crate::events::{AuditAction, AuditEvent};
use crate::limits::{self, ip_key};
use crate::store::{AccountChange, CredentialRow};

/// Longest an invite may stay open.
const MAX_INVITE_TTL: u64 = 30 * 86_400;

/// The account routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::ACCOUNTS, post(register))
        .route(routes::DEVICES, post(login).get(list_devices))
        .route(routes::DEVICE_REVOKE, post(revoke_device))
        .route(routes::WEBAUTHN_CHALLENGE, post(webauthn_challenge))
        .route(routes::ACCOUNT, get(account_status))
        .route(routes::ACCOUNT_PASSWORD, post(change_password))
        .route(routes::ACCOUNT_TOTP, post(begin_totp).delete(remove_totp))
        .route(routes::ACCOUNT_TOTP_CONFIRM, post(confirm_totp))
        .route(routes::ACCOUNT_WEBAUTHN_REGISTER, post(begin_webauthn))
        .route(
            routes::ACCOUNT_WEBAUTHN_REGISTER_FINISH,
            post(finish_webauthn),
        )
        .route(
            routes::ACCOUNT_PASSKEY,
            axum::routing::delete(remove_webauthn),
        )
        .route(routes::ACCOUNT_RECOVERY_CODES, post(new_recovery_codes))
        .route(routes::ACCOUNT_RECOVER, post(recover))
        .route(routes::ADMIN_INVITES, post(create_invite))
}

// The protocol's bodies, with the WebAuthn objects as webauthn-rs reads
// them (boxed: an assertion is far larger than a code).
type PasswordChangeBody = conclave_proto::PasswordChangeBody<Box<PublicKeyCredential>>;
type InviteBody = conclave_proto::InviteBody<Box<PublicKeyCredential>>;
type PasskeyRegistrationBody =
    conclave_proto::PasskeyRegistrationBody<Box<RegisterPublicKeyCredential>>;

// ----- proofs: password plus second factor ----------------------------------

// ----- registration and login -----------------------------------------------

async fn register(
    State(state): State<AppState>,
    request: Request,
) -> ApiResult<Json<RegisterAnswer>> {
    let ip = client_ip(request.extensions());
    limits::count(&state, limits::REGISTER_PER_IP, &ip_key(ip)).await?;
    let body: RegisterBody = unsigned_json(request, &state).await?;
    let name = username(&body.username)?;
    check_new_password(&body.password)?;
    let invite = match (state.config.open_registration, &body.invite_code) {
        (true, _) => None,
        (false, None) => return Err(ApiError::InviteRequired),
        (false, Some(code)) => {
            let (id, whole) = INVITE_CODE
                .parse(code.expose())
                .ok_or(ApiError::InviteInvalid)?;
            let stored = state.store.open_invite(&id).await?;
            if !verify_secret(whole, stored).await? {
                return Err(ApiError::InviteInvalid);
            }
            Some(id)
        }
    };
    let hash = hash_password(body.password).await?;
    match state
        .store
        .create_account_with_invite(name.as_str(), &hash, invite.as_deref())
        .await?
    {
        Ok(()) => {}
        Err("invite") => return Err(ApiError::InviteInvalid),
        Err(_) => return Err(ApiError::Conflict("username")),
    }
    let mut event = AuditEvent::success(AuditAction::AccountCreated, name.as_str()).from_ip(ip);
    if let Some(id) = invite {
        event = event.target(format!("invite:{id}"));
    }
    state.audit.record(event).await?;
    Ok(Json(RegisterAnswer {
        username: name.as_str().to_owned(),
    }))
}

/// The JSON body of an unsigned request, read as `Signed::json` reads a
/// signed one.
async fn login(State(state): State<AppState>, signed: Signed) -> ApiResult<Json<LoginAnswer>> {
    Ok(Json(crate::accounts::login::login(&state, signed).await?))
}

async fn unsigned_json<T: serde::de::DeserializeOwned>(
    request: Request,
    state: &AppState,
) -> ApiResult<T> {
    parse_json(&read_body(request.into_body(), state.config.max_body_bytes).await?)
}

/// Starts a WebAuthn authentication for `username`: for a login, or for a
/// sensitive change by a device that is already signed in.
async fn webauthn_challenge(
    State(state): State<AppState>,
    request: Request,
) -> ApiResult<Json<WebauthnChallenge<RequestChallengeResponse>>> {
    let ip = client_ip(request.extensions());
    limits::count(&state, limits::LOGIN_PER_IP, &ip_key(ip)).await?;
    let body: WebauthnChallengeBody = unsigned_json(request, &state).await?;
    let name = username(&body.username)?;
    let mut passkeys = Vec::new();
    for stored in state.store.webauthn_credentials(name.as_str()).await? {
        let passkey: Passkey = serde_json::from_str(&stored.passkey)
            .map_err(|e| ApiError::Internal(format!("stored passkey: {e}")))?;
        passkeys.push(passkey);
    }
    if passkeys.is_empty() {
        return Err(ApiError::NotFound("passkey for this account"));
    }
    let (options, ceremony) = state
        .relying_party
        .webauthn
        .start_passkey_authentication(&passkeys)
        .map_err(|e| ApiError::Internal(format!("webauthn: {e}")))?;
    let challenge_id =
        put_challenge(&state.store, name.as_str(), "authenticate", &ceremony).await?;
    Ok(Json(ceremony_started(&state, challenge_id, options)))
}

/// The answer that starts a WebAuthn ceremony on the client.
fn ceremony_started<O>(state: &AppState, challenge_id: String, options: O) -> WebauthnChallenge<O> {
    WebauthnChallenge {
        challenge_id,
        options,
        origin: state.relying_party.origin.to_string(),
    }
}

// ----- the signed-in account --------------------------------------------------

async fn account_status(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<AccountStatus>> {
    let user = signed.username()?;
    let store = &state.store;
    let totp = store.totp(user).await?;
    let passkeys = store
        .webauthn_credentials(user)
        .await?
        .into_iter()
        .map(|c| PasskeyInfo {
            credential_id: c.credential_id,
            name: c.name,
        })
        .collect();
    let bot_owner = store.bot_owner(user).await?;
    // A bot signs in with its admin-issued 192-bit password alone: it runs
    // unattended, where a second factor would sit beside the password.
    let required = bot_owner.is_none()
        && store.setting("require_second_factor").await?.as_deref() == Some("true");
    let max_group_dm: u32 = store
        .setting("max_group_dm")
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MAX_GROUP_DM);
    Ok(Json(AccountStatus {
        bot_owner,
        max_group_dm,
        passwordless: store.passwordless(user).await?,
        recovery_codes_left: store.recovery_codes_left(user).await?,
        roles: store.roles(user).await?,
        second_factor_required: required,
        totp: totp.as_ref().is_some_and(|t| t.confirmed),
        totp_pending: totp.as_ref().is_some_and(|t| !t.confirmed),
        username: user.to_owned(),
        webauthn: passkeys,
    }))
}

/// A proof in a body that may be empty (then it proves nothing).
fn proof_in(signed: &Signed) -> ApiResult<Proof> {
    if signed.body.is_empty() {
        Ok(Proof::default())
    } else {
        signed.json()
    }
}

/// Checks the step-up proof a signed-in device gives for a change to who
/// can sign in: the device's signature is not enough on its own.
async fn step_up(
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
    )
    .await
}

async fn begin_totp(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<TotpEnrollmentAnswer>> {
    let user = signed.username()?;
    step_up(
        &state,
        &signed,
        proof_in(&signed)?,
        AuditAction::SecondFactorEnrolled,
    )
    .await?;
    let secret = factors::new_totp_secret();
    let sealed = state.server_key.seal(&totp_context(user), &secret)?;
    if !state.store.begin_totp(user, &sealed).await? {
        return Err(ApiError::Conflict("TOTP enrollment"));
    }
    let totp = factors::totp(&secret, ISSUER, user)
        .map_err(|e| ApiError::Internal(format!("totp: {e}")))?;
    let uri = totp
        .to_url()
        .map_err(|e| ApiError::Internal(format!("otpauth: {e}")))?;
    Ok(Json(TotpEnrollmentAnswer {
        otpauth_uri: SecretText::new(uri),
    }))
}

/// Confirms the enrollment `begin_totp` started (after its step-up), with
/// the first code from the app.
async fn confirm_totp(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<RecoveryCodesAnswer>> {
    let user = signed.username()?.to_owned();
    let device = signed.device_id.to_string();
    let body: TotpConfirmBody = signed.json()?;
    let store = &state.store;
    let Some(row) = store.totp(&user).await?.filter(|t| !t.confirmed) else {
        return Err(ApiError::BadRequest(
            "no TOTP enrollment is pending: start one first".into(),
        ));
    };
    limits::reserve(&state, limits::SECOND_FACTOR_FAILURES, &user).await?;
    let secret = state
        .server_key
        .open(&totp_context(&user), &row.sealed_secret)?;
    let totp = factors::totp(&secret, ISSUER, &user)
        .map_err(|e| ApiError::Internal(format!("totp: {e}")))?;
    let Some(step) = factors::totp_step(&totp, body.code.expose(), state.config.clock.unix_now())
    else {
        return Err(ApiError::SecondFactorInvalid("wrong or expired TOTP code"));
    };
    let (codes, rows) = first_recovery_codes(&state, &user).await?;
    let confirmed = apply_change(
        &state,
        &user,
        AccountChange::TotpConfirmed {
            step,
            first_codes: &rows,
        },
        Some(&device),
        |_| enrolled_events(&user, &device, "totp", !rows.is_empty()),
    )
    .await?;
    if !confirmed.applied {
        return Err(ApiError::SecondFactorInvalid("TOTP code already used"));
    }
    limits::clear(store, limits::SECOND_FACTOR_FAILURES, &user).await?;
    Ok(Json(RecoveryCodesAnswer {
        recovery_codes: shown(codes),
    }))
}

/// The audit entries of a factor enrollment.
fn enrolled_events(user: &str, device: &str, target: &str, with_codes: bool) -> Vec<AuditEvent> {
    let mut events = vec![
        AuditEvent::success(AuditAction::SecondFactorEnrolled, user)
            .device(device)
            .target(target),
    ];
    if with_codes {
        events.push(AuditEvent::success(AuditAction::RecoveryCodesIssued, user).device(device));
    }
    events
}

/// Recovery codes come with the first second factor: made here (stored
/// with the factor) if the account has none left.
async fn first_recovery_codes(
    state: &AppState,
    user: &str,
) -> ApiResult<(Vec<Zeroizing<String>>, Vec<(String, String)>)> {
    if state.store.recovery_codes_left(user).await? > 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    new_recovery_code_set().await
}

async fn remove_totp(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<FactorRemovedAnswer>> {
    let user = signed.username()?.to_owned();
    let device = signed.device_id.to_string();
    step_up(
        &state,
        &signed,
        proof_in(&signed)?,
        AuditAction::SecondFactorRemoved,
    )
    .await?;
    let removed = apply_change(
        &state,
        &user,
        AccountChange::TotpRemoved,
        Some(&device),
        |_| {
            vec![
                AuditEvent::success(AuditAction::SecondFactorRemoved, &user)
                    .device(&device)
                    .target("totp")
                    .from_ip(signed.ip),
            ]
        },
    )
    .await?;
    if !removed.applied {
        return Err(ApiError::NotFound("TOTP enrollment"));
    }
    Ok(Json(FactorRemovedAnswer {
        removed: "totp".into(),
    }))
}

/// The challenge purpose of a passkey registration by `device`: only the
/// device that passed the step-up may finish it.
fn registration_purpose(device: &str) -> String {
    format!("register:{device}")
}

async fn begin_webauthn(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<WebauthnChallenge<CreationChallengeResponse>>> {
    let user = signed.username()?;
    // The proof comes from factors the account has now: a passkey being
    // registered can never vouch for itself.
    step_up(
        &state,
        &signed,
        proof_in(&signed)?,
        AuditAction::SecondFactorEnrolled,
    )
    .await?;
    let existing = state.store.webauthn_credentials(user).await?;
    let mut exclude = Vec::with_capacity(existing.len());
    for stored in &existing {
        let passkey: Passkey = serde_json::from_str(&stored.passkey)
            .map_err(|e| ApiError::Internal(format!("stored passkey: {e}")))?;
        exclude.push(passkey.cred_id().clone());
    }
    let (options, ceremony) = state
        .relying_party
        .webauthn
        .start_passkey_registration(factors::user_handle(user), user, user, Some(exclude))
        .map_err(|e| ApiError::Internal(format!("webauthn: {e}")))?;
    let purpose = registration_purpose(&signed.device_id.to_string());
    let challenge_id = put_challenge(&state.store, user, &purpose, &ceremony).await?;
    Ok(Json(ceremony_started(&state, challenge_id, options)))
}

async fn finish_webauthn(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<PasskeyAddedAnswer>> {
    let user = signed.username()?.to_owned();
    let device = signed.device_id.to_string();
    let body: PasskeyRegistrationBody = signed.json()?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "name must be 1 to 64 printable characters".into(),
        ));
    }
    let purpose = registration_purpose(&device);
    let Some(challenge) = take_challenge(&state.store, &body.challenge_id, &user, &purpose).await?
    else {
        return Err(ApiError::SecondFactorInvalid(
            "unknown, used or expired WebAuthn registration; start it again with a fresh proof",
        ));
    };
    let ceremony: PasskeyRegistration = serde_json::from_str(&challenge.state)
        .map_err(|e| ApiError::Internal(format!("challenge state: {e}")))?;
    let passkey = state
        .relying_party
        .webauthn
        .finish_passkey_registration(&body.credential, &ceremony)
        .map_err(|_| ApiError::SecondFactorInvalid("WebAuthn registration did not verify"))?;
    let credential_id = URL_SAFE_NO_PAD.encode(passkey.cred_id());
    let row = CredentialRow {
        credential_id: credential_id.clone(),
        name: name.to_owned(),
        passkey: serde_json::to_string(&passkey).map_err(|e| ApiError::Internal(e.to_string()))?,
    };
    let (codes, rows) = first_recovery_codes(&state, &user).await?;
    let target = format!("webauthn:{credential_id}");
    let added = apply_change(
        &state,
        &user,
        AccountChange::PasskeyAdded {
            credential: &row,
            passwordless: body.passwordless,
            first_codes: &rows,
        },
        Some(&device),
        |_| {
            let mut events = enrolled_events(&user, &device, &target, !rows.is_empty());
            if body.passwordless {
                events.push(
                    AuditEvent::success(AuditAction::PolicyChanged, &user)
                        .device(&device)
                        .target("passwordless"),
                );
            }
            events
        },
    )
    .await?;
    if !added.applied {
        return Err(ApiError::Conflict("credential"));
    }
    Ok(Json(PasskeyAddedAnswer {
        credential_id,
        passwordless: body.passwordless,
        recovery_codes: shown(codes),
    }))
}

async fn remove_webauthn(
    State(state): State<AppState>,
    credential_id: Result<Path<String>, PathRejection>,
    signed: Signed,
) -> ApiResult<Json<FactorRemovedAnswer>> {
    let user = signed.username()?.to_owned();
    let device = signed.device_id.to_string();
    let Path(credential_id) = credential_id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    step_up(
        &state,
        &signed,
        proof_in(&signed)?,
        AuditAction::SecondFactorRemoved,
    )
    .await?;
    let target = format!("webauthn:{credential_id}");
    let removed = apply_change(
        &state,
        &user,
        AccountChange::PasskeyRemoved {
            credential_id: &credential_id,
        },
        Some(&device),
        |_| {
            vec![
                AuditEvent::success(AuditAction::SecondFactorRemoved, &user)
                    .device(&device)
                    .target(&target)
                    .from_ip(signed.ip),
            ]
        },
    )
    .await?;
    if !removed.applied {
        return Err(ApiError::NotFound("passkey"));
    }
    Ok(Json(FactorRemovedAnswer { removed: target }))
}

async fn new_recovery_codes(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<RecoveryCodesAnswer>> {
    let user = signed.username()?.to_owned();
    let device = signed.device_id.to_string();
    let factor = step_up(
        &state,
        &signed,
        proof_in(&signed)?,
        AuditAction::RecoveryCodesIssued,
    )
    .await?;
    if factor.is_none() {
        return Err(ApiError::EnrollmentRequired(
            "recovery codes back up a second factor",
        ));
    }
    let (codes, rows) = new_recovery_code_set().await?;
    apply_change(
        &state,
        &user,
        AccountChange::RecoveryCodesReplaced { codes: &rows },
        Some(&device),
        |_| vec![AuditEvent::success(AuditAction::RecoveryCodesIssued, &user).device(&device)],
    )
    .await?;
    Ok(Json(RecoveryCodesAnswer {
        recovery_codes: shown(codes),
    }))
}

async fn recover(State(state): State<AppState>, signed: Signed) -> ApiResult<Json<RecoveryAnswer>> {
    let user = signed.username()?.to_owned();
    let device = signed.device_id.to_string();
    let proof = proof_in(&signed)?;
    recovery_proof(&proof)?;
    step_up(&state, &signed, proof, AuditAction::AccountRecovered).await?;
    let (outcome, codes) = recover_account(&state, &user, &device, signed.ip).await?;
    Ok(Json(recovery_answer(outcome, codes)))
}

async fn change_password(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<PasswordChangeAnswer>> {
    let user = signed.username()?.to_owned();
    let this_device = signed.device_id.to_string();
    let body: PasswordChangeBody = signed.json()?;
    check_new_password(&body.new_password)?;
    if body.proof.password.is_none() {
        return Err(ApiError::BadRequest(
            "the current password is required to change it".into(),
        ));
    }
    step_up(&state, &signed, body.proof, AuditAction::PasswordChanged).await?;
    let hash = hash_password(body.new_password).await?;
    let changed = apply_change(
        &state,
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
    Ok(Json(PasswordChangeAnswer {
        sessions_ended: changed.devices_ended.len() as u64,
    }))
}

// ----- devices ----------------------------------------------------------------

async fn list_devices(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<DeviceList>> {
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
    Ok(Json(DeviceList { devices }))
}

async fn revoke_device(
    State(state): State<AppState>,
    device_id: Result<Path<String>, PathRejection>,
    signed: Signed,
) -> ApiResult<Json<RevokedAnswer>> {
    let user = signed.username()?.to_owned();
    let Path(target) = device_id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let this_device = signed.device_id.to_string();
    // Signing out oneself needs no proof; revoking another device does, so a
    // stolen device cannot throw its owner's other devices out.
    if target != this_device {
        step_up(
            &state,
            &signed,
            proof_in(&signed)?,
            AuditAction::DeviceRevoked,
        )
        .await?;
    }
    let revoked = apply_change(
        &state,
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
    Ok(Json(RevokedAnswer { revoked: target }))
}

// ----- admin ------------------------------------------------------------------

async fn create_invite(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<InviteAnswer>> {
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
    step_up(&state, &signed, body.proof, AuditAction::InviteCreated).await?;
    let (code, invite_id, expires_at) = issue_invite(&state.store, &user, ttl).await?;
    state
        .audit
        .record(
            AuditEvent::success(AuditAction::InviteCreated, &user)
                .device(signed.device_id)
                .target(format!("invite:{invite_id}")),
        )
        .await?;
    Ok(Json(InviteAnswer {
        expires_at,
        invite_code: SecretText::from(code),
    }))
}
