//! HTTP handlers: parse, call one domain step, map the result. Status codes
//! come only from [`ApiError`].

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_crypto::Username;
use conclave_proto::{
    ArchiveAnswer, ChannelNameAnswer, ChannelNameBody, ChannelTopicAnswer, ChannelTopicBody,
    ClaimedKeyPackage, ClaimedKeyPackages, CreateGroupAnswer, CreateGroupBody, GroupInfoAnswer,
    GroupRetentionAnswer, GroupRetentionBody, HealthAnswer, HealthStatus, HistorySharingAnswer,
    HistorySharingBody, KeyPackageClaim, KeyPackageStock, KeyPackageUpload, ListedChannel,
    PublicChannels, SlashCommand, SlashCommands, routes,
};

use crate::auth::{Signed, unix_now};
use crate::error::{ApiError, ApiResult};
use crate::events::{AuditAction, AuditEvent};
use crate::http::{messages, stream};
use crate::limits::{self, ip_key};
use crate::relay::key_packages::MAX_KEY_PACKAGE_STOCK;
use crate::relay::mls;
use crate::store::{KeyPackagesAdded, NewGroup, NewKeyPackage};
use crate::{AppState, Notice};

/// Most key packages one upload may carry.
const MAX_UPLOAD: usize = 200;

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
        .route(routes::GROUP_MESSAGES, post(messages::post_message))
        .route(routes::GROUP_ARCHIVE, post(archive_group))
        .route(routes::GROUP_RETENTION, post(set_retention))
        .route(routes::GROUP_INFO, get(group_info))
        .route(routes::GROUP_HISTORY_SHARING, post(set_history_sharing))
        .route(routes::GROUP_TOPIC, post(set_public_topic))
        .route(routes::GROUP_NAME, post(set_public_name))
        .route(routes::PUBLIC_CHANNELS, get(public_channels))
        .route(routes::COMMANDS, get(slash_commands))
        .route(routes::MESSAGES, get(messages::fetch_messages))
        .route(routes::MESSAGES_ACK, post(messages::ack_messages))
        .route(routes::STREAM, get(stream::stream))
        .merge(crate::account_api::routes())
        .merge(crate::audit_api::routes())
        .merge(crate::blob_api::routes())
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}

pub(crate) use crate::error::decode_b64;

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
    state.relay().key_package_stock(&device).await.map(Json)
}

async fn key_package_stock(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<KeyPackageStock>> {
    signed.username()?;
    state
        .relay()
        .key_package_stock(&signed.device_id.to_string())
        .await
        .map(Json)
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
