//! Server settings from flags, environment variables and a TOML file, in that
//! order of precedence, falling back to defaults that need no setup.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;

/// Command line and environment. Every field is optional so that the config
/// file and then the defaults can fill the gaps.
#[derive(Debug, Parser, Default)]
#[command(
    name = "conclave-server",
    version,
    about = "The Conclave relay: stores only MLS ciphertext and public keys"
)]
pub struct Args {
    /// TOML config file (keys: listen, data_dir, database_url, tls_cert, tls_key, max_body_bytes).
    #[arg(long, env = "CONCLAVE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to serve HTTPS on [default: 127.0.0.1:8443].
    #[arg(long, env = "CONCLAVE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the SQLite database and generated certificate [default: ./conclave-data].
    #[arg(long, env = "CONCLAVE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Use this database instead of SQLite in the data directory (postgres://… or sqlite://…).
    #[arg(long, env = "CONCLAVE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// PEM certificate chain. Without it a self-signed certificate is generated.
    #[arg(long, env = "CONCLAVE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "CONCLAVE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Largest accepted request body in bytes [default: 1048576].
    #[arg(long, env = "CONCLAVE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_body_bytes: Option<usize>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Data directory (SQLite database, generated certificate).
    pub data_dir: PathBuf,
    /// Database URL; `None` means SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// Certificate and key files, if given.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Body size limit.
    pub max_body_bytes: usize,
}

impl Config {
    /// Defaults for everything, with data in `data_dir`.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            data_dir: data_dir.into(),
            database_url: None,
            tls: None,
            max_body_bytes: 1 << 20,
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
        config.database_url = args.database_url.or(file.database_url);
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
        Ok(config)
    }
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
}
