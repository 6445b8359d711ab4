//! The body of every refusal: `{"error": code, "message": text, …}`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why the relay refused a request: the `error` field of an [`ErrorBody`].
///
/// Clients branch on the code, never on the message text. A code this crate
/// does not know (from a newer relay) reads as [`ErrorCode::Other`], kept
/// verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
#[non_exhaustive]
pub enum ErrorCode {
    /// `bad_request`: the body or a parameter is malformed.
    BadRequest,
    /// `invalid_mls_message`: an MLS message failed to parse or validate.
    InvalidMlsMessage,
    /// `bad_signature`: missing, malformed or wrong request signature.
    BadSignature,
    /// `stale_request`: the timestamp is outside the allowed clock skew.
    StaleRequest,
    /// `replayed_request`: the nonce was used before.
    ReplayedRequest,
    /// `bad_credentials`: username or password wrong.
    BadCredentials,
    /// `forbidden`: the device may not do this.
    Forbidden,
    /// `not_channel_manager`: managing a channel needs its creator or an admin.
    NotChannelManager,
    /// `not_found`: no such thing (or route).
    NotFound,
    /// `method_not_allowed`: the route exists, not with this method.
    MethodNotAllowed,
    /// `already_exists`: the name or id is taken.
    AlreadyExists,
    /// `wrong_epoch`: the message was built for another epoch; the body's
    /// `current_epoch` says which one the group is at.
    WrongEpoch,
    /// `body_too_large`: the body exceeded the configured limit.
    BodyTooLarge,
    /// `file_too_large`: an attachment larger than the relay accepts.
    FileTooLarge,
    /// `quota_exceeded`: the account's attachments would exceed its quota.
    QuotaExceeded,
    /// `no_key_packages`: the user has no key package to hand out.
    NoKeyPackages,
    /// `duplicate_key_package`: a package in the upload is stored already.
    DuplicateKeyPackage,
    /// `key_package_stock_full`: the device holds as many packages as it may.
    KeyPackageStockFull,
    /// `second_factor_required`: the body's `factors` lists the kinds the account has.
    SecondFactorRequired,
    /// `second_factor_invalid`: the code or assertion was wrong, expired or reused.
    SecondFactorInvalid,
    /// `session_expired`: the device must log in again.
    SessionExpired,
    /// `device_revoked`: the device can never sign requests again.
    DeviceRevoked,
    /// `second_factor_enrollment_required`: enroll a second factor first.
    SecondFactorEnrollmentRequired,
    /// `invite_required`: registration is by invitation.
    InviteRequired,
    /// `invite_invalid`: the invite code is wrong, spent or expired.
    InviteInvalid,
    /// `rate_limited`: too many attempts; the body's `retry_after` says when to retry.
    RateLimited,
    /// `slow_down`: this device (or, for the public log, this address) asks
    /// faster than its pace; nothing was done, and the same request, sent
    /// again after the body's `retry_after`, is answered as usual.
    SlowDown,
    /// `database_unavailable`: this node cannot reach its database; another may.
    DatabaseUnavailable,
    /// `busy`: the relay is saturated; the body's `retry_after` says when to retry.
    Busy,
    /// `audit_unavailable`: the audit log could not record the request, so
    /// nothing was changed.
    AuditUnavailable,
    /// `step_up_required`: the change needs a fresh password and second factor.
    StepUpRequired,
    /// `factor_too_new`: the passkey that made the proof was added inside the
    /// recovery window, and the change would take sign-in away from the
    /// factors the account had before it.
    FactorTooNew,
    /// `account_locked`: a host administrator locked the account.
    AccountLocked,
    /// `internal`: a failure inside the relay; details are in its log only.
    Internal,
    /// A code this crate does not know, as the relay wrote it.
    Other(String),
}

impl ErrorCode {
    /// Every code this crate knows, in the order above.
    pub const KNOWN: [ErrorCode; 34] = [
        ErrorCode::BadRequest,
        ErrorCode::InvalidMlsMessage,
        ErrorCode::BadSignature,
        ErrorCode::StaleRequest,
        ErrorCode::ReplayedRequest,
        ErrorCode::BadCredentials,
        ErrorCode::Forbidden,
        ErrorCode::NotChannelManager,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::AlreadyExists,
        ErrorCode::WrongEpoch,
        ErrorCode::BodyTooLarge,
        ErrorCode::FileTooLarge,
        ErrorCode::QuotaExceeded,
        ErrorCode::NoKeyPackages,
        ErrorCode::DuplicateKeyPackage,
        ErrorCode::KeyPackageStockFull,
        ErrorCode::SecondFactorRequired,
        ErrorCode::SecondFactorInvalid,
        ErrorCode::SessionExpired,
        ErrorCode::DeviceRevoked,
        ErrorCode::SecondFactorEnrollmentRequired,
        ErrorCode::InviteRequired,
        ErrorCode::InviteInvalid,
        ErrorCode::RateLimited,
        ErrorCode::SlowDown,
        ErrorCode::DatabaseUnavailable,
        ErrorCode::Busy,
        ErrorCode::AuditUnavailable,
        ErrorCode::StepUpRequired,
        ErrorCode::FactorTooNew,
        ErrorCode::AccountLocked,
        ErrorCode::Internal,
    ];

    /// The code as it travels.
    pub fn as_str(&self) -> &str {
        use ErrorCode::*;
        match self {
            BadRequest => "bad_request",
            InvalidMlsMessage => "invalid_mls_message",
            BadSignature => "bad_signature",
            StaleRequest => "stale_request",
            ReplayedRequest => "replayed_request",
            BadCredentials => "bad_credentials",
            Forbidden => "forbidden",
            NotChannelManager => "not_channel_manager",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            AlreadyExists => "already_exists",
            WrongEpoch => "wrong_epoch",
            BodyTooLarge => "body_too_large",
            FileTooLarge => "file_too_large",
            QuotaExceeded => "quota_exceeded",
            NoKeyPackages => "no_key_packages",
            DuplicateKeyPackage => "duplicate_key_package",
            KeyPackageStockFull => "key_package_stock_full",
            SecondFactorRequired => "second_factor_required",
            SecondFactorInvalid => "second_factor_invalid",
            SessionExpired => "session_expired",
            DeviceRevoked => "device_revoked",
            SecondFactorEnrollmentRequired => "second_factor_enrollment_required",
            InviteRequired => "invite_required",
            InviteInvalid => "invite_invalid",
            RateLimited => "rate_limited",
            SlowDown => "slow_down",
            DatabaseUnavailable => "database_unavailable",
            Busy => "busy",
            AuditUnavailable => "audit_unavailable",
            StepUpRequired => "step_up_required",
            FactorTooNew => "factor_too_new",
            AccountLocked => "account_locked",
            Internal => "internal",
            Other(code) => code,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for ErrorCode {
    fn from(code: String) -> Self {
        ErrorCode::KNOWN
            .into_iter()
            .find(|known| known.as_str() == code)
            .unwrap_or(ErrorCode::Other(code))
    }
}

impl From<ErrorCode> for String {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::Other(code) => code,
            known => known.as_str().to_owned(),
        }
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The JSON body of every refusal, with the HTTP status the relay chose for
/// the code. The fields that only some codes carry are left out otherwise.
///
/// Fields in alphabetical order: the order in which the relay has always
/// written them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// With [`ErrorCode::WrongEpoch`]: the group's current epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_epoch: Option<u64>,
    /// Why, for programs.
    pub error: ErrorCode,
    /// With [`ErrorCode::SecondFactorRequired`]: the kinds of second factor
    /// the account has (`totp`, `webauthn`, `recovery_code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factors: Option<Vec<String>>,
    /// Why, for people: what was wrong and what to do.
    pub message: String,
    /// With [`ErrorCode::RateLimited`] and [`ErrorCode::Busy`]: seconds to
    /// wait (also in the `Retry-After` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl ErrorBody {
    /// A body with the code and message alone.
    pub fn new(error: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            current_epoch: None,
            error,
            factors: None,
            message: message.into(),
            retry_after: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pinned(body: &ErrorBody, json: &str) {
        assert_eq!(serde_json::to_string(body).unwrap(), json);
        assert_eq!(&serde_json::from_str::<ErrorBody>(json).unwrap(), body);
    }

    #[test]
    fn every_known_code_reads_back_as_itself() {
        for code in ErrorCode::KNOWN {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
        let names: std::collections::HashSet<&str> =
            ErrorCode::KNOWN.iter().map(ErrorCode::as_str).collect();
        assert_eq!(
            names.len(),
            ErrorCode::KNOWN.len(),
            "two codes share a name"
        );
    }

    #[test]
    fn codes_keep_their_names() {
        assert_eq!(ErrorCode::WrongEpoch.as_str(), "wrong_epoch");
        assert_eq!(ErrorCode::Busy.as_str(), "busy");
        assert_eq!(ErrorCode::AlreadyExists.as_str(), "already_exists");
        assert_eq!(
            ErrorCode::DatabaseUnavailable.as_str(),
            "database_unavailable"
        );
        assert_eq!(
            ErrorCode::SecondFactorEnrollmentRequired.as_str(),
            "second_factor_enrollment_required"
        );
    }

    #[test]
    fn an_unknown_code_is_kept_verbatim() {
        let code: ErrorCode = serde_json::from_str("\"on_fire\"").unwrap();
        assert_eq!(code, ErrorCode::Other("on_fire".into()));
        assert_eq!(serde_json::to_string(&code).unwrap(), "\"on_fire\"");
    }

    #[test]
    fn error_bodies_are_pinned() {
        pinned(
            &ErrorBody::new(ErrorCode::Forbidden, "forbidden: members only"),
            r#"{"error":"forbidden","message":"forbidden: members only"}"#,
        );
        pinned(
            &ErrorBody {
                current_epoch: Some(4),
                ..ErrorBody::new(ErrorCode::WrongEpoch, "wrong epoch")
            },
            r#"{"current_epoch":4,"error":"wrong_epoch","message":"wrong epoch"}"#,
        );
        pinned(
            &ErrorBody {
                factors: Some(vec!["totp".into(), "webauthn".into()]),
                ..ErrorBody::new(ErrorCode::SecondFactorRequired, "a second factor")
            },
            r#"{"error":"second_factor_required","factors":["totp","webauthn"],"message":"a second factor"}"#,
        );
        pinned(
            &ErrorBody {
                retry_after: Some(2),
                ..ErrorBody::new(ErrorCode::Busy, "busy")
            },
            r#"{"error":"busy","message":"busy","retry_after":2}"#,
        );
    }
}
