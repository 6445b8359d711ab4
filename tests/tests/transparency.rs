//! Key transparency end to end: the real relay, its real database, real
//! clients. A relay that slips in a device, forks its log or signs with
//! another key is caught by the clients, and the log itself holds no
//! content or secret.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use conclave_client::{ClientError, Event};
use conclave_tests::ByName;
use conclave_tests::{Person, ServerProcess, TempDir, enroll_totp};
use sqlx::Row;

const PASSWORD: &str = "correct horse battery staple";

/// Registers `bob` on a second relay and copies that device, with its key
/// packages, straight into `server`'s database: a device the relay offers
/// but that no registration ever put in its log. Returns the ghost's id.
async fn plant_ghost_device(server: &ServerProcess, user: &str) -> String {
    let elsewhere = ServerProcess::start();
    let _ghost = Person::register(&elsewhere, user, PASSWORD).await;
    let mut source = elsewhere.database().await;
    let device = sqlx::query("SELECT device_id, public_key FROM devices WHERE username = $1")
        .bind(user)
        .fetch_one(&mut source)
        .await
        .unwrap();
    let (device_id, public_key): (String, Vec<u8>) = (device.get(0), device.get(1));
    let packages = sqlx::query(
        "SELECT key_package, last_resort, expires_at FROM key_packages WHERE device_id = $1",
    )
    .bind(&device_id)
    .fetch_all(&mut source)
    .await
    .unwrap();
    assert!(!packages.is_empty());

    let mut target = server.database().await;
    sqlx::query(
        "INSERT INTO devices (device_id, username, public_key, created_at, session_started_at, last_seen_at)
         VALUES ($1, $2, $3, 0, 0, 0)",
    )
    .bind(&device_id)
    .bind(user)
    .bind(public_key)
    .execute(&mut target)
    .await
    .unwrap();
    for package in packages {
        sqlx::query(
            "INSERT INTO key_packages (device_id, key_package, last_resort, expires_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&device_id)
        .bind(package.get::<Vec<u8>, _>(0))
        .bind(package.get::<bool, _>(1))
        .bind(package.get::<i64, _>(2))
        .execute(&mut target)
        .await
        .unwrap();
    }
    device_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_the_log_never_registered_is_refused() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let bob = Person::register(&server, "bob", PASSWORD).await;
    let real_bob = bob.client.device_id().unwrap();
    let ghost = plant_ghost_device(&server, "bob").await;
    let mut alerts = alice.client.events();

    alice.client.create_channel("general").await.unwrap();
    alice.client.invite("general", "bob").await.unwrap();

    // bob's real device joined; the ghost did not.
    let members = alice.client.members("general").await.unwrap();
    let bob_devices = &members.iter().find(|m| m.user == "bob").unwrap().devices;
    assert_eq!(bob_devices, &vec![real_bob.clone()]);
    bob.client.sync().await.unwrap();
    assert_eq!(bob.client.channels().await.unwrap().len(), 1);

    // alice's client raised the alert, and kept it.
    let raised = loop {
        match alerts.recv().await.unwrap() {
            Event::SecurityAlert(alert) => break alert,
            _ => continue,
        }
    };
    assert_eq!(
        (raised.username.as_str(), raised.device_id.as_str()),
        ("bob", ghost.as_str())
    );
    assert!(
        raised.reason.contains("no registration"),
        "{}",
        raised.reason
    );
    let kept = alice.client.security_alerts(true).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].device_id, ghost);

    // Offered alone (bob's real device is already in), the ghost makes the
    // invite fail with the key-transparency error.
    alice.client.create_channel("second").await.unwrap();
    let mut other = server.database().await;
    sqlx::query("UPDATE devices SET revoked_at = 1 WHERE device_id = $1")
        .bind(&real_bob)
        .execute(&mut other)
        .await
        .unwrap();
    let refused = alice.client.invite("second", "bob").await.unwrap_err();
    assert!(
        matches!(&refused, ClientError::KeyTransparency(m) if m.contains(&ghost)),
        "{refused}"
    );
    let members = alice.client.members("second").await.unwrap();
    assert!(members.iter().all(|m| m.user != "bob"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_shows_a_refused_device_prominently() {
    let server = ServerProcess::start();
    let _bob = Person::register(&server, "bob", PASSWORD).await;
    plant_ghost_device(&server, "bob").await;
    let home = TempDir::new("carol-cli");
    let conclave = |args: &[&str], stdin: Option<&str>| {
        conclave_tests::run_conclave(&server, home.path(), args, stdin.unwrap_or(""))
    };
    let registered = conclave(
        &["--password-stdin", "--unprotected-key", "register", "carol"],
        Some(&format!("{PASSWORD}\n{PASSWORD}\n")),
    );
    assert!(registered.status.success(), "{registered:?}");
    assert!(
        conclave(&["channel", "create", "ops"], None)
            .status
            .success()
    );

    let invited = conclave(&["channel", "invite", "ops", "bob"], None);
    let stderr = String::from_utf8_lossy(&invited.stderr);
    assert_eq!(invited.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("SECURITY ALERT: refused device"),
        "{stderr}"
    );

    // Shown once, then listed on demand.
    let again = conclave(&["sync"], None);
    assert!(again.status.success());
    let listed = conclave(&["audit", "alerts"], None);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("refused device"));

    // The user can compare what they verified out of band.
    let shown = conclave(&["audit", "checkpoint"], None);
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(
        shown.contains(&format!("log key: {}", server.log_key())),
        "{shown}"
    );
    assert!(shown.contains("\u{2014} "), "a signed note: {shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forked_log_is_caught_by_the_client() {
    // Registrations from one address would hit the per-IP limit.
    let mut server = ServerProcess::start_with(vec!["--rate-limits".into(), "false".into()]);
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let _bob = Person::register(&server, "bob", PASSWORD).await;
    alice.client.create_channel("general").await.unwrap();
    alice.client.invite("general", "bob").await.unwrap();
    let seen = alice.client.latest_checkpoint().await.unwrap().unwrap();
    let seen_size: i64 = seen.lines().nth(1).unwrap().parse().unwrap();
    assert!(seen_size > 2);

    // The operator rewrites history: cut the log after the first entry (its
    // stored tree too, which the relay then rebuilds), drop the checkpoints
    // that would contradict it, and restart so the relay signs the new tree.
    {
        let mut db = server.database().await;
        for statement in [
            "DELETE FROM audit_log WHERE idx >= 1",
            "DELETE FROM audit_tree",
            "UPDATE audit_log_head SET size = 1, hashed = 0",
            "DELETE FROM audit_checkpoints",
        ] {
            sqlx::query(statement).execute(&mut db).await.unwrap();
        }
    }
    server.restart();
    // Re-grow past what alice saw, differently (each registration enters
    // at least two entries).
    let mut newcomers = Vec::new();
    for i in 0..seen_size / 2 + 1 {
        newcomers.push(Person::register(&server, &format!("user{i}"), PASSWORD).await);
    }
    let refused = alice.client.invite("general", "user0").await.unwrap_err();
    assert!(
        matches!(&refused, ClientError::KeyTransparency(m) if m.contains("fork")),
        "{refused}"
    );
    // alice keeps the checkpoint she trusted.
    assert_eq!(
        alice.client.latest_checkpoint().await.unwrap().unwrap(),
        seen
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkpoints_under_another_key_are_refused() {
    let server = ServerProcess::start();
    let other = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let _bob = Person::register(&server, "bob", PASSWORD).await;
    // Told out of band to trust another log: nothing this relay signs passes.
    let wrong = Person::fresh(&server, "mallory").await;
    wrong.client.pin_log_key(&other.log_key()).await.unwrap();
    assert!(matches!(
        wrong.client.pin_log_key(&server.log_key()).await,
        Err(ClientError::KeyTransparency(_))
    ));
    wrong.client.register("carol", PASSWORD).await.unwrap();
    wrong.client.create_channel("general").await.unwrap();
    let refused = wrong.client.invite("general", "bob").await.unwrap_err();
    assert!(
        matches!(&refused, ClientError::KeyTransparency(m) if m.contains("signature")),
        "{refused}"
    );

    // The right key, pinned by first use, works; sending verifies members too.
    alice.client.create_channel("general").await.unwrap();
    alice.client.invite("general", "bob").await.unwrap();
    alice.client.send("general", "hi").await.unwrap();
    assert_eq!(
        alice.client.log_key().await.unwrap().unwrap(),
        server.log_key()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_log_holds_no_content_or_secret() {
    let server = ServerProcess::start_with(vec!["--record-client-ip".into(), "true".into()]);
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let (mut app, recovery_codes) = enroll_totp(&alice.client, PASSWORD).await;
    let bob = Person::register(&server, "bob", PASSWORD).await;
    let second = Person::login_with_totp(&server, "alice", PASSWORD, &mut app).await;
    let used_code = app.code_at_step(app.last_step());
    alice
        .client
        .create_channel("secret-project-hawk")
        .await
        .unwrap();
    alice
        .client
        .invite("secret-project-hawk", "bob")
        .await
        .unwrap();
    alice
        .client
        .send("secret-project-hawk", "the launch code is 0451")
        .await
        .unwrap();
    bob.client.sync().await.unwrap();
    second.client.sync().await.unwrap();
    server.admin(&["grant", "alice", "auditor"]);

    // Everything an auditor can export.
    let size = alice.client.audit_entries(0, 0).await.unwrap().size;
    let mut exported = Vec::new();
    while (exported.len() as u64) < size {
        let page = alice
            .client
            .audit_entries(exported.len() as u64, size)
            .await
            .unwrap();
        exported.extend(page.entries.into_iter().map(|(_, leaf)| leaf));
    }
    let text = String::from_utf8(exported.concat()).unwrap();
    for action in [
        "device_added",
        "login",
        "group_created",
        "member_added",
        "second_factor_used",
    ] {
        assert!(text.contains(action), "the log records {action}");
    }
    // Addresses enter the leaves only as salted commitments (any device may
    // be shown a registration leaf); the auditor gets them beside the page.
    assert!(text.contains("client-ip sha256:"));
    assert!(!text.contains("127.0.0.1"));
    let page = alice.client.audit_entries(0, size).await.unwrap();
    assert!(!page.addresses.is_empty());
    assert!(page.addresses.iter().all(|(_, a)| a.ip == "127.0.0.1"));
    let secrets = [
        PASSWORD.to_owned(),
        "secret-project-hawk".to_owned(),
        "the launch code is 0451".to_owned(),
        used_code,
        app.secret_base32(),
        recovery_codes[0].clone(),
    ];
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "the log leaks {secret:?}");
    }
    // And no event of the scenario was dropped on the way.
    let server_log = std::fs::read_to_string(server.data.path().join("server.log")).unwrap();
    assert!(!server_log.contains("could not record an audit event"));
}

/// Counts the requests a client makes, by method and path.
#[derive(Clone)]
struct CountingTransport {
    inner: conclave_client::HttpsTransport,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl conclave_client::Transport for CountingTransport {
    fn send(
        &self,
        request: conclave_client::HttpRequest,
    ) -> conclave_client::BoxFuture<
        '_,
        Result<conclave_client::HttpResponse, conclave_client::TransportError>,
    > {
        self.seen
            .lock()
            .unwrap()
            .push(format!("{} {}", request.method, request.path));
        self.inner.send(request)
    }

    fn open_stream(
        &self,
        request: conclave_client::HttpRequest,
    ) -> conclave_client::BoxFuture<
        '_,
        Result<Box<dyn conclave_client::PushStream>, conclave_client::TransportError>,
    > {
        self.inner.open_stream(request)
    }
}

/// Issue 19: joining a channel, a client proved each member's device with
/// a request of its own (a thousand after a 999-device commit). One request
/// now proves the whole member list.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_list_is_proven_in_one_request() {
    let server = ServerProcess::start();
    let eve = Person::register(&server, "eve", PASSWORD).await;
    eve.client.create_channel("crowd").await.unwrap();
    for name in ["bob", "carol", "dave", "frank"] {
        Person::register(&server, name, PASSWORD).await;
        eve.client.invite("crowd", name).await.unwrap();
    }
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let home = TempDir::new("alice-counted");
    let alice = conclave_client::Client::open_with(
        home.path(),
        CountingTransport {
            inner: server.transport(),
            seen: seen.clone(),
        },
        conclave_client::KeyProtection::Unprotected,
    )
    .await
    .unwrap();
    alice.register("alice", PASSWORD).await.unwrap();
    eve.client.invite("crowd", "alice").await.unwrap();
    seen.lock().unwrap().clear();
    // Joining, and before the first send, alice checks every member
    // against the log.
    alice.sync().await.unwrap();
    alice.send("crowd", "hello everyone").await.unwrap();
    let proofs: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.contains("/v1/audit/devices"))
        .cloned()
        .collect();
    assert_eq!(proofs, ["POST /v1/audit/devices"], "{proofs:?}");
}

/// Issue 18, point 5: the log is served as C2SP tlog-tiles to anyone, and
/// Cloudflare's `tlog_tiles` crate (no Conclave code) checks the relay's
/// checkpoint, tiles and proofs: the tree hash recomputed from the tiles,
/// every entry's inclusion and the consistency with an earlier checkpoint.
/// Signature and note parsing are done here by hand, from the C2SP texts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_log_as_tlog_tiles_passes_an_independent_verifier() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use tlog_tiles::{TileHashReader, TileReader};

    let server = ServerProcess::start_with(vec!["--checkpoint-interval".into(), "1s".into()]);
    let _alice = Person::register(&server, "alice", PASSWORD).await;
    let (http, base) = server.https_client();
    let get = move |path: String| {
        let (http, url) = (http.clone(), format!("{base}{path}"));
        async move {
            // No signature, no session: the tiles are public.
            let answer = http.get(url).send().await.unwrap();
            (
                answer.status().as_u16(),
                answer.bytes().await.unwrap().to_vec(),
            )
        }
    };
    let checkpoint_at_least = |size: u64| {
        let get = get.clone();
        async move {
            for _ in 0..300 {
                let (status, body) = get("/log/checkpoint".into()).await;
                if status == 200 {
                    let text = String::from_utf8(body).unwrap();
                    let at: u64 = text.lines().nth(1).unwrap().parse().unwrap();
                    if at >= size {
                        return text;
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("no checkpoint of {size} entries");
        }
    };
    let earlier = checkpoint_at_least(1).await;

    // A busy workspace: 600 more events, appended by the relay's own log
    // code to the relay's database (so there are full tiles at level 0 and
    // a tile at level 1).
    let data = server.data.path().join("data");
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&format!("sqlite://{}", data.join("conclave.db").display()))
        .await
        .unwrap();
    let key = std::fs::read_to_string(server.key_dir().join("log.key")).unwrap();
    let log = conclave_audit::log::TransparencyLog::new(
        pool,
        conclave_audit::NoteSigner::from_private_key(key.trim()).unwrap(),
    );
    let before = log.size().await.unwrap();
    for i in 0..600 {
        log.append(conclave_audit::Event::new(0, 1_700_000_000, "login").actor(&format!("u{i}")))
            .await
            .unwrap();
    }
    let note = checkpoint_at_least(before + 600).await;

    // The note: its text, then `— <name> <base64(key id || signature)>`,
    // checked against the verifier key the host admin prints
    // (`<name>+<key id hex>+<base64(0x01 || public key)>`).
    let verifier = server.log_key();
    // Three fields: the base64 key may hold a '+' itself.
    let parts: Vec<&str> = verifier.splitn(3, '+').collect();
    let (name, key_id) = (parts[0], hex::decode(parts[1]).unwrap());
    let public = STANDARD.decode(parts[2]).unwrap();
    assert_eq!(public[0], 1, "an Ed25519 verifier key");
    let public = ed25519_dalek::VerifyingKey::from_bytes(&public[1..].try_into().unwrap()).unwrap();
    let verify_note = |note: &str| -> String {
        let (text, signatures) = note.split_once("\n\n").unwrap();
        let text = format!("{text}\n");
        let line = signatures
            .lines()
            .find(|l| l.starts_with(&format!("\u{2014} {name} ")))
            .expect("a signature by the log's key");
        let blob = STANDARD.decode(line.rsplit(' ').next().unwrap()).unwrap();
        assert_eq!(blob[..4], key_id[..]);
        let signature = ed25519_dalek::Signature::from_slice(&blob[4..]).unwrap();
        public.verify_strict(text.as_bytes(), &signature).unwrap();
        text
    };
    let text = verify_note(&note);
    let checkpoint = tlog_tiles::Checkpoint::from_bytes(text.as_bytes()).unwrap();
    let old = tlog_tiles::Checkpoint::from_bytes(verify_note(&earlier).as_bytes()).unwrap();
    let size = checkpoint.size();
    assert!(size >= before + 600);

    // Tiles fetched over HTTPS at their C2SP paths (the crate names them as
    // Go's sumdb does, with the height: tile/8/L/N), each once: a tile never
    // changes, and the relay paces reads per address (a proof per entry
    // without a cache would read thousands).
    struct Fetched {
        get: Box<dyn Fn(String) -> (u16, Vec<u8>) + Send + Sync>,
        kept: std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>,
    }
    impl TileReader for Fetched {
        fn height(&self) -> u8 {
            8
        }
        fn read_tiles(
            &self,
            tiles: &[tlog_tiles::Tile],
        ) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
            Ok(tiles
                .iter()
                .map(|tile| {
                    let path = tile.path().replacen("tile/8/", "/log/tile/", 1);
                    let mut kept = self.kept.lock().unwrap();
                    kept.entry(path.clone())
                        .or_insert_with(|| {
                            let (status, body) = (self.get)(path.clone());
                            assert_eq!(status, 200, "{path}");
                            body
                        })
                        .clone()
                })
                .collect())
        }
        fn save_tiles(&self, _: &[tlog_tiles::Tile], _: &[Vec<u8>]) {}
    }
    let runtime = tokio::runtime::Handle::current();
    let fetch = {
        let get = get.clone();
        move |path: String| tokio::task::block_in_place(|| runtime.block_on(get(path)))
    };
    let fetched = Fetched {
        get: Box::new(fetch.clone()),
        kept: std::sync::Mutex::default(),
    };
    let reader = TileHashReader::new(size, *checkpoint.hash(), &fetched);
    let recomputed = tokio::task::block_in_place(|| tlog_tiles::tree_hash(size, &reader)).unwrap();
    assert_eq!(recomputed, *checkpoint.hash());

    // Every entry, from the entry bundles, is in the tree.
    let mut entries: Vec<Vec<u8>> = Vec::new();
    let mut bundle_index = 0u64;
    while (entries.len() as u64) < size {
        let width = (size - entries.len() as u64).min(256);
        let mut path = format!("/log/tile/entries/{bundle_index:03}");
        if width < 256 {
            path.push_str(&format!(".p/{width}"));
        }
        let (status, bundle) = fetch(path.clone());
        assert_eq!(status, 200, "{path}");
        let mut rest = bundle.as_slice();
        while !rest.is_empty() {
            let length = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            entries.push(rest[2..2 + length].to_vec());
            rest = &rest[2 + length..];
        }
        bundle_index += 1;
    }
    assert_eq!(entries.len() as u64, size);
    tokio::task::block_in_place(|| {
        for (index, entry) in entries.iter().enumerate() {
            let index = index as u64;
            let proof = tlog_tiles::prove_record(size, index, &reader).unwrap();
            tlog_tiles::check_record(
                &proof,
                size,
                *checkpoint.hash(),
                index,
                tlog_tiles::record_hash(entry),
            )
            .unwrap_or_else(|e| panic!("entry {index}: {e:?}"));
        }
        let proof = tlog_tiles::prove_tree(size, old.size(), &reader).unwrap();
        tlog_tiles::check_tree(&proof, size, *checkpoint.hash(), old.size(), *old.hash()).unwrap();
    });
    assert!(
        String::from_utf8_lossy(&entries[before as usize + 7]).contains("u7"),
        "the entries are the log's leaves"
    );

    // Nothing past the signed tree, nothing that is not a tile path.
    let past = size / 256 + 1;
    for path in [
        format!("/log/tile/0/{past:03}"),
        format!("/log/tile/entries/{past:03}"),
        "/log/tile/1/000".to_owned(),
        "/log/tile/0/x1/000".to_owned(),
        "/log/tile/0/000.p/0".to_owned(),
    ] {
        assert_eq!(fetch(path.clone()).0, 404, "{path}");
    }
}

/// Issue 18, point 4: a relay that shows alice and bob two different logs
/// (bob's key-transparency answers come from a fork of its database that
/// grew apart, signed with the same log key) passes each one's own checks,
/// and is caught by either of them after one message: members gossip the
/// checkpoint they verified inside their encrypted messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_split_view_is_caught_by_either_member_after_one_message() {
    use conclave_client::AlertKind;
    // Checkpoints every second, so each view is signed soon after it grows.
    let server = ServerProcess::start_with(
        ["--rate-limits", "false", "--checkpoint-interval", "1s"]
            .map(String::from)
            .to_vec(),
    );
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let bob_home = TempDir::new("bob");
    server
        .client(bob_home.path())
        .await
        .register("bob", PASSWORD)
        .await
        .unwrap();
    // The relay keeps a second log for bob, from here on.
    let fork = server.fork().await;
    let _carol = Person::register(&server, "carol", PASSWORD).await;
    let _mallory = Person::register(&fork, "mallory", PASSWORD).await;
    let bob = conclave_client::Client::open_with(
        bob_home.path(),
        conclave_tests::SplitViewTransport::new(server.transport(), fork.transport()),
        conclave_client::KeyProtection::Unprotected,
    )
    .await
    .unwrap();

    // Each checks the other against the log it is shown: both pass.
    alice.client.create_channel("general").await.unwrap();
    alice.client.invite("general", "bob").await.unwrap();
    bob.sync().await.unwrap();
    bob.send("general", "hi alice").await.unwrap();
    alice.client.sync().await.unwrap();
    // Each refreshes the log it is shown, signed with the one log key: carol
    // is in alice's, mallory in bob's.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let seen_by_alice = alice.client.refresh_checkpoint().await.unwrap();
    let seen_by_bob = bob.refresh_checkpoint().await.unwrap();
    assert_ne!(seen_by_alice, seen_by_bob, "two views");
    for client in [&alice.client, &bob] {
        let alerts = client.security_alerts(false).await.unwrap();
        assert!(alerts.is_empty(), "each view passes alone: {alerts:?}");
    }

    // One message each way, and each finds the other's checkpoint is not
    // of its log.
    alice.client.send("general", "hello bob").await.unwrap();
    bob.sync().await.unwrap();
    bob.send("general", "hello alice").await.unwrap();
    alice.client.sync().await.unwrap();
    for (who, client, other) in [("bob", &bob, "alice"), ("alice", &alice.client, "bob")] {
        let alerts = client.security_alerts(false).await.unwrap();
        let split = alerts
            .iter()
            .find(|a| a.kind == AlertKind::SplitView)
            .unwrap_or_else(|| panic!("{who} raised no split-view alert: {alerts:?}"));
        assert_eq!(split.username, other);
        assert!(
            split.reason.contains(other) && split.reason.contains("general"),
            "{}",
            split.reason
        );
    }
}

/// The other half: members who see one log gossip the same checkpoints and
/// raise nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_who_see_one_log_raise_no_split_view_alert() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let bob = Person::register(&server, "bob", PASSWORD).await;
    alice.client.create_channel("general").await.unwrap();
    alice.client.invite("general", "bob").await.unwrap();
    bob.client.sync().await.unwrap();
    // The log grows between their checks (bob checks carol, who
    // registered after alice's last check), so their checkpoints differ in
    // size and a consistency proof settles it.
    let _carol = Person::register(&server, "carol", PASSWORD).await;
    bob.client.create_channel("side").await.unwrap();
    bob.client.invite("side", "carol").await.unwrap();
    bob.client.send("general", "hi").await.unwrap();
    alice.client.send("general", "hello").await.unwrap();
    alice.client.sync().await.unwrap();
    bob.client.sync().await.unwrap();
    assert_ne!(
        alice.client.latest_checkpoint().await.unwrap(),
        bob.client.latest_checkpoint().await.unwrap(),
        "checkpoints of two sizes were gossiped"
    );
    for client in [&alice.client, &bob.client] {
        let alerts = client.security_alerts(false).await.unwrap();
        assert!(alerts.is_empty(), "{alerts:?}");
    }
}

/// Issue 18, point 2: the log key is rotated on the relay's host; a client
/// that pinned the old key follows the statement the old and the new key
/// signed, and goes on checking devices. A key swapped in without such a
/// statement is refused, and the client keeps the key it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotated_log_key_is_followed_and_a_swapped_one_refused() {
    let mut server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let _bob = Person::register(&server, "bob", PASSWORD).await;
    alice.client.create_channel("general").await.unwrap();
    alice.client.invite("general", "bob").await.unwrap();
    let old_key = alice.client.log_key().await.unwrap().unwrap();

    server.kill_hard();
    let said = server.admin(&["rotate-log-key"]);
    let new_key = said
        .lines()
        .find_map(|l| l.strip_prefix("new audit log verifier key: "))
        .expect("the new key is printed")
        .to_owned();
    assert_ne!(new_key, old_key);
    let retired: Vec<String> = std::fs::read_dir(server.key_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("log.key.retired-"))
        .collect();
    assert_eq!(retired.len(), 1, "the old key is kept aside for its owner");
    server.restart();
    assert_eq!(server.log_key(), new_key);
    let _carol = Person::register(&server, "carol", PASSWORD).await;
    alice.client.invite("general", "carol").await.unwrap();
    assert_eq!(alice.client.log_key().await.unwrap().unwrap(), new_key);

    // Someone with the key directory swaps in a key of their own: no
    // statement the pinned key signed introduces it.
    server.kill_hard();
    let swapped = conclave_audit::NoteSigner::new(
        new_key.split('+').next().unwrap(),
        ed25519_dalek::SigningKey::from_bytes(&[42; 32]),
    )
    .unwrap();
    let key_file = server.key_dir().join("log.key");
    std::fs::remove_file(&key_file).unwrap();
    std::fs::write(&key_file, format!("{}\n", swapped.private_key().as_str())).unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    server.restart();
    let _dave = Person::register(&server, "dave", PASSWORD).await;
    let refused = alice.client.invite("general", "dave").await.unwrap_err();
    assert!(
        matches!(&refused, ClientError::KeyTransparency(m) if m.contains("signature")),
        "{refused}"
    );
    assert_eq!(alice.client.log_key().await.unwrap().unwrap(), new_key);
}
