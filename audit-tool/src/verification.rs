//! The checks, sans-IO: they take the note text and leaf bytes that were
//! downloaded or read from a bundle, and say whether the log holds up.
//!
//! 1. [`EntryCollector`]: the relay's pages form exactly indexes `0..n`.
//! 2. [`verify_snapshot`]: the checkpoint is signed by the trusted key for
//!    its own log, every entry is a canonical event whose `seq` is its
//!    index, and the first `checkpoint.size` entries hash to the signed root.
//! 3. [`check_saved`]: the log extends the checkpoint verified last time
//!    (no rollback, no rewritten prefix), and [`check_consistency_proof`]
//!    checks the relay's own proof of that.
//!
//! Every failure is an [`AuditError`] that names the entry or the check.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_audit::{
    Checkpoint, Event, Hash, SignedNote, VerifierKey, leaf_hash, root_hash_from_leaf_hashes,
    verify_consistency,
};

use crate::error::AuditError;

/// Gathers pages of `(index, leaf)` and refuses any gap, repeat or reordering.
#[derive(Debug, Default)]
pub struct EntryCollector {
    entries: Vec<Vec<u8>>,
}

impl EntryCollector {
    /// How many entries are gathered, which is also the next index expected.
    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Adds one page. The first index must be the next one expected, and
    /// each index one more than the last.
    pub fn push_page(&mut self, page: Vec<(u64, Vec<u8>)>) -> Result<(), AuditError> {
        for (index, leaf) in page {
            let expected = self.len();
            if index != expected {
                return Err(AuditError::MissingEntry {
                    index: expected,
                    detail: format!("the relay returned entry {index} in its place"),
                });
            }
            self.entries.push(leaf);
        }
        Ok(())
    }

    /// The entries, once the relay's stated `size` has been reached.
    pub fn finish(self, size: u64) -> Result<Vec<Vec<u8>>, AuditError> {
        if self.len() < size {
            return Err(AuditError::MissingEntry {
                index: self.len(),
                detail: format!(
                    "the relay's log has {size} entries but it returned only {}",
                    self.len()
                ),
            });
        }
        Ok(self.entries)
    }
}

/// A log that passed [`verify_snapshot`].
#[derive(Debug, Clone)]
pub struct VerifiedLog {
    /// The signed note, as received.
    pub note: String,
    /// Its checkpoint.
    pub checkpoint: Checkpoint,
    /// Every entry decoded; the position is the index.
    pub events: Vec<Event>,
    /// Every entry's leaf hash.
    pub leaf_hashes: Vec<Hash>,
}

impl VerifiedLog {
    /// Entries past the checkpoint: they decode, but no signature covers them yet.
    pub fn unsigned_tail(&self) -> u64 {
        (self.events.len() as u64).saturating_sub(self.checkpoint.size())
    }
}

/// Verifies `note` with `key` and reads its checkpoint, which must name the
/// key's log as its origin.
pub fn open_checkpoint(key: &VerifierKey, note: &str) -> Result<Checkpoint, AuditError> {
    let verified = SignedNote::parse(note)
        .and_then(|n| n.verify(std::slice::from_ref(key)))
        .map_err(|source| AuditError::Signature {
            key: key.to_string(),
            source,
        })?;
    let checkpoint = Checkpoint::from_note_text(verified.text())?;
    if checkpoint.origin() != key.name() {
        return Err(AuditError::WrongOrigin {
            origin: checkpoint.origin().to_owned(),
            key_name: key.name().to_owned(),
        });
    }
    Ok(checkpoint)
}

/// The full check of one copy of the log: `entries` are the leaves in index
/// order, from 0, at least as many as the checkpoint covers.
pub fn verify_snapshot(
    key: &VerifierKey,
    note: &str,
    entries: &[Vec<u8>],
) -> Result<VerifiedLog, AuditError> {
    let checkpoint = open_checkpoint(key, note)?;
    // Each entry first, so a removed or moved entry is named where it was.
    let mut events = Vec::with_capacity(entries.len());
    for (index, leaf) in (0u64..).zip(entries) {
        let event =
            Event::decode(leaf).map_err(|source| AuditError::UndecodableEntry { index, source })?;
        if event.seq != index {
            return Err(AuditError::WrongSeq {
                index,
                seq: event.seq,
            });
        }
        events.push(event);
    }
    let available = entries.len() as u64;
    if available < checkpoint.size() {
        return Err(AuditError::MissingEntry {
            index: available,
            detail: format!(
                "the checkpoint covers {} entries but only {available} are present",
                checkpoint.size()
            ),
        });
    }
    let leaf_hashes: Vec<Hash> = entries.iter().map(|leaf| leaf_hash(leaf)).collect();
    if prefix_root(&leaf_hashes, checkpoint.size()) != *checkpoint.root_hash() {
        return Err(AuditError::RootMismatch {
            size: checkpoint.size(),
        });
    }
    Ok(VerifiedLog {
        note: note.to_owned(),
        checkpoint,
        events,
        leaf_hashes,
    })
}

/// The root of the first `size` leaves (`size` never exceeds the slice).
fn prefix_root(leaf_hashes: &[Hash], size: u64) -> Hash {
    let size = usize::try_from(size)
        .unwrap_or(usize::MAX)
        .min(leaf_hashes.len());
    root_hash_from_leaf_hashes(&leaf_hashes[..size])
}

/// Checks `log` against the checkpoint verified last time (`saved_note`,
/// read from `path`): it is signed by the same key, the log did not shrink,
/// and its first entries still hash to the saved root. Returns the saved
/// checkpoint.
pub fn check_saved(
    log: &VerifiedLog,
    key: &VerifierKey,
    saved_note: &str,
    path: &str,
) -> Result<Checkpoint, AuditError> {
    let saved = open_checkpoint(key, saved_note).map_err(|e| AuditError::SavedState {
        path: path.to_owned(),
        detail: format!("{e} (was it saved for another log?)"),
    })?;
    let now = log.checkpoint.size();
    if saved.size() > now {
        return Err(AuditError::Rollback {
            saved: saved.size(),
            now,
            path: path.to_owned(),
        });
    }
    if prefix_root(&log.leaf_hashes, saved.size()) != *saved.root_hash() {
        return Err(AuditError::Fork {
            saved: saved.size(),
            path: path.to_owned(),
        });
    }
    Ok(saved)
}

/// Whether the relay has a consistency proof to give from `saved` to `now`:
/// none is needed from the empty tree or between equal sizes (the roots were
/// compared directly).
pub fn needs_consistency_proof(saved: &Checkpoint, now: &Checkpoint) -> bool {
    0 < saved.size() && saved.size() < now.size()
}

/// Verifies the relay's proof that `now` extends `saved`.
pub fn check_consistency_proof(
    saved: &Checkpoint,
    now: &Checkpoint,
    proof: &[Hash],
) -> Result<(), AuditError> {
    if !needs_consistency_proof(saved, now) {
        return Ok(());
    }
    verify_consistency(
        saved.size(),
        now.size(),
        proof,
        saved.root_hash(),
        now.root_hash(),
    )
    .map_err(|source| AuditError::ConsistencyProof {
        saved: saved.size(),
        new: now.size(),
        source,
    })
}

/// What a successful verification prints.
pub fn summary(
    log: &VerifiedLog,
    saved: Option<(&Checkpoint, &str)>,
    proof_checked: bool,
) -> String {
    let checkpoint = &log.checkpoint;
    let mut text = format!(
        "verified {} entries against the checkpoint of {} signed at size {}\nroot: {}\n",
        checkpoint.size(),
        checkpoint.origin(),
        checkpoint.size(),
        STANDARD.encode(checkpoint.root_hash()),
    );
    if log.unsigned_tail() > 0 {
        text.push_str(&format!(
            "{} newer entries decode correctly but no signed checkpoint covers them yet\n",
            log.unsigned_tail()
        ));
    }
    match saved {
        None => text.push_str("no saved checkpoint to compare with (first run, or no --state)\n"),
        Some((saved, path)) => {
            let how = if !needs_consistency_proof(saved, checkpoint) {
                "same size, same root"
            } else if proof_checked {
                "its entries are this log's first entries, and the relay's consistency proof verifies"
            } else {
                "its entries are this log's first entries"
            };
            text.push_str(&format!(
                "consistent with the checkpoint of size {} saved in {path}: {how}\n",
                saved.size()
            ));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use conclave_audit::{NoteSigner, consistency_proof};
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::bundle::Bundle;

    const LOG: &str = "log.conclave.test";

    fn signer(seed: u8) -> NoteSigner {
        NoteSigner::new(LOG, SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    fn leaves(n: u64) -> Vec<Vec<u8>> {
        (0..n)
            .map(|seq| {
                Event::new(seq, 1_795_529_682 + seq, "login")
                    .actor(if seq % 2 == 0 { "alice" } else { "bob" })
                    .encode()
                    .unwrap()
            })
            .collect()
    }

    fn note_for(signer: &NoteSigner, leaves: &[Vec<u8>], size: usize) -> String {
        let hashes: Vec<Hash> = leaves[..size].iter().map(|l| leaf_hash(l)).collect();
        let checkpoint =
            Checkpoint::new(LOG, size as u64, root_hash_from_leaf_hashes(&hashes)).unwrap();
        signer.sign(&checkpoint.to_note_text()).unwrap()
    }

    /// A bundle of `n` entries signed at size `n`, through its JSON form.
    fn bundle(n: u64) -> Bundle {
        let leaves = leaves(n);
        let signer = signer(7);
        let json = Bundle::new(
            &note_for(&signer, &leaves, leaves.len()),
            signer.verifier_key(),
            &leaves,
        )
        .to_json();
        Bundle::parse(&json, "test.json").unwrap()
    }

    fn verify_bundle(bundle: &Bundle) -> Result<VerifiedLog, AuditError> {
        let (key, _) = bundle.trusted_key(Some(signer(7).verifier_key()))?;
        verify_snapshot(&key, &bundle.checkpoint, &bundle.leaves("test.json")?)
    }

    fn message(result: Result<VerifiedLog, AuditError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn a_valid_bundle_verifies() {
        let log = verify_bundle(&bundle(5)).unwrap();
        assert_eq!(log.checkpoint.size(), 5);
        assert_eq!(log.events[3].actor.as_deref(), Some("bob"));
        assert_eq!(log.unsigned_tail(), 0);
        assert!(summary(&log, None, false).starts_with("verified 5 entries"));
    }

    #[test]
    fn an_edited_entry_fails() {
        let mut bundle = bundle(5);
        let leaf = String::from_utf8(bundle.leaves("t").unwrap()[2].clone()).unwrap();
        bundle.entries[2] = STANDARD.encode(leaf.replace("actor alice", "actor mallo"));
        let error = message(verify_bundle(&bundle));
        assert!(
            error.contains("the first 5 entries do not hash to the checkpoint's signed root"),
            "{error}"
        );
    }

    #[test]
    fn an_entry_edited_out_of_its_encoding_fails_by_index() {
        let mut bundle = bundle(5);
        let leaf = String::from_utf8(bundle.leaves("t").unwrap()[4].clone()).unwrap();
        bundle.entries[4] = STANDARD.encode(leaf.replace("actor alice", "actor  alice"));
        let error = message(verify_bundle(&bundle));
        assert!(error.starts_with("entry 4 is not a valid event"), "{error}");
        assert!(error.contains("altered"), "{error}");
    }

    #[test]
    fn a_deleted_entry_fails() {
        let mut last_gone = bundle(5);
        last_gone.entries.pop();
        let error = message(verify_bundle(&last_gone));
        assert!(error.starts_with("entry 4 is missing"), "{error}");

        let mut middle_gone = bundle(5);
        middle_gone.entries.remove(2);
        let error = message(verify_bundle(&middle_gone));
        assert!(error.starts_with("entry 2 records seq 3"), "{error}");
        assert!(error.contains("removed"), "{error}");

        // From the relay, indexes travel with the entries, and a gap is named.
        let mut pages = EntryCollector::default();
        let entries = leaves(5);
        let page: Vec<_> = (0u64..).zip(entries).filter(|(i, _)| *i != 2).collect();
        let error = pages.push_page(page).unwrap_err().to_string();
        assert_eq!(
            error,
            "entry 2 is missing: the relay returned entry 3 in its place"
        );
        let mut short = EntryCollector::default();
        short.push_page((0u64..).zip(leaves(3)).collect()).unwrap();
        let error = short.finish(4).unwrap_err().to_string();
        assert!(error.starts_with("entry 3 is missing"), "{error}");
    }

    #[test]
    fn swapped_entries_fail() {
        let mut bundle = bundle(5);
        bundle.entries.swap(1, 3);
        let error = message(verify_bundle(&bundle));
        assert!(error.starts_with("entry 1 records seq 3"), "{error}");
        assert!(error.contains("reordered"), "{error}");
    }

    #[test]
    fn the_wrong_key_fails() {
        let bundle = bundle(5);
        // Same log name, another key: the bundle's own key is refused...
        let error = bundle
            .trusted_key(Some(signer(8).verifier_key()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("not the trusted key"), "{error}");
        // ...and the note does not verify with it either.
        let error = message(verify_snapshot(
            signer(8).verifier_key(),
            &bundle.checkpoint,
            &bundle.leaves("t").unwrap(),
        ));
        assert!(
            error.starts_with("the checkpoint's signature does not verify"),
            "{error}"
        );
    }

    #[test]
    fn without_a_given_key_the_bundles_own_is_used_and_said_so() {
        let bundle = bundle(3);
        let (key, from_bundle) = bundle.trusted_key(None).unwrap();
        assert!(from_bundle);
        assert_eq!(&key, signer(7).verifier_key());
    }

    #[test]
    fn an_altered_checkpoint_fails() {
        let mut bundle = bundle(5);
        let other_root = STANDARD.encode([9u8; 32]);
        let mut lines: Vec<String> = bundle.checkpoint.split('\n').map(str::to_owned).collect();
        lines[2] = other_root;
        bundle.checkpoint = lines.join("\n");
        let error = message(verify_bundle(&bundle));
        assert!(
            error.starts_with("the checkpoint's signature does not verify"),
            "{error}"
        );
        assert!(error.contains("does not verify"), "{error}");
    }

    #[test]
    fn a_checkpoint_for_another_log_fails() {
        let leaves = leaves(2);
        let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
        let other = Checkpoint::new("other.log", 2, root_hash_from_leaf_hashes(&hashes)).unwrap();
        let note = signer(7).sign(&other.to_note_text()).unwrap();
        let error = message(verify_snapshot(signer(7).verifier_key(), &note, &leaves));
        assert!(error.contains("is for log \"other.log\""), "{error}");
    }

    #[test]
    fn a_rollback_against_saved_state_fails() {
        let signer = signer(7);
        let leaves = leaves(6);
        let saved = note_for(&signer, &leaves, 6);
        let now = verify_snapshot(
            signer.verifier_key(),
            &note_for(&signer, &leaves, 4),
            &leaves[..4],
        )
        .unwrap();
        let error = check_saved(&now, signer.verifier_key(), &saved, "state/checkpoint")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("rollback: the log now has 4 entries but 6 were verified before"),
            "{error}"
        );
    }

    #[test]
    fn a_fork_against_saved_state_fails() {
        let signer = signer(7);
        let original = leaves(6);
        let saved = note_for(&signer, &original, 4);
        // The log was cut back to 2 entries and grew again differently.
        let mut rewritten = original.clone();
        rewritten[3] = Event::new(3, 1, "login").actor("mallory").encode().unwrap();
        let now = verify_snapshot(
            signer.verifier_key(),
            &note_for(&signer, &rewritten, 6),
            &rewritten,
        )
        .unwrap();
        let error = check_saved(&now, signer.verifier_key(), &saved, "state/checkpoint")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(
                "fork: the first 4 entries no longer hash to the root verified before"
            ),
            "{error}"
        );

        // Same size, another root: a fork too.
        let saved_same_size = note_for(&signer, &original, 6);
        let error = check_saved(&now, signer.verifier_key(), &saved_same_size, "s")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("fork:"), "{error}");
    }

    #[test]
    fn an_extended_log_is_consistent_and_the_relays_proof_is_checked() {
        let signer = signer(7);
        let leaves = leaves(7);
        let saved_note = note_for(&signer, &leaves, 3);
        let now = verify_snapshot(
            signer.verifier_key(),
            &note_for(&signer, &leaves, 7),
            &leaves,
        )
        .unwrap();
        let saved = check_saved(&now, signer.verifier_key(), &saved_note, "s").unwrap();
        assert_eq!(saved.size(), 3);
        assert!(needs_consistency_proof(&saved, &now.checkpoint));
        let proof = consistency_proof(&now.leaf_hashes, 3, 7).unwrap();
        check_consistency_proof(&saved, &now.checkpoint, &proof).unwrap();
        let mut bad = proof.clone();
        bad[0][0] ^= 1;
        let error = check_consistency_proof(&saved, &now.checkpoint, &bad)
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("fork: the relay's proof"), "{error}");
        assert!(summary(&now, Some((&saved, "s")), true).contains("consistency proof verifies"));
    }

    #[test]
    fn a_saved_checkpoint_from_another_key_is_refused() {
        let leaves = leaves(3);
        let now = verify_snapshot(
            signer(7).verifier_key(),
            &note_for(&signer(7), &leaves, 3),
            &leaves,
        )
        .unwrap();
        let foreign = note_for(&signer(8), &leaves, 3);
        let error = check_saved(&now, signer(7).verifier_key(), &foreign, "s/checkpoint")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("saved checkpoint s/checkpoint:"),
            "{error}"
        );
    }

    #[test]
    fn entries_past_the_checkpoint_are_counted_apart() {
        let signer = signer(7);
        let leaves = leaves(5);
        let log = verify_snapshot(
            signer.verifier_key(),
            &note_for(&signer, &leaves, 3),
            &leaves,
        )
        .unwrap();
        assert_eq!(log.unsigned_tail(), 2);
        assert!(summary(&log, None, false).contains("2 newer entries"));
    }
}
