//! Background accounts: other customers of the region making steady metadata calls, so that
//! the harness can see what a loud account does to everyone else on the shared fleet.

use std::time::Duration;

use super::{Admission, CallOutcome, ProviderCall, ProviderRegion};

/// Calls from other accounts: a steady rate, and recorded calls replayed at their times.
/// Defaults in [`BackgroundLoad::default`].
#[derive(Debug, Clone, PartialEq)]
pub struct BackgroundLoad {
    /// How many accounts call steadily. Default: 0 (none).
    pub accounts: u32,
    /// Calls per second from each. Default: 5.
    pub rate_per_s: f64,
    /// Recorded calls (from CloudTrail, say), replayed at their times. Default: none.
    pub replay: Vec<RecordedCall>,
}

/// One recorded call of another customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    /// When, from the start.
    pub at: Duration,
    /// The calling account.
    pub account: String,
    /// The service (`sts`, `s3`, `ec2`, ...).
    pub service: String,
    /// The api.
    pub api: String,
}

impl Default for BackgroundLoad {
    fn default() -> Self {
        Self {
            accounts: 0,
            rate_per_s: 5.0,
            replay: Vec::new(),
        }
    }
}

/// A name with a static lifetime, as provider call events take them: each distinct name is
/// leaked once, so the memory is bounded by the distinct services and apis of a trace.
pub(crate) fn intern(name: &str) -> &'static str {
    static NAMES: std::sync::OnceLock<std::sync::Mutex<std::collections::BTreeSet<&'static str>>> =
        std::sync::OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(n) = names.get(name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// The account id of background account `k`.
pub fn background_account(k: u32) -> String {
    format!("2{k:011}")
}

/// The apis background accounts call, in turn.
const APIS: [(&str, &str, &str); 2] = [
    ("sts", "AssumeRole", "sts:AssumeRole"),
    ("glue", "GetTable", "glue:GetTable"),
];

impl ProviderRegion {
    /// Runs `load` against this region's fleet until the host stops: the accounts call in
    /// turn, evenly spaced, each call reported like any other provider call.
    pub async fn run_background(self, load: BackgroundLoad) {
        if !load.replay.is_empty() {
            tokio::spawn(self.clone().replay_background(load.replay.clone()));
        }
        let total = f64::from(load.accounts) * load.rate_per_s;
        if load.accounts == 0 || total <= 0.0 {
            return;
        }
        let interval = Duration::from_secs_f64(1.0 / total);
        let mut n: u64 = 0;
        loop {
            tokio::time::sleep(interval).await;
            let account = background_account((n % u64::from(load.accounts)) as u32);
            let (service, api, action) = APIS[(n / u64::from(load.accounts)) as usize % APIS.len()];
            n += 1;
            self.background_call(account, service, api, action);
        }
    }

    /// Replays recorded calls at their times. Calls to the metadata services (STS, IAM, the
    /// catalog, EC2's control plane) load the shared fleet; the others pass quota and freeze
    /// only.
    async fn replay_background(self, calls: Vec<RecordedCall>) {
        // On the provider's clock, which runs on through a restart: a region that comes back
        // goes on where the recording is, not from its beginning.
        for c in calls {
            let now = self.now();
            if c.at < now {
                continue;
            }
            tokio::time::sleep(c.at - now).await;
            let action = intern(&format!("{}:{}", c.service, c.api));
            self.background_call(c.account, intern(&c.service), intern(&c.api), action);
        }
    }

    /// One call of another account, reported like any other provider call; it ends on its own
    /// time without holding up the caller.
    fn background_call(
        &self,
        account: String,
        service: &'static str,
        api: &'static str,
        action: &'static str,
    ) {
        let call = ProviderCall::start(
            account.clone(),
            self.name(),
            service,
            api,
            &account,
            action,
            format!("background/{service}"),
        );
        let metadata = matches!(service, "sts" | "iam" | "glue" | "ec2" | "imds");
        {
            let now = self.now();
            let decision = if metadata {
                self.model().admit_metadata(&account, api, now)
            } else {
                self.model().admit_plain(&account, api, now)
            };
            let (outcome, wait) = match decision {
                Admission::Proceed { delay } => (CallOutcome::Ok, delay),
                Admission::TimedOut { after } => (CallOutcome::Timeout, after),
                Admission::Throttled => (CallOutcome::Throttled, Duration::ZERO),
                Admission::Frozen => (CallOutcome::Frozen, Duration::ZERO),
                Admission::Shed => (
                    CallOutcome::Error("ServiceUnavailable".into()),
                    Duration::ZERO,
                ),
            };
            // Each call ends on its own time, without holding up the next.
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                call.finish(outcome, 0);
            });
        }
    }
}
