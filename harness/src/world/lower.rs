//! Lowering: a scenario, a seed and its traffic turned into a [`Plan`], everything a world is
//! built from, with no simulation in it: the provider's and the system's configurations, the
//! lakes, the controls on the timeline, and the submissions.

use std::time::Duration;

use stampede_fakes::iam::{LakePolicies, lake_role_arn};
use stampede_fakes::provider::{BackgroundLoad, Limit};
use stampede_fakes::{LakeDirectory, ProviderConfig};
use stampede_system::{Lake, SystemConfig};

use crate::input::scenario::Scenario;
use crate::input::trace::{LakeSelector, Trace};
use crate::rng::sub_seed;
use crate::world::control::{self, Action, Control};
use crate::world::hosts::{COORDINATOR_PORT, coordinator_host};
use crate::world::traffic::Submission;

/// A world to build: what [`lower`] makes of a scenario for one seed.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The seed everything in the world draws from.
    pub seed: u64,
    /// How long the run lasts.
    pub duration: Duration,
    /// The simulator's step.
    pub tick: Duration,
    /// The simulated network's least and greatest one-way latency.
    pub latency: (Duration, Duration),
    /// The regions, the first the home of recorded background traffic.
    pub regions: Vec<String>,
    /// Every lake.
    pub lakes: LakeDirectory,
    /// The provider's quotas, fleet and abuse policy.
    pub provider: ProviderConfig,
    /// Other accounts' load on the provider.
    pub background: BackgroundLoad,
    /// What the lakes' owners allow.
    pub policies: LakePolicies,
    /// The system's customer registry.
    pub registry: Vec<Lake>,
    /// The system's configuration.
    pub system: SystemConfig,
    /// Workers in each region.
    pub workers_per_region: u32,
    /// The replay client's submissions.
    pub submissions: Vec<Submission>,
    /// Faults and operator actions the step loop applies, in time order.
    pub controls: Vec<Control>,
    /// Operator requests the operator host sends, in time order.
    pub requests: Vec<Control>,
}

/// A trace line that selects lakes the world does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trace line {line}: {message}")]
pub struct SelectorError {
    /// 1-based line in the trace.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

/// Lowers `scenario` with `seed` and `trace`; `controls` are its timeline (the scenario's own,
/// [`control::timeline`], or those a gameday branch chose).
pub fn lower(
    scenario: &Scenario,
    seed: u64,
    trace: &Trace,
    controls: &[Control],
) -> Result<Plan, SelectorError> {
    let lakes = lake_directory(scenario, seed);
    let submissions = submissions(scenario, &lakes, trace)?;
    let (provider, background) = provider_config(scenario);
    let (mut requests, mut controls): (Vec<Control>, Vec<Control>) = controls
        .iter()
        .cloned()
        .partition(|c| matches!(c.action, Action::Request { .. }));
    controls.sort_by_key(|c| c.at);
    requests.sort_by_key(|c| c.at);
    let net = &scenario.world.network;
    Ok(Plan {
        seed,
        duration: scenario.duration.0,
        tick: scenario.tick.0,
        latency: (net.min_latency.0, net.max_latency.0),
        regions: scenario.world.regions.clone(),
        registry: lake_registry(&lakes, scenario.world.lakes.shared),
        lakes,
        provider,
        background,
        policies: LakePolicies {
            trust_system: scenario.world.lakes.trust_system,
        },
        system: system_config(scenario),
        workers_per_region: scenario.system.workers_per_region,
        submissions,
        controls,
        requests,
    })
}

/// [`lower`] with the scenario's own timeline.
pub fn lower_scenario(
    scenario: &Scenario,
    seed: u64,
    trace: &Trace,
) -> Result<Plan, SelectorError> {
    lower(scenario, seed, trace, &control::timeline(scenario))
}

/// The lakes of a scenario's world.
pub fn lake_directory(scenario: &Scenario, seed: u64) -> LakeDirectory {
    let lakes = &scenario.world.lakes;
    LakeDirectory {
        seed: sub_seed(seed, "lakes"),
        count: lakes.count,
        tenants: lakes.tenants,
        regions: scenario.world.regions.clone(),
        files_per_lake: lakes.files_per_lake,
        rows_per_file: lakes.rows_per_file,
    }
}

/// The provider configuration of a scenario: the preset with the scenario's overrides.
pub fn provider_config(scenario: &Scenario) -> (ProviderConfig, BackgroundLoad) {
    let spec = &scenario.world.provider;
    let mut config = ProviderConfig::default();
    for (api, q) in &spec.quotas {
        config.quotas.insert(
            api.clone(),
            Limit {
                rate_per_s: q.rate_per_s,
                burst: q.burst,
            },
        );
    }
    let f = &spec.fleet;
    config.fleet.servers = f.servers.unwrap_or(config.fleet.servers);
    config.fleet.base_service = f.base_service.map_or(config.fleet.base_service, |s| s.0);
    config.fleet.slowdown = f.slowdown.unwrap_or(config.fleet.slowdown);
    config.fleet.timeout = f.timeout.map_or(config.fleet.timeout, |s| s.0);
    config.fleet.max_queue_wait = f
        .max_queue_wait
        .map_or(config.fleet.max_queue_wait, |s| s.0);
    let z = &spec.freeze;
    config.abuse.fleet_util_over = z.fleet_util_over.unwrap_or(config.abuse.fleet_util_over);
    config.abuse.sustained = z.sustained.map_or(config.abuse.sustained, |s| s.0);
    config.abuse.freeze_for = z.freeze_for.map_or(config.abuse.freeze_for, |s| s.0);
    config.abuse.min_share = z.min_share.unwrap_or(config.abuse.min_share);
    config.s3_prefix_reads_per_s = spec
        .s3_prefix_reads_per_s
        .unwrap_or(config.s3_prefix_reads_per_s);
    config.s3_prefix_writes_per_s = spec
        .s3_prefix_writes_per_s
        .unwrap_or(config.s3_prefix_writes_per_s);
    let mut background = BackgroundLoad {
        accounts: spec.background.accounts,
        ..BackgroundLoad::default()
    };
    background.rate_per_s = spec.background.rate_per_s.unwrap_or(background.rate_per_s);
    background.replay = spec.background.recorded.clone();
    (config, background)
}

/// The lakes as the system knows them: its customer registry, with the external id each
/// tenant was given and whether its lakes are shared with every tenant.
pub fn lake_registry(lakes: &LakeDirectory, shared: bool) -> Vec<Lake> {
    (0..lakes.count)
        .map(|i| Lake {
            id: i,
            tenant: lakes.tenant(i),
            region: lakes.region(i).to_string(),
            bucket: lakes.bucket(i),
            role_arn: lake_role_arn(i),
            external_id: lakes.external_id(i),
            shared,
        })
        .collect()
}

/// The system's configuration in a scenario ([`Scenario::system_config`]), which was checked
/// when the scenario was loaded.
pub fn system_config(scenario: &Scenario) -> SystemConfig {
    scenario
        .system_config()
        .expect("the scenario's tuning was checked when it was loaded")
}

/// Resolves every trace record to a submission: when, and to which coordinator. Lake ids are
/// checked here so that a bad trace fails before the run; the system resolves selectors itself.
pub fn submissions(
    scenario: &Scenario,
    lakes: &LakeDirectory,
    trace: &Trace,
) -> Result<Vec<Submission>, SelectorError> {
    let regions = &scenario.world.regions;
    let mut out = Vec::with_capacity(trace.records.len());
    for (seq, ((record, &line), &at)) in trace
        .records
        .iter()
        .zip(&trace.lines)
        .zip(&trace.at)
        .enumerate()
    {
        let count = match &record.lakes {
            LakeSelector::All => lakes.count as usize,
            LakeSelector::Tenant(t) => (0..lakes.count).filter(|&i| &lakes.tenant(i) == t).count(),
            LakeSelector::Ids(ids) => {
                if let Some(bad) = ids.iter().find(|&&i| i >= lakes.count) {
                    return Err(SelectorError {
                        line,
                        message: format!(
                            "lake {bad} does not exist (the world has {})",
                            lakes.count
                        ),
                    });
                }
                ids.len()
            }
        };
        if count == 0 {
            return Err(SelectorError {
                line,
                message: "the selector matches no lake".into(),
            });
        }
        // Each query prefers one region's coordinator, in turn, and fails over to the others.
        let coordinators = (0..regions.len())
            .map(|k| {
                let region = &regions[(seq + k) % regions.len()];
                (coordinator_host(region), COORDINATOR_PORT)
            })
            .collect();
        out.push(Submission {
            seq: seq as u64,
            at,
            coordinators,
            record: record.clone(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_scenario_overrides_the_preset() {
        let text = "name: t\nduration: 1m\nworld:\n  regions: [r]\n  lakes: { count: 1 }\n  provider:\n    quotas: { GetTable: { rate_per_s: 7, burst: 9 } }\n    fleet: { servers: 3, timeout: 250ms }\n    freeze: { for: 10s }\n    background: { accounts: 2, rate_per_s: 1.5 }\n    s3_prefix_reads_per_s: 100\ntraffic:\n  replay: t.jsonl\n";
        let scenario = crate::input::scenario::parse(Path::new("t.yaml"), text).unwrap();
        let (config, background) = provider_config(&scenario);
        let preset = ProviderConfig::default();
        assert_eq!(
            config.quotas["GetTable"],
            Limit {
                rate_per_s: 7.0,
                burst: 9.0
            }
        );
        assert_eq!(
            (config.fleet.servers, config.fleet.timeout),
            (3, Duration::from_millis(250))
        );
        assert_eq!(
            config.fleet.base_service, preset.fleet.base_service,
            "unset keeps the preset"
        );
        assert_eq!(config.abuse.sustained, Duration::from_secs(10));
        assert_eq!(config.abuse.freeze_for, preset.abuse.freeze_for);
        assert_eq!(config.s3_prefix_reads_per_s, 100.0);
        assert_eq!(config.s3_prefix_writes_per_s, preset.s3_prefix_writes_per_s);
        assert_eq!(
            background,
            BackgroundLoad {
                accounts: 2,
                rate_per_s: 1.5,
                replay: Vec::new(),
            }
        );
    }
}
