//! The relay's background work, started in one place and ended together.
//!
//! Pruning, checkpoint signing, tallies of unknown logins, retention and the
//! listener for other nodes each run as a task here. At shutdown every task
//! hears it (after mini-redis's `Shutdown`), ends at its next await, and is
//! joined, so nothing is cut off halfway through a round while the process
//! exits. What streams acknowledged is flushed after that (`relay::acks`).

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long shutdown waits for a task to finish its round.
const JOIN_GRACE: Duration = Duration::from_secs(10);

/// The background tasks of one relay process.
#[derive(Debug)]
pub(crate) struct Tasks {
    running: Mutex<JoinSet<()>>,
    stop: watch::Sender<bool>,
}

impl Tasks {
    pub(crate) fn new() -> Self {
        Self {
            running: Mutex::new(JoinSet::new()),
            stop: watch::channel(false).0,
        }
    }

    /// Runs `work` until it ends or shutdown begins, whichever is first.
    pub(crate) fn spawn(
        &self,
        name: &'static str,
        work: impl Future<Output = ()> + Send + 'static,
    ) {
        let mut stop = self.stop.subscribe();
        let task = async move {
            tokio::select! {
                () = work => {}
                () = stopped(&mut stop) => {
                    tracing::debug!(task = name, "stopped for shutdown");
                }
            }
        };
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .spawn(task);
    }

    /// Runs `round` every `period` (the first at once) until shutdown. A
    /// round in progress is finished, not cut off: the stop is heard only
    /// between rounds.
    pub(crate) fn every<F, Fut>(&self, name: &'static str, period: Duration, mut round: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let mut stop = self.stop.subscribe();
        let task = async move {
            let mut every = tokio::time::interval(period);
            loop {
                tokio::select! {
                    _ = every.tick() => round().await,
                    () = stopped(&mut stop) => {
                        tracing::debug!(task = name, "stopped for shutdown");
                        return;
                    }
                }
            }
        };
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .spawn(task);
    }

    /// Tells every task to stop and waits for each (a task that does not
    /// end within the grace period is aborted, and says so in the log).
    pub(crate) async fn shutdown(&self) {
        self.stop.send_replace(true);
        let mut running = std::mem::take(
            &mut *self
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let joined = tokio::time::timeout(JOIN_GRACE, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if joined.is_err() {
            tracing::warn!(
                left = running.len(),
                "background tasks did not stop in time; aborted"
            );
            running.shutdown().await;
        }
    }
}

/// Resolves once shutdown has begun (at once, if it had already).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: dropped here, not held by
    // the caller across its own awaits. A closed sender means shutdown too.
    let _ = stop.wait_for(|stopping| *stopping).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn rounds_run_until_shutdown_and_a_round_is_never_cut_off() {
        let tasks = Tasks::new();
        let (rounds, finished) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let (r, f) = (rounds.clone(), finished.clone());
        tasks.every("test", Duration::from_secs(60), move || {
            let (r, f) = (r.clone(), f.clone());
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(5)).await;
                f.fetch_add(1, Ordering::SeqCst);
            }
        });
        // Paused time: three periods pass in no time at all.
        tokio::time::sleep(Duration::from_secs(121)).await;
        assert_eq!(rounds.load(Ordering::SeqCst), 3);
        tasks.shutdown().await;
        assert_eq!(
            finished.load(Ordering::SeqCst),
            3,
            "the round under way finished before shutdown returned"
        );
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(rounds.load(Ordering::SeqCst), 3, "no round after shutdown");
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_never_ends_is_stopped() {
        let tasks = Tasks::new();
        tasks.spawn("forever", std::future::pending());
        tasks.shutdown().await;
        assert!(tasks.running.lock().unwrap().is_empty());
    }
}
