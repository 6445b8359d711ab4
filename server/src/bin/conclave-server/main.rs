//! `conclave-server`: see `conclave-server --help`. The command line is
//! here; the relay, its settings and its administration are the library's.

mod admin;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use conclave_server::{Config, KeyText, LogFormat, ServerError, Settings};

/// The command line: the relay's settings, and optionally a command to run
/// instead of serving.
#[derive(Debug, Parser)]
#[command(
    name = "conclave-server",
    version,
    about = "The Conclave relay: stores only MLS ciphertext and public keys"
)]
struct CommandLine {
    #[command(flatten)]
    flags: Flags,
    /// What to do instead of serving.
    #[command(subcommand)]
    command: Option<admin::Command>,
}

/// The relay's settings on the command line and in the environment. Every
/// flag is optional so that the config file and then the defaults can fill
/// the gaps.
#[derive(Debug, clap::Args)]
struct Flags {
    /// TOML config file (keys: the long names of these flags, with underscores).
    #[arg(long, env = "CONCLAVE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Address to serve HTTPS on [default: 127.0.0.1:8443].
    #[arg(long, env = "CONCLAVE_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory for the SQLite database, generated certificate and server key [default: ./conclave-data].
    #[arg(long, env = "CONCLAVE_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Use this database instead of SQLite in the data directory (postgres://… or sqlite://…).
    #[arg(long, env = "CONCLAVE_DATABASE_URL", global = true)]
    database_url: Option<conclave_server::DatabaseUrl>,
    /// Directory for the keys: server.key, log.key and a generated TLS key; kept apart from the
    /// data so that a backup or copy of the data directory holds no key
    /// [default: <data_dir>-keys, beside the data directory, created 0700].
    #[arg(long, env = "CONCLAVE_KEY_DIR", global = true)]
    key_dir: Option<PathBuf>,
    /// File holding the 32-byte key that seals TOTP secrets. Or give the key itself, in base64
    /// or hex, in CONCLAVE_SERVER_KEY [default: <key_dir>/server.key, created 0600].
    #[arg(long, env = "CONCLAVE_SERVER_KEY_FILE", global = true)]
    server_key_file: Option<PathBuf>,
    /// File holding the Ed25519 key that signs audit-log checkpoints. Or give the key itself
    /// (its PRIVATE+KEY+… line) in CONCLAVE_LOG_KEY [default: <key_dir>/log.key, created 0600].
    #[arg(long, env = "CONCLAVE_LOG_KEY_FILE", global = true)]
    log_key_file: Option<PathBuf>,
    /// The audit log's name (checkpoint origin), used when the log key is created
    /// [default: <WebAuthn host>/conclave-audit].
    #[arg(long, env = "CONCLAVE_LOG_ORIGIN", global = true)]
    log_origin: Option<String>,
    /// How often to delete message ciphertext past its retention, e.g. 10m [default: 10m].
    #[arg(long, env = "CONCLAVE_RETENTION_INTERVAL")]
    retention_interval: Option<String>,
    /// How often to sign a new audit-log checkpoint when the log has grown, e.g. 10s [default: 10s].
    #[arg(long, env = "CONCLAVE_CHECKPOINT_INTERVAL")]
    checkpoint_interval: Option<String>,
    /// Log lines as `text` (for people) or `json` (one object per line, for a
    /// log pipeline) [default: text]. Levels: `CONCLAVE_LOG`, e.g. `info`.
    #[arg(long, env = "CONCLAVE_LOG_FORMAT", global = true)]
    log_format: Option<LogFormat>,
    /// Serve Prometheus metrics at http://ADDR/metrics (plain HTTP: keep it on the
    /// operators' network) [default: off].
    #[arg(long, env = "CONCLAVE_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// PEM certificate chain. Without it a self-signed certificate is generated.
    #[arg(long, env = "CONCLAVE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "CONCLAVE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Largest accepted request body in bytes [default: 1048576].
    #[arg(long, env = "CONCLAVE_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Largest attachment in bytes, as uploaded (encrypted) [default: 1073741824, 1 GiB].
    #[arg(long, env = "CONCLAVE_MAX_UPLOAD_BYTES")]
    max_upload_bytes: Option<u64>,
    /// Attachment bytes each account may keep on the relay [default: 10737418240, 10 GiB].
    #[arg(long, env = "CONCLAVE_UPLOAD_QUOTA_BYTES")]
    upload_quota_bytes: Option<u64>,
    /// Let anyone register without an invite code [default: false].
    #[arg(long, env = "CONCLAVE_OPEN_REGISTRATION")]
    open_registration: Option<bool>,
    /// A device session ends after this long without a request, e.g. 7d, 12h [default: 7d].
    #[arg(long, env = "CONCLAVE_SESSION_IDLE_TIMEOUT")]
    session_idle_timeout: Option<String>,
    /// A device session ends this long after its login, whatever its use [default: 30d].
    #[arg(long, env = "CONCLAVE_SESSION_LIFETIME")]
    session_lifetime: Option<String>,
    /// The origin passkeys are bound to; its host is the WebAuthn RP id [default: https://localhost:<port>].
    #[arg(long, env = "CONCLAVE_WEBAUTHN_ORIGIN")]
    webauthn_origin: Option<String>,
    /// Record client IP addresses in authentication events [default: false].
    #[arg(long, env = "CONCLAVE_RECORD_CLIENT_IP")]
    record_client_ip: Option<bool>,
    /// Rate limits and lockout; turn off only for load tests [default: true].
    #[arg(long, env = "CONCLAVE_RATE_LIMITS")]
    rate_limits: Option<bool>,
    /// Requests a second one client address may make to the public
    /// transparency log, /log/ (no signature needed) [default: 50].
    #[arg(long, env = "CONCLAVE_PUBLIC_READS_PER_SECOND")]
    public_reads_per_second: Option<u32>,
    /// Requests one client address may make to /log/ at once, before the
    /// per-second pace applies [default: 500].
    #[arg(long, env = "CONCLAVE_PUBLIC_READ_BURST")]
    public_read_burst: Option<u32>,
    /// Signed requests a second one device may make, once its burst is spent
    /// [default: 100].
    #[arg(long, env = "CONCLAVE_DEVICE_REQUESTS_PER_SECOND")]
    device_requests_per_second: Option<u32>,
    /// Signed requests one device may make at once [default: 2000].
    #[arg(long, env = "CONCLAVE_DEVICE_REQUEST_BURST")]
    device_request_burst: Option<u32>,
    /// An account recovery (password + recovery code) removes the factors added in
    /// this many days before it [default: 7].
    #[arg(long, env = "CONCLAVE_RECOVERY_WINDOW_DAYS")]
    recovery_window_days: Option<u64>,
    /// Let accounts whose password predates OPAQUE sign in with it, once, which
    /// replaces it with an OPAQUE record; `false` sends them to `admin recover`
    /// [default: true].
    #[arg(long, env = "CONCLAVE_LEGACY_PASSWORDS")]
    legacy_passwords: Option<bool>,
    /// A witness to ask for a cosignature on each new checkpoint, as `<witness key> <URL>`
    /// (C2SP tlog-witness; `conclave-audit witness` runs one). Repeat for more; the
    /// environment variable takes them separated by `;`.
    #[arg(
        long = "witness",
        env = "CONCLAVE_WITNESSES",
        value_delimiter = ';',
        global = true
    )]
    witnesses: Vec<String>,
    /// How many witnesses' cosignatures clients require on a checkpoint [default: a majority].
    #[arg(long, env = "CONCLAVE_WITNESS_QUORUM", global = true)]
    witness_quorum: Option<u64>,
    /// How long clients accept checkpoints short of the quorum after the last that had it,
    /// e.g. 1h [default: 1h].
    #[arg(long, env = "CONCLAVE_WITNESS_GRACE", global = true)]
    witness_grace: Option<String>,
}

impl Flags {
    /// The flags over the config file they name, if any.
    fn settings(self) -> Result<Settings, ServerError> {
        let file = match &self.config {
            Some(path) => Settings::from_toml_file(path)?,
            None => Settings::default(),
        };
        let flags = Settings {
            listen: self.listen,
            log_format: self.log_format,
            metrics_listen: self.metrics_listen,
            data_dir: self.data_dir,
            key_dir: self.key_dir,
            database_url: self.database_url,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            max_body_bytes: self.max_body_bytes,
            max_upload_bytes: self.max_upload_bytes,
            upload_quota_bytes: self.upload_quota_bytes,
            server_key_file: self.server_key_file,
            server_key: key_from_environment("CONCLAVE_SERVER_KEY")?,
            log_key_file: self.log_key_file,
            log_key: key_from_environment("CONCLAVE_LOG_KEY")?,
            log_origin: self.log_origin,
            checkpoint_interval: self.checkpoint_interval,
            retention_interval: self.retention_interval,
            open_registration: self.open_registration,
            session_idle_timeout: self.session_idle_timeout,
            session_lifetime: self.session_lifetime,
            webauthn_origin: self.webauthn_origin,
            record_client_ip: self.record_client_ip,
            rate_limits: self.rate_limits,
            public_reads_per_second: self.public_reads_per_second,
            public_read_burst: self.public_read_burst,
            device_requests_per_second: self.device_requests_per_second,
            device_request_burst: self.device_request_burst,
            recovery_window_days: self.recovery_window_days,
            legacy_passwords: self.legacy_passwords,
            witnesses: (!self.witnesses.is_empty()).then_some(self.witnesses),
            witness_quorum: self.witness_quorum,
            witness_grace: self.witness_grace,
        };
        Ok(flags.or(file))
    }
}

/// A key given by value in the environment (read here, not by clap, so
/// that no flag puts it where `ps` shows it).
fn key_from_environment(variable: &str) -> Result<Option<KeyText>, ServerError> {
    match std::env::var(variable) {
        Ok(text) => Ok(Some(KeyText::from(text))),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ServerError::Setting(format!(
            "${variable} is not text: give the key in base64, hex or its PRIVATE+KEY line"
        ))),
    }
}

#[tokio::main]
async fn main() {
    if let Err(message) = serve(CommandLine::parse()).await {
        eprintln!("conclave-server: {message}");
        std::process::exit(1);
    }
}

/// Logs to stderr, as text or JSON lines; `CONCLAVE_LOG` sets the levels.
fn start_logging(format: LogFormat, admin_command: bool) {
    // An admin command prints its answer; only problems go to the log.
    // PostgreSQL's notices ("relation … already exists, skipping" at every
    // start) are not news.
    let default_level = if admin_command {
        "warn"
    } else {
        "info,sqlx::postgres::notice=warn"
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONCLAVE_LOG")
                .unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
}

async fn serve(command_line: CommandLine) -> Result<(), ServerError> {
    let CommandLine { flags, command } = command_line;
    let config = Config::resolve(flags.settings()?)?;
    start_logging(config.log_format, command.is_some());
    if let Some(admin::Command::Admin(command)) = command {
        return admin::run(config, command).await;
    }
    let listener =
        std::net::TcpListener::bind(config.listen).map_err(|source| ServerError::Host {
            what: format!("cannot listen on {}", config.listen),
            source,
        })?;
    // SIGTERM (an orchestrator stopping the node) or Ctrl-C: stop accepting,
    // finish what is in flight, send open streams away.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| ServerError::Host {
        what: "cannot watch for SIGTERM".into(),
        source,
    })?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    };
    conclave_server::run(listener, config, shutdown).await
}
