//! The one interface every authentication event goes through.
//!
//! Today events land in the `auth_events` table and the log; the audit-log
//! work replaces the sink with the Merkle log without touching the callers.
//! An event never carries a password, a code, a key or message content.

use std::net::IpAddr;

use crate::store::{AuthEventRow, Store};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthAction {
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
    /// A new device was added to an account.
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
}

impl AuthAction {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        use AuthAction::*;
        match self {
            AccountCreated => "account_created",
            Login => "login",
            SecondFactorEnrolled => "second_factor_enrolled",
            SecondFactorRemoved => "second_factor_removed",
            SecondFactorUsed => "second_factor_used",
            RecoveryCodeUsed => "recovery_code_used",
            RecoveryCodesIssued => "recovery_codes_issued",
            DeviceAdded => "device_added",
            DeviceRevoked => "device_revoked",
            SessionsEnded => "sessions_ended",
            PasswordChanged => "password_changed",
            PolicyChanged => "policy_changed",
            RoleChanged => "role_changed",
            InviteCreated => "invite_created",
        }
    }
}

/// One authentication event.
#[derive(Debug, Clone)]
pub struct AuthEvent {
    /// What happened.
    pub action: AuthAction,
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
}

impl AuthEvent {
    /// A successful `action` by `actor`.
    pub fn success(action: AuthAction, actor: &str) -> Self {
        Self {
            action,
            failure: None,
            actor: Some(actor.to_owned()),
            actor_device: None,
            target: None,
            client_ip: None,
        }
    }

    /// A failed `action` by (or against) `actor`.
    pub fn failure(action: AuthAction, actor: &str, reason: &'static str) -> Self {
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
}

/// Where events go.
#[derive(Debug, Clone)]
pub struct AuthEvents {
    store: Store,
    record_client_ip: bool,
}

impl AuthEvents {
    /// Events into `store`; client addresses only if `record_client_ip`.
    pub fn new(store: Store, record_client_ip: bool) -> Self {
        Self {
            store,
            record_client_ip,
        }
    }

    /// Records an event. A failure to record is logged, not raised: the
    /// request it describes already happened.
    pub async fn record(&self, event: AuthEvent) {
        let outcome = match event.failure {
            None => "success".to_owned(),
            Some(reason) => format!("failure:{reason}"),
        };
        tracing::info!(
            action = event.action.as_str(),
            %outcome,
            actor = event.actor.as_deref().unwrap_or("-"),
            target = event.target.as_deref().unwrap_or("-"),
            "auth event"
        );
        let row = AuthEventRow {
            at: crate::auth::unix_now(),
            action: event.action.as_str().to_owned(),
            outcome,
            actor: event.actor,
            actor_device: event.actor_device,
            target: event.target,
            client_ip: event
                .client_ip
                .filter(|_| self.record_client_ip)
                .map(|ip| ip.to_string()),
        };
        if let Err(e) = self.store.record_auth_event(&row).await {
            tracing::error!(error = %e, "could not record an authentication event");
        }
    }
}
