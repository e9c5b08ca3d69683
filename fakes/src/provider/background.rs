//! Background accounts: other customers of the region making steady metadata calls, so that
//! the harness can see what a loud account does to everyone else on the shared fleet.

use std::time::Duration;

use super::{Admission, CallOutcome, ProviderCall, ProviderRegion};

/// Steady calls from other accounts. Defaults in [`BackgroundLoad::default`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackgroundLoad {
    /// How many accounts. Default: 0 (none).
    pub accounts: u32,
    /// Calls per second from each. Default: 5.
    pub rate_per_s: f64,
}

impl Default for BackgroundLoad {
    fn default() -> Self {
        Self {
            accounts: 0,
            rate_per_s: 5.0,
        }
    }
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
            let call = ProviderCall::start(
                account.clone(),
                self.name(),
                service,
                api,
                &account,
                action,
                format!("background/{service}"),
            );
            let decision = self.model().admit_metadata(&account, api, self.now());
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
