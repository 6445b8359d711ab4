//! The one place that maps failures to HTTP status codes.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use conclave_proto::{ErrorBody, ErrorCode};

/// Every way a request can fail. Handlers return this; only
/// [`IntoResponse`] below chooses status codes.
/// What stops the relay, or an admin command, outside a request: a
/// setting, a file, a key, the database. Its message names the thing and
/// the problem; `conclave-server` prints it on one line. Requests fail with
/// [`ApiError`] instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A setting out of range or malformed, named in the message.
    #[error("{0}")]
    Setting(String),
    /// A file or directory that could not be read, created or written.
    #[error("cannot {action} {}: {source}", path.display())]
    File {
        /// What was tried, e.g. "read certificate".
        action: String,
        /// The file.
        path: std::path::PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A key or certificate that is malformed, does not fit, or is open to
    /// others.
    #[error("{0}")]
    Key(String),
    /// The database could not be opened or read.
    #[error("{what}: {source}")]
    Database {
        /// What was tried.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: crate::store::StoreError,
    },
    /// The host refused something: a port, a signal handler.
    #[error("{what}: {source}")]
    Host {
        /// What was tried.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// An admin command refused, with the reason (no such account, …).
    #[error("{0}")]
    Refused(String),
}

impl ServerError {
    /// A failed file operation: `action` is what was tried ("read", "create
    /// data directory").
    pub(crate) fn file(
        action: impl Into<String>,
        path: &std::path::Path,
        source: std::io::Error,
    ) -> Self {
        ServerError::File {
            action: action.into(),
            path: path.to_owned(),
            source,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The body or a parameter is malformed; the text says which and how.
    #[error("{0}")]
    BadRequest(String),
    /// An MLS message failed to parse or validate.
    #[error("invalid MLS message: {0}")]
    InvalidMls(String),
    /// Missing, malformed or wrong request signature.
    #[error("request signature rejected: {0}")]
    BadSignature(&'static str),
    /// The timestamp is outside the allowed clock skew.
    #[error("request is stale: its timestamp is more than {0} seconds from the server clock")]
    StaleRequest(u64),
    /// The nonce was used before: a replay.
    #[error("request replayed: this nonce was already used")]
    Replayed,
    /// Username or password wrong (deliberately not saying which).
    #[error("wrong username or password")]
    BadCredentials,
    /// The device is authenticated but not allowed to do this.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// Managing a channel (retention, history sharing, archive) needs a
    /// current member who created it or is a workspace admin; the text says
    /// which part is missing.
    #[error("not a manager of this channel: {0}")]
    NotChannelManager(&'static str),
    /// The route exists but not with this method.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// No such thing.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The name or id is taken.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// A handshake or application message was built for another epoch.
    #[error("wrong epoch: the group is at epoch {current}, the message is for epoch {got}")]
    WrongEpoch {
        /// The group's current epoch.
        current: u64,
        /// The epoch the message was for.
        got: u64,
    },
    /// The body exceeded the configured limit.
    #[error("request body too large: the limit is {0} bytes")]
    TooLarge(usize),
    /// An attachment larger than the relay accepts.
    #[error("file too large: the relay accepts attachments up to {0} bytes (encrypted)")]
    FileTooLarge(u64),
    /// The account's attachments would exceed its quota.
    #[error("upload quota exceeded: {used} of {quota} bytes in use, this file needs {needed}")]
    QuotaExceeded {
        /// Bytes the account's attachments take now.
        used: u64,
        /// The account's quota.
        quota: u64,
        /// The new file's encrypted size.
        needed: u64,
    },
    /// A key package in the upload is stored already (or repeated in it):
    /// nothing from the upload was stored.
    #[error("key package already uploaded: each package is stored once; nothing was stored")]
    DuplicateKeyPackage,
    /// The device holds as many unused one-time key packages as it may.
    #[error(
        "key package stock full: this device holds {stocked} unused one-time packages, at most {max} are kept; nothing was stored"
    )]
    KeyPackageStockFull {
        /// Unused one-time packages the device holds.
        stocked: u64,
        /// The cap.
        max: u64,
    },
    /// The user has no device with a key package to hand out.
    #[error("user {0} has no key packages available")]
    NoKeyPackages(String),
    /// Password right, but the account needs a second factor; lists the kinds it has.
    #[error("a second factor is required: {}", .0.join(", "))]
    SecondFactorRequired(Vec<&'static str>),
    /// The TOTP code, recovery code or WebAuthn assertion was wrong, expired or reused.
    #[error("second factor rejected: {0}")]
    SecondFactorInvalid(&'static str),
    /// The device's session ran out or was ended; it must log in again.
    #[error("session expired: log in again on this device")]
    SessionExpired,
    /// The device was revoked; it can never sign requests again.
    #[error("this device was revoked")]
    DeviceRevoked,
    /// The account must enroll a second factor before doing this.
    #[error("enroll a second factor first: {0}")]
    EnrollmentRequired(&'static str),
    /// Registration is by invitation and no invite code was given.
    #[error("registration is by invitation: an invite code is required")]
    InviteRequired,
    /// The invite code is wrong, spent or expired.
    #[error("invite code is invalid, already used or expired")]
    InviteInvalid,
    /// Too many requests; try again after the given number of seconds.
    #[error("too many attempts: retry after {retry_after} seconds")]
    RateLimited {
        /// Seconds until the window reopens.
        retry_after: u64,
    },
    /// Faster than a pace (a device's signed requests, an address's public
    /// log reads): nothing was done; the same request may come again after
    /// the given seconds. Apart from [`ApiError::RateLimited`] so that a
    /// client can wait and send again without ever repeating a password or
    /// second-factor guess on its own.
    #[error("slow down: retry after {retry_after} seconds")]
    SlowDown {
        /// Seconds until the pace allows one more.
        retry_after: u64,
    },
    /// The relay is saturated (password hashing, or the database's write
    /// lock); the client should try again after the given seconds.
    #[error("the relay is busy: retry after {retry_after} seconds")]
    Busy {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The audit log could not take the event that records this request,
    /// so the request was not carried out (or, for a refusal, not answered
    /// as one): no security event goes unrecorded.
    #[error("the audit log is unavailable; nothing was changed, try again")]
    AuditUnavailable(String),
    /// The change alters who can sign in, and the request carried no proof.
    #[error(
        "this change needs a fresh proof: the password and a second factor (if the account has one), or a registered passkey"
    )]
    StepUpRequired,
    /// The proof's passkey is younger than the recovery window, and the
    /// change would take sign-in away from older factors.
    #[error(
        "this passkey was added less than {0} days ago: removing a device, a factor or the recovery codes, or changing the password, needs the password and a second factor the account had before it"
    )]
    FactorTooNew(u64),
    /// A host administrator locked the account.
    #[error(
        "this account is locked by the workspace's administrator; ask them for a recovery invite"
    )]
    AccountLocked,
    /// The database cannot be reached from this node right now; another
    /// node, or this one a little later, may serve the request.
    #[error("the relay's database is unavailable; try again or another node")]
    Unavailable(String),
    /// A storage or internal failure; details go to the log, not the client.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, ErrorCode) {
        use ApiError::*;
        match self {
            BadRequest(_) => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest),
            InvalidMls(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidMlsMessage),
            BadSignature(_) => (StatusCode::UNAUTHORIZED, ErrorCode::BadSignature),
            StaleRequest(_) => (StatusCode::UNAUTHORIZED, ErrorCode::StaleRequest),
            Replayed => (StatusCode::UNAUTHORIZED, ErrorCode::ReplayedRequest),
            BadCredentials => (StatusCode::UNAUTHORIZED, ErrorCode::BadCredentials),
            Forbidden(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
            NotChannelManager(_) => (StatusCode::FORBIDDEN, ErrorCode::NotChannelManager),
            NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed),
            Conflict(_) => (StatusCode::CONFLICT, ErrorCode::AlreadyExists),
            WrongEpoch { .. } => (StatusCode::CONFLICT, ErrorCode::WrongEpoch),
            TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::BodyTooLarge),
            FileTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::FileTooLarge),
            QuotaExceeded { .. } => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::QuotaExceeded),
            NoKeyPackages(_) => (StatusCode::NOT_FOUND, ErrorCode::NoKeyPackages),
            DuplicateKeyPackage => (StatusCode::CONFLICT, ErrorCode::DuplicateKeyPackage),
            KeyPackageStockFull { .. } => (StatusCode::CONFLICT, ErrorCode::KeyPackageStockFull),
            SecondFactorRequired(_) => (StatusCode::UNAUTHORIZED, ErrorCode::SecondFactorRequired),
            SecondFactorInvalid(_) => (StatusCode::UNAUTHORIZED, ErrorCode::SecondFactorInvalid),
            SessionExpired => (StatusCode::UNAUTHORIZED, ErrorCode::SessionExpired),
            DeviceRevoked => (StatusCode::UNAUTHORIZED, ErrorCode::DeviceRevoked),
            EnrollmentRequired(_) => (
                StatusCode::FORBIDDEN,
                ErrorCode::SecondFactorEnrollmentRequired,
            ),
            InviteRequired => (StatusCode::FORBIDDEN, ErrorCode::InviteRequired),
            InviteInvalid => (StatusCode::FORBIDDEN, ErrorCode::InviteInvalid),
            RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited),
            SlowDown { .. } => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::SlowDown),
            Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::DatabaseUnavailable,
            ),
            Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Busy),
            AuditUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::AuditUnavailable),
            StepUpRequired => (StatusCode::UNAUTHORIZED, ErrorCode::StepUpRequired),
            FactorTooNew(_) => (StatusCode::FORBIDDEN, ErrorCode::FactorTooNew),
            AccountLocked => (StatusCode::FORBIDDEN, ErrorCode::AccountLocked),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if matches!(self, ApiError::WrongEpoch { .. }) {
            crate::metrics::METRICS.commit_conflicts.inc();
        } else if matches!(
            self,
            ApiError::RateLimited { .. } | ApiError::SlowDown { .. }
        ) {
            crate::metrics::METRICS.rate_limited.inc();
        }
        match &self {
            // The detail stays in the log; it never carries request bodies.
            ApiError::Internal(detail) => tracing::error!(%detail, "internal error"),
            ApiError::Unavailable(detail) => tracing::warn!(%detail, "database unavailable"),
            ApiError::AuditUnavailable(detail) => {
                tracing::error!(%detail, "audit log unavailable; request refused")
            }
            _ => {}
        }
        let mut body = ErrorBody::new(code, self.to_string());
        match &self {
            ApiError::WrongEpoch { current, .. } => body.current_epoch = Some(*current),
            ApiError::SecondFactorRequired(factors) => {
                body.factors = Some(factors.iter().map(|f| (*f).to_owned()).collect());
            }
            ApiError::RateLimited { retry_after }
            | ApiError::SlowDown { retry_after }
            | ApiError::Busy { retry_after } => {
                body.retry_after = Some(*retry_after);
                let retry = [(http::header::RETRY_AFTER, retry_after.to_string())];
                return (status, retry, Json(body)).into_response();
            }
            _ => {}
        }
        (status, Json(body)).into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        use crate::store::StoreError::{Database, Log};
        use conclave_audit::log::LogError;
        // A change's audit entry is appended in the change's transaction, so
        // the database error may come from either.
        let database = match &error {
            Database(e) | Log(LogError::Database(e)) => Some(e),
            _ => None,
        };
        match database {
            // The connection, not the request: 503, so that clients and load
            // balancers try another node instead of giving up.
            Some(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::WorkerCrashed,
            ) => ApiError::Unavailable(format!("database: {error}")),
            // SQLite's write lock stayed taken past the busy timeout (5, 6
            // and their extended codes), or PostgreSQL gave up a transaction
            // to a conflicting one (40001, 40P01): the relay is overloaded,
            // not broken. 503 with a retry, never 500.
            Some(sqlx::Error::Database(e))
                if matches!(
                    e.code().as_deref(),
                    Some("5" | "6" | "261" | "262" | "517" | "40001" | "40P01")
                ) =>
            {
                tracing::warn!(error = %error, "database busy");
                ApiError::Busy { retry_after: 1 }
            }
            // The log refused the entry of the change: the change was rolled
            // back with it.
            _ if matches!(error, Log(_)) => ApiError::AuditUnavailable(error.to_string()),
            _ => ApiError::Internal(format!("database: {error}")),
        }
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

/// A username from a request field, or a refusal saying what is wrong with it.
pub(crate) fn username_in(text: &str) -> ApiResult<conclave_crypto::Username> {
    conclave_crypto::Username::parse(text).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// Base64 (standard, padded) from a request field, or a refusal naming it.
pub(crate) fn decode_b64(field: &'static str, text: &str) -> ApiResult<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| ApiError::BadRequest(format!("{field} is not valid base64")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limited_answers_say_when_to_retry() {
        let response = ApiError::RateLimited { retry_after: 42 }.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "42");
        let response = ApiError::SlowDown { retry_after: 2 }.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "2");
        let response = ApiError::SecondFactorRequired(vec!["totp"]).into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    /// The body of a refusal is the protocol's `ErrorBody`, byte for byte
    /// what the relay wrote before that type existed.
    #[tokio::test]
    async fn refusals_carry_the_protocols_error_body() {
        async fn body(error: ApiError) -> String {
            let bytes = axum::body::to_bytes(error.into_response().into_body(), 1 << 16)
                .await
                .unwrap();
            String::from_utf8(bytes.to_vec()).unwrap()
        }
        assert_eq!(
            body(ApiError::WrongEpoch { current: 4, got: 3 }).await,
            r#"{"current_epoch":4,"error":"wrong_epoch","message":"wrong epoch: the group is at epoch 4, the message is for epoch 3"}"#
        );
        assert_eq!(
            body(ApiError::Busy { retry_after: 1 }).await,
            r#"{"error":"busy","message":"the relay is busy: retry after 1 seconds","retry_after":1}"#
        );
        assert_eq!(
            body(ApiError::SecondFactorRequired(vec!["totp", "webauthn"])).await,
            r#"{"error":"second_factor_required","factors":["totp","webauthn"],"message":"a second factor is required: totp, webauthn"}"#
        );
        assert_eq!(
            body(ApiError::Forbidden("members only")).await,
            r#"{"error":"forbidden","message":"forbidden: members only"}"#
        );
    }

    #[test]
    fn a_lost_database_connection_is_503_and_a_failed_query_500() {
        let lost = crate::store::StoreError::Database(sqlx::Error::PoolTimedOut);
        let response = ApiError::from(lost).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let failed = crate::store::StoreError::Database(sqlx::Error::RowNotFound);
        let response = ApiError::from(failed).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
