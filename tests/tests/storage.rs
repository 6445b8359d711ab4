//! One storage suite, two backends: embedded SQLite always, PostgreSQL when
//! CONCLAVE_TEST_DATABASE_URL is set (CI sets it; unreachable fails).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::BTreeSet;

use conclave_audit::log::{LogError, TransparencyLog};
use conclave_audit::{
    Checkpoint, Event, NoteSigner, SignedNote, leaf_hash, verify_consistency, verify_inclusion,
};
use conclave_server::{
    Admission, Append, BlobSpec, GroupAccess, KeyPackagesAdded, MessageKind, NewBlob,
    NewKeyPackage, Nonce, PayloadHash, Store,
};
use conclave_tests::{TempDir, fresh_postgres};

fn registration(user: &str, device: &str) -> Event {
    Event::new(0, 1_700_000_000, conclave_audit::DEVICE_ADDED)
        .actor(user)
        .device(device)
        .detail("public_key", "00")
}

/// The audit entry a change hands the store, to be appended in the
/// change's transaction (the relay builds these with `AuditTrail::entry`).
fn logged(action: &str) -> Event {
    Event::new(0, 1_700_000_000, action).actor("test")
}

/// A group `group_id` at epoch 0, created by alice's device `d-alice`.
async fn alices_group(store: &Store, group_id: &str) {
    store
        .create_group(
            group_id,
            0,
            b"s",
            "d-alice",
            "alice",
            None,
            logged("group_created"),
        )
        .await
        .unwrap();
}

fn package(tag: u8, last_resort: bool) -> NewKeyPackage {
    NewKeyPackage {
        bytes: vec![tag; 8],
        last_resort,
        expires_at: u64::MAX / 4,
    }
}

async fn storage_suite(store: Store) {
    // Accounts: one name, one account.
    assert!(store.create_account("alice", "hash-a").await.unwrap());
    assert!(!store.create_account("alice", "hash-b").await.unwrap());
    assert_eq!(
        store.password_hash("alice").await.unwrap().as_deref(),
        Some("hash-a")
    );
    assert_eq!(store.password_hash("nobody").await.unwrap(), None);

    // Devices: re-registering the same key is fine, stealing a device id is not.
    assert!(store.create_account("bob", "hash-b").await.unwrap());
    assert!(
        store
            .add_device(
                "alice",
                "d-alice",
                &[1; 32],
                registration("alice", "d-alice")
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .add_device(
                "alice",
                "d-alice",
                &[1; 32],
                registration("alice", "d-alice")
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .add_device("bob", "d-alice", &[2; 32], registration("bob", "d-alice"))
            .await
            .unwrap()
    );
    assert!(
        store
            .add_device("bob", "d-bob", &[3; 32], registration("bob", "d-bob"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.device("d-alice").await.unwrap().unwrap().public_key,
        vec![1; 32]
    );

    // Nonces are single-use.
    assert!(
        store
            .use_nonce("d-alice", "n1", u64::MAX / 4)
            .await
            .unwrap()
    );
    assert!(
        !store
            .use_nonce("d-alice", "n1", u64::MAX / 4)
            .await
            .unwrap()
    );
    assert!(store.use_nonce("d-bob", "n1", u64::MAX / 4).await.unwrap());
    // Pruning forgets only nonces whose requests are already stale.
    assert!(store.use_nonce("d-bob", "expired", 1).await.unwrap());
    assert_eq!(store.prune_nonces().await.unwrap(), 1);
    assert!(
        !store
            .use_nonce("d-alice", "n1", u64::MAX / 4)
            .await
            .unwrap()
    );

    // Key packages: 10 one-time and one last resort; 25 racing claims hand
    // each one-time package out exactly once, then the last resort.
    let mut packages: Vec<NewKeyPackage> = (0..10).map(|i| package(i, false)).collect();
    packages.push(package(100, true));
    assert_eq!(
        store
            .add_key_packages("d-alice", &packages, 200, logged("key_packages_uploaded"))
            .await
            .unwrap(),
        KeyPackagesAdded::Added
    );
    assert_eq!(
        store.key_package_stock("d-alice").await.unwrap(),
        (10, true)
    );
    let claims = (0..25).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.claim_key_packages("alice", None).await.unwrap() })
    });
    let mut one_time = Vec::new();
    let mut last_resort = 0;
    for claim in claims {
        let claimed = claim.await.unwrap();
        assert_eq!(claimed.len(), 1, "one package per device per claim");
        let (device, bytes) = &claimed[0];
        assert_eq!(device, "d-alice");
        if bytes[0] == 100 {
            last_resort += 1
        } else {
            one_time.push(bytes[0])
        }
    }
    let distinct: BTreeSet<u8> = one_time.iter().copied().collect();
    assert_eq!(one_time.len(), 10, "every one-time package handed out");
    assert_eq!(distinct.len(), 10, "no one-time package handed out twice");
    assert_eq!(last_resort, 15);
    assert_eq!(store.key_package_stock("d-alice").await.unwrap(), (0, true));
    // A new last-resort package replaces the old one.
    store
        .add_key_packages(
            "d-alice",
            &[package(101, true)],
            200,
            logged("key_packages_uploaded"),
        )
        .await
        .unwrap();
    assert_eq!(
        store.claim_key_packages("alice", None).await.unwrap()[0].1,
        vec![101; 8]
    );

    // Groups: ids are unique; appends need the current epoch.
    assert_eq!(
        store
            .create_group(
                "g1",
                0,
                b"state-0",
                "d-alice",
                "alice",
                None,
                logged("group_created")
            )
            .await
            .unwrap(),
        conclave_server::NewGroup::Created
    );
    assert_eq!(
        store
            .create_group(
                "g1",
                0,
                b"other",
                "d-bob",
                "bob",
                None,
                logged("group_created")
            )
            .await
            .unwrap(),
        conclave_server::NewGroup::Exists
    );
    // One public name, one channel, however the creators race.
    let listing = |name: &'static str| conclave_server::PublicListing {
        name,
        topic: "",
        group_info: b"info",
    };
    assert_eq!(
        store
            .create_group(
                "g2",
                0,
                b"s",
                "d-alice",
                "alice",
                Some(&listing("lobby")),
                logged("group_created")
            )
            .await
            .unwrap(),
        conclave_server::NewGroup::Created
    );
    assert_eq!(
        store
            .create_group(
                "g3",
                0,
                b"s",
                "d-bob",
                "bob",
                Some(&listing("lobby")),
                logged("group_created")
            )
            .await
            .unwrap(),
        conclave_server::NewGroup::NameTaken
    );
    assert!(
        store.group("g3").await.unwrap().is_none(),
        "nothing half-made"
    );
    let access = |device: &'static str| {
        let store = store.clone();
        async move { store.access("g1", device).await.unwrap().unwrap() }
    };
    assert_eq!(
        access("d-alice").await,
        GroupAccess {
            epoch: 0,
            member: true,
            archived: false
        }
    );
    assert_eq!(
        access("d-bob").await,
        GroupAccess {
            epoch: 0,
            member: false,
            archived: false
        }
    );
    assert_eq!(
        store.access("no-such-group", "d-alice").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .append("g1", 0, MessageKind::Application, "d-alice", b"m1", None)
            .await
            .unwrap(),
        Ok(1)
    );
    assert_eq!(
        store
            .append("g1", 5, MessageKind::Application, "d-alice", b"mx", None)
            .await
            .unwrap(),
        Err(0)
    );
    // A post's reads in one query: the device's session, as its own read
    // gives it, and the group's admission.
    let seen = PayloadHash::of(b"m1");
    let (session, admission) = store
        .device_session_and_admission("d-alice", "g1", &seen)
        .await
        .unwrap();
    let alone = store.device_session("d-alice").await.unwrap().unwrap();
    let session = session.unwrap();
    assert_eq!(
        (
            session.username.as_str(),
            &session.public_key,
            session.revoked_at
        ),
        ("alice", &alone.public_key, None)
    );
    assert_eq!(
        admission,
        Some(Admission {
            access: access("d-alice").await,
            earlier_post: Some((1, "d-alice".to_owned()))
        })
    );
    let (session, admission) = store
        .device_session_and_admission("d-bob", "g1", &PayloadHash::of(b"new"))
        .await
        .unwrap();
    assert_eq!(session.unwrap().username, "bob");
    assert_eq!(
        admission,
        Some(Admission {
            access: GroupAccess {
                epoch: 0,
                member: false,
                archived: false
            },
            earlier_post: None
        })
    );
    let (session, admission) = store
        .device_session_and_admission("d-alice", "no-such-group", &seen)
        .await
        .unwrap();
    assert!(session.is_some() && admission.is_none());
    let (session, admission) = store
        .device_session_and_admission("d-nobody", "g1", &seen)
        .await
        .unwrap();
    assert!(session.is_none() && admission.is_none());

    // Two racing commits on epoch 0: exactly one wins.
    let added = vec!["d-bob".to_owned()];
    let attempt = |commit: &'static [u8]| {
        let store = store.clone();
        let added = added.clone();
        tokio::spawn(async move {
            let record = conclave_server::CommitRecord {
                group_id: "g1",
                from_epoch: 0,
                to_epoch: 1,
                public_state: b"state-1",
                sender: "d-alice",
                commit,
                welcome: Some(b"welcome"),
                group_info: None,
                added: &added,
                removed: &[],
                audit: vec![
                    Event::new(0, 1, "member_added")
                        .actor("alice")
                        .target("bob/d-bob"),
                ],
            };
            store.apply_commit(&record).await.unwrap()
        })
    };
    let (first, second) = (attempt(b"commit-a"), attempt(b"commit-b"));
    let outcomes = [first.await.unwrap(), second.await.unwrap()];
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&Err(1)),
        "the loser learns the current epoch: {outcomes:?}"
    );
    let group = store.group("g1").await.unwrap().unwrap();
    assert_eq!(
        (group.epoch, group.public_state.as_slice()),
        (1, &b"state-1"[..])
    );
    assert_eq!(
        access("d-bob").await,
        GroupAccess {
            epoch: 1,
            member: true,
            archived: false
        }
    );

    // Delivery: alice sees her log in order; bob starts at his welcome.
    assert_eq!(
        store
            .append("g1", 1, MessageKind::Application, "d-bob", b"m2", None)
            .await
            .unwrap(),
        Ok(4)
    );
    let alice: Vec<(u64, String)> = store
        .pending("d-alice", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.seq, p.kind.to_string()))
        .collect();
    assert_eq!(
        alice,
        [
            (1, "application".into()),
            (2, "commit".into()),
            (4, "application".into())
        ]
    );
    let bob: Vec<(u64, String)> = store
        .pending("d-bob", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.seq, p.kind.to_string()))
        .collect();
    assert_eq!(bob, [(3, "welcome".into()), (4, "application".into())]);
    // A reader goes on from where its last page ended: within the group,
    // then past it.
    let after = |group: &'static str, seq: u64| {
        let store = store.clone();
        async move {
            store
                .pending_after("d-alice", Some((group, seq)), 100)
                .await
                .unwrap()
                .into_iter()
                .map(|p| p.seq)
                .collect::<Vec<u64>>()
        }
    };
    assert_eq!(after("g1", 1).await, [2, 4]);
    assert_eq!(after("g1", 2).await, [4]);
    assert_eq!(after("g1", 4).await, Vec::<u64>::new());
    assert_eq!(
        after("g0", 99).await,
        [1, 2, 4],
        "a group before g1: all of g1"
    );
    assert_eq!(
        store.pending_after("d-alice", None, 2).await.unwrap().len(),
        2,
        "at most a page"
    );
    // Messages stay queued until acknowledged.
    store.ack("d-alice", "g1", 2).await.unwrap();
    assert_eq!(store.pending("d-alice", 100).await.unwrap().len(), 1);
    store.ack("d-alice", "g1", 4).await.unwrap();
    assert!(store.pending("d-alice", 100).await.unwrap().is_empty());
    assert_eq!(store.groups_of("d-bob").await.unwrap(), ["g1"]);

    // Archiving: once, by group; members' devices learn it from their fetch.
    assert_eq!(
        store.group_creator("g1").await.unwrap().as_deref(),
        Some("alice")
    );
    assert_eq!(store.group_creator("nope").await.unwrap(), None);
    assert!(
        store
            .archive_group("g1", logged("group_archived"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .archive_group("g1", logged("group_archived"))
            .await
            .unwrap()
    );
    assert!(
        store
            .access("g1", "d-alice")
            .await
            .unwrap()
            .unwrap()
            .archived
    );
    assert_eq!(store.archived_groups_of("d-alice").await.unwrap(), ["g1"]);

    account_suite(&store).await;
    log_suite(&store).await;
    // The same ciphertext posted again (a retry after a lost answer), even
    // twice at once: it keeps its first position and takes no new one.
    assert_eq!(store.seq_of_payload("g1", b"m1").await.unwrap(), Some(1));
    assert_eq!(
        store.seq_of_payload("g1", b"never sent").await.unwrap(),
        None
    );
    let epoch = store.access("g1", "d-alice").await.unwrap().unwrap().epoch;
    let before = store.seq_of_payload("g1", b"m2").await.unwrap().unwrap();
    let racing = |payload: &'static [u8]| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .append(
                    "g1",
                    epoch,
                    MessageKind::Application,
                    "d-alice",
                    payload,
                    None,
                )
                .await
                .unwrap()
        })
    };
    let (a, b) = (racing(b"m-twice"), racing(b"m-twice"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!(a, b, "both posts of one ciphertext get one position");
    let Ok(seq) = a else { panic!("{a:?}") };
    assert!(seq > before);
    assert_eq!(
        store.seq_of_payload("g1", b"m-twice").await.unwrap(),
        Some(seq)
    );
    group_commit_suite(&store).await;
    lone_posts_suite(&store).await;
    reading_writes_wait_their_turn(&store).await;
}

/// Transactions that read before they write (a file chunk checks its blob
/// is still open) run beside a stream of other writes: every one waits for
/// its turn and succeeds. (On SQLite a transaction that began as a reader
/// fails outright, "database is locked", when another connection wrote
/// after its first read; the relay must not answer those with 500.)
async fn reading_writes_wait_their_turn(store: &Store) {
    alices_group(store, "busy").await;
    let chunks = 64u64;
    let blob = BlobSpec {
        blob_id: "busy-blob",
        group_id: "busy",
        owner: "alice",
        size: chunks * 16,
        chunks,
        recipient: None,
    };
    assert!(matches!(
        store.create_blob(&blob, u64::MAX, None).await.unwrap(),
        NewBlob::Created
    ));
    let mut writes = tokio::task::JoinSet::new();
    for n in 0..200u64 {
        let store = store.clone();
        writes.spawn(async move {
            let payload = format!("busy message {n}");
            store
                .append(
                    "busy",
                    0,
                    MessageKind::Application,
                    "d-alice",
                    payload.as_bytes(),
                    None,
                )
                .await
                .map(|_| ())
                .map_err(|e| format!("append {n}: {e}"))
        });
    }
    for index in 0..chunks {
        let store = store.clone();
        writes.spawn(async move {
            match store.put_blob_chunk("busy-blob", index, &[7u8; 16]).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(format!("chunk {index}: the blob was not open")),
                Err(e) => Err(format!("chunk {index}: {e}")),
            }
        });
    }
    while let Some(outcome) = writes.join_next().await {
        if let Err(e) = outcome.unwrap() {
            panic!("a write failed beside others: {e}");
        }
    }
    assert_eq!(
        store.complete_blob("busy-blob", chunks).await.unwrap(),
        chunks
    );
}

/// Many appends at once (which the store commits in shared transactions):
/// each group's positions run on without gaps or repeats, every message
/// holds exactly one, a message sent twice holds one, and an append at a
/// stale epoch fails alone without sinking the appends batched with it.
async fn group_commit_suite(store: &Store) {
    let groups = ["gc-a", "gc-b", "gc-c"];
    for group in groups {
        alices_group(store, group).await;
    }
    let mut appends = Vec::new();
    for n in 0..300usize {
        let store = store.clone();
        let group = groups[n % groups.len()];
        // The k-th message of a group; every tenth is sent again as the
        // next one, and a few go at a stale epoch.
        let k = n / groups.len();
        let payload = if k % 10 == 1 {
            format!("{group} message {}", k - 1)
        } else {
            format!("{group} message {k}")
        };
        let epoch = if k % 25 == 7 { 5 } else { 0 };
        appends.push(tokio::spawn(async move {
            let outcome = store
                .append(
                    group,
                    epoch,
                    MessageKind::Application,
                    "d-alice",
                    payload.as_bytes(),
                    None,
                )
                .await
                .unwrap();
            (group, payload, epoch, outcome)
        }));
    }
    let mut positions: std::collections::BTreeMap<&str, Vec<(u64, String)>> = Default::default();
    for append in appends {
        let (group, payload, epoch, outcome) = append.await.unwrap();
        match outcome {
            Ok(seq) => {
                assert_eq!(epoch, 0, "a stale append was accepted");
                positions.entry(group).or_default().push((seq, payload));
            }
            Err(current) => {
                assert_eq!((epoch, current), (5, 0), "a fresh append was refused");
            }
        }
    }
    for (group, mut held) in positions {
        held.sort();
        held.dedup();
        let seqs: Vec<u64> = held.iter().map(|(seq, _)| *seq).collect();
        let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, expected, "{group}: one message per position, no gaps");
        let payloads: BTreeSet<&String> = held.iter().map(|(_, p)| p).collect();
        assert_eq!(
            payloads.len(),
            held.len(),
            "{group}: a repeat took a second position"
        );
    }
}

/// Posted messages one at a time, each spending its request's nonce (on
/// SQLite a lone one goes to the database as one list of statements): a
/// replayed nonce appends nothing, a stale epoch spends the nonce and
/// appends nothing, the same bytes again get their first position and
/// still spend the new nonce, and none of these leaves a gap or a
/// half-written transaction behind.
async fn lone_posts_suite(store: &Store) {
    alices_group(store, "lone").await;
    let post = |epoch: u64, payload: &[u8], nonce: &str| {
        let store = store.clone();
        let append = Append {
            group_id: "lone".into(),
            epoch,
            kind: MessageKind::Application,
            sender: "d-alice".into(),
            payload: payload.to_vec(),
            payload_hash: PayloadHash::of(payload),
            public_state: None,
        };
        let nonce = Nonce {
            device_id: "d-alice".into(),
            nonce: nonce.into(),
            expires_at: u64::MAX / 4,
        };
        async move { store.append_spending(append, nonce).await.unwrap() }
    };
    let spent = |nonce: &str| {
        let store = store.clone();
        let nonce = Nonce {
            device_id: "d-alice".into(),
            nonce: nonce.into(),
            expires_at: u64::MAX / 4,
        };
        async move { !store.spend_nonce(nonce).await.unwrap() }
    };
    assert_eq!(post(0, b"lone 1", "n-1").await, Some(Ok(1)));
    assert_eq!(post(0, b"lone 2", "n-1").await, None, "a replay appended");
    assert_eq!(
        post(5, b"lone 2", "n-2").await,
        Some(Err(0)),
        "a stale epoch"
    );
    assert!(spent("n-2").await, "a stale post's nonce was not spent");
    assert_eq!(
        post(0, b"lone 1", "n-3").await,
        Some(Ok(1)),
        "the same bytes again: their first position"
    );
    assert!(spent("n-3").await, "a repeat's nonce was not spent");
    assert_eq!(post(0, b"lone 2", "n-4").await, Some(Ok(2)), "a gap");
    assert_eq!(
        store.seq_of_payload("lone", b"lone 2").await.unwrap(),
        Some(2)
    );
    // The writer's connection was handed back whole: other writes go on.
    assert!(!spent("n-5").await);

    // Many at once: on SQLite some find the writer idle and go alone while
    // others queue behind them and go in a batch. Each is appended once, at
    // a position of its own, none skipped, and each nonce is spent.
    let posts: Vec<_> = (0..48u64)
        .map(|i| {
            let posted = post(0, format!("at once {i}").as_bytes(), &format!("c-{i}"));
            // Spread over 15 ms, about a flush apart: some find the writer
            // idle, some find it busy with the one before.
            let after = std::time::Duration::from_micros(i * 300);
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                posted.await
            })
        })
        .collect();
    let mut positions = Vec::new();
    for (i, answer) in futures_util::future::join_all(posts)
        .await
        .into_iter()
        .enumerate()
    {
        let answer = answer.expect("the post's task");
        let Some(Ok(seq)) = answer else {
            panic!("post {i} at once was not appended: {answer:?}");
        };
        assert_eq!(
            store
                .seq_of_payload("lone", format!("at once {i}").as_bytes())
                .await
                .unwrap(),
            Some(seq),
            "post {i} is not where its answer says"
        );
        assert!(
            spent(&format!("c-{i}")).await,
            "post {i}'s nonce was not spent"
        );
        positions.push(seq);
    }
    positions.sort_unstable();
    assert_eq!(
        positions,
        (3..=50).collect::<Vec<u64>>(),
        "a position twice, or a gap"
    );
}

/// Second factors, sessions, invites and rate limits: the compare-and-set
/// statements that make codes single-use must hold on both dialects.
async fn account_suite(store: &Store) {
    // TOTP: a step is spent once, and never an earlier one after it.
    assert!(store.begin_totp("alice", "sealed-1").await.unwrap());
    assert!(store.begin_totp("alice", "sealed-2").await.unwrap()); // still pending: replaced
    assert!(!store.totp("alice").await.unwrap().unwrap().confirmed);
    assert!(store.spend_totp_step("alice", 100).await.unwrap());
    let totp = store.totp("alice").await.unwrap().unwrap();
    assert!(totp.confirmed && totp.last_step == 100 && totp.sealed_secret == "sealed-2");
    assert!(!store.spend_totp_step("alice", 100).await.unwrap());
    assert!(!store.spend_totp_step("alice", 99).await.unwrap());
    assert!(store.spend_totp_step("alice", 101).await.unwrap());
    assert!(!store.begin_totp("alice", "sealed-3").await.unwrap()); // confirmed: kept

    // Recovery codes: each spent once.
    let codes = vec![
        ("c1".to_owned(), "h1".to_owned()),
        ("c2".to_owned(), "h2".to_owned()),
    ];
    store.replace_recovery_codes("alice", &codes).await.unwrap();
    assert_eq!(store.recovery_codes_left("alice").await.unwrap(), 2);
    assert_eq!(
        store
            .unused_recovery_code("alice", "c1")
            .await
            .unwrap()
            .as_deref(),
        Some("h1")
    );
    assert!(store.spend_recovery_code("alice", "c1").await.unwrap());
    assert!(!store.spend_recovery_code("alice", "c1").await.unwrap());
    assert_eq!(
        store.unused_recovery_code("alice", "c1").await.unwrap(),
        None
    );
    assert_eq!(store.recovery_codes_left("alice").await.unwrap(), 1);

    // Challenges answer once.
    let challenge = conclave_server::ChallengeRow {
        username: "alice".into(),
        purpose: "authenticate".into(),
        state: "{}".into(),
        expires_at: u64::MAX / 4,
    };
    store.put_challenge("ch1", &challenge).await.unwrap();
    assert_eq!(
        store.take_challenge("ch1").await.unwrap().unwrap().username,
        "alice"
    );
    assert!(store.take_challenge("ch1").await.unwrap().is_none());

    // Invites: spent with the account, in one transaction.
    store
        .create_invite(
            "inv1",
            "hash",
            "host-admin",
            u64::MAX / 4,
            logged("invite_created"),
        )
        .await
        .unwrap();
    assert!(store.open_invite("inv1").await.unwrap().is_some());
    assert_eq!(
        store
            .create_account_with_invite("carol", "h", Some("inv1"), logged("account_created"))
            .await
            .unwrap(),
        Ok(())
    );
    assert!(store.open_invite("inv1").await.unwrap().is_none());
    assert_eq!(
        store
            .create_account_with_invite("dave", "h", Some("inv1"), logged("account_created"))
            .await
            .unwrap(),
        Err("invite")
    );
    assert_eq!(store.password_hash("dave").await.unwrap(), None); // rolled back
    store
        .create_invite("inv2", "hash", "host-admin", 1, logged("invite_created"))
        .await
        .unwrap(); // long expired
    assert!(store.open_invite("inv2").await.unwrap().is_none());

    // Sessions and revocation.
    let session = store.device_session("d-alice").await.unwrap().unwrap();
    assert!(session.session_started_at.is_some() && session.revoked_at.is_none());
    assert!(session.has_second_factor && !session.second_factor_required);
    store
        .set_setting("require_second_factor", "true", logged("policy_changed"))
        .await
        .unwrap();
    assert!(
        store
            .device_session("d-bob")
            .await
            .unwrap()
            .unwrap()
            .second_factor_required
    );
    assert!(
        !store
            .device_session("d-bob")
            .await
            .unwrap()
            .unwrap()
            .has_second_factor
    );
    store
        .add_device(
            "alice",
            "d-alice-2",
            &[7; 32],
            registration("alice", "d-alice-2"),
        )
        .await
        .unwrap();
    assert_eq!(
        store.end_sessions("alice", "d-alice").await.unwrap(),
        ["d-alice-2"]
    );
    assert!(
        store
            .device_session("d-alice-2")
            .await
            .unwrap()
            .unwrap()
            .session_started_at
            .is_none()
    );
    assert!(store.start_session("d-alice-2").await.unwrap());
    assert!(store.revoke_device("alice", "d-alice-2").await.unwrap());
    assert!(!store.revoke_device("alice", "d-alice-2").await.unwrap());
    assert!(!store.start_session("d-alice-2").await.unwrap());
    assert!(store.device("d-alice-2").await.unwrap().is_none());
    assert_eq!(store.active_device_count("alice").await.unwrap(), 1);

    // Rate limits count within a window and start over after it.
    for expected in 1..=3 {
        assert_eq!(store.hit_bucket("b", 3600).await.unwrap().hits, expected);
    }
    assert_eq!(store.peek_bucket("b", 3600).await.unwrap().hits, 3);
    store.clear_bucket("b").await.unwrap();
    assert_eq!(store.peek_bucket("b", 3600).await.unwrap().hits, 0);

    // Roles.
    let role = || logged("role_changed");
    assert!(store.grant_role("alice", "admin", role()).await.unwrap());
    assert!(!store.grant_role("nobody", "admin", role()).await.unwrap());
    assert_eq!(store.roles("alice").await.unwrap(), ["admin"]);
    assert!(store.revoke_role("alice", "admin", role()).await.unwrap());
    assert!(!store.revoke_role("alice", "admin", role()).await.unwrap());
}

/// The log half of the audit crate on this backend: registrations land once,
/// appends from many tasks get dense indexes, checkpoints and proofs verify,
/// and a rewritten log is refused a new signature.
async fn log_suite(store: &Store) {
    let signer = NoteSigner::new(
        "test.example/log",
        ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
    )
    .unwrap();
    let trusted = [signer.verifier_key().clone()];
    let log = TransparencyLog::new(store.pool().clone(), signer);

    // Each change the suite made entered the log with it, once; what was
    // refused logged nothing: the repeated and the stolen device, the taken
    // group id and public name, the second archive, the spent invite, the
    // role of no account and the role not held. One commit won (the losing
    // commit's entry went with it).
    let expected = [
        "device_added",
        "device_added",
        "key_packages_uploaded",
        "key_packages_uploaded",
        "group_created",
        "group_created",
        "member_added",
        "group_archived",
        "invite_created",
        "account_created",
        "invite_created",
        "policy_changed",
        "device_added",
        "role_changed",
        "role_changed",
    ];
    let logged = expected.len() as u64;
    let all = logged + 24;
    assert_eq!(log.size().await.unwrap(), logged);
    let recorded: Vec<String> = log
        .entries(0, logged)
        .await
        .unwrap()
        .iter()
        .map(|e| Event::decode(&e.leaf).unwrap().action)
        .collect();
    assert_eq!(recorded, expected);
    let entry = log
        .device_registration("alice", "d-alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.index, 0);
    assert!(
        log.device_registration("bob", "d-alice")
            .await
            .unwrap()
            .is_none()
    );

    let first = log.checkpoint(1).await.unwrap();
    assert_eq!(first.size, logged);
    // Nothing new: the same checkpoint, not a new signature.
    assert_eq!(log.checkpoint(2).await.unwrap(), first);

    // Concurrent appends from many tasks: dense, unique indexes.
    let mut tasks = Vec::new();
    for i in 0..24 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            log.append(Event::new(0, 5, "login").actor(&format!("user{i}")))
                .await
                .unwrap()
        }));
    }
    let mut indexes = BTreeSet::new();
    for task in tasks {
        indexes.insert(task.await.unwrap());
    }
    assert_eq!(indexes, (logged..all).collect::<BTreeSet<u64>>());

    // The new checkpoint verifies, extends the first, and proves entries.
    let second = log.checkpoint(3).await.unwrap();
    let note = SignedNote::parse(&second.note)
        .unwrap()
        .verify(&trusted)
        .unwrap();
    let checkpoint = Checkpoint::from_note_text(note.text()).unwrap();
    assert_eq!(checkpoint.size(), all);
    let proof = log.consistency_proof(logged, all).await.unwrap();
    verify_consistency(
        logged,
        all,
        &proof,
        &first.root_hash,
        checkpoint.root_hash(),
    )
    .unwrap();
    let entries = log.entries(0, all).await.unwrap();
    for entry in &entries {
        assert_eq!(Event::decode(&entry.leaf).unwrap().seq, entry.index);
        let proof = log.inclusion_proof(entry.index, all).await.unwrap();
        verify_inclusion(
            entry.index,
            all,
            &leaf_hash(&entry.leaf),
            &proof,
            checkpoint.root_hash(),
        )
        .unwrap();
    }

    // Someone with the database rewrites an entry. The stored tree still
    // holds the original's hash, so the entry proves against no checkpoint:
    // whoever checks it (a client, an auditor) catches the edit.
    let edited = Event::new(1, 5, "login").encode().unwrap();
    sqlx::query("UPDATE audit_log SET leaf = $1 WHERE idx = 1")
        .bind(&edited)
        .execute(store.pool())
        .await
        .unwrap();
    let proof = log.inclusion_proof(1, all).await.unwrap();
    assert!(verify_inclusion(1, all, &leaf_hash(&edited), &proof, checkpoint.root_hash()).is_err());
    // With the stored tree rebuilt from the rewritten leaves, the tree no
    // longer extends the last checkpoint: a relay refuses to sign over it.
    sqlx::query("DELETE FROM audit_tree")
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log_head SET hashed = 0 WHERE id = 1")
        .execute(store.pool())
        .await
        .unwrap();
    let fresh = TransparencyLog::new(
        store.pool().clone(),
        NoteSigner::new(
            "test.example/log",
            ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
        )
        .unwrap(),
    );
    fresh.append(Event::new(0, 6, "login")).await.unwrap();
    assert!(matches!(
        fresh.checkpoint(4).await,
        Err(LogError::Inconsistent { size }) if size == all
    ));
}

/// Issue 19: signing a checkpoint held the write lock while it waited for a
/// second pooled connection to read entries it had not hashed yet, so with
/// every other connection waiting for that lock, nothing moved until a
/// timeout. With a pool of one connection, that wait can never end: the
/// checkpoint must read through its own transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_needs_no_second_connection() {
    let dir = TempDir::new("one-connection");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    let store = Store::connect(&url).await.unwrap();
    let signer = || {
        NoteSigner::new(
            "test.example/log",
            ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
        )
        .unwrap()
    };
    let log = TransparencyLog::new(store.pool().clone(), signer());
    for i in 0..5 {
        log.append(Event::new(0, 5, "login").actor(&format!("user{i}")))
            .await
            .unwrap();
    }
    let one = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(3))
        .connect(&url)
        .await
        .unwrap();
    // A new log object: nothing hashed yet, so the checkpoint must read.
    let fresh = TransparencyLog::new(one, signer());
    let checkpoint = fresh.checkpoint(1).await.unwrap();
    assert_eq!(checkpoint.size, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_suite_on_sqlite() {
    let dir = TempDir::new("storage");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    storage_suite(Store::connect(&url).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_suite_on_postgres() {
    let Some(url) = fresh_postgres("storage").await else {
        return;
    };
    storage_suite(Store::connect(&url).await.unwrap()).await;
}
