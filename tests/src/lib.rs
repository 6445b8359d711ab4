//! Test harness: starts the real `conclave-server` binary over real TLS,
//! builds real clients, and speaks raw signed HTTP for attack tests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod by_name;

pub use by_name::ByName;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_client::{
    BoxFuture, Client, HttpRequest, HttpResponse, HttpsTransport, PushStream, ServerTrust,
    Transport, TransportError,
};
use conclave_crypto::{DeviceKey, RequestSigner, SignedHeaders};
use serde_json::{Value, json};

/// A directory removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty directory: never one another test made (a name the
    /// clock alone chose was once handed to two tests started in the same
    /// tick, which then shared a relay).
    pub fn new(label: &str) -> Self {
        static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        std::fs::create_dir_all(std::env::temp_dir()).expect("the temporary directory");
        loop {
            let path = std::env::temp_dir().join(format!(
                "conclave-{label}-{}-{}-{}",
                std::process::id(),
                MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                hex::encode(rand_bytes())
            ));
            // `create_dir`, not `create_dir_all`: a directory that exists
            // already belongs to someone else.
            match std::fs::create_dir(&path) {
                Ok(()) => return Self(path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("create temp dir {}: {e}", path.display()),
            }
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_bytes() -> [u8; 6] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let mut out = [0u8; 6];
    out.copy_from_slice(&conclave_crypto::sha256_hex(&nanos.to_le_bytes()).as_bytes()[..6]);
    out
}

/// The workspace binaries in `names` that are not beside the running
/// executable (for the benchmark, which uses the ones built beforehand).
pub fn missing_binaries(names: &[&str]) -> Vec<PathBuf> {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("target/<profile>");
    names
        .iter()
        .map(|name| dir.join(name))
        .filter(|path| !path.exists())
        .collect()
}

/// The real `conclave-server` binary, built by cargo for this test run.
///
/// `cargo test` compiles a binary target only as a test harness, not as the
/// executable, so the harness asks cargo to build it (once per test process,
/// same profile and target directory). Cargo decides whether it is fresh.
fn server_binary() -> PathBuf {
    workspace_binary("conclave-server")
}

/// Builds (once per test process) and locates one of the workspace's
/// binaries: `conclave-server`, `conclave` or `conclave-audit`.
pub fn workspace_binary(name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, path)) = built.iter().find(|(n, _)| n == name) {
        return path.clone();
    }
    // Test executables live in target/<profile>/deps, the benchmark in
    // target/<profile>.
    let exe = std::env::current_exe().expect("current exe");
    let mut profile_dir = exe.parent().expect("target/<profile>");
    if profile_dir.file_name().is_some_and(|dir| dir == "deps") {
        profile_dir = profile_dir.parent().expect("target/<profile>");
    } else {
        // Not a test (the benchmark): never a build of its own, which would
        // be measured beside the relay. The binaries are built beforehand
        // (`cargo build --release --workspace --bins`); see `missing_binaries`.
        let binary = profile_dir.join(name);
        assert!(
            binary.exists(),
            "{} is missing: run `cargo build --release --workspace --bins` first",
            binary.display()
        );
        built.push((name.to_owned(), binary.clone()));
        return binary;
    }
    let mut build = Command::new(env!("CARGO"));
    // `--workspace`, not `-p …`: features are unified across the packages a
    // build selects, and `cargo test` selects them all. With the same
    // selection the binary reuses the dependencies `cargo test` just
    // compiled; with `-p` a cold run would compile tokio and everything above
    // it a second time.
    build.args(["build", "--quiet", "--workspace", "--bin", name]);
    if profile_dir.file_name().is_some_and(|dir| dir == "release") {
        build.arg("--release");
    }
    if let Some(target_dir) = profile_dir.parent() {
        build.arg("--target-dir").arg(target_dir);
    }
    let status = build
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap_or_else(|e| panic!("run cargo build for {name}: {e}"));
    assert!(status.success(), "building {name} failed");
    let binary = profile_dir.join(name);
    assert!(binary.exists(), "{} was not built", binary.display());
    built.push((name.to_owned(), binary.clone()));
    binary
}

/// `conclave --server … --pin-sha256 … --home HOME ARGS` against `server`,
/// with none of the runner's own Conclave settings, passphrase or session
/// bus (so it never reaches the runner's secret store), and pipes for its
/// input and output. Run it with [`finish`].
pub fn conclave_command(server: &ServerProcess, home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(workspace_binary("conclave"));
    command
        .env_remove("CONCLAVE_KEY_PASSPHRASE")
        .env_remove("CONCLAVE_HOME")
        .env_remove("CONCLAVE_SERVER")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .arg("--server")
        .arg(&server.url)
        .arg("--pin-sha256")
        .arg(&server.fingerprint)
        .arg("--home")
        .arg(home)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `command` with `stdin` as its whole input, to the end.
pub fn finish(mut command: Command, stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = command.spawn().expect("start the command");
    let mut input = child.stdin.take().expect("stdin");
    // A command that exits without reading its input closes the pipe.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    child.wait_with_output().expect("wait for the command")
}

/// [`conclave_command`], run with `stdin`: its output.
pub fn run_conclave(
    server: &ServerProcess,
    home: &Path,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    finish(conclave_command(server, home, args), stdin)
}

/// Most tests register freely; the invite tests say `--open-registration false`.
fn open_registration_unless_set(extra: &[String]) -> Vec<&'static str> {
    if extra.iter().any(|arg| arg == "--open-registration") {
        Vec::new()
    } else {
        vec!["--open-registration", "true"]
    }
}

static RELAY_LOG_LEVEL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The log level of every relay started from now on; tests want every line
/// (`debug`, the default), the benchmark only warnings.
pub fn set_relay_log_level(level: &str) {
    let _ = RELAY_LOG_LEVEL.set(level.to_owned());
}

fn relay_log_level() -> &'static str {
    RELAY_LOG_LEVEL.get().map_or("debug", String::as_str)
}

/// The real relay, as a child process.
#[derive(Debug)]
pub struct ServerProcess {
    child: Option<Child>,
    /// Data directory (database, certificate, log).
    pub data: TempDir,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// Certificate fingerprint the server printed.
    pub fingerprint: String,
    port: u16,
    extra: Vec<String>,
    /// Environment variables for the relay and its admin commands.
    env: Vec<(String, String)>,
}

impl ServerProcess {
    /// Starts a server on SQLite in a fresh data directory.
    pub fn start() -> Self {
        Self::start_with(Vec::new())
    }

    /// Starts a server with extra flags (e.g. `--database-url`).
    pub fn start_with(extra: Vec<String>) -> Self {
        Self::start_with_env(extra, Vec::new())
    }

    /// Starts a server with extra flags and environment variables (keys
    /// given by value: `CONCLAVE_SERVER_KEY`, `CONCLAVE_LOG_KEY`), which its
    /// restarts and admin commands get too.
    pub fn start_with_env(extra: Vec<String>, env: Vec<(String, String)>) -> Self {
        Self::start_in(TempDir::new("server"), extra, env)
    }

    /// Another relay process on a copy of this relay's database as it is
    /// now, with this relay's keys and certificate: what a relay that keeps a
    /// second log for some people would serve them. From here the two logs
    /// grow apart, each signed with the same log key.
    pub async fn fork(&self) -> Self {
        use sqlx::Executor;
        let data = TempDir::new("server");
        let copy = data.path().join("data");
        std::fs::create_dir(&copy).expect("the fork's data directory");
        let mut db = self.database().await;
        db.execute(
            sqlx::query("VACUUM INTO $1").bind(copy.join("conclave.db").display().to_string()),
        )
        .await
        .expect("copy the relay's database");
        let mut extra = self.extra.clone();
        extra.extend(self.shared_key_flags());
        let fork = Self::start_in(data, extra, self.env.clone());
        assert_eq!(fork.fingerprint, self.fingerprint, "one certificate");
        fork
    }

    fn start_in(data: TempDir, extra: Vec<String>, env: Vec<(String, String)>) -> Self {
        // Port 0: the server takes a free port itself and says which, so
        // tests running side by side can never be handed the same one.
        let mut server = Self {
            child: None,
            data,
            url: String::new(),
            fingerprint: String::new(),
            port: 0,
            extra,
            env,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.path().join("server.log"))
            .expect("open log");
        let mut child = Command::new(server_binary())
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            // A directory the server creates itself, as on a new machine.
            .arg(self.data.path().join("data"))
            .args(open_registration_unless_set(&self.extra))
            .args(&self.extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("CONCLAVE_LOG", relay_log_level())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start conclave-server");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut fingerprint = None;
        while fingerprint.is_none() && Instant::now() < deadline {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("conclave-server listening on ") {
                        let url = url.trim().to_owned();
                        self.port = url
                            .rsplit(':')
                            .next()
                            .and_then(|p| p.parse().ok())
                            .expect("a port in the listening line");
                        self.url = url;
                    }
                    if let Some(fp) = line.strip_prefix("certificate SHA-256 fingerprint: ") {
                        fingerprint = Some(fp.trim().to_owned());
                    }
                }
                _ => break,
            }
        }
        let Some(fingerprint) = fingerprint else {
            let _ = child.kill();
            let _ = child.wait();
            let log =
                std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default();
            panic!("the server did not start; its log:\n{log}");
        };
        self.fingerprint = fingerprint;
        // Keep draining stdout into the log so the child never blocks on a full pipe.
        let log_path = self.data.path().join("server.log");
        std::thread::spawn(move || {
            use std::io::Write;
            if let Ok(mut log) = std::fs::OpenOptions::new().append(true).open(log_path) {
                for line in lines.map_while(Result::ok) {
                    // One write per line: the server appends its log lines
                    // to the same file, and a line written in pieces could
                    // be split by one of them.
                    let _ = log.write_all(format!("{line}\n").as_bytes());
                }
            }
        });
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "server did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the server");
            let _ = child.wait();
        }
    }

    /// The flags that give another relay process this one's certificate and
    /// keys (TLS certificate and key, the key that seals TOTP secrets, the
    /// log signing key), as a deployment copies them.
    fn shared_key_flags(&self) -> Vec<String> {
        [
            ("--tls-cert", self.certificate()),
            ("--tls-key", self.key_dir().join("tls-key.pem")),
            ("--server-key-file", self.key_dir().join("server.key")),
            ("--log-key-file", self.key_dir().join("log.key")),
        ]
        .into_iter()
        .flat_map(|(flag, file)| [flag.to_owned(), file.display().to_string()])
        .collect()
    }

    /// Another relay node serving the same workspace: its own port and data
    /// directory, this node's database (`--database-url`), and the keys every
    /// node shares (TLS certificate and key, the key that seals TOTP secrets,
    /// the log signing key), as a deployment copies them to each node.
    pub fn another_node(&self) -> Self {
        let mut extra = self.extra.clone();
        extra.extend(self.shared_key_flags());
        let node = Self::start_with(extra);
        assert_eq!(
            node.fingerprint, self.fingerprint,
            "nodes share one certificate"
        );
        node
    }

    /// SIGTERM, as an orchestrator stops a node; waits up to `limit` for
    /// the process to exit and returns its exit code (`None`: still running,
    /// then killed).
    pub fn terminate(&mut self, limit: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + limit;
        loop {
            if let Some(exit) = child.try_wait().expect("wait for the server") {
                return exit.code();
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill_hard();
        self.spawn();
    }

    /// Runs `conclave-server admin ARGS` on this server's data (as its host
    /// would), asserting success; returns what it printed.
    pub fn admin(&self, args: &[&str]) -> String {
        let mut command = Command::new(server_binary());
        command.arg("--data-dir").arg(self.data.path().join("data"));
        if let Some(at) = self.extra.iter().position(|a| a == "--database-url") {
            command.args(&self.extra[at..at + 2]);
        }
        let output = command
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("admin")
            .args(args)
            .output()
            .expect("run conclave-server admin");
        assert!(
            output.status.success(),
            "admin {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// A transport trusting this server by fingerprint.
    pub fn transport(&self) -> HttpsTransport {
        HttpsTransport::new(&self.url, ServerTrust::pin(&self.fingerprint).expect("pin"))
            .expect("transport")
    }

    /// A client with its home in `home`. Its device key is kept in clear
    /// (the explicit opt-out), so tests can read it as a thief would.
    pub async fn client(&self, home: &Path) -> Client {
        Client::open_with(
            home,
            self.transport(),
            conclave_client::KeyProtection::Unprotected,
        )
        .await
        .expect("open client")
    }

    /// The server's SQLite database, opened directly: what an attacker who
    /// holds the relay's disk can read and rewrite.
    pub async fn database(&self) -> sqlx::SqliteConnection {
        use sqlx::Connection;
        let path = self.data.path().join("data").join("conclave.db");
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("open the server's database")
    }

    /// The certificate the server generated (trust it with `--ca-cert`).
    pub fn certificate(&self) -> PathBuf {
        self.data.path().join("data").join("tls-cert.pem")
    }

    /// The relay's key directory: by default beside its data directory
    /// (`data-keys`), never in it.
    pub fn key_dir(&self) -> PathBuf {
        self.data.path().join("data-keys")
    }

    /// Creates bot account `name` for `owner` (`admin bot`) and returns the
    /// password it prints once.
    pub fn create_bot(&self, name: &str, owner: &str) -> String {
        self.admin(&["bot", name, "--owner", owner])
            .lines()
            .find_map(|l| l.split_once("): ").map(|(_, p)| p.trim().to_owned()))
            .expect("admin bot prints the password")
    }

    /// A plain HTTPS client (no request signing) that trusts this server's
    /// certificate, with the base URL to use it with (`localhost`, the name
    /// the generated certificate carries), for unsigned routes such as
    /// `/healthz`. Its certificate also serves a bot's webhook endpoint.
    pub fn https_client(&self) -> (reqwest::Client, String) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let pem = std::fs::read(self.certificate()).expect("read the certificate");
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("a PEM certificate")])
            .build()
            .expect("an HTTPS client");
        (client, self.url.replace("127.0.0.1", "localhost"))
    }

    /// The log's verifier key, as the host admin prints it.
    pub fn log_key(&self) -> String {
        self.admin(&["log-key"])
            .lines()
            .next()
            .expect("log-key prints the verifier key first")
            .to_owned()
    }

    /// Every file under the data directory (database, WAL, log, certificate).
    pub fn files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.data.path(), &mut out);
        out
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill_hard();
        if std::thread::panicking() {
            // The test failed: what the relay said is usually why, and its
            // directory is about to go.
            let log =
                std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!(
                "--- the last {} lines of {}'s log ---\n{}",
                tail.len(),
                self.url,
                tail.join("\n")
            );
        }
    }
}

/// A device speaking raw signed HTTP, for attacks and malformed input.
#[derive(Debug)]
pub struct RawDevice {
    /// The device key.
    pub key: DeviceKey,
    transport: HttpsTransport,
}

/// A raw response.
#[derive(Debug)]
pub struct RawResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body (Null if not JSON).
    pub json: Value,
}

/// A TCP port on 127.0.0.1 that nothing listens on at the moment of asking
/// (for a process told to listen there).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// The value of the Prometheus sample line of `metrics` that starts with
/// `name` (labels included) followed by a space.
pub fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find(|line| line.starts_with(name) && line[name.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
}

/// Sends `flood` at once, against a relay pacing them at one a second after
/// a burst of `burst`: checks that each was answered 200 or 429
/// `slow_down` with a wait, and that no more passed than the burst and
/// one a second for as long as the flood took. Returns how many passed.
pub async fn paced_flood<F>(flood: impl IntoIterator<Item = F>, burst: usize) -> usize
where
    F: std::future::Future<Output = RawResponse>,
{
    let started = std::time::Instant::now();
    let answers = futures_util::future::join_all(flood).await;
    let elapsed = usize::try_from(started.elapsed().as_secs()).unwrap_or(usize::MAX);
    let passed = answers.iter().filter(|a| a.status == 200).count();
    assert!(
        passed <= burst + elapsed + 1,
        "{passed} of {} passed in {elapsed} s",
        answers.len()
    );
    for answer in answers.iter().filter(|a| a.status != 200) {
        assert_eq!(answer.status, 429, "only 200 or 429: {:?}", answer.json);
        assert_eq!(answer.json["error"], "slow_down", "{:?}", answer.json);
        assert!(answer.json["retry_after"].as_u64().unwrap_or(0) >= 1);
    }
    passed
}

impl RawDevice {
    /// Registers `username` and logs a fresh device in, by hand (the
    /// password set and proved with OPAQUE, as client-core does).
    pub async fn register(server: &ServerProcess, username: &str, password: &str) -> Self {
        use conclave_crypto::password::PasswordRegistration;
        let device = Self {
            key: DeviceKey::generate(),
            transport: server.transport(),
        };
        let (registration, request) =
            PasswordRegistration::start(password.as_bytes()).expect("blind");
        let setup = device
            .unsigned(
                "POST",
                "/v1/accounts/password",
                &json!({ "username": username, "request": STANDARD.encode(request) }),
            )
            .await;
        assert_eq!(setup.status, 200, "{:?}", setup.json);
        let response = STANDARD
            .decode(setup.json["response"].as_str().expect("response"))
            .expect("base64");
        let upload = registration
            .finish(password.as_bytes(), &response, username)
            .expect("registration");
        let created = device
            .unsigned(
                "POST",
                "/v1/accounts",
                &json!({ "username": username, "password_record": STANDARD.encode(upload) }),
            )
            .await;
        assert_eq!(created.status, 200, "{:?}", created.json);
        let logged_in = device.login(username, password).await;
        assert_eq!(logged_in.status, 200, "{:?}", logged_in.json);
        device
    }

    /// Proves `password` for `username` as this device, by hand: starts an
    /// OPAQUE login and finishes it. The proof's `opaque` field, or the
    /// start's refusal. A wrong password gives a proof whose finalization is
    /// null, as client-core sends it.
    pub async fn password_proof(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Value, RawResponse> {
        self.password_proof_with(username, password, Value::Null)
            .await
    }

    /// [`RawDevice::password_proof`] with a second factor sent with the
    /// start (a recovery code or a passkey assertion, as JSON).
    pub async fn password_proof_with(
        &self,
        username: &str,
        password: &str,
        second_factor: Value,
    ) -> Result<Value, RawResponse> {
        use conclave_crypto::password::PasswordLogin;
        let (login, request) = PasswordLogin::start(password.as_bytes()).expect("blind");
        let mut start = json!({
            "username": username,
            "public_key": STANDARD.encode(self.key.public().to_bytes()),
            "request": STANDARD.encode(request),
        });
        if !second_factor.is_null() {
            start["second_factor"] = second_factor;
        }
        let started = self.signed("POST", "/v1/password/login", &start).await;
        if started.status != 200 {
            return Err(started);
        }
        let response = STANDARD
            .decode(started.json["response"].as_str().expect("response"))
            .expect("base64");
        let finalization = login
            .finish(password.as_bytes(), &response, username)
            .expect("login answer");
        Ok(json!({
            "login_id": started.json["login_id"],
            "finalization": finalization.map(|bytes| STANDARD.encode(bytes)),
        }))
    }

    /// A login of this device that guesses nothing: the OPAQUE login starts
    /// (what the relay counts and answers) and the proof says the answer
    /// did not open, without running the key stretching a real client
    /// would. The cheapest thing a flood can send.
    pub async fn unopened_login(&self, username: &str) -> RawResponse {
        use conclave_crypto::password::PasswordLogin;
        let (_, request) = PasswordLogin::start(b"not a guess at all").expect("blind");
        let started = self
            .signed(
                "POST",
                "/v1/password/login",
                &json!({
                    "username": username,
                    "public_key": STANDARD.encode(self.key.public().to_bytes()),
                    "request": STANDARD.encode(request),
                }),
            )
            .await;
        if started.status != 200 {
            return started;
        }
        let login = json!({
            "username": username,
            "opaque": { "login_id": started.json["login_id"], "finalization": null },
            "public_key": STANDARD.encode(self.key.public().to_bytes()),
        });
        self.signed("POST", "/v1/devices", &login).await
    }

    /// A fresh key package of this device for account `user`, base64, its
    /// credential marked as `bot_owner`'s bot when one is given.
    pub fn key_package(&self, user: &str, bot_owner: Option<&str>) -> String {
        use conclave_crypto::{CIPHERSUITE, DeviceCredential, Username};
        use openmls::prelude::tls_codec::Serialize as _;
        use openmls::prelude::{CredentialWithKey, KeyPackage, MlsMessageOut};
        let provider = openmls_rust_crypto::OpenMlsRustCrypto::default();
        let credential =
            DeviceCredential::new(Username::parse(user).unwrap(), self.key.device_id())
                .with_bot_owner(bot_owner.map(|o| Username::parse(o).unwrap()));
        let bundle = KeyPackage::builder()
            .build(
                CIPHERSUITE,
                &provider,
                &self.key,
                CredentialWithKey {
                    credential: credential.to_mls(),
                    signature_key: self.key.public().to_bytes().to_vec().into(),
                },
            )
            .unwrap();
        let message = MlsMessageOut::from(bundle.key_package().clone());
        STANDARD.encode(message.tls_serialize_detached().unwrap())
    }

    /// Logs this device in with `password` alone, by hand.
    pub async fn login(&self, username: &str, password: &str) -> RawResponse {
        let opaque = match self.password_proof(username, password).await {
            Ok(opaque) => opaque,
            Err(refused) => return refused,
        };
        let login = json!({
            "username": username,
            "opaque": opaque,
            "public_key": STANDARD.encode(self.key.public().to_bytes()),
        });
        self.signed("POST", "/v1/devices", &login).await
    }

    /// A login attempt with a fresh device (for wrong-password tests).
    pub async fn register_attempt(
        server: &ServerProcess,
        username: &str,
        password: &str,
    ) -> RawResponse {
        let device = Self {
            key: DeviceKey::generate(),
            transport: server.transport(),
        };
        device.login(username, password).await
    }

    /// The device key of a client home (what an attacker holding that device
    /// has), for homes whose key is kept unprotected, as
    /// [`ServerProcess::client`] keeps it (a sealed one is refused: see
    /// `tests/tests/device_key.rs`).
    pub async fn from_home(server: &ServerProcess, home: &Path) -> Self {
        Self::from_home_with(server.transport(), home).await
    }

    /// [`RawDevice::from_home`] for any relay reachable through `transport`.
    pub async fn from_home_with(transport: HttpsTransport, home: &Path) -> Self {
        use sqlx::{Connection, Row};
        let url = format!("sqlite://{}", home.join("conclave.db").display());
        let mut db = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("open client store");
        let row = sqlx::query("SELECT device_secret FROM identity")
            .fetch_one(&mut db)
            .await
            .expect("identity");
        let secret: Vec<u8> = row.get(0);
        let secret: [u8; 32] = secret.try_into().expect("32-byte secret");
        Self {
            key: DeviceKey::from_secret_bytes(&secret),
            transport,
        }
    }

    /// Sends without a signature.
    pub async fn unsigned(&self, method: &'static str, path: &str, body: &Value) -> RawResponse {
        self.send_with(
            method,
            path,
            serde_json::to_vec(body).expect("json"),
            Vec::new(),
        )
        .await
    }

    /// Signs and sends.
    pub async fn signed(&self, method: &'static str, path: &str, body: &Value) -> RawResponse {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(body).expect("json")
        };
        let request = HttpRequest::signed(&self.key, method, path, bytes);
        self.send_with(method, path, request.body, request.headers)
            .await
    }

    /// Signature headers for a request at `timestamp`.
    pub fn sign(&self, method: &str, path: &str, body: &[u8], timestamp: u64) -> SignedHeaders {
        RequestSigner::new(&self.key).sign(method, path, body, timestamp)
    }

    /// Sends exactly these bytes and headers.
    pub async fn send_with(
        &self,
        method: &'static str,
        path: &str,
        body: Vec<u8>,
        headers: Vec<(&'static str, String)>,
    ) -> RawResponse {
        let response = self
            .transport
            .send(HttpRequest {
                method,
                path: path.to_owned(),
                headers,
                body,
            })
            .await
            .expect("reach server");
        RawResponse {
            status: response.status,
            json: serde_json::from_slice(&response.body).unwrap_or(Value::Null),
        }
    }

    /// Opens this device's push stream.
    pub async fn open_stream(&self) -> Box<dyn PushStream> {
        self.transport
            .open_stream(HttpRequest::signed(
                &self.key,
                "GET",
                "/v1/stream",
                Vec::new(),
            ))
            .await
            .expect("open stream")
    }
}

/// Unix seconds now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A syntactically valid MLS PrivateMessage (application content) for
/// `group_id` at `epoch`, with garbage ciphertext: it passes framing, so the
/// relay's later checks (membership, epoch) are what reject it.
pub fn forged_private_message(group_id: &[u8], epoch: u64) -> Vec<u8> {
    fn vec(out: &mut Vec<u8>, bytes: &[u8]) {
        assert!(bytes.len() < 64, "short vectors only");
        out.push(bytes.len() as u8); // MLS varint, one-byte form
        out.extend_from_slice(bytes);
    }
    let mut out = vec![0, 1, 0, 2]; // version mls10, wire format private_message
    vec(&mut out, group_id);
    out.extend_from_slice(&epoch.to_be_bytes());
    out.push(1); // content type: application
    vec(&mut out, b""); // authenticated data
    vec(&mut out, &[7u8; 28]); // encrypted sender data
    vec(&mut out, &[9u8; 40]); // ciphertext
    out
}

/// A fresh PostgreSQL database for one test, from `CONCLAVE_TEST_DATABASE_URL`.
///
/// Returns `None` (and says so) when the variable is unset. When it is set,
/// an unreachable database fails the test: CI must never skip silently.
pub async fn fresh_postgres(test: &str) -> Option<String> {
    use sqlx::{Connection, Executor};
    let Ok(base) = std::env::var("CONCLAVE_TEST_DATABASE_URL") else {
        println!("skipped {test} on PostgreSQL: CONCLAVE_TEST_DATABASE_URL is not set");
        return None;
    };
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| {
            panic!("CONCLAVE_TEST_DATABASE_URL is set but PostgreSQL is unreachable: {e}")
        });
    drop_databases_of_finished_runs(&mut admin).await;
    // The creating process id is part of the name, so later runs can tell
    // which databases are left over and which belong to a run in progress.
    let name = format!(
        "conclave_{}_{}_{}",
        std::process::id(),
        test.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
        hex::encode(rand_bytes())
    );
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create test database");
    let mut url = reqwest::Url::parse(&base).expect("database URL");
    url.set_path(&format!("/{name}"));
    Some(url.to_string())
}

/// Drops test databases whose creating process has exited (Linux: /proc).
async fn drop_databases_of_finished_runs(admin: &mut sqlx::PgConnection) {
    use sqlx::{Executor, Row};
    if !Path::new("/proc/self").exists() {
        return; // cannot tell finished runs from running ones here
    }
    let rows = sqlx::query("SELECT datname FROM pg_database WHERE datname LIKE 'conclave\\_%'")
        .fetch_all(&mut *admin)
        .await
        .unwrap_or_default();
    for row in rows {
        let name: String = row.get(0);
        let pid = name.split('_').nth(1).and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            // A failure here (still connected, say) only leaves it for the next run.
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS \"{name}\"").as_str())
                .await;
        }
    }
}

/// A transport that delivers requests but can lose the relay's answer to the
/// next post to a group: what a client sees when the relay accepts a message
/// and then dies (or the network drops) before replying.
#[derive(Debug, Clone)]
pub struct LossyTransport {
    inner: HttpsTransport,
    lose_next_post: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl LossyTransport {
    /// Wraps `inner`.
    pub fn new(inner: HttpsTransport) -> Self {
        Self {
            inner,
            lose_next_post: Default::default(),
        }
    }

    /// The answer to the next `POST /v1/groups/…/messages` will be lost.
    pub fn lose_next_post_answer(&self) {
        self.lose_next_post
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Transport for LossyTransport {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(async move {
            let group_post = request.method == "POST" && request.path.starts_with("/v1/groups/");
            let response = self.inner.send(request).await?;
            if group_post
                && self
                    .lose_next_post
                    .swap(false, std::sync::atomic::Ordering::SeqCst)
            {
                assert_eq!(
                    response.status, 200,
                    "the relay accepted the post whose answer is lost"
                );
                return Err(TransportError(
                    "connection reset (answer lost by the test)".into(),
                ));
            }
            Ok(response)
        })
    }

    fn open_stream(
        &self,
        request: HttpRequest,
    ) -> BoxFuture<'_, Result<Box<dyn PushStream>, TransportError>> {
        self.inner.open_stream(request)
    }
}

/// A relay that shows one person another log: this person's key-transparency
/// requests (`/v1/audit/…`) go to a fork of the relay ([`ServerProcess::fork`]),
/// everything else to the relay. Both sign with the same log key, so each
/// view passes every check the person makes alone.
#[derive(Debug, Clone)]
pub struct SplitViewTransport {
    relay: HttpsTransport,
    other_log: HttpsTransport,
}

impl SplitViewTransport {
    /// Messages through `relay`, the log from `other_log`.
    pub fn new(relay: HttpsTransport, other_log: HttpsTransport) -> Self {
        Self { relay, other_log }
    }
}

impl Transport for SplitViewTransport {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        if request.path.starts_with("/v1/audit/") {
            self.other_log.send(request)
        } else {
            self.relay.send(request)
        }
    }

    fn open_stream(
        &self,
        request: HttpRequest,
    ) -> BoxFuture<'_, Result<Box<dyn PushStream>, TransportError>> {
        self.relay.open_stream(request)
    }
}

/// The relay's own router, called in-process: no socket and no TLS, the same
/// handlers, storage and validation. Push streams need a real connection, so
/// clients on this transport receive through `sync`.
#[derive(Debug, Clone)]
pub struct InProcessTransport {
    router: axum::Router,
}

impl InProcessTransport {
    /// A relay with its SQLite database in `data`.
    pub async fn start(data: &TempDir) -> Self {
        Self::start_with(data, |_| {}).await
    }

    /// A relay with its SQLite database in `data`, and settings of the
    /// test's own (a manual clock, short lifetimes).
    pub async fn start_with(
        data: &TempDir,
        settle: impl FnOnce(&mut conclave_server::Config),
    ) -> Self {
        // Data and keys apart, as the relay keeps them, inside the one
        // temporary directory.
        let mut config =
            conclave_server::Config::with_dirs(data.path().join("data"), data.path().join("keys"));
        config.open_registration = true;
        settle(&mut config);
        Self {
            router: conclave_server::app(config).await.expect("relay router"),
        }
    }
}

impl Transport for InProcessTransport {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        use tower::ServiceExt;
        Box::pin(async move {
            let mut builder = http::Request::builder()
                .method(request.method)
                .uri(&request.path);
            for (name, value) in request.headers {
                builder = builder.header(name, value);
            }
            let http_request = builder
                .body(axum::body::Body::from(request.body))
                .map_err(|e| TransportError(format!("bad request: {e}")))?;
            let response = self
                .router
                .clone()
                .oneshot(http_request)
                .await
                .expect("axum routers are infallible");
            let status = response.status().as_u16();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .map_err(|e| TransportError(format!("reading response: {e}")))?;
            Ok(HttpResponse {
                status,
                body: body.to_vec(),
            })
        })
    }

    fn open_stream(
        &self,
        _request: HttpRequest,
    ) -> BoxFuture<'_, Result<Box<dyn PushStream>, TransportError>> {
        Box::pin(async { Err(TransportError("no push stream in-process: use sync".into())) })
    }
}

/// An authenticator app: TOTP codes from an `otpauth://` URI, each for a
/// time step the relay has not seen yet (the relay takes each step once).
#[derive(Debug)]
pub struct TotpApp {
    totp: totp_rs::Totp,
    next_step: u64,
}

impl TotpApp {
    /// Reads the URI an enrollment printed.
    pub fn from_uri(uri: &str) -> Self {
        Self {
            totp: totp_rs::Totp::from_url(uri).expect("otpauth URI"),
            next_step: 0,
        }
    }

    /// The code for `step` (for replay tests).
    pub fn code_at_step(&self, step: u64) -> String {
        self.totp.generate(step * 30).to_string()
    }

    /// The shared secret, base32 (to prove it appears nowhere it should not).
    pub fn secret_base32(&self) -> String {
        self.totp.secret().to_base32()
    }

    /// The last step handed out.
    pub fn last_step(&self) -> u64 {
        self.next_step.saturating_sub(1)
    }

    /// A code for an unused step the relay accepts now (the current one or
    /// the next, which drift allows); waits for a new step if both are spent.
    pub async fn fresh_code(&mut self) -> String {
        loop {
            let current = now() / 30;
            let step = self.next_step.max(current);
            if step <= current + 1 {
                self.next_step = step + 1;
                return self.code_at_step(step);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Enrolls TOTP for `client`'s account, which has no second factor yet (the
/// password is the step-up proof); returns the app and the recovery codes.
pub async fn enroll_totp(client: &Client, password: &str) -> (TotpApp, Vec<String>) {
    let enrollment = client
        .enroll_totp(conclave_client::Credentials::password(password))
        .await
        .expect("enroll TOTP");
    let mut app = TotpApp::from_uri(&enrollment.otpauth_uri);
    let code = app.fresh_code().await;
    let codes = client.confirm_totp(&code).await.expect("confirm TOTP");
    (app, codes.0)
}

impl RawDevice {
    /// A device with a fresh key that is not registered anywhere yet.
    pub fn fresh(server: &ServerProcess) -> Self {
        Self {
            key: DeviceKey::generate(),
            transport: server.transport(),
        }
    }
}

/// One device of one person: its client, and its home directory (removed
/// when the value is dropped).
#[derive(Debug)]
pub struct Person {
    /// The client.
    pub client: Client,
    /// Its home directory.
    pub home: TempDir,
}

impl Person {
    /// A device that is not logged in yet.
    pub async fn fresh(server: &ServerProcess, user: &str) -> Self {
        let home = TempDir::new(user);
        let client = server.client(home.path()).await;
        Self { client, home }
    }

    /// Registers `user` (the server has open registration) from a new device.
    pub async fn register(server: &ServerProcess, user: &str, password: &str) -> Self {
        let person = Self::fresh(server, user).await;
        person
            .client
            .register(user, password)
            .await
            .expect("register");
        person
    }

    /// Logs in another device of `user`, with a fresh code from the account's TOTP app.
    pub async fn login_with_totp(
        server: &ServerProcess,
        user: &str,
        password: &str,
        app: &mut TotpApp,
    ) -> Self {
        let person = Self::fresh(server, user).await;
        let code = app.fresh_code().await;
        person
            .client
            .login_with(
                user,
                conclave_client::Credentials::with(
                    password,
                    conclave_client::SecondFactor::Totp(&code),
                ),
            )
            .await
            .expect("login with TOTP");
        person
    }
}

/// Asserts that `result` is the relay's refusal with `status` and `code`.
pub fn refused_with(
    result: Result<impl std::fmt::Debug, conclave_client::ClientError>,
    status: u16,
    code: &str,
) {
    match result {
        Err(conclave_client::ClientError::Server {
            status: got,
            code: got_code,
            ..
        }) if got == status && got_code == code => {}
        other => panic!("expected {status} {code}, got {other:?}"),
    }
}
