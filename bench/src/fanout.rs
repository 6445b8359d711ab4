//! Fan-out: one channel, every member device holding a push stream and
//! acknowledging every message; the real relay (separate processes,
//! release build) on SQLite, on PostgreSQL, and as two nodes sharing
//! PostgreSQL, against the bare broadcast of [`crate::bare`], each driven
//! the same way by [`crate::load`]: at its maximum (closed loop), then in
//! an open loop at 100% and 50% of that maximum.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use conclave_client::{
    Client, Credentials, HttpRequest, HttpsTransport, SecondFactor, ServerTrust, SoftAuthenticator,
    Transport,
};
use conclave_proto::{Delivered, MessageKind, PostAnswer, PostMessage, StreamFrame};
use conclave_tests::{RawDevice, ServerProcess, TempDir};

use crate::load::{self, Load, Plan, Receivers, SendFn};
use crate::{IN_FLIGHT, PAYLOAD, SENDER_DEVICES, Settings};

/// One system at one channel size: at its maximum, then open loop at 100%
/// and 50% of that maximum.
#[derive(Debug, Clone, Copy)]
pub struct Rows {
    pub max: Load,
    pub full: Load,
    pub half: Load,
}

/// A transport to one node, trusting the workspace's certificate.
pub fn transport_to(node: &ServerProcess) -> HttpsTransport {
    HttpsTransport::new(&node.url, ServerTrust::pin(&node.fingerprint).unwrap()).unwrap()
}

/// One channel of `members` devices on a relay: the host's device, and the
/// devices of one crowd account (signed in with a software passkey).
pub struct Channel {
    pub members: usize,
    group_id: String,
    /// Every member device's home (the host's first).
    homes: Vec<std::path::PathBuf>,
    _crowd_homes: Vec<TempDir>,
    /// The host and the first crowd devices, synced: they send.
    senders: Vec<Client>,
    name: String,
    /// The channel's highest position so far.
    last_seq: u64,
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
        if senders.len() < SENDER_DEVICES {
            senders.push(client);
        }
        homes.push(home.path().to_owned());
        crowd_homes.push(home);
    }
    let name = format!("bench-{members}");
    let created = host.create_channel(&name).await.unwrap();
    created.invite(&crowd).await.unwrap();
    for sender in &senders {
        sender.sync().await.unwrap();
    }
    Channel {
        members,
        group_id: created.group_id().to_owned(),
        homes,
        _crowd_homes: crowd_homes,
        senders,
        name,
        last_seq: 0,
    }
}

/// Who sends in a relay's phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Senders {
    /// The sender devices post, each in a request it signs, an MLS message
    /// framed as the channel's own (same group, epoch and length: a
    /// message a sender sent, with its last eight bytes replaced by a
    /// counter, so that each is new to the relay's duplicate check). This
    /// is what the relay receives from a client, without the client's own
    /// work of encrypting and storing it, as the bare broadcast's sender
    /// posts a ready frame; the relay does the same with it as with any
    /// message, as it cannot read either.
    Posting,
    /// client-core devices: MLS encryption and a durable local write per send.
    Clients,
}

/// Numbers the posted messages of the whole run, so that no two are alike.
static POSTED: AtomicU64 = AtomicU64::new(0);

/// Measures the relay: every member device's stream open on `nodes` in
/// turn, each sender device warmed by one send (as a client that has
/// checked its channel's members already), then the three phases, sent
/// by `senders` to the first node.
pub async fn relay(
    channel: &mut Channel,
    nodes: &[&ServerProcess],
    system: &str,
    settings: &Settings,
    senders: Senders,
) -> Rows {
    let mut streams = Vec::new();
    for (i, home) in channel.homes.iter().enumerate() {
        let device = RawDevice::from_home_with(transport_to(nodes[i % nodes.len()]), home).await;
        streams.push(device.open_stream().await);
    }
    let receivers = Receivers::start(streams, &channel.group_id);
    let mut handles = Vec::new();
    for sender in &channel.senders {
        let handle = sender.channel_named(&channel.name).await.unwrap();
        let seq = handle.send("warm-up").await.unwrap();
        channel.last_seq = channel.last_seq.max(seq);
        handles.push(handle);
    }
    let send: SendFn = match senders {
        Senders::Clients => {
            let text = "x".repeat(PAYLOAD);
            Arc::new(move |i| {
                let sender = handles[i % handles.len()].clone();
                let text = text.clone();
                Box::pin(async move { sender.send(&text).await.ok() })
            })
        }
        Senders::Posting => {
            // A 1 KiB message as a sender's client-core encrypts it.
            let seq = handles[0].send(&"x".repeat(PAYLOAD)).await.unwrap();
            channel.last_seq = channel.last_seq.max(seq);
            let sample = receivers.sample().await.expect("a sent message arrives");
            let sample = base64::engine::general_purpose::STANDARD
                .decode(sample)
                .unwrap();
            // The sender devices' keys; one transport carries every post.
            let transport = transport_to(nodes[0]);
            let mut keys = Vec::new();
            for home in &channel.homes[..channel.senders.len()] {
                keys.push(RawDevice::from_home_with(transport.clone(), home).await.key);
            }
            let path = conclave_proto::routes::group_messages(&channel.group_id);
            Arc::new(move |i| {
                let mut message = sample.clone();
                let at = message.len() - 8;
                let n = POSTED.fetch_add(1, Ordering::Relaxed);
                message[at..].copy_from_slice(&n.to_be_bytes());
                let body = serde_json::to_vec(&PostMessage::message(
                    base64::engine::general_purpose::STANDARD.encode(&message),
                ))
                .unwrap();
                let request = HttpRequest::signed(&keys[i % keys.len()], "POST", &path, body);
                let transport = transport.clone();
                Box::pin(async move {
                    match transport.send(request).await {
                        Ok(response) if response.status == 200 => {
                            let answer: PostAnswer = serde_json::from_slice(&response.body).ok()?;
                            Some(answer.seq)
                        }
                        _ => None,
                    }
                })
            })
        }
    };
    let pids: Vec<u32> = nodes.iter().filter_map(|node| node.pid()).collect();
    let label = format!("{} devices, {system}", channel.members);
    let (rows, last) = phases(&label, &send, &receivers, channel.last_seq, &pids, settings).await;
    channel.last_seq = last;
    rows
}

/// Measures the bare broadcast at `members` devices: the sender posts a
/// frame shaped like the relay's (a 1 KiB payload, base64) with a fresh
/// position, and every device reads and acknowledges it the same way.
pub async fn bare(members: usize, settings: &Settings) -> Rows {
    let bare = crate::bare::serve(crate::bare::broadcast());
    let mut streams = Vec::new();
    for _ in 0..members {
        let request = HttpRequest {
            method: "GET",
            path: "/v1/stream".into(),
            headers: Vec::new(),
            body: Vec::new(),
        };
        streams.push(bare.transport.open_stream(request).await.unwrap());
    }
    let receivers = Receivers::start(streams, "bare");
    let payload = base64::engine::general_purpose::STANDARD.encode(vec![7u8; PAYLOAD]);
    let next = Arc::new(AtomicU64::new(0));
    let transport = bare.transport.clone();
    let send: SendFn = Arc::new(move |_| {
        let transport = transport.clone();
        let seq = next.fetch_add(1, Ordering::Relaxed) + 1;
        let frame = StreamFrame::Message(Delivered {
            group_id: "bare".into(),
            seq,
            kind: MessageKind::Application,
            payload: payload.clone(),
        });
        let body = serde_json::to_vec(&frame).unwrap();
        Box::pin(async move {
            let request = HttpRequest {
                method: "POST",
                path: "/send".into(),
                headers: Vec::new(),
                body,
            };
            match transport.send(request).await {
                Ok(response) if response.status == 200 => Some(seq),
                _ => None,
            }
        })
    });
    let label = format!("{members} devices, bare broadcast");
    phases(&label, &send, &receivers, 0, &[], settings).await.0
}

/// The closed loop, then the open loop at 100% and 50% of the rate it
/// sustained; the rows and the last key sent. Each phase is announced on
/// standard error as it starts (`label`, then the phase), so a long run
/// shows where it is, and a profiler can be pointed at one phase.
async fn phases(
    label: &str,
    send: &SendFn,
    receivers: &Receivers,
    floor: u64,
    system: &[u32],
    settings: &Settings,
) -> (Rows, u64) {
    eprintln!("conclave-bench: fan-out, {label}, max");
    let max = load::run(
        send,
        receivers,
        floor,
        Plan::Closed {
            in_flight: IN_FLIGHT,
            messages: settings.min_messages,
            at_least: settings.phase,
        },
        system,
    )
    .await;
    // The most it sustains end to end: messages accepted, or messages
    // delivered to every device, per second, whichever is fewer.
    let sustained = max.accepted.min(max.deliveries / receivers.len() as f64);
    let open = |share: f64| {
        let rate = sustained * share;
        let messages = ((rate * settings.phase.as_secs_f64()) as usize).max(settings.min_messages);
        Plan::Open { rate, messages }
    };
    settle().await;
    eprintln!("conclave-bench: fan-out, {label}, open 100%");
    let full = load::run(send, receivers, max.last_key, open(1.0), system).await;
    settle().await;
    eprintln!("conclave-bench: fan-out, {label}, open 50%");
    let half = load::run(send, receivers, full.last_key, open(0.5), system).await;
    (Rows { max, full, half }, half.last_key)
}

/// A pause between phases, so that one phase's tail (acknowledgements
/// being written, connections closing) is not measured in the next.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(1)).await;
}
