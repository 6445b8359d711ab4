//! This device's key, unlocked once per login session.
//!
//! The key is sealed in `conclave.db` (see client-core's `key_at_rest.rs`)
//! under a random key kept in the operating system's secret store when one
//! answers (`os_secret_store.rs`: the store unlocks with the user's login,
//! so nothing is asked), else under a local passphrase. The first command
//! of a login session
//! asks for the passphrase (or reads `CONCLAVE_KEY_PASSPHRASE`, or a line of
//! standard input with `--key-passphrase-stdin`) and leaves the derived
//! unlock key in `$XDG_RUNTIME_DIR/conclave-<hash of the home>`, mode 0600;
//! the following commands read it and ask nothing. `conclave lock` deletes
//! it. Without `$XDG_RUNTIME_DIR` every process asks.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use conclave_client::{
    Client, ClientError, KeyProtection, KeyStatus, LocalPassphrase, SealedUnder, UnlockKey,
};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::os_secret_store;

/// The environment variable scripts and unattended bots give the local
/// passphrase in.
pub(crate) const PASSPHRASE_ENV: &str = "CONCLAVE_KEY_PASSPHRASE";

/// Where the local passphrase may come from, besides a prompt.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PassphraseFlags {
    /// `--key-passphrase-stdin`: the first line of standard input.
    pub(crate) from_stdin: bool,
    /// `--unprotected-key`: a new key is kept in clear (unattended bots only).
    pub(crate) unprotected: bool,
    /// `--key-store`: where a new key's unlock key is kept.
    pub(crate) store: KeyStore,
}

/// `--key-store`: where the key that seals a new device key is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum KeyStore {
    /// The operating system's secret store when it answers, else a local
    /// passphrase; a passphrase given with CONCLAVE_KEY_PASSPHRASE or
    /// --key-passphrase-stdin is used as given.
    Auto,
    /// The operating system's secret store, or fail.
    Os,
    /// A local passphrase; the operating system's secret store is not asked.
    Passphrase,
}

/// The passphrase from standard input or the environment, if given there.
fn given_passphrase(flags: PassphraseFlags) -> Result<Option<LocalPassphrase>, String> {
    if flags.from_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("reading the local passphrase: {e}"))?;
        let passphrase = line.trim_end_matches(['\n', '\r']);
        if passphrase.is_empty() {
            return Err("no local passphrase on standard input".into());
        }
        return Ok(Some(LocalPassphrase::new(passphrase)));
    }
    match std::env::var(PASSPHRASE_ENV) {
        Ok(passphrase) if !passphrase.is_empty() => Ok(Some(LocalPassphrase::new(passphrase))),
        _ => Ok(None),
    }
}

fn prompt(text: &str) -> Result<Zeroizing<String>, String> {
    rpassword::prompt_password(text)
        .map(Zeroizing::new)
        .map_err(|e| format!("reading the local passphrase: {e}"))
}

/// A new passphrase, typed twice on a terminal.
fn new_passphrase_prompt() -> Result<LocalPassphrase, String> {
    eprintln!(
        "This device's key will be sealed under a local passphrase (not your account password; \
         it never leaves this machine)."
    );
    let first = prompt("New local passphrase: ")?;
    if first.is_empty() {
        return Err("the local passphrase is empty".into());
    }
    let again = prompt("Repeat local passphrase: ")?;
    if *first != *again {
        return Err("the local passphrases do not match".into());
    }
    Ok(LocalPassphrase::new(first.as_str()))
}

/// How a login from this home keeps its new key: in clear only when asked
/// with `--unprotected-key`; under a passphrase given on stdin or in the
/// environment; else under a new random key kept in the operating system's
/// secret store, when one answers; else under a passphrase asked for on a
/// terminal.
pub(crate) fn new_key_protection(
    home: &Path,
    flags: PassphraseFlags,
) -> Result<KeyProtection, String> {
    if flags.unprotected {
        return Ok(KeyProtection::Unprotected);
    }
    if flags.store != KeyStore::Os
        && let Some(passphrase) = given_passphrase(flags)?
    {
        return Ok(KeyProtection::Passphrase(passphrase));
    }
    if flags.store != KeyStore::Passphrase {
        let hash = home_hash(home);
        if os_secret_store::reachable(&hash) {
            return Ok(KeyProtection::SecretStore(os_secret_store::new_key(&hash)?));
        }
        if flags.store == KeyStore::Os {
            return Err(
                "the operating system's secret store cannot be reached (on Linux: no D-Bus session \
                 with a Secret Service such as GNOME Keyring or KWallet): drop --key-store os to \
                 seal this device's key under a local passphrase instead"
                    .into(),
            );
        }
    }
    if std::io::stdin().is_terminal() {
        return Ok(KeyProtection::Passphrase(new_passphrase_prompt()?));
    }
    Err(format!(
        "no local passphrase for this device's key, and no secret store of the operating system \
         answers: set {PASSPHRASE_ENV}, pass --key-passphrase-stdin, or, for an unattended bot only, \
         --unprotected-key"
    ))
}

/// Unlocks a key sealed under a key from the operating system's secret store.
async fn unlock_from_os_store(client: &Client, home: &Path) -> Result<(), String> {
    let key = os_secret_store::read_key(&home_hash(home))?;
    client.unlock_with(&key).await.map_err(|e| match e {
        ClientError::WrongPassphrase => "the key the operating system's secret store holds for \
             this home does not open its device key (was conclave.db copied from another home?): \
             log in again on this machine"
            .to_owned(),
        other => other.to_string(),
    })
}

/// Unlocks the client's key for this command: from the session file, else
/// with the passphrase (given, or asked once on a terminal), which then
/// leaves a session file. A key still in clear from an older version is
/// sealed when a passphrase is given. Without any, the key stays locked
/// and signed calls say what to do.
pub(crate) async fn unlock(
    client: &Client,
    home: &Path,
    flags: PassphraseFlags,
) -> Result<(), String> {
    match client.key_status() {
        KeyStatus::Locked if client.sealed_under() == Some(SealedUnder::SecretStore) => {
            unlock_from_os_store(client, home).await
        }
        KeyStatus::Locked => {
            if let Some(path) = session_path(home)
                && let Some(key) = read_session(&path)?
            {
                match client.unlock_with(&key).await {
                    Ok(()) => return Ok(()),
                    // Left by an earlier key of this home: ask again.
                    Err(ClientError::WrongPassphrase) => {
                        let _ = std::fs::remove_file(&path);
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
            let passphrase = match given_passphrase(flags)? {
                Some(passphrase) => passphrase,
                None if std::io::stdin().is_terminal() => LocalPassphrase::new(
                    prompt("Local passphrase for this device's key: ")?.as_str(),
                ),
                None => return Ok(()),
            };
            client
                .unlock(&passphrase)
                .await
                .map_err(|e| e.to_string())?;
            keep_session(client, home)
        }
        KeyStatus::Clear => {
            let passphrase = match given_passphrase(flags)? {
                Some(passphrase) => passphrase,
                None if std::io::stdin().is_terminal() => {
                    eprintln!(
                        "This device's key is kept in clear in {} (it was made before keys were sealed).",
                        home.join("conclave.db").display()
                    );
                    new_passphrase_prompt()?
                }
                None => {
                    eprintln!(
                        "conclave: warning: this device's key is kept in clear; set {PASSPHRASE_ENV} once to seal it"
                    );
                    return Ok(());
                }
            };
            client
                .unlock(&passphrase)
                .await
                .map_err(|e| e.to_string())?;
            eprintln!("conclave: this device's key is now sealed under the local passphrase");
            keep_session(client, home)
        }
        _ => Ok(()),
    }
}

/// Leaves the unlock key in this login session's file, when there is a
/// runtime directory and the key is sealed under a passphrase (a key from
/// the operating system's secret store is read from there each time).
pub(crate) fn keep_session(client: &Client, home: &Path) -> Result<(), String> {
    if client.sealed_under() != Some(SealedUnder::Passphrase) {
        return Ok(());
    }
    match (session_path(home), client.unlock_key()) {
        (Some(path), Some(key)) => write_session(&path, &key),
        _ => Ok(()),
    }
}

/// `conclave lock`: deletes the session file. Returns whether there was one.
pub(crate) fn lock(home: &Path) -> Result<bool, String> {
    let Some(path) = session_path(home) else {
        return Ok(false);
    };
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("cannot delete {}: {e}", path.display())),
    }
}

/// `$XDG_RUNTIME_DIR/conclave-<home hash>`; `None` without a runtime
/// directory.
pub(crate) fn session_path(home: &Path) -> Option<PathBuf> {
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty())?;
    let runtime = PathBuf::from(runtime);
    if !runtime.is_absolute() {
        return None;
    }
    Some(runtime.join(format!("conclave-{}", home_hash(home))))
}

/// The first 16 bytes of SHA-256 of the home's absolute path, hex: names its
/// session file and its entry in the operating system's secret store.
pub(crate) fn home_hash(home: &Path) -> String {
    let home = std::path::absolute(home).unwrap_or_else(|_| home.to_owned());
    let digest = Sha256::new()
        .chain_update(b"conclave key session v1\0")
        .chain_update(home.as_os_str().as_encoded_bytes())
        .finalize();
    hex::encode(&digest[..16])
}

/// Reads a session file, refusing one that is not a regular file owned by
/// this user and readable by no one else.
fn read_session(path: &Path) -> Result<Option<UnlockKey>, String> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    check_private(path, &metadata)?;
    let mut bytes = Zeroizing::new(Vec::new());
    std::fs::File::open(path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let Ok(bytes) = <&[u8; 32]>::try_from(bytes.as_slice()) else {
        return Err(format!(
            "{} is not a conclave key session file: delete it (`conclave lock`)",
            path.display()
        ));
    };
    Ok(Some(UnlockKey::from_bytes(bytes)))
}

#[cfg(unix)]
fn check_private(path: &Path, metadata: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let refuse = |why: &str| {
        Err(format!(
            "refusing the key session file {}: {why}; delete it (`conclave lock`) and unlock again",
            path.display()
        ))
    };
    if !metadata.file_type().is_file() {
        return refuse("it is not a regular file");
    }
    if metadata.uid() != rustix::process::geteuid().as_raw() {
        return refuse("it belongs to another user");
    }
    if metadata.mode() & 0o077 != 0 {
        return refuse("others may read or change it");
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _metadata: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}

/// Writes the session file, mode 0600 from its creation, through a
/// temporary file and a rename.
fn write_session(path: &Path, key: &UnlockKey) -> Result<(), String> {
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut file = options.open(&temporary).map_err(fail)?;
    let written = file
        .write_all(key.to_bytes().as_ref())
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(fail(e));
    }
    Ok(())
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "conclave-key-session-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_session_file_is_private_and_read_back() {
        let dir = scratch("private");
        let path = dir.join("session");
        write_session(&path, &UnlockKey::from_bytes(&[9; 32])).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let key = read_session(&path).unwrap().expect("a key");
        assert_eq!(*key.to_bytes(), [9; 32]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_session_file_others_can_read_is_refused() {
        let dir = scratch("shared");
        let path = dir.join("session");
        write_session(&path, &UnlockKey::from_bytes(&[9; 32])).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let refused = read_session(&path).unwrap_err();
        assert!(refused.contains("others may read"), "{refused}");
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &path).unwrap();
        let refused = read_session(&path).unwrap_err();
        assert!(refused.contains("not a regular file"), "{refused}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
