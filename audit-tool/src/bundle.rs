//! The offline bundle: one JSON file holding everything needed to verify a
//! log without its relay.
//!
//! ```text
//! {
//!   "checkpoint": "<signed note text>",
//!   "log_key": "<verifier key string>",
//!   "entries": ["<base64 leaf 0>", "<base64 leaf 1>", ...]
//! }
//! ```
//!
//! `entries` are the first `checkpoint.size` leaves, in index order. The
//! bundle's `log_key` says which key signed it, but only a key the verifier
//! already trusts proves anything beyond the bundle's internal consistency.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_audit::VerifierKey;
use serde::{Deserialize, Serialize};

use crate::error::AuditError;

/// A verification bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// The signed checkpoint note.
    pub checkpoint: String,
    /// The verifier key that signed it.
    pub log_key: String,
    /// The leaves, base64.
    pub entries: Vec<String>,
}

impl Bundle {
    /// A bundle of `note`, signed by `key`, over `leaves`.
    pub fn new(note: &str, key: &VerifierKey, leaves: &[Vec<u8>]) -> Self {
        Self {
            checkpoint: note.to_owned(),
            log_key: key.to_string(),
            entries: leaves.iter().map(|leaf| STANDARD.encode(leaf)).collect(),
        }
    }

    /// Reads a bundle's JSON (`path` names it in errors).
    pub fn parse(json: &str, path: &str) -> Result<Self, AuditError> {
        serde_json::from_str(json).map_err(|e| AuditError::Bundle {
            path: path.to_owned(),
            detail: format!("not a conclave-audit bundle: {e}"),
        })
    }

    /// The bundle as pretty JSON, ending in a newline.
    pub fn to_json(&self) -> String {
        // Serializing strings and a list of strings cannot fail.
        let mut json = serde_json::to_string_pretty(self).unwrap_or_default();
        json.push('\n');
        json
    }

    /// The leaves, decoded.
    pub fn leaves(&self, path: &str) -> Result<Vec<Vec<u8>>, AuditError> {
        self.entries
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                STANDARD.decode(entry).map_err(|_| AuditError::Bundle {
                    path: path.to_owned(),
                    detail: format!(
                        "entry {index} is not valid base64: the bundle was altered or damaged"
                    ),
                })
            })
            .collect()
    }

    /// The key to verify with: `given` if any, which must then be the
    /// bundle's own; otherwise the bundle's, and `true` to say so.
    pub fn trusted_key(
        &self,
        given: Option<&VerifierKey>,
    ) -> Result<(VerifierKey, bool), AuditError> {
        let own = VerifierKey::parse(self.log_key.trim()).map_err(|source| AuditError::LogKey {
            key: self.log_key.clone(),
            source,
        })?;
        match given {
            None => Ok((own, true)),
            Some(given) if *given == own => Ok((own, false)),
            Some(given) => Err(AuditError::BundleKeyMismatch {
                bundle: own.to_string(),
                given: given.to_string(),
            }),
        }
    }
}
