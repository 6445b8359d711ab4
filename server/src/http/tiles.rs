//! The transparency log as C2SP tlog-tiles, readable by anyone without
//! signing in: auditors, witnesses and off-the-shelf tlog tools.
//!
//! What this publishes is what every entry already says to auditors:
//! security events with account names, device ids and public keys (device
//! registrations reveal them by design, for key transparency). Client
//! addresses never enter a leaf (only a salted commitment does), so none is
//! served here.
//!
//! Each address may read at a set pace (`--public-reads-per-second`,
//! `--public-read-burst`), counted in the node's memory: a flood of reads
//! is answered 429 before it reaches the database.
//!
//! Only what the latest signed checkpoint covers is served: a tile is
//! immutable once served (partial tiles are named by their width), so
//! caches and CDNs may keep them forever.

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use conclave_audit::tiles::Tile;
use conclave_proto::routes;

use crate::AppState;
use crate::auth::PublicRead;
use crate::error::{ApiError, ApiResult};

/// The routes under `/log/`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::LOG_CHECKPOINT, get(checkpoint))
        .route(routes::LOG_TILE, get(tile))
}

/// The latest signed checkpoint. Reading never signs one (an unsigned-in
/// caller must not be able to make the relay write): the checkpoint task
/// signs as the log grows.
async fn checkpoint(
    _paced: PublicRead,
    State(state): State<AppState>,
) -> ApiResult<impl IntoResponse> {
    let log = state.audit.log();
    let latest = log
        .latest_checkpoint()
        .await?
        .ok_or(ApiError::NotFound("checkpoint"))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        // With the witnesses' cosignatures (C2SP tlog-cosignature lines).
        crate::witnesses::cosigned_note(log, &latest).await?,
    ))
}

async fn tile(
    _paced: PublicRead,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<impl IntoResponse> {
    let Path(path) = path.map_err(|_| ApiError::NotFound("tile"))?;
    let tile = Tile::parse(&path).ok_or(ApiError::NotFound("tile"))?;
    let log = state.audit.log();
    let signed = log
        .latest_checkpoint()
        .await?
        .ok_or(ApiError::NotFound("tile"))?;
    if !tile.within(signed.size) {
        return Err(ApiError::NotFound("tile"));
    }
    let bytes = log.tile(&tile).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        bytes,
    ))
}
