//! The worked example of the C2SP signed-note specification (BSD-1-Clause; see
//! `data/signed-note/LICENSE-BSD-1-CLAUSE`): a verifier key and a note that
//! must verify under it, and attacks on that note that must not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_audit::{NoteError, NoteSigner, SignedNote, VerifierKey};
use ed25519_dalek::SigningKey;

struct Example {
    verifier_key: String,
    note: String,
}

/// Reads `VERIFIER_KEY=<key>` and the note between `NOTE_BEGIN` and
/// `NOTE_END` lines; `#` lines are comments.
fn example() -> Example {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/signed-note/c2sp-example.txt");
    let text = std::fs::read_to_string(path).unwrap();
    let verifier_key = text
        .lines()
        .find_map(|line| line.strip_prefix("VERIFIER_KEY="))
        .expect("example has a verifier key")
        .to_owned();
    let (_, rest) = text.split_once("NOTE_BEGIN\n").expect("NOTE_BEGIN");
    let (note, _) = rest.rsplit_once("NOTE_END\n").expect("NOTE_END");
    Example {
        verifier_key,
        note: note.to_owned(),
    }
}

fn trusted() -> Vec<VerifierKey> {
    vec![VerifierKey::parse(&example().verifier_key).unwrap()]
}

/// The note with its signature line's base64 blob replaced.
fn with_blob(note: &str, blob: &[u8]) -> String {
    let (head, line) = note.trim_end().rsplit_once('\n').unwrap();
    let (prefix, _) = line.rsplit_once(' ').unwrap();
    format!("{head}\n{prefix} {}\n", STANDARD.encode(blob))
}

fn blob(note: &str) -> Vec<u8> {
    let encoded = note.trim_end().rsplit(' ').next().unwrap();
    STANDARD.decode(encoded).unwrap()
}

#[test]
fn the_specification_example_verifies() {
    let example = example();
    let key = VerifierKey::parse(&example.verifier_key).unwrap();
    assert_eq!(key.name(), "example.com/foo");
    assert_eq!(key.key_id(), 0x530d_903a);
    // The string form is canonical: it renders back unchanged.
    assert_eq!(key.to_string(), example.verifier_key);

    let note = SignedNote::parse(&example.note)
        .unwrap()
        .verify(std::slice::from_ref(&key))
        .unwrap();
    assert_eq!(note.text(), "This is an example message.\n");
    assert_eq!(note.verified_by(), &[key]);
}

#[test]
fn any_change_to_the_text_is_refused() {
    let example = example();
    let text_len = "This is an example message.\n".len();
    let forged = [
        example
            .note
            .replacen("example message", "exemplary note", 1),
        example.note.replacen("This", "this", 1),
        example.note.replacen(".\n", "!\n", 1),
        // Extra text before the original, or a line added at the end of the text.
        format!("Hello.\n{}", example.note),
        example.note.replacen(".\n\n", ".\nP.S.\n\n", 1),
    ];
    for note in forged {
        assert_eq!(
            SignedNote::parse(&note).unwrap().verify(&trusted()),
            Err(NoteError::InvalidSignature {
                name: "example.com/foo".to_owned(),
                key_id: 0x530d_903a,
            }),
            "{note:?}"
        );
    }
    // Every single-character change in the text.
    for i in 0..text_len - 1 {
        let mut bytes = example.note.clone().into_bytes();
        bytes[i] = if bytes[i] == b'x' { b'y' } else { b'x' };
        let note = String::from_utf8(bytes).unwrap();
        assert!(
            matches!(
                SignedNote::parse(&note).unwrap().verify(&trusted()),
                Err(NoteError::InvalidSignature { .. })
            ),
            "byte {i}"
        );
    }
}

#[test]
fn every_bit_flip_in_the_signature_is_refused() {
    let example = example();
    let original = blob(&example.note);
    assert_eq!(original.len(), 4 + 64);
    for bit in 0..original.len() * 8 {
        let mut flipped = original.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let note = with_blob(&example.note, &flipped);
        let verdict = SignedNote::parse(&note).unwrap().verify(&trusted());
        if bit < 32 {
            // Another key id names another key, which nobody trusts.
            assert_eq!(verdict, Err(NoteError::NoTrustedSignature), "bit {bit}");
        } else {
            assert!(
                matches!(verdict, Err(NoteError::InvalidSignature { .. })),
                "bit {bit}: {verdict:?}"
            );
        }
    }
    // A truncated or extended signature is no signature.
    for blob in [
        &original[..original.len() - 1],
        &[original.as_slice(), &[0]].concat(),
    ] {
        let note = with_blob(&example.note, blob);
        assert!(matches!(
            SignedNote::parse(&note).unwrap().verify(&trusted()),
            Err(NoteError::InvalidSignature { .. })
        ));
    }
}

#[test]
fn the_signature_counts_only_for_its_own_name_and_key() {
    let example = example();
    // Same signature, another key name: an unknown key, so no trusted signature.
    let renamed = example
        .note
        .replacen("example.com/foo ", "example.com/bar ", 1);
    assert_eq!(
        SignedNote::parse(&renamed).unwrap().verify(&trusted()),
        Err(NoteError::NoTrustedSignature)
    );
    // Trusting someone else instead.
    let stranger = NoteSigner::new("example.com/foo", SigningKey::from_bytes(&[1; 32])).unwrap();
    assert_eq!(
        SignedNote::parse(&example.note)
            .unwrap()
            .verify(&[stranger.verifier_key().clone()]),
        Err(NoteError::NoTrustedSignature)
    );
}

#[test]
fn unknown_signatures_beside_it_are_ignored() {
    let example = example();
    let stranger = NoteSigner::new("example.com/other", SigningKey::from_bytes(&[2; 32])).unwrap();
    let text = "This is an example message.\n";
    let cosigned = example.note.clone() + &stranger.signature_line(text).unwrap();
    let note = SignedNote::parse(&cosigned)
        .unwrap()
        .verify(&trusted())
        .unwrap();
    assert_eq!(note.text(), text);
    assert_eq!(note.verified_by(), trusted().as_slice());
}

#[test]
fn a_tampered_verifier_key_is_refused() {
    let example = example();
    assert_eq!(
        VerifierKey::parse(&example.verifier_key.replacen("530d903a", "530d903b", 1)),
        Err(NoteError::KeyIdMismatch {
            stated: 0x530d_903b,
            computed: 0x530d_903a
        })
    );
    // The same key under another name has another id.
    assert!(matches!(
        VerifierKey::parse(
            &example
                .verifier_key
                .replacen("example.com/foo", "example.com/fo0", 1)
        ),
        Err(NoteError::KeyIdMismatch { .. })
    ));
}
