//! Who this device is: the account's username, the device key and, for a
//! bot, its owner.

use conclave_crypto::{DeviceCredential, DeviceKey, Username};

pub(crate) struct Identity {
    pub(crate) username: Username,
    pub(crate) key: DeviceKey,
    /// For a bot account, its owner: part of every leaf credential.
    pub(crate) bot_owner: Option<Username>,
}

impl Identity {
    /// This device's MLS credential (with the bot mark, for a bot).
    pub(crate) fn credential(&self) -> DeviceCredential {
        self.key
            .credential(&self.username)
            .with_bot_owner(self.bot_owner.clone())
    }
}
