//! Checks over every tree of 1 to 64 leaves: every generated proof verifies,
//! and no single flipped bit in a proof, a leaf hash or a root gets past
//! verification.
//!
//! Bit flips are exhaustive (all 256 bits of every hash) for trees of up to
//! [`EXHAUSTIVE_FLIPS_UP_TO`] leaves. Above that, every byte of every hash is
//! hit once, with the bit within the byte rotating from tree to tree: this
//! suite runs unoptimized, where one SHA-256 costs about 3 µs, and flipping
//! all 256 bits everywhere would take minutes without finding a different
//! class of bug (a comparison that skips some bytes is caught either way).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use conclave_audit::{
    Checkpoint, Hash, NoteSigner, SignedNote, consistency_proof, inclusion_proof, leaf_hash,
    root_hash, root_hash_from_leaf_hashes, verify_consistency, verify_inclusion,
};
use ed25519_dalek::SigningKey;

const MAX_SIZE: u64 = 64;
const EXHAUSTIVE_FLIPS_UP_TO: u64 = 16;

/// Leaves of varied lengths (0 to 40 bytes) and contents.
fn leaves(n: u64) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let len = (i * 7 % 41) as usize;
            (0..len)
                .map(|j| (i as u8).wrapping_mul(31) ^ j as u8)
                .collect()
        })
        .collect()
}

fn leaf_hashes(n: u64) -> Vec<Hash> {
    leaves(n).iter().map(|leaf| leaf_hash(leaf)).collect()
}

/// The bits of a hash to flip in a tree of `tree_size` leaves (see the top).
fn bits_to_flip(tree_size: u64) -> Vec<usize> {
    if tree_size <= EXHAUSTIVE_FLIPS_UP_TO {
        (0..256).collect()
    } else {
        (0..32)
            .map(|byte| byte * 8 + (byte + tree_size as usize) % 8)
            .collect()
    }
}

/// Calls `check` with single-bit variants of `hash`.
fn each_bit_flip(tree_size: u64, hash: &Hash, mut check: impl FnMut(&Hash)) {
    for bit in bits_to_flip(tree_size) {
        let mut flipped = *hash;
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert_ne!(&flipped, hash);
        check(&flipped);
    }
}

#[test]
fn root_hash_of_leaves_equals_root_of_their_hashes() {
    for n in 0..=MAX_SIZE {
        assert_eq!(
            root_hash(&leaves(n)),
            root_hash_from_leaf_hashes(&leaf_hashes(n))
        );
    }
}

#[test]
fn every_inclusion_proof_verifies_and_every_bit_flip_fails() {
    let all = leaf_hashes(MAX_SIZE);
    let mut proofs = 0;
    for n in 1..=MAX_SIZE {
        let root = root_hash_from_leaf_hashes(&all[..n as usize]);
        for index in 0..n {
            let leaf = &all[index as usize];
            let proof = inclusion_proof(&all, index, n).unwrap();
            // An audit path has at most ceil(log2 n) hashes.
            assert!(proof.len() <= 64 - (n - 1).leading_zeros() as usize);
            verify_inclusion(index, n, leaf, &proof, &root)
                .unwrap_or_else(|e| panic!("n={n} index={index}: {e}"));

            for i in 0..proof.len() {
                each_bit_flip(n, &proof[i], |flipped| {
                    let mut bad = proof.clone();
                    bad[i] = *flipped;
                    assert!(verify_inclusion(index, n, leaf, &bad, &root).is_err());
                });
            }
            each_bit_flip(n, &root, |bad_root| {
                assert!(verify_inclusion(index, n, leaf, &proof, bad_root).is_err());
            });
            each_bit_flip(n, leaf, |bad_leaf| {
                assert!(verify_inclusion(index, n, bad_leaf, &proof, &root).is_err());
            });
            // The proof is bound to its position. (Not always to the tree size:
            // the root is, and the checkpoint binds the root to the size.)
            for other in (0..n).filter(|&other| other != index) {
                if all[other as usize] != *leaf {
                    assert!(verify_inclusion(other, n, leaf, &proof, &root).is_err());
                }
            }
            proofs += 1;
        }
    }
    assert_eq!(proofs, MAX_SIZE * (MAX_SIZE + 1) / 2);
}

#[test]
fn every_prefix_has_a_consistency_proof_and_every_bit_flip_fails() {
    let all = leaf_hashes(MAX_SIZE);
    let roots: Vec<Hash> = (0..=MAX_SIZE as usize)
        .map(|n| root_hash_from_leaf_hashes(&all[..n]))
        .collect();
    let mut proofs = 0;
    for n in 1..=MAX_SIZE {
        let new_root = &roots[n as usize];
        // The empty tree has no consistency proof: it would prove nothing.
        assert!(consistency_proof(&all, 0, n).is_err());
        assert!(verify_consistency::<Hash>(0, n, &[], &roots[0], new_root).is_err());
        for m in 1..=n {
            let old_root = &roots[m as usize];
            let proof = consistency_proof(&all, m, n).unwrap();
            assert_eq!(proof.is_empty(), m == n, "m={m} n={n}");
            verify_consistency(m, n, &proof, old_root, new_root)
                .unwrap_or_else(|e| panic!("m={m} n={n}: {e}"));

            for i in 0..proof.len() {
                each_bit_flip(n, &proof[i], |flipped| {
                    let mut bad = proof.clone();
                    bad[i] = *flipped;
                    assert!(verify_consistency(m, n, &bad, old_root, new_root).is_err());
                });
            }
            each_bit_flip(n, old_root, |bad| {
                assert!(verify_consistency(m, n, &proof, bad, new_root).is_err());
            });
            each_bit_flip(n, new_root, |bad| {
                assert!(verify_consistency(m, n, &proof, old_root, bad).is_err());
            });
            // A proof does not carry over to other sizes, nor to swapped roots.
            if m < n {
                assert!(verify_consistency(m, n, &proof, new_root, old_root).is_err());
                assert!(
                    verify_consistency(m + 1, n, &proof, &roots[m as usize + 1], new_root).is_err()
                );
                assert!(
                    verify_consistency(m, n - 1, &proof, old_root, &roots[n as usize - 1]).is_err()
                );
            }
            proofs += 1;
        }
    }
    assert_eq!(proofs, MAX_SIZE * (MAX_SIZE + 1) / 2);
}

#[test]
fn a_log_that_rewrites_history_cannot_prove_consistency() {
    // The log showed a client the tree of 10 leaves, then replaced leaf 3.
    let honest = leaf_hashes(20);
    let mut rewritten = honest.clone();
    rewritten[3] = leaf_hash(b"a different entry");
    let old_root = root_hash_from_leaf_hashes(&honest[..10]);
    let new_root = root_hash_from_leaf_hashes(&rewritten);
    for old_size in 1..=10 {
        // Whatever old size the dishonest log claims the proof is from.
        let proof = consistency_proof(&rewritten, old_size, 20).unwrap();
        assert!(verify_consistency(10, 20, &proof, &old_root, &new_root).is_err());
    }
    // The same holds for a proof built honestly from the old tree.
    let proof = consistency_proof(&honest, 10, 20).unwrap();
    assert!(verify_consistency(10, 20, &proof, &old_root, &new_root).is_err());
}

#[test]
fn checkpoints_signed_by_a_log_round_trip_through_notes() {
    let log = NoteSigner::new("log.conclave.example/1", SigningKey::from_bytes(&[5; 32])).unwrap();
    let trusted = [log.verifier_key().clone()];
    let all = leaf_hashes(MAX_SIZE);
    let mut previous: Option<Checkpoint> = None;
    for n in 0..=MAX_SIZE {
        let checkpoint = Checkpoint::new(
            "log.conclave.example/1",
            n,
            root_hash_from_leaf_hashes(&all[..n as usize]),
        )
        .unwrap();
        let signed = log.sign(&checkpoint.to_note_text()).unwrap();
        let note = SignedNote::parse(&signed)
            .unwrap()
            .verify(&trusted)
            .unwrap();
        let seen = Checkpoint::from_note_text(note.text()).unwrap();
        assert_eq!(seen, checkpoint);

        if let Some(old) = previous.filter(|old| old.size() > 0) {
            let proof = consistency_proof(&all, old.size(), seen.size()).unwrap();
            verify_consistency(
                old.size(),
                seen.size(),
                &proof,
                old.root_hash(),
                seen.root_hash(),
            )
            .unwrap();
        }
        previous = Some(seen);
    }
}
