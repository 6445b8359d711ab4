use std::fmt;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use openmls_traits::signatures::{Signer, SignerError};
use openmls_traits::types::SignatureScheme;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::credential::{DeviceCredential, Username};
use crate::error::Error;

/// A device's private identity key (Ed25519).
///
/// It signs the device's requests to the relay and is the device's MLS leaf
/// signature key, so the relay can check that a leaf belongs to a device it
/// knows. The key zeroizes on drop (ed25519-dalek's `zeroize` feature) and
/// never prints.
pub struct DeviceKey {
    signing: SigningKey,
}

impl DeviceKey {
    /// Generates a fresh key from the operating system's RNG.
    pub fn generate() -> Self {
        Self {
            signing: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// Restores a key from its 32-byte secret seed.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(secret),
        }
    }

    /// The secret seed, for the device's own encrypted-at-rest store only.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// The public half.
    pub fn public(&self) -> DevicePublicKey {
        DevicePublicKey(self.signing.verifying_key())
    }

    /// This device's id, derived from its public key.
    pub fn device_id(&self) -> DeviceId {
        self.public().device_id()
    }

    /// The MLS credential binding `user` to this device.
    pub fn credential(&self, user: &Username) -> DeviceCredential {
        DeviceCredential::new(user.clone(), self.device_id())
    }

    /// Signs `message` with plain Ed25519 (RFC 8032).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceKey")
            .field("device_id", &self.device_id())
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// MLS signs with the device key directly, so the private key lives in one place.
impl Signer for DeviceKey {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        Ok(DeviceKey::sign(self, payload).to_vec())
    }

    fn signature_scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

/// A device's public identity key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DevicePublicKey(VerifyingKey);

impl DevicePublicKey {
    /// Parses 32 bytes; rejects non-points and small-order (weak) keys.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let array: [u8; 32] = bytes.try_into().map_err(|_| Error::InvalidPublicKey)?;
        let key = VerifyingKey::from_bytes(&array).map_err(|_| Error::InvalidPublicKey)?;
        if key.is_weak() {
            return Err(Error::InvalidPublicKey);
        }
        Ok(Self(key))
    }

    /// The 32 raw bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The device id: the first 16 bytes of SHA-256 over a label and the key.
    pub fn device_id(&self) -> DeviceId {
        let digest = Sha256::new()
            .chain_update(b"conclave device id v1\0")
            .chain_update(self.0.as_bytes())
            .finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        DeviceId(id)
    }

    /// Verifies with `verify_strict`: no malleable signatures, no weak keys.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), Error> {
        let signature =
            ed25519_dalek::Signature::from_slice(signature).map_err(|_| Error::BadSignature)?;
        self.0
            .verify_strict(message, &signature)
            .map_err(|_| Error::BadSignature)
    }
}

impl fmt::Debug for DevicePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DevicePublicKey({})", hex::encode(self.0.as_bytes()))
    }
}

/// Verifies an Ed25519 signature from raw parts, strictly (see [`DevicePublicKey::verify`]).
pub fn verify_signature(public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), Error> {
    DevicePublicKey::from_bytes(public_key)
        .map_err(|_| Error::BadSignature)?
        .verify(message, signature)
}

/// A device's stable, public identifier (16 bytes, shown as 32 hex characters).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId([u8; 16]);

impl DeviceId {
    /// Parses 32 lowercase hex characters.
    pub fn parse(text: &str) -> Result<Self, Error> {
        if text.len() != 32 || text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(Error::InvalidDeviceId);
        }
        let mut id = [0u8; 16];
        hex::decode_to_slice(text, &mut id).map_err(|_| Error::InvalidDeviceId)?;
        Ok(Self(id))
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let key = DeviceKey::from_secret_bytes(&[7u8; 32]);
        let shown = format!("{key:?}");
        assert!(shown.contains("<redacted>"));
        assert!(!shown.contains(&hex::encode([7u8; 32])));
        assert!(!shown.contains("7, 7, 7"));
    }

    #[test]
    fn secret_round_trips_and_signs_the_same() {
        let key = DeviceKey::generate();
        let again = DeviceKey::from_secret_bytes(&key.to_secret_bytes());
        assert_eq!(key.public(), again.public());
        assert_eq!(key.sign(b"x"), again.sign(b"x"));
    }

    #[test]
    fn device_id_parses_its_own_display_only() {
        let id = DeviceKey::generate().device_id();
        assert_eq!(DeviceId::parse(&id.to_string()), Ok(id));
        assert_eq!(
            DeviceId::parse(&id.to_string().to_uppercase()),
            Err(Error::InvalidDeviceId)
        );
        assert_eq!(DeviceId::parse("abc"), Err(Error::InvalidDeviceId));
    }

    #[test]
    fn weak_public_keys_are_refused() {
        // The identity point: a small-order key that verifies forged signatures.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            DevicePublicKey::from_bytes(&identity),
            Err(Error::InvalidPublicKey)
        );
    }
}
