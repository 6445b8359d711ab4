//! The canonical request-signing format.
//!
//! After login a device signs every HTTP request it sends. The signed bytes are
//!
//! ```text
//! conclave-request-v1\n
//! <METHOD>\n
//! <path and query>\n
//! <unix seconds>\n
//! <nonce, 32 hex chars>\n
//! <hex SHA-256 of the body>
//! ```
//!
//! The relay refuses a timestamp more than [`MAX_CLOCK_SKEW_SECS`] away from its
//! clock and a nonce it has seen within that window, so a captured request
//! cannot be replayed, and there is no bearer token to steal.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::device_key::{DeviceId, DeviceKey, DevicePublicKey};
use crate::error::Error;
use crate::sha256_hex;

/// How far a request's timestamp may be from the relay's clock.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

/// The bytes a device signs for one request.
pub fn canonical_request(
    method: &str,
    path_and_query: &str,
    timestamp: u64,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    format!(
        "conclave-request-v1\n{}\n{}\n{}\n{}\n{}",
        method.to_ascii_uppercase(),
        path_and_query,
        timestamp,
        nonce,
        sha256_hex(body)
    )
    .into_bytes()
}

/// The four headers that authenticate a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `Conclave-Device`: who signed.
    pub device_id: DeviceId,
    /// `Conclave-Timestamp`: unix seconds.
    pub timestamp: u64,
    /// `Conclave-Nonce`: 16 random bytes as hex, never reused.
    pub nonce: String,
    /// `Conclave-Signature`: base64 Ed25519 signature over [`canonical_request`].
    pub signature: String,
}

impl SignedHeaders {
    /// Header carrying the device id.
    pub const DEVICE: &'static str = "conclave-device";
    /// Header carrying the timestamp.
    pub const TIMESTAMP: &'static str = "conclave-timestamp";
    /// Header carrying the nonce.
    pub const NONCE: &'static str = "conclave-nonce";
    /// Header carrying the signature.
    pub const SIGNATURE: &'static str = "conclave-signature";

    /// The headers as (name, value) pairs.
    pub fn to_pairs(&self) -> [(&'static str, String); 4] {
        [
            (Self::DEVICE, self.device_id.to_string()),
            (Self::TIMESTAMP, self.timestamp.to_string()),
            (Self::NONCE, self.nonce.clone()),
            (Self::SIGNATURE, self.signature.clone()),
        ]
    }

    /// Parses the headers with `get(name)` looking each one up.
    pub fn from_lookup<'a>(get: impl Fn(&'static str) -> Option<&'a str>) -> Result<Self, Error> {
        let field = |name| get(name).ok_or(Error::MalformedHeader(name));
        let device_id = DeviceId::parse(field(Self::DEVICE)?)
            .map_err(|_| Error::MalformedHeader(Self::DEVICE))?;
        let timestamp = field(Self::TIMESTAMP)?
            .parse()
            .map_err(|_| Error::MalformedHeader(Self::TIMESTAMP))?;
        let nonce = field(Self::NONCE)?;
        if nonce.len() != 32 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::MalformedHeader(Self::NONCE));
        }
        Ok(Self {
            device_id,
            timestamp,
            nonce: nonce.to_owned(),
            signature: field(Self::SIGNATURE)?.to_owned(),
        })
    }
}

/// Signs requests for one device.
#[derive(Debug)]
pub struct RequestSigner<'a> {
    key: &'a DeviceKey,
}

impl<'a> RequestSigner<'a> {
    /// A signer for `key`.
    pub fn new(key: &'a DeviceKey) -> Self {
        Self { key }
    }

    /// Signs one request with a fresh random nonce.
    pub fn sign(
        &self,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        timestamp: u64,
    ) -> SignedHeaders {
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        let signed = canonical_request(method, path_and_query, timestamp, &nonce, body);
        SignedHeaders {
            device_id: self.key.device_id(),
            timestamp,
            nonce,
            signature: STANDARD.encode(self.key.sign(&signed)),
        }
    }
}

/// Checks the signature of one request (freshness and replay are the relay's job).
pub fn verify_request(
    key: &DevicePublicKey,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    headers: &SignedHeaders,
) -> Result<(), Error> {
    if key.device_id() != headers.device_id {
        return Err(Error::BadSignature);
    }
    let signature = STANDARD
        .decode(&headers.signature)
        .map_err(|_| Error::BadSignature)?;
    let signed = canonical_request(
        method,
        path_and_query,
        headers.timestamp,
        &headers.nonce,
        body,
    );
    key.verify(&signed, &signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_change_breaks_the_signature() {
        let key = DeviceKey::generate();
        let h = RequestSigner::new(&key).sign("POST", "/v1/x?a=1", b"body", 100);
        let pk = key.public();
        assert_eq!(
            verify_request(&pk, "POST", "/v1/x?a=1", b"body", &h),
            Ok(())
        );
        assert!(verify_request(&pk, "PUT", "/v1/x?a=1", b"body", &h).is_err());
        assert!(verify_request(&pk, "POST", "/v1/x?a=2", b"body", &h).is_err());
        assert!(verify_request(&pk, "POST", "/v1/x?a=1", b"bodY", &h).is_err());
        let mut later = h.clone();
        later.timestamp += 1;
        assert!(verify_request(&pk, "POST", "/v1/x?a=1", b"body", &later).is_err());
        let mut other_nonce = h.clone();
        other_nonce.nonce = "0".repeat(32);
        assert!(verify_request(&pk, "POST", "/v1/x?a=1", b"body", &other_nonce).is_err());
        let other = DeviceKey::generate();
        assert!(verify_request(&other.public(), "POST", "/v1/x?a=1", b"body", &h).is_err());
    }

    #[test]
    fn headers_round_trip_and_reject_garbage() {
        let key = DeviceKey::generate();
        let h = RequestSigner::new(&key).sign("GET", "/", b"", 5);
        let pairs = h.to_pairs();
        let lookup = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(SignedHeaders::from_lookup(lookup), Ok(h));
        let missing = |name: &str| {
            if name == SignedHeaders::NONCE {
                None
            } else {
                lookup(name)
            }
        };
        assert_eq!(
            SignedHeaders::from_lookup(missing),
            Err(Error::MalformedHeader(SignedHeaders::NONCE))
        );
    }
}
