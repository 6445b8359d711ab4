//! Where a device's relay is and how to trust it, remembered in its home
//! directory (`<home>/server.toml`) so that every tool that opens the device
//! (the `conclave` CLI, the `conclave-audit` tool) finds the relay the same way.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{ClientError, Result};
use crate::https::{HttpsTransport, ServerTrust};

/// The file in a home directory that holds the settings.
pub const SETTINGS_FILE: &str = "server.toml";

/// A relay URL and how to trust its certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelaySettings {
    /// The relay URL, e.g. `https://127.0.0.1:8443`.
    pub server: Option<String>,
    /// Trust the certificate issued by this PEM file (or that self-signed certificate).
    pub ca_cert: Option<PathBuf>,
    /// Trust exactly the certificate with this SHA-256 fingerprint (hex).
    pub pin_sha256: Option<String>,
}

impl RelaySettings {
    /// The default home directory: `~/.conclave`.
    pub fn default_home() -> PathBuf {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".conclave")
    }

    /// The settings remembered in `home`; none if nothing was remembered yet.
    pub fn read(home: &Path) -> Result<Self> {
        let path = home.join(SETTINGS_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| ClientError::Invalid(format!("{}: {e}", path.display()))),
            Err(_) => Ok(Self::default()),
        }
    }

    /// Remembers these settings in `home`.
    pub fn write(&self, home: &Path) -> Result<()> {
        let text = toml::to_string(self).map_err(ClientError::store)?;
        std::fs::write(home.join(SETTINGS_FILE), text)
            .map_err(|e| ClientError::Invalid(format!("cannot save server settings: {e}")))
    }

    /// These settings with the given flags in front: a server flag replaces
    /// the server, and either trust flag replaces both remembered ones.
    pub fn overridden_by(
        self,
        server: Option<String>,
        ca_cert: Option<PathBuf>,
        pin_sha256: Option<String>,
    ) -> Self {
        let (ca_cert, pin_sha256) = match (ca_cert, pin_sha256) {
            (None, None) => (self.ca_cert, self.pin_sha256),
            flags => flags,
        };
        Self {
            server: server.or(self.server),
            ca_cert,
            pin_sha256,
        }
    }

    /// The transport these settings describe, or what is missing.
    pub fn transport(&self) -> Result<HttpsTransport> {
        let server = self.server.as_deref().ok_or_else(|| {
            ClientError::Invalid(
                "no server: pass --server https://HOST:PORT (or set CONCLAVE_SERVER)".into(),
            )
        })?;
        let trust = match (&self.ca_cert, &self.pin_sha256) {
            (Some(path), _) => ServerTrust::ca_file(path)?,
            (None, Some(pin)) => ServerTrust::pin(pin)?,
            (None, None) => {
                return Err(ClientError::Invalid("no way to trust the server: pass --ca-cert FILE or --pin-sha256 HEX (the server prints its fingerprint at start)".into()));
            }
        };
        Ok(HttpsTransport::new(server, trust)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_and_trust_flags_replace_both() {
        let remembered = RelaySettings {
            server: Some("https://a:1".into()),
            ca_cert: Some("ca.pem".into()),
            pin_sha256: None,
        };
        let kept = remembered.clone().overridden_by(None, None, None);
        assert_eq!(kept, remembered);
        let pinned = remembered.overridden_by(Some("https://b:2".into()), None, Some("ab".into()));
        assert_eq!(pinned.server.as_deref(), Some("https://b:2"));
        assert_eq!(
            (pinned.ca_cert, pinned.pin_sha256.as_deref()),
            (None, Some("ab"))
        );
    }

    #[test]
    fn missing_pieces_are_named() {
        let none = RelaySettings::default();
        assert!(
            none.transport()
                .unwrap_err()
                .to_string()
                .contains("no server")
        );
        let no_trust = RelaySettings {
            server: Some("https://127.0.0.1:8443".into()),
            ..RelaySettings::default()
        };
        assert!(
            no_trust
                .transport()
                .unwrap_err()
                .to_string()
                .contains("no way to trust")
        );
    }
}
