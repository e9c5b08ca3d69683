//! The timeline of a run: each fault's window (its start and its end, applied by the harness
//! at virtual times to the provider's controls or to the simulation itself) and the requests
//! by which operator actions reach the system. A fault's start and end are logged on
//! `stampede::fault` as `fault_start` and `fault_end`, with the id they share, its kind
//! (`fault`), its region and its parameters; faults that set the same knob (two throttles of
//! one api, say) compose: when one ends, the latest still open holds the knob.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use stampede_fakes::ProviderRegion;
use stampede_fakes::iam::{Iam, SYSTEM_ACCOUNT};

use crate::events::Recorder;
use crate::input::fault::{Fault, FaultKind};
use crate::input::scenario::Scenario;
use crate::world::hosts::provider_host;

/// The target of fault events.
pub const FAULT_EVENTS: &str = crate::judge::invariants::vocabulary::FAULT_TARGET;

/// One side of a fault's window, or an operator's request, as the timeline applies it.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Fault `id` of the timeline begins; it ends at `until`, if it does.
    Start {
        /// Its id, shared with its end and logged with both.
        id: u64,
        /// What it is.
        kind: FaultKind,
        /// When it ends.
        until: Option<Duration>,
    },
    /// Fault `id` ends.
    End {
        /// Its id.
        id: u64,
        /// What it was.
        kind: FaultKind,
    },
    /// An operator's HTTP POST to a host of the system (a config push, say), sent from the
    /// `operator` client host.
    Request {
        /// The host.
        host: String,
        /// Its port.
        port: u16,
        /// The path, e.g. `/v1/config`.
        path: String,
        /// The JSON body.
        body: String,
    },
}

/// An action at a virtual time.
#[derive(Debug, Clone, PartialEq)]
pub struct Control {
    /// When it takes effect.
    pub at: Duration,
    /// Which region.
    pub region: String,
    /// What.
    pub action: Action,
}

impl Control {
    /// Fault `id` of `kind` in `region`: its start at `at`, and its end at `until` if it ends.
    pub fn window(
        id: u64,
        region: &str,
        kind: FaultKind,
        at: Duration,
        until: Option<Duration>,
    ) -> Vec<Control> {
        let control = |at, action| Control {
            at,
            region: region.to_string(),
            action,
        };
        let mut out = vec![control(
            at,
            Action::Start {
                id,
                kind: kind.clone(),
                until,
            },
        )];
        if let Some(u) = until {
            out.push(control(u, Action::End { id, kind }));
        }
        out
    }
}

/// The names of the events ([`FAULT_EVENTS`]) the timeline logs.
pub const EVENT_NAMES: [&str; 3] = ["fault_start", "fault_end", "operator_request"];

/// The controls of a run not yet applied, and the faults begun and not ended.
#[derive(Debug, Default)]
pub struct Timeline {
    /// In time order.
    pending: Vec<Control>,
    /// By id (ids are given in order of start): the region and kind of each open fault.
    open: BTreeMap<u64, (String, FaultKind)>,
}

impl Timeline {
    /// A timeline of `controls`.
    pub fn new(mut controls: Vec<Control>) -> Self {
        controls.sort_by_key(|c| c.at);
        Self {
            pending: controls,
            open: BTreeMap::new(),
        }
    }

    /// Adds a control, at a time not yet passed.
    pub fn push(&mut self, control: Control) {
        self.pending.push(control);
        self.pending.sort_by_key(|c| c.at);
    }

    /// When the next control is due.
    pub fn next_at(&self) -> Option<Duration> {
        self.pending.first().map(|c| c.at)
    }

    /// Applies every control whose time has come, in order, and logs each.
    pub fn apply_due(&mut self, now: Duration, world: &mut Effects<'_, '_>, recorder: &Recorder) {
        while self.pending.first().is_some_and(|c| c.at <= now) {
            let control = self.pending.remove(0);
            let region = control.region.as_str();
            let (name, id, kind) = match control.action {
                // Sent by the operator client, which logs it when it goes out.
                Action::Request { .. } => continue,
                Action::Start { id, kind, until } => {
                    if !world.start(region, &kind, now, until) {
                        continue;
                    }
                    self.open.insert(id, (region.to_string(), kind.clone()));
                    ("fault_start", id, kind)
                }
                Action::End { id, kind } => {
                    self.open.remove(&id);
                    // What the other faults still open of the same knob hold it at: the
                    // latest begun.
                    let still = self
                        .open
                        .values()
                        .rev()
                        .find(|(r, k)| r == region && same_knob(k, &kind))
                        .map(|(_, k)| k);
                    if !world.end(region, &kind, still, now) {
                        continue;
                    }
                    ("fault_end", id, kind)
                }
            };
            let mut fields: BTreeMap<String, Value> = kind
                .fields()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            fields.insert("id".into(), json!(id));
            fields.insert("fault".into(), json!(kind.name()));
            fields.insert("region".into(), json!(control.region));
            recorder.push(FAULT_EVENTS, name, fields);
        }
    }
}

/// Whether two faults set the same knob of a region's provider (a throttle of the same api,
/// say), so that one ending hands the knob to the other.
fn same_knob(a: &FaultKind, b: &FaultKind) -> bool {
    match (a, b) {
        (FaultKind::ApiThrottle { api: x, .. }, FaultKind::ApiThrottle { api: y, .. })
        | (FaultKind::ApiErrors { api: x, .. }, FaultKind::ApiErrors { api: y, .. }) => x == y,
        (FaultKind::AccessRevoke { lake: x }, FaultKind::AccessRevoke { lake: y }) => x == y,
        (FaultKind::Latency { .. }, FaultKind::Latency { .. })
        | (FaultKind::FleetCapacity { .. }, FaultKind::FleetCapacity { .. }) => true,
        _ => false,
    }
}

/// What a fault can act on: the simulation and the regions' providers.
pub struct Effects<'a, 's> {
    /// The simulation.
    pub sim: &'a mut turmoil::Sim<'s>,
    /// Each region's provider.
    pub providers: &'a BTreeMap<String, ProviderRegion>,
    /// The identity store, global as on the real provider.
    pub iam: &'a Iam,
    /// The system's hosts in each region.
    pub region_hosts: &'a BTreeMap<String, Vec<String>>,
}

impl Effects<'_, '_> {
    /// Takes every host of `region` down (its provider and the system's hosts), or brings
    /// them all back at once (a hardened node then jitters its own start; stored data, the
    /// queue and the system's journals survive). `false` when the world has no such region.
    fn region(&mut self, region: &str, up: bool) -> bool {
        if !self.providers.contains_key(region) {
            return false;
        }
        let mut hosts = vec![provider_host(region)];
        hosts.extend(self.region_hosts.get(region).into_iter().flatten().cloned());
        for h in hosts {
            if up {
                self.sim.bounce(h);
            } else {
                self.sim.crash(h);
            }
        }
        true
    }

    /// Starts a fault; `false` when it has nothing to act on (no provider in `region`).
    fn start(
        &mut self,
        region: &str,
        kind: &FaultKind,
        now: Duration,
        until: Option<Duration>,
    ) -> bool {
        match kind {
            FaultKind::HostCrash { host } => self.sim.crash(host.as_str()),
            FaultKind::NetworkPartition { a, b } => self.sim.partition(a.as_str(), b.as_str()),
            // A region's outage takes down every host in it, the system's included.
            FaultKind::RegionOutage => return self.region(region, false),
            // IAM is global: a tenant's revocation holds in every region.
            FaultKind::AccessRevoke { lake } => {
                self.iam.revoke(*lake, true);
            }
            // Only the alert engine reads the log pipeline, and it knows the stalls from the
            // scenario; the traffic makes its burst: the events mark them on the timeline.
            FaultKind::LogsStall | FaultKind::TrafficBurst { .. } => {}
            // Between steps no host runs, so the provider's clock cannot be read: the
            // simulation's time is the same clock.
            provider => {
                return self.on_model(region, |model| {
                    match provider {
                        FaultKind::AccountFreeze { account } => {
                            let account = account.as_deref().unwrap_or(SYSTEM_ACCOUNT);
                            model.freeze(account, until.unwrap_or(now + Duration::MAX / 4));
                        }
                        FaultKind::ApiThrottle { api, rate_per_s } => {
                            model.throttle(api, *rate_per_s);
                        }
                        FaultKind::ApiErrors { api, fraction } => model.set_errors(api, *fraction),
                        FaultKind::Latency { extra } => model.set_extra_latency(extra.0),
                        FaultKind::FleetCapacity { fraction } => {
                            model.set_fleet_available(*fraction);
                        }
                        // Operator actions reach the system as requests.
                        _ => return false,
                    }
                    true
                });
            }
        }
        true
    }

    /// Runs `f` on `region`'s provider model; `false` when the region has no provider or `f`
    /// had nothing to do.
    fn on_model(
        &self,
        region: &str,
        f: impl FnOnce(&mut stampede_fakes::provider::RegionModel) -> bool,
    ) -> bool {
        self.providers
            .get(region)
            .is_some_and(|p| f(&mut p.model()))
    }

    /// Ends a fault; `still` is the latest fault still open on the same knob, which then
    /// holds it. `false` when it had nothing to act on.
    fn end(
        &mut self,
        region: &str,
        kind: &FaultKind,
        still: Option<&FaultKind>,
        now: Duration,
    ) -> bool {
        match kind {
            FaultKind::HostCrash { host } => self.sim.bounce(host.as_str()),
            FaultKind::NetworkPartition { a, b } => self.sim.repair(a.as_str(), b.as_str()),
            FaultKind::RegionOutage => return self.region(region, true),
            // Another revocation of the lake still open keeps it revoked.
            FaultKind::AccessRevoke { lake } => {
                if still.is_none() {
                    self.iam.revoke(*lake, false);
                }
            }
            FaultKind::LogsStall | FaultKind::TrafficBurst { .. } => {}
            // The provider thaws the account itself when its freeze runs out, now.
            FaultKind::AccountFreeze { .. } => {}
            provider => {
                if let Some(next) = still {
                    return self.start(region, next, now, None);
                }
                return self.on_model(region, |model| {
                    match provider {
                        FaultKind::ApiThrottle { api, .. } => model.lift_throttle(api),
                        FaultKind::ApiErrors { api, .. } => model.set_errors(api, 0.0),
                        FaultKind::Latency { .. } => model.set_extra_latency(Duration::ZERO),
                        FaultKind::FleetCapacity { .. } => model.set_fleet_available(1.0),
                        _ => return false,
                    }
                    true
                });
            }
        }
        true
    }
}

/// The host operator requests come from.
pub const OPERATOR_HOST: &str = "operator";

/// How often the operator looks at its queue of requests: requests go out on this grid.
pub const OPERATOR_POLL: Duration = Duration::from_millis(100);

/// The operator: sends each request of `queue` (sorted by time) when its time comes, checking
/// the queue every [`OPERATOR_POLL`] of virtual time from the start, so that requests added
/// while the run goes on (a gameday's) go out exactly as they would had they been there from
/// the start. It never ends: the run does.
pub async fn operator(queue: std::rc::Rc<std::cell::RefCell<Vec<Control>>>) -> turmoil::Result {
    let start = tokio::time::Instant::now();
    let mut k: u32 = 0;
    loop {
        k += 1;
        let now = OPERATOR_POLL * k;
        tokio::time::sleep_until(start + now).await;
        let due: Vec<Control> = {
            let mut q = queue.borrow_mut();
            let n = q.iter().take_while(|c| c.at <= now).count();
            q.drain(..n).collect()
        };
        for c in due {
            let Action::Request {
                host,
                port,
                path,
                body,
            } = c.action
            else {
                continue;
            };
            let req = http::Request::post(format!("http://{host}:{port}{path}"))
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))?;
            let status =
                stampede_system::exchange::send_collect(&crate::world::net::SimDialer, req)
                    .await
                    .map_or(0, |r| r.status().as_u16());
            tracing::info!(target: FAULT_EVENTS, host = %host, path = %path, status, "operator_request");
        }
    }
}

/// The windows of virtual time, in microseconds, when the scenario stalls the log pipeline.
pub fn log_stalls(scenario: &Scenario) -> Vec<std::ops::Range<u64>> {
    scenario
        .timeline()
        .filter(|f| f.kind == FaultKind::LogsStall)
        .map(|f| {
            let at = f.at.0.as_micros() as u64;
            at..f.lasts.map_or(u64::MAX, |d| at + d.0.as_micros() as u64)
        })
        .collect()
}

/// An operator's admission requests to `region`'s coordinator: paused (or resumed) at `at`, and
/// a pause resumed at `until`.
fn admission_requests(
    region: &str,
    paused: bool,
    at: Duration,
    until: Option<Duration>,
    push: &mut impl FnMut(Duration, Action),
) {
    let admission = |paused: bool| Action::Request {
        host: crate::world::hosts::coordinator_host(region),
        port: crate::world::hosts::COORDINATOR_PORT,
        path: "/v1/admin/admission".into(),
        body: format!("{{\"paused\":{paused}}}"),
    };
    push(at, admission(paused));
    if let (Some(u), true) = (until, paused) {
        push(u, admission(false));
    }
}

/// An operator's request `(path, body)` to every node of `region` (its coordinator and its
/// `workers`) at `at`, and `undo`'s body at its time.
fn node_requests(
    region: &str,
    workers: u32,
    (path, body): (&str, String),
    at: Duration,
    undo: Option<(Duration, String)>,
    push: &mut impl FnMut(Duration, Action),
) {
    let mut nodes = vec![(
        crate::world::hosts::coordinator_host(region),
        crate::world::hosts::COORDINATOR_PORT,
    )];
    nodes.extend((0..workers).map(|k| {
        (
            crate::world::hosts::worker_host(region, k),
            stampede_system::admin::ADMIN_PORT,
        )
    }));
    for (host, port) in nodes {
        let request = |body: String| Action::Request {
            host: host.clone(),
            port,
            path: path.into(),
            body,
        };
        push(at, request(body.clone()));
        if let Some((u, lift)) = &undo {
            push(*u, request(lift.clone()));
        }
    }
}

/// A generated burst is a trigger as much as a fault: its window, as fault `id` in `first`.
fn burst(scenario: &Scenario, first: &str, id: u64) -> Vec<Control> {
    match &scenario.traffic.generate {
        Some(crate::input::arrivals::Generator::Burst {
            burst_per_s,
            at,
            lasts,
            ..
        }) => {
            let per_s = burst_per_s * scenario.traffic.load;
            let kind = FaultKind::TrafficBurst { per_s };
            Control::window(id, first, kind, at.0, Some(at.0 + lasts.0))
        }
        _ => Vec::new(),
    }
}

/// The controls of a scenario's timeline: each fault's window, with the index of the fault in
/// `faults` as its id (the burst of a `burst` generator comes after them), and the requests by
/// which the operator's actions reach the system.
pub fn timeline(scenario: &Scenario) -> Vec<Control> {
    let first = scenario.world.regions.first().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for (id, f) in scenario.faults.iter().enumerate() {
        if f.kind.is_operator() {
            continue;
        }
        let region = f.region.as_deref().unwrap_or(&first);
        let until = f.lasts.map(|d| f.at.0 + d.0);
        out.extend(Control::window(
            id as u64,
            region,
            f.kind.clone(),
            f.at.0,
            until,
        ));
    }
    for f in scenario.timeline().filter(|f| f.kind.is_operator()) {
        out.extend(requests(scenario, f, &first));
    }
    out.extend(burst(scenario, &first, scenario.faults.len() as u64));
    out.sort_by_key(|c| c.at);
    out
}

/// The requests by which operator action `f` reaches the system.
fn requests(scenario: &Scenario, f: &Fault, first: &str) -> Vec<Control> {
    let region = f.region.clone().unwrap_or_else(|| first.to_string());
    let at = f.at.0;
    let until = f.lasts.map(|d| at + d.0);
    let mut out = Vec::new();
    let mut push = |at: Duration, action: Action| {
        out.push(Control {
            at,
            region: region.clone(),
            action,
        })
    };
    let workers = scenario.system.workers_per_region;
    match &f.kind {
        FaultKind::AdmissionPause | FaultKind::AdmissionResume | FaultKind::Failover => {
            // A failover is a pause the clients route around: a paused coordinator
            // answers 503, and clients then try the next region's.
            let paused = f.kind != FaultKind::AdmissionResume;
            admission_requests(&region, paused, at, until, &mut push);
        }
        FaultKind::CachesFlush => {
            let flush = ("/v1/admin/caches/flush", "{}".to_string());
            node_requests(&region, workers, flush, at, None, &mut push);
        }
        FaultKind::DrainRate { fraction } => {
            let drain = ("/v1/admin/drain", format!("{{\"factor\":{fraction}}}"));
            let lift = until.map(|u| (u, "{}".to_string()));
            node_requests(&region, workers, drain, at, lift, &mut push);
        }
        FaultKind::ConfigPush { document } => push(
            at,
            Action::Request {
                host: crate::world::hosts::coordinator_host(first),
                port: crate::world::hosts::COORDINATOR_PORT,
                path: "/v1/config".into(),
                body: serde_json::to_string(document).unwrap_or_default(),
            },
        ),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_timeline_becomes_controls_with_their_undoing() {
        let text = "name: t\nduration: 10m\nworld:\n  regions: [a, b]\n  lakes: { count: 4 }\ntraffic:\n  replay: t.jsonl\nfaults:\n  - { at: 1m, action: region.outage, region: b, for: 2m }\n  - { at: 30s, action: api.throttle, api: AssumeRole, rate_per_s: 5 }\n  - { at: 2m, action: host.crash, host: worker-a-0, for: 10s }\n";
        let s = crate::input::scenario::parse(Path::new("t.yaml"), text).unwrap();
        let got: Vec<(u64, &str, u64, &str, String)> = timeline(&s)
            .iter()
            .map(|c| match &c.action {
                Action::Start { id, kind, .. } => {
                    (c.at.as_secs(), "start", *id, kind.name(), c.region.clone())
                }
                Action::End { id, kind } => {
                    (c.at.as_secs(), "end", *id, kind.name(), c.region.clone())
                }
                Action::Request { .. } => unreachable!("no operator action here"),
            })
            .collect();
        let want = vec![
            (30, "start", 1, "api.throttle", "a".to_string()),
            (60, "start", 0, "region.outage", "b".to_string()),
            (120, "start", 2, "host.crash", "a".to_string()),
            (130, "end", 2, "host.crash", "a".to_string()),
            (180, "end", 0, "region.outage", "b".to_string()),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn a_fault_missing_its_parameter_is_located() {
        let text = "name: t\nduration: 10m\nworld:\n  regions: [a]\n  lakes: { count: 4 }\ntraffic:\n  replay: t.jsonl\nfaults:\n  - { at: 1m, action: latency, extra: 1s }\n  - { at: 2m, action: host.crash, for: 10s }\n";
        let e = crate::input::scenario::parse(Path::new("t.yaml"), text).unwrap_err();
        assert_eq!((e.line, e.column), (Some(10), Some(3)), "{e:?}");
        assert!(e.message.contains("host"), "{}", e.message);
    }

    #[test]
    fn months_impossible_faults_and_unknown_hosts_are_refused() {
        let base =
            "name: t\nworld:\n  regions: [a]\n  lakes: { count: 4 }\ntraffic:\n  replay: t.jsonl\n";
        let parse = |extra: &str| {
            crate::input::scenario::parse(Path::new("t.yaml"), &format!("{base}{extra}"))
        };
        let e = parse("duration: 10M\n").unwrap_err();
        assert!(e.message.contains("months"), "{}", e.message);
        let e = parse("duration: 10m\nfaults:\n  - { at: 20m, action: latency, extra: 1s }\n")
            .unwrap_err();
        assert!(e.message.contains("run lasts"), "{}", e.message);
        let e = parse("duration: 10m\nfaults:\n  - { at: 1m, action: host.crash, host: worker-a-7, for: 1s }\n").unwrap_err();
        assert!(e.message.contains("worker-a-7"), "{}", e.message);
        assert!(parse("duration: 10m\nfaults:\n  - { at: 1m, action: host.crash, host: worker-a-0, for: 1s }\n").is_ok());
    }

    #[test]
    fn operator_actions_reach_every_node_of_the_region() {
        let text = "name: t\nduration: 10m\nworld:\n  regions: [a]\n  lakes: { count: 4 }\nsystem: { workers_per_region: 2 }\ntraffic:\n  replay: t.jsonl\nfaults:\n  - { at: 1m, action: drain.rate, fraction: 0.25, for: 30s }\n  - { at: 3m, action: caches.flush }\n";
        let s = crate::input::scenario::parse(Path::new("t.yaml"), text).unwrap();
        let got: Vec<(u64, String, String)> = timeline(&s)
            .into_iter()
            .filter_map(|c| match c.action {
                Action::Request { host, body, .. } => Some((c.at.as_secs(), host, body)),
                _ => None,
            })
            .collect();
        let capped = r#"{"factor":0.25}"#.to_string();
        let want = vec![
            (60, "coordinator-a".to_string(), capped.clone()),
            (60, "worker-a-0".to_string(), capped.clone()),
            (60, "worker-a-1".to_string(), capped),
            (90, "coordinator-a".to_string(), "{}".to_string()),
            (90, "worker-a-0".to_string(), "{}".to_string()),
            (90, "worker-a-1".to_string(), "{}".to_string()),
            (180, "coordinator-a".to_string(), "{}".to_string()),
            (180, "worker-a-0".to_string(), "{}".to_string()),
            (180, "worker-a-1".to_string(), "{}".to_string()),
        ];
        assert_eq!(got, want);
    }
}
