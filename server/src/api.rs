//! HTTP handlers: parse, call one domain step, map the result. Status codes
//! come only from [`ApiError`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_crypto::{DeviceId, DevicePublicKey, Username};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::AppState;
use crate::auth::{Password, Signed, hash_password, read_body, verify_password};
use crate::error::{ApiError, ApiResult};
use crate::mls::{self, Handshake, Wire};
use crate::store::{CommitRecord, MessageKind, NewKeyPackage, Pending};

/// Most messages one fetch returns.
const FETCH_LIMIT: u32 = 500;
/// Most key packages one upload may carry.
const MAX_UPLOAD: usize = 200;

/// All routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/accounts", post(register))
        .route("/v1/devices", post(login))
        .route("/v1/key-packages", post(upload_key_packages))
        .route("/v1/key-packages/stock", get(key_package_stock))
        .route("/v1/key-packages/claim", post(claim_key_packages))
        .route("/v1/groups", post(create_group))
        .route("/v1/groups/{group_id}/messages", post(post_message))
        .route("/v1/messages", get(fetch_messages))
        .route("/v1/messages/ack", post(ack_messages))
        .route("/v1/stream", get(stream))
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}

pub(crate) fn decode_b64(field: &'static str, text: &str) -> ApiResult<Vec<u8>> {
    STANDARD
        .decode(text)
        .map_err(|_| ApiError::BadRequest(format!("{field} is not valid base64")))
}

fn username(text: &str) -> ApiResult<Username> {
    Username::parse(text).map_err(|e| ApiError::BadRequest(e.to_string()))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[derive(Deserialize)]
struct RegisterBody {
    username: String,
    password: Password,
}

async fn register(State(state): State<AppState>, request: Request) -> ApiResult<Json<Value>> {
    let body = read_body(request.into_body(), state.config.max_body_bytes).await?;
    let body: RegisterBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let name = username(&body.username)?;
    let length = body.password.expose().chars().count();
    if !(10..=1024).contains(&length) {
        return Err(ApiError::BadRequest(
            "password must be 10 to 1024 characters".into(),
        ));
    }
    let hash = hash_password(body.password).await?;
    if !state.store.create_account(name.as_str(), &hash).await? {
        return Err(ApiError::Conflict("username"));
    }
    tracing::info!(user = %name, "account registered");
    Ok(Json(json!({ "username": name.as_str() })))
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: Password,
    public_key: String,
}

async fn login(State(state): State<AppState>, signed: Signed) -> ApiResult<Json<Value>> {
    let body: LoginBody = signed.json()?;
    let name = username(&body.username)?;
    let stored = state.store.password_hash(name.as_str()).await?;
    if !verify_password(body.password, stored).await? {
        return Err(ApiError::BadCredentials);
    }
    let key = decode_b64("public_key", &body.public_key)?;
    let device = DevicePublicKey::from_bytes(&key)
        .map_err(|_| ApiError::BadRequest("public_key is not a valid Ed25519 key".into()))?;
    // Proof of possession: the request must be signed by the key it registers,
    // not by some other device that is already known.
    if device != signed.public_key {
        return Err(ApiError::BadSignature(
            "a login must be signed by the device key it registers",
        ));
    }
    let device_id = device.device_id().to_string();
    if !state
        .store
        .add_device(name.as_str(), &device_id, &key)
        .await?
    {
        return Err(ApiError::Conflict("device"));
    }
    tracing::info!(user = %name, device = %device_id, "device logged in");
    Ok(Json(
        json!({ "username": name.as_str(), "device_id": device_id }),
    ))
}

#[derive(Deserialize)]
struct UploadBody {
    key_packages: Vec<String>,
}

async fn upload_key_packages(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<Value>> {
    let body: UploadBody = signed.json()?;
    if body.key_packages.is_empty() || body.key_packages.len() > MAX_UPLOAD {
        return Err(ApiError::BadRequest(format!(
            "upload 1 to {MAX_UPLOAD} key packages at a time"
        )));
    }
    let user = signed.username()?;
    let now = unix_now();
    let mut packages = Vec::with_capacity(body.key_packages.len());
    for encoded in &body.key_packages {
        let bytes = decode_b64("key_packages[]", encoded)?;
        let checked = mls::check_key_package(&bytes)?;
        if checked.credential.device() != signed.device_id
            || checked.credential.user().as_str() != user
            || checked.signature_key != signed.public_key.to_bytes()
        {
            return Err(ApiError::InvalidMls(
                "key package credential or signature key is not this device's".into(),
            ));
        }
        if checked.not_after <= now {
            return Err(ApiError::InvalidMls("key package has expired".into()));
        }
        packages.push(NewKeyPackage {
            bytes,
            last_resort: checked.last_resort,
            expires_at: checked.not_after,
        });
    }
    let device = signed.device_id.to_string();
    state.store.add_key_packages(&device, &packages).await?;
    stock_json(&state, &device).await
}

async fn key_package_stock(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<Value>> {
    signed.username()?;
    stock_json(&state, &signed.device_id.to_string()).await
}

async fn stock_json(state: &AppState, device: &str) -> ApiResult<Json<Value>> {
    let (one_time, last_resort) = state.store.key_package_stock(device).await?;
    Ok(Json(
        json!({ "one_time": one_time, "last_resort": last_resort }),
    ))
}

#[derive(Deserialize)]
struct ClaimBody {
    username: String,
}

async fn claim_key_packages(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<Value>> {
    signed.username()?;
    let body: ClaimBody = signed.json()?;
    let name = username(&body.username)?;
    let claimed = state.store.claim_key_packages(name.as_str()).await?;
    if claimed.is_empty() {
        // Only the empty answer pays for the look-up that tells the two apart.
        if state.store.password_hash(name.as_str()).await?.is_none() {
            return Err(ApiError::NotFound("user"));
        }
        return Err(ApiError::NoKeyPackages(name.to_string()));
    }
    let list: Vec<Value> = claimed
        .into_iter()
        .map(
            |(device_id, kp)| json!({ "device_id": device_id, "key_package": STANDARD.encode(kp) }),
        )
        .collect();
    Ok(Json(json!({ "key_packages": list })))
}

#[derive(Deserialize)]
struct CreateGroupBody {
    group_info: String,
    ratchet_tree: String,
}

async fn create_group(State(state): State<AppState>, signed: Signed) -> ApiResult<Json<Value>> {
    let user = signed.username()?.to_owned();
    let body: CreateGroupBody = signed.json()?;
    let group = mls::validate_new_group(
        &decode_b64("group_info", &body.group_info)?,
        &decode_b64("ratchet_tree", &body.ratchet_tree)?,
    )?;
    match group.members.as_slice() {
        [only]
            if only.credential.device() == signed.device_id
                && only.credential.user().as_str() == user
                && only.signature_key == signed.public_key.to_bytes() => {}
        _ => {
            return Err(ApiError::InvalidMls(
                "a new group must contain exactly the creating device".into(),
            ));
        }
    }
    if group.group_id.len() > 128 {
        return Err(ApiError::InvalidMls("group id longer than 64 bytes".into()));
    }
    let device = signed.device_id.to_string();
    if !state
        .store
        .create_group(&group.group_id, group.epoch, &group.state, &device)
        .await?
    {
        return Err(ApiError::Conflict("group"));
    }
    Ok(Json(
        json!({ "group_id": group.group_id, "epoch": group.epoch }),
    ))
}

#[derive(Deserialize)]
struct PostBody {
    message: String,
    #[serde(default)]
    welcome: Option<String>,
}

async fn post_message(
    State(state): State<AppState>,
    group_id: Result<Path<String>, PathRejection>,
    signed: Signed,
) -> ApiResult<Json<Value>> {
    signed.username()?;
    let Path(group_id) = group_id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let body: PostBody = signed.json()?;
    let message = decode_b64("message", &body.message)?;
    let framing = mls::framing(&message)?;
    if framing.group_id != group_id {
        return Err(ApiError::BadRequest(
            "message is for another group than the URL names".into(),
        ));
    }
    let device = signed.device_id.to_string();
    let access = state
        .store
        .access(&group_id, &device)
        .await?
        .ok_or(ApiError::NotFound("group"))?;
    if !access.member {
        return Err(ApiError::Forbidden(
            "only current members may post to a group",
        ));
    }
    if framing.epoch != access.epoch {
        return Err(ApiError::WrongEpoch {
            current: access.epoch,
            got: framing.epoch,
        });
    }
    let appended = match framing.kind {
        Wire::Application => {
            if body.welcome.is_some() {
                return Err(ApiError::BadRequest(
                    "a welcome travels only with a commit".into(),
                ));
            }
            let seq = state
                .store
                .append(
                    &group_id,
                    access.epoch,
                    MessageKind::Application,
                    &device,
                    &message,
                    None,
                )
                .await?;
            seq.map(|seq| (seq, MessageKind::Application))
        }
        Wire::Handshake => {
            post_handshake(
                &state,
                &group_id,
                framing.epoch,
                &signed,
                &message,
                body.welcome.as_deref(),
            )
            .await?
        }
    };
    let (seq, kind) = appended.map_err(|current| ApiError::WrongEpoch {
        current,
        got: framing.epoch,
    })?;
    state.notify(Pending {
        group_id: group_id.clone(),
        seq,
        kind: kind.as_str().into(),
        payload: message,
    });
    Ok(Json(json!({ "seq": seq })))
}

async fn post_handshake(
    state: &AppState,
    group_id: &str,
    epoch: u64,
    signed: &Signed,
    message: &[u8],
    welcome: Option<&str>,
) -> ApiResult<Result<(u64, MessageKind), u64>> {
    // Only handshakes need the public state; a commit that raced in since the
    // epoch check is caught here or by apply_commit's compare-and-swap.
    let group = state
        .store
        .group(group_id)
        .await?
        .ok_or(ApiError::NotFound("group"))?;
    if group.epoch != epoch {
        return Ok(Err(group.epoch));
    }
    let (outcome, sender) = mls::process_handshake(group_id, &group.public_state, message)?;
    if sender.credential.device() != signed.device_id
        || sender.signature_key != signed.public_key.to_bytes()
    {
        return Err(ApiError::Forbidden(
            "a handshake message must come from its sender's own device",
        ));
    }
    let device = signed.device_id.to_string();
    match outcome {
        Handshake::Proposal { state: new_state } => {
            if welcome.is_some() {
                return Err(ApiError::BadRequest(
                    "a welcome travels only with a commit".into(),
                ));
            }
            let seq = state
                .store
                .append(
                    group_id,
                    group.epoch,
                    MessageKind::Proposal,
                    &device,
                    message,
                    Some(&new_state),
                )
                .await?;
            Ok(seq.map(|seq| (seq, MessageKind::Proposal)))
        }
        Handshake::Commit {
            state: new_state,
            to_epoch,
            new_leaves,
            added,
            removed,
            welcome_refs,
        } => {
            // Every new leaf must be a registered device of the user it names, with that device's key.
            for leaf in &new_leaves {
                let registered = state
                    .store
                    .device(&leaf.credential.device().to_string())
                    .await?;
                let genuine = registered.is_some_and(|d| {
                    d.username == leaf.credential.user().as_str()
                        && d.public_key == leaf.signature_key
                });
                if !genuine {
                    return Err(ApiError::InvalidMls(format!(
                        "leaf for {} is not a registered device of that user",
                        leaf.credential.user()
                    )));
                }
            }
            let welcome = match (welcome, added.is_empty()) {
                (Some(encoded), false) => {
                    let bytes = decode_b64("welcome", encoded)?;
                    mls::check_welcome(&bytes, &welcome_refs)?;
                    Some(bytes)
                }
                (None, false) => {
                    return Err(ApiError::BadRequest(
                        "a commit that adds members needs a welcome".into(),
                    ));
                }
                (Some(_), true) => {
                    return Err(ApiError::BadRequest(
                        "a welcome needs a commit that adds members".into(),
                    ));
                }
                (None, true) => None,
            };
            let record = CommitRecord {
                group_id,
                from_epoch: group.epoch,
                to_epoch,
                public_state: &new_state,
                sender: &device,
                commit: message,
                welcome: welcome.as_deref(),
                added: &added,
                removed: &removed,
            };
            let seq = state.store.apply_commit(&record).await?;
            if let (Ok(seq), Some(welcome)) = (&seq, welcome) {
                state.notify(Pending {
                    group_id: group_id.to_owned(),
                    seq: seq + 1,
                    kind: "welcome".into(),
                    payload: welcome,
                });
            }
            tracing::info!(group = %group_id, epoch = to_epoch, added = added.len(), removed = removed.len(), "commit accepted");
            Ok(seq.map(|seq| (seq, MessageKind::Commit)))
        }
    }
}

/// One message as delivered to a device.
#[derive(Serialize)]
struct Delivered<'a> {
    group_id: &'a str,
    seq: u64,
    kind: &'a str,
    payload: String,
}

fn delivered(p: &Pending) -> Delivered<'_> {
    Delivered {
        group_id: &p.group_id,
        seq: p.seq,
        kind: &p.kind,
        payload: STANDARD.encode(&p.payload),
    }
}

#[derive(Deserialize)]
struct FetchQuery {
    limit: Option<u32>,
}

async fn fetch_messages(
    State(state): State<AppState>,
    query: Result<Query<FetchQuery>, QueryRejection>,
    signed: Signed,
) -> ApiResult<Json<Value>> {
    signed.username()?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = query.limit.unwrap_or(FETCH_LIMIT).clamp(1, FETCH_LIMIT);
    let device = signed.device_id.to_string();
    let pending = state.store.pending(&device, limit).await?;
    let list: Vec<Delivered<'_>> = pending.iter().map(delivered).collect();
    // Devices learn here when their key packages run low, without an extra round trip.
    let (one_time, last_resort) = state.store.key_package_stock(&device).await?;
    Ok(Json(json!({
        "messages": list,
        "key_package_stock": { "one_time": one_time, "last_resort": last_resort },
    })))
}

#[derive(Deserialize)]
struct Ack {
    group_id: String,
    seq: u64,
}

#[derive(Deserialize)]
struct AckBody {
    acks: Vec<Ack>,
}

async fn ack_messages(State(state): State<AppState>, signed: Signed) -> ApiResult<Json<Value>> {
    signed.username()?;
    let body: AckBody = signed.json()?;
    let device = signed.device_id.to_string();
    for ack in &body.acks {
        state.store.ack(&device, &ack.group_id, ack.seq).await?;
    }
    Ok(Json(json!({ "acked": body.acks.len() })))
}

async fn stream(
    State(state): State<AppState>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    signed: Signed,
) -> ApiResult<Response> {
    signed.username()?;
    let ws = ws.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let device = signed.device_id;
    let notifications = state.notifier.subscribe();
    Ok(ws
        .read_buffer_size(8192)
        .on_upgrade(move |socket| async move {
            if let Err(e) = push_loop(state, device, socket, notifications).await {
                tracing::debug!(%device, error = %e, "stream closed");
            }
        }))
}

/// Pushes a device's messages as they arrive. The socket carries the same
/// JSON objects as `GET /v1/messages`; the device acknowledges with
/// `{"acks":[{"group_id":…,"seq":…}]}` frames or over HTTP.
async fn push_loop(
    state: AppState,
    device: DeviceId,
    mut socket: WebSocket,
    mut notifications: broadcast::Receiver<Arc<Pending>>,
) -> Result<(), String> {
    let device_key = device.to_string();
    let mut sent: HashMap<String, u64> = HashMap::new();
    let mut groups: HashSet<String> = HashSet::new();
    let mut resync = true;
    loop {
        if resync {
            groups = state
                .store
                .groups_of(&device_key)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .collect();
            loop {
                let pending = state
                    .store
                    .pending(&device_key, FETCH_LIMIT)
                    .await
                    .map_err(|e| e.to_string())?;
                let fresh: Vec<&Pending> = pending
                    .iter()
                    .filter(|p| sent.get(&p.group_id).is_none_or(|s| p.seq > *s))
                    .collect();
                if fresh.is_empty() {
                    break;
                }
                for p in fresh {
                    send(&mut socket, p).await?;
                    sent.insert(p.group_id.clone(), p.seq);
                }
            }
            resync = false;
        }
        tokio::select! {
            note = notifications.recv() => match note {
                Ok(p) => {
                    let next_in_line = sent.get(&p.group_id).is_some_and(|s| *s + 1 == p.seq);
                    let plain = p.kind == "application" || p.kind == "proposal";
                    if groups.contains(&p.group_id) && next_in_line && plain {
                        send(&mut socket, &p).await?;
                        sent.insert(p.group_id.clone(), p.seq);
                    } else if groups.contains(&p.group_id) || p.kind == "welcome" {
                        // Membership may have changed or we missed something: ask the database.
                        resync = true;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => resync = true,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let body: AckBody = serde_json::from_str(text.as_str()).map_err(|e| format!("bad frame: {e}"))?;
                    for ack in body.acks {
                        state.store.ack(&device_key, &ack.group_id, ack.seq).await.map_err(|e| e.to_string())?;
                    }
                }
                Some(Ok(Message::Close(_))) | None => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
            },
        }
    }
}

async fn send(socket: &mut WebSocket, p: &Pending) -> Result<(), String> {
    let text = serde_json::to_string(&delivered(p)).map_err(|e| e.to_string())?;
    socket
        .send(Message::Text(text.into()))
        .await
        .map_err(|e| e.to_string())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
