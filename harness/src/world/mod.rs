//! One scenario's world on turmoil: the provider hosts, the system's workers, the replay client,
//! and the step loop the harness owns.

pub mod clock;
pub mod control;
pub mod hosts;
pub mod net;
pub mod traffic;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hyper_util::service::TowerToHyperService;
use stampede_fakes::glue::GlueFake;
use stampede_fakes::iam::{LakePolicies, SYSTEM_ACCOUNT, lake_role_arn};
use stampede_fakes::imds::ImdsFake;
use stampede_fakes::provider::{BackgroundLoad, Correlated, Limit};
use stampede_fakes::sqs::SqsFake;
use stampede_fakes::sts::StsFake;
use stampede_fakes::{
    Clock, Iam, Identity, LakeDirectory, ObjectStoreConfig, ObjectStoreFake, ProviderConfig,
    ProviderRegion,
};
use stampede_system::{
    Cloud, Coordinator, CoordinatorSetup, Lake, MemoryJournal, RegionEndpoints, SystemConfig,
    Worker, WorkerSetup,
};

use crate::events::{EventLog, Recorder};
use crate::input::scenario::Scenario;
use crate::input::trace::{LakeSelector, Trace};
use crate::rng::sub_seed;
use crate::world::control::{Control, OPERATOR_HOST, ProviderAction, apply_due, operator};
use crate::world::net::{SimDialer, serve};
use crate::world::traffic::{Reply, Submission, replay};

pub use crate::world::hosts::{
    COORDINATOR_PORT, GLUE_PORT, IMDS_PORT, S3_PORT, SQS_PORT, STS_PORT, TRAFFIC_HOST,
    coordinator_host, provider_host, worker_host,
};

/// The depth of every simulated socket's buffers and listen backlog.
pub const TCP_BACKLOG: usize = 16_384;

/// Where virtual wall-clock time starts: 2026-01-01T00:00:00Z.
pub const EPOCH_SECS: u64 = 1_767_225_600;

/// The long-lived user the system under test signs with, in its own account.
pub fn system_principal() -> Identity {
    Identity {
        access_key_id: "AKIASTAMPEDESYSTEM00".into(),
        secret_access_key: "stampede/system/secret/key/0000000000000".into(),
        session_token: None,
        account: SYSTEM_ACCOUNT.into(),
        arn: format!("arn:aws:iam::{SYSTEM_ACCOUNT}:user/stampede-system"),
        role_arn: None,
        expires: None,
    }
}

/// Virtual time for the fakes: the simulation's, which survives host restarts.
#[derive(Debug, Clone, Copy)]
pub struct SimClock;

impl Clock for SimClock {
    fn now(&self) -> Duration {
        turmoil::sim_elapsed().unwrap_or_default()
    }
}

/// Why a simulation could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A host's software returned an error (it could not bind, say).
    #[error("simulated host failed at t={at:?}: {message}")]
    Host {
        /// Virtual time of the failure.
        at: Duration,
        /// What the host said.
        message: String,
    },
    /// A trace line selects lakes that do not exist.
    #[error("trace line {line}: {message}")]
    Selector {
        /// 1-based line in the trace.
        line: u64,
        /// What is wrong.
        message: String,
    },
}

/// What one simulation produced.
#[derive(Debug)]
pub struct SimOutput {
    /// Every event, in order.
    pub log: EventLog,
    /// The replay client's replies, by sequence number.
    pub replies: Vec<Reply>,
    /// Steps the simulator took.
    pub steps: u64,
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

/// The system's configuration in a scenario: the preset, the switches over it, and what the
/// operators know of the provider (its documented quotas, how many nodes share them).
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
) -> Result<Vec<Submission>, SimError> {
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
                    return Err(SimError::Selector {
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
            return Err(SimError::Selector {
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

/// What a system node boots its cloud clients from. Each boot (the first, and every restart
/// after a crash) starts with fresh state: empty caches, closed breakers, full rate limits.
struct NodeCloud {
    name: String,
    region: String,
    config: SystemConfig,
    endpoints: BTreeMap<String, RegionEndpoints>,
    seed: u64,
    /// Virtual time now, as the step loop last set it: a node (re)booting reads it.
    now: Rc<Cell<Duration>>,
    /// The node's own metadata service, served on the node's host as on an instance.
    imds: ImdsFake,
}

impl NodeCloud {
    /// The cloud of node `name` in `region`: its own IMDS in place of a region's.
    fn new(
        name: &str,
        region: &str,
        config: &SystemConfig,
        endpoints: &BTreeMap<String, RegionEndpoints>,
        seed: u64,
        now: &Rc<Cell<Duration>>,
        imds: ImdsFake,
    ) -> Self {
        let mut endpoints = endpoints.clone();
        if let Some(home) = endpoints.get_mut(region) {
            home.imds = format!("http://{name}:{IMDS_PORT}");
        }
        Self {
            name: name.to_string(),
            region: region.to_string(),
            config: config.clone(),
            endpoints,
            seed: sub_seed(seed, name),
            now: now.clone(),
            imds,
        }
    }

    /// Virtual wall-clock time at this boot, and whether it is a restart.
    fn boot_epoch(&self) -> (SystemTime, bool) {
        let now = self.now.get();
        (
            SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECS) + now,
            now > Duration::ZERO,
        )
    }

    fn boot(&self) -> Arc<Cloud> {
        let (epoch, _) = self.boot_epoch();
        // Each boot draws its own jitter: the seed mixes in the boot time.
        let seed = self.seed ^ self.now.get().as_micros() as u64;
        let guard = Arc::new(
            stampede_system::guard::Guard::new(self.config.clone(), seed)
                .named(&self.name, self.now.get().as_millis() as u64),
        );
        let dialer = Arc::new(SimDialer);
        Arc::new(Cloud::new(
            &self.name,
            &self.region,
            dialer,
            guard,
            self.endpoints.clone(),
            epoch,
        ))
    }
}

/// Serves a node's metadata service on its host until the host stops.
fn serve_imds(imds: &ImdsFake) {
    let imds = Correlated(TowerToHyperService::new(imds.router()));
    tokio::task::spawn_local(serve(IMDS_PORT, imds));
}

/// Told the virtual time as a simulation goes.
type ProgressFn = Box<dyn FnMut(Duration)>;

thread_local! {
    /// Who is told of the simulation's progress, on this thread (a person's progress bar).
    static PROGRESS: RefCell<Option<ProgressFn>> = const { RefCell::new(None) };
}

/// Runs `body` with `progress` told the virtual time after each step of every simulation it
/// runs on this thread. For people watching: nothing it sees reaches the simulation.
pub fn with_progress<R>(progress: impl FnMut(Duration) + 'static, body: impl FnOnce() -> R) -> R {
    PROGRESS.with(|p| *p.borrow_mut() = Some(Box::new(progress)));
    let out = body();
    PROGRESS.with(|p| *p.borrow_mut() = None);
    out
}

fn tell_progress(now: Duration) {
    PROGRESS.with(|p| {
        if let Some(f) = p.borrow_mut().as_mut() {
            f(now);
        }
    });
}

thread_local! {
    /// Whether simulations on this thread leave idle hosts unpolled (see [`without_idle_skipping`]).
    static SKIP_IDLE_HOSTS: Cell<bool> = const { Cell::new(true) };
}

/// Runs `body` with every simulation it runs on this thread ticking every host at every step,
/// even a host with no ready task and no timer due: the way to measure what skipping them saves,
/// and to check that it changes no verdict.
///
/// By default a host with nothing to do in a step is left unpolled and its clock caught up when
/// it next runs (turmoil's `skip_idle_hosts`). Either way a run is deterministic; the two need
/// not give the same log, since a runtime's scheduler bookkeeping advances less when skipped.
pub fn without_idle_skipping<R>(body: impl FnOnce() -> R) -> R {
    let before = SKIP_IDLE_HOSTS.replace(false);
    let out = body();
    SKIP_IDLE_HOSTS.set(before);
    out
}

/// What a [`Hook`] tells the step loop after a step.
#[derive(Debug)]
pub enum Hooked {
    /// Go on.
    Go,
    /// Go on, with these controls added to the timeline (each at a time not yet passed).
    Add(Vec<Control>),
    /// Stop the run here.
    Stop,
}

/// Sees the virtual time and the log after every step, and may add controls or stop the run:
/// `stampede gameday` pauses inside it. It must not change what the simulation sees in any
/// other way, so that a run with its controls known from the start is the same run.
pub type Hook<'a> = &'a mut dyn FnMut(Duration, &Recorder) -> Hooked;

/// Builds the world of `scenario` and runs it for its duration with `seed`.
pub fn simulate(
    scenario: &Scenario,
    seed: u64,
    trace: &Trace,
    recorder: &Recorder,
    controls: &[Control],
) -> Result<SimOutput, SimError> {
    let operator = controls
        .iter()
        .any(|c| matches!(c.action, ProviderAction::Request { .. }));
    build_and_run(scenario, seed, trace, recorder, controls, operator, None)
}

/// [`simulate`], with `hook` called after every step. The operator host is there even without
/// requests, so that requests a hook adds later reach the system the way the scenario's own
/// do: a run whose scenario lists at least one operator request is the same run.
pub fn simulate_hooked(
    scenario: &Scenario,
    seed: u64,
    trace: &Trace,
    recorder: &Recorder,
    controls: &[Control],
    hook: Hook<'_>,
) -> Result<SimOutput, SimError> {
    build_and_run(scenario, seed, trace, recorder, controls, true, Some(hook))
}

fn build_and_run(
    scenario: &Scenario,
    seed: u64,
    trace: &Trace,
    recorder: &Recorder,
    controls: &[Control],
    operator_host: bool,
    mut hook: Option<Hook<'_>>,
) -> Result<SimOutput, SimError> {
    let (requests, mut pending): (Vec<Control>, Vec<Control>) = controls
        .iter()
        .cloned()
        .partition(|c| matches!(c.action, ProviderAction::Request { .. }));
    pending.sort_by_key(|c| c.at);
    let mut providers = BTreeMap::new();
    let lakes = lake_directory(scenario, seed);
    let submissions = submissions(scenario, &lakes, trace)?;
    let duration = scenario.duration.0;
    let tick = scenario.tick.0;
    let net = &scenario.world.network;
    let mut sim = turmoil::Builder::new()
        // The harness owns the loop and stops at `duration`; turmoil's own limit is a backstop.
        .simulation_duration(duration * 2 + Duration::from_secs(1))
        .tick_duration(tick)
        .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
        .min_message_latency(net.min_latency.0)
        .max_message_latency(net.max_latency.0)
        .rng_seed(sub_seed(seed, "turmoil"))
        // turmoil panics when a listening socket's backlog (this capacity, 64 by default) is
        // full, where a kernel would drop the SYN. A naive system's stampede of connections
        // reaches 64 at once, so the backlog is made deep enough that overload shows as load.
        .tcp_capacity(TCP_BACKLOG)
        .skip_idle_hosts(SKIP_IDLE_HOSTS.get())
        .build();

    let principal = system_principal();
    let (provider_config, background) = provider_config(scenario);
    // IAM is global, as on the real provider: credentials one region's STS or IMDS issued are
    // good in every region.
    let global_iam = Iam::new(sub_seed(seed, "iam"), lakes.clone(), vec![principal])
        .with_lake_policies(LakePolicies {
            trust_system: scenario.world.lakes.trust_system,
        });
    for region in &scenario.world.regions {
        let host = provider_host(region);
        let provider = ProviderRegion::new(
            region,
            provider_config.clone(),
            Arc::new(SimClock),
            EPOCH_SECS,
        );
        providers.insert(region.clone(), provider.clone());
        let iam = global_iam.clone();
        let config = ObjectStoreConfig {
            region: region.clone(),
            lakes: lakes.clone(),
            buckets: vec![stampede_system::config_agent::CONFIG_BUCKET.to_string()],
        };
        let s3 = ObjectStoreFake::new(config, provider.clone(), iam.clone());
        let sts = StsFake::new(provider.clone(), iam.clone());
        let sqs = SqsFake::new(provider.clone(), iam.clone());
        let glue = GlueFake::new(provider.clone(), iam, lakes.clone());
        // Recorded background calls are replayed in the first region only.
        let mut background = background.clone();
        if Some(region) != scenario.world.regions.first() {
            background.replay.clear();
        }
        sim.host(host, move || {
            let background = background.clone();
            let s3 = Correlated(s3.service());
            let sts = Correlated(TowerToHyperService::new(sts.router()));
            let sqs = Correlated(TowerToHyperService::new(sqs.router()));
            let glue = Correlated(TowerToHyperService::new(glue.router()));
            let provider = provider.clone();
            async move {
                tokio::task::spawn_local(provider.clone().run_background(background));
                tokio::task::spawn_local(provider.run());
                tokio::task::spawn_local(serve(STS_PORT, sts));
                tokio::task::spawn_local(serve(SQS_PORT, sqs));
                tokio::task::spawn_local(serve(GLUE_PORT, glue));
                serve(S3_PORT, s3).await
            }
        });
    }
    let registry = Arc::new(lake_registry(&lakes, scenario.world.lakes.shared));
    let config = system_config(scenario);
    let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECS);
    let now = Rc::new(Cell::new(Duration::ZERO));
    let mut region_hosts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let endpoints: BTreeMap<String, RegionEndpoints> = scenario
        .world
        .regions
        .iter()
        .map(|r| {
            let host = provider_host(r);
            let endpoints = RegionEndpoints {
                s3: format!("http://{host}:{S3_PORT}"),
                sts: format!("http://{host}:{STS_PORT}"),
                sqs: format!("http://{host}:{SQS_PORT}"),
                glue: format!("http://{host}:{GLUE_PORT}"),
                // Each node's own, set in `NodeCloud::new`.
                imds: String::new(),
            };
            (r.clone(), endpoints)
        })
        .collect();
    for region in &scenario.world.regions {
        let name = coordinator_host(region);
        let hosts = region_hosts.entry(region.clone()).or_default();
        hosts.push(name.clone());
        hosts.extend((0..scenario.system.workers_per_region).map(|k| worker_host(region, k)));
        let setup = CoordinatorSetup {
            name: name.clone(),
            url: format!("http://{name}:{COORDINATOR_PORT}"),
            lakes: registry.clone(),
            audit: Arc::new(MemoryJournal::default()),
            journal: Arc::new(MemoryJournal::default()),
            epoch,
        };
        let imds = ImdsFake::new(&name, providers[region].clone(), global_iam.clone());
        let node = NodeCloud::new(&name, region, &config, &endpoints, seed, &now, imds);
        sim.host(name.clone(), move || {
            let setup = CoordinatorSetup {
                epoch: node.boot_epoch().0,
                ..setup.clone()
            };
            let coordinator = Coordinator::new(setup, node.boot());
            let service = TowerToHyperService::new(coordinator.router());
            let imds = node.imds.clone();
            async move {
                serve_imds(&imds);
                let recovering = coordinator.clone();
                tokio::task::spawn_local(async move { recovering.recover().await });
                tokio::task::spawn_local(coordinator.clone().run_config_agent());
                serve(COORDINATOR_PORT, service).await
            }
        });
        for k in 0..scenario.system.workers_per_region {
            let name = worker_host(region, k);
            let setup = WorkerSetup {
                name: name.clone(),
                lakes: registry.clone(),
                epoch,
                restarted: false,
                // The first worker of each region is the canary for config pushes.
                canary: k == 0,
            };
            let imds = ImdsFake::new(&name, providers[region].clone(), global_iam.clone());
            let node = NodeCloud::new(&name, region, &config, &endpoints, seed, &now, imds);
            sim.host(name, move || {
                let (epoch, restarted) = node.boot_epoch();
                let setup = WorkerSetup {
                    epoch,
                    restarted,
                    ..setup.clone()
                };
                let worker = Worker::new(setup, node.boot(), Arc::new(SimDialer));
                let admin = TowerToHyperService::new(worker.admin_router());
                let imds = node.imds.clone();
                async move {
                    serve_imds(&imds);
                    tokio::task::spawn_local(serve(stampede_system::admin::ADMIN_PORT, admin));
                    worker.run().await;
                    Ok(())
                }
            });
        }
    }
    let replies = Rc::new(RefCell::new(Vec::new()));
    sim.client(TRAFFIC_HOST, replay(submissions, replies.clone()));
    let mut requests = requests;
    requests.sort_by_key(|c| c.at);
    let operator_queue = Rc::new(RefCell::new(requests));
    if operator_host {
        sim.client(OPERATOR_HOST, operator(operator_queue.clone()));
    }

    let mut steps = 0;
    while sim.elapsed() < duration {
        recorder.set_now(sim.elapsed());
        now.set(sim.elapsed());
        apply_due(
            &mut pending,
            sim.elapsed(),
            &mut sim,
            &providers,
            &region_hosts,
            recorder,
        );
        // Steps in which nothing would happen until the next control is due are taken at once
        // (turmoil's `step_idle`: the same state as stepping through them). Not under a hook,
        // which sees every step.
        if hook.is_none() {
            let until = pending.first().map_or(duration, |c| c.at.min(duration));
            let ahead = until.saturating_sub(sim.elapsed()).as_nanos();
            let max = ahead.div_ceil(tick.as_nanos().max(1));
            let jumped = sim.step_idle(u64::try_from(max).unwrap_or(u64::MAX));
            if jumped > 0 {
                if (steps % 64) + jumped >= 64 {
                    tell_progress(sim.elapsed());
                }
                steps += jumped;
                continue;
            }
        }
        sim.step().map_err(|e| SimError::Host {
            at: sim.elapsed(),
            message: e.to_string(),
        })?;
        steps += 1;
        if steps % 64 == 0 {
            tell_progress(sim.elapsed());
        }
        let Some(hook) = hook.as_mut() else {
            continue;
        };
        match hook(sim.elapsed(), recorder) {
            Hooked::Go => {}
            Hooked::Add(controls) => {
                for c in controls {
                    if matches!(c.action, ProviderAction::Request { .. }) {
                        operator_queue.borrow_mut().push(c);
                    } else {
                        pending.push(c);
                    }
                }
                pending.sort_by_key(|c| c.at);
                operator_queue.borrow_mut().sort_by_key(|c| c.at);
            }
            Hooked::Stop => break,
        }
    }
    recorder.set_now(sim.elapsed());
    drop(sim);
    let replies = std::mem::take(&mut *replies.borrow_mut());
    Ok(SimOutput {
        log: recorder.take(),
        replies,
        steps,
    })
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
