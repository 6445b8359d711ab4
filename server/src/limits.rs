//! Rate limits and lockout, counted in the database so every relay node
//! shares them.
//!
//! Every guess is counted *before* it is checked ([`reserve`]): the counter
//! is bumped atomically, and only a request that got a number within the
//! limit goes on to argon2 or the TOTP check. A hundred parallel guesses
//! therefore get at most `max` evaluations, never a hundred.
//!
//! The password policy is built so that guessing cannot become a way to lock
//! the owner out:
//! - A login or step-up signed by a device the account **already has** counts
//!   against that device's own budget ([`KNOWN_DEVICE_BACKOFF`]: ten free
//!   tries, then doubling waits): failures from anywhere else never block it.
//!   When its free tries run out, the account's other devices are told.
//! - Proofs from **new devices** share one budget per account that slows down
//!   instead of locking ([`NEW_DEVICE_BACKOFF`]): five free tries, then each
//!   further try must wait 1, 2, 4 … 256 seconds, then 15 minutes, after the
//!   previous one. A success starts it over.
//! - A proof that carries a **passkey** assertion is checked on the passkey
//!   first; once that passed, the backoff does not apply (a passkey cannot be
//!   guessed), and the password has a budget of its own.
//! - So does a new device's proof that carries a **recovery code** (the
//!   owner taking the account back): the code is checked first, without
//!   being spent, and the password then has a budget of its own. A host
//!   administrator's recovery invite cannot be guessed either and is not
//!   slowed by the backoff (only by the per-address limit).
//! - A new device whose proof is the password and a **TOTP code** does meet
//!   the backoff: a 6-digit code can be guessed, so it is only checked after
//!   the password. Guesses from elsewhere can delay such a login (at most 15
//!   minutes between tries); a passkey or a recovery code is never delayed.
//!
//! The numbers are chosen so that guessing a 6-digit TOTP code is hopeless:
//! five wrong second factors lock the account's second-factor check for 15
//! minutes, and that check is only reached with the right password, so an
//! attacker who already has the password gets at most 5 guesses while one
//! code lives (90 s with drift): a chance of 3·5/10⁶.

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
/// Requests signed by keys the relay does not know yet (logins of new
/// devices) from one address, counted before their nonces are stored.
pub const NEW_KEYS_PER_IP: Limit = Limit {
    name: "new-key-ip",
    max: 60,
    window: 300,
};
/// Password attempts that come with a passkey that already verified.
pub const PASSWORD_FAILURES_WITH_PASSKEY: Limit = Limit {
    name: "password-fail-passkey",
    max: 10,
    window: 900,
};

/// Password attempts that come with a recovery code that already verified
/// (a new device taking the account back).
pub const PASSWORD_FAILURES_WITH_RECOVERY_CODE: Limit = Limit {
    name: "password-fail-recovery-code",
    max: 10,
    window: 900,
};

/// A budget that slows down instead of locking: `free` attempts, then each
/// further one must wait twice as long after the previous as the one
/// before did (from one second), up to `cap` seconds. Forgotten after
/// `window` seconds without an attempt.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Bucket prefix.
    pub name: &'static str,
    /// Attempts with no wait.
    pub free: u64,
    /// The longest wait, in seconds.
    pub cap: u64,
    /// Seconds after the last attempt when the count starts over.
    pub window: u64,
}

/// Password attempts by one device the account already has: ten free
/// tries, then the same doubling waits as for new devices. A stolen device
/// key gets about a hundred guesses a day this way, not a thousand, and the
/// account's other devices are told when its free tries run out
/// ([`KNOWN_DEVICE_BACKOFF`]'s `free`).
pub const KNOWN_DEVICE_BACKOFF: Backoff = Backoff {
    name: "password-backoff-device",
    free: 10,
    cap: 900,
    window: 86_400,
};
/// Password attempts from devices the account does not have yet.
pub const NEW_DEVICE_BACKOFF: Backoff = Backoff {
    name: "password-backoff",
    free: 5,
    cap: 900,
    window: 86_400,
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
/// Password setups without a signature (the first half of a new account's
/// or a locked account's password) from one address.
pub const PASSWORD_SETUP_PER_IP: Limit = Limit {
    name: "password-setup-ip",
    max: 30,
    window: 3600,
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

/// Key-package claims by one account for one target account: a flood
/// against one user would drain that user's one-time packages.
pub const CLAIMS_PER_TARGET: Limit = Limit {
    name: "claim-target",
    max: 50,
    window: 3600,
};
/// Key-package uploads by one device (a client uploads in batches of ten
/// when its stock runs low, a handful of requests per refill).
pub const KEY_PACKAGE_UPLOADS_PER_DEVICE: Limit = Limit {
    name: "key-package-upload-device",
    max: 60,
    window: 3600,
};

fn bucket(limit: Limit, key: &str) -> String {
    format!("{}:{key}", limit.name)
}

/// The key for an address, or a shared one when the address is unknown.
pub fn ip_key(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

fn retry_after(limit: Limit, window_start: u64, now: u64) -> u64 {
    (window_start + limit.window).saturating_sub(now).max(1)
}

/// Reserves one attempt before it is checked: the count goes up first, so
/// parallel attempts cannot all pass a check made before any of them failed.
/// Refused once `max` attempts are in the window; [`clear`] after a success.
pub async fn reserve(app: &AppState, limit: Limit, key: &str) -> Result<(), ApiError> {
    count(app, limit, key).await
}

/// Reserves one attempt under a [`Backoff`]: refused (with the seconds to
/// wait) while the wait after the previous attempt is not over.
pub async fn reserve_backoff(app: &AppState, backoff: Backoff, key: &str) -> Result<(), ApiError> {
    if !app.config.rate_limits {
        return Ok(());
    }
    let bucket = format!("{}:{key}", backoff.name);
    match app
        .store
        .reserve_backoff(&bucket, backoff.free, backoff.cap, backoff.window)
        .await?
    {
        None => Ok(()),
        Some((attempts, last_attempt)) => {
            let waited = app.store.clock().unix_now().saturating_sub(last_attempt);
            Err(ApiError::RateLimited {
                retry_after: backoff_wait(backoff, attempts)
                    .saturating_sub(waited)
                    .max(1),
            })
        }
    }
}

/// Starts a backoff over, after a success.
pub async fn clear_backoff(store: &Store, backoff: Backoff, key: &str) -> Result<(), ApiError> {
    store
        .clear_bucket(&format!("{}:{key}", backoff.name))
        .await?;
    Ok(())
}

/// The wait after `attempts` attempts under `backoff`, in seconds.
pub fn backoff_wait(backoff: Backoff, attempts: u64) -> u64 {
    if attempts < backoff.free {
        return 0;
    }
    let doublings = attempts - backoff.free;
    if doublings >= 63 {
        return backoff.cap;
    }
    (1u64 << doublings).min(backoff.cap)
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
            retry_after: retry_after(limit, state.window_start, app.store.clock().unix_now()),
        });
    }
    Ok(())
}

/// Starts a failure counter over, after a success.
pub async fn clear(store: &Store, limit: Limit, key: &str) -> Result<(), ApiError> {
    store.clear_bucket(&bucket(limit, key)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_after_the_free_tries_and_stops_at_the_cap() {
        let waits: Vec<u64> = (0..17)
            .map(|n| backoff_wait(NEW_DEVICE_BACKOFF, n))
            .collect();
        assert_eq!(
            waits,
            [
                0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900
            ]
        );
        assert_eq!(backoff_wait(NEW_DEVICE_BACKOFF, u64::MAX), 900);
    }
}
