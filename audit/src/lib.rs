//! The verify half of Conclave's transparency log: everything a client or an
//! outside auditor needs to check the log without trusting the server.
//!
//! - RFC 9162 §2.1 Merkle trees over SHA-256: [`leaf_hash`], [`root_hash`],
//!   inclusion and consistency proofs ([`inclusion_proof`],
//!   [`verify_inclusion`], [`consistency_proof`], [`verify_consistency`]).
//! - C2SP signed notes with Ed25519 keys: [`SignedNote`], [`VerifierKey`],
//!   [`NoteSigner`].
//! - C2SP tlog checkpoints: [`Checkpoint`].
//!
//! Sans-IO: nothing here touches a socket, a file or a runtime, so the same
//! checks run in the client, in an auditor's tool and in tests.
//!
//! ```
//! use conclave_audit::{
//!     Checkpoint, NoteSigner, SignedNote, VerifierKey, consistency_proof, inclusion_proof,
//!     leaf_hash, root_hash_from_leaf_hashes, verify_consistency, verify_inclusion,
//! };
//! use ed25519_dalek::SigningKey;
//!
//! // The log: a fixed seed keeps the example short; a real log generates its key.
//! let log = NoteSigner::new("log.conclave.example", SigningKey::from_bytes(&[7; 32]))?;
//! let entries: [&[u8]; 4] = [b"alice", b"bob", b"carol", b"dave"];
//! let leaves: Vec<_> = entries.iter().map(|entry| leaf_hash(entry)).collect();
//!
//! // Yesterday the log signed a checkpoint at size 3; today one at size 4.
//! let old = Checkpoint::new("log.conclave.example", 3, root_hash_from_leaf_hashes(&leaves[..3]))?;
//! let today = Checkpoint::new("log.conclave.example", 4, root_hash_from_leaf_hashes(&leaves))?;
//! let signed = log.sign(&today.to_note_text())?;
//!
//! // A client trusts the log's verifier key, received out of band as a string,
//! // and reads the checkpoint only once the signature has verified.
//! let trusted = [VerifierKey::parse(&log.verifier_key().to_string())?];
//! let note = SignedNote::parse(&signed)?.verify(&trusted)?;
//! let checkpoint = Checkpoint::from_note_text(note.text())?;
//! assert_eq!(checkpoint, today);
//!
//! // "bob" is in the tree the log signed...
//! let proof = inclusion_proof(&leaves, 1, checkpoint.size())?;
//! verify_inclusion(1, checkpoint.size(), &leaf_hash(b"bob"), &proof, checkpoint.root_hash())?;
//!
//! // ...and today's tree extends the one the client saw yesterday.
//! let proof = consistency_proof(&leaves, old.size(), checkpoint.size())?;
//! verify_consistency(old.size(), checkpoint.size(), &proof, old.root_hash(), checkpoint.root_hash())?;
//!
//! // A checkpoint altered after signing is refused.
//! let altered = signed.replacen("\n4\n", "\n5\n", 1);
//! assert!(SignedNote::parse(&altered)?.verify(&trusted).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod checkpoint;
mod error;
mod event;
#[cfg(feature = "log")]
pub mod log;
mod merkle;
mod note;
mod verify;

pub use checkpoint::Checkpoint;
pub use error::{CheckpointError, NoteError, ProofError};
pub use event::{
    DEVICE_ADDED, DeviceRegistration, Event, EventError, LEAF_VERSION_LINE, MAX_VALUE_LEN, rfc3339,
};
pub use merkle::{
    Hash, consistency_proof, inclusion_proof, leaf_hash, node_hash, root_hash,
    root_hash_from_leaf_hashes,
};
pub use note::{NoteSigner, SignedNote, VerifiedNote, VerifierKey};
pub use verify::{verify_consistency, verify_inclusion};
