//! The HTTP shell around the relay's core: extract and check a request,
//! make one call into [`crate::relay`] (or the account code), and answer
//! with a `conclave_proto` type. Status codes come only from
//! [`ApiError`](crate::ApiError).
//!
//! One file per resource; [`router`] lists every route.

pub(crate) mod accounts;
pub(crate) mod audit;
pub(crate) mod blobs;
pub(crate) mod groups;
pub(crate) mod health;
pub(crate) mod key_packages;
pub(crate) mod messages;
pub(crate) mod stream;
pub(crate) mod tiles;

use axum::Router;
use axum::routing::{get, post};
use conclave_proto::routes;

use crate::AppState;
use crate::error::ApiError;

/// Every route of the relay.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(routes::HEALTH, get(health::health))
        .route(routes::HEALTHZ, get(health::health))
        .route(routes::READYZ, get(health::ready))
        .route(
            routes::KEY_PACKAGES,
            post(key_packages::upload_key_packages),
        )
        .route(
            routes::KEY_PACKAGE_STOCK,
            get(key_packages::key_package_stock),
        )
        .route(
            routes::KEY_PACKAGES_CLAIM,
            post(key_packages::claim_key_packages),
        )
        .route(routes::GROUPS, post(groups::create_group))
        .route(routes::GROUP_MESSAGES, post(messages::post_message))
        .route(routes::GROUP_ARCHIVE, post(groups::archive_group))
        .route(routes::GROUP_RETENTION, post(groups::set_retention))
        .route(routes::GROUP_INFO, get(groups::group_info))
        .route(
            routes::GROUP_HISTORY_SHARING,
            post(groups::set_history_sharing),
        )
        .route(routes::GROUP_TOPIC, post(groups::set_public_topic))
        .route(routes::GROUP_NAME, post(groups::set_public_name))
        .route(routes::PUBLIC_CHANNELS, get(groups::public_channels))
        .route(routes::COMMANDS, get(groups::slash_commands))
        .route(routes::MESSAGES, get(messages::fetch_messages))
        .route(routes::MESSAGES_ACK, post(messages::ack_messages))
        .route(routes::STREAM, get(stream::stream))
        .merge(accounts::routes())
        .merge(audit::routes())
        .merge(tiles::routes())
        .merge(blobs::routes())
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}
