//! RFC 6962 / RFC 9162 Merkle proof vectors from transparency-dev/merkle
//! (`testdata/`, Apache-2.0; see `data/rfc6962-merkle/LICENSE`), many of them
//! deliberately broken (`wantErr: true`). Every one must get its expected
//! verdict, and every happy path must be exactly the proof we generate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_audit::{
    Hash, ProofError, consistency_proof, inclusion_proof, leaf_hash, root_hash, verify_consistency,
    verify_inclusion,
};
use serde::Deserialize;

/// The leaf inputs of the reference tree; vectors with trees of up to 8
/// leaves are built from its first leaves.
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InclusionVector {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    /// `null` in some files: the same as an empty proof.
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConsistencyVector {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

fn data_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/rfc6962-merkle")
        .join(kind)
}

/// Every `.json` file under `dir`, sorted so failures read the same each run.
fn vector_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("vector directory exists") {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn b64(text: &str) -> Vec<u8> {
    STANDARD.decode(text).expect("vector field is base64")
}

fn proof(proof: &Option<Vec<String>>) -> Vec<Vec<u8>> {
    proof.iter().flatten().map(|p| b64(p)).collect()
}

fn reference_leaf_hashes() -> Vec<Hash> {
    REFERENCE_LEAVES
        .iter()
        .map(|leaf| leaf_hash(&hex::decode(leaf).unwrap()))
        .collect()
}

fn name(path: &Path) -> String {
    path.strip_prefix(data_dir(""))
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn reference_tree_root_is_the_published_one() {
    let leaves: Vec<Vec<u8>> = REFERENCE_LEAVES
        .iter()
        .map(|leaf| hex::decode(leaf).unwrap())
        .collect();
    assert_eq!(
        hex::encode(root_hash(&leaves)),
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    );
}

#[test]
fn every_inclusion_vector_gets_its_expected_verdict() {
    let reference = reference_leaf_hashes();
    let (mut checked, mut happy_regenerated, mut rejected) = (0, 0, 0);
    let mut failures = Vec::new();
    for path in vector_files(&data_dir("inclusion")) {
        let text = fs::read_to_string(&path).unwrap();
        let v: InclusionVector = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not an inclusion vector: {e}", name(&path)));
        let (leaf, root, path_hashes) = (b64(&v.leaf_hash), b64(&v.root), proof(&v.proof));
        let verdict = verify_inclusion(v.leaf_idx, v.tree_size, &leaf, &path_hashes, &root);
        if verdict.is_err() != v.want_err {
            failures.push(format!("{} ({}): got {verdict:?}", name(&path), v.desc));
        }
        if v.want_err {
            rejected += 1;
        } else if v.tree_size <= 8 && reference.get(v.leaf_idx as usize) == Some(&leaf_array(&leaf))
        {
            // A valid proof over the reference tree is the one we generate.
            let generated = inclusion_proof(&reference, v.leaf_idx, v.tree_size).unwrap();
            let generated: Vec<Vec<u8>> = generated.iter().map(|h| h.to_vec()).collect();
            assert_eq!(generated, path_hashes, "{}", name(&path));
            happy_regenerated += 1;
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "wrong verdicts: {failures:#?}");
    // The copied suite: 98 files, of which 6 valid and 92 broken.
    assert_eq!((checked, rejected), (98, 92));
    // All happy paths but the single-entry one (an arbitrary leaf) use the reference tree.
    assert_eq!(happy_regenerated, 5);
}

#[test]
fn every_consistency_vector_gets_its_expected_verdict() {
    let reference = reference_leaf_hashes();
    let (mut checked, mut happy_regenerated, mut rejected) = (0, 0, 0);
    let mut failures = Vec::new();
    for path in vector_files(&data_dir("consistency")) {
        let text = fs::read_to_string(&path).unwrap();
        let v: ConsistencyVector = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not a consistency vector: {e}", name(&path)));
        let (root1, root2, path_hashes) = (b64(&v.root1), b64(&v.root2), proof(&v.proof));
        let verdict = verify_consistency(v.size1, v.size2, &path_hashes, &root1, &root2);
        if verdict.is_err() != v.want_err {
            failures.push(format!("{} ({}): got {verdict:?}", name(&path), v.desc));
        }
        if v.want_err {
            rejected += 1;
        } else if v.size2 <= 8 && root2 == root_of_reference_prefix(&reference, v.size2) {
            let generated = consistency_proof(&reference, v.size1, v.size2).unwrap();
            let generated: Vec<Vec<u8>> = generated.iter().map(|h| h.to_vec()).collect();
            assert_eq!(generated, path_hashes, "{}", name(&path));
            happy_regenerated += 1;
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "wrong verdicts: {failures:#?}");
    // 98 files: 6 valid and 92 broken.
    assert_eq!((checked, rejected), (98, 92));
    // All happy paths but the "don't care" equal-size one use the reference tree.
    assert_eq!(happy_regenerated, 5);
}

/// The errors, not just their existence: a sample of broken vectors must fail
/// for the reason their names give.
#[test]
fn broken_vectors_fail_for_the_stated_reason() {
    let inclusion = |file: &str| {
        let path = data_dir("inclusion").join(file);
        let v: InclusionVector = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
        verify_inclusion(
            v.leaf_idx,
            v.tree_size,
            &b64(&v.leaf_hash),
            &proof(&v.proof),
            &b64(&v.root),
        )
        .unwrap_err()
    };
    let consistency = |file: &str| {
        let path = data_dir("consistency").join(file);
        let v: ConsistencyVector =
            serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
        verify_consistency(
            v.size1,
            v.size2,
            &proof(&v.proof),
            &b64(&v.root1),
            &b64(&v.root2),
        )
        .unwrap_err()
    };

    assert_eq!(inclusion("1/wrong-leaf.json"), wrong_length("leaf hash", 9));
    assert_eq!(
        inclusion("1/preceding-garbage.json"),
        wrong_length("proof hash", 0)
    );
    assert_eq!(inclusion("1/random-root.json"), ProofError::RootMismatch);
    assert_eq!(
        inclusion("1/removed-component.json"),
        ProofError::ProofTooShort
    );
    assert_eq!(
        inclusion("1/inserted-component.json"),
        ProofError::ProofTooLong
    );
    assert_eq!(inclusion("0/trailing-root.json"), ProofError::ProofTooLong);
    assert!(matches!(
        inclusion("0/leafIdx-sub-@1.json"),
        ProofError::IndexOutOfRange { .. }
    ));
    assert!(matches!(
        inclusion("additional/0/random-leaf.json"),
        ProofError::IndexOutOfRange { .. }
    ));

    // "WrongRoot" is 9 bytes: refused before any hashing.
    assert_eq!(
        consistency("1/wrong-root1.json"),
        wrong_length("old root", 9)
    );
    assert_eq!(
        consistency("1/wrong-root2.json"),
        wrong_length("new root", 9)
    );
    assert_eq!(
        consistency("2/swapped-roots.json"),
        ProofError::OldRootMismatch
    );
    assert_eq!(
        consistency("2/modified-proof@0-bit-@4.json"),
        ProofError::OldRootMismatch
    );
    assert_eq!(
        consistency("1/swapped-roots.json"),
        ProofError::RootMismatch
    );
    assert_eq!(consistency("1/empty-proof.json"), ProofError::EmptyProof);
    assert_eq!(consistency("1/size1-sub-@1.json"), ProofError::EmptyOldTree);
    assert!(matches!(
        consistency("additional/size1-is-greater-than-size2.json"),
        ProofError::SizesOutOfOrder { .. }
    ));
    assert_eq!(
        consistency("additional/sizes-match-but-proof-is-not-empty-and-sizes-are-one.json"),
        ProofError::ProofNotEmpty
    );
    assert_eq!(
        consistency("additional/sizes-are-equal-one-but-roots-are-not.json"),
        ProofError::RootMismatch
    );
    // Consistency from the empty tree is refused even when everything else matches.
    assert_eq!(
        consistency("additional/sizes-are-equal-zero-and-proof-is-empty.json"),
        ProofError::EmptyOldTree
    );
}

fn wrong_length(what: &'static str, len: usize) -> ProofError {
    ProofError::WrongHashLength { what, len }
}

fn leaf_array(bytes: &[u8]) -> Hash {
    bytes.try_into().unwrap_or([0; 32])
}

fn root_of_reference_prefix(reference: &[Hash], size: u64) -> Vec<u8> {
    conclave_audit::root_hash_from_leaf_hashes(&reference[..size as usize]).to_vec()
}
