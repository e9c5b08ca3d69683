//! The faults and operator actions a scenario's timeline holds, as its file writes them.

use serde::Deserialize;

use crate::span::Span;

/// One fault or operator action on the timeline. Which keys it needs depends on `action`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// When it starts.
    pub at: Span,
    /// What happens.
    pub action: FaultAction,
    /// How long it lasts; it is undone at `at + for`. Required by `region.outage` and
    /// `host.crash` (the restart), optional for the others (for ever when absent).
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub lasts: Option<Span>,
    /// The region it hits. Default: the world's first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `account.freeze`: the account. Default: the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `api.throttle`: the api, e.g. `AssumeRole`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// `api.throttle`: the rate the api is held to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_s: Option<f64>,
    /// `latency`: added to every provider call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Span>,
    /// `fleet.capacity`: the fraction of the metadata fleet left in service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
    /// `host.crash`: the host, e.g. `coordinator-eu-west-1` or `worker-eu-west-1-0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `network.partition`: the two hosts cut off from each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub between: Option<Vec<String>>,
    /// `config.push`: the document, `{version: N, tuning: {...}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<stampede_system::config::ConfigDocument>,
}

/// The faults and operator actions a timeline can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum FaultAction {
    /// The provider freezes an account (`account`, default the system's) for `for`.
    #[serde(rename = "account.freeze")]
    AccountFreeze,
    /// An api is held to `rate_per_s` for every account, for `for`.
    #[serde(rename = "api.throttle")]
    ApiThrottle,
    /// A failing dependency: `fraction` of an api's calls (every account's) fail with the
    /// service's 503, for `for`.
    #[serde(rename = "api.errors")]
    ApiErrors,
    /// The region goes down, every host in it, and comes back after `for` (the failback).
    #[serde(rename = "region.outage")]
    RegionOutage,
    /// A host crashes and restarts after `for`.
    #[serde(rename = "host.crash")]
    HostCrash,
    /// Every provider call takes `extra` longer, for `for`.
    #[serde(rename = "latency")]
    Latency,
    /// Only `fraction` of the metadata fleet serves, for `for`.
    #[serde(rename = "fleet.capacity")]
    FleetCapacity,
    /// An operator pushes `document` to the system's config (through the first coordinator).
    #[serde(rename = "config.push")]
    ConfigPush,
    /// The two hosts `between` cannot reach each other, until `for` has passed.
    #[serde(rename = "network.partition")]
    NetworkPartition,
    /// An operator pauses admission on the region's coordinator (new queries get 503 with
    /// `Retry-After`), resuming after `for` if given.
    #[serde(rename = "admission.pause")]
    AdmissionPause,
    /// An operator resumes admission on the region's coordinator.
    #[serde(rename = "admission.resume")]
    AdmissionResume,
    /// An operator flushes the caches of every node of the region.
    #[serde(rename = "caches.flush")]
    CachesFlush,
    /// An operator caps the local rates of every node of the region at `fraction` of their
    /// limits, lifted after `for` if given.
    #[serde(rename = "drain.rate")]
    DrainRate,
    /// An operator fails the region over: its coordinator stops admitting (503 with
    /// `Retry-After`) and clients take their queries to the next region's; undone after `for`
    /// if given. Queries already admitted there finish there.
    #[serde(rename = "failover")]
    Failover,
    /// The log pipeline stalls for `for` (for ever when absent): alert rules that read the
    /// system's logs see nothing meanwhile; rules on the client's meters still work.
    #[serde(rename = "logs.stall")]
    LogsStall,
}

impl FaultAction {
    /// Whether an operator does it (rather than the world doing it to the system).
    pub fn is_operator(self) -> bool {
        matches!(
            self,
            Self::AdmissionPause
                | Self::AdmissionResume
                | Self::DrainRate
                | Self::Failover
                | Self::CachesFlush
                | Self::ConfigPush
        )
    }

    /// The name written in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccountFreeze => "account.freeze",
            Self::ApiThrottle => "api.throttle",
            Self::ApiErrors => "api.errors",
            Self::RegionOutage => "region.outage",
            Self::HostCrash => "host.crash",
            Self::Latency => "latency",
            Self::FleetCapacity => "fleet.capacity",
            Self::ConfigPush => "config.push",
            Self::NetworkPartition => "network.partition",
            Self::AdmissionPause => "admission.pause",
            Self::AdmissionResume => "admission.resume",
            Self::CachesFlush => "caches.flush",
            Self::DrainRate => "drain.rate",
            Self::Failover => "failover",
            Self::LogsStall => "logs.stall",
        }
    }
}
