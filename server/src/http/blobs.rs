//! Attachment routes. The client seals a file in chunks before it leaves
//! the device (see `conclave_crypto::attachment`); the relay stores those
//! chunks under a random id, lets only the members of the blob's group read
//! them, and enforces a size limit and a per-account quota.
//!
//! ```text
//! POST   /v1/blobs                     {"group_id","size"} → {"blob_id","chunks","chunk_bytes"}
//! PUT    /v1/blobs/{id}/chunks/{n}     sealed chunk n (raw body)
//! POST   /v1/blobs/{id}/complete       every chunk is there
//! GET    /v1/blobs/{id}/chunks/{n}     sealed chunk n (members of the group)
//! DELETE /v1/blobs/{id}                the uploader takes it back
//! GET    /v1/blobs/usage               {"used","quota","max_upload"}
//! ```
//!
//! Every request is signed like any other; chunks are small enough for one
//! signed request each, so neither side holds a whole file in memory.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use conclave_crypto::attachment::{SEALED_CHUNK_BYTES, sealed_chunk_len};
use conclave_proto::{
    BlobCompleteAnswer, BlobDeletedAnswer, BlobUsage, ChunkStoredAnswer, CreateBlobAnswer,
    CreateBlobBody, routes,
};
use rand::RngCore;

use crate::AppState;
use crate::auth::Signed;
use crate::error::{ApiError, ApiResult};
use crate::events::{AuditAction, AuditEvent};
use crate::store::{BlobRow, BlobSpec, NewBlob};

/// The blob routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::BLOBS, post(create))
        .route(routes::BLOB_USAGE, get(usage))
        .route(routes::BLOB, axum::routing::delete(remove))
        .route(routes::BLOB_COMPLETE, post(complete))
        .route(routes::BLOB_CHUNK, put(put_chunk).get(get_chunk))
}

fn is_blob_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn blob_id(path: Result<Path<String>, PathRejection>) -> ApiResult<String> {
    let Path(id) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if !is_blob_id(&id) {
        return Err(ApiError::BadRequest(
            "a blob id is 32 lowercase hex characters".into(),
        ));
    }
    Ok(id)
}

fn chunk_path(path: Result<Path<(String, u64)>, PathRejection>) -> ApiResult<(String, u64)> {
    let Path((id, index)) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if !is_blob_id(&id) {
        return Err(ApiError::BadRequest(
            "a blob id is 32 lowercase hex characters".into(),
        ));
    }
    Ok((id, index))
}

async fn create(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<CreateBlobAnswer>> {
    let user = signed.username()?.to_owned();
    let body: CreateBlobBody = signed.json()?;
    if body.size > state.config.max_upload_bytes {
        return Err(ApiError::FileTooLarge(state.config.max_upload_bytes));
    }
    // Each chunk carries a tag: some sizes cannot come from any file.
    if sealed_chunk_len(body.size, 0).is_none() {
        return Err(ApiError::BadRequest(format!(
            "size {} is not the sealed size of any file",
            body.size
        )));
    }
    let chunks = body.size.div_ceil(SEALED_CHUNK_BYTES as u64).max(1);
    let access = state
        .store
        .access(&body.group_id, &signed.device_id.to_string())
        .await?
        .ok_or(ApiError::NotFound("group"))?;
    if !access.member {
        return Err(ApiError::Forbidden(
            "only current members may upload files to a group",
        ));
    }
    if access.archived {
        return Err(ApiError::Forbidden(
            "this channel is archived: nothing more can be posted to it",
        ));
    }
    if let Some(recipient) = &body.recipient {
        let group = state
            .store
            .group(&body.group_id)
            .await?
            .ok_or(ApiError::NotFound("group"))?;
        if !group.history_sharing {
            return Err(ApiError::Forbidden(
                "this channel does not allow sharing its history with new members",
            ));
        }
        if recipient == &user || !state.store.user_in_group(&body.group_id, recipient).await? {
            return Err(ApiError::BadRequest(format!(
                "{recipient} is not another member of this channel"
            )));
        }
    }
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    let blob_id = hex::encode(id);
    let quota = state.config.upload_quota_bytes;
    // A history bundle is logged in the transaction that accepts it.
    let shared = body.recipient.as_ref().map(|recipient| {
        state.audit.entry(
            AuditEvent::success(AuditAction::HistoryShared, &user)
                .device(signed.device_id)
                .target(recipient.clone())
                .detail("group", &body.group_id)
                .detail("bytes", body.size),
        )
    });
    match state
        .store
        .create_blob(
            &BlobSpec {
                blob_id: &blob_id,
                group_id: &body.group_id,
                owner: &user,
                size: body.size,
                chunks,
                recipient: body.recipient.as_deref(),
            },
            quota,
            shared,
        )
        .await?
    {
        NewBlob::Created => Ok(Json(CreateBlobAnswer {
            blob_id,
            chunk_bytes: SEALED_CHUNK_BYTES as u64,
            chunks,
        })),
        NewBlob::OverQuota { used } => Err(ApiError::QuotaExceeded {
            used,
            quota,
            needed: body.size,
        }),
    }
}

/// The blob, if `user` uploaded it.
async fn own_blob(state: &AppState, user: &str, blob_id: &str) -> ApiResult<BlobRow> {
    let blob = state
        .store
        .blob(blob_id)
        .await?
        .ok_or(ApiError::NotFound("blob"))?;
    if blob.owner != user {
        return Err(ApiError::Forbidden("only the uploader may change a blob"));
    }
    Ok(blob)
}

async fn put_chunk(
    State(state): State<AppState>,
    path: Result<Path<(String, u64)>, PathRejection>,
    signed: Signed,
) -> ApiResult<Json<ChunkStoredAnswer>> {
    let user = signed.username()?.to_owned();
    let (blob_id, index) = chunk_path(path)?;
    let blob = own_blob(&state, &user, &blob_id).await?;
    let Some(expected) = sealed_chunk_len(blob.size, index) else {
        return Err(ApiError::BadRequest(format!(
            "chunk {index} is out of range: this blob has {} chunks",
            blob.chunks
        )));
    };
    if signed.body.len() != expected {
        return Err(ApiError::BadRequest(format!(
            "chunk {index} must be {expected} bytes, not {}",
            signed.body.len()
        )));
    }
    if !state
        .store
        .put_blob_chunk(&blob_id, index, &signed.body)
        .await?
    {
        return Err(ApiError::Conflict("complete blob"));
    }
    Ok(Json(ChunkStoredAnswer {
        blob_id,
        chunk: index,
    }))
}

async fn complete(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    signed: Signed,
) -> ApiResult<Json<BlobCompleteAnswer>> {
    let user = signed.username()?.to_owned();
    let blob_id = blob_id(path)?;
    let blob = own_blob(&state, &user, &blob_id).await?;
    let stored = state.store.complete_blob(&blob_id, blob.chunks).await?;
    if stored != blob.chunks {
        return Err(ApiError::BadRequest(format!(
            "the upload is not finished: {stored} of {} chunks arrived",
            blob.chunks
        )));
    }
    Ok(Json(BlobCompleteAnswer {
        blob_id,
        chunks: blob.chunks,
        size: blob.size,
    }))
}

async fn get_chunk(
    State(state): State<AppState>,
    path: Result<Path<(String, u64)>, PathRejection>,
    signed: Signed,
) -> ApiResult<Response> {
    let user = signed.username()?.to_owned();
    let (blob_id, index) = chunk_path(path)?;
    let blob = state
        .store
        .blob(&blob_id)
        .await?
        .filter(|b| b.complete)
        .ok_or(ApiError::NotFound("blob"))?;
    let member = state
        .store
        .access(&blob.group_id, &signed.device_id.to_string())
        .await?
        .is_some_and(|a| a.member);
    if !member {
        return Err(ApiError::Forbidden(
            "only current members of the channel may download its files",
        ));
    }
    if blob
        .recipient
        .as_ref()
        .is_some_and(|r| r != &user && blob.owner != user)
    {
        return Err(ApiError::Forbidden(
            "this history bundle is for another member",
        ));
    }
    let data = state
        .store
        .blob_chunk(&blob_id, index)
        .await?
        .ok_or(ApiError::NotFound("chunk"))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], data).into_response())
}

async fn remove(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    signed: Signed,
) -> ApiResult<Json<BlobDeletedAnswer>> {
    let user = signed.username()?.to_owned();
    let blob_id = blob_id(path)?;
    own_blob(&state, &user, &blob_id).await?;
    state.store.delete_blob(&blob_id).await?;
    Ok(Json(BlobDeletedAnswer {
        blob_id,
        deleted: true,
    }))
}

async fn usage(State(state): State<AppState>, signed: Signed) -> ApiResult<Json<BlobUsage>> {
    let user = signed.username()?.to_owned();
    Ok(Json(BlobUsage {
        max_upload: state.config.max_upload_bytes,
        quota: state.config.upload_quota_bytes,
        used: state.store.blob_usage(&user).await?,
    }))
}
