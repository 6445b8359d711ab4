//! client-core against raw openmls: the same send, receive and commit,
//! once through the library (relay round trip, durable local state) and
//! once in memory with openmls alone.

use std::time::{Duration, Instant};

use conclave_client::{Client, HttpsTransport, ServerTrust};
use conclave_tests::TempDir;
use openmls::prelude::*;
use openmls_rust_crypto::OpenMlsRustCrypto;

use crate::PAYLOAD;

async fn start_relay(data: &TempDir) -> (String, HttpsTransport) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    // Data and keys apart, as the relay keeps them, inside the one
    // temporary directory.
    let mut config =
        conclave_server::Config::with_dirs(data.path().join("data"), data.path().join("keys"));
    config.open_registration = true;
    // The crowd signs in from one address faster than any person would.
    config.rate_limits = false;
    tokio::spawn(conclave_server::run(
        listener,
        config,
        std::future::pending(),
    ));
    let cert = data.path().join("tls-cert.pem");
    while !cert.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let transport = HttpsTransport::new(&url, ServerTrust::ca_file(&cert).unwrap()).unwrap();
    (url, transport)
}

fn per_op(total: Duration, ops: usize) -> f64 {
    total.as_secs_f64() * 1000.0 / ops as f64
}

/// client-core (real relay over loopback TLS, SQLite store) against raw openmls in memory.
pub async fn client_vs_openmls() {
    const N: usize = 100;
    const COMMITS: usize = 5;
    let text = "y".repeat(PAYLOAD);

    // Raw openmls: two members, in-memory storage.
    let cs = conclave_crypto::CIPHERSUITE;
    let member = |name: &str| {
        let provider = OpenMlsRustCrypto::default();
        let key = conclave_crypto::DeviceKey::generate();
        let credential = CredentialWithKey {
            credential: key
                .credential(&conclave_crypto::Username::parse(name).unwrap())
                .to_mls(),
            signature_key: key.public().to_bytes().to_vec().into(),
        };
        (provider, key, credential)
    };
    let (alice_p, alice_k, alice_c) = member("alice");
    let (bob_p, bob_k, bob_c) = member("bob");
    let config = MlsGroupCreateConfig::builder()
        .ciphersuite(cs)
        .use_ratchet_tree_extension(true)
        .build();
    let mut alice = MlsGroup::new(&alice_p, &alice_k, &config, alice_c).unwrap();
    let bob_kp = KeyPackage::builder()
        .build(cs, &bob_p, &bob_k, bob_c)
        .unwrap();
    let (_, welcome, _) = alice
        .add_members(&alice_p, &alice_k, &[bob_kp.key_package().clone()])
        .unwrap();
    alice.merge_pending_commit(&alice_p).unwrap();
    let welcome = {
        use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
        let bytes = welcome.tls_serialize_detached().unwrap();
        match MlsMessageIn::tls_deserialize_exact(&bytes)
            .unwrap()
            .extract()
        {
            MlsMessageBodyIn::Welcome(w) => w,
            _ => unreachable!("add_members returns a Welcome"),
        }
    };
    let mut bob = StagedWelcome::new_from_welcome(
        &bob_p,
        &MlsGroupJoinConfig::builder()
            .use_ratchet_tree_extension(true)
            .build(),
        welcome,
        None,
    )
    .unwrap()
    .into_group(&bob_p)
    .unwrap();
    let t = Instant::now();
    let mut sent = Vec::new();
    for _ in 0..N {
        sent.push(
            alice
                .create_message(&alice_p, &alice_k, text.as_bytes())
                .unwrap(),
        );
    }
    let raw_send = per_op(t.elapsed(), N);
    let t = Instant::now();
    for m in sent {
        use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
        let bytes = m.tls_serialize_detached().unwrap();
        let m = MlsMessageIn::tls_deserialize_exact(&bytes)
            .unwrap()
            .try_into_protocol_message()
            .unwrap();
        bob.process_message(&bob_p, m).unwrap();
    }
    let raw_receive = per_op(t.elapsed(), N);
    let mut kps = Vec::new();
    for i in 0..COMMITS {
        let (p, k, c) = member(&format!("new{i}"));
        kps.push(
            KeyPackage::builder()
                .build(cs, &p, &k, c)
                .unwrap()
                .key_package()
                .clone(),
        );
    }
    let t = Instant::now();
    for kp in kps {
        alice.add_members(&alice_p, &alice_k, &[kp]).unwrap();
        alice.merge_pending_commit(&alice_p).unwrap();
    }
    let raw_commit = per_op(t.elapsed(), COMMITS);

    // client-core over the real relay.
    let data = TempDir::new("bench-core");
    let (_, transport) = start_relay(&data).await;
    let homes: Vec<TempDir> = (0..2 + COMMITS)
        .map(|_| TempDir::new("bench-core-home"))
        .collect();
    let mut clients = Vec::new();
    for (i, home) in homes.iter().enumerate() {
        let client = Client::open_with(
            home.path(),
            transport.clone(),
            conclave_client::KeyProtection::Unprotected,
        )
        .await
        .unwrap();
        client
            .register(&format!("user{i}"), "bench-password-0003")
            .await
            .unwrap();
        clients.push(client);
    }
    let (a, b) = (&clients[0], &clients[1]);
    let pair = a.create_channel("pair").await.unwrap();
    pair.invite("user1").await.unwrap();
    b.sync().await.unwrap();
    let t = Instant::now();
    for _ in 0..N {
        pair.send(&text).await.unwrap();
    }
    let core_send = per_op(t.elapsed(), N);
    let t = Instant::now();
    let received = b.sync().await.unwrap().len();
    let core_receive = per_op(t.elapsed(), received.max(1));
    let t = Instant::now();
    for i in 0..COMMITS {
        pair.invite(&format!("user{}", i + 2)).await.unwrap();
    }
    let core_commit = per_op(t.elapsed(), COMMITS);

    println!("| operation | client-core ms | raw openmls ms | ratio |");
    println!("|---|---:|---:|---:|");
    for (name, core, raw) in [
        ("send 1 KiB", core_send, raw_send),
        ("receive 1 KiB", core_receive, raw_receive),
        ("commit (add one member)", core_commit, raw_commit),
    ] {
        println!("| {name} | {core:.2} | {raw:.3} | {:.0}x |", core / raw);
    }
    println!(
        "\nclient-core times include the relay round trip over loopback TLS and a durable SQLite transaction;"
    );
    println!(
        "raw openmls runs in memory with no network. `commit` in client-core also claims key packages and announces the channel name."
    );
}
