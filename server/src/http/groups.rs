//! `/v1/groups/…` beyond messages, `/v1/channels/public` and
//! `/v1/commands`: creating a group, its public listing, its settings
//! (retention, history sharing, archive) and the directory of public
//! channels and slash commands.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_proto::{
    ArchiveAnswer, ChannelNameAnswer, ChannelNameBody, ChannelTopicAnswer, ChannelTopicBody,
    CreateGroupAnswer, CreateGroupBody, GroupInfoAnswer, GroupRetentionAnswer, GroupRetentionBody,
    HistorySharingAnswer, HistorySharingBody, ListedChannel, PublicChannels, SlashCommand,
    SlashCommands,
};

use crate::auth::Signed;
use crate::error::decode_b64;
use crate::error::{ApiError, ApiResult};
use crate::events::{AuditAction, AuditEvent};
use crate::relay::mls;
use crate::store::NewGroup;
use crate::{AppState, Notice};

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

pub(crate) async fn create_group(
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
    let mut created = AuditEvent::success(AuditAction::GroupCreated, &user)
        .device(&device)
        .target(format!("group:{}", group.group_id));
    if let Some(listing) = &body.public {
        created = created.detail("public_name", &listing.name);
    }
    match state
        .store
        .create_group(
            &group.group_id,
            group.epoch,
            &group.state,
            &device,
            &user,
            listing.as_ref(),
            state.audit.entry(created),
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
    Ok(Json(CreateGroupAnswer {
        epoch: group.epoch,
        group_id: group.group_id,
    }))
}

/// The workspace's public channels: name, topic, member count, and whether
/// the asking device is in each.
pub(crate) async fn public_channels(
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
pub(crate) async fn slash_commands(
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
pub(crate) async fn group_info(
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
pub(crate) async fn set_public_name(
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
    let renamed = state.audit.entry(
        AuditEvent::success(AuditAction::GroupRenamed, &user)
            .device(signed.device_id)
            .target(format!("group:{group_id}"))
            .detail("name", &body.name),
    );
    if !state
        .store
        .set_public_name(&group_id, &body.name, renamed)
        .await?
    {
        return Err(ApiError::Conflict("public channel with this name"));
    }
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
pub(crate) async fn set_public_topic(
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

/// The audit entry of a change to one group's policy, which the store
/// appends in the change's transaction.
fn group_policy_entry(
    state: &AppState,
    signed: &Signed,
    group_id: &str,
    setting: &'static str,
    value: impl ToString,
) -> ApiResult<conclave_audit::Event> {
    Ok(state.audit.entry(
        AuditEvent::success(AuditAction::PolicyChanged, signed.username()?)
            .device(signed.device_id)
            .target(format!("group:{group_id}"))
            .detail(setting, value),
    ))
}

/// Lets the channel's members hand new members its earlier history (or
/// stops them): the creator or an admin decides.
pub(crate) async fn set_history_sharing(
    State(state): State<AppState>,
    group_id: Result<Path<String>, PathRejection>,
    signed: Signed,
) -> ApiResult<Json<HistorySharingAnswer>> {
    let user = signed.username()?.to_owned();
    let Path(group_id) = group_id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let body: HistorySharingBody = signed.json()?;
    require_manager(&state, &user, &group_id, Manage::AsMember).await?;
    let changed = group_policy_entry(&state, &signed, &group_id, "history_sharing", body.allowed)?;
    state
        .store
        .set_history_sharing(&group_id, body.allowed, changed)
        .await?;
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
        .any(|r| r == crate::accounts::ADMIN_ROLE);
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
pub(crate) async fn set_retention(
    State(state): State<AppState>,
    group_id: Result<Path<String>, PathRejection>,
    signed: Signed,
) -> ApiResult<Json<GroupRetentionAnswer>> {
    let user = signed.username()?.to_owned();
    let Path(group_id) = group_id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let body: GroupRetentionBody = signed.json()?;
    require_manager(&state, &user, &group_id, Manage::AsMember).await?;
    let days = body.days.map_or("workspace".to_owned(), |d| d.to_string());
    let changed = group_policy_entry(&state, &signed, &group_id, "retention_days", days)?;
    state
        .store
        .set_group_retention(&group_id, body.days, changed)
        .await?;
    Ok(Json(GroupRetentionAnswer {
        group_id,
        retention_days: body.days,
    }))
}

/// Archives a group: a current member who created it or is an admin may, and
/// so may a workspace admin who is not a member (the audit entry says so);
/// from then on the relay refuses every post to it, and members learn it at
/// their next fetch.
pub(crate) async fn archive_group(
    State(state): State<AppState>,
    group_id: Result<Path<String>, PathRejection>,
    signed: Signed,
) -> ApiResult<Json<ArchiveAnswer>> {
    let user = signed.username()?.to_owned();
    let Path(group_id) = group_id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let member = require_manager(&state, &user, &group_id, Manage::AsMemberOrAdmin).await?;
    let mut archived = AuditEvent::success(AuditAction::GroupArchived, &user)
        .device(signed.device_id)
        .target(format!("group:{group_id}"));
    if !member {
        archived = archived.detail("as", "admin_not_member");
    }
    // Logged only if this request archived it (not if it was already).
    state
        .store
        .archive_group(&group_id, state.audit.entry(archived))
        .await?;
    Ok(Json(ArchiveAnswer {
        archived: true,
        group_id,
    }))
}
