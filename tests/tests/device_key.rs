//! The device key at rest, against the real relay: a copy of a device's
//! `conclave.db` (with its -wal and -shm) taken to another machine signs
//! nothing, holds no clear key, and a wrong passphrase is refused; a key
//! kept in clear by an older version is sealed at the next unlock and its
//! clear copy is gone from the files; the CLI unlocks once per login
//! session and `conclave lock` ends that; a key kept under the operating
//! system's secret store needs no passphrase, and a copy of its home signs
//! nothing without that store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use conclave_client::{Client, ClientError, KeyProtection, KeyStatus, LocalPassphrase};
use conclave_crypto::DeviceKey;
use conclave_tests::ByName;
use conclave_tests::{Person, ServerProcess, TempDir, finish};
use sqlx::{Connection, Row};

const PASSWORD: &str = "correct horse battery staple";
const PASSPHRASE: &str = "a local passphrase, not the password";

fn passphrase() -> KeyProtection {
    KeyProtection::Passphrase(LocalPassphrase::new(PASSPHRASE))
}

/// The store's files as they are on disk now, copied into a new directory.
fn copy_store(home: &Path, to: &Path) -> Vec<Vec<u8>> {
    let mut copied = Vec::new();
    for name in ["conclave.db", "conclave.db-wal", "conclave.db-shm"] {
        if let Ok(bytes) = std::fs::read(home.join(name)) {
            std::fs::write(to.join(name), &bytes).unwrap();
            copied.push(bytes);
        }
    }
    assert!(!copied.is_empty(), "no store in {}", home.display());
    copied
}

/// Whether any 32 bytes of `files`, taken as an Ed25519 secret, are the
/// key of device `device_id`: what a thief would try.
fn holds_key_of(files: &[Vec<u8>], device_id: &str) -> bool {
    files.iter().any(|bytes| {
        bytes.windows(32).any(|window| {
            let secret: &[u8; 32] = window.try_into().unwrap();
            DeviceKey::from_secret_bytes(secret).device_id().to_string() == device_id
        })
    })
}

/// The identity row of a store, read as plain SQLite.
async fn identity_row(home: &Path) -> (String, Option<Vec<u8>>, Option<Vec<u8>>) {
    let url = format!("sqlite://{}", home.join("conclave.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let row = sqlx::query("SELECT protection, device_secret, sealed_key FROM identity")
        .fetch_one(&mut db)
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copied_store_signs_nothing() {
    let server = ServerProcess::start();
    let home = TempDir::new("alice");
    let alice = Client::open_with(home.path(), server.transport(), passphrase())
        .await
        .unwrap();
    alice.register("alice", PASSWORD).await.unwrap();
    assert_eq!(alice.key_status(), KeyStatus::Unlocked);
    let bob = Person::register(&server, "bob", PASSWORD).await;
    alice.create_channel("general").await.unwrap();
    alice.invite("general", "bob").await.unwrap();
    alice.send("general", "before the theft").await.unwrap();
    let device_id = alice.device_id().unwrap();

    // The thief copies the store of the running client, to another machine:
    // no session file, no passphrase in the environment.
    let stolen = TempDir::new("stolen");
    let files = copy_store(home.path(), stolen.path());
    // The search finds a key where there is one...
    let planted = DeviceKey::generate();
    let mut haystack = vec![0x55; 4096];
    haystack[1001..1033].copy_from_slice(planted.to_secret_bytes().as_ref());
    assert!(holds_key_of(&[haystack], &planted.device_id().to_string()));
    // ...and finds none in the thief's copy.
    let started = std::time::Instant::now();
    assert!(
        !holds_key_of(&files, &device_id),
        "no 32 bytes of the copied store are the device's key"
    );
    eprintln!(
        "searched {} bytes in {:?}",
        files.iter().map(Vec::len).sum::<usize>(),
        started.elapsed()
    );

    let thief = Client::open(stolen.path(), server.transport())
        .await
        .unwrap();
    assert_eq!(thief.key_status(), KeyStatus::Locked);
    assert_eq!(thief.username().as_deref(), Some("alice"));
    assert_eq!(thief.device_id().as_deref(), Some(device_id.as_str()));
    let refused = thief.send("general", "from the thief").await.unwrap_err();
    assert!(matches!(refused, ClientError::KeyLocked), "{refused}");
    assert!(refused.to_string().contains("passphrase"), "{refused}");
    assert!(matches!(
        thief.sync().await.unwrap_err(),
        ClientError::KeyLocked
    ));
    let guessed = thief
        .unlock(&LocalPassphrase::new("correct horse battery staple"))
        .await
        .unwrap_err();
    assert!(matches!(guessed, ClientError::WrongPassphrase), "{guessed}");
    assert!(
        guessed.to_string().contains("wrong local passphrase"),
        "{guessed}"
    );
    assert_eq!(thief.key_status(), KeyStatus::Locked);
    drop(thief);

    // What is stored is sealed, in the versioned format.
    let (protection, clear, sealed) = identity_row(stolen.path()).await;
    assert_eq!(protection, "sealed");
    assert_eq!(clear, None);
    assert_eq!(&sealed.unwrap()[..4], b"CDK\x01");

    // Nothing the thief tried reached bob; the owner, unlocked, goes on.
    bob.client.sync().await.unwrap();
    let seen: Vec<String> = bob
        .client
        .history("general")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(seen, ["before the theft"]);
    drop(alice);
    let again = Client::open(home.path(), server.transport()).await.unwrap();
    assert!(matches!(
        again.send("general", "locked").await.unwrap_err(),
        ClientError::KeyLocked
    ));
    again
        .unlock(&LocalPassphrase::new(PASSPHRASE))
        .await
        .unwrap();
    again.send("general", "after the theft").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_without_a_choice_of_protection_is_refused_before_the_relay() {
    let server = ServerProcess::start();
    let home = TempDir::new("undecided");
    let client = Client::open(home.path(), server.transport()).await.unwrap();
    let refused = client.register("carol", PASSWORD).await.unwrap_err();
    assert!(matches!(refused, ClientError::NoKeyProtection), "{refused}");
    assert_eq!(client.key_status(), KeyStatus::NotLoggedIn);
    // Nothing was created on the relay: the name is still free.
    drop(client);
    Person::register(&server, "carol", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_kept_in_clear_is_sealed_at_the_next_unlock() {
    let server = ServerProcess::start();
    let Person { client, home } = Person::register(&server, "alice", PASSWORD).await;
    client.create_channel("general").await.unwrap();
    drop(client);
    // As an older version left it: the key in clear, no choice recorded.
    let secret = {
        let url = format!("sqlite://{}", home.path().join("conclave.db").display());
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("UPDATE identity SET protection = 'clear'")
            .execute(&mut db)
            .await
            .unwrap();
        let (_, clear, _) = identity_row(home.path()).await;
        clear.unwrap()
    };
    assert_eq!(secret.len(), 32);

    let alice = Client::open(home.path(), server.transport()).await.unwrap();
    assert_eq!(alice.key_status(), KeyStatus::Clear);
    drop(alice);
    let contains = |files: &[Vec<u8>]| {
        files
            .iter()
            .any(|bytes| bytes.windows(32).any(|w| w == secret.as_slice()))
    };
    let scratch = TempDir::new("before-sealing");
    assert!(
        contains(&copy_store(home.path(), scratch.path())),
        "the search finds a clear key where there is one"
    );
    let alice = Client::open_with(home.path(), server.transport(), passphrase())
        .await
        .unwrap();
    assert_eq!(alice.key_status(), KeyStatus::Unlocked);
    alice.send("general", "sealed now").await.unwrap();

    // While it runs, and after: the clear key is nowhere in the files.
    let scratch = TempDir::new("after-sealing");
    let files = copy_store(home.path(), scratch.path());
    assert!(!contains(&files), "the clear key is gone from the store");
    drop(alice);
    let files = copy_store(home.path(), scratch.path());
    assert!(!contains(&files), "and stays gone once the store is closed");
    let (protection, clear, _) = identity_row(home.path()).await;
    assert_eq!((protection.as_str(), clear), ("sealed", None));

    let alice = Client::open(home.path(), server.transport()).await.unwrap();
    assert_eq!(alice.key_status(), KeyStatus::Locked);
    assert!(matches!(
        alice
            .unlock(&LocalPassphrase::new("not it"))
            .await
            .unwrap_err(),
        ClientError::WrongPassphrase
    ));
    alice
        .unlock(&LocalPassphrase::new(PASSPHRASE))
        .await
        .unwrap();
    alice.sync().await.unwrap();
}

/// `conclave` with a login session of its own (`runtime` as
/// `$XDG_RUNTIME_DIR`, or none) and no passphrase in the environment
/// unless `env_passphrase`.
fn conclave(
    server: &ServerProcess,
    home: &Path,
    runtime: Option<&Path>,
    env_passphrase: Option<&str>,
    args: &[&str],
    stdin: &str,
) -> Output {
    finish(
        conclave_command(server, home, runtime, env_passphrase, args),
        stdin,
    )
}

/// The command [`conclave`] runs. It never sees the session bus of whoever
/// runs the tests, so it cannot reach their secret store; the test of the
/// secret store gives it one of its own.
fn conclave_command(
    server: &ServerProcess,
    home: &Path,
    runtime: Option<&Path>,
    env_passphrase: Option<&str>,
    args: &[&str],
) -> Command {
    let mut command = conclave_tests::conclave_command(server, home, args);
    if let Some(runtime) = runtime {
        command.env("XDG_RUNTIME_DIR", runtime);
    }
    if let Some(passphrase) = env_passphrase {
        command.env("CONCLAVE_KEY_PASSPHRASE", passphrase);
    }
    command
}

fn session_files(runtime: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(runtime)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("conclave-")
        })
        .collect()
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_unlocks_once_per_login_session_until_lock() {
    use std::os::unix::fs::PermissionsExt;
    let server = ServerProcess::start();
    let home = TempDir::new("alice-cli");
    let runtime = TempDir::new("runtime");
    std::fs::set_permissions(runtime.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let run = |args: &[&str], env: Option<&str>, stdin: &str| {
        conclave(&server, home.path(), Some(runtime.path()), env, args, stdin)
    };
    let ok = |output: &Output| {
        assert!(output.status.success(), "{output:?}");
    };
    let said = |output: &Output| String::from_utf8_lossy(&output.stderr).into_owned();

    // Logging in makes a sealed key and opens the login session.
    let registered = run(
        &["--password-stdin", "register", "alice"],
        Some(PASSPHRASE),
        &format!("{PASSWORD}\n"),
    );
    ok(&registered);
    let (protection, clear, _) = identity_row(home.path()).await;
    assert_eq!((protection.as_str(), clear), ("sealed", None));
    let sessions = session_files(runtime.path());
    assert_eq!(sessions.len(), 1, "one session file");
    let mode = std::fs::metadata(&sessions[0])
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // The next commands of the session ask nothing (no terminal, no
    // passphrase given: they could not have).
    ok(&run(&["channel", "create", "general"], None, ""));
    ok(&run(&["send", "general", "hello"], None, ""));

    // `lock` ends the session: the next command cannot sign.
    let locked = run(&["lock"], None, "");
    ok(&locked);
    assert!(session_files(runtime.path()).is_empty());
    let refused = run(&["sync"], None, "");
    assert!(!refused.status.success());
    assert!(said(&refused).contains("key is locked"), "{refused:?}");

    // A wrong passphrase is refused, and opens no session.
    let wrong = run(&["--key-passphrase-stdin", "sync"], None, "not it\n");
    assert!(!wrong.status.success());
    assert!(said(&wrong).contains("wrong local passphrase"), "{wrong:?}");
    assert!(session_files(runtime.path()).is_empty());

    // The right one, once, unlocks the rest of the session.
    ok(&run(
        &["--key-passphrase-stdin", "sync"],
        None,
        &format!("{PASSPHRASE}\n"),
    ));
    ok(&run(&["send", "general", "again"], None, ""));

    // A session file others may read is refused, not used.
    let session = &session_files(runtime.path())[0];
    std::fs::set_permissions(session, std::fs::Permissions::from_mode(0o644)).unwrap();
    let shared = run(&["sync"], None, "");
    assert!(!shared.status.success());
    assert!(
        said(&shared).contains("refusing the key session file"),
        "{shared:?}"
    );
    ok(&run(&["lock"], None, ""));

    // Without a runtime directory, each process needs the passphrase.
    let alone = conclave(&server, home.path(), None, None, &["sync"], "");
    assert!(said(&alone).contains("key is locked"), "{alone:?}");
    ok(&conclave(
        &server,
        home.path(),
        None,
        Some(PASSPHRASE),
        &["sync"],
        "",
    ));
    assert!(session_files(runtime.path()).is_empty());
}

/// A D-Bus session bus of the test's own, with GNOME Keyring's Secret
/// Service on it (its login keyring made and unlocked with a throwaway
/// password), in a private home: what a desktop login gives, without
/// touching the secret store of whoever runs the tests. The keyring daemon
/// leaves with its bus.
struct PrivateSecretService {
    bus_address: String,
    bus_pid: u32,
    _home: TempDir,
}

impl PrivateSecretService {
    /// Started, or `None` (with the reason printed) when dbus-daemon or
    /// gnome-keyring-daemon is not installed, unless
    /// `CONCLAVE_TEST_REQUIRE_SECRET_STORE` is set (CI), where that fails.
    fn start() -> Option<Self> {
        let missing = ["dbus-daemon", "gnome-keyring-daemon"]
            .into_iter()
            .find(|tool| {
                Command::new("sh")
                    .args(["-c", &format!("command -v {tool}")])
                    .output()
                    .map(|o| !o.status.success())
                    .unwrap_or(true)
            });
        if let Some(tool) = missing {
            assert!(
                std::env::var_os("CONCLAVE_TEST_REQUIRE_SECRET_STORE").is_none(),
                "CONCLAVE_TEST_REQUIRE_SECRET_STORE is set but {tool} is not installed \
                 (Debian: apt-get install dbus-daemon gnome-keyring)"
            );
            eprintln!(
                "skipped: {tool} is not installed, so the operating system's secret store \
                 cannot be tested here (Debian: apt-get install dbus-daemon gnome-keyring)"
            );
            return None;
        }
        let home = TempDir::new("secret-service");
        let root = home.path().to_owned();
        let private_env = |command: &mut Command| {
            command
                .env("HOME", &root)
                .env("XDG_DATA_HOME", root.join("data"))
                .env("XDG_CONFIG_HOME", root.join("config"))
                .env("XDG_RUNTIME_DIR", root.join("run"))
                .env_remove("DISPLAY")
                .env_remove("WAYLAND_DISPLAY");
        };
        {
            use std::os::unix::fs::PermissionsExt;
            let run = home.path().join("run");
            std::fs::create_dir_all(&run).unwrap();
            std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let mut bus = Command::new("dbus-daemon");
        bus.args(["--session", "--fork", "--print-address=1", "--print-pid=1"]);
        private_env(&mut bus);
        let started = bus.output().unwrap();
        assert!(started.status.success(), "dbus-daemon: {started:?}");
        let printed = String::from_utf8(started.stdout).unwrap();
        let mut lines = printed.lines();
        let bus_address = lines.next().unwrap().to_owned();
        let bus_pid: u32 = lines.next().unwrap().trim().parse().unwrap();
        let service = Self {
            bus_address,
            bus_pid,
            _home: home,
        };
        let mut keyring = Command::new("gnome-keyring-daemon");
        keyring
            .args(["--unlock", "--components=secrets", "--daemonize"])
            .env("DBUS_SESSION_BUS_ADDRESS", &service.bus_address)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        private_env(&mut keyring);
        let mut child = keyring.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"throwaway login password")
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "gnome-keyring-daemon: {output:?}");
        Some(service)
    }
}

impl Drop for PrivateSecretService {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.bus_pid.to_string()).status();
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_os_secret_store_unlocks_without_a_passphrase_and_a_copy_signs_nothing() {
    let Some(secret_service) = PrivateSecretService::start() else {
        return;
    };
    let server = ServerProcess::start();
    let home = TempDir::new("alice-os-store");
    let run = |home: &Path, bus: Option<&str>, args: &[&str], stdin: &str| {
        let mut command = conclave_command(&server, home, None, None, args);
        match bus {
            Some(address) => command.env("DBUS_SESSION_BUS_ADDRESS", address),
            None => command.env_remove("DBUS_SESSION_BUS_ADDRESS"),
        };
        finish(command, stdin)
    };
    let said = |output: &Output| String::from_utf8_lossy(&output.stderr).into_owned();
    let bus = Some(secret_service.bus_address.as_str());

    // No passphrase anywhere and no terminal: with a secret store on the
    // session bus, the login seals the key under a key kept there.
    let registered = run(
        home.path(),
        bus,
        &["--password-stdin", "register", "alice"],
        &format!("{PASSWORD}\n"),
    );
    assert!(registered.status.success(), "{registered:?}");
    let (protection, clear, sealed) = identity_row(home.path()).await;
    assert_eq!((protection.as_str(), clear), ("sealed", None));
    assert_eq!(
        &sealed.unwrap()[..4],
        b"CDK\x02",
        "sealed under a stored key"
    );

    // Every later command unlocks from the store, asking nothing.
    for args in [
        &["channel", "create", "general"][..],
        &["send", "general", "hello"],
    ] {
        let output = run(home.path(), bus, args, "");
        assert!(output.status.success(), "{args:?}: {output:?}");
    }
    let device_id = stored_device_id(home.path()).await;

    // A copy of the store in another home, even on this same session:
    // the store holds no key for it, and no window of its files is the key.
    let copy = TempDir::new("alice-os-store-copy");
    let files = copy_store(home.path(), copy.path());
    assert!(!holds_key_of(&files, &device_id));
    let stolen = run(copy.path(), bus, &["send", "general", "from the copy"], "");
    assert!(!stolen.status.success(), "{stolen:?}");
    assert!(
        said(&stolen).contains("secret store holds no key for this home"),
        "{stolen:?}"
    );

    // The home itself, from a session without the store (another login,
    // another machine): refused with the reason, and a passphrase is no way in.
    let elsewhere = run(home.path(), None, &["send", "general", "hi"], "");
    assert!(!elsewhere.status.success(), "{elsewhere:?}");
    assert!(said(&elsewhere).contains("secret store"), "{elsewhere:?}");
    let mut guessed = conclave_command(&server, home.path(), None, Some(PASSPHRASE), &["sync"]);
    guessed.env_remove("DBUS_SESSION_BUS_ADDRESS");
    let guessed = finish(guessed, "");
    assert!(!guessed.status.success(), "{guessed:?}");

    // Asked for a passphrase-sealed key instead, a new home gets one.
    let other = TempDir::new("bob-passphrase");
    let bob = run(
        other.path(),
        bus,
        &[
            "--key-store",
            "passphrase",
            "--key-passphrase-stdin",
            "--password-stdin",
            "register",
            "bob",
        ],
        &format!("{PASSPHRASE}\n{PASSWORD}\n"),
    );
    assert!(bob.status.success(), "{bob:?}");
    let (_, _, sealed) = identity_row(other.path()).await;
    assert_eq!(&sealed.unwrap()[..4], b"CDK\x01");

    // And `--key-store os` where no store answers fails before the relay.
    let nowhere = TempDir::new("carol-no-store");
    let refused = run(
        nowhere.path(),
        None,
        &["--key-store", "os", "--password-stdin", "register", "carol"],
        &format!("{PASSWORD}\n"),
    );
    assert!(!refused.status.success());
    assert!(said(&refused).contains("cannot be reached"), "{refused:?}");
}

/// The device id a store's identity row names.
async fn stored_device_id(home: &Path) -> String {
    let url = format!("sqlite://{}", home.join("conclave.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query_scalar("SELECT device_id FROM identity")
        .fetch_one(&mut db)
        .await
        .unwrap()
}
