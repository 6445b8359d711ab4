//! Several relay nodes, one PostgreSQL: a message accepted by one node
//! reaches a device connected to another, live; nodes report liveness and
//! readiness; a node stopped with SIGTERM sends its streams away at once.
//! PostgreSQL only (`CONCLAVE_TEST_DATABASE_URL`): on SQLite there is one node.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use conclave_client::{Client, Event, HttpsTransport, ServerTrust};
use conclave_tests::ByName;
use conclave_tests::{Person, RawDevice, ServerProcess, TempDir, fresh_postgres};

const PASSWORD: &str = "correct horse battery staple";

/// Waits (up to 20 s) for a live message `text` among `events`.
async fn live_message(events: &mut tokio::sync::broadcast::Receiver<Event>, text: &str) {
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.recv().await {
                Ok(Event::Message(entry)) if entry.text == text => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await;
    assert!(found.is_ok(), "{text:?} never arrived live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_on_one_database_deliver_to_each_other_live() {
    let Some(url) = fresh_postgres("two_nodes").await else {
        return;
    };
    let node_a = ServerProcess::start_with(vec!["--database-url".into(), url]);
    let mut node_b = node_a.another_node();

    // Both nodes are alive and ready; neither needs a signature for that.
    // (Node B's certificate is node A's: the nodes share it.)
    let (http, _) = node_a.https_client();
    for node in [&node_a, &node_b] {
        let base = node.url.replace("127.0.0.1", "localhost");
        for path in ["/healthz", "/readyz"] {
            let answer = http.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(answer.status().as_u16(), 200, "{path} on {base}");
        }
    }

    // alice uses node A; bob node B, and A when B is gone.
    let alice = Person::register(&node_a, "alice", PASSWORD).await;
    let bob_home = TempDir::new("bob");
    let both = HttpsTransport::new(
        &format!("{},{}", node_b.url, node_a.url),
        ServerTrust::pin(&node_a.fingerprint).unwrap(),
    )
    .unwrap();
    let bob = Person {
        client: Client::open_with(
            bob_home.path(),
            both,
            conclave_client::KeyProtection::Unprotected,
        )
        .await
        .unwrap(),
        home: bob_home,
    };
    bob.client.register("bob", PASSWORD).await.unwrap();
    alice.client.create_channel("ops").await.unwrap();
    alice.client.invite("ops", "bob").await.unwrap();
    bob.client.sync().await.unwrap();
    let mut alice_events = alice.client.events();
    let mut bob_events = bob.client.events();
    let alice_listening = alice.client.listen();
    let bob_listening = bob.client.listen();
    tokio::time::sleep(Duration::from_millis(500)).await; // streams open

    // Accepted by A, pushed by B (and the other way round), without a sync.
    alice.client.send("ops", "from node A").await.unwrap();
    live_message(&mut bob_events, "from node A").await;
    bob.client.send("ops", "from node B").await.unwrap();
    live_message(&mut alice_events, "from node B").await;

    // A new device's channel membership, made on node A, reaches node B's stream.
    bob.client.create_channel("later").await.unwrap();
    bob.client.invite("later", "alice").await.unwrap();
    bob.client
        .send("later", "in a channel made after the streams opened")
        .await
        .unwrap();
    live_message(
        &mut alice_events,
        "in a channel made after the streams opened",
    )
    .await;

    // SIGTERM: node B stops at once; its stream is closed, not left hanging.
    let raw = RawDevice::from_home(&node_b, bob.home.path()).await;
    let mut stream = raw.open_stream().await;
    let started = std::time::Instant::now();
    let exit = node_b.terminate(Duration::from_secs(15));
    assert_eq!(exit, Some(0), "node B exits cleanly on SIGTERM");
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = stream.next_frame().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream was closed by the shutdown");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the open stream did not hold the shutdown for its grace period: {:?}",
        started.elapsed()
    );

    // bob's client moves to node A by itself: his stream reconnects there,
    // and what he sends goes through A.
    alice
        .client
        .send("ops", "node A still serves")
        .await
        .unwrap();
    live_message(&mut bob_events, "node A still serves").await;
    bob.client
        .send("ops", "bob, now through node A")
        .await
        .unwrap();
    live_message(&mut alice_events, "bob, now through node A").await;
    alice_listening.abort();
    bob_listening.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_together_on_an_empty_database_both_come_up() {
    let Some(url) = fresh_postgres("start_together").await else {
        return;
    };
    // Both migrate the same empty database at the same moment; one waits
    // for the other.
    let starting: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                ServerProcess::start_with(vec!["--database-url".into(), url])
            })
        })
        .collect();
    let nodes: Vec<ServerProcess> = starting.into_iter().map(|t| t.join().unwrap()).collect();
    for node in &nodes {
        let (http, base) = node.https_client();
        let answer = http.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 200, "{base} is ready");
    }
}

/// Issue 19: the relay no longer pings PostgreSQL before every statement,
/// only a connection that sat idle. A restart or failover of the database
/// breaks every connection the relay holds; here PostgreSQL ends them all.
/// The next requests, a moment later, go through on new connections: none
/// fails on a dead one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_after_postgresql_dropped_every_connection_go_through() {
    use sqlx::{Connection, Row};
    let Some(url) = fresh_postgres("dropped_connections").await else {
        return;
    };
    let server = ServerProcess::start_with(vec!["--database-url".into(), url.clone()]);
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let bob = Person::register(&server, "bob", PASSWORD).await;
    alice.client.create_channel("ops").await.unwrap();
    alice.client.invite("ops", "bob").await.unwrap();
    alice.client.send("ops", "before").await.unwrap();

    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let ended: i64 = sqlx::query(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()) AS ended",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap()
    .get(0);
    assert!(ended > 0, "the relay held connections to end");
    // Idle long enough to be checked before their next use.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    alice.client.send("ops", "after").await.unwrap();
    bob.client.sync().await.unwrap();
    let texts: Vec<String> = bob
        .client
        .history("ops")
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.text)
        .collect();
    assert!(texts.contains(&"before".to_owned()), "{texts:?}");
    assert!(texts.contains(&"after".to_owned()), "{texts:?}");
}
