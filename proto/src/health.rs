//! Health checks, for load balancers and orchestrators: unsigned, and
//! answered without a body to read.

use serde::{Deserialize, Serialize};

/// The answer to `GET /healthz` (and `/v1/health`) and `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthAnswer {
    /// With [`HealthStatus::NotReady`]: why, for the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How the node is.
    pub status: HealthStatus,
}

impl HealthAnswer {
    /// An answer that needs no reason.
    pub fn new(status: HealthStatus) -> Self {
        HealthAnswer {
            reason: None,
            status,
        }
    }

    /// A node that is not ready, and why.
    pub fn not_ready(reason: impl Into<String>) -> Self {
        HealthAnswer {
            reason: Some(reason.into()),
            status: HealthStatus::NotReady,
        }
    }
}

/// How a relay node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// `/healthz`: the process answers (says nothing about the database).
    Ok,
    /// `/readyz`, status 200: the database answers and holds every migration.
    Ready,
    /// `/readyz`, status 503: send no traffic here for now.
    NotReady,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pinned;

    #[test]
    fn health_answers_are_pinned() {
        pinned(&HealthAnswer::new(HealthStatus::Ok), r#"{"status":"ok"}"#);
        pinned(
            &HealthAnswer::new(HealthStatus::Ready),
            r#"{"status":"ready"}"#,
        );
        pinned(
            &HealthAnswer::not_ready("database unavailable"),
            r#"{"reason":"database unavailable","status":"not_ready"}"#,
        );
    }
}
