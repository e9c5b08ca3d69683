//! The replay client: submits each query of a trace at its virtual time and records the answer.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use sha2::{Digest, Sha256};
use stampede_system::http_client::send_collect;
use stampede_system::{Answer, LakeRef, QueryRequest, QueryResponse};

use crate::net::SimDialer;

/// The target of the replay client's events.
pub const TRAFFIC_EVENTS: &str = "stampede::traffic";

/// One query to submit, resolved against the world.
#[derive(Debug, Clone)]
pub struct Submission {
    /// Position in the trace, from 0.
    pub seq: u64,
    /// When to submit, from the start of the run.
    pub at: Duration,
    /// The worker that gets it, as `host:port`.
    pub worker: (String, u16),
    /// The request body.
    pub request: QueryRequest,
}

/// What came back for one submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The submission's position in the trace.
    pub seq: u64,
    /// HTTP status, or 0 when no response arrived.
    pub status: u16,
    /// The rows, when the query succeeded, normalised (sorted).
    pub answer: Option<Answer>,
}

/// Replays `submissions` in order and collects the replies into `replies`.
pub async fn replay(
    submissions: Vec<Submission>,
    replies: Rc<RefCell<Vec<Reply>>>,
) -> turmoil::Result {
    let mut tasks = tokio::task::JoinSet::new();
    let start = tokio::time::Instant::now();
    for sub in submissions {
        tokio::time::sleep_until(start + sub.at).await;
        let replies = replies.clone();
        tasks.spawn_local(async move {
            let reply = submit(sub).await;
            replies.borrow_mut().push(reply);
        });
    }
    while tasks.join_next().await.is_some() {}
    replies.borrow_mut().sort_by_key(|r| r.seq);
    Ok(())
}

async fn submit(sub: Submission) -> Reply {
    let seq = sub.seq;
    tracing::info!(
        target: TRAFFIC_EVENTS,
        seq,
        tenant = %sub.request.tenant,
        lakes = sub.request.lakes.len() as u64,
        worker = %sub.worker.0,
        "submitted"
    );
    let body = serde_json::to_vec(&sub.request).expect("a request serialises");
    let req = http::Request::post(format!(
        "http://{}:{}/v1/queries",
        sub.worker.0, sub.worker.1
    ))
    .header(http::header::CONTENT_TYPE, "application/json")
    .body(Full::new(Bytes::from(body)))
    .expect("a valid request");
    let dialer: Arc<SimDialer> = Arc::new(SimDialer);
    match send_collect(dialer.as_ref(), req).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let parsed: Option<QueryResponse> = serde_json::from_slice(resp.body()).ok();
            let answer = parsed
                .as_ref()
                .and_then(|p| p.answer.clone())
                .map(Answer::normalised);
            let rows = answer.as_ref().map_or(0, |a| a.rows.len() as u64);
            tracing::info!(
                target: TRAFFIC_EVENTS,
                seq,
                status,
                query_id = parsed.as_ref().map_or("", |p| p.query_id.as_str()),
                rows,
                rows_digest = %answer.as_ref().map(rows_digest).unwrap_or_default(),
                "answered"
            );
            Reply {
                seq,
                status,
                answer,
            }
        }
        Err(e) => {
            tracing::info!(target: TRAFFIC_EVENTS, seq, error = %e, "unanswered");
            Reply {
                seq,
                status: 0,
                answer: None,
            }
        }
    }
}

/// sha256 over the normalised rows, so the log pins the answer without holding it.
pub fn rows_digest(answer: &Answer) -> String {
    let mut h = Sha256::new();
    for row in &answer.rows {
        for cell in row {
            h.update(cell.as_bytes());
            h.update([0x1f]);
        }
        h.update([0x1e]);
    }
    hex::encode(&h.finalize()[..16])
}

/// The lakes as the system addresses them.
pub fn lake_ref(bucket: String, region: &str) -> LakeRef {
    LakeRef {
        bucket,
        region: region.to_string(),
    }
}
