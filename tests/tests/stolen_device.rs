//! A stolen laptop and a flood of guesses, played as an attacker would
//! against the real relay binary: each attack must fail with the right
//! error and change nothing.
//!
//! - a device key alone cannot change who signs in (step-up for every change);
//! - a thief who also phished the password and a code is undone by the
//!   owner's recovery code, and every change they made was announced;
//! - the host administrator can lock an account and hand it back;
//! - parallel guesses are counted before they are checked, and a flood of
//!   them locks out none of the owner's known devices;
//! - a login flood gets 503 with Retry-After, never a 500, and every failure
//!   it caused is in the audit log.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_client::{AlertKind, Credentials, SecondFactor, SoftAuthenticator};
use conclave_tests::ByName;
use conclave_tests::{Person, RawDevice, RawResponse, ServerProcess, enroll_totp, refused_with};
use serde_json::{Value, json};
use sqlx::Row;

const ALICE_PASSWORD: &str = "alice-pass-2718281828";
const BOB_PASSWORD: &str = "bob-pass-3141592653";

fn answered(response: &RawResponse, status: u16, code: &str, what: &str) {
    assert_eq!(
        (response.status, response.json["error"].as_str()),
        (status, Some(code)),
        "{what}: {:?}",
        response.json
    );
}

/// The account as the relay reports it, compared before and after an attack.
async fn account_state(person: &Person) -> (Value, Vec<(String, bool)>) {
    let status = person.client.account().await.unwrap();
    let devices = person
        .client
        .devices()
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.device_id, d.revoked_at.is_none()))
        .collect();
    (
        json!({
            "totp": status.totp,
            "webauthn": status.webauthn.len(),
            "passwordless": status.passwordless,
            "recovery_codes_left": status.recovery_codes_left,
        }),
        devices,
    )
}

/// A proof made with a passkey alone (a passwordless account's).
fn passkey_alone(key: &mut SoftAuthenticator) -> Credentials<'_> {
    Credentials {
        password: None,
        second_factor: Some(SecondFactor::Webauthn(key)),
    }
}

/// Alice with TOTP (and so recovery codes) on a phone and a laptop.
async fn alice_with_two_devices(
    server: &ServerProcess,
) -> (Person, Person, conclave_tests::TotpApp, Vec<String>) {
    let phone = Person::register(server, "alice", ALICE_PASSWORD).await;
    let (mut app, codes) = enroll_totp(&phone.client, ALICE_PASSWORD).await;
    let laptop = Person::login_with_totp(server, "alice", ALICE_PASSWORD, &mut app).await;
    phone.client.sync().await.unwrap();
    // The phone's first look at the account's changes only takes note.
    phone.client.security_alerts(true).await.unwrap();
    (phone, laptop, app, codes)
}

/// The device key of a stolen laptop, without the password or a factor,
/// can change nothing about who signs in: every route asks for a fresh
/// proof, and a passkey registration cannot be started or finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stolen_device_key_alone_cannot_take_the_account() {
    let server = ServerProcess::start();
    let (phone, laptop, _app, _codes) = alice_with_two_devices(&server).await;
    server.admin(&["grant", "alice", "admin"]);
    let before = account_state(&phone).await;
    let thief = RawDevice::from_home(&server, laptop.home.path()).await;
    let phone_id = phone.client.device_id().unwrap();
    let attacks: [(&'static str, String, Value); 7] = [
        ("POST", "/v1/account/webauthn/register".into(), json!(null)),
        ("POST", "/v1/account/webauthn/register".into(), json!({})),
        ("POST", "/v1/account/totp".into(), json!(null)),
        ("DELETE", "/v1/account/totp".into(), json!({})),
        ("POST", "/v1/account/recovery-codes".into(), json!(null)),
        (
            "POST",
            format!("/v1/devices/{phone_id}/revoke"),
            json!(null),
        ),
        (
            "POST",
            "/v1/admin/invites".into(),
            json!({ "expires_in_secs": 3600 }),
        ),
    ];
    for (method, path, body) in &attacks {
        let response = thief.signed(method, path, body).await;
        answered(
            &response,
            401,
            "step_up_required",
            &format!("{method} {path}"),
        );
    }
    // A passkey registration that was never started (or started by another
    // device) cannot be finished.
    let finish = thief
        .signed(
            "POST",
            "/v1/account/webauthn/register/finish",
            &json!({ "challenge_id": "00", "credential": {
                "id": "AA", "rawId": "AA", "type": "public-key",
                "response": { "attestationObject": "AA", "clientDataJSON": "AA" }
            }, "name": "thief", "passwordless": true }),
        )
        .await;
    answered(
        &finish,
        401,
        "second_factor_invalid",
        "finishing a registration nobody started",
    );
    // A recovery needs the password and a recovery code.
    let recover = thief
        .signed("POST", "/v1/account/recover", &json!({}))
        .await;
    answered(&recover, 400, "bad_request", "recover without a proof");
    // The password change needs the current password.
    let password = thief
        .signed(
            "POST",
            "/v1/account/password",
            &json!({ "new_password_record": "AAAA" }),
        )
        .await;
    answered(&password, 400, "bad_request", "password change");
    // A guessed password is a failure, counted against this device only.
    let guess = thief
        .signed(
            "DELETE",
            "/v1/account/totp",
            &json!({
                "opaque": thief.password_proof("alice", "alice-pass-0000000000").await.unwrap(),
                "second_factor": { "type": "totp", "code": "123456" },
            }),
        )
        .await;
    answered(&guess, 401, "bad_credentials", "a guessed password");
    // The right password without the second factor is not enough either.
    let half = thief
        .signed(
            "POST",
            "/v1/account/webauthn/register",
            &json!({ "opaque": thief.password_proof("alice", ALICE_PASSWORD).await.unwrap() }),
        )
        .await;
    answered(&half, 401, "second_factor_required", "password alone");

    assert_eq!(
        account_state(&phone).await,
        before,
        "the attack changed the account"
    );
    phone.client.sync().await.unwrap();
    assert!(
        phone.client.security_alerts(true).await.unwrap().is_empty(),
        "nothing changed, so nothing is announced"
    );
    // A new password's setup evaluates the account's OPRF for whatever is
    // sent: to a stolen key it is a guessing oracle, so it spends the
    // device's password budget like a guess, and the flood meets 429.
    let mut answers = Vec::new();
    for _ in 0..14 {
        let setup = thief
            .signed(
                "POST",
                "/v1/account/password/setup",
                &json!({ "request": "AAAA" }),
            )
            .await;
        answers.push((setup.status, setup.json["error"].clone()));
    }
    assert!(
        answers[..10]
            .iter()
            .all(|(status, code)| *status == 400 && code == "bad_request"),
        "{answers:?}"
    );
    assert!(
        answers[10..]
            .iter()
            .any(|(status, code)| *status == 429 && code == "rate_limited"),
        "{answers:?}"
    );
}

/// The takeover, with a thief who also phished the password and one
/// TOTP code: they add a passkey, go passwordless and revoke the phone is
/// refused. The owner is told, and her recovery code undoes all of it: the
/// thief's device is revoked, the passkey gone, and it reads nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_owner_takes_the_account_back_with_a_recovery_code() {
    let server = ServerProcess::start();
    let (phone, laptop, mut app, codes) = alice_with_two_devices(&server).await;
    let bob = Person::register(&server, "bob", BOB_PASSWORD).await;
    phone.client.create_channel("plans").await.unwrap();
    phone.client.invite("plans", "bob").await.unwrap();
    laptop.client.sync().await.unwrap();
    bob.client.sync().await.unwrap();

    // The thief holds the laptop, the password and a fresh code.
    let mut thief_key = SoftAuthenticator::new().unwrap();
    let code = app.fresh_code().await;
    laptop
        .client
        .enroll_passkey(
            &mut thief_key,
            "thief",
            true,
            Credentials::with(ALICE_PASSWORD, SecondFactor::Totp(&code)),
        )
        .await
        .expect("with the password and a code, a passkey can be added");
    // The account is passwordless now and the passkey verifies, but a
    // passkey added inside the recovery window cannot vouch for taking
    // sign-in away from the factors alice had before it: not the phone,
    // not her TOTP, not her recovery codes, not her password.
    let phone_id = phone.client.device_id().unwrap();
    let before = account_state(&phone).await;
    refused_with(
        laptop
            .client
            .revoke_device(&phone_id, Some(passkey_alone(&mut thief_key)))
            .await,
        403,
        "factor_too_new",
    );
    refused_with(
        laptop
            .client
            .new_recovery_codes(passkey_alone(&mut thief_key))
            .await,
        403,
        "factor_too_new",
    );
    refused_with(
        laptop
            .client
            .remove_totp(passkey_alone(&mut thief_key))
            .await,
        403,
        "factor_too_new",
    );
    // With the password beside it, the passkey is still too new.
    refused_with(
        laptop
            .client
            .change_password(
                Credentials::with(ALICE_PASSWORD, SecondFactor::Webauthn(&mut thief_key)),
                "thief-pass-1234567890",
            )
            .await,
        403,
        "factor_too_new",
    );
    // A wrong password with it is simply wrong, and counts on the stolen
    // device's budget, not the phone's.
    refused_with(
        laptop
            .client
            .revoke_device(
                &phone_id,
                Some(Credentials::password("alice-pass-0000000000")),
            )
            .await,
        401,
        "bad_credentials",
    );
    assert_eq!(
        account_state(&phone).await,
        before,
        "the thief changed the account"
    );
    let log = server.admin(&["events", "--limit", "100"]);
    assert!(
        log.contains("passkey_too_new"),
        "refusals are logged:\n{log}"
    );

    // The phone is told at its next sync, and so is the owner.
    phone.client.sync().await.unwrap();
    let alerts = phone.client.security_alerts(true).await.unwrap();
    let laptop_id = laptop.client.device_id().unwrap();
    assert!(
        alerts.iter().any(|a| a.kind == AlertKind::AccountChange
            && a.reason.contains("passkey was added")
            && a.device_id == laptop_id),
        "{alerts:?}"
    );

    // Recovery: password and an unused recovery code, from the phone.
    let report = phone
        .client
        .recover_account(ALICE_PASSWORD, &codes[0])
        .await
        .expect("recover");
    assert_eq!(report.devices_revoked, vec![laptop_id.clone()]);
    assert_eq!(report.factors_removed.len(), 2, "{report:?}");
    assert!(
        report
            .factors_removed
            .iter()
            .any(|f| f.starts_with("webauthn:"))
    );
    assert_eq!(report.recovery_codes.len(), 10);
    let status = phone.client.account().await.unwrap();
    assert!(
        !status.passwordless && status.webauthn.is_empty(),
        "{status:?}"
    );
    // The codes the thief may have seen are dead; the new ones work.
    refused_with(
        Person::fresh(&server, "alice")
            .await
            .client
            .login_with(
                "alice",
                Credentials::with(ALICE_PASSWORD, SecondFactor::RecoveryCode(&codes[1])),
            )
            .await,
        401,
        "second_factor_invalid",
    );

    // The thief's device is refused, and its passkey signs in nowhere.
    refused_with(laptop.client.sync().await, 401, "device_revoked");
    let elsewhere = Person::fresh(&server, "alice").await;
    assert!(
        elsewhere
            .client
            .login_with(
                "alice",
                Credentials {
                    password: None,
                    second_factor: Some(SecondFactor::Webauthn(&mut thief_key)),
                },
            )
            .await
            .is_err(),
        "the thief's passkey still signs in"
    );
    // Nothing said after the recovery reaches the laptop.
    phone
        .client
        .send("plans", "after the recovery")
        .await
        .unwrap();
    bob.client.sync().await.unwrap();
    let members = phone.client.members("plans").await.unwrap();
    assert!(
        !format!("{members:?}").contains(&laptop_id),
        "the revoked laptop is still a member: {members:?}"
    );

    // A new device can do the whole recovery at sign-in, with another code.
    let rescue = Person::fresh(&server, "alice").await;
    let report = rescue
        .client
        .login_and_recover("alice", ALICE_PASSWORD, &report.recovery_codes[0])
        .await
        .expect("login and recover");
    assert_eq!(report.devices_revoked, vec![phone_id]);
    let log = server.admin(&["events", "--limit", "200"]);
    for action in [
        "account_recovered",
        "second_factor_removed",
        "device_revoked",
    ] {
        assert!(log.contains(action), "no {action} in the log:\n{log}");
    }
}

/// The host administrator locks an account (every device and factor gone)
/// and hands it back with a one-time recovery invite.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_host_admin_locks_an_account_and_hands_it_back() {
    let server = ServerProcess::start();
    let (phone, _laptop, mut app, codes) = alice_with_two_devices(&server).await;
    let locked = server.admin(&["lock", "alice"]);
    assert!(locked.contains("locked alice"), "{locked}");
    refused_with(phone.client.sync().await, 401, "device_revoked");
    let code = app.fresh_code().await;
    refused_with(
        Person::fresh(&server, "alice")
            .await
            .client
            .login_with(
                "alice",
                Credentials::with(ALICE_PASSWORD, SecondFactor::Totp(&code)),
            )
            .await,
        403,
        "account_locked",
    );
    refused_with(
        Person::fresh(&server, "alice")
            .await
            .client
            .login_with(
                "alice",
                Credentials::with(ALICE_PASSWORD, SecondFactor::RecoveryCode(&codes[0])),
            )
            .await,
        403,
        "account_locked",
    );

    let printed = server.admin(&["recover", "alice"]);
    let invite = printed
        .lines()
        .nth(1)
        .expect("the invite on its own line")
        .trim()
        .to_owned();
    // Someone tries invites of their own at once: each is simply wrong, and
    // none of it builds a backoff that would hold the owner's invite back
    // (an invite cannot be guessed; only the per-address limit applies).
    let mut wrong = Vec::new();
    for _ in 0..6 {
        wrong.push(Person::fresh(&server, "alice").await);
    }
    let tries = wrong.iter().map(|person| {
        person.client.login_with_recovery_invite(
            "alice",
            "aaaa-bbbb-cccc-dddd-eeee-ffff",
            "new-pass-1234567",
        )
    });
    for result in futures_util::future::join_all(tries).await {
        refused_with(result, 403, "invite_invalid");
    }
    let new_password = "alice's new password 42";
    let back = Person::fresh(&server, "alice").await;
    back.client
        .login_with_recovery_invite("alice", &invite, new_password)
        .await
        .expect("redeem the recovery invite");
    back.client.create_channel("fresh-start").await.unwrap();
    let status = back.client.account().await.unwrap();
    assert!(!status.totp && status.webauthn.is_empty() && status.recovery_codes_left == 0);
    // Once only; the old password is gone; the new one works.
    refused_with(
        Person::fresh(&server, "alice")
            .await
            .client
            .login_with_recovery_invite("alice", &invite, "another-pass-1234")
            .await,
        403,
        "invite_invalid",
    );
    let log = server.admin(&["events", "--limit", "200"]);
    for action in ["account_locked", "account_unlocked", "invite_created"] {
        assert!(log.contains(action), "no {action} in the log:\n{log}");
    }
}

/// A login signed by a new key, with `password` for `user`.
async fn new_device_login(server: &ServerProcess, user: &str, password: &str) -> RawResponse {
    RawDevice::register_attempt(server, user, password).await
}

/// Parallel guesses are counted before they are checked: of 100 at once,
/// no more than the budget reach argon2 or the TOTP check.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_parallel_guesses_get_the_budget_and_no_more() {
    let server = ServerProcess::start();
    let (phone, laptop, _app, _codes) = alice_with_two_devices(&server).await;
    let thief = std::sync::Arc::new(RawDevice::from_home(&server, laptop.home.path()).await);
    // Wrong passwords from the stolen device: its own budget is 10 free
    // tries, then doubling waits.
    let start = Instant::now();
    let guesses = (0..100).map(|i| {
        let thief = thief.clone();
        async move {
            match thief
                .password_proof("alice", &format!("guess-number-{i:04}"))
                .await
            {
                Ok(opaque) => {
                    thief
                        .signed("DELETE", "/v1/account/totp", &json!({ "opaque": opaque }))
                        .await
                }
                // The start is what the budget counts.
                Err(refused) => refused,
            }
        }
    });
    let answers = futures_util::future::join_all(guesses).await;
    let evaluated = answers
        .iter()
        .filter(|r| r.json["error"] == "bad_credentials")
        .count();
    let refused = answers.iter().filter(|r| r.status == 429).count();
    // Beyond what argon2 can take at once, the relay sheds load with 503.
    let shed = answers
        .iter()
        .filter(|r| r.status == 503 && r.json["error"] == "busy")
        .count();
    // Ten free tries, then one more per doubling wait that elapsed.
    let elapsed = start.elapsed().as_secs_f64();
    let bound = 10 + (elapsed + 1.0).log2().ceil() as usize + 1;
    assert!(
        (1..=bound).contains(&evaluated),
        "{evaluated} guesses were checked in {elapsed:.1} s against a budget of 10 (bound {bound})"
    );
    assert_eq!(
        evaluated + refused + shed,
        100,
        "every other guess is 429 or 503"
    );
    assert!(phone.client.account().await.unwrap().totp, "TOTP survived");
    // The owner's phone is told once the laptop's free tries ran out.
    phone.client.sync().await.unwrap();
    let laptop_id = laptop.client.device_id().unwrap();
    let alerts = phone.client.security_alerts(true).await.unwrap();
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a.kind == AlertKind::AccountChange
                && a.device_id == laptop_id
                && a.reason.contains("wrong passwords were tried"))
            .count(),
        1,
        "{alerts:?}"
    );
    // Every checked guess is in the log, one entry each.
    let mut db = server.database().await;
    let logged: i64 = sqlx::query(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'second_factor_removed'
         AND CAST(leaf AS TEXT) LIKE '%failure:bad_password%'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap()
    .get(0);
    assert_eq!(logged, i64::try_from(evaluated).unwrap());
}

/// Guesses from new devices slow down, but lock out none of the owner's
/// known devices: her phone still proves itself at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guessing_from_elsewhere_does_not_lock_out_the_owners_devices() {
    let server = ServerProcess::start();
    let (phone, laptop, mut app, codes) = alice_with_two_devices(&server).await;
    let start = Instant::now();
    let guesses = (0..20).map(|i| {
        let server = &server;
        async move { new_device_login(server, "alice", &format!("guess-number-{i:04}")).await }
    });
    let answers = futures_util::future::join_all(guesses).await;
    let elapsed = start.elapsed().as_secs_f64();
    let evaluated = answers.iter().filter(|r| r.status == 401).count();
    // Five free tries, then one more per doubling wait that elapsed.
    let bound = 5 + (elapsed + 1.0).log2().ceil() as usize + 1;
    assert!(
        (1..=bound).contains(&evaluated),
        "{evaluated} of 20 parallel guesses were checked in {elapsed:.1} s (bound {bound})"
    );
    for refused in answers.iter().filter(|r| r.status == 429) {
        assert_eq!(refused.json["error"], "rate_limited");
        assert!(refused.json["retry_after"].as_u64().unwrap() >= 1);
    }
    // Even the right password from a new device waits now (unless the wait
    // after the last checked guess is already over: it began no earlier
    // than the burst).
    let waiting = RawDevice::fresh(&server);
    let login = waiting.login("alice", ALICE_PASSWORD).await;
    let wait_after = 1u64 << (evaluated.saturating_sub(5)).min(9);
    // The relay keeps attempt times in whole seconds, so a wait can end up
    // to a second early: only a login well inside it must be refused.
    if start.elapsed() + Duration::from_secs(1) < Duration::from_secs(wait_after) {
        answered(
            &login,
            429,
            "rate_limited",
            "a new device during the backoff",
        );
    } else {
        assert!(matches!(login.status, 401 | 429), "{:?}", login.json);
    }
    // A new device with the password and a recovery code (the owner, from
    // wherever she is) is not held by that backoff: the code cannot be
    // guessed, so it is checked first and the password then has a budget of
    // its own. (It ends the backoff, as any success does.)
    let rescue = Person::fresh(&server, "alice").await;
    rescue
        .client
        .login_with(
            "alice",
            Credentials::with(ALICE_PASSWORD, SecondFactor::RecoveryCode(&codes[0])),
        )
        .await
        .expect("a new device with a recovery code signs in despite the guesses");
    // …but the owner's known devices do not: the laptop renews its session
    // and the phone revokes a device, each with a fresh proof, right away.
    let code = app.fresh_code().await;
    laptop
        .client
        .reauthenticate(Credentials::with(ALICE_PASSWORD, SecondFactor::Totp(&code)))
        .await
        .expect("a known device signs in again despite the guesses");
    let code = app.fresh_code().await;
    let laptop_id = laptop.client.device_id().unwrap();
    phone
        .client
        .revoke_device(
            &laptop_id,
            Some(Credentials::with(ALICE_PASSWORD, SecondFactor::Totp(&code))),
        )
        .await
        .expect("a known device steps up despite the guesses");
    // Each checked guess is logged; the refused ones were never checked.
    let mut db = server.database().await;
    let logged: i64 = sqlx::query(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'login' AND actor = 'alice'
         AND CAST(leaf AS TEXT) LIKE '%failure:bad_password%'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap()
    .get(0);
    assert_eq!(logged, i64::try_from(evaluated).unwrap());
}

/// 120 logins at once for accounts that do not exist, and 40 made-up
/// recovery codes for a real one (the relay's remaining argon2 work), beside
/// a signed-in device at work: no 500, every answer quick (503 with
/// Retry-After beyond what argon2 can take), the device served throughout,
/// and every failure in the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_flood_is_shed_with_503_and_every_failure_is_logged() {
    // Per-address limits off: this machine has one address, a real flood many.
    let mut server = ServerProcess::start_with(vec!["--rate-limits".into(), "false".into()]);
    let bob = Person::register(&server, "bob", BOB_PASSWORD).await;
    bob.client.create_channel("ops").await.unwrap();
    let flood_started = Instant::now();
    let unknown = (0..120).map(|i| {
        let server = &server;
        async move {
            let started = Instant::now();
            // A flood need not stretch a password to make the relay answer.
            let answer = RawDevice::fresh(server)
                .unopened_login(&format!("nobody{i}"))
                .await;
            (answer, started.elapsed())
        }
    });
    // The relay runs no argon2 for a password any more (OPAQUE stretches it
    // on the client), but it still hashes recovery and invite codes: 40
    // logins from new devices carrying made-up recovery codes for bob.
    let wrong = (0..40).map(|i| {
        let server = &server;
        async move {
            let started = Instant::now();
            let device = RawDevice::fresh(server);
            let code = json!({ "type": "recovery_code", "code": "vjqb-ytde-8q60-2qd0" });
            let answer = match device
                .password_proof_with("bob", &format!("wrong-guess-{i:04}"), code)
                .await
            {
                Ok(opaque) => panic!("a made-up recovery code passed: {opaque}"),
                Err(refused) => refused,
            };
            (answer, started.elapsed())
        }
    });
    let legit = async {
        let mut waits = Vec::new();
        while flood_started.elapsed() < Duration::from_secs(4) {
            let started = Instant::now();
            bob.client.channels().await.unwrap();
            bob.client
                .sync()
                .await
                .expect("a signed-in device is served");
            waits.push(started.elapsed());
        }
        waits
    };
    let (unknown, wrong, mut waits) = tokio::join!(
        futures_util::future::join_all(unknown),
        futures_util::future::join_all(wrong),
        legit
    );
    let all: Vec<&(RawResponse, Duration)> = unknown.iter().chain(wrong.iter()).collect();
    for (answer, took) in &all {
        assert!(
            matches!(answer.status, 401 | 503),
            "a flooded login answered {} {:?}",
            answer.status,
            answer.json
        );
        assert!(*took < Duration::from_secs(20), "an answer took {took:?}");
        if answer.status == 503 {
            assert_eq!(answer.json["error"], "busy");
            assert!(answer.json["retry_after"].as_u64().unwrap() >= 1);
        }
    }
    assert!(
        all.iter().any(|(a, _)| a.status == 503),
        "the flood never met the hashing limit"
    );
    waits.sort();
    let p99 = waits[(waits.len() * 99 / 100).min(waits.len() - 1)];
    assert!(
        p99 < Duration::from_secs(5),
        "a signed-in device waited {p99:?} (p99 of {} requests) during the flood",
        waits.len()
    );
    let unknown_failures = unknown.iter().filter(|(a, _)| a.status == 401).count();
    let bob_failures = wrong.iter().filter(|(a, _)| a.status == 401).count();
    assert!(
        wrong
            .iter()
            .filter(|(a, _)| a.status == 401)
            .all(|(a, _)| a.json["error"] == "second_factor_invalid"),
        "a made-up recovery code is refused as such"
    );

    // Shut down cleanly: the open window of unknown-account failures is logged.
    assert_eq!(server.terminate(Duration::from_secs(30)), Some(0));
    let mut db = server.database().await;
    let leaves: Vec<Vec<u8>> = sqlx::query(
        "SELECT leaf FROM audit_log WHERE action IN ('login', 'second_factor_used') ORDER BY idx",
    )
    .fetch_all(&mut db)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect();
    let mut logged_unknown = 0;
    let mut logged_bob = 0;
    for leaf in &leaves {
        let event = conclave_audit::Event::decode(leaf).unwrap();
        if event.outcome == "failure:unknown_account" {
            logged_unknown += event.details["count"].parse::<usize>().unwrap();
        } else if event.outcome == "failure:wrong_or_used_recovery_code"
            && event.actor.as_deref() == Some("bob")
        {
            logged_bob += 1;
        }
        assert!(
            !(event.outcome == "failure:bad_password" && event.actor.as_deref() != Some("bob")),
            "a made-up name got a leaf of its own: {event:?}"
        );
    }
    assert_eq!(
        logged_unknown, unknown_failures,
        "unknown-account failures logged"
    );
    assert_eq!(logged_bob, bob_failures, "bob's failures logged");
    let log = std::fs::read_to_string(server.data.path().join("server.log")).unwrap_or_default();
    assert!(
        !log.contains("database is locked"),
        "the relay's log:\n{log}"
    );
}

/// Fresh keys signing logins with a bad body: after the per-address cap
/// they are refused before anything is written for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fresh_keys_cannot_fill_the_nonce_table() {
    let server = ServerProcess::start();
    let mut statuses = Vec::new();
    for _ in 0..80 {
        let device = RawDevice::fresh(&server);
        let response = device
            .signed(
                "POST",
                "/v1/devices",
                &json!({ "public_key": STANDARD.encode(device.key.public().to_bytes()) }),
            )
            .await;
        statuses.push((response.status, response.json["error"].clone()));
    }
    let refused = statuses
        .iter()
        .filter(|(status, error)| *status == 429 && error == "rate_limited")
        .count();
    assert_eq!(
        refused, 20,
        "the cap is 60 new keys per address: {statuses:?}"
    );
    assert!(
        statuses[..60].iter().all(|(status, _)| *status == 400),
        "a login without a username is a bad request: {statuses:?}"
    );
    let mut db = server.database().await;
    let nonces: i64 = sqlx::query("SELECT COUNT(*) FROM request_nonces")
        .fetch_one(&mut db)
        .await
        .unwrap()
        .get(0);
    assert_eq!(nonces, 60, "only the requests under the cap spent a nonce");
    // The 61st found the bucket full; the 19 after it were refused from the
    // relay's memory, without a write to its one writer.
    let hits: i64 =
        sqlx::query("SELECT hits FROM rate_limits WHERE bucket = 'new-key-ip:127.0.0.1'")
            .fetch_one(&mut db)
            .await
            .unwrap()
            .get(0);
    assert_eq!(hits, 61, "a full bucket is not written again");
}
