//! Sharing files: seal on the device, upload the chunks, announce the key
//! inside MLS; download, open, check the hash, and only then hand the file
//! over.
//!
//! ```text
//! sender                               relay                      receiver
//! FileKey::generate()
//! read 1 MiB → seal → PUT chunk n ─▶ blob_chunks (ciphertext)
//! POST complete
//! MLS message {blob, key, sha256} ───▶ messages (ciphertext) ───▶ decrypt
//!                                      GET chunk n ─────────────▶ open → temp file
//!                                                                 SHA-256 matches? → rename
//! ```
//!
//! One chunk is in memory at a time on each side, so the size of a file
//! never decides how much memory the client needs.

use std::path::{Path, PathBuf};

use conclave_crypto::attachment::{
    CHUNK_BYTES, ChunkOpener, ChunkSealer, FileKey, chunk_count, sealed_len,
};
use conclave_proto::{
    BlobCompleteAnswer, BlobDeletedAnswer, CreateBlobAnswer, CreateBlobBody, routes,
};
use rand::RngCore;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::channel::Channel;
use crate::client::Client;
use crate::content::{Content, FileRef, MAX_BODY, SecretText, is_file_name};
use crate::error::{ClientError, Result};
use crate::history_entry::FileInfo;
use crate::store::messages;

/// Called as a transfer goes: bytes done so far, bytes in all.
pub trait Progress: FnMut(u64, u64) + Send {}
impl<F: FnMut(u64, u64) + Send> Progress for F {}

/// A name the receivers will accept, from whatever the local file is called.
fn shareable_name(path: &Path) -> Result<String> {
    let raw = path
        .file_name()
        .ok_or_else(|| ClientError::Invalid(format!("{} is not a file", path.display())))?
        .to_string_lossy();
    let mut name: String = raw
        .chars()
        .map(|c| if c.is_control() || c == '\\' { '_' } else { c })
        .collect();
    while name.len() > crate::content::MAX_FILE_NAME {
        name.pop();
    }
    if !is_file_name(&name) {
        return Err(ClientError::Invalid(format!(
            "{} cannot be shared under its name",
            path.display()
        )));
    }
    Ok(name)
}

impl Client {
    /// Creates a blob in `group_id` (for `recipient` alone, if given), seals
    /// `size` bytes from `reader` into it, and returns the reference to send
    /// inside MLS. If anything fails once the blob exists, it is taken back.
    #[allow(clippy::too_many_arguments)]
    async fn seal_and_upload(
        &self,
        group_id: &str,
        reader: &mut (impl tokio::io::AsyncRead + Unpin),
        size: u64,
        name: String,
        caption: &str,
        recipient: Option<&str>,
        progress: &mut impl Progress,
    ) -> Result<FileRef> {
        let request = CreateBlobBody {
            group_id: group_id.to_owned(),
            recipient: recipient.map(str::to_owned),
            size: sealed_len(size),
        };
        let created: CreateBlobAnswer = self.exchange("POST", routes::BLOBS, &request).await?;
        let blob = created.blob_id;
        if !crate::content::is_message_id(&blob) {
            return Err(ClientError::Invalid("relay sent no valid blob id".into()));
        }
        let (digest, file_key) = match self.upload_chunks(&blob, reader, size, progress).await {
            Ok(done) => done,
            Err(e) => {
                self.forget_blob(&blob).await;
                return Err(e);
            }
        };
        let (key, nonce) = file_key.to_base64();
        Ok(FileRef {
            blob,
            name,
            size,
            key: SecretText::new(key.to_string()),
            nonce,
            sha256: hex::encode(digest),
            caption: caption.to_owned(),
        })
    }

    async fn upload_chunks(
        &self,
        blob: &str,
        file: &mut (impl tokio::io::AsyncRead + Unpin),
        size: u64,
        progress: &mut impl Progress,
    ) -> Result<([u8; 32], FileKey)> {
        let key = FileKey::generate();
        let mut sealer = ChunkSealer::new(&key, size);
        let mut buffer = vec![0u8; CHUNK_BYTES];
        let mut done = 0u64;
        progress(0, size);
        for index in 0..chunk_count(size) {
            let want = (size - done).min(CHUNK_BYTES as u64) as usize;
            file.read_exact(&mut buffer[..want]).await.map_err(|_| {
                ClientError::Invalid("the file got shorter while it was being sent".into())
            })?;
            let sealed = sealer
                .seal(&buffer[..want])
                .map_err(|e| ClientError::Invalid(e.to_string()))?;
            self.signed_bytes("PUT", &routes::blob_chunk(blob, index), sealed)
                .await?;
            done += want as u64;
            progress(done, size);
        }
        if file
            .read(&mut buffer[..1])
            .await
            .map_err(ClientError::store)?
            != 0
        {
            return Err(ClientError::Invalid(
                "the file grew while it was being sent".into(),
            ));
        }
        let _: BlobCompleteAnswer = self.bodiless("POST", &routes::blob_complete(blob)).await?;
        let digest = sealer
            .finish()
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        Ok((digest, key))
    }

    pub(crate) async fn fetch_into(
        &self,
        reference: &FileRef,
        partial: &Path,
        progress: &mut impl Progress,
    ) -> Result<()> {
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut out = options.open(partial).await.map_err(|e| {
            ClientError::Invalid(format!("cannot write {}: {e}", partial.display()))
        })?;
        self.fetch_chunks(reference, &mut out, progress).await?;
        out.flush().await.map_err(ClientError::store)?;
        out.sync_all().await.map_err(ClientError::store)?;
        Ok(())
    }

    /// Fetches, opens and writes every chunk of a sealed file in order, then
    /// checks the plaintext against the hash its sender announced. The
    /// caller must discard what was written if this fails.
    async fn fetch_chunks(
        &self,
        reference: &FileRef,
        out: &mut (impl tokio::io::AsyncWrite + Unpin),
        progress: &mut impl Progress,
    ) -> Result<()> {
        let key = FileKey::from_base64(reference.key.expose(), &reference.nonce)
            .map_err(|e| ClientError::FileCheck(e.to_string()))?;
        let mut opener = ChunkOpener::new(&key, reference.size);
        let mut done = 0u64;
        progress(0, reference.size);
        for index in 0..chunk_count(reference.size) {
            let sealed = self
                .signed_bytes(
                    "GET",
                    &routes::blob_chunk(&reference.blob, index),
                    Vec::new(),
                )
                .await?;
            let plain = opener
                .open(&sealed)
                .map_err(|e| ClientError::FileCheck(e.to_string()))?;
            out.write_all(&plain).await.map_err(ClientError::store)?;
            done += plain.len() as u64;
            progress(done, reference.size);
        }
        let digest = opener
            .finish()
            .map_err(|e| ClientError::FileCheck(e.to_string()))?;
        let announced = hex::decode(&reference.sha256)
            .map_err(|_| ClientError::FileCheck("the announced hash is not hex".into()))?;
        if !bool::from(digest.as_slice().ct_eq(&announced)) {
            return Err(ClientError::FileCheck(
                "the file does not match the SHA-256 its sender announced".into(),
            ));
        }
        Ok(())
    }

    /// Seals `bytes` and uploads them for `recipient` alone (a history
    /// bundle): returns the reference to send inside MLS.
    pub(crate) async fn upload_for(
        &self,
        group_id: &str,
        name: &str,
        mut bytes: &[u8],
        recipient: &str,
    ) -> Result<FileRef> {
        let size = bytes.len() as u64;
        self.seal_and_upload(
            group_id,
            &mut bytes,
            size,
            name.to_owned(),
            "",
            Some(recipient),
            &mut |_, _| {},
        )
        .await
    }

    /// Downloads and checks a small sealed file into memory (at most `limit` bytes).
    pub(crate) async fn download_to_memory(
        &self,
        reference: &FileRef,
        limit: u64,
    ) -> Result<Vec<u8>> {
        if reference.size > limit {
            return Err(ClientError::FileCheck(format!(
                "{} is larger than the {limit} bytes accepted here",
                reference.name
            )));
        }
        let mut out = Vec::with_capacity(reference.size as usize);
        self.fetch_chunks(reference, &mut out, &mut |_, _| {})
            .await?;
        Ok(out)
    }

    /// Takes an uploaded blob back from the relay (its message was deleted,
    /// or never sent).
    pub(crate) async fn forget_blob(&self, blob: &str) {
        if let Err(e) = self
            .bodiless::<BlobDeletedAnswer>("DELETE", &routes::blob(blob))
            .await
        {
            tracing::warn!("could not take a file back from the relay: {e}");
        }
    }
}

impl Channel {
    /// Seals the file at `path` with a fresh key, uploads it chunk by chunk
    /// and shares it in the channel with an optional caption. Returns the
    /// message's position in the channel. `progress` hears of every chunk.
    pub async fn upload(
        &self,
        path: &Path,
        caption: &str,
        mut progress: impl Progress,
    ) -> Result<u64> {
        if caption.len() > MAX_BODY {
            return Err(ClientError::Invalid(format!(
                "a caption is at most {MAX_BODY} bytes"
            )));
        }
        let group_id = self.active_group().await?;
        let name = shareable_name(path)?;
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| ClientError::Invalid(format!("cannot read {}: {e}", path.display())))?;
        let metadata = file.metadata().await.map_err(ClientError::store)?;
        if !metadata.is_file() {
            return Err(ClientError::Invalid(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let size = metadata.len();
        let reference = self
            .client
            .seal_and_upload(
                group_id,
                &mut file,
                size,
                name,
                caption,
                None,
                &mut progress,
            )
            .await?;
        let blob = reference.blob.clone();
        let sent = self.send_content(Content::File(reference)).await;
        if sent.is_err() {
            // Nobody can open it without the message; free the quota.
            self.client.forget_blob(&blob).await;
        }
        sent
    }

    /// Downloads the file shared by message `message` of the channel to
    /// `destination` (a file path, or a directory to keep the sender's file
    /// name in). The file appears only once it decrypted and matched the
    /// hash its sender announced; an existing file is never overwritten.
    pub async fn download(
        &self,
        message: &str,
        destination: &Path,
        mut progress: impl Progress,
    ) -> Result<(PathBuf, FileInfo)> {
        let group_id = self.active_group().await?;
        let reference = {
            let mut db = self.client.db().await;
            match messages::attachment_of(&mut db, group_id, message).await? {
                Some(reference) => reference,
                None => {
                    // Named as the user names it: by its number.
                    let seq = messages::find(&mut db, group_id, message)
                        .await?
                        .map(|(seq, _)| seq);
                    let named =
                        seq.map_or_else(|| "that message".to_owned(), |seq| format!("#{seq}"));
                    return Err(ClientError::Invalid(format!(
                        "{named} in {} has no file",
                        self.name()
                    )));
                }
            }
        };
        let target = if destination.is_dir() {
            destination.join(&reference.name)
        } else {
            destination.to_owned()
        };
        if target.exists() {
            return Err(ClientError::Invalid(format!(
                "{} already exists; choose another name",
                target.display()
            )));
        }
        let directory = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut tag = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut tag);
        let partial = directory.join(format!(".conclave-download-{}", hex::encode(tag)));
        let outcome = self
            .client
            .fetch_into(&reference, &partial, &mut progress)
            .await
            .and_then(|()| {
                // A hard link does not replace an existing file, as a rename would.
                std::fs::hard_link(&partial, &target).map_err(|e| {
                    ClientError::Invalid(format!("cannot create {}: {e}", target.display()))
                })
            });
        let _ = std::fs::remove_file(&partial);
        outcome?;
        Ok((
            target,
            FileInfo {
                name: reference.name.clone(),
                size: reference.size,
                sha256: reference.sha256.clone(),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_names_never_carry_directories_or_control_characters() {
        assert_eq!(
            shareable_name(Path::new("/tmp/plan.pdf")).unwrap(),
            "plan.pdf"
        );
        assert_eq!(shareable_name(Path::new("a\nb.txt")).unwrap(), "a_b.txt");
        assert!(shareable_name(Path::new("/")).is_err());
        assert!(shareable_name(Path::new("..")).is_err());
    }
}
