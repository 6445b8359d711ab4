//! The account routes: registration, login with a second factor, enrollment
//! of TOTP and passkeys, recovery codes, devices and their revocation,
//! password changes and invites. Each route reads its request and makes one
//! call into `accounts/`, where the rules are.
//!
//! Every sensitive change (revoking another device, a new password, new
//! recovery codes, removing TOTP) asks for the same proof as a login: the
//! password and, if the account has one, a second factor. A stolen device
//! alone can't lock its owner out. The password is proved and set with
//! OPAQUE (`accounts/passwords.rs`): it never reaches the relay.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use conclave_proto::{
    AccountStatus, DeviceList, FactorRemovedAnswer, InviteAnswer, LoginAnswer, PasskeyAddedAnswer,
    PasswordChangeAnswer, PasswordLoginAnswer, PasswordSetupAnswer, PasswordSetupBody,
    RecoveryAnswer, RecoveryCodesAnswer, RegisterAnswer, RegisterBody, RevokedAnswer,
    TotpEnrollmentAnswer, WebauthnChallenge, WebauthnChallengeBody, routes,
};
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse};

use crate::auth::{Signed, client_ip, parse_json, read_body};
use crate::error::{ApiError, ApiResult};
use crate::limits::{self, ip_key};
use crate::{AppState, accounts};

/// The account routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::ACCOUNTS, post(register))
        .route(routes::ACCOUNTS_PASSWORD, post(password_setup))
        .route(routes::PASSWORD_LOGIN, post(password_login))
        .route(routes::PASSWORD_UPGRADE, post(password_upgrade))
        .route(routes::ACCOUNT_PASSWORD_SETUP, post(new_password_setup))
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

// ----- registration and login -----------------------------------------------

async fn register(
    State(state): State<AppState>,
    request: Request,
) -> ApiResult<Json<RegisterAnswer>> {
    let ip = client_ip(request.extensions());
    limits::count(&state, limits::REGISTER_PER_IP, &ip_key(ip)).await?;
    let body: RegisterBody = unsigned_json(request, &state).await?;
    Ok(Json(accounts::register::register(&state, body, ip).await?))
}

async fn login(State(state): State<AppState>, signed: Signed) -> ApiResult<Json<LoginAnswer>> {
    Ok(Json(accounts::login::login(&state, signed).await?))
}

// ----- the password, as OPAQUE ------------------------------------------------

async fn password_setup(
    State(state): State<AppState>,
    request: Request,
) -> ApiResult<Json<PasswordSetupAnswer>> {
    let ip = client_ip(request.extensions());
    let body: PasswordSetupBody = unsigned_json(request, &state).await?;
    Ok(Json(accounts::passwords::setup(&state, body, ip).await?))
}

async fn password_login(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<PasswordLoginAnswer>> {
    Ok(Json(
        accounts::passwords::start_login(&state, signed).await?,
    ))
}

async fn password_upgrade(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<PasswordSetupAnswer>> {
    Ok(Json(
        accounts::passwords::legacy_upgrade(&state, signed).await?,
    ))
}

async fn new_password_setup(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<PasswordSetupAnswer>> {
    Ok(Json(
        accounts::passwords::new_password_setup(&state, signed).await?,
    ))
}

/// The JSON body of an unsigned request, read as `Signed::json` reads a
/// signed one.
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
    Ok(Json(
        accounts::second_factors::passkey_challenge(&state, &body.username).await?,
    ))
}

// ----- the signed-in account --------------------------------------------------

async fn recover(State(state): State<AppState>, signed: Signed) -> ApiResult<Json<RecoveryAnswer>> {
    Ok(Json(accounts::recovery::recover(&state, signed).await?))
}

async fn begin_totp(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<TotpEnrollmentAnswer>> {
    Ok(Json(
        accounts::second_factors::begin_totp(&state, signed).await?,
    ))
}

async fn confirm_totp(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<RecoveryCodesAnswer>> {
    Ok(Json(
        accounts::second_factors::confirm_totp(&state, signed).await?,
    ))
}

async fn remove_totp(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<FactorRemovedAnswer>> {
    Ok(Json(
        accounts::second_factors::remove_totp(&state, signed).await?,
    ))
}

async fn begin_webauthn(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<WebauthnChallenge<CreationChallengeResponse>>> {
    Ok(Json(
        accounts::second_factors::begin_webauthn(&state, signed).await?,
    ))
}

async fn finish_webauthn(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<PasskeyAddedAnswer>> {
    Ok(Json(
        accounts::second_factors::finish_webauthn(&state, signed).await?,
    ))
}

async fn remove_webauthn(
    State(state): State<AppState>,
    credential_id: Result<Path<String>, PathRejection>,
    signed: Signed,
) -> ApiResult<Json<FactorRemovedAnswer>> {
    let credential_id = credential_id
        .map(|Path(id)| id)
        .map_err(|e| ApiError::BadRequest(e.body_text()));
    Ok(Json(
        accounts::second_factors::remove_webauthn(&state, credential_id, signed).await?,
    ))
}

async fn new_recovery_codes(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<RecoveryCodesAnswer>> {
    Ok(Json(
        accounts::second_factors::new_recovery_codes(&state, signed).await?,
    ))
}

async fn list_devices(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<DeviceList>> {
    Ok(Json(accounts::devices::list_devices(&state, signed).await?))
}

async fn revoke_device(
    State(state): State<AppState>,
    device_id: Result<Path<String>, PathRejection>,
    signed: Signed,
) -> ApiResult<Json<RevokedAnswer>> {
    let device_id = device_id
        .map(|Path(id)| id)
        .map_err(|e| ApiError::BadRequest(e.body_text()));
    Ok(Json(
        accounts::devices::revoke_device(&state, device_id, signed).await?,
    ))
}

async fn change_password(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<PasswordChangeAnswer>> {
    Ok(Json(
        accounts::password::change_password(&state, signed).await?,
    ))
}

async fn account_status(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<AccountStatus>> {
    Ok(Json(
        accounts::status::account_status(&state, signed).await?,
    ))
}

async fn create_invite(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<InviteAnswer>> {
    Ok(Json(
        accounts::invites::create_invite(&state, signed).await?,
    ))
}
