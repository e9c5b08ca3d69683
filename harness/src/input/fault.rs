//! The faults and operator actions a scenario's timeline holds: [`Fault`], the one type a
//! fault keeps from its YAML line to the verdict. The scenario parses it, the swarm draws it,
//! the shrinker mildens it, the timeline (`world::control`) applies it, and the event log
//! records it as a `fault_start` and a `fault_end` sharing an id, from which the checkers read
//! its window (`judge::invariants::faults`).
//!
//! In a file a fault is one mapping tagged by `action`, with the keys its kind takes. serde
//! reads it through [`FaultSpec`], the file's shape, so that an unknown key is refused (serde
//! cannot deny unknown keys beside a flattened enum), then [`Fault`]'s conversion checks that
//! the kind has the keys it needs and no key it does not take.

use serde::{Deserialize, Serialize};
use stampede_system::config::ConfigDocument;

use crate::span::Span;

/// One fault or operator action on the timeline.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "FaultSpec", into = "FaultSpec")]
pub struct Fault {
    /// When it starts.
    pub at: Span,
    /// How long it lasts; it ends at `at + for`. Required by `account.freeze`,
    /// `region.outage` and `host.crash`; for ever when absent otherwise.
    pub lasts: Option<Span>,
    /// The region it hits. Default: the world's first.
    pub region: Option<String>,
    /// What it is, with its own parameters.
    pub kind: FaultKind,
}

/// What a fault does, with the parameters of its kind. The names are those written under
/// `action:` ([`FaultKind::name`]).
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// `account.freeze`: the provider freezes an account (default: the system's) for `for`.
    AccountFreeze {
        /// The 12-digit account, when not the system's.
        account: Option<String>,
    },
    /// `api.throttle`: an api is held to a rate, for every account, for `for`. When it lifts,
    /// the api's own quota (if any) holds again.
    ApiThrottle {
        /// The api, e.g. `AssumeRole`.
        api: String,
        /// Calls a second it is held to.
        rate_per_s: f64,
    },
    /// `api.errors`: a failing dependency: a share of an api's calls (every account's) fail
    /// with the service's 503, for `for`.
    ApiErrors {
        /// The api, e.g. `GetTable`.
        api: String,
        /// The share of its calls that fail, above 0 and at most 1.
        fraction: f64,
    },
    /// `access.revoke`: the tenant of a lake revokes the system's access to it (its role's
    /// trust, the role's permissions, its bucket and catalog policies) until `for` has passed
    /// (for ever when absent): every call for the lake is refused with `AccessDenied`, even
    /// with credentials issued before.
    AccessRevoke {
        /// The lake, from 0 (its bucket is `lake-NNNNN`).
        lake: u32,
    },
    /// `region.outage`: the region goes down, every host in it, and comes back after `for`
    /// (the failback).
    RegionOutage,
    /// `host.crash`: a host crashes and restarts after `for`.
    HostCrash {
        /// The host, e.g. `coordinator-eu-west-1` or `worker-eu-west-1-0`.
        host: String,
    },
    /// `latency`: every provider call takes longer, for `for`.
    Latency {
        /// The added latency.
        extra: Span,
    },
    /// `fleet.capacity`: only a fraction of the metadata fleet serves, for `for`.
    FleetCapacity {
        /// The fraction left in service, 0 to 1.
        fraction: f64,
    },
    /// `network.partition`: two hosts cannot reach each other, until `for` has passed.
    NetworkPartition {
        /// One side.
        a: String,
        /// The other.
        b: String,
    },
    /// `logs.stall`: the log pipeline stalls for `for` (for ever when absent): alert rules that
    /// read the system's logs see nothing meanwhile; rules on the client's meters still work.
    LogsStall,
    /// `config.push`: an operator pushes a document to the system's config (through the
    /// first coordinator).
    ConfigPush {
        /// `{version: N, tuning: {...}}`.
        document: ConfigDocument,
    },
    /// `admission.pause`: an operator pauses admission on the region's coordinator (new
    /// queries get 503 with `Retry-After`), resuming after `for` if given.
    AdmissionPause,
    /// `admission.resume`: an operator resumes admission on the region's coordinator.
    AdmissionResume,
    /// `caches.flush`: an operator flushes the caches of every node of the region.
    CachesFlush,
    /// `drain.rate`: an operator caps the local rates of every node of the region at a
    /// fraction of their limits, lifted after `for` if given.
    DrainRate {
        /// The fraction of each limit kept, above 0 and at most 1.
        fraction: f64,
    },
    /// `failover`: an operator fails the region over: its coordinator stops admitting (503
    /// with `Retry-After`) and clients take their queries to the next region's; undone after
    /// `for` if given. Queries already admitted there finish there.
    Failover,
    /// `traffic.burst`: the burst of a `burst` traffic generator, which the harness marks on
    /// the timeline (load is a trigger as much as a fault is). Not written under `faults`.
    TrafficBurst {
        /// Arrivals a second in the burst, as generated.
        per_s: f64,
    },
}

impl FaultKind {
    /// The name written under `action:` and logged as the `fault` field of its events.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AccountFreeze { .. } => "account.freeze",
            Self::ApiThrottle { .. } => "api.throttle",
            Self::ApiErrors { .. } => "api.errors",
            Self::AccessRevoke { .. } => "access.revoke",
            Self::RegionOutage => "region.outage",
            Self::HostCrash { .. } => "host.crash",
            Self::Latency { .. } => "latency",
            Self::FleetCapacity { .. } => "fleet.capacity",
            Self::NetworkPartition { .. } => "network.partition",
            Self::LogsStall => "logs.stall",
            Self::ConfigPush { .. } => "config.push",
            Self::AdmissionPause => "admission.pause",
            Self::AdmissionResume => "admission.resume",
            Self::CachesFlush => "caches.flush",
            Self::DrainRate { .. } => "drain.rate",
            Self::Failover => "failover",
            Self::TrafficBurst { .. } => "traffic.burst",
        }
    }

    /// Whether an operator does it (rather than the world doing it to the system): operator
    /// actions reach the system as requests from the `operator` host, and have no window of
    /// their own in the log.
    pub fn is_operator(&self) -> bool {
        matches!(
            self,
            Self::AdmissionPause
                | Self::AdmissionResume
                | Self::DrainRate { .. }
                | Self::Failover
                | Self::CachesFlush
                | Self::ConfigPush { .. }
        )
    }

    /// Whether it is over at once (it has no window, `for` or not).
    pub fn is_instant(&self) -> bool {
        matches!(
            self,
            Self::CachesFlush | Self::ConfigPush { .. } | Self::AdmissionResume
        )
    }

    /// Its parameters as the log records them (beside `id`, `fault` and `region`).
    pub fn fields(&self) -> Vec<(&'static str, serde_json::Value)> {
        use serde_json::json;
        match self {
            Self::AccountFreeze { account } => {
                let account = account
                    .as_deref()
                    .unwrap_or(stampede_fakes::iam::SYSTEM_ACCOUNT);
                vec![("account", json!(account))]
            }
            Self::ApiThrottle { api, rate_per_s } => {
                vec![("api", json!(api)), ("rate_per_s", json!(rate_per_s))]
            }
            Self::ApiErrors { api, fraction } => {
                vec![("api", json!(api)), ("fraction", json!(fraction))]
            }
            Self::HostCrash { host } => vec![("host", json!(host))],
            Self::AccessRevoke { lake } => vec![("lake", json!(lake))],
            Self::Latency { extra } => vec![("extra_ms", json!(extra.0.as_millis() as u64))],
            Self::FleetCapacity { fraction } | Self::DrainRate { fraction } => {
                vec![("fraction", json!(fraction))]
            }
            Self::NetworkPartition { a, b } => vec![("a", json!(a)), ("b", json!(b))],
            Self::TrafficBurst { per_s } => vec![("per_s", json!(per_s))],
            Self::RegionOutage
            | Self::LogsStall
            | Self::ConfigPush { .. }
            | Self::AdmissionPause
            | Self::AdmissionResume
            | Self::CachesFlush
            | Self::Failover => vec![],
        }
    }

    /// Its parameters in words, for a timeline's label: `AssumeRole 2/s`, `+250ms`.
    pub fn label(&self) -> String {
        let mut out = self.name().to_string();
        let parts: Vec<String> = match self {
            Self::AccountFreeze { account } => account.iter().cloned().collect(),
            Self::ApiThrottle { api, rate_per_s } => vec![api.clone(), format!("{rate_per_s}/s")],
            Self::ApiErrors { api, fraction } => vec![api.clone(), format!("{fraction}")],
            Self::HostCrash { host } => vec![host.clone()],
            Self::AccessRevoke { lake } => vec![format!("lake {lake}")],
            Self::Latency { extra } => vec![format!("+{}", humantime::format_duration(extra.0))],
            Self::FleetCapacity { fraction } | Self::DrainRate { fraction } => {
                vec![format!("{fraction}")]
            }
            Self::NetworkPartition { a, b } => vec![format!("{a}/{b}")],
            Self::TrafficBurst { per_s } => vec![format!("{per_s:.0}/s")],
            _ => vec![],
        };
        for p in parts {
            out.push(' ');
            out.push_str(&p);
        }
        out
    }
}

/// A fault as a file writes it: `action` and every key any kind takes. Read through
/// [`Fault`]; only serde sees this shape.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    at: Span,
    #[serde(deserialize_with = "action")]
    action: String,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    lasts: Option<Span>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rate_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    extra: Option<Span>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fraction: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    between: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    document: Option<ConfigDocument>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lake: Option<u32>,
}

/// The actions a file may write, with the keys each takes beyond `at`, `for` and `region`.
pub const ACTIONS: [(&str, &[&str]); 16] = [
    ("account.freeze", &["account"]),
    ("access.revoke", &["lake"]),
    ("api.throttle", &["api", "rate_per_s"]),
    ("api.errors", &["api", "fraction"]),
    ("region.outage", &[]),
    ("host.crash", &["host"]),
    ("latency", &["extra"]),
    ("fleet.capacity", &["fraction"]),
    ("config.push", &["document"]),
    ("network.partition", &["between"]),
    ("admission.pause", &[]),
    ("admission.resume", &[]),
    ("caches.flush", &[]),
    ("drain.rate", &["fraction"]),
    ("failover", &[]),
    ("logs.stall", &[]),
];

/// The names of [`ACTIONS`].
static ACTION_NAMES: [&str; ACTIONS.len()] = {
    let mut out = [""; ACTIONS.len()];
    let mut i = 0;
    while i < ACTIONS.len() {
        out[i] = ACTIONS[i].0;
        i += 1;
    }
    out
};

/// Reads `action`, refusing a name not in [`ACTIONS`] where it is written (inside the visit,
/// so that the parser still points at the value).
fn action<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Name;
    impl serde::de::Visitor<'_> for Name {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an action's name")
        }
        fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<String, E> {
            if ACTION_NAMES.contains(&name) {
                Ok(name.to_string())
            } else {
                Err(E::unknown_variant(name, &ACTION_NAMES))
            }
        }
    }
    d.deserialize_str(Name)
}

impl FaultSpec {
    /// The kind-specific keys given, by name.
    fn given(&self) -> Vec<&'static str> {
        [
            ("account", self.account.is_some()),
            ("api", self.api.is_some()),
            ("rate_per_s", self.rate_per_s.is_some()),
            ("extra", self.extra.is_some()),
            ("fraction", self.fraction.is_some()),
            ("host", self.host.is_some()),
            ("between", self.between.is_some()),
            ("document", self.document.is_some()),
            ("lake", self.lake.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, given)| given.then_some(k))
        .collect()
    }
}

impl TryFrom<FaultSpec> for Fault {
    type Error = String;

    fn try_from(f: FaultSpec) -> Result<Self, String> {
        let action = f.action.as_str();
        let Some((_, takes)) = ACTIONS.iter().find(|(name, _)| *name == action) else {
            return Err(format!(
                "unknown action `{action}`: one of {}",
                ACTION_NAMES.join(", ")
            ));
        };
        if let Some(key) = f.given().into_iter().find(|k| !takes.contains(k)) {
            return Err(format!("`{action}` takes no `{key}`"));
        }
        let need = |what: &str| format!("`{action}` needs `{what}`");
        let share = |x: Option<f64>, low_open: bool| {
            x.filter(|x| (if low_open { *x > 0.0 } else { *x >= 0.0 }) && *x <= 1.0)
        };
        let kind = match action {
            "account.freeze" => {
                f.lasts.ok_or_else(|| need("for"))?;
                FaultKind::AccountFreeze { account: f.account }
            }
            "api.throttle" => FaultKind::ApiThrottle {
                api: f.api.ok_or_else(|| need("api"))?,
                rate_per_s: f
                    .rate_per_s
                    .filter(|r| *r > 0.0 && r.is_finite())
                    .ok_or_else(|| need("rate_per_s (above 0)"))?,
            },
            "api.errors" => FaultKind::ApiErrors {
                api: f.api.ok_or_else(|| need("api"))?,
                fraction: share(f.fraction, true)
                    .ok_or_else(|| need("fraction (above 0, at most 1)"))?,
            },
            "access.revoke" => FaultKind::AccessRevoke {
                lake: f.lake.ok_or_else(|| need("lake"))?,
            },
            "region.outage" => {
                f.lasts.ok_or_else(|| need("for"))?;
                FaultKind::RegionOutage
            }
            "host.crash" => {
                let host = f.host.ok_or_else(|| need("host"))?;
                f.lasts.ok_or_else(|| need("for"))?;
                FaultKind::HostCrash { host }
            }
            "latency" => FaultKind::Latency {
                extra: f.extra.ok_or_else(|| need("extra"))?,
            },
            "fleet.capacity" => FaultKind::FleetCapacity {
                fraction: share(f.fraction, false).ok_or_else(|| need("fraction (0 to 1)"))?,
            },
            "network.partition" => match f.between.as_deref() {
                Some([a, b]) => FaultKind::NetworkPartition {
                    a: a.clone(),
                    b: b.clone(),
                },
                _ => return Err(need("between: [HOST, HOST]")),
            },
            "logs.stall" => FaultKind::LogsStall,
            "config.push" => FaultKind::ConfigPush {
                document: f.document.ok_or_else(|| need("document"))?,
            },
            "admission.pause" => FaultKind::AdmissionPause,
            "admission.resume" => FaultKind::AdmissionResume,
            "caches.flush" => FaultKind::CachesFlush,
            "drain.rate" => FaultKind::DrainRate {
                fraction: share(f.fraction, true)
                    .ok_or_else(|| need("fraction (above 0, at most 1)"))?,
            },
            _ => FaultKind::Failover,
        };
        Ok(Fault {
            at: f.at,
            lasts: f.lasts,
            region: f.region,
            kind,
        })
    }
}

impl From<Fault> for FaultSpec {
    fn from(f: Fault) -> Self {
        let mut spec = FaultSpec {
            at: f.at,
            action: f.kind.name().to_string(),
            lasts: f.lasts,
            region: f.region,
            account: None,
            api: None,
            rate_per_s: None,
            extra: None,
            fraction: None,
            host: None,
            between: None,
            document: None,
            lake: None,
        };
        match f.kind {
            FaultKind::AccountFreeze { account } => spec.account = account,
            FaultKind::ApiThrottle { api, rate_per_s } => {
                spec.api = Some(api);
                spec.rate_per_s = Some(rate_per_s);
            }
            FaultKind::ApiErrors { api, fraction } => {
                spec.api = Some(api);
                spec.fraction = Some(fraction);
            }
            FaultKind::HostCrash { host } => spec.host = Some(host),
            FaultKind::AccessRevoke { lake } => spec.lake = Some(lake),
            FaultKind::Latency { extra } => spec.extra = Some(extra),
            FaultKind::FleetCapacity { fraction } | FaultKind::DrainRate { fraction } => {
                spec.fraction = Some(fraction)
            }
            FaultKind::NetworkPartition { a, b } => spec.between = Some(vec![a, b]),
            FaultKind::ConfigPush { document } => spec.document = Some(document),
            // A burst is the traffic's; written as its rate for the record's sake.
            FaultKind::TrafficBurst { per_s } => spec.rate_per_s = Some(per_s),
            FaultKind::RegionOutage
            | FaultKind::LogsStall
            | FaultKind::AdmissionPause
            | FaultKind::AdmissionResume
            | FaultKind::CachesFlush
            | FaultKind::Failover => {}
        }
        spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(yaml: &str) -> Result<Fault, String> {
        serde_saphyr::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn each_kind_reads_its_own_keys_and_writes_them_back() {
        for yaml in [
            "{ at: 1m, action: api.throttle, api: AssumeRole, rate_per_s: 2, for: 40s }",
            "{ at: 1m, action: account.freeze, for: 10m }",
            "{ at: 1m, action: network.partition, between: [a, b], for: 10s }",
            "{ at: 1m, action: latency, extra: 250ms, region: eu }",
            "{ at: 1m, action: access.revoke, lake: 3, for: 2m }",
        ] {
            let f = read(yaml).unwrap();
            let back = serde_json::to_value(&f).unwrap();
            let again: Fault = serde_json::from_value(back).unwrap();
            assert_eq!(f, again, "{yaml}");
        }
        let f = read("{ at: 1m, action: api.errors, api: GetTable, fraction: 0.5 }").unwrap();
        assert_eq!(
            f.kind,
            FaultKind::ApiErrors {
                api: "GetTable".into(),
                fraction: 0.5
            }
        );
    }

    #[test]
    fn a_key_of_another_kind_or_a_missing_one_is_named() {
        let e = read("{ at: 1m, action: api.throttle, api: AssumeRole, fraction: 0.5 }");
        assert!(e.unwrap_err().contains("takes no `fraction`"));
        let e = read("{ at: 1m, action: api.throttle, api: AssumeRole }");
        assert!(e.unwrap_err().contains("needs `rate_per_s"));
        let e = read("{ at: 1m, action: region.outage }");
        assert!(e.unwrap_err().contains("needs `for`"));
        let e = read("{ at: 1m, action: traffic.burst }");
        assert!(e.unwrap_err().contains("unknown variant `traffic.burst`"));
        let e = read("{ at: 1m, action: latency, extra: 1s, rate_per_sec: 3 }");
        assert!(e.unwrap_err().contains("rate_per_sec"));
    }
}
