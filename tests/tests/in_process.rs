//! The same client core against the relay's router in-process: the transport
//! trait lets tests skip sockets and TLS while keeping every handler, check
//! and store of the real relay.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use conclave_client::{Client, ClientError, Event, KeyProtection};
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
        matches!(&joined[..], [Event::Joined { channel }, Event::Named { placeholder, name }]
            if channel == placeholder && name == "general"),
        "bob joins, then learns the name: {joined:?}"
    );
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
