//! The transparency log over HTTP.
//!
//! Any signed-in device may read the latest checkpoint, the verifier key,
//! consistency proofs (members check each other's checkpoints with them) and
//! the proof that a device's key was registered (key transparency): the
//! leaf it gets names the account, device and key, and holds a client
//! address only as a salted commitment. Only accounts with the auditor role
//! may read entries (with the addresses and salts that open those
//! commitments) and ask for any inclusion proof.

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
use conclave_proto::{
    AuditEntriesAnswer, AuditEntriesQuery, AuditEntry, ClientAddress, ConsistencyProofAnswer,
    ConsistencyProofQuery, DeviceProofAnswer, DeviceProofQuery, DeviceProofsAnswer,
    DeviceProofsBody, InclusionProofAnswer, InclusionProofQuery, KeyRotations, LeafInclusion,
    LoggedEvent, ProvenDevice, RegistrationProof, WitnessPolicy, routes,
};

use crate::AppState;
use crate::auth::Signed;
use crate::error::{ApiError, ApiResult};

/// The role that may read the whole log.
pub const AUDITOR_ROLE: &str = "auditor";

/// Most entries one page returns.
const ENTRIES_PAGE: u64 = 1000;

/// The routes under `/v1/audit`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::AUDIT_CHECKPOINT, get(checkpoint))
        .route(routes::AUDIT_KEY, get(verifier_key))
        .route(routes::AUDIT_WITNESSES, get(witness_policy))
        .route(routes::AUDIT_KEY_ROTATIONS, get(key_rotations))
        .route(routes::AUDIT_DEVICE, get(device_proof))
        .route(routes::AUDIT_DEVICES, post(device_proofs))
        .route(routes::AUDIT_ENTRIES, get(entries))
        .route(routes::AUDIT_INCLUSION, get(inclusion))
        .route(routes::AUDIT_CONSISTENCY, get(consistency))
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
        _ => Ok(log.checkpoint(state.config.clock.unix_now()).await?),
    }
}

async fn checkpoint(State(state): State<AppState>, signed: Signed) -> ApiResult<impl IntoResponse> {
    signed.username()?;
    let latest = fresh_checkpoint(&state, 0).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        crate::witnesses::cosigned_note(state.audit.log(), &latest).await?,
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

/// How the log key changed: what a client that pinned an older key follows.
async fn key_rotations(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<KeyRotations>> {
    signed.username()?;
    Ok(Json(KeyRotations {
        statements: state.audit.log().key_rotations().await?,
    }))
}

/// The witnesses clients should require cosignatures from, and how many.
async fn witness_policy(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<WitnessPolicy>> {
    signed.username()?;
    Ok(Json(WitnessPolicy {
        witnesses: state
            .config
            .witnesses
            .iter()
            .map(|w| w.key.to_string())
            .collect(),
        quorum: state.config.witness_quorum,
        grace_seconds: state.config.witness_grace,
    }))
}

/// The registration entry of one device, proven included in the latest
/// checkpoint, and that checkpoint proven consistent with the one the client
/// holds (`since`).
async fn device_proof(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<DeviceProofQuery>, QueryRejection>,
    signed: Signed,
) -> ApiResult<Json<DeviceProofAnswer>> {
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
    let registration = LeafInclusion {
        inclusion: hashes(&log.inclusion_proof(entry.index, latest.size).await?),
        index: entry.index,
        leaf: STANDARD.encode(&entry.leaf),
    };
    Ok(Json(DeviceProofAnswer {
        consistency: consistency_since(&state, query.since, latest.size).await?,
        checkpoint: crate::witnesses::cosigned_note(state.audit.log(), &latest).await?,
        registration,
    }))
}

/// The proof that the tree of `size` entries extends the client's of
/// `since` entries. A client that holds none, or one ahead of the log, gets
/// none: the latter will see the rollback.
async fn consistency_since(
    state: &AppState,
    since: u64,
    size: u64,
) -> ApiResult<Option<Vec<String>>> {
    if 0 < since && since <= size {
        let proof = state.audit.log().consistency_proof(since, size).await?;
        Ok(Some(hashes(&proof)))
    } else {
        Ok(None)
    }
}

/// Most devices one batched proof request may name: a channel of 1000
/// devices is checked in one request.
const MAX_BATCH_DEVICES: usize = 1000;

/// The registration entries of many devices (a channel's members), each
/// proven included in one fresh checkpoint, and that checkpoint proven
/// consistent with the client's (`since`): one request per member list
/// instead of one per device. A device the log never registered is answered
/// `"missing": true`, and the client refuses it.
async fn device_proofs(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<DeviceProofsAnswer>> {
    signed.username()?;
    let body: DeviceProofsBody = signed.json()?;
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
    let consistency = consistency_since(&state, body.since, latest.size).await?;
    let mut proven = Vec::with_capacity(entries.len());
    for (device, entry) in body.devices.into_iter().zip(entries) {
        let registration = match entry {
            Some(entry) => RegistrationProof::Included(LeafInclusion {
                inclusion: hashes(&log.inclusion_proof(entry.index, latest.size).await?),
                index: entry.index,
                leaf: STANDARD.encode(&entry.leaf),
            }),
            None => RegistrationProof::Missing { missing: true },
        };
        proven.push(ProvenDevice {
            device_id: device.device_id,
            registration,
            username: device.username,
        });
    }
    Ok(Json(DeviceProofsAnswer {
        checkpoint: crate::witnesses::cosigned_note(state.audit.log(), &latest).await?,
        consistency,
        devices: proven,
    }))
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

/// Entries `start..end` (at most one page), with their decoded fields.
async fn entries(
    State(state): State<AppState>,
    query: Result<Query<AuditEntriesQuery>, QueryRejection>,
    signed: Signed,
) -> ApiResult<Json<AuditEntriesAnswer>> {
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
    let entries = log
        .entries(query.start, end)
        .await?
        .into_iter()
        .map(|entry| AuditEntry {
            client_address: addresses.remove(&entry.index).map(|opening| ClientAddress {
                ip: opening.ip,
                salt: hex::encode(opening.salt),
            }),
            // A stored entry that does not decode is shown as such: the
            // auditor's tool, not the relay, decides what it means.
            event: Event::decode(&entry.leaf).ok().map(logged_event),
            index: entry.index,
            leaf: STANDARD.encode(&entry.leaf),
        })
        .collect();
    Ok(Json(AuditEntriesAnswer { entries, size }))
}

/// A decoded leaf, as the protocol shows it.
fn logged_event(event: Event) -> LoggedEvent {
    LoggedEvent {
        action: event.action,
        actor: event.actor,
        client_ip: event.client_ip,
        details: event.details,
        device: event.device,
        outcome: event.outcome,
        seq: event.seq,
        target: event.target,
        time: event.time,
    }
}

async fn inclusion(
    State(state): State<AppState>,
    query: Result<Query<InclusionProofQuery>, QueryRejection>,
    signed: Signed,
) -> ApiResult<Json<InclusionProofAnswer>> {
    require_auditor(&state, &signed).await?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    check_size(&state, query.size).await?;
    let proof = state
        .audit
        .log()
        .inclusion_proof(query.index, query.size)
        .await?;
    Ok(Json(InclusionProofAnswer {
        index: query.index,
        proof: hashes(&proof),
        size: query.size,
    }))
}

async fn consistency(
    State(state): State<AppState>,
    query: Result<Query<ConsistencyProofQuery>, QueryRejection>,
    signed: Signed,
) -> ApiResult<Json<ConsistencyProofAnswer>> {
    // Any device: members check each other's gossiped checkpoints with it,
    // and a proof holds hashes only.
    signed.username()?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    check_size(&state, query.new).await?;
    let proof = state
        .audit
        .log()
        .consistency_proof(query.old, query.new)
        .await?;
    Ok(Json(ConsistencyProofAnswer {
        new: query.new,
        old: query.old,
        proof: hashes(&proof),
    }))
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
