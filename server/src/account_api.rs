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
use conclave_crypto::{DevicePublicKey, Username};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::IpAddr;
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential,
};
use zeroize::Zeroizing;

use crate::auth::{
    Password, Signed, client_ip, hash_password, hash_secret, read_body, unix_now, verify_password,
    verify_secret,
};
use crate::error::{ApiError, ApiResult};
use crate::events::{AuditAction, AuditEvent};
use crate::factors::{
    self, CHALLENGE_TTL_SECS, INVITE_CODE, RECOVERY_CODE, RECOVERY_CODES, SecretText,
};
use crate::limits::{self, ip_key};
use crate::store::{ChallengeRow, CredentialRow, Store};
use crate::{AppState, Notice};

/// Name under which the TOTP issuer and the WebAuthn relying party appear.
const ISSUER: &str = "Conclave";
/// Role that may issue invites over the API.
pub const ADMIN_ROLE: &str = "admin";
/// Longest an invite may stay open.
const MAX_INVITE_TTL: u64 = 30 * 86_400;

/// The account routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/accounts", post(register))
        .route("/v1/devices", post(login).get(list_devices))
        .route("/v1/devices/{device_id}/revoke", post(revoke_device))
        .route("/v1/auth/webauthn/challenge", post(webauthn_challenge))
        .route("/v1/account", get(account_status))
        .route("/v1/account/password", post(change_password))
        .route("/v1/account/totp", post(begin_totp).delete(remove_totp))
        .route("/v1/account/totp/confirm", post(confirm_totp))
        .route("/v1/account/webauthn/register", post(begin_webauthn))
        .route(
            "/v1/account/webauthn/register/finish",
            post(finish_webauthn),
        )
        .route("/v1/account/recovery-codes", post(new_recovery_codes))
        .route("/v1/admin/invites", post(create_invite))
}

fn username(text: &str) -> ApiResult<Username> {
    Username::parse(text).map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn check_new_password(password: &Password) -> ApiResult<()> {
    let length = password.expose().chars().count();
    if !(10..=1024).contains(&length) {
        return Err(ApiError::BadRequest(
            "password must be 10 to 1024 characters".into(),
        ));
    }
    Ok(())
}

fn totp_context(username: &str) -> String {
    format!("conclave totp secret v1\0{username}")
}

// ----- proofs: password plus second factor ----------------------------------

/// A second factor, as a client presents it.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum SecondFactor {
    /// A 6-digit code from an authenticator app.
    Totp { code: SecretText },
    /// One of the account's single-use recovery codes.
    RecoveryCode { code: SecretText },
    /// A WebAuthn assertion answering a challenge from `/v1/auth/webauthn/challenge`.
    Webauthn {
        challenge_id: String,
        credential: Box<PublicKeyCredential>,
    },
}

/// What proves the account holder is present.
#[derive(Deserialize, Default)]
struct Proof {
    #[serde(default)]
    password: Option<Password>,
    #[serde(default)]
    second_factor: Option<SecondFactor>,
}

/// Which second factor a proof used, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Factor {
    Totp,
    Webauthn,
    RecoveryCode,
}

impl Factor {
    fn as_str(self) -> &'static str {
        match self {
            Factor::Totp => "totp",
            Factor::Webauthn => "webauthn",
            Factor::RecoveryCode => "recovery_code",
        }
    }
}

/// The kinds of second factor an account can present now.
async fn available_factors(store: &Store, user: &str) -> ApiResult<Vec<&'static str>> {
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

/// Checks a proof for `user`, with rate limits and lockout, and records the
/// outcome. Returns the second factor used (`None` only for an account that
/// has none).
async fn verify_proof(
    state: &AppState,
    user: &str,
    proof: Proof,
    ip: Option<IpAddr>,
    action: AuditAction,
) -> ApiResult<Option<Factor>> {
    let store = &state.store;
    limits::count(state, limits::LOGIN_PER_IP, &ip_key(ip)).await?;
    limits::check(state, limits::PASSWORD_FAILURES, user).await?;
    let failed = |reason| AuditEvent::failure(action, user, reason).from_ip(ip);
    match proof.password {
        Some(password) => {
            let stored = store.password_hash(user).await?;
            if !verify_password(password, stored).await? {
                limits::fail(store, limits::PASSWORD_FAILURES, user).await?;
                state.audit.record(failed("bad_password")).await;
                return Err(ApiError::BadCredentials);
            }
        }
        // Without a password, only a passkey can prove it, and only if the account chose that.
        None => {
            let passkey = matches!(proof.second_factor, Some(SecondFactor::Webauthn { .. }));
            if !(passkey && store.passwordless(user).await?) {
                limits::fail(store, limits::PASSWORD_FAILURES, user).await?;
                state.audit.record(failed("no_password")).await;
                return Err(ApiError::BadCredentials);
            }
        }
    }
    let Some(second_factor) = proof.second_factor else {
        let factors = available_factors(store, user).await?;
        if factors.is_empty() {
            return Ok(None);
        }
        state.audit.record(failed("second_factor_missing")).await;
        return Err(ApiError::SecondFactorRequired(factors));
    };
    limits::check(state, limits::SECOND_FACTOR_FAILURES, user).await?;
    limits::count(state, limits::SECOND_FACTOR_PER_IP, &ip_key(ip)).await?;
    match check_factor(state, user, second_factor).await? {
        Ok(factor) => {
            limits::clear(store, limits::PASSWORD_FAILURES, user).await?;
            limits::clear(store, limits::SECOND_FACTOR_FAILURES, user).await?;
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
                .await;
            Ok(Some(factor))
        }
        Err(reason) => {
            limits::fail(store, limits::SECOND_FACTOR_FAILURES, user).await?;
            state
                .audit
                .record(
                    AuditEvent::failure(AuditAction::SecondFactorUsed, user, reason).from_ip(ip),
                )
                .await;
            Err(ApiError::SecondFactorInvalid(reason))
        }
    }
}

/// Checks one second factor. The inner error is the reason it failed.
async fn check_factor(
    state: &AppState,
    user: &str,
    factor: SecondFactor,
) -> ApiResult<Result<Factor, &'static str>> {
    let store = &state.store;
    match factor {
        SecondFactor::Totp { code } => {
            let Some(row) = store.totp(user).await?.filter(|t| t.confirmed) else {
                return Ok(Err("no TOTP is enrolled"));
            };
            let secret = state
                .server_key
                .open(&totp_context(user), &row.sealed_secret)
                .map_err(ApiError::Internal)?;
            let totp = factors::totp(&secret, ISSUER, user).map_err(ApiError::Internal)?;
            let Some(step) = factors::totp_step(&totp, code.expose(), unix_now()) else {
                return Ok(Err("wrong or expired TOTP code"));
            };
            // RFC 6238 §5.2: a code is accepted once. The store's compare-and-set
            // refuses this step, or any before it, if it was spent already.
            if step <= row.last_step || !store.spend_totp_step(user, step).await? {
                return Ok(Err("TOTP code already used"));
            }
            Ok(Ok(Factor::Totp))
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
            Ok(Ok(Factor::RecoveryCode))
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
            Ok(Ok(Factor::Webauthn))
        }
    }
}

/// Takes a challenge out of the store if it belongs to `user`, is for
/// `purpose` and has not expired. Whatever the answer, it is gone after this.
async fn take_challenge(
    store: &Store,
    id: &str,
    user: &str,
    purpose: &str,
) -> ApiResult<Option<ChallengeRow>> {
    let challenge = store.take_challenge(id).await?;
    Ok(challenge
        .filter(|c| c.username == user && c.purpose == purpose && c.expires_at > unix_now()))
}

async fn put_challenge(
    store: &Store,
    user: &str,
    purpose: &str,
    state: &impl serde::Serialize,
) -> ApiResult<String> {
    let id = hex::encode(rand::random::<[u8; 16]>());
    let state =
        serde_json::to_string(state).map_err(|e| ApiError::Internal(format!("challenge: {e}")))?;
    store
        .put_challenge(
            &id,
            &ChallengeRow {
                username: user.to_owned(),
                purpose: purpose.to_owned(),
                state,
                expires_at: unix_now() + CHALLENGE_TTL_SECS,
            },
        )
        .await?;
    Ok(id)
}

/// Issues a fresh set of recovery codes, replacing any left; only their
/// argon2id hashes are stored.
async fn issue_recovery_codes(state: &AppState, user: &str) -> ApiResult<Vec<String>> {
    let mut codes: Vec<Zeroizing<String>> = Vec::with_capacity(RECOVERY_CODES);
    let mut rows = Vec::with_capacity(RECOVERY_CODES);
    while codes.len() < RECOVERY_CODES {
        let code = RECOVERY_CODE.generate();
        let Some((id, whole)) = RECOVERY_CODE.parse(&code) else {
            continue;
        };
        if rows.iter().any(|(existing, _)| *existing == id) {
            continue;
        }
        rows.push((id, hash_secret(whole).await?));
        codes.push(code);
    }
    state.store.replace_recovery_codes(user, &rows).await?;
    state
        .audit
        .record(AuditEvent::success(AuditAction::RecoveryCodesIssued, user))
        .await;
    Ok(codes.iter().map(|c| c.to_string()).collect())
}

/// Issues an invite code valid for `ttl` seconds.
/// A bot's password: 32 random base64url characters (192 bits).
pub(crate) fn new_bot_password() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) async fn issue_invite(
    store: &Store,
    created_by: &str,
    ttl: u64,
) -> ApiResult<(Zeroizing<String>, String, u64)> {
    let code = INVITE_CODE.generate();
    let (id, whole) = INVITE_CODE
        .parse(&code)
        .ok_or_else(|| ApiError::Internal("generated invite code does not parse".into()))?;
    let expires_at = unix_now() + ttl;
    store
        .create_invite(&id, &hash_secret(whole).await?, created_by, expires_at)
        .await?;
    Ok((code, id, expires_at))
}

// ----- registration and login -----------------------------------------------

#[derive(Deserialize)]
struct RegisterBody {
    username: String,
    password: Password,
    #[serde(default)]
    invite_code: Option<SecretText>,
}

async fn register(State(state): State<AppState>, request: Request) -> ApiResult<Json<Value>> {
    let ip = client_ip(request.extensions());
    limits::count(&state, limits::REGISTER_PER_IP, &ip_key(ip)).await?;
    let body = read_body(request.into_body(), state.config.max_body_bytes).await?;
    let body: RegisterBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
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
    state.audit.record(event).await;
    Ok(Json(json!({ "username": name.as_str() })))
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    public_key: String,
    #[serde(flatten)]
    proof: Proof,
}

async fn login(State(state): State<AppState>, signed: Signed) -> ApiResult<Json<Value>> {
    let body: LoginBody = signed.json()?;
    let name = username(&body.username)?;
    let user = name.as_str();
    let key = crate::api::decode_b64("public_key", &body.public_key)?;
    let device = DevicePublicKey::from_bytes(&key)
        .map_err(|_| ApiError::BadRequest("public_key is not a valid Ed25519 key".into()))?;
    // Proof of possession: the request must be signed by the key it registers,
    // not by some other device that is already known.
    if device != signed.public_key {
        return Err(ApiError::BadSignature(
            "a login must be signed by the device key it registers",
        ));
    }
    let device_id = device.device_id().to_string();
    let known = match &signed.username {
        Some(owner) if owner != user => return Err(ApiError::Conflict("device")),
        Some(_) => true,
        None => false,
    };
    let factor = verify_proof(&state, user, body.proof, signed.ip, AuditAction::Login).await?;
    // Without a second factor only an account's first device may sign in:
    // the password alone never adds a device to an account that has one.
    if factor.is_none() && !known && state.store.active_device_count(user).await? > 0 {
        state
            .audit
            .record(
                AuditEvent::failure(AuditAction::Login, user, "new_device_needs_second_factor")
                    .device(&device_id)
                    .from_ip(signed.ip),
            )
            .await;
        return Err(ApiError::EnrollmentRequired(
            "a new device needs a second factor; enroll TOTP or a passkey on a device you already use",
        ));
    }
    if known {
        if !state.store.start_session(&device_id).await? {
            return Err(ApiError::DeviceRevoked);
        }
    } else {
        // The registration clients check before they trust this key: it
        // lands in the log in the same transaction as the device.
        let registration = state.audit.entry(
            AuditEvent::success(AuditAction::DeviceAdded, user)
                .device(&device_id)
                .target(format!("device:{device_id}"))
                .detail("public_key", hex::encode(&key))
                .from_ip(signed.ip),
        );
        if !state
            .store
            .add_device(user, &device_id, &key, registration)
            .await?
        {
            return Err(ApiError::Conflict("device"));
        }
        state.tell(Notice::DevicesChanged {
            username: user.to_owned(),
        });
    }
    state
        .audit
        .record(
            AuditEvent::success(AuditAction::Login, user)
                .device(&device_id)
                .from_ip(signed.ip),
        )
        .await;
    Ok(Json(json!({
        "username": user,
        "device_id": device_id,
        "second_factor": factor.map(Factor::as_str),
        "recovery_codes_left": state.store.recovery_codes_left(user).await?,
    })))
}

#[derive(Deserialize)]
struct ChallengeBody {
    username: String,
}

/// Starts a WebAuthn authentication for `username`: for a login, or for a
/// sensitive change by a device that is already signed in.
async fn webauthn_challenge(
    State(state): State<AppState>,
    request: Request,
) -> ApiResult<Json<Value>> {
    let ip = client_ip(request.extensions());
    limits::count(&state, limits::LOGIN_PER_IP, &ip_key(ip)).await?;
    let body = read_body(request.into_body(), state.config.max_body_bytes).await?;
    let body: ChallengeBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
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
    Ok(Json(json!({
        "challenge_id": challenge_id,
        "origin": state.relying_party.origin.as_str(),
        "options": options,
    })))
}

// ----- the signed-in account --------------------------------------------------

/// The most people a group direct message may have unless the workspace's
/// policy says otherwise.
pub(crate) const DEFAULT_MAX_GROUP_DM: u32 = 9;

async fn account_status(State(state): State<AppState>, signed: Signed) -> ApiResult<Json<Value>> {
    let user = signed.username()?;
    let store = &state.store;
    let totp = store.totp(user).await?;
    let credentials: Vec<Value> = store
        .webauthn_credentials(user)
        .await?
        .into_iter()
        .map(|c| json!({ "credential_id": c.credential_id, "name": c.name }))
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
    Ok(Json(json!({
        "username": user,
        "roles": store.roles(user).await?,
        "totp": totp.as_ref().is_some_and(|t| t.confirmed),
        "totp_pending": totp.as_ref().is_some_and(|t| !t.confirmed),
        "webauthn": credentials,
        "passwordless": store.passwordless(user).await?,
        "recovery_codes_left": store.recovery_codes_left(user).await?,
        "second_factor_required": required,
        "max_group_dm": max_group_dm,
        "bot_owner": bot_owner,
    })))
}

async fn begin_totp(State(state): State<AppState>, signed: Signed) -> ApiResult<Json<Value>> {
    let user = signed.username()?;
    let secret = factors::new_totp_secret();
    let sealed = state
        .server_key
        .seal(&totp_context(user), &secret)
        .map_err(ApiError::Internal)?;
    if !state.store.begin_totp(user, &sealed).await? {
        return Err(ApiError::Conflict("TOTP enrollment"));
    }
    let totp = factors::totp(&secret, ISSUER, user).map_err(ApiError::Internal)?;
    let uri = totp
        .to_url()
        .map_err(|e| ApiError::Internal(format!("otpauth: {e}")))?;
    Ok(Json(json!({ "otpauth_uri": uri })))
}

#[derive(Deserialize)]
struct CodeBody {
    code: SecretText,
}

async fn confirm_totp(State(state): State<AppState>, signed: Signed) -> ApiResult<Json<Value>> {
    let user = signed.username()?.to_owned();
    let body: CodeBody = signed.json()?;
    let store = &state.store;
    limits::check(&state, limits::SECOND_FACTOR_FAILURES, &user).await?;
    let Some(row) = store.totp(&user).await?.filter(|t| !t.confirmed) else {
        return Err(ApiError::BadRequest(
            "no TOTP enrollment is pending: start one first".into(),
        ));
    };
    let secret = state
        .server_key
        .open(&totp_context(&user), &row.sealed_secret)
        .map_err(ApiError::Internal)?;
    let totp = factors::totp(&secret, ISSUER, &user).map_err(ApiError::Internal)?;
    let step = factors::totp_step(&totp, body.code.expose(), unix_now());
    let confirmed = match step {
        Some(step) => store.spend_totp_step(&user, step).await?,
        None => false,
    };
    if !confirmed {
        limits::fail(store, limits::SECOND_FACTOR_FAILURES, &user).await?;
        return Err(ApiError::SecondFactorInvalid("wrong or expired TOTP code"));
    }
    state
        .audit
        .record(
            AuditEvent::success(AuditAction::SecondFactorEnrolled, &user)
                .device(signed.device_id)
                .target("totp"),
        )
        .await;
    let codes = first_recovery_codes(&state, &user).await?;
    Ok(Json(json!({ "recovery_codes": codes })))
}

/// Recovery codes come with the first second factor.
async fn first_recovery_codes(state: &AppState, user: &str) -> ApiResult<Vec<String>> {
    if state.store.recovery_codes_left(user).await? > 0 {
        return Ok(Vec::new());
    }
    issue_recovery_codes(state, user).await
}

async fn remove_totp(State(state): State<AppState>, signed: Signed) -> ApiResult<Json<Value>> {
    let user = signed.username()?.to_owned();
    let proof: Proof = signed.json()?;
    verify_proof(
        &state,
        &user,
        proof,
        signed.ip,
        AuditAction::SecondFactorRemoved,
    )
    .await?;
    if !state.store.delete_totp(&user).await? {
        return Err(ApiError::NotFound("TOTP enrollment"));
    }
    state
        .audit
        .record(
            AuditEvent::success(AuditAction::SecondFactorRemoved, &user)
                .device(signed.device_id)
                .target("totp"),
        )
        .await;
    Ok(Json(json!({ "removed": "totp" })))
}

async fn begin_webauthn(State(state): State<AppState>, signed: Signed) -> ApiResult<Json<Value>> {
    let user = signed.username()?;
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
    let challenge_id = put_challenge(&state.store, user, "register", &ceremony).await?;
    Ok(Json(json!({
        "challenge_id": challenge_id,
        "origin": state.relying_party.origin.as_str(),
        "options": options,
    })))
}

#[derive(Deserialize)]
struct FinishWebauthnBody {
    challenge_id: String,
    credential: Box<RegisterPublicKeyCredential>,
    name: String,
    #[serde(default)]
    passwordless: bool,
}

async fn finish_webauthn(State(state): State<AppState>, signed: Signed) -> ApiResult<Json<Value>> {
    let user = signed.username()?.to_owned();
    let body: FinishWebauthnBody = signed.json()?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "name must be 1 to 64 printable characters".into(),
        ));
    }
    let Some(challenge) =
        take_challenge(&state.store, &body.challenge_id, &user, "register").await?
    else {
        return Err(ApiError::SecondFactorInvalid(
            "unknown, used or expired WebAuthn challenge",
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
    if !state.store.add_webauthn_credential(&user, &row).await? {
        return Err(ApiError::Conflict("credential"));
    }
    if body.passwordless {
        state.store.set_passwordless(&user, true).await?;
    }
    state
        .audit
        .record(
            AuditEvent::success(AuditAction::SecondFactorEnrolled, &user)
                .device(signed.device_id)
                .target(format!("webauthn:{credential_id}")),
        )
        .await;
    let codes = first_recovery_codes(&state, &user).await?;
    Ok(Json(json!({
        "credential_id": credential_id,
        "passwordless": body.passwordless,
        "recovery_codes": codes,
    })))
}

async fn new_recovery_codes(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<Value>> {
    let user = signed.username()?.to_owned();
    let proof: Proof = signed.json()?;
    let factor = verify_proof(
        &state,
        &user,
        proof,
        signed.ip,
        AuditAction::RecoveryCodesIssued,
    )
    .await?;
    if factor.is_none() {
        return Err(ApiError::EnrollmentRequired(
            "recovery codes back up a second factor",
        ));
    }
    let codes = issue_recovery_codes(&state, &user).await?;
    Ok(Json(json!({ "recovery_codes": codes })))
}

#[derive(Deserialize)]
struct PasswordBody {
    #[serde(flatten)]
    proof: Proof,
    new_password: Password,
}

async fn change_password(State(state): State<AppState>, signed: Signed) -> ApiResult<Json<Value>> {
    let user = signed.username()?.to_owned();
    let body: PasswordBody = signed.json()?;
    check_new_password(&body.new_password)?;
    if body.proof.password.is_none() {
        return Err(ApiError::BadRequest(
            "the current password is required to change it".into(),
        ));
    }
    verify_proof(
        &state,
        &user,
        body.proof,
        signed.ip,
        AuditAction::PasswordChanged,
    )
    .await?;
    let hash = hash_password(body.new_password).await?;
    state.store.set_password_hash(&user, &hash).await?;
    let this_device = signed.device_id.to_string();
    let ended = state.store.end_sessions(&user, &this_device).await?;
    for device_id in &ended {
        state.tell(Notice::SessionEnded {
            device_id: device_id.clone(),
        });
    }
    state
        .audit
        .record(AuditEvent::success(AuditAction::PasswordChanged, &user).device(&this_device))
        .await;
    state
        .audit
        .record(
            AuditEvent::success(AuditAction::SessionsEnded, &user)
                .device(&this_device)
                .target("other_sessions")
                .detail("count", ended.len()),
        )
        .await;
    Ok(Json(json!({ "sessions_ended": ended.len() })))
}

// ----- devices ----------------------------------------------------------------

async fn list_devices(State(state): State<AppState>, signed: Signed) -> ApiResult<Json<Value>> {
    let user = signed.username()?;
    let this_device = signed.device_id.to_string();
    let devices: Vec<Value> = state
        .store
        .devices_of(user)
        .await?
        .into_iter()
        .map(|d| {
            json!({
                "device_id": d.device_id,
                "created_at": d.created_at,
                "last_seen_at": d.last_seen_at,
                "revoked_at": d.revoked_at,
                "session_active": d.session_active,
                "current": d.device_id == this_device,
            })
        })
        .collect();
    Ok(Json(json!({ "devices": devices })))
}

async fn revoke_device(
    State(state): State<AppState>,
    device_id: Result<Path<String>, PathRejection>,
    signed: Signed,
) -> ApiResult<Json<Value>> {
    let user = signed.username()?.to_owned();
    let Path(target) = device_id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let this_device = signed.device_id.to_string();
    // Signing out oneself needs no proof; revoking another device does, so a
    // stolen device cannot throw its owner's other devices out.
    if target != this_device {
        let proof: Proof = if signed.body.is_empty() {
            Proof::default()
        } else {
            signed.json()?
        };
        verify_proof(&state, &user, proof, signed.ip, AuditAction::DeviceRevoked).await?;
    }
    if !state.store.revoke_device(&user, &target).await? {
        return Err(ApiError::NotFound("device"));
    }
    state.tell(Notice::SessionEnded {
        device_id: target.clone(),
    });
    state.tell(Notice::DevicesChanged {
        username: user.clone(),
    });
    state
        .audit
        .record(
            AuditEvent::success(AuditAction::DeviceRevoked, &user)
                .device(&this_device)
                .target(format!("device:{target}"))
                .from_ip(signed.ip),
        )
        .await;
    Ok(Json(json!({ "revoked": target })))
}

// ----- admin ------------------------------------------------------------------

#[derive(Deserialize)]
struct InviteBody {
    #[serde(default)]
    expires_in_secs: Option<u64>,
}

async fn create_invite(State(state): State<AppState>, signed: Signed) -> ApiResult<Json<Value>> {
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
    let (code, invite_id, expires_at) = issue_invite(&state.store, &user, ttl).await?;
    state
        .audit
        .record(
            AuditEvent::success(AuditAction::InviteCreated, &user)
                .device(signed.device_id)
                .target(format!("invite:{invite_id}")),
        )
        .await;
    Ok(Json(
        json!({ "invite_code": code.as_str(), "expires_at": expires_at }),
    ))
}
