/// Everything that can go wrong in this crate. Each variant names what was wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A public key was not 32 bytes or not a valid Ed25519 point.
    #[error("invalid device public key")]
    InvalidPublicKey,
    /// A signature did not verify (or was malformed or malleable).
    #[error("signature does not verify")]
    BadSignature,
    /// A username broke the naming rules.
    #[error(
        "invalid username {0:?}: use 1-32 characters a-z, 0-9, '.', '_' or '-', starting with a letter or digit"
    )]
    InvalidUsername(String),
    /// A device id was not 32 lowercase hex characters.
    #[error("invalid device id: expected 32 lowercase hex characters")]
    InvalidDeviceId,
    /// An MLS credential was not a Conclave device credential.
    #[error("credential is not a Conclave device credential")]
    InvalidCredential,
    /// A new account password was too short or too long.
    #[error("a password must be 10 to 1024 characters (this one has {0})")]
    PasswordLength(usize),
    /// An OPAQUE message (or stored state) did not parse or did not fit.
    #[error("malformed {0}")]
    MalformedPassword(&'static str),
    /// A signed-request header was missing or malformed.
    #[error("malformed request signature header {0}")]
    MalformedHeader(&'static str),
}
