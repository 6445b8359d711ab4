//! Issue 19: a thousand-device channel on one SQLite relay never waits on
//! the database. Every device streams and acknowledges every message, as
//! real clients do, while new devices sign in and checkpoints are signed
//! beside the messages (the writes that once deadlocked: a checkpoint
//! holding the write lock while waiting for a connection that ack and
//! nonce writers held, waiting for that lock).
//!
//! What is checked is what the relay's own log says: no statement ran for
//! more than a second, no connection waited more than a second for its
//! turn (sqlx warns of both), no pool timed out, nothing found the
//! database locked. No timing is asserted here: the benchmark measures.
//! And every acknowledgement, coalesced in memory, is on disk after a
//! graceful stop.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::HashMap;
use std::time::Duration;

use conclave_client::{Credentials, SecondFactor, SoftAuthenticator};
use conclave_tests::{RawDevice, ServerProcess, TempDir, set_relay_log_level};
use serde_json::{Value, json};

const DEVICES: usize = 1000;
const MESSAGES: usize = 30;
const PASSWORD: &str = "stall-password-0001";

/// Another device of the crowd, signed in by client-core with the crowd's
/// passkey (a new device needs a second factor); its key, for a raw stream.
async fn crowd_device(server: &ServerProcess, passkey: &mut SoftAuthenticator) -> RawDevice {
    let home = TempDir::new("stall-crowd");
    let client = server.client(home.path()).await;
    client
        .login_with(
            "crowd",
            Credentials::with(PASSWORD, SecondFactor::Webauthn(passkey)),
        )
        .await
        .unwrap();
    RawDevice::from_home(server, home.path()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_device_channel_never_waits_on_the_database() {
    // Warnings only: sqlx's "slow statement" and "time to acquire" are
    // warnings, and a thousand streams at debug level would drown the log.
    set_relay_log_level("warn");
    let mut server = ServerProcess::start_with(vec![
        // One address signs in a thousand devices.
        "--rate-limits".into(),
        "false".into(),
        // The commit that adds 999 devices, with its Welcome.
        "--max-body-bytes".into(),
        "16777216".into(),
    ]);
    let host_home = TempDir::new("stall-host");
    let host = server.client(host_home.path()).await;
    host.register("host", PASSWORD).await.unwrap();

    // Two passkeys, so that two devices sign in at a time.
    let mut passkey = SoftAuthenticator::new().unwrap();
    let mut second_passkey = SoftAuthenticator::new().unwrap();
    let first_home = TempDir::new("stall-crowd");
    let first = server.client(first_home.path()).await;
    first.register("crowd", PASSWORD).await.unwrap();
    first
        .enroll_passkey(&mut passkey, "one", false, Credentials::password(PASSWORD))
        .await
        .unwrap();
    first
        .enroll_passkey(
            &mut second_passkey,
            "two",
            false,
            Credentials::with(PASSWORD, SecondFactor::Webauthn(&mut passkey)),
        )
        .await
        .unwrap();
    drop(first);
    let mut crowd = vec![RawDevice::from_home(&server, first_home.path()).await];
    let half = (DEVICES - 2) / 2;
    let (one, two) = tokio::join!(
        async {
            let mut devices = Vec::new();
            for _ in 0..half {
                devices.push(crowd_device(&server, &mut passkey).await);
            }
            devices
        },
        async {
            let mut devices = Vec::new();
            for _ in half..DEVICES - 2 {
                devices.push(crowd_device(&server, &mut second_passkey).await);
            }
            devices
        },
    );
    crowd.extend(one);
    crowd.extend(two);

    let channel = host.create_channel("everyone").await.unwrap();
    channel.invite("crowd").await.unwrap();
    let group_id = channel.info().await.unwrap().group_id;

    // Every crowd device streams and acknowledges each message it gets.
    let mut streams = Vec::new();
    for device in &crowd {
        streams.push(device.open_stream().await);
    }
    let (last_tx, last_rx) = tokio::sync::watch::channel(0u64);
    let receivers: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            let mut last_rx = last_rx.clone();
            let group_id = group_id.clone();
            tokio::spawn(async move {
                let mut seen: Vec<u64> = Vec::new();
                loop {
                    let last = *last_rx.borrow_and_update();
                    if last > 0 && seen.last().is_some_and(|&s| s >= last) {
                        return seen;
                    }
                    let frame = tokio::select! {
                        frame = stream.next_frame() => frame,
                        _ = last_rx.changed() => continue,
                    };
                    let frame = match frame {
                        Some(Ok(frame)) => frame,
                        other => panic!("stream ended after {} messages: {other:?}", seen.len()),
                    };
                    let frame: Value = serde_json::from_str(&frame).unwrap();
                    let (Some(group), Some(seq)) =
                        (frame["group_id"].as_str(), frame["seq"].as_u64())
                    else {
                        continue;
                    };
                    assert_eq!(group, group_id);
                    if frame["kind"] == "application" {
                        seen.push(seq);
                    }
                    let ack = json!({ "acks": [{ "group_id": group, "seq": seq }] });
                    stream.send_frame(ack.to_string()).await.unwrap();
                }
            })
        })
        .collect();

    // Beside the messages: devices signing in (log appends) and auditors
    // asking for checkpoints (signed on demand).
    let latecomers = async {
        for _ in 0..10 {
            let device = crowd_device(&server, &mut passkey).await;
            let checkpoint = device
                .signed("GET", "/v1/audit/checkpoint", &Value::Null)
                .await;
            assert_eq!(checkpoint.status, 200, "{:?}", checkpoint.json);
        }
    };
    let sending = async {
        let mut seqs = Vec::new();
        for i in 0..MESSAGES {
            seqs.push(channel.send(&format!("message {i}")).await.unwrap());
        }
        seqs
    };
    let (seqs, ()) = tokio::join!(sending, latecomers);
    let last = *seqs.last().unwrap();
    last_tx.send(last).unwrap();

    let mut delivered = HashMap::new();
    for receiver in receivers {
        let seen = tokio::time::timeout(Duration::from_secs(300), receiver)
            .await
            .expect("every device gets every message")
            .unwrap();
        // Each once and in order; the channel's own messages (its name,
        // sent to new members) come too.
        let in_order = seen.windows(2).all(|pair| pair[0] < pair[1]);
        let every_one = seqs.iter().all(|seq| seen.binary_search(seq).is_ok());
        *delivered.entry(in_order && every_one).or_insert(0) += 1;
    }
    assert_eq!(
        delivered.get(&true),
        Some(&(DEVICES - 1)),
        "each device got each message once, in order: {delivered:?}"
    );

    // Acknowledgements wait in memory for at most a second; a graceful stop
    // writes what is left.
    assert_eq!(server.terminate(Duration::from_secs(60)), Some(0));
    let mut db = server.database().await;
    let cursors: HashMap<String, i64> =
        sqlx::query_as("SELECT device_id, acked_seq FROM memberships WHERE group_id = $1")
            .bind(&group_id)
            .fetch_all(&mut db)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let behind: Vec<String> = crowd
        .iter()
        .map(|device| device.key.device_id().to_string())
        .filter(|id| {
            cursors
                .get(id)
                .is_none_or(|&acked| acked < i64::try_from(last).unwrap())
        })
        .collect();
    assert!(
        behind.is_empty(),
        "{} devices' acknowledgements were not written",
        behind.len()
    );

    let log = std::fs::read_to_string(server.data.path().join("server.log")).unwrap();
    for stall in [
        "pool timed out",
        "database is locked",
        "slow statement",
        "time to acquire exceeded",
    ] {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(stall)).collect();
        assert!(
            lines.is_empty(),
            "the relay logged {stall:?}:\n{}",
            lines.join("\n")
        );
    }
}
