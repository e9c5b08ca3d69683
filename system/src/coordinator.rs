//! The coordinator: takes queries over HTTP, validates them before any provider call, admits
//! them, fans each out as one task per lake into its region's durable queue, collects the
//! fragments workers send back, and merges them with DataFusion.
//!
//! Durable state lives outside the process, in a [`Journal`]: the audit log (every submission,
//! in the native trace format) and the query journal (accepted, ended with the outcome and the
//! answer). A coordinator that restarts re-plans every query the journal has accepted and not
//! ended, and answers status polls of those that ended from the journal, so a client that
//! polls after the restart still gets the answer its query finished with before the crash;
//! the fragments are keyed by (query, lake), so redelivered work is harmless.
//!
//! Events (target [`QUERY_EVENTS`]): `accepted`, `queued`, `started`, `progress`, and exactly one
//! of `succeeded`, `failed`, `cancelled`, `deadline_exceeded` per accepted query; `refused`
//! (invalid SQL, no query id) and `shed` (429 with `Retry-After`) for what was never accepted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use datafusion::arrow::array::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::api::{ErrorBody, LakeSelector, Phase, Priority, Record, Status};
use crate::cloud::{Cloud, Lake};
use crate::engine::{self, Plan};
use crate::guard::admission::{Admission, Decision};
use crate::queue::{FRAGMENT_ERROR, Task};

/// The target of query lifecycle events.
pub const QUERY_EVENTS: &str = "stampede::query";

/// The target of the audit log's events.
pub const AUDIT_EVENTS: &str = "stampede::audit";

/// How often a running query reports progress.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Durable storage: lines appended, read back after a restart. The deployment provides it
/// (a database or a disk in production, memory that outlives a crashed host in a simulation).
pub trait Journal: Send + Sync + std::fmt::Debug {
    /// Appends one line.
    fn append(&self, line: String);
    /// Every line so far.
    fn lines(&self) -> Vec<String>;
}

/// A journal in memory.
#[derive(Debug, Default)]
pub struct MemoryJournal(Mutex<Vec<String>>);

impl Journal for MemoryJournal {
    fn append(&self, line: String) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    }
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Entry {
    Accepted {
        query_id: String,
        record: Box<Record>,
        lakes: Vec<u32>,
        plan: Plan,
        deadline_unix_ms: Option<u64>,
    },
    Ended {
        query_id: String,
        /// How it ended, the error and the answer: a restarted coordinator still answers
        /// the client's polls with them. Absent in journals written before they were kept.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phase: Option<Phase>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        answer: Option<engine::Answer>,
    },
}

/// Everything a coordinator is deployed with.
#[derive(Debug, Clone)]
pub struct CoordinatorSetup {
    /// Its host name.
    pub name: String,
    /// Its base URL as workers reach it.
    pub url: String,
    /// Every lake the system serves.
    pub lakes: Arc<Vec<Lake>>,
    /// The audit log.
    pub audit: Arc<dyn Journal>,
    /// The query journal.
    pub journal: Arc<dyn Journal>,
    /// Wall-clock time when the node booted.
    pub epoch: SystemTime,
}

struct Query {
    record: Record,
    plan: Plan,
    lakes: Vec<u32>,
    phase: Phase,
    fragments: BTreeMap<u32, Vec<RecordBatch>>,
    rows_so_far: u64,
    started: Option<tokio::time::Instant>,
    deadline_unix_ms: Option<u64>,
    answer: Option<engine::Answer>,
    error: Option<String>,
}

impl Query {
    fn new(record: Record, plan: Plan, lakes: Vec<u32>, deadline_unix_ms: Option<u64>) -> Self {
        Self {
            record,
            plan,
            lakes,
            phase: Phase::Queued,
            fragments: BTreeMap::new(),
            rows_so_far: 0,
            started: None,
            deadline_unix_ms,
            answer: None,
            error: None,
        }
    }
}

struct Inner {
    queries: BTreeMap<String, Query>,
    admission: Admission,
    next: u64,
    /// An operator paused admission: new queries are refused with 503 and `Retry-After`.
    paused: bool,
}

/// A coordinator node.
pub struct Coordinator {
    setup: CoordinatorSetup,
    cloud: Arc<Cloud>,
    inner: Mutex<Inner>,
    start: tokio::time::Instant,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("name", &self.setup.name)
            .finish()
    }
}

/// The admission gauge: queries running and waiting, logged whenever they change.
fn gauge(admission: &Admission) {
    tracing::info!(
        target: QUERY_EVENTS,
        running = u64::from(admission.running_total()),
        queued = admission.queued() as u64,
        "admission"
    );
}

fn priority_rank(p: Priority) -> u8 {
    match p {
        Priority::Interactive => 1,
        Priority::Batch => 0,
    }
}

impl Coordinator {
    /// A coordinator; call [`Coordinator::recover`] once it can reach the cloud.
    pub fn new(setup: CoordinatorSetup, cloud: Arc<Cloud>) -> Arc<Self> {
        let config = cloud.guard().config();
        let t = &config.tuning;
        let admission = if cloud.guard().config().switches.admission_control {
            Admission::new(
                t.max_running_queries,
                t.max_queued_queries,
                Duration::from_secs(30),
            )
        } else {
            Admission::new(u32::MAX, u32::MAX, Duration::from_secs(30))
        };
        let next = setup
            .journal
            .lines()
            .iter()
            .filter(|l| l.contains("\"accepted\""))
            .count() as u64;
        Arc::new(Self {
            setup,
            cloud,
            inner: Mutex::new(Inner {
                queries: BTreeMap::new(),
                admission,
                next,
                paused: false,
            }),
            start: tokio::time::Instant::now(),
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_unix_ms(&self) -> u64 {
        (self.setup.epoch + self.start.elapsed())
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    /// The HTTP routes.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/v1/queries", post(submit))
            .route("/v1/queries/{id}", get(status).delete(cancel))
            .route("/v1/queries/{id}/fragments/{lake}", post(fragment))
            .route("/v1/config", post(push_config))
            .route("/v1/admin/admission", post(set_admission))
            .with_state(self.clone())
            .merge(crate::admin::router(self.cloud.clone()))
    }

    /// Runs the node's config agent (coordinators are never canaries) until the host stops.
    pub async fn run_config_agent(self: Arc<Self>) {
        crate::config_agent::ConfigAgent::new(self.cloud.clone(), false)
            .run()
            .await
    }

    /// Boots: a restarted coordinator first waits its jittered share of the region's restart
    /// window and then starts slow, as a worker does ([`Guard::jittered_restart`]); it recovers its journal ([`Coordinator::recover`]) and resolves its home
    /// region's task queue, so that the node is connected before its first query, as a
    /// service resolves its dependencies at start. A failed lookup is left to the first query.
    ///
    /// [`Guard::jittered_restart`]: crate::guard::Guard::jittered_restart
    pub async fn boot(self: &Arc<Self>, restarted: bool) {
        if restarted {
            self.cloud.guard().jittered_restart().await;
        }
        self.recover().await;
        let _ = self.cloud.task_queue(self.cloud.home()).await;
    }

    /// Re-plans every query the journal accepted and did not end (after a crash), and keeps
    /// the outcome of each that ended for its client's polls; then serves.
    pub async fn recover(self: &Arc<Self>) {
        let mut open: BTreeMap<String, Entry> = BTreeMap::new();
        for line in self.setup.journal.lines() {
            match serde_json::from_str::<Entry>(&line) {
                Ok(e @ Entry::Accepted { .. }) => {
                    if let Entry::Accepted { query_id, .. } = &e {
                        open.insert(query_id.clone(), e.clone());
                    }
                }
                Ok(Entry::Ended {
                    query_id,
                    phase,
                    error,
                    answer,
                }) => {
                    let accepted = open.remove(&query_id);
                    if let (
                        Some(phase),
                        Some(Entry::Accepted {
                            record,
                            lakes,
                            plan,
                            deadline_unix_ms,
                            ..
                        }),
                    ) = (phase, accepted)
                    {
                        let mut q = Query::new(*record, plan, lakes, deadline_unix_ms);
                        q.phase = phase;
                        q.error = error;
                        q.answer = answer;
                        self.inner().queries.insert(query_id, q);
                    }
                }
                Err(_) => {}
            }
        }
        for (id, entry) in open {
            let Entry::Accepted {
                record,
                lakes,
                plan,
                deadline_unix_ms,
                ..
            } = entry
            else {
                continue;
            };
            tracing::info!(target: QUERY_EVENTS, query_id = %id, lakes = lakes.len() as u64, "recovered");
            let decision = {
                let mut inner = self.inner();
                let budget = self.budget(deadline_unix_ms, inner.admission.typical());
                let d = inner.admission.offer(
                    &id,
                    &record.tenant,
                    priority_rank(record.priority),
                    budget,
                );
                inner.queries.insert(
                    id.clone(),
                    Query::new(*record, plan, lakes, deadline_unix_ms),
                );
                gauge(&inner.admission);
                d
            };
            self.arm_deadline(&id, deadline_unix_ms);
            if decision == Decision::Run {
                self.clone().start_query(id);
            }
        }
    }

    /// How long a query with this deadline may wait and still run in time: until the deadline,
    /// less a typical run.
    fn budget(&self, deadline_unix_ms: Option<u64>, typical: Duration) -> Option<Duration> {
        let left = Duration::from_millis(deadline_unix_ms?.saturating_sub(self.now_unix_ms()));
        Some(left.saturating_sub(typical))
    }

    /// The lakes a query's selector names, as far as its user's tenant may read them. With
    /// `least_privilege` on, `all` means every lake the tenant is entitled to, and a selector
    /// naming any other lake (by id, or by its tenant) is refused: `Err` holds the first such
    /// lake. Off, every lake named is read, whoever owns it.
    fn resolve(&self, selector: &LakeSelector, tenant: &str) -> Result<Vec<u32>, u32> {
        let lakes = &self.setup.lakes;
        let checked = self.cloud.guard().config().switches.least_privilege;
        let named: Vec<&Lake> = match selector {
            LakeSelector::All => lakes
                .iter()
                .filter(|l| !checked || l.entitles(tenant))
                .collect(),
            LakeSelector::Tenant(t) => lakes.iter().filter(|l| &l.tenant == t).collect(),
            LakeSelector::Ids(ids) => ids
                .iter()
                .filter_map(|i| lakes.iter().find(|l| l.id == *i))
                .collect(),
        };
        if checked && let Some(l) = named.iter().find(|l| !l.entitles(tenant)) {
            return Err(l.id);
        }
        Ok(named.into_iter().map(|l| l.id).collect())
    }

    async fn submit(self: &Arc<Self>, record: Record) -> Response {
        // The audit log records what arrived, before anything else can go wrong; its `t_ms` is
        // wall-clock (Unix milliseconds), which an export makes relative to its first record.
        let audit = Record {
            t_ms: self.now_unix_ms(),
            ..record.clone()
        };
        let line = serde_json::to_string(&audit).unwrap_or_default();
        tracing::info!(target: AUDIT_EVENTS, record = %line, "submission");
        self.setup.audit.append(line);

        let validate = self.cloud.guard().config().switches.validate_sql;
        let checked = if validate {
            engine::validate(&record.sql).await
        } else {
            Ok(engine::unvalidated(&record.sql))
        };
        let plan = match checked {
            Ok(plan) => plan,
            Err(e) => {
                tracing::info!(target: QUERY_EVENTS, tenant = %record.tenant, reason = "invalid_sql", line = e.line, column = e.column, "refused");
                let body = ErrorBody {
                    error: format!(
                        "invalid SQL at line {}, column {}: {}",
                        e.line, e.column, e.message
                    ),
                    sql: Some(e),
                    retry_after_s: None,
                };
                return (StatusCode::BAD_REQUEST, Json(body)).into_response();
            }
        };
        let lakes = match self.resolve(&record.lakes, &record.tenant) {
            Ok(lakes) => lakes,
            Err(lake) => {
                tracing::info!(target: QUERY_EVENTS, tenant = %record.tenant, reason = "not_entitled", lake = u64::from(lake), "refused");
                let body = ErrorBody {
                    error: format!(
                        "tenant {} is not entitled to lake {lake}: a query may name only its own tenant's lakes and lakes shared with it",
                        record.tenant
                    ),
                    sql: None,
                    retry_after_s: None,
                };
                return (StatusCode::FORBIDDEN, Json(body)).into_response();
            }
        };
        if lakes.is_empty() {
            tracing::info!(target: QUERY_EVENTS, tenant = %record.tenant, reason = "no_lakes", "refused");
            let body = ErrorBody {
                error: "the lake selector matches no lake".into(),
                sql: None,
                retry_after_s: None,
            };
            return (StatusCode::BAD_REQUEST, Json(body)).into_response();
        }
        if self.inner().paused {
            const PAUSED_RETRY_S: u64 = 30;
            tracing::info!(target: QUERY_EVENTS, tenant = %record.tenant, retry_after_s = PAUSED_RETRY_S, reason = "paused", "shed");
            let body = ErrorBody {
                error: "admission is paused by an operator: try again later".into(),
                sql: None,
                retry_after_s: Some(PAUSED_RETRY_S),
            };
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, PAUSED_RETRY_S.to_string())],
                Json(body),
            )
                .into_response();
        }
        let deadline_unix_ms = record.deadline_ms.map(|d| self.now_unix_ms() + d);
        let (id, decision) = {
            let mut inner = self.inner();
            let id = format!("{}-q{}", self.setup.name, inner.next);
            let budget = self.budget(deadline_unix_ms, inner.admission.typical());
            let decision =
                inner
                    .admission
                    .offer(&id, &record.tenant, priority_rank(record.priority), budget);
            gauge(&inner.admission);
            if let Decision::Shed { retry_after } = decision {
                drop(inner);
                let secs = retry_after.as_secs().max(1);
                tracing::info!(target: QUERY_EVENTS, tenant = %record.tenant, retry_after_s = secs, "shed");
                let body = ErrorBody {
                    error: "overloaded: try again later".into(),
                    sql: None,
                    retry_after_s: Some(secs),
                };
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, secs.to_string())],
                    Json(body),
                )
                    .into_response();
            }
            inner.next += 1;
            let entry = Entry::Accepted {
                query_id: id.clone(),
                record: Box::new(record.clone()),
                lakes: lakes.clone(),
                plan: plan.clone(),
                deadline_unix_ms,
            };
            self.setup
                .journal
                .append(serde_json::to_string(&entry).unwrap_or_default());
            tracing::info!(
                target: QUERY_EVENTS,
                query_id = %id,
                tenant = %record.tenant,
                user = %record.user,
                lakes = lakes.len() as u64,
                priority = priority_rank(record.priority) as u64,
                deadline_ms = record.deadline_ms.unwrap_or(0),
                "accepted"
            );
            inner.queries.insert(
                id.clone(),
                Query::new(record, plan, lakes, deadline_unix_ms),
            );
            (id, decision)
        };
        self.arm_deadline(&id, deadline_unix_ms);
        match decision {
            Decision::Run => self.clone().start_query(id.clone()),
            Decision::Queued { position } => {
                tracing::info!(target: QUERY_EVENTS, query_id = %id, position = position as u64, "queued");
            }
            Decision::Shed { .. } => {}
        }
        let status = self.status_of(&id);
        (StatusCode::ACCEPTED, Json(status)).into_response()
    }

    fn arm_deadline(self: &Arc<Self>, id: &str, deadline_unix_ms: Option<u64>) {
        let Some(at) = deadline_unix_ms else {
            return;
        };
        let wait = Duration::from_millis(at.saturating_sub(self.now_unix_ms()));
        let me = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            me.end(
                &id,
                Phase::DeadlineExceeded,
                Some("deadline exceeded".into()),
            );
        });
    }

    fn start_query(self: Arc<Self>, id: String) {
        let (tasks, regions) = {
            let mut inner = self.inner();
            let Some(q) = inner.queries.get_mut(&id) else {
                return;
            };
            if q.phase != Phase::Queued {
                return;
            }
            q.phase = Phase::Running;
            q.started = Some(tokio::time::Instant::now());
            let mut by_region: BTreeMap<String, Vec<Task>> = BTreeMap::new();
            for &lake in &q.lakes {
                let Some(l) = self.setup.lakes.iter().find(|l| l.id == lake) else {
                    continue;
                };
                by_region.entry(l.region.clone()).or_default().push(Task {
                    query_id: id.clone(),
                    lake,
                    columns: q.plan.columns.clone(),
                    reply_to: self.setup.url.clone(),
                    deadline_unix_ms: q.deadline_unix_ms,
                    sql: (!q.plan.validated).then(|| q.plan.sql.clone()),
                });
            }
            let regions: BTreeSet<String> = by_region.keys().cloned().collect();
            (by_region, regions)
        };
        tracing::info!(target: QUERY_EVENTS, query_id = %id, regions = regions.len() as u64, "started");
        let me = self.clone();
        tokio::spawn(async move {
            let hold = me.cloud.guard().config().switches.drain_controller;
            for (region, tasks) in tasks {
                let mut tries = 0;
                loop {
                    match me.enqueue(&region, &tasks).await {
                        Ok(()) => break,
                        // Under the drain controller a query whose tasks cannot be queued yet
                        // (the account frozen, the region down) waits for it, for up to 20
                        // minutes, instead of failing: the backlog is kept, not dropped.
                        // Tasks queued before a failure may be queued twice; fragments are
                        // keyed by lake, so that is harmless.
                        Err(e) if hold && tries < 40 => {
                            tries += 1;
                            tracing::info!(target: QUERY_EVENTS, query_id = %id, region = %region, error = %e, "enqueue_waiting");
                            tokio::time::sleep(Duration::from_secs(30)).await;
                        }
                        Err(e) => {
                            me.end(
                                &id,
                                Phase::Failed,
                                Some(format!("enqueue in {region}: {e}")),
                            );
                            return;
                        }
                    }
                }
            }
            me.report_progress(id).await;
        });
    }

    async fn enqueue(&self, region: &str, tasks: &[Task]) -> Result<(), String> {
        let Some(query) = tasks.first().map(|t| Arc::<str>::from(t.query_id.as_str())) else {
            return Ok(());
        };
        crate::guard::QUERY
            .scope(query, self.enqueue_tasks(region, tasks))
            .await
    }

    async fn enqueue_tasks(&self, region: &str, tasks: &[Task]) -> Result<(), String> {
        let (sqs, url) = self
            .cloud
            .task_queue(region)
            .await
            .map_err(|e| e.to_string())?;
        for chunk in tasks.chunks(10) {
            let mut batch = sqs.send_message_batch().queue_url(&url);
            for (i, task) in chunk.iter().enumerate() {
                let entry = aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(serde_json::to_string(task).unwrap_or_default())
                    .build()
                    .map_err(|e| e.to_string())?;
                batch = batch.entries(entry);
            }
            let out = batch
                .send()
                .await
                .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
            if let Some(f) = out.failed().first() {
                return Err(format!("SendMessageBatch entry failed: {}", f.code()));
            }
        }
        Ok(())
    }

    async fn report_progress(&self, id: String) {
        loop {
            tokio::time::sleep(PROGRESS_EVERY).await;
            let status = self.status_of(&id);
            if status.phase.is_terminal() {
                return;
            }
            tracing::info!(
                target: QUERY_EVENTS,
                query_id = %id,
                lakes_done = status.lakes_done as u64,
                lakes_total = status.lakes_total as u64,
                "progress"
            );
        }
    }

    fn status_of(&self, id: &str) -> Status {
        let inner = self.inner();
        let Some(q) = inner.queries.get(id) else {
            return Status {
                query_id: id.to_string(),
                phase: Phase::Failed,
                position: None,
                lakes_done: 0,
                lakes_total: 0,
                rows_so_far: 0,
                estimate_ms: None,
                answer: None,
                error: Some("unknown query".into()),
            };
        };
        let done = q.fragments.len() as u32;
        let total = q.lakes.len() as u32;
        let estimate_ms = match (q.started, done) {
            (Some(s), d) if d > 0 && d < total => {
                let per = s.elapsed().as_millis() as u64 / u64::from(d);
                Some(per * u64::from(total - d))
            }
            _ => None,
        };
        // While it waits: its place in the admission order and the expected wait.
        let place = (q.phase == Phase::Queued)
            .then(|| inner.admission.place(id))
            .flatten();
        let estimate_ms = estimate_ms.or(place.map(|(_, wait)| wait.as_millis() as u64));
        Status {
            query_id: id.to_string(),
            phase: q.phase,
            position: place.map(|(position, _)| position),
            lakes_done: done,
            lakes_total: total,
            rows_so_far: q.rows_so_far,
            estimate_ms,
            answer: q.answer.clone(),
            error: q.error.clone(),
        }
    }

    /// Ends query `id` in `phase` unless it has ended already; frees its admission slot.
    fn end(self: &Arc<Self>, id: &str, phase: Phase, error: Option<String>) {
        let (tenant, next) = {
            let mut inner = self.inner();
            let Some(q) = inner.queries.get_mut(id) else {
                return;
            };
            if q.phase.is_terminal() {
                return;
            }
            let started = q.started;
            q.phase = phase;
            q.error = error.clone();
            q.fragments.clear();
            let tenant = q.record.tenant.clone();
            self.setup.journal.append(
                serde_json::to_string(&Entry::Ended {
                    query_id: id.to_string(),
                    phase: Some(phase),
                    error: error.clone(),
                    answer: q.answer.clone(),
                })
                .unwrap_or_default(),
            );
            let rows = q.answer.as_ref().map_or(0, |a| a.rows.len() as u64);
            match (&error, phase) {
                (_, Phase::Succeeded) => {
                    tracing::info!(target: QUERY_EVENTS, query_id = %id, rows, "succeeded")
                }
                (Some(e), _) => {
                    tracing::info!(target: QUERY_EVENTS, query_id = %id, error = %e, "{}", phase.event())
                }
                (None, _) => {
                    tracing::info!(target: QUERY_EVENTS, query_id = %id, "{}", phase.event())
                }
            }
            // Waiting in admission's queue: it leaves it. Otherwise it held a running slot,
            // even if admission chose it to start and it ends before it could.
            let next = if inner.admission.withdraw(id) {
                Vec::new()
            } else {
                if let Some(started) = started {
                    // A query cut short (its deadline, a failure) ran at least this long: it
                    // may raise the estimate but not lower it. Lowering it would admit more
                    // queries exactly when they run too slowly to finish, and those would be
                    // cut shorter still.
                    let took = started.elapsed();
                    let typical = inner.admission.typical();
                    let took = if phase == Phase::Succeeded {
                        took
                    } else {
                        took.max(typical)
                    };
                    inner.admission.observe(took);
                }
                inner.admission.finish(&tenant)
            };
            gauge(&inner.admission);
            (tenant, next)
        };
        let _ = tenant;
        for id in next {
            if let Some(why) = self.too_late(&id) {
                self.end(&id, Phase::DeadlineExceeded, Some(why));
            } else {
                self.clone().start_query(id);
            }
        }
    }

    /// Why a query that waited in admission's queue should not start now: too little time
    /// is left before its deadline for a typical run. Starting it would spend the workers on
    /// work that cannot be delivered in time, the backlog of expired work that keeps goodput
    /// down after overload (Google SRE, "Handling Overload").
    fn too_late(&self, id: &str) -> Option<String> {
        if !self.cloud.guard().config().switches.admission_control {
            return None;
        }
        let inner = self.inner();
        let deadline = inner.queries.get(id)?.deadline_unix_ms?;
        let left = Duration::from_millis(deadline.saturating_sub(self.now_unix_ms()));
        let typical = inner.admission.typical();
        (left < typical).then(|| {
            format!(
                "dropped at the head of the queue: {} ms left before its deadline, a run takes about {} ms",
                left.as_millis(),
                typical.as_millis()
            )
        })
    }

    async fn take_fragment(
        self: &Arc<Self>,
        id: &str,
        lake: u32,
        headers: &HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        if let Some(reason) = headers.get(FRAGMENT_ERROR).and_then(|v| v.to_str().ok()) {
            self.end(id, Phase::Failed, Some(format!("lake {lake}: {reason}")));
            return StatusCode::OK;
        }
        let batches = match engine::from_ipc(&body) {
            Ok(b) => b,
            Err(_) => return StatusCode::BAD_REQUEST,
        };
        let complete = {
            let mut inner = self.inner();
            let Some(q) = inner.queries.get_mut(id) else {
                // Not ours (any more): the worker may drop it.
                return StatusCode::GONE;
            };
            if q.phase != Phase::Running || !q.lakes.contains(&lake) {
                return StatusCode::GONE;
            }
            if !q.fragments.contains_key(&lake) {
                q.rows_so_far += batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
                q.fragments.insert(lake, batches);
            }
            (q.fragments.len() == q.lakes.len())
                .then(|| (q.plan.clone(), std::mem::take(&mut q.fragments)))
        };
        if let Some((plan, fragments)) = complete {
            let all: Vec<RecordBatch> = fragments.into_values().flatten().collect();
            match engine::merge(&plan, all).await {
                Ok(answer) => {
                    let answer = answer.normalised();
                    if let Some(q) = self.inner().queries.get_mut(id) {
                        q.answer = Some(answer);
                    }
                    self.end(id, Phase::Succeeded, None);
                }
                Err(e) => self.end(id, Phase::Failed, Some(format!("merge: {e}"))),
            }
        }
        StatusCode::OK
    }
}

async fn submit(State(c): State<Arc<Coordinator>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Record>(&body) {
        Ok(record) => c.submit(record).await,
        Err(e) => {
            let body = ErrorBody {
                error: format!("bad request body: {e}"),
                sql: None,
                retry_after_s: None,
            };
            (StatusCode::BAD_REQUEST, Json(body)).into_response()
        }
    }
}

async fn status(State(c): State<Arc<Coordinator>>, Path(id): Path<String>) -> Response {
    if !c.inner().queries.contains_key(&id) {
        return StatusCode::NOT_FOUND.into_response();
    }
    Json(c.status_of(&id)).into_response()
}

async fn cancel(State(c): State<Arc<Coordinator>>, Path(id): Path<String>) -> Response {
    if !c.inner().queries.contains_key(&id) {
        return StatusCode::NOT_FOUND.into_response();
    }
    c.end(&id, Phase::Cancelled, None);
    Json(c.status_of(&id)).into_response()
}

async fn fragment(
    State(c): State<Arc<Coordinator>>,
    Path((id, lake)): Path<(String, u32)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    c.take_fragment(&id, lake, &headers, body).await
}

async fn push_config(State(c): State<Arc<Coordinator>>, body: Bytes) -> Response {
    let doc: crate::config::ConfigDocument = match serde_json::from_slice(&body) {
        Ok(d) => d,
        Err(e) => {
            let body = ErrorBody {
                error: format!("bad config document: {e}"),
                sql: None,
                retry_after_s: None,
            };
            return (StatusCode::BAD_REQUEST, Json(body)).into_response();
        }
    };
    match crate::config_agent::publish(&c.cloud, &doc).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(e) => {
            let body = ErrorBody {
                error: format!("could not store the config: {e}"),
                sql: None,
                retry_after_s: None,
            };
            (StatusCode::BAD_GATEWAY, Json(body)).into_response()
        }
    }
}

/// An operator's switch on admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionSwitch {
    /// Refuse new queries (503 with `Retry-After`) while true.
    pub paused: bool,
}

async fn set_admission(State(c): State<Arc<Coordinator>>, body: Bytes) -> Response {
    let Ok(switch) = serde_json::from_slice::<AdmissionSwitch>(&body) else {
        let body = ErrorBody {
            error: "expected {\"paused\": true|false}".into(),
            sql: None,
            retry_after_s: None,
        };
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    };
    c.inner().paused = switch.paused;
    if switch.paused {
        tracing::info!(target: QUERY_EVENTS, "admission_paused");
    } else {
        tracing::info!(target: QUERY_EVENTS, "admission_resumed");
    }
    StatusCode::OK.into_response()
}
