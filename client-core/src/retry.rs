//! How the client waits before trying again: after losing a race for an
//! epoch, after the relay went away, before reconnecting a push stream.

/// How often a commit or send is retried when other members commit first.
pub(crate) const MAX_ATTEMPTS: u32 = 10;

/// Exponential backoff with full jitter, from 250 ms up to 30 s: for
/// retrying after the relay went away (`backoff` is for quick conflicts).
pub(crate) fn retry_delay(failures: u32) -> std::time::Duration {
    let ceiling = 250u64.saturating_mul(1 << failures.min(7)).min(30_000);
    std::time::Duration::from_millis(ceiling / 2 + rand::random::<u64>() % (ceiling / 2 + 1))
}

/// How long a push stream waits before it reconnects, after `failures`
/// failed tries in a row (0: the node closed it, going away). When a node
/// dies, every one of its clients reconnects at once; full jitter spreads
/// them over the window, and the window doubles with each failure (up to
/// 30 s), so the surviving nodes see a ramp rather than a wall.
pub(crate) fn reconnect_delay(failures: u32) -> std::time::Duration {
    let window = 1_000u64.saturating_mul(1 << failures.min(5)).min(30_000);
    std::time::Duration::from_millis(rand::random::<u64>() % window)
}

/// A short wait, longer with each `attempt`, after another member's commit
/// won the race for an epoch.
pub(crate) async fn backoff(attempt: u32) {
    let base = 20u64 * u64::from(attempt.max(1));
    let jitter = rand::random::<u64>() % (base + 1);
    tokio::time::sleep(std::time::Duration::from_millis(base + jitter)).await;
}
