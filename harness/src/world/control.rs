//! Faults and operator actions on the provider, applied by the harness at virtual times: the
//! controls the provider model offers (freeze, thaw, throttle, latency, fleet capacity) and
//! the simulator's own (a region's provider host down and up). Each is logged as an event on
//! `stampede::fault` when it takes effect.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use stampede_fakes::ProviderRegion;

use crate::events::Recorder;
use crate::world::hosts::provider_host;

/// The target of fault events.
pub const FAULT_EVENTS: &str = crate::judge::invariants::vocabulary::FAULT_TARGET;

/// What happens to a region's provider.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderAction {
    /// Freeze an account for a while: every call from it is refused as the provider does.
    Freeze {
        /// The 12-digit account.
        account: String,
        /// How long until it thaws.
        duration: Duration,
    },
    /// Thaw an account now.
    Thaw {
        /// The 12-digit account.
        account: String,
    },
    /// Limit an api to a rate, for every account.
    Throttle {
        /// The api, e.g. `AssumeRole`.
        api: String,
        /// Calls per second.
        rate_per_s: f64,
    },
    /// Add latency to every call.
    Latency {
        /// The added latency.
        extra: Duration,
    },
    /// A share (0 to 1) of an api's calls fail with the service's 503 (0 lifts it).
    Errors {
        /// The api, e.g. `GetTable`.
        api: String,
        /// The share of its calls that fail.
        share: f64,
    },
    /// Keep only this fraction (0 to 1) of the metadata fleet in service.
    FleetCapacity {
        /// The fraction in service.
        fraction: f64,
    },
    /// The region goes down: its provider host and the system's hosts in it; connections are
    /// refused, nothing answers.
    RegionDown,
    /// The region comes back, every host at once (services restart; stored data, the queue and
    /// the system's journals survive).
    RegionUp,
    /// A host of the world (a coordinator, a worker) crashes: its memory is gone. The region
    /// is only a label here.
    HostCrash {
        /// The host.
        host: String,
    },
    /// A crashed host starts again from scratch.
    HostRestart {
        /// The host.
        host: String,
    },
    /// The network between two hosts drops everything, both ways.
    Partition {
        /// One side.
        a: String,
        /// The other.
        b: String,
    },
    /// A partition between two hosts heals.
    Heal {
        /// One side.
        a: String,
        /// The other.
        b: String,
    },
    /// The log pipeline stalls: the system's logs stop reaching anything that reads them
    /// (alert rules on logs go blind) until it resumes. The event log itself, the harness's
    /// ground truth, still records everything.
    LogsStall,
    /// The log pipeline resumes.
    LogsResume,
    /// The traffic's burst begins (a `burst` generator): a mark on the timeline, which the
    /// traffic itself carries out.
    Overload {
        /// Arrivals a second in the burst, as generated.
        per_s: f64,
    },
    /// The burst ends.
    OverloadEnd,
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
    pub action: ProviderAction,
}

impl ProviderAction {
    /// The name of the event ([`FAULT_EVENTS`]) logged when it takes effect.
    pub fn event_name(&self) -> &'static str {
        self.describe().0
    }

    fn describe(&self) -> (&'static str, Vec<(&'static str, Value)>) {
        match self {
            Self::Freeze { account, duration } => (
                "freeze",
                vec![
                    ("account", json!(account)),
                    ("duration_ms", json!(duration.as_millis() as u64)),
                ],
            ),
            Self::Thaw { account } => ("thaw", vec![("account", json!(account))]),
            Self::Throttle { api, rate_per_s } => (
                "throttle",
                vec![("api", json!(api)), ("rate_per_s", json!(rate_per_s))],
            ),
            Self::Latency { extra } => (
                "latency",
                vec![("extra_ms", json!(extra.as_millis() as u64))],
            ),
            Self::Errors { api, share } => {
                ("errors", vec![("api", json!(api)), ("share", json!(share))])
            }
            Self::FleetCapacity { fraction } => {
                ("fleet_capacity", vec![("fraction", json!(fraction))])
            }
            Self::RegionDown => ("region_down", vec![]),
            Self::RegionUp => ("region_up", vec![]),
            Self::HostCrash { host } => ("host_crash", vec![("host", json!(host))]),
            Self::HostRestart { host } => ("host_restart", vec![("host", json!(host))]),
            Self::Partition { a, b } => ("partition", vec![("a", json!(a)), ("b", json!(b))]),
            Self::Heal { a, b } => ("heal", vec![("a", json!(a)), ("b", json!(b))]),
            Self::LogsStall => ("logs_stalled", vec![]),
            Self::Overload { per_s } => ("overload", vec![("per_s", json!(per_s))]),
            Self::OverloadEnd => ("overload_end", vec![]),
            Self::LogsResume => ("logs_resumed", vec![]),
            Self::Request { host, path, .. } => (
                "operator_request",
                vec![("host", json!(host)), ("path", json!(path))],
            ),
        }
    }
}

/// Applies every control whose time has come, in order, and logs each.
pub fn apply_due(
    pending: &mut Vec<Control>,
    now: Duration,
    sim: &mut turmoil::Sim<'_>,
    providers: &BTreeMap<String, ProviderRegion>,
    region_hosts: &BTreeMap<String, Vec<String>>,
    recorder: &Recorder,
) {
    while pending.first().is_some_and(|c| c.at <= now) {
        let control = pending.remove(0);
        let region = &control.region;
        match (&control.action, providers.get(region)) {
            // Sent by the operator client, which logs it when it goes out.
            (ProviderAction::Request { .. }, _) => continue,
            (ProviderAction::Partition { a, b }, _) => sim.partition(a.as_str(), b.as_str()),
            (ProviderAction::Heal { a, b }, _) => sim.repair(a.as_str(), b.as_str()),
            // Only the alert engine reads the log pipeline, and it knows the stalls from the
            // scenario: the event records when they happen.
            (ProviderAction::LogsStall | ProviderAction::LogsResume, _) => {}
            // The traffic makes the burst; the event marks it on the timeline.
            (ProviderAction::Overload { .. } | ProviderAction::OverloadEnd, _) => {}
            (ProviderAction::HostCrash { host }, _) => sim.crash(host.as_str()),
            (ProviderAction::HostRestart { host }, _) => sim.bounce(host.as_str()),
            // A region's outage takes down every host in it, the system's included; they all
            // come back at once (a hardened node then jitters its own start).
            (ProviderAction::RegionDown, Some(_)) => {
                sim.crash(provider_host(region));
                for h in region_hosts.get(region).into_iter().flatten() {
                    sim.crash(h.as_str());
                }
            }
            (ProviderAction::RegionUp, Some(_)) => {
                sim.bounce(provider_host(region));
                for h in region_hosts.get(region).into_iter().flatten() {
                    sim.bounce(h.as_str());
                }
            }
            // Between steps no host runs, so the provider's clock cannot be read: the
            // simulation's time is the same clock.
            (ProviderAction::Freeze { account, duration }, Some(p)) => {
                p.model().freeze(account, now + *duration)
            }
            (ProviderAction::Thaw { account }, Some(p)) => {
                p.model().thaw(account);
            }
            (ProviderAction::Throttle { api, rate_per_s }, Some(p)) => {
                p.model().throttle(api, *rate_per_s)
            }
            (ProviderAction::Latency { extra }, Some(p)) => p.model().set_extra_latency(*extra),
            (ProviderAction::Errors { api, share }, Some(p)) => p.model().set_errors(api, *share),
            (ProviderAction::FleetCapacity { fraction }, Some(p)) => {
                p.model().set_fleet_available(*fraction)
            }
            (_, None) => continue,
        }
        let (name, fields) = control.action.describe();
        let mut fields: BTreeMap<String, Value> = fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        fields.insert("region".into(), json!(control.region));
        recorder.push(FAULT_EVENTS, name, fields);
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
            let ProviderAction::Request {
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
pub fn log_stalls(scenario: &crate::input::scenario::Scenario) -> Vec<std::ops::Range<u64>> {
    scenario
        .timeline()
        .filter(|f| f.action == crate::input::scenario::FaultAction::LogsStall)
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
    push: &mut impl FnMut(Duration, ProviderAction),
) {
    let admission = |paused: bool| ProviderAction::Request {
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
    push: &mut impl FnMut(Duration, ProviderAction),
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
        let request = |body: String| ProviderAction::Request {
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

/// `start` at `at`, and `end` at `until` when the fault ends.
fn pair(
    push: &mut impl FnMut(Duration, ProviderAction),
    (at, until): (Duration, Option<Duration>),
    start: ProviderAction,
    end: ProviderAction,
) {
    push(at, start);
    if let Some(u) = until {
        push(u, end);
    }
}

/// A generated burst is a trigger as much as a fault: its start and end, marked in `first`.
fn burst_marks(scenario: &crate::input::scenario::Scenario, first: &str) -> Vec<Control> {
    let mut out = Vec::new();
    if let Some(crate::input::arrivals::Generator::Burst {
        burst_per_s,
        at,
        lasts,
        ..
    }) = &scenario.traffic.generate
    {
        let per_s = burst_per_s * scenario.traffic.load;
        for (t, action) in [
            (at.0, ProviderAction::Overload { per_s }),
            (at.0 + lasts.0, ProviderAction::OverloadEnd),
        ] {
            out.push(Control {
                at: t,
                region: first.to_string(),
                action,
            });
        }
    }
    out
}

/// The controls of a scenario's `faults:` timeline, each fault with its undoing.
pub fn timeline(scenario: &crate::input::scenario::Scenario) -> Vec<Control> {
    use crate::input::scenario::FaultAction;
    let first = scenario.world.regions.first().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for f in scenario.timeline() {
        let region = f.region.clone().unwrap_or_else(|| first.clone());
        let at = f.at.0;
        let until = f.lasts.map(|d| at + d.0);
        let mut push = |at: Duration, action: ProviderAction| {
            out.push(Control {
                at,
                region: region.clone(),
                action,
            })
        };
        match f.action {
            FaultAction::AccountFreeze => {
                let account = f
                    .account
                    .clone()
                    .unwrap_or_else(|| stampede_fakes::iam::SYSTEM_ACCOUNT.to_string());
                let duration = f.lasts.map_or(Duration::MAX / 4, |d| d.0);
                push(at, ProviderAction::Freeze { account, duration });
            }
            FaultAction::ApiThrottle => {
                let api = f.api.clone().unwrap_or_default();
                let rate_per_s = f.rate_per_s.unwrap_or(1.0);
                push(
                    at,
                    ProviderAction::Throttle {
                        api: api.clone(),
                        rate_per_s,
                    },
                );
                if let Some(u) = until {
                    // Lifted: back to no limit of our making.
                    push(
                        u,
                        ProviderAction::Throttle {
                            api,
                            rate_per_s: 1e12,
                        },
                    );
                }
            }
            FaultAction::ApiErrors => {
                let api = f.api.clone().unwrap_or_default();
                let share = f.fraction.unwrap_or(0.0);
                push(
                    at,
                    ProviderAction::Errors {
                        api: api.clone(),
                        share,
                    },
                );
                if let Some(u) = until {
                    push(u, ProviderAction::Errors { api, share: 0.0 });
                }
            }
            FaultAction::RegionOutage => pair(
                &mut push,
                (at, until),
                ProviderAction::RegionDown,
                ProviderAction::RegionUp,
            ),
            FaultAction::HostCrash => {
                let host = f.host.clone().unwrap_or_default();
                push(at, ProviderAction::HostCrash { host: host.clone() });
                if let Some(u) = until {
                    push(u, ProviderAction::HostRestart { host });
                }
            }
            FaultAction::Latency => pair(
                &mut push,
                (at, until),
                ProviderAction::Latency {
                    extra: f.extra.map_or(Duration::ZERO, |e| e.0),
                },
                ProviderAction::Latency {
                    extra: Duration::ZERO,
                },
            ),
            FaultAction::FleetCapacity => pair(
                &mut push,
                (at, until),
                ProviderAction::FleetCapacity {
                    fraction: f.fraction.unwrap_or(1.0),
                },
                ProviderAction::FleetCapacity { fraction: 1.0 },
            ),
            FaultAction::NetworkPartition => {
                let (a, b) = match f.between.as_deref() {
                    Some([a, b]) => (a.clone(), b.clone()),
                    _ => continue,
                };
                push(
                    at,
                    ProviderAction::Partition {
                        a: a.clone(),
                        b: b.clone(),
                    },
                );
                if let Some(u) = until {
                    push(u, ProviderAction::Heal { a, b });
                }
            }
            FaultAction::LogsStall => pair(
                &mut push,
                (at, until),
                ProviderAction::LogsStall,
                ProviderAction::LogsResume,
            ),
            FaultAction::AdmissionPause | FaultAction::AdmissionResume | FaultAction::Failover => {
                // A failover is a pause the clients route around: a paused coordinator
                // answers 503, and clients then try the next region's.
                let paused = f.action != FaultAction::AdmissionResume;
                admission_requests(&region, paused, at, until, &mut push);
            }
            FaultAction::CachesFlush => {
                let workers = scenario.system.workers_per_region;
                let flush = ("/v1/admin/caches/flush", "{}".to_string());
                node_requests(&region, workers, flush, at, None, &mut push);
            }
            FaultAction::DrainRate => {
                let workers = scenario.system.workers_per_region;
                let factor = f.fraction.unwrap_or(1.0);
                let drain = ("/v1/admin/drain", format!("{{\"factor\":{factor}}}"));
                let lift = until.map(|u| (u, "{}".to_string()));
                node_requests(&region, workers, drain, at, lift, &mut push);
            }
            FaultAction::ConfigPush => {
                let body = serde_json::to_string(&f.document).unwrap_or_default();
                push(
                    at,
                    ProviderAction::Request {
                        host: crate::world::hosts::coordinator_host(&first),
                        port: crate::world::hosts::COORDINATOR_PORT,
                        path: "/v1/config".into(),
                        body,
                    },
                );
            }
        }
    }
    out.extend(burst_marks(scenario, &first));
    out.sort_by_key(|c| c.at);
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
        let got: Vec<(u64, &str, String)> = timeline(&s)
            .iter()
            .map(|c| (c.at.as_secs(), c.action.describe().0, c.region.clone()))
            .collect();
        let want = vec![
            (30, "throttle", "a".to_string()),
            (60, "region_down", "b".to_string()),
            (120, "host_crash", "a".to_string()),
            (130, "host_restart", "a".to_string()),
            (180, "region_up", "b".to_string()),
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
                ProviderAction::Request { host, body, .. } => Some((c.at.as_secs(), host, body)),
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
