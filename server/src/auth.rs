//! Passwords and signed requests.
//!
//! There is no session token: after login every request carries the device's
//! Ed25519 signature over method, path, timestamp, nonce and body hash
//! (`conclave_crypto::canonical_request`). A stolen request can't be replayed
//! (nonces are single-use, timestamps expire) and no secret crosses the wire
//! after the password at login.

use std::net::{IpAddr, SocketAddr};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequest};
use axum::http::Request;
use conclave_crypto::{
    DeviceId, DevicePublicKey, MAX_CLOCK_SKEW_SECS, SignedHeaders, verify_request,
};
use conclave_proto::{Password, routes};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::AppState;
use crate::error::ApiError;
use crate::store::{DeviceSession, Nonce};

/// argon2id at the OWASP minimum: 19 MiB, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    #[allow(clippy::unwrap_used)] // constant, valid parameters
    let params = Params::new(19 * 1024, 2, 1, None).unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// How many argon2 computations run at once: one core is left for
/// everything else (signed requests, deliveries), so a flood of logins
/// slows logins, not the relay.
fn hashing_slots() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}

/// Computations allowed to wait for a slot; beyond that the relay answers
/// 503 at once rather than queueing without end.
const HASHING_QUEUE_PER_SLOT: usize = 16;

/// Longest wait for a slot before answering 503.
const HASHING_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The bounded gate every argon2 computation passes.
struct HashingGate {
    slots: tokio::sync::Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
    queue_limit: usize,
}

fn hashing_gate() -> &'static HashingGate {
    static GATE: std::sync::OnceLock<HashingGate> = std::sync::OnceLock::new();
    GATE.get_or_init(|| {
        let slots = hashing_slots();
        HashingGate {
            slots: tokio::sync::Semaphore::new(slots),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            queue_limit: slots * HASHING_QUEUE_PER_SLOT,
        }
    })
}

/// Takes a slot for one argon2 computation, or refuses with 503 `busy` when
/// too many already wait (or the wait would be long).
async fn hashing_slot() -> Result<tokio::sync::SemaphorePermit<'static>, ApiError> {
    use std::sync::atomic::Ordering;
    let gate = hashing_gate();
    if let Ok(permit) = gate.slots.try_acquire() {
        return Ok(permit);
    }
    if gate.waiting.fetch_add(1, Ordering::AcqRel) >= gate.queue_limit {
        gate.waiting.fetch_sub(1, Ordering::AcqRel);
        return Err(ApiError::Busy { retry_after: 1 });
    }
    let permit = tokio::time::timeout(HASHING_WAIT, gate.slots.acquire()).await;
    gate.waiting.fetch_sub(1, Ordering::AcqRel);
    match permit {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(ApiError::Busy { retry_after: 2 }),
    }
}

/// Hashes a password (PHC string), as the relay did before OPAQUE: only
/// tests make such hashes now, to stand for accounts from before.
#[cfg(test)]
async fn hash_password(password: Password) -> Result<String, ApiError> {
    hash_secret(password.into_zeroizing()).await
}

/// Hashes any secret the relay must recognise but never learn (passwords,
/// recovery and invite codes): argon2id, one set of parameters for all.
pub async fn hash_secret(secret: Zeroizing<String>) -> Result<String, ApiError> {
    let _slot = hashing_slot().await?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        argon2()
            .hash_password(secret.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::Internal(format!("argon2: {e}")))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("hash task: {e}")))?
}

/// Verifies a password against a stored hash, or against a dummy hash when the
/// account does not exist, so timing does not reveal which usernames exist.
pub async fn verify_password(password: Password, stored: Option<String>) -> Result<bool, ApiError> {
    verify_secret(password.into_zeroizing(), stored).await
}

/// Verifies a secret against its argon2id hash (or a dummy, for equal timing).
pub async fn verify_secret(
    password: Zeroizing<String>,
    stored: Option<String>,
) -> Result<bool, ApiError> {
    let _slot = hashing_slot().await?;
    tokio::task::spawn_blocking(move || {
        const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$ZmRB6sl1qDlk4XG8jF7JTuG8A4x26m9pBTqhMfTf3Hk";
        let exists = stored.is_some();
        let text = stored.unwrap_or_else(|| DUMMY.to_owned());
        let parsed = PasswordHash::new(&text).map_err(|e| ApiError::Internal(format!("stored hash: {e}")))?;
        // The verifier compares digests in constant time.
        let matches = argon2().verify_password(password.as_bytes(), &parsed).is_ok();
        Ok(exists && matches)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("verify task: {e}")))?
}

/// Reads a request body, refusing more than `limit` bytes.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::TooLarge(limit))
}

/// A request whose signature, freshness and nonce were checked, with its body.
#[derive(Debug)]
pub struct Signed {
    /// The signing device.
    pub device_id: DeviceId,
    /// Its account; `None` only for the login request, signed by a device not yet registered.
    pub username: Option<String>,
    /// The device's public key.
    pub public_key: DevicePublicKey,
    /// The raw body.
    pub body: Bytes,
    /// Where the request came from, if the listener knows.
    pub ip: Option<IpAddr>,
}

/// The client address of a request served by [`crate::run`].
pub fn client_ip(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
}

/// A request to a signature-free route, within its address's pace
/// ([`Pace`](crate::limits::Pace)): as an extractor, it answers 429
/// `rate_limited` with `Retry-After` before the handler reads anything.
#[derive(Debug)]
pub struct PublicRead;

impl axum::extract::FromRequestParts<AppState> for PublicRead {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &AppState,
    ) -> Result<Self, ApiError> {
        if app.config.rate_limits {
            let ip = client_ip(&parts.extensions);
            let key = crate::limits::ip_key(ip);
            app.public_reads
                .take(&key, app.config.clock.unix_millis())?;
        }
        Ok(PublicRead)
    }
}

/// Routes an account without a required second factor may still use: the
/// ones that enroll one (and login, to get that far).
fn enrollment_route(method: &axum::http::Method, path: &str) -> bool {
    use axum::http::Method;
    matches!(
        (method.clone(), path),
        (Method::GET, routes::ACCOUNT)
            | (Method::POST, routes::DEVICES)
            | (Method::POST, routes::PASSWORD_LOGIN)
            | (Method::POST, routes::ACCOUNT_TOTP)
            | (Method::POST, routes::ACCOUNT_TOTP_CONFIRM)
            | (Method::POST, routes::ACCOUNT_WEBAUTHN_REGISTER)
            | (Method::POST, routes::ACCOUNT_WEBAUTHN_REGISTER_FINISH)
    )
}

/// Whether a device's `last_seen_at` should be written again. Idle time is
/// kept to a quarter of the timeout (at most a minute): one write a minute,
/// not one per request.
pub fn idle_clock_due(last_seen_at: u64, config: &crate::Config) -> bool {
    let granularity = (config.session_idle_timeout / 4).clamp(1, 60);
    config.clock.unix_now().saturating_sub(last_seen_at) >= granularity
}

/// Why a session is no longer good, if it isn't.
pub fn session_problem(session: &DeviceSession, config: &crate::Config) -> Option<ApiError> {
    let now = config.clock.unix_now();
    if session.revoked_at.is_some() {
        return Some(ApiError::DeviceRevoked);
    }
    let alive = session.session_started_at.is_some_and(|started| {
        now.saturating_sub(started) <= config.session_lifetime
            && now.saturating_sub(session.last_seen_at) <= config.session_idle_timeout
    });
    (!alive).then_some(ApiError::SessionExpired)
}

/// The one field of a login body ([`conclave_proto::LoginBody`]) read
/// before its signature is checked: the key that must have signed it. The
/// handler reads the whole body once the request is authenticated.
#[derive(Deserialize)]
struct LoginKey {
    public_key: String,
}

/// The body limit of a request to `path`: for chunk uploads a sealed chunk,
/// whatever `max_body_bytes` says for JSON requests.
fn body_limit(path: &str, configured: usize) -> usize {
    if path.starts_with("/v1/blobs/") && path.contains("/chunks/") {
        configured.max(conclave_crypto::attachment::SEALED_CHUNK_BYTES)
    } else {
        configured
    }
}

/// A [`Signed`] request whose nonce is not spent yet: its handler spends
/// it in the transaction that carries the request out (a posted message's
/// append), so the request costs one flush to disk, not two. A handler
/// that takes one must spend [`SignedUnspent::nonce`] on every path.
#[derive(Debug)]
pub struct SignedUnspent {
    /// The request, its signature and session checked.
    pub signed: Signed,
    /// Its nonce, to spend.
    pub nonce: Nonce,
}

impl FromRequest<AppState> for Signed {
    type Rejection = ApiError;

    async fn from_request(request: Request<Body>, state: &AppState) -> Result<Self, ApiError> {
        let SignedUnspent { signed, nonce } = SignedUnspent::from_request(request, state).await?;
        if !state.store.spend_nonce(nonce).await? {
            return Err(ApiError::Replayed);
        }
        Ok(signed)
    }
}

impl FromRequest<AppState> for SignedUnspent {
    type Rejection = ApiError;

    async fn from_request(request: Request<Body>, state: &AppState) -> Result<Self, ApiError> {
        let unverified = Unverified::read(request, state).await?;
        let session = state.store.device_session(&unverified.device_key).await?;
        unverified.check(state, session).await
    }
}

/// A signed request read but not yet checked: its parts, its body (within
/// the route's limit), its signature headers parsed and its timestamp
/// fresh. Whoever takes it reads the signing device's row
/// ([`Store::device_session`](crate::store::Store::device_session), alone
/// or with what the route reads anyway) and hands it to
/// [`Unverified::check`]; nothing read with it may be acted on before.
pub struct Unverified {
    parts: axum::http::request::Parts,
    body: Bytes,
    headers: SignedHeaders,
    device_key: String,
}

impl Unverified {
    /// Reads the body and the signature headers, refusing a stale request.
    pub async fn read(request: Request<Body>, state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let limit = body_limit(parts.uri.path(), state.config.max_body_bytes);
        let body = read_body(body, limit).await?;
        let headers = SignedHeaders::from_lookup(|name| {
            parts.headers.get(name).and_then(|v| v.to_str().ok())
        })
        .map_err(|e| match e {
            conclave_crypto::Error::MalformedHeader(name) => ApiError::BadSignature(name),
            _ => ApiError::BadSignature("headers"),
        })?;
        let now = state.config.clock.unix_now();
        if headers.timestamp.abs_diff(now) > MAX_CLOCK_SKEW_SECS {
            return Err(ApiError::StaleRequest(MAX_CLOCK_SKEW_SECS));
        }
        let device_key = headers.device_id.to_string();
        Ok(Unverified {
            parts,
            body,
            headers,
            device_key,
        })
    }

    /// The device the request says signed it, not yet proven.
    pub fn claimed_device(&self) -> &str {
        &self.device_key
    }

    /// The body, not yet proven to be the device's.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Checks the request against `session`, the claimed device's row as
    /// the store has it (`None`: no such device): signature, pace, session
    /// and second factor. The nonce is left for the caller to spend.
    pub async fn check(
        self,
        state: &AppState,
        session: Option<DeviceSession>,
    ) -> Result<SignedUnspent, ApiError> {
        let Unverified {
            parts,
            body,
            headers,
            device_key,
        } = self;
        // A login, and the start of its password proof, may be signed by a
        // key the relay does not know yet (the key they register).
        let is_login = parts.method == axum::http::Method::POST
            && matches!(
                parts.uri.path(),
                routes::DEVICES | routes::PASSWORD_LOGIN | routes::PASSWORD_UPGRADE
            );
        let (username, public_key) = match &session {
            Some(device) => (
                Some(device.username.clone()),
                DevicePublicKey::from_bytes(&device.public_key)
                    .map_err(|_| ApiError::Internal("stored device key invalid".into()))?,
            ),
            // Only login may be signed by an unknown device, with its key in the body.
            None if is_login => {
                let login: LoginKey = serde_json::from_slice(&body)
                    .map_err(|e| ApiError::BadRequest(format!("login body: {e}")))?;
                let bytes = crate::error::decode_b64("public_key", &login.public_key)?;
                let key = DevicePublicKey::from_bytes(&bytes).map_err(|_| {
                    ApiError::BadRequest("public_key is not a valid Ed25519 key".into())
                })?;
                (None, key)
            }
            None => return Err(ApiError::BadSignature("unknown device")),
        };
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        verify_request(&public_key, parts.method.as_str(), path, &body, &headers)
            .map_err(|_| ApiError::BadSignature("signature does not verify"))?;
        // A known device's requests keep to a pace, counted after the
        // signature (nobody else can spend it) and before the nonce is
        // written: a stolen key's flood costs the relay's one writer nothing
        // past the burst.
        if session.is_some() && state.config.rate_limits {
            let now = state.config.clock.unix_millis();
            state.device_requests.take(&device_key, now)?;
        }
        // Anyone can make a fresh key and sign a login with it: cap those per
        // address before their nonces are written, so a flood of them costs
        // one counter row, not a row per request.
        if session.is_none() {
            crate::limits::count(
                state,
                crate::limits::NEW_KEYS_PER_IP,
                &crate::limits::ip_key(client_ip(&parts.extensions)),
            )
            .await?;
        }
        // Only with a valid signature may the nonce be spent (by the caller).
        let nonce = Nonce {
            device_id: device_key.clone(),
            nonce: headers.nonce.clone(),
            expires_at: headers.timestamp + MAX_CLOCK_SKEW_SECS + 1,
        };
        if let Some(session) = &session {
            match session_problem(session, &state.config) {
                Some(ApiError::DeviceRevoked) => return Err(ApiError::DeviceRevoked),
                // Logging in again is how an expired session is renewed.
                Some(problem) if !is_login => return Err(problem),
                _ => {}
            }
            if session.second_factor_required
                && !session.has_second_factor
                && !enrollment_route(&parts.method, parts.uri.path())
            {
                return Err(ApiError::EnrollmentRequired(
                    "this workspace requires two-factor sign-in; enroll TOTP or a passkey",
                ));
            }
            if idle_clock_due(session.last_seen_at, &state.config) {
                state.store.touch_device(&device_key).await?;
            }
        }
        Ok(SignedUnspent {
            signed: Signed {
                device_id: headers.device_id,
                username,
                public_key,
                body,
                ip: client_ip(&parts.extensions),
            },
            nonce,
        })
    }
}

impl Signed {
    /// The account, for every request but login.
    pub fn username(&self) -> Result<&str, ApiError> {
        self.username
            .as_deref()
            .ok_or(ApiError::BadSignature("unknown device"))
    }

    /// Parses the body as JSON, naming the problem if it is not.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        parse_json(&self.body)
    }
}

/// Parses a request body as JSON (a `conclave_proto` body type), naming the
/// problem if it is not.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn password_hash_verifies_only_the_password() {
        let pw = |s: &str| Password::new(s.to_owned());
        let hash = hash_password(pw("correct horse")).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(!hash.contains("correct horse"));
        assert!(
            verify_password(pw("correct horse"), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify_password(pw("wrong horse"), Some(hash))
                .await
                .unwrap()
        );
        assert!(!verify_password(pw("correct horse"), None).await.unwrap());
        assert_eq!(format!("{:?}", pw("secret")), "Password(<redacted>)");
    }
}
