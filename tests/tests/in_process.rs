//! The same client core against the relay's router in-process: the transport
//! trait lets tests skip sockets and TLS while keeping every handler, check
//! and store of the real relay.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use conclave_client::{Client, ClientError, Credentials, Event, KeyProtection};
use conclave_tests::ByName;
use conclave_tests::{InProcessTransport, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn channel_lifecycle_in_process() {
    let data = TempDir::new("in-process");
    let relay = InProcessTransport::start(&data).await;
    let (alice_home, bob_home) = (TempDir::new("alice"), TempDir::new("bob"));
    let alice = Client::open_with(alice_home.path(), relay.clone(), KeyProtection::Unprotected)
        .await
        .unwrap();
    let bob = Client::open_with(bob_home.path(), relay.clone(), KeyProtection::Unprotected)
        .await
        .unwrap();
    alice
        .register("alice", "alice-pass-2718281828")
        .await
        .unwrap();
    bob.register("bob", "bob-pass-3141592653").await.unwrap();

    alice.create_channel("general").await.unwrap();
    alice.invite("general", "bob").await.unwrap();
    let joined = bob.sync().await.unwrap();
    assert!(
        matches!(&joined[..], [
            Event::Joined { channel, group_id: joined_group },
            Event::Named { placeholder, name, group_id: named_group },
        ] if channel == placeholder && name == "general" && joined_group == named_group),
        "bob joins, then learns the name, of one group: {joined:?}"
    );
    // The name is display data; the group id is what stays.
    let general = bob.channel(joined[0].group_id().unwrap()).await.unwrap();
    assert_eq!(general.name(), "general");
    alice.send("general", "hello bob").await.unwrap();
    bob.send("general", "hi alice").await.unwrap();
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    let lines = |h: Vec<conclave_client::HistoryEntry>| {
        h.into_iter()
            .map(|e| (e.seq, e.sender, e.text))
            .collect::<Vec<_>>()
    };
    let alice_view = lines(alice.history("general").await.unwrap());
    assert_eq!(alice_view, lines(bob.history("general").await.unwrap()));
    assert_eq!(
        alice_view
            .iter()
            .map(|(_, s, t)| (s.as_str(), t.as_str()))
            .collect::<Vec<_>>(),
        [("alice", "hello bob"), ("bob", "hi alice")]
    );

    alice.remove("general", "bob").await.unwrap();
    assert!(
        bob.sync()
            .await
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Removed { .. }))
    );
    assert!(matches!(
        bob.send("general", "still here?").await,
        Err(ClientError::NotInChannel(_))
    ));
}

/// Two processes on one home would race over the same MLS state: the
/// second client is refused until the first is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_client_per_home_directory() {
    let data = TempDir::new("in-process");
    let relay = InProcessTransport::start(&data).await;
    let home = TempDir::new("alice");
    let first = Client::open_with(home.path(), relay.clone(), KeyProtection::Unprotected)
        .await
        .unwrap();
    first
        .register("alice", "alice-pass-2718281828")
        .await
        .unwrap();
    let second = Client::open(home.path(), relay.clone()).await.unwrap_err();
    assert!(matches!(second, ClientError::HomeInUse(_)), "{second}");
    assert!(
        second.to_string().contains("another conclave process"),
        "{second}"
    );
    drop(first);
    let again = Client::open(home.path(), relay).await.unwrap();
    assert_eq!(again.username().as_deref(), Some("alice"));
}

/// Fails unless `result` is the relay's 401 `session_expired`.
fn assert_session_expired<T: std::fmt::Debug>(result: Result<T, ClientError>) {
    match result {
        Err(ClientError::Server {
            status: 401, code, ..
        }) if code == "session_expired" => {}
        other => panic!("expected 401 session_expired, got {other:?}"),
    }
}

/// Sessions end after their idle and their absolute lifetime, on the
/// relay's clock: a manual one, moved forward here instead of slept through
/// (the end-to-end test in `accounts.rs` does the same with seconds of real
/// time against the real binary).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_expire_on_the_relays_clock() {
    let data = TempDir::new("in-process-clock");
    let clock = conclave_server::Clock::manual();
    let relay_clock = clock.clone();
    let relay = InProcessTransport::start_with(&data, move |config| {
        config.clock = relay_clock;
        // Within the five minutes a signed request's timestamp may be off
        // by, so that only the session, not the signature, goes stale.
        config.session_idle_timeout = 40;
        config.session_lifetime = 120;
    })
    .await;
    let home = TempDir::new("alice");
    let alice = Client::open_with(home.path(), relay, KeyProtection::Unprotected)
        .await
        .unwrap();
    let password = "alice-pass-2718281828";
    alice.register("alice", password).await.unwrap();
    alice.sync().await.unwrap();

    // Idle for longer than the idle timeout: gone.
    clock.advance(Duration::from_secs(39));
    alice.sync().await.expect("still within the idle timeout");
    clock.advance(Duration::from_secs(41));
    assert_session_expired(alice.sync().await);

    // Signed in again and kept busy, it still ends at the absolute lifetime.
    alice
        .reauthenticate(Credentials::password(password))
        .await
        .unwrap();
    for _ in 0..3 {
        clock.advance(Duration::from_secs(35));
        alice.sync().await.expect("busy, and within the lifetime");
    }
    clock.advance(Duration::from_secs(20));
    assert_session_expired(alice.sync().await);
}
