//! Accepting a posted MLS message: which group, whether the poster may post
//! there, whether it is a repeat, whether it is for the current epoch; then
//! the append (application messages here, handshakes through
//! [`commit_rules`](super::commit_rules)) and the notice that delivers it.

use conclave_proto::{PostAnswer, PostMessage};

use super::mls::{self, Wire};
use super::{ApiError, Poster, Relay};
use crate::error::{ApiResult, decode_b64};
use crate::store::{Admission, Append, MessageKind, Nonce, PayloadHash, Pending};

/// A post's body parsed, its message decoded and hashed: what the
/// relay's admission reads need, ready before the request's signature is
/// checked (see `http::messages::post_message`).
#[derive(Debug)]
pub(crate) struct ParsedPost {
    group_id: String,
    body: PostMessage,
    message: Vec<u8>,
    hash: PayloadHash,
}

impl ParsedPost {
    /// The group the URL names.
    pub(crate) fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The hash of the decoded message.
    pub(crate) fn hash(&self) -> &PayloadHash {
        &self.hash
    }
}

impl Relay<'_> {
    /// `body` as a post to `group_id`: JSON with a message in base64,
    /// decoded and hashed; a 400 naming what is wrong otherwise.
    pub(crate) fn parse_post(group_id: &str, body: &[u8]) -> ApiResult<ParsedPost> {
        let body: PostMessage = crate::auth::parse_json(body)?;
        let message = decode_b64("message", &body.message)?;
        let hash = PayloadHash::of(&message);
        Ok(ParsedPost {
            group_id: group_id.to_owned(),
            body,
            message,
            hash,
        })
    }

    /// Accepts `post`, posted by `poster`, given the group's [`Admission`]
    /// for the poster (`None`: there is no such group), and tells the
    /// group's devices once it is durable.
    ///
    /// The request's `nonce` is taken and spent here when the post gets as
    /// far as changing anything: in the append's transaction for an
    /// application message, before anything else for a handshake. What is
    /// left in it the caller spends.
    pub(crate) async fn post(
        &self,
        post: ParsedPost,
        admission: Option<Admission>,
        poster: Poster,
        nonce: &mut Option<Nonce>,
    ) -> ApiResult<PostAnswer> {
        let ParsedPost {
            group_id,
            body,
            message,
            hash: payload_hash,
        } = post;
        let group_id = group_id.as_str();
        let framing = mls::framing(&message)?;
        if framing.group_id != group_id {
            return Err(ApiError::BadRequest(
                "message is for another group than the URL names".into(),
            ));
        }
        let device = poster.device_id.to_string();
        let Admission {
            access,
            earlier_post,
        } = admission.ok_or(ApiError::NotFound("group"))?;
        if let Some((seq, first_sender)) = earlier_post {
            // A retry of a message or commit already accepted (the first answer
            // was lost, perhaps with the node that gave it): its position again,
            // and nothing new to deliver. Checked before membership and epoch,
            // which the accepted message itself may have changed (a leave, say),
            // so only for the device that posted it first: anyone else who
            // replays a ciphertext they saw gets the answer any post of theirs
            // would get, and learns nothing about the group.
            if first_sender == device {
                return Ok(PostAnswer {
                    duplicate: true,
                    seq,
                });
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
        // channel; the commit rules decide.
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
        let epoch = framing.epoch;
        if epoch != access.epoch {
            return Err(ApiError::WrongEpoch {
                current: access.epoch,
                got: epoch,
            });
        }
        let appended = match framing.kind {
            Wire::Application => {
                if body.welcome.is_some() {
                    return Err(ApiError::BadRequest(
                        "a welcome travels only with a commit".into(),
                    ));
                }
                let append = Append {
                    group_id: group_id.to_owned(),
                    epoch: access.epoch,
                    kind: MessageKind::Application,
                    sender: device,
                    payload: message.clone(),
                    payload_hash,
                    public_state: None,
                };
                let seq = match nonce.take() {
                    Some(nonce) => self
                        .store
                        .append_spending(append, nonce)
                        .await?
                        .ok_or(ApiError::Replayed)?,
                    None => self.store.append_message(append).await?,
                };
                seq.map(|seq| (seq, MessageKind::Application))
            }
            Wire::Handshake => {
                if let Some(nonce) = nonce.take()
                    && !self.store.spend_nonce(nonce).await?
                {
                    return Err(ApiError::Replayed);
                }
                self.accept_handshake(group_id, framing, poster, access.member, &message, &body)
                    .await?
            }
        };
        let (seq, kind) = appended.map_err(|current| ApiError::WrongEpoch {
            current,
            got: epoch,
        })?;
        self.notifier.message(Pending {
            group_id: group_id.to_owned(),
            seq,
            kind,
            payload: message.into(),
        });
        Ok(PostAnswer {
            duplicate: false,
            seq,
        })
    }
}
