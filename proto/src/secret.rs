//! Secrets that travel in bodies: passwords, and the codes that stand in
//! for one (TOTP, recovery and invite codes) or carry a seed (the otpauth
//! URI of a TOTP enrollment).
//!
//! Each is wiped from memory when dropped and prints as `<redacted>`, so a
//! body shown with `{:?}` (in a log, a panic, a test failure) shows none of
//! them. There is no `Display` and no `PartialEq`: the text comes out only
//! through an explicit `expose`, and a relay compares it against a hash.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// Declares a secret text type: the same behaviour under each name, so that
/// a password cannot be passed where a code is expected.
macro_rules! secret_text {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name(Zeroizing<String>);

        impl $name {
            /// Wraps text.
            pub fn new(text: String) -> Self {
                Self(Zeroizing::new(text))
            }

            /// The text, for the one step that needs it (hashing, checking,
            /// showing it once to its owner).
            pub fn expose(&self) -> &str {
                &self.0
            }

            /// The text, still wiped on drop, for a step that takes it by
            /// value (a hash computed on another thread).
            pub fn into_zeroizing(self) -> Zeroizing<String> {
                self.0
            }
        }

        impl From<Zeroizing<String>> for $name {
            fn from(text: Zeroizing<String>) -> Self {
                Self(text)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map(Self::new)
            }
        }
    };
}

secret_text! {
    /// An account password, as a body carries it: at registration, in every
    /// proof, and as the new one when it changes.
    Password
}

secret_text! {
    /// Secret text other than a password: a TOTP code, a recovery code, an
    /// invite code, or the otpauth URI that holds a TOTP seed.
    SecretText
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_travel_as_plain_strings() {
        let password: Password = serde_json::from_str(r#""correct horse""#).unwrap();
        assert_eq!(password.expose(), "correct horse");
        assert_eq!(
            serde_json::to_string(&password).unwrap(),
            r#""correct horse""#
        );
        let code = SecretText::new("123456".into());
        assert_eq!(serde_json::to_string(&code).unwrap(), r#""123456""#);
        let code = SecretText::from(code.into_zeroizing());
        assert_eq!(code.expose(), "123456");
    }

    #[test]
    fn secrets_never_print() {
        let password = Password::new("correct horse".into());
        let code = SecretText::new("123456".into());
        assert_eq!(format!("{password:?}"), "Password(<redacted>)");
        assert_eq!(format!("{code:?}"), "SecretText(<redacted>)");
        assert!(!format!("{:?}", Some(&password)).contains("horse"));
    }
}
