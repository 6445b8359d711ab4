//! Fan-out: one channel, every member device holding a push stream, four
//! senders; the real relay (separate processes, release build) on SQLite,
//! on PostgreSQL, and as two nodes sharing PostgreSQL, against a bare TLS
//! WebSocket broadcast with no storage or checks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::routing::{get, post};
use base64::Engine;
use conclave_client::{
    BoxFuture, Client, Credentials, HttpRequest, HttpsTransport, PushStream, SecondFactor,
    ServerTrust, SoftAuthenticator, Transport,
};
use conclave_tests::{RawDevice, ServerProcess, TempDir};
use tokio::sync::broadcast;

use crate::{MESSAGES, PAYLOAD, SENDERS};

#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub accepted: f64,
    pub deliveries: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
}

type SendFn = Arc<dyn Fn(usize) -> BoxFuture<'static, u64> + Send + Sync>;

/// A transport to one node, trusting the workspace's certificate.
pub fn transport_to(node: &ServerProcess) -> HttpsTransport {
    HttpsTransport::new(&node.url, ServerTrust::pin(&node.fingerprint).unwrap()).unwrap()
}

/// One channel of `members` devices on a relay: the host's device, and the
/// devices of one crowd account (signed in with a software passkey).
pub struct Channel {
    pub members: usize,
    name: String,
    /// Every member device's home (the host's first).
    homes: Vec<std::path::PathBuf>,
    _crowd_homes: Vec<TempDir>,
    /// The host and up to three crowd devices, synced: they send.
    senders: Vec<Client>,
}

/// The host account, on node `node`, that creates every channel.
pub async fn host(node: &ServerProcess) -> (Client, TempDir) {
    let home = TempDir::new("bench-host");
    let host = Client::open_with(
        home.path(),
        transport_to(node),
        conclave_client::KeyProtection::Unprotected,
    )
    .await
    .unwrap();
    host.register("host", "bench-password-0001").await.unwrap();
    (host, home)
}

/// Makes a channel of `members` devices (the host's and `members - 1` of a
/// new crowd account).
pub async fn channel(
    node: &ServerProcess,
    host: &Client,
    host_home: &TempDir,
    members: usize,
) -> Channel {
    let crowd = format!("crowd{members}");
    let password = "bench-password-0002";
    let transport = transport_to(node);
    let mut passkey = SoftAuthenticator::new().unwrap();
    let mut homes = vec![host_home.path().to_owned()];
    let mut crowd_homes = Vec::new();
    let mut senders = vec![host.clone()];
    for i in 0..members - 1 {
        let home = TempDir::new("bench-crowd");
        let client = Client::open_with(
            home.path(),
            transport.clone(),
            conclave_client::KeyProtection::Unprotected,
        )
        .await
        .unwrap();
        if i == 0 {
            client.register(&crowd, password).await.unwrap();
            client
                .enroll_passkey(
                    &mut passkey,
                    "bench",
                    false,
                    Credentials::password(password),
                )
                .await
                .unwrap();
        } else {
            // Every device after the first needs a second factor.
            let factor = SecondFactor::Webauthn(&mut passkey);
            client
                .login_with(&crowd, Credentials::with(password, factor))
                .await
                .unwrap();
        }
        if senders.len() < SENDERS {
            senders.push(client);
        }
        homes.push(home.path().to_owned());
        crowd_homes.push(home);
    }
    let name = format!("bench-{members}");
    host.create_channel(&name)
        .await
        .unwrap()
        .invite(&crowd)
        .await
        .unwrap();
    for sender in &senders {
        sender.sync().await.unwrap();
    }
    Channel {
        members,
        name,
        homes,
        _crowd_homes: crowd_homes,
        senders,
    }
}

/// Sends `MESSAGES` messages of `PAYLOAD` bytes into `channel` while every
/// member device receives, its streams spread over `nodes` in turn; the
/// median of `repeats` runs.
pub async fn relay_load(channel: &Channel, nodes: &[&ServerProcess], repeats: usize) -> Load {
    let mut devices = Vec::new();
    for (i, home) in channel.homes.iter().enumerate() {
        let node = nodes[i % nodes.len()];
        devices.push(RawDevice::from_home_with(transport_to(node), home).await);
    }
    let text = "x".repeat(PAYLOAD);
    // Each sender holds its handle on the channel, as a client does.
    let mut senders = Vec::new();
    for sender in &channel.senders {
        senders.push(sender.channel_named(&channel.name).await.unwrap());
    }
    let count = senders.len();
    let send: SendFn = Arc::new(move |i| {
        let sender = senders[i % count].clone();
        let text = text.clone();
        Box::pin(async move { sender.send(&text).await.unwrap() })
    });
    let seq_of =
        |frame: &str| serde_json::from_str::<serde_json::Value>(frame).ok()?["seq"].as_u64();
    let mut runs = Vec::new();
    for _ in 0..repeats {
        // Everything up to this message belongs to earlier runs.
        let floor = channel.senders[0]
            .channel_named(&channel.name)
            .await
            .unwrap()
            .send("warm-up")
            .await
            .unwrap();
        let mut receivers = Vec::new();
        for device in &devices {
            receivers.push(device.open_stream().await);
        }
        runs.push(measure(send.clone(), receivers, seq_of, floor, true).await);
    }
    median(runs)
}

/// The run with the median accepted rate (runs on 2 shared cores are noisy).
fn median(mut runs: Vec<Load>) -> Load {
    runs.sort_by(|a, b| a.accepted.total_cmp(&b.accepted));
    runs[runs.len() / 2]
}

/// Drives `MESSAGES` sends over `SENDERS` tasks while every receiver counts frames.
/// `key_of` maps a frame to the key `send` returned; keys `<= floor` are ignored.
pub async fn measure(
    send: SendFn,
    receivers: Vec<Box<dyn PushStream>>,
    key_of: fn(&str) -> Option<u64>,
    floor: u64,
    ack: bool,
) -> Load {
    let arrivals: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let receiver_count = receivers.len();
    let mut tasks = Vec::new();
    for mut stream in receivers {
        let arrivals = arrivals.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = 0;
            let mut last: Option<(String, u64)>;
            while got < MESSAGES {
                let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_secs(60), stream.next_frame()).await else {
                    panic!("receiver stalled after {got} frames");
                };
                let Some(key) = key_of(&frame) else { continue };
                if key <= floor {
                    continue;
                }
                arrivals.lock().unwrap().push((key, Instant::now()));
                got += 1;
                last = Some((frame, key));
                if ack && got % 50 == 0 {
                    let group: serde_json::Value = serde_json::from_str(&last.as_ref().unwrap().0).unwrap();
                    let body = serde_json::json!({ "acks": [{ "group_id": group["group_id"], "seq": key }] });
                    stream.send_frame(body.to_string()).await.unwrap();
                }
            }
        }));
    }
    let starts: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let began = Instant::now();
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let send = send.clone();
        let starts = starts.clone();
        senders.push(tokio::spawn(async move {
            for i in (s..MESSAGES).step_by(SENDERS) {
                let start = Instant::now();
                let key = send(i).await;
                starts.lock().unwrap().insert(key, start);
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    let accepted_in = began.elapsed();
    for t in tasks {
        t.await.unwrap();
    }
    let delivered_in = began.elapsed();
    let starts = starts.lock().unwrap();
    let mut latencies: Vec<f64> = arrivals
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(key, at)| {
            starts
                .get(key)
                .map(|s| at.saturating_duration_since(*s).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];
    Load {
        accepted: MESSAGES as f64 / accepted_in.as_secs_f64(),
        deliveries: (MESSAGES * receiver_count) as f64 / delivered_in.as_secs_f64(),
        p50: pct(0.5),
        p99: pct(0.99),
        p999: pct(0.999),
    }
}

/// A bare TLS WebSocket broadcast: POST /send fans the body out, nothing stored or checked.
pub async fn bare_load(members: usize, repeats: usize) -> Load {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert_der = certified.cert.der().clone();
    let key =
        rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der()).unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert_der.clone()], key)
    .unwrap();
    let (tx, _) = broadcast::channel::<String>(65536);
    let app = axum::Router::new()
        .route(
            "/send",
            post(
                |State(tx): State<broadcast::Sender<String>>, body: String| async move {
                    let _ = tx.send(body);
                    "{}"
                },
            ),
        )
        .route(
            "/v1/stream",
            get(
                |State(tx): State<broadcast::Sender<String>>, ws: WebSocketUpgrade| async move {
                    let mut rx = tx.subscribe();
                    ws.read_buffer_size(8192)
                        .on_upgrade(move |mut socket| async move {
                            while let Ok(frame) = rx.recv().await {
                                if socket.send(Message::Text(frame.into())).await.is_err() {
                                    break;
                                }
                            }
                        })
                },
            ),
        )
        .with_state(tx);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls));
    tokio::spawn(
        axum_server::from_tcp_rustls(listener, config)
            .unwrap()
            .serve(app.into_make_service()),
    );
    let pin: [u8; 32] = {
        use sha2::Digest;
        sha2::Sha256::digest(&cert_der).into()
    };
    let transport = HttpsTransport::new(&url, ServerTrust::PinSha256(pin)).unwrap();
    let payload = base64::engine::general_purpose::STANDARD.encode(vec![7u8; PAYLOAD]);
    let sender_transport = transport.clone();
    let send: SendFn = Arc::new(move |i| {
        let transport = sender_transport.clone();
        let body = serde_json::json!({ "id": i + 1, "payload": payload })
            .to_string()
            .into_bytes();
        Box::pin(async move {
            let request = HttpRequest {
                method: "POST",
                path: "/send".into(),
                headers: Vec::new(),
                body,
            };
            transport.send(request).await.unwrap();
            (i + 1) as u64
        })
    });
    let id_of = |frame: &str| serde_json::from_str::<serde_json::Value>(frame).ok()?["id"].as_u64();
    let mut runs = Vec::new();
    for _ in 0..repeats {
        let mut receivers = Vec::new();
        for _ in 0..members {
            let request = HttpRequest {
                method: "GET",
                path: "/v1/stream".into(),
                headers: Vec::new(),
                body: Vec::new(),
            };
            receivers.push(transport.open_stream(request).await.unwrap());
        }
        runs.push(measure(send.clone(), receivers, id_of, 0, false).await);
    }
    median(runs)
}
