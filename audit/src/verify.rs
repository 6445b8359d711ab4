//! Inclusion and consistency proof verification, RFC 9162 §2.1.3.2 and §2.1.4.2.
//!
//! The loops below are the RFC's algorithms step by step (the step numbers are
//! in the comments), so they can be checked against the text. Hashes arrive as
//! byte slices because proofs come off the wire: a value that must be hashed
//! but is not 32 bytes is refused by name rather than silently hashed.

use crate::error::ProofError;
use crate::merkle::{Hash, node_hash};

/// Checks that the leaf with hash `leaf_hash` is at `index` in the tree of
/// `tree_size` leaves whose root is `root` (RFC 9162 §2.1.3.2).
///
/// `proof` is the audit path, from the leaf's sibling upward, as returned by
/// [`inclusion_proof`](crate::inclusion_proof).
pub fn verify_inclusion<P: AsRef<[u8]>>(
    index: u64,
    tree_size: u64,
    leaf_hash: &[u8],
    proof: &[P],
    root: &[u8],
) -> Result<(), ProofError> {
    // 1. The leaf must be inside the tree.
    if index >= tree_size {
        return Err(ProofError::IndexOutOfRange { index, tree_size });
    }
    // 2. fn is the leaf's position, sn the last position, on the current level.
    let (mut fn_, mut sn) = (index, tree_size - 1);
    // 3.
    let mut r = to_hash(leaf_hash, "leaf hash")?;
    // 4.
    for p in proof {
        let p = to_hash(p.as_ref(), "proof hash")?;
        // a. Reached the root with hashes left over.
        if sn == 0 {
            return Err(ProofError::ProofTooLong);
        }
        // b. A right child, or the last node of its level (which may have
        //    no right sibling and is then promoted unchanged).
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(&p, &r);
            if fn_ & 1 == 0 {
                // Skip the levels where the node is promoted without a sibling.
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, &p);
        }
        // c.
        fn_ >>= 1;
        sn >>= 1;
    }
    // 5.
    if sn != 0 {
        return Err(ProofError::ProofTooShort);
    }
    if r.as_slice() != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that the tree of `old_size` leaves with root `old_root` is a prefix
/// of the tree of `new_size` leaves with root `new_root` (RFC 9162 §2.1.4.2).
///
/// `proof` is as returned by [`consistency_proof`](crate::consistency_proof).
/// The RFC defines the check only for `0 < old_size < new_size`; the edge
/// cases follow the transparency-dev/merkle test suite:
///
/// - equal sizes need an empty proof and byte-identical roots;
/// - an old size of 0 is refused, even when the new size is 0 too: the empty
///   tree is consistent with everything, so "verifying" it proves nothing and
///   a caller must not count it as a check (the first checkpoint a client
///   sees has to be trusted some other way);
/// - an empty proof between different sizes is refused.
pub fn verify_consistency<P: AsRef<[u8]>>(
    old_size: u64,
    new_size: u64,
    proof: &[P],
    old_root: &[u8],
    new_root: &[u8],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder { old_size, new_size });
    }
    if old_size == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    if old_size == new_size {
        // Nothing to prove: the roots are compared, never hashed.
        if !proof.is_empty() {
            return Err(ProofError::ProofNotEmpty);
        }
        if old_root != new_root {
            return Err(ProofError::RootMismatch);
        }
        return Ok(());
    }

    // From here 0 < old_size < new_size, the RFC's precondition.
    // 1.
    if proof.is_empty() {
        return Err(ProofError::EmptyProof);
    }
    let old_root = to_hash(old_root, "old root")?;
    let new_root = to_hash(new_root, "new root")?;
    let mut path = proof.iter().map(|p| to_hash(p.as_ref(), "proof hash"));
    // 2 and 5. When the old tree is a complete subtree (a power of two) its
    //    root is the starting point and the proof leaves it out; otherwise the
    //    proof starts with the hash of the largest complete subtree it ends in.
    let seed = if old_size.is_power_of_two() {
        old_root
    } else {
        path.next().ok_or(ProofError::EmptyProof)??
    };
    // 3.
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    // 4.
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    // 5. fr rebuilds the old root, sr the new one, from the same hashes.
    let (mut fr, mut sr) = (seed, seed);
    // 6.
    for c in path {
        let c = c?;
        // a.
        if sn == 0 {
            return Err(ProofError::ProofTooLong);
        }
        // b.
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(&c, &fr);
            sr = node_hash(&c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            // A right sibling that only the new tree has.
            sr = node_hash(&sr, &c);
        }
        // c.
        fn_ >>= 1;
        sn >>= 1;
    }
    // 7.
    if sn != 0 {
        return Err(ProofError::ProofTooShort);
    }
    if fr != old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if sr != new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

fn to_hash(bytes: &[u8], what: &'static str) -> Result<Hash, ProofError> {
    bytes.try_into().map_err(|_| ProofError::WrongHashLength {
        what,
        len: bytes.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{
        consistency_proof, inclusion_proof, leaf_hash, root_hash_from_leaf_hashes,
    };

    fn leaves(n: u8) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&[i])).collect()
    }

    #[test]
    fn inclusion_errors_name_the_problem() {
        let l = leaves(5);
        let root = root_hash_from_leaf_hashes(&l);
        let proof = inclusion_proof(&l, 2, 5).unwrap();
        assert_eq!(verify_inclusion(2, 5, &l[2], &proof, &root), Ok(()));

        assert_eq!(
            verify_inclusion(5, 5, &l[2], &proof, &root),
            Err(ProofError::IndexOutOfRange {
                index: 5,
                tree_size: 5
            })
        );
        assert_eq!(
            verify_inclusion(2, 5, &l[2][..31], &proof, &root),
            Err(ProofError::WrongHashLength {
                what: "leaf hash",
                len: 31
            })
        );
        assert_eq!(
            verify_inclusion(2, 5, &l[2], &proof[..proof.len() - 1], &root),
            Err(ProofError::ProofTooShort)
        );
        let mut longer = proof.clone();
        longer.push(l[0]);
        assert_eq!(
            verify_inclusion(2, 5, &l[2], &longer, &root),
            Err(ProofError::ProofTooLong)
        );
        assert_eq!(
            verify_inclusion(2, 5, &l[3], &proof, &root),
            Err(ProofError::RootMismatch)
        );
        // The right proof for another position does not prove this one.
        assert_eq!(
            verify_inclusion(3, 5, &l[2], &proof, &root),
            Err(ProofError::RootMismatch)
        );
    }

    #[test]
    fn consistency_errors_name_the_problem() {
        let l = leaves(7);
        let (old, new) = (
            root_hash_from_leaf_hashes(&l[..3]),
            root_hash_from_leaf_hashes(&l),
        );
        let proof = consistency_proof(&l, 3, 7).unwrap();
        assert_eq!(verify_consistency(3, 7, &proof, &old, &new), Ok(()));

        assert_eq!(
            verify_consistency(7, 3, &proof, &new, &old),
            Err(ProofError::SizesOutOfOrder {
                old_size: 7,
                new_size: 3
            })
        );
        assert_eq!(
            verify_consistency::<Hash>(0, 0, &[], &old, &old),
            Err(ProofError::EmptyOldTree)
        );
        assert_eq!(
            verify_consistency(3, 3, &proof, &old, &old),
            Err(ProofError::ProofNotEmpty)
        );
        assert_eq!(
            verify_consistency::<Hash>(3, 3, &[], &old, &new),
            Err(ProofError::RootMismatch)
        );
        assert_eq!(
            verify_consistency::<Hash>(3, 7, &[], &old, &new),
            Err(ProofError::EmptyProof)
        );
        assert_eq!(
            verify_consistency(3, 7, &proof, &old, &old),
            Err(ProofError::RootMismatch)
        );
        assert_eq!(
            verify_consistency(3, 7, &proof, &new, &new),
            Err(ProofError::OldRootMismatch)
        );
        assert_eq!(
            verify_consistency(3, 7, &proof[..proof.len() - 1], &old, &new),
            Err(ProofError::ProofTooShort)
        );
        let mut longer = proof.clone();
        longer.push(l[0]);
        assert_eq!(
            verify_consistency(3, 7, &longer, &old, &new),
            Err(ProofError::ProofTooLong)
        );
        assert_eq!(
            verify_consistency(3, 7, &proof, &old[..16], &new),
            Err(ProofError::WrongHashLength {
                what: "old root",
                len: 16
            })
        );
    }

    #[test]
    fn a_power_of_two_old_tree_needs_only_the_new_hashes() {
        let l = leaves(6);
        let proof = consistency_proof(&l, 4, 6).unwrap();
        // The old root is not repeated in the proof: just the subtree of leaves 4 and 5.
        assert_eq!(proof, vec![root_hash_from_leaf_hashes(&l[4..])]);
        assert_eq!(
            verify_consistency(
                4,
                6,
                &proof,
                &root_hash_from_leaf_hashes(&l[..4]),
                &root_hash_from_leaf_hashes(&l)
            ),
            Ok(())
        );
    }
}
