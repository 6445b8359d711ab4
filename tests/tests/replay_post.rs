//! A posted message's request nonce is spent in the transaction that
//! appends it (issue 19: one flush to disk per accepted message, not two).
//! The attack: a captured post, replayed once it landed and raced against
//! itself, must append nothing more, on SQLite and on PostgreSQL (where the
//! nonce, the epoch check and the insert are one statement).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_tests::{
    Person, RawDevice, RawResponse, ServerProcess, forged_private_message, fresh_postgres, now,
};
use serde_json::json;

/// Alice's channel, its id and epoch, and her device's key.
async fn channel(server: &ServerProcess, alice: &Person) -> (String, u64, RawDevice) {
    alice.client.create_channel("general").await.unwrap();
    let group_id = alice.client.channels().await.unwrap()[0].group_id.clone();
    let raw = RawDevice::from_home(server, alice.home.path()).await;
    // The relay names the current epoch when asked at the wrong one.
    let probe = post(&raw, &group_id, u64::MAX, 0).await;
    let epoch = match probe.status {
        200 => u64::MAX,
        _ => probe.json["current_epoch"].as_u64().expect("current_epoch"),
    };
    (group_id, epoch, raw)
}

/// Posts a fresh message (distinct bytes for each `salt`), freshly signed.
async fn post(raw: &RawDevice, group_id: &str, epoch: u64, salt: u8) -> RawResponse {
    raw.signed(
        "POST",
        &format!("/v1/groups/{group_id}/messages"),
        &json!({ "message": STANDARD.encode(message(group_id, epoch, salt)) }),
    )
    .await
}

fn message(group_id: &str, epoch: u64, salt: u8) -> Vec<u8> {
    let mut bytes = forged_private_message(&hex::decode(group_id).unwrap(), epoch);
    *bytes.last_mut().unwrap() = salt;
    bytes
}

async fn a_captured_post_appends_once(server: &ServerProcess) {
    let alice = Person::register(server, "alice", "alice-pass-2718281828").await;
    let (group_id, epoch, raw) = channel(server, &alice).await;
    let path = format!("/v1/groups/{group_id}/messages");
    let body =
        serde_json::to_vec(&json!({ "message": STANDARD.encode(message(&group_id, epoch, 1)) }))
            .unwrap();
    let captured = raw.sign("POST", &path, &body, now()).to_pairs().to_vec();

    // The original and its copy at the same moment: one lands.
    let (a, b) = tokio::join!(
        raw.send_with("POST", &path, body.clone(), captured.clone()),
        raw.send_with("POST", &path, body.clone(), captured.clone()),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 401], "{:?} {:?}", a.json, b.json);
    let (landed, refused) = if a.status == 200 { (a, b) } else { (b, a) };
    assert_eq!(
        refused.json["error"], "replayed_request",
        "{:?}",
        refused.json
    );
    assert_ne!(landed.json["duplicate"], true, "{:?}", landed.json);
    let first = landed.json["seq"].as_u64().expect("seq");

    // Later, once more: refused, not answered as a repeat.
    let again = raw.send_with("POST", &path, body, captured).await;
    assert_eq!(again.status, 401, "{:?}", again.json);
    assert_eq!(again.json["error"], "replayed_request");

    // Nothing else was appended: the next message takes the next position.
    let next = post(&raw, &group_id, epoch, 2).await;
    assert_eq!(next.status, 200, "{:?}", next.json);
    assert_eq!(next.json["seq"].as_u64(), Some(first + 1));

    // The same bytes under a fresh signature are a retry, answered with the
    // first position (and spend their own nonce).
    let retry = post(&raw, &group_id, epoch, 1).await;
    assert_eq!(retry.status, 200, "{:?}", retry.json);
    assert_eq!(retry.json["duplicate"], true);
    assert_eq!(retry.json["seq"].as_u64(), Some(first));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_post_appends_once_on_sqlite() {
    a_captured_post_appends_once(&ServerProcess::start()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_post_appends_once_on_postgres() {
    let Some(url) = fresh_postgres("a_captured_post_appends_once").await else {
        return;
    };
    let server = ServerProcess::start_with(vec!["--database-url".into(), url]);
    a_captured_post_appends_once(&server).await;
}
