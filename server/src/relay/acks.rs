//! One writer for the acknowledgements that arrive on push streams.
//!
//! Every open stream hands its device's acknowledgements here instead of
//! writing them itself: the writer keeps the highest position per device
//! and group in memory and writes them all in one transaction every
//! [`FLUSH_INTERVAL`], and at shutdown. With 1000 devices acknowledging
//! each message, that is one transaction a second instead of thousands,
//! and on SQLite one flush to disk.
//!
//! An acknowledgement that waits here is lost if the process dies: the
//! cursor stays where the last write left it, so the messages after it are
//! pushed again when the device reconnects (at least once, never lost), and
//! the device drops what it already has by position. The queue is bounded:
//! when the writer falls behind, streams wait to hand theirs over, which
//! holds back reading from their sockets, not memory.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::store::{Ack, Store};

/// How long acknowledgements gather before they are written.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Most (device, group) positions held before a write, whatever the time.
const MAX_HELD: usize = 65_536;
/// Most hand-overs waiting for the writer.
const QUEUE: usize = 4096;

enum Order {
    Acks(Vec<Ack>),
    /// Write everything held, then answer.
    Flush(oneshot::Sender<()>),
}

/// Hands acknowledgements to the writer task.
#[derive(Clone, Debug)]
pub(crate) struct AckWriter {
    orders: mpsc::Sender<Order>,
}

impl AckWriter {
    /// Starts the writer for `store`. It runs until every handle is dropped,
    /// writing what it holds before it ends.
    pub(crate) fn start(store: Store) -> Self {
        let (orders, received) = mpsc::channel(QUEUE);
        tokio::spawn(write_until_closed(store, received));
        AckWriter { orders }
    }

    /// Queues `acks` for the next write, waiting for room in the queue.
    pub(crate) async fn submit(&self, acks: Vec<Ack>) {
        if !acks.is_empty() {
            // The writer ends only when every handle is gone.
            let _ = self.orders.send(Order::Acks(acks)).await;
        }
    }

    /// Writes everything queued so far, and waits until it is written.
    pub(crate) async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.orders.send(Order::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

async fn write_until_closed(store: Store, mut orders: mpsc::Receiver<Order>) {
    let mut held: HashMap<(String, String), u64> = HashMap::new();
    let mut every = tokio::time::interval(FLUSH_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            order = orders.recv() => match order {
                Some(Order::Acks(acks)) => {
                    for ack in acks {
                        let highest = held.entry((ack.device_id, ack.group_id)).or_default();
                        *highest = (*highest).max(ack.seq);
                    }
                    if held.len() >= MAX_HELD {
                        write(&store, &mut held).await;
                    }
                }
                Some(Order::Flush(done)) => {
                    write(&store, &mut held).await;
                    let _ = done.send(());
                }
                None => {
                    write(&store, &mut held).await;
                    return;
                }
            },
            _ = every.tick(), if !held.is_empty() => write(&store, &mut held).await,
        }
    }
}

async fn write(store: &Store, held: &mut HashMap<(String, String), u64>) {
    let acks: Vec<Ack> = held
        .drain()
        .map(|((device_id, group_id), seq)| Ack {
            device_id,
            group_id,
            seq,
        })
        .collect();
    if let Err(e) = store.ack_many(&acks).await {
        // Lost acknowledgements cost a redelivery, not a message.
        tracing::warn!(error = %e, count = acks.len(), "cannot write acknowledgements");
    }
}
