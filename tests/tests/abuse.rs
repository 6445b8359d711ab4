//! Floods and abuse (issue 15): each test runs an attack against the real
//! relay binary (or the real CLI) and asserts that it is refused with the
//! right status and code, and that nothing changed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_audit::{ClientIpOpening, Event};
use conclave_client::{ClientError, HttpRequest, ServerTrust, Transport};
use conclave_tests::ByName;
use conclave_tests::{Person, RawDevice, ServerProcess, TempDir, enroll_totp, workspace_binary};
use serde_json::{Value, json};
use sqlx::Row;

const PASSWORD: &str = "correct horse battery staple";

fn refused_with(error: ClientError, status: u16, expected: &str) {
    match &error {
        ClientError::Server {
            status: s, code, ..
        } if *s == status && code == expected => {}
        other => panic!("expected {status} {expected}, got {other:?}"),
    }
}

async fn group_of(person: &Person, channel: &str) -> String {
    person
        .client
        .channels()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name == channel)
        .expect("the channel")
        .group_id
}

/// (retention_days, archived, history_sharing) of a group, as the relay
/// stores it.
async fn group_settings(server: &ServerProcess, group_id: &str) -> (Option<i64>, bool, bool) {
    let mut db = server.database().await;
    let row = sqlx::query(
        "SELECT retention_days, archived_at, history_sharing FROM groups WHERE group_id = $1",
    )
    .bind(group_id)
    .fetch_one(&mut db)
    .await
    .unwrap();
    (
        row.get::<Option<i64>, _>(0),
        row.get::<Option<i64>, _>(1).is_some(),
        row.get::<i64, _>(2) == 1,
    )
}

/// Issue 15, point 6: bob created a channel and left it; he still set its
/// retention to a day and archived it. Now only a current member who
/// created the channel or is an admin manages it; an admin who is not a
/// member may archive (logged as such) but not change what members keep.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_creator_who_left_manages_the_channel_no_more() {
    let server = ServerProcess::start();
    let bob = Person::register(&server, "bob", PASSWORD).await;
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let carol = Person::register(&server, "carol", PASSWORD).await;
    server.admin(&["grant", "carol", "admin"]);
    bob.client.create_channel("plans").await.unwrap();
    bob.client.invite("plans", "alice").await.unwrap();
    alice.client.sync().await.unwrap();
    let group_id = group_of(&bob, "plans").await;
    // While he is a member, the creator manages it.
    bob.client.set_history_sharing("plans", true).await.unwrap();

    bob.client.leave("plans").await.unwrap();
    // Alice's next sync commits his departure.
    alice.client.sync().await.unwrap();
    alice.client.send("plans", "after bob").await.unwrap();
    let mut db = server.database().await;
    let bob_in: i64 = sqlx::query(
        "SELECT COUNT(*) FROM memberships m JOIN devices d ON d.device_id = m.device_id
         WHERE m.group_id = $1 AND d.username = 'bob' AND m.leave_seq IS NULL",
    )
    .bind(&group_id)
    .fetch_one(&mut db)
    .await
    .unwrap()
    .get(0);
    assert_eq!(bob_in, 0, "bob's leave was committed");

    let before = group_settings(&server, &group_id).await;
    assert_eq!(before, (None, false, true));
    // His client no longer offers it; he asks the relay by hand.
    let bob_raw = RawDevice::from_home(&server, bob.home.path()).await;
    for (route, body) in [
        ("retention", json!({ "days": 1 })),
        ("archive", json!(null)),
        ("history-sharing", json!({ "allowed": false })),
    ] {
        let refused = bob_raw
            .signed("POST", &format!("/v1/groups/{group_id}/{route}"), &body)
            .await;
        assert_eq!(refused.status, 403, "{route}: {:?}", refused.json);
        assert_eq!(refused.json["error"], "not_channel_manager", "{route}");
    }
    // A member who neither created it nor is an admin: no either.
    refused_with(
        alice
            .client
            .set_retention("plans", Some(1))
            .await
            .unwrap_err(),
        403,
        "not_channel_manager",
    );
    assert_eq!(group_settings(&server, &group_id).await, before);

    // A workspace admin outside the channel: no say in what members keep,
    // but may archive it, and the log says it was an admin from outside.
    let carol_raw = RawDevice::from_home(&server, carol.home.path()).await;
    let retention = carol_raw
        .signed(
            "POST",
            &format!("/v1/groups/{group_id}/retention"),
            &json!({ "days": 1 }),
        )
        .await;
    assert_eq!(retention.status, 403, "{:?}", retention.json);
    assert_eq!(retention.json["error"], "not_channel_manager");
    assert_eq!(group_settings(&server, &group_id).await, before);
    let archived = carol_raw
        .signed(
            "POST",
            &format!("/v1/groups/{group_id}/archive"),
            &json!(null),
        )
        .await;
    assert_eq!(archived.status, 200, "{:?}", archived.json);
    assert_eq!(group_settings(&server, &group_id).await, (None, true, true));
    let leaves: Vec<Vec<u8>> =
        sqlx::query("SELECT leaf FROM audit_log WHERE action = 'group_archived'")
            .fetch_all(&mut db)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    assert_eq!(leaves.len(), 1);
    let event = Event::decode(&leaves[0]).unwrap();
    assert_eq!(event.actor.as_deref(), Some("carol"));
    assert_eq!(event.details["as"], "admin_not_member");
    // Archiving gave her nothing to read: she is in no membership of it.
    let carol_in: i64 = sqlx::query(
        "SELECT COUNT(*) FROM memberships m JOIN devices d ON d.device_id = m.device_id
         WHERE m.group_id = $1 AND d.username = 'carol'",
    )
    .bind(&group_id)
    .fetch_one(&mut db)
    .await
    .unwrap()
    .get(0);
    assert_eq!(carol_in, 0);
}

/// Issue 15, point 7: with `--record-client-ip`, any signed-in device could
/// read another user's address in a device's registration leaf. The leaf
/// now holds a salted commitment; the address goes to auditors only.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn device_proofs_show_no_client_address_and_auditors_open_the_commitment() {
    let server = ServerProcess::start_with(vec!["--record-client-ip".into(), "true".into()]);
    let alice = RawDevice::register(&server, "alice", PASSWORD).await;
    let bob = RawDevice::register(&server, "bob", PASSWORD).await;
    let address = "127.0.0.1";

    let path = format!("/v1/audit/devices/alice/{}", alice.key.device_id());
    let proof = bob.signed("GET", &path, &json!(null)).await;
    assert_eq!(proof.status, 200, "{:?}", proof.json);
    let body = proof.json.to_string();
    assert!(!body.contains(address), "{body}");
    let leaf = STANDARD
        .decode(proof.json["leaf"].as_str().unwrap())
        .unwrap();
    let leaf_text = String::from_utf8(leaf.clone()).unwrap();
    assert!(!leaf_text.contains(address), "{leaf_text}");
    let event = Event::decode(&leaf).unwrap();
    let registration = event.device_registration().unwrap();
    assert_eq!(registration.username, "alice");
    assert_eq!(registration.device_id, alice.key.device_id().to_string());
    let commitment = event.client_ip.clone().unwrap();
    assert!(commitment.starts_with("sha256:"), "{commitment}");
    // Nor does anything else a device may read name it.
    let checkpoint = bob
        .signed("GET", "/v1/audit/checkpoint", &json!(null))
        .await;
    assert!(!format!("{:?}", checkpoint.json).contains(address));
    // Entries are for auditors only.
    let entries = bob
        .signed("GET", "/v1/audit/entries?start=0", &json!(null))
        .await;
    assert_eq!(entries.status, 403);

    // An auditor sees the address, and it opens the leaf's commitment.
    server.admin(&["grant", "alice", "auditor"]);
    let index = proof.json["index"].as_u64().unwrap();
    let page = alice
        .signed(
            "GET",
            &format!("/v1/audit/entries?start={index}&end={}", index + 1),
            &json!(null),
        )
        .await;
    assert_eq!(page.status, 200, "{:?}", page.json);
    let shown = &page.json["entries"][0];
    assert_eq!(shown["index"], index);
    assert_eq!(shown["client_address"]["ip"], address);
    let salt: [u8; 16] = hex::decode(shown["client_address"]["salt"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let opening = ClientIpOpening {
        salt,
        ip: address.to_owned(),
    };
    assert!(opening.opens(&commitment));
    assert!(
        !ClientIpOpening {
            salt,
            ip: "127.0.0.2".to_owned()
        }
        .opens(&commitment)
    );
    // Salts are per entry: two entries from one address commit differently.
    let mut db = server.database().await;
    let commitments: Vec<String> = sqlx::query("SELECT leaf FROM audit_log ORDER BY idx")
        .fetch_all(&mut db)
        .await
        .unwrap()
        .iter()
        .filter_map(|r| Event::decode(&r.get::<Vec<u8>, _>(0)).ok()?.client_ip)
        .collect();
    assert!(commitments.len() >= 4, "{commitments:?}");
    let distinct: std::collections::HashSet<&String> = commitments.iter().collect();
    assert_eq!(distinct.len(), commitments.len());
    // client-core hands the auditor the addresses it checked.
    let auditor = Person::register(&server, "audra", PASSWORD).await;
    server.admin(&["grant", "audra", "auditor"]);
    let read = auditor
        .client
        .audit_entries(index, index + 1)
        .await
        .unwrap();
    assert_eq!(read.addresses.len(), 1);
    assert_eq!(read.addresses[0].0, index);
    assert_eq!(read.addresses[0].1.ip, address);
}

/// How many `key_packages_uploaded` entries the log holds for `device`.
async fn upload_entries(server: &ServerProcess, device: &str) -> i64 {
    let mut db = server.database().await;
    sqlx::query(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'key_packages_uploaded' AND device = $1",
    )
    .bind(device)
    .fetch_one(&mut db)
    .await
    .unwrap()
    .get(0)
}

/// Issue 15, point 8: one key package uploaded 5000 times in 2 s was
/// accepted, an audit entry each. Now duplicates are refused, a device's
/// stock is capped, uploads are rate-limited per device, and claims against
/// one target are rate-limited per claimer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_package_floods_are_refused() {
    let server = ServerProcess::start();
    let alice = RawDevice::register(&server, "alice", PASSWORD).await;
    let device = alice.key.device_id().to_string();
    let upload = |packages: Vec<String>| {
        let alice = &alice;
        async move {
            alice
                .signed(
                    "POST",
                    "/v1/key-packages",
                    &json!({ "key_packages": packages }),
                )
                .await
        }
    };
    let stock = || async {
        alice
            .signed("GET", "/v1/key-packages/stock", &json!(null))
            .await
            .json["one_time"]
            .as_u64()
            .unwrap()
    };
    let first = alice.key_package("alice", None);
    assert_eq!(upload(vec![first.clone()]).await.status, 200);
    assert_eq!(stock().await, 1);

    // The same package again, alone or beside a new one: refused, nothing stored.
    let again = upload(vec![first.clone()]).await;
    assert_eq!(again.status, 409, "{:?}", again.json);
    assert_eq!(again.json["error"], "duplicate_key_package");
    let fresh = alice.key_package("alice", None);
    let mixed = upload(vec![fresh.clone(), first.clone()]).await;
    assert_eq!(mixed.json["error"], "duplicate_key_package");
    let twice = upload(vec![fresh.clone(), fresh.clone()]).await;
    assert_eq!(twice.json["error"], "duplicate_key_package");
    assert_eq!(stock().await, 1);
    assert_eq!(upload_entries(&server, &device).await, 1);

    // The stock holds at most 200 unused packages.
    let batch: Vec<String> = (0..199).map(|_| alice.key_package("alice", None)).collect();
    assert_eq!(upload(batch).await.status, 200);
    assert_eq!(stock().await, 200);
    let over = upload(vec![alice.key_package("alice", None)]).await;
    assert_eq!(over.status, 409, "{:?}", over.json);
    assert_eq!(over.json["error"], "key_package_stock_full");
    assert_eq!(stock().await, 200);
    assert_eq!(upload_entries(&server, &device).await, 2);

    // A flood of uploads is cut off per device, before any is parsed.
    let mut statuses = Vec::new();
    for _ in 0..70 {
        statuses.push(upload(vec![first.clone()]).await.status);
    }
    assert!(
        statuses.iter().all(|s| *s == 409 || *s == 429),
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert_eq!(stock().await, 200);
    assert_eq!(
        upload_entries(&server, &device).await,
        2,
        "no entry per refused upload"
    );

    // Claims against one target: a claimer drains at most 50 an hour.
    let mallory = RawDevice::register(&server, "mallory", PASSWORD).await;
    for n in 0..50 {
        let claimed = mallory
            .signed(
                "POST",
                "/v1/key-packages/claim",
                &json!({ "username": "alice" }),
            )
            .await;
        assert_eq!(claimed.status, 200, "claim {n}: {:?}", claimed.json);
    }
    assert_eq!(stock().await, 150);
    // The next one, sent by hand to read the Retry-After header.
    let body = serde_json::to_vec(&json!({ "username": "alice" })).unwrap();
    let request = HttpRequest::signed(&mallory.key, "POST", "/v1/key-packages/claim", body);
    let (http, base) = server.https_client();
    let mut call = http.post(format!("{base}/v1/key-packages/claim"));
    for (name, value) in &request.headers {
        call = call.header(*name, value);
    }
    let answer = call.body(request.body).send().await.unwrap();
    assert_eq!(answer.status(), 429);
    let retry_after: u64 = answer.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    let json: Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    assert_eq!(json["error"], "rate_limited");
    assert_eq!(stock().await, 150, "the refused claim took nothing");
    // Another target is another budget.
    let bob = RawDevice::register(&server, "bob", PASSWORD).await;
    assert_eq!(
        upload_bob(&bob).await,
        200,
        "bob's own upload is not mallory's flood"
    );
    let claimed = mallory
        .signed(
            "POST",
            "/v1/key-packages/claim",
            &json!({ "username": "bob" }),
        )
        .await;
    assert_eq!(claimed.status, 200, "{:?}", claimed.json);
}

async fn upload_bob(bob: &RawDevice) -> u16 {
    bob.signed(
        "POST",
        "/v1/key-packages",
        &json!({ "key_packages": [bob.key_package("bob", None)] }),
    )
    .await
    .status
}

/// `conclave-server` on `data`, its stdout read until it listens (or
/// exits): the child, its URL and its certificate's fingerprint.
fn start_relay(data: &std::path::Path) -> (std::process::Child, String, String) {
    let mut child = Command::new(workspace_binary("conclave-server"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(data)
        .args(["--open-registration", "true"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut url, mut fingerprint) = (String::new(), String::new());
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(u) = line.strip_prefix("conclave-server listening on ") {
            url = u.trim().to_owned();
        }
        if let Some(fp) = line.strip_prefix("certificate SHA-256 fingerprint: ") {
            fingerprint = fp.trim().to_owned();
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (child, url, fingerprint)
}

/// Runs the relay on `data` where it is expected to refuse to start, and
/// returns how it ended.
fn start_refused(data: &std::path::Path) -> std::process::Output {
    Command::new(workspace_binary("conclave-server"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap()
}

/// Issue 15, point 8: on a data directory that already existed (0755), the
/// database, its WAL and shared memory were created 0644. Every file the
/// relay makes is now 0600, and a key file others can read stops it.
/// Issue 18, point 2: the keys live in a key directory (0700) beside the
/// data directory, so a copied data directory holds no key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_files_are_private_and_open_key_files_refused() {
    let dir = TempDir::new("modes");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();

    let (mut relay, url, fingerprint) = start_relay(&data);
    assert!(!fingerprint.is_empty(), "the relay started");
    // Something to write: an account, through the WAL.
    let transport =
        conclave_client::HttpsTransport::new(&url, ServerTrust::pin(&fingerprint).unwrap())
            .unwrap();
    let post = |path: &'static str, body: serde_json::Value| HttpRequest {
        method: "POST",
        path: path.into(),
        headers: vec![("content-type", "application/json".into())],
        body: serde_json::to_vec(&body).unwrap(),
    };
    let (registration, request) =
        conclave_crypto::password::PasswordRegistration::start(PASSWORD.as_bytes()).unwrap();
    let setup = transport
        .send(post(
            "/v1/accounts/password",
            json!({ "username": "alice", "request": STANDARD.encode(request) }),
        ))
        .await
        .unwrap();
    assert_eq!(setup.status, 200);
    let answer: serde_json::Value = serde_json::from_slice(&setup.body).unwrap();
    let response = STANDARD
        .decode(answer["response"].as_str().unwrap())
        .unwrap();
    let upload = registration
        .finish(PASSWORD.as_bytes(), &response, "alice")
        .unwrap();
    let created = transport
        .send(post(
            "/v1/accounts",
            json!({ "username": "alice", "password_record": STANDARD.encode(upload) }),
        ))
        .await
        .unwrap();
    assert_eq!(created.status, 200);
    // The data directory holds data only; the keys are in the key
    // directory beside it (0700), so a copy or backup of the data
    // directory carries none of them.
    let keys = dir.path().join("data-keys");
    let key_dir_mode = std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777;
    assert_eq!(key_dir_mode, 0o700, "the key directory is {key_dir_mode:o}");
    let files_in = |directory: &std::path::Path| -> Vec<String> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(directory).unwrap() {
            let entry = entry.unwrap();
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            let name = entry.file_name().to_string_lossy().into_owned();
            assert_eq!(mode, 0o600, "{name} is {mode:o}");
            names.push(name);
        }
        names.sort();
        names
    };
    assert_eq!(
        files_in(&data),
        [
            "conclave.db",
            "conclave.db-shm",
            "conclave.db-wal",
            "tls-cert.pem"
        ]
    );
    assert_eq!(files_in(&keys), ["log.key", "server.key", "tls-key.pem"]);
    // Nor does any data file hold a key's bytes under another name.
    let server_key = std::fs::read(keys.join("server.key")).unwrap();
    let log_key = std::fs::read_to_string(keys.join("log.key")).unwrap();
    // `PRIVATE+KEY+<origin>+<key id>+<base64 key>`: the key itself is
    // base64, which may hold '+' too (ending in one, it once came out empty).
    let log_secret = log_key.trim().splitn(5, '+').nth(4).unwrap().to_owned();
    assert!(log_secret.len() > 40, "the log key's secret part");
    let tls_key = std::fs::read_to_string(keys.join("tls-key.pem")).unwrap();
    let tls_secret: String = tls_key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        for (what, secret) in [
            ("server.key", server_key.as_slice()),
            ("log.key", log_secret.as_bytes()),
            ("tls-key.pem", tls_secret.as_bytes()),
        ] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret),
                "{} holds {what}",
                path.display()
            );
        }
    }
    relay.kill().unwrap();
    relay.wait().unwrap();

    for key in ["server.key", "log.key", "tls-key.pem"] {
        let path = keys.join(key);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = start_refused(&data);
        assert!(!refused.status.success(), "started with {key} at 0644");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        let said = stderr
            .lines()
            .find(|l| l.contains("chmod 600"))
            .unwrap_or_else(|| panic!("no chmod hint for {key}: {stderr}"));
        assert!(said.contains(&path.display().to_string()), "{said}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // Fixed, it starts again.
    let (mut relay, _, again) = start_relay(&data);
    assert_eq!(again, fingerprint);
    relay.kill().unwrap();
    relay.wait().unwrap();

    // A data directory laid out as before the key directory (the keys
    // inside it): the relay moves them out at its next start, the same
    // keys, and serves with the same certificate.
    for key in ["server.key", "log.key", "tls-key.pem"] {
        std::fs::rename(keys.join(key), data.join(key)).unwrap();
    }
    std::fs::remove_dir(&keys).unwrap();
    let (mut relay, _, moved) = start_relay(&data);
    assert_eq!(moved, fingerprint, "the same TLS key, moved");
    relay.kill().unwrap();
    relay.wait().unwrap();
    assert_eq!(files_in(&keys), ["log.key", "server.key", "tls-key.pem"]);
    assert_eq!(std::fs::read(keys.join("server.key")).unwrap(), server_key);
    assert!(
        !files_in(&data)
            .iter()
            .any(|name| name.ends_with(".key") || name == "tls-key.pem"),
        "a key stayed in the data directory"
    );

    // The data directory copied to another machine without its keys:
    // refused, and no new key replaces those of the workspace.
    std::fs::rename(&keys, dir.path().join("elsewhere")).unwrap();
    let refused = start_refused(&data);
    assert!(!refused.status.success(), "started without its keys");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("does not exist, but this database already belongs to a workspace")
            && stderr.contains("--key-dir"),
        "{stderr}"
    );
    assert_eq!(files_in(&keys), Vec::<String>::new(), "no new key was made");
}

/// Issue 15, point 8: a non-member who re-posted a ciphertext it had seen
/// was answered 200 `duplicate` with its position. Only the device that
/// first posted it gets that answer now.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_first_poster_gets_a_duplicate_answer() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let bob = Person::register(&server, "bob", PASSWORD).await;
    alice.client.create_channel("general").await.unwrap();
    alice.client.invite("general", "bob").await.unwrap();
    bob.client.sync().await.unwrap();
    let seq = alice.client.send("general", "hello bob").await.unwrap();
    let group_id = group_of(&alice, "general").await;
    let mut db = server.database().await;
    let payload: Vec<u8> =
        sqlx::query("SELECT payload FROM messages WHERE group_id = $1 AND seq = $2")
            .bind(&group_id)
            .bind(seq as i64)
            .fetch_one(&mut db)
            .await
            .unwrap()
            .get(0);
    let count = || async {
        let mut db = server.database().await;
        sqlx::query("SELECT COUNT(*) FROM messages WHERE group_id = $1")
            .bind(&group_id)
            .fetch_one(&mut db)
            .await
            .unwrap()
            .get::<i64, _>(0)
    };
    let before = count().await;
    let path = format!("/v1/groups/{group_id}/messages");
    let body = json!({ "message": STANDARD.encode(&payload) });

    let mallory = RawDevice::register(&server, "mallory", PASSWORD).await;
    let replayed = mallory.signed("POST", &path, &body).await;
    assert_eq!(replayed.status, 403, "{:?}", replayed.json);
    assert_eq!(replayed.json["error"], "forbidden");
    assert!(replayed.json.get("seq").is_none());

    let bob_raw = RawDevice::from_home(&server, bob.home.path()).await;
    let by_bob = bob_raw.signed("POST", &path, &body).await;
    assert_eq!(by_bob.status, 409, "{:?}", by_bob.json);
    assert_eq!(by_bob.json["error"], "already_exists");

    // The relay reads a post's admission (the group, whether these bytes
    // came before) with the signing device's row, before the signature is
    // checked: a request that claims to be alice's device, signed by
    // another key, learns nothing from it: no position, no "duplicate", not
    // even whether the group exists.
    let alice_raw = RawDevice::from_home(&server, alice.home.path()).await;
    let bytes = serde_json::to_vec(&body).unwrap();
    let as_alice = |path: &str| {
        let mut headers = mallory.sign("POST", path, &bytes, conclave_tests::now());
        headers.device_id = alice_raw.key.device_id();
        headers.to_pairs().to_vec()
    };
    let forged = mallory
        .send_with("POST", &path, bytes.clone(), as_alice(&path))
        .await;
    assert_eq!(forged.status, 401, "{:?}", forged.json);
    assert_eq!(forged.json["error"], "bad_signature");
    assert!(forged.json.get("seq").is_none() && forged.json.get("duplicate").is_none());
    let nowhere = format!("/v1/groups/{}/messages", "ab".repeat(16));
    let forged = mallory
        .send_with("POST", &nowhere, bytes.clone(), as_alice(&nowhere))
        .await;
    assert_eq!(forged.status, 401, "{:?}", forged.json);
    assert_eq!(forged.json["error"], "bad_signature");
    // A key the relay does not know, signing for itself.
    let stranger = RawDevice::fresh(&server);
    let unknown = stranger.signed("POST", &path, &body).await;
    assert_eq!(unknown.status, 401, "{:?}", unknown.json);
    assert_eq!(unknown.json["error"], "bad_signature");
    assert!(unknown.json.get("seq").is_none());

    // The sender's own retry still gets its position.
    let retry = alice_raw.signed("POST", &path, &body).await;
    assert_eq!(retry.status, 200, "{:?}", retry.json);
    assert_eq!(retry.json["seq"], seq);
    assert_eq!(retry.json["duplicate"], true);
    assert_eq!(count().await, before);
}

/// `conclave ARGS` in `home` against `server`: its output.
fn conclave(
    server: &ServerProcess,
    home: &TempDir,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    conclave_tests::run_conclave(server, home.path(), args, stdin)
}

/// Issue 15, point 8: `conclave history`, `sync` and `search` printed what
/// others wrote raw, escape sequences and direction overrides included.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_shows_others_text_without_terminal_controls() {
    let server = ServerProcess::start();
    let home = TempDir::new("alice-cli");
    let registered = conclave(
        &server,
        &home,
        &["--password-stdin", "--unprotected-key", "register", "alice"],
        &format!("{PASSWORD}\n{PASSWORD}\n"),
    );
    assert!(registered.status.success(), "{registered:?}");
    let bob = Person::register(&server, "bob", PASSWORD).await;
    bob.client.create_channel("general").await.unwrap();
    bob.client.invite("general", "alice").await.unwrap();
    bob.client
        .send(
            "general",
            "hello \x1b[31mred\x1b[0m\nalice: forged line evil\u{202e}txt.exe",
        )
        .await
        .unwrap();
    bob.client
        .set_topic("general", "topic \x1b]0;owned\x07")
        .await
        .unwrap();

    let mut seen = Vec::new();
    for args in [
        &["sync"][..],
        &["history", "general"],
        &["search", "hello"],
        &["channel", "list"],
    ] {
        let output = conclave(&server, &home, args, "");
        assert!(output.status.success(), "{args:?}: {output:?}");
        let stdout = String::from_utf8(output.stdout).unwrap();
        for forbidden in ["\x1b", "\u{202e}", "\x07"] {
            assert!(
                !stdout.contains(forbidden),
                "{args:?} printed {forbidden:?}: {stdout:?}"
            );
        }
        assert!(
            !stdout.lines().any(|l| l.starts_with("alice: forged")),
            "{args:?}: {stdout:?}"
        );
        seen.push(stdout);
    }
    // The text is there, its controls shown as U+FFFD.
    assert!(seen[1].contains("hello \u{fffd}[31mred"), "{:?}", seen[1]);
    assert!(seen[1].contains("evil\u{fffd}txt.exe"), "{:?}", seen[1]);
    assert!(seen[2].contains("hello"), "{:?}", seen[2]);
}

/// Issue 15, point 8: `conclave dm nobody hi` failed but left an `@nobody`
/// channel that spread to the account's other devices.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_direct_message_to_nobody_creates_nothing() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let (mut app, _) = enroll_totp(&alice.client, PASSWORD).await;
    let laptop = Person::login_with_totp(&server, "alice", PASSWORD, &mut app).await;
    alice.client.sync().await.unwrap();
    laptop.client.sync().await.unwrap();
    let names = |channels: Vec<conclave_client::ChannelInfo>| -> Vec<String> {
        channels.into_iter().map(|c| c.name).collect()
    };
    let before = names(alice.client.channels().await.unwrap());
    let laptop_before = names(laptop.client.channels().await.unwrap());
    let groups = || async {
        let mut db = server.database().await;
        sqlx::query("SELECT COUNT(*) FROM groups")
            .fetch_one(&mut db)
            .await
            .unwrap()
            .get::<i64, _>(0)
    };
    let groups_before = groups().await;

    let failed = alice.client.direct(&["nobody"]).await.unwrap_err();
    assert!(
        matches!(&failed, ClientError::NoSuchUser(name) if name == "nobody"),
        "{failed:?}"
    );
    assert!(
        failed.to_string().contains("no user named \"nobody\""),
        "{failed}"
    );
    // With someone real in the list, still nothing.
    let _bob = Person::register(&server, "bob", PASSWORD).await;
    let failed = alice.client.direct(&["bob", "nobody"]).await.unwrap_err();
    assert!(matches!(failed, ClientError::NoSuchUser(_)), "{failed:?}");

    alice.client.sync().await.unwrap();
    laptop.client.sync().await.unwrap();
    assert_eq!(names(alice.client.channels().await.unwrap()), before);
    assert_eq!(
        names(laptop.client.channels().await.unwrap()),
        laptop_before
    );
    assert_eq!(
        groups().await,
        groups_before,
        "nothing created on the relay"
    );

    // A real one works as before.
    let channel = alice.client.direct(&["bob"]).await.unwrap();
    assert_eq!(channel.name(), "@bob");
}

/// The relay's resident memory, in KiB.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Where bob's device's cursor stands in `group_id`.
async fn acked_seq(server: &ServerProcess, group_id: &str) -> i64 {
    let mut db = server.database().await;
    sqlx::query(
        "SELECT m.acked_seq FROM memberships m JOIN devices d ON d.device_id = m.device_id
         WHERE m.group_id = $1 AND d.username = 'bob'",
    )
    .bind(group_id)
    .fetch_one(&mut db)
    .await
    .unwrap()
    .get(0)
}

/// An acknowledgement frame naming `group_id` at `seq`, `times` times over.
fn ack_frame(group_id: &str, seq: u64, times: usize) -> String {
    let acks: Vec<Value> = (0..times)
        .map(|_| json!({ "group_id": group_id, "seq": seq }))
        .collect();
    json!({ "acks": acks }).to_string()
}

/// Issue 19: a stolen device key floods its push stream with
/// acknowledgements. A frame over 64 KiB closes the stream and moves no
/// cursor (before, frames up to 64 MiB were parsed whole); frames that name
/// one group a thousand times each, by the hundred, leave the relay's
/// memory where it was and its cursor where the last one said.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledgement_floods_on_a_stream_are_bounded() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let bob = Person::register(&server, "bob", PASSWORD).await;
    let channel = alice.client.create_channel("flood").await.unwrap();
    channel.invite("bob").await.unwrap();
    let group_id = channel.info().await.unwrap().group_id;
    for text in ["one", "two", "three"] {
        alice.client.send("flood", text).await.unwrap();
    }

    let bob_raw = RawDevice::from_home(&server, bob.home.path()).await;
    let mut stream = bob_raw.open_stream().await;
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        let frame = tokio::time::timeout(Duration::from_secs(10), stream.next_frame())
            .await
            .expect("the stream delivers the three messages")
            .expect("the stream is open")
            .unwrap();
        let frame: Value = serde_json::from_str(&frame).unwrap();
        if frame["kind"] == "application" && frame["group_id"] == group_id.as_str() {
            seqs.push(frame["seq"].as_u64().unwrap());
        }
    }
    let before = acked_seq(&server, &group_id).await;
    assert!(before < i64::try_from(seqs[0]).unwrap());

    // One frame over the limit: refused whole, the stream closed.
    let oversized = ack_frame(&group_id, seqs[2], 1400);
    assert!(oversized.len() > 64 * 1024);
    // The relay may close before it has read the whole frame.
    let _ = stream.send_frame(oversized).await;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.next_frame().await {
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the stream stayed open after a 70 KB frame");
    // Past the writer's next flush: the refused frame moved nothing.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(acked_seq(&server, &group_id).await, before);

    // Frames within the limit, by the hundred, each naming one group a
    // thousand times over.
    let pid = server.pid().expect("the relay runs");
    let resident_before = resident_kib(pid);
    let mut stream = bob_raw.open_stream().await;
    let frame = ack_frame(&group_id, seqs[0], 1000);
    assert!(frame.len() < 64 * 1024);
    for _ in 0..500 {
        stream.send_frame(frame.clone()).await.unwrap();
    }
    stream
        .send_frame(ack_frame(&group_id, seqs[1], 1))
        .await
        .unwrap();
    let resident_after = resident_kib(pid);
    assert!(
        resident_after < resident_before + 64 * 1024,
        "the relay grew from {resident_before} KiB to {resident_after} KiB"
    );
    // The last word counts, once the writer flushes.
    let expected = i64::try_from(seqs[1]).unwrap();
    let mut cursor = acked_seq(&server, &group_id).await;
    for _ in 0..50 {
        if cursor == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        cursor = acked_seq(&server, &group_id).await;
    }
    assert_eq!(
        cursor, expected,
        "the cursor stands at the last acknowledgement"
    );

    // Over HTTP, one request names at most a page of acknowledgements:
    // 500 made-up groups beside the real one are refused whole.
    let acks = |made_up: usize, seq: u64| {
        let mut acks: Vec<Value> = (0..made_up)
            .map(|i| json!({ "group_id": format!("made-up-{i}"), "seq": seq }))
            .collect();
        acks.push(json!({ "group_id": group_id, "seq": seq }));
        json!({ "acks": acks })
    };
    let refused = bob_raw
        .signed("POST", "/v1/messages/ack", &acks(500, seqs[2]))
        .await;
    assert_eq!(refused.status, 400, "{:?}", refused.json);
    assert_eq!(refused.json["error"], "bad_request");
    assert!(
        refused.json["message"]
            .as_str()
            .unwrap()
            .contains("at most 500 acknowledgements"),
        "{:?}",
        refused.json
    );
    assert_eq!(
        acked_seq(&server, &group_id).await,
        expected,
        "nothing moved"
    );
    // A page's worth passes, made-up groups and all, and moves the real one.
    let taken = bob_raw
        .signed("POST", "/v1/messages/ack", &acks(499, seqs[2]))
        .await;
    assert_eq!(taken.status, 200, "{:?}", taken.json);
    assert_eq!(
        acked_seq(&server, &group_id).await,
        i64::try_from(seqs[2]).unwrap()
    );
}

/// A stolen device key flooding the relay with signed requests (each one
/// would spend a nonce, a write on the relay's one writer) meets the
/// device's pace after its burst: 429 `slow_down`, answered before the
/// nonce is stored. Another device is not held back by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_device_keys_flood_is_paced_before_it_spends_nonces() {
    const BURST: usize = 40;
    const FLOOD: usize = 200;
    let server = ServerProcess::start_with(vec![
        "--device-requests-per-second".into(),
        "1".into(),
        "--device-request-burst".into(),
        BURST.to_string(),
    ]);
    let thief = RawDevice::register(&server, "alice", PASSWORD).await;
    let device_id = thief.key.device_id().to_string();
    let mut db = server.database().await;
    let before = nonces_of(&mut db, &device_id).await;

    // What registering left of the burst passes, then one a second at most.
    let flood = (0..FLOOD).map(|_| thief.signed("GET", "/v1/account", &Value::Null));
    let passed = conclave_tests::paced_flood(flood, BURST).await;
    assert!(passed >= 1, "none of the burst was left after registering");
    assert_eq!(
        nonces_of(&mut db, &device_id).await - before,
        passed,
        "a refused request stored no nonce"
    );

    // Bob's device has a pace of its own.
    let bob = RawDevice::register(&server, "bob", PASSWORD).await;
    let answer = bob.signed("GET", "/v1/account", &Value::Null).await;
    assert_eq!(answer.status, 200, "{:?}", answer.json);
}

/// The pace that holds back a stolen key holds back an honest device that
/// sends in bursts too: client-core waits as the relay's 429 `slow_down`
/// asks and sends again, so nothing the person sent is lost, doubled or
/// reordered. (A 429 `rate_limited`, which counts password and second-factor
/// attempts, is never repeated on its own: `accounts.rs`
/// `brute_force_is_throttled`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_device_over_its_pace_waits_and_loses_nothing() {
    const MESSAGES: usize = 8;
    let port = conclave_tests::free_port();
    let server = ServerProcess::start_with(vec![
        "--device-requests-per-second".into(),
        "4".into(),
        "--device-request-burst".into(),
        "8".into(),
        "--metrics-listen".into(),
        format!("127.0.0.1:{port}"),
    ]);
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let bob = Person::register(&server, "bob", PASSWORD).await;
    alice.client.create_channel("launch").await.unwrap();
    alice.client.invite("launch", "bob").await.unwrap();
    let mut sent = Vec::new();
    for i in 0..MESSAGES {
        let text = format!("step {i}");
        let seq = alice.client.send("launch", &text).await.unwrap();
        sent.push((seq, text));
    }
    assert!(
        sent.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "positions in order: {sent:?}"
    );
    let refused = rate_limited_count(port).await;
    assert!(
        refused >= 1.0,
        "the pace refused nothing, so nothing here waited"
    );

    bob.client.sync().await.unwrap();
    let received: Vec<String> = bob
        .client
        .history("launch")
        .await
        .unwrap()
        .into_iter()
        .filter(|entry| entry.sender == "alice" && entry.text.starts_with("step "))
        .map(|entry| entry.text)
        .collect();
    let expected: Vec<String> = sent.into_iter().map(|(_, text)| text).collect();
    assert_eq!(received, expected, "every message once, in order");
}

/// The relay's count of requests it refused with 429, from its metrics.
async fn rate_limited_count(metrics_port: u16) -> f64 {
    // reqwest builds on rustls with no provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    conclave_tests::metric(&metrics, "conclave_rate_limited_requests_total")
}

/// The nonces the relay keeps for `device_id`.
async fn nonces_of(db: &mut sqlx::SqliteConnection, device_id: &str) -> usize {
    let count: i64 = sqlx::query("SELECT COUNT(*) FROM request_nonces WHERE device_id = ?")
        .bind(device_id)
        .fetch_one(db)
        .await
        .unwrap()
        .get(0);
    usize::try_from(count).unwrap()
}
