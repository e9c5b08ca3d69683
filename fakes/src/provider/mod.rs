//! The provider model shared by a region's services: quotas, the metadata fleet, the abuse
//! policy, fault controls, and the call events every service reports.

pub mod abuse;
pub mod background;
pub mod call;
pub mod fleet;
pub mod quota;
pub mod region;

pub use abuse::{AbusePolicy, Standing};
pub use background::BackgroundLoad;
pub use call::{
    ATTEMPT_HEADER, CallContext, CallOutcome, Correlated, DELIVERY_HEADER, OP_HEADER,
    PROVIDER_EVENTS, ProviderCall, QUERY_HEADER,
};
pub use fleet::FleetConfig;
pub use quota::Limit;
pub use region::{Admission, ProviderConfig, RegionModel, S3Access};

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::clock::Clock;

/// How often the region re-evaluates its abuse policy.
pub const TICK: Duration = Duration::from_secs(1);

/// How often the region reports its fleet gauge.
pub const GAUGE_EVERY: Duration = Duration::from_secs(10);

/// A region's provider state, shared by the region's services and the harness's controls.
#[derive(Debug, Clone)]
pub struct ProviderRegion {
    name: Arc<str>,
    model: Arc<Mutex<RegionModel>>,
    clock: Arc<dyn Clock>,
    epoch_secs: u64,
}

impl ProviderRegion {
    /// A region called `name`, at rest, reading time from `clock`, whose zero is the Unix time
    /// `epoch_secs`: the simulation's epoch in a simulation, the wall clock at start when
    /// served for real. Signatures and credential expiry are judged on this clock.
    pub fn new(name: &str, config: ProviderConfig, clock: Arc<dyn Clock>, epoch_secs: u64) -> Self {
        Self {
            name: name.into(),
            model: Arc::new(Mutex::new(RegionModel::new(config))),
            clock,
            epoch_secs,
        }
    }

    /// The Unix time at which the provider's clock reads zero.
    pub fn epoch_secs(&self) -> u64 {
        self.epoch_secs
    }

    /// The provider's wall clock: the Unix time now, as its clock reads it.
    pub fn unix_now(&self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + Duration::from_secs(self.epoch_secs) + self.now()
    }

    /// The region's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Time since the provider started.
    pub fn now(&self) -> Duration {
        self.clock.now()
    }

    /// The model, locked. Held only for a decision, never across an await.
    pub fn model(&self) -> MutexGuard<'_, RegionModel> {
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs the region's clockwork until the host stops: the abuse policy every second (freeze
    /// and thaw events) and a fleet gauge every ten seconds.
    pub async fn run(self) {
        let mut last_gauge = Duration::ZERO;
        loop {
            tokio::time::sleep(TICK).await;
            let now = self.now();
            let (changes, utilisation) = {
                let mut model = self.model();
                (model.tick(now), model.fleet_utilisation(now))
            };
            for change in changes {
                self.report(change);
            }
            if now >= last_gauge + GAUGE_EVERY {
                last_gauge = now;
                let utilisation_permille = (utilisation * 1000.0) as u64;
                tracing::info!(target: PROVIDER_EVENTS, region = %self.name, utilisation_permille, "fleet");
            }
        }
    }

    /// Reports a change of an account's standing as an event.
    pub fn report(&self, change: Standing) {
        match change {
            Standing::Frozen {
                account,
                until,
                share_permille,
            } => tracing::info!(
                target: PROVIDER_EVENTS,
                account = %account,
                region = %self.name,
                until_us = until.as_micros() as u64,
                share_permille,
                "account_frozen"
            ),
            Standing::Thawed { account } => {
                tracing::info!(target: PROVIDER_EVENTS, account = %account, region = %self.name, "account_thawed")
            }
        }
    }
}
