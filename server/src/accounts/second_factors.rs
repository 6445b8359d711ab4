//! Second factors: TOTP and passkeys enrolled (each with a fresh proof of a
//! factor the account had before), removed, and new recovery codes. The
//! first factor enrolled brings the account's first recovery codes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use conclave_proto::{
    FactorRemovedAnswer, PasskeyAddedAnswer, RecoveryCodesAnswer, SecretText, TotpConfirmBody,
    TotpEnrollmentAnswer, WebauthnChallenge,
};
use webauthn_rs::prelude::{
    CreationChallengeResponse, Passkey, PasskeyRegistration, RegisterPublicKeyCredential,
    RequestChallengeResponse,
};
use zeroize::Zeroizing;

use super::ISSUER;
use super::challenges::{put_challenge, take_challenge};
use super::changes::apply_change;
use super::factors::{self};
use super::proof::{step_up_with_body, totp_context};
use super::recovery_codes::{new_recovery_code_set, shown};
use crate::AppState;
use crate::auth::Signed;
use crate::error::{ApiError, ApiResult};
use crate::events::{AuditAction, AuditEvent};
use crate::limits;
use crate::store::{AccountChange, CredentialRow};

type PasskeyRegistrationBody =
    conclave_proto::PasskeyRegistrationBody<Box<RegisterPublicKeyCredential>>;

/// Starts a TOTP enrollment, after a fresh proof: a new secret, sealed
/// under the server key, confirmed by a first code.
pub(crate) async fn begin_totp(
    state: &AppState,
    signed: Signed,
) -> ApiResult<TotpEnrollmentAnswer> {
    let user = signed.username()?;
    step_up_with_body(state, &signed, AuditAction::SecondFactorEnrolled).await?;
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
    Ok(TotpEnrollmentAnswer {
        otpauth_uri: SecretText::new(uri),
    })
}

/// Confirms the enrollment `begin_totp` started (after its step-up), with
/// the first code from the app.
pub(crate) async fn confirm_totp(
    state: &AppState,
    signed: Signed,
) -> ApiResult<RecoveryCodesAnswer> {
    let user = signed.username()?.to_owned();
    let device = signed.device_id.to_string();
    let body: TotpConfirmBody = signed.json()?;
    let store = &state.store;
    let Some(row) = store.totp(&user).await?.filter(|t| !t.confirmed) else {
        return Err(ApiError::BadRequest(
            "no TOTP enrollment is pending: start one first".into(),
        ));
    };
    limits::reserve(state, limits::SECOND_FACTOR_FAILURES, &user).await?;
    let secret = state
        .server_key
        .open(&totp_context(&user), &row.sealed_secret)?;
    let totp = factors::totp(&secret, ISSUER, &user)
        .map_err(|e| ApiError::Internal(format!("totp: {e}")))?;
    let Some(step) = factors::totp_step(&totp, body.code.expose(), state.config.clock.unix_now())
    else {
        return Err(ApiError::SecondFactorInvalid("wrong or expired TOTP code"));
    };
    let (codes, rows) = first_recovery_codes(state, &user).await?;
    let confirmed = apply_change(
        state,
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
    Ok(RecoveryCodesAnswer {
        recovery_codes: shown(codes),
    })
}

/// Removes TOTP, after a fresh proof of a factor the account had before.
pub(crate) async fn remove_totp(
    state: &AppState,
    signed: Signed,
) -> ApiResult<FactorRemovedAnswer> {
    let user = signed.username()?.to_owned();
    let device = signed.device_id.to_string();
    step_up_with_body(state, &signed, AuditAction::SecondFactorRemoved).await?;
    let removed = apply_change(
        state,
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
    Ok(FactorRemovedAnswer {
        removed: "totp".into(),
    })
}

/// Starts a passkey registration, after a fresh proof (a new passkey is
/// never the proof for its own registration).
pub(crate) async fn begin_webauthn(
    state: &AppState,
    signed: Signed,
) -> ApiResult<WebauthnChallenge<CreationChallengeResponse>> {
    let user = signed.username()?;
    // The proof comes from factors the account has now: a passkey being
    // registered can never vouch for itself.
    step_up_with_body(state, &signed, AuditAction::SecondFactorEnrolled).await?;
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
    Ok(ceremony_started(state, challenge_id, options))
}

/// Finishes a passkey registration this device started: the credential
/// checked against the ceremony, stored with its log entries, announced.
pub(crate) async fn finish_webauthn(
    state: &AppState,
    signed: Signed,
) -> ApiResult<PasskeyAddedAnswer> {
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
    let (codes, rows) = first_recovery_codes(state, &user).await?;
    let target = format!("webauthn:{credential_id}");
    let added = apply_change(
        state,
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
    Ok(PasskeyAddedAnswer {
        credential_id,
        passwordless: body.passwordless,
        recovery_codes: shown(codes),
    })
}

/// Removes a passkey, after a fresh proof of a factor the account had before.
pub(crate) async fn remove_webauthn(
    state: &AppState,
    credential_id: ApiResult<String>,
    signed: Signed,
) -> ApiResult<FactorRemovedAnswer> {
    let user = signed.username()?.to_owned();
    let device = signed.device_id.to_string();
    let credential_id = credential_id?;
    step_up_with_body(state, &signed, AuditAction::SecondFactorRemoved).await?;
    let target = format!("webauthn:{credential_id}");
    let removed = apply_change(
        state,
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
    Ok(FactorRemovedAnswer { removed: target })
}

/// Replaces the account's recovery codes, after a fresh proof.
pub(crate) async fn new_recovery_codes(
    state: &AppState,
    signed: Signed,
) -> ApiResult<RecoveryCodesAnswer> {
    let user = signed.username()?.to_owned();
    let device = signed.device_id.to_string();
    let factor = step_up_with_body(state, &signed, AuditAction::RecoveryCodesIssued).await?;
    if factor.is_none() {
        return Err(ApiError::EnrollmentRequired(
            "recovery codes back up a second factor",
        ));
    }
    let (codes, rows) = new_recovery_code_set().await?;
    apply_change(
        state,
        &user,
        AccountChange::RecoveryCodesReplaced { codes: &rows },
        Some(&device),
        |_| vec![AuditEvent::success(AuditAction::RecoveryCodesIssued, &user).device(&device)],
    )
    .await?;
    Ok(RecoveryCodesAnswer {
        recovery_codes: shown(codes),
    })
}

/// The audit entries of a factor enrollment.
pub(crate) fn enrolled_events(
    user: &str,
    device: &str,
    target: &str,
    with_codes: bool,
) -> Vec<AuditEvent> {
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
pub(crate) async fn first_recovery_codes(
    state: &AppState,
    user: &str,
) -> ApiResult<(Vec<Zeroizing<String>>, Vec<(String, String)>)> {
    if state.store.recovery_codes_left(user).await? > 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    new_recovery_code_set().await
}

/// The challenge purpose of a passkey registration by `device`: only the
/// device that passed the step-up may finish it.
pub(crate) fn registration_purpose(device: &str) -> String {
    format!("register:{device}")
}

/// The answer that starts a WebAuthn ceremony on the client.
/// Starts a WebAuthn authentication for `username`: for a login, or for a
/// sensitive change by a device that is already signed in.
pub(crate) async fn passkey_challenge(
    state: &AppState,
    username: &str,
) -> ApiResult<WebauthnChallenge<RequestChallengeResponse>> {
    let name = super::username(username)?;
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
    Ok(ceremony_started(state, challenge_id, options))
}

pub(crate) fn ceremony_started<O>(
    state: &AppState,
    challenge_id: String,
    options: O,
) -> WebauthnChallenge<O> {
    WebauthnChallenge {
        challenge_id,
        options,
        origin: state.relying_party.origin.to_string(),
    }
}
