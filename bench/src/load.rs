//! Driving a load and timing it, the same way for the relay and for the
//! bare broadcast.
//!
//! Sends go out in a closed loop (a fixed number in flight: the most the
//! system accepts) or in an open loop (on a fixed schedule, each timed from
//! the moment it was due, so a slow answer cannot hide the sends queued
//! behind it). Meanwhile every member device reads its stream and answers
//! every message with an acknowledgement, as client-core's `listen` does
//! (its `AckPacer`): a stream's first message is acknowledged at once, a
//! busy stream's at most every 100 ms in one frame (the acknowledgement of
//! a channel's last message covers those before it).
//! For each message two times are kept: send→ack (the system's answer to
//! the sender) and send→last delivery (its arrival on the last device of
//! the channel).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use conclave_client::{AckPacer, BoxFuture, PushStream};
use conclave_proto::{MessageKind, StreamFrame};

use crate::PAYLOAD;

/// Starts send number `i`; its key (the position the system gave it), or
/// `None` if the send failed.
pub type SendFn = Arc<dyn Fn(usize) -> BoxFuture<'static, Option<u64>> + Send + Sync>;

/// A receiver that hears nothing for this long is given up on: whatever
/// it has not received by then counts as missing.
const STALL: Duration = Duration::from_secs(30);

/// The most frames a receiver takes together, as client-core's `listen`.
const BURST: usize = 64;

/// Open-loop sends in flight at most: the connections one client process
/// keeps to a server. A send due while all are busy waits its turn, and the
/// wait counts in its time (it is timed from when it was due).
const OPEN_IN_FLIGHT: usize = 256;

/// How a phase sends.
#[derive(Debug, Clone, Copy)]
pub enum Plan {
    /// `in_flight` sends at a time, until at least `messages` were sent and
    /// `at_least` has passed.
    Closed {
        in_flight: usize,
        messages: usize,
        at_least: Duration,
    },
    /// `messages` sends, one due every `1 / rate` seconds whatever the
    /// answers do.
    Open { rate: f64, messages: usize },
}

/// p50, p99 and p99.9 in milliseconds (nearest rank: below 1,000 samples
/// p99.9 is the largest).
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
}

impl Percentiles {
    fn of(mut millis: Vec<f64>) -> Self {
        if millis.is_empty() {
            return Self {
                p50: f64::NAN,
                p99: f64::NAN,
                p999: f64::NAN,
            };
        }
        millis.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let at = (p * millis.len() as f64).ceil() as usize;
            millis[at.clamp(1, millis.len()) - 1]
        };
        Self {
            p50: rank(0.5),
            p99: rank(0.99),
            p999: rank(0.999),
        }
    }
}

/// What one phase measured.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// The open loop's rate, msg/s (`None`: closed loop).
    pub offered: Option<f64>,
    /// Sends started.
    pub messages: usize,
    /// Messages answered per second: sends answered over the time from the
    /// phase's start to its last answer.
    pub accepted: f64,
    /// Deliveries per second: deliveries over the time from the phase's
    /// start to its last delivery.
    pub deliveries: f64,
    /// Send→ack, per message.
    pub ack: Percentiles,
    /// Send→arrival on the last member device, per message.
    pub last_delivery: Percentiles,
    /// Sends that failed.
    pub failed: usize,
    /// Deliveries that never came (a receiver stalled or its stream broke).
    pub missing: usize,
    /// Cores the system under test kept busy on average (`None`: it runs
    /// inside the benchmark's process).
    pub system_cpu: Option<f64>,
    /// Cores the benchmark's own process kept busy (senders, receivers,
    /// and the bare broadcast when that is measured).
    pub bench_cpu: f64,
    /// The highest key sent: the next phase's floor.
    pub last_key: u64,
}

/// When each of this phase's messages reached one device, by key.
type Arrivals = Arc<Mutex<Vec<(u64, Instant)>>>;

/// Every member device's stream, each read by its own task, which answers
/// every message with an acknowledgement and notes when each of this
/// phase's messages arrived.
pub struct Receivers {
    arrivals: Vec<Arrivals>,
    /// The payload (base64) of the first message of the channel longer
    /// than [`PAYLOAD`] that any receiver read: what a sender's message of
    /// that size looks like on the wire.
    sample: Arc<OnceLock<String>>,
    floor: Arc<AtomicU64>,
    broken: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Receivers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Receivers {
    /// Starts reading `streams`; frames of other groups than `group_id`
    /// are acknowledged but not counted.
    pub fn start(streams: Vec<Box<dyn PushStream>>, group_id: &str) -> Self {
        let floor = Arc::new(AtomicU64::new(u64::MAX));
        let broken = Arc::new(AtomicUsize::new(0));
        let sample: Arc<OnceLock<String>> = Arc::default();
        let mut arrivals = Vec::new();
        let mut tasks = Vec::new();
        for mut stream in streams {
            let log: Arrivals = Arc::default();
            let (floor, broken, sample) = (floor.clone(), broken.clone(), sample.clone());
            let group_id = group_id.to_owned();
            arrivals.push(log.clone());
            tasks.push(tokio::spawn(async move {
                // As client-core's `listen`: the frames that arrived
                // together are read, then acknowledged, a busy stream's at
                // most every `AckPacer::INTERVAL` in one frame.
                let mut acks = AckPacer::new();
                while let Some(Ok(frames)) = acks.next_frames(stream.as_mut(), BURST).await {
                    let at = Instant::now();
                    for text in frames {
                        let Ok(StreamFrame::Message(delivered)) = serde_json::from_str(&text)
                        else {
                            continue;
                        };
                        if delivered.group_id == group_id {
                            if delivered.seq > floor.load(Ordering::Acquire) {
                                log.lock().unwrap().push((delivered.seq, at));
                            }
                            if sample.get().is_none()
                                && delivered.kind == MessageKind::Application
                                && delivered.payload.len() > PAYLOAD
                            {
                                let _ = sample.set(delivered.payload.clone());
                            }
                        }
                        acks.note(&delivered);
                    }
                    if acks.send_if_due(stream.as_mut()).await.is_err() {
                        break;
                    }
                }
                broken.fetch_add(1, Ordering::Relaxed);
            }));
        }
        Self {
            arrivals,
            sample,
            floor,
            broken,
            tasks,
        }
    }

    /// The payload (base64) of the first application message of the channel
    /// longer than [`PAYLOAD`] a receiver read, waiting for one for up to
    /// [`STALL`].
    pub async fn sample(&self) -> Option<String> {
        let since = Instant::now();
        while since.elapsed() < STALL {
            if let Some(sample) = self.sample.get() {
                return Some(sample.clone());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    }

    /// Member devices reading.
    pub fn len(&self) -> usize {
        self.arrivals.len()
    }

    /// From now on, count only keys above `floor`.
    fn reset(&self, floor: u64) {
        self.floor.store(floor, Ordering::Release);
        for log in &self.arrivals {
            log.lock().unwrap().clear();
        }
    }

    fn arrived(&self) -> usize {
        self.arrivals
            .iter()
            .map(|log| log.lock().unwrap().len())
            .sum()
    }

    /// Waits until every receiver holds `each` arrivals, or none came for `STALL`.
    async fn wait_for(&self, each: usize) {
        let mut seen = self.arrived();
        let mut progress = Instant::now();
        loop {
            let done = self
                .arrivals
                .iter()
                .all(|log| log.lock().unwrap().len() >= each);
            if done || self.broken.load(Ordering::Relaxed) == self.len() {
                return;
            }
            let now = self.arrived();
            if now != seen {
                (seen, progress) = (now, Instant::now());
            } else if progress.elapsed() > STALL {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// One sent message: its key, when it was due (open loop) or started
/// (closed loop), and when it was answered.
struct Sent {
    key: Option<u64>,
    due: Instant,
    answered: Instant,
}

/// Runs one phase: sends by `plan` through `send`, every message above
/// `floor` counted on every receiver. `system` is the processes of the
/// system under test, for their CPU time (empty: it runs in this process).
pub async fn run(
    send: &SendFn,
    receivers: &Receivers,
    floor: u64,
    plan: Plan,
    system: &[u32],
) -> Load {
    receivers.reset(floor);
    let cpu_before = (cpu_seconds(system), cpu_seconds(&[std::process::id()]));
    let began = Instant::now();
    let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let mut tasks = Vec::new();
    let offered = match plan {
        Plan::Closed {
            in_flight,
            messages,
            at_least,
        } => {
            let next = Arc::new(AtomicUsize::new(0));
            for _ in 0..in_flight {
                let (send, sent, next) = (send.clone(), sent.clone(), next.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= messages && began.elapsed() >= at_least {
                            return;
                        }
                        let due = Instant::now();
                        let key = send(i).await;
                        let answered = Instant::now();
                        sent.lock().unwrap().push(Sent { key, due, answered });
                    }
                }));
            }
            None
        }
        Plan::Open { rate, messages } => {
            let connections = Arc::new(tokio::sync::Semaphore::new(OPEN_IN_FLIGHT));
            for i in 0..messages {
                let due = began + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                let (send, sent, connections) = (send.clone(), sent.clone(), connections.clone());
                tasks.push(tokio::spawn(async move {
                    let _connection = connections.acquire().await.unwrap();
                    let key = send(i).await;
                    let answered = Instant::now();
                    sent.lock().unwrap().push(Sent { key, due, answered });
                }));
            }
            Some(rate)
        }
    };
    for task in tasks {
        task.await.unwrap();
    }
    let sent = std::mem::take(&mut *sent.lock().unwrap());
    let keys: HashMap<u64, Instant> = sent
        .iter()
        .filter_map(|s| s.key.map(|key| (key, s.due)))
        .collect();
    receivers.wait_for(keys.len()).await;
    let cpu_after = (cpu_seconds(system), cpu_seconds(&[std::process::id()]));
    let elapsed = began.elapsed().as_secs_f64();

    // The last arrival of each message, and how many arrived at all (a
    // repeat on one device counts once, as clients drop repeats by id).
    let mut last: HashMap<u64, (Instant, usize)> = HashMap::new();
    let mut delivered = 0;
    for log in &receivers.arrivals {
        let mut log = log.lock().unwrap().clone();
        log.sort_by_key(|(key, _)| *key);
        log.dedup_by_key(|(key, _)| *key);
        for (key, at) in log {
            if keys.contains_key(&key) {
                delivered += 1;
                let (latest, devices) = last.entry(key).or_insert((at, 0));
                *latest = (*latest).max(at);
                *devices += 1;
            }
        }
    }
    let millis =
        |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64() * 1e3;
    let answered_by = sent.iter().map(|s| s.answered).max().unwrap_or(began);
    let delivered_by = last.values().map(|(at, _)| *at).max().unwrap_or(began);
    let expected = keys.len() * receivers.len();
    let ok = |s: &&Sent| s.key.is_some();
    Load {
        offered,
        messages: sent.len(),
        accepted: sent.iter().filter(ok).count() as f64
            / answered_by.duration_since(began).as_secs_f64(),
        deliveries: delivered as f64 / delivered_by.duration_since(began).as_secs_f64(),
        ack: Percentiles::of(
            sent.iter()
                .filter(ok)
                .map(|s| millis(s.due, s.answered))
                .collect(),
        ),
        // Only messages that reached every device have a last delivery.
        last_delivery: Percentiles::of(
            sent.iter()
                .filter_map(|s| {
                    let (at, devices) = last.get(&s.key?)?;
                    (*devices == receivers.len()).then(|| millis(s.due, *at))
                })
                .collect(),
        ),
        failed: sent.len() - keys.len(),
        missing: expected - delivered,
        system_cpu: (!system.is_empty()).then(|| (cpu_after.0 - cpu_before.0) / elapsed),
        bench_cpu: (cpu_after.1 - cpu_before.1) / elapsed,
        last_key: keys.keys().copied().max().unwrap_or(floor).max(floor),
    }
}

/// CPU seconds (user and system) the processes `pids` have used (Linux).
pub fn cpu_seconds(pids: &[u32]) -> f64 {
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            // Fields after the command name, which may hold spaces: state
            // is the 3rd field, utime the 14th, stime the 15th.
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split(' ').collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks)
        })
        .sum()
}
