//! Where the relay's keys live: apart from its data.
//!
//! A database backup, or a copy of the data directory, must not carry what
//! opens the secrets in it. So the three keys the relay holds sit in a key
//! directory of their own (`--key-dir`, created 0700, by default beside the
//! data directory, never in it):
//!
//! | file | protects | its theft allows |
//! |---|---|---|
//! | `server.key` | TOTP secrets and the OPAQUE setup, sealed in the database | with the database: reading every TOTP secret, and testing password guesses offline (one argon2id run per guess per account) |
//! | `log.key` | the audit log's checkpoints | signing a forked log (clients that compared checkpoints catch it) |
//! | `tls-key.pem` | the relay's identity on the network | impersonating the relay to clients that pin its certificate |
//!
//! Each key can also be handed to the relay without a file in the key
//! directory: the server key and the log key as the value of an environment
//! variable (`CONCLAVE_SERVER_KEY`, `CONCLAVE_LOG_KEY`), every key as a file
//! given by path (systemd credentials, a secrets manager's mount; or
//! `--key-dir "$CREDENTIALS_DIRECTORY"` with the files named as above).
//!
//! A data directory from before the key directory holds the keys itself;
//! the relay moves them out at its next start and says so.
//!
//! Rotation: `admin rotate-log-key` (a statement signed by the old and the
//! new key, which clients follow); the TLS key as any certificate (pinned
//! clients need the new pin); the server key not yet (the TOTP secrets it
//! seals would need sealing again).

use std::fmt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::ServerError;
use crate::private_files;

/// The file names of the keys in the key directory.
pub(crate) const SERVER_KEY_FILE: &str = "server.key";
pub(crate) const LOG_KEY_FILE: &str = "log.key";
pub(crate) const TLS_KEY_FILE: &str = "tls-key.pem";
/// The generated certificate is public: it stays in the data directory,
/// where clients are pointed at it (`--ca-cert`).
pub(crate) const TLS_CERT_FILE: &str = "tls-cert.pem";

/// A key's text as given in the environment: zeroed when dropped, never
/// shown by `Debug`.
#[derive(Clone)]
pub struct KeyText(Zeroizing<String>);

impl KeyText {
    /// The key's text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for KeyText {
    fn from(text: String) -> Self {
        KeyText(Zeroizing::new(text))
    }
}

impl fmt::Debug for KeyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyText(<redacted>)")
    }
}

/// Where one key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A file (created 0600 when it is missing and the relay may make the
    /// key); refused when group or others may read it.
    File(PathBuf),
    /// The key itself, from an environment variable: never written to disk.
    Environment {
        /// The variable's name, for messages.
        variable: &'static str,
        /// The key.
        value: KeyText,
    },
}

impl KeySource {
    /// The file, if the key is kept in one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            KeySource::File(path) => Some(path),
            KeySource::Environment { .. } => None,
        }
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::File(path) => write!(f, "{}", path.display()),
            KeySource::Environment { variable, .. } => write!(f, "${variable}"),
        }
    }
}

/// The key directory when none is configured: beside the data directory,
/// named after it (`conclave-data` → `conclave-data-keys`), so that backing
/// up or copying the data directory leaves the keys behind.
pub(crate) fn default_key_dir(data_dir: &Path) -> PathBuf {
    let data_dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    match (data_dir.parent(), data_dir.file_name()) {
        (Some(parent), Some(name)) => {
            let mut keys = name.to_owned();
            keys.push("-keys");
            parent.join(keys)
        }
        // The data directory is a root: there is no beside.
        _ => data_dir.join("..").join("conclave-keys"),
    }
}

/// The TLS key file when no certificate is configured.
pub(crate) fn generated_tls_key(key_dir: &Path) -> PathBuf {
    key_dir.join(TLS_KEY_FILE)
}

/// Where a relay's data and keys are, as its configuration says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyLayout<'a> {
    pub(crate) data_dir: &'a Path,
    pub(crate) key_dir: &'a Path,
    pub(crate) server_key: &'a KeySource,
    pub(crate) log_key: &'a KeySource,
    /// The TLS key file configured with its certificate (`None`: generated).
    pub(crate) tls_key: Option<&'a Path>,
}

/// Makes the key directory ready before any key is read: created 0700 if
/// missing, keys left in the data directory by an earlier release moved
/// into it, and every key file checked to be the owner's alone.
pub(crate) fn prepare(config: &KeyLayout<'_>) -> Result<(), ServerError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(config.key_dir)
        .map_err(|e| ServerError::file("create key directory", config.key_dir, e))?;
    let tls_key = match config.tls_key {
        Some(key) => key.to_owned(),
        None => generated_tls_key(config.key_dir),
    };
    let mut defaults = vec![
        (config.server_key.file(), SERVER_KEY_FILE),
        (config.log_key.file(), LOG_KEY_FILE),
    ];
    if config.tls_key.is_none() {
        defaults.push((Some(tls_key.as_path()), TLS_KEY_FILE));
    }
    for (file, name) in defaults {
        if file == Some(config.key_dir.join(name).as_path()) {
            adopt_from_data_dir(config, name)?;
        }
    }
    let files = [
        config.server_key.file(),
        config.log_key.file(),
        Some(&tls_key),
    ];
    for file in files.into_iter().flatten() {
        private_files::check_key_file(file)?;
    }
    Ok(())
}

/// Moves key `name` from the data directory, where releases before the key
/// directory kept it, into the key directory, if it is there and not here.
fn adopt_from_data_dir(config: &KeyLayout<'_>, name: &str) -> Result<(), ServerError> {
    let old = config.data_dir.join(name);
    let new = config.key_dir.join(name);
    if new.exists() || !old.is_file() {
        return Ok(());
    }
    if std::fs::rename(&old, &new).is_err() {
        // Another file system: copy durably, then remove the old file.
        let bytes = Zeroizing::new(
            std::fs::read(&old).map_err(|e| ServerError::file("read key file", &old, e))?,
        );
        crate::private_files::write_secret_file(&new, name, &bytes)?;
        std::fs::remove_file(&old).map_err(|e| ServerError::file("remove key file", &old, e))?;
    }
    tracing::warn!(
        key = name,
        from = %old.display(),
        to = %new.display(),
        "moved a key out of the data directory into the key directory; \
         backups of the data directory made before now still hold it: rotate it if they may leak"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_key_directory_is_beside_the_data_directory_not_in_it() {
        let keys = default_key_dir(Path::new("/srv/conclave-data"));
        assert_eq!(keys, PathBuf::from("/srv/conclave-data-keys"));
        let relative = default_key_dir(Path::new("conclave-data"));
        assert!(relative.is_absolute());
        assert!(relative.ends_with("conclave-data-keys"), "{relative:?}");
        assert!(!relative.starts_with(std::path::absolute("conclave-data").unwrap()));
    }

    #[test]
    fn a_key_from_the_environment_never_shows() {
        let source = KeySource::Environment {
            variable: "CONCLAVE_LOG_KEY",
            value: KeyText::from("PRIVATE+KEY+example+1234+c2VjcmV0".to_owned()),
        };
        let shown = format!("{source:?} {source}");
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
        assert!(shown.contains("$CONCLAVE_LOG_KEY"), "{shown}");
        assert_eq!(source.file(), None);
    }

    #[cfg(unix)]
    #[test]
    fn keys_in_an_old_data_directory_move_into_a_new_private_key_directory() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("conclave-keys-{}", std::process::id()));
        let data = root.join("data");
        std::fs::create_dir_all(&data).unwrap();
        for name in [SERVER_KEY_FILE, LOG_KEY_FILE, TLS_KEY_FILE] {
            crate::private_files::write_secret_file(&data.join(name), name, name.as_bytes())
                .unwrap();
        }
        let key_dir = default_key_dir(&data);
        assert_eq!(key_dir, root.join("data-keys"));
        let (server_key, log_key) = (
            KeySource::File(key_dir.join(SERVER_KEY_FILE)),
            KeySource::File(key_dir.join(LOG_KEY_FILE)),
        );
        let config = KeyLayout {
            data_dir: &data,
            key_dir: &key_dir,
            server_key: &server_key,
            log_key: &log_key,
            tls_key: None,
        };
        prepare(&config).unwrap();
        let mode = std::fs::metadata(config.key_dir)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        for name in [SERVER_KEY_FILE, LOG_KEY_FILE, TLS_KEY_FILE] {
            assert!(
                !data.join(name).exists(),
                "{name} is still in the data directory"
            );
            assert_eq!(
                std::fs::read(config.key_dir.join(name)).unwrap(),
                name.as_bytes()
            );
        }
        // Run again, nothing moves and nothing fails.
        prepare(&config).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }
}
