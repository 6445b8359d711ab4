//! client-core against its floor and against raw openmls.
//!
//! The floor of a durable send, measured in the same run: one durable
//! SQLite commit on each side (the sender's local store, the relay's
//! append), one loopback TLS round trip through client-core's own
//! transport to a bare echo, and openmls encrypting the message. Beside
//! it, the same send, receive and commit in memory with openmls alone.

use std::time::{Duration, Instant};

use conclave_client::Client;
use conclave_tests::TempDir;
use openmls::prelude::*;
use openmls_rust_crypto::OpenMlsRustCrypto;

use crate::PAYLOAD;

fn per_op(total: Duration, ops: usize) -> f64 {
    total.as_secs_f64() * 1000.0 / ops as f64
}

/// A durable send against its floor, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct SendCost {
    pub send: f64,
    pub floor: f64,
}

/// Milliseconds per durable commit of one 1 KiB row, with the settings both
/// client-core and the relay open SQLite with (WAL, synchronous=FULL).
async fn durable_commit(dir: &TempDir) -> f64 {
    use sqlx::ConnectOptions;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    const N: usize = 100;
    let mut db = SqliteConnectOptions::new()
        .filename(dir.path().join("floor.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .connect()
        .await
        .unwrap();
    sqlx::query("CREATE TABLE rows (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        .execute(&mut db)
        .await
        .unwrap();
    let body = vec![7u8; PAYLOAD];
    let mut took = Duration::ZERO;
    for i in 0..N + 10 {
        let t = Instant::now();
        let mut tx = sqlx::Connection::begin(&mut db).await.unwrap();
        sqlx::query("INSERT INTO rows (body) VALUES ($1)")
            .bind(&body)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        // The first few warm the file up.
        if i >= 10 {
            took += t.elapsed();
        }
    }
    per_op(took, N)
}

/// Milliseconds per loopback TLS round trip of a body the size of a send's,
/// through client-core's transport to a bare echo.
async fn tls_round_trip() -> f64 {
    use conclave_client::{HttpRequest, Transport};
    const N: usize = 200;
    let echo = crate::bare::serve(crate::bare::echo());
    let body = vec![b'y'; 2 * PAYLOAD];
    let mut took = Duration::ZERO;
    for i in 0..N + 10 {
        let request = HttpRequest {
            method: "POST",
            path: "/echo".into(),
            headers: Vec::new(),
            body: body.clone(),
        };
        let t = Instant::now();
        let answer = echo.transport.send(request).await.unwrap();
        assert_eq!(answer.body.len(), body.len());
        // The first few open the connection.
        if i >= 10 {
            took += t.elapsed();
        }
    }
    per_op(took, N)
}

/// client-core (real relay over loopback TLS, SQLite store) against its
/// floor and against raw openmls in memory.
pub async fn client_vs_openmls() -> SendCost {
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
    // The relay as everywhere else here: its own process, over loopback TLS.
    let relay = crate::relay(Vec::new());
    let transport = crate::fanout::transport_to(&relay);
    let data = TempDir::new("bench-core");
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
    // Warm, as a client that has checked its channel's members already.
    pair.send("warm-up").await.unwrap();
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

    let commit = durable_commit(&data).await;
    let round_trip = tls_round_trip().await;
    let floor = 2.0 * commit + round_trip + raw_send;
    println!("| operation | client-core ms | floor ms | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| send 1 KiB, durable on both sides | {core_send:.2} | {floor:.2} | {:.1}x |",
        core_send / floor
    );
    println!(
        "\nThe floor, measured in this run: 2 durable SQLite commits of a 1 KiB row \
         ({commit:.2} ms each: the sender's store and the relay's append, WAL and \
         synchronous=FULL as both open SQLite) + one loopback TLS round trip of a \
         {} B body through client-core's transport to a bare axum echo ({round_trip:.2} ms) \
         + openmls encrypting 1 KiB in memory ({raw_send:.3} ms). Sends are one at a time, \
         after a first send that checked the channel's members.\n",
        2 * PAYLOAD
    );

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
        "raw openmls runs in memory with no network. `commit` in client-core also claims key packages and announces the channel name.\n"
    );
    SendCost {
        send: core_send,
        floor,
    }
}
