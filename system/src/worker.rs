//! The worker's HTTP API: accepts a query, runs it over its lakes, answers with the rows.
//!
//! Events (target `stampede::query`): `accepted`, then exactly one of `succeeded` or `failed`,
//! each with the `query_id`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use datafusion::error::DataFusionError;
use serde::{Deserialize, Serialize};

use crate::engine::{Answer, Engine, EngineError, LakeRef};

/// The target of query lifecycle events.
pub const QUERY_EVENTS: &str = "stampede::query";

/// A query as submitted to a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// The tenant the researcher works for.
    pub tenant: String,
    /// Who submitted it.
    pub user: String,
    /// SQL against the `telemetry` table.
    pub sql: String,
    /// The lakes to run it over.
    pub lakes: Vec<LakeRef>,
}

/// A worker's answer to a query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryResponse {
    /// The id the worker gave the query.
    pub query_id: String,
    /// The rows, when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
    /// Why not, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A worker node.
#[derive(Debug)]
pub struct Worker {
    name: String,
    engine: Engine,
    next_id: AtomicU64,
}

impl Worker {
    /// A worker called `name` (its query ids start with it).
    pub fn new(name: impl Into<String>, engine: Engine) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            engine,
            next_id: AtomicU64::new(0),
        })
    }

    /// The HTTP routes: `POST /v1/queries`.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/v1/queries", post(submit))
            .with_state(self.clone())
    }

    async fn run(&self, req: QueryRequest) -> (StatusCode, QueryResponse) {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let query_id = format!("{}-q{n}", self.name);
        tracing::info!(
            target: QUERY_EVENTS,
            query_id = %query_id,
            tenant = %req.tenant,
            user = %req.user,
            lakes = req.lakes.len() as u64,
            "accepted"
        );
        match self.engine.query(&req.sql, &req.lakes).await {
            Ok(answer) => {
                tracing::info!(target: QUERY_EVENTS, query_id = %query_id, rows = answer.rows.len() as u64, "succeeded");
                (
                    StatusCode::OK,
                    QueryResponse {
                        query_id,
                        answer: Some(answer),
                        error: None,
                    },
                )
            }
            Err(e) => {
                let (status, reason) = classify(&e);
                tracing::info!(target: QUERY_EVENTS, query_id = %query_id, reason, error = %e, "failed");
                (
                    status,
                    QueryResponse {
                        query_id,
                        answer: None,
                        error: Some(e.to_string()),
                    },
                )
            }
        }
    }
}

async fn submit(
    State(worker): State<Arc<Worker>>,
    Json(req): Json<QueryRequest>,
) -> (StatusCode, Json<QueryResponse>) {
    let (status, body) = worker.run(req).await;
    (status, Json(body))
}

/// Maps an engine error to an HTTP status and a stable reason word for the event log.
fn classify(e: &EngineError) -> (StatusCode, &'static str) {
    match e {
        EngineError::NoLakes | EngineError::BadBucket(_) | EngineError::UnknownRegion(_) => {
            (StatusCode::BAD_REQUEST, "bad_request")
        }
        EngineError::DataFusion(
            DataFusionError::SQL(..) | DataFusionError::Plan(_) | DataFusionError::SchemaError(..),
        ) => (StatusCode::BAD_REQUEST, "invalid_sql"),
        EngineError::Store(_) | EngineError::DataFusion(_) => {
            (StatusCode::BAD_GATEWAY, "execution")
        }
    }
}
