//! Wall-clock time, read in one place: the relay's [`Clock`].
//!
//! Every expiry, lifetime, log timestamp and rate-limit window reads the
//! clock the [`Config`](crate::Config) carries. In production that is the
//! system's; tests that run the relay in-process give it a manual clock and
//! move it forward, instead of sleeping until a session or a code expires.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The relay's clock: the system's, or a manual one a test moves.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Unix milliseconds, when manual.
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system's clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that shows the system's time now and then stands still until
    /// [`Clock::advance`] moves it. Clones share it.
    pub fn manual() -> Self {
        Self {
            manual: Some(Arc::new(AtomicU64::new(system_millis()))),
        }
    }

    /// Moves a manual clock forward by `by`; the system's clock cannot be
    /// moved, and this does nothing to it.
    pub fn advance(&self, by: Duration) {
        if let Some(millis) = &self.manual {
            let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
            millis.fetch_add(by, Ordering::SeqCst);
        }
    }

    /// Seconds since the Unix epoch (0 if the clock is before it).
    pub fn unix_now(&self) -> u64 {
        self.unix_millis() / 1000
    }

    /// Unix time in milliseconds (0 if the clock is before the epoch).
    pub fn unix_millis(&self) -> u64 {
        match &self.manual {
            Some(millis) => millis.load(Ordering::SeqCst),
            None => system_millis(),
        }
    }
}

fn system_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let clock = Clock::manual();
        let copy = clock.clone();
        let start = clock.unix_millis();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.unix_millis(), start, "stands still");
        copy.advance(Duration::from_secs(3));
        assert_eq!(clock.unix_millis(), start + 3000);
        assert_eq!(clock.unix_now(), (start + 3000) / 1000);
    }

    #[test]
    fn the_system_clock_cannot_be_moved() {
        let clock = Clock::system();
        let before = clock.unix_now();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.unix_now() < before + 3600);
    }
}
