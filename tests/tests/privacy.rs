//! One scenario through every messaging feature, then the relay's files
//! (database, WAL, log at debug level, certificates) are searched for
//! anything said, named or looked for in it. History handed to a newcomer
//! is part of the scenario: it needs the channel's permission, is recorded
//! in the audit log, and only its recipient can fetch it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use conclave_client::{ClientError, Event, SearchQuery};
use conclave_tests::ByName;
use conclave_tests::{Person, RawDevice, ServerProcess, TempDir};
use serde_json::Value;
use sqlx::Row;

const PASSWORD: &str = "correct horse battery staple";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_said_named_shared_or_searched_is_stored_in_clear() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let bob = Person::register(&server, "bob", PASSWORD).await;
    let carol = Person::register(&server, "carol", PASSWORD).await;
    let (a, b, c) = (&alice.client, &bob.client, &carol.client);

    // A private channel with a topic, a thread, reactions, an edit, a delete.
    a.create_channel("skunkworks-zephyr").await.unwrap();
    a.set_topic("skunkworks-zephyr", "codename zephyr launch window")
        .await
        .unwrap();
    a.invite("skunkworks-zephyr", "bob").await.unwrap();
    a.send("skunkworks-zephyr", "the launch code is PAPAYA-77")
        .await
        .unwrap();
    a.send("skunkworks-zephyr", "a tpyo to fix").await.unwrap();
    a.send("skunkworks-zephyr", "regrettable remark BANANA-13")
        .await
        .unwrap();
    b.sync().await.unwrap();
    let history = b.history("skunkworks-zephyr").await.unwrap();
    let code = history
        .iter()
        .find(|e| e.text.contains("PAPAYA"))
        .unwrap()
        .id
        .clone();
    b.reply(
        "skunkworks-zephyr",
        &code,
        "confirmed, thread reply KIWI-31",
    )
    .await
    .unwrap();
    b.react("skunkworks-zephyr", &code, "\u{1f984}", true)
        .await
        .unwrap();
    // A shortcode: sent as its emoji (a ZWJ sequence, 11 bytes), which
    // must no more reach the relay's disk than the text does.
    b.react("skunkworks-zephyr", &code, ":astronaut:", true)
        .await
        .unwrap();
    a.sync().await.unwrap();
    let own = a.history("skunkworks-zephyr").await.unwrap();
    let typo = own
        .iter()
        .find(|e| e.text == "a tpyo to fix")
        .unwrap()
        .id
        .clone();
    let remark = own
        .iter()
        .find(|e| e.text.contains("BANANA"))
        .unwrap()
        .id
        .clone();
    a.edit("skunkworks-zephyr", &typo, "the typo is fixed, GUAVA-58")
        .await
        .unwrap();
    a.delete("skunkworks-zephyr", &remark).await.unwrap();

    // A file, downloaded by bob.
    let files = TempDir::new("files");
    let path = files.path().join("quasar-plans.txt");
    std::fs::write(&path, "FILE-CONTENT-QUASAR ".repeat(5000)).unwrap();
    a.upload("skunkworks-zephyr", &path, "plans for QUASAR", |_, _| {})
        .await
        .unwrap();
    b.sync().await.unwrap();
    let file = b
        .history("skunkworks-zephyr")
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.file.is_some())
        .unwrap();
    b.download(
        "skunkworks-zephyr",
        &file.id,
        files.path().join("copy.txt").as_path(),
        |_, _| {},
    )
    .await
    .unwrap();

    // A direct message, and searches (one that finds nothing).
    a.direct(&["bob"]).await.unwrap();
    a.send("@bob", "between us: MANGO-12").await.unwrap();
    b.sync().await.unwrap();
    for words in ["PAPAYA", "needleneverwritten42"] {
        b.search(&SearchQuery {
            words: words.into(),
            ..SearchQuery::default()
        })
        .await
        .unwrap();
    }

    // History for a newcomer: refused until the channel allows it.
    a.invite("skunkworks-zephyr", "carol").await.unwrap();
    c.sync().await.unwrap();
    assert!(
        c.history("skunkworks-zephyr")
            .await
            .unwrap()
            .iter()
            .all(|e| !e.text.contains("PAPAYA"))
    );
    let refused = a
        .share_history("skunkworks-zephyr", "carol")
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, ClientError::Server { status: 403, .. })
            && refused.to_string().contains("does not allow sharing"),
        "{refused}"
    );
    let not_creator = b
        .set_history_sharing("skunkworks-zephyr", true)
        .await
        .unwrap_err();
    assert!(
        matches!(not_creator, ClientError::Server { status: 403, .. }),
        "{not_creator}"
    );
    a.set_history_sharing("skunkworks-zephyr", true)
        .await
        .unwrap();
    let shared = a.share_history("skunkworks-zephyr", "carol").await.unwrap();
    assert_eq!(
        shared, 4,
        "the code, the edited line, the reply and the file"
    );
    let events = c.sync().await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::HistoryReceived { from, .. } if from == "alice")),
        "{events:?}"
    );
    let carols = c.history("skunkworks-zephyr").await.unwrap();
    let earlier = carols.iter().find(|e| e.text.contains("PAPAYA")).unwrap();
    assert_eq!(earlier.shared_by.as_deref(), Some("alice"));
    assert_eq!(earlier.sender, "alice");
    assert!(
        carols
            .iter()
            .any(|e| e.text == "the typo is fixed, GUAVA-58" && e.edited)
    );
    assert!(
        carols.iter().all(|e| !e.text.contains("BANANA")),
        "deleted stays deleted"
    );
    // Reactions came along, and the file: its key travelled in the sealed
    // bundle, and carol, a member now, fetches and checks it.
    let mut reactions: Vec<&str> = earlier.reactions.iter().map(|r| r.emoji.as_str()).collect();
    reactions.sort_unstable();
    assert_eq!(
        reactions,
        ["\u{1f984}", "\u{1f9d1}\u{200d}\u{1f680}"],
        "{:?}",
        earlier.reactions
    );
    assert!(earlier.reactions.iter().all(|r| r.users == ["bob"]));
    let shared_file = carols
        .iter()
        .find(|e| e.file.is_some())
        .expect("the file came with the history");
    assert_eq!(shared_file.text, "plans for QUASAR");
    let (saved, _) = c
        .download(
            "skunkworks-zephyr",
            &shared_file.id,
            files.path().join("carols-copy.txt").as_path(),
            |_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(saved).unwrap(), std::fs::read(&path).unwrap());
    let found = c
        .search(&SearchQuery {
            words: "KIWI*".into(),
            ..SearchQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    // Earlier messages do not count as unread.
    let unread = c
        .channels()
        .await
        .unwrap()
        .into_iter()
        .find(|ch| ch.name == "skunkworks-zephyr")
        .unwrap()
        .unread;
    assert!(unread <= 1, "{unread}");

    // Every member sees the grant; only carol may fetch the bundle.
    b.sync().await.unwrap();
    assert!(
        b.history("skunkworks-zephyr")
            .await
            .unwrap()
            .iter()
            .any(|e| e.sender == "alice" && e.text.contains("with carol")),
    );
    let bundle_blob: String = {
        let mut db = server.database().await;
        sqlx::query("SELECT blob_id FROM blobs WHERE recipient = 'carol'")
            .fetch_one(&mut db)
            .await
            .unwrap()
            .get(0)
    };
    let raw_bob = RawDevice::from_home(&server, bob.home.path()).await;
    let refused = raw_bob
        .signed(
            "GET",
            &format!("/v1/blobs/{bundle_blob}/chunks/0"),
            &Value::Null,
        )
        .await;
    assert_eq!(refused.status, 403, "{:?}", refused.json);
    let events = server.admin(&["events"]);
    assert!(
        events
            .lines()
            .any(|l| l.contains("history_shared") && l.contains("alice") && l.contains("carol")),
        "{events}"
    );

    // Nothing of it on the relay's disk.
    let needles: [&[u8]; 15] = [
        b"skunkworks-zephyr",
        b"codename zephyr",
        b"PAPAYA-77",
        b"GUAVA-58",
        b"tpyo",
        b"BANANA-13",
        b"KIWI-31",
        "\u{1f984}".as_bytes(),
        "\u{1f9d1}\u{200d}\u{1f680}".as_bytes(),
        b"FILE-CONTENT-QUASAR",
        b"quasar-plans",
        b"plans for QUASAR",
        b"MANGO-12",
        b"needleneverwritten42",
        b"history.json",
    ];
    for file in server.files() {
        let bytes = std::fs::read(&file).unwrap();
        for needle in needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds {:?} in clear",
                file.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
}
