//! The one interface every security event goes through on its way into the
//! transparency log (`conclave_audit::log`).
//!
//! An event never carries a password, a code, a private key or message
//! content: only account names, device ids, public keys, counts and fixed
//! failure reasons. Client addresses are kept only if the relay is
//! configured to record them, and then only as a salted commitment in the
//! leaf, with the address itself in a table only auditors read.

use std::net::IpAddr;

use conclave_audit::Event;
use conclave_audit::log::TransparencyLog;

/// What happened. The stored names are the `action` field of log entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    /// An account was registered.
    AccountCreated,
    /// A device signed in (or re-authenticated its session).
    Login,
    /// A second factor was enrolled.
    SecondFactorEnrolled,
    /// A second factor was removed.
    SecondFactorRemoved,
    /// A second factor was checked (at login or for a sensitive change).
    SecondFactorUsed,
    /// A recovery code was spent.
    RecoveryCodeUsed,
    /// Recovery codes were issued.
    RecoveryCodesIssued,
    /// A new device key was registered to an account: the entry key
    /// transparency checks.
    DeviceAdded,
    /// A device was revoked.
    DeviceRevoked,
    /// Sessions were ended (after a password change).
    SessionsEnded,
    /// The password was changed.
    PasswordChanged,
    /// A workspace policy changed.
    PolicyChanged,
    /// A role was granted or taken away.
    RoleChanged,
    /// An invite code was issued.
    InviteCreated,
    /// A group (channel) was created.
    GroupCreated,
    /// A group was archived (read-only from then on).
    GroupArchived,
    /// A public channel was renamed in the directory (a private channel's
    /// name never reaches the relay).
    GroupRenamed,
    /// Retention deleted old message ciphertext from a group.
    RetentionDeleted,
    /// A validated commit added a device to a group.
    MemberAdded,
    /// A validated commit removed a device from a group.
    MemberRemoved,
    /// A device uploaded key packages.
    KeyPackagesUploaded,
    /// The owner took the account back with the password and a recovery
    /// code: other devices revoked, recent factors removed.
    AccountRecovered,
    /// A host administrator locked the account.
    AccountLocked,
    /// A recovery invite was redeemed: new password, account unlocked.
    AccountUnlocked,
    /// A member handed another member a channel's earlier history (an
    /// encrypted bundle only that member's devices may fetch).
    HistoryShared,
}

impl AuditAction {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        use AuditAction::*;
        match self {
            AccountCreated => "account_created",
            Login => "login",
            SecondFactorEnrolled => "second_factor_enrolled",
            SecondFactorRemoved => "second_factor_removed",
            SecondFactorUsed => "second_factor_used",
            RecoveryCodeUsed => "recovery_code_used",
            RecoveryCodesIssued => "recovery_codes_issued",
            DeviceAdded => conclave_audit::DEVICE_ADDED,
            DeviceRevoked => "device_revoked",
            SessionsEnded => "sessions_ended",
            PasswordChanged => "password_changed",
            PolicyChanged => "policy_changed",
            RoleChanged => "role_changed",
            InviteCreated => "invite_created",
            GroupCreated => "group_created",
            GroupArchived => "group_archived",
            GroupRenamed => "group_renamed",
            RetentionDeleted => "retention_deleted",
            MemberAdded => "member_added",
            MemberRemoved => "member_removed",
            KeyPackagesUploaded => "key_packages_uploaded",
            HistoryShared => "history_shared",
            AccountRecovered => "account_recovered",
            AccountLocked => "account_locked",
            AccountUnlocked => "account_unlocked",
        }
    }
}

/// One security event, before the log gives it a position and a time.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// What happened.
    pub action: AuditAction,
    /// `None` for success, else why it failed (a fixed reason, never input).
    pub failure: Option<&'static str>,
    /// The account acting, if known.
    pub actor: Option<String>,
    /// The device acting, if any.
    pub actor_device: Option<String>,
    /// What it was done to.
    pub target: Option<String>,
    /// Where the request came from.
    pub client_ip: Option<IpAddr>,
    /// Further named values: public keys, counts, group ids.
    pub details: Vec<(&'static str, String)>,
}

impl AuditEvent {
    /// A successful `action` by `actor`.
    pub fn success(action: AuditAction, actor: &str) -> Self {
        Self {
            action,
            failure: None,
            actor: Some(actor.to_owned()),
            actor_device: None,
            target: None,
            client_ip: None,
            details: Vec::new(),
        }
    }

    /// A failed `action` by (or against) `actor`.
    pub fn failure(action: AuditAction, actor: &str, reason: &'static str) -> Self {
        Self {
            failure: Some(reason),
            ..Self::success(action, actor)
        }
    }

    /// With the acting device.
    pub fn device(mut self, device: impl ToString) -> Self {
        self.actor_device = Some(device.to_string());
        self
    }

    /// With a target.
    pub fn target(mut self, target: impl ToString) -> Self {
        self.target = Some(target.to_string());
        self
    }

    /// With the client address.
    pub fn from_ip(mut self, ip: Option<IpAddr>) -> Self {
        self.client_ip = ip;
        self
    }

    /// With a detail.
    pub fn detail(mut self, name: &'static str, value: impl ToString) -> Self {
        self.details.push((name, value.to_string()));
        self
    }
}

/// A failure reason as a log token: the words of the (fixed) reason in
/// lowercase, joined by `_`, e.g. `totp_code_already_used`.
fn reason_token(reason: &str) -> String {
    let words: Vec<String> = reason
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let mut token = words.join("_");
    token.truncate(64);
    if token.is_empty() {
        token.push_str("unspecified");
    }
    token
}

/// A value the leaf encoding accepts, whatever a caller passed: printable
/// ASCII without spaces, at most [`conclave_audit::MAX_VALUE_LEN`] bytes. Our
/// values already are; this keeps a future caller's mistake from costing an
/// event.
fn log_value(value: &str) -> String {
    let mut clean: String = value
        .chars()
        .map(|c| if ('!'..='~').contains(&c) { c } else { '_' })
        .collect();
    clean.truncate(conclave_audit::MAX_VALUE_LEN);
    if clean.is_empty() || clean == "-" {
        clean = "_".to_owned();
    }
    clean
}

/// Where events go: the transparency log.
#[derive(Debug, Clone)]
pub struct AuditTrail {
    log: TransparencyLog,
    record_client_ip: bool,
    /// What stamps each entry.
    clock: crate::Clock,
}

impl AuditTrail {
    /// Events into `log`, stamped by `clock`; client addresses only if
    /// `record_client_ip`.
    pub fn new(log: TransparencyLog, record_client_ip: bool, clock: crate::Clock) -> Self {
        Self {
            log,
            record_client_ip,
            clock,
        }
    }

    /// The log itself.
    pub fn log(&self) -> &TransparencyLog {
        &self.log
    }

    /// The log entry for `event`, stamped now. Its position is set when it
    /// is appended.
    pub fn entry(&self, event: AuditEvent) -> Event {
        let outcome = match event.failure {
            None => "success".to_owned(),
            Some(reason) => format!("failure:{}", reason_token(reason)),
        };
        tracing::info!(
            action = event.action.as_str(),
            %outcome,
            actor = event.actor.as_deref().unwrap_or("-"),
            target = event.target.as_deref().unwrap_or("-"),
            "audit event"
        );
        let mut entry = Event::new(0, self.clock.unix_now(), event.action.as_str());
        entry.outcome = outcome;
        entry.actor = event.actor.as_deref().map(log_value);
        entry.device = event.actor_device.as_deref().map(log_value);
        entry.target = event.target.as_deref().map(log_value);
        if let Some(ip) = event.client_ip.filter(|_| self.record_client_ip) {
            // The leaf gets only a salted commitment: any signed-in device
            // may read a device's registration leaf. The salt and address go
            // to the auditors' table in the appending transaction.
            use rand::RngCore;
            let mut salt = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut salt);
            entry = entry.client_address(conclave_audit::ClientIpOpening {
                salt,
                ip: ip.to_string(),
            });
        }
        entry.details = event
            .details
            .into_iter()
            .map(|(name, value)| (name.to_owned(), log_value(&value)))
            .collect();
        entry
    }

    /// Records an event in a transaction of its own. If the log cannot take
    /// it, the request fails with 503 `audit_unavailable`: call this
    /// *before* answering, so that no security event goes unrecorded.
    ///
    /// Only for events that change nothing the relay stores (a refused
    /// login, a failed second factor). An event that records a change goes
    /// into that change's transaction instead: build it with
    /// [`AuditTrail::entry`] and hand it to the store method, which appends
    /// it with `conclave_audit::log::append` before it commits, so that the
    /// change and its entry land together or not at all.
    pub async fn record(&self, event: AuditEvent) -> Result<(), crate::error::ApiError> {
        self.log
            .append(self.entry(event))
            .await
            .map(|_| ())
            .map_err(|e| crate::error::ApiError::AuditUnavailable(e.to_string()))
    }

    /// Logs the failed logins for accounts that do not exist, one entry per
    /// closed five-minute window (every window with `all`, at shutdown):
    /// `login`, `failure:unknown_account`, with `count` and `window_start`.
    pub async fn flush_unknown_logins(
        &self,
        store: &crate::store::Store,
        all: bool,
    ) -> Result<u64, crate::store::StoreError> {
        store
            .flush_unknown_logins(all, |count, window_start| {
                self.entry(AuditEvent {
                    action: AuditAction::Login,
                    failure: Some("unknown_account"),
                    actor: None,
                    actor_device: None,
                    target: None,
                    client_ip: None,
                    details: vec![
                        ("count", count.to_string()),
                        ("window_start", window_start.to_string()),
                    ],
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_reason_becomes_a_valid_outcome() {
        for (reason, token) in [
            ("TOTP code already used", "totp_code_already_used"),
            (
                "unknown, used or expired WebAuthn challenge",
                "unknown_used_or_expired_webauthn_challenge",
            ),
            ("bad_password", "bad_password"),
            ("", "unspecified"),
        ] {
            assert_eq!(reason_token(reason), token);
            let event = Event::new(0, 0, "login").failure(&reason_token(reason));
            assert!(event.encode().is_ok(), "{reason:?}");
        }
        for value in ["2 other sessions", "", "-", "caf\u{e9}", &"x".repeat(5000)] {
            let event = Event::new(0, 0, "login").target(&log_value(value));
            assert!(event.encode().is_ok(), "{value:?}");
        }
        assert_eq!(log_value("bob/ab12"), "bob/ab12");
    }
}
