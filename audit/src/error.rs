//! One error enum per kind of input: Merkle proofs, signed notes, checkpoints.
//! Callers branch on which check failed (an unknown key is handled differently
//! from a forged signature), so each variant names exactly one problem.

/// A Merkle proof could not be generated, or did not verify.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is outside a tree of size {tree_size}")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The size of the tree.
        tree_size: u64,
    },
    /// A proof was asked for a tree larger than the leaf hashes supplied.
    #[error("tree size {tree_size} is larger than the {available} leaf hashes supplied")]
    NotEnoughLeaves {
        /// The tree size asked for.
        tree_size: u64,
        /// How many leaf hashes were given.
        available: usize,
    },
    /// The old tree is larger than the new one.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    SizesOutOfOrder {
        /// The old (first) tree size.
        old_size: u64,
        /// The new (second) tree size.
        new_size: u64,
    },
    /// Consistency with the empty tree proves nothing.
    #[error(
        "a consistency proof from the empty tree proves nothing: trust the first checkpoint you see by other means"
    )]
    EmptyOldTree,
    /// The two sizes differ but no proof was given.
    #[error("the consistency proof is empty but the tree sizes differ")]
    EmptyProof,
    /// The two sizes are equal, so the proof must be empty.
    #[error("the tree sizes are equal, so the consistency proof must be empty")]
    ProofNotEmpty,
    /// A value that is hashed was not a 32-byte SHA-256 hash.
    #[error("{what} is {len} bytes long, not a 32-byte SHA-256 hash")]
    WrongHashLength {
        /// Which value: "leaf hash", "proof hash", "old root" or "new root".
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// The proof has more hashes than the tree has levels on this path.
    #[error("the proof has more hashes than the path from this leaf to the root")]
    ProofTooLong,
    /// The proof ran out of hashes before it reached the root.
    #[error("the proof has too few hashes to reach the root")]
    ProofTooShort,
    /// The proof does not lead to the old root: the old tree is not a prefix of the new one.
    #[error("the consistency proof does not reproduce the old root hash")]
    OldRootMismatch,
    /// The proof leads to a different root than the one given.
    #[error("the proof does not reproduce the given root hash")]
    RootMismatch,
}

/// A signed note or verifier key was malformed, or a note did not verify.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoteError {
    /// The note or text contains a control character other than newline.
    #[error("note contains an ASCII control character other than newline")]
    ControlCharacter,
    /// Note text to be signed does not end with a newline.
    #[error("note text must end with a newline")]
    MissingFinalNewline,
    /// The note has no blank line followed by newline-terminated signature lines.
    #[error("note does not end with a blank line followed by signature lines")]
    MissingSignatures,
    /// A signature line is not `— <key name> <base64 key id || signature>`.
    #[error(
        "signature line {line} is malformed: expected an em dash, a space, the key name, a space and base64(key id || signature)"
    )]
    MalformedSignatureLine {
        /// 1-based position among the signature lines.
        line: usize,
    },
    /// The note carries more signature lines than this verifier reads.
    #[error("note has more than {max} signature lines")]
    TooManySignatures {
        /// The limit.
        max: usize,
    },
    /// A key name is empty or contains a space or a plus sign.
    #[error("key name {0:?} is invalid: it must be non-empty, with no spaces and no '+'")]
    InvalidKeyName(String),
    /// A signature from a trusted key does not verify: the note was altered or forged.
    #[error("signature by trusted key {name}+{key_id:08x} does not verify")]
    InvalidSignature {
        /// The key name.
        name: String,
        /// The key id.
        key_id: u32,
    },
    /// No signature on the note comes from a trusted key.
    #[error("note is not signed by any trusted key")]
    NoTrustedSignature,
    /// A verifier key string is not `<name>+<8 hex digits>+<base64 key>`.
    #[error("malformed verifier key: {0}")]
    MalformedVerifierKey(&'static str),
    /// A verifier key is of a signature type other than Ed25519.
    #[error("verifier key type 0x{0:02x} is not supported; only Ed25519 (0x01) is")]
    UnsupportedKeyType(u8),
    /// The public key is not a usable Ed25519 key.
    #[error("verifier key is not a valid Ed25519 public key, or is of small order")]
    InvalidPublicKey,
    /// The key id written in a verifier key is not the one its name and key give.
    #[error(
        "verifier key id {stated:08x} does not match its name and key (expected {computed:08x})"
    )]
    KeyIdMismatch {
        /// The id in the string.
        stated: u32,
        /// The id computed from the name and key.
        computed: u32,
    },
}

/// A checkpoint's note text was malformed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The text does not end with a newline.
    #[error("checkpoint text must end with a newline")]
    MissingFinalNewline,
    /// The text contains a control character other than the line separators.
    #[error("checkpoint contains an ASCII control character other than newline")]
    ControlCharacter,
    /// Fewer than the three mandatory lines.
    #[error("checkpoint needs at least three lines: origin, tree size and root hash")]
    TooFewLines,
    /// The origin line is empty.
    #[error("checkpoint origin must not be empty")]
    EmptyOrigin,
    /// The tree size is not canonical decimal or does not fit in 64 bits.
    #[error("tree size {0:?} is not a decimal number without leading zeros that fits in 64 bits")]
    InvalidTreeSize(String),
    /// The root hash is not the standard base64 encoding of 32 bytes.
    #[error("root hash {0:?} is not the standard base64 encoding of 32 bytes")]
    InvalidRootHash(String),
    /// An extension line is empty.
    #[error("checkpoint extension line {line} is empty")]
    EmptyExtensionLine {
        /// 1-based line number in the note text.
        line: usize,
    },
}
