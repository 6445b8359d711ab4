//! C2SP transparency log checkpoints (<https://c2sp.org/tlog-checkpoint>).
//!
//! A checkpoint is the text of a signed note that commits a log to its
//! Merkle tree at one size:
//!
//! ```text
//! <origin>
//! <tree size, decimal>
//! <root hash, base64>
//! [extension lines]
//! ```
//!
//! Parse it only from a [`VerifiedNote`](crate::VerifiedNote)'s text: the
//! note's signature is what makes the numbers mean anything.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::CheckpointError;
use crate::merkle::Hash;
use crate::note::has_control_character;

/// A log's signed statement of its tree: origin, size and root hash.
///
/// Every `Checkpoint` value renders to text that parses back to itself, so
/// what a log signs is exactly what it meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    root_hash: Hash,
    extensions: Vec<String>,
}

impl Checkpoint {
    /// A checkpoint with no extension lines.
    ///
    /// The origin must be non-empty and free of newlines and other control
    /// characters. The specification recommends, but does not require, a
    /// schema-less URL such as `log.example.com/conclave`.
    pub fn new(origin: &str, size: u64, root_hash: Hash) -> Result<Self, CheckpointError> {
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        if origin.contains('\n') || has_control_character(origin) {
            return Err(CheckpointError::ControlCharacter);
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root_hash,
            extensions: Vec::new(),
        })
    }

    /// Parses checkpoint note text (the text of a verified note, including
    /// its final newline).
    ///
    /// Extension lines are kept, so that [`Checkpoint::to_note_text`] gives
    /// back the exact text that was signed, but their meaning is left to the
    /// caller: the specification calls them opaque.
    pub fn from_note_text(text: &str) -> Result<Self, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::MissingFinalNewline)?;
        if has_control_character(body) {
            return Err(CheckpointError::ControlCharacter);
        }
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root_hash)) =
            (lines.next(), lines.next(), lines.next())
        else {
            return Err(CheckpointError::TooFewLines);
        };
        let mut checkpoint = Self::new(origin, parse_size(size)?, parse_root_hash(root_hash)?)?;
        for (i, extension) in lines.enumerate() {
            if extension.is_empty() {
                return Err(CheckpointError::EmptyExtensionLine { line: i + 4 });
            }
            checkpoint.extensions.push(extension.to_owned());
        }
        Ok(checkpoint)
    }

    /// The note text to sign: origin, size, base64 root hash and any
    /// extension lines, each ending in a newline.
    pub fn to_note_text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root_hash)
        );
        for extension in &self.extensions {
            text.push_str(extension);
            text.push('\n');
        }
        text
    }

    /// The log's identity.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The number of leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The RFC 9162 root hash of the tree at [`Checkpoint::size`].
    pub fn root_hash(&self) -> &Hash {
        &self.root_hash
    }

    /// Extension lines after the root hash, if any (rarely used).
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }
}

/// ASCII decimal with no sign and no leading zeros (except `0` itself):
/// exactly one spelling per size, so two logs cannot sign "the same"
/// checkpoint as different text.
fn parse_size(line: &str) -> Result<u64, CheckpointError> {
    let canonical = !line.is_empty()
        && line.bytes().all(|b| b.is_ascii_digit())
        && (line == "0" || !line.starts_with('0'));
    canonical
        .then(|| line.parse().ok())
        .flatten()
        .ok_or_else(|| CheckpointError::InvalidTreeSize(line.to_owned()))
}

/// Standard base64 with padding, canonical, of exactly 32 bytes.
fn parse_root_hash(line: &str) -> Result<Hash, CheckpointError> {
    STANDARD
        .decode(line)
        .ok()
        .and_then(|bytes| Hash::try_from(bytes.as_slice()).ok())
        .ok_or_else(|| CheckpointError::InvalidRootHash(line.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in the tlog-checkpoint specification.
    const SPEC_EXAMPLE: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    #[test]
    fn parses_the_specification_example_and_renders_it_back() {
        let checkpoint = Checkpoint::from_note_text(SPEC_EXAMPLE).unwrap();
        assert_eq!(checkpoint.origin(), "example.com/behind-the-sofa");
        assert_eq!(checkpoint.size(), 20_852_163);
        assert_eq!(
            STANDARD.encode(checkpoint.root_hash()),
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
        );
        assert!(checkpoint.extensions().is_empty());
        assert_eq!(checkpoint.to_note_text(), SPEC_EXAMPLE);
    }

    #[test]
    fn extension_lines_are_kept_verbatim() {
        let text = format!("{SPEC_EXAMPLE}ext one\n— not a signature\n");
        let checkpoint = Checkpoint::from_note_text(&text).unwrap();
        assert_eq!(checkpoint.extensions(), ["ext one", "— not a signature"]);
        assert_eq!(checkpoint.to_note_text(), text);
    }

    #[test]
    fn empty_tree_and_largest_size_parse() {
        let empty = format!("log\n0\n{}\n", STANDARD.encode([0u8; 32]));
        assert_eq!(Checkpoint::from_note_text(&empty).unwrap().size(), 0);
        let max = format!("log\n{}\n{}\n", u64::MAX, STANDARD.encode([0u8; 32]));
        assert_eq!(Checkpoint::from_note_text(&max).unwrap().size(), u64::MAX);
    }

    #[test]
    fn malformed_checkpoints_are_refused() {
        let hash = STANDARD.encode([7u8; 32]);
        let cases = [
            (
                format!("log\n5\n{hash}"),
                CheckpointError::MissingFinalNewline,
            ),
            ("log\n5\n".to_owned(), CheckpointError::TooFewLines),
            (format!("\n5\n{hash}\n"), CheckpointError::EmptyOrigin),
            (
                format!("lo\rg\n5\n{hash}\n"),
                CheckpointError::ControlCharacter,
            ),
            (
                format!("log\n05\n{hash}\n"),
                CheckpointError::InvalidTreeSize("05".to_owned()),
            ),
            (
                format!("log\n+5\n{hash}\n"),
                CheckpointError::InvalidTreeSize("+5".to_owned()),
            ),
            (
                format!("log\n\n{hash}\n"),
                CheckpointError::InvalidTreeSize(String::new()),
            ),
            (
                format!("log\n 5\n{hash}\n"),
                CheckpointError::InvalidTreeSize(" 5".to_owned()),
            ),
            (
                format!("log\n18446744073709551616\n{hash}\n"),
                CheckpointError::InvalidTreeSize("18446744073709551616".to_owned()),
            ),
            (
                format!("log\n5\n{}\n", STANDARD.encode([7u8; 31])),
                CheckpointError::InvalidRootHash(STANDARD.encode([7u8; 31])),
            ),
            (
                format!("log\n5\n{}\n", hash.trim_end_matches('=')),
                CheckpointError::InvalidRootHash(hash.trim_end_matches('=').to_owned()),
            ),
            (
                format!("log\n5\n{hash}\n\n"),
                CheckpointError::EmptyExtensionLine { line: 4 },
            ),
            (
                format!("log\n5\n{hash}\next\n\n"),
                CheckpointError::EmptyExtensionLine { line: 5 },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Checkpoint::from_note_text(&text), Err(want), "{text:?}");
        }
    }

    #[test]
    fn base64_with_nonzero_trailing_bits_is_refused() {
        // 32 bytes take 43 base64 characters plus '='; the last character
        // carries 2 unused bits. Setting one gives another spelling of the
        // same bytes, which a canonical parser must refuse.
        let hash = STANDARD.encode([0u8; 32]);
        assert!(hash.ends_with("A="));
        let other_spelling = hash.replace("A=", "B=");
        let text = format!("log\n1\n{other_spelling}\n");
        assert_eq!(
            Checkpoint::from_note_text(&text),
            Err(CheckpointError::InvalidRootHash(other_spelling))
        );
    }

    #[test]
    fn constructor_refuses_origins_that_would_not_render() {
        assert_eq!(
            Checkpoint::new("", 1, [0; 32]),
            Err(CheckpointError::EmptyOrigin)
        );
        assert_eq!(
            Checkpoint::new("log\n2", 1, [0; 32]),
            Err(CheckpointError::ControlCharacter)
        );
        let checkpoint = Checkpoint::new("log.example/x", 9, [3; 32]).unwrap();
        assert_eq!(
            Checkpoint::from_note_text(&checkpoint.to_note_text()),
            Ok(checkpoint)
        );
    }
}
