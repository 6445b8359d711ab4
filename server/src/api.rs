//! HTTP handlers: parse, call one domain step, map the result. Status codes
//! come only from [`ApiError`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_crypto::{DeviceId, Username};
use conclave_proto::{
    AccountChange, AckAnswer, AckBody, ArchiveAnswer, ChannelNameAnswer, ChannelNameBody,
    ChannelTopicAnswer, ChannelTopicBody, ClaimedKeyPackage, ClaimedKeyPackages, CreateGroupAnswer,
    CreateGroupBody, Delivered, DeviceStatus, FetchAnswer, GroupInfoAnswer, GroupRetentionAnswer,
    GroupRetentionBody, HealthAnswer, HealthStatus, HistorySharingAnswer, HistorySharingBody,
    KeyPackageClaim, KeyPackageStock, KeyPackageUpload, ListedChannel, PostAnswer, PostMessage,
    PublicChannels, Retention, RevokedMember, SlashCommand, SlashCommands, StreamFrame, routes,
};
use tokio::sync::broadcast;

use crate::auth::{Signed, idle_clock_due, session_problem, unix_now};
use crate::error::{ApiError, ApiResult};
use crate::events::{AuditAction, AuditEvent};
use crate::limits::{self, ip_key};
use crate::mls::{self, Handshake, Wire};
use crate::store::{CommitRecord, KeyPackagesAdded, MessageKind, NewGroup, NewKeyPackage, Pending};
use crate::{AppState, Notice};

/// Most messages one fetch returns.
const FETCH_LIMIT: u32 = 500;
/// Most key packages one upload may carry.
const MAX_UPLOAD: usize = 200;
/// Most unused one-time key packages one device may hold. Clients keep 40
/// (refilling below 10); the cap bounds what a flood of uploads can store.
pub const MAX_KEY_PACKAGE_STOCK: u64 = 200;

/// All routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(routes::HEALTH, get(health))
        .route(routes::HEALTHZ, get(health))
        .route(routes::READYZ, get(ready))
        .route(routes::KEY_PACKAGES, post(upload_key_packages))
        .route(routes::KEY_PACKAGE_STOCK, get(key_package_stock))
        .route(routes::KEY_PACKAGES_CLAIM, post(claim_key_packages))
        .route(routes::GROUPS, post(create_group))
        .route(routes::GROUP_MESSAGES, post(post_message))
        .route(routes::GROUP_ARCHIVE, post(archive_group))
        .route(routes::GROUP_RETENTION, post(set_retention))
        .route(routes::GROUP_INFO, get(group_info))
        .route(routes::GROUP_HISTORY_SHARING, post(set_history_sharing))
        .route(routes::GROUP_TOPIC, post(set_public_topic))
        .route(routes::GROUP_NAME, post(set_public_name))
        .route(routes::PUBLIC_CHANNELS, get(public_channels))
        .route(routes::COMMANDS, get(slash_commands))
        .route(routes::MESSAGES, get(fetch_messages))
        .route(routes::MESSAGES_ACK, post(ack_messages))
        .route(routes::STREAM, get(stream))
        .merge(crate::account_api::routes())
        .merge(crate::audit_api::routes())
        .merge(crate::blob_api::routes())
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

/// The process is alive (it answers); says nothing about the database.
async fn health() -> Json<HealthAnswer> {
    Json(HealthAnswer::new(HealthStatus::Ok))
}

/// Ready for traffic: the database answers within two seconds and holds
/// every migration. A load balancer sends requests only to ready nodes.
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<HealthAnswer>) {
    let check = tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ready()).await;
    let reason = match check {
        Ok(Ok(true)) => return (StatusCode::OK, Json(HealthAnswer::new(HealthStatus::Ready))),
        Ok(Ok(false)) => "database schema is older than this node",
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database unavailable");
            "database unavailable"
        }
        Err(_) => "database did not answer in 2 s",
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(HealthAnswer::not_ready(reason)),
    )
}

async fn upload_key_packages(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<KeyPackageStock>> {
    // Each accepted upload is stored and logged: limit how fast a device
    // may make them, before any parsing.
    limits::count(
        &state,
        limits::KEY_PACKAGE_UPLOADS_PER_DEVICE,
        &signed.device_id.to_string(),
    )
    .await?;
    let body: KeyPackageUpload = signed.json()?;
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
        let owner = state.store.bot_owner(user).await?;
        if checked.credential.bot_owner().map(|o| o.as_str()) != owner.as_deref() {
            return Err(ApiError::InvalidMls(
                "key package credential's bot mark is not this account's".into(),
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
    let (had_one_time, had_last_resort) = state.store.key_package_stock(&device).await?;
    match state
        .store
        .add_key_packages(&device, &packages, MAX_KEY_PACKAGE_STOCK)
        .await?
    {
        KeyPackagesAdded::Added => {}
        KeyPackagesAdded::Duplicate => return Err(ApiError::DuplicateKeyPackage),
        KeyPackagesAdded::StockFull { stocked } => {
            return Err(ApiError::KeyPackageStockFull {
                stocked,
                max: MAX_KEY_PACKAGE_STOCK,
            });
        }
    }
    let last_resort = packages.iter().filter(|p| p.last_resort).count();
    state
        .audit
        .record(
            AuditEvent::success(AuditAction::KeyPackagesUploaded, user)
                .device(&device)
                .detail("count", packages.len())
                .detail("last_resort", last_resort),
        )
        .await?;
    if had_one_time == 0 && !had_last_resort {
        // A new device's first packages: its account's other devices can
        // now add it to their channels.
        state.tell(Notice::DevicesChanged {
            username: user.to_owned(),
        });
    }
    stock_of(&state, &device).await.map(Json)
}

async fn key_package_stock(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<KeyPackageStock>> {
    signed.username()?;
    stock_of(&state, &signed.device_id.to_string())
        .await
        .map(Json)
}

async fn stock_of(state: &AppState, device: &str) -> ApiResult<KeyPackageStock> {
    let (one_time, last_resort) = state.store.key_package_stock(device).await?;
    Ok(KeyPackageStock {
        last_resort,
        one_time,
    })
}

async fn claim_key_packages(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<ClaimedKeyPackages>> {
    let claimer = signed.username()?;
    // Every claim spends one of someone's one-time packages: limit how fast.
    limits::count(&state, limits::CLAIMS_PER_ACCOUNT, claimer).await?;
    limits::count(&state, limits::CLAIMS_PER_IP, &ip_key(signed.ip)).await?;
    let body: KeyPackageClaim = signed.json()?;
    let name = username(&body.username)?;
    // And how often one account may drain one other account's packages.
    limits::count(
        &state,
        limits::CLAIMS_PER_TARGET,
        &format!("{claimer}>{}", name.as_str()),
    )
    .await?;
    let claimed = state
        .store
        .claim_key_packages(name.as_str(), body.device_id.as_deref())
        .await?;
    if claimed.is_empty() {
        // Only the empty answer pays for the look-up that tells the two apart.
        if state.store.password_hash(name.as_str()).await?.is_none() {
            return Err(ApiError::NotFound("user"));
        }
        return Err(ApiError::NoKeyPackages(name.to_string()));
    }
    let key_packages = claimed
        .into_iter()
        .map(|(device_id, kp)| ClaimedKeyPackage {
            device_id,
            key_package: STANDARD.encode(kp),
        })
        .collect();
    Ok(Json(ClaimedKeyPackages { key_packages }))
}

/// Longest public channel name and topic, in bytes (as clients enforce).
const MAX_PUBLIC_NAME: usize = 64;
const MAX_PUBLIC_TOPIC: usize = 250;

fn check_listing(name: Option<&str>, topic: &str) -> ApiResult<()> {
    if let Some(name) = name {
        let fine = !name.is_empty()
            && name.len() <= MAX_PUBLIC_NAME
            && !name.starts_with('@')
            && !name.chars().any(|c| c.is_control() || c.is_whitespace());
        if !fine {
            return Err(ApiError::BadRequest(format!(
                "a channel name is 1 to {MAX_PUBLIC_NAME} bytes, without spaces, and does not start with @"
            )));
        }
    }
    if topic.len() > MAX_PUBLIC_TOPIC || topic.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "a topic is at most {MAX_PUBLIC_TOPIC} bytes of text"
        )));
    }
    Ok(())
}

async fn create_group(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<CreateGroupAnswer>> {
    let user = signed.username()?.to_owned();
    let body: CreateGroupBody = signed.json()?;
    let group_info = decode_b64("group_info", &body.group_info)?;
    let group = mls::validate_new_group(
        &group_info,
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
    if let Some(listing) = &body.public {
        check_listing(Some(&listing.name), &listing.topic)?;
    }
    let listing = body.public.as_ref().map(|l| crate::store::PublicListing {
        name: &l.name,
        topic: &l.topic,
        group_info: &group_info,
    });
    let device = signed.device_id.to_string();
    match state
        .store
        .create_group(
            &group.group_id,
            group.epoch,
            &group.state,
            &device,
            &user,
            listing.as_ref(),
        )
        .await?
    {
        NewGroup::Created => {}
        NewGroup::Exists => return Err(ApiError::Conflict("group")),
        NewGroup::NameTaken => return Err(ApiError::Conflict("public channel with this name")),
    }
    state.tell(Notice::Joined {
        device_id: device.clone(),
    });
    let mut created = AuditEvent::success(AuditAction::GroupCreated, &user)
        .device(&device)
        .target(format!("group:{}", group.group_id));
    if let Some(listing) = &body.public {
        created = created.detail("public_name", &listing.name);
    }
    state.audit.record(created).await?;
    Ok(Json(CreateGroupAnswer {
        epoch: group.epoch,
        group_id: group.group_id,
    }))
}

/// The workspace's retention in days (0: keep forever).
pub(crate) async fn workspace_retention(store: &crate::store::Store) -> ApiResult<u32> {
    Ok(store
        .setting("retention_days")
        .await?
        .and_then(|d| d.parse().ok())
        .unwrap_or(0))
}

/// Deletes message ciphertext past each group's retention, and enters each
/// deletion in the audit log.
pub(crate) async fn apply_retention(state: &AppState) -> ApiResult<()> {
    let now = unix_now();
    let workspace = workspace_retention(&state.store).await?;
    for (group_id, days) in state.store.retention(workspace).await? {
        let cutoff = now.saturating_sub(u64::from(days) * 86_400);
        let deleted = state
            .store
            .delete_messages_before(&group_id, cutoff)
            .await?;
        let files = state.store.delete_blobs_before(&group_id, cutoff).await?;
        if deleted > 0 || files > 0 {
            state
                .audit
                .record_in_background(
                    AuditEvent::success(AuditAction::RetentionDeleted, "relay")
                        .target(format!("group:{group_id}"))
                        .detail("count", deleted)
                        .detail("files", files)
                        .detail("days", days),
                )
                .await;
        }
    }
    // Uploads begun a day ago and never finished will not be.
    state
        .store
        .delete_abandoned_uploads(now.saturating_sub(86_400))
        .await?;
    Ok(())
}

/// The workspace's public channels: name, topic, member count, and whether
/// the asking device is in each.
async fn public_channels(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<PublicChannels>> {
    signed.username()?;
    let channels = state
        .store
        .public_channels(&signed.device_id.to_string())
        .await?
        .into_iter()
        .map(|c| ListedChannel {
            archived: c.archived,
            group_id: c.group_id,
            joined: c.joined,
            members: c.members,
            name: c.name,
            topic: c.topic,
        })
        .collect();
    Ok(Json(PublicChannels { channels }))
}

/// The workspace's slash commands and the bot that answers each. No
/// secrets: clients use it to complete commands and check the bot is there.
async fn slash_commands(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<SlashCommands>> {
    signed.username()?;
    let commands = state
        .store
        .commands()
        .await?
        .into_iter()
        .map(|(name, bot, usage)| SlashCommand { bot, name, usage })
        .collect();
    Ok(Json(SlashCommands { commands }))
}

/// What a device needs to join a public channel by external commit: the
/// latest GroupInfo a member signed, and the ratchet tree.
async fn group_info(
    State(state): State<AppState>,
    group_id: Result<Path<String>, PathRejection>,
    signed: Signed,
) -> ApiResult<Json<GroupInfoAnswer>> {
    signed.username()?;
    let Path(group_id) = group_id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let (info, public_state) = state
        .store
        .public_group_info(&group_id)
        .await?
        .ok_or(ApiError::NotFound("public channel"))?;
    let tree = mls::ratchet_tree(&group_id, &public_state)?;
    Ok(Json(GroupInfoAnswer {
        group_info: STANDARD.encode(info),
        ratchet_tree: STANDARD.encode(tree),
    }))
}

/// Renames a public channel in the directory: any member may, as any member
/// may rename it inside the channel (the new name travels there encrypted).
/// A private channel's name never reaches the relay.
async fn set_public_name(
    State(state): State<AppState>,
    group_id: Result<Path<String>, PathRejection>,
    signed: Signed,
) -> ApiResult<Json<ChannelNameAnswer>> {
    let user = signed.username()?.to_owned();
    let Path(group_id) = group_id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let body: ChannelNameBody = signed.json()?;
    check_listing(Some(&body.name), "")?;
    let group = public_listing_of(
        &state,
        &group_id,
        &signed,
        "a private channel's name is for its members only: send it encrypted",
    )
    .await?;
    if group.archived {
        return Err(ApiError::Forbidden("an archived channel cannot be renamed"));
    }
    if !state.store.set_public_name(&group_id, &body.name).await? {
        return Err(ApiError::Conflict("public channel with this name"));
    }
    state
        .audit
        .record(
            AuditEvent::success(AuditAction::GroupRenamed, &user)
                .device(signed.device_id)
                .target(format!("group:{group_id}"))
                .detail("name", &body.name),
        )
        .await?;
    Ok(Json(ChannelNameAnswer {
        group_id,
        name: body.name,
    }))
}

/// The group whose directory entry a member asks to change: refused unless
/// it is public (`private` says why, for a private one) and the signer's
/// device is a current member.
async fn public_listing_of(
    state: &AppState,
    group_id: &str,
    signed: &Signed,
    private: &'static str,
) -> ApiResult<crate::store::GroupRow> {
    let group = state
        .store
        .group(group_id)
        .await?
        .ok_or(ApiError::NotFound("group"))?;
    let access = state
        .store
        .access(group_id, &signed.device_id.to_string())
        .await?
        .ok_or(ApiError::NotFound("group"))?;
    if !group.public {
        return Err(ApiError::Forbidden(private));
    }
    if !access.member {
        return Err(ApiError::Forbidden(
            "only members may change the channel's directory entry",
        ));
    }
    Ok(group)
}

/// Changes a public channel's listed topic: any member may, as any member
/// may change the topic inside the channel.
async fn set_public_topic(
    State(state): State<AppState>,
    group_id: Result<Path<String>, PathRejection>,
    signed: Signed,
) -> ApiResult<Json<ChannelTopicAnswer>> {
    signed.username()?;
    let Path(group_id) = group_id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let body: ChannelTopicBody = signed.json()?;
    check_listing(None, &body.topic)?;
    public_listing_of(
        &state,
        &group_id,
        &signed,
        "a private channel's topic is for its members only: send it encrypted",
    )
    .await?;
    state.store.set_public_topic(&group_id, &body.topic).await?;
    Ok(Json(ChannelTopicAnswer {
        group_id,
        topic: body.topic,
    }))
}

/// Enters a change of one group's policy in the audit log.
async fn log_group_policy(
    state: &AppState,
    signed: &Signed,
    group_id: &str,
    setting: &'static str,
    value: impl ToString,
) -> ApiResult<()> {
    state
        .audit
        .record(
            AuditEvent::success(AuditAction::PolicyChanged, signed.username()?)
                .device(signed.device_id)
                .target(format!("group:{group_id}"))
                .detail(setting, value),
        )
        .await?;
    Ok(())
}

/// Lets the channel's members hand new members its earlier history (or
/// stops them): the creator or an admin decides.
async fn set_history_sharing(
    State(state): State<AppState>,
    group_id: Result<Path<String>, PathRejection>,
    signed: Signed,
) -> ApiResult<Json<HistorySharingAnswer>> {
    let user = signed.username()?.to_owned();
    let Path(group_id) = group_id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let body: HistorySharingBody = signed.json()?;
    require_manager(&state, &user, &group_id, Manage::AsMember).await?;
    state
        .store
        .set_history_sharing(&group_id, body.allowed)
        .await?;
    log_group_policy(&state, &signed, &group_id, "history_sharing", body.allowed).await?;
    Ok(Json(HistorySharingAnswer {
        group_id,
        history_sharing: body.allowed,
    }))
}

/// Who may change a channel's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Manage {
    /// Retention, history sharing: only a current member (some current
    /// device of the account is in the group) who created it or is a
    /// workspace admin. Leaving the channel ends the creator's control.
    AsMember,
    /// Archiving: the above, or a workspace admin who is not a member (who
    /// can stop a channel, logged, but still reads nothing of it).
    AsMemberOrAdmin,
}

/// Refuses unless `user` may manage the group as `how` says. Returns
/// whether the user is a current member (for the audit entry).
async fn require_manager(
    state: &AppState,
    user: &str,
    group_id: &str,
    how: Manage,
) -> ApiResult<bool> {
    let creator = state
        .store
        .group_creator(group_id)
        .await?
        .ok_or(ApiError::NotFound("group"))?;
    let admin = state
        .store
        .roles(user)
        .await?
        .iter()
        .any(|r| r == crate::account_api::ADMIN_ROLE);
    let member = state.store.user_in_group(group_id, user).await?;
    if !admin && creator != user {
        return Err(ApiError::NotChannelManager(
            "only the channel's creator or a workspace admin may do this",
        ));
    }
    let outside_admin_may = admin && how == Manage::AsMemberOrAdmin;
    if !member && !outside_admin_may {
        return Err(ApiError::NotChannelManager(
            "only a current member of the channel may do this (leaving it ends its creator's control)",
        ));
    }
    Ok(member)
}

/// Sets how long the relay keeps a group's message ciphertext.
async fn set_retention(
    State(state): State<AppState>,
    group_id: Result<Path<String>, PathRejection>,
    signed: Signed,
) -> ApiResult<Json<GroupRetentionAnswer>> {
    let user = signed.username()?.to_owned();
    let Path(group_id) = group_id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let body: GroupRetentionBody = signed.json()?;
    require_manager(&state, &user, &group_id, Manage::AsMember).await?;
    state
        .store
        .set_group_retention(&group_id, body.days)
        .await?;
    let days = body.days.map_or("workspace".to_owned(), |d| d.to_string());
    log_group_policy(&state, &signed, &group_id, "retention_days", days).await?;
    Ok(Json(GroupRetentionAnswer {
        group_id,
        retention_days: body.days,
    }))
}

/// Archives a group: a current member who created it or is an admin may, and
/// so may a workspace admin who is not a member (the audit entry says so);
/// from then on the relay refuses every post to it, and members learn it at
/// their next fetch.
async fn archive_group(
    State(state): State<AppState>,
    group_id: Result<Path<String>, PathRejection>,
    signed: Signed,
) -> ApiResult<Json<ArchiveAnswer>> {
    let user = signed.username()?.to_owned();
    let Path(group_id) = group_id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let member = require_manager(&state, &user, &group_id, Manage::AsMemberOrAdmin).await?;
    if state.store.archive_group(&group_id).await? {
        let mut archived = AuditEvent::success(AuditAction::GroupArchived, &user)
            .device(signed.device_id)
            .target(format!("group:{group_id}"));
        if !member {
            archived = archived.detail("as", "admin_not_member");
        }
        state.audit.record(archived).await?;
    }
    Ok(Json(ArchiveAnswer {
        archived: true,
        group_id,
    }))
}

async fn post_message(
    State(state): State<AppState>,
    group_id: Result<Path<String>, PathRejection>,
    signed: Signed,
) -> ApiResult<Json<PostAnswer>> {
    signed.username()?;
    let Path(group_id) = group_id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let body: PostMessage = signed.json()?;
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
    if let Some((seq, first_sender)) = state
        .store
        .first_post_of_payload(&group_id, &message)
        .await?
    {
        // A retry of a message or commit already accepted (the first answer
        // was lost, perhaps with the node that gave it): its position again,
        // and nothing new to deliver. Checked before membership and epoch,
        // which the accepted message itself may have changed (a leave, say),
        // so only for the device that posted it first: anyone else who
        // replays a ciphertext they saw gets the answer any post of theirs
        // would get, and learns nothing about the group.
        if first_sender == device {
            return Ok(Json(PostAnswer {
                duplicate: true,
                seq,
            }));
        }
        if !access.member {
            return Err(ApiError::Forbidden(
                "only current members may post to a group",
            ));
        }
        return Err(ApiError::Conflict(
            "this message, posted by another device,",
        ));
    }
    // A non-member's handshake can only be an external commit to a public
    // channel; post_handshake decides.
    if !access.member && framing.kind != Wire::Handshake {
        return Err(ApiError::Forbidden(
            "only current members may post to a group",
        ));
    }
    if access.archived {
        return Err(ApiError::Forbidden(
            "this channel is archived: nothing more can be posted to it",
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
                access.member,
                &message,
                &body,
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
        kind,
        payload: message,
    });
    Ok(Json(PostAnswer {
        duplicate: false,
        seq,
    }))
}

#[allow(clippy::too_many_arguments)]
async fn post_handshake(
    state: &AppState,
    group_id: &str,
    epoch: u64,
    signed: &Signed,
    member: bool,
    message: &[u8],
    body: &PostMessage,
) -> ApiResult<Result<(u64, MessageKind), u64>> {
    let welcome = body.welcome.as_deref();
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
    let (outcome, sender, external) =
        mls::process_handshake(group_id, &group.public_state, message)?;
    if sender.credential.device() != signed.device_id
        || sender.signature_key != signed.public_key.to_bytes()
    {
        return Err(ApiError::Forbidden(
            "a handshake message must come from its sender's own device",
        ));
    }
    if external {
        if !group.public {
            return Err(ApiError::Forbidden(
                "this channel is private: join it by invitation",
            ));
        }
        if group.archived {
            return Err(ApiError::Forbidden(
                "this channel is archived: nobody can join it",
            ));
        }
        if member {
            return Err(ApiError::BadRequest(
                "this device is a member already".into(),
            ));
        }
        if welcome.is_some() {
            return Err(ApiError::BadRequest(
                "an external commit adds only its sender, who needs no welcome".into(),
            ));
        }
    } else if !member {
        return Err(ApiError::Forbidden(
            "only current members may post to a group",
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
                let owner = state
                    .store
                    .bot_owner(leaf.credential.user().as_str())
                    .await?;
                let genuine = registered.is_some_and(|d| {
                    d.username == leaf.credential.user().as_str()
                        && d.public_key == leaf.signature_key
                }) && leaf.credential.bot_owner().map(|o| o.as_str())
                    == owner.as_deref();
                if !genuine {
                    return Err(ApiError::InvalidMls(format!(
                        "leaf for {} is not a registered device of that user",
                        leaf.credential.user()
                    )));
                }
            }
            if external
                && (added.len() != 1
                    || added[0].credential.device() != signed.device_id
                    || !removed.is_empty())
            {
                return Err(ApiError::InvalidMls(
                    "an external commit may only add the joining device".into(),
                ));
            }
            // A public channel keeps the GroupInfo of its latest epoch, so that
            // anyone can join it without a member online.
            let group_info = match (&body.group_info, group.public) {
                (Some(encoded), true) => {
                    let bytes = decode_b64("group_info", encoded)?;
                    mls::check_group_info(&bytes, group_id, &new_state, to_epoch)?;
                    Some(bytes)
                }
                (None, true) => {
                    return Err(ApiError::BadRequest(
                        "a commit to a public channel must carry the new epoch's group_info".into(),
                    ));
                }
                (_, false) => None,
            };
            let welcome = match (welcome, added.is_empty() || external) {
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
            // Who added or removed which device, from the validated commit,
            // enters the log with the commit itself.
            let committer = sender.credential.user().as_str();
            let membership = |action, leaf: &mls::Leaf| {
                let mut event = AuditEvent::success(action, committer)
                    .device(&device)
                    .target(format!(
                        "{}/{}",
                        leaf.credential.user(),
                        leaf.credential.device()
                    ))
                    .detail("group", group_id)
                    .detail("epoch", to_epoch);
                if external {
                    event = event.detail("via", "external_commit");
                }
                state.audit.entry(event)
            };
            let audit = added
                .iter()
                .map(|leaf| membership(AuditAction::MemberAdded, leaf))
                .chain(
                    removed
                        .iter()
                        .map(|leaf| membership(AuditAction::MemberRemoved, leaf)),
                )
                .collect();
            let device_ids = |leaves: &[mls::Leaf]| -> Vec<String> {
                leaves
                    .iter()
                    .map(|leaf| leaf.credential.device().to_string())
                    .collect()
            };
            let (added, removed) = (device_ids(&added), device_ids(&removed));
            let record = CommitRecord {
                group_id,
                from_epoch: group.epoch,
                to_epoch,
                public_state: &new_state,
                sender: &device,
                commit: message,
                welcome: welcome.as_deref(),
                group_info: group_info.as_deref(),
                added: &added,
                removed: &removed,
                audit,
            };
            let seq = state.store.apply_commit(&record).await?;
            if external && seq.is_ok() {
                state.tell(Notice::Joined {
                    device_id: device.clone(),
                });
            }
            if let (Ok(seq), Some(welcome)) = (&seq, welcome) {
                state.notify(Pending {
                    group_id: group_id.to_owned(),
                    seq: seq + 1,
                    kind: MessageKind::Welcome,
                    payload: welcome,
                });
            }
            tracing::info!(group = %group_id, epoch = to_epoch, added = added.len(), removed = removed.len(), "commit accepted");
            Ok(seq.map(|seq| (seq, MessageKind::Commit)))
        }
    }
}

/// One message as delivered to a device.
fn delivered(p: &Pending) -> Delivered {
    Delivered {
        group_id: p.group_id.clone(),
        seq: p.seq,
        kind: p.kind,
        payload: STANDARD.encode(&p.payload),
    }
}

async fn fetch_messages(
    State(state): State<AppState>,
    query: Result<Query<conclave_proto::FetchQuery>, QueryRejection>,
    signed: Signed,
) -> ApiResult<Json<FetchAnswer>> {
    let user = signed.username()?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = query.limit.unwrap_or(FETCH_LIMIT).clamp(1, FETCH_LIMIT);
    let device = signed.device_id.to_string();
    let messages = state
        .store
        .pending(&device, limit)
        .await?
        .iter()
        .map(delivered)
        .collect();
    // Devices learn here when their key packages run low, without an extra round trip.
    let key_package_stock = stock_of(&state, &device).await?;
    // And which devices their account has, and which revoked devices linger
    // in their groups, so that they add the one and remove the other.
    let devices = state
        .store
        .devices_of(user)
        .await?
        .into_iter()
        .map(|d| DeviceStatus {
            device_id: d.device_id,
            revoked: d.revoked_at.is_some(),
        })
        .collect();
    let archived_groups = state.store.archived_groups_of(&device).await?;
    let retention = state
        .store
        .retention_of(&device, workspace_retention(&state.store).await?)
        .await?
        .into_iter()
        .map(|(group_id, days)| Retention { days, group_id })
        .collect();
    let revoked_members = state
        .store
        .revoked_members(&device)
        .await?
        .into_iter()
        .map(|(group_id, device_id)| RevokedMember {
            device_id,
            group_id,
        })
        .collect();
    // And what changed in who can sign in to their account (factors,
    // passwords, recoveries), so that every device can tell its owner.
    let account_changes = state
        .store
        .account_changes(user)
        .await?
        .into_iter()
        .map(|c| AccountChange {
            at: c.at,
            detail: c.detail,
            device_id: c.device_id,
            id: c.id,
            kind: c.kind,
        })
        .collect();
    Ok(Json(FetchAnswer {
        account_changes,
        archived_groups,
        devices,
        key_package_stock,
        messages,
        retention,
        revoked_members,
    }))
}

async fn ack_messages(State(state): State<AppState>, signed: Signed) -> ApiResult<Json<AckAnswer>> {
    signed.username()?;
    let body: AckBody = signed.json()?;
    let device = signed.device_id.to_string();
    for ack in &body.acks {
        state.store.ack(&device, &ack.group_id, ack.seq).await?;
    }
    Ok(Json(AckAnswer {
        acked: body.acks.len() as u64,
    }))
}

async fn stream(
    State(state): State<AppState>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    signed: Signed,
) -> ApiResult<Response> {
    let user = signed.username()?.to_owned();
    let ws = ws.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let device = signed.device_id;
    let notifications = state.notifier.subscribe();
    Ok(ws
        .read_buffer_size(8192)
        .on_upgrade(move |socket| async move {
            if let Err(e) = push_loop(state, device, user, socket, notifications).await {
                tracing::debug!(%device, error = %e, "stream closed");
            }
        }))
}

/// How often a stream re-checks its device's session, for lifetimes that run
/// out while it is open and revocations made on another node:
/// At most every 30 s, and at least twice per idle timeout.
fn session_recheck(config: &crate::Config) -> std::time::Duration {
    std::time::Duration::from_secs((config.session_idle_timeout / 2).clamp(1, 30))
}

/// How far ahead of the next expected position an announced message may be
/// held (rather than fetched) while the ones before it are announced.
const REORDER_WINDOW: u64 = 256;
/// How long such a message is held before the stream asks the database.
const REORDER_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Pushes `p` (framed as `text`), the next message of its group, then any
/// held back behind it.
async fn push_in_order(
    socket: &mut WebSocket,
    sent: &mut HashMap<String, u64>,
    ahead: &mut HashMap<String, std::collections::BTreeMap<u64, (Pending, std::time::Instant)>>,
    p: &Pending,
    text: &str,
    accepted: std::time::Instant,
) -> Result<(), String> {
    let mut frame = Some(std::borrow::Cow::Borrowed(text));
    let mut next = Some((p.clone(), accepted));
    while let Some((message, accepted)) = next {
        // The first message's frame is shared; the held ones make their own.
        let text = frame
            .take()
            .unwrap_or_else(|| std::borrow::Cow::Owned(frame_of(&message)));
        send_text(socket, &text).await?;
        crate::metrics::METRICS
            .delivery_latency
            .observe(accepted.elapsed().as_secs_f64());
        sent.insert(message.group_id.clone(), message.seq);
        next = ahead
            .get_mut(&message.group_id)
            .and_then(|held| held.remove(&(message.seq + 1)));
    }
    ahead.retain(|_, held| !held.is_empty());
    Ok(())
}

/// How often an open stream pings its client, so that a client whose node
/// vanished without a word (power cut, partition) notices within
/// `conclave_client`'s silence limit and moves to another node, and so that
/// load balancers see traffic on an idle connection.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(20);

/// WebSocket close code for "your session is over" (private-use range).
const CLOSE_SESSION_ENDED: u16 = 4001;

/// Pushes a device's messages as they arrive. The socket carries
/// [`StreamFrame`]s: the same JSON objects as `GET /v1/messages`, plus
/// `{"kind":"devices_changed"}` when the account's device list changed; the
/// device acknowledges with [`AckBody`] frames or over HTTP. The stream is
/// closed (code 4001) the moment the device is revoked or its session ends.
async fn push_loop(
    state: AppState,
    device: DeviceId,
    user: String,
    socket: WebSocket,
    notifications: broadcast::Receiver<Arc<Notice>>,
) -> Result<(), String> {
    let device_key = device.to_string();
    let mut acks = HashMap::new();
    let outcome = push_messages(&state, &device_key, user, socket, notifications, &mut acks).await;
    // What the device acknowledged is kept, however the stream ended.
    let kept = write_acks(&state, &device_key, &mut acks).await;
    outcome.and(kept)
}

/// How long a stream gathers a device's acknowledgements before it writes
/// them. A cursor that lags by this much costs nothing but a few messages
/// pushed again after a reconnect, which the device skips; writing every
/// acknowledgement at once cost a transaction each (and, on SQLite, a
/// flush), with the stream pushing nothing while it waited.
const ACK_WRITE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);
/// Most groups whose acknowledgements a stream holds before writing them.
const MAX_HELD_ACKS: usize = 256;

/// Writes the highest acknowledged position per group, and forgets them.
async fn write_acks(
    state: &AppState,
    device_key: &str,
    acks: &mut HashMap<String, u64>,
) -> Result<(), String> {
    for (group_id, seq) in acks.drain() {
        state
            .store
            .ack(device_key, &group_id, seq)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn push_messages(
    state: &AppState,
    device_key: &str,
    user: String,
    mut socket: WebSocket,
    mut notifications: broadcast::Receiver<Arc<Notice>>,
    acks: &mut HashMap<String, u64>,
) -> Result<(), String> {
    let device_key = device_key.to_owned();
    let _counted = crate::metrics::OpenStream::new();
    let mut sent: HashMap<String, u64> = HashMap::new();
    // When messages announced to this stream were accepted, for the
    // delivery-latency histogram, until they are pushed.
    let mut arrivals: HashMap<(String, u64), std::time::Instant> = HashMap::new();
    let mut groups: HashSet<String> = HashSet::new();
    let mut resync = true;
    let mut recheck = tokio::time::interval(session_recheck(&state.config));
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut ack_writes = tokio::time::interval(ACK_WRITE_INTERVAL);
    // Messages announced ahead of one still missing, per group, and when to
    // stop waiting for it.
    let mut ahead: HashMap<String, std::collections::BTreeMap<u64, (Pending, std::time::Instant)>> =
        HashMap::new();
    let mut gap_deadline: Option<tokio::time::Instant> = None;
    loop {
        if resync {
            // The fetch covers whatever was held back.
            for (group, held) in ahead.drain() {
                for (seq, (_, accepted)) in held {
                    arrivals.insert((group.clone(), seq), accepted);
                }
            }
            gap_deadline = None;
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
                    if let Some(accepted) = arrivals.remove(&(p.group_id.clone(), p.seq)) {
                        crate::metrics::METRICS
                            .delivery_latency
                            .observe(accepted.elapsed().as_secs_f64());
                    }
                }
            }
            resync = false;
            // Announced but not pending here (not ours, or acknowledged): forget.
            arrivals.clear();
        }
        tokio::select! {
            note = notifications.recv() => match note.as_deref() {
                Ok(Notice::SessionEnded { device_id }) if *device_id == device_key => {
                    return close_ended(socket, "session ended").await;
                }
                Ok(Notice::DevicesChanged { username }) if *username == user => {
                    socket
                        .send(Message::Text(encode_frame(&StreamFrame::DevicesChanged).into()))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                // A group this device created or joined on its own: follow it.
                Ok(Notice::Joined { device_id }) if *device_id == device_key => resync = true,
                Ok(Notice::SessionEnded { .. } | Notice::DevicesChanged { .. } | Notice::Joined { .. }) => {}
                // Appended through another node: fetch it from the database.
                Ok(Notice::Appended { group_id, seq, kind, accepted_ms }) => {
                    let unseen = sent.get(group_id).is_none_or(|s| seq > s);
                    if (groups.contains(group_id) && unseen) || *kind == MessageKind::Welcome {
                        let age = crate::auth::unix_millis().saturating_sub(*accepted_ms);
                        let accepted = std::time::Instant::now()
                            .checked_sub(std::time::Duration::from_millis(age))
                            .unwrap_or_else(std::time::Instant::now);
                        arrivals.insert((group_id.clone(), *seq), accepted);
                        resync = true;
                    }
                }
                Ok(Notice::Resync) => resync = true,
                Ok(Notice::GoingAway) => return close_going_away(socket).await,
                Ok(Notice::Message(p, accepted, frame)) => {
                    let last = sent.get(&p.group_id).copied();
                    let plain = p.kind.is_plain();
                    let member = groups.contains(&p.group_id);
                    match last {
                        // Already pushed (fetched meanwhile, or a repeat's notice).
                        Some(last) if member && p.seq <= last => {}
                        Some(last) if member && plain && p.seq == last + 1 => {
                            let text = frame.get_or_init(|| frame_of(p));
                            push_in_order(&mut socket, &mut sent, &mut ahead, p, text, *accepted).await?;
                            if ahead.is_empty() {
                                gap_deadline = None;
                            }
                        }
                        // Appends committed together are announced in no
                        // particular order: hold one that came early for a
                        // moment rather than ask the database.
                        Some(last) if member && plain && p.seq <= last + REORDER_WINDOW => {
                            ahead.entry(p.group_id.clone()).or_default().insert(p.seq, (p.clone(), *accepted));
                            gap_deadline.get_or_insert_with(|| tokio::time::Instant::now() + REORDER_WAIT);
                        }
                        _ if member || p.kind == MessageKind::Welcome => {
                            // Membership may have changed or we missed something: ask the database.
                            arrivals.insert((p.group_id.clone(), p.seq), *accepted);
                            resync = true;
                        }
                        _ => {}
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => resync = true,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            // A gap that did not fill in time: the database knows.
            _ = tokio::time::sleep_until(gap_deadline.unwrap_or_else(tokio::time::Instant::now)), if gap_deadline.is_some() => {
                resync = true;
            },
            _ = ack_writes.tick(), if !acks.is_empty() => {
                write_acks(state, &device_key, acks).await?;
            },
            _ = heartbeat.tick() => {
                socket.send(Message::Ping(Default::default())).await.map_err(|e| e.to_string())?;
            },
            _ = recheck.tick() => {
                // A notice from another node may have been lost: look anyway.
                // (One node alone loses none: its broadcast reports lag.)
                if state.shared_database() {
                    resync = true;
                }
                let session = state.store.device_session(&device_key).await.map_err(|e| e.to_string())?;
                let Some(session) = session.filter(|s| session_problem(s, &state.config).is_none()) else {
                    return close_ended(socket, "session ended").await;
                };
                // A device that holds its stream open is in use, even if it
                // sends no other request: keep its idle clock from running out.
                if idle_clock_due(session.last_seen_at, &state.config) {
                    state.store.touch_device(&device_key).await.map_err(|e| e.to_string())?;
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let body: AckBody = serde_json::from_str(text.as_str()).map_err(|e| format!("bad frame: {e}"))?;
                    for ack in body.acks {
                        let highest = acks.entry(ack.group_id).or_default();
                        *highest = (*highest).max(ack.seq);
                    }
                    // A device names its own groups; one naming thousands
                    // is written out at once rather than held in memory.
                    if acks.len() > MAX_HELD_ACKS {
                        write_acks(state, &device_key, acks).await?;
                    }
                }
                Some(Ok(Message::Close(_))) | None => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
            },
        }
    }
}

/// "Going away" (RFC 6455 §7.4.1): this node is shutting down; the client
/// should reconnect, to another node, at once.
const CLOSE_GOING_AWAY: u16 = 1001;

async fn close_going_away(mut socket: WebSocket) -> Result<(), String> {
    let frame = axum::extract::ws::CloseFrame {
        code: CLOSE_GOING_AWAY,
        reason: "relay node shutting down".into(),
    };
    socket
        .send(Message::Close(Some(frame)))
        .await
        .map_err(|e| e.to_string())
}

async fn close_ended(mut socket: WebSocket, reason: &'static str) -> Result<(), String> {
    let frame = axum::extract::ws::CloseFrame {
        code: CLOSE_SESSION_ENDED,
        reason: reason.into(),
    };
    socket
        .send(Message::Close(Some(frame)))
        .await
        .map_err(|e| e.to_string())
}

async fn send(socket: &mut WebSocket, p: &Pending) -> Result<(), String> {
    send_text(socket, &frame_of(p)).await
}

/// The stream frame for `p`: the same JSON object as `GET /v1/messages`.
fn frame_of(p: &Pending) -> String {
    encode_frame(&StreamFrame::Message(delivered(p)))
}

fn encode_frame(frame: &StreamFrame) -> String {
    // Strings and numbers: serializing cannot fail.
    serde_json::to_string(frame).unwrap_or_default()
}

async fn send_text(socket: &mut WebSocket, text: &str) -> Result<(), String> {
    socket
        .send(Message::Text(text.into()))
        .await
        .map_err(|e| e.to_string())?;
    crate::metrics::METRICS.delivered.inc();
    Ok(())
}
