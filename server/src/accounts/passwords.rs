//! Passwords as OPAQUE (RFC 9807): the relay never sees one.
//!
//! An account's stored password (`accounts.password_hash`) is its OPAQUE
//! registration record (`opaque1$` and the record in base64), or, for an
//! account from before OPAQUE that has not signed in since, its argon2id
//! hash. The OPRF seed and key pair every record depends on (the OPAQUE
//! setup) is made once, sealed under the server key and kept in the
//! database, so every node shares it and a copy of the database alone opens
//! nothing ([`password_server`]).
//!
//! Proving the password is a login started here ([`start_login`]) and
//! finished in the proof of the request that needed it ([`finish_login`],
//! called from `proof.rs`). OPAQUE tells the client whether its password
//! was right before it sends the finalization, so the *start* is what
//! counts against the password budgets, and a start that is never finished
//! is logged as a failure when it expires ([`log_abandoned_logins`]).

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_crypto::DevicePublicKey;
use conclave_crypto::password::PasswordServer;
use conclave_proto::{
    LegacyUpgradeBody, NewPasswordSetupBody, OpaqueProof, PasswordLoginAnswer, PasswordSetupAnswer,
    PasswordSetupBody, SecretText,
};
use rand::RngCore;
use webauthn_rs::prelude::PublicKeyCredential;

use super::factors::RECOVERY_CODE;
use super::proof::{Factor, SecondFactor, check_factor, factor_refused};
use super::recovery::checked_recovery_invite;
use super::register::checked_invite;
use super::username;
use crate::AppState;
use crate::auth::{Signed, verify_secret};
use crate::error::{ApiError, ApiResult};
use crate::events::{AuditAction, AuditEvent};
use crate::limits::{self, ip_key};
use crate::server_key::ServerKey;
use crate::store::{PendingLogin, Store};

/// How a stored verifier that is an OPAQUE record begins.
const OPAQUE_PREFIX: &str = "opaque1$";
/// The relay secret that holds the sealed OPAQUE setup.
const SETUP_SECRET: &str = "opaque_setup";
/// How long a started login waits for its proof.
const LOGIN_LIFETIME_SECS: u64 = 120;

/// A login body as the relay receives it: a passkey assertion travels boxed.
type PasswordLoginBody = conclave_proto::PasswordLoginBody<Box<PublicKeyCredential>>;

/// An account's stored password.
#[derive(Debug)]
pub(crate) enum StoredPassword {
    /// An OPAQUE registration record.
    Opaque(Vec<u8>),
    /// An argon2id hash from before OPAQUE.
    Legacy(String),
}

/// What `accounts.password_hash` holds for an OPAQUE `record`.
fn verifier(record: &[u8]) -> String {
    format!("{OPAQUE_PREFIX}{}", STANDARD.encode(record))
}

/// The stored password of `user`, `None` if there is no such account.
pub(crate) async fn stored_password(
    store: &Store,
    user: &str,
) -> ApiResult<Option<StoredPassword>> {
    let Some(stored) = store.password_hash(user).await? else {
        return Ok(None);
    };
    Ok(Some(match stored.strip_prefix(OPAQUE_PREFIX) {
        Some(record) => StoredPassword::Opaque(
            STANDARD
                .decode(record)
                .map_err(|_| ApiError::Internal("stored password record is not base64".into()))?,
        ),
        None => StoredPassword::Legacy(stored),
    }))
}

/// The relay's OPAQUE setup: made by the first node that needs it, sealed
/// under the server key, kept in the database for every node, cached here.
pub(crate) async fn password_server(state: &AppState) -> ApiResult<Arc<PasswordServer>> {
    state
        .password_server
        .get_or_try_init(|| async {
            load_password_server(&state.store, &state.server_key)
                .await
                .map(Arc::new)
        })
        .await
        .cloned()
}

/// Reads the sealed OPAQUE setup from the database, or makes and keeps
/// one if no node has yet.
pub(crate) async fn load_password_server(
    store: &Store,
    server_key: &ServerKey,
) -> ApiResult<PasswordServer> {
    let context = "conclave opaque setup v1";
    let sealed = match store.relay_secret(SETUP_SECRET).await? {
        Some(sealed) => sealed,
        None => {
            let fresh = PasswordServer::generate();
            let sealed = server_key.seal(context, &fresh.to_bytes())?;
            store.keep_relay_secret(SETUP_SECRET, &sealed).await?
        }
    };
    let bytes = server_key.open(context, &sealed)?;
    PasswordServer::from_bytes(&bytes).map_err(|e| ApiError::Internal(format!("OPAQUE setup: {e}")))
}

fn decode(field: &'static str, text: &str) -> ApiResult<Vec<u8>> {
    STANDARD
        .decode(text)
        .map_err(|_| ApiError::BadRequest(format!("{field} is not base64")))
}

fn malformed(error: conclave_crypto::Error) -> ApiError {
    ApiError::BadRequest(error.to_string())
}

/// The verifier to store for a client's registration upload.
pub(crate) async fn verifier_from_upload(
    state: &AppState,
    upload: &SecretText,
) -> ApiResult<String> {
    let upload = decode("password_record", upload.expose())?;
    let record = password_server(state)
        .await?
        .record(&upload)
        .map_err(malformed)?;
    Ok(verifier(&record))
}

/// A record made here, for a password the relay generated itself and hands
/// out once (a bot's): both halves of the registration run in this process.
pub(crate) async fn verifier_for_generated(
    server: &PasswordServer,
    user: &str,
    password: &[u8],
) -> ApiResult<String> {
    use conclave_crypto::password::PasswordRegistration;
    let (registration, request) = PasswordRegistration::start(password).map_err(malformed)?;
    let response = server
        .registration_response(&request, user)
        .map_err(malformed)?;
    let password = zeroize::Zeroizing::new(password.to_vec());
    let name = user.to_owned();
    let upload =
        tokio::task::spawn_blocking(move || registration.finish(&password, &response, &name))
            .await
            .map_err(|e| ApiError::Internal(format!("registration task: {e}")))?
            .map_err(malformed)?;
    Ok(verifier(&server.record(&upload).map_err(malformed)?))
}

/// `POST /v1/accounts/password` (unsigned): the first half of a password
/// for a new account (with a valid invite, unless registration is open, and
/// a free name) or a locked one (with its recovery invite). Each is checked
/// and left unspent: the second half spends it.
pub(crate) async fn setup(
    state: &AppState,
    body: PasswordSetupBody,
    ip: Option<IpAddr>,
) -> ApiResult<PasswordSetupAnswer> {
    limits::count(state, limits::PASSWORD_SETUP_PER_IP, &ip_key(ip)).await?;
    let name = username(&body.username)?;
    let user = name.as_str();
    match &body.recovery_invite {
        Some(invite) => {
            checked_recovery_invite(state, user, invite, ip).await?;
        }
        None => {
            if state.store.password_hash(user).await?.is_some() {
                return Err(ApiError::Conflict("username"));
            }
            checked_invite(state, body.invite_code.as_ref()).await?;
        }
    }
    registration_response(state, &body.request, user).await
}

async fn registration_response(
    state: &AppState,
    request: &str,
    user: &str,
) -> ApiResult<PasswordSetupAnswer> {
    let request = decode("request", request)?;
    let response = password_server(state)
        .await?
        .registration_response(&request, user)
        .map_err(malformed)?;
    Ok(PasswordSetupAnswer {
        response: STANDARD.encode(response),
    })
}

/// `POST /v1/account/password/setup`: the first half of a new password for
/// the signed-in account. It evaluates the account's OPRF for whatever the
/// device sends, so it spends a try of the device's password budget, as a
/// guess would; the password change that follows gives it back.
pub(crate) async fn new_password_setup(
    state: &AppState,
    signed: Signed,
) -> ApiResult<PasswordSetupAnswer> {
    let user = signed.username()?.to_owned();
    let body: NewPasswordSetupBody = signed.json()?;
    let key = format!("{user}:{}", signed.device_id);
    limits::reserve_backoff(state, limits::KNOWN_DEVICE_BACKOFF, &key).await?;
    registration_response(state, &body.request, &user).await
}

/// `POST /v1/password/upgrade`: for an account whose password predates
/// OPAQUE, the first half of the record that replaces it. The login that
/// proves the old password brings the second half.
pub(crate) async fn legacy_upgrade(
    state: &AppState,
    signed: Signed,
) -> ApiResult<PasswordSetupAnswer> {
    let body: LegacyUpgradeBody = signed.json()?;
    let name = username(&body.username)?;
    check_signer(&signed, &body.public_key, name.as_str())?;
    limits::count(state, limits::LOGIN_PER_IP, &ip_key(signed.ip)).await?;
    if !matches!(
        stored_password(&state.store, name.as_str()).await?,
        Some(StoredPassword::Legacy(_))
    ) || !state.config.legacy_passwords
    {
        return Err(ApiError::BadRequest(
            "this account has no password from before OPAQUE to replace".into(),
        ));
    }
    registration_response(state, &body.request, name.as_str()).await
}

/// The start of a password proof must be signed by the key it names, and
/// that key must be the account's or no one's yet.
fn check_signer(signed: &Signed, public_key: &str, user: &str) -> ApiResult<bool> {
    let key = crate::error::decode_b64("public_key", public_key)?;
    let device = DevicePublicKey::from_bytes(&key)
        .map_err(|_| ApiError::BadRequest("public_key is not a valid Ed25519 key".into()))?;
    if device != signed.public_key {
        return Err(ApiError::BadSignature(
            "a password proof must be started by the device key that will present it",
        ));
    }
    match &signed.username {
        Some(owner) if owner != user => Err(ApiError::Conflict("device")),
        Some(_) => Ok(true),
        None => Ok(false),
    }
}

/// Which password budget a start spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Budget {
    KnownDevice,
    NewDevice,
    WithPasskey,
    WithRecoveryCode,
}

impl Budget {
    fn as_str(self) -> &'static str {
        match self {
            Budget::KnownDevice => "known_device",
            Budget::NewDevice => "new_device",
            Budget::WithPasskey => "with_passkey",
            Budget::WithRecoveryCode => "with_recovery_code",
        }
    }

    fn parse(text: &str) -> Budget {
        match text {
            "known_device" => Budget::KnownDevice,
            "with_passkey" => Budget::WithPasskey,
            "with_recovery_code" => Budget::WithRecoveryCode,
            _ => Budget::NewDevice,
        }
    }

    /// The budget's limit, and the key it counts under.
    fn counter(self, user: &str, device: &str) -> (Counter, String) {
        match self {
            Budget::KnownDevice => (
                Counter::Backoff(limits::KNOWN_DEVICE_BACKOFF),
                format!("{user}:{device}"),
            ),
            Budget::NewDevice => (
                Counter::Backoff(limits::NEW_DEVICE_BACKOFF),
                user.to_owned(),
            ),
            Budget::WithPasskey => (
                Counter::Limit(limits::PASSWORD_FAILURES_WITH_PASSKEY),
                user.to_owned(),
            ),
            Budget::WithRecoveryCode => (
                Counter::Limit(limits::PASSWORD_FAILURES_WITH_RECOVERY_CODE),
                user.to_owned(),
            ),
        }
    }

    async fn reserve(self, state: &AppState, user: &str, device: &str) -> ApiResult<()> {
        match self.counter(user, device) {
            (Counter::Backoff(backoff), key) => limits::reserve_backoff(state, backoff, &key).await,
            (Counter::Limit(limit), key) => limits::reserve(state, limit, &key).await,
        }
    }

    async fn clear(self, state: &AppState, user: &str, device: &str) -> ApiResult<()> {
        match self.counter(user, device) {
            (Counter::Backoff(backoff), key) => {
                limits::clear_backoff(&state.store, backoff, &key).await
            }
            (Counter::Limit(limit), key) => limits::clear(&state.store, limit, &key).await,
        }
    }
}

/// How a budget counts: slowing down, or a fixed number per window.
#[derive(Debug, Clone, Copy)]
enum Counter {
    Backoff(limits::Backoff),
    Limit(limits::Limit),
}

/// The context a login's sealed state is bound to.
fn login_context(login_id: &str) -> String {
    format!("conclave opaque login v1\0{login_id}")
}

/// `POST /v1/password/login`: starts proving the password (see the
/// module's doc). The answer for an account that does not exist looks like
/// any other; no proof can finish it.
pub(crate) async fn start_login(
    state: &AppState,
    signed: Signed,
) -> ApiResult<PasswordLoginAnswer> {
    let store = &state.store;
    let body: PasswordLoginBody = signed.json()?;
    let name = username(&body.username)?;
    let user = name.as_str();
    let known = check_signer(&signed, &body.public_key, user)?;
    let device = signed.device_id.to_string();
    let ip = signed.ip;
    limits::count(state, limits::LOGIN_PER_IP, &ip_key(ip)).await?;
    if store.account_locked(user).await? {
        state
            .audit
            .record(AuditEvent::failure(AuditAction::Login, user, "account_locked").from_ip(ip))
            .await?;
        return Err(ApiError::AccountLocked);
    }
    let stored = stored_password(store, user).await?;
    if let Some(StoredPassword::Legacy(_)) = stored {
        if !state.config.legacy_passwords {
            return Err(ApiError::BadRequest(
                "this account's password predates OPAQUE and this relay no longer accepts it; \
                 ask the workspace's administrator for a recovery invite"
                    .into(),
            ));
        }
        // Nothing is checked or spent: the proof carries the password itself.
        return Ok(PasswordLoginAnswer {
            legacy: true,
            login_id: None,
            response: None,
        });
    }
    // A factor that cannot be guessed is checked first; then the password's
    // budget is its own, not the backoff anyone's guesses build up.
    let plain = if known {
        Budget::KnownDevice
    } else {
        Budget::NewDevice
    };
    let (factor, factor_id, budget) = match body.second_factor {
        None => (None, None, plain),
        Some(SecondFactor::Totp { .. }) => {
            return Err(ApiError::BadRequest(
                "a TOTP code goes in the proof, not with the password's start".into(),
            ));
        }
        Some(_) if stored.is_none() => (None, None, plain),
        Some(second_factor) => {
            limits::count(state, limits::SECOND_FACTOR_PER_IP, &ip_key(ip)).await?;
            let checked = match second_factor {
                SecondFactor::RecoveryCode { code } => peek_recovery_code(store, user, &code)
                    .await?
                    .map(|id| (Factor::RecoveryCode, id, Budget::WithRecoveryCode))
                    .ok_or("wrong or used recovery code"),
                webauthn => match check_factor(state, user, webauthn).await? {
                    Ok(passed) => Ok((
                        Factor::Webauthn,
                        passed.passkey().unwrap_or_default().to_owned(),
                        Budget::WithPasskey,
                    )),
                    Err(reason) => Err(reason),
                },
            };
            match checked {
                Ok((factor, id, budget)) => (Some(factor), Some(id), budget),
                Err(reason) => return Err(factor_refused(state, user, reason, ip).await),
            }
        }
    };
    budget.reserve(state, user, &device).await?;
    let record = match stored {
        Some(StoredPassword::Opaque(record)) => Some(record),
        _ => {
            // No such account: one aggregated count in the log per window
            // instead of a leaf per guess (see `Store::tally_unknown_login`).
            store.tally_unknown_login().await?;
            None
        }
    };
    let request = decode("request", &body.request)?;
    let (pending, response) = password_server(state)
        .await?
        .start_login(record.as_deref(), &request, user)
        .map_err(malformed)?;
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    let login_id = hex::encode(id);
    let sealed_state = state.server_key.seal(&login_context(&login_id), &pending)?;
    store
        .add_password_login(&PendingLogin {
            login_id: login_id.clone(),
            username: user.to_owned(),
            device_id: device,
            sealed_state,
            account_exists: record.is_some(),
            budget: budget.as_str().to_owned(),
            factor: factor.map(|f| f.as_str().to_owned()),
            factor_id,
            expires_at: store.clock().unix_now() + LOGIN_LIFETIME_SECS,
        })
        .await?;
    Ok(PasswordLoginAnswer {
        legacy: false,
        login_id: Some(login_id),
        response: Some(STANDARD.encode(response)),
    })
}

/// A recovery code checked without being spent: its id if it is good.
pub(crate) async fn peek_recovery_code(
    store: &Store,
    user: &str,
    code: &SecretText,
) -> ApiResult<Option<String>> {
    let Some((code_id, whole)) = RECOVERY_CODE.parse(code.expose()) else {
        return Ok(None);
    };
    let stored = store.unused_recovery_code(user, &code_id).await?;
    Ok(verify_secret(whole, stored).await?.then_some(code_id))
}

/// A password login finished by a proof.
#[derive(Debug)]
pub(crate) struct FinishedLogin {
    /// The second factor checked with the start, with its id (a passkey's
    /// credential id, a recovery code's id), to be spent or judged now.
    pub(crate) factor: Option<(Factor, String)>,
}

/// Finishes the login `opaque` names, started by `device` for `user`:
/// `Err(BadCredentials)` if the password was wrong (logged, and told to the
/// account's other devices when a known device spent its free tries).
pub(crate) async fn finish_login(
    state: &AppState,
    user: &str,
    device: &str,
    opaque: OpaqueProof,
    failure: AuditEvent,
) -> ApiResult<FinishedLogin> {
    let login = state
        .store
        .take_password_login(&opaque.login_id)
        .await?
        .ok_or_else(|| {
            ApiError::BadRequest(
                "that password login is unknown, used or expired; start it again".into(),
            )
        })?;
    if login.username != user || login.device_id != device {
        return Err(ApiError::BadRequest(
            "that password login was started for another account or device".into(),
        ));
    }
    if !login.account_exists {
        // Counted, and tallied in the log, when it started.
        return Err(ApiError::BadCredentials);
    }
    let pending = state
        .server_key
        .open(&login_context(&login.login_id), &login.sealed_state)?;
    let verified = match &opaque.finalization {
        Some(finalization) => {
            let finalization = decode("finalization", finalization)?;
            password_server(state)
                .await?
                .finish_login(&pending, &finalization, user)
        }
        None => false,
    };
    let budget = Budget::parse(&login.budget);
    if !verified {
        if budget == Budget::KnownDevice {
            super::proof::wrong_password_from_known_device(state, user, device, failure).await?;
        } else {
            state.audit.record(failure).await?;
        }
        return Err(ApiError::BadCredentials);
    }
    budget.clear(state, user, device).await?;
    let factor = match (login.factor.as_deref(), login.factor_id) {
        (Some("recovery_code"), Some(id)) => Some((Factor::RecoveryCode, id)),
        (Some("webauthn"), Some(id)) => Some((Factor::Webauthn, id)),
        _ => None,
    };
    Ok(FinishedLogin { factor })
}

/// Logs the password logins that expired without a proof: their starter
/// learned whether the password was right and did not say (a client says,
/// even when it was wrong). Run with the other pruning.
pub(crate) async fn log_abandoned_logins(state: &AppState) -> ApiResult<usize> {
    let expired = state.store.take_expired_password_logins().await?;
    let mut logged = 0;
    for login in expired.iter().filter(|login| login.account_exists) {
        state
            .audit
            .record(
                AuditEvent::failure(AuditAction::Login, &login.username, "password_not_finished")
                    .device(&login.device_id),
            )
            .await?;
        logged += 1;
    }
    Ok(logged)
}

/// Replaces the argon2id hash of an account from before OPAQUE with the
/// record its owner's client sent, once the old password verified.
pub(crate) async fn upgrade_legacy(
    state: &AppState,
    user: &str,
    old_hash: &str,
    upload: &SecretText,
    device: &str,
) -> ApiResult<()> {
    let verifier = verifier_from_upload(state, upload).await?;
    let entry = state.audit.entry(
        AuditEvent::success(AuditAction::PasswordChanged, user)
            .device(device)
            .detail("to", "opaque"),
    );
    state
        .store
        .upgrade_password(user, old_hash, &verifier, entry)
        .await?;
    Ok(())
}
