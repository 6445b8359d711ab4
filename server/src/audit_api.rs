//! The transparency log over HTTP.
//!
//! Any signed-in device may read the latest checkpoint, the verifier key and
//! the proof that a device's key was registered (key transparency): the
//! leaf it gets names the account, device and key, and holds a client
//! address only as a salted commitment. Only accounts with the auditor role
//! may read entries (with the addresses and salts that open those
//! commitments) and ask for any proof.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_audit::log::{LogError, SignedCheckpoint};
use conclave_audit::{Event, Hash};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{Signed, unix_now};
use crate::error::{ApiError, ApiResult};

/// The role that may read the whole log.
pub const AUDITOR_ROLE: &str = "auditor";

/// Most entries one page returns.
const ENTRIES_PAGE: u64 = 1000;

/// The routes under `/v1/audit`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/audit/checkpoint", get(checkpoint))
        .route("/v1/audit/key", get(verifier_key))
        .route(
            "/v1/audit/devices/{username}/{device_id}",
            get(device_proof),
        )
        .route("/v1/audit/devices", post(device_proofs))
        .route("/v1/audit/entries", get(entries))
        .route("/v1/audit/proof/inclusion", get(inclusion))
        .route("/v1/audit/proof/consistency", get(consistency))
}

impl From<LogError> for ApiError {
    fn from(error: LogError) -> Self {
        match error {
            LogError::Proof(e) => ApiError::BadRequest(e.to_string()),
            other => ApiError::Internal(format!("audit log: {other}")),
        }
    }
}

fn hashes(proof: &[Hash]) -> Vec<String> {
    proof.iter().map(|h| STANDARD.encode(h)).collect()
}

/// The latest checkpoint, signing one first if there is none yet or if it
/// does not cover `at_least` entries.
async fn fresh_checkpoint(state: &AppState, at_least: u64) -> ApiResult<SignedCheckpoint> {
    let log = state.audit.log();
    match log.latest_checkpoint().await? {
        Some(latest) if latest.size >= at_least => Ok(latest),
        _ => Ok(log.checkpoint(unix_now()).await?),
    }
}

async fn checkpoint(State(state): State<AppState>, signed: Signed) -> ApiResult<impl IntoResponse> {
    signed.username()?;
    let latest = fresh_checkpoint(&state, 0).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        latest.note,
    ))
}

async fn verifier_key(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<impl IntoResponse> {
    signed.username()?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", state.audit.log().verifier_key()),
    ))
}

#[derive(Deserialize)]
struct ProofQuery {
    /// The size of the newest checkpoint the asking client holds.
    #[serde(default)]
    since: u64,
}

/// The registration entry of one device, proven included in the latest
/// checkpoint, and that checkpoint proven consistent with the one the client
/// holds (`since`).
async fn device_proof(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<ProofQuery>, QueryRejection>,
    signed: Signed,
) -> ApiResult<Json<Value>> {
    signed.username()?;
    let Path((username, device_id)) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let log = state.audit.log();
    let entry = log
        .device_registration(&username, &device_id)
        .await?
        .ok_or(ApiError::NotFound(
            "audit log entry registering this device",
        ))?;
    let latest = fresh_checkpoint(&state, entry.index + 1).await?;
    let inclusion = log.inclusion_proof(entry.index, latest.size).await?;
    // A client ahead of the log gets no proof: it will see the rollback.
    let consistency = if 0 < query.since && query.since <= latest.size {
        Some(hashes(
            &log.consistency_proof(query.since, latest.size).await?,
        ))
    } else {
        None
    };
    Ok(Json(json!({
        "index": entry.index,
        "leaf": STANDARD.encode(&entry.leaf),
        "checkpoint": latest.note,
        "inclusion": hashes(&inclusion),
        "consistency": consistency,
    })))
}

/// Most devices one batched proof request may name: a channel of 1000
/// devices is checked in one request.
const MAX_BATCH_DEVICES: usize = 1000;

#[derive(Deserialize)]
struct BatchBody {
    /// The size of the newest checkpoint the asking client holds.
    #[serde(default)]
    since: u64,
    devices: Vec<DeviceName>,
}

#[derive(Deserialize)]
struct DeviceName {
    username: String,
    device_id: String,
}

/// The registration entries of many devices (a channel's members), each
/// proven included in one fresh checkpoint, and that checkpoint proven
/// consistent with the client's (`since`): one request per member list
/// instead of one per device. A device the log never registered is answered
/// `"missing": true`, and the client refuses it.
async fn device_proofs(State(state): State<AppState>, signed: Signed) -> ApiResult<Json<Value>> {
    signed.username()?;
    let body: BatchBody = signed.json()?;
    if body.devices.is_empty() || body.devices.len() > MAX_BATCH_DEVICES {
        return Err(ApiError::BadRequest(format!(
            "name 1 to {MAX_BATCH_DEVICES} devices"
        )));
    }
    let log = state.audit.log();
    let mut entries = Vec::with_capacity(body.devices.len());
    for device in &body.devices {
        entries.push(
            log.device_registration(&device.username, &device.device_id)
                .await?,
        );
    }
    let needed = entries
        .iter()
        .flatten()
        .map(|e| e.index + 1)
        .max()
        .unwrap_or(0);
    let latest = fresh_checkpoint(&state, needed).await?;
    let consistency = if 0 < body.since && body.since <= latest.size {
        Some(hashes(
            &log.consistency_proof(body.since, latest.size).await?,
        ))
    } else {
        None
    };
    let mut proven = Vec::with_capacity(entries.len());
    for (device, entry) in body.devices.iter().zip(entries) {
        proven.push(match entry {
            Some(entry) => json!({
                "username": device.username,
                "device_id": device.device_id,
                "index": entry.index,
                "leaf": STANDARD.encode(&entry.leaf),
                "inclusion": hashes(&log.inclusion_proof(entry.index, latest.size).await?),
            }),
            None => json!({
                "username": device.username,
                "device_id": device.device_id,
                "missing": true,
            }),
        });
    }
    Ok(Json(json!({
        "checkpoint": latest.note,
        "consistency": consistency,
        "devices": proven,
    })))
}

async fn require_auditor(state: &AppState, signed: &Signed) -> ApiResult<()> {
    let user = signed.username()?;
    if state
        .store
        .roles(user)
        .await?
        .iter()
        .any(|r| r == AUDITOR_ROLE)
    {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only accounts with the auditor role may read the audit log",
        ))
    }
}

#[derive(Deserialize)]
struct RangeQuery {
    start: u64,
    end: Option<u64>,
}

/// Entries `start..end` (at most one page), with their decoded fields.
async fn entries(
    State(state): State<AppState>,
    query: Result<Query<RangeQuery>, QueryRejection>,
    signed: Signed,
) -> ApiResult<Json<Value>> {
    require_auditor(&state, &signed).await?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let log = state.audit.log();
    let size = log.size().await?;
    let end = query
        .end
        .unwrap_or(size)
        .min(size)
        .min(query.start.saturating_add(ENTRIES_PAGE));
    // The addresses behind the leaves' `client-ip` commitments: for
    // auditors only, never in a leaf (which any device may be shown).
    let mut addresses: std::collections::HashMap<u64, conclave_audit::ClientIpOpening> = log
        .client_addresses(query.start, end)
        .await?
        .into_iter()
        .collect();
    let entries: Vec<Value> = log
        .entries(query.start, end)
        .await?
        .into_iter()
        .map(|entry| {
            let mut shown = json!({
                "index": entry.index,
                "leaf": STANDARD.encode(&entry.leaf),
                // A stored entry that does not decode is shown as such: the
                // auditor's tool, not the relay, decides what it means.
                "event": Event::decode(&entry.leaf).ok(),
            });
            if let Some(opening) = addresses.remove(&entry.index) {
                shown["client_address"] =
                    json!({ "ip": opening.ip, "salt": hex::encode(opening.salt) });
            }
            shown
        })
        .collect();
    Ok(Json(json!({ "size": size, "entries": entries })))
}

#[derive(Deserialize)]
struct InclusionQuery {
    index: u64,
    size: u64,
}

async fn inclusion(
    State(state): State<AppState>,
    query: Result<Query<InclusionQuery>, QueryRejection>,
    signed: Signed,
) -> ApiResult<Json<Value>> {
    require_auditor(&state, &signed).await?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    check_size(&state, query.size).await?;
    let proof = state
        .audit
        .log()
        .inclusion_proof(query.index, query.size)
        .await?;
    Ok(Json(json!({
        "index": query.index,
        "size": query.size,
        "proof": hashes(&proof),
    })))
}

#[derive(Deserialize)]
struct ConsistencyQuery {
    old: u64,
    new: u64,
}

async fn consistency(
    State(state): State<AppState>,
    query: Result<Query<ConsistencyQuery>, QueryRejection>,
    signed: Signed,
) -> ApiResult<Json<Value>> {
    require_auditor(&state, &signed).await?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    check_size(&state, query.new).await?;
    let proof = state
        .audit
        .log()
        .consistency_proof(query.old, query.new)
        .await?;
    Ok(Json(json!({
        "old": query.old,
        "new": query.new,
        "proof": hashes(&proof),
    })))
}

async fn check_size(state: &AppState, size: u64) -> ApiResult<()> {
    let current = state.audit.log().size().await?;
    if size > current {
        return Err(ApiError::BadRequest(format!(
            "size {size} is beyond the log's {current} entries"
        )));
    }
    Ok(())
}
