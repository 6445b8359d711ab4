//! End to end: the real server binary, real TLS, real SQLite (and PostgreSQL
//! when CONCLAVE_TEST_DATABASE_URL is set), the real client core.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_client::{Client, ClientError, Event};
use conclave_tests::ByName;
use conclave_tests::{
    Person, RawDevice, ServerProcess, TempDir, enroll_totp, forged_private_message, fresh_postgres,
    now,
};
use serde_json::json;

const CHANNEL: &str = "project-nightingale";

type Line = (u64, String, String);

async fn history(client: &Client, channel: &str) -> Vec<Line> {
    client
        .history(channel)
        .await
        .expect("history")
        .into_iter()
        .map(|e| (e.seq, e.sender, e.text))
        .collect()
}

fn assert_exactly_once_in_order(lines: &[Line], sent: &[&str]) {
    let texts: Vec<&str> = lines.iter().map(|(_, _, t)| t.as_str()).collect();
    let unique: BTreeSet<&str> = texts.iter().copied().collect();
    assert_eq!(
        unique.len(),
        texts.len(),
        "a message appears twice: {texts:?}"
    );
    assert_eq!(
        unique,
        sent.iter().copied().collect(),
        "messages missing or extra"
    );
    assert!(
        lines.windows(2).all(|w| w[0].0 < w[1].0),
        "history out of order: {lines:?}"
    );
}

/// (a) channel with alice, bob (two devices) and carol; (b) bob removed;
/// (e) no plaintext or password in any server file.
async fn channel_lifecycle(server: &ServerProcess) {
    let passwords = [
        "alice-pass-2718281828",
        "bob-pass-3141592653",
        "carol-pass-1618033988",
    ];
    let alice = Person::register(server, "alice", passwords[0]).await;
    let bob1 = Person::register(server, "bob", passwords[1]).await;
    // A second device needs a second factor.
    let (mut bob_app, _) = enroll_totp(&bob1.client, passwords[1]).await;
    let bob2 = Person::login_with_totp(server, "bob", passwords[1], &mut bob_app).await;
    let carol = Person::register(server, "carol", passwords[2]).await;

    alice.client.create_channel(CHANNEL).await.expect("create");
    alice
        .client
        .invite(CHANNEL, "bob")
        .await
        .expect("invite bob");
    alice
        .client
        .invite(CHANNEL, "carol")
        .await
        .expect("invite carol");
    for person in [&bob1, &bob2, &carol] {
        let events = person.client.sync().await.expect("sync");
        assert!(
            events.iter().any(|e| matches!(e, Event::Joined { .. })),
            "{events:?}"
        );
    }
    let members = alice.client.members(CHANNEL).await.expect("members");
    let bob = members
        .iter()
        .find(|m| m.user == "bob")
        .expect("bob is a member");
    assert_eq!(bob.devices.len(), 2, "both of bob's devices were added");

    let sent = [
        (&alice, "alice: the eagle lands at dawn"),
        (&bob1, "bob laptop: copy that"),
        (&bob2, "bob phone: also copy"),
        (&carol, "carol: bring the blueprints"),
        (&alice, "alice: see you there"),
    ];
    for (person, text) in &sent {
        person.client.send(CHANNEL, text).await.expect("send");
    }
    let texts: Vec<&str> = sent.iter().map(|(_, t)| *t).collect();
    let everyone = [&alice, &bob1, &bob2, &carol];
    let mut reference: Option<Vec<Line>> = None;
    for person in everyone {
        person.client.sync().await.expect("sync");
        let lines = history(&person.client, CHANNEL).await;
        assert_exactly_once_in_order(&lines, &texts);
        match &reference {
            None => reference = Some(lines),
            Some(first) => assert_eq!(&lines, first, "every device sees the same order"),
        }
    }

    // (b) Remove bob: his devices learn it and cannot read or post afterwards.
    alice
        .client
        .remove(CHANNEL, "bob")
        .await
        .expect("remove bob");
    for bob in [&bob1, &bob2] {
        let events = bob.client.sync().await.expect("sync");
        assert!(
            events.iter().any(|e| matches!(e, Event::Removed { .. })),
            "{events:?}"
        );
    }
    let secret = "alice: bob must not read this";
    alice
        .client
        .send(CHANNEL, secret)
        .await
        .expect("send after removal");
    carol.client.sync().await.expect("carol sync");
    assert!(
        history(&carol.client, CHANNEL)
            .await
            .iter()
            .any(|(_, _, t)| t == secret)
    );
    for bob in [&bob1, &bob2] {
        bob.client.sync().await.expect("bob sync");
        assert!(
            !history(&bob.client, CHANNEL)
                .await
                .iter()
                .any(|(_, _, t)| t == secret)
        );
        assert!(matches!(
            bob.client.send(CHANNEL, "let me back in").await,
            Err(ClientError::NotInChannel(_))
        ));
    }
    // The relay refuses bob's posts too, even well-formed ones sent around his client.
    let group_id = alice.client.channels().await.expect("channels")[0]
        .group_id
        .clone();
    let raw_bob = RawDevice::from_home(server, bob1.home.path()).await;
    let forged = forged_private_message(&hex::decode(&group_id).expect("hex"), 0);
    let refused = raw_bob
        .signed(
            "POST",
            &format!("/v1/groups/{group_id}/messages"),
            &json!({ "message": STANDARD.encode(forged) }),
        )
        .await;
    assert_eq!(refused.status, 403, "{:?}", refused.json);
    assert_eq!(refused.json["error"], "forbidden");

    // Invited again, both of bob's devices rejoin: they read what comes next,
    // never what was said while they were out.
    alice
        .client
        .invite(CHANNEL, "bob")
        .await
        .expect("re-invite bob");
    let welcome_back = "alice: welcome back, bob";
    alice
        .client
        .send(CHANNEL, welcome_back)
        .await
        .expect("send");
    for bob in [&bob1, &bob2] {
        let events = bob.client.sync().await.expect("bob rejoins");
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Joined { channel, .. } if channel == CHANNEL)),
            "{events:?}"
        );
        let lines = history(&bob.client, CHANNEL).await;
        assert!(lines.iter().any(|(_, _, t)| t == welcome_back));
        assert!(!lines.iter().any(|(_, _, t)| t == secret));
    }

    // (e) Nothing the server wrote contains a message, a password or the channel name.
    let mut needles: Vec<&str> = texts.clone();
    needles.push(secret);
    needles.push(welcome_back);
    needles.extend(passwords);
    needles.push(CHANNEL);
    let files = server.files();
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "log")),
        "server log scanned"
    );
    for file in files {
        let bytes = std::fs::read(&file).expect("read server file");
        for needle in &needles {
            let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
            assert!(!found, "{} contains {needle:?}", file.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn channel_lifecycle_on_sqlite() {
    let server = ServerProcess::start();
    channel_lifecycle(&server).await;
    assert!(
        server
            .files()
            .iter()
            .any(|f| f.ends_with("conclave.db-wal")),
        "SQLite runs in WAL mode"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let data = server.data.path().join("data");
        let mode = std::fs::metadata(&data)
            .expect("data dir")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o700,
            "the data directory is the owner's alone"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn channel_lifecycle_on_postgres() {
    let Some(url) = fresh_postgres("lifecycle").await else {
        return;
    };
    let server = ServerProcess::start_with(vec!["--database-url".into(), url]);
    channel_lifecycle(&server).await;
}

/// (c) SIGKILL the relay mid-conversation, restart it and a client: nothing lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_and_client_crash_lose_nothing() {
    let mut server = ServerProcess::start();
    let alice = Person::register(&server, "alice", "alice-pass-2718281828").await;
    let bob = Person::register(&server, "bob", "bob-pass-3141592653").await;
    alice.client.create_channel("ops").await.expect("create");
    alice.client.invite("ops", "bob").await.expect("invite");
    bob.client.sync().await.expect("join");

    let mut acknowledged = Vec::new();
    for i in 0..6 {
        let text = format!("before crash {i}");
        alice.client.send("ops", &text).await.expect("send");
        acknowledged.push(text);
    }
    bob.client.sync().await.expect("bob reads some");

    // Kill while alice is sending: whatever the relay acknowledged must survive.
    let sender = alice.client.clone();
    let sending = tokio::spawn(async move {
        let mut acked = Vec::new();
        for i in 0..200 {
            let text = format!("during crash {i}");
            match sender.send("ops", &text).await {
                Ok(_) => acked.push(text),
                Err(_) => break,
            }
        }
        acked
    });
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    server.kill_hard();
    let during = sending.await.expect("sender task");
    acknowledged.extend(during);
    server.restart();

    // Restart bob's client from its home directory.
    let bob_home = bob.home;
    drop(bob.client);
    let bob = server.client(bob_home.path()).await;
    for i in 0..4 {
        let text = format!("after restart {i}");
        alice
            .client
            .send("ops", &text)
            .await
            .expect("send after restart");
        acknowledged.push(text);
    }
    bob.sync().await.expect("bob sync after restart");
    alice.client.sync().await.expect("alice sync after restart");
    let bob_lines = history(&bob, "ops").await;
    let alice_lines = history(&alice.client, "ops").await;
    assert_eq!(bob_lines, alice_lines, "both devices agree");
    let texts: Vec<&str> = bob_lines.iter().map(|(_, _, t)| t.as_str()).collect();
    for text in &acknowledged {
        assert_eq!(
            texts.iter().filter(|t| *t == text).count(),
            1,
            "{text} exactly once"
        );
    }
    // A message whose send failed with the crash may or may not have landed, but only once.
    let unique: BTreeSet<&str> = texts.iter().copied().collect();
    assert_eq!(unique.len(), texts.len());
    assert!(bob_lines.windows(2).all(|w| w[0].0 < w[1].0));
    drop(bob_home);
}

/// (d) Two members commit at once: both changes land, every device agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_both_apply() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", "alice-pass-2718281828").await;
    let bob = Person::register(&server, "bob", "bob-pass-3141592653").await;
    let carol = Person::register(&server, "carol", "carol-pass-1618033988").await;
    let dave = Person::register(&server, "dave", "dave-pass-1414213562").await;
    alice.client.create_channel("ops").await.expect("create");
    alice.client.invite("ops", "bob").await.expect("invite bob");
    bob.client.sync().await.expect("bob joins");

    let (a, b) = tokio::join!(
        alice.client.invite("ops", "carol"),
        bob.client.invite("ops", "dave")
    );
    a.expect("alice's commit applied");
    b.expect("bob's commit applied");

    for person in [&alice, &bob, &carol, &dave] {
        person.client.sync().await.expect("sync");
    }
    let expected: Vec<String> = ["alice", "bob", "carol", "dave"].map(String::from).to_vec();
    for person in [&alice, &bob, &carol, &dave] {
        let users: Vec<String> = person
            .client
            .members("ops")
            .await
            .expect("members")
            .into_iter()
            .map(|m| m.user)
            .collect();
        assert_eq!(users, expected);
    }
    // Same group state everywhere: a message from the last joiner decrypts on every device.
    dave.client
        .send("ops", "dave: hello all")
        .await
        .expect("dave sends");
    for person in [&alice, &bob, &carol] {
        person.client.sync().await.expect("sync");
        assert!(
            history(&person.client, "ops")
                .await
                .iter()
                .any(|(_, s, t)| s == "dave" && t == "dave: hello all")
        );
    }
}

/// (f) Every kind of bad input gets its 4xx and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_refused_without_side_effects() {
    let server = ServerProcess::start_with(vec!["--max-body-bytes".into(), "16384".into()]);
    let alice = Person::register(&server, "alice", "alice-pass-2718281828").await;
    let bob = Person::register(&server, "bob", "bob-pass-3141592653").await;
    alice.client.create_channel("ops").await.expect("create");
    alice.client.invite("ops", "bob").await.expect("invite");
    bob.client.sync().await.expect("join");
    let before = alice
        .client
        .send("ops", "before the attacks")
        .await
        .expect("send");

    let group_id = alice.client.channels().await.expect("channels")[0]
        .group_id
        .clone();
    let group_bytes = hex::decode(&group_id).expect("hex");
    let path = format!("/v1/groups/{group_id}/messages");
    let member = RawDevice::from_home(&server, alice.home.path()).await;
    let outsider = RawDevice::register(&server, "mallory", "mallory-pass-0000000001").await;
    let post = |m: &[u8]| json!({ "message": STANDARD.encode(m) });

    let cases: Vec<(&str, conclave_tests::RawResponse, u16, &str)> = vec![
        (
            "malformed MLS",
            member
                .signed("POST", &path, &post(b"not an MLS message"))
                .await,
            400,
            "invalid_mls_message",
        ),
        (
            "not base64",
            member
                .signed("POST", &path, &json!({ "message": "%%%" }))
                .await,
            400,
            "bad_request",
        ),
        (
            "not JSON",
            member
                .send_with(
                    "POST",
                    &path,
                    b"{".to_vec(),
                    member.sign("POST", &path, b"{", now()).to_pairs().to_vec(),
                )
                .await,
            400,
            "bad_request",
        ),
        (
            "unknown group",
            {
                let unknown = "ff".repeat(16);
                member
                    .signed(
                        "POST",
                        &format!("/v1/groups/{unknown}/messages"),
                        &post(&forged_private_message(&[0xff; 16], 0)),
                    )
                    .await
            },
            404,
            "not_found",
        ),
        (
            "group differs from URL",
            member
                .signed(
                    "POST",
                    &path,
                    &post(&forged_private_message(&[0xee; 16], 0)),
                )
                .await,
            400,
            "bad_request",
        ),
        (
            "sender not a member",
            outsider
                .signed(
                    "POST",
                    &path,
                    &post(&forged_private_message(&group_bytes, 1)),
                )
                .await,
            403,
            "forbidden",
        ),
        (
            "wrong epoch",
            member
                .signed(
                    "POST",
                    &path,
                    &post(&forged_private_message(&group_bytes, 999)),
                )
                .await,
            409,
            "wrong_epoch",
        ),
        (
            "body over the limit",
            member
                .signed("POST", &path, &json!({ "message": "A".repeat(20_000) }))
                .await,
            413,
            "body_too_large",
        ),
        (
            "bad signature",
            {
                let body = serde_json::to_vec(&post(b"x")).expect("json");
                let mut headers = member.sign("POST", &path, &body, now());
                headers.signature = STANDARD.encode([0u8; 64]);
                member
                    .send_with("POST", &path, body, headers.to_pairs().to_vec())
                    .await
            },
            401,
            "bad_signature",
        ),
        (
            "signature over another body",
            {
                let headers = member.sign("POST", &path, b"{}", now());
                member
                    .send_with(
                        "POST",
                        &path,
                        serde_json::to_vec(&post(b"x")).expect("json"),
                        headers.to_pairs().to_vec(),
                    )
                    .await
            },
            401,
            "bad_signature",
        ),
        (
            "stale timestamp",
            {
                let body = serde_json::to_vec(&post(b"x")).expect("json");
                let headers = member.sign("POST", &path, &body, now() - 3600);
                member
                    .send_with("POST", &path, body, headers.to_pairs().to_vec())
                    .await
            },
            401,
            "stale_request",
        ),
        (
            "no signature",
            member.unsigned("GET", "/v1/messages", &json!(null)).await,
            401,
            "bad_signature",
        ),
        (
            "bad key package",
            outsider
                .signed(
                    "POST",
                    "/v1/key-packages",
                    &json!({ "key_packages": [STANDARD.encode(b"junk")] }),
                )
                .await,
            400,
            "invalid_mls_message",
        ),
        (
            "bad username",
            outsider
                .unsigned(
                    "POST",
                    "/v1/accounts",
                    &json!({ "username": "Not Valid", "password_record": "AAAA" }),
                )
                .await,
            400,
            "bad_request",
        ),
        (
            "wrong password",
            RawDevice::register_attempt(&server, "alice", "not-alices-password").await,
            401,
            "bad_credentials",
        ),
        (
            "key packages of a user who does not exist",
            outsider
                .signed(
                    "POST",
                    "/v1/key-packages/claim",
                    &json!({ "username": "nobody" }),
                )
                .await,
            404,
            "not_found",
        ),
        (
            // mallory knows bob's password but signs with her own registered
            // device: the key in the body is registered only with proof of possession.
            "login signed by another device",
            {
                let stranger = conclave_crypto::DeviceKey::generate();
                let login = json!({
                    "username": "bob",
                    "opaque": { "login_id": "00", "finalization": null },
                    "public_key": STANDARD.encode(stranger.public().to_bytes()),
                });
                outsider.signed("POST", "/v1/devices", &login).await
            },
            401,
            "bad_signature",
        ),
        (
            "malformed query",
            member
                .signed("GET", "/v1/messages?limit=lots", &json!(null))
                .await,
            400,
            "bad_request",
        ),
        (
            "stream without a WebSocket upgrade",
            member.signed("GET", "/v1/stream", &json!(null)).await,
            400,
            "bad_request",
        ),
        (
            "wrong method",
            outsider.unsigned("GET", "/v1/accounts", &json!(null)).await,
            405,
            "method_not_allowed",
        ),
        (
            "unsigned body over the limit",
            outsider
                .unsigned(
                    "POST",
                    "/v1/accounts",
                    &json!({ "username": "big", "password_record": "p".repeat(20_000) }),
                )
                .await,
            413,
            "body_too_large",
        ),
    ];
    for (what, response, status, code) in cases {
        assert_eq!(response.status, status, "{what}: {:?}", response.json);
        assert_eq!(response.json["error"], code, "{what}: {:?}", response.json);
        assert!(
            response.json["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what} explains itself"
        );
    }
    let wrong_epoch = member
        .signed(
            "POST",
            &path,
            &post(&forged_private_message(&group_bytes, 999)),
        )
        .await;
    assert!(
        wrong_epoch.json["current_epoch"].as_u64().is_some(),
        "409 names the current epoch"
    );

    // Nothing was appended: the next message takes the very next slot, and bob sees only real messages.
    let after = alice
        .client
        .send("ops", "after the attacks")
        .await
        .expect("send");
    assert_eq!(after, before + 1);
    bob.client.sync().await.expect("sync");
    let texts: Vec<String> = history(&bob.client, "ops")
        .await
        .into_iter()
        .map(|(_, _, t)| t)
        .collect();
    assert_eq!(texts, ["before the attacks", "after the attacks"]);
}

/// (g) A captured signed request, replayed byte for byte, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replayed_request_is_refused() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", "alice-pass-2718281828").await;
    let alice_raw = RawDevice::from_home(&server, alice.home.path()).await;
    let stock = |r: conclave_tests::RawResponse| r.json["one_time"].as_u64().expect("stock");
    let initial = stock(
        alice_raw
            .signed("GET", "/v1/key-packages/stock", &json!(null))
            .await,
    );

    let mallory = RawDevice::register(&server, "mallory", "mallory-pass-0000000001").await;
    let body = serde_json::to_vec(&json!({ "username": "alice" })).expect("json");
    let captured = mallory
        .sign("POST", "/v1/key-packages/claim", &body, now())
        .to_pairs()
        .to_vec();
    let first = mallory
        .send_with(
            "POST",
            "/v1/key-packages/claim",
            body.clone(),
            captured.clone(),
        )
        .await;
    assert_eq!(first.status, 200, "{:?}", first.json);
    let replay = mallory
        .send_with("POST", "/v1/key-packages/claim", body, captured)
        .await;
    assert_eq!(replay.status, 401, "{:?}", replay.json);
    assert_eq!(replay.json["error"], "replayed_request");

    let remaining = stock(
        alice_raw
            .signed("GET", "/v1/key-packages/stock", &json!(null))
            .await,
    );
    assert_eq!(remaining, initial - 1, "the replay claimed nothing");
}

/// A device keeps its key package stock topped up: no pile-up while it is
/// full, a refill once others have claimed it low.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_package_stock_is_refilled_when_low() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", "alice-pass-2718281828").await;
    let alice_raw = RawDevice::from_home(&server, alice.home.path()).await;
    let stock = || async {
        alice_raw
            .signed("GET", "/v1/key-packages/stock", &json!(null))
            .await
            .json
    };
    let full = stock().await;
    assert_eq!(full["last_resort"], true);
    let target = full["one_time"].as_u64().expect("count");
    assert!(target >= 10, "{full:?}");
    for _ in 0..3 {
        alice.client.sync().await.expect("sync");
    }
    assert_eq!(
        stock().await["one_time"].as_u64(),
        Some(target),
        "syncing a full stock uploads nothing"
    );

    let mallory = RawDevice::register(&server, "mallory", "mallory-pass-0000000001").await;
    for _ in 0..target - 2 {
        let claimed = mallory
            .signed(
                "POST",
                "/v1/key-packages/claim",
                &json!({ "username": "alice" }),
            )
            .await;
        assert_eq!(claimed.status, 200);
    }
    assert_eq!(stock().await["one_time"].as_u64(), Some(2));
    alice.client.sync().await.expect("sync");
    assert_eq!(
        stock().await["one_time"].as_u64(),
        Some(target),
        "a low stock is refilled on the next sync"
    );
}

/// The relay accepts a message or a commit but its answer never arrives. The
/// client posts the same bytes again and the relay answers with the first
/// one's position: the message is recorded once, the commit applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_answers_are_recovered_from_the_echo() {
    let server = ServerProcess::start();
    let home = TempDir::new("alice");
    let lossy = conclave_tests::LossyTransport::new(server.transport());
    let alice = Client::open_with(
        home.path(),
        lossy.clone(),
        conclave_client::KeyProtection::Unprotected,
    )
    .await
    .expect("open");
    alice
        .register("alice", "alice-pass-2718281828")
        .await
        .expect("register");
    let bob = Person::register(&server, "bob", "bob-pass-3141592653").await;
    let carol = Person::register(&server, "carol", "carol-pass-1618033988").await;
    alice.create_channel("ops").await.expect("create");
    alice.invite("ops", "bob").await.expect("invite bob");
    bob.client.sync().await.expect("bob joins");

    alice.send("ops", "first").await.expect("send");
    // The answer to a message is lost: the client posts the same bytes
    // again and the relay answers with the first one's position.
    lossy.lose_next_post_answer();
    let seq = alice
        .send("ops", "accepted, answer lost")
        .await
        .expect("a lost answer is retried");
    let third = alice.send("ops", "third").await.expect("send");
    assert_eq!(third, seq + 1, "the retry took no position of its own");

    alice.sync().await.expect("alice syncs");
    bob.client.sync().await.expect("bob syncs");
    let alice_lines = history(&alice, "ops").await;
    assert_exactly_once_in_order(&alice_lines, &["first", "accepted, answer lost", "third"]);
    assert_eq!(
        alice_lines,
        history(&bob.client, "ops").await,
        "both agree on order"
    );

    // The same for a commit: alice's invite of carol is accepted, the answer
    // lost, and the repeat answered as the same commit, one epoch on.
    let before = alice.channel_state("ops").await.expect("state").epoch;
    lossy.lose_next_post_answer();
    alice
        .invite("ops", "carol")
        .await
        .expect("a commit whose answer was lost is retried");
    let after = alice.channel_state("ops").await.expect("state");
    assert_eq!(after.epoch, before + 1, "one commit, applied once");
    bob.client.sync().await.expect("bob follows");
    assert_eq!(
        bob.client.channel_state("ops").await.expect("state"),
        after,
        "bob holds the same group"
    );
    let users: Vec<String> = alice
        .members("ops")
        .await
        .expect("members")
        .into_iter()
        .map(|m| m.user)
        .collect();
    assert_eq!(users, ["alice", "bob", "carol"]);
    carol.client.sync().await.expect("carol joins");
    alice
        .send("ops", "welcome carol")
        .await
        .expect("send in the new epoch");
    for person in [&bob, &carol] {
        person.client.sync().await.expect("sync");
        assert!(
            history(&person.client, "ops")
                .await
                .iter()
                .any(|(_, _, t)| t == "welcome carol")
        );
    }
}

/// `conclave send` to a channel this device was invited to since it last
/// looked: the CLI catches up and sends, instead of "no channel named".
/// A channel that does not exist is still refused, by name, with exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_sends_to_a_channel_it_was_just_invited_to() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", "correct horse battery staple").await;
    let bob = Person::register(&server, "bob", "correct horse battery staple").await;
    alice.client.create_channel("launch").await.unwrap();
    alice.client.invite("launch", "bob").await.unwrap();
    // The CLI takes the home directory's lock: close bob's client first.
    let Person {
        client: bob_client,
        home: bob_home,
    } = bob;
    drop(bob_client);
    let send = |channel: &str| {
        std::process::Command::new(conclave_tests::workspace_binary("conclave"))
            .arg("--home")
            .arg(bob_home.path())
            .arg("--server")
            .arg(&server.url)
            .arg("--pin-sha256")
            .arg(&server.fingerprint)
            .args(["send", channel, "bob made it"])
            .output()
            .unwrap()
    };
    let sent = send("launch");
    assert!(sent.status.success(), "{sent:?}");
    assert!(
        String::from_utf8_lossy(&sent.stdout).starts_with("sent to launch (#"),
        "{sent:?}"
    );
    alice.client.sync().await.unwrap();
    let lines = history(&alice.client, "launch").await;
    assert_eq!(
        lines
            .iter()
            .filter(|(_, sender, text)| sender == "bob" && text == "bob made it")
            .count(),
        1,
        "{lines:?}"
    );

    let refused = send("nowhere");
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr).trim(),
        "conclave: no channel named \"nowhere\""
    );
}
