//! Attachment encryption: a fresh key per file, the file cut into chunks,
//! each sealed with ChaCha20-Poly1305 under the STREAM construction
//! (Hoang, Reyhanitabar, Rogaway and Vizár, "Online Authenticated-Encryption
//! and its Nonce-Reuse Misuse-Resistance", 2015; the `aead` crate's
//! big-endian 32-bit counter variant).
//!
//! STREAM numbers every chunk and marks the last one inside its nonce, so a
//! relay that reorders, drops, repeats or truncates chunks makes decryption
//! fail; nothing but the holder of the key can make a chunk that opens.
//! Sealing and opening keep one chunk in memory at a time, and both compute
//! the SHA-256 of the plaintext as it passes, which the sender announces
//! inside the MLS message and the receiver checks before it hands the file
//! over.
//!
//! ```
//! use conclave_crypto::attachment::{ChunkOpener, ChunkSealer, FileKey, CHUNK_BYTES};
//!
//! let file = vec![7u8; CHUNK_BYTES + 10];
//! let key = FileKey::generate();
//! let mut sealer = ChunkSealer::new(&key, file.len() as u64);
//! let sealed: Vec<Vec<u8>> = file
//!     .chunks(CHUNK_BYTES)
//!     .map(|chunk| sealer.seal(chunk).unwrap())
//!     .collect();
//! let digest = sealer.finish().unwrap();
//!
//! let mut opener = ChunkOpener::new(&key, file.len() as u64);
//! let mut opened = Vec::new();
//! for chunk in &sealed {
//!     opened.extend(opener.open(chunk).unwrap());
//! }
//! assert_eq!(opened, file);
//! assert_eq!(opener.finish().unwrap(), digest);
//! ```

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Plaintext bytes per chunk (the last chunk may be shorter, or empty for an
/// empty file).
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// What sealing adds to each chunk: the Poly1305 tag.
pub const TAG_BYTES: usize = 16;

/// The largest sealed chunk, which is also the largest chunk upload.
pub const SEALED_CHUNK_BYTES: usize = CHUNK_BYTES + TAG_BYTES;

/// Bytes of the STREAM nonce prefix (a 12-byte nonce less the 5-byte counter
/// and last-chunk flag).
const NONCE_PREFIX_BYTES: usize = 7;

/// How many chunks a file of `plaintext_len` bytes is sealed into (at least
/// one, so even an empty file carries a tag).
pub fn chunk_count(plaintext_len: u64) -> u64 {
    plaintext_len.div_ceil(CHUNK_BYTES as u64).max(1)
}

/// The size of the sealed form of a file of `plaintext_len` bytes.
pub fn sealed_len(plaintext_len: u64) -> u64 {
    plaintext_len + chunk_count(plaintext_len) * TAG_BYTES as u64
}

/// For a sealed size, how many chunks it holds and the size of each chunk
/// `index`; `None` if no plaintext seals to that size.
pub fn sealed_chunk_len(sealed_len: u64, index: u64) -> Option<usize> {
    let chunks = sealed_len.div_ceil(SEALED_CHUNK_BYTES as u64).max(1);
    let last = sealed_len - (chunks - 1) * SEALED_CHUNK_BYTES as u64;
    if (last as usize) < TAG_BYTES || index >= chunks {
        return None;
    }
    Some(if index + 1 == chunks {
        last as usize
    } else {
        SEALED_CHUNK_BYTES
    })
}

/// Failures of sealing and opening.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttachmentError {
    /// A chunk did not authenticate: altered, reordered, truncated, or the
    /// wrong key.
    #[error("chunk {0} does not decrypt: the file was altered or the key is wrong")]
    Corrupt(u64),
    /// More or fewer bytes than announced.
    #[error("the file has a different size than announced ({0})")]
    WrongLength(&'static str),
    /// A key or nonce in a message was malformed.
    #[error("malformed attachment key: {0}")]
    MalformedKey(&'static str),
}

/// A file's key and STREAM nonce prefix: fresh for every file, sent only
/// inside the MLS message. Wiped on drop; `Debug` shows nothing.
#[derive(Clone)]
pub struct FileKey {
    key: Zeroizing<[u8; 32]>,
    nonce: [u8; NONCE_PREFIX_BYTES],
}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileKey(<redacted>)")
    }
}

impl FileKey {
    /// A fresh random key and nonce prefix.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        let mut nonce = [0u8; NONCE_PREFIX_BYTES];
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        Self { key, nonce }
    }

    /// The key and nonce prefix as base64 text (`key`, `nonce`), for the
    /// MLS message.
    pub fn to_base64(&self) -> (Zeroizing<String>, String) {
        (
            Zeroizing::new(STANDARD.encode(self.key.as_ref())),
            STANDARD.encode(self.nonce),
        )
    }

    /// Reads a key and nonce prefix written by [`FileKey::to_base64`].
    pub fn from_base64(key: &str, nonce: &str) -> Result<Self, AttachmentError> {
        let key_bytes = Zeroizing::new(
            STANDARD
                .decode(key)
                .map_err(|_| AttachmentError::MalformedKey("key is not base64"))?,
        );
        let nonce_bytes = STANDARD
            .decode(nonce)
            .map_err(|_| AttachmentError::MalformedKey("nonce is not base64"))?;
        let mut out = Self {
            key: Zeroizing::new([0u8; 32]),
            nonce: [0u8; NONCE_PREFIX_BYTES],
        };
        if key_bytes.len() != 32 {
            return Err(AttachmentError::MalformedKey("key is not 32 bytes"));
        }
        if nonce_bytes.len() != NONCE_PREFIX_BYTES {
            return Err(AttachmentError::MalformedKey("nonce is not 7 bytes"));
        }
        out.key.copy_from_slice(&key_bytes);
        out.nonce.copy_from_slice(&nonce_bytes);
        Ok(out)
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(self.key.as_ref().into())
    }
}

/// Seals a file chunk by chunk. Give it exactly the announced number of
/// bytes, in chunks of [`CHUNK_BYTES`] (the last one may be shorter).
pub struct ChunkSealer {
    stream: Option<EncryptorBE32<ChaCha20Poly1305>>,
    remaining: u64,
    chunks_left: u64,
    hash: Sha256,
}

impl std::fmt::Debug for ChunkSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkSealer")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl ChunkSealer {
    /// A sealer for a file of `plaintext_len` bytes.
    pub fn new(key: &FileKey, plaintext_len: u64) -> Self {
        Self {
            stream: Some(EncryptorBE32::from_aead(
                key.cipher(),
                key.nonce.as_ref().into(),
            )),
            remaining: plaintext_len,
            chunks_left: chunk_count(plaintext_len),
            hash: Sha256::new(),
        }
    }

    /// Seals the next chunk.
    pub fn seal(&mut self, chunk: &[u8]) -> Result<Vec<u8>, AttachmentError> {
        let expected = self.remaining.min(CHUNK_BYTES as u64) as usize;
        if chunk.len() != expected || self.chunks_left == 0 {
            return Err(AttachmentError::WrongLength("a chunk of the wrong size"));
        }
        self.hash.update(chunk);
        self.remaining -= expected as u64;
        self.chunks_left -= 1;
        let sealed = if self.chunks_left == 0 {
            self.stream
                .take()
                .ok_or(AttachmentError::WrongLength("more chunks than announced"))?
                .encrypt_last(chunk)
        } else {
            self.stream
                .as_mut()
                .ok_or(AttachmentError::WrongLength("more chunks than announced"))?
                .encrypt_next(chunk)
        };
        // Encryption fails only past 2^32 chunks, which the size limit rules out.
        sealed.map_err(|_| AttachmentError::WrongLength("more than 2^32 chunks"))
    }

    /// The SHA-256 of everything sealed, once every chunk was.
    pub fn finish(self) -> Result<[u8; 32], AttachmentError> {
        if self.chunks_left != 0 {
            return Err(AttachmentError::WrongLength("fewer chunks than announced"));
        }
        Ok(self.hash.finalize().into())
    }
}

/// Opens a sealed file chunk by chunk, in order.
pub struct ChunkOpener {
    stream: Option<DecryptorBE32<ChaCha20Poly1305>>,
    remaining: u64,
    chunks_left: u64,
    index: u64,
    hash: Sha256,
}

impl std::fmt::Debug for ChunkOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkOpener")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl ChunkOpener {
    /// An opener for a file announced as `plaintext_len` bytes.
    pub fn new(key: &FileKey, plaintext_len: u64) -> Self {
        Self {
            stream: Some(DecryptorBE32::from_aead(
                key.cipher(),
                key.nonce.as_ref().into(),
            )),
            remaining: plaintext_len,
            chunks_left: chunk_count(plaintext_len),
            index: 0,
            hash: Sha256::new(),
        }
    }

    /// How many sealed chunks remain to open.
    pub fn chunks_left(&self) -> u64 {
        self.chunks_left
    }

    /// Opens the next sealed chunk.
    pub fn open(&mut self, sealed: &[u8]) -> Result<Vec<u8>, AttachmentError> {
        let index = self.index;
        if self.chunks_left == 0 {
            return Err(AttachmentError::WrongLength("more chunks than announced"));
        }
        let expected = self.remaining.min(CHUNK_BYTES as u64) as usize;
        if sealed.len() != expected + TAG_BYTES {
            return Err(AttachmentError::Corrupt(index));
        }
        self.chunks_left -= 1;
        self.index += 1;
        let opened = if self.chunks_left == 0 {
            self.stream
                .take()
                .ok_or(AttachmentError::Corrupt(index))?
                .decrypt_last(sealed)
        } else {
            self.stream
                .as_mut()
                .ok_or(AttachmentError::Corrupt(index))?
                .decrypt_next(sealed)
        }
        .map_err(|_| AttachmentError::Corrupt(index))?;
        self.remaining -= opened.len() as u64;
        self.hash.update(&opened);
        Ok(opened)
    }

    /// The SHA-256 of everything opened, once every chunk was.
    pub fn finish(self) -> Result<[u8; 32], AttachmentError> {
        if self.chunks_left != 0 {
            return Err(AttachmentError::WrongLength("the file ends early"));
        }
        Ok(self.hash.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal_all(key: &FileKey, file: &[u8]) -> (Vec<Vec<u8>>, [u8; 32]) {
        let mut sealer = ChunkSealer::new(key, file.len() as u64);
        let mut sealed: Vec<Vec<u8>> = file
            .chunks(CHUNK_BYTES)
            .map(|c| sealer.seal(c).unwrap())
            .collect();
        if file.is_empty() {
            sealed.push(sealer.seal(&[]).unwrap());
        }
        (sealed, sealer.finish().unwrap())
    }

    fn open_all(key: &FileKey, len: u64, sealed: &[Vec<u8>]) -> Result<Vec<u8>, AttachmentError> {
        let mut opener = ChunkOpener::new(key, len);
        let mut out = Vec::new();
        for chunk in sealed {
            out.extend(opener.open(chunk)?);
        }
        opener.finish()?;
        Ok(out)
    }

    #[test]
    fn sizes_add_up_for_every_boundary() {
        for len in [
            0u64,
            1,
            255,
            CHUNK_BYTES as u64 - 1,
            CHUNK_BYTES as u64,
            CHUNK_BYTES as u64 + 1,
            3 * CHUNK_BYTES as u64,
        ] {
            let file = vec![0x5a; len as usize];
            let (sealed, digest) = seal_all(&FileKey::generate(), &file);
            assert_eq!(sealed.len() as u64, chunk_count(len), "len {len}");
            let total: u64 = sealed.iter().map(|c| c.len() as u64).sum();
            assert_eq!(total, sealed_len(len));
            for (i, chunk) in sealed.iter().enumerate() {
                assert_eq!(sealed_chunk_len(total, i as u64), Some(chunk.len()));
            }
            assert_eq!(sealed_chunk_len(total, sealed.len() as u64), None);
            assert_eq!(digest.as_slice(), Sha256::digest(&file).as_slice());
        }
        // Fewer bytes than a tag after full chunks: no plaintext seals to it.
        assert_eq!(sealed_chunk_len(SEALED_CHUNK_BYTES as u64 + 3, 0), None);
        assert_eq!(sealed_chunk_len(5, 0), None);
    }

    #[test]
    fn round_trip_and_every_tampering_fails() {
        let key = FileKey::generate();
        let file: Vec<u8> = (0..(2 * CHUNK_BYTES + 100)).map(|i| i as u8).collect();
        let len = file.len() as u64;
        let (sealed, _) = seal_all(&key, &file);
        assert_eq!(open_all(&key, len, &sealed).unwrap(), file);

        let mut flipped = sealed.clone();
        flipped[1][10] ^= 1;
        assert_eq!(
            open_all(&key, len, &flipped),
            Err(AttachmentError::Corrupt(1))
        );

        let mut swapped = sealed.clone();
        swapped.swap(0, 1);
        assert_eq!(
            open_all(&key, len, &swapped),
            Err(AttachmentError::Corrupt(0))
        );

        // Dropping the last chunk and claiming a shorter file: the new last
        // chunk was not sealed as the last one.
        let truncated = &sealed[..2];
        assert_eq!(
            open_all(&key, 2 * CHUNK_BYTES as u64, truncated),
            Err(AttachmentError::Corrupt(1))
        );
        assert_eq!(
            open_all(&key, len, truncated),
            Err(AttachmentError::WrongLength("the file ends early"))
        );
        assert_eq!(
            open_all(&FileKey::generate(), len, &sealed),
            Err(AttachmentError::Corrupt(0))
        );
    }

    #[test]
    fn keys_travel_as_base64_and_never_print() {
        let key = FileKey::generate();
        let (k, n) = key.to_base64();
        let again = FileKey::from_base64(&k, &n).unwrap();
        let (sealed, _) = seal_all(&key, b"secret plans");
        assert_eq!(open_all(&again, 12, &sealed).unwrap(), b"secret plans");
        assert_eq!(format!("{key:?}"), "FileKey(<redacted>)");
        assert!(FileKey::from_base64("AAAA", &n).is_err());
        assert!(FileKey::from_base64(&k, "not base64!").is_err());
    }

    #[test]
    fn sealer_refuses_wrong_chunk_sizes() {
        let key = FileKey::generate();
        let mut sealer = ChunkSealer::new(&key, 10);
        assert!(sealer.seal(&[0; 9]).is_err());
        let mut sealer = ChunkSealer::new(&key, 10);
        sealer.seal(&[0; 10]).unwrap();
        assert!(sealer.seal(&[]).is_err());
        assert!(ChunkSealer::new(&key, 10).finish().is_err());
    }
}
