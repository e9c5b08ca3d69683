//! Scenario files: the YAML schema, strict parsing, and errors that point at file, line and column.
//!
//! A scenario is data, not code: one file describes one world, its traffic and the checks that
//! must hold. Every struct rejects unknown fields, and every error names the field it is about.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A scenario file, fully parsed. Field docs are the user-facing reference (see
/// `scenarios/README.md`).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used in reports and test names.
    pub name: String,
    /// One sentence: what this scenario shows.
    #[serde(default)]
    pub about: String,
    /// The seed used when none is given on the command line. Default: 0.
    #[serde(default)]
    pub seed: u64,
    /// How much virtual time the run lasts, e.g. `10m`.
    pub duration: Span,
    /// The simulator's tick: cross-host messages are delivered on tick boundaries. Default: `10ms`.
    #[serde(default = "default_tick")]
    pub tick: Span,
    /// The simulated world: regions, lakes, network.
    pub world: World,
    /// The system under test.
    #[serde(default)]
    pub system: SystemSpec,
    /// Where the queries come from.
    pub traffic: Traffic,
    /// The invariants checked after the run (see docs/invariants.md): a name, or a name with its
    /// parameters, `{throttle_rate: {max_share: 0.02}}`.
    #[serde(default)]
    pub invariants: Vec<InvariantSpec>,
    /// Faults and operator actions on the timeline.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Faults drawn per seed: kinds with ranges, each on for a seed with its probability
    /// (`crate::input::swarm`). A run draws its schedule and goes on as if `faults` listed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm: Option<crate::input::swarm::Swarm>,
    /// Operator actions on the timeline, kept apart from the faults as a gameday script
    /// (`admission.pause`, `admission.resume`, `drain.rate`, `failover`, `caches.flush`,
    /// `config.push`); the same keys as a fault.
    #[serde(default)]
    pub operator: Vec<Fault>,
    /// Alert rules, evaluated on the signals as they come (see `alert_fires`).
    #[serde(default)]
    pub alerts: Vec<crate::judge::alerts::AlertRule>,
    /// Notes for a gameday, `{at, note}`: what the on-call engineer saw or did at that time.
    /// `stampede gameday` pauses at each and shows the note; a run ignores them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
    /// What the run must show. A scenario that reproduces an outage names the invariants the
    /// outage violates: the run passes when exactly those fail.
    #[serde(default)]
    pub expect: Expect,
}

/// A note on the timeline for a gameday.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Annotation {
    /// When, e.g. `40s`.
    pub at: Span,
    /// What the on-call engineer saw or did then.
    pub note: String,
}

pub use crate::input::fault::{Fault, FaultKind};
pub use crate::input::{InputError, tidy_field};
pub use crate::judge::invariants::InvariantName;
pub use crate::span::Span;

/// What a run must show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Invariants that must fail. Each must also be listed under `invariants`.
    #[serde(default)]
    pub violated: Vec<InvariantName>,
    /// Invariants whose "sometimes" state this scenario does not reach, each with the reason:
    /// their pass proves little, and the file says so. Any other invariant that passes without
    /// reaching its state fails the scenario's test. Each must be listed under `invariants`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub unreached: std::collections::BTreeMap<InvariantName, String>,
}

fn default_tick() -> Span {
    Span(Duration::from_millis(10))
}

/// The simulated world.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct World {
    /// Regions, each with its own provider host and system nodes. At least one.
    pub regions: Vec<String>,
    /// The customer data lakes.
    pub lakes: LakesSpec,
    /// Network latency between hosts. Default: 1ms to 20ms.
    #[serde(default)]
    pub network: NetworkSpec,
    /// How the cloud provider behaves: quotas, the metadata fleet, the freeze policy, other
    /// customers. Default: the `aws-like` preset.
    #[serde(default)]
    pub provider: ProviderSpec,
}

/// The provider of every region. Omitted fields keep the preset's values.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// The starting point. Only `aws-like` exists.
    #[serde(default)]
    pub preset: ProviderPreset,
    /// Quota per api name (`AssumeRole`, `GetTable`, `SendMessage`, ...), per account and
    /// region. Default: none.
    #[serde(default)]
    pub quotas: std::collections::BTreeMap<String, QuotaSpec>,
    /// The regional metadata fleet (STS, catalog; IMDS is per instance).
    #[serde(default)]
    pub fleet: FleetSpec,
    /// When an account is frozen.
    #[serde(default)]
    pub freeze: FreezeSpec,
    /// Other customers' steady calls to the fleet.
    #[serde(default)]
    pub background: BackgroundSpec,
    /// S3 reads per second per partitioned prefix. Default: 5500.
    #[serde(default)]
    pub s3_prefix_reads_per_s: Option<f64>,
    /// S3 writes per second per partitioned prefix. Default: 3500.
    #[serde(default)]
    pub s3_prefix_writes_per_s: Option<f64>,
}

/// Provider presets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderPreset {
    /// Quotas and limits after the public AWS documentation.
    #[default]
    AwsLike,
}

/// A token bucket.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSpec {
    /// Calls per second, refilled steadily.
    pub rate_per_s: f64,
    /// Calls admitted at once from a full bucket.
    pub burst: f64,
}

/// The metadata fleet. Defaults: 16 servers, 4ms, slowdown 1.0, 1s timeout, 2s queue.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSpec {
    /// Parallel workers.
    pub servers: Option<u32>,
    /// Service time of a call on an idle fleet.
    pub base_service: Option<Span>,
    /// How much slower calls get at full utilisation (1.0 = twice as slow).
    pub slowdown: Option<f64>,
    /// When the client gives up.
    pub timeout: Option<Span>,
    /// Longest queue wait before a call is shed.
    pub max_queue_wait: Option<Span>,
}

/// The freeze policy. Defaults: over 0.9 for 5m, frozen 2h, culprit share 0.5.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FreezeSpec {
    /// Fleet utilisation above which a second counts as abusive.
    pub fleet_util_over: Option<f64>,
    /// How long the fleet must stay above it.
    #[serde(rename = "for")]
    pub sustained: Option<Span>,
    /// How long the account stays frozen.
    pub freeze_for: Option<Span>,
    /// The share of the fleet's calls that makes an account the culprit.
    pub min_share: Option<f64>,
}

/// Other customers. Default: none.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackgroundSpec {
    /// How many accounts.
    #[serde(default)]
    pub accounts: u32,
    /// Calls per second from each. Default: 5.
    pub rate_per_s: Option<f64>,
    /// A provider trace (`stampede trace import --cloudtrail`) replayed as other accounts'
    /// calls at their recorded times, in the first region; relative to the scenario file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<PathBuf>,
    /// The calls of `replay`, read when the scenario is prepared.
    #[serde(skip)]
    pub recorded: Vec<stampede_fakes::provider::background::RecordedCall>,
}

/// The lakes, generated from the seed when first read.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LakesSpec {
    /// How many lakes exist. Lake `i` lives in region `i mod regions`.
    pub count: u32,
    /// How many tenants own them; lake `i` belongs to tenant `i mod tenants`. Default: 1.
    #[serde(default = "one")]
    pub tenants: u32,
    /// Parquet files per lake. Default: 2.
    #[serde(default = "two")]
    pub files_per_lake: u32,
    /// Rows per Parquet file. Default: 500.
    #[serde(default = "five_hundred")]
    pub rows_per_file: u32,
    /// Every lake's owner lets every tenant's users query it (a research consortium, the
    /// security researchers of incident 1). Off, a tenant's users may query only its own
    /// lakes: a query naming another's is refused, and `all` means all of one's own. Default:
    /// false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
    /// Every lake's bucket policy and catalog policy also grant reads to the system's account,
    /// so the system could read any lake with its own credentials: the world of the confused
    /// deputy. Off, as on AWS until an owner writes such a policy, only the lake's role (which
    /// demands the tenant's external id) can read it. Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trust_system: bool,
}

fn one() -> u32 {
    1
}
fn two() -> u32 {
    2
}
fn five_hundred() -> u32 {
    500
}

/// Message latency on every link: uniform-ish between the bounds (turmoil's exponential curve).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Lowest one-way latency. Default: `1ms`.
    #[serde(default = "default_min_latency")]
    pub min_latency: Span,
    /// Highest one-way latency. Default: `20ms`.
    #[serde(default = "default_max_latency")]
    pub max_latency: Span,
}

fn default_min_latency() -> Span {
    Span(Duration::from_millis(1))
}
fn default_max_latency() -> Span {
    Span(Duration::from_millis(20))
}

impl Default for NetworkSpec {
    fn default() -> Self {
        Self {
            min_latency: default_min_latency(),
            max_latency: default_max_latency(),
        }
    }
}

/// The system under test.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SystemSpec {
    /// Worker hosts per region. Default: 1.
    #[serde(default = "one")]
    pub workers_per_region: u32,
    /// The end of the switchboard to start from: `naive` or `hardened`. Default: `hardened`.
    #[serde(default = "hardened")]
    pub preset: stampede_system::Preset,
    /// Single mechanisms switched on or off over the preset, by name.
    #[serde(default)]
    pub switches: stampede_system::config::SwitchOverrides,
    /// Tuning keys set over the preset's (`max_running_queries`, `max_queued_queries`, ...),
    /// as a config push would set them.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub tuning: serde_json::Map<String, serde_json::Value>,
}

fn hardened() -> stampede_system::Preset {
    stampede_system::Preset::Hardened
}

impl Default for SystemSpec {
    fn default() -> Self {
        Self {
            workers_per_region: 1,
            preset: hardened(),
            switches: Default::default(),
            tuning: Default::default(),
        }
    }
}

/// Where the queries come from.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// A trace in the native JSON Lines format, relative to the scenario file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<PathBuf>,
    /// A file of arrivals, CSV or JSON Lines: one query (from `query`) per row, at the row's
    /// time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrivals: Option<crate::input::arrivals::CsvArrivals>,
    /// A synthetic arrival process: one query (from `query`) per arrival.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<crate::input::arrivals::Generator>,
    /// What each arrival of `arrivals` or `generate` submits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<crate::input::arrivals::QueryTemplate>,
    /// Keep only arrivals in this window of the source, shifted to start at 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<crate::input::arrivals::Window>,
    /// Keep only these tenants' queries. Default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
    /// Load multiplier, by deterministic duplication (above 1) or sampling (below). Default: 1.
    #[serde(default = "unit_load")]
    pub load: f64,
    /// `original` (default), `scaled:K` (times divided by K) or `fixed_rate:R/s`.
    #[serde(default)]
    pub timing: crate::input::arrivals::Timing,
    /// The seed generated arrivals and load sampling draw from. Default: the run's seed (the
    /// scenario's `seed`, or `--seed N`), so that each seed sees other arrivals. A shrunk file
    /// sets it to keep the traffic of the run it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

fn unit_load() -> f64 {
    1.0
}

/// One invariant a scenario checks, with its parameters (their checker's defaults where the
/// file gives none). Written `name` or `{name: {key: value, ...}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct InvariantSpec {
    /// Which invariant.
    pub name: InvariantName,
    /// Its parameters as JSON, checked against the checker's type when the file was read;
    /// `null` when the file gives none.
    pub params: serde_json::Value,
}

impl Scenario {
    /// The system's configuration in this scenario: the preset, the switches over it, what the
    /// operators know of the provider (its documented quotas, how many nodes share them), and
    /// `system.tuning`; or why `system.tuning` is not a tuning.
    pub fn system_config(&self) -> Result<stampede_system::SystemConfig, String> {
        let spec = &self.system;
        let mut config = stampede_system::SystemConfig::preset(spec.preset);
        config.switches = spec.switches.apply(config.switches);
        for (api, q) in &self.world.provider.quotas {
            config.tuning.provider_quotas.insert(
                api.clone(),
                stampede_system::config::ApiQuota {
                    rate_per_s: q.rate_per_s,
                    burst: q.burst,
                },
            );
        }
        config.tuning.nodes_per_region = spec.workers_per_region.max(1);
        if spec.tuning.is_empty() {
            return Ok(config);
        }
        stampede_system::config::ConfigDocument {
            version: 0,
            tuning: spec.tuning.clone(),
        }
        .apply_to(&config)
    }

    /// The whole timeline: the faults, then the operator's actions (each applies at its own
    /// time, whichever list holds it).
    pub fn timeline(&self) -> impl Iterator<Item = &Fault> {
        self.faults.iter().chain(&self.operator)
    }
}

impl InvariantSpec {
    /// The invariant `name` with its default parameters.
    pub fn named(name: InvariantName) -> Self {
        Self {
            name,
            params: serde_json::Value::Null,
        }
    }

    /// Its parameters as the checker's type.
    pub fn params<P: serde::de::DeserializeOwned + Default>(&self) -> P {
        crate::judge::invariants::params::of(&self.params)
    }
}

impl<'de> Deserialize<'de> for InvariantSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = InvariantSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an invariant's name, or `{name: {parameter: value}}`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let name =
                    InvariantName::deserialize(serde::de::value::StrDeserializer::<E>::new(v))?;
                Ok(InvariantSpec::named(name))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let Some(name) = map.next_key::<InvariantName>()? else {
                    return Err(serde::de::Error::custom("an invariant's name is missing"));
                };
                let params = map.next_value_seed(ParamsSeed(name))?;
                if map.next_key::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(serde::de::Error::custom(
                        "one invariant per entry: write each as its own list item",
                    ));
                }
                Ok(InvariantSpec { name, params })
            }
        }
        d.deserialize_any(Visitor)
    }
}

struct ParamsSeed(InvariantName);

impl<'de> serde::de::DeserializeSeed<'de> for ParamsSeed {
    type Value = serde_json::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        crate::judge::invariants::params::deserialize(self.0, d)
    }
}

impl serde::Serialize for InvariantSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if self.params.is_null() {
            return s.serialize_str(self.name.as_str());
        }
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.name.as_str(), &self.params)?;
        map.end()
    }
}

/// The scenario as a YAML document that [`parse`] reads back to the same scenario. Fields
/// left at their defaults (nulls, empty lists and maps) are left out, as a person would, and
/// the top-level keys come in the order of the file format.
pub fn to_yaml(s: &Scenario) -> String {
    fn prune(v: &mut serde_json::Value) -> bool {
        match v {
            serde_json::Value::Null => false,
            serde_json::Value::Array(a) => {
                a.iter_mut().for_each(|x| {
                    prune(x);
                });
                !a.is_empty()
            }
            serde_json::Value::Object(m) => {
                m.retain(|_, x| prune(x));
                !m.is_empty()
            }
            _ => true,
        }
    }
    /// Top-level keys in the order given.
    struct Ordered(Vec<(String, serde_json::Value)>);
    impl serde::Serialize for Ordered {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in &self.0 {
                map.serialize_entry(k, v)?;
            }
            map.end()
        }
    }
    const ORDER: [&str; 14] = [
        "name",
        "about",
        "seed",
        "duration",
        "tick",
        "world",
        "system",
        "traffic",
        "swarm",
        "invariants",
        "faults",
        "operator",
        "alerts",
        "expect",
    ];
    let mut value = serde_json::to_value(s).expect("a scenario serialises");
    prune(&mut value);
    let mut fields = match value {
        serde_json::Value::Object(m) => m,
        _ => unreachable!("a scenario is a map"),
    };
    let mut ordered: Vec<(String, serde_json::Value)> = ORDER
        .iter()
        .filter_map(|k| fields.remove(*k).map(|v| (k.to_string(), v)))
        .collect();
    ordered.extend(fields);
    serde_saphyr::to_string(&Ordered(ordered)).expect("JSON values serialise as YAML")
}

/// Reads and checks a scenario file.
pub fn load(path: &Path) -> Result<Scenario, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::whole_file(path, format!("cannot read: {e}")))?;
    parse(path, &text)
}

/// Parses scenario text; `path` is used only in errors.
pub fn parse(path: &Path, text: &str) -> Result<Scenario, InputError> {
    let mut field = None;
    let parsed =
        serde_saphyr::with_deserializer_from_str_with_options(text, saphyr_options(), |de| {
            serde_path_to_error::deserialize::<_, Scenario>(de).map_err(|e| {
                let path = e.path().to_string();
                if path != "." && !path.is_empty() {
                    field = Some(path);
                }
                e.into_inner()
            })
        });
    let scenario = parsed.map_err(|e| {
        // An unclosed bracket trips typing wherever it first gets in the way; name the bracket.
        if let Some(open) = crate::input::yaml::unclosed_bracket(text) {
            return InputError {
                file: path.to_path_buf(),
                line: Some(open.line),
                column: Some(open.column),
                field: None,
                message: open.message(),
            };
        }
        let location = e.location();
        let (mut line, mut column) = (location.map(|l| l.line()), location.map(|l| l.column()));
        // A fault's own checks run once the entry is read, where the parser has moved past it:
        // point at the entry.
        if let Some(entry) = field.clone().and_then(tidy_field).and_then(timeline_entry) {
            // At the key it names, when it names one it refuses.
            let refused = e.to_string();
            let refused = refused
                .split("takes no `")
                .nth(1)
                .and_then(|r| r.split('`').next());
            (line, column) = match refused {
                Some(key) => {
                    field = field.map(|f| format!("{f}.{key}"));
                    locate_key(text, &format!("{entry}.{key}"))
                }
                None => locate_key(text, &entry),
            };
        }
        // A name refused by its own reader (a fault's `action`) is reported at its key: point
        // at the name, as for any other unknown variant.
        if let (Some(l), Some(c), Some(key)) = (line, column, field.as_deref())
            && e.to_string().contains("unknown variant")
        {
            column = Some(value_column(
                text,
                l,
                c,
                key.rsplit('.').next().unwrap_or(key),
            ));
        }
        let mut message = first_line(&e.to_string());
        if let Some(key) = duplicate_key(&message) {
            let first = line
                .zip(column)
                .and_then(|(l, c)| crate::input::yaml::first_occurrence(text, key, l, c));
            let said = match first {
                Some(first) => format!("duplicate key '{key}' (first at line {first})"),
                None => format!("duplicate key '{key}'"),
            };
            field = name_duplicate(field.clone(), key);
            message = said;
        }
        InputError {
            file: path.to_path_buf(),
            line,
            column,
            field: field.clone().and_then(tidy_field),
            message,
        }
    })?;
    validate(path, text, scenario)
}

/// The key of serde-saphyr's duplicate-key message, if it is one.
fn duplicate_key(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("duplicate mapping key: ")?;
    Some(rest.split(',').next().unwrap_or(rest).trim())
}

fn saphyr_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    options
}

/// A duplicate key is found below serde, where the path ends in `?`: name the key instead.
fn name_duplicate(field: Option<String>, key: &str) -> Option<String> {
    let parent = field
        .as_deref()
        .and_then(|f| f.strip_suffix('?'))
        .unwrap_or("");
    Some(format!("{parent}{key}"))
}

/// The column of the value when (`line`, `column`) is at `key:` on its line, else `column`.
fn value_column(text: &str, line: u64, column: u64, key: &str) -> u64 {
    let Some(at) = text.lines().nth(line.saturating_sub(1) as usize) else {
        return column;
    };
    let from = (column.saturating_sub(1) as usize).min(at.len());
    let Some(rest) = at.get(from..).and_then(|r| r.strip_prefix(key)) else {
        return column;
    };
    let Some(value) = rest.strip_prefix(':') else {
        return column;
    };
    let spaces = value.len() - value.trim_start().len();
    if value.trim().is_empty() {
        return column;
    }
    column + (key.len() + 1 + spaces) as u64
}

/// `faults.N` for the path of a whole timeline entry (`faults[N]`, `operator[N]`).
fn timeline_entry(field: String) -> Option<String> {
    let (list, rest) = field.split_once('[')?;
    let n: usize = rest.strip_suffix(']')?.parse().ok()?;
    ["faults", "operator"]
        .contains(&list)
        .then(|| format!("{list}.{n}"))
}

/// serde-saphyr prefixes its message with the location; we print the location ourselves.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message);
    let line = line.strip_prefix("error: ").unwrap_or(line);
    let line = match line.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") => rest,
        _ => line,
    };
    match line.rfind(" at line ") {
        Some(i) if line[i..].contains(", column ") => line[..i].to_string(),
        _ => line.to_string(),
    }
}

/// A mistake found by [`validate`]: the field (a dotted path) and what is wrong with it.
type Mistake = (String, String);

/// Checks that go beyond types: ranges and cross-field rules. Errors point at the field's line.
fn validate(path: &Path, text: &str, s: Scenario) -> Result<Scenario, InputError> {
    let located = |(field, message): Mistake| {
        let (line, column) = locate_key(text, &field);
        InputError {
            file: path.to_path_buf(),
            line,
            column,
            field: Some(field),
            message,
        }
    };
    check_world(&s).map_err(located)?;
    check_timeline(&s).map_err(located)?;
    check_expect(&s).map_err(located)?;
    check_traffic(&s).map_err(located)?;
    Ok(s)
}

/// The world: regions, names, the provider's numbers, lakes, time and network.
fn check_world(s: &Scenario) -> Result<(), Mistake> {
    let err = |field: &str, message: String| (field.to_string(), message);
    if s.world.regions.is_empty() {
        return Err(err("world.regions", "needs at least one region".into()));
    }
    if let Some(bad) = s.world.regions.iter().find(|r| !is_region_name(r)) {
        return Err(err(
            "world.regions",
            format!("`{bad}` is not a region name (lowercase letters, digits, '-')"),
        ));
    }
    if s.name.trim().is_empty() {
        return Err(err("name", "must not be empty".into()));
    }
    if let Some(dup) = s
        .world
        .regions
        .iter()
        .enumerate()
        .find(|(i, r)| s.world.regions[..*i].contains(r))
        .map(|(_, r)| r)
    {
        return Err(err("world.regions", format!("`{dup}` is listed twice")));
    }
    if let Some(dup) = s
        .invariants
        .iter()
        .enumerate()
        .find(|(i, n)| s.invariants[..*i].iter().any(|m| m.name == n.name))
        .map(|(_, n)| n)
    {
        return Err(err(
            "invariants",
            format!("`{}` is listed twice", dup.name.as_str()),
        ));
    }
    let p = &s.world.provider;
    for (api, q) in &p.quotas {
        if !(q.rate_per_s.is_finite()
            && q.rate_per_s > 0.0
            && q.burst.is_finite()
            && q.burst >= 1.0)
        {
            return Err(err(
                &format!("world.provider.quotas.{api}"),
                "rate_per_s must be above 0 and burst at least 1".into(),
            ));
        }
    }
    // Numbers the provider model divides by or multiplies with: a NaN, an infinity or a
    // negative value would not fail here but panic or never stop inside the run.
    let finite = |x: &Option<f64>, above_zero: bool| {
        x.is_none_or(|x| x.is_finite() && if above_zero { x > 0.0 } else { x >= 0.0 })
    };
    for (field, value, above_zero, what) in [
        (
            "world.provider.fleet.slowdown",
            p.fleet.slowdown,
            false,
            "a finite number, 0 or more",
        ),
        (
            "world.provider.background.rate_per_s",
            p.background.rate_per_s,
            false,
            "a finite number of calls per second, 0 or more",
        ),
        (
            "world.provider.s3_prefix_reads_per_s",
            p.s3_prefix_reads_per_s,
            true,
            "a finite number of reads per second, above 0",
        ),
        (
            "world.provider.s3_prefix_writes_per_s",
            p.s3_prefix_writes_per_s,
            true,
            "a finite number of writes per second, above 0",
        ),
    ] {
        if !finite(&value, above_zero) {
            return Err(err(field, format!("must be {what}")));
        }
    }
    if p.fleet.base_service.is_some_and(|b| b.0.is_zero()) {
        return Err(err(
            "world.provider.fleet.base_service",
            "must be above 0: a call that takes no time gives the fleet no capacity limit".into(),
        ));
    }
    if p.fleet.servers == Some(0) {
        return Err(err(
            "world.provider.fleet.servers",
            "needs at least one server".into(),
        ));
    }
    if p.freeze
        .fleet_util_over
        .is_some_and(|u| !(u > 0.0 && u <= 1.0))
    {
        return Err(err(
            "world.provider.freeze.fleet_util_over",
            "must be above 0 and at most 1, or the freeze could never happen".into(),
        ));
    }
    if p.freeze.min_share.is_some_and(|u| !(u > 0.0 && u <= 1.0)) {
        return Err(err(
            "world.provider.freeze.min_share",
            "must be above 0 and at most 1".into(),
        ));
    }
    if s.world.lakes.count == 0 {
        return Err(err("world.lakes.count", "needs at least one lake".into()));
    }
    if let Err(e) = s.system_config() {
        return Err(err("system.tuning", e));
    }
    if s.world.lakes.tenants == 0 || s.world.lakes.tenants > s.world.lakes.count {
        return Err(err(
            "world.lakes.tenants",
            "must be between 1 and the number of lakes".into(),
        ));
    }
    if s.world.lakes.files_per_lake == 0 || s.world.lakes.rows_per_file == 0 {
        return Err(err(
            "world.lakes",
            "files_per_lake and rows_per_file must be at least 1".into(),
        ));
    }
    if s.tick.0.is_zero() || s.tick.0 > Duration::from_secs(1) {
        return Err(err("tick", "must be between 1ns and 1s".into()));
    }
    if s.duration.0 < s.tick.0 {
        return Err(err("duration", "must be at least one tick".into()));
    }
    if s.world.network.min_latency > s.world.network.max_latency {
        return Err(err(
            "world.network.min_latency",
            "must not exceed max_latency".into(),
        ));
    }
    Ok(())
}

/// The faults, the operator's actions, and the swarm's draws at the ends of their ranges.
fn check_timeline(s: &Scenario) -> Result<(), Mistake> {
    let err = |field: &str, message: String| (field.to_string(), message);
    let entries = s
        .faults
        .iter()
        .enumerate()
        .map(|(i, f)| (format!("faults.{i}"), f));
    let operator = s.operator.iter().enumerate();
    for (key, f) in entries.chain(operator.map(|(i, f)| (format!("operator.{i}"), f))) {
        check_fault(s, key.starts_with("operator"), f).map_err(|m| err(&key, m))?;
    }
    if let Some(swarm) = &s.swarm {
        if !(0.0..=1.0).contains(&swarm.control) {
            return Err(err(
                "swarm.control",
                "is a share of seeds between 0 and 1".into(),
            ));
        }
        for (i, faults) in swarm.extremes().map_err(|(key, m)| err(&key, m))? {
            for f in faults {
                check_fault(s, false, &f).map_err(|m| {
                    err(
                        &format!("swarm.faults.{i}"),
                        format!("at the ends of its ranges: {m}"),
                    )
                })?;
            }
        }
        for tuning in swarm.tuning_extremes() {
            let mut t = s.clone();
            t.system.tuning.extend(tuning);
            t.system_config()
                .map_err(|e| err("swarm.tuning", format!("at the ends of its ranges: {e}")))?;
        }
    }
    Ok(())
}

/// The alert rules, and what `expect` says of the listed invariants.
fn check_expect(s: &Scenario) -> Result<(), Mistake> {
    let err = |field: &str, message: String| (field.to_string(), message);
    for (i, rule) in s.alerts.iter().enumerate() {
        rule.validate()
            .map_err(|e| err(&format!("alerts[{i}]"), e))?;
    }
    for (name, why) in &s.expect.unreached {
        if !s.invariants.iter().any(|i| i.name == *name) {
            return Err(err(
                "expect.unreached",
                format!(
                    "`{}` is said not to reach its state but is not listed under invariants",
                    name.as_str()
                ),
            ));
        }
        if why.trim().is_empty() {
            return Err(err(
                "expect.unreached",
                format!("`{}` needs the reason it is not reached", name.as_str()),
            ));
        }
    }
    for v in &s.expect.violated {
        if !s.invariants.iter().any(|i| i.name == *v) {
            return Err(err(
                "expect.violated",
                format!(
                    "`{}` is expected to be violated but is not listed under invariants",
                    v.as_str()
                ),
            ));
        }
    }
    Ok(())
}

/// The traffic: one source, a query for generated arrivals, a load; and the system's workers.
fn check_traffic(s: &Scenario) -> Result<(), Mistake> {
    let err = |field: &str, message: String| (field.to_string(), message);
    let t = &s.traffic;
    let sources = [
        t.replay.is_some(),
        t.arrivals.is_some(),
        t.generate.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if sources != 1 {
        return Err(err(
            "traffic",
            "needs exactly one of `replay`, `arrivals` or `generate`".into(),
        ));
    }
    if let Some(a) = &t.arrivals
        && let Err((key, message)) = a.check()
    {
        return Err(err(&format!("traffic.arrivals.{key}"), message));
    }
    if (t.arrivals.is_some() || t.generate.is_some()) && t.query.is_none() {
        return Err(err(
            "traffic",
            "`arrivals` and `generate` need a `query` to submit at each arrival".into(),
        ));
    }
    if !(t.load.is_finite() && t.load > 0.0) {
        return Err(err("traffic.load", "must be above 0".into()));
    }
    if s.system.workers_per_region == 0 {
        return Err(err(
            "system.workers_per_region",
            "needs at least one worker".into(),
        ));
    }
    Ok(())
}

/// Checks a fault or operator action against its scenario (its own keys were checked when it
/// was read): a start within the run, hosts and regions of this world, a second
/// region to fail over to, and operator actions only under `operator`.
pub(crate) fn check_fault(s: &Scenario, operator: bool, f: &Fault) -> Result<(), String> {
    if operator && !f.kind.is_operator() {
        return Err(format!(
            "`{}` is not an operator action: list it under `faults`",
            f.kind.name()
        ));
    }
    if f.at.0 >= s.duration.0 {
        return Err(format!(
            "starts at {} but the run lasts {}",
            humantime::format_duration(f.at.0),
            humantime::format_duration(s.duration.0)
        ));
    }
    let known = |host: &str| {
        s.world.regions.iter().any(|r| {
            host == format!("coordinator-{r}")
                || (0..s.system.workers_per_region).any(|k| host == format!("worker-{r}-{k}"))
        })
    };
    let unknown = |host: &str| {
        format!(
            "no host `{host}` in this world (coordinator-REGION, worker-REGION-K, provider-REGION, traffic)"
        )
    };
    match &f.kind {
        FaultKind::HostCrash { host } if !known(host) => return Err(unknown(host)),
        FaultKind::NetworkPartition { a, b } => {
            let provider = |h: &str| s.world.regions.iter().any(|r| h == format!("provider-{r}"));
            if let Some(h) = [a, b]
                .into_iter()
                .find(|h| !(known(h) || provider(h) || *h == "traffic"))
            {
                return Err(unknown(h));
            }
        }
        FaultKind::AccessRevoke { lake } if *lake >= s.world.lakes.count => {
            return Err(format!(
                "no lake {lake} in this world: world.lakes.count is {}, lakes are numbered from 0",
                s.world.lakes.count
            ));
        }
        FaultKind::Failover if s.world.regions.len() < 2 => {
            return Err("`failover` needs a second region in world.regions to fail over to".into());
        }
        _ => {}
    }
    if let Some(r) = &f.region
        && !s.world.regions.contains(r)
    {
        return Err(format!("region `{r}` is not one of world.regions"));
    }
    Ok(())
}

fn is_region_name(r: &str) -> bool {
    !r.is_empty()
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Finds the line of the last key of a dotted path, by indentation. Good enough for pointing
/// a human at a field that parsed but failed a range check.
fn locate_key(text: &str, dotted: &str) -> (Option<u64>, Option<u64>) {
    let mut from = 0;
    let mut found = (None, None);
    for key in dotted.split('.') {
        // A sequence index: the n-th `- ` item after the key before it.
        if let Ok(n) = key.parse::<usize>() {
            let hit = text
                .lines()
                .enumerate()
                .skip(from + 1)
                .filter(|(_, line)| line.trim_start().starts_with("- "))
                .nth(n)
                .map(|(i, line)| (i, line.len() - line.trim_start().len()));
            match hit {
                Some((i, col)) => {
                    from = i;
                    found = (Some(i as u64 + 1), Some(col as u64 + 1));
                    continue;
                }
                None => break,
            }
        }
        let needle = format!("{key}:");
        let hit = text.lines().enumerate().skip(from).find_map(|(i, line)| {
            let trimmed = line.trim_start();
            let col = line.len() - trimmed.len();
            if trimmed.starts_with(&needle) {
                return Some((i, col));
            }
            // Flow mappings: `lakes: { count: 0 }`.
            line.find(&format!(" {needle}"))
                .or_else(|| line.find(&format!("{{{needle}")))
                .map(|c| (i, c + 1))
        });
        match hit {
            Some((i, col)) => {
                from = i;
                found = (Some(i as u64 + 1), Some(col as u64 + 1));
            }
            None => break,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "name: t\nduration: 10m\nworld:\n  regions: [eu-west-1]\n  lakes: { count: 4 }\ntraffic:\n  replay: t.jsonl\n";

    fn check_err(text: &str, line: u64, column: u64, field: &str, needle: &str) {
        let e = parse(Path::new("s.yaml"), text).expect_err("must fail");
        assert_eq!((e.line, e.column), (Some(line), Some(column)), "{e}");
        assert_eq!(e.field.as_deref(), Some(field), "{e}");
        assert!(e.message.contains(needle), "{e}");
    }

    #[test]
    fn parses_defaults() {
        let s = parse(Path::new("s.yaml"), GOOD).unwrap();
        assert_eq!(s.duration.0, Duration::from_secs(600));
        assert_eq!(s.tick.0, Duration::from_millis(10));
        assert_eq!(s.world.lakes.tenants, 1);
        assert_eq!(s.world.lakes.files_per_lake, 2);
    }

    #[test]
    fn unknown_field_is_located() {
        let text = GOOD.replace(
            "  lakes: { count: 4 }\n",
            "  lakes: { count: 4 }\n  lake: 3\n",
        );
        check_err(&text, 6, 3, "world.lake", "unknown field `lake`");
    }

    #[test]
    fn wrong_type_is_located() {
        let text = GOOD.replace("count: 4", "count: four");
        check_err(&text, 5, 19, "world.lakes.count", "u32");
    }

    #[test]
    fn duplicate_key_is_located() {
        let text = format!("{GOOD}name: again\n");
        check_err(&text, 8, 1, "name", "duplicate");
    }

    #[test]
    fn bad_duration_is_located() {
        let text = GOOD.replace("10m", "ten minutes");
        check_err(&text, 2, 11, "duration", "invalid duration");
    }

    #[test]
    fn provider_settings_parse_and_reject_unknown_keys() {
        let text = GOOD.replace(
            "  lakes: { count: 4 }\n",
            "  lakes: { count: 4 }\n  provider:\n    quotas: { AssumeRole: { rate_per_s: 20, burst: 40 } }\n    freeze: { fleet_util_over: 0.8, for: 10s, freeze_for: 30m }\n    background: { accounts: 3 }\n",
        );
        let s = parse(Path::new("s.yaml"), &text).unwrap();
        assert_eq!(s.world.provider.quotas["AssumeRole"].burst, 40.0);
        assert_eq!(
            s.world.provider.freeze.sustained.map(|d| d.0),
            Some(Duration::from_secs(10))
        );
        assert_eq!(s.world.provider.background.accounts, 3);
        let bad = text.replace("freeze_for: 30m", "freeze_for: 30m, thaw: now");
        check_err(
            &bad,
            8,
            64,
            "world.provider.freeze.thaw",
            "unknown field `thaw`",
        );
    }

    #[test]
    fn range_errors_are_located() {
        let text = GOOD.replace("count: 4", "count: 0");
        check_err(&text, 5, 12, "world.lakes.count", "at least one lake");
    }
}
