//! Provider calls as events: every call to a fake service is reported once, when it ends, on
//! target `stampede::provider` with its account, region, service, api, key and outcome.

use tokio::time::Instant;

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
    /// The outcome word of INVARIANTS.md: `ok`, `throttled`, `frozen`, `error` or `timeout`.
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
            "call"
        );
    }
}
