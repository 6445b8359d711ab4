//! C2SP signed notes (<https://c2sp.org/signed-note>), Ed25519 keys only.
//!
//! A signed note is text ending in a newline, a blank line, then one or more
//! signature lines:
//!
//! ```text
//! <text, ending in a newline>
//!
//! — <key name> <base64(key id (4 bytes, big-endian) || signature)>
//! ```
//!
//! Verification is a type change: [`SignedNote::parse`] gives a note whose
//! text cannot be read, and only [`SignedNote::verify`] against trusted keys
//! gives a [`VerifiedNote`] with [`VerifiedNote::text`]. The specification
//! says the text MUST be ignored until then, and the types make that the
//! only way to get at it.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::NoteError;

/// Signature type byte for Ed25519 (signed-note §Signature types).
const ED25519: u8 = 0x01;

/// Every signature line starts with U+2014 EM DASH and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// The specification requires accepting at least 16 signatures; a bound keeps
/// a hostile note from costing unbounded verification work.
const MAX_SIGNATURES: usize = 100;

/// A trusted Ed25519 key that may sign notes, with its name and key id.
///
/// Its string form (`Display`, [`VerifierKey::parse`]) is the one used by
/// Go's `golang.org/x/mod/sumdb/note` and the C2SP ecosystem:
/// `<name>+<key id, 8 hex digits>+<base64(0x01 || 32-byte public key)>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl VerifierKey {
    /// The verifier key for `key` under `name`.
    ///
    /// Refuses an invalid name and small-order public keys (which would
    /// accept signatures that nobody made).
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, NoteError> {
        check_key_name(name)?;
        if key.is_weak() {
            return Err(NoteError::InvalidPublicKey);
        }
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id(name, &key),
            key,
        })
    }

    /// Parses `<name>+<hex key id>+<base64(0x01 || public key)>`, checking
    /// that the key id is the one the name and key give.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        // The name cannot contain '+', and the key id is hex, so the first two
        // '+' are the separators; base64 may contain '+' after them.
        let (name, rest) = text.split_once('+').ok_or(NoteError::MalformedVerifierKey(
            "expected <name>+<key id>+<key>",
        ))?;
        let (id_hex, key_b64) = rest.split_once('+').ok_or(NoteError::MalformedVerifierKey(
            "expected <name>+<key id>+<key>",
        ))?;
        check_key_name(name)?;
        if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NoteError::MalformedVerifierKey(
                "key id must be 8 hexadecimal digits",
            ));
        }
        let stated = u32::from_str_radix(id_hex, 16)
            .map_err(|_| NoteError::MalformedVerifierKey("key id must be 8 hexadecimal digits"))?;
        let key_bytes = STANDARD
            .decode(key_b64)
            .map_err(|_| NoteError::MalformedVerifierKey("key is not standard base64"))?;
        let (&key_type, public) = key_bytes
            .split_first()
            .ok_or(NoteError::MalformedVerifierKey("key is empty"))?;
        if key_type != ED25519 {
            return Err(NoteError::UnsupportedKeyType(key_type));
        }
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| NoteError::MalformedVerifierKey("an Ed25519 public key is 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&public).map_err(|_| NoteError::InvalidPublicKey)?;
        let verifier = Self::new(name, key)?;
        if verifier.key_id != stated {
            return Err(NoteError::KeyIdMismatch {
                stated,
                computed: verifier.key_id,
            });
        }
        Ok(verifier)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id: the first four bytes, big-endian, of
    /// `SHA-256(name || 0x0A || 0x01 || public key)`.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    fn verify(&self, text: &[u8], signature: &[u8]) -> bool {
        // `verify_strict` refuses malleable signatures and weak keys, as the
        // rest of Conclave does.
        Signature::from_slice(signature)
            .is_ok_and(|signature| self.key.verify_strict(text, &signature).is_ok())
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut encoded = Vec::with_capacity(33);
        encoded.push(ED25519);
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

impl FromStr for VerifierKey {
    type Err = NoteError;

    fn from_str(text: &str) -> Result<Self, NoteError> {
        Self::parse(text)
    }
}

/// Signs notes with one named Ed25519 key.
///
/// The signing key zeroizes on drop (ed25519-dalek's `zeroize` feature) and
/// `Debug` shows only the name and key id.
pub struct NoteSigner {
    verifier: VerifierKey,
    signing: SigningKey,
}

impl NoteSigner {
    /// A signer for `signing_key` under `name`.
    pub fn new(name: &str, signing_key: SigningKey) -> Result<Self, NoteError> {
        Ok(Self {
            verifier: VerifierKey::new(name, signing_key.verifying_key())?,
            signing: signing_key,
        })
    }

    /// Parses a signer key in the form of Go's `golang.org/x/mod/sumdb/note`:
    /// `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || 32-byte seed)>`.
    pub fn from_private_key(text: &str) -> Result<Self, NoteError> {
        const MALFORMED: NoteError =
            NoteError::MalformedVerifierKey("expected PRIVATE+KEY+<name>+<key id>+<base64 key>");
        let rest = text
            .trim_end()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(MALFORMED)?;
        let (name, rest) = rest.split_once('+').ok_or(MALFORMED)?;
        let (id_hex, key_b64) = rest.split_once('+').ok_or(MALFORMED)?;
        let decoded = zeroize::Zeroizing::new(STANDARD.decode(key_b64).map_err(|_| MALFORMED)?);
        let (&key_type, seed) = decoded.split_first().ok_or(MALFORMED)?;
        if key_type != ED25519 {
            return Err(NoteError::UnsupportedKeyType(key_type));
        }
        let seed: &[u8; 32] = seed.try_into().map_err(|_| MALFORMED)?;
        let signer = Self::new(name, SigningKey::from_bytes(seed))?;
        if format!("{:08x}", signer.verifier.key_id) != id_hex {
            return Err(NoteError::KeyIdMismatch {
                stated: u32::from_str_radix(id_hex, 16).unwrap_or(0),
                computed: signer.verifier.key_id,
            });
        }
        Ok(signer)
    }

    /// The signer key string [`NoteSigner::from_private_key`] reads. It is a
    /// secret: store it like one.
    pub fn private_key(&self) -> zeroize::Zeroizing<String> {
        let mut encoded = zeroize::Zeroizing::new(Vec::with_capacity(33));
        encoded.push(ED25519);
        encoded.extend_from_slice(self.signing.as_bytes());
        zeroize::Zeroizing::new(format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.verifier.name,
            self.verifier.key_id,
            STANDARD.encode(&*encoded)
        ))
    }

    /// The verifier key to hand to those who check this signer's notes; its
    /// `to_string()` is the verifier key string.
    pub fn verifier_key(&self) -> &VerifierKey {
        &self.verifier
    }

    /// The signature line for `text`: `— <name> <base64(key id || signature)>\n`.
    ///
    /// Append lines from several signers after [`NoteSigner::sign`]'s output to
    /// cosign one note.
    pub fn signature_line(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let signature = self.signing.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(4 + Signature::BYTE_SIZE);
        blob.extend_from_slice(&self.verifier.key_id.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{SIGNATURE_PREFIX}{} {}\n",
            self.verifier.name,
            STANDARD.encode(blob)
        ))
    }

    /// The signed note: `text`, a blank line and this signer's signature line.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        let line = self.signature_line(text)?;
        Ok(format!("{text}\n{line}"))
    }
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.verifier.name)
            .field("key_id", &format_args!("{:08x}", self.verifier.key_id))
            .field("signing_key", &"<redacted>")
            .finish()
    }
}

/// A signed note that has been parsed but not verified: its text is not
/// available until [`SignedNote::verify`] succeeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedNote {
    text: String,
    signatures: Vec<NoteSignature>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct NoteSignature {
    name: String,
    key_id: u32,
    signature: Vec<u8>,
}

impl SignedNote {
    /// Parses a signed note. Checks only its shape; nothing is trusted yet.
    pub fn parse(note: &str) -> Result<Self, NoteError> {
        if has_control_character(note) {
            return Err(NoteError::ControlCharacter);
        }
        // The text may itself contain blank lines: the signatures start after
        // the last one.
        let split = note.rfind("\n\n").ok_or(NoteError::MissingSignatures)?;
        let (text, block) = (&note[..=split], &note[split + 2..]);
        let block = block
            .strip_suffix('\n')
            .ok_or(NoteError::MissingSignatures)?;

        let mut signatures = Vec::new();
        for (i, line) in block.split('\n').enumerate() {
            if i == MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures {
                    max: MAX_SIGNATURES,
                });
            }
            signatures.push(parse_signature_line(line, i + 1)?);
        }
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The text, before any signature on it is checked: for routing (which
    /// keys to check it with), never to act on.
    pub(crate) fn unverified_text(&self) -> &str {
        &self.text
    }

    /// Each signature line's key name, key id and signature bytes.
    pub(crate) fn signature_lines(&self) -> impl Iterator<Item = (&str, u32, &[u8])> {
        self.signatures
            .iter()
            .map(|s| (s.name.as_str(), s.key_id, s.signature.as_slice()))
    }

    /// Verifies the note against the `trusted` keys.
    ///
    /// As the specification requires: signatures from keys not in `trusted`
    /// (by name *and* key id) are ignored; every signature from a trusted key
    /// must verify, or the whole note is refused; and at least one must be
    /// present.
    pub fn verify(&self, trusted: &[VerifierKey]) -> Result<VerifiedNote, NoteError> {
        let mut verified_by: Vec<VerifierKey> = Vec::new();
        for signature in &self.signatures {
            let matching = trusted
                .iter()
                .filter(|key| key.name == signature.name && key.key_id == signature.key_id);
            for key in matching {
                if !key.verify(self.text.as_bytes(), &signature.signature) {
                    return Err(NoteError::InvalidSignature {
                        name: signature.name.clone(),
                        key_id: signature.key_id,
                    });
                }
                if !verified_by.contains(key) {
                    verified_by.push(key.clone());
                }
            }
        }
        if verified_by.is_empty() {
            return Err(NoteError::NoTrustedSignature);
        }
        Ok(VerifiedNote {
            text: self.text.clone(),
            verified_by,
        })
    }
}

/// A note with at least one valid signature from a trusted key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedNote {
    text: String,
    verified_by: Vec<VerifierKey>,
}

impl VerifiedNote {
    /// The note text, including its final newline.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The trusted keys whose signatures verified, each once.
    pub fn verified_by(&self) -> &[VerifierKey] {
        &self.verified_by
    }
}

fn parse_signature_line(line: &str, number: usize) -> Result<NoteSignature, NoteError> {
    let malformed = NoteError::MalformedSignatureLine { line: number };
    let rest = line
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or_else(|| malformed.clone())?;
    let (name, encoded) = rest.split_once(' ').ok_or_else(|| malformed.clone())?;
    check_key_name(name)?;
    let blob = STANDARD.decode(encoded).map_err(|_| malformed.clone())?;
    // Four bytes of key id and at least one of signature.
    if blob.len() < 5 {
        return Err(malformed);
    }
    let (id, signature) = blob.split_at(4);
    let mut id_bytes = [0u8; 4];
    id_bytes.copy_from_slice(id);
    Ok(NoteSignature {
        name: name.to_owned(),
        key_id: u32::from_be_bytes(id_bytes),
        signature: signature.to_vec(),
    })
}

/// Key names are non-empty, with no Unicode spaces and no '+'.
pub(crate) fn check_key_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(NoteError::InvalidKeyName(name.to_owned()));
    }
    Ok(())
}

/// Text to be signed must be something [`SignedNote::parse`] gives back.
fn check_text(text: &str) -> Result<(), NoteError> {
    if has_control_character(text) {
        return Err(NoteError::ControlCharacter);
    }
    if !text.ends_with('\n') {
        return Err(NoteError::MissingFinalNewline);
    }
    Ok(())
}

/// Notes may not contain ASCII control characters other than newline.
pub(crate) fn has_control_character(text: &str) -> bool {
    text.chars().any(|c| c < ' ' && c != '\n')
}

fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    typed_key_id(name, ED25519, key)
}

/// `SHA-256(name || "\n" || key type || public key)[:4]`: the key id of a
/// note signer (type 0x01) or a cosigner (0x04).
pub(crate) fn typed_key_id(name: &str, key_type: u8, key: &VerifyingKey) -> u32 {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', key_type])
        .chain_update(key.as_bytes())
        .finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::new(name, SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    #[test]
    fn private_key_string_round_trips_and_is_checked() {
        let original = signer("log.example/a", 9);
        let text = original.private_key();
        assert!(text.starts_with("PRIVATE+KEY+log.example/a+"));
        let parsed = NoteSigner::from_private_key(&text).unwrap();
        assert_eq!(parsed.verifier_key(), original.verifier_key());
        assert_eq!(parsed.sign("hi\n").unwrap(), original.sign("hi\n").unwrap());
        let renamed = text.replacen("log.example/a", "log.example/b", 1);
        assert!(matches!(
            NoteSigner::from_private_key(&renamed),
            Err(NoteError::KeyIdMismatch { .. })
        ));
        assert!(NoteSigner::from_private_key("log.example/a+00000000+AA==").is_err());
        assert!(!format!("{parsed:?}").contains(&text[30..]));
    }

    #[test]
    fn verifier_key_string_round_trips() {
        let signer = signer("log.example/a", 1);
        let text = signer.verifier_key().to_string();
        let parsed: VerifierKey = text.parse().unwrap();
        assert_eq!(&parsed, signer.verifier_key());
        assert_eq!(parsed.to_string(), text);
        assert!(text.starts_with(&format!("log.example/a+{:08x}+", parsed.key_id())));
    }

    #[test]
    fn verifier_key_parse_names_each_problem() {
        let good = signer("log.example/a", 1).verifier_key().to_string();
        let (name, rest) = good.split_once('+').unwrap();
        let (id, key) = rest.split_once('+').unwrap();

        assert!(matches!(
            VerifierKey::parse(name),
            Err(NoteError::MalformedVerifierKey(_))
        ));
        assert!(matches!(
            VerifierKey::parse(&format!("{name}+{}+{key}", &id[..7])),
            Err(NoteError::MalformedVerifierKey(_))
        ));
        assert!(matches!(
            VerifierKey::parse(&format!("{name}+{id}+not base64")),
            Err(NoteError::MalformedVerifierKey(_))
        ));
        assert_eq!(
            VerifierKey::parse(&format!("+{id}+{key}")),
            Err(NoteError::InvalidKeyName(String::new()))
        );
        let other_id = format!("{:08x}", u32::from_str_radix(id, 16).unwrap() ^ 1);
        assert!(matches!(
            VerifierKey::parse(&format!("{name}+{other_id}+{key}")),
            Err(NoteError::KeyIdMismatch { .. })
        ));
        // Same name and key, another signature type.
        let mut raw = STANDARD.decode(key).unwrap();
        raw[0] = 0x02;
        assert_eq!(
            VerifierKey::parse(&format!("{name}+{id}+{}", STANDARD.encode(&raw))),
            Err(NoteError::UnsupportedKeyType(0x02))
        );
        raw[0] = ED25519;
        raw.pop();
        assert!(matches!(
            VerifierKey::parse(&format!("{name}+{id}+{}", STANDARD.encode(&raw))),
            Err(NoteError::MalformedVerifierKey(_))
        ));
    }

    #[test]
    fn small_order_keys_are_refused() {
        // The identity point: verifies forged signatures under non-strict checks.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let key = VerifyingKey::from_bytes(&identity).unwrap();
        assert_eq!(
            VerifierKey::new("weak", key),
            Err(NoteError::InvalidPublicKey)
        );
        let mut encoded = vec![ED25519];
        encoded.extend_from_slice(&identity);
        let text = format!(
            "weak+{:08x}+{}",
            key_id("weak", &key),
            STANDARD.encode(encoded)
        );
        assert_eq!(VerifierKey::parse(&text), Err(NoteError::InvalidPublicKey));
    }

    #[test]
    fn key_names_with_spaces_or_plus_are_refused() {
        for name in ["", "a b", "a+b", "a\u{a0}b", "tab\tname"] {
            assert!(
                NoteSigner::new(name, SigningKey::from_bytes(&[1; 32])).is_err(),
                "{name:?}"
            );
        }
    }

    #[test]
    fn sign_then_verify_round_trips_with_blank_lines_in_the_text() {
        let log = signer("log.example/a", 1);
        let text = "first paragraph\n\nsecond paragraph\n";
        let note = log.sign(text).unwrap();
        let verified = SignedNote::parse(&note)
            .unwrap()
            .verify(&[log.verifier_key().clone()])
            .unwrap();
        assert_eq!(verified.text(), text);
        assert_eq!(verified.verified_by(), &[log.verifier_key().clone()]);
    }

    #[test]
    fn unknown_signatures_are_ignored_and_known_ones_all_checked() {
        let log = signer("log.example/a", 1);
        let witness = signer("witness.example/w", 2);
        let text = "checkpoint body\n";
        let note = log.sign(text).unwrap() + &witness.signature_line(text).unwrap();
        let log_key = log.verifier_key().clone();
        let witness_key = witness.verifier_key().clone();

        // Only the log is trusted: the witness line is ignored.
        let verified = SignedNote::parse(&note)
            .unwrap()
            .verify(std::slice::from_ref(&log_key))
            .unwrap();
        assert_eq!(verified.verified_by(), std::slice::from_ref(&log_key));

        // Both trusted: both verify.
        let verified = SignedNote::parse(&note)
            .unwrap()
            .verify(&[log_key.clone(), witness_key.clone()])
            .unwrap();
        assert_eq!(verified.verified_by().len(), 2);

        // Neither trusted.
        let stranger = signer("other.example", 3).verifier_key().clone();
        assert_eq!(
            SignedNote::parse(&note).unwrap().verify(&[stranger]),
            Err(NoteError::NoTrustedSignature)
        );
        assert_eq!(
            SignedNote::parse(&note).unwrap().verify(&[]),
            Err(NoteError::NoTrustedSignature)
        );

        // A bad signature from a trusted key sinks the note, even next to a good one.
        let forged_witness = witness.signature_line("another body\n").unwrap();
        let note = log.sign(text).unwrap() + &forged_witness;
        assert_eq!(
            SignedNote::parse(&note)
                .unwrap()
                .verify(&[log_key, witness_key.clone()]),
            Err(NoteError::InvalidSignature {
                name: "witness.example/w".to_owned(),
                key_id: witness_key.key_id()
            })
        );
    }

    #[test]
    fn a_key_with_the_same_name_and_id_but_another_key_does_not_verify() {
        // Names and ids are identifiers, not authenticators: a trusted entry
        // matching both must still hold the key that signed.
        let log = signer("log.example/a", 1);
        let note = log.sign("body\n").unwrap();
        let impostor = VerifierKey {
            name: "log.example/a".to_owned(),
            key_id: log.verifier_key().key_id(),
            key: SigningKey::from_bytes(&[9; 32]).verifying_key(),
        };
        assert!(matches!(
            SignedNote::parse(&note).unwrap().verify(&[impostor]),
            Err(NoteError::InvalidSignature { .. })
        ));
    }

    #[test]
    fn malformed_notes_are_refused() {
        let log = signer("log.example/a", 1);
        let good = log.sign("body\n").unwrap();
        assert!(SignedNote::parse(&good).is_ok());

        let line = log.signature_line("body\n").unwrap();
        let blob = line.trim_end().rsplit(' ').next().unwrap().to_owned();
        let cases: Vec<(String, NoteError)> = vec![
            ("body\n".to_owned() + &line, NoteError::MissingSignatures),
            (good.trim_end().to_owned(), NoteError::MissingSignatures),
            (good.clone() + "\n", NoteError::MissingSignatures),
            (good.replace("body", "bo\rdy"), NoteError::ControlCharacter),
            (good.replace("body", "bo\0dy"), NoteError::ControlCharacter),
            (
                good.replace('\u{2014}', "-"),
                NoteError::MalformedSignatureLine { line: 1 },
            ),
            (
                "body\n\n\u{2014} log.example/a\n".to_owned(),
                NoteError::MalformedSignatureLine { line: 1 },
            ),
            (
                format!(
                    "body\n\n\u{2014} log.example/a {}\n",
                    &blob[..blob.len() - 1]
                ),
                NoteError::MalformedSignatureLine { line: 1 },
            ),
            (
                format!(
                    "body\n\n\u{2014} log.example/a {}\n",
                    STANDARD.encode([1, 2, 3, 4])
                ),
                NoteError::MalformedSignatureLine { line: 1 },
            ),
            (
                format!("{good}\u{2014} log.example/a  {blob}\n"),
                NoteError::MalformedSignatureLine { line: 2 },
            ),
            (
                format!("body\n\n\u{2014}  {blob}\n"),
                NoteError::InvalidKeyName(String::new()),
            ),
        ];
        for (note, want) in cases {
            assert_eq!(SignedNote::parse(&note), Err(want), "{note:?}");
        }
    }

    #[test]
    fn signature_count_is_bounded() {
        let log = signer("log.example/a", 1);
        let line = log.signature_line("body\n").unwrap();
        let at_limit = format!("body\n\n{}", line.repeat(MAX_SIGNATURES));
        assert!(SignedNote::parse(&at_limit).is_ok());
        let over = format!("body\n\n{}", line.repeat(MAX_SIGNATURES + 1));
        assert_eq!(
            SignedNote::parse(&over),
            Err(NoteError::TooManySignatures {
                max: MAX_SIGNATURES
            })
        );
    }

    #[test]
    fn signing_refuses_text_that_would_not_parse_back() {
        let log = signer("log.example/a", 1);
        assert_eq!(log.sign("no newline"), Err(NoteError::MissingFinalNewline));
        assert_eq!(log.sign("bell\u{7}\n"), Err(NoteError::ControlCharacter));
    }

    #[test]
    fn debug_never_shows_the_signing_key() {
        let log = signer("log.example/a", 7);
        let shown = format!("{log:?}");
        assert!(shown.contains("<redacted>"));
        assert!(shown.contains("log.example/a"));
        assert!(!shown.contains("7, 7, 7"));
        assert!(!shown.contains(&STANDARD.encode([7u8; 32])));
    }
}
