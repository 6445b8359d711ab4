//! Operating one relay node: liveness and readiness, Prometheus metrics
//! that count without telling content, JSON log lines that carry no secret
//! or content, and a clean stop on SIGTERM with a stream open (SQLite, the
//! default; several nodes are in `scale_out.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use conclave_client::Event;
use conclave_tests::ByName;
use conclave_tests::{Person, ServerProcess, metric};

const PASSWORD: &str = "correct horse battery staple";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_reports_health_and_metrics_and_stops_cleanly() {
    let port = conclave_tests::free_port();
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    // The harness logs at debug level: the most a node ever writes.
    let mut server = ServerProcess::start_with(vec![
        "--metrics-listen".into(),
        format!("127.0.0.1:{port}"),
        "--log-format".into(),
        "json".into(),
    ]);
    let (http, base) = server.https_client();
    for path in ["/healthz", "/readyz"] {
        let answer = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 200, "{path}");
    }

    let alice = Person::register(&server, "alice", PASSWORD).await;
    let bob = Person::register(&server, "bob", PASSWORD).await;
    alice
        .client
        .create_channel("quarterly-numbers")
        .await
        .unwrap();
    alice
        .client
        .invite("quarterly-numbers", "bob")
        .await
        .unwrap();
    bob.client.sync().await.unwrap();
    let mut events = bob.client.events();
    let listening = bob.client.listen();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in 0..3 {
        alice
            .client
            .send("quarterly-numbers", &format!("revenue line {n}"))
            .await
            .unwrap();
    }
    let mut seen = 0;
    tokio::time::timeout(Duration::from_secs(20), async {
        while seen < 3 {
            if let Ok(Event::Message(_)) = events.recv().await {
                seen += 1;
            }
        }
    })
    .await
    .expect("three messages arrive live");

    let metrics = reqwest::get(&metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metric(
            &metrics,
            "conclave_messages_accepted_total{kind=\"application\"}"
        ) >= 3.0
    );
    assert!(metric(&metrics, "conclave_messages_delivered_total") >= 3.0);
    assert!(metric(&metrics, "conclave_delivery_latency_seconds_count") >= 3.0);
    assert_eq!(metric(&metrics, "conclave_open_streams"), 1.0);
    assert!(metric(&metrics, "conclave_db_pool_connections") >= 1.0);
    metric(&metrics, "conclave_commit_conflicts_total");
    metric(&metrics, "conclave_rate_limited_requests_total");
    for private in ["alice", "bob", "quarterly", "revenue"] {
        assert!(!metrics.contains(private), "metrics mention {private:?}");
    }

    // SIGTERM with a stream open: a prompt, clean exit.
    let started = std::time::Instant::now();
    assert_eq!(server.terminate(Duration::from_secs(15)), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    listening.abort();

    // The log: one JSON object per line (the harness also appends what the
    // node printed on stdout), none holding the password or any content.
    let log = std::fs::read_to_string(server.data.path().join("server.log")).unwrap();
    let mut events = 0;
    for line in log.lines() {
        if line.starts_with('{') {
            let event: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
            for field in ["timestamp", "level", "target"] {
                assert!(event.get(field).is_some(), "no {field} in {line}");
            }
            events += 1;
        } else {
            let printed = [
                "created a new audit log key",
                "audit log verifier key: ",
                "conclave-server listening on ",
                "certificate: ",
                "certificate SHA-256 fingerprint: ",
                "metrics at ",
            ];
            assert!(
                printed.iter().any(|p| line.starts_with(p)),
                "a log line that is neither JSON nor the node's own output: {line}"
            );
        }
    }
    assert!(events >= 10, "the node logged its requests: {events} lines");
    assert!(log.contains(r#""message":"serving""#), "{log}");
    for private in [PASSWORD, "quarterly", "revenue line"] {
        assert!(!log.contains(private), "the log holds {private:?}");
    }
}

/// A node started on a used workspace's database without its key files
/// would make new keys: checkpoints no client accepts, TOTP secrets other
/// nodes cannot open. It refuses to start, and says which file it needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_without_the_workspace_keys_refuses_to_start() {
    let mut server = ServerProcess::start();
    Person::register(&server, "alice", PASSWORD).await;
    server.kill_hard();
    let data = server.data.path().join("data");
    let keys = server.key_dir();
    let saved = std::fs::read(keys.join("log.key")).unwrap();
    std::fs::remove_file(keys.join("log.key")).unwrap();
    let binary = conclave_tests::workspace_binary("conclave-server");
    let refused = std::process::Command::new(&binary)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "the node started without its log key"
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("log.key does not exist, but this database already belongs to a workspace")
            && stderr.contains("--log-key-file"),
        "{stderr}"
    );
    assert!(!keys.join("log.key").exists(), "no new log key was made");

    // With the key back (private, as the relay insists), it serves again.
    std::fs::write(keys.join("log.key"), saved).unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(
        keys.join("log.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    server.restart();
    let (http, base) = server.https_client();
    let answer = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 200);
}

/// Issue 18, point 2: keys handed over in the environment (as a secrets
/// manager or systemd would) are used as given and never written to disk:
/// the key directory stays without them, the log is signed with the given
/// key, and TOTP secrets sealed under the given server key still open after
/// a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_given_in_the_environment_never_reach_the_disk() {
    use base64::Engine;
    let mut server_key = [0u8; 32];
    rand_bytes(&mut server_key);
    let log_signer = conclave_audit::NoteSigner::new(
        "relay.example/conclave-audit",
        ed25519_dalek::SigningKey::from_bytes(&{
            let mut seed = [0u8; 32];
            rand_bytes(&mut seed);
            seed
        }),
    )
    .unwrap();
    let env = vec![
        (
            "CONCLAVE_SERVER_KEY".to_owned(),
            base64::engine::general_purpose::STANDARD.encode(server_key),
        ),
        (
            "CONCLAVE_LOG_KEY".to_owned(),
            log_signer.private_key().to_string(),
        ),
    ];
    let mut server = ServerProcess::start_with_env(Vec::new(), env);
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let (mut app, _codes) = conclave_tests::enroll_totp(&alice.client, PASSWORD).await;
    assert_eq!(server.log_key(), log_signer.verifier_key().to_string());

    let keys = server.key_dir();
    let mut held: Vec<String> = std::fs::read_dir(&keys)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    held.sort();
    assert_eq!(
        held,
        ["tls-key.pem"],
        "only the generated TLS key is a file"
    );
    for file in server.files() {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(32).any(|w| w == server_key),
            "{} holds the server key",
            file.display()
        );
    }

    // Restarted with the same keys, the sealed TOTP secret still opens.
    server.restart();
    let laptop = Person::login_with_totp(&server, "alice", PASSWORD, &mut app).await;
    assert_eq!(laptop.client.devices().await.unwrap().len(), 2);
}

fn rand_bytes(out: &mut [u8]) {
    let mut file = std::fs::File::open("/dev/urandom").unwrap();
    std::io::Read::read_exact(&mut file, out).unwrap();
}
