//! The tree as a log stores it: the hash of every complete subtree, so that
//! a root or a proof costs O(log n) stored hashes, never a pass over the
//! leaves.
//!
//! A [`Node`] at level `L` and index `K` is the hash of the `2^L` leaves
//! from `K·2^L`: level 0 holds the leaf hashes, level 1 the hashes of
//! aligned pairs, and so on. These are the hashes C2SP tlog-tiles serves (a
//! tile at tile level `T` holds the nodes of tree level `8T`), and the
//! "stored hashes" of Go's `golang.org/x/mod/sumdb/tlog`.
//!
//! Sans-IO, in two steps: a [`Plan`] says which nodes a root or a proof
//! needs; the caller reads them however it stores them, and the plan folds
//! them into the hashes RFC 9162 defines. [`append`] says which nodes a new
//! leaf completes.
//!
//! ```
//! use std::collections::HashMap;
//! use conclave_audit::stored_tree::{self, Plan};
//! use conclave_audit::{leaf_hash, inclusion_proof, root_hash_from_leaf_hashes};
//!
//! let leaves: Vec<_> = (0u8..13).map(|i| leaf_hash(&[i])).collect();
//! let mut stored = HashMap::new();
//! for (index, leaf) in leaves.iter().enumerate() {
//!     let index = index as u64;
//!     let siblings: Vec<_> = stored_tree::left_siblings(index).iter().map(|n| stored[n]).collect();
//!     stored.extend(stored_tree::append(index, *leaf, &siblings));
//! }
//! let read = |node| stored.get(&node).copied();
//! let root = Plan::root(13).hashes(read).unwrap();
//! assert_eq!(root, [root_hash_from_leaf_hashes(&leaves)]);
//! let proof = Plan::inclusion(5, 13).unwrap().hashes(read).unwrap();
//! assert_eq!(proof, inclusion_proof(&leaves, 5, 13).unwrap());
//! ```

use sha2::{Digest, Sha256};

use crate::error::ProofError;
use crate::merkle::{Hash, node_hash};

/// A complete subtree: the `2^level` leaves from `index << level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Node {
    /// Its height: 0 for a leaf.
    pub level: u8,
    /// Its position among the nodes of its level.
    pub index: u64,
}

impl Node {
    fn first_leaf(self) -> u64 {
        self.index << self.level
    }
}

/// The stored nodes that leaf `index` pairs with as it is appended, from
/// level 0 up: the left siblings of the subtrees it completes.
pub fn left_siblings(index: u64) -> Vec<Node> {
    (0..64u8)
        .take_while(|&level| (index >> level) & 1 == 1)
        .map(|level| Node {
            level,
            index: (index >> level) - 1,
        })
        .collect()
}

/// The nodes to store when leaf `index` (hash `leaf`) is appended, given the
/// hashes of its [`left_siblings`] in that order: the leaf itself and every
/// subtree it completes.
///
/// # Panics
///
/// If `siblings` is shorter than `left_siblings(index)`: a caller bug.
pub fn append(index: u64, leaf: Hash, siblings: &[Hash]) -> Vec<(Node, Hash)> {
    let needed = left_siblings(index);
    assert!(
        siblings.len() >= needed.len(),
        "append needs the hashes of left_siblings(index)"
    );
    let mut stored = vec![(Node { level: 0, index }, leaf)];
    let mut hash = leaf;
    for (sibling, left) in needed.iter().zip(siblings) {
        hash = node_hash(left, &hash);
        stored.push((
            Node {
                level: sibling.level + 1,
                index: index >> (sibling.level + 1),
            },
            hash,
        ));
    }
    stored
}

/// Which stored nodes a root or a proof needs, and how they fold into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Each hash of the answer is the Merkle Tree Hash of a range of leaves
    /// `[start, end)`.
    ranges: Vec<(u64, u64)>,
}

impl Plan {
    /// The root of the tree of the first `size` leaves.
    pub fn root(size: u64) -> Self {
        Self {
            ranges: vec![(0, size)],
        }
    }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves
    /// (RFC 9162 §2.1.3.1), sibling first.
    pub fn inclusion(index: u64, size: u64) -> Result<Self, ProofError> {
        if index >= size {
            return Err(ProofError::IndexOutOfRange {
                index,
                tree_size: size,
            });
        }
        let mut ranges = Vec::new();
        path(index, 0, size, &mut ranges);
        Ok(Self { ranges })
    }

    /// The consistency proof from the tree of `old` leaves to the tree of
    /// `new` (RFC 9162 §2.1.4.1).
    pub fn consistency(old: u64, new: u64) -> Result<Self, ProofError> {
        if old > new {
            return Err(ProofError::SizesOutOfOrder {
                old_size: old,
                new_size: new,
            });
        }
        if old == 0 {
            return Err(ProofError::EmptyOldTree);
        }
        let mut ranges = Vec::new();
        subproof(old, 0, new, true, &mut ranges);
        Ok(Self { ranges })
    }

    /// Every stored node the answer needs (each once, in order).
    pub fn nodes(&self) -> Vec<Node> {
        let mut nodes: Vec<Node> = self
            .ranges
            .iter()
            .flat_map(|&(start, end)| complete_subtrees(start, end))
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    /// The answer, from the stored nodes `read` returns; the first node it
    /// lacks is the error.
    pub fn hashes(&self, read: impl Fn(Node) -> Option<Hash>) -> Result<Vec<Hash>, Node> {
        self.ranges
            .iter()
            .map(|&(start, end)| {
                if start == end {
                    return Ok(Sha256::digest(b"").into());
                }
                // MTH of the range: its complete subtrees, largest first,
                // folded from the right (RFC 9162 splits at the largest
                // power of two, which is the first of them).
                let nodes = complete_subtrees(start, end);
                let mut hashes = nodes
                    .iter()
                    .map(|&node| read(node).ok_or(node))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut hash = hashes.pop().expect("a non-empty range has a node");
                while let Some(left) = hashes.pop() {
                    hash = node_hash(&left, &hash);
                }
                Ok(hash)
            })
            .collect()
    }
}

/// The complete subtrees that make up `[start, end)`, largest first. For the
/// ranges an RFC 9162 tree splits into, `start` is aligned to the range's
/// size rounded up to a power of two, so these are the subtrees the tree
/// hash splits the range into.
fn complete_subtrees(mut start: u64, end: u64) -> Vec<Node> {
    let mut nodes = Vec::new();
    while start < end {
        let remaining = end - start;
        let mut level = 63 - remaining.leading_zeros();
        if start != 0 {
            level = level.min(start.trailing_zeros());
        }
        nodes.push(Node {
            level: level as u8,
            index: start >> level,
        });
        start += 1 << level;
    }
    debug_assert!(
        nodes
            .windows(2)
            .all(|w| w[0].first_leaf() < w[1].first_leaf())
    );
    nodes
}

/// The largest power of two strictly below `n` (for `n >= 2`).
fn split_point(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// PATH(m, D[start..end)) as ranges, deepest first.
fn path(m: u64, start: u64, end: u64, out: &mut Vec<(u64, u64)>) {
    let n = end - start;
    if n <= 1 {
        return;
    }
    let k = split_point(n);
    if m < k {
        path(m, start, start + k, out);
        out.push((start + k, end));
    } else {
        path(m - k, start + k, end, out);
        out.push((start, start + k));
    }
}

/// SUBPROOF(m, D[start..end), complete) as ranges.
fn subproof(m: u64, start: u64, end: u64, complete: bool, out: &mut Vec<(u64, u64)>) {
    let n = end - start;
    if m == n {
        if !complete {
            out.push((start, end));
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        subproof(m, start, start + k, complete, out);
        out.push((start + k, end));
    } else {
        subproof(m - k, start + k, end, false, out);
        out.push((start, start + k));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::merkle::{
        consistency_proof, inclusion_proof, leaf_hash, root_hash_from_leaf_hashes,
    };

    fn stored(leaves: &[Hash]) -> HashMap<Node, Hash> {
        let mut stored = HashMap::new();
        for (index, leaf) in leaves.iter().enumerate() {
            let index = index as u64;
            let siblings: Vec<Hash> = left_siblings(index).iter().map(|n| stored[n]).collect();
            stored.extend(append(index, *leaf, &siblings));
        }
        stored
    }

    #[test]
    fn every_root_and_proof_matches_the_one_computed_from_the_leaves() {
        let leaves: Vec<Hash> = (0u32..70).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let nodes = stored(&leaves);
        // Every complete subtree, and nothing else: 2n - popcount(n) nodes.
        let n = leaves.len() as u64;
        assert_eq!(nodes.len() as u64, 2 * n - u64::from(n.count_ones()));
        let read = |node| nodes.get(&node).copied();
        for size in 0..=n {
            let prefix = &leaves[..size as usize];
            assert_eq!(
                Plan::root(size).hashes(read).unwrap(),
                [root_hash_from_leaf_hashes(prefix)],
                "root at {size}"
            );
            for index in 0..size {
                assert_eq!(
                    Plan::inclusion(index, size).unwrap().hashes(read).unwrap(),
                    inclusion_proof(&leaves, index, size).unwrap(),
                    "inclusion of {index} in {size}"
                );
            }
            for old in 1..=size {
                assert_eq!(
                    Plan::consistency(old, size).unwrap().hashes(read).unwrap(),
                    consistency_proof(&leaves, old, size).unwrap(),
                    "consistency {old} -> {size}"
                );
            }
        }
    }

    #[test]
    fn a_proof_reads_a_logarithmic_number_of_nodes() {
        let size = 1_000_003u64;
        for index in [0, 1, 4_095, 500_000, size - 1] {
            let nodes = Plan::inclusion(index, size).unwrap().nodes();
            assert!(nodes.len() <= 2 * 21, "{} nodes for one proof", nodes.len());
        }
        assert!(Plan::consistency(77_777, size).unwrap().nodes().len() <= 2 * 21 * 2);
        assert!(Plan::root(size).nodes().len() <= 21);
    }

    #[test]
    fn a_missing_node_is_named_and_bad_requests_are_refused() {
        let leaves: Vec<Hash> = (0u8..5).map(|i| leaf_hash(&[i])).collect();
        let mut nodes = stored(&leaves);
        nodes.remove(&Node { level: 2, index: 0 });
        let missing = Plan::root(5)
            .hashes(|node| nodes.get(&node).copied())
            .unwrap_err();
        assert_eq!(missing, Node { level: 2, index: 0 });
        assert!(Plan::inclusion(5, 5).is_err());
        assert!(Plan::consistency(0, 5).is_err());
        assert!(Plan::consistency(6, 5).is_err());
    }
}
