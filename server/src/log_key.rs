//! The key that signs the transparency log's checkpoints: Ed25519, in its own
//! file (mode 0600), apart from the TLS key and the sealing key, so that each
//! can be rotated or kept offline on its own.
//!
//! The file holds one line in the form of Go's `sumdb/note` signer keys,
//! `PRIVATE+KEY+<origin>+<key id>+<base64 key>`; the key's name is the log's
//! checkpoint origin. Auditors and clients check checkpoints with the
//! matching verifier key, printed when the key is created and by
//! `conclave-server admin log-key`.

use crate::error::ServerError;
use crate::keys::KeySource;

use conclave_audit::NoteSigner;
use ed25519_dalek::SigningKey;
use zeroize::Zeroizing;

/// Reads the log key from `source`, or creates a file with one named
/// `origin`. Returns the signer and whether it was just created.
pub fn load_or_create(source: &KeySource, origin: &str) -> Result<(NoteSigner, bool), ServerError> {
    let path = match source {
        KeySource::File(path) => path,
        KeySource::Environment { variable, value } => {
            let signer = NoteSigner::from_private_key(value.expose().trim())
                .map_err(|e| ServerError::Key(format!("${variable}: {e}")))?;
            return Ok((signer, false));
        }
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let text = Zeroizing::new(text);
            let signer = NoteSigner::from_private_key(&text)
                .map_err(|e| ServerError::Key(format!("log key file {}: {e}", path.display())))?;
            Ok((signer, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let signer = NoteSigner::new(origin, SigningKey::generate(&mut rand::rngs::OsRng))
                .map_err(|e| ServerError::Setting(format!("log origin {origin:?}: {e}")))?;
            let mut line = signer.private_key();
            line.push('\n');
            crate::private_files::write_secret_file(path, "log key", line.as_bytes())?;
            Ok((signer, true))
        }
        Err(e) => Err(ServerError::file("read log key file", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_with_owner_only_mode_then_reads_back() {
        let dir = std::env::temp_dir().join(format!("conclave-logkey-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.key");
        let _ = std::fs::remove_file(&path);
        let source = KeySource::File(path.clone());
        let (first, created) = load_or_create(&source, "test.example/log").unwrap();
        assert!(created);
        let (again, created) = load_or_create(&source, "ignored.example/log").unwrap();
        assert!(!created);
        assert_eq!(first.verifier_key(), again.verifier_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not a key").unwrap();
        assert!(
            load_or_create(&source, "x")
                .unwrap_err()
                .to_string()
                .contains("log key file")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
