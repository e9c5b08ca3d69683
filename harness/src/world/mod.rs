//! One scenario's world on turmoil: the provider hosts, the system's workers, the replay client,
//! and the step loop the harness owns.

pub mod clock;
pub mod control;
pub mod hosts;
pub mod lower;
pub mod net;
pub mod traffic;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hyper_util::service::TowerToHyperService;
use stampede_fakes::glue::GlueFake;
use stampede_fakes::iam::SYSTEM_ACCOUNT;
use stampede_fakes::imds::ImdsFake;
use stampede_fakes::provider::Correlated;
use stampede_fakes::sqs::SqsFake;
use stampede_fakes::sts::StsFake;
use stampede_fakes::{Clock, Iam, Identity, ObjectStoreConfig, ObjectStoreFake, ProviderRegion};
use stampede_system::{
    Cloud, Coordinator, CoordinatorSetup, MemoryJournal, RegionEndpoints, SystemConfig, Worker,
    WorkerSetup,
};

use crate::events::{EventLog, Recorder};
use crate::input::scenario::Scenario;
use crate::input::trace::Trace;
use crate::rng::sub_seed;
use crate::world::control::{Action, Control, Effects, OPERATOR_HOST, Timeline, operator};
use crate::world::lower::{Plan, SelectorError};
use crate::world::net::{SimDialer, serve};
use crate::world::traffic::{Reply, replay};

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
    #[error(transparent)]
    Selector(#[from] SelectorError),
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

/// Told the virtual time as a simulation goes: for people watching (a progress bar); nothing it
/// sees reaches the simulation. Shared, so that both simulations of a run tell one bar.
pub type Progress = Rc<RefCell<dyn FnMut(Duration)>>;

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

/// Builds a [`World`] from a [`Plan`]; its options are how the world is watched and stepped,
/// never what happens in it.
pub struct Builder {
    plan: Plan,
    skip_idle_hosts: bool,
    operator_host: Option<bool>,
    progress: Option<Progress>,
}

impl Builder {
    /// Whether a host with nothing to do in a step is left unpolled and its clock caught up when
    /// it next runs (turmoil's `skip_idle_hosts`; on by default). Off, every host is ticked at
    /// every step: the way to measure what skipping saves, and to check it changes no verdict.
    /// Either way a run is deterministic; the two need not give the same log, since a runtime's
    /// scheduler bookkeeping advances less when skipped.
    pub fn skip_idle_hosts(mut self, skip: bool) -> Self {
        self.skip_idle_hosts = skip;
        self
    }

    /// Whether the operator host is there. By default, when the plan has operator requests; a
    /// gameday has it always, so that requests added later reach the system the way the
    /// scenario's own do (a run whose scenario lists one is the same run).
    pub fn operator_host(mut self, there: bool) -> Self {
        self.operator_host = Some(there);
        self
    }

    /// Who is told the virtual time as the world runs.
    pub fn progress(mut self, progress: Option<Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// The world, its hosts built, at time zero; its events go to `recorder`.
    pub fn build(self, recorder: &Recorder) -> World<'_> {
        let plan = self.plan;
        let mut sim = turmoil::Builder::new()
            // The harness owns the loop and stops at `duration`; turmoil's own limit is a backstop.
            .simulation_duration(plan.duration * 2 + Duration::from_secs(1))
            .tick_duration(plan.tick)
            .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
            .min_message_latency(plan.latency.0)
            .max_message_latency(plan.latency.1)
            .rng_seed(sub_seed(plan.seed, "turmoil"))
            // turmoil panics when a listening socket's backlog (this capacity, 64 by default) is
            // full, where a kernel would drop the SYN. A naive system's stampede of connections
            // reaches 64 at once, so the backlog is made deep enough that overload shows as load.
            .tcp_capacity(TCP_BACKLOG)
            .skip_idle_hosts(self.skip_idle_hosts)
            .build();
        // IAM is global, as on the real provider: credentials one region's STS or IMDS issued
        // are good in every region.
        let iam = Iam::new(
            sub_seed(plan.seed, "iam"),
            plan.lakes.clone(),
            vec![system_principal()],
        )
        .with_lake_policies(plan.policies);
        let providers = add_provider_hosts(&mut sim, &plan, &iam);
        let now = Rc::new(Cell::new(Duration::ZERO));
        let region_hosts = add_system_hosts(&mut sim, &plan, &providers, &iam, &now);
        let replies = Rc::new(RefCell::new(Vec::new()));
        sim.client(
            TRAFFIC_HOST,
            replay(plan.submissions.clone(), replies.clone()),
        );
        let operator_queue = Rc::new(RefCell::new(plan.requests.clone()));
        if self.operator_host.unwrap_or(!plan.requests.is_empty()) {
            sim.client(OPERATOR_HOST, operator(operator_queue.clone()));
        }
        World {
            sim,
            recorder,
            providers,
            iam,
            region_hosts,
            timeline: Timeline::new(plan.controls),
            operator_queue,
            replies,
            now,
            duration: plan.duration,
            tick: plan.tick,
            steps: 0,
            progress: self.progress,
        }
    }
}

/// The provider's hosts, one per region, each serving S3, STS, SQS and Glue over its region's
/// model; the models by region.
fn add_provider_hosts(
    sim: &mut turmoil::Sim<'static>,
    plan: &Plan,
    iam: &Iam,
) -> BTreeMap<String, ProviderRegion> {
    let mut providers = BTreeMap::new();
    for region in &plan.regions {
        let host = provider_host(region);
        let provider = ProviderRegion::new(
            region,
            plan.provider.clone(),
            Arc::new(SimClock),
            EPOCH_SECS,
        );
        providers.insert(region.clone(), provider.clone());
        let iam = iam.clone();
        let config = ObjectStoreConfig {
            region: region.clone(),
            lakes: plan.lakes.clone(),
            buckets: vec![stampede_system::config_agent::CONFIG_BUCKET.to_string()],
        };
        let s3 = ObjectStoreFake::new(config, provider.clone(), iam.clone());
        let sts = StsFake::new(provider.clone(), iam.clone());
        let sqs = SqsFake::new(provider.clone(), iam.clone());
        let glue = GlueFake::new(provider.clone(), iam, plan.lakes.clone());
        // Recorded background calls are replayed in the first region only.
        let mut background = plan.background.clone();
        if Some(region) != plan.regions.first() {
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
    providers
}

/// The system's hosts: a coordinator and the workers of each region, each serving its own IMDS;
/// the hosts by region.
fn add_system_hosts(
    sim: &mut turmoil::Sim<'static>,
    plan: &Plan,
    providers: &BTreeMap<String, ProviderRegion>,
    iam: &Iam,
    now: &Rc<Cell<Duration>>,
) -> BTreeMap<String, Vec<String>> {
    let registry = Arc::new(plan.registry.clone());
    let config = &plan.system;
    let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECS);
    let mut region_hosts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let endpoints: BTreeMap<String, RegionEndpoints> = plan
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
    let seed = plan.seed;
    for region in &plan.regions {
        let name = coordinator_host(region);
        let hosts = region_hosts.entry(region.clone()).or_default();
        hosts.push(name.clone());
        hosts.extend((0..plan.workers_per_region).map(|k| worker_host(region, k)));
        let setup = CoordinatorSetup {
            name: name.clone(),
            url: format!("http://{name}:{COORDINATOR_PORT}"),
            lakes: registry.clone(),
            audit: Arc::new(MemoryJournal::default()),
            journal: Arc::new(MemoryJournal::default()),
            epoch,
        };
        let imds = ImdsFake::new(&name, providers[region].clone(), iam.clone());
        let node = NodeCloud::new(&name, region, config, &endpoints, seed, now, imds);
        sim.host(name.clone(), move || {
            let (epoch, restarted) = node.boot_epoch();
            let setup = CoordinatorSetup {
                epoch,
                ..setup.clone()
            };
            let coordinator = Coordinator::new(setup, node.boot());
            let service = TowerToHyperService::new(coordinator.router());
            let imds = node.imds.clone();
            async move {
                serve_imds(&imds);
                let recovering = coordinator.clone();
                tokio::task::spawn_local(async move { recovering.boot(restarted).await });
                tokio::task::spawn_local(coordinator.clone().run_config_agent());
                serve(COORDINATOR_PORT, service).await
            }
        });
        for k in 0..plan.workers_per_region {
            let name = worker_host(region, k);
            let setup = WorkerSetup {
                name: name.clone(),
                lakes: registry.clone(),
                epoch,
                restarted: false,
                // The first worker of each region is the canary for config pushes.
                canary: k == 0,
            };
            let imds = ImdsFake::new(&name, providers[region].clone(), iam.clone());
            let node = NodeCloud::new(&name, region, config, &endpoints, seed, now, imds);
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
    region_hosts
}

/// One scenario's world on turmoil, built from a [`Plan`] by a [`Builder`]: run it with
/// [`World::run_until`], add controls to its timeline with [`World::apply`], and take what it
/// produced with [`World::finish`].
pub struct World<'r> {
    sim: turmoil::Sim<'static>,
    recorder: &'r Recorder,
    providers: BTreeMap<String, ProviderRegion>,
    iam: Iam,
    region_hosts: BTreeMap<String, Vec<String>>,
    /// Controls not yet applied, and faults open.
    timeline: Timeline,
    /// Operator requests not yet sent, in time order; the operator host takes them.
    operator_queue: Rc<RefCell<Vec<Control>>>,
    replies: Rc<RefCell<Vec<Reply>>>,
    /// Virtual time now, as the step loop last set it: a node (re)booting reads it.
    now: Rc<Cell<Duration>>,
    duration: Duration,
    tick: Duration,
    steps: u64,
    progress: Option<Progress>,
}

impl World<'_> {
    /// A builder for the world of `plan`.
    pub fn builder(plan: Plan) -> Builder {
        Builder {
            plan,
            skip_idle_hosts: true,
            operator_host: None,
            progress: None,
        }
    }

    /// Virtual time now.
    pub fn elapsed(&self) -> Duration {
        self.sim.elapsed()
    }

    /// Adds `control` to the timeline, at a time not yet passed: an operator request goes to
    /// the operator host, anything else is applied by the step loop when its time comes.
    pub fn apply(&mut self, control: Control) {
        if matches!(control.action, Action::Request { .. }) {
            let mut queue = self.operator_queue.borrow_mut();
            queue.push(control);
            queue.sort_by_key(|c| c.at);
        } else {
            self.timeline.push(control);
        }
    }

    fn tell_progress(&self) {
        if let Some(p) = &self.progress {
            (p.borrow_mut())(self.sim.elapsed());
        }
    }

    /// Steps the world until virtual time `until` (at most its duration), applying each control
    /// when its time comes; with `hook` after every step when one is given. Without a hook,
    /// steps in which nothing would happen until the next control is due are taken at once
    /// (turmoil's `step_idle`: the same state as stepping through them). Returns whether the
    /// hook stopped the run.
    pub fn run_until(
        &mut self,
        until: Duration,
        mut hook: Option<Hook<'_>>,
    ) -> Result<bool, SimError> {
        let end = until.min(self.duration);
        while self.sim.elapsed() < end {
            let elapsed = self.sim.elapsed();
            self.recorder.set_now(elapsed);
            self.now.set(elapsed);
            let mut effects = Effects {
                sim: &mut self.sim,
                providers: &self.providers,
                iam: &self.iam,
                region_hosts: &self.region_hosts,
            };
            self.timeline
                .apply_due(elapsed, &mut effects, self.recorder);
            if hook.is_none() {
                let next = self.timeline.next_at().map_or(end, |at| at.min(end));
                let ahead = next.saturating_sub(elapsed).as_nanos();
                let max = ahead.div_ceil(self.tick.as_nanos().max(1));
                let jumped = self.sim.step_idle(u64::try_from(max).unwrap_or(u64::MAX));
                if jumped > 0 {
                    if (self.steps % 64) + jumped >= 64 {
                        self.tell_progress();
                    }
                    self.steps += jumped;
                    continue;
                }
            }
            self.sim.step().map_err(|e| SimError::Host {
                at: self.sim.elapsed(),
                message: e.to_string(),
            })?;
            self.steps += 1;
            if self.steps.is_multiple_of(64) {
                self.tell_progress();
            }
            let Some(hook) = hook.as_mut() else {
                continue;
            };
            match hook(self.sim.elapsed(), self.recorder) {
                Hooked::Go => {}
                Hooked::Add(controls) => controls.into_iter().for_each(|c| self.apply(c)),
                Hooked::Stop => {
                    self.recorder.set_now(self.sim.elapsed());
                    return Ok(true);
                }
            }
        }
        self.recorder.set_now(self.sim.elapsed());
        Ok(false)
    }

    /// Ends the world: its hosts dropped, its log and the replay client's replies taken.
    pub fn finish(self) -> SimOutput {
        let World {
            sim,
            recorder,
            replies,
            steps,
            ..
        } = self;
        drop(sim);
        let replies = std::mem::take(&mut *replies.borrow_mut());
        SimOutput {
            log: recorder.take(),
            replies,
            steps,
        }
    }
}

/// Lowers `scenario` with `seed`, `trace` and `controls`, builds its world and runs it to its
/// end: the simplest way through, for tests and tools.
pub fn simulate(
    scenario: &Scenario,
    seed: u64,
    trace: &Trace,
    recorder: &Recorder,
    controls: &[Control],
) -> Result<SimOutput, SimError> {
    let plan = lower::lower(scenario, seed, trace, controls)?;
    let mut world = World::builder(plan).build(recorder);
    world.run_until(Duration::MAX, None)?;
    Ok(world.finish())
}
