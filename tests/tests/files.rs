//! Encrypted attachments, end to end: the real relay over TLS and real
//! clients. Files are sealed before they leave the device, only members can
//! fetch the ciphertext, a download is checked before it is handed over, the
//! relay's limits hold, and its files hold no trace of a file's content.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use conclave_client::{ClientError, Content, FileRef, HistoryEntry, SearchQuery};
use conclave_tests::ByName;
use conclave_tests::{Person, RawDevice, ServerProcess, TempDir, fresh_postgres, workspace_binary};
use serde_json::json;
use sha2::Digest;
use sqlx::Row;

const PASSWORD: &str = "correct horse battery staple";

/// A file of `len` bytes that repeats `marker`, so a scan can look for it.
fn write_file(dir: &Path, name: &str, marker: &str, len: usize) -> (PathBuf, Vec<u8>) {
    let bytes: Vec<u8> = marker.bytes().cycle().take(len).collect();
    let path = dir.join(name);
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

async fn file_entry(person: &Person, channel: &str, name: &str) -> HistoryEntry {
    person
        .client
        .history(channel)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.file.as_ref().is_some_and(|f| f.name == name))
        .unwrap_or_else(|| panic!("no file {name} in {channel}"))
}

fn server_error_code(error: &ClientError) -> (u16, &str) {
    match error {
        ClientError::Server { status, code, .. } => (*status, code.as_str()),
        other => panic!("expected a refusal from the relay, got {other}"),
    }
}

async fn blob_count(server: &ServerProcess) -> i64 {
    let mut db = server.database().await;
    sqlx::query("SELECT COUNT(*) FROM blobs")
        .fetch_one(&mut db)
        .await
        .unwrap()
        .get(0)
}

/// No stray partial downloads next to where files were saved.
fn assert_no_partial_files(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            !name.starts_with(".conclave-download-"),
            "left behind: {name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn files_are_sealed_shared_checked_and_limited() {
    let server = ServerProcess::start_with(vec![
        "--max-upload-bytes".into(),
        "3000000".into(),
        "--upload-quota-bytes".into(),
        "5000000".into(),
    ]);
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let bob = Person::register(&server, "bob", PASSWORD).await;
    let carol = RawDevice::register(&server, "carol", PASSWORD).await;
    alice.client.create_channel("design").await.unwrap();
    alice.client.invite("design", "bob").await.unwrap();
    bob.client.sync().await.unwrap();
    let files = TempDir::new("files");

    // Two chunks and a bit: alice shares it, with every byte counted.
    let marker = "TOP-SECRET-BLUEPRINT-7f3a ";
    let (path, content) = write_file(files.path(), "rocket-blueprint.bin", marker, 2_200_000);
    let mut seen = Vec::new();
    alice
        .client
        .upload(
            "design",
            &path,
            "first draft of the nozzle",
            |done, total| seen.push((done, total)),
        )
        .await
        .unwrap();
    assert_eq!(seen.first(), Some(&(0, 2_200_000)));
    assert_eq!(seen.last(), Some(&(2_200_000, 2_200_000)));
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "progress only grows: {seen:?}"
    );

    // bob sees the file with its caption, finds it by name, and downloads it.
    bob.client.sync().await.unwrap();
    let entry = file_entry(&bob, "design", "rocket-blueprint.bin").await;
    let info = entry.file.clone().unwrap();
    assert_eq!(
        (entry.sender.as_str(), entry.text.as_str()),
        ("alice", "first draft of the nozzle")
    );
    assert_eq!(info.size, 2_200_000);
    assert_eq!(info.sha256, hex::encode(sha2::Sha256::digest(&content)));
    let found = bob
        .client
        .search(&SearchQuery {
            words: "blueprint".into(),
            ..SearchQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(found.iter().map(|e| e.seq).collect::<Vec<_>>(), [entry.seq]);
    let downloads = TempDir::new("downloads");
    let (saved, _) = bob
        .client
        .download("design", &entry.id, downloads.path(), |_, _| {})
        .await
        .unwrap();
    assert_eq!(saved, downloads.path().join("rocket-blueprint.bin"));
    assert_eq!(std::fs::read(&saved).unwrap(), content);
    // An existing file is never overwritten.
    let again = bob
        .client
        .download("design", &entry.id, &saved, |_, _| {})
        .await
        .unwrap_err();
    assert!(again.to_string().contains("already exists"), "{again}");

    // carol is in the workspace, not in the channel: the relay refuses her
    // the ciphertext, and refuses her an upload to the channel.
    let (blob_id, group_id): (String, String) = {
        let mut db = server.database().await;
        let row = sqlx::query("SELECT blob_id, group_id FROM blobs")
            .fetch_one(&mut db)
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    let refused = carol
        .signed(
            "GET",
            &format!("/v1/blobs/{blob_id}/chunks/0"),
            &serde_json::Value::Null,
        )
        .await;
    assert_eq!(refused.status, 403, "{:?}", refused.json);
    let refused = carol
        .signed(
            "POST",
            "/v1/blobs",
            &json!({ "group_id": group_id, "size": 100 }),
        )
        .await;
    assert_eq!(refused.status, 403, "{:?}", refused.json);
    // Nor may she overwrite alice's chunks.
    let refused = carol
        .signed("PUT", &format!("/v1/blobs/{blob_id}/chunks/0"), &json!({}))
        .await;
    assert_eq!(refused.status, 403, "{:?}", refused.json);

    // A relay that alters one byte of the ciphertext is caught, and nothing
    // is written where the file would go.
    {
        let mut db = server.database().await;
        let data: Vec<u8> =
            sqlx::query("SELECT data FROM blob_chunks WHERE blob_id = $1 AND idx = 1")
                .bind(&blob_id)
                .fetch_one(&mut db)
                .await
                .unwrap()
                .get(0);
        let mut altered = data.clone();
        altered[1000] ^= 0x01;
        sqlx::query("UPDATE blob_chunks SET data = $2 WHERE blob_id = $1 AND idx = 1")
            .bind(&blob_id)
            .bind(&altered)
            .execute(&mut db)
            .await
            .unwrap();
        let target = downloads.path().join("tampered.bin");
        let error = bob
            .client
            .download("design", &entry.id, &target, |_, _| {})
            .await
            .unwrap_err();
        assert!(matches!(error, ClientError::FileCheck(_)), "{error}");
        assert!(
            error.to_string().contains("chunk 1 does not decrypt"),
            "{error}"
        );
        assert!(!target.exists());
        assert_no_partial_files(downloads.path());
        sqlx::query("UPDATE blob_chunks SET data = $2 WHERE blob_id = $1 AND idx = 1")
            .bind(&blob_id)
            .bind(&data)
            .execute(&mut db)
            .await
            .unwrap();
    }

    // A sender who announces a hash the file does not have is caught too.
    let mut lying: FileRef = {
        use sqlx::Connection;
        let url = format!(
            "sqlite://{}",
            alice.home.path().join("conclave.db").display()
        );
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let text: String =
            sqlx::query("SELECT attachment FROM history WHERE attachment IS NOT NULL")
                .fetch_one(&mut db)
                .await
                .unwrap()
                .get(0);
        serde_json::from_str(&text).unwrap()
    };
    lying.sha256 = hex::encode(sha2::Sha256::digest(b"something else"));
    lying.name = "innocent.txt".into();
    alice
        .client
        .send_content("design", Content::File(lying))
        .await
        .unwrap();
    bob.client.sync().await.unwrap();
    let lie = file_entry(&bob, "design", "innocent.txt").await;
    let target = downloads.path().join("innocent.txt");
    let error = bob
        .client
        .download("design", &lie.id, &target, |_, _| {})
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("does not match the SHA-256"),
        "{error}"
    );
    assert!(!target.exists());
    assert_no_partial_files(downloads.path());

    // The relay's limits: one file at most 3 MB sealed, 5 MB per account
    // (alice keeps 2.2 MB there now).
    let (too_big, _) = write_file(files.path(), "huge.bin", "x", 3_100_000);
    let error = alice
        .client
        .upload("design", &too_big, "", |_, _| {})
        .await
        .unwrap_err();
    assert_eq!(
        server_error_code(&error),
        (413, "file_too_large"),
        "{error}"
    );
    let (two_mb, _) = write_file(files.path(), "two.bin", "y", 1_500_000);
    alice
        .client
        .upload("design", &two_mb, "", |_, _| {})
        .await
        .unwrap();
    let before = blob_count(&server).await;
    let (more, _) = write_file(files.path(), "more.bin", "z", 2_500_000);
    let error = alice
        .client
        .upload("design", &more, "", |_, _| {})
        .await
        .unwrap_err();
    assert_eq!(
        server_error_code(&error),
        (413, "quota_exceeded"),
        "{error}"
    );
    assert!(error.to_string().contains("this file needs"), "{error}");
    assert_eq!(
        blob_count(&server).await,
        before,
        "a refused upload leaves nothing"
    );
    // bob has his own quota.
    bob.client
        .upload("design", &more, "", |_, _| {})
        .await
        .unwrap();

    // Deleting the message takes the ciphertext off the relay too.
    let own = file_entry(&alice, "design", "rocket-blueprint.bin").await;
    alice.client.delete("design", &own.id).await.unwrap();
    let mut db = server.database().await;
    let left: i64 = sqlx::query("SELECT COUNT(*) FROM blobs WHERE blob_id = $1")
        .bind(&blob_id)
        .fetch_one(&mut db)
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    bob.client.sync().await.unwrap();
    let tombstone = bob
        .client
        .history("design")
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.id == entry.id)
        .unwrap();
    assert!(tombstone.deleted && tombstone.file.is_none());

    // Nothing of a file, its name or its caption is on the relay's disk.
    for file in server.files() {
        let bytes = std::fs::read(&file).unwrap();
        for needle in [
            &marker.as_bytes()[..20],
            b"rocket-blueprint",
            b"nozzle",
            b"innocent.txt",
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds {:?} in clear",
                file.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_holds_under_concurrent_uploads_on_both_backends() {
    let mut servers = vec![("sqlite", Vec::new())];
    if let Some(url) = fresh_postgres("quota_holds").await {
        servers.push(("postgres", vec!["--database-url".to_owned(), url]));
    }
    for (backend, mut extra) in servers {
        extra.extend(["--upload-quota-bytes".to_owned(), "1000000".to_owned()]);
        let server = ServerProcess::start_with(extra);
        let alice = Person::register(&server, "alice", PASSWORD).await;
        alice.client.create_channel("ops").await.unwrap();
        let group_id = alice.client.channels().await.unwrap()[0].group_id.clone();
        let device = RawDevice::from_home(&server, alice.home.path()).await;
        // Six uploads of 300 kB at once against a 1 MB quota: three fit.
        let sealed = conclave_crypto::attachment::sealed_len(300_000);
        let body = json!({ "group_id": group_id, "size": sealed });
        let attempts = (0..6).map(|_| device.signed("POST", "/v1/blobs", &body));
        let statuses: Vec<u16> = futures_util::future::join_all(attempts)
            .await
            .iter()
            .map(|r| r.status)
            .collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            3,
            "{backend}: {statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 413).count(),
            3,
            "{backend}: {statuses:?}"
        );

        // And a small file goes round trip on this backend.
        let bob = Person::register(&server, "bob", PASSWORD).await;
        alice.client.invite("ops", "bob").await.unwrap();
        bob.client.sync().await.unwrap();
        let dir = TempDir::new("files");
        let (path, content) = write_file(dir.path(), "notes.txt", "meeting notes ", 10_000);
        alice
            .client
            .upload("ops", &path, "", |_, _| {})
            .await
            .unwrap();
        bob.client.sync().await.unwrap();
        let entry = file_entry(&bob, "ops", "notes.txt").await;
        let target = dir.path().join("copy.txt");
        bob.client
            .download("ops", &entry.id, &target, |_, _| {})
            .await
            .unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), content, "{backend}");
    }
}

/// The largest resident set a process reached, polled until it exits, and
/// what it printed.
fn peak_memory_kb(mut child: std::process::Child) -> (std::process::ExitStatus, u64, String) {
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            for line in text.lines() {
                if let Some(value) = line.strip_prefix("VmHWM:") {
                    let kb = value
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse()
                        .unwrap_or(0);
                    peak = peak.max(kb);
                }
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut said = String::new();
            if let Some(mut out) = child.stdout.take() {
                use std::io::Read;
                out.read_to_string(&mut said).unwrap();
            }
            return (status, peak, said);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_200_mb_file_keeps_the_client_memory_bounded() {
    const SIZE: usize = 200 * 1024 * 1024;
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let bob = Person::register(&server, "bob", PASSWORD).await;
    alice.client.create_channel("media").await.unwrap();
    alice.client.invite("media", "bob").await.unwrap();
    bob.client.sync().await.unwrap();
    // The CLI takes each home directory's lock: close these clients, keep the homes.
    let Person {
        client: alice_client,
        home: alice_home,
    } = alice;
    let Person {
        client: bob_client,
        home: bob_home,
    } = bob;
    drop((alice_client, bob_client));

    // Written a megabyte at a time: the test does not hold it either.
    let dir = TempDir::new("big");
    let path = dir.path().join("launch-video.mp4");
    let mut hasher = sha2::Sha256::new();
    {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut block = vec![0u8; 1024 * 1024];
        for i in 0..(SIZE / block.len()) {
            for (j, byte) in block.iter_mut().enumerate() {
                *byte = (i * 31 + j * 7) as u8;
            }
            hasher.update(&block);
            out.write_all(&block).unwrap();
        }
    }
    let expected = hex::encode(hasher.finalize());

    let conclave = |home: &Path| {
        let mut command = Command::new(workspace_binary("conclave"));
        command
            .arg("--home")
            .arg(home)
            .arg("--server")
            .arg(&server.url)
            .arg("--pin-sha256")
            .arg(&server.fingerprint)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        command
    };
    let started = Instant::now();
    let upload = conclave(alice_home.path())
        .args(["upload", "media"])
        .arg(&path)
        .spawn()
        .unwrap();
    let (status, upload_peak, said) = peak_memory_kb(upload);
    assert!(status.success(), "upload failed");
    // "shared … in media (#SEQ)"
    let seq = said
        .rsplit("(#")
        .next()
        .and_then(|s| s.trim().strip_suffix(')'))
        .unwrap_or_else(|| panic!("upload said {said:?}"))
        .to_owned();
    println!(
        "uploaded 200 MiB in {:?}, peak RSS {upload_peak} kB",
        started.elapsed()
    );

    let saved = dir.path().join("copy.mp4");
    let download = conclave(bob_home.path())
        .args(["download", "media", &seq])
        .arg(&saved)
        .spawn()
        .unwrap();
    let (status, download_peak, _) = peak_memory_kb(download);
    assert!(status.success(), "download failed");

    // Bounded: far below the file's 200 MiB (a client holding the file
    // whole would show at least that much).
    for (what, peak) in [("upload", upload_peak), ("download", download_peak)] {
        assert!(peak > 0, "could not read the {what}'s memory");
        assert!(
            peak < 96 * 1024,
            "{what} peaked at {peak} kB for a 200 MiB file"
        );
    }
    let mut hasher = sha2::Sha256::new();
    let mut file = std::fs::File::open(&saved).unwrap();
    std::io::copy(&mut file, &mut hasher).unwrap();
    assert_eq!(hex::encode(hasher.finalize()), expected);
}
