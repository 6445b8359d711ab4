//! Attachments: the client seals a file in chunks before it leaves the
//! device; the relay stores the chunks under a random id and lets only the
//! members of the blob's group read them.
//!
//! A chunk travels as the raw body of `PUT` and `GET
//! /v1/blobs/{blob_id}/chunks/{index}`; the other routes speak JSON. Fields
//! are declared alphabetically, the order in which the relay wrote them
//! before these types existed.

use serde::{Deserialize, Serialize};

/// `POST /v1/blobs`: room for a sealed file in a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateBlobBody {
    /// Hex group id.
    pub group_id: String,
    /// For a history bundle: the member it is for (where the group allows
    /// sharing history; recorded in the audit log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// The sealed size in bytes.
    pub size: u64,
}

/// The answer to [`CreateBlobBody`]: where to put the chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateBlobAnswer {
    /// The blob's id: 32 lowercase hex characters.
    pub blob_id: String,
    /// The size of every sealed chunk but the last.
    pub chunk_bytes: u64,
    /// How many chunks the blob takes.
    pub chunks: u64,
}

/// The answer to `PUT /v1/blobs/{blob_id}/chunks/{index}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkStoredAnswer {
    /// The blob.
    pub blob_id: String,
    /// The chunk's index.
    pub chunk: u64,
}

/// The answer to `POST /v1/blobs/{blob_id}/complete` (no body): every
/// chunk arrived, and the group's members may read the blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobCompleteAnswer {
    /// The blob.
    pub blob_id: String,
    /// Its chunks.
    pub chunks: u64,
    /// Its sealed size.
    pub size: u64,
}

/// The answer to `DELETE /v1/blobs/{blob_id}` (its uploader takes it back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobDeletedAnswer {
    /// The blob.
    pub blob_id: String,
    /// Always true.
    pub deleted: bool,
}

/// The answer to `GET /v1/blobs/usage`: the account's storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobUsage {
    /// The largest sealed file the relay accepts, in bytes.
    pub max_upload: u64,
    /// The account's quota, in bytes.
    pub quota: u64,
    /// Bytes the account's attachments take now.
    pub used: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pinned;

    #[test]
    fn blob_bodies_are_pinned() {
        pinned(
            &CreateBlobBody {
                group_id: "ab01".into(),
                recipient: None,
                size: 100,
            },
            r#"{"group_id":"ab01","size":100}"#,
        );
        pinned(
            &CreateBlobBody {
                group_id: "ab01".into(),
                recipient: Some("bob".into()),
                size: 100,
            },
            r#"{"group_id":"ab01","recipient":"bob","size":100}"#,
        );
        pinned(
            &CreateBlobAnswer {
                blob_id: "0f".into(),
                chunk_bytes: 65552,
                chunks: 2,
            },
            r#"{"blob_id":"0f","chunk_bytes":65552,"chunks":2}"#,
        );
        pinned(
            &ChunkStoredAnswer {
                blob_id: "0f".into(),
                chunk: 1,
            },
            r#"{"blob_id":"0f","chunk":1}"#,
        );
        pinned(
            &BlobCompleteAnswer {
                blob_id: "0f".into(),
                chunks: 2,
                size: 100,
            },
            r#"{"blob_id":"0f","chunks":2,"size":100}"#,
        );
        pinned(
            &BlobDeletedAnswer {
                blob_id: "0f".into(),
                deleted: true,
            },
            r#"{"blob_id":"0f","deleted":true}"#,
        );
        pinned(
            &BlobUsage {
                max_upload: 10,
                quota: 20,
                used: 5,
            },
            r#"{"max_upload":10,"quota":20,"used":5}"#,
        );
    }
}
