//! `GET /v1/health`, `/healthz` and `/readyz`: whether the process answers,
//! and whether it is ready for traffic.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use conclave_proto::{HealthAnswer, HealthStatus};

use crate::AppState;

/// The process is alive (it answers); says nothing about the database.
pub(crate) async fn health() -> Json<HealthAnswer> {
    Json(HealthAnswer::new(HealthStatus::Ok))
}

/// Ready for traffic: the database answers within two seconds and holds
/// every migration. A load balancer sends requests only to ready nodes.
pub(crate) async fn ready(State(state): State<AppState>) -> (StatusCode, Json<HealthAnswer>) {
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
