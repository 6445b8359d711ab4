//! The one error type of `conclave-audit`. Its `Display` is the single line
//! the tool prints after `conclave-audit: `, so every message says exactly
//! which check failed and, where it helps, what the finding means.

use std::path::PathBuf;

use conclave_audit::{CheckpointError, EventError, NoteError, ProofError};
use conclave_client::ClientError;

/// Everything `conclave-audit` can report as a failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    // ----- the log failed a check ------------------------------------------
    /// An index is absent from the entries read.
    #[error("entry {index} is missing: {detail}")]
    MissingEntry {
        /// The first absent index.
        index: u64,
        /// What was seen instead.
        detail: String,
    },
    /// An entry is not a canonical event.
    #[error("entry {index} is not a valid event ({source}): the entries were altered")]
    UndecodableEntry {
        /// Its position in the log.
        index: u64,
        /// Why it does not decode.
        source: EventError,
    },
    /// An entry says it belongs at another position.
    #[error(
        "entry {index} records seq {seq}: entries were altered, removed or reordered (an entry's seq is its index)"
    )]
    WrongSeq {
        /// Its position in the log.
        index: u64,
        /// The seq it records.
        seq: u64,
    },
    /// The entries do not hash to the root the log signed.
    #[error(
        "the first {size} entries do not hash to the checkpoint's signed root: an entry was altered, removed or reordered"
    )]
    RootMismatch {
        /// The checkpoint's size.
        size: u64,
    },
    /// The checkpoint's signature does not verify with the trusted key.
    #[error("the checkpoint's signature does not verify with log key {key}: {source}")]
    Signature {
        /// The trusted key.
        key: String,
        /// What the note check said.
        source: NoteError,
    },
    /// The signed text is not a checkpoint.
    #[error("the signed checkpoint is malformed: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The checkpoint names another log than the key.
    #[error("the checkpoint is for log {origin:?}, but the log key is for {key_name:?}")]
    WrongOrigin {
        /// The checkpoint's origin line.
        origin: String,
        /// The key's name.
        key_name: String,
    },
    /// The log is smaller than when it was last verified.
    #[error(
        "rollback: the log now has {now} entries but {saved} were verified before (saved in {path}); entries were removed"
    )]
    Rollback {
        /// The size verified before.
        saved: u64,
        /// The size now.
        now: u64,
        /// The saved state file.
        path: String,
    },
    /// The log's first entries differ from those verified before.
    #[error(
        "fork: the first {saved} entries no longer hash to the root verified before (saved in {path}): the log was rewritten"
    )]
    Fork {
        /// The size verified before.
        saved: u64,
        /// The saved state file.
        path: String,
    },
    /// The relay's consistency proof failed.
    #[error(
        "fork: the relay's proof that {new} entries extend the {saved} verified before does not verify: {source}"
    )]
    ConsistencyProof {
        /// The size verified before.
        saved: u64,
        /// The size now.
        new: u64,
        /// What failed.
        source: ProofError,
    },
    /// The relay's proof that a smaller tree is a prefix of the signed one failed.
    #[error(
        "the relay's proof that the first {size} entries are a prefix of the {checkpoint_size} signed does not verify: {source}: an entry was altered"
    )]
    PrefixProof {
        /// The smaller tree's size.
        size: u64,
        /// The signed checkpoint's size.
        checkpoint_size: u64,
        /// What failed.
        source: ProofError,
    },
    /// The relay's inclusion proof failed.
    #[error(
        "the relay's inclusion proof for entry {index} in {size} entries does not verify: {source}"
    )]
    InclusionProof {
        /// The entry.
        index: u64,
        /// The tree size.
        size: u64,
        /// What failed.
        source: ProofError,
    },

    // ----- input the tool was given ----------------------------------------
    /// The saved state cannot be used.
    #[error("saved checkpoint {path}: {detail}")]
    SavedState {
        /// The file.
        path: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A log key string does not parse.
    #[error("invalid log key {key:?}: {source}")]
    LogKey {
        /// The string given.
        key: String,
        /// Why it does not parse.
        source: NoteError,
    },
    /// The bundle carries another key than the one given.
    #[error("the bundle is signed for log key {bundle}, not the trusted key {given}")]
    BundleKeyMismatch {
        /// The bundle's key.
        bundle: String,
        /// The key given with `--log-key`.
        given: String,
    },
    /// The bundle file is malformed.
    #[error("bundle {path}: {detail}")]
    Bundle {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// A flag's value is unusable.
    #[error("{0}")]
    Usage(String),

    // ----- the world -------------------------------------------------------
    /// The relay refused or could not be reached.
    #[error("{context}: {source}{hint}")]
    Relay {
        /// What the tool was doing.
        context: String,
        /// The client's error.
        source: ClientError,
        /// What to do about it, if known.
        hint: &'static str,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl AuditError {
    /// A relay request that failed while doing `context`.
    pub fn relay(context: impl Into<String>, source: ClientError) -> Self {
        let hint = match &source {
            ClientError::Server { status: 403, .. } => {
                " (an administrator grants the role on the relay's host: `conclave-server admin grant NAME auditor`)"
            }
            ClientError::NotLoggedIn => {
                " (log the auditor's device in with `conclave --home DIR login NAME`)"
            }
            _ => "",
        };
        Self::Relay {
            context: context.into(),
            source,
            hint,
        }
    }

    /// A file operation on `path` that failed.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
