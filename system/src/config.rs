//! The system's configuration: every protective mechanism is a named switch, and two presets
//! name the ends — `naive`, the system as it was on the day of the outage, and `hardened`.
//!
//! A deployment starts from a preset and overrides single switches or tunings; the result is
//! plain data, serialisable, so a run records exactly what ran.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The two ends of the switchboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Every mechanism off: the system as it was on the day of the outage.
    Naive,
    /// Every mechanism on.
    Hardened,
}

/// The protective mechanisms, each on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Switches {
    /// Cache credentials and table metadata, and coalesce concurrent fetches of one key.
    pub credential_cache: bool,
    /// Client-side rate limits per provider api, sized below the provider's quota (GCRA).
    pub rate_limit: bool,
    /// Halve an api's local rate on a throttle, grow it back slowly (AIMD).
    pub adaptive_rate: bool,
    /// Full jitter on retry delays; off, every retry waits exactly the base delay.
    pub retry_jitter: bool,
    /// A retry budget: retries at most a fraction of requests (Finagle, SRE), in each layer
    /// that retries: the guard's retries of a call, earned by first attempts, and the queue's
    /// redeliveries of a failed task, earned by first deliveries at a quarter of the ratio (a task the
    /// budget denies is not given back to the queue: its query is told).
    pub retry_budget: bool,
    /// Circuit breakers per provider api.
    pub circuit_breaker: bool,
    /// A bounded admission queue with priorities, per-tenant fair share and shedding with
    /// `Retry-After`.
    pub admission_control: bool,
    /// Ramp the task dispatch rate back up after a freeze, a throttle storm or an outage.
    pub drain_controller: bool,
    /// Carry each query's deadline to every task and call; drop work already too late.
    pub deadline_propagation: bool,
    /// Jittered restarts, slow start and gradual cache warm-up when a region comes back.
    pub failback_ramp: bool,
    /// Validate a pushed config, canary it on a subset of nodes, fall back to the last known
    /// good one on failure.
    pub config_canary: bool,
    /// Validate a query's SQL against the schema on the coordinator, before it is accepted and
    /// before any provider call. Off, the coordinator accepts it unread and fans it out; each
    /// worker finds the SQL invalid only after the lake's credentials and catalog calls, as the
    /// system did on the day.
    pub validate_sql: bool,
    /// One retry layer: the AWS SDK clients' own retries are off and the guard alone retries
    /// calls; a task the guard retried in, or one of whose calls was denied access (not by a
    /// freeze), is not handed out again by the queue when it fails, and a task the queue does
    /// hand out again (its worker died, or it failed without a retry) gets one attempt per
    /// call; a worker whose answer did not reach the coordinator keeps it and sends it again,
    /// holding the task's message hidden, rather than let the queue redo the work. Off, the SDK's standard retries (3 attempts, its default) run
    /// above the guard's, each SDK attempt a new guard operation with its own retries, as with
    /// the SDK's defaults, and every failed task goes back to the queue until `task_receives`.
    pub one_retry_layer: bool,
    /// Least privilege towards the tenants: a query may name only lakes its user's tenant is
    /// entitled to (refused with 403 before any provider call otherwise), and every read of a
    /// lake goes through that lake's role, assumed with the tenant's external id. Off, the
    /// system reads every lake with its own credentials and checks no entitlement: the
    /// confused deputy, which only a world whose tenants trust the system's account lets
    /// through. On in both presets: the system of the day assumed each lake's role, which is
    /// what overloaded STS.
    pub least_privilege: bool,
}

impl Switches {
    /// All off or all on.
    pub fn all(on: bool) -> Self {
        Self {
            credential_cache: on,
            rate_limit: on,
            adaptive_rate: on,
            retry_jitter: on,
            retry_budget: on,
            circuit_breaker: on,
            admission_control: on,
            drain_controller: on,
            deadline_propagation: on,
            failback_ramp: on,
            config_canary: on,
            validate_sql: on,
            one_retry_layer: on,
            least_privilege: on,
        }
    }
}

/// Single switches set over a preset; unset ones keep the preset's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchOverrides {
    /// Overrides `credential_cache`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_cache: Option<bool>,
    /// Overrides `rate_limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<bool>,
    /// Overrides `adaptive_rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive_rate: Option<bool>,
    /// Overrides `retry_jitter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_jitter: Option<bool>,
    /// Overrides `retry_budget`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<bool>,
    /// Overrides `circuit_breaker`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<bool>,
    /// Overrides `admission_control`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission_control: Option<bool>,
    /// Overrides `drain_controller`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_controller: Option<bool>,
    /// Overrides `deadline_propagation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_propagation: Option<bool>,
    /// Overrides `failback_ramp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failback_ramp: Option<bool>,
    /// Overrides `config_canary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_canary: Option<bool>,
    /// Overrides `validate_sql`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate_sql: Option<bool>,
    /// Overrides `one_retry_layer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_retry_layer: Option<bool>,
    /// Overrides `least_privilege`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub least_privilege: Option<bool>,
}

impl SwitchOverrides {
    /// `base` with these overrides.
    pub fn apply(&self, base: Switches) -> Switches {
        let mut s = base;
        if let Some(v) = self.credential_cache {
            s.credential_cache = v;
        }
        if let Some(v) = self.rate_limit {
            s.rate_limit = v;
        }
        if let Some(v) = self.adaptive_rate {
            s.adaptive_rate = v;
        }
        if let Some(v) = self.retry_jitter {
            s.retry_jitter = v;
        }
        if let Some(v) = self.retry_budget {
            s.retry_budget = v;
        }
        if let Some(v) = self.circuit_breaker {
            s.circuit_breaker = v;
        }
        if let Some(v) = self.admission_control {
            s.admission_control = v;
        }
        if let Some(v) = self.drain_controller {
            s.drain_controller = v;
        }
        if let Some(v) = self.deadline_propagation {
            s.deadline_propagation = v;
        }
        if let Some(v) = self.failback_ramp {
            s.failback_ramp = v;
        }
        if let Some(v) = self.config_canary {
            s.config_canary = v;
        }
        if let Some(v) = self.validate_sql {
            s.validate_sql = v;
        }
        if let Some(v) = self.one_retry_layer {
            s.one_retry_layer = v;
        }
        if let Some(v) = self.least_privilege {
            s.least_privilege = v;
        }
        s
    }
}

/// A provider api's quota as the operators know it from the provider's documentation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiQuota {
    /// Sustained calls per second, per account and region.
    pub rate_per_s: f64,
    /// Calls a full bucket admits at once.
    pub burst: f64,
}

/// Numbers the mechanisms run with. Defaults in [`Tuning::default`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tuning {
    /// The provider's quotas per api (`AssumeRole`, `GetTable`, ...). Default: none known.
    pub provider_quotas: BTreeMap<String, ApiQuota>,
    /// The share of a quota the whole fleet may use. Default: 0.8.
    pub quota_fraction: f64,
    /// Nodes sharing one account's quota in a region; each takes an equal part. Default: 1.
    pub nodes_per_region: u32,
    /// Attempts per provider call, the first included. Default: 3 (naive: 5).
    pub max_attempts: u32,
    /// First retry delay. Default: 100 ms.
    #[serde(with = "humantime_serde_compat")]
    pub retry_base: Duration,
    /// Longest retry delay. Default: 10 s.
    #[serde(with = "humantime_serde_compat")]
    pub retry_cap: Duration,
    /// Retries a node earns per first attempt it sends, per api. Default: 0.08, under the
    /// 10 % budget of the SRE book: each node may also hold a saved retry (`retry_budget_cap`)
    /// and its floor, which a fleet adds up, so a node budgeting a full tenth made 1.11
    /// attempts per operation in a 10 s window of 103 calls at the provider (the retry-budget
    /// pair, seed 15); at 0.08, at most 1.1 on seeds 1 to 20.
    pub retry_budget_ratio: f64,
    /// Retries a node earns per second whatever its traffic, per api. Default: 0.05, one
    /// every 20 s: the floor is per node, so a fleet's floors add up in every window a check
    /// judges. At 0.2, two nodes' floors alone made 4 of 46 operations' retries in a 10 s
    /// window while their breakers were open (1.13 attempts per operation, over the
    /// catalogue's 1.1, on the retry-budget pair's seed 19).
    pub retry_budget_min_per_s: f64,
    /// The most retries a node saves, per api. Default: 1.
    pub retry_budget_cap: f64,
    /// Consecutive failures that open a breaker. Default: 5.
    pub breaker_failures: u32,
    /// How long a breaker stays open before a probe. Default: 5 s.
    #[serde(with = "humantime_serde_compat")]
    pub breaker_open_for: Duration,
    /// Queries running at once on a coordinator. Default: 4.
    pub max_running_queries: u32,
    /// Queries waiting for admission on a coordinator. Default: 64.
    pub max_queued_queries: u32,
    /// Tasks a worker runs at once. Default: 8.
    pub task_concurrency: u32,
    /// How long to wait for one provider call. Default: 5 s.
    #[serde(with = "humantime_serde_compat")]
    pub call_timeout: Duration,
    /// How long cached credentials and metadata live (capped by the credentials' expiry).
    /// Default: 15 min.
    #[serde(with = "humantime_serde_compat")]
    pub cache_ttl: Duration,
    /// How long the drain controller takes to ramp from 10 % to full rate. Default: 60 s.
    #[serde(with = "humantime_serde_compat")]
    pub drain_ramp: Duration,
    /// Under `failback_ramp`, a restarted node waits a random delay up to this long before it
    /// takes work, when no AssumeRole quota is known ([`SystemConfig::restart_window`]).
    /// Default: 10 s.
    #[serde(with = "humantime_serde_compat")]
    pub restart_jitter: Duration,
    /// A task's message is retried by the queue this many times before its query fails.
    /// Default: 3.
    pub task_receives: u32,
    /// How long a task stays invisible to other workers once taken. Default: 60 s.
    #[serde(with = "humantime_serde_compat")]
    pub task_visibility: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            provider_quotas: BTreeMap::new(),
            quota_fraction: 0.8,
            nodes_per_region: 1,
            max_attempts: 3,
            retry_base: Duration::from_millis(100),
            retry_cap: Duration::from_secs(10),
            retry_budget_ratio: 0.08,
            retry_budget_min_per_s: 0.05,
            retry_budget_cap: 1.0,
            breaker_failures: 5,
            breaker_open_for: Duration::from_secs(5),
            max_running_queries: 4,
            max_queued_queries: 64,
            task_concurrency: 8,
            call_timeout: Duration::from_secs(5),
            cache_ttl: Duration::from_secs(900),
            drain_ramp: Duration::from_secs(60),
            restart_jitter: Duration::from_secs(10),
            task_receives: 3,
            task_visibility: Duration::from_secs(60),
        }
    }
}

/// The whole configuration of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemConfig {
    /// Which mechanisms are on.
    pub switches: Switches,
    /// Their numbers.
    pub tuning: Tuning,
}

impl SystemConfig {
    /// A preset's configuration.
    pub fn preset(preset: Preset) -> Self {
        match preset {
            Preset::Naive => Self {
                switches: Switches {
                    least_privilege: true,
                    ..Switches::all(false)
                },
                tuning: Tuning {
                    max_attempts: 5,
                    retry_base: Duration::from_secs(1),
                    task_concurrency: 32,
                    ..Tuning::default()
                },
            },
            Preset::Hardened => Self {
                switches: Switches::all(true),
                tuning: Tuning::default(),
            },
        }
    }

    /// How long the restarts of a region's nodes are spread over under `failback_ramp`. N nodes
    /// spread uniformly over W reconnect at N / W a second (`docs/invariants.md`,
    /// Formulas), and a returning node's first metered call is AssumeRole
    /// for its first lake, so W = N / (`quota_fraction` · R) keeps the fleet's reconnects under
    /// its part of the AssumeRole quota R, and the last node back within 1.25 · N / R, inside
    /// the catalogue's 1.5 · N / R. The calls a node makes after its start are paced by its slow
    /// start. Without a known AssumeRole quota, `restart_jitter`.
    pub fn restart_window(&self) -> Duration {
        let Some(q) = self.tuning.provider_quotas.get("AssumeRole") else {
            return self.tuning.restart_jitter;
        };
        let nodes = f64::from(self.tuning.nodes_per_region.max(1));
        let f = self.tuning.quota_fraction.clamp(0.01, 1.0);
        Duration::from_secs_f64(nodes / (f * q.rate_per_s.max(0.01)))
    }

    /// The local limit of one node for `api`: its equal part of `quota_fraction` of the
    /// provider's quota. GCRA with rate r and burst b admits b + r·t calls in any interval t,
    /// so N nodes together admit N·b + f·R·t, under the provider's B + R·t when N·b ≤ B.
    pub fn node_limit(&self, api: &str) -> Option<ApiQuota> {
        let q = self.tuning.provider_quotas.get(api)?;
        let nodes = f64::from(self.tuning.nodes_per_region.max(1));
        let f = self.tuning.quota_fraction.clamp(0.01, 1.0);
        Some(ApiQuota {
            rate_per_s: (f * q.rate_per_s / nodes).max(0.01),
            burst: (f * q.burst / nodes).floor().max(1.0),
        })
    }
}

impl Tuning {
    /// Checks the numbers are within sane bounds. Passing this is no proof that a config
    /// works: a call timeout of 1 ms is valid and useless, which is what canaries are for.
    pub fn validate(&self) -> Result<(), String> {
        let t = self;
        let checks: [(bool, &str); 8] = [
            (
                (1..=10).contains(&t.max_attempts),
                "max_attempts must be 1 to 10",
            ),
            (
                (1..=1024).contains(&t.task_concurrency),
                "task_concurrency must be 1 to 1024",
            ),
            (
                t.quota_fraction > 0.0 && t.quota_fraction <= 1.0,
                "quota_fraction must be in (0, 1]",
            ),
            (!t.call_timeout.is_zero(), "call_timeout must be positive"),
            (
                t.retry_base <= t.retry_cap,
                "retry_base must not exceed retry_cap",
            ),
            (
                t.max_running_queries >= 1,
                "max_running_queries must be at least 1",
            ),
            (t.task_receives >= 1, "task_receives must be at least 1"),
            (
                t.breaker_failures >= 1,
                "breaker_failures must be at least 1",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, why)) => Err((*why).to_string()),
            None => Ok(()),
        }
    }
}

/// A config push: a version and tuning keys to change. Keys not named keep their values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigDocument {
    /// Strictly increasing.
    pub version: u64,
    /// Tuning keys and their new values, as in [`Tuning`].
    #[serde(default)]
    pub tuning: serde_json::Map<String, serde_json::Value>,
}

impl ConfigDocument {
    /// `base` with this document's changes, validated.
    pub fn apply_to(&self, base: &SystemConfig) -> Result<SystemConfig, String> {
        let mut tuning = serde_json::to_value(&base.tuning).map_err(|e| e.to_string())?;
        let Some(fields) = tuning.as_object_mut() else {
            return Err("tuning is not an object".into());
        };
        for (k, v) in &self.tuning {
            fields.insert(k.clone(), v.clone());
        }
        let tuning: Tuning = serde_json::from_value(tuning).map_err(|e| e.to_string())?;
        tuning.validate()?;
        Ok(SystemConfig {
            switches: base.switches,
            tuning,
        })
    }
}

/// Durations as humantime strings (`250ms`, `5s`, `2h`) in serialised configs.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_limits_add_up_to_less_than_the_quota() {
        let mut c = SystemConfig::preset(Preset::Hardened);
        c.tuning.provider_quotas.insert(
            "AssumeRole".into(),
            ApiQuota {
                rate_per_s: 100.0,
                burst: 100.0,
            },
        );
        c.tuning.nodes_per_region = 4;
        let l = c.node_limit("AssumeRole").unwrap();
        assert_eq!(l.rate_per_s, 20.0);
        assert_eq!(l.burst, 20.0);
        for w in [1.0, 10.0, 60.0] {
            assert!(4.0 * (l.burst + l.rate_per_s * w) <= 100.0 + 100.0 * w);
        }
        assert_eq!(c.node_limit("GetTable"), None);
    }

    #[test]
    fn a_config_document_changes_only_what_it_names_and_is_validated() {
        let base = SystemConfig::preset(Preset::Hardened);
        let doc: ConfigDocument = serde_json::from_str(
            r#"{"version":2,"tuning":{"call_timeout":"1ms","task_concurrency":4}}"#,
        )
        .unwrap();
        let c = doc.apply_to(&base).unwrap();
        assert_eq!(c.tuning.call_timeout, Duration::from_millis(1));
        assert_eq!(c.tuning.task_concurrency, 4);
        assert_eq!(c.tuning.max_attempts, base.tuning.max_attempts);
        let bad: ConfigDocument =
            serde_json::from_str(r#"{"version":3,"tuning":{"task_concurrency":0}}"#).unwrap();
        assert!(
            bad.apply_to(&base)
                .unwrap_err()
                .contains("task_concurrency")
        );
        let unknown: ConfigDocument =
            serde_json::from_str(r#"{"version":3,"tuning":{"no_such_knob":1}}"#).unwrap();
        assert!(unknown.apply_to(&base).is_err());
    }

    #[test]
    fn presets_are_the_two_ends() {
        assert_eq!(
            SystemConfig::preset(Preset::Naive).switches,
            Switches {
                least_privilege: true,
                ..Switches::all(false)
            }
        );
        assert_eq!(
            SystemConfig::preset(Preset::Hardened).switches,
            Switches::all(true)
        );
    }
}
