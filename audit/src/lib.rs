//! Conclave's transparency log: every security event of a relay (accounts,
//! logins, second factors, devices, groups, membership changes, key-package
//! uploads, admin actions) is an entry in an append-only Merkle tree whose
//! checkpoints the relay signs. Auditors check it offline; every client
//! checks device registrations in it before trusting a key.
//!
//! # The verify half (this crate without features)
//!
//! Everything a client or an outside auditor needs to check the log without
//! trusting the relay:
//!
//! - RFC 9162 §2.1 Merkle trees over SHA-256: [`leaf_hash`], [`root_hash`],
//!   inclusion and consistency proofs ([`inclusion_proof`],
//!   [`verify_inclusion`], [`consistency_proof`], [`verify_consistency`]).
//! - C2SP signed notes with Ed25519 keys: [`SignedNote`], [`VerifierKey`],
//!   [`NoteSigner`].
//! - C2SP tlog checkpoints: [`Checkpoint`]. A relay's checkpoint origin is
//!   its log key's name.
//! - [`stored_tree`]: the tree as a log stores it, every complete subtree's
//!   hash, so that roots and proofs need O(log n) stored hashes.
//! - [`tiles`]: C2SP tlog-tiles paths, how the relay serves its log to
//!   anyone (`/log/checkpoint`, `/log/tile/…`).
//! - [`Event`]: one security event and its leaf, a canonical text encoding
//!   specified in full on [`Event`]'s module (`event.rs`): a version line and
//!   `name value` lines in a fixed order. The leaf hashed into the tree is
//!   exactly those bytes; entry `i` carries `seq i`.
//!
//! Sans-IO: nothing here touches a socket, a file or a runtime, so the same
//! checks run in the client, in an auditor's tool and in tests.
//!
//! # The log half (feature `log`)
//!
//! `conclave_audit::log` keeps the entries and signed checkpoints in the relay's database
//! through sqlx (SQLite or PostgreSQL), appends inside the transaction of the
//! change an event records, and never signs a checkpoint that contradicts the
//! last one it signed.
//!
//! # Reading a relay's log
//!
//! Every `/v1` request is signed by a device key (see `conclave-crypto`); the
//! `/log/` tiles are public:
//!
//! | route | who | answer |
//! |---|---|---|
//! | `GET /v1/audit/checkpoint` | any device | the latest signed checkpoint (note text) |
//! | `GET /v1/audit/key` | any device | the log's verifier key |
//! | `GET /v1/audit/devices/{user}/{device}?since=N` | any device | `{index, leaf, checkpoint, inclusion, consistency}`: the device's registration entry (base64), its inclusion proof in `checkpoint` and a consistency proof from size `N` (hashes base64) |
//! | `GET /v1/audit/entries?start=&end=` | auditor role | `{size, entries: [{index, leaf, event}]}`, at most 1000 |
//! | `GET /v1/audit/proof/inclusion?index=&size=` | auditor role | `{proof}` |
//! | `GET /v1/audit/proof/consistency?old=&new=` | any device | `{proof}` |
//! | `GET /log/checkpoint` | anyone, unsigned | the latest signed checkpoint (C2SP tlog-tiles) |
//! | `GET /log/tile/<L>/<N>[.p/<W>]`, `/log/tile/entries/<N>[.p/<W>]` | anyone, unsigned | hash tiles and entry bundles ([`tiles`]) |
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
pub mod rotation;
pub mod stored_tree;
pub mod tiles;
mod verify;
pub mod witness;

pub use checkpoint::Checkpoint;
pub use error::{CheckpointError, NoteError, ProofError};
pub use event::{
    CLIENT_IP_LABEL, ClientIpOpening, DEVICE_ADDED, DeviceRegistration, Event, EventError,
    LEAF_VERSION_LINE, MAX_VALUE_LEN, rfc3339,
};
pub use merkle::{
    Hash, consistency_proof, inclusion_proof, leaf_hash, node_hash, root_hash,
    root_hash_from_leaf_hashes,
};
pub use note::{NoteSigner, SignedNote, VerifiedNote, VerifierKey};
pub use verify::{verify_consistency, verify_inclusion};
