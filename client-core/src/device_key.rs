//! The device key of a client: opening a client with the key protected as
//! chosen, unlocking it, and keeping a new one. How a key is sealed at rest
//! is `key_at_rest.rs`.

use std::path::Path;

use conclave_crypto::{DeviceKey, Username};

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::identity::Identity;
use crate::key_at_rest::{
    KDF_PARAMS, KeyProtection, KeyStatus, LocalPassphrase, SealedUnder, UnlockKey, derive, header,
    new_salt, open, seal,
};
use crate::store;
use crate::transport::Transport;

impl Client {
    /// Opens the device store in `home`, as [`Client::open`] does, with the
    /// key kept as `protection` says. A login on this client makes a key
    /// kept that way; a key already in `home` is unlocked with the
    /// passphrase given (a key kept in clear by an older version is sealed
    /// under it, and the clear copy deleted). With
    /// [`KeyProtection::Unprotected`] a sealed key stays locked.
    ///
    /// A wrong passphrase gives [`ClientError::WrongPassphrase`].
    pub async fn open_with(
        home: &Path,
        transport: impl Transport,
        protection: KeyProtection,
    ) -> Result<Self> {
        let client = Self::open(home, transport).await?;
        match &protection {
            KeyProtection::Passphrase(passphrase)
                if matches!(client.key_status(), KeyStatus::Locked | KeyStatus::Clear) =>
            {
                client.unlock(passphrase).await?;
            }
            KeyProtection::SecretStore(key) if client.key_status() == KeyStatus::Locked => {
                client.unlock_with(key).await?;
            }
            _ => {}
        }
        client.session.at_rest()?.protection = Some(protection);
        Ok(client)
    }

    /// What this device's key is sealed under; `None` when it is not sealed.
    pub fn sealed_under(&self) -> Option<SealedUnder> {
        let at_rest = self.session.at_rest().ok()?;
        header(at_rest.sealed.as_deref()?).ok().map(|h| h.under)
    }

    /// Where this device's key stands: locked, unlocked, in clear, or none yet.
    pub fn key_status(&self) -> KeyStatus {
        self.session
            .at_rest()
            .map(|a| a.status)
            .unwrap_or(KeyStatus::Locked)
    }

    /// Unlocks this device's sealed key with its local passphrase, for the
    /// life of this client. A key kept in clear by an older version
    /// ([`KeyStatus::Clear`]) is sealed under the passphrase instead, and its
    /// clear copy overwritten in `conclave.db` and its log.
    ///
    /// Afterwards [`Client::unlock_key`] gives the derived key, which
    /// [`Client::unlock_with`] accepts without the slow derivation.
    pub async fn unlock(&self, passphrase: &LocalPassphrase) -> Result<()> {
        let status = self.key_status();
        match status {
            KeyStatus::Locked | KeyStatus::Unlocked => {
                let sealed = self
                    .session
                    .at_rest()?
                    .sealed
                    .clone()
                    .ok_or_else(|| ClientError::store("the sealed device key is missing"))?;
                let header = header(&sealed)?;
                if header.under == SealedUnder::SecretStore {
                    return Err(ClientError::Invalid(
                        "this device's key is sealed under a key kept in the operating system's \
                         secret store, not under a passphrase"
                            .into(),
                    ));
                }
                let key = tokio::task::block_in_place(|| {
                    derive(passphrase, header.params, &header.salt)
                })?;
                self.unlock_with(&key).await
            }
            KeyStatus::Clear => self.seal_clear_key(passphrase).await,
            KeyStatus::Unprotected => Err(ClientError::Invalid(
                "this device's key was kept unprotected when it logged in (--unprotected-key): \
                 there is nothing to unlock; log in again on a new home to protect it"
                    .into(),
            )),
            KeyStatus::NotLoggedIn => Err(ClientError::NotLoggedIn),
        }
    }

    /// Unlocks this device's sealed key with an [`UnlockKey`] that
    /// [`Client::unlock`] returned for this home earlier.
    pub async fn unlock_with(&self, key: &UnlockKey) -> Result<()> {
        let (sealed, username, device_id, bot_owner) = {
            let at_rest = self.session.at_rest()?;
            match (&at_rest.sealed, &at_rest.locked) {
                (Some(sealed), Some((username, device_id, bot_owner))) => (
                    sealed.clone(),
                    username.clone(),
                    device_id.clone(),
                    bot_owner.clone(),
                ),
                // Unlocked already: the key must still fit.
                (Some(sealed), None) => {
                    let sealed = sealed.clone();
                    drop(at_rest);
                    let identity = self.identity()?;
                    open(
                        key,
                        &sealed,
                        identity.username.as_str(),
                        &identity.key.device_id().to_string(),
                    )?;
                    self.session.at_rest()?.unlock_key = Some(key.clone());
                    return Ok(());
                }
                _ => {
                    return Err(ClientError::Invalid(
                        "this device's key is not sealed: there is nothing to unlock".into(),
                    ));
                }
            }
        };
        let secret = open(key, &sealed, username.as_str(), &device_id)?;
        let device_key = DeviceKey::from_secret_bytes(&secret);
        if device_key.device_id().to_string() != device_id {
            return Err(ClientError::store(
                "the sealed device key belongs to another device",
            ));
        }
        self.session.set_identity(Identity {
            username,
            key: device_key,
            bot_owner,
        })?;
        let mut at_rest = self.session.at_rest()?;
        at_rest.status = KeyStatus::Unlocked;
        at_rest.locked = None;
        at_rest.unlock_key = Some(key.clone());
        Ok(())
    }

    /// Seals a key kept in clear, and overwrites the clear copy.
    async fn seal_clear_key(&self, passphrase: &LocalPassphrase) -> Result<()> {
        let identity = self.identity()?;
        let salt = new_salt();
        let key = tokio::task::block_in_place(|| derive(passphrase, KDF_PARAMS, &salt))?;
        let device_id = identity.key.device_id().to_string();
        let sealed = seal(
            &key,
            Some((KDF_PARAMS, &salt)),
            &identity.key.to_secret_bytes(),
            identity.username.as_str(),
            &device_id,
        )?;
        let mut db = self.db().await;
        store::identity::seal(&mut db, &sealed, &device_id).await?;
        // secure_delete zeroed the old cell; the log still holds the page
        // as it was: copy the new one into the main file and empty the log.
        if !store::empty_log(&mut db).await? {
            tracing::warn!(
                "the store's log could not be emptied; the clear key may remain in conclave.db-wal until the next checkpoint"
            );
        }
        drop(db);
        let mut at_rest = self.session.at_rest()?;
        at_rest.status = KeyStatus::Unlocked;
        at_rest.sealed = Some(sealed);
        at_rest.unlock_key = Some(key);
        Ok(())
    }

    /// The key that unsealed (or sealed) this device's key in this process,
    /// for a cache that spares the next process of the same login session
    /// the passphrase (see [`UnlockKey`]); `None` while locked or unprotected.
    pub fn unlock_key(&self) -> Option<UnlockKey> {
        self.session.at_rest().ok()?.unlock_key.clone()
    }

    /// Refuses a login before it reaches the relay when no one said how its
    /// key would be kept.
    pub(crate) fn check_key_protection(&self) -> Result<()> {
        if self.session.at_rest()?.protection.is_none() {
            return Err(ClientError::NoKeyProtection);
        }
        Ok(())
    }

    /// Stores a new device key as the chosen protection says.
    pub(crate) async fn store_new_key(&self, name: &Username, key: &DeviceKey) -> Result<()> {
        let device_id = key.device_id().to_string();
        let sealing = match &self.session.at_rest()?.protection {
            None => return Err(ClientError::NoKeyProtection),
            Some(KeyProtection::Unprotected) => None,
            Some(KeyProtection::Passphrase(passphrase)) => {
                let salt = new_salt();
                let unlock = tokio::task::block_in_place(|| derive(passphrase, KDF_PARAMS, &salt))?;
                let sealed = seal(
                    &unlock,
                    Some((KDF_PARAMS, &salt)),
                    &key.to_secret_bytes(),
                    name.as_str(),
                    &device_id,
                )?;
                Some((sealed, unlock))
            }
            Some(KeyProtection::SecretStore(unlock)) => {
                let sealed = seal(
                    unlock,
                    None,
                    &key.to_secret_bytes(),
                    name.as_str(),
                    &device_id,
                )?;
                Some((sealed, unlock.clone()))
            }
        };
        let mut db = self.db().await;
        match &sealing {
            Some((sealed, _)) => {
                store::identity::insert_sealed(&mut db, name.as_str(), sealed, &device_id).await?;
            }
            None => {
                let secret = key.to_secret_bytes();
                store::identity::insert_unprotected(
                    &mut db,
                    name.as_str(),
                    &secret[..],
                    &device_id,
                )
                .await?;
            }
        }
        drop(db);
        let mut at_rest = self.session.at_rest()?;
        at_rest.status = if sealing.is_some() {
            KeyStatus::Unlocked
        } else {
            KeyStatus::Unprotected
        };
        let (sealed, unlock_key) = sealing.unzip();
        at_rest.sealed = sealed;
        at_rest.unlock_key = unlock_key;
        Ok(())
    }

    /// The username and device id, while the key is locked.
    pub(crate) fn locked_as(&self) -> Option<(String, String)> {
        self.session
            .at_rest()
            .ok()?
            .locked
            .as_ref()
            .map(|(user, device, _)| (user.to_string(), device.clone()))
    }
}
