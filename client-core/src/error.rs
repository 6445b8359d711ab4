/// What can go wrong in client-core. Messages name the problem and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The relay could not be reached.
    #[error("{0}")]
    Transport(#[from] crate::transport::TransportError),
    /// The relay refused the request.
    #[error("server refused ({status}): {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// Machine-readable code, e.g. `wrong_epoch`.
        code: String,
        /// The relay's explanation.
        message: String,
    },
    /// Local storage failed; the source says how (SQLite, the file system,
    /// a stored value that no longer parses).
    #[error("local store: {0}")]
    Store(#[source] Cause),
    /// MLS processing failed, or something that should be MLS is not; the
    /// source is openmls's error where there is one.
    #[error("MLS: {0}")]
    Mls(#[source] Cause),
    /// No account on this device yet.
    #[error("not logged in: run `register` or `login` first")]
    NotLoggedIn,
    /// This home directory already belongs to an account.
    #[error(
        "this home directory is already logged in as {0}; use another --home for another account"
    )]
    AlreadyLoggedIn(String),
    /// No channel by that name.
    #[error("no channel named {0:?}")]
    NoSuchChannel(String),
    /// A channel by that name exists.
    #[error("a channel named {0:?} already exists")]
    ChannelExists(String),
    /// The user is not in the channel.
    #[error("{0} is not a member of {1}")]
    NotAMember(String, String),
    /// The user is already in the channel.
    #[error("{0} is already a member of {1}")]
    AlreadyAMember(String, String),
    /// This device was removed from the channel.
    #[error("you are no longer a member of {0}")]
    NotInChannel(String),
    /// Input rejected before anything was sent.
    #[error("{0}")]
    Invalid(String),
    /// A device could not be proven registered in the relay's transparency
    /// log, or the log itself failed a check: nothing was encrypted to it.
    #[error("key transparency: {0}")]
    KeyTransparency(String),
    /// A downloaded file failed to decrypt or did not match its announced
    /// hash: it was altered, and nothing was written.
    #[error("file check failed: {0}")]
    FileCheck(String),
    /// Another process (say `conclave tui`) is using this home directory.
    #[error(
        "another conclave process is using {0}: close it first (a terminal UI, say), or use another --home"
    )]
    HomeInUse(std::path::PathBuf),
    /// This device's key is sealed under a local passphrase and was not
    /// unlocked in this process: nothing can be signed.
    #[error(
        "this device's key is locked: unlock it with its local passphrase (the conclave CLI asks for it, \
         or reads CONCLAVE_KEY_PASSPHRASE or --key-passphrase-stdin)"
    )]
    KeyLocked,
    /// The local passphrase does not unseal this device's key (or the sealed
    /// key in `conclave.db` was altered).
    #[error(
        "wrong local passphrase: it does not unseal this device's key (or the sealed key was altered)"
    )]
    WrongPassphrase,
    /// A login would make a device key, and no one said how to keep it.
    #[error(
        "choose how this device's key is kept before logging in: a local passphrase, or, \
         for unattended bots only, unprotected (Client::open_with)"
    )]
    NoKeyProtection,
    /// No account has this name.
    #[error("no user named {0:?} in this workspace")]
    NoSuchUser(String),
    /// The relay asked for the password itself, as for an account whose
    /// password predates OPAQUE, and this client was not told to allow
    /// that: the password was not sent (only the OPAQUE start was).
    #[error(
        "the relay asks for the password itself, as it does for an account whose password was set \
         before it moved to OPAQUE; the password was not sent. If this account is that old, sign in once \
         allowing it (the conclave CLI: --password-from-before-opaque); if it is not, the relay, or \
         someone impersonating it, is trying to learn the password"
    )]
    PasswordDowngrade,
    /// Other members kept committing first.
    #[error("gave up after {0} attempts: the channel kept changing; try again")]
    TooManyConflicts(u32),
}

/// The error beneath a [`ClientError`], kept for `source()`: a library's
/// error, or a sentence where client-core itself found the problem.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

impl ClientError {
    /// A storage failure, keeping `cause` as the source.
    pub(crate) fn store(cause: impl Into<Cause>) -> Self {
        ClientError::Store(cause.into())
    }

    /// An MLS failure, keeping `cause` (openmls's error) as the source.
    pub(crate) fn mls(cause: impl Into<Cause>) -> Self {
        ClientError::Mls(cause.into())
    }

    /// Whether the relay refused because the group moved to another epoch.
    pub fn is_wrong_epoch(&self) -> bool {
        matches!(self, ClientError::Server { code, .. }
            if code == conclave_proto::ErrorCode::WrongEpoch.as_str())
    }
}

impl From<sqlx::Error> for ClientError {
    fn from(e: sqlx::Error) -> Self {
        ClientError::store(e)
    }
}

/// Shorthand.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
