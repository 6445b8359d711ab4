//! The server's sealing key: 32 bytes kept in the key directory (or given
//! in the environment), never in the database or the data directory, so
//! that a dump of either does not open what it seals (TOTP secrets).

use crate::error::{ApiError, ServerError};
use crate::keys::KeySource;
use std::fmt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

/// Seals and opens small secrets with XChaCha20-Poly1305.
#[derive(Clone)]
pub struct ServerKey {
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKey(<redacted>)")
    }
}

/// Sealed values start with this, so a format change can be recognised.
const VERSION: &str = "v1.";

/// Why a value could not be sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The cipher refused (it does not, for inputs of these sizes).
    #[error("sealing failed")]
    Sealing,
    /// Not a sealed value of this format.
    #[error("sealed value is malformed")]
    Malformed,
    /// Sealed under another key, or for another context, or altered.
    #[error("sealed value does not open with this server key")]
    WrongKey,
}

impl From<SealError> for ApiError {
    fn from(error: SealError) -> Self {
        ApiError::Internal(format!("server key: {error}"))
    }
}

impl ServerKey {
    /// The key from `source`: a file (created with a fresh random key when
    /// missing), or a value from the environment, 32 bytes in base64 or hex.
    pub(crate) fn load(source: &KeySource) -> Result<Self, ServerError> {
        match source {
            KeySource::File(path) => Self::load_or_create(path),
            KeySource::Environment { variable, value } => {
                let text = value.expose().trim();
                let bytes = Zeroizing::new(match text.len() {
                    64 => hex::decode(text).ok(),
                    _ => STANDARD.decode(text).ok(),
                });
                let key: [u8; 32] = bytes
                    .as_deref()
                    .and_then(|bytes| bytes.try_into().ok())
                    .ok_or_else(|| {
                        ServerError::Key(format!(
                            "${variable} must hold 32 bytes in base64 or hex \
                             (e.g. from `openssl rand -base64 32`)"
                        ))
                    })?;
                Ok(Self {
                    key: Zeroizing::new(key),
                })
            }
        }
    }

    /// Reads the key file, or creates it (mode 0600) with a fresh random key.
    pub fn load_or_create(path: &Path) -> Result<Self, ServerError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    ServerError::Key(format!(
                        "server key file {} must hold exactly 32 bytes",
                        path.display()
                    ))
                })?;
                Ok(Self {
                    key: Zeroizing::new(key),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = Zeroizing::new([0u8; 32]);
                rand::rngs::OsRng.fill_bytes(key.as_mut());
                crate::private_files::write_secret_file(path, "server key", key.as_ref())?;
                Ok(Self { key })
            }
            Err(e) => Err(ServerError::file("read server key file", path, e)),
        }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.key.as_ref().into())
    }

    /// Seals `secret`, bound to `context` (e.g. the purpose and account name),
    /// so a sealed value can't be moved to another account.
    pub fn seal(&self, context: &str, secret: &[u8]) -> Result<String, SealError> {
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::Sealing)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{VERSION}{}", STANDARD.encode(out)))
    }

    /// Opens a value sealed with the same `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let bytes = sealed
            .strip_prefix(VERSION)
            .and_then(|b64| STANDARD.decode(b64).ok())
            .filter(|b| b.len() > 24)
            .ok_or(SealError::Malformed)?;
        let (nonce, ciphertext) = bytes.split_at(24);
        self.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::WrongKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_from_the_environment_is_32_bytes_in_base64_or_hex() {
        let source = |text: &str| KeySource::Environment {
            variable: "CONCLAVE_SERVER_KEY",
            value: crate::keys::KeyText::from(text.to_owned()),
        };
        let hex_key = ServerKey::load(&source(&"ab".repeat(32))).unwrap();
        let base64_key = ServerKey::load(&source(&STANDARD.encode([0xab; 32]))).unwrap();
        let sealed = hex_key.seal("totp:alice", b"secret").unwrap();
        assert_eq!(
            base64_key.open("totp:alice", &sealed).unwrap().as_slice(),
            b"secret"
        );
        // The message names the variable, never echoes the value.
        for wrong in ["", "short", &STANDARD.encode([1; 31]), &"zz".repeat(32)] {
            let refused = ServerKey::load(&source(wrong)).unwrap_err().to_string();
            assert!(
                refused.contains("$CONCLAVE_SERVER_KEY must hold 32 bytes"),
                "{refused}"
            );
            assert!(wrong.len() < 8 || !refused.contains(wrong), "{refused}");
        }
    }

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_context() {
        let dir = std::env::temp_dir().join(format!("conclave-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("server.key");
        let _ = std::fs::remove_file(&path);
        let key = ServerKey::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sealed = key.seal("totp:alice", b"twenty byte secret!!").unwrap();
        assert!(!sealed.contains("twenty"));
        assert_eq!(
            key.open("totp:alice", &sealed).unwrap().as_slice(),
            b"twenty byte secret!!"
        );
        assert!(key.open("totp:mallory", &sealed).is_err());
        let reloaded = ServerKey::load_or_create(&path).unwrap();
        assert!(reloaded.open("totp:alice", &sealed).is_ok());
        std::fs::remove_file(&path).unwrap();
        let other = ServerKey::load_or_create(&path).unwrap();
        assert!(other.open("totp:alice", &sealed).is_err());
        assert_eq!(format!("{other:?}"), "ServerKey(<redacted>)");
        std::fs::write(&path, b"short").unwrap();
        assert!(
            ServerKey::load_or_create(&path)
                .unwrap_err()
                .to_string()
                .contains("32 bytes")
        );
    }
}
