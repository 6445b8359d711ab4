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
    /// Whether a success starts the count over ([`clear`]). A bucket that is
    /// never cleared stays full until its window ends, so a node that saw
    /// it full refuses further requests against it from memory, without a
    /// write ([`FullBuckets`]).
    pub cleared_on_success: bool,
}

/// Login attempts from one address.
pub const LOGIN_PER_IP: Limit = Limit {
    name: "login-ip",
    max: 30,
    window: 300,
    cleared_on_success: false,
};
/// Requests signed by keys the relay does not know yet (logins of new
/// devices) from one address, counted before their nonces are stored.
pub const NEW_KEYS_PER_IP: Limit = Limit {
    name: "new-key-ip",
    max: 60,
    window: 300,
    cleared_on_success: false,
};
/// Password attempts that come with a passkey that already verified.
pub const PASSWORD_FAILURES_WITH_PASSKEY: Limit = Limit {
    name: "password-fail-passkey",
    max: 10,
    window: 900,
    cleared_on_success: true,
};

/// Password attempts that come with a recovery code that already verified
/// (a new device taking the account back).
pub const PASSWORD_FAILURES_WITH_RECOVERY_CODE: Limit = Limit {
    name: "password-fail-recovery-code",
    max: 10,
    window: 900,
    cleared_on_success: true,
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
    cleared_on_success: true,
};
/// Second-factor attempts from one address, across accounts.
pub const SECOND_FACTOR_PER_IP: Limit = Limit {
    name: "second-factor-ip",
    max: 30,
    window: 900,
    cleared_on_success: false,
};
/// Password setups without a signature (the first half of a new account's
/// or a locked account's password) from one address.
pub const PASSWORD_SETUP_PER_IP: Limit = Limit {
    name: "password-setup-ip",
    max: 30,
    window: 3600,
    cleared_on_success: false,
};
/// Registrations from one address.
pub const REGISTER_PER_IP: Limit = Limit {
    name: "register-ip",
    max: 10,
    window: 3600,
    cleared_on_success: false,
};
/// Key-package claims by one account (each claim spends someone's package).
pub const CLAIMS_PER_ACCOUNT: Limit = Limit {
    name: "claim-account",
    max: 300,
    window: 3600,
    cleared_on_success: false,
};
/// Key-package claims from one address.
pub const CLAIMS_PER_IP: Limit = Limit {
    name: "claim-ip",
    max: 600,
    window: 3600,
    cleared_on_success: false,
};

/// Key-package claims by one account for one target account: a flood
/// against one user would drain that user's one-time packages.
pub const CLAIMS_PER_TARGET: Limit = Limit {
    name: "claim-target",
    max: 50,
    window: 3600,
    cleared_on_success: false,
};
/// Key-package uploads by one device (a client uploads in batches of ten
/// when its stock runs low, a handful of requests per refill).
pub const KEY_PACKAGE_UPLOADS_PER_DEVICE: Limit = Limit {
    name: "key-package-upload-device",
    max: 60,
    window: 3600,
    cleared_on_success: false,
};

fn bucket(limit: Limit, key: &str) -> String {
    format!("{}:{key}", limit.name)
}

/// The key for an address, or a shared one when the address is unknown.
///
/// An IPv6 address counts as its /64: one subscriber usually gets a whole
/// /64 and can pick any address in it, so a budget per address would be a
/// budget per try. An IPv4 address written as IPv6 (`::ffff:a.b.c.d`, as a
/// dual-stack listener reports it) counts as the IPv4 address.
pub fn ip_key(ip: Option<IpAddr>) -> String {
    match ip.map(|ip| ip.to_canonical()) {
        None => "unknown".to_owned(),
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let network = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", std::net::Ipv6Addr::from(network))
        }
    }
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
///
/// A bucket this node already saw full, of a limit no success clears, is
/// refused from memory until its window ends: a flood against a full bucket
/// costs no write (each count is one durable statement on the relay's one
/// writer, which every other request's write waits behind).
pub async fn count(app: &AppState, limit: Limit, key: &str) -> Result<(), ApiError> {
    if !app.config.rate_limits {
        return Ok(());
    }
    let bucket = bucket(limit, key);
    let now = app.store.clock().unix_now();
    if let Some(until) = app.full_buckets.refused_until(&bucket, now) {
        return Err(ApiError::RateLimited {
            retry_after: until - now,
        });
    }
    let state = app.store.hit_bucket(&bucket, limit.window).await?;
    if state.hits > limit.max {
        if !limit.cleared_on_success {
            let until = state.window_start + limit.window;
            app.full_buckets.remember(bucket, until, now);
        }
        return Err(ApiError::RateLimited {
            retry_after: retry_after(limit, state.window_start, now),
        });
    }
    Ok(())
}

/// Buckets this node saw full, with the second their window ends. Only
/// limits that no success clears go here ([`Limit::cleared_on_success`]),
/// so what a node remembers is what the database would answer, whichever
/// node counted the hits.
#[derive(Debug, Default)]
pub struct FullBuckets {
    until: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

/// Most full buckets one node remembers; past it, expired ones are dropped,
/// and if none has expired the next is counted in the database as before.
const MOST_FULL_BUCKETS: usize = 65_536;

impl FullBuckets {
    fn held(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, u64>> {
        // Nothing can be left half-changed in this map: a panic elsewhere
        // while it was held does not make it wrong.
        self.until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// When `bucket` is full until a second after `now`, that second.
    fn refused_until(&self, bucket: &str, now: u64) -> Option<u64> {
        self.held()
            .get(bucket)
            .copied()
            .filter(|&until| until > now)
    }

    fn remember(&self, bucket: String, until: u64, now: u64) {
        if until <= now {
            return;
        }
        let mut held = self.held();
        if held.len() >= MOST_FULL_BUCKETS {
            held.retain(|_, &mut ends| ends > now);
        }
        if held.len() < MOST_FULL_BUCKETS {
            held.insert(bucket, until);
        }
    }
}

/// A pace for requests, in each node's memory: a token bucket per key of
/// `burst` requests refilled at `per_second`, kept as the time its next
/// token is due (GCRA), on the relay's clock. For what is cheap to serve
/// but must not be free to flood: the public log's reads per address
/// (counting them in the database would cost more than serving them), and
/// each device's signed requests (each spends a nonce, a write on the one
/// writer), checked after the signature so nobody else can spend a
/// device's pace.
#[derive(Debug)]
pub struct Pace {
    /// Microseconds per token (milliseconds would round 300 a second to 333).
    interval: u64,
    /// Microseconds of credit a full bucket holds: `burst` tokens.
    credit: u64,
    buckets: std::sync::Mutex<Buckets>,
}

/// Each key's next due time, and when full buckets were last dropped
/// (microseconds on the relay's clock).
#[derive(Debug, Default)]
struct Buckets {
    due: std::collections::HashMap<String, u64>,
    swept_at: u64,
}

/// Most keys one node tracks (some 30 MiB at most); past it, those whose
/// bucket is full again are dropped, and if that frees nothing a new key
/// goes unpaced until it does: whoever fills the table already has that
/// many buckets' worth of requests, and a legitimate newcomer is not
/// refused for it.
const MOST_PACED: usize = 262_144;

impl Pace {
    /// `per_second` requests a second per key, in bursts of `burst`.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let interval = (1_000_000 / u64::from(per_second.max(1))).max(1);
        Self {
            interval,
            credit: interval * u64::from(burst.max(1)),
            buckets: std::sync::Mutex::default(),
        }
    }

    /// Takes a token for `key` at `now_millis`, or answers 429 `slow_down`
    /// with the seconds until there is one.
    pub fn take(&self, key: &str, now_millis: u64) -> Result<(), ApiError> {
        let now = now_millis.saturating_mul(1000);
        // Nothing can be left half-changed in this map by a panic elsewhere.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Buckets { due, swept_at } = &mut *buckets;
        if !due.contains_key(key) {
            // At most one sweep a second: a full table must not make every
            // newcomer scan it.
            if due.len() >= MOST_PACED && now >= *swept_at + 1_000_000 {
                due.retain(|_, &mut next| next > now);
                *swept_at = now;
            }
            if due.len() >= MOST_PACED {
                return Ok(());
            }
            due.insert(key.to_owned(), 0);
        }
        let Some(next) = due.get_mut(key) else {
            return Ok(()); // just inserted
        };
        // Up to `credit` ahead of now is allowed: that is the burst.
        let start = (*next).max(now);
        if start - now + self.interval > self.credit {
            let wait = start + self.interval - self.credit - now;
            return Err(ApiError::SlowDown {
                retry_after: wait.div_ceil(1_000_000).max(1),
            });
        }
        *next = start + self.interval;
        Ok(())
    }
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
    fn an_ipv6_address_counts_as_its_64_and_a_mapped_ipv4_as_ipv4() {
        let ip = |text: &str| Some(text.parse::<IpAddr>().unwrap());
        assert_eq!(ip_key(ip("192.0.2.7")), "192.0.2.7");
        assert_eq!(ip_key(ip("::ffff:192.0.2.7")), "192.0.2.7");
        assert_eq!(ip_key(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        // Any other address of the same /64 shares the budget; the next /64 does not.
        assert_eq!(
            ip_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(ip_key(ip("2001:db8:1:3::1")), "2001:db8:1:3::/64");
        assert_eq!(ip_key(None), "unknown");
    }

    #[test]
    fn a_full_bucket_is_refused_from_memory_until_its_window_ends() {
        let full = FullBuckets::default();
        full.remember("login-ip:192.0.2.7".into(), 1_300, 1_000);
        assert_eq!(full.refused_until("login-ip:192.0.2.7", 1_000), Some(1_300));
        assert_eq!(full.refused_until("login-ip:192.0.2.7", 1_299), Some(1_300));
        assert_eq!(full.refused_until("login-ip:192.0.2.7", 1_300), None);
        assert_eq!(full.refused_until("login-ip:192.0.2.8", 1_000), None);
        // A window already over is not remembered at all.
        full.remember("register-ip:192.0.2.7".into(), 900, 1_000);
        assert_eq!(full.refused_until("register-ip:192.0.2.7", 899), None);
    }

    #[test]
    fn only_limits_no_success_clears_are_remembered_full() {
        let cleared: Vec<&str> = [
            LOGIN_PER_IP,
            NEW_KEYS_PER_IP,
            PASSWORD_FAILURES_WITH_PASSKEY,
            PASSWORD_FAILURES_WITH_RECOVERY_CODE,
            SECOND_FACTOR_FAILURES,
            SECOND_FACTOR_PER_IP,
            PASSWORD_SETUP_PER_IP,
            REGISTER_PER_IP,
            CLAIMS_PER_ACCOUNT,
            CLAIMS_PER_IP,
            CLAIMS_PER_TARGET,
            KEY_PACKAGE_UPLOADS_PER_DEVICE,
        ]
        .iter()
        .filter(|limit| limit.cleared_on_success)
        .map(|limit| limit.name)
        .collect();
        // Exactly the budgets `clear` starts over after a success.
        assert_eq!(
            cleared,
            [
                "password-fail-passkey",
                "password-fail-recovery-code",
                "second-factor-fail"
            ]
        );
    }

    #[test]
    fn a_pace_allows_a_burst_then_the_rate() {
        let reads = Pace::new(2, 3);
        let (me, other) = ("192.0.2.7", "192.0.2.8");
        let t = 1_000_000;
        for _ in 0..3 {
            reads.take(me, t).unwrap();
        }
        let Err(ApiError::SlowDown { retry_after }) = reads.take(me, t) else {
            panic!("a fourth read at once passed");
        };
        // The next token is due in 500 ms: the answer rounds up to a second.
        assert_eq!(retry_after, 1);
        // Another address has its own bucket.
        reads.take(other, t).unwrap();
        // Refused reads spend nothing: half a second later one more passes.
        assert!(reads.take(me, t + 499).is_err());
        reads.take(me, t + 500).unwrap();
        assert!(reads.take(me, t + 500).is_err());
        // After a quiet while the whole burst is back, and no more.
        for _ in 0..3 {
            reads.take(me, t + 60_000).unwrap();
        }
        assert!(reads.take(me, t + 60_000).is_err());
        // A rate that does not divide a second keeps to it: 300 a second is
        // one every 3⅓ ms, not one every 3.
        let fast = Pace::new(300, 1);
        fast.take(me, t).unwrap();
        assert!(fast.take(me, t + 3).is_err());
        fast.take(me, t + 4).unwrap();
    }

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
