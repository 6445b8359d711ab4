//! Server settings: [`Settings`] from each source (the binary reads flags,
//! the environment and a TOML file, in that order of precedence), resolved
//! into a [`Config`] over defaults that need no setup. No command-line
//! parser here: `conclave-server`'s `main.rs` owns the command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::clock::Clock;
use crate::error::ServerError;
use crate::keys::{KeyLayout, KeySource, KeyText, LOG_KEY_FILE, SERVER_KEY_FILE, default_key_dir};

/// Defines [`Settings`] and its merge from one list, so that a new setting
/// cannot be read from one source and forgotten in another.
macro_rules! settings {
    ($($(#[$doc:meta])* $name:ident: $ty:ty,)*) => {
        /// Settings from one source (the command line, the environment, a
        /// TOML file with these names as keys); `None` leaves a setting to
        /// the next source. [`Config::resolve`] applies the defaults.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Settings {
            $($(#[$doc])* pub $name: Option<$ty>,)*
        }

        impl Settings {
            /// These settings, and `lower`'s where these have none.
            pub fn or(self, lower: Settings) -> Settings {
                Settings {
                    $($name: self.$name.or(lower.$name),)*
                }
            }
        }
    };
}

settings! {
    /// Address to serve HTTPS on.
    listen: SocketAddr,
    /// How log lines are written.
    log_format: LogFormat,
    /// Where to serve Prometheus metrics (plain HTTP).
    metrics_listen: SocketAddr,
    /// Data directory: the SQLite database and the generated certificate.
    data_dir: PathBuf,
    /// Key directory: the server key, the log key and a generated TLS key,
    /// apart from the data (created 0700).
    key_dir: PathBuf,
    /// A database instead of SQLite in the data directory.
    database_url: DatabaseUrl,
    /// PEM certificate chain.
    tls_cert: PathBuf,
    /// PEM private key for `tls_cert`.
    tls_key: PathBuf,
    /// Largest accepted request body in bytes.
    max_body_bytes: usize,
    /// Largest attachment in bytes, as uploaded (encrypted).
    max_upload_bytes: u64,
    /// Attachment bytes each account may keep on the relay.
    upload_quota_bytes: u64,
    /// The 32-byte key that seals TOTP secrets.
    server_key_file: PathBuf,
    /// The server key itself (base64 or hex), from the environment only:
    /// never a file's content, never a flag anyone can read in `ps`.
    #[serde(skip)]
    server_key: KeyText,
    /// The Ed25519 key that signs audit-log checkpoints.
    log_key_file: PathBuf,
    /// The log key itself (a `PRIVATE+KEY+…` line), from the environment
    /// only.
    #[serde(skip)]
    log_key: KeyText,
    /// The audit log's name (checkpoint origin), for a new log key.
    log_origin: String,
    /// How often to sign a checkpoint when the log has grown (`10s`).
    checkpoint_interval: String,
    /// How often to delete ciphertext past its retention (`10m`).
    retention_interval: String,
    /// Registration without an invite code.
    open_registration: bool,
    /// A session ends after this long without a request (`7d`).
    session_idle_timeout: String,
    /// A session ends this long after its login (`30d`).
    session_lifetime: String,
    /// The origin passkeys are bound to.
    webauthn_origin: String,
    /// Whether authentication events carry the client's address.
    record_client_ip: bool,
    /// Whether rate limits and lockout apply.
    rate_limits: bool,
    /// Requests a second that one address may make to the public
    /// transparency log (`/log/`), which needs no signature.
    public_reads_per_second: u32,
    /// How many such requests one address may make at once.
    public_read_burst: u32,
    /// Signed requests a second that one device may make.
    device_requests_per_second: u32,
    /// How many signed requests one device may make at once.
    device_request_burst: u32,
    /// Days before a recovery whose new factors it removes.
    recovery_window_days: u64,
    /// Whether an account whose password predates OPAQUE may still prove
    /// it (once, replacing it with an OPAQUE record).
    legacy_passwords: bool,
    /// Witnesses asked to cosign each new checkpoint, each as
    /// `<witness verifier key> <URL>` (C2SP tlog-witness).
    witnesses: Vec<String>,
    /// How many witnesses' cosignatures clients require on a checkpoint
    /// (default: a majority of the witnesses).
    witness_quorum: u64,
    /// How long clients accept checkpoints short of the quorum after the
    /// last that had it (`1h`).
    witness_grace: String,
}

impl Settings {
    /// The settings in the TOML file at `path`; an unknown key is an error
    /// that names it.
    pub fn from_toml_file(path: &Path) -> Result<Self, ServerError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServerError::file("read config file", path, e))?;
        toml::from_str(&text)
            .map_err(|e| ServerError::Setting(format!("config file {}: {e}", path.display())))
    }
}

/// A witness the relay asks to cosign its checkpoints: its key and where it
/// takes `add-checkpoint` requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessEndpoint {
    /// The witness's cosigning key.
    pub key: conclave_audit::witness::CosignerKey,
    /// Its submission prefix (`http(s)://host:port[/path]`), before
    /// `/add-checkpoint`.
    pub url: String,
}

impl WitnessEndpoint {
    /// Parses `<witness verifier key> <URL>`.
    pub fn parse(text: &str) -> Result<Self, ServerError> {
        let bad = |why: String| ServerError::Setting(format!("witness {text:?}: {why}"));
        let (key, url) = text
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad("give `<witness key> <URL>`".into()))?;
        let key =
            conclave_audit::witness::CosignerKey::parse(key).map_err(|e| bad(e.to_string()))?;
        let url = url.trim().trim_end_matches('/');
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad("the URL must be http:// or https://".into()));
        }
        Ok(Self {
            key,
            url: url.to_owned(),
        })
    }
}

/// A key given once: by value from the environment or by file, not both
/// (`None`: neither, the key directory's file).
fn key_source(
    (value, variable): (Option<KeyText>, &'static str),
    (file, setting): (Option<PathBuf>, &str),
) -> Result<Option<KeySource>, ServerError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(ServerError::Setting(format!(
            "{variable} and {setting} both name the key: give one"
        ))),
        (Some(value), None) => Ok(Some(KeySource::Environment { variable, value })),
        (None, Some(path)) => Ok(Some(KeySource::File(path))),
        (None, None) => Ok(None),
    }
}

/// A database URL, which may carry a password (`postgres://relay:…@db/…`):
/// its `Debug` and `Display` show everything but the password, so a logged
/// `Config` gives none away.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL as given, password included, for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`.
    fn redacted(&self) -> String {
        let url = &self.0;
        let Some(scheme_end) = url.find("://").map(|at| at + 3) else {
            return url.clone();
        };
        let authority_end = url[scheme_end..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |at| scheme_end + at);
        let authority = &url[scheme_end..authority_end];
        match authority.rfind('@') {
            Some(at) => match authority[..at].find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end],
                    &authority[..colon],
                    &url[scheme_end + at..]
                ),
                None => url.clone(),
            },
            None => url.clone(),
        }
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(DatabaseUrl(text.to_owned()))
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({:?})", self.redacted())
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// How log lines are written. Neither form ever carries message content,
/// passwords, codes, keys or signatures: the code logs ids and outcomes only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = ServerError;

    fn from_str(text: &str) -> Result<Self, ServerError> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(ServerError::Setting(format!(
                "log format {other:?}: use text or json"
            ))),
        }
    }
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
    /// Key directory (see `keys.rs`): by default beside the data directory.
    pub key_dir: PathBuf,
    /// Database URL; `None` means SQLite in `data_dir`.
    pub database_url: Option<DatabaseUrl>,
    /// Certificate and key files, if given.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Body size limit.
    pub max_body_bytes: usize,
    /// Largest attachment (its encrypted size).
    pub max_upload_bytes: u64,
    /// Attachment bytes each account may keep.
    pub upload_quota_bytes: u64,
    /// The key that seals TOTP secrets (outside the database).
    pub server_key: KeySource,
    /// The key that signs audit-log checkpoints.
    pub log_key: KeySource,
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
    /// Requests a second one address may make to `/log/` (signature-free).
    pub public_reads_per_second: u32,
    /// Requests one address may make to `/log/` at once.
    pub public_read_burst: u32,
    /// Signed requests a second one device may make.
    pub device_requests_per_second: u32,
    /// Signed requests one device may make at once.
    pub device_request_burst: u32,
    /// Days before an account recovery whose new factors it removes.
    pub recovery_window_days: u64,
    /// Whether accounts whose password predates OPAQUE may still sign in
    /// with it, once, to replace it with an OPAQUE record.
    pub legacy_passwords: bool,
    /// Witnesses asked to cosign each new checkpoint.
    pub witnesses: Vec<WitnessEndpoint>,
    /// Cosignatures clients require on a checkpoint.
    pub witness_quorum: u64,
    /// Seconds clients accept checkpoints short of the quorum after the
    /// last that had it.
    pub witness_grace: u64,
    /// The clock every expiry and timestamp reads (the system's, unless a
    /// test runs the relay in-process with a manual one).
    pub clock: Clock,
}

impl Config {
    /// Where the data and the keys are.
    pub(crate) fn key_layout(&self) -> KeyLayout<'_> {
        KeyLayout {
            data_dir: &self.data_dir,
            key_dir: &self.key_dir,
            server_key: &self.server_key,
            log_key: &self.log_key,
            tls_key: self.tls.as_ref().map(|(_, key)| key.as_path()),
        }
    }

    /// Defaults for everything, with data in `data_dir` and keys in the
    /// directory beside it (`<data_dir>-keys`).
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        let key_dir = default_key_dir(&data_dir);
        Self::with_dirs(data_dir, key_dir)
    }

    /// Defaults for everything, with data in `data_dir` and keys in
    /// `key_dir`.
    pub fn with_dirs(data_dir: impl Into<PathBuf>, key_dir: impl Into<PathBuf>) -> Self {
        let (data_dir, key_dir) = (data_dir.into(), key_dir.into());
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            metrics_listen: None,
            log_format: LogFormat::Text,
            server_key: KeySource::File(key_dir.join(SERVER_KEY_FILE)),
            log_key: KeySource::File(key_dir.join(LOG_KEY_FILE)),
            key_dir,
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
            // An auditor reads a million-entry log (3,907 entry bundles) in
            // under a minute and a half; a flood from one address costs at
            // most 50 reads a second.
            public_reads_per_second: 50,
            public_read_burst: 500,
            // Far above any person's client: a 1 GiB file is 1024 chunk
            // requests, inside one burst. A stolen key gets a hundred
            // nonces a second onto the one writer, not thousands.
            device_requests_per_second: 100,
            device_request_burst: 2000,
            recovery_window_days: 7,
            legacy_passwords: true,
            witnesses: Vec::new(),
            witness_quorum: 0,
            witness_grace: 3600,
            clock: Clock::system(),
        }
    }

    /// The defaults, with `settings` (already merged from their sources,
    /// see [`Settings::or`]) over them; a value out of range is an error that
    /// names the setting.
    pub fn resolve(settings: Settings) -> Result<Self, ServerError> {
        let data_dir = settings
            .data_dir
            .unwrap_or_else(|| PathBuf::from("conclave-data"));
        let key_dir = settings
            .key_dir
            .unwrap_or_else(|| default_key_dir(&data_dir));
        let mut config = Self::with_dirs(data_dir, key_dir);
        if let Some(listen) = settings.listen {
            config.listen = listen;
        }
        config.webauthn_origin = settings
            .webauthn_origin
            .unwrap_or_else(|| format!("https://localhost:{}", config.listen.port()));
        if let Some(source) = key_source(
            (settings.server_key, "CONCLAVE_SERVER_KEY"),
            (settings.server_key_file, "server_key_file"),
        )? {
            config.server_key = source;
        }
        if let Some(source) = key_source(
            (settings.log_key, "CONCLAVE_LOG_KEY"),
            (settings.log_key_file, "log_key_file"),
        )? {
            config.log_key = source;
        }
        config.log_origin = match settings.log_origin {
            Some(origin) => origin,
            None => {
                let host = url::Url::parse(&config.webauthn_origin)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_else(|| "localhost".into());
                format!("{host}/conclave-audit")
            }
        };
        if let Some(text) = settings.checkpoint_interval {
            config.checkpoint_interval = parse_duration("checkpoint_interval", &text)?;
        }
        if let Some(text) = settings.retention_interval {
            config.retention_interval = parse_duration("retention_interval", &text)?;
        }
        if let Some(open) = settings.open_registration {
            config.open_registration = open;
        }
        if let Some(record) = settings.record_client_ip {
            config.record_client_ip = record;
        }
        if let Some(on) = settings.rate_limits {
            config.rate_limits = on;
        }
        if let Some(rate) = settings.public_reads_per_second {
            config.public_reads_per_second = positive("public_reads_per_second", rate)?;
        }
        if let Some(burst) = settings.public_read_burst {
            config.public_read_burst = positive("public_read_burst", burst)?;
        }
        if let Some(rate) = settings.device_requests_per_second {
            config.device_requests_per_second = positive("device_requests_per_second", rate)?;
        }
        if let Some(burst) = settings.device_request_burst {
            config.device_request_burst = positive("device_request_burst", burst)?;
        }
        if let Some(days) = settings.recovery_window_days {
            config.recovery_window_days = days;
        }
        if let Some(on) = settings.legacy_passwords {
            config.legacy_passwords = on;
        }
        for text in settings.witnesses.unwrap_or_default() {
            config.witnesses.push(WitnessEndpoint::parse(&text)?);
        }
        let witnesses = config.witnesses.len() as u64;
        config.witness_quorum = settings
            .witness_quorum
            .unwrap_or(witnesses / 2 + u64::from(witnesses > 0));
        if config.witness_quorum > witnesses {
            return Err(ServerError::Setting(format!(
                "witness_quorum {} is more than the {witnesses} witnesses configured",
                config.witness_quorum
            )));
        }
        if let Some(text) = settings.witness_grace {
            config.witness_grace = parse_duration("witness_grace", &text)?;
        }
        if let Some(text) = settings.session_idle_timeout {
            config.session_idle_timeout = parse_duration("session_idle_timeout", &text)?;
        }
        if let Some(text) = settings.session_lifetime {
            config.session_lifetime = parse_duration("session_lifetime", &text)?;
        }
        if config.session_idle_timeout > config.session_lifetime {
            return Err(ServerError::Setting(
                "session_idle_timeout must not exceed session_lifetime".into(),
            ));
        }
        config.database_url = settings.database_url;
        config.metrics_listen = settings.metrics_listen;
        config.log_format = settings.log_format.unwrap_or_default();
        config.tls = match (settings.tls_cert, settings.tls_key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(ServerError::Setting(
                    "tls_cert and tls_key must be given together".into(),
                ));
            }
        };
        if let Some(limit) = settings.max_body_bytes {
            if limit < 1024 {
                return Err(ServerError::Setting(format!(
                    "max_body_bytes {limit} is too small: use at least 1024"
                )));
            }
            config.max_body_bytes = limit;
        }
        if let Some(limit) = settings.max_upload_bytes {
            config.max_upload_bytes = limit;
        }
        if let Some(quota) = settings.upload_quota_bytes {
            config.upload_quota_bytes = quota;
        }
        Ok(config)
    }
}

const DAY: u64 = 86_400;

/// `value` of setting `name`, which must be at least 1.
fn positive(name: &str, value: u32) -> Result<u32, ServerError> {
    if value == 0 {
        return Err(ServerError::Setting(format!("{name} must be at least 1")));
    }
    Ok(value)
}

/// Parses `90s`, `15m`, `12h`, `7d` or a plain number of seconds.
pub fn parse_duration(name: &str, text: &str) -> Result<u64, ServerError> {
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
        _ => {
            return Err(ServerError::Setting(format!(
                "{name} {text:?}: use s, m, h or d, e.g. 7d"
            )));
        }
    };
    let seconds = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| {
            ServerError::Setting(format!(
                "{name} {text:?} is not a duration such as 7d or 12h"
            ))
        })?;
    if seconds == 0 {
        return Err(ServerError::Setting(format!(
            "{name} {text:?} is too short: use at least 1s"
        )));
    }
    Ok(seconds)
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
        let flags = Settings {
            max_body_bytes: Some(2048),
            ..Settings::default()
        };
        let config = Config::resolve(flags.or(Settings::from_toml_file(&file).unwrap())).unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.max_body_bytes, 2048);
        assert_eq!(config.data_dir, PathBuf::from("conclave-data"));
        assert!(config.key_dir.ends_with("conclave-data-keys"));
        assert_eq!(
            config.server_key.file(),
            Some(config.key_dir.join("server.key").as_path())
        );

        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let err = Settings::from_toml_file(&file).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn a_logged_config_shows_no_database_password() {
        let mut config = Config::with_data_dir("d");
        config.database_url = Some(
            "postgres://relay:s3cret-pw@db.example:5432/chat?sslmode=require"
                .parse()
                .unwrap(),
        );
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert!(
            shown.contains("postgres://relay:***@db.example:5432/chat?sslmode=require"),
            "{shown}"
        );
        assert_eq!(
            config.database_url.as_ref().unwrap().expose(),
            "postgres://relay:s3cret-pw@db.example:5432/chat?sslmode=require"
        );
        let plain: DatabaseUrl = "postgres://postgres@127.0.0.1/test".parse().unwrap();
        assert_eq!(plain.to_string(), "postgres://postgres@127.0.0.1/test");
        let at_in_password: DatabaseUrl = "postgres://u:p@ss@h/db".parse().unwrap();
        assert_eq!(at_in_password.to_string(), "postgres://u:***@h/db");
    }

    #[test]
    fn a_key_comes_from_the_environment_or_a_file_never_both() {
        let from_env = Settings {
            server_key: Some(KeyText::from("a".repeat(64))),
            key_dir: Some(PathBuf::from("/etc/conclave/keys")),
            ..Settings::default()
        };
        let config = Config::resolve(from_env).unwrap();
        assert!(matches!(
            config.server_key,
            KeySource::Environment {
                variable: "CONCLAVE_SERVER_KEY",
                ..
            }
        ));
        assert_eq!(
            config.log_key.file(),
            Some(Path::new("/etc/conclave/keys/log.key"))
        );
        let both = Settings {
            log_key: Some(KeyText::from("PRIVATE+KEY+x".to_owned())),
            log_key_file: Some(PathBuf::from("/k/log.key")),
            ..Settings::default()
        };
        let refused = Config::resolve(both).unwrap_err().to_string();
        assert!(
            refused.contains("CONCLAVE_LOG_KEY and log_key_file"),
            "{refused}"
        );
    }

    /// A pace of zero would refuse every signed request of every device (or,
    /// read as "no pace", let a stolen key flood the writer): refused at
    /// start, naming the setting.
    #[test]
    fn a_device_pace_of_zero_is_refused_by_name() {
        for (settings, name) in [
            (
                Settings {
                    device_requests_per_second: Some(0),
                    ..Settings::default()
                },
                "device_requests_per_second",
            ),
            (
                Settings {
                    device_request_burst: Some(0),
                    ..Settings::default()
                },
                "device_request_burst",
            ),
        ] {
            let refused = Config::resolve(settings).unwrap_err().to_string();
            assert_eq!(refused, format!("{name} must be at least 1"), "{refused}");
        }
        let paced = Settings {
            device_requests_per_second: Some(1),
            device_request_burst: Some(1),
            ..Settings::default()
        };
        let config = Config::resolve(paced).unwrap();
        assert_eq!(
            (
                config.device_requests_per_second,
                config.device_request_burst
            ),
            (1, 1)
        );
    }

    #[test]
    fn durations_name_their_problem() {
        assert_eq!(parse_duration("x", "7d").unwrap(), 7 * DAY);
        assert_eq!(parse_duration("x", "90").unwrap(), 90);
        assert_eq!(parse_duration("x", "15m").unwrap(), 900);
        assert!(
            parse_duration("x", "5w")
                .unwrap_err()
                .to_string()
                .contains("use s, m, h or d")
        );
        assert!(
            parse_duration("x", "0s")
                .unwrap_err()
                .to_string()
                .contains("too short")
        );
        assert!(
            parse_duration("x", "soond")
                .unwrap_err()
                .to_string()
                .contains("not a duration")
        );
    }
}
