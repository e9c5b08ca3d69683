//! The replay client: submits each query of a trace at its virtual time and records the answer.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use sha2::{Digest, Sha256};
use stampede_system::api::ErrorBody;
use stampede_system::exchange::send_collect;
use stampede_system::{Answer, Phase, Record, Status};

use crate::world::net::SimDialer;

/// The target of the replay client's events.
pub const TRAFFIC_EVENTS: &str = crate::judge::invariants::vocabulary::TRAFFIC_TARGET;

/// How long the client waits for one answer.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the client asks about a query it is waiting for.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// How many times the client comes back after being told to (429 or 503 with `Retry-After`).
pub const RESUBMITS: u32 = 5;

/// One query to submit, resolved against the world.
#[derive(Debug, Clone)]
pub struct Submission {
    /// Position in the trace, from 0.
    pub seq: u64,
    /// When to submit, from the start of the run.
    pub at: Duration,
    /// The coordinators to try, as `host:port`, in order: the first that answers gets it.
    pub coordinators: Vec<(String, u16)>,
    /// The query.
    pub record: Record,
}

/// What came back for one submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The submission's position in the trace.
    pub seq: u64,
    /// 200 when the query succeeded; otherwise the refusal's HTTP status, or 500 failed,
    /// 504 deadline exceeded, 499 cancelled; 0 when no answer came.
    pub status: u16,
    /// The rows, when the query succeeded, normalised (sorted).
    pub answer: Option<Answer>,
}

/// The target of the client's meter.
pub const METER_EVENTS: &str = crate::judge::invariants::vocabulary::METER_TARGET;

/// How often the client reports its meter.
pub const METER_EVERY: Duration = Duration::from_secs(1);

/// What the client counts, as a user sees the system: queries submitted, ended and failed.
/// Reported every [`METER_EVERY`] as the `traffic` meter, a path that does not go through the
/// system's logs.
#[derive(Debug, Clone, Copy, Default)]
struct Meter {
    submitted: u64,
    ended: u64,
    failed: u64,
}

impl Meter {
    fn report(&self) {
        tracing::info!(
            target: METER_EVENTS,
            in_flight = self.submitted - self.ended,
            submitted = self.submitted,
            ended = self.ended,
            failed = self.failed,
            "traffic"
        );
    }
}

/// Whether a reply is a failure the user sees, by its final status (0 when no answer came, the
/// last refusal's status, or the answer's): the one definition,
/// [`crate::judge::invariants::user_visible_failure`], which `alert_fires` judges pages against.
fn user_visible_failure(status: u16) -> bool {
    crate::judge::invariants::user_visible_failure(u64::from(status))
}

/// Replays `submissions` in order and collects the replies into `replies`.
pub async fn replay(
    submissions: Vec<Submission>,
    replies: Rc<RefCell<Vec<Reply>>>,
) -> turmoil::Result {
    let mut tasks = tokio::task::JoinSet::new();
    let start = tokio::time::Instant::now();
    let meter = Rc::new(RefCell::new(Meter::default()));
    let ticker = tokio::task::spawn_local({
        let meter = meter.clone();
        async move {
            let mut every = tokio::time::interval_at(start + METER_EVERY, METER_EVERY);
            loop {
                every.tick().await;
                meter.borrow().report();
            }
        }
    });
    // Whether each distinct SQL is valid, by the client's own check of what it sends
    // ([`sql_is_valid`]): so that checkers know which queries were invalid without taking the
    // system's word for it.
    let mut valid_sql = std::collections::BTreeMap::<String, bool>::new();
    for sub in submissions {
        let sql_valid = match valid_sql.get(&sub.record.sql) {
            Some(v) => *v,
            None => {
                let v = sql_is_valid(&sub.record.sql).await;
                valid_sql.insert(sub.record.sql.clone(), v);
                v
            }
        };
        tokio::time::sleep_until(start + sub.at).await;
        let replies = replies.clone();
        let meter = meter.clone();
        meter.borrow_mut().submitted += 1;
        tasks.spawn_local(async move {
            let reply = submit(sub, sql_valid).await;
            {
                let mut m = meter.borrow_mut();
                m.ended += 1;
                m.failed += u64::from(user_visible_failure(reply.status));
            }
            replies.borrow_mut().push(reply);
        });
    }
    while tasks.join_next().await.is_some() {}
    ticker.abort();
    meter.borrow().report();
    replies.borrow_mut().sort_by_key(|r| r.seq);
    Ok(())
}

async fn exchange(method: http::Method, uri: String, body: Bytes) -> Option<http::Response<Bytes>> {
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .expect("a valid request");
    // A host that is down may never answer: give up after a while, as a client would.
    tokio::time::timeout(EXCHANGE_TIMEOUT, send_collect(&SimDialer, req))
        .await
        .ok()?
        .ok()
}

fn status_code(phase: Phase) -> u16 {
    match phase {
        Phase::Succeeded => 200,
        Phase::Failed => 500,
        Phase::DeadlineExceeded => 504,
        Phase::Cancelled => 499,
        Phase::Queued | Phase::Running => 0,
    }
}

/// The part of a status that is news to a user: where the query stands, its place in the
/// queue, the lakes answered. Not the estimate, which moves with the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    phase: &'static str,
    position: Option<u32>,
    lakes_done: u32,
}

impl Seen {
    fn of(s: &Status) -> Self {
        Self {
            phase: match s.phase {
                Phase::Queued => "queued",
                Phase::Running => "running",
                other => other.event(),
            },
            position: s.position,
            lakes_done: s.lakes_done,
        }
    }
}

/// Whether `sql` is a read-only query that plans against the telemetry table as the lakes
/// hold it (the schema the world's data is written with, `stampede_fakes::lakes`), checked
/// with a DataFusion session of the client's own, not with the system's validator: a validator
/// that let an invalid query through, or refused a valid one, is then seen by the checkers.
pub async fn sql_is_valid(sql: &str) -> bool {
    use datafusion::datasource::MemTable;
    use datafusion::execution::context::SQLOptions;
    use datafusion::prelude::SessionContext;
    let ctx = SessionContext::new();
    let Ok(empty) = MemTable::try_new(stampede_fakes::lakes::telemetry_schema(), vec![vec![]])
    else {
        return false;
    };
    if ctx
        .register_table(stampede_fakes::glue::TABLE, std::sync::Arc::new(empty))
        .is_err()
    {
        return false;
    }
    let read_only = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    match ctx.sql_with_options(sql, read_only).await {
        Ok(df) => ctx.state().optimize(df.logical_plan()).is_ok(),
        Err(_) => false,
    }
}

/// Polls an accepted query until it ends, logging each change the client sees; returns its
/// last status and how long the phase before the end surely held (`prev_held_us`), or why it
/// was never answered.
async fn follow(
    seq: u64,
    base: &str,
    coordinator: &str,
    accepted: &Status,
) -> Result<(Status, u64), &'static str> {
    let id = &accepted.query_id;
    let mut seen = Seen::of(accepted);
    tracing::info!(target: TRAFFIC_EVENTS, seq, query_id = %id, coordinator, phase = seen.phase, "accepted");
    // What the user sees of the query: logged when it changes, so the log holds the news a
    // user polling the status got, and when. Each change also says how long the state before
    // it surely held: from the answer that first showed it to the sending of the last poll
    // that still did (`prev_held_us`; 0 when only one answer showed it). The coordinator
    // answered each poll somewhere between its sending and its answer, and a query's phase
    // only moves forward, so the state held over that span whatever the network's delays.
    let mut seen_at = tokio::time::Instant::now();
    let mut last_sent: Option<tokio::time::Instant> = None;
    let held = |seen_at: tokio::time::Instant, last_sent: Option<tokio::time::Instant>| {
        last_sent.map_or(0, |s| {
            s.saturating_duration_since(seen_at).as_micros() as u64
        })
    };
    let mut misses = 0;
    let last = loop {
        tokio::time::sleep(POLL_EVERY).await;
        let sent = tokio::time::Instant::now();
        let Some(resp) = exchange(
            http::Method::GET,
            format!("{base}/v1/queries/{id}"),
            Bytes::new(),
        )
        .await
        else {
            // The coordinator may be restarting: keep asking for a while.
            misses += 1;
            if misses > 600 {
                return Err("the coordinator stopped answering");
            }
            continue;
        };
        let Ok(status) = serde_json::from_slice::<Status>(resp.body()) else {
            misses += 1;
            if misses > 600 {
                return Err("no status for the query");
            }
            continue;
        };
        if status.phase.is_terminal() {
            break status;
        }
        let now = Seen::of(&status);
        if now != seen {
            tracing::info!(
                target: TRAFFIC_EVENTS,
                seq,
                query_id = %id,
                phase = now.phase,
                position = now.position.map_or(0, u64::from),
                lakes_done = u64::from(now.lakes_done),
                lakes_total = u64::from(status.lakes_total),
                prev_held_us = if now.phase == seen.phase { 0 } else { held(seen_at, last_sent) },
                "status"
            );
            if now.phase != seen.phase {
                seen_at = tokio::time::Instant::now();
                last_sent = None;
            } else {
                last_sent = Some(sent);
            }
            seen = now;
        } else {
            last_sent = Some(sent);
        }
    };
    Ok((last, held(seen_at, last_sent)))
}

async fn submit(sub: Submission, sql_valid: bool) -> Reply {
    let seq = sub.seq;
    tracing::info!(
        target: TRAFFIC_EVENTS,
        seq,
        tenant = %sub.record.tenant,
        priority = match sub.record.priority {
            stampede_system::api::Priority::Interactive => "interactive",
            stampede_system::api::Priority::Batch => "batch",
        },
        coordinator = %sub.coordinators.first().map_or("", |c| c.0.as_str()),
        sql_valid,
        "submitted"
    );
    let body = Bytes::from(serde_json::to_vec(&sub.record).expect("a record serialises"));
    let unanswered = |why: &str| {
        tracing::info!(target: TRAFFIC_EVENTS, seq, error = %why, "unanswered");
        Reply {
            seq,
            status: 0,
            answer: None,
        }
    };
    let mut tries = 0;
    let mut base = String::new();
    let mut coordinator = "";
    let accepted: Status = loop {
        // Fail over: the first coordinator that answers gets it, unless it answers that it
        // is not admitting (503, paused or failed over) and another is left to try.
        let mut answer = None;
        for (host, port) in &sub.coordinators {
            base = format!("http://{host}:{port}");
            coordinator = host.as_str();
            let uri = format!("{base}/v1/queries");
            let got = exchange(http::Method::POST, uri, body.clone()).await;
            let elsewhere = got
                .as_ref()
                .is_some_and(|r| r.status() == http::StatusCode::SERVICE_UNAVAILABLE);
            if got.is_some() {
                answer = got;
                if !elsewhere {
                    break;
                }
            }
        }
        let Some(resp) = answer else {
            return unanswered("no coordinator answered the submission");
        };
        let status = resp.status().as_u16();
        if status == 202 {
            match serde_json::from_slice(resp.body()) {
                Ok(s) => break s,
                Err(e) => return unanswered(&format!("bad status body: {e}")),
            }
        }
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let error: Option<ErrorBody> = serde_json::from_slice(resp.body()).ok();
        tracing::info!(
            target: TRAFFIC_EVENTS,
            seq,
            status,
            retry_after_s = retry_after.unwrap_or(0),
            error = %error.map(|e| e.error).unwrap_or_default(),
            "refused"
        );
        match retry_after {
            Some(s) if (status == 429 || status == 503) && tries < RESUBMITS => {
                tries += 1;
                tokio::time::sleep(Duration::from_secs(s)).await;
            }
            _ => {
                return Reply {
                    seq,
                    status,
                    answer: None,
                };
            }
        }
    };
    let id = accepted.query_id.clone();
    let (last, held_us) = match follow(seq, &base, coordinator, &accepted).await {
        Ok(end) => end,
        Err(why) => return unanswered(why),
    };
    let answer = last.answer.map(Answer::normalised);
    let rows = answer.as_ref().map_or(0, |a| a.rows.len() as u64);
    let status = status_code(last.phase);
    tracing::info!(
        target: TRAFFIC_EVENTS,
        seq,
        status,
        query_id = %id,
        rows,
        rows_digest = %answer.as_ref().map(rows_digest).unwrap_or_default(),
        prev_held_us = held_us,
        "answered"
    );
    Reply {
        seq,
        status,
        answer,
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
