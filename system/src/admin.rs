//! The operator's endpoints every node serves: flush its caches, cap its drain rate.
//!
//! Events (target [`crate::coordinator::QUERY_EVENTS`]'s sibling `stampede::operator`):
//! `caches_flushed`, `drain_set` (`factor_permille`, 0 when lifted).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde::{Deserialize, Serialize};

use crate::cloud::Cloud;

/// The target of operator events.
pub const OPERATOR_EVENTS: &str = "stampede::operator";

/// The port a worker serves its operator endpoints on.
pub const ADMIN_PORT: u16 = 8081;

/// A cap on a node's local rates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainRate {
    /// The fraction of each local limit to use, 0.01 to 1; absent lifts the cap.
    #[serde(default)]
    pub factor: Option<f64>,
}

/// The routes: `POST /v1/admin/caches/flush`, `POST /v1/admin/drain`.
pub fn router(cloud: Arc<Cloud>) -> Router {
    Router::new()
        .route("/v1/admin/caches/flush", post(flush))
        .route("/v1/admin/drain", post(drain))
        .with_state(cloud)
}

async fn flush(State(cloud): State<Arc<Cloud>>) -> StatusCode {
    cloud.flush_caches();
    tracing::info!(target: OPERATOR_EVENTS, "caches_flushed");
    StatusCode::OK
}

async fn drain(State(cloud): State<Arc<Cloud>>, body: Bytes) -> StatusCode {
    let Ok(rate) = serde_json::from_slice::<DrainRate>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    cloud.guard().set_manual_drain(rate.factor);
    let factor_permille = rate
        .factor
        .map_or(0, |f| (f.clamp(0.01, 1.0) * 1000.0) as u64);
    tracing::info!(target: OPERATOR_EVENTS, factor_permille, "drain_set");
    StatusCode::OK
}
