//! The device key at rest. The Ed25519 key that signs this device's requests
//! (and its MLS leaves) is kept in `conclave.db` sealed under a key derived
//! from a local passphrase, so a copy of the file alone signs nothing:
//!
//! ```text
//! unlock key = argon2id(passphrase, salt; m = 64 MiB, t = 3, p = 1)    32 bytes
//! sealed     = "CDK" 0x01 | m KiB | t | p (u32 BE each) | salt (16) | nonce (24)
//!              | XChaCha20-Poly1305(unlock key, nonce, device secret,
//!                                   aad = label | header | username | 0 | device id)
//! ```
//!
//! Or, with [`KeyProtection::SecretStore`], under a random unlock key that the
//! application keeps in the operating system's secret store: the same layout
//! with the marker "CDK" 0x02 and the parameter and salt fields zero.
//!
//! The parameters travel with the ciphertext, so they can be raised later
//! without breaking older files; binding the header, the username and the
//! device id as associated data stops a sealed key being moved to another
//! identity row, or its parameters being lowered, without detection.
//!
//! What this does not protect: see `threat-model/README.md` ("Stolen device").

use std::fmt;

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use conclave_crypto::{DeviceKey, Username};
use rand::RngCore;
use sqlx::SqliteConnection;
use zeroize::Zeroizing;

use crate::error::{ClientError, Result};
use crate::identity::Identity;
use crate::store;

/// A local passphrase: it unseals this device's key on this machine, and is
/// never sent anywhere (it is not the account password). Zeroized on drop;
/// `Debug` shows nothing of it.
pub struct LocalPassphrase(Zeroizing<String>);

impl LocalPassphrase {
    /// Wraps a passphrase. An empty one is refused when it is used.
    pub fn new(passphrase: impl Into<String>) -> Self {
        Self(Zeroizing::new(passphrase.into()))
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for LocalPassphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalPassphrase(<redacted>)")
    }
}

/// The key a local passphrase derives for one home (argon2id over the
/// passphrase and that home's salt). Whoever holds it and a copy of that
/// home's `conclave.db` can unseal the device key, so keep it only where the
/// passphrase itself could be kept: in memory, or in a per-login-session file
/// readable by its owner alone (what `conclave` does under
/// `$XDG_RUNTIME_DIR`). Zeroized on drop; `Debug` shows nothing of it.
#[derive(Clone)]
pub struct UnlockKey(Zeroizing<[u8; 32]>);

impl UnlockKey {
    /// A key read back from where [`UnlockKey::to_bytes`] put it.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(Zeroizing::new(*bytes))
    }

    /// A new random key, for [`KeyProtection::SecretStore`].
    pub fn random() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Self(key)
    }

    /// The key's bytes, to keep in a private session file.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(*self.0)
    }
}

impl fmt::Debug for UnlockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnlockKey(<redacted>)")
    }
}

/// How a device key made by a login on this client is kept at rest. There is
/// no default: [`Client::open_with`](crate::Client::open_with) names one.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyProtection {
    /// Sealed under a key derived with argon2id from this local passphrase;
    /// each new process unlocks it once
    /// ([`Client::unlock`](crate::Client::unlock)).
    Passphrase(LocalPassphrase),
    /// Sealed under this random key ([`UnlockKey::random`]), which the
    /// application keeps in the operating system's secret store (the macOS
    /// Keychain, the Secret Service of GNOME Keyring or KWallet, the Windows
    /// Credential Manager); each new process reads it back from there and
    /// unlocks with [`Client::unlock_with`](crate::Client::unlock_with).
    SecretStore(UnlockKey),
    /// Kept in clear in `conclave.db`: anyone who copies that file signs as
    /// this device until it is revoked. Only for unattended bots, whose host
    /// has no one to type a passphrase and no better secret store.
    Unprotected,
}

/// Where this client's device key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyStatus {
    /// No device key yet: log in or register.
    NotLoggedIn,
    /// Sealed, and not unlocked in this process: signed calls fail with
    /// [`ClientError::KeyLocked`].
    Locked,
    /// Sealed, and unlocked in this process.
    Unlocked,
    /// In clear, as chosen with [`KeyProtection::Unprotected`].
    Unprotected,
    /// In clear because it was made before keys were sealed: the first
    /// [`Client::unlock`](crate::Client::unlock) with a passphrase seals it
    /// and deletes the clear copy.
    Clear,
}

/// What a sealed device key is sealed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealedUnder {
    /// A key derived from a local passphrase: [`Client::unlock`](crate::Client::unlock).
    Passphrase,
    /// A random key the application keeps in the operating system's secret
    /// store: [`Client::unlock_with`](crate::Client::unlock_with).
    SecretStore,
}

/// argon2id's cost: memory in KiB, passes, lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KdfParams {
    pub(crate) memory_kib: u32,
    pub(crate) passes: u32,
    pub(crate) lanes: u32,
}

/// 64 MiB, 3 passes, 1 lane: about a quarter of a second once per process
/// on a laptop, and a memory-hard cost for every guess of a thief who
/// copied the file (RFC 9106's second recommended option).
pub(crate) const KDF_PARAMS: KdfParams = KdfParams {
    memory_kib: 64 * 1024,
    passes: 3,
    lanes: 1,
};

/// Refused when reading a sealed key: a tampered header must not make an
/// unlock allocate gigabytes or run for hours.
const MAX_MEMORY_KIB: u32 = 1024 * 1024;
const MAX_PASSES: u32 = 16;
const MAX_LANES: u32 = 8;

/// The format markers: "CDK" (Conclave device key), then 1 for a key sealed
/// under a passphrase, 2 for one sealed under a key from a secret store.
const MARKER: &[u8; 4] = b"CDK\x01";
const MARKER_SECRET_STORE: &[u8; 4] = b"CDK\x02";
/// The parameters written for a key from a secret store: none.
const NO_KDF: KdfParams = KdfParams {
    memory_kib: 0,
    passes: 0,
    lanes: 0,
};
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = MARKER.len() + 12 + SALT_LEN + NONCE_LEN;
/// Header, then the 32-byte secret and the 16-byte tag.
pub(crate) const SEALED_LEN: usize = HEADER_LEN + 32 + 16;
const AAD_LABEL: &[u8] = b"conclave device key at rest v1\0";

/// A sealed key's header: what it is sealed under, and for a passphrase the
/// argon2id parameters and salt.
pub(crate) struct SealedHeader {
    pub(crate) under: SealedUnder,
    pub(crate) params: KdfParams,
    pub(crate) salt: [u8; SALT_LEN],
}

/// A fresh random salt.
pub(crate) fn new_salt() -> [u8; SALT_LEN] {
    let mut salt = [0u8; SALT_LEN];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    salt
}

/// argon2id over the passphrase. Slow on purpose: call it on a blocking thread.
pub(crate) fn derive(
    passphrase: &LocalPassphrase,
    params: KdfParams,
    salt: &[u8; SALT_LEN],
) -> Result<UnlockKey> {
    if passphrase.as_bytes().is_empty() {
        return Err(ClientError::Invalid(
            "the local passphrase is empty: choose one (or, for an unattended bot only, keep the key unprotected)"
                .into(),
        ));
    }
    let argon = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(params.memory_kib, params.passes, params.lanes, Some(32)).map_err(|e| {
            ClientError::store(format!("sealed device key: argon2 parameters: {e}"))
        })?,
    );
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .map_err(|e| ClientError::store(format!("deriving the unlock key: {e}")))?;
    Ok(UnlockKey(key))
}

fn aad(header: &[u8], username: &str, device_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + header.len() + username.len() + 33);
    aad.extend_from_slice(AAD_LABEL);
    aad.extend_from_slice(header);
    aad.extend_from_slice(username.as_bytes());
    aad.push(0);
    aad.extend_from_slice(device_id.as_bytes());
    aad
}

/// Seals `secret` (the device key's seed) for `username`'s device `device_id`.
/// `kdf` gives the argon2id parameters and salt `key` was derived with, or
/// `None` for a random key kept in a secret store.
pub(crate) fn seal(
    key: &UnlockKey,
    kdf: Option<(KdfParams, &[u8; SALT_LEN])>,
    secret: &[u8; 32],
    username: &str,
    device_id: &str,
) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let (marker, params, salt) = match kdf {
        Some((params, salt)) => (MARKER, params, *salt),
        None => (MARKER_SECRET_STORE, NO_KDF, [0u8; SALT_LEN]),
    };
    let mut sealed = Vec::with_capacity(SEALED_LEN);
    sealed.extend_from_slice(marker);
    for value in [params.memory_kib, params.passes, params.lanes] {
        sealed.extend_from_slice(&value.to_be_bytes());
    }
    sealed.extend_from_slice(&salt);
    sealed.extend_from_slice(&nonce);
    let aad = aad(&sealed, username, device_id);
    let ciphertext = XChaCha20Poly1305::new(key.0.as_ref().into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: secret,
                aad: &aad,
            },
        )
        .map_err(|_| ClientError::store("sealing the device key failed"))?;
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// Reads a sealed key's header, refusing unknown formats and parameters
/// beyond what any version of Conclave writes.
pub(crate) fn header(sealed: &[u8]) -> Result<SealedHeader> {
    let corrupt =
        |why: &str| ClientError::store(format!("the sealed device key is corrupt: {why}"));
    if sealed.len() != SEALED_LEN {
        return Err(corrupt("wrong length"));
    }
    let under = match &sealed[..MARKER.len()] {
        marker if marker == MARKER => SealedUnder::Passphrase,
        marker if marker == MARKER_SECRET_STORE => SealedUnder::SecretStore,
        _ => {
            return Err(corrupt(
                "unknown format (a newer Conclave may have written it)",
            ));
        }
    };
    let word = |at: usize| {
        let mut bytes = [0u8; 4];
        bytes.copy_from_slice(&sealed[at..at + 4]);
        u32::from_be_bytes(bytes)
    };
    let params = KdfParams {
        memory_kib: word(4),
        passes: word(8),
        lanes: word(12),
    };
    if params.memory_kib > MAX_MEMORY_KIB || params.passes > MAX_PASSES || params.lanes > MAX_LANES
    {
        return Err(corrupt("argon2 parameters out of range"));
    }
    if under == SealedUnder::SecretStore && params != NO_KDF {
        return Err(corrupt("argon2 parameters on a key from a secret store"));
    }
    let mut salt = [0u8; SALT_LEN];
    salt.copy_from_slice(&sealed[16..16 + SALT_LEN]);
    Ok(SealedHeader {
        under,
        params,
        salt,
    })
}

/// Opens a sealed key. A wrong passphrase and an altered file look the same
/// to the AEAD: both give [`ClientError::WrongPassphrase`].
pub(crate) fn open(
    key: &UnlockKey,
    sealed: &[u8],
    username: &str,
    device_id: &str,
) -> Result<Zeroizing<[u8; 32]>> {
    header(sealed)?;
    let aad = aad(&sealed[..HEADER_LEN], username, device_id);
    let nonce = XNonce::from_slice(&sealed[HEADER_LEN - NONCE_LEN..HEADER_LEN]);
    let plain = Zeroizing::new(
        XChaCha20Poly1305::new(key.0.as_ref().into())
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[HEADER_LEN..],
                    aad: &aad,
                },
            )
            .map_err(|_| ClientError::WrongPassphrase)?,
    );
    let mut secret = Zeroizing::new([0u8; 32]);
    if plain.len() != 32 {
        return Err(ClientError::store("the sealed device key is corrupt"));
    }
    secret.copy_from_slice(&plain);
    Ok(secret)
}

/// What this client knows of its key's keeping, beside the usable identity
/// in `Session::identity` (set only while the key is in memory).
pub(crate) struct AtRest {
    /// How a key made by a login here is kept; `None` refuses the login.
    pub(crate) protection: Option<KeyProtection>,
    pub(crate) status: KeyStatus,
    /// The stored identity while its key is locked: username, device id, bot owner.
    pub(crate) locked: Option<(Username, String, Option<Username>)>,
    /// The sealed key as stored, when it is sealed.
    pub(crate) sealed: Option<Vec<u8>>,
    /// The key that unsealed it (or sealed it) in this process.
    pub(crate) unlock_key: Option<UnlockKey>,
}

impl AtRest {
    fn new(status: KeyStatus) -> Self {
        Self {
            protection: None,
            status,
            locked: None,
            sealed: None,
            unlock_key: None,
        }
    }
}

/// Reads the stored identity: the usable one if its key is in clear, and
/// what is known of it either way.
pub(crate) async fn load(db: &mut SqliteConnection) -> Result<(Option<Identity>, AtRest)> {
    let Some(stored) = store::identity::load(db).await? else {
        return Ok((None, AtRest::new(KeyStatus::NotLoggedIn)));
    };
    let username = Username::parse(&stored.username).map_err(ClientError::store)?;
    let bot_owner = stored
        .bot_owner
        .map(|o| Username::parse(&o).map_err(ClientError::store))
        .transpose()?;
    let protection = stored.protection;
    if protection == "sealed" {
        let sealed: Vec<u8> = stored.sealed_key.unwrap_or_default();
        let device_id: String = stored
            .device_id
            .ok_or_else(|| ClientError::store("the sealed device key has no device id"))?;
        header(&sealed)?;
        let mut at_rest = AtRest::new(KeyStatus::Locked);
        at_rest.locked = Some((username, device_id, bot_owner));
        at_rest.sealed = Some(sealed);
        return Ok((None, at_rest));
    }
    let secret: &[u8; 32] = stored
        .device_secret
        .as_slice()
        .try_into()
        .map_err(|_| ClientError::store("device key is corrupt"))?;
    let status = if protection == "unprotected" {
        KeyStatus::Unprotected
    } else {
        KeyStatus::Clear
    };
    let identity = Identity {
        username,
        key: DeviceKey::from_secret_bytes(secret),
        bot_owner,
    };
    Ok((Some(identity), AtRest::new(status)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small parameters for the tests that do not check the defaults.
    const FAST: KdfParams = KdfParams {
        memory_kib: 256,
        passes: 1,
        lanes: 1,
    };

    fn sealed_with(passphrase: &str) -> (Vec<u8>, [u8; 32]) {
        let secret = [7u8; 32];
        let salt = new_salt();
        let key = derive(&LocalPassphrase::new(passphrase), FAST, &salt).unwrap();
        let sealed = seal(&key, Some((FAST, &salt)), &secret, "alice", "00ff").unwrap();
        (sealed, secret)
    }

    fn unlock(sealed: &[u8], passphrase: &str, user: &str, device: &str) -> Result<[u8; 32]> {
        let header = header(sealed)?;
        let key = derive(
            &LocalPassphrase::new(passphrase),
            header.params,
            &header.salt,
        )?;
        open(&key, sealed, user, device).map(|s| *s)
    }

    #[test]
    fn round_trip_with_the_default_parameters() {
        let secret = [42u8; 32];
        let salt = new_salt();
        let key = derive(&LocalPassphrase::new("correct horse"), KDF_PARAMS, &salt).unwrap();
        let sealed = seal(&key, Some((KDF_PARAMS, &salt)), &secret, "alice", "00ff").unwrap();
        assert_eq!(sealed.len(), SEALED_LEN);
        assert_eq!(&sealed[..4], b"CDK\x01");
        let header = header(&sealed).unwrap();
        assert_eq!(header.under, SealedUnder::Passphrase);
        assert_eq!(header.params, KDF_PARAMS);
        assert_eq!(header.salt, salt);
        assert!(
            !sealed.windows(32).any(|w| w == secret),
            "the secret must not appear in the sealed form"
        );
        assert_eq!(
            unlock(&sealed, "correct horse", "alice", "00ff").unwrap(),
            secret
        );
    }

    #[test]
    fn a_key_from_a_secret_store_seals_without_a_kdf_and_only_it_opens() {
        let secret = [42u8; 32];
        let key = UnlockKey::random();
        let sealed = seal(&key, None, &secret, "alice", "00ff").unwrap();
        assert_eq!(sealed.len(), SEALED_LEN);
        assert_eq!(&sealed[..4], b"CDK\x02");
        assert_eq!(header(&sealed).unwrap().under, SealedUnder::SecretStore);
        assert_eq!(*open(&key, &sealed, "alice", "00ff").unwrap(), secret);
        assert!(matches!(
            open(&UnlockKey::random(), &sealed, "alice", "00ff"),
            Err(ClientError::WrongPassphrase)
        ));
        // Parameters slipped into its header, or the marker turned into a
        // passphrase key's: refused or no longer opening.
        let mut with_params = sealed.clone();
        with_params[4..8].copy_from_slice(&1024u32.to_be_bytes());
        assert!(matches!(header(&with_params), Err(ClientError::Store(_))));
        let mut as_passphrase = sealed.clone();
        as_passphrase[3] = 1;
        assert!(open(&key, &as_passphrase, "alice", "00ff").is_err());
    }

    #[test]
    fn a_wrong_passphrase_is_refused() {
        let (sealed, _) = sealed_with("correct horse");
        assert!(matches!(
            unlock(&sealed, "correct hose", "alice", "00ff"),
            Err(ClientError::WrongPassphrase)
        ));
        assert!(matches!(
            unlock(&sealed, "", "alice", "00ff"),
            Err(ClientError::Invalid(_))
        ));
    }

    #[test]
    fn tampering_anywhere_is_refused() {
        let (sealed, secret) = sealed_with("pass");
        assert_eq!(unlock(&sealed, "pass", "alice", "00ff").unwrap(), secret);
        for at in [0, 5, 20, 40, HEADER_LEN, SEALED_LEN - 1] {
            let mut altered = sealed.clone();
            altered[at] ^= 1;
            assert!(
                unlock(&altered, "pass", "alice", "00ff").is_err(),
                "byte {at} altered, yet it opened"
            );
        }
        // Moved to another identity: the associated data no longer matches.
        assert!(matches!(
            unlock(&sealed, "pass", "mallory", "00ff"),
            Err(ClientError::WrongPassphrase)
        ));
        assert!(matches!(
            unlock(&sealed, "pass", "alice", "00fe"),
            Err(ClientError::WrongPassphrase)
        ));
        assert!(unlock(&sealed[..SEALED_LEN - 1], "pass", "alice", "00ff").is_err());
    }

    #[test]
    fn absurd_parameters_are_refused_before_deriving() {
        let (mut sealed, _) = sealed_with("pass");
        sealed[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(header(&sealed), Err(ClientError::Store(_))));
    }

    #[test]
    fn debug_shows_no_secret() {
        let passphrase = LocalPassphrase::new("hunter2-hunter2");
        let key = UnlockKey::from_bytes(&[0xAB; 32]);
        let shown = format!(
            "{passphrase:?} {key:?} {:?}",
            KeyProtection::Passphrase(LocalPassphrase::new("hunter2-hunter2"))
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.to_lowercase().contains("ab, ") && !shown.contains("171"));
        assert!(shown.contains("redacted"));
    }
}
