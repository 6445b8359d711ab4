//! Accounts that survive a breach, end to end through the real relay binary:
//! TOTP and its replay, passkeys, recovery codes, new devices, revocation,
//! password changes, sessions, invites, mandatory 2FA, brute force, and what
//! a stolen database holds.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_client::{ClientError, Credentials, Event, SecondFactor, SoftAuthenticator};
use conclave_tests::{ByName, refused_with};
use conclave_tests::{
    Person, RawDevice, ServerProcess, TempDir, TotpApp, enroll_totp, fresh_postgres,
};
use serde_json::json;

const ALICE_PASSWORD: &str = "alice-pass-2718281828";
const BOB_PASSWORD: &str = "bob-pass-3141592653";

fn text_of(entries: &[conclave_client::HistoryEntry]) -> Vec<(&str, &str)> {
    entries
        .iter()
        .map(|e| (e.sender.as_str(), e.text.as_str()))
        .collect()
}

/// TOTP end to end: enrollment, the code required at login, replay refused,
/// a new device told to the others and added to the channels, recovery codes.
async fn totp_and_new_devices(server: &ServerProcess) {
    let alice = Person::register(server, "alice", ALICE_PASSWORD).await;
    let bob = Person::register(server, "bob", BOB_PASSWORD).await;
    alice.client.create_channel("general").await.unwrap();
    alice.client.invite("general", "bob").await.unwrap();
    bob.client.sync().await.unwrap();

    let (mut app, recovery) = enroll_totp(&alice.client, ALICE_PASSWORD).await;
    assert_eq!(recovery.len(), 10);
    let status = alice.client.account().await.unwrap();
    assert!(status.totp && status.recovery_codes_left == 10);

    // The password alone no longer adds a device, and says what is missing.
    let laptop = Person::fresh(server, "alice").await;
    match laptop.client.login("alice", ALICE_PASSWORD).await {
        Err(ClientError::Server {
            status,
            code,
            message,
        }) => {
            assert_eq!((status, code.as_str()), (401, "second_factor_required"));
            assert!(
                message.contains("totp") && message.contains("recovery_code"),
                "{message}"
            );
        }
        other => panic!("login without a second factor: {other:?}"),
    }
    // A wrong code is refused.
    refused_with(
        laptop
            .client
            .login_with(
                "alice",
                Credentials::with(ALICE_PASSWORD, SecondFactor::Totp("000000")),
            )
            .await,
        401,
        "second_factor_invalid",
    );
    // The code that confirmed the enrollment was spent: replaying it fails.
    let spent = app.code_at_step(app.last_step());
    refused_with(
        laptop
            .client
            .login_with(
                "alice",
                Credentials::with(ALICE_PASSWORD, SecondFactor::Totp(&spent)),
            )
            .await,
        401,
        "second_factor_invalid",
    );
    let code = app.fresh_code().await;
    laptop
        .client
        .login_with(
            "alice",
            Credentials::with(ALICE_PASSWORD, SecondFactor::Totp(&code)),
        )
        .await
        .expect("login with a fresh code");
    // ... and that code, too, works once only.
    let thief = Person::fresh(server, "alice").await;
    refused_with(
        thief
            .client
            .login_with(
                "alice",
                Credentials::with(ALICE_PASSWORD, SecondFactor::Totp(&code)),
            )
            .await,
        401,
        "second_factor_invalid",
    );

    // The first device is told, and adds the new one to its channels.
    let laptop_id = laptop.client.device_id().unwrap();
    let events = alice.client.sync().await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::DeviceAdded { device_id } if *device_id == laptop_id)),
        "{events:?}"
    );
    let members = alice.client.members("general").await.unwrap();
    let alice_devices = &members.iter().find(|m| m.user == "alice").unwrap().devices;
    assert!(alice_devices.contains(&laptop_id), "{members:?}");
    // So the laptop reads what is said from now on.
    bob.client.sync().await.unwrap();
    bob.client.send("general", "welcome, laptop").await.unwrap();
    let joined = laptop.client.sync().await.unwrap();
    assert!(
        joined.iter().any(|e| matches!(e, Event::Joined { .. })),
        "{joined:?}"
    );
    // It learns the channel's name from the device that added it.
    let channels = laptop.client.channels().await.unwrap();
    assert_eq!(
        channels.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["general"]
    );
    let history = laptop.client.history("general").await.unwrap();
    assert_eq!(text_of(&history), [("bob", "welcome, laptop")]);

    // A recovery code stands in for the second factor, once.
    let phone = Person::fresh(server, "alice").await;
    phone
        .client
        .login_with(
            "alice",
            Credentials::with(ALICE_PASSWORD, SecondFactor::RecoveryCode(&recovery[0])),
        )
        .await
        .expect("login with a recovery code");
    let again = Person::fresh(server, "alice").await;
    refused_with(
        again
            .client
            .login_with(
                "alice",
                Credentials::with(ALICE_PASSWORD, SecondFactor::RecoveryCode(&recovery[0])),
            )
            .await,
        401,
        "second_factor_invalid",
    );
    assert_eq!(alice.client.account().await.unwrap().recovery_codes_left, 9);
    let log = server.admin(&["events", "--limit", "200"]);
    assert!(
        log.contains("recovery_code_used success actor=alice"),
        "{log}"
    );
    assert!(log.contains("device_added success actor=alice"), "{log}");
    assert!(
        log.contains("second_factor_used failure:totp_code_already_used actor=alice"),
        "{log}"
    );
    // Every event of the scenario made it into the log.
    let server_log = std::fs::read_to_string(server.data.path().join("server.log")).unwrap();
    assert!(!server_log.contains("could not record an audit event"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn totp_and_new_devices_on_sqlite() {
    let server = ServerProcess::start();
    totp_and_new_devices(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn totp_and_new_devices_on_postgres() {
    let Some(url) = fresh_postgres("accounts_totp").await else {
        return;
    };
    let server = ServerProcess::start_with(vec!["--database-url".into(), url]);
    totp_and_new_devices(&server).await;
}

/// Revocation is immediate: the live WebSocket closes within a second, the
/// device's requests are refused, and it leaves every channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoked_device_is_locked_out_at_once() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", ALICE_PASSWORD).await;
    let bob = Person::register(&server, "bob", BOB_PASSWORD).await;
    let (mut app, recovery) = enroll_totp(&alice.client, ALICE_PASSWORD).await;
    let stolen = Person::login_with_totp(&server, "alice", ALICE_PASSWORD, &mut app).await;
    alice.client.sync().await.unwrap();
    alice.client.create_channel("plans").await.unwrap();
    alice.client.invite("plans", "bob").await.unwrap();
    stolen.client.sync().await.unwrap();
    bob.client.sync().await.unwrap();
    let stolen_id = stolen.client.device_id().unwrap();
    let members = bob.client.members("plans").await.unwrap();
    assert_eq!(
        members
            .iter()
            .find(|m| m.user == "alice")
            .unwrap()
            .devices
            .len(),
        2
    );

    // The thief holds the device: its stream is open.
    let thief = RawDevice::from_home(&server, stolen.home.path()).await;
    let mut stream = thief.open_stream().await;

    // Holding a device is not enough to throw its owner's other devices out.
    refused_with(
        stolen
            .client
            .revoke_device(
                &alice.client.device_id().unwrap(),
                Some(Credentials::default()),
            )
            .await,
        401,
        "step_up_required",
    );

    let revoked_at = Instant::now();
    alice
        .client
        .revoke_device(
            &stolen_id,
            Some(Credentials::with(
                ALICE_PASSWORD,
                SecondFactor::RecoveryCode(&recovery[0]),
            )),
        )
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(_)) = stream.next_frame().await {}
    })
    .await;
    assert!(
        closed.is_ok(),
        "stream still open after {:?}",
        revoked_at.elapsed()
    );
    let refused = thief.signed("GET", "/v1/messages", &json!(null)).await;
    assert_eq!(
        (refused.status, refused.json["error"].as_str()),
        (401, Some("device_revoked"))
    );
    assert!(revoked_at.elapsed() < Duration::from_secs(1));
    // Logging in again with the same key does not bring it back.
    refused_with(
        stolen
            .client
            .reauthenticate(Credentials::password(ALICE_PASSWORD))
            .await,
        401,
        "device_revoked",
    );

    // alice's own sync took it out of the channel; bob sees it gone.
    bob.client.sync().await.unwrap();
    let members = bob.client.members("plans").await.unwrap();
    let alice_devices = &members.iter().find(|m| m.user == "alice").unwrap().devices;
    assert_eq!(alice_devices, &[alice.client.device_id().unwrap()]);
    bob.client.send("plans", "after the theft").await.unwrap();
    alice.client.sync().await.unwrap();
    assert_eq!(
        text_of(&alice.client.history("plans").await.unwrap()),
        [("bob", "after the theft")]
    );
    let devices = alice.client.devices().await.unwrap();
    assert!(
        devices
            .iter()
            .any(|d| d.device_id == stolen_id && d.revoked_at.is_some())
    );
}

/// A password change ends every other session; those devices log in again
/// with the new password and keep their channels.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn password_change_ends_other_sessions() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", ALICE_PASSWORD).await;
    let (mut app, recovery) = enroll_totp(&alice.client, ALICE_PASSWORD).await;
    let laptop = Person::login_with_totp(&server, "alice", ALICE_PASSWORD, &mut app).await;
    let mut stream = RawDevice::from_home(&server, laptop.home.path())
        .await
        .open_stream()
        .await;

    let new_password = "a brand new password, long";
    // The old password is required, not just the device.
    refused_with(
        alice
            .client
            .change_password(Credentials::password("not-the-password"), new_password)
            .await,
        401,
        "bad_credentials",
    );
    let ended = alice
        .client
        .change_password(
            Credentials::with(ALICE_PASSWORD, SecondFactor::RecoveryCode(&recovery[0])),
            new_password,
        )
        .await
        .unwrap();
    assert_eq!(ended, 1);
    let closed = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(_)) = stream.next_frame().await {}
    })
    .await;
    assert!(closed.is_ok(), "the laptop's stream stayed open");
    refused_with(laptop.client.sync().await, 401, "session_expired");
    alice
        .client
        .sync()
        .await
        .expect("the changing device keeps its session");
    // The old password is dead; the password alone is not enough either.
    refused_with(
        laptop
            .client
            .reauthenticate(Credentials::password(ALICE_PASSWORD))
            .await,
        401,
        "bad_credentials",
    );
    refused_with(
        laptop
            .client
            .reauthenticate(Credentials::password(new_password))
            .await,
        401,
        "second_factor_required",
    );
    laptop
        .client
        .reauthenticate(Credentials::with(
            new_password,
            SecondFactor::RecoveryCode(&recovery[1]),
        ))
        .await
        .unwrap();
    laptop.client.sync().await.expect("session renewed");
}

/// Sessions end after their idle or absolute lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_expire() {
    let server = ServerProcess::start_with(vec![
        "--session-idle-timeout".into(),
        "2s".into(),
        "--session-lifetime".into(),
        "4s".into(),
    ]);
    let alice = Person::register(&server, "alice", ALICE_PASSWORD).await;
    alice.client.sync().await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    refused_with(alice.client.sync().await, 401, "session_expired");
    alice
        .client
        .reauthenticate(Credentials::password(ALICE_PASSWORD))
        .await
        .unwrap();
    // Kept busy, it still ends at the absolute lifetime.
    let started = Instant::now();
    let outcome = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        match alice.client.sync().await {
            Ok(_) if started.elapsed() < Duration::from_secs(8) => continue,
            other => break other,
        }
    };
    refused_with(outcome, 401, "session_expired");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// A device that only holds its stream open is in use: its session does not
/// idle out, though it still ends at the absolute lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_open_stream_keeps_the_session_alive() {
    let server = ServerProcess::start_with(vec![
        "--session-idle-timeout".into(),
        "2s".into(),
        "--session-lifetime".into(),
        "6s".into(),
    ]);
    let alice = Person::register(&server, "alice", ALICE_PASSWORD).await;
    let mut stream = RawDevice::from_home(&server, alice.home.path())
        .await
        .open_stream()
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    alice.client.sync().await.expect("kept alive by its stream");
    // At the absolute lifetime the stream is closed like any session.
    let closed = tokio::time::timeout(Duration::from_secs(8), async {
        while let Some(Ok(_)) = stream.next_frame().await {}
    })
    .await;
    assert!(closed.is_ok(), "the stream outlived the session");
    refused_with(alice.client.sync().await, 401, "session_expired");
}

/// Passkeys: a real WebAuthn registration and authentication ceremony with a
/// software authenticator, as second factor and as the only factor.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn passkeys_sign_in_as_second_or_only_factor() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", ALICE_PASSWORD).await;
    let mut passkey = SoftAuthenticator::new().unwrap();
    let codes = alice
        .client
        .enroll_passkey(
            &mut passkey,
            "test key",
            false,
            Credentials::password(ALICE_PASSWORD),
        )
        .await
        .unwrap();
    assert_eq!(codes.0.len(), 10);

    let laptop = Person::fresh(&server, "alice").await;
    laptop
        .client
        .login_with(
            "alice",
            Credentials::with(ALICE_PASSWORD, SecondFactor::Webauthn(&mut passkey)),
        )
        .await
        .expect("password and passkey");
    // Not passwordless: the passkey alone is refused.
    let phone = Person::fresh(&server, "alice").await;
    refused_with(
        phone
            .client
            .login_with(
                "alice",
                Credentials {
                    password: None,
                    second_factor: Some(SecondFactor::Webauthn(&mut passkey)),
                },
            )
            .await,
        401,
        "bad_credentials",
    );
    // Another authenticator's assertion does not verify.
    let mut stranger = SoftAuthenticator::new().unwrap();
    assert!(
        phone
            .client
            .login_with(
                "alice",
                Credentials::with(ALICE_PASSWORD, SecondFactor::Webauthn(&mut stranger))
            )
            .await
            .is_err()
    );

    // A second passkey, chosen for passwordless sign-in.
    let mut platform = SoftAuthenticator::new().unwrap();
    let codes = alice
        .client
        .enroll_passkey(
            &mut platform,
            "platform",
            true,
            Credentials::with(ALICE_PASSWORD, SecondFactor::Webauthn(&mut passkey)),
        )
        .await
        .unwrap();
    assert!(
        codes.0.is_empty(),
        "recovery codes come only with the first factor"
    );
    phone
        .client
        .login_with(
            "alice",
            Credentials {
                password: None,
                second_factor: Some(SecondFactor::Webauthn(&mut platform)),
            },
        )
        .await
        .expect("passwordless");
    let status = phone.client.account().await.unwrap();
    assert!(status.passwordless);
    assert_eq!(status.webauthn.len(), 2);

    // A challenge answers once, and only for the account it was made for.
    let raw = RawDevice::fresh(&server);
    let challenge = raw
        .unsigned(
            "POST",
            "/v1/auth/webauthn/challenge",
            &json!({ "username": "alice" }),
        )
        .await;
    assert_eq!(challenge.status, 200, "{:?}", challenge.json);
    let origin = url::Url::parse(challenge.json["origin"].as_str().unwrap()).unwrap();
    let options = serde_json::from_value(challenge.json["options"].clone()).unwrap();
    let assertion =
        conclave_client::Authenticator::authenticate(&mut platform, &origin, options).unwrap();
    let login = |key: &RawDevice| {
        json!({
            "username": "alice",
            "public_key": STANDARD.encode(key.key.public().to_bytes()),
            "second_factor": {
                "type": "webauthn",
                "challenge_id": challenge.json["challenge_id"],
                "credential": assertion,
            },
        })
    };
    let first = raw.signed("POST", "/v1/devices", &login(&raw)).await;
    assert_eq!(first.status, 200, "{:?}", first.json);
    let replay = RawDevice::fresh(&server);
    let second = replay.signed("POST", "/v1/devices", &login(&replay)).await;
    assert_eq!(
        (second.status, second.json["error"].as_str()),
        (401, Some("second_factor_invalid"))
    );
}

/// Brute force: five wrong second factors lock the check, and the sixth
/// attempt is refused with 429 even with the right code.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn brute_force_is_throttled() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", ALICE_PASSWORD).await;
    let (mut app, _) = enroll_totp(&alice.client, ALICE_PASSWORD).await;
    let attacker = Person::fresh(&server, "alice").await;
    for guess in ["111111", "222222", "333333", "444444", "555555"] {
        refused_with(
            attacker
                .client
                .login_with(
                    "alice",
                    Credentials::with(ALICE_PASSWORD, SecondFactor::Totp(guess)),
                )
                .await,
            401,
            "second_factor_invalid",
        );
    }
    let right = app.fresh_code().await;
    match attacker
        .client
        .login_with(
            "alice",
            Credentials::with(ALICE_PASSWORD, SecondFactor::Totp(&right)),
        )
        .await
    {
        Err(ClientError::Server {
            status: 429,
            code,
            message,
        }) => {
            assert_eq!(code, "rate_limited");
            assert!(message.contains("retry after"), "{message}");
        }
        other => panic!("sixth guess: {other:?}"),
    }
    // Passwords from new devices: five wrong ones are free, then each try
    // waits twice as long after the one before (one second first).
    let bob = Person::register(&server, "bob", BOB_PASSWORD).await;
    drop(bob);
    for _ in 0..5 {
        let attempt = RawDevice::register_attempt(&server, "bob", "wrong-password-123").await;
        assert_eq!(attempt.status, 401);
    }
    // Two more wrong ones, each let through only once its wait has passed
    // (a loaded machine may take longer than the first second by itself):
    // after seven, the next try must wait four seconds, which no test run
    // outlasts between two requests.
    let mut failures = 5;
    while failures < 7 {
        let attempt = RawDevice::register_attempt(&server, "bob", "wrong-password-123").await;
        match attempt.status {
            401 => failures += 1,
            429 => tokio::time::sleep(Duration::from_millis(300)).await,
            other => panic!("a wrong password answered {other}"),
        }
    }
    let locked = RawDevice::register_attempt(&server, "bob", BOB_PASSWORD).await;
    assert_eq!(
        (locked.status, locked.json["error"].as_str()),
        (429, Some("rate_limited"))
    );
    assert!(locked.json["retry_after"].as_u64().unwrap() > 0);
}

/// Registration is by invitation unless configured open; invites are
/// single-use; admins come only from the server host.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registration_is_invite_only_by_default() {
    let server = ServerProcess::start_with(vec!["--open-registration".into(), "false".into()]);
    let carol = Person::fresh(&server, "carol").await;
    refused_with(
        carol
            .client
            .register("carol", "carol-pass-1618033988")
            .await,
        403,
        "invite_required",
    );
    refused_with(
        carol
            .client
            .register_with_invite(
                "carol",
                "carol-pass-1618033988",
                "aaaa-bbbb-cccc-dddd-eeee-ffff",
            )
            .await,
        403,
        "invite_invalid",
    );
    let printed = server.admin(&["invite", "--expires-in", "1h"]);
    let code = printed.split_whitespace().next().unwrap().to_owned();
    carol
        .client
        .register_with_invite("carol", "carol-pass-1618033988", &code)
        .await
        .expect("register with an invite");
    let dave = Person::fresh(&server, "dave").await;
    refused_with(
        dave.client
            .register_with_invite("dave", "dave-pass-1414213562", &code)
            .await,
        403,
        "invite_invalid",
    );
    // Registering first over the network makes nobody an admin.
    refused_with(
        carol
            .client
            .create_invite(3600, Credentials::password("carol-pass-1618033988"))
            .await,
        403,
        "forbidden",
    );
    assert!(
        server
            .admin(&["grant", "carol", "admin"])
            .contains("carol is now admin")
    );
    let (code, _) = carol
        .client
        .create_invite(3600, Credentials::password("carol-pass-1618033988"))
        .await
        .unwrap();
    dave.client
        .register_with_invite("dave", "dave-pass-1414213562", &code)
        .await
        .expect("an admin's invite");
    let users = server.admin(&["users"]);
    assert!(
        users.contains("carol") && users.contains("admin") && users.contains("dave"),
        "{users}"
    );
}

/// With the policy on, an account without a second factor can only enroll.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mandatory_second_factor_allows_only_enrollment() {
    let server = ServerProcess::start();
    let erin = Person::register(&server, "erin", "erin-pass-5772156649").await;
    erin.client.create_channel("before").await.unwrap();
    assert!(
        server
            .admin(&["policy", "--require-second-factor", "true"])
            .contains("require_second_factor = true")
    );

    refused_with(
        erin.client.create_channel("after").await,
        403,
        "second_factor_enrollment_required",
    );
    refused_with(
        erin.client.sync().await,
        403,
        "second_factor_enrollment_required",
    );
    refused_with(
        erin.client.send("before", "hello").await,
        403,
        "second_factor_enrollment_required",
    );
    refused_with(
        erin.client.devices().await,
        403,
        "second_factor_enrollment_required",
    );
    assert!(erin.client.account().await.unwrap().second_factor_required);
    enroll_totp(&erin.client, "erin-pass-5772156649").await;
    erin.client
        .create_channel("after")
        .await
        .expect("enrolled: allowed again");
    erin.client.send("before", "hello").await.unwrap();
    let log = server.admin(&["events"]);
    assert!(
        log.contains("policy_changed success actor=host-admin"),
        "{log}"
    );
}

/// Copy the database after a full scenario: no TOTP secret, recovery code,
/// invite code or password in it, and no hash but argon2id at the configured
/// parameters.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stolen_database_yields_no_secrets() {
    let server = ServerProcess::start_with(vec!["--open-registration".into(), "false".into()]);
    let invite = server.admin(&["invite"]);
    let invite = invite.split_whitespace().next().unwrap().to_owned();
    let home = TempDir::new("alice");
    let alice = server.client(home.path()).await;
    alice
        .register_with_invite("alice", ALICE_PASSWORD, &invite)
        .await
        .unwrap();
    let enrollment = alice
        .enroll_totp(Credentials::password(ALICE_PASSWORD))
        .await
        .unwrap();
    let mut app = TotpApp::from_uri(&enrollment.otpauth_uri);
    let secret_b32 = enrollment
        .otpauth_uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let secret_raw = totp_secret_bytes(&secret_b32);
    let code = app.fresh_code().await;
    let recovery = alice.confirm_totp(&code).await.unwrap().0;
    let mut passkey = SoftAuthenticator::new().unwrap();
    let code = app.fresh_code().await;
    alice
        .enroll_passkey(
            &mut passkey,
            "key",
            false,
            Credentials::with(ALICE_PASSWORD, SecondFactor::Totp(&code)),
        )
        .await
        .unwrap();
    let new_password = "the second password of alice";
    let code = app.fresh_code().await;
    alice
        .change_password(
            Credentials::with(ALICE_PASSWORD, SecondFactor::Totp(&code)),
            new_password,
        )
        .await
        .unwrap();
    let phone = Person::fresh(&server, "alice").await;
    phone
        .client
        .login_with(
            "alice",
            Credentials::with(new_password, SecondFactor::RecoveryCode(&recovery[3])),
        )
        .await
        .unwrap();

    let database: Vec<u8> = server
        .files()
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("conclave.db"))
        })
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(database.len() > 10_000, "found the database files");
    let contains = |needle: &[u8]| database.windows(needle.len()).any(|w| w == needle);
    for secret in [ALICE_PASSWORD, new_password, &invite, &secret_b32] {
        assert!(!contains(secret.as_bytes()), "database holds {secret:?}");
    }
    assert!(!contains(&secret_raw), "database holds the raw TOTP secret");
    for code in &recovery {
        assert!(
            !contains(code.as_bytes()),
            "database holds recovery code {code}"
        );
        assert!(!contains(code.replace('-', "").as_bytes()));
    }
    // Every hash is argon2id with the configured parameters; no other kind.
    let text = String::from_utf8_lossy(&database);
    let hashes: Vec<&str> = text
        .match_indices("$argon2")
        .filter_map(|(i, _)| text.get(i..i + 31))
        .collect();
    assert!(
        hashes.len() >= 12,
        "password, invite and recovery hashes: {}",
        hashes.len()
    );
    for hash in &hashes {
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
    }
    for other in [
        "$2a$", "$2b$", "$2y$", "$pbkdf2", "$scrypt", "$5$", "$6$", "$sha1$",
    ] {
        assert!(!text.contains(other), "a {other} hash in the database");
    }
    // Nor does the relay's log hold any of it.
    let log = std::fs::read_to_string(server.data.path().join("server.log")).unwrap();
    for secret in [
        ALICE_PASSWORD,
        new_password,
        &invite,
        &secret_b32,
        &recovery[3],
    ] {
        assert!(!log.contains(secret), "the log holds {secret:?}");
    }
}

fn totp_secret_bytes(base32: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = 0u64;
    let mut count = 0;
    let mut out = Vec::new();
    for c in base32.bytes().filter(|c| *c != b'=') {
        let value = ALPHABET.iter().position(|a| *a == c).expect("base32") as u64;
        bits = (bits << 5) | value;
        count += 5;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}
