use std::fmt;

use openmls::prelude::{BasicCredential, Credential};

use crate::device_key::DeviceId;
use crate::error::Error;

/// A validated account name: 1–32 of `a-z 0-9 . _ -`, starting with a letter or digit.
///
/// Names are lowercase only so that `Alice` and `alice` can never be two accounts.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);

impl Username {
    /// Validates `name`.
    pub fn parse(name: &str) -> Result<Self, Error> {
        let valid_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
        let valid = (1..=32).contains(&name.len())
            && name.chars().all(valid_char)
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(Error::InvalidUsername(name.chars().take(40).collect()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Username({})", self.0)
    }
}

/// Whether `name` can be a slash command (without its `/`): 1-32 of
/// `a-z 0-9 _ -`. The relay's registry and every client use this one rule.
pub fn is_command_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The identity inside every Conclave MLS leaf: which user, which device.
///
/// Encoded as an MLS basic credential whose identity is
/// `conclave1:<username>:<device id>`, or for a bot
/// `conclave1:<username>:<device id>:bot:<owner>`. The relay accepts a leaf
/// only when the leaf's signature key is the registered key of exactly that
/// device, and the bot mark only as the account's own, so the credential
/// cannot claim a device its key does not belong to, nor hide a bot.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct DeviceCredential {
    user: Username,
    device: DeviceId,
    bot_owner: Option<Username>,
}

const PREFIX: &str = "conclave1:";

impl DeviceCredential {
    /// Binds `user` to `device`.
    pub fn new(user: Username, device: DeviceId) -> Self {
        Self {
            user,
            device,
            bot_owner: None,
        }
    }

    /// Marks the account as a bot run by `owner`, for every member to see.
    pub fn with_bot_owner(mut self, owner: Option<Username>) -> Self {
        self.bot_owner = owner;
        self
    }

    /// For a bot, the account that owns it.
    pub fn bot_owner(&self) -> Option<&Username> {
        self.bot_owner.as_ref()
    }

    /// The user.
    pub fn user(&self) -> &Username {
        &self.user
    }

    /// The device.
    pub fn device(&self) -> DeviceId {
        self.device
    }

    /// The canonical identity bytes.
    pub fn identity(&self) -> Vec<u8> {
        match &self.bot_owner {
            None => format!("{PREFIX}{}:{}", self.user, self.device),
            Some(owner) => format!("{PREFIX}{}:{}:bot:{owner}", self.user, self.device),
        }
        .into_bytes()
    }

    /// Parses canonical identity bytes.
    pub fn from_identity(identity: &[u8]) -> Result<Self, Error> {
        let text = std::str::from_utf8(identity).map_err(|_| Error::InvalidCredential)?;
        let rest = text.strip_prefix(PREFIX).ok_or(Error::InvalidCredential)?;
        let (user, rest) = rest.split_once(':').ok_or(Error::InvalidCredential)?;
        let (device, bot_owner) = match rest.split_once(":bot:") {
            Some((device, owner)) => (
                device,
                Some(Username::parse(owner).map_err(|_| Error::InvalidCredential)?),
            ),
            None => (rest, None),
        };
        Ok(Self {
            user: Username::parse(user).map_err(|_| Error::InvalidCredential)?,
            device: DeviceId::parse(device).map_err(|_| Error::InvalidCredential)?,
            bot_owner,
        })
    }

    /// As an openmls credential.
    pub fn to_mls(&self) -> Credential {
        BasicCredential::new(self.identity()).into()
    }

    /// From an openmls credential (must be a basic credential in our format).
    pub fn from_mls(credential: &Credential) -> Result<Self, Error> {
        let basic =
            BasicCredential::try_from(credential.clone()).map_err(|_| Error::InvalidCredential)?;
        Self::from_identity(basic.identity())
    }
}

/// How many characters a new account password may have. The relay enforces
/// it; clients check it too, so that nobody types a refused password twice.
pub const NEW_PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 10..=1024;

/// Checks a new account password against [`NEW_PASSWORD_CHARS`].
pub fn check_new_password(password: &str) -> Result<(), Error> {
    let length = password.chars().count();
    if NEW_PASSWORD_CHARS.contains(&length) {
        Ok(())
    } else {
        Err(Error::PasswordLength(length))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeviceKey;

    #[test]
    fn a_new_password_is_counted_in_characters() {
        assert_eq!(
            check_new_password("nine char"),
            Err(Error::PasswordLength(9))
        );
        assert!(check_new_password("ten chars!").is_ok());
        // Ten characters, more bytes: counted as ten.
        assert!(
            check_new_password("\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}")
                .is_ok()
        );
        assert!(check_new_password(&"x".repeat(1025)).is_err());
    }

    #[test]
    fn command_names_follow_the_rules() {
        for good in ["deploy", "remind", "ci_status", "x-2"] {
            assert!(is_command_name(good), "{good}");
        }
        for bad in ["", "Deploy", "de ploy", "/deploy", "ré", &"x".repeat(33)] {
            assert!(!is_command_name(bad), "{bad}");
        }
    }

    #[test]
    fn usernames_follow_the_rules() {
        for good in ["alice", "bob.smith", "c4rol_x-y", "0day"] {
            assert!(Username::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "Alice", "-bob", "a b", "a:b", &"x".repeat(33), "é"] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credential_round_trips_through_mls() {
        let key = DeviceKey::generate();
        let cred = key.credential(&Username::parse("alice").unwrap());
        assert_eq!(DeviceCredential::from_mls(&cred.to_mls()), Ok(cred.clone()));
        let bot = DeviceCredential::new(Username::parse("deploy-bot").unwrap(), key.device_id())
            .with_bot_owner(Some(Username::parse("alice").unwrap()));
        assert!(
            String::from_utf8(bot.identity())
                .unwrap()
                .ends_with(":bot:alice")
        );
        let back = DeviceCredential::from_mls(&bot.to_mls()).unwrap();
        assert_eq!(back.bot_owner().map(Username::as_str), Some("alice"));
        assert_ne!(back, cred.with_bot_owner(None));
    }

    #[test]
    fn foreign_identities_are_refused() {
        for bad in [
            &b"alice"[..],
            b"conclave1:alice",
            b"conclave1:Alice:00",
            b"conclave1:alice:00000000000000000000000000000000:bot:",
            b"conclave1:alice:00000000000000000000000000000000:bot:Eve",
            b"\xff",
        ] {
            assert_eq!(
                DeviceCredential::from_identity(bad),
                Err(Error::InvalidCredential)
            );
        }
    }
}
