//! Threads, reactions, edits, deletes, mentions and search, end to end: the
//! real relay over TLS, real clients, and the relay's files checked for
//! anything in clear afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use conclave_client::{Client, ClientError, Content, Event, HistoryEntry, SearchQuery};
use conclave_tests::ByName;
use conclave_tests::{Person, ServerProcess};

const PASSWORD: &str = "correct horse battery staple";

fn texts(history: &[HistoryEntry]) -> Vec<(u64, &str, &str)> {
    history
        .iter()
        .map(|e| (e.seq, e.sender.as_str(), e.text.as_str()))
        .collect()
}

async fn find(client: &Client, channel: &str, text: &str) -> HistoryEntry {
    client
        .history(channel)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.text == text)
        .unwrap_or_else(|| panic!("{text:?} not in {channel}"))
}

/// A relay, and alice and bob both in `channel` (alice created it).
async fn alice_and_bob_in(channel: &str) -> (ServerProcess, Person, Person) {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let bob = Person::register(&server, "bob", PASSWORD).await;
    alice.client.create_channel(channel).await.unwrap();
    alice.client.invite(channel, "bob").await.unwrap();
    bob.client.sync().await.unwrap();
    (server, alice, bob)
}

async fn search(client: &Client, words: &str) -> Vec<String> {
    let query = SearchQuery {
        words: words.into(),
        ..SearchQuery::default()
    };
    client
        .search(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.text)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn threads_reactions_edits_deletes_and_search() {
    let (server, alice, bob) = alice_and_bob_in("launch").await;

    // A mention reaches bob as a notification.
    alice
        .client
        .send("launch", "the rocket plan is ready, @bob please review")
        .await
        .unwrap();
    alice.client.send("launch", "typo message").await.unwrap();
    let events = bob.client.sync().await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Mentioned(m) if m.sender == "alice")),
        "{events:?}"
    );
    let plan = find(
        &bob.client,
        "launch",
        "the rocket plan is ready, @bob please review",
    )
    .await;
    assert_eq!(plan.mentions, ["bob"]);

    // A thread, and reactions from both sides.
    bob.client
        .reply("launch", &plan.id, "looks good to me")
        .await
        .unwrap();
    bob.client
        .react("launch", &plan.id, "\u{1f680}", true)
        .await
        .unwrap();
    alice.client.sync().await.unwrap();
    let reply = find(&alice.client, "launch", "looks good to me").await;
    assert_eq!(reply.parent.as_deref(), Some(plan.id.as_str()));
    alice
        .client
        .react("launch", &reply.id, "\u{1f44d}", true)
        .await
        .unwrap();
    alice
        .client
        .react("launch", &plan.id, "\u{1f680}", true)
        .await
        .unwrap();
    let thread = alice.client.thread("launch", &plan.id).await.unwrap();
    assert_eq!(
        thread.iter().map(|e| e.text.as_str()).collect::<Vec<_>>(),
        [
            "the rocket plan is ready, @bob please review",
            "looks good to me"
        ]
    );
    bob.client.sync().await.unwrap();
    let seen = find(
        &bob.client,
        "launch",
        "the rocket plan is ready, @bob please review",
    )
    .await;
    assert_eq!(seen.reactions.len(), 1);
    assert_eq!(seen.reactions[0].users, ["alice", "bob"]);
    bob.client
        .react("launch", &plan.id, "\u{1f680}", false)
        .await
        .unwrap();

    // Edits and deletes: by the author only, and the index follows.
    let typo = find(&alice.client, "launch", "typo message").await;
    alice
        .client
        .edit("launch", &typo.id, "corrected message about fuel")
        .await
        .unwrap();
    let refused = bob
        .client
        .edit("launch", &plan.id, "bob rewrote this")
        .await
        .unwrap_err();
    assert!(matches!(refused, ClientError::Invalid(_)), "{refused}");
    // A modified client that sends the edit anyway is ignored by receivers.
    bob.client
        .send_content(
            "launch",
            Content::Edit {
                target: plan.id.clone(),
                body: "bob rewrote this".into(),
            },
        )
        .await
        .unwrap();
    bob.client
        .send_content(
            "launch",
            Content::Delete {
                target: plan.id.clone(),
            },
        )
        .await
        .unwrap();
    alice.client.sync().await.unwrap();
    let plan_now = find(
        &alice.client,
        "launch",
        "the rocket plan is ready, @bob please review",
    )
    .await;
    assert!(!plan_now.edited && !plan_now.deleted);
    assert_eq!(plan_now.reactions[0].users, ["alice"]);
    assert_eq!(search(&alice.client, "typo").await, Vec::<String>::new());
    assert_eq!(
        search(&alice.client, "fuel").await,
        ["corrected message about fuel"]
    );
    assert_eq!(search(&alice.client, "rewrote").await, Vec::<String>::new());

    alice.client.delete("launch", &reply.id).await.unwrap_err();
    alice.client.delete("launch", &typo.id).await.unwrap();
    bob.client.sync().await.unwrap();
    let tombstone = bob
        .client
        .history("launch")
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.id == typo.id)
        .unwrap();
    assert!(tombstone.deleted && tombstone.text.is_empty());
    assert_eq!(search(&bob.client, "fuel").await, Vec::<String>::new());

    // Search by words, prefix, author, channel and date.
    assert_eq!(search(&bob.client, "rock*").await.len(), 1);
    let by_bob = bob
        .client
        .search(&SearchQuery {
            words: "good".into(),
            author: Some("bob".into()),
            channel: Some("launch".into()),
            ..SearchQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(by_bob.len(), 1);
    let by_alice = bob
        .client
        .search(&SearchQuery {
            words: "good".into(),
            author: Some("alice".into()),
            ..SearchQuery::default()
        })
        .await
        .unwrap();
    assert!(by_alice.is_empty());
    let future = bob
        .client
        .search(&SearchQuery {
            words: "good".into(),
            since: Some(conclave_tests::now() + 3600),
            ..SearchQuery::default()
        })
        .await
        .unwrap();
    assert!(future.is_empty());
    assert!(matches!(
        bob.client.search(&SearchQuery::default()).await,
        Err(ClientError::Invalid(_))
    ));

    // Both sides agree on what the channel looks like.
    let left = alice.client.history("launch").await.unwrap();
    let right = bob.client.history("launch").await.unwrap();
    assert_eq!(texts(&left), texts(&right));

    // The relay holds none of it in clear.
    for file in server.files() {
        let bytes = std::fs::read(&file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for secret in [
            "rocket plan",
            "looks good to me",
            "corrected message about fuel",
            "\u{1f680}",
            "\u{1f44d}",
            "typo message",
        ] {
            assert!(
                !text.contains(secret),
                "{} holds {secret:?}",
                file.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replays_are_dropped_and_unknown_content_is_kept_as_unsupported() {
    let (_server, alice, bob) = alice_and_bob_in("general").await;

    alice.client.send("general", "pay bob 10").await.unwrap();
    bob.client.sync().await.unwrap();
    let original = find(&bob.client, "general", "pay bob 10").await;

    // An insider re-sends the same content under the same id: dropped.
    let content = Content::Text {
        body: "pay bob 10".into(),
        mentions: vec![],
    };
    bob.client
        .send_raw("general", &content.encode(), &original.id)
        .await
        .unwrap();
    alice.client.sync().await.unwrap();
    let history = alice.client.history("general").await.unwrap();
    assert_eq!(
        history.iter().filter(|e| e.text == "pay bob 10").count(),
        1,
        "{history:?}"
    );

    // Content from a newer client: shown as unsupported, and the client goes on.
    bob.client
        .send_raw(
            "general",
            br#"{"v":2,"kind":"poll","question":"lunch?"}"#,
            "0123456789abcdef0123456789abcdef",
        )
        .await
        .unwrap();
    bob.client
        .send_raw(
            "general",
            br#"{"v":1,"kind":"sticker","pack":"cats"}"#,
            "fedcba9876543210fedcba9876543210",
        )
        .await
        .unwrap();
    bob.client.send("general", "still here").await.unwrap();
    alice.client.sync().await.unwrap();
    let history = alice.client.history("general").await.unwrap();
    let unsupported: Vec<_> = history.iter().filter(|e| e.unsupported).collect();
    assert_eq!(unsupported.len(), 2);
    assert!(unsupported.iter().all(|e| e.text.is_empty()));
    assert_eq!(history.last().unwrap().text, "still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn direct_messages_topics_and_unread_counts() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let bob = Person::register(&server, "bob", PASSWORD).await;
    let carol = Person::register(&server, "carol", PASSWORD).await;

    // A DM: created once, named after the other person on each side.
    let dm = alice.client.direct(&["bob"]).await.unwrap();
    assert_eq!(dm.name(), "@bob");
    dm.send("psst, the keys").await.unwrap();
    let again = alice.client.direct(&["bob", "alice"]).await.unwrap();
    assert_eq!(again.group_id(), dm.group_id(), "the same DM, not a second");
    assert_eq!(again.name(), "@bob");
    let events = bob.client.sync().await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::DirectMessage(m) if m.sender == "alice")),
        "{events:?}"
    );
    let bobs = bob.client.channels().await.unwrap();
    let at_alice = bobs.iter().find(|c| c.name == "@alice").unwrap();
    assert!(at_alice.direct);
    assert_eq!(at_alice.unread, 1);

    // A group DM, and its size limit.
    let group = alice.client.direct(&["carol", "bob"]).await.unwrap();
    assert_eq!(group.name(), "@bob,carol");
    group.send("lunch?").await.unwrap();
    carol.client.sync().await.unwrap();
    assert!(
        carol
            .client
            .channels()
            .await
            .unwrap()
            .iter()
            .any(|c| c.name == "@alice,bob" && c.direct)
    );
    let crowd: Vec<String> = (0..9).map(|i| format!("user{i}")).collect();
    let crowd: Vec<&str> = crowd.iter().map(String::as_str).collect();
    assert!(matches!(
        alice.client.direct(&crowd).await,
        Err(ClientError::Invalid(_))
    ));

    // Topics travel encrypted, to members and to those who join later.
    alice.client.create_channel("ops").await.unwrap();
    alice.client.invite("ops", "bob").await.unwrap();
    alice
        .client
        .set_topic("ops", "deploy on friday")
        .await
        .unwrap();
    alice.client.invite("ops", "carol").await.unwrap();
    let events = bob.client.sync().await.unwrap();
    assert!(
        events.iter().any(
            |e| matches!(e, Event::TopicChanged { topic, by, .. } if topic == "deploy on friday" && by == "alice")
        ),
        "{events:?}"
    );
    carol.client.sync().await.unwrap();
    let ops = carol
        .client
        .channels()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name == "ops")
        .unwrap();
    assert_eq!(ops.topic, "deploy on friday");

    // Unread: others' messages since this device last read.
    alice.client.send("ops", "one").await.unwrap();
    alice.client.send("ops", "two").await.unwrap();
    bob.client.send("ops", "mine").await.unwrap();
    bob.client.sync().await.unwrap();
    let unread = |channels: Vec<conclave_client::ChannelInfo>| {
        channels
            .into_iter()
            .find(|c| c.name == "ops")
            .unwrap()
            .unread
    };
    assert_eq!(unread(bob.client.channels().await.unwrap()), 2);
    bob.client.mark_read("ops").await.unwrap();
    assert_eq!(unread(bob.client.channels().await.unwrap()), 0);

    for file in server.files() {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        for secret in ["psst, the keys", "lunch?", "deploy on friday"] {
            assert!(
                !text.contains(secret),
                "{} holds {secret:?}",
                file.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leaving_a_channel_takes_effect_without_the_leaver() {
    let (_server, alice, bob) = alice_and_bob_in("general").await;

    bob.client.leave("general").await.unwrap();
    assert!(!bob.client.channels().await.unwrap()[0].active);
    assert!(matches!(
        bob.client.send("general", "still here?").await,
        Err(ClientError::NoSuchChannel(_) | ClientError::NotInChannel(_))
    ));

    // The next member to sync commits the removal.
    let mut events = alice.client.events();
    alice.client.sync().await.unwrap();
    let mut removed = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let Event::MembersChanged { removed: users, .. } = event {
            removed.extend(users);
        }
    }
    assert_eq!(removed, ["bob"]);
    let members = alice.client.members("general").await.unwrap();
    assert_eq!(
        members.iter().map(|m| m.user.as_str()).collect::<Vec<_>>(),
        ["alice"]
    );
    alice
        .client
        .send("general", "after bob left")
        .await
        .unwrap();
    bob.client.sync().await.unwrap();
    assert!(
        bob.client
            .history("general")
            .await
            .unwrap()
            .iter()
            .all(|e| e.text != "after bob left")
    );

    // Invited again, bob is back.
    alice.client.invite("general", "bob").await.unwrap();
    alice.client.send("general", "welcome back").await.unwrap();
    bob.client.sync().await.unwrap();
    assert!(bob.client.channels().await.unwrap()[0].active);
    assert_eq!(
        bob.client
            .history("general")
            .await
            .unwrap()
            .last()
            .unwrap()
            .text,
        "welcome back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn archived_channels_are_read_only() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let bob = Person::register(&server, "bob", PASSWORD).await;
    let carol = Person::register(&server, "carol", PASSWORD).await;
    server.admin(&["grant", "carol", "admin"]);
    for channel in ["old-project", "other"] {
        alice.client.create_channel(channel).await.unwrap();
        alice.client.invite(channel, "bob").await.unwrap();
        alice.client.send(channel, "last words").await.unwrap();
    }
    bob.client.sync().await.unwrap();

    // Only the creator or an admin.
    let refused = bob.client.archive("old-project").await.unwrap_err();
    assert!(
        matches!(&refused, ClientError::Server { status: 403, .. }),
        "{refused}"
    );
    alice.client.archive("old-project").await.unwrap();

    let events = bob.client.sync().await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Archived { channel, .. } if channel == "old-project")),
        "{events:?}"
    );
    let channels = bob.client.channels().await.unwrap();
    assert!(
        channels
            .iter()
            .any(|c| c.name == "old-project" && c.archived)
    );
    assert!(matches!(
        bob.client.send("old-project", "hello?").await,
        Err(ClientError::Invalid(_))
    ));
    assert_eq!(
        bob.client
            .history("old-project")
            .await
            .unwrap()
            .last()
            .unwrap()
            .text,
        "last words"
    );

    // An admin who is not a member can archive too, and the relay refuses
    // posts from a client that has not heard yet; the log records both.
    let group = alice
        .client
        .channels()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name == "other")
        .unwrap()
        .group_id;
    let archived = carol.client.archive("other").await.unwrap_err();
    assert!(
        matches!(archived, ClientError::NoSuchChannel(_)),
        "{archived}"
    );
    let raw = conclave_tests::RawDevice::from_home(&server, carol.home.path()).await;
    let answer = raw
        .signed(
            "POST",
            &format!("/v1/groups/{group}/archive"),
            &serde_json::Value::Null,
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let posted = alice.client.send("other", "too late").await;
    assert!(
        matches!(&posted, Err(ClientError::Server { status: 403, message, .. }) if message.contains("archived")),
        "{posted:?}"
    );
    let log = server.admin(&["events", "--limit", "100"]);
    assert_eq!(log.matches("group_archived success").count(), 2, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_deletes_old_ciphertext_and_clients_follow() {
    use sqlx::{Connection, Row};
    let server = ServerProcess::start_with(vec!["--retention-interval".into(), "1s".into()]);
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let bob = Person::register(&server, "bob", PASSWORD).await;
    let files = conclave_tests::TempDir::new("files");
    let old_file = files.path().join("old-notes.txt");
    std::fs::write(&old_file, "notes from long ago").unwrap();
    for channel in ["short", "forever"] {
        alice.client.create_channel(channel).await.unwrap();
        alice.client.invite(channel, "bob").await.unwrap();
        alice.client.send(channel, "from long ago").await.unwrap();
        alice
            .client
            .upload(channel, &old_file, "", |_, _| {})
            .await
            .unwrap();
    }
    // Only the creator (or an admin) sets a channel's retention.
    bob.client.sync().await.unwrap();
    assert!(matches!(
        bob.client.set_retention("short", Some(1)).await,
        Err(ClientError::Server { status: 403, .. })
    ));
    alice.client.set_retention("short", Some(1)).await.unwrap();

    // Two days pass for what was sent so far (the relay's rows and bob's copy).
    bob.client.sync().await.unwrap();
    let two_days_ago = conclave_tests::now() as i64 - 2 * 86_400;
    let mut relay = server.database().await;
    for table in ["messages", "blobs"] {
        sqlx::query(&format!("UPDATE {table} SET created_at = $1"))
            .bind(two_days_ago)
            .execute(&mut relay)
            .await
            .unwrap();
    }
    let url = format!("sqlite://{}", bob.home.path().join("conclave.db").display());
    let mut bobs = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE history SET at = $1")
        .bind(two_days_ago)
        .execute(&mut bobs)
        .await
        .unwrap();
    alice.client.send("short", "fresh news").await.unwrap();

    // The relay deletes the old ciphertext of "short" only, and logs it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let left: i64 = sqlx::query(
            "SELECT COUNT(*) FROM messages m JOIN groups g ON g.group_id = m.group_id
             WHERE m.kind = 'application' AND g.retention_days = 1 AND m.created_at < $1",
        )
        .bind(two_days_ago + 1)
        .fetch_one(&mut relay)
        .await
        .unwrap()
        .get(0);
        // The file's ciphertext goes with the messages.
        let files_left: i64 = sqlx::query(
            "SELECT COUNT(*) FROM blobs b JOIN groups g ON g.group_id = b.group_id
             WHERE g.retention_days = 1",
        )
        .fetch_one(&mut relay)
        .await
        .unwrap()
        .get(0);
        if left == 0 && files_left == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "retention never ran");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let kept: i64 = sqlx::query("SELECT COUNT(*) FROM messages WHERE kind = 'application'")
        .fetch_one(&mut relay)
        .await
        .unwrap()
        .get(0);
    assert!(
        kept >= 3,
        "the other channel and the fresh message stay ({kept})"
    );
    let files_kept: i64 = sqlx::query("SELECT COUNT(*) FROM blobs")
        .fetch_one(&mut relay)
        .await
        .unwrap()
        .get(0);
    assert_eq!(files_kept, 1, "the other channel's file stays");
    let log = server.admin(&["events", "--limit", "200"]);
    assert!(
        log.contains("retention_deleted success actor=relay"),
        "{log}"
    );

    // bob's device prunes its copy to match; the other channel keeps its history.
    bob.client.sync().await.unwrap();
    let short: Vec<String> = bob
        .client
        .history("short")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.text)
        .collect();
    assert_eq!(short, ["fresh news"]);
    assert_eq!(
        bob.client.history("forever").await.unwrap().len(),
        2,
        "no retention there: the message and the file stay"
    );
    // Search forgets the pruned copy too: only "forever" still has it.
    assert_eq!(search(&bob.client, "ago").await.len(), 1);
}

fn unread(channels: &[conclave_client::ChannelInfo], name: &str) -> u64 {
    channels
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no channel {name} in {channels:?}"))
        .unread
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_positions_follow_the_account_across_its_devices() {
    let (server, alice, bob) = alice_and_bob_in("general").await;
    let (mut app, _) = conclave_tests::enroll_totp(&alice.client, PASSWORD).await;
    let laptop = Person::login_with_totp(&server, "alice", PASSWORD, &mut app).await;
    // alice's first device learns of the laptop and adds it to general.
    alice.client.sync().await.unwrap();
    laptop.client.sync().await.unwrap();
    for text in ["one", "two", "three"] {
        bob.client.send("general", text).await.unwrap();
    }
    alice.client.sync().await.unwrap();
    laptop.client.sync().await.unwrap();
    assert_eq!(
        unread(&laptop.client.channels().await.unwrap(), "general"),
        3
    );

    // Reading on one device clears the count on the other, through the
    // account's own encrypted group, which no channel list shows.
    alice.client.mark_read("general").await.unwrap();
    assert_eq!(
        unread(&alice.client.channels().await.unwrap(), "general"),
        0
    );
    let events = laptop.client.sync().await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::ReadElsewhere { channel, .. } if channel == "general")),
        "{events:?}"
    );
    // The laptop joined that group in this sync; the user hears nothing of
    // it (issue 16: `sync` printed its join and its name).
    assert!(
        events.iter().all(|e| !matches!(
            e,
            Event::Joined { .. } | Event::Named { .. } | Event::MembersChanged { .. }
        )),
        "{events:?}"
    );
    let channels = laptop.client.channels().await.unwrap();
    assert_eq!(unread(&channels, "general"), 0);
    assert!(
        channels.iter().all(|c| !c.name.starts_with("@self")),
        "{channels:?}"
    );

    // Someone else cannot move alice's read position.
    bob.client.send("general", "four").await.unwrap();
    let group_id = channels[0].group_id.clone();
    bob.client
        .send_content(
            "general",
            Content::ReadUpTo {
                channel: group_id,
                seq: 1_000,
            },
        )
        .await
        .unwrap();
    laptop.client.sync().await.unwrap();
    assert_eq!(
        unread(&laptop.client.channels().await.unwrap(), "general"),
        1
    );

    // Reading on the laptop travels back the other way.
    alice.client.sync().await.unwrap();
    assert_eq!(
        unread(&alice.client.channels().await.unwrap(), "general"),
        1
    );
    laptop.client.mark_read("general").await.unwrap();
    alice.client.sync().await.unwrap();
    assert_eq!(
        unread(&alice.client.channels().await.unwrap(), "general"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_dms_stay_within_the_workspace_limit() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    for user in ["bob", "carol", "dave"] {
        Person::register(&server, user, PASSWORD).await;
    }
    assert_eq!(alice.client.account().await.unwrap().max_group_dm, 9);
    let policy = server.admin(&["policy", "--max-group-dm", "3"]);
    assert!(policy.contains("max_group_dm = 3"), "{policy}");
    // No retention set: messages are kept forever, and the policy says so.
    assert!(policy.contains("retention_days = 0 (forever)"), "{policy}");

    let refused = alice
        .client
        .direct(&["bob", "carol", "dave"])
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("at most 3 people"),
        "{refused}"
    );
    assert!(
        alice.client.channels().await.unwrap().is_empty(),
        "nothing half-made"
    );
    let direct = alice.client.direct(&["bob", "carol"]).await.unwrap();
    assert_eq!(direct.name(), "@bob,carol");
}

/// A send's answer (its position) is written by the store's next
/// transaction, not by one of its own: whatever reads the store after a
/// send returned finds the message, a subscriber hears of it with no
/// further call, and a client dropped before it was written loses nothing
/// (the next sync applies the relay's copy, once).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_accepted_send_is_in_the_history_at_once_and_outlives_an_early_exit() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    alice.client.create_channel("general").await.unwrap();

    let seq = alice.client.send("general", "read at once").await.unwrap();
    assert_eq!(
        find(&alice.client, "general", "read at once").await.seq,
        seq
    );

    let mut events = alice.client.events();
    let seq = alice
        .client
        .send("general", "heard without a read")
        .await
        .unwrap();
    let heard = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match events.recv().await {
                Ok(Event::Message(entry)) if entry.text == "heard without a read" => break entry,
                Ok(_) => {}
                Err(e) => panic!("events ended: {e}"),
            }
        }
    })
    .await
    .expect("no event for an own message nobody read");
    assert_eq!(heard.seq, seq);

    let seq = alice
        .client
        .send("general", "before the exit")
        .await
        .unwrap();
    let Person { client, home } = alice;
    drop(client);
    let again = server.client(home.path()).await;
    again.sync().await.unwrap();
    let history = again.history("general").await.unwrap();
    let kept: Vec<u64> = history
        .iter()
        .filter(|e| e.text == "before the exit")
        .map(|e| e.seq)
        .collect();
    assert_eq!(kept, [seq], "{:?}", texts(&history));
    assert_eq!(
        texts(&history).len(),
        3,
        "every message once: {:?}",
        texts(&history)
    );
}

/// A send whose group was kept in memory writes openmls's state in the same
/// statement as its outgoing row: what it wrote must be what openmls would
/// have, or a group loaded from the store later would use a message key
/// again. Sends from the kept group, then from one loaded after a restart,
/// then kept again: the other member reads every one, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sends_from_a_kept_group_leave_the_stored_state_right() {
    let (server, alice, bob) = alice_and_bob_in("general").await;
    for n in 1..=3 {
        alice
            .client
            .send("general", &format!("kept {n}"))
            .await
            .unwrap();
    }
    let Person { client, home } = alice;
    drop(client);
    let again = server.client(home.path()).await;
    for n in 1..=3 {
        again.send("general", &format!("loaded {n}")).await.unwrap();
    }
    bob.client.sync().await.unwrap();
    let history = bob.client.history("general").await.unwrap();
    let read: Vec<&str> = history.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(
        read,
        [
            "kept 1", "kept 2", "kept 3", "loaded 1", "loaded 2", "loaded 3"
        ]
    );
    // And the other way: bob's state, written the short way, reads alice's.
    bob.client.send("general", "bob, kept").await.unwrap();
    again.sync().await.unwrap();
    assert_eq!(find(&again, "general", "bob, kept").await.sender, "bob");
}

/// A stream that opens with more than a page (500) of messages waiting
/// pushes every one, in order, with nothing acknowledged meanwhile: its
/// database look reads on from each page's end. (It read the first page
/// again from the device's acknowledged position, found nothing new and
/// stopped, so the rest waited for the device's next acknowledgement to be
/// written, or for ever if none came.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_pushes_a_backlog_longer_than_a_page_without_acknowledgements() {
    use std::time::Duration;
    const WAITING: usize = 620;
    let (server, alice, bob) = alice_and_bob_in("backlog").await;
    let channel = alice.client.channel_named("backlog").await.unwrap();
    let group_id = channel.group_id().to_owned();
    for i in 0..WAITING {
        channel.send(&format!("backlog {i}")).await.unwrap();
    }
    let raw = conclave_tests::RawDevice::from_home(&server, bob.home.path()).await;
    let mut stream = raw.open_stream().await;
    let mut seqs = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        while seqs.len() < WAITING {
            let frame = stream
                .next_frame()
                .await
                .expect("the stream is open")
                .unwrap();
            let frame: serde_json::Value = serde_json::from_str(&frame).unwrap();
            if frame["kind"] == "application" && frame["group_id"] == group_id.as_str() {
                seqs.push(frame["seq"].as_u64().unwrap());
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the stream pushed {} of the {WAITING} messages waiting",
        seqs.len()
    );
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order, each once");
}

/// Messages that reach a listening device together are applied in order
/// and answered together: the acknowledgement of a channel's last message
/// covers every one before it, so none is left waiting on the relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_pushed_messages_is_applied_in_order_and_acknowledged_whole() {
    use std::time::{Duration, Instant};
    let (server, alice, bob) = alice_and_bob_in("burst").await;
    let sent: Vec<String> = (0..20).map(|i| format!("burst {i}")).collect();
    for text in &sent {
        alice.client.send("burst", text).await.unwrap();
    }

    // bob was not listening: his stream opens with all twenty waiting, and
    // the relay writes them at once.
    let mut events = bob.client.events();
    let listening = bob.client.listen();
    let heard = tokio::time::timeout(Duration::from_secs(10), async {
        let mut heard = Vec::new();
        while heard.len() < sent.len() {
            match events.recv().await {
                Ok(Event::Message(entry)) => heard.push(entry.text),
                Ok(_) => {}
                Err(e) => panic!("events ended: {e}"),
            }
        }
        heard
    })
    .await
    .expect("the burst did not reach bob");
    assert_eq!(heard, sent, "in order, each once");

    // (A message's event goes out before its acknowledgement.) The relay
    // writes acknowledgements within a second; then nothing may wait for
    // bob.
    let raw = conclave_tests::RawDevice::from_home(&server, bob.home.path()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let path = "/v1/messages?limit=100";
    loop {
        let waiting = raw.signed("GET", path, &serde_json::Value::Null).await;
        assert_eq!(waiting.status, 200, "{}", waiting.json);
        let left = waiting.json["messages"].as_array().expect("messages").len();
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} messages still wait for bob: the burst was not acknowledged whole"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    listening.abort();
    let history = bob.client.history("burst").await.unwrap();
    let texts: Vec<&str> = history.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(texts, sent);
}
