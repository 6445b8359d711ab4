//! Connections: many idle TLS WebSocket push streams held by one node, what
//! each costs it in memory, and a reconnect storm when a node dies.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use conclave_client::{HttpRequest, HttpsTransport, PushStream, ServerTrust, Transport};
use conclave_tests::{RawDevice, ServerProcess};
use tokio::sync::Semaphore;

/// Devices the streams are spread over (each holds many streams).
const DEVICES: usize = 20;
/// Streams being opened at once.
const OPENING: usize = 256;

/// What holding `count` idle streams cost one node.
pub struct Idle {
    pub count: usize,
    pub opened_in: Duration,
    pub rss_before: u64,
    pub rss_after: u64,
}

/// Resident memory of a process, in bytes (Linux).
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

async fn devices(node: &ServerProcess) -> Vec<Arc<RawDevice>> {
    let mut devices = Vec::new();
    for i in 0..DEVICES {
        let name = format!("idle{i}");
        devices.push(Arc::new(
            RawDevice::register(node, &name, "bench-password-0004").await,
        ));
    }
    devices
}

/// Opens `count` streams through `transport`, `OPENING` at a time.
async fn open_many(
    transport: &HttpsTransport,
    devices: &[Arc<RawDevice>],
    count: usize,
) -> Vec<Box<dyn PushStream>> {
    let gate = Arc::new(Semaphore::new(OPENING));
    let mut opening = Vec::new();
    for i in 0..count {
        let (transport, device, gate) = (
            transport.clone(),
            devices[i % devices.len()].clone(),
            gate.clone(),
        );
        opening.push(tokio::spawn(async move {
            let _turn = gate.acquire().await.unwrap();
            let request = HttpRequest::signed(&device.key, "GET", "/v1/stream", Vec::new());
            transport.open_stream(request).await.unwrap()
        }));
    }
    let mut streams = Vec::new();
    for task in opening {
        streams.push(task.await.unwrap());
    }
    streams
}

/// `count` idle streams on one SQLite node.
pub async fn idle(count: usize) -> Idle {
    let node = ServerProcess::start_with(vec!["--rate-limits".into(), "false".into()]);
    let pid = node.pid().unwrap();
    let devices = devices(&node).await;
    let transport = crate::fanout::transport_to(&node);
    // Warm the node up (TLS, pools, first stream) before the baseline.
    drop(open_many(&transport, &devices, OPENING).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = rss(pid);
    let started = Instant::now();
    let streams = open_many(&transport, &devices, count).await;
    let opened_in = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = rss(pid);
    drop(streams);
    Idle {
        count,
        opened_in,
        rss_before,
        rss_after,
    }
}

/// How long the clients of a killed node took to be back on the other.
pub struct Storm {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub all_back: Duration,
}

/// Two nodes on PostgreSQL; `count` streams on node A, each reconnecting at
/// once (through a transport that knows both nodes) when A is SIGKILLed.
pub async fn storm(database_url: String, count: usize) -> Storm {
    let mut node_a = ServerProcess::start_with(vec![
        "--database-url".into(),
        database_url,
        "--rate-limits".into(),
        "false".into(),
    ]);
    let node_b = node_a.another_node();
    let devices = devices(&node_a).await;
    let both = HttpsTransport::new(
        &format!("{},{}", node_a.url, node_b.url),
        ServerTrust::pin(&node_a.fingerprint).unwrap(),
    )
    .unwrap();
    let streams = open_many(&both, &devices, count).await;
    let back = Arc::new(AtomicUsize::new(0));
    let killed_at = Arc::new(std::sync::OnceLock::<Instant>::new());
    let mut waiting = Vec::new();
    for (i, mut stream) in streams.into_iter().enumerate() {
        let (both, device, back, killed_at) = (
            both.clone(),
            devices[i % devices.len()].clone(),
            back.clone(),
            killed_at.clone(),
        );
        waiting.push(tokio::spawn(async move {
            while let Some(Ok(_)) = stream.next_frame().await {}
            loop {
                let request = HttpRequest::signed(&device.key, "GET", "/v1/stream", Vec::new());
                match both.open_stream(request).await {
                    Ok(stream) => {
                        let took = killed_at.get().map(Instant::elapsed).unwrap_or_default();
                        back.fetch_add(1, Ordering::Relaxed);
                        return (took, stream);
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    killed_at.set(Instant::now()).unwrap();
    node_a.kill_hard();
    let mut times = Vec::new();
    let mut reopened = Vec::new();
    for task in waiting {
        let (took, stream) = task.await.unwrap();
        times.push(took);
        reopened.push(stream);
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p) as usize];
    Storm {
        count,
        p50: pct(0.5),
        p99: pct(0.99),
        all_back: *times.last().unwrap(),
    }
}
