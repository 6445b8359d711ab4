//! Connections: many idle TLS WebSocket push streams held by one node, what
//! each costs it in memory, and a reconnect storm when a node dies.
//!
//! One source address can reach one port of the relay from at most as many
//! ports as the kernel hands out for outgoing connections (about 28,000 by
//! default), so the idle streams come from several loopback addresses
//! (127.0.0.1, 127.0.0.2, …), each opened here with the same TLS and
//! WebSocket handshake as client-core's transport, which cannot choose its
//! source address.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use conclave_client::{HttpRequest, HttpsTransport, PushStream, ServerTrust, Transport};
use conclave_tests::{RawDevice, ServerProcess};
use futures_util::StreamExt;
use rustls::pki_types::pem::PemObject;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Devices the streams are spread over (each holds many streams).
const DEVICES: usize = 20;
/// Streams being opened at once.
pub const OPENING: usize = 256;
/// Streams opened from one source address at most.
const PER_SOURCE: usize = 20_000;

/// What holding `count` idle streams cost one node.
pub struct Idle {
    pub count: usize,
    /// Streams that did not open, or closed while they should have stayed.
    pub errors: usize,
    /// Source addresses the streams came from.
    pub sources: usize,
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

/// Opens push streams to one node from a chosen loopback source address.
#[derive(Clone)]
struct Opener {
    node: SocketAddr,
    tls: tokio_rustls::TlsConnector,
}

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

impl Opener {
    /// Trusts the node's own certificate, as `ServerTrust::ca_file` does.
    fn new(node: &ServerProcess) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_file_iter(node.certificate()).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        Self {
            node: node.url.trim_start_matches("https://").parse().unwrap(),
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        }
    }

    async fn open(&self, source: Ipv4Addr, device: &RawDevice) -> Result<Stream, String> {
        let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
        socket
            .bind(SocketAddr::from((source, 0)))
            .map_err(|e| format!("bind {source}: {e}"))?;
        let tcp = socket
            .connect(self.node)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let name = rustls::pki_types::ServerName::IpAddress(self.node.ip().into());
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let signed = HttpRequest::signed(&device.key, "GET", "/v1/stream", Vec::new());
        let mut request = format!("wss://{}/v1/stream", self.node)
            .into_client_request()
            .map_err(|e| e.to_string())?;
        for (name, value) in signed.headers {
            request
                .headers_mut()
                .insert(name, value.parse().map_err(|_| "bad header")?);
        }
        // An idle client needs no large read buffer.
        let config = WebSocketConfig::default().read_buffer_size(4096);
        let (stream, _) = tokio_tungstenite::client_async_with_config(request, tls, Some(config))
            .await
            .map_err(|e| format!("WebSocket: {e}"))?;
        Ok(stream)
    }
}

/// `count` idle streams on one SQLite node, from as many loopback source
/// addresses as they need; each is read (answering the relay's pings) so
/// that a stream the relay closes counts as an error.
pub async fn idle(count: usize) -> Idle {
    let node = ServerProcess::start_with(vec!["--rate-limits".into(), "false".into()]);
    let pid = node.pid().unwrap();
    let devices = devices(&node).await;
    let opener = Opener::new(&node);
    let sources = count.div_ceil(PER_SOURCE).max(1);
    let closed = Arc::new(AtomicUsize::new(0));
    let open_all = |count: usize| {
        let (opener, devices, closed) = (opener.clone(), devices.clone(), closed.clone());
        async move {
            let gate = Arc::new(Semaphore::new(OPENING));
            let mut opening = Vec::new();
            for i in 0..count {
                let (opener, device, gate, closed) = (
                    opener.clone(),
                    devices[i % devices.len()].clone(),
                    gate.clone(),
                    closed.clone(),
                );
                let source = Ipv4Addr::new(127, 0, 0, 1 + (i % sources) as u8);
                opening.push(tokio::spawn(async move {
                    let turn = gate.acquire().await.unwrap();
                    let mut stream = opener.open(source, &device).await?;
                    drop(turn);
                    // Held, and read, until this task is aborted.
                    Ok::<_, String>(tokio::spawn(async move {
                        while let Some(Ok(_)) = stream.next().await {}
                        closed.fetch_add(1, Ordering::Relaxed);
                    }))
                }));
            }
            let mut held = Vec::new();
            let mut failures = Vec::new();
            for task in opening {
                match task.await.unwrap() {
                    Ok(reader) => held.push(reader),
                    Err(e) => failures.push(e),
                }
            }
            (held, failures)
        }
    };
    // Warm the node up (TLS, pools, first streams) before the baseline.
    let (warm, _) = open_all(OPENING).await;
    warm.iter().for_each(tokio::task::JoinHandle::abort);
    tokio::time::sleep(Duration::from_secs(2)).await;
    closed.store(0, Ordering::Relaxed);
    let rss_before = rss(pid);
    let started = Instant::now();
    let (held, failures) = open_all(count).await;
    let opened_in = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = rss(pid);
    let errors = failures.len() + closed.load(Ordering::Relaxed);
    if let Some(first) = failures.first() {
        eprintln!(
            "conclave-bench: {} of {count} idle streams did not open; the first: {first}",
            failures.len()
        );
    }
    held.iter().for_each(tokio::task::JoinHandle::abort);
    Idle {
        count,
        errors,
        sources,
        opened_in,
        rss_before,
        rss_after,
    }
}

/// How long the clients of a killed node took to be back on the other.
pub struct Storm {
    pub count: usize,
    /// Streams that did not open before the node was killed.
    pub errors: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub all_back: Duration,
}

/// Two nodes on PostgreSQL; `count` streams on node A, each reconnecting at
/// once (through client-core's transport, which knows both nodes) when A
/// is SIGKILLed.
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
    let gate = Arc::new(Semaphore::new(OPENING));
    let mut opening = Vec::new();
    for i in 0..count {
        let (both, device, gate) = (
            both.clone(),
            devices[i % devices.len()].clone(),
            gate.clone(),
        );
        opening.push(tokio::spawn(async move {
            let _turn = gate.acquire().await.unwrap();
            let request = HttpRequest::signed(&device.key, "GET", "/v1/stream", Vec::new());
            both.open_stream(request)
                .await
                .map(|stream| (stream, device))
        }));
    }
    let mut streams: Vec<(Box<dyn PushStream>, Arc<RawDevice>)> = Vec::new();
    let mut errors = 0;
    for task in opening {
        match task.await.unwrap() {
            Ok(opened) => streams.push(opened),
            Err(_) => errors += 1,
        }
    }
    let back = Arc::new(AtomicUsize::new(0));
    let killed_at = Arc::new(std::sync::OnceLock::<Instant>::new());
    let mut waiting = Vec::new();
    for (mut stream, device) in streams {
        let (both, back, killed_at) = (both.clone(), back.clone(), killed_at.clone());
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
        errors,
        p50: pct(0.5),
        p99: pct(0.99),
        all_back: *times.last().unwrap(),
    }
}
