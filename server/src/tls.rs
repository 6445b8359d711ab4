//! TLS 1.3 only, with rustls and the ring provider. Without a configured
//! certificate, one is generated on first start and reused after: its key
//! in the key directory, the certificate (public) in the data directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Config;
use crate::error::ServerError;
use crate::keys::{TLS_CERT_FILE, generated_tls_key};

/// A loaded certificate and its fingerprint.
#[derive(Debug)]
pub struct TlsIdentity {
    /// The rustls configuration to serve with.
    pub config: Arc<ServerConfig>,
    /// Hex SHA-256 of the leaf certificate (what clients pin).
    pub fingerprint: String,
    /// Where the certificate PEM lives (what clients may trust with --ca-cert).
    pub cert_path: PathBuf,
}

/// Loads the configured certificate, or the generated one (made if
/// neither half exists yet).
pub fn load_or_generate(config: &Config) -> Result<TlsIdentity, ServerError> {
    let (cert_path, key_path) = match &config.tls {
        Some((cert, key)) => (cert.clone(), key.clone()),
        None => {
            let cert = config.data_dir.join(TLS_CERT_FILE);
            let key = generated_tls_key(&config.key_dir);
            match (cert.exists(), key.exists()) {
                (false, false) => generate(&cert, &key)?,
                (true, true) => {}
                // One half alone: a new pair would overwrite a key other
                // nodes share, or change the certificate clients pinned.
                (true, false) => {
                    return Err(ServerError::Key(format!(
                        "the certificate {} has no key at {}: give this node the key \
                         directory it was made with (--key-dir), or remove the certificate \
                         to make a new pair (clients that pinned the old one will refuse it)",
                        cert.display(),
                        key.display()
                    )));
                }
                (false, true) => {
                    return Err(ServerError::Key(format!(
                        "the TLS key {} has no certificate at {}: copy the certificate \
                         back, or remove the key to make a new pair",
                        key.display(),
                        cert.display()
                    )));
                }
            }
            (cert, key)
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|iter| iter.collect())
        .map_err(|e| {
            ServerError::Key(format!(
                "cannot read certificate {}: {e}",
                cert_path.display()
            ))
        })?;
    let leaf = certs
        .first()
        .ok_or_else(|| ServerError::Key(format!("no certificate in {}", cert_path.display())))?;
    let fingerprint = conclave_crypto::sha256_hex(leaf);
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| {
        ServerError::Key(format!(
            "cannot read private key {}: {e}",
            key_path.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ServerError::Key(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Key(format!("certificate and key do not fit together: {e}")))?;
    Ok(TlsIdentity {
        config: Arc::new(config),
        fingerprint,
        cert_path,
    })
}

fn generate(cert_path: &Path, key_path: &Path) -> Result<(), ServerError> {
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| ServerError::Key(format!("cannot generate a certificate: {e}")))?;
    // The key file is created 0600 before any byte is written to it.
    crate::private_files::write_secret_file(
        key_path,
        "TLS key",
        certified.signing_key.serialize_pem().as_bytes(),
    )?;
    std::fs::write(cert_path, certified.cert.pem())
        .map_err(|e| ServerError::file("write", cert_path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_is_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("conclave-tls-{}", std::process::id()));
        let config = Config::with_dirs(dir.join("data"), dir.join("keys"));
        std::fs::create_dir_all(&config.data_dir).unwrap();
        std::fs::create_dir_all(&config.key_dir).unwrap();
        let first = load_or_generate(&config).unwrap();
        let second = load_or_generate(&config).unwrap();
        assert_eq!(first.fingerprint, second.fingerprint);
        let key = config.key_dir.join("tls-key.pem");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!config.data_dir.join("tls-key.pem").exists());
        // The certificate without its key (a data directory copied without
        // the key directory): refused, and the pair is not replaced.
        std::fs::remove_file(&key).unwrap();
        let refused = load_or_generate(&config).unwrap_err().to_string();
        assert!(
            refused.contains("has no key") && refused.contains("--key-dir"),
            "{refused}"
        );
        assert!(!key.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
