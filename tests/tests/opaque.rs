//! The password never reaches the relay (issue 18, point 1): it is set and
//! proved with OPAQUE (RFC 9807).
//!
//! - A man in the middle holding the relay's TLS key (stolen from its key
//!   directory) records every byte of a registration, logins, a step-up, a
//!   wrong password and a password change: no password, in any encoding,
//!   and no hash of one is in what it recorded.
//! - What the relay keeps (the OPAQUE record) verifies no guess without the
//!   relay's OPAQUE setup, which is sealed under `server.key` in the key
//!   directory: the database alone gives no offline attack.
//! - An account from before OPAQUE (an argon2id hash) proves its password
//!   once more, over TLS, and its next login replaces the hash with a record;
//!   a relay started with `--legacy-passwords false` refuses that way.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use conclave_client::{
    Client, ClientError, Credentials, HttpsTransport, KeyProtection, SecondFactor, ServerTrust,
};
use conclave_crypto::password::{PasswordLogin, PasswordServer};
use conclave_tests::{ServerProcess, TempDir, enroll_totp, refused_with, run_conclave};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sqlx::Row;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PASSWORD: &str = "alice-pass-2718281828";
const NEW_PASSWORD: &str = "alice-new-pass-1414213562";
const WRONG_PASSWORD: &str = "alice-pass-0000000000";

/// A TLS-terminating proxy with the relay's own certificate and key: what
/// an attacker who copied the key directory can put between clients and
/// the relay. Clients that pin the relay's certificate accept it. It
/// forwards everything and keeps the plaintext of both directions.
struct RecordingProxy {
    url: String,
    transcript: Arc<Mutex<Vec<u8>>>,
}

/// The proxy's side towards the relay trusts whatever certificate it gets:
/// the attacker knows it is talking to the real relay.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl RecordingProxy {
    async fn start(server: &ServerProcess) -> Self {
        let data = server.data.path().join("data");
        let keys = server.data.path().join("data-keys");
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(data.join("tls-cert.pem"))
                .expect("the relay's certificate")
                .collect::<Result<_, _>>()
                .expect("PEM");
        let key = PrivateKeyDer::from_pem_file(keys.join("tls-key.pem"))
            .expect("the relay's TLS key, from its key directory");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let impostor = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("the relay's identity");
        let towards_relay = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(impostor));
        let connector = tokio_rustls::TlsConnector::from(Arc::new(towards_relay));
        let relay: SocketAddr = server
            .url
            .trim_start_matches("https://")
            .parse()
            .expect("the relay's address");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("https://{}", listener.local_addr().expect("address"));
        let transcript = Arc::new(Mutex::new(Vec::new()));
        let recording = transcript.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (acceptor, connector, recording) =
                    (acceptor.clone(), connector.clone(), recording.clone());
                tokio::spawn(async move {
                    let Ok(client) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(upstream) = TcpStream::connect(relay).await else {
                        return;
                    };
                    let name = ServerName::IpAddress(relay.ip().into());
                    let Ok(upstream) = connector.connect(name, upstream).await else {
                        return;
                    };
                    let (client_read, client_write) = tokio::io::split(client);
                    let (relay_read, relay_write) = tokio::io::split(upstream);
                    tokio::join!(
                        pump(client_read, relay_write, recording.clone()),
                        pump(relay_read, client_write, recording),
                    );
                });
            }
        });
        Self { url, transcript }
    }

    fn transcript(&self) -> Vec<u8> {
        self.transcript.lock().expect("transcript").clone()
    }
}

/// Copies one direction, keeping what passes.
async fn pump(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    recording: Arc<Mutex<Vec<u8>>>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        recording
            .lock()
            .expect("transcript")
            .extend_from_slice(&buffer[..read]);
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// A client of the relay whose every byte goes through `proxy`, pinning the
/// relay's certificate (which the proxy presents).
async fn client_through(proxy: &RecordingProxy, server: &ServerProcess, home: &TempDir) -> Client {
    let transport = HttpsTransport::new(
        &proxy.url,
        ServerTrust::pin(&server.fingerprint).expect("pin"),
    )
    .expect("transport");
    Client::open_with(home.path(), transport, KeyProtection::Unprotected)
        .await
        .expect("client")
}

/// Every way the password could be written into a request.
fn encodings(password: &str) -> Vec<Vec<u8>> {
    vec![
        password.as_bytes().to_vec(),
        STANDARD.encode(password).into_bytes(),
        URL_SAFE_NO_PAD.encode(password).into_bytes(),
        hex::encode(password).into_bytes(),
        serde_json::to_string(password).expect("json").into_bytes(),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// The OPAQUE record the relay keeps for `user`, from its database.
async fn stored_record(server: &ServerProcess, user: &str) -> String {
    let mut db = server.database().await;
    sqlx::query("SELECT password_hash FROM accounts WHERE username = $1")
        .bind(user)
        .fetch_one(&mut db)
        .await
        .expect("the account")
        .get(0)
}

/// Whether `record` lets `relay` verify `password` for `user`: the check an
/// attacker would run per guess.
fn verifies(relay: &PasswordServer, record: &[u8], user: &str, password: &str) -> bool {
    let (login, request) = PasswordLogin::start(password.as_bytes()).expect("blind");
    let Ok((state, response)) = relay.start_login(Some(record), &request, user) else {
        return false;
    };
    match login.finish(password.as_bytes(), &response, user) {
        Ok(Some(finalization)) => relay.finish_login(&state, &finalization, user),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_impersonated_with_its_tls_key_learns_no_password() {
    let server = ServerProcess::start();
    let proxy = RecordingProxy::start(&server).await;
    let home = TempDir::new("alice");
    let alice = client_through(&proxy, &server, &home).await;
    alice
        .register("alice", PASSWORD)
        .await
        .expect("register and log in through the proxy");
    // A step-up with the password (TOTP enrollment), then a wrong password,
    // then a password change with the password and a code.
    let (mut app, _codes) = enroll_totp(&alice, PASSWORD).await;
    let code = app.fresh_code().await;
    refused_with(
        alice
            .reauthenticate(Credentials::with(WRONG_PASSWORD, SecondFactor::Totp(&code)))
            .await,
        401,
        "bad_credentials",
    );
    let code = app.fresh_code().await;
    alice
        .change_password(
            Credentials::with(PASSWORD, SecondFactor::Totp(&code)),
            NEW_PASSWORD,
        )
        .await
        .expect("change the password through the proxy");
    let code = app.fresh_code().await;
    alice
        .reauthenticate(Credentials::with(NEW_PASSWORD, SecondFactor::Totp(&code)))
        .await
        .expect("the new password works");

    let transcript = proxy.transcript();
    // The recording is the plaintext of the whole exchange…
    for route in [
        "/v1/accounts/password",
        "/v1/password/login",
        "/v1/account/password/setup",
    ] {
        assert!(
            contains(&transcript, route.as_bytes()),
            "the proxy did not see {route}"
        );
    }
    // …and holds no password, however written, and no hash of one.
    for password in [PASSWORD, NEW_PASSWORD, WRONG_PASSWORD] {
        for encoding in encodings(password) {
            assert!(
                !contains(&transcript, &encoding),
                "the proxy recorded a password ({})",
                String::from_utf8_lossy(&encoding)
            );
        }
    }
    assert!(
        !contains(&transcript, b"\"password\""),
        "a password field went out"
    );
    assert!(
        !contains(&transcript, b"$argon2"),
        "a password hash went out"
    );

    // What the relay keeps is an OPAQUE record…
    let stored = stored_record(&server, "alice").await;
    let record = STANDARD
        .decode(stored.strip_prefix("opaque1$").expect("an OPAQUE record"))
        .expect("base64");
    // …which verifies no guess, not even the right password, without the
    // relay's OPAQUE setup: a copy of the database gives no offline attack.
    let impostor = PasswordServer::generate();
    assert!(!verifies(&impostor, &record, "alice", NEW_PASSWORD));
    // The setup is in the database only sealed under the server key, which
    // lives in the key directory.
    let mut db = server.database().await;
    let sealed: String =
        sqlx::query("SELECT sealed FROM relay_secrets WHERE name = 'opaque_setup'")
            .fetch_one(&mut db)
            .await
            .expect("the sealed setup")
            .get(0);
    assert!(sealed.len() > 100, "{sealed}");
    assert!(PasswordServer::from_bytes(sealed.as_bytes()).is_err());
}

/// An argon2id hash of `password`, as the relay stored passwords before.
fn legacy_hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("hash")
        .to_string()
}

/// Makes `user`'s stored password what a relay before OPAQUE kept.
async fn make_legacy(server: &ServerProcess, user: &str, password: &str) {
    let mut db = server.database().await;
    sqlx::query("UPDATE accounts SET password_hash = $1 WHERE username = $2")
        .bind(legacy_hash(password))
        .bind(user)
        .execute(&mut db)
        .await
        .expect("an account from before OPAQUE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_account_from_before_opaque_moves_to_it_at_its_next_login() {
    let server = ServerProcess::start();
    let proxy = RecordingProxy::start(&server).await;
    let first = TempDir::new("bob");
    let bob = client_through(&proxy, &server, &first).await;
    bob.register("bob", PASSWORD).await.expect("register");
    make_legacy(&server, "bob", PASSWORD).await;

    // Unless its user allowed it, a client sends no password on the relay's
    // word that the account is that old: whoever holds the relay's TLS key
    // could say so of any account (a downgrade from OPAQUE).
    let before = proxy.transcript().len();
    match bob.reauthenticate(Credentials::password(PASSWORD)).await {
        Err(ClientError::PasswordDowngrade) => {}
        other => panic!("expected the old way to be refused unasked, got {other:?}"),
    }
    let refused = &proxy.transcript()[before..];
    assert!(
        contains(refused, b"/v1/password/login"),
        "no start was sent"
    );
    for encoding in encodings(PASSWORD) {
        assert!(
            !contains(refused, &encoding),
            "the password went out unasked"
        );
    }
    assert!(!stored_record(&server, "bob").await.starts_with("opaque1$"));
    bob.allow_password_from_before_opaque(true);
    let before = proxy.transcript().len();

    // A wrong password the old way is refused and counted, as before.
    let wrong_home = TempDir::new("bob-wrong");
    let wrong = client_through(&proxy, &server, &wrong_home).await;
    wrong.allow_password_from_before_opaque(true);
    refused_with(
        wrong.login("bob", WRONG_PASSWORD).await,
        401,
        "bad_credentials",
    );
    assert!(!stored_record(&server, "bob").await.starts_with("opaque1$"));
    // The next login proves the old password (over TLS, this once) and
    // replaces the hash with an OPAQUE record.
    bob.reauthenticate(Credentials::password(PASSWORD))
        .await
        .expect("the old password, the old way, once");
    let stored = stored_record(&server, "bob").await;
    assert!(stored.starts_with("opaque1$"), "not upgraded: {stored}");
    let upgrade = &proxy.transcript()[before..];
    assert!(
        contains(upgrade, PASSWORD.as_bytes()),
        "the old way sends the password itself"
    );
    let log = server.admin(&["events", "--limit", "100"]);
    assert!(log.contains("password_changed"), "{log}");

    // From now on, the password never travels again.
    let after = proxy.transcript().len();
    bob.reauthenticate(Credentials::password(PASSWORD))
        .await
        .expect("the same password, now with OPAQUE");
    let since = &proxy.transcript()[after..];
    assert!(contains(since, b"/v1/password/login"));
    for encoding in encodings(PASSWORD) {
        assert!(!contains(since, &encoding), "the password went out again");
    }
    // The old way is closed for this account now.
    let raw = conclave_tests::RawDevice::fresh(&server);
    let legacy = raw
        .signed(
            "POST",
            "/v1/devices",
            &serde_json::json!({
                "username": "bob",
                "password": PASSWORD,
                "public_key": STANDARD.encode(raw.key.public().to_bytes()),
            }),
        )
        .await;
    assert_eq!(
        (legacy.status, legacy.json["error"].as_str()),
        (400, Some("bad_request")),
        "{:?}",
        legacy.json
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_that_no_longer_takes_old_passwords_sends_their_owners_to_the_admin() {
    let server = ServerProcess::start_with(vec!["--legacy-passwords".into(), "false".into()]);
    let home = TempDir::new("carol");
    let carol = server.client(home.path()).await;
    carol.register("carol", PASSWORD).await.expect("register");
    make_legacy(&server, "carol", PASSWORD).await;
    let other = TempDir::new("carol-2");
    let device = server.client(other.path()).await;
    device.allow_password_from_before_opaque(true);
    match device.login("carol", PASSWORD).await {
        Err(ClientError::Server {
            status: 400,
            code,
            message,
        }) if code == "bad_request" => {
            assert!(message.contains("recovery invite"), "{message}");
        }
        other => panic!("expected a 400 naming the recovery invite, got {other:?}"),
    }
    // The administrator's recovery invite brings carol back, with OPAQUE.
    let printed = server.admin(&["recover", "carol"]);
    let invite = printed
        .lines()
        .skip_while(|line| !line.starts_with("recovery invite for"))
        .nth(1)
        .expect("the invite, on the line after its heading")
        .trim()
        .to_owned();
    let back = TempDir::new("carol-3");
    let rescued = server.client(back.path()).await;
    rescued
        .login_with_recovery_invite("carol", &invite, NEW_PASSWORD)
        .await
        .expect("redeem the invite");
    assert!(
        stored_record(&server, "carol")
            .await
            .starts_with("opaque1$")
    );
}

/// The CLI sends a password from before OPAQUE only when its user says so
/// (`--password-from-before-opaque`); without the flag it refuses in one
/// line naming the flag, exits non-zero, and sends no password.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_sends_an_old_password_only_when_told_to() {
    let server = ServerProcess::start();
    let home = TempDir::new("dave");
    let password = format!("{PASSWORD}\n");
    let registered = run_conclave(
        &server,
        home.path(),
        &["--password-stdin", "--unprotected-key", "register", "dave"],
        &password,
    );
    assert!(
        registered.status.success(),
        "{}",
        String::from_utf8_lossy(&registered.stderr)
    );
    make_legacy(&server, "dave", PASSWORD).await;
    // Logging in again, as one renews a session, proves the password.
    let login = ["--password-stdin", "login", "dave"];

    let refused = run_conclave(&server, home.path(), &login, &password);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--password-from-before-opaque"), "{stderr}");
    assert!(!stored_record(&server, "dave").await.starts_with("opaque1$"));

    let told = [&["--password-from-before-opaque"][..], &login[..]].concat();
    let allowed = run_conclave(&server, home.path(), &told, &password);
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    assert!(stored_record(&server, "dave").await.starts_with("opaque1$"));
}
