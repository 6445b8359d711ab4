//! Issue 15, point 5: a security event and the change it records commit in
//! one transaction, or the request fails. Each test makes the real relay's
//! audit log refuse every append (a trigger on `audit_log` in its live
//! database, as a full disk or a broken log would), asserts that each
//! change is refused *and did not happen*, then lets the log take entries
//! again and shows the same change happen, logged. Before, the change
//! committed first and its entry was appended afterwards: the request
//! failed with 503 but the change stayed, unlogged.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_client::{ClientError, Credentials};
use conclave_tests::{ByName, Person, RawDevice, ServerProcess, workspace_binary};
use serde_json::json;
use sqlx::{Row, SqliteConnection};

const PASSWORD: &str = "correct horse battery staple";

/// Makes the relay's log refuse every append, in its live database.
async fn break_the_log(db: &mut SqliteConnection) {
    sqlx::query(
        "CREATE TRIGGER no_log BEFORE INSERT ON audit_log
         BEGIN SELECT RAISE(ABORT, 'log disk full'); END",
    )
    .execute(db)
    .await
    .unwrap();
}

/// Lets the log take entries again.
async fn mend_the_log(db: &mut SqliteConnection) {
    sqlx::query("DROP TRIGGER no_log")
        .execute(db)
        .await
        .unwrap();
}

/// One number from the relay's database.
async fn count(db: &mut SqliteConnection, sql: &str) -> i64 {
    sqlx::query(sql).fetch_one(db).await.unwrap().get(0)
}

/// (retention_days, archived, history_sharing) of the relay's only group.
async fn group_settings(db: &mut SqliteConnection) -> (Option<i64>, bool, bool) {
    let row = sqlx::query("SELECT retention_days, archived_at, history_sharing FROM groups")
        .fetch_one(db)
        .await
        .unwrap();
    (
        row.get::<Option<i64>, _>(0),
        row.get::<Option<i64>, _>(1).is_some(),
        row.get::<i64, _>(2) == 1,
    )
}

/// The actions of the log's entries, in order.
async fn logged_actions(db: &mut SqliteConnection) -> Vec<String> {
    sqlx::query("SELECT action FROM audit_log ORDER BY idx")
        .fetch_all(db)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// `conclave-server admin ARGS` on `server`'s data, whatever its outcome.
fn admin_attempt(server: &ServerProcess, args: &[&str]) -> Output {
    Command::new(workspace_binary("conclave-server"))
        .arg("--data-dir")
        .arg(server.data.path().join("data"))
        .arg("admin")
        .args(args)
        .output()
        .expect("run conclave-server admin")
}

/// Asserts `response` is 503 `audit_unavailable`.
fn audit_unavailable(what: &str, status: u16, json: &serde_json::Value) {
    assert_eq!(status, 503, "{what}: {json:?}");
    assert_eq!(json["error"], "audit_unavailable", "{what}: {json:?}");
}

fn client_refused(what: &str, result: Result<impl std::fmt::Debug, ClientError>) {
    match result {
        Err(ClientError::Server { status, code, .. })
            if status == 503 && code == "audit_unavailable" => {}
        other => panic!("{what}: expected 503 audit_unavailable, got {other:?}"),
    }
}

/// The host administrator's changes: each is refused, nothing of it is
/// stored, and the command says why; once the log works, the same change
/// lands with its entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn host_admin_changes_are_refused_whole_when_the_log_refuses() {
    let server = ServerProcess::start();
    Person::register(&server, "alice", PASSWORD).await;
    server.admin(&["grant", "alice", "auditor"]);
    let mut db = server.database().await;
    let size = count(&mut db, "SELECT COUNT(*) FROM audit_log").await;

    break_the_log(&mut db).await;
    let attempts: [&[&str]; 6] = [
        &["grant", "alice", "admin"],
        &["revoke-role", "alice", "auditor"],
        &["invite", "--expires-in", "1h"],
        &["policy", "--retention-days", "30"],
        &["bot", "deploy-bot", "--owner", "alice"],
        &["recover", "alice"],
    ];
    let refusals: Vec<(&[&str], Output)> = attempts
        .into_iter()
        .map(|args| (args, admin_attempt(&server, args)))
        .collect();
    // Nothing of any of them is stored.
    assert_eq!(
        count(
            &mut db,
            "SELECT COUNT(*) FROM account_roles WHERE username = 'alice' AND role = 'admin'"
        )
        .await,
        0,
        "no role granted"
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT COUNT(*) FROM account_roles WHERE username = 'alice' AND role = 'auditor'"
        )
        .await,
        1,
        "no role taken away"
    );
    assert_eq!(
        count(&mut db, "SELECT COUNT(*) FROM invites").await,
        0,
        "no invite, not even the recovery invite"
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT COUNT(*) FROM settings WHERE name = 'retention_days'"
        )
        .await,
        0,
        "no policy"
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT COUNT(*) FROM accounts WHERE username = 'deploy-bot'"
        )
        .await,
        0,
        "no bot"
    );
    assert_eq!(count(&mut db, "SELECT COUNT(*) FROM audit_log").await, size);
    // And each command failed, saying why.
    for (args, refused) in refusals {
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "admin {args:?} succeeded");
        assert!(
            stderr.contains("audit log") && stderr.contains("nothing was changed"),
            "admin {args:?}: {stderr}"
        );
    }

    // The log works again: the same change, and its entry.
    mend_the_log(&mut db).await;
    assert!(
        server
            .admin(&["grant", "alice", "admin"])
            .contains("alice is now admin")
    );
    server.admin(&["invite", "--expires-in", "1h"]);
    assert_eq!(
        count(
            &mut db,
            "SELECT COUNT(*) FROM account_roles WHERE username = 'alice' AND role = 'admin'"
        )
        .await,
        1
    );
    assert_eq!(count(&mut db, "SELECT COUNT(*) FROM invites").await, 1);
    let actions = logged_actions(&mut db).await;
    assert_eq!(
        actions[usize::try_from(size).unwrap()..],
        ["role_changed", "invite_created"]
    );
}

/// Changes made over the API: each answers 503 `audit_unavailable` and
/// changes nothing; once the log works, each lands with its entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_are_refused_whole_when_the_log_refuses() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    server.admin(&["grant", "alice", "admin"]);
    alice.client.create_channel("plans").await.unwrap();
    let raw = RawDevice::from_home(&server, alice.home.path()).await;
    let mut db = server.database().await;
    let group_id: String = sqlx::query("SELECT group_id FROM groups")
        .fetch_one(&mut db)
        .await
        .unwrap()
        .get(0);
    assert_eq!(group_settings(&mut db).await, (None, false, false));
    let packages = "SELECT COUNT(*) FROM key_packages";
    let stocked = count(&mut db, packages).await;
    let size = count(&mut db, "SELECT COUNT(*) FROM audit_log").await;

    break_the_log(&mut db).await;
    for (route, body) in [
        ("retention", json!({ "days": 1 })),
        ("history-sharing", json!({ "allowed": true })),
        ("archive", json!(null)),
    ] {
        let refused = raw
            .signed("POST", &format!("/v1/groups/{group_id}/{route}"), &body)
            .await;
        audit_unavailable(route, refused.status, &refused.json);
    }
    let upload = raw
        .signed(
            "POST",
            "/v1/key-packages",
            &json!({ "key_packages": [raw.key_package("alice", None)] }),
        )
        .await;
    audit_unavailable("key packages", upload.status, &upload.json);
    // A registration: its password's setup (which changes nothing), then
    // the account with the record.
    let (registration, request) =
        conclave_crypto::password::PasswordRegistration::start(PASSWORD.as_bytes()).unwrap();
    let setup = raw
        .unsigned(
            "POST",
            "/v1/accounts/password",
            &json!({ "username": "bob", "request": STANDARD.encode(request) }),
        )
        .await;
    assert_eq!(setup.status, 200, "{:?}", setup.json);
    let response = STANDARD
        .decode(setup.json["response"].as_str().unwrap())
        .unwrap();
    let upload = registration
        .finish(PASSWORD.as_bytes(), &response, "bob")
        .unwrap();
    let registered = raw
        .unsigned(
            "POST",
            "/v1/accounts",
            &json!({ "username": "bob", "password_record": STANDARD.encode(upload) }),
        )
        .await;
    audit_unavailable("registration", registered.status, &registered.json);
    client_refused(
        "invite",
        alice
            .client
            .create_invite(3600, Credentials::password(PASSWORD))
            .await,
    );
    client_refused("new channel", alice.client.create_channel("launch").await);
    // Nothing of any of them is stored.
    assert_eq!(group_settings(&mut db).await, (None, false, false));
    assert_eq!(count(&mut db, packages).await, stocked, "key packages");
    assert_eq!(
        count(
            &mut db,
            "SELECT COUNT(*) FROM accounts WHERE username = 'bob'"
        )
        .await,
        0,
        "no account"
    );
    assert_eq!(count(&mut db, "SELECT COUNT(*) FROM invites").await, 0);
    assert_eq!(count(&mut db, "SELECT COUNT(*) FROM groups").await, 1);
    assert_eq!(count(&mut db, "SELECT COUNT(*) FROM audit_log").await, size);

    // The log works again: the same changes, each with its entry.
    mend_the_log(&mut db).await;
    for (route, body) in [
        ("retention", json!({ "days": 1 })),
        ("history-sharing", json!({ "allowed": true })),
        ("archive", json!(null)),
    ] {
        let done = raw
            .signed("POST", &format!("/v1/groups/{group_id}/{route}"), &body)
            .await;
        assert_eq!(done.status, 200, "{route}: {:?}", done.json);
    }
    assert_eq!(group_settings(&mut db).await, (Some(1), true, true));
    alice
        .client
        .create_invite(3600, Credentials::password(PASSWORD))
        .await
        .unwrap();
    assert_eq!(count(&mut db, "SELECT COUNT(*) FROM invites").await, 1);
    let actions = logged_actions(&mut db).await;
    assert_eq!(
        actions[usize::try_from(size).unwrap()..],
        [
            "policy_changed",
            "policy_changed",
            "group_archived",
            "invite_created"
        ]
    );
}

/// Retention deletes a channel's old ciphertext only with the entry that
/// says so: while the log refuses, the relay's retention task deletes
/// nothing (it used to delete and drop the entry); once the log works, the
/// next run deletes and logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_deletes_nothing_it_cannot_log() {
    let server = ServerProcess::start_with(vec!["--retention-interval".into(), "1s".into()]);
    let alice = Person::register(&server, "alice", PASSWORD).await;
    alice.client.create_channel("short").await.unwrap();
    alice.client.send("short", "from long ago").await.unwrap();
    alice.client.set_retention("short", Some(1)).await.unwrap();
    let mut db = server.database().await;
    let old = "SELECT COUNT(*) FROM messages WHERE kind = 'application'";
    assert_eq!(count(&mut db, old).await, 1);
    let size = count(&mut db, "SELECT COUNT(*) FROM audit_log").await;

    // Two days pass for the message, while the log refuses entries.
    break_the_log(&mut db).await;
    sqlx::query("UPDATE messages SET created_at = $1")
        .bind(conclave_tests::now() as i64 - 2 * 86_400)
        .execute(&mut db)
        .await
        .unwrap();
    // Several retention runs go by.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(count(&mut db, old).await, 1, "deleted without its entry");
    assert_eq!(count(&mut db, "SELECT COUNT(*) FROM audit_log").await, size);

    mend_the_log(&mut db).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(&mut db, old).await > 0 {
        assert!(Instant::now() < deadline, "retention never ran");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let actions = logged_actions(&mut db).await;
    assert_eq!(
        actions[usize::try_from(size).unwrap()..],
        ["retention_deleted"]
    );
}
