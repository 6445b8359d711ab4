//! Server settings from flags, environment variables and a TOML file, in that
//! order of precedence, falling back to defaults that need no setup.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Command line and environment. Every field is optional so that the config
/// file and then the defaults can fill the gaps.
#[derive(Debug, clap::Args, Default)]
pub struct Args {
    /// TOML config file (keys: the long names of these flags, with underscores).
    #[arg(long, env = "CONCLAVE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address to serve HTTPS on [default: 127.0.0.1:8443].
    #[arg(long, env = "CONCLAVE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the SQLite database, generated certificate and server key [default: ./conclave-data].
    #[arg(long, env = "CONCLAVE_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Use this database instead of SQLite in the data directory (postgres://… or sqlite://…).
    #[arg(long, env = "CONCLAVE_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// File holding the 32-byte key that seals TOTP secrets; keep it out of database backups
    /// [default: <data_dir>/server.key, created 0600].
    #[arg(long, env = "CONCLAVE_SERVER_KEY_FILE", global = true)]
    pub server_key_file: Option<PathBuf>,
    /// File holding the Ed25519 key that signs audit-log checkpoints
    /// [default: <data_dir>/log.key, created 0600].
    #[arg(long, env = "CONCLAVE_LOG_KEY_FILE", global = true)]
    pub log_key_file: Option<PathBuf>,
    /// The audit log's name (checkpoint origin), used when the log key is created
    /// [default: <WebAuthn host>/conclave-audit].
    #[arg(long, env = "CONCLAVE_LOG_ORIGIN", global = true)]
    pub log_origin: Option<String>,
    /// How often to delete message ciphertext past its retention, e.g. 10m [default: 10m].
    #[arg(long, env = "CONCLAVE_RETENTION_INTERVAL")]
    pub retention_interval: Option<String>,
    /// How often to sign a new audit-log checkpoint when the log has grown, e.g. 10s [default: 10s].
    #[arg(long, env = "CONCLAVE_CHECKPOINT_INTERVAL")]
    pub checkpoint_interval: Option<String>,
    /// Log lines as `text` (for people) or `json` (one object per line, for a
    /// log pipeline) [default: text]. Levels: `CONCLAVE_LOG`, e.g. `info`.
    #[arg(long, env = "CONCLAVE_LOG_FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
    /// Serve Prometheus metrics at http://ADDR/metrics (plain HTTP: keep it on the
    /// operators' network) [default: off].
    #[arg(long, env = "CONCLAVE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// PEM certificate chain. Without it a self-signed certificate is generated.
    #[arg(long, env = "CONCLAVE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "CONCLAVE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Largest accepted request body in bytes [default: 1048576].
    #[arg(long, env = "CONCLAVE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Largest attachment in bytes, as uploaded (encrypted) [default: 1073741824, 1 GiB].
    #[arg(long, env = "CONCLAVE_MAX_UPLOAD_BYTES")]
    pub max_upload_bytes: Option<u64>,
    /// Attachment bytes each account may keep on the relay [default: 10737418240, 10 GiB].
    #[arg(long, env = "CONCLAVE_UPLOAD_QUOTA_BYTES")]
    pub upload_quota_bytes: Option<u64>,
    /// Let anyone register without an invite code [default: false].
    #[arg(long, env = "CONCLAVE_OPEN_REGISTRATION")]
    pub open_registration: Option<bool>,
    /// A device session ends after this long without a request, e.g. 7d, 12h [default: 7d].
    #[arg(long, env = "CONCLAVE_SESSION_IDLE_TIMEOUT")]
    pub session_idle_timeout: Option<String>,
    /// A device session ends this long after its login, whatever its use [default: 30d].
    #[arg(long, env = "CONCLAVE_SESSION_LIFETIME")]
    pub session_lifetime: Option<String>,
    /// The origin passkeys are bound to; its host is the WebAuthn RP id [default: https://localhost:<port>].
    #[arg(long, env = "CONCLAVE_WEBAUTHN_ORIGIN")]
    pub webauthn_origin: Option<String>,
    /// Record client IP addresses in authentication events [default: false].
    #[arg(long, env = "CONCLAVE_RECORD_CLIENT_IP")]
    pub record_client_ip: Option<bool>,
    /// Rate limits and lockout; turn off only for load tests [default: true].
    #[arg(long, env = "CONCLAVE_RATE_LIMITS")]
    pub rate_limits: Option<bool>,
    /// An account recovery (password + recovery code) removes the factors added in
    /// this many days before it [default: 7].
    #[arg(long, env = "CONCLAVE_RECOVERY_WINDOW_DAYS")]
    pub recovery_window_days: Option<u64>,
}

/// How log lines are written. Neither form ever carries message content,
/// passwords, codes, keys or signatures: the code logs ids and outcomes only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields).
    Json,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    log_format: Option<LogFormat>,
    metrics_listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_body_bytes: Option<usize>,
    max_upload_bytes: Option<u64>,
    upload_quota_bytes: Option<u64>,
    server_key_file: Option<PathBuf>,
    log_key_file: Option<PathBuf>,
    log_origin: Option<String>,
    checkpoint_interval: Option<String>,
    retention_interval: Option<String>,
    open_registration: Option<bool>,
    session_idle_timeout: Option<String>,
    session_lifetime: Option<String>,
    webauthn_origin: Option<String>,
    record_client_ip: Option<bool>,
    rate_limits: Option<bool>,
    recovery_window_days: Option<u64>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// Data directory (SQLite database, generated certificate).
    pub data_dir: PathBuf,
    /// Database URL; `None` means SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// Certificate and key files, if given.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Body size limit.
    pub max_body_bytes: usize,
    /// Largest attachment (its encrypted size).
    pub max_upload_bytes: u64,
    /// Attachment bytes each account may keep.
    pub upload_quota_bytes: u64,
    /// The sealing key file (outside the database).
    pub server_key_file: PathBuf,
    /// The audit-log signing key file.
    pub log_key_file: PathBuf,
    /// The audit log's origin, for a new log key.
    pub log_origin: String,
    /// Seconds between checkpoint signings.
    pub checkpoint_interval: u64,
    /// Seconds between retention runs.
    pub retention_interval: u64,
    /// Registration without an invite.
    pub open_registration: bool,
    /// Seconds without a request after which a session ends.
    pub session_idle_timeout: u64,
    /// Seconds after login after which a session ends.
    pub session_lifetime: u64,
    /// WebAuthn origin.
    pub webauthn_origin: String,
    /// Whether authentication events carry the client address.
    pub record_client_ip: bool,
    /// Whether rate limits and lockout apply.
    pub rate_limits: bool,
    /// Days before an account recovery whose new factors it removes.
    pub recovery_window_days: u64,
}

impl Config {
    /// Defaults for everything, with data in `data_dir`.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            metrics_listen: None,
            log_format: LogFormat::Text,
            server_key_file: data_dir.join("server.key"),
            log_key_file: data_dir.join("log.key"),
            log_origin: "localhost/conclave-audit".into(),
            checkpoint_interval: 10,
            retention_interval: 600,
            data_dir,
            database_url: None,
            tls: None,
            max_body_bytes: 1 << 20,
            max_upload_bytes: 1 << 30,
            upload_quota_bytes: 10 << 30,
            open_registration: false,
            session_idle_timeout: 7 * DAY,
            session_lifetime: 30 * DAY,
            webauthn_origin: "https://localhost:8443".into(),
            record_client_ip: false,
            rate_limits: true,
            recovery_window_days: 7,
        }
    }

    /// Merges flags/environment over the config file over the defaults.
    pub fn resolve(args: Args) -> Result<Self, String> {
        let file = match &args.config {
            Some(path) => read_file_config(path)?,
            None => FileConfig::default(),
        };
        let mut config = Self::with_data_dir(
            args.data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("conclave-data")),
        );
        if let Some(listen) = args.listen.or(file.listen) {
            config.listen = listen;
        }
        config.webauthn_origin = args
            .webauthn_origin
            .or(file.webauthn_origin)
            .unwrap_or_else(|| format!("https://localhost:{}", config.listen.port()));
        if let Some(path) = args.server_key_file.or(file.server_key_file) {
            config.server_key_file = path;
        }
        if let Some(path) = args.log_key_file.or(file.log_key_file) {
            config.log_key_file = path;
        }
        config.log_origin = match args.log_origin.or(file.log_origin) {
            Some(origin) => origin,
            None => {
                let host = url::Url::parse(&config.webauthn_origin)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_else(|| "localhost".into());
                format!("{host}/conclave-audit")
            }
        };
        if let Some(text) = args.checkpoint_interval.or(file.checkpoint_interval) {
            config.checkpoint_interval = parse_duration("checkpoint_interval", &text)?;
        }
        if let Some(text) = args.retention_interval.or(file.retention_interval) {
            config.retention_interval = parse_duration("retention_interval", &text)?;
        }
        if let Some(open) = args.open_registration.or(file.open_registration) {
            config.open_registration = open;
        }
        if let Some(record) = args.record_client_ip.or(file.record_client_ip) {
            config.record_client_ip = record;
        }
        if let Some(on) = args.rate_limits.or(file.rate_limits) {
            config.rate_limits = on;
        }
        if let Some(days) = args.recovery_window_days.or(file.recovery_window_days) {
            config.recovery_window_days = days;
        }
        if let Some(text) = args.session_idle_timeout.or(file.session_idle_timeout) {
            config.session_idle_timeout = parse_duration("session_idle_timeout", &text)?;
        }
        if let Some(text) = args.session_lifetime.or(file.session_lifetime) {
            config.session_lifetime = parse_duration("session_lifetime", &text)?;
        }
        if config.session_idle_timeout > config.session_lifetime {
            return Err("session_idle_timeout must not exceed session_lifetime".into());
        }
        config.database_url = args.database_url.or(file.database_url);
        config.metrics_listen = args.metrics_listen.or(file.metrics_listen);
        config.log_format = args.log_format.or(file.log_format).unwrap_or_default();
        config.tls = match (
            args.tls_cert.or(file.tls_cert),
            args.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err("tls_cert and tls_key must be given together".into()),
        };
        if let Some(limit) = args.max_body_bytes.or(file.max_body_bytes) {
            if limit < 1024 {
                return Err(format!(
                    "max_body_bytes {limit} is too small: use at least 1024"
                ));
            }
            config.max_body_bytes = limit;
        }
        if let Some(limit) = args.max_upload_bytes.or(file.max_upload_bytes) {
            config.max_upload_bytes = limit;
        }
        if let Some(quota) = args.upload_quota_bytes.or(file.upload_quota_bytes) {
            config.upload_quota_bytes = quota;
        }
        Ok(config)
    }
}

const DAY: u64 = 86_400;

/// Parses `90s`, `15m`, `12h`, `7d` or a plain number of seconds.
pub(crate) fn parse_duration(name: &str, text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => DAY,
        _ => return Err(format!("{name} {text:?}: use s, m, h or d, e.g. 7d")),
    };
    let seconds = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("{name} {text:?} is not a duration such as 7d or 12h"))?;
    if seconds == 0 {
        return Err(format!("{name} {text:?} is too short: use at least 1s"));
    }
    Ok(seconds)
}

fn read_file_config(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_beat_defaults() {
        let dir = std::env::temp_dir().join(format!("conclave-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nmax_body_bytes = 4096\n",
        )
        .unwrap();
        let args = Args {
            config: Some(file.clone()),
            max_body_bytes: Some(2048),
            ..Args::default()
        };
        let config = Config::resolve(args).unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.max_body_bytes, 2048);
        assert_eq!(config.data_dir, PathBuf::from("conclave-data"));

        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let err = Config::resolve(Args {
            config: Some(file),
            ..Args::default()
        })
        .unwrap_err();
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn durations_name_their_problem() {
        assert_eq!(parse_duration("x", "7d").unwrap(), 7 * DAY);
        assert_eq!(parse_duration("x", "90").unwrap(), 90);
        assert_eq!(parse_duration("x", "15m").unwrap(), 900);
        assert!(
            parse_duration("x", "5w")
                .unwrap_err()
                .contains("use s, m, h or d")
        );
        assert!(parse_duration("x", "0s").unwrap_err().contains("too short"));
        assert!(
            parse_duration("x", "soond")
                .unwrap_err()
                .contains("not a duration")
        );
    }
}
