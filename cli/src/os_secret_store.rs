//! The operating system's secret store (the macOS Keychain, the Windows
//! Credential Manager, the Secret Service of GNOME Keyring or KWallet), where
//! it can be reached: it keeps a random key that seals this device's key in
//! `conclave.db`, so a copy of that file alone signs nothing and nobody has
//! to type a passphrase. The store itself is unlocked with the user's login.
//!
//! One entry per home: service `conclave`, user `device-key:<hash of the
//! home's absolute path>` (the same hash names the key session file).

use conclave_client::UnlockKey;
use zeroize::Zeroizing;

/// The entry's service name.
const SERVICE: &str = "conclave";

/// The secret store's entry for the home whose hash is `home_hash`.
fn entry(home_hash: &str) -> Result<keyring::Entry, String> {
    keyring::Entry::new(SERVICE, &format!("device-key:{home_hash}"))
        .map_err(|e| format!("the operating system's secret store: {e}"))
}

/// Whether a secret store answers here: reading this home's entry either
/// finds one or says there is none. No D-Bus session, no keyring daemon, or
/// a store that refuses access all count as none.
pub(crate) fn reachable(home_hash: &str) -> bool {
    match entry(home_hash) {
        Ok(entry) => matches!(entry.get_secret(), Ok(_) | Err(keyring::Error::NoEntry)),
        Err(_) => false,
    }
}

/// A new random unlock key, kept in the secret store for this home (any
/// earlier one of this home is replaced: its key is being replaced too).
pub(crate) fn new_key(home_hash: &str) -> Result<UnlockKey, String> {
    let key = UnlockKey::random();
    entry(home_hash)?
        .set_secret(key.to_bytes().as_ref())
        .map_err(|e| {
            format!("cannot keep the unlock key in the operating system's secret store: {e}")
        })?;
    Ok(key)
}

/// This home's unlock key, read back from the secret store.
pub(crate) fn read_key(home_hash: &str) -> Result<UnlockKey, String> {
    let secret = entry(home_hash)?.get_secret().map_err(|e| match e {
        keyring::Error::NoEntry => {
            "the operating system's secret store holds no key for this home \
             (was conclave.db copied from elsewhere?): log in again on this machine"
                .to_owned()
        }
        other => format!(
            "this device's key is sealed under a key kept in the operating system's secret store, \
             which cannot be read here: {other}"
        ),
    })?;
    let secret = Zeroizing::new(secret);
    let bytes: &[u8; 32] = secret.as_slice().try_into().map_err(|_| {
        "the operating system's secret store holds something else under this home's entry"
            .to_owned()
    })?;
    Ok(UnlockKey::from_bytes(bytes))
}

/// Deletes this home's entry, if there is one (after a failed login that
/// stored no key, or when the home is given up).
pub(crate) fn forget(home_hash: &str) {
    if let Ok(entry) = entry(home_hash) {
        let _ = entry.delete_credential();
    }
}
