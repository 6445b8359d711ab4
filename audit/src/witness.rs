//! Witnesses: C2SP tlog-cosignature (Ed25519, `cosignature/v1`) and the
//! checks of C2SP tlog-witness `add-checkpoint`, sans-IO.
//!
//! A witness keeps, for each log it follows, the latest checkpoint it
//! cosigned. It cosigns a new one only if the log's key signed it and a
//! consistency proof shows it extends the one before, so a log that forks
//! (even with its own key stolen) gets no second cosignature: clients that
//! require cosignatures refuse the fork. `conclave-audit witness` serves
//! this over HTTP.
//!
//! ```
//! use conclave_audit::witness::{AddCheckpoint, Cosigner, CosignerKey, Witnessed, check};
//! use conclave_audit::{Checkpoint, NoteSigner, SignedNote, leaf_hash};
//! use ed25519_dalek::SigningKey;
//!
//! let log = NoteSigner::new("log.example", SigningKey::from_bytes(&[1; 32]))?;
//! let text = Checkpoint::new("log.example", 1, leaf_hash(b"first"))?.to_note_text();
//! let request = AddCheckpoint { old_size: 0, proof: vec![], note: log.sign(&text)? };
//!
//! let witness = Cosigner::new("witness.example", SigningKey::from_bytes(&[2; 32]))?;
//! let (checkpoint, now_witnessed) = check(&request, &[log.verifier_key().clone()], None).unwrap();
//! assert_eq!(now_witnessed, Witnessed { size: 1, root: *checkpoint.root_hash() });
//! let cosignature = witness.cosign(&text, 1_700_000_000)?;
//!
//! // A client holding the witness's key finds the cosignature on the note.
//! let key = CosignerKey::parse(&witness.verifier_key())?;
//! let cosigned = SignedNote::parse(&format!("{}{cosignature}", request.note))?;
//! assert_eq!(key.verify(&cosigned)?, Some(1_700_000_000));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::merkle::Hash;
use crate::note::check_key_name;
use crate::{Checkpoint, NoteError, SignedNote, VerifierKey, verify_consistency};

/// The signature type of an Ed25519 `cosignature/v1` key.
const COSIGNATURE_V1: u8 = 0x04;
/// Most consistency proof lines a request may carry.
const MAX_PROOF_LINES: usize = 63;

/// A witness's signing key, under its name.
pub struct Cosigner {
    name: String,
    key_id: u32,
    signing: SigningKey,
}

impl std::fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cosigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .field("signing_key", &"<redacted>")
            .finish()
    }
}

impl Cosigner {
    /// A cosigner named `name` (a schema-less URL such as
    /// `witness.example/w1`).
    pub fn new(name: &str, signing: SigningKey) -> Result<Self, NoteError> {
        check_key_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id(name, &signing.verifying_key()),
            signing,
        })
    }

    /// Its verifier key, `<name>+<key id>+<base64(0x04 || public key)>`, for
    /// the logs' and clients' policies.
    pub fn verifier_key(&self) -> String {
        let mut encoded = vec![COSIGNATURE_V1];
        encoded.extend_from_slice(self.signing.verifying_key().as_bytes());
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            STANDARD.encode(encoded)
        )
    }

    /// The cosignature line (`— <name> <base64>`, newline-terminated) on the
    /// checkpoint whose note text is `text`, made at `timestamp`.
    pub fn cosign(&self, text: &str, timestamp: u64) -> Result<String, NoteError> {
        if !text.ends_with('\n') {
            return Err(NoteError::MissingFinalNewline);
        }
        let signature = self.signing.sign(&message(text, timestamp));
        let mut blob = Vec::with_capacity(4 + 8 + 64);
        blob.extend_from_slice(&self.key_id.to_be_bytes());
        blob.extend_from_slice(&timestamp.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "\u{2014} {} {}\n",
            self.name,
            STANDARD.encode(blob)
        ))
    }
}

/// A witness's verifier key, as a log or a client trusts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignerKey {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl CosignerKey {
    /// Parses `<name>+<hex key id>+<base64(0x04 || public key)>`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        const MALFORMED: NoteError =
            NoteError::MalformedVerifierKey("expected <name>+<key id>+<base64(0x04 || key)>");
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(encoded)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(MALFORMED);
        };
        check_key_name(name)?;
        let stated = u32::from_str_radix(id, 16).map_err(|_| MALFORMED)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| MALFORMED)?;
        let (&kind, public) = bytes.split_first().ok_or(MALFORMED)?;
        if kind != COSIGNATURE_V1 {
            return Err(NoteError::UnsupportedKeyType(kind));
        }
        let public: [u8; 32] = public.try_into().map_err(|_| MALFORMED)?;
        let key = VerifyingKey::from_bytes(&public).map_err(|_| NoteError::InvalidPublicKey)?;
        let computed = key_id(name, &key);
        if computed != stated || id.len() != 8 {
            return Err(NoteError::KeyIdMismatch { stated, computed });
        }
        Ok(Self {
            name: name.to_owned(),
            key_id: computed,
            key,
        })
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The time of this witness's cosignature on `note`, `None` if it
    /// carries none; an error if one by this key does not verify.
    pub fn verify(&self, note: &SignedNote) -> Result<Option<u64>, NoteError> {
        let mut found = None;
        for (name, key_id, blob) in note.signature_lines() {
            if name != self.name || key_id != self.key_id {
                continue;
            }
            let invalid = || NoteError::InvalidSignature {
                name: name.to_owned(),
                key_id,
            };
            let (time, signature) = blob.split_at_checked(8).ok_or_else(invalid)?;
            let timestamp = u64::from_be_bytes(time.try_into().map_err(|_| invalid())?);
            let signature = Signature::from_slice(signature).map_err(|_| invalid())?;
            self.key
                .verify_strict(&message(note.unverified_text(), timestamp), &signature)
                .map_err(|_| invalid())?;
            found = Some(found.map_or(timestamp, |t: u64| t.max(timestamp)));
        }
        Ok(found)
    }
}

impl std::fmt::Display for CosignerKey {
    /// The verifier key string [`CosignerKey::parse`] reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut encoded = vec![COSIGNATURE_V1];
        encoded.extend_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            STANDARD.encode(encoded)
        )
    }
}

/// `SHA-256(name || "\n" || 0x04 || public key)[:4]`.
fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    crate::note::typed_key_id(name, COSIGNATURE_V1, key)
}

/// What a `cosignature/v1` signs.
fn message(text: &str, timestamp: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{text}").into_bytes()
}

/// An `add-checkpoint` request: the size of the checkpoint the log believes
/// the witness cosigned last, a consistency proof from it, and the new
/// signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size the witness cosigned last (0 if never).
    pub old_size: u64,
    /// The consistency proof from `old_size` to the new checkpoint.
    pub proof: Vec<Hash>,
    /// The signed checkpoint.
    pub note: String,
}

impl AddCheckpoint {
    /// Parses a request body; a malformed one is a [`Refusal::Malformed`].
    pub fn parse(body: &str) -> Result<Self, Refusal> {
        let malformed = |why: &str| Refusal::Malformed(why.to_owned());
        let (head, note) = body
            .split_once("\n\n")
            .ok_or_else(|| malformed("no blank line before the checkpoint"))?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|line| line.strip_prefix("old "))
            .ok_or_else(|| malformed("the first line is not `old <size>`"))?;
        if old.is_empty()
            || !old.bytes().all(|b| b.is_ascii_digit())
            || (old.len() > 1 && old.starts_with('0'))
        {
            return Err(malformed("the old size is not a decimal number"));
        }
        let old_size = old
            .parse()
            .map_err(|_| malformed("the old size is out of range"))?;
        let mut proof = Vec::new();
        for line in lines {
            let hash: Hash = STANDARD
                .decode(line)
                .ok()
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| malformed("a proof line is not a base64 hash"))?;
            proof.push(hash);
        }
        if proof.len() > MAX_PROOF_LINES {
            return Err(malformed("more than 63 proof lines"));
        }
        Ok(Self {
            old_size,
            proof,
            note: note.to_owned(),
        })
    }

    /// The request body.
    pub fn to_body(&self) -> String {
        let mut body = format!("old {}\n", self.old_size);
        for hash in &self.proof {
            body.push_str(&STANDARD.encode(hash));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(&self.note);
        body
    }
}

/// What a witness keeps per log: the latest checkpoint it cosigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Witnessed {
    /// Its size.
    pub size: u64,
    /// Its root hash.
    pub root: Hash,
}

/// Why a witness refuses to cosign, with the HTTP status tlog-witness gives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a request (400).
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The old size is larger than the checkpoint's (400).
    #[error("the old size {old} is larger than the checkpoint's {size}")]
    OldSizeTooLarge {
        /// The old size.
        old: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// No log with this origin is followed (404).
    #[error("unknown log {0:?}")]
    UnknownLog(String),
    /// No signature by the log's key verifies (403).
    #[error("the checkpoint is not signed by the log's key")]
    NotSigned,
    /// The old size is not what the witness cosigned last (409; the body
    /// says the size it has).
    #[error("the witness cosigned a checkpoint of size {known} last")]
    Conflict {
        /// The size the witness cosigned last.
        known: u64,
    },
    /// A checkpoint of the size cosigned last, with another root: a fork
    /// (409).
    #[error("another tree of {size} entries was cosigned: a fork")]
    Fork {
        /// The size.
        size: u64,
    },
    /// The consistency proof does not verify: a fork, or a bad proof (422).
    #[error("the consistency proof from {old} to {size} entries does not verify")]
    BadProof {
        /// The old size.
        old: u64,
        /// The checkpoint's size.
        size: u64,
    },
}

impl Refusal {
    /// The HTTP status tlog-witness specifies.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Malformed(_) | Refusal::OldSizeTooLarge { .. } => 400,
            Refusal::NotSigned => 403,
            Refusal::UnknownLog(_) => 404,
            Refusal::Conflict { .. } | Refusal::Fork { .. } => 409,
            Refusal::BadProof { .. } => 422,
        }
    }
}

/// The checks of `add-checkpoint` for a witness that follows the logs
/// `logs` and last cosigned `last` for this one (`None`: never). On
/// success, the verified checkpoint and what to persist before cosigning.
pub fn check(
    request: &AddCheckpoint,
    logs: &[VerifierKey],
    last: Option<&Witnessed>,
) -> Result<(Checkpoint, Witnessed), Refusal> {
    let note =
        SignedNote::parse(&request.note).map_err(|e| Refusal::Malformed(format!("note: {e}")))?;
    let origin = note.unverified_text().lines().next().unwrap_or_default();
    let keys: Vec<VerifierKey> = logs
        .iter()
        .filter(|key| key.name() == origin)
        .cloned()
        .collect();
    if keys.is_empty() {
        return Err(Refusal::UnknownLog(origin.to_owned()));
    }
    let verified = note.verify(&keys).map_err(|_| Refusal::NotSigned)?;
    let checkpoint = Checkpoint::from_note_text(verified.text())
        .map_err(|e| Refusal::Malformed(format!("checkpoint: {e}")))?;
    let (old, size) = (request.old_size, checkpoint.size());
    if old > size {
        return Err(Refusal::OldSizeTooLarge { old, size });
    }
    let known = last.map_or(0, |w| w.size);
    if old != known {
        return Err(Refusal::Conflict { known });
    }
    let now = Witnessed {
        size,
        root: *checkpoint.root_hash(),
    };
    match last {
        Some(last) if old == size && last.root != now.root => {
            return Err(Refusal::Fork { size });
        }
        Some(_) if old == size => {}
        Some(last) => {
            verify_consistency(
                old,
                size,
                &request.proof,
                &last.root,
                checkpoint.root_hash(),
            )
            .map_err(|_| Refusal::BadProof { old, size })?;
        }
        None if !request.proof.is_empty() => {
            return Err(Refusal::Malformed(
                "a proof from size 0 must be empty".into(),
            ));
        }
        None => {}
    }
    Ok((checkpoint, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NoteSigner, consistency_proof, leaf_hash, root_hash_from_leaf_hashes};

    fn log() -> NoteSigner {
        NoteSigner::new("log.example", SigningKey::from_bytes(&[1; 32])).unwrap()
    }

    fn signed(log: &NoteSigner, leaves: &[Hash]) -> String {
        let text = Checkpoint::new(
            log.verifier_key().name(),
            leaves.len() as u64,
            root_hash_from_leaf_hashes(leaves),
        )
        .unwrap()
        .to_note_text();
        log.sign(&text).unwrap()
    }

    #[test]
    fn a_witness_follows_one_log_and_refuses_its_fork() {
        let log = log();
        let keys = [log.verifier_key().clone()];
        let leaves: Vec<Hash> = (0u8..10).map(|i| leaf_hash(&[i])).collect();
        let first = AddCheckpoint {
            old_size: 0,
            proof: vec![],
            note: signed(&log, &leaves[..4]),
        };
        let (_, state) = check(&first, &keys, None).unwrap();
        assert_eq!(state.size, 4);
        // Round trip through the wire format.
        assert_eq!(AddCheckpoint::parse(&first.to_body()).unwrap(), first);

        let grown = AddCheckpoint {
            old_size: 4,
            proof: consistency_proof(&leaves, 4, 10).unwrap(),
            note: signed(&log, &leaves),
        };
        let (_, grown_state) = check(&grown, &keys, Some(&state)).unwrap();
        assert_eq!(grown_state.size, 10);
        // Asked again from 0: the witness says what it has.
        assert_eq!(
            check(&first, &keys, Some(&grown_state)).unwrap_err(),
            Refusal::Conflict { known: 10 }
        );

        // The log's key, stolen, signs another tree: no proof makes it one.
        let mut forked = leaves.clone();
        forked[7] = leaf_hash(b"rewritten");
        let fork = AddCheckpoint {
            old_size: 4,
            proof: consistency_proof(&forked, 4, 10).unwrap(),
            note: signed(&log, &forked),
        };
        let refused = check(&fork, &keys, Some(&grown_state)).unwrap_err();
        assert_eq!(refused, Refusal::Conflict { known: 10 });
        let same_size = AddCheckpoint {
            old_size: 10,
            ..fork.clone()
        };
        let refused = check(&same_size, &keys, Some(&grown_state)).unwrap_err();
        assert_eq!(
            (refused.status(), refused),
            (409, Refusal::Fork { size: 10 })
        );
        let mut longer = forked.clone();
        longer.push(leaf_hash(b"more"));
        let onward = AddCheckpoint {
            old_size: 10,
            proof: consistency_proof(&longer, 10, 11).unwrap(),
            note: signed(&log, &longer),
        };
        let refused = check(&onward, &keys, Some(&grown_state)).unwrap_err();
        assert_eq!(refused.status(), 422);

        // Another log, another key under this log's name, a malformed body.
        let stranger = NoteSigner::new("other.example", SigningKey::from_bytes(&[3; 32])).unwrap();
        let unknown = AddCheckpoint {
            note: signed(&stranger, &leaves[..4]),
            ..first.clone()
        };
        assert_eq!(check(&unknown, &keys, None).unwrap_err().status(), 404);
        let impostor = NoteSigner::new("log.example", SigningKey::from_bytes(&[4; 32])).unwrap();
        let unsigned = AddCheckpoint {
            note: signed(&impostor, &leaves[..4]),
            ..first.clone()
        };
        assert_eq!(check(&unsigned, &keys, None).unwrap_err().status(), 403);
        for bad in ["", "old 01\n\nx", "old 4\nnot base64\n\nx", "new 4\n\nx"] {
            assert_eq!(
                AddCheckpoint::parse(bad).unwrap_err().status(),
                400,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_cosignature_verifies_only_under_its_key_and_time() {
        let log = log();
        let text = Checkpoint::new("log.example", 1, leaf_hash(b"a"))
            .unwrap()
            .to_note_text();
        let note = log.sign(&text).unwrap();
        let witness =
            Cosigner::new("witness.example/w1", SigningKey::from_bytes(&[5; 32])).unwrap();
        let key = CosignerKey::parse(&witness.verifier_key()).unwrap();
        assert!(witness.verifier_key().starts_with("witness.example/w1+"));
        assert_eq!(key.to_string(), witness.verifier_key());
        let line = witness.cosign(&text, 1_679_315_147).unwrap();
        let cosigned = SignedNote::parse(&format!("{note}{line}")).unwrap();
        assert_eq!(key.verify(&cosigned).unwrap(), Some(1_679_315_147));
        // The log's own signature still verifies beside it.
        cosigned.verify(&[log.verifier_key().clone()]).unwrap();
        // No cosignature: none found. A changed time: refused.
        assert_eq!(
            key.verify(&SignedNote::parse(&note).unwrap()).unwrap(),
            None
        );
        let other_time = witness.cosign(&text, 1).unwrap();
        let (prefix, blob) = line.rsplit_once(' ').unwrap();
        let (_, other_blob) = other_time.rsplit_once(' ').unwrap();
        let mut mixed = STANDARD.decode(blob.trim()).unwrap();
        mixed[4..12].copy_from_slice(&STANDARD.decode(other_blob.trim()).unwrap()[4..12]);
        let forged = format!("{note}{prefix} {}\n", STANDARD.encode(mixed));
        assert!(key.verify(&SignedNote::parse(&forged).unwrap()).is_err());
        // The cosignature's key is not a log key, and the reverse.
        assert!(VerifierKey::parse(&witness.verifier_key()).is_err());
        assert!(CosignerKey::parse(&log.verifier_key().to_string()).is_err());
    }
}
