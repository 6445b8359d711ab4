//! `POST /v1/groups/{group_id}/messages`, `GET /v1/messages` and
//! `POST /v1/messages/ack`: the message path's requests, one call each into
//! [`Relay`](crate::relay::Relay).

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::Request;
use conclave_proto::{AckAnswer, AckBody, FetchAnswer, FetchQuery, PostAnswer};

use crate::AppState;
use crate::auth::{Signed, SignedUnspent, Unverified};
use crate::error::{ApiError, ApiResult};
use crate::relay::{Poster, Relay};

/// The device that signed `signed`, for the core.
fn poster(signed: &Signed) -> Poster {
    Poster {
        device_id: signed.device_id,
        signature_key: signed.public_key.to_bytes(),
    }
}

pub(crate) async fn post_message(
    State(state): State<AppState>,
    group_id: Result<Path<String>, PathRejection>,
    request: Request<Body>,
) -> ApiResult<Json<PostAnswer>> {
    let unverified = Unverified::read(request, &state).await?;
    // A well-formed post's admission is read in the same query as the
    // signing device's row: one trip to the database, not two. Nothing it
    // says is acted on before the signature holds; a post that does not
    // parse is refused only then too, as any request with a bad signature
    // is refused before its body is judged.
    let parsed = group_id
        .map_err(|e| ApiError::BadRequest(e.body_text()))
        .and_then(|Path(group_id)| Relay::parse_post(&group_id, unverified.body()));
    let device = unverified.claimed_device();
    let (session, admission) = match &parsed {
        Ok(post) => {
            state
                .store
                .device_session_and_admission(device, post.group_id(), post.hash())
                .await?
        }
        Err(_) => (state.store.device_session(device).await?, None),
    };
    let SignedUnspent { signed, nonce } = unverified.check(&state, session).await?;
    let relay = state.relay();
    // The nonce is spent whatever the answer: in the append's transaction
    // when a message is appended, before anything else for a handshake, and
    // here for everything else (a refusal, a repeat).
    let mut unspent = Some(nonce);
    let answer = async {
        signed.username()?;
        relay
            .post(parsed?, admission, poster(&signed), &mut unspent)
            .await
    }
    .await;
    if let Some(nonce) = unspent
        && !state.store.spend_nonce(nonce).await?
    {
        return Err(ApiError::Replayed);
    }
    Ok(Json(answer?))
}

pub(crate) async fn fetch_messages(
    State(state): State<AppState>,
    query: Result<Query<FetchQuery>, QueryRejection>,
    signed: Signed,
) -> ApiResult<Json<FetchAnswer>> {
    let user = signed.username()?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let device = signed.device_id.to_string();
    let answer = state.relay().fetch(user, &device, query.limit).await?;
    Ok(Json(answer))
}

pub(crate) async fn ack_messages(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<AckAnswer>> {
    signed.username()?;
    let body: AckBody = signed.json()?;
    let device = signed.device_id.to_string();
    Ok(Json(state.relay().ack(&device, &body).await?))
}
