//! WebAuthn ceremonies between their two requests: the relay keeps each
//! one's state for `CHALLENGE_TTL_SECS`, for one user and one purpose, and
//! hands it out once.

use super::factors::CHALLENGE_TTL_SECS;
use crate::error::{ApiError, ApiResult};
use crate::store::{ChallengeRow, Store};

/// Takes a challenge out of the store if it belongs to `user`, is for
/// `purpose` and has not expired. Whatever the answer, it is gone after this.
pub(crate) async fn take_challenge(
    store: &Store,
    id: &str,
    user: &str,
    purpose: &str,
) -> ApiResult<Option<ChallengeRow>> {
    let challenge = store.take_challenge(id).await?;
    Ok(challenge.filter(|c| {
        c.username == user && c.purpose == purpose && c.expires_at > store.clock().unix_now()
    }))
}

pub(crate) async fn put_challenge(
    store: &Store,
    user: &str,
    purpose: &str,
    state: &impl serde::Serialize,
) -> ApiResult<String> {
    let id = hex::encode(rand::random::<[u8; 16]>());
    let state =
        serde_json::to_string(state).map_err(|e| ApiError::Internal(format!("challenge: {e}")))?;
    store
        .put_challenge(
            &id,
            &ChallengeRow {
                username: user.to_owned(),
                purpose: purpose.to_owned(),
                state,
                expires_at: store.clock().unix_now() + CHALLENGE_TTL_SECS,
            },
        )
        .await?;
    Ok(id)
}
