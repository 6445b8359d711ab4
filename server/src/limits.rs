//! Rate limits and lockout, counted in the database so every relay node
//! shares them.
//!
//! The numbers are chosen so that guessing a 6-digit TOTP code is hopeless:
//! five wrong second factors lock the account's second-factor check for 15
//! minutes, so an attacker who already has the password gets at most 5
//! guesses while one code lives (90 s with drift): a chance of 3·5/10⁶.

use std::net::IpAddr;

use crate::AppState;
use crate::error::ApiError;
use crate::store::Store;

/// One kind of limit: at most `max` counted events per `window` seconds.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Bucket prefix.
    pub name: &'static str,
    /// Events allowed per window.
    pub max: u64,
    /// Window length in seconds.
    pub window: u64,
}

/// Login attempts from one address.
pub const LOGIN_PER_IP: Limit = Limit {
    name: "login-ip",
    max: 30,
    window: 300,
};
/// Wrong passwords for one account.
pub const PASSWORD_FAILURES: Limit = Limit {
    name: "password-fail",
    max: 10,
    window: 900,
};
/// Wrong second factors for one account.
pub const SECOND_FACTOR_FAILURES: Limit = Limit {
    name: "second-factor-fail",
    max: 5,
    window: 900,
};
/// Second-factor attempts from one address, across accounts.
pub const SECOND_FACTOR_PER_IP: Limit = Limit {
    name: "second-factor-ip",
    max: 30,
    window: 900,
};
/// Registrations from one address.
pub const REGISTER_PER_IP: Limit = Limit {
    name: "register-ip",
    max: 10,
    window: 3600,
};
/// Key-package claims by one account (each claim spends someone's package).
pub const CLAIMS_PER_ACCOUNT: Limit = Limit {
    name: "claim-account",
    max: 300,
    window: 3600,
};
/// Key-package claims from one address.
pub const CLAIMS_PER_IP: Limit = Limit {
    name: "claim-ip",
    max: 600,
    window: 3600,
};

fn bucket(limit: Limit, key: &str) -> String {
    format!("{}:{key}", limit.name)
}

/// The key for an address, or a shared one when the address is unknown.
pub fn ip_key(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

fn retry_after(limit: Limit, window_start: u64) -> u64 {
    (window_start + limit.window)
        .saturating_sub(crate::auth::unix_now())
        .max(1)
}

/// Counts one request; refuses it if the bucket was already full.
pub async fn count(app: &AppState, limit: Limit, key: &str) -> Result<(), ApiError> {
    if !app.config.rate_limits {
        return Ok(());
    }
    let state = app
        .store
        .hit_bucket(&bucket(limit, key), limit.window)
        .await?;
    if state.hits > limit.max {
        return Err(ApiError::RateLimited {
            retry_after: retry_after(limit, state.window_start),
        });
    }
    Ok(())
}

/// Refuses if the bucket is full, without counting (for failure counters).
pub async fn check(app: &AppState, limit: Limit, key: &str) -> Result<(), ApiError> {
    if !app.config.rate_limits {
        return Ok(());
    }
    let state = app
        .store
        .peek_bucket(&bucket(limit, key), limit.window)
        .await?;
    if state.hits >= limit.max {
        return Err(ApiError::RateLimited {
            retry_after: retry_after(limit, state.window_start),
        });
    }
    Ok(())
}

/// Counts one failure.
pub async fn fail(store: &Store, limit: Limit, key: &str) -> Result<(), ApiError> {
    store.hit_bucket(&bucket(limit, key), limit.window).await?;
    Ok(())
}

/// Starts a failure counter over, after a success.
pub async fn clear(store: &Store, limit: Limit, key: &str) -> Result<(), ApiError> {
    store.clear_bucket(&bucket(limit, key)).await?;
    Ok(())
}
