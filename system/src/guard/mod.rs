//! The system's protective mechanisms, applied where every provider call passes: the HTTP
//! exchange under each client (the AWS SDK's and `object_store`'s, both with their own retries
//! off). One [`Guard`] per node holds the state: rate limiters and breakers per api, the retry
//! budget, the seeded RNG for jitter, and the caches.
//!
//! Every decision is an event on target [`MECHANISM_EVENTS`]: `throttled_locally`, `retry`,
//! `retry_denied`, `breaker_opened`, `breaker_closed`, `breaker_rejected`, `rate_adjusted`,
//! `cache_hit`, `cache_miss`, `cache_coalesced`, `deadline_dropped`.

pub mod admission;
pub mod breaker;
pub mod cache;
pub mod rate;
pub mod retry;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::SystemConfig;
use crate::exchange::{ExchangeError, send};
use crate::transport::Dialer;
use breaker::{Breaker, Change};
use rate::ApiLimiter;
use retry::{Retry, RetryBudget};

/// The target of mechanism decisions.
pub const MECHANISM_EVENTS: &str = "stampede::mechanism";

/// The name the queue's layer of retries goes by in the retry budget and its events.
pub const REDELIVERY: &str = "redelivery";

/// Error codes of a frozen account: final, but the drain controller backs off on them.
pub const FROZEN: [&str; 2] = ["AccountProblem", "AllAccessDisabled"];

/// Whether an error answer says the account is suspended: S3's codes, or an access-denied
/// whose message says so (STS, SQS and the catalog answer that way).
pub fn is_frozen_answer(code: Option<&str>, body: &[u8]) -> bool {
    match code {
        Some(c) if FROZEN.contains(&c) => true,
        Some(c) if c.starts_with("AccessDenied") => std::str::from_utf8(body)
            .is_ok_and(|t| t.contains("suspended") || t.contains("AccountProblem")),
        _ => false,
    }
}

/// Whether an error answer denies access in a way no retry or redelivery can cure: an
/// `AccessDenied` (S3, STS, SQS) or `AccessDeniedException` (the catalog) that is not a frozen
/// account's (a freeze ends by itself; the drain controller waits for it).
pub fn is_denied_answer(code: Option<&str>, body: &[u8]) -> bool {
    code.is_some_and(|c| c.starts_with("AccessDenied")) && !is_frozen_answer(code, body)
}

/// How long after a frozen answer a bodiless 403 is still taken for the freeze's.
const FREEZE_MEMORY: Duration = Duration::from_secs(60);

tokio::task_local! {
    /// The deadline of the work the current task does, on tokio's clock.
    pub static DEADLINE: tokio::time::Instant;
    /// The query the current task works for: every call it makes names it
    /// ([`QUERY_HEADER`]), so a call's cost can be charged to its query.
    pub static QUERY: Arc<str>;
    /// The queue delivery the current task works on: every call it makes names it
    /// ([`DELIVERY_HEADER`]), so a task the queue hands out again shows at the provider as the
    /// same work tried again.
    pub static DELIVERY: Delivery;
}

/// One delivery of a task's message, whether the guard retried a call while working on it, and
/// whether a call was denied access.
///
/// Under `one_retry_layer`, the guard and the queue's redelivery never both retry one task:
/// a task the guard retried in is not handed out again when it fails ([`Delivery::retried`]),
/// nor one a call of which was denied access ([`Delivery::refused`]: handing it out again
/// would only be refused again), and in a delivery after the first the guard makes one attempt
/// per call.
#[derive(Debug, Clone)]
pub struct Delivery {
    id: Arc<str>,
    receive: u32,
    retried: Arc<std::sync::atomic::AtomicBool>,
    refused: Arc<std::sync::atomic::AtomicBool>,
}

impl Delivery {
    /// The `receive`-th delivery of message `message_id`.
    pub fn new(message_id: &str, receive: u32) -> Self {
        Self {
            id: format!("{message_id}#{receive}").into(),
            receive,
            retried: Arc::default(),
            refused: Arc::default(),
        }
    }

    /// Whether a call of this delivery was denied access (`Guard::denied`).
    pub fn refused(&self) -> bool {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the guard retried some call of this delivery.
    pub fn retried(&self) -> bool {
        self.retried.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The logical operation an attempt belongs to, `{node}#{boot}.{sequence}`: the same on every
/// retry.
pub const OP_HEADER: &str = "x-stampede-op";
/// The attempt's number within its operation, from 1.
pub const ATTEMPT_HEADER: &str = "x-stampede-attempt";
/// The query the call works for, when it works for one.
pub const QUERY_HEADER: &str = "x-stampede-query";
/// The queue delivery the call works on, `{message id}#{receive count}`, when it works on one.
pub const DELIVERY_HEADER: &str = "x-stampede-delivery";

/// A response whose body is streaming (success) or already read (errors, which were read to
/// classify them).
#[derive(Debug)]
pub enum Body {
    /// Not yet read.
    Streaming(hyper::body::Incoming),
    /// Read whole.
    Read(Bytes),
}

/// Why a guarded exchange gave no response.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// The exchange failed below HTTP, on every attempt allowed.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// No answer within the call timeout.
    #[error("{api}: no answer within {after:?}")]
    Timeout {
        /// The api.
        api: String,
        /// The timeout.
        after: Duration,
    },
    /// The breaker of the api is open: failed fast without a call.
    #[error("{0}: circuit breaker open")]
    BreakerOpen(String),
    /// The work's deadline has passed, or would before the next attempt.
    #[error("{0}: deadline exceeded")]
    Deadline(String),
    /// The request's own body could not be read.
    #[error("request body: {0}")]
    RequestBody(Box<dyn std::error::Error + Send + Sync>),
}

/// How a client's requests reach the network: through the node's [`Guard`], or directly (the
/// harness's own clients, tests, tools). Both HTTP adapters, the AWS SDK's
/// ([`crate::aws_http`]) and `object_store`'s ([`crate::object_store_http`]), send through one,
/// so the exchange is written once.
#[derive(Debug, Clone)]
pub enum Via {
    /// One attempt on the network, no mechanism: what a client with every mechanism off does.
    Direct,
    /// Through a node's mechanisms.
    Guard(Arc<Guard>),
}

impl Via {
    /// Sends `req`. Through a guard, its body is read whole first (attempts resend it), and an
    /// error status comes back with its body read; directly, both bodies stream.
    pub async fn exchange<B>(
        &self,
        dialer: Arc<dyn Dialer>,
        req: Request<B>,
    ) -> Result<Response<Body>, GuardError>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match self {
            Via::Direct => Ok(send(dialer.as_ref(), req).await?.map(Body::Streaming)),
            Via::Guard(guard) => {
                let (parts, body) = req.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map_err(|e| GuardError::RequestBody(e.into()))?
                    .to_bytes();
                guard
                    .exchange(dialer, Request::from_parts(parts, bytes))
                    .await
            }
        }
    }
}

struct State {
    limiters: BTreeMap<String, ApiLimiter>,
    breakers: BTreeMap<String, Breaker>,
    /// One retry budget per api: a failing dependency's retries are paid from its own calls,
    /// not from the node's traffic to every other service.
    budgets: BTreeMap<String, RetryBudget>,
    rng: ChaCha8Rng,
    /// When the provider last pushed back (throttle, timeout, 5xx, frozen account).
    trouble: Option<Duration>,
    /// When the provider last said the account is suspended.
    frozen_seen: Option<Duration>,
    /// An operator's cap on the local rates.
    manual_drain: Option<f64>,
    /// When a restarted node began to warm up under `failback_ramp` ([`Guard::jittered_restart`]).
    warm_from: Option<Duration>,
    succeeded: u64,
    failed: u64,
}

/// A node's mechanisms.
pub struct Guard {
    config: Mutex<Arc<SystemConfig>>,
    state: Mutex<State>,
    start: tokio::time::Instant,
    node: String,
    operations: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("switches", &self.config().switches)
            .finish()
    }
}

/// The api a request calls, from its shape: the JSON protocols' `x-amz-target`, the query
/// protocol's `Action`, IMDS paths, or the S3 method.
pub fn api_of(method: &Method, uri: &http::Uri, headers: &HeaderMap, body: &[u8]) -> String {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return target.rsplit('.').next().unwrap_or(target).to_string();
    }
    let path = uri.path();
    if path.starts_with("/latest/api/token") {
        return "GetMetadataToken".into();
    }
    if path.starts_with("/latest/meta-data") {
        return "GetMetadata".into();
    }
    if let Some((_, action)) = form_urlencoded::parse(body)
        .chain(form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()))
        .find(|(k, _)| k == "Action")
    {
        return action.into_owned();
    }
    let query = uri.query().unwrap_or("");
    match *method {
        Method::GET if query.contains("list-type=2") => "ListObjectsV2".into(),
        Method::GET => "GetObject".into(),
        Method::HEAD => "HeadObject".into(),
        Method::PUT => "PutObject".into(),
        Method::DELETE => "DeleteObject".into(),
        Method::POST => "PostObject".into(),
        _ => method.as_str().to_string(),
    }
}

/// The error code in an error body: JSON `__type` (after any `#`) or XML `<Code>`.
pub fn error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        let t = v.get("__type").and_then(|t| t.as_str())?;
        return Some(t.rsplit('#').next().unwrap_or(t).to_string());
    }
    let start = text.find("<Code>")? + "<Code>".len();
    let end = text[start..].find("</Code>")? + start;
    Some(text[start..end].to_string())
}

/// Whether a failed answer may be retried, from its status, code and headers.
pub fn classify(status: StatusCode, code: Option<&str>, headers: &HeaderMap) -> Retry {
    const THROTTLES: [&str; 7] = [
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "SlowDown",
        "TooManyRequestsException",
        "RequestThrottled",
    ];
    let after = headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64);
    let throttled = status == StatusCode::TOO_MANY_REQUESTS
        || code.is_some_and(|c| {
            THROTTLES.contains(&c) || c.starts_with("AWS.SimpleQueueService.RequestThrottled")
        });
    if throttled || status.is_server_error() {
        Retry::Yes { after, throttled }
    } else {
        Retry::No
    }
}

/// Time an attempt needs to reach the provider and bring its answer back: work with less left
/// before its deadline is dropped rather than sent, since its answer would come too late.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(50);

/// Whether work with `deadline` (on tokio's clock) is too late to send after waiting `wait`:
/// less than [`DEADLINE_MARGIN`] would be left.
fn too_late(deadline: Option<tokio::time::Instant>, wait: Duration) -> bool {
    deadline.is_some_and(|d| tokio::time::Instant::now() + wait + DEADLINE_MARGIN >= d)
}

impl Guard {
    /// A node's guard, its jitter drawn from `seed`.
    pub fn new(config: SystemConfig, seed: u64) -> Self {
        Self {
            state: Mutex::new(State {
                limiters: BTreeMap::new(),
                breakers: BTreeMap::new(),
                budgets: BTreeMap::new(),
                rng: ChaCha8Rng::seed_from_u64(seed),
                // A node that boots under `failback_ramp` starts slow, as after trouble.
                trouble: config.switches.failback_ramp.then_some(Duration::ZERO),
                frozen_seen: None,
                manual_drain: None,
                warm_from: None,
                succeeded: 0,
                failed: 0,
            }),
            config: Mutex::new(Arc::new(config)),
            start: tokio::time::Instant::now(),
            node: "node#0".into(),
            operations: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Names the node and its boot, so its operations are told apart from other nodes' and
    /// other boots' in the provider's logs: `{node}#{boot}.{sequence}` ([`OP_HEADER`]).
    pub fn named(mut self, node: &str, boot: u64) -> Self {
        self.node = format!("{node}#{boot}");
        self
    }

    /// The node and its boot, `{node}#{boot}`, as its operations are named.
    pub fn name(&self) -> &str {
        &self.node
    }

    /// The configuration it runs now.
    pub fn config(&self) -> Arc<SystemConfig> {
        self.config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the configuration (a config push). Rate limiters and breakers start afresh
    /// under the new numbers.
    pub fn set_config(&self, config: SystemConfig) {
        *self.config.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
        let mut st = self.state();
        st.limiters.clear();
        st.breakers.clear();
        st.budgets.clear();
    }

    /// Runs `f` on `api`'s retry budget, made under the current tuning on first use.
    fn budget<R>(&self, api: &str, f: impl FnOnce(&mut RetryBudget, Duration) -> R) -> R {
        let now = self.now();
        let config = self.config();
        let t = &config.tuning;
        let mut st = self.state();
        let budget = st.budgets.entry(api.to_string()).or_insert_with(|| {
            // The queue's layer earns a quarter of the ratio: a redelivery reaches the queue a
            // visibility timeout after the failure that spent it, in a window whose traffic
            // may be 40 % of the one that earned it (each query is 40 tasks at once), and
            // each node's saved redelivery and floor add about 3 a window. Measured on the
            // retry-budget twin over seeds 1 to 20: at the full ratio 11 seeds went to 1.10
            // to 1.18, at half 4 seeds to 1.10 or 1.11.
            let ratio = if api == REDELIVERY {
                t.retry_budget_ratio / 4.0
            } else {
                t.retry_budget_ratio
            };
            RetryBudget::new(ratio, t.retry_budget_min_per_s, t.retry_budget_cap)
        });
        f(budget, now)
    }

    /// Under the retry budget, a task's first delivery earns the queue's layer of retries its
    /// share, as a first attempt earns the guard's.
    pub fn task_delivered(&self) {
        if self.config().switches.retry_budget {
            self.budget(REDELIVERY, |b, now| b.deposit(now));
        }
    }

    /// Whether a failed task may go back to the queue for another delivery: the queue's
    /// redelivery is a retry of the whole task, and spends from the same kind of budget as the
    /// guard's retries (its own bucket, [`REDELIVERY`]). Always, without the retry budget.
    pub fn may_redeliver(&self, receives: u32) -> bool {
        if !self.config().switches.retry_budget {
            return true;
        }
        let allowed = self.budget(REDELIVERY, |b, now| b.withdraw(now));
        if !allowed {
            tracing::info!(target: MECHANISM_EVENTS, api = REDELIVERY, attempt = receives, "retry_denied");
        }
        allowed
    }

    /// Attempts that succeeded and that failed, since the node booted.
    pub fn health(&self) -> (u64, u64) {
        let st = self.state();
        (st.succeeded, st.failed)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// The drain controller's factor now: 10 % right after trouble, ramping linearly to full
    /// over `drain_ramp`; full when the switch is off or there was none.
    fn drain_factor(&self, st: &State) -> f64 {
        let manual = st.manual_drain.unwrap_or(1.0);
        let config = self.config();
        if !config.switches.drain_controller {
            return manual;
        }
        let Some(t0) = st.trouble else {
            return manual;
        };
        let ramp = config.tuning.drain_ramp.as_secs_f64().max(0.001);
        let since = self.now().saturating_sub(t0).as_secs_f64();
        (0.1 + 0.9 * since / ramp).min(1.0).min(manual)
    }

    /// Slow start of a restarted node under `failback_ramp`: for `drain_ramp` after
    /// [`Guard::jittered_restart`], each api with a known quota is held to the node's part of it
    /// ([`SystemConfig::node_limit`]) times a factor ramping linearly from 10 % to full, even
    /// with `rate_limit` off, so that a returning fleet warms its caches at the quota's pace;
    /// `None` when the node is not warming up.
    fn warm_factor(&self, st: &State, config: &SystemConfig) -> Option<f64> {
        if !config.switches.failback_ramp {
            return None;
        }
        let ramp = config.tuning.drain_ramp;
        let since = self.now().saturating_sub(st.warm_from?);
        (since < ramp).then(|| 0.1 + 0.9 * since.as_secs_f64() / ramp.as_secs_f64().max(0.001))
    }

    /// A node's restart under `failback_ramp`: a region's nodes coming back do not all knock
    /// at once. It waits a seeded random delay in the region's restart window
    /// ([`SystemConfig::restart_window`]), then starts slow: for `drain_ramp` its calls of apis
    /// with a known quota are paced. Nothing when the switch is off.
    pub async fn jittered_restart(&self) {
        let config = self.config();
        if !config.switches.failback_ramp {
            return;
        }
        let wait = self.jitter(config.restart_window());
        tracing::info!(target: MECHANISM_EVENTS, wait_us = wait.as_micros() as u64, "restart_jitter");
        tokio::time::sleep(wait).await;
        let now = self.now();
        self.state().warm_from = Some(now);
    }

    /// An operator caps the local rates at `factor` of their limits (`None` lifts the cap).
    pub fn set_manual_drain(&self, factor: Option<f64>) {
        self.state().manual_drain = factor.map(|f| f.clamp(0.01, 1.0));
    }

    /// Records that the provider pushed back now.
    fn trouble(&self, st: &mut State) {
        st.trouble = Some(self.now());
    }

    /// Whether the provider said the account is suspended within the last `within`: under the
    /// drain controller, a worker stops taking work until it is not.
    pub fn frozen_within(&self, within: Duration) -> bool {
        let st = self.state();
        st.frozen_seen
            .is_some_and(|t| self.now().saturating_sub(t) < within)
    }

    /// Whether an answer denies access for good ([`is_denied_answer`]). S3 answers a `HEAD`
    /// with a bare 403, which a frozen account gets too: taken for a denial unless the node saw
    /// the account frozen within the last minute.
    fn denied(&self, status: StatusCode, body: &[u8]) -> bool {
        if body.is_empty() {
            return status == StatusCode::FORBIDDEN && !self.frozen_within(FREEZE_MEMORY);
        }
        is_denied_answer(error_code(body).as_deref(), body)
    }

    /// Forgets the last freeze (a probe went through).
    pub fn clear_frozen(&self) {
        self.state().frozen_seen = None;
    }

    /// A random delay in `[0, max)` from the node's seeded RNG (jittered restarts).
    pub fn jitter(&self, max: Duration) -> Duration {
        let micros = max.as_micros() as u64;
        if micros == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(rand::Rng::random_range(&mut self.state().rng, 0..micros))
    }

    /// Waits for a permit of `api`'s local rate limit, if it has one.
    async fn acquire(&self, api: &str) {
        let config = self.config();
        if !config.switches.rate_limit && !config.switches.failback_ramp {
            return;
        }
        let mut reported = false;
        loop {
            let wait = {
                let mut st = self.state();
                let warm = self.warm_factor(&st, &config);
                if !config.switches.rate_limit && warm.is_none() {
                    return;
                }
                let drain = self.drain_factor(&st).min(warm.unwrap_or(1.0));
                let Some(limit) = config.node_limit(api) else {
                    return;
                };
                let limiter = st
                    .limiters
                    .entry(api.to_string())
                    .or_insert_with(|| ApiLimiter::new(limit));
                limiter.set_drain(drain);
                match limiter.try_acquire() {
                    Ok(()) => return,
                    Err(wait) => wait,
                }
            };
            if !reported {
                reported = true;
                tracing::info!(target: MECHANISM_EVENTS, api, wait_us = wait.as_micros() as u64, "throttled_locally");
            }
            tokio::time::sleep(wait).await;
        }
    }

    fn breaker_allows(&self, api: &str) -> bool {
        let config = self.config();
        if !config.switches.circuit_breaker {
            return true;
        }
        let now = self.now();
        let t = &config.tuning;
        let mut st = self.state();
        st.breakers
            .entry(api.to_string())
            .or_insert_with(|| Breaker::new(t.breaker_failures, t.breaker_open_for))
            .allow(now)
    }

    fn outcome(&self, api: &str, failed: bool, throttled: bool) {
        let now = self.now();
        let switches = self.config().switches;
        let mut st = self.state();
        if failed {
            st.failed += 1;
            self.trouble(&mut st);
        } else {
            st.succeeded += 1;
        }
        if switches.circuit_breaker
            && let Some(b) = st.breakers.get_mut(api)
        {
            match if failed { b.failure(now) } else { b.success() } {
                Change::Opened => tracing::info!(target: MECHANISM_EVENTS, api, "breaker_opened"),
                Change::Closed => tracing::info!(target: MECHANISM_EVENTS, api, "breaker_closed"),
                Change::None => {}
            }
        }
        if switches.adaptive_rate
            && let Some(l) = st.limiters.get_mut(api)
        {
            let before = l.factor();
            let after = if throttled {
                l.on_throttle()
            } else {
                l.on_success()
            };
            if (after - before).abs() > f64::EPSILON && (throttled || after == 1.0) {
                tracing::info!(target: MECHANISM_EVENTS, api, factor_permille = (after * 1000.0) as u64, "rate_adjusted");
            }
        }
    }

    /// One attempt with the call timeout; reports its outcome to the breaker and the adaptive
    /// rate. A success comes back as `Ok`; a failure with whether it may be retried.
    async fn attempt(
        self: Arc<Self>,
        dialer: Arc<dyn Dialer>,
        api: String,
        request: Request<Bytes>,
    ) -> Result<Response<Body>, (Retry, Result<Response<Body>, GuardError>)> {
        let timeout = self.config().tuning.call_timeout;
        let request = request.map(http_body_util::Full::new);
        let result = tokio::time::timeout(timeout, send(dialer.as_ref(), request)).await;
        let retryable = Retry::Yes {
            after: None,
            throttled: false,
        };
        let (retry, answer) = match result {
            Err(_) => (
                retryable,
                Err(GuardError::Timeout {
                    api: api.clone(),
                    after: timeout,
                }),
            ),
            Ok(Err(e)) => (retryable, Err(e.into())),
            Ok(Ok(resp))
                if resp.status().is_success()
                    || resp.status().is_redirection()
                    || resp.status() == StatusCode::NOT_MODIFIED =>
            {
                self.outcome(&api, false, false);
                return Ok(resp.map(Body::Streaming));
            }
            Ok(Ok(resp)) => {
                let (rparts, rbody) = resp.into_parts();
                match rbody.collect().await {
                    Ok(b) => {
                        let bytes = b.to_bytes();
                        let code = error_code(&bytes);
                        let retry = classify(rparts.status, code.as_deref(), &rparts.headers);
                        if is_frozen_answer(code.as_deref(), &bytes) {
                            let mut st = self.state();
                            self.trouble(&mut st);
                            st.frozen_seen = Some(self.now());
                        }
                        (retry, Ok(Response::from_parts(rparts, Body::Read(bytes))))
                    }
                    Err(e) => (retryable, Err(GuardError::Exchange(ExchangeError::Http(e)))),
                }
            }
        };
        match retry {
            // The dependency answered: not its failure, as far as the breaker goes.
            Retry::No => self.outcome(&api, false, false),
            Retry::Yes { throttled, .. } => self.outcome(&api, true, throttled),
        }
        Err((retry, answer))
    }

    /// Sends `req` through the mechanisms: deadline, breaker, rate limit, the attempt with a
    /// timeout, and retries with backoff and budget. Error statuses come back as responses
    /// (their bodies read) once retrying is over.
    pub async fn exchange(
        self: &Arc<Self>,
        dialer: Arc<dyn Dialer>,
        req: Request<Bytes>,
    ) -> Result<Response<Body>, GuardError> {
        let (parts, body) = req.into_parts();
        let api = api_of(&parts.method, &parts.uri, &parts.headers, &body);
        let config = self.config();
        let switches = config.switches;
        let tuning = &config.tuning;
        let deadline = DEADLINE
            .try_with(|d| *d)
            .ok()
            .filter(|_| switches.deadline_propagation);
        let mut attempt = 1u32;
        let seq = self
            .operations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut parts = parts;
        let correlate = |value: &str| http::HeaderValue::from_str(value).ok();
        if let Some(op) = correlate(&format!("{}.{seq}", self.node)) {
            parts.headers.insert(OP_HEADER, op);
        }
        if let Some(query) = QUERY.try_with(|q| correlate(q)).ok().flatten() {
            parts.headers.insert(QUERY_HEADER, query);
        }
        let delivery = DELIVERY.try_with(Clone::clone).ok();
        if let Some(value) = delivery.as_ref().and_then(|d| correlate(&d.id)) {
            parts.headers.insert(DELIVERY_HEADER, value);
        }
        // A task the queue handed out again is already the queue's retry: one attempt per call.
        let max_attempts = match &delivery {
            Some(d) if switches.one_retry_layer && d.receive > 1 => 1,
            _ => tuning.max_attempts.max(1),
        };
        loop {
            if too_late(deadline, Duration::ZERO) {
                tracing::info!(target: MECHANISM_EVENTS, api, attempt, "deadline_dropped");
                return Err(GuardError::Deadline(api));
            }
            if !self.breaker_allows(&api) {
                tracing::info!(target: MECHANISM_EVENTS, api, "breaker_rejected");
                return Err(GuardError::BreakerOpen(api));
            }
            self.acquire(&api).await;
            // The wait for a local permit may have run past the deadline.
            if too_late(deadline, Duration::ZERO) {
                tracing::info!(target: MECHANISM_EVENTS, api, attempt, "deadline_dropped");
                return Err(GuardError::Deadline(api));
            }
            if attempt == 1 {
                // Only a first attempt that is sent earns retries: one the breaker refused
                // never reached the dependency.
                self.budget(&api, |b, now| b.deposit(now));
            }
            // The attempt runs to its end in its own task, so its outcome reaches the breaker
            // even when the caller gives up on it (DataFusion drops sibling reads on an error;
            // a half-open breaker would otherwise wait forever for its probe).
            parts
                .headers
                .insert(ATTEMPT_HEADER, http::HeaderValue::from(attempt));
            let request = Request::from_parts(parts.clone(), body.clone());
            let attempt_task =
                tokio::spawn(self.clone().attempt(dialer.clone(), api.clone(), request));
            let (retry, answer) = match attempt_task.await {
                Ok(Ok(resp)) => return Ok(resp),
                Ok(Err(failed)) => failed,
                Err(e) => (
                    Retry::No,
                    Err(GuardError::Exchange(ExchangeError::Aborted(e.to_string()))),
                ),
            };
            let Retry::Yes { after, .. } = retry else {
                if let (Some(d), Ok(resp)) = (&delivery, &answer)
                    && let Body::Read(bytes) = resp.body()
                    && self.denied(resp.status(), bytes)
                {
                    d.refused.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                return answer;
            };
            if attempt >= max_attempts {
                return answer;
            }
            if switches.retry_budget && !self.budget(&api, |b, now| b.withdraw(now)) {
                tracing::info!(target: MECHANISM_EVENTS, api, attempt, "retry_denied");
                return answer;
            }
            let backoff = {
                let mut st = self.state();
                retry::delay(
                    attempt,
                    tuning.retry_base,
                    tuning.retry_cap,
                    switches.retry_jitter,
                    &mut st.rng,
                )
            };
            let delay = after.map_or(backoff, |a| a.max(backoff));
            if too_late(deadline, delay) {
                tracing::info!(target: MECHANISM_EVENTS, api, attempt, "deadline_dropped");
                return Err(GuardError::Deadline(api));
            }
            tracing::info!(
                target: MECHANISM_EVENTS,
                api,
                attempt,
                delay_us = delay.as_micros() as u64,
                retry_after_us = after.map_or(0, |a| a.as_micros() as u64),
                "retry"
            );
            if let Some(d) = &delivery {
                d.retried.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}
