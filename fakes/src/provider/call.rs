//! Provider calls as events: every call to a fake service is reported once, when it ends, on
//! target `stampede::provider` with its account, region, service, api, key and outcome, and
//! the correlation headers the client sent ([`Correlated`]).

use tokio::task::futures::TaskLocalFuture;
use tokio::time::Instant;

/// The client's logical operation, `{client host}#{sequence}`, sent by the system's retry layer.
pub const OP_HEADER: &str = "x-stampede-op";
/// The attempt of that operation, from 1.
pub const ATTEMPT_HEADER: &str = "x-stampede-attempt";
/// The query the call works for.
pub const QUERY_HEADER: &str = "x-stampede-query";
/// The AWS SDK invocation the call is an attempt of, the same on each of the SDK's attempts.
pub const INVOCATION_HEADER: &str = "x-stampede-invocation";
/// The queue delivery the call works on, `{message id}#{receive count}`: the message's id and
/// its `ApproximateReceiveCount` when the worker took it.
pub const DELIVERY_HEADER: &str = "x-stampede-delivery";

/// What a request says about who sent it and why: the correlation headers a client may send,
/// and the AWS SDK's own attempt (`amz-sdk-request`). Logged with the call; absent fields are
/// empty or 0. Real clients that send none are served the same. The SDK's own invocation id
/// (`amz-sdk-invocation-id`) is not logged: the SDK draws it from an unseeded RNG, and the log
/// must be the same every run; the system names its invocations in [`INVOCATION_HEADER`].
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    op: String,
    attempt: u64,
    query_id: String,
    sdk_attempt: u64,
    sdk_invocation: String,
    message: String,
    receive: u64,
}

impl CallContext {
    /// Reads the context from a request's headers.
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        // `amz-sdk-request: attempt=2; max=3`
        let sdk_attempt = text("amz-sdk-request")
            .split(';')
            .find_map(|kv| kv.trim().strip_prefix("attempt=")?.parse().ok())
            .unwrap_or(0);
        // `{message id}#{receive count}`; the id may itself hold `#`, the count cannot.
        let delivery = text(DELIVERY_HEADER);
        let (message, receive) = match delivery.rsplit_once('#') {
            Some((id, n)) => (id.to_string(), n.parse().unwrap_or(0)),
            None => (delivery, 0),
        };
        Self {
            op: text(OP_HEADER),
            attempt: text(ATTEMPT_HEADER).parse().unwrap_or(0),
            query_id: text(QUERY_HEADER),
            sdk_attempt,
            sdk_invocation: text(INVOCATION_HEADER),
            message,
            receive,
        }
    }
}

tokio::task_local! {
    static CALL_CONTEXT: CallContext;
}

/// A fake service wrapped so that every call it reports carries its request's [`CallContext`].
#[derive(Debug, Clone)]
pub struct Correlated<S>(pub S);

impl<S, B> hyper::service::Service<http::Request<B>> for Correlated<S>
where
    S: hyper::service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TaskLocalFuture<CallContext, S::Future>;

    fn call(&self, req: http::Request<B>) -> Self::Future {
        let context = CallContext::from_headers(req.headers());
        CALL_CONTEXT.scope(context, self.0.call(req))
    }
}

/// The target of provider call events.
pub const PROVIDER_EVENTS: &str = "stampede::provider";

/// How a provider call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    /// Served.
    Ok,
    /// Refused by a quota.
    Throttled,
    /// Refused because the account is frozen.
    Frozen,
    /// Failed with the service's error code.
    Error(String),
    /// Not answered in time.
    Timeout,
}

impl CallOutcome {
    /// The outcome word of docs/invariants.md: `ok`, `throttled`, `frozen`, `error` or `timeout`.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Throttled => "throttled",
            Self::Frozen => "frozen",
            Self::Error(_) => "error",
            Self::Timeout => "timeout",
        }
    }
}

/// A call in progress: created when the request arrives, reported when it ends.
#[derive(Debug)]
#[must_use = "a call must be finished to be reported"]
pub struct ProviderCall {
    account: String,
    region: String,
    service: &'static str,
    api: &'static str,
    principal: String,
    action: &'static str,
    resource: String,
    range: String,
    context: CallContext,
    started: Instant,
}

impl ProviderCall {
    /// Starts timing a call. Time is tokio's, which is virtual under the simulator.
    pub fn start(
        account: String,
        region: &str,
        service: &'static str,
        api: &'static str,
        principal: &str,
        action: &'static str,
        resource: String,
    ) -> Self {
        Self {
            account,
            region: region.to_string(),
            service,
            api,
            principal: principal.to_string(),
            action,
            resource,
            range: String::new(),
            context: CALL_CONTEXT.try_with(Clone::clone).unwrap_or_default(),
            started: Instant::now(),
        }
    }

    /// Notes the byte range asked for, as written in the request (`bytes=0-99`).
    pub fn with_range(mut self, range: String) -> Self {
        self.range = range;
        self
    }

    /// Reports the call with its outcome and the bytes it returned or stored.
    pub fn finish(self, outcome: CallOutcome, bytes: u64) {
        let latency_us = self.started.elapsed().as_micros() as u64;
        let code = match &outcome {
            CallOutcome::Error(code) => code.as_str(),
            _ => "",
        };
        tracing::info!(
            target: PROVIDER_EVENTS,
            account = %self.account,
            region = %self.region,
            service = self.service,
            api = self.api,
            principal = %self.principal,
            action = self.action,
            resource = %self.resource,
            range = %self.range,
            outcome = outcome.word(),
            code,
            bytes,
            latency_us,
            op = %self.context.op,
            attempt = self.context.attempt,
            query_id = %self.context.query_id,
            sdk_attempt = self.context.sdk_attempt,
            sdk_invocation = %self.context.sdk_invocation,
            task_message = %self.context.message,
            receive = self.context.receive,
            "call"
        );
    }
}
