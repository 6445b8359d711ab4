//! The auditor's tool against the real relay: `conclave-audit` passes an
//! honest log, and fails, naming what is wrong, after each way someone with
//! the relay's database could tamper with the log: an edited entry, a deleted
//! entry, two swapped entries, a rewritten history (fork) and a forged
//! checkpoint.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::PathBuf;
use std::process::{Command, Output};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_tests::ByName;
use conclave_tests::{Person, ServerProcess, TempDir, workspace_binary};
use serde_json::Value;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

const CHANNEL: &str = "general";

/// Closes a person's client and keeps their home directory.
fn home_of(person: Person) -> TempDir {
    let Person { client, home } = person;
    drop(client);
    home
}

/// The `conclave-audit` binary, built by cargo like the relay.
fn audit_binary() -> PathBuf {
    workspace_binary("conclave-audit")
}

/// A relay whose log holds registrations, logins, a channel, an invite and
/// key package uploads, with a checkpoint signed over all of it.
struct Scene {
    server: ServerProcess,
    /// Home of a device with the auditor role (its client closed, so the
    /// tool can take the home's lock).
    auditor: TempDir,
    /// Home of a device with no role.
    bob: TempDir,
    /// The log's verifier key, from the relay's host.
    log_key: String,
    /// The auditor's saved state.
    state: TempDir,
}

impl Scene {
    async fn new() -> Self {
        let server = ServerProcess::start();
        let auditor = Person::register(&server, "audra", "audra-pass-1123581321").await;
        server.admin(&["grant", "audra", "auditor"]);
        let alice = Person::register(&server, "alice", "alice-pass-2718281828").await;
        let bob = Person::register(&server, "bob", "bob-pass-3141592653").await;
        alice.client.create_channel(CHANNEL).await.expect("create");
        alice.client.invite(CHANNEL, "bob").await.expect("invite");
        alice.client.send(CHANNEL, "hello bob").await.expect("send");
        bob.client.sync().await.expect("sync");
        // The operator hands the key to auditors; the command also signs a
        // checkpoint over everything so far.
        let log_key = server
            .admin(&["log-key"])
            .lines()
            .next()
            .expect("a key line")
            .to_owned();
        drop(alice);
        Self {
            server,
            auditor: home_of(auditor),
            bob: home_of(bob),
            log_key,
            state: TempDir::new("audit-state"),
        }
    }

    /// Runs `conclave-audit` as the device in `home` against this relay.
    fn audit_as(&self, home: &TempDir, args: &[&str]) -> Output {
        Command::new(audit_binary())
            .env_remove("CONCLAVE_SERVER")
            .env_remove("CONCLAVE_HOME")
            .arg("--home")
            .arg(home.path())
            .arg("--server")
            .arg(&self.server.url)
            .arg("--ca-cert")
            .arg(self.server.data.path().join("data").join("tls-cert.pem"))
            .args(args)
            .output()
            .expect("run conclave-audit")
    }

    /// `verify` with the log key and the saved state, as the auditor.
    fn verify(&self) -> Output {
        let state = self.state.path().to_str().expect("utf-8 path");
        self.audit_as(
            &self.auditor,
            &["verify", "--log-key", &self.log_key, "--state", state],
        )
    }

    /// The relay's database, opened beside the running relay.
    async fn database(&self) -> SqlitePool {
        let path = self.server.data.path().join("data").join("conclave.db");
        SqlitePool::connect_with(SqliteConnectOptions::new().filename(path))
            .await
            .expect("open the relay's database")
    }

    /// Rewrites the entry of alice's channel creation in the relay's
    /// database, as someone with the disk would, to say bobby made it.
    async fn edit_alices_channel_entry(&self) {
        let db = self.database().await;
        let index: i64 = sqlx::query_scalar(
            "SELECT idx FROM audit_log WHERE actor = 'alice' AND action = 'group_created'",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        let original = String::from_utf8(leaf(&db, index).await).unwrap();
        let forged = original.replace("\nactor alice\n", "\nactor bobby\n");
        assert_ne!(forged, original);
        set_leaf(&db, index, forged.as_bytes()).await;
        db.close().await;
    }

    /// The number of entries in the log.
    async fn log_size(&self) -> u64 {
        let db = self.database().await;
        let size: i64 = sqlx::query_scalar("SELECT size FROM audit_log_head WHERE id = 1")
            .fetch_one(&db)
            .await
            .unwrap();
        db.close().await;
        size.try_into().unwrap()
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_passes(output: &Output) -> String {
    assert!(
        output.status.success(),
        "conclave-audit failed:\n{}{}",
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

/// Asserts a failure whose one line of explanation contains every one of `words`.
fn assert_fails_with(output: &Output, words: &[&str]) -> String {
    assert!(
        !output.status.success(),
        "conclave-audit passed a tampered log:\n{}",
        stdout(output)
    );
    let error = stderr(output);
    let line = error
        .lines()
        .find(|l| l.starts_with("conclave-audit: "))
        .unwrap_or_else(|| panic!("no conclave-audit: line in {error:?}"));
    eprintln!("as expected: {line}");
    for word in words {
        assert!(line.contains(word), "{word:?} not in {line:?}");
    }
    line.to_owned()
}

fn saved_size(scene: &Scene) -> u64 {
    let note = std::fs::read_to_string(scene.state.path().join("checkpoint")).expect("state");
    note.lines().nth(1).expect("size line").parse().unwrap()
}

async fn leaf(db: &SqlitePool, index: i64) -> Vec<u8> {
    sqlx::query_scalar("SELECT leaf FROM audit_log WHERE idx = ?")
        .bind(index)
        .fetch_one(db)
        .await
        .unwrap()
}

async fn set_leaf(db: &SqlitePool, index: i64, leaf: &[u8]) {
    sqlx::query("UPDATE audit_log SET leaf = ? WHERE idx = ?")
        .bind(leaf)
        .bind(index)
        .execute(db)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_log_verifies_exports_and_proves() {
    let scene = Scene::new().await;
    let first = assert_passes(&scene.verify());
    let size = saved_size(&scene);
    assert!(size >= 10, "the scene logs a dozen events or so: {size}");
    assert!(
        first.contains(&format!("verified {size} entries")),
        "{first}"
    );
    assert!(first.contains("no saved checkpoint"), "{first}");

    // The second run checks the first's state; the log grew in between.
    let _carol = Person::register(&scene.server, "carol", "carol-pass-1414213562").await;
    scene.server.admin(&["log-key"]);
    let second = assert_passes(&scene.verify());
    assert!(
        second.contains(&format!("consistent with the checkpoint of size {size}")),
        "{second}"
    );
    assert!(second.contains("consistency proof verifies"), "{second}");
    assert!(saved_size(&scene) > size);

    // Export: decoded entries, filtered.
    let output = scene.audit_as(
        &scene.auditor,
        &[
            "export",
            "--format",
            "jsonl",
            "--actor",
            "alice",
            "--since",
            "2020-01-01",
            "--log-key",
            &scene.log_key,
        ],
    );
    let lines: Vec<Value> = assert_passes(&output)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(lines.iter().any(|l| l["action"] == "group_created"));
    assert!(lines.iter().all(|l| l["actor"] == "alice"));
    assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
    let output = scene.audit_as(
        &scene.auditor,
        &["export", "--format", "csv", "--since", "last tuesday"],
    );
    assert_fails_with(&output, &["invalid time \"last tuesday\" for --since"]);

    // Prove one entry: the proof verifies against the checkpoint it carries.
    let output = scene.audit_as(&scene.auditor, &["prove", "3", "--log-key", &scene.log_key]);
    let proof: Value = serde_json::from_str(&assert_passes(&output)).expect("JSON");
    assert_eq!(proof["index"], 3);
    assert_eq!(proof["event"]["seq"], 3);
    let output = scene.audit_as(
        &scene.auditor,
        &["prove", "2", "--size", "5", "--log-key", &scene.log_key],
    );
    let proof: Value = serde_json::from_str(&assert_passes(&output)).expect("JSON");
    assert_eq!(proof["size"], 5);
    assert!(proof["consistency"].is_array());

    // Only auditors read the whole log.
    let output = scene.audit_as(&scene.bob, &["verify", "--log-key", &scene.log_key]);
    assert_fails_with(&output, &["403", "auditor role"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_verifies_offline_and_an_edited_bundle_does_not() {
    let scene = Scene::new().await;
    let bundle_dir = TempDir::new("audit-bundle");
    let bundle = bundle_dir.path().join("log.json");
    let bundle_arg = bundle.to_str().unwrap();
    assert_passes(&scene.audit_as(
        &scene.auditor,
        &[
            "export",
            "--bundle",
            bundle_arg,
            "--log-key",
            &scene.log_key,
        ],
    ));

    // Offline: no relay, no device, no flags but the bundle and the key.
    let offline = |args: &[&str]| {
        Command::new(audit_binary())
            .env_remove("CONCLAVE_SERVER")
            .env_remove("CONCLAVE_HOME")
            .env("HOME", bundle_dir.path())
            .args(args)
            .output()
            .expect("run conclave-audit")
    };
    let out = assert_passes(&offline(&[
        "verify",
        "--bundle",
        bundle_arg,
        "--log-key",
        &scene.log_key,
    ]));
    assert!(out.starts_with("verified "), "{out}");
    let unkeyed = offline(&["verify", "--bundle", bundle_arg]);
    assert_passes(&unkeyed);
    assert!(
        stderr(&unkeyed).contains("proves only"),
        "{}",
        stderr(&unkeyed)
    );

    // One entry edited: alice's first event now names someone else.
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    let entries = json["entries"].as_array_mut().unwrap();
    let (index, edited) = entries
        .iter()
        .enumerate()
        .find_map(|(i, e)| {
            let leaf = String::from_utf8(STANDARD.decode(e.as_str()?).ok()?).ok()?;
            leaf.contains("\nactor alice\n")
                .then(|| (i, leaf.replace("\nactor alice\n", "\nactor bobby\n")))
        })
        .expect("an entry by alice");
    entries[index] = Value::String(STANDARD.encode(edited));
    std::fs::write(&bundle, serde_json::to_string(&json).unwrap()).unwrap();
    let output = offline(&[
        "verify",
        "--bundle",
        bundle_arg,
        "--log-key",
        &scene.log_key,
    ]);
    assert_fails_with(
        &output,
        &["do not hash to the checkpoint's signed root", "altered"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_entry_is_caught() {
    let scene = Scene::new().await;
    assert_passes(&scene.verify());
    scene.edit_alices_channel_entry().await;
    assert_fails_with(
        &scene.verify(),
        &["do not hash to the checkpoint's signed root", "altered"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_entry_is_caught() {
    let scene = Scene::new().await;
    assert_passes(&scene.verify());
    let db = scene.database().await;
    // Alice's login, in the middle of the log; the head still counts it.
    let index: i64 = sqlx::query_scalar(
        "SELECT idx FROM audit_log WHERE actor = 'alice' AND action = 'login' LIMIT 1",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    sqlx::query("DELETE FROM audit_log WHERE idx = ?")
        .bind(index)
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    assert_fails_with(&scene.verify(), &[&format!("entry {index} is missing")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapped_entries_are_caught() {
    let scene = Scene::new().await;
    assert_passes(&scene.verify());
    let db = scene.database().await;
    let (first, second) = (3, 6);
    let (a, b) = (leaf(&db, first).await, leaf(&db, second).await);
    set_leaf(&db, first, &b).await;
    set_leaf(&db, second, &a).await;
    db.close().await;
    assert_fails_with(
        &scene.verify(),
        &[&format!("entry {first} records seq {second}"), "reordered"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_history_is_caught_as_a_fork() {
    let mut scene = Scene::new().await;
    assert_passes(&scene.verify());
    let verified = saved_size(&scene);
    let keep = verified / 2;

    // The attacker cuts the log back to `keep` entries, and drops the
    // checkpoints past it (the relay would refuse to sign over a log that
    // contradicts its last checkpoint), with the relay stopped...
    scene.server.kill_hard();
    let db = scene.database().await;
    for (sql, value) in [
        ("DELETE FROM audit_log WHERE idx >= ?", keep),
        (
            "UPDATE audit_log_head SET size = ?, hashed = 0 WHERE id = 1",
            keep,
        ),
        ("DELETE FROM audit_checkpoints WHERE size > ?", keep),
    ] {
        sqlx::query(sql)
            .bind(i64::try_from(value).unwrap())
            .execute(&db)
            .await
            .unwrap();
    }
    // The stored tree goes too: the relay rebuilds it from the cut log (as
    // it catches up a log older than the stored tree).
    sqlx::query("DELETE FROM audit_tree")
        .execute(&db)
        .await
        .unwrap();
    let checkpoints = sqlx::query("SELECT size FROM audit_checkpoints")
        .fetch_all(&db)
        .await
        .unwrap();
    assert!(
        checkpoints
            .iter()
            .all(|r| r.get::<i64, _>(0) <= keep as i64)
    );
    db.close().await;
    // ...which starts again with nothing cached, and the log grows anew,
    // with other events, past the size the auditor verified.
    scene.server.restart();
    let mut newcomers = Vec::new();
    while scene.log_size().await <= verified {
        let name = format!("mallory{}", newcomers.len());
        newcomers.push(Person::register(&scene.server, &name, "mallory-pass-0000000001").await);
        assert!(newcomers.len() < 20, "the log does not grow");
    }
    scene.server.admin(&["log-key"]);

    // The relay's log is internally consistent...
    let fresh = scene.audit_as(&scene.auditor, &["verify", "--log-key", &scene.log_key]);
    assert_passes(&fresh);
    // ...but not with what the auditor saw before.
    assert_fails_with(
        &scene.verify(),
        &["fork", &format!("the first {verified} entries")],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_checkpoint_is_caught_by_its_signature() {
    let scene = Scene::new().await;
    assert_passes(&scene.verify());
    let state = std::fs::read_to_string(scene.state.path().join("checkpoint")).unwrap();
    let db = scene.database().await;
    let row = sqlx::query("SELECT size, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1")
        .fetch_one(&db)
        .await
        .unwrap();
    let (size, note): (i64, String) = (row.get(0), row.get(1));
    let mut lines: Vec<&str> = note.split('\n').collect();
    let other_root = STANDARD.encode([7u8; 32]);
    lines[2] = &other_root;
    let forged = lines.join("\n");
    sqlx::query("UPDATE audit_checkpoints SET note = ? WHERE size = ?")
        .bind(&forged)
        .bind(size)
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    assert_fails_with(&scene.verify(), &["signature", "does not verify"]);
    // Nothing was saved over the good state.
    let saved = std::fs::read_to_string(scene.state.path().join("checkpoint")).unwrap();
    assert_eq!(saved, state);
}

/// Issue 18, point 5: `verify --tiles` reads the log from its public
/// tlog-tiles endpoint, with no device and no sign-in, keeps its state like
/// the signed-in verify, and catches an edited entry the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_tiles_verify_with_no_device_and_catch_an_edit() {
    let scene = Scene::new().await;
    let nobody = TempDir::new("no-device");
    let tiles = |extra: &[&str]| {
        Command::new(audit_binary())
            .env_remove("CONCLAVE_SERVER")
            .env_remove("CONCLAVE_HOME")
            // No home, no device: nothing but the URL, the key and the trust.
            .env("HOME", nobody.path())
            .arg("--ca-cert")
            .arg(scene.server.certificate())
            .arg("verify")
            .arg("--tiles")
            .arg(format!("{}/log", scene.server.url))
            .args(["--log-key", &scene.log_key])
            .args(extra)
            .output()
            .expect("run conclave-audit")
    };
    let state = scene.state.path().to_str().unwrap();
    let first = assert_passes(&tiles(&["--state", state]));
    assert!(
        first.starts_with("verified ") && first.contains("entries against the checkpoint"),
        "{first}"
    );
    assert!(
        nobody.path().read_dir().unwrap().next().is_none(),
        "it wrote nothing at HOME"
    );
    // The signed-in verify and the tiles agree, state for state.
    assert_passes(&scene.verify());

    // Without the key, or without a way to trust the relay: refused.
    let no_key = Command::new(audit_binary())
        .arg("--ca-cert")
        .arg(scene.server.certificate())
        .args(["verify", "--tiles", &format!("{}/log", scene.server.url)])
        .output()
        .unwrap();
    assert!(!no_key.status.success());
    assert!(stderr(&no_key).contains("--log-key"), "{}", stderr(&no_key));

    scene.edit_alices_channel_entry().await;
    assert_fails_with(
        &tiles(&[]),
        &["do not hash to the checkpoint's signed root", "altered"],
    );
}

/// A flood of reads of the public log from one address is answered 429
/// `slow_down` with the seconds to wait, from the relay's memory, while
/// the pace allows; `conclave-audit verify --tiles` run right after it
/// waits as it is told and still reads the whole log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_public_log_reads_is_paced_and_the_verifier_keeps_pace() {
    const BURST: usize = 3;
    let server = ServerProcess::start_with(vec![
        "--public-reads-per-second".into(),
        "1".into(),
        "--public-read-burst".into(),
        BURST.to_string(),
    ]);
    let alice = Person::register(&server, "alice", "alice-pass-2718281828").await;
    alice.client.create_channel(CHANNEL).await.expect("create");
    // Signs a checkpoint over everything so far.
    let log_key = server
        .admin(&["log-key"])
        .lines()
        .next()
        .unwrap()
        .to_owned();

    // 60 reads at once: the burst passes, then one a second at most.
    let flooder = conclave_tests::RawDevice::fresh(&server);
    let flood = (0..60).map(|_| flooder.unsigned("GET", "/log/checkpoint", &Value::Null));
    let passed = conclave_tests::paced_flood(flood, BURST).await;
    assert!(
        passed >= BURST,
        "only {passed} of the burst of {BURST} passed"
    );
    // Signed-in devices are not paced by it.
    alice.client.send(CHANNEL, "still here").await.unwrap();

    // The flood spent this address's burst; the verifier, from the same
    // address, is told to wait, waits, and verifies everything.
    let nobody = TempDir::new("no-device");
    let verified = assert_passes(
        &Command::new(audit_binary())
            .env_remove("CONCLAVE_SERVER")
            .env_remove("CONCLAVE_HOME")
            .env("HOME", nobody.path())
            .arg("--ca-cert")
            .arg(server.certificate())
            .args(["verify", "--tiles", &format!("{}/log", server.url)])
            .args(["--log-key", &log_key])
            .output()
            .expect("run conclave-audit"),
    );
    assert!(verified.starts_with("verified "), "{verified}");
}

/// A `conclave-audit witness` process, killed when dropped.
struct WitnessProcess {
    child: std::process::Child,
    /// `http://ADDR/add-checkpoint`.
    url: String,
    /// Its verifier key, as it printed it.
    key: String,
}

impl WitnessProcess {
    fn start(state: &TempDir, log_key: &str) -> Self {
        Self::start_on(state, log_key, "127.0.0.1:0")
    }

    fn start_on(state: &TempDir, log_key: &str, listen: &str) -> Self {
        use std::io::BufRead;
        let mut child = Command::new(audit_binary())
            .args(["witness", "--listen", listen, "--state"])
            .arg(state.path())
            .args(["--log-key", log_key])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the witness");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut url, mut key) = (None, None);
        while url.is_none() {
            let line = lines
                .next()
                .expect("the witness said where it listens")
                .unwrap();
            if let Some(k) = line.strip_prefix("witness key: ") {
                key = Some(k.to_owned());
            }
            if let Some(u) = line.strip_prefix("witness listening on ") {
                url = Some(u.to_owned());
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            url: url.unwrap(),
            key: key.expect("the witness printed its key"),
        }
    }

    /// POSTs an add-checkpoint body: status, content type, body.
    async fn add(&self, body: String) -> (u16, String, String) {
        let answer = reqwest::Client::new()
            .post(&self.url)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        let content_type = answer
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, content_type, answer.text().await.unwrap())
    }
}

impl Drop for WitnessProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issue 18, point 3 (the witness an auditor runs): `conclave-audit
/// witness` speaks C2SP tlog-witness. It cosigns the relay's checkpoints as
/// the log grows, refuses a fork signed with the stolen log key, and keeps
/// its state and its key across a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_cosigns_the_growing_log_and_refuses_a_fork() {
    use conclave_audit::witness::{AddCheckpoint, CosignerKey};
    use conclave_audit::{Checkpoint, NoteSigner, SignedNote, leaf_hash};

    let server = ServerProcess::start_with(vec!["--checkpoint-interval".into(), "1s".into()]);
    let alice = Person::register(&server, "alice", "alice-pass-2718281828").await;
    let (https, base) = server.https_client();
    let checkpoint_above = |size: u64| {
        let (https, base) = (https.clone(), base.clone());
        async move {
            for _ in 0..300 {
                let note = https
                    .get(format!("{base}/log/checkpoint"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                let at: u64 = note.lines().nth(1).unwrap_or("0").parse().unwrap_or(0);
                if at > size {
                    return (note, at);
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("no checkpoint above {size}");
        }
    };
    let state = TempDir::new("witness-state");
    let witness = WitnessProcess::start(&state, &server.log_key());
    let witness_key = CosignerKey::parse(&witness.key).unwrap();

    // First contact: from size 0, no proof. The answer is a cosignature.
    let (first, first_size) = checkpoint_above(0).await;
    let (status, _, line) = witness.add(format!("old 0\n\n{first}")).await;
    assert_eq!(status, 200, "{line}");
    let cosigned = SignedNote::parse(&format!("{first}{line}")).unwrap();
    assert!(witness_key.verify(&cosigned).unwrap().is_some());
    // Asked again as if new: it says the size it cosigned.
    assert_eq!(
        witness.add(format!("old 0\n\n{first}")).await,
        (409, "text/x.tlog.size".into(), format!("{first_size}\n"))
    );

    // The log grows; with the relay's consistency proof, the witness follows.
    let _bob = Person::register(&server, "bob", "bob-pass-3141592653").await;
    let (second, second_size) = checkpoint_above(first_size).await;
    let proof = alice
        .client
        .audit_consistency_proof(first_size, second_size)
        .await
        .unwrap();
    let grown = AddCheckpoint {
        old_size: first_size,
        proof,
        note: second.clone(),
    };
    let (status, _, line) = witness.add(grown.to_body()).await;
    assert_eq!(status, 200, "{line}");

    // Whoever stole the log key forks the log: signed, but no tree of it.
    let stolen = NoteSigner::from_private_key(
        std::fs::read_to_string(server.key_dir().join("log.key"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let origin = second.lines().next().unwrap();
    let forge = |size: u64, leaf: &[u8]| {
        stolen
            .sign(
                &Checkpoint::new(origin, size, leaf_hash(leaf))
                    .unwrap()
                    .to_note_text(),
            )
            .unwrap()
    };
    let longer = AddCheckpoint {
        old_size: second_size,
        proof: vec![leaf_hash(b"made up"); 3],
        note: forge(second_size + 5, b"forged"),
    };
    assert_eq!(witness.add(longer.to_body()).await.0, 422);
    let same_size = AddCheckpoint {
        old_size: second_size,
        proof: Vec::new(),
        note: forge(second_size, b"other root"),
    };
    assert_eq!(witness.add(same_size.to_body()).await.0, 409);
    // A log it does not follow; this log's name under another key.
    let other = NoteSigner::new(
        "other.example/log",
        ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
    )
    .unwrap();
    let unknown = other
        .sign(
            &Checkpoint::new("other.example/log", 1, leaf_hash(b"x"))
                .unwrap()
                .to_note_text(),
        )
        .unwrap();
    assert_eq!(witness.add(format!("old 0\n\n{unknown}")).await.0, 404);
    let impostor =
        NoteSigner::new(origin, ed25519_dalek::SigningKey::from_bytes(&[8; 32])).unwrap();
    let unsigned = impostor
        .sign(
            &Checkpoint::new(origin, second_size, leaf_hash(b"x"))
                .unwrap()
                .to_note_text(),
        )
        .unwrap();
    assert_eq!(
        witness
            .add(format!("old {second_size}\n\n{unsigned}"))
            .await
            .0,
        403
    );
    assert_eq!(witness.add("nonsense".into()).await.0, 400);

    // Restarted on its state: the same key, and it remembers.
    let key = witness.key.clone();
    drop(witness);
    let again = WitnessProcess::start(&state, &server.log_key());
    assert_eq!(again.key, key);
    assert_eq!(
        again.add(format!("old 0\n\n{first}")).await,
        (409, "text/x.tlog.size".into(), format!("{second_size}\n"))
    );
}

/// A relay whose log key the test made (so a witness follows the log
/// before the relay starts, as an operator hands it over), with a witness on
/// an address the test chose (so one restarted comes back where the relay
/// looks for it), asked after each checkpoint (every second).
struct WitnessedRelay {
    log: conclave_audit::NoteSigner,
    listen: String,
    state: TempDir,
    /// The witness, while it runs.
    witness: Option<WitnessProcess>,
    /// Its verifier key.
    witness_key: String,
    server: ServerProcess,
}

impl WitnessedRelay {
    fn start(extra: &[&str]) -> Self {
        let mut seed = [0u8; 32];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut seed)
            .unwrap();
        let log = conclave_audit::NoteSigner::new(
            "localhost/conclave-audit",
            ed25519_dalek::SigningKey::from_bytes(&seed),
        )
        .unwrap();
        let port = conclave_tests::free_port();
        let listen = format!("127.0.0.1:{port}");
        let state = TempDir::new("witness-state");
        let witness = WitnessProcess::start_on(&state, &log.verifier_key().to_string(), &listen);
        let mut flags: Vec<String> = ["--checkpoint-interval", "1s", "--witness"]
            .map(String::from)
            .to_vec();
        flags.push(format!("{} http://{listen}", witness.key));
        flags.extend(extra.iter().map(|flag| (*flag).to_owned()));
        let server = ServerProcess::start_with_env(
            flags,
            vec![("CONCLAVE_LOG_KEY".into(), log.private_key().to_string())],
        );
        Self {
            witness_key: witness.key.clone(),
            witness: Some(witness),
            log,
            listen,
            state,
            server,
        }
    }

    /// The witness again, on its state and address.
    fn restart_witness(&mut self) {
        self.witness = Some(WitnessProcess::start_on(
            &self.state,
            &self.log.verifier_key().to_string(),
            &self.listen,
        ));
    }
}

/// Issue 18, point 3 (the relay's half): the relay asks its witness to
/// cosign each new checkpoint and hands out every checkpoint with the
/// cosignatures it has. A witness that goes away holds nothing up; back, it
/// is brought up to date with a consistency proof from what it cosigned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_gets_its_checkpoints_cosigned_and_hands_them_out() {
    use conclave_audit::SignedNote;
    use conclave_audit::witness::CosignerKey;

    let mut relay = WitnessedRelay::start(&[]);
    let witness_key = CosignerKey::parse(&relay.witness_key).unwrap();
    let server = &relay.server;
    let (https, base) = server.https_client();
    // The relay's latest checkpoint, once it is at least `size` entries:
    // its size and when the witness cosigned it (`None`: not yet).
    let latest = || {
        let (https, base, key) = (https.clone(), base.clone(), witness_key.clone());
        async move {
            let note = https
                .get(format!("{base}/log/checkpoint"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let parsed = SignedNote::parse(&note).unwrap();
            let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
            (size, key.verify(&parsed).unwrap())
        }
    };
    let cosigned_at_least = move |size: u64| async move {
        for _ in 0..300 {
            let (at, cosigned) = latest().await;
            if at >= size && cosigned.is_some() {
                return at;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("no cosigned checkpoint of {size} entries or more");
    };

    let alice = Person::register(server, "alice", "alice-pass-2718281828").await;
    let first = cosigned_at_least(1).await;
    // Devices get the cosignature with the checkpoint too.
    let for_devices = alice.client.relay_checkpoint().await.unwrap();
    assert!(
        witness_key
            .verify(&SignedNote::parse(&for_devices).unwrap())
            .unwrap()
            .is_some(),
        "{for_devices}"
    );

    // The witness goes away: the relay goes on, its checkpoints uncosigned.
    relay.witness = None;
    let _bob = Person::register(&relay.server, "bob", "bob-pass-3141592653").await;
    let mut grown = latest().await;
    for _ in 0..300 {
        if grown.0 > first {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        grown = latest().await;
    }
    assert!(grown.0 > first, "the log grew and was signed");
    assert_eq!(grown.1, None, "no witness, no cosignature");
    // Back, it is asked again, from the size it cosigned, with a proof.
    relay.restart_witness();
    assert!(cosigned_at_least(grown.0).await >= grown.0);
}

/// Issue 18, point 3 (the clients' half): a client pins the workspace's
/// witness policy with the log key, and trusts a checkpoint only with the
/// quorum of cosignatures, or within the grace after the last that had it.
/// A witness down past the grace blocks new device checks, with an alert
/// that names it; back, checks pass again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_refuse_checkpoints_short_of_the_witness_quorum_after_the_grace() {
    use conclave_client::ClientError;

    let mut relay = WitnessedRelay::start(&["--witness-grace", "3s"]);
    let server = &relay.server;
    let alice = Person::register(server, "alice", "alice-pass-2718281828").await;
    let _bob = Person::register(server, "bob", "bob-pass-3141592653").await;
    // Pinned just now: within the grace, cosigned or not.
    alice.client.create_channel(CHANNEL).await.unwrap();
    alice.client.invite(CHANNEL, "bob").await.unwrap();
    // A checkpoint with the quorum, once the witness has cosigned one.
    let with_quorum = || async {
        for _ in 0..150 {
            if alice.client.refresh_checkpoint().await.is_ok()
                && alice
                    .client
                    .latest_checkpoint()
                    .await
                    .unwrap()
                    .unwrap()
                    .contains("\u{2014} conclave-audit/witness ")
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        panic!("no cosigned checkpoint reached alice");
    };
    with_quorum().await;

    // The witness goes down; past the grace, alice's client checks no new
    // device, and says which witness is missing.
    relay.witness = None;
    let _carol = Person::register(&relay.server, "carol", "carol-pass-1618033988").await;
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let refused = alice.client.invite(CHANNEL, "carol").await.unwrap_err();
    assert!(
        matches!(&refused, ClientError::KeyTransparency(m)
            if m.contains("witness cosignatures") && m.contains("conclave-audit/witness")),
        "{refused}"
    );
    let alerts = alice.client.security_alerts(false).await.unwrap();
    assert!(
        alerts.iter().any(|a| a
            .reason
            .contains("no cosignature from conclave-audit/witness")),
        "{alerts:?}"
    );

    // Back, the relay brings it up to date, and checks pass again.
    relay.restart_witness();
    with_quorum().await;
    alice.client.invite(CHANNEL, "carol").await.unwrap();
}
