//! Sans-IO primitives shared by the Conclave relay and its clients.
//!
//! Nothing here touches a socket, a file or a runtime: every function takes
//! bytes and returns values, so the server, `client-core` and auditors agree
//! on one definition of each format.
//!
//! ```
//! use conclave_crypto::{DeviceKey, RequestSigner, verify_request, Username};
//!
//! // A device generates its identity key once; the private half never leaves it.
//! let key = DeviceKey::generate();
//! let alice = Username::parse("alice").unwrap();
//! let credential = key.credential(&alice);
//! assert_eq!(credential.user(), &alice);
//!
//! // Every request after login is signed over method, path, time, nonce and body.
//! let headers = RequestSigner::new(&key).sign("POST", "/v1/groups", b"{}", 1_700_000_000);
//! verify_request(&key.public(), "POST", "/v1/groups", b"{}", &headers).unwrap();
//!
//! // The same signature does not cover another body.
//! assert!(verify_request(&key.public(), "POST", "/v1/groups", b"{ }", &headers).is_err());
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod attachment;
mod credential;
mod device_key;
mod error;
pub mod password;
mod request;

pub use credential::{
    DeviceCredential, NEW_PASSWORD_CHARS, Username, check_new_password, is_command_name,
};
pub use device_key::{DeviceId, DeviceKey, DevicePublicKey, verify_signature};
pub use error::Error;
pub use request::{
    MAX_CLOCK_SKEW_SECS, RequestSigner, SignedHeaders, canonical_request, verify_request,
};

/// The one MLS ciphersuite Conclave speaks (RFC 9420 §17.1, suite 0x0001).
pub const CIPHERSUITE: openmls::prelude::Ciphersuite =
    openmls::prelude::Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// The signature scheme of [`CIPHERSUITE`], which device keys also use.
pub const SIGNATURE_SCHEME: openmls::prelude::SignatureScheme =
    openmls::prelude::SignatureScheme::ED25519;

/// Lowercase hex SHA-256 of `bytes`: used for body hashes and certificate pins.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
