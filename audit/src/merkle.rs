//! RFC 9162 §2.1 Merkle tree hashing over SHA-256, and proof generation.
//!
//! Leaves and interior nodes are hashed with different one-byte prefixes
//! (0x00 and 0x01), so no leaf can be passed off as an interior node (the
//! second-preimage attack on plain Merkle trees).
//!
//! Generation follows the recursive definitions of RFC 9162 §2.1.3.1 and
//! §2.1.4.1 literally. It recomputes subtree hashes from the leaf hashes, so a
//! proof costs O(n) hashing for a tree of n leaves: right for tests and small
//! logs; a large log would keep the interior nodes instead.

use sha2::{Digest, Sha256};

use crate::error::ProofError;

/// A SHA-256 hash: a leaf hash, an interior node or a tree's root.
pub type Hash = [u8; 32];

const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// The hash of one log entry: `SHA-256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([LEAF_PREFIX])
        .chain_update(leaf)
        .finalize()
        .into()
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([NODE_PREFIX])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The Merkle Tree Hash (MTH) of a list of entries: the root of their tree.
///
/// The empty tree's root is the SHA-256 of the empty string.
pub fn root_hash<L: AsRef<[u8]>>(leaves: &[L]) -> Hash {
    let hashes: Vec<Hash> = leaves.iter().map(|leaf| leaf_hash(leaf.as_ref())).collect();
    subtree_hash(&hashes)
}

/// The Merkle Tree Hash of a tree given by its leaf hashes (see [`leaf_hash`]).
pub fn root_hash_from_leaf_hashes(leaf_hashes: &[Hash]) -> Hash {
    subtree_hash(leaf_hashes)
}

/// The inclusion proof (audit path) for leaf `index` in the tree made of the
/// first `tree_size` of `leaf_hashes` (RFC 9162 §2.1.3.1), ordered from the
/// leaf's sibling up to the root's child.
pub fn inclusion_proof(
    leaf_hashes: &[Hash],
    index: u64,
    tree_size: u64,
) -> Result<Vec<Hash>, ProofError> {
    let tree = prefix(leaf_hashes, tree_size)?;
    if index >= tree_size {
        return Err(ProofError::IndexOutOfRange { index, tree_size });
    }
    // `index < tree_size <= tree.len()`, so it fits in usize.
    let index =
        usize::try_from(index).map_err(|_| ProofError::IndexOutOfRange { index, tree_size })?;
    let mut proof = Vec::new();
    path(index, tree, &mut proof);
    Ok(proof)
}

/// The consistency proof that the tree of the first `old_size` leaves is a
/// prefix of the tree of the first `new_size` leaves (RFC 9162 §2.1.4.1).
///
/// Equal sizes give the empty proof. An old size of 0 is refused, as it is
/// by [`verify_consistency`](crate::verify_consistency): there is nothing to
/// be consistent with.
pub fn consistency_proof(
    leaf_hashes: &[Hash],
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder { old_size, new_size });
    }
    if old_size == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    let tree = prefix(leaf_hashes, new_size)?;
    // `old_size <= new_size == tree.len()`.
    let old_size = usize::try_from(old_size)
        .map_err(|_| ProofError::SizesOutOfOrder { old_size, new_size })?;
    let mut proof = Vec::new();
    subproof(old_size, tree, true, &mut proof);
    Ok(proof)
}

/// The first `tree_size` leaf hashes, or an error if there are fewer.
fn prefix(leaf_hashes: &[Hash], tree_size: u64) -> Result<&[Hash], ProofError> {
    usize::try_from(tree_size)
        .ok()
        .and_then(|size| leaf_hashes.get(..size))
        .ok_or(ProofError::NotEnoughLeaves {
            tree_size,
            available: leaf_hashes.len(),
        })
}

/// MTH over leaf hashes (RFC 9162 §2.1.1).
fn subtree_hash(leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes {
        [] => Sha256::digest(b"").into(),
        [single] => *single,
        _ => {
            let (left, right) = leaf_hashes.split_at(split_point(leaf_hashes.len()));
            node_hash(&subtree_hash(left), &subtree_hash(right))
        }
    }
}

/// PATH(m, D[n]): the sibling hashes from leaf `m` up, deepest first.
fn path(m: usize, tree: &[Hash], proof: &mut Vec<Hash>) {
    if tree.len() <= 1 {
        return;
    }
    let (left, right) = tree.split_at(split_point(tree.len()));
    if m < left.len() {
        path(m, left, proof);
        proof.push(subtree_hash(right));
    } else {
        path(m - left.len(), right, proof);
        proof.push(subtree_hash(left));
    }
}

/// SUBPROOF(m, D[n], b). `complete` is b: whether the subtree of the first
/// `m` leaves is one the verifier already knows the hash of (then it is left
/// out of the proof).
fn subproof(m: usize, tree: &[Hash], complete: bool, proof: &mut Vec<Hash>) {
    if m == tree.len() {
        if !complete {
            proof.push(subtree_hash(tree));
        }
        return;
    }
    let (left, right) = tree.split_at(split_point(tree.len()));
    if m <= left.len() {
        subproof(m, left, complete, proof);
        proof.push(subtree_hash(right));
    } else {
        subproof(m - left.len(), right, false, proof);
        proof.push(subtree_hash(left));
    }
}

/// The largest power of two strictly below `n` (for `n >= 2`): the size of
/// the left subtree.
fn split_point(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The leaf inputs of the transparency-dev reference tree.
    const REFERENCE_LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];

    fn reference_leaves() -> Vec<Vec<u8>> {
        REFERENCE_LEAVES
            .iter()
            .map(|leaf| hex::decode(leaf).unwrap())
            .collect()
    }

    #[test]
    fn empty_tree_is_the_hash_of_nothing() {
        assert_eq!(
            hex::encode(root_hash::<&[u8]>(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn reference_tree_has_the_published_root() {
        assert_eq!(
            hex::encode(root_hash(&reference_leaves())),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
        );
    }

    #[test]
    fn one_leaf_tree_root_is_its_leaf_hash() {
        // RFC 6962 §2.1.1 / the RFC 6962 test vectors: leaf hash of the empty string.
        assert_eq!(
            hex::encode(leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(root_hash(&[b""]), leaf_hash(b""));
    }

    #[test]
    fn leaves_and_nodes_are_domain_separated() {
        let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
        let mut concatenated = a.to_vec();
        concatenated.extend_from_slice(&b);
        // A leaf whose content is two hashes does not collide with their parent.
        assert_ne!(leaf_hash(&concatenated), node_hash(&a, &b));
        assert_eq!(root_hash(&[b"a", b"b"]), node_hash(&a, &b));
    }

    #[test]
    fn split_point_is_the_largest_power_of_two_below() {
        let cases = [
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 4),
            (8, 4),
            (9, 8),
            (64, 32),
            (65, 64),
        ];
        for (n, k) in cases {
            assert_eq!(split_point(n), k, "n = {n}");
        }
    }

    #[test]
    fn generation_refuses_impossible_requests() {
        let leaves: Vec<Hash> = (0u8..4).map(|i| leaf_hash(&[i])).collect();
        assert_eq!(
            inclusion_proof(&leaves, 4, 4),
            Err(ProofError::IndexOutOfRange {
                index: 4,
                tree_size: 4
            })
        );
        assert_eq!(
            inclusion_proof(&leaves, 0, 5),
            Err(ProofError::NotEnoughLeaves {
                tree_size: 5,
                available: 4
            })
        );
        assert_eq!(
            consistency_proof(&leaves, 3, 2),
            Err(ProofError::SizesOutOfOrder {
                old_size: 3,
                new_size: 2
            })
        );
        assert_eq!(
            consistency_proof(&leaves, 0, 4),
            Err(ProofError::EmptyOldTree)
        );
        assert_eq!(
            consistency_proof(&leaves, 2, 5),
            Err(ProofError::NotEnoughLeaves {
                tree_size: 5,
                available: 4
            })
        );
        assert_eq!(consistency_proof(&leaves, 3, 3), Ok(Vec::new()));
        assert_eq!(inclusion_proof(&leaves[..1], 0, 1), Ok(Vec::new()));
    }

    #[test]
    fn inclusion_proof_matches_rfc_structure_for_a_small_tree() {
        // Tree of 3: root = H(H(l0, l1), l2). The path of l2 is [H(l0, l1)].
        let l: Vec<Hash> = (0u8..3).map(|i| leaf_hash(&[i])).collect();
        assert_eq!(inclusion_proof(&l, 2, 3), Ok(vec![node_hash(&l[0], &l[1])]));
        assert_eq!(inclusion_proof(&l, 0, 3), Ok(vec![l[1], l[2]]));
        // Consistency 2 -> 3: the old root is a complete subtree, so only l2.
        assert_eq!(consistency_proof(&l, 2, 3), Ok(vec![l[2]]));
        // Consistency 1 -> 3: l1, then l2.
        assert_eq!(consistency_proof(&l, 1, 3), Ok(vec![l[1], l[2]]));
    }
}
