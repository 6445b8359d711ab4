//! The rules a handshake message must meet before the relay appends it,
//! beyond what RFC 9420 itself checks ([`mls::process_handshake`]):
//!
//! - it is signed, in MLS, by the same device that signed the request;
//! - only members post, except an external commit to a public, unarchived
//!   channel, which may add its own sender and nothing else;
//! - every new leaf is a registered device of the user it names, with that
//!   device's key (and the bot owner its account has);
//! - a commit that adds members carries a Welcome covering exactly the key
//!   packages it used, and nothing else carries one;
//! - a commit to a public channel carries the new epoch's GroupInfo, so
//!   anyone can join it with no member online.
//!
//! An accepted commit enters the audit log (who added or removed which
//! device) in the same transaction that appends it.

use super::mls::{self, Framing, Handshake, Leaf};
use super::{ApiError, Notice, Poster, Relay};
use crate::error::{ApiResult, decode_b64};
use crate::events::{AuditAction, AuditEvent};
use crate::store::{CommitRecord, GroupRow, MessageKind, Pending};
use conclave_proto::PostMessage;

/// A handshake's position and kind once appended, or the group's current
/// epoch if another commit won the race.
pub(crate) type Appended = Result<(u64, MessageKind), u64>;

impl Relay<'_> {
    /// Checks a handshake message (`message`, read as `framing`) posted by
    /// `poster`, a member or not, and appends it.
    pub(crate) async fn accept_handshake(
        &self,
        group_id: &str,
        framing: Framing,
        poster: Poster,
        member: bool,
        message: &[u8],
        body: &PostMessage,
    ) -> ApiResult<Appended> {
        // Only handshakes need the public state; a commit that raced in since
        // the epoch check is caught here or by apply_commit's compare-and-swap.
        let group = self
            .store
            .group(group_id)
            .await?
            .ok_or(ApiError::NotFound("group"))?;
        if group.epoch != framing.epoch {
            return Ok(Err(group.epoch));
        }
        let (outcome, sender, external) =
            mls::process_handshake(group_id, &group.public_state, framing)?;
        if sender.credential.device() != poster.device_id
            || sender.signature_key != poster.signature_key
        {
            return Err(ApiError::Forbidden(
                "a handshake message must come from its sender's own device",
            ));
        }
        if external {
            external_join_allowed(&group, member, body)?;
        } else if !member {
            return Err(ApiError::Forbidden(
                "only current members may post to a group",
            ));
        }
        let device = poster.device_id.to_string();
        match outcome {
            Handshake::Proposal { state: new_state } => {
                if body.welcome.is_some() {
                    return Err(ApiError::BadRequest(
                        "a welcome travels only with a commit".into(),
                    ));
                }
                let seq = self
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
                self.check_new_leaves(&new_leaves).await?;
                if external
                    && (added.len() != 1
                        || added[0].credential.device() != poster.device_id
                        || !removed.is_empty())
                {
                    return Err(ApiError::InvalidMls(
                        "an external commit may only add the joining device".into(),
                    ));
                }
                let group_info = group_info_for(group_id, &group, body, &new_state, to_epoch)?;
                let welcome = welcome_for(body, &welcome_refs, added.is_empty() || external)?;
                let committer = sender.credential.user().as_str();
                let membership = |action, leaf: &Leaf| {
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
                    self.audit.entry(event)
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
                let seq = self.store.apply_commit(&record).await?;
                if external && seq.is_ok() {
                    self.notifier.tell(Notice::Joined {
                        device_id: device.clone(),
                    });
                }
                if let (Ok(seq), Some(welcome)) = (&seq, welcome) {
                    self.notifier.message(Pending {
                        group_id: group_id.to_owned(),
                        seq: seq + 1,
                        kind: MessageKind::Welcome,
                        payload: welcome.into(),
                    });
                }
                tracing::info!(group = %group_id, epoch = to_epoch, added = added.len(), removed = removed.len(), "commit accepted");
                Ok(seq.map(|seq| (seq, MessageKind::Commit)))
            }
        }
    }

    /// Every new leaf must be a registered device of the user it names,
    /// with that device's key, and name the bot owner its account has.
    async fn check_new_leaves(&self, new_leaves: &[Leaf]) -> ApiResult<()> {
        for leaf in new_leaves {
            let registered = self
                .store
                .device(&leaf.credential.device().to_string())
                .await?;
            let owner = self
                .store
                .bot_owner(leaf.credential.user().as_str())
                .await?;
            let genuine = registered.is_some_and(|d| {
                d.username == leaf.credential.user().as_str() && d.public_key == leaf.signature_key
            }) && leaf.credential.bot_owner().map(|o| o.as_str()) == owner.as_deref();
            if !genuine {
                return Err(ApiError::InvalidMls(format!(
                    "leaf for {} is not a registered device of that user",
                    leaf.credential.user()
                )));
            }
        }
        Ok(())
    }
}

/// An external commit joins a public, unarchived channel, by a device not
/// in it yet, which needs no Welcome.
fn external_join_allowed(group: &GroupRow, member: bool, body: &PostMessage) -> ApiResult<()> {
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
    if body.welcome.is_some() {
        return Err(ApiError::BadRequest(
            "an external commit adds only its sender, who needs no welcome".into(),
        ));
    }
    Ok(())
}

/// A public channel keeps the GroupInfo of its latest epoch, so that anyone
/// can join it without a member online: a commit to one must carry it.
fn group_info_for(
    group_id: &str,
    group: &GroupRow,
    body: &PostMessage,
    new_state: &[u8],
    to_epoch: u64,
) -> ApiResult<Option<Vec<u8>>> {
    match (&body.group_info, group.public) {
        (Some(encoded), true) => {
            let bytes = decode_b64("group_info", encoded)?;
            mls::check_group_info(&bytes, group_id, new_state, to_epoch)?;
            Ok(Some(bytes))
        }
        (None, true) => Err(ApiError::BadRequest(
            "a commit to a public channel must carry the new epoch's group_info".into(),
        )),
        (_, false) => Ok(None),
    }
}

/// The Welcome a commit that adds members (by a member) must carry,
/// covering exactly the key packages it used; anything else carries none.
fn welcome_for(
    body: &PostMessage,
    welcome_refs: &[Vec<u8>],
    adds_no_one: bool,
) -> ApiResult<Option<Vec<u8>>> {
    match (body.welcome.as_deref(), adds_no_one) {
        (Some(encoded), false) => {
            let bytes = decode_b64("welcome", encoded)?;
            mls::check_welcome(&bytes, welcome_refs)?;
            Ok(Some(bytes))
        }
        (None, false) => Err(ApiError::BadRequest(
            "a commit that adds members needs a welcome".into(),
        )),
        (Some(_), true) => Err(ApiError::BadRequest(
            "a welcome needs a commit that adds members".into(),
        )),
        (None, true) => Ok(None),
    }
}

fn device_ids(leaves: &[Leaf]) -> Vec<String> {
    leaves
        .iter()
        .map(|leaf| leaf.credential.device().to_string())
        .collect()
}
