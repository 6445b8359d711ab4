//! Public and private channels, end to end: a public channel is listed with
//! its name and topic and anyone in the workspace joins it by MLS external
//! commit with no member online; a private channel never reaches the
//! directory, and the relay refuses to let anyone join it uninvited.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use conclave_client::{ClientError, PublicChannel};
use conclave_tests::ByName;
use conclave_tests::{Person, RawDevice, ServerProcess, fresh_postgres};
use serde_json::Value;

const PASSWORD: &str = "correct horse battery staple";

fn texts(history: &[conclave_client::HistoryEntry]) -> Vec<(String, String)> {
    history
        .iter()
        .map(|e| (e.sender.clone(), e.text.clone()))
        .collect()
}

async fn scenario(server: ServerProcess, backend: &str) {
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let bob = Person::register(&server, "bob", PASSWORD).await;
    let carol = Person::register(&server, "carol", PASSWORD).await;
    alice
        .client
        .create_public_channel("announcements", "company news")
        .await
        .unwrap();
    alice.client.create_channel("secret-project").await.unwrap();
    alice
        .client
        .send("announcements", "said before anyone joined")
        .await
        .unwrap();

    // bob sees the public channel, not the private one.
    let listed = bob.client.public_channels().await.unwrap();
    assert_eq!(
        listed,
        [PublicChannel {
            name: "announcements".into(),
            topic: "company news".into(),
            members: 1,
            joined: false,
            archived: false,
        }],
        "{backend}"
    );

    // bob and then carol join while alice is away (she does not sync): the
    // GroupInfo that carol joins from is the one bob's join left.
    bob.client.join("announcements").await.unwrap();
    bob.client
        .send("announcements", "hello from bob")
        .await
        .unwrap();
    carol.client.join("announcements").await.unwrap();
    carol
        .client
        .send("announcements", "carol here too")
        .await
        .unwrap();
    let again = carol.client.join("announcements").await.unwrap_err();
    assert!(matches!(again, ClientError::AlreadyAMember(..)), "{again}");

    // alice comes back and reads both; everyone sees everyone.
    alice.client.sync().await.unwrap();
    bob.client.sync().await.unwrap();
    let history = alice.client.history("announcements").await.unwrap();
    assert_eq!(
        texts(&history),
        [
            ("alice".into(), "said before anyone joined".into()),
            ("bob".into(), "hello from bob".into()),
            ("carol".into(), "carol here too".into()),
        ],
        "{backend}"
    );
    // Joining gives no key to what was said before (history bundles do that).
    let bobs = bob.client.history("announcements").await.unwrap();
    assert_eq!(
        texts(&bobs),
        [
            ("bob".into(), "hello from bob".into()),
            ("carol".into(), "carol here too".into()),
        ],
        "{backend}"
    );
    let mut members: Vec<String> = alice
        .client
        .members("announcements")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.user)
        .collect();
    members.sort();
    assert_eq!(members, ["alice", "bob", "carol"]);
    let listed = bob.client.public_channels().await.unwrap();
    assert_eq!((listed[0].members, listed[0].joined), (3, true));

    // A member changes the topic: inside the channel, and in the directory.
    carol
        .client
        .set_topic("announcements", "all-hands on friday")
        .await
        .unwrap();
    let listed = alice.client.public_channels().await.unwrap();
    assert_eq!(listed[0].topic, "all-hands on friday");

    // One public name, one channel.
    let dave = Person::register(&server, "dave", PASSWORD).await;
    let taken = dave
        .client
        .create_public_channel("announcements", "")
        .await
        .unwrap_err();
    assert!(
        matches!(&taken, ClientError::Server { status: 409, .. }),
        "{taken}"
    );

    // The private channel cannot be joined: it is not listed, and the relay
    // hands nobody its GroupInfo.
    let error = bob.client.join("secret-project").await.unwrap_err();
    assert!(matches!(error, ClientError::NoSuchChannel(_)), "{error}");
    let private_id = alice
        .client
        .channels()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name == "secret-project")
        .unwrap()
        .group_id;
    let raw = RawDevice::from_home(&server, bob.home.path()).await;
    let refused = raw
        .signed(
            "GET",
            &format!("/v1/groups/{private_id}/group-info"),
            &Value::Null,
        )
        .await;
    assert_eq!(refused.status, 404, "{:?}", refused.json);

    // Leaving and joining again continues the same channel.
    bob.client.leave("announcements").await.unwrap();
    alice.client.sync().await.unwrap();
    bob.client.sync().await.unwrap();
    assert!(!bob.client.channels().await.unwrap()[0].active);
    bob.client.join("announcements").await.unwrap();
    bob.client
        .send("announcements", "back again")
        .await
        .unwrap();
    alice.client.sync().await.unwrap();
    let history = alice.client.history("announcements").await.unwrap();
    assert_eq!(history.last().unwrap().text, "back again", "{backend}");
    assert!(
        bob.client
            .history("announcements")
            .await
            .unwrap()
            .iter()
            .any(|e| e.text == "hello from bob"),
        "bob keeps what he had"
    );

    // An archived public channel takes nobody new.
    alice.client.archive("announcements").await.unwrap();
    let closed = dave.client.join("announcements").await.unwrap_err();
    assert!(closed.to_string().contains("archived"), "{closed}");

    // The log shows who joined on their own.
    let events = server.admin(&["events"]);
    assert!(
        events.lines().any(|l| l.contains("member_added")
            && l.contains("bob")
            && l.contains("external_commit")),
        "{events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn public_channels_are_listed_and_joined_by_external_commit() {
    scenario(ServerProcess::start(), "sqlite").await;
    if let Some(url) = fresh_postgres("public_channels").await {
        scenario(
            ServerProcess::start_with(vec!["--database-url".into(), url]),
            "postgres",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_private_channel_name_never_reaches_the_relay() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    alice
        .client
        .create_channel("mergers-and-acquisitions")
        .await
        .unwrap();
    alice
        .client
        .set_topic("mergers-and-acquisitions", "the quiet deal")
        .await
        .unwrap();
    for file in server.files() {
        let bytes = std::fs::read(&file).unwrap();
        for needle in [&b"mergers-and-acquisitions"[..], b"the quiet deal"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds {:?}",
                file.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
}

/// Waits up to ten seconds for a live message with `text` in `channel`.
async fn live(
    events: &mut tokio::sync::broadcast::Receiver<conclave_client::Event>,
    channel: &str,
    text: &str,
) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let next = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("{text:?} never arrived live in {channel}"));
        if let Ok(conclave_client::Event::Message(m)) = next
            && m.channel == channel
            && m.text == text
        {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_streams_follow_channels_created_or_joined_later() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let bob = Person::register(&server, "bob", PASSWORD).await;
    alice
        .client
        .create_public_channel("lobby", "")
        .await
        .unwrap();
    let mut alice_events = alice.client.events();
    let mut bob_events = bob.client.events();
    let alice_stream = alice.client.listen();
    let bob_stream = bob.client.listen();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // Joined by external commit after bob's stream opened: he hears it live.
    bob.client.join("lobby").await.unwrap();
    alice.client.send("lobby", "welcome, bob").await.unwrap();
    live(&mut bob_events, "lobby", "welcome, bob").await;

    // Created after alice's stream opened: she hears it live.
    alice.client.create_channel("later").await.unwrap();
    alice.client.invite("later", "bob").await.unwrap();
    bob.client.sync().await.unwrap();
    bob.client.send("later", "made it").await.unwrap();
    live(&mut alice_events, "later", "made it").await;
    alice_stream.abort();
    bob_stream.abort();
}
