//! Where a scenario's queries come from, and how they are reshaped: a native trace, a CSV
//! arrival process (one query per row, at the row's timestamp), or a generator (Poisson,
//! diurnal, burst); then a time window, a tenant filter, a load multiplier and a timing
//! transform, in that order. Every step is deterministic: randomness comes from the scenario's
//! seed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Deserializer, Serialize};

use crate::input::InputError;
use crate::input::trace::{LakeSelector, Priority, Record, Trace};
use crate::rng::sub_seed;
use crate::span::Span;

/// What every arrival of a CSV or a generator submits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueryTemplate {
    /// The tenant. Default: `tenant-00`.
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// Who. Default: `replay`.
    #[serde(default = "default_user")]
    pub user: String,
    /// The SQL.
    pub sql: String,
    /// The lakes. Default: the tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lakes: Option<LakeSelector>,
    /// Scheduling class. Default: `batch`.
    #[serde(default)]
    pub priority: Priority,
    /// Deadline in milliseconds, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
}

fn default_tenant() -> String {
    "tenant-00".into()
}

fn default_user() -> String {
    "replay".into()
}

/// A file of arrival times, CSV or JSON Lines: one query (from the scenario's `query`) per row
/// or line, at its time.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CsvArrivals {
    /// A CSV file, relative to the scenario.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<PathBuf>,
    /// A JSON Lines file (an object per line), relative to the scenario.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jsonl: Option<PathBuf>,
    /// The CSV column holding each row's time. Default: `TIMESTAMP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The JSON Lines field holding each line's time. Default: `timestamp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Times are numbers in this unit (`ns`, `us`, `ms`, `s`; decimals allowed). Absent: RFC
    /// 3339 timestamps (`2023-11-16 18:15:46.6805900`, with a space or a `T`, fractions down to
    /// nanoseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<TimeUnit>,
    /// Where time 0 of the run is: `first` (default), the first row's time, whatever it is (a
    /// Unix time, a timestamp, an offset); `zero`, the numbers' own zero: offsets from the
    /// recording's start are replayed as they are, the first at its own offset. `zero` needs
    /// `unit`.
    #[serde(default, skip_serializing_if = "Origin::is_first")]
    pub origin: Origin,
    /// Fields of each row's query taken from the row's own columns (CSV) or fields (JSON
    /// Lines), over the scenario's `query`.
    #[serde(default, skip_serializing_if = "QueryFrom::is_empty")]
    pub query_from: QueryFrom,
}

/// Which column (CSV) or field (JSON Lines) gives each field of a row's query; unnamed fields
/// come from the scenario's `query`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueryFrom {
    /// The tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Who submits it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The SQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// The lakes: `all`, lake ids (`3`, `3;7;12`), or a tenant's name (its lakes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lakes: Option<String>,
    /// `interactive` or `batch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    /// The deadline in milliseconds (0 or empty: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<String>,
}

impl QueryFrom {
    fn is_empty(&self) -> bool {
        *self == QueryFrom::default()
    }

    /// (the query's field, the column or field that gives it), for those named.
    fn named(&self) -> Vec<(&'static str, &str)> {
        [
            ("tenant", &self.tenant),
            ("user", &self.user),
            ("sql", &self.sql),
            ("lakes", &self.lakes),
            ("priority", &self.priority),
            ("deadline_ms", &self.deadline_ms),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.as_deref()?)))
        .collect()
    }
}

/// The unit of numeric arrival times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    /// Nanoseconds.
    Ns,
    /// Microseconds.
    Us,
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
}

impl TimeUnit {
    fn nanos(self) -> u64 {
        match self {
            TimeUnit::Ns => 1,
            TimeUnit::Us => 1_000,
            TimeUnit::Ms => 1_000_000,
            TimeUnit::S => 1_000_000_000,
        }
    }

    /// `text` (a whole or decimal number, not negative) as a time in this unit.
    fn read(self, text: &str) -> Option<Duration> {
        let text = text.trim();
        if let Ok(whole) = text.parse::<u64>() {
            return whole.checked_mul(self.nanos()).map(Duration::from_nanos);
        }
        let v: f64 = text.parse().ok()?;
        (v.is_finite() && v >= 0.0)
            .then(|| Duration::try_from_secs_f64(v * self.nanos() as f64 / 1e9).ok())
            .flatten()
    }

    fn name(self) -> &'static str {
        match self {
            TimeUnit::Ns => "ns",
            TimeUnit::Us => "us",
            TimeUnit::Ms => "ms",
            TimeUnit::S => "s",
        }
    }
}

/// Where time 0 of replayed arrivals is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The first row's time.
    #[default]
    First,
    /// The numbers' own zero.
    Zero,
}

impl Origin {
    fn is_first(&self) -> bool {
        *self == Origin::First
    }
}

impl CsvArrivals {
    /// The file, relative to the scenario, and the key that names it (`csv:` or `jsonl:`).
    pub fn file(&self) -> (&'static str, PathBuf) {
        match (&self.csv, &self.jsonl) {
            (Some(f), _) => ("csv:", f.clone()),
            (None, Some(f)) => ("jsonl:", f.clone()),
            (None, None) => ("arrivals:", PathBuf::new()),
        }
    }

    /// The keys that go together: one file, its own kind of key, `zero` with numbers. The
    /// offending key and why, when not.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        match (&self.csv, &self.jsonl) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(("csv", "needs exactly one of `csv` or `jsonl`".into()));
            }
            (Some(_), None) if self.field.is_some() => {
                return Err((
                    "field",
                    "`field` is for `jsonl`; a CSV names its `column`".into(),
                ));
            }
            (None, Some(_)) if self.column.is_some() => {
                return Err((
                    "column",
                    "`column` is for `csv`; JSON Lines name their `field`".into(),
                ));
            }
            _ => {}
        }
        if self.origin == Origin::Zero && self.unit.is_none() {
            return Err((
                "origin",
                "`origin: zero` is for numeric times: give their `unit` (ns, us, ms or s)".into(),
            ));
        }
        Ok(())
    }
}

/// A synthetic arrival process.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Generator {
    /// Exponential inter-arrival times at a constant rate.
    Poisson {
        /// Arrivals per second.
        rate_per_s: f64,
        /// How long it generates.
        duration: Span,
    },
    /// A Poisson process whose rate follows a day: `mean · (1 + amplitude · sin(2πt / period))`.
    Diurnal {
        /// The mean rate.
        mean_per_s: f64,
        /// 0 to 1: how far the rate swings around the mean.
        amplitude: f64,
        /// One cycle. Default: 24 h.
        #[serde(default = "day")]
        period: Span,
        /// How long it generates.
        duration: Span,
    },
    /// A steady Poisson rate with a burst of a higher rate from `at` for `lasts`.
    Burst {
        /// The rate outside the burst.
        base_per_s: f64,
        /// The rate inside it.
        burst_per_s: f64,
        /// When the burst starts.
        at: Span,
        /// How long it lasts.
        lasts: Span,
        /// How long it generates.
        duration: Span,
    },
}

impl Generator {
    /// The process's name, as the scenario writes it.
    pub fn kind(&self) -> &'static str {
        match self {
            Generator::Poisson { .. } => "poisson",
            Generator::Diurnal { .. } => "diurnal",
            Generator::Burst { .. } => "burst",
        }
    }
}

fn day() -> Span {
    Span(Duration::from_secs(86_400))
}

/// How arrival times are replayed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum Timing {
    /// As recorded.
    #[default]
    Original,
    /// Every time divided by K (K > 1 compresses).
    Scaled(f64),
    /// Evenly spaced at this rate, in recorded order.
    FixedRate(f64),
}

impl<'de> Deserialize<'de> for Timing {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bad = || {
            serde::de::Error::custom(format!(
                "invalid timing `{text}`; write original, scaled:K (K > 0) or fixed_rate:R/s (R > 0)"
            ))
        };
        let positive = |v: &str| {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| *x > 0.0 && x.is_finite())
        };
        if text == "original" {
            Ok(Timing::Original)
        } else if let Some(k) = text.strip_prefix("scaled:") {
            positive(k).map(Timing::Scaled).ok_or_else(bad)
        } else if let Some(r) = text.strip_prefix("fixed_rate:") {
            positive(r.trim_end_matches("/s"))
                .map(Timing::FixedRate)
                .ok_or_else(bad)
        } else {
            Err(bad())
        }
    }
}

impl Serialize for Timing {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Timing::Original => s.serialize_str("original"),
            Timing::Scaled(k) => s.serialize_str(&format!("scaled:{k}")),
            Timing::FixedRate(r) => s.serialize_str(&format!("fixed_rate:{r}/s")),
        }
    }
}

/// A time window of the source: arrivals in `[from, to)`, shifted to start at 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Start. Default: 0.
    #[serde(default = "zero")]
    pub from: Span,
    /// End (exclusive).
    pub to: Span,
}

fn zero() -> Span {
    Span(Duration::ZERO)
}

/// One row's time as written: a point in time, or a number of `unit`s from its own zero.
#[derive(Clone, Copy)]
enum Stamp {
    At(std::time::SystemTime),
    Since(Duration),
}

/// Reads one time, as `spec` says times are written.
fn stamp(text: &str, unit: Option<TimeUnit>) -> Result<Stamp, String> {
    match unit {
        Some(u) => u.read(text).map(Stamp::Since).ok_or_else(|| {
            format!(
                "`{text}` is not a number of {} (not negative; decimals allowed)",
                u.name()
            )
        }),
        None => humantime::parse_rfc3339_weak(text.trim())
            .map(Stamp::At)
            .map_err(|e| {
                let hint = if text.trim().parse::<f64>().is_ok() {
                    ": a number needs its `unit` (ns, us, ms or s)"
                } else {
                    ""
                };
                format!("`{text}` is not an RFC 3339 timestamp ({e}){hint}")
            }),
    }
}

/// A row's place in its file, and its time as written.
struct Row {
    line: u64,
    column: u64,
    text: String,
    /// The values of the columns `query_from` names: (the query's field, the column or field
    /// of the file, the value, its column on the line).
    values: Vec<(&'static str, String, String, u64)>,
}

/// One arrival read from a file: when, where in the file, and the query fields its row gives.
pub struct Arrival {
    /// Its offset from the run's start.
    pub at: Duration,
    line: u64,
    values: Vec<(&'static str, String, String, u64)>,
}

/// Arrival offsets of `rows`, each at its time less the origin's, in file order: refuses a row
/// earlier than the one before.
fn offsets(
    path: &Path,
    name: &str,
    rows: &[Row],
    spec: &CsvArrivals,
) -> Result<Vec<Duration>, InputError> {
    let mut times: Vec<Duration> = Vec::with_capacity(rows.len());
    let mut first: Option<Stamp> = None;
    for row in rows {
        let fail = |message: String| InputError {
            file: path.to_path_buf(),
            line: Some(row.line),
            column: Some(row.column),
            field: Some(name.to_string()),
            message,
        };
        let at = stamp(&row.text, spec.unit).map_err(fail)?;
        // Time 0: the first row's time, or the numbers' own zero under `origin: zero`.
        let zero = *first.get_or_insert(match at {
            Stamp::Since(_) if spec.origin == Origin::Zero => Stamp::Since(Duration::ZERO),
            first_row => first_row,
        });
        let offset = match (at, zero) {
            (Stamp::At(t), Stamp::At(zero)) => t.duration_since(zero).ok(),
            (Stamp::Since(d), Stamp::Since(zero)) => d.checked_sub(zero),
            _ => None,
        };
        let earlier = || {
            fail(format!(
                "`{}` is earlier than the row before; arrivals are in time order",
                row.text.trim()
            ))
        };
        let offset = offset.ok_or_else(earlier)?;
        if times.last().is_some_and(|last| offset < *last) {
            return Err(earlier());
        }
        times.push(offset);
    }
    Ok(times)
}

/// The arrivals of a file of arrivals (CSV or JSON Lines), their times from the origin `spec`
/// names, in file order.
pub fn read_arrivals(path: &Path, spec: &CsvArrivals) -> Result<Vec<Arrival>, InputError> {
    let wanted = spec.query_from.named();
    let (name, rows) = if spec.jsonl.is_some() {
        let name = spec.field.as_deref().unwrap_or("timestamp");
        (name, jsonl_rows(path, name, &wanted)?)
    } else {
        let name = spec.column.as_deref().unwrap_or("TIMESTAMP");
        (name, csv_rows(path, name, &wanted)?)
    };
    let times = offsets(path, name, &rows, spec)?;
    Ok(rows
        .into_iter()
        .zip(times)
        .map(|(r, at)| Arrival {
            at,
            line: r.line,
            values: r.values,
        })
        .collect())
}

/// Each CSV row's cell of `column`.
fn csv_rows(
    path: &Path,
    column: &str,
    wanted: &[(&'static str, &str)],
) -> Result<Vec<Row>, InputError> {
    let mut reader = csv::Reader::from_path(path)
        .map_err(|e| InputError::whole_file(path, format!("cannot read CSV: {e}")))?;
    let headers = reader
        .headers()
        .map_err(|e| InputError::whole_file(path, format!("cannot read the CSV header: {e}")))?
        .clone();
    let position = |column: &str| {
        headers
            .iter()
            .position(|h| h == column)
            .ok_or_else(|| InputError {
                file: path.to_path_buf(),
                line: Some(1),
                column: Some(1),
                field: Some(column.to_string()),
                message: format!(
                    "no column `{column}` (columns: {})",
                    headers.iter().collect::<Vec<_>>().join(", ")
                ),
            })
    };
    let index = position(column)?;
    let others = wanted
        .iter()
        .map(|(field, column)| Ok((*field, position(column)?)))
        .collect::<Result<Vec<_>, InputError>>()?;
    let mut rows = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let row = row.map_err(|e| InputError {
            file: path.to_path_buf(),
            line: Some(line),
            column: Some(1),
            field: None,
            message: format!("bad CSV row: {e}"),
        })?;
        rows.push(Row {
            line,
            column: 1,
            text: row.get(index).unwrap_or("").to_string(),
            values: others
                .iter()
                .map(|(field, i)| {
                    let name = headers.get(*i).unwrap_or("").to_string();
                    (*field, name, row.get(*i).unwrap_or("").to_string(), 1)
                })
                .collect(),
        });
    }
    Ok(rows)
}

/// Each JSON Lines object's `field`, as its text (a string's contents, a number as written);
/// blank lines are skipped.
fn jsonl_rows(
    path: &Path,
    field: &str,
    wanted: &[(&'static str, &str)],
) -> Result<Vec<Row>, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::whole_file(path, format!("cannot read: {e}")))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let at = |column: u64, field: Option<&str>, message: String| InputError {
            file: path.to_path_buf(),
            line: Some(n),
            column: Some(column),
            field: field.map(str::to_string),
            message,
        };
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| at(e.column().max(1) as u64, None, format!("not JSON: {e}")))?;
        let Some(object) = value.as_object() else {
            return Err(at(
                1,
                None,
                "not a JSON object: each line is one arrival".into(),
            ));
        };
        let column_of = |name: &str| {
            line.find(&format!("\"{name}\""))
                .map_or(1, |c| c as u64 + 1)
        };
        // A field's value as text: a string's contents, a number as written.
        let text_of = |name: &str| match object.get(name) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(serde_json::Value::Number(v)) => Ok(v.to_string()),
            Some(other) => Err(at(
                column_of(name),
                Some(name),
                format!("`{other}` is neither a string nor a number"),
            )),
            None => Err(at(1, Some(name), format!("no field `{name}` on this line"))),
        };
        let values = wanted
            .iter()
            .map(|(query_field, name)| {
                Ok((
                    *query_field,
                    (*name).to_string(),
                    text_of(name)?,
                    column_of(name),
                ))
            })
            .collect::<Result<Vec<_>, InputError>>()?;
        rows.push(Row {
            line: n,
            column: column_of(field),
            text: text_of(field)?,
            values,
        });
    }
    Ok(rows)
}

/// Arrival times of a generator, from `seed`.
pub fn generate(g: &Generator, seed: u64) -> Vec<Duration> {
    let mut rng = ChaCha8Rng::seed_from_u64(sub_seed(seed, "traffic/generate"));
    // Thinning (Lewis and Shedler): candidates at the peak rate, each kept with rate(t) / peak.
    let (peak, end): (f64, Duration) = match g {
        Generator::Poisson {
            rate_per_s,
            duration,
        } => (*rate_per_s, duration.0),
        Generator::Diurnal {
            mean_per_s,
            amplitude,
            duration,
            ..
        } => (mean_per_s * (1.0 + amplitude.clamp(0.0, 1.0)), duration.0),
        Generator::Burst {
            base_per_s,
            burst_per_s,
            duration,
            ..
        } => (base_per_s.max(*burst_per_s), duration.0),
    };
    let rate = |t: f64| match g {
        Generator::Poisson { rate_per_s, .. } => *rate_per_s,
        Generator::Diurnal {
            mean_per_s,
            amplitude,
            period,
            ..
        } => {
            mean_per_s
                * (1.0
                    + amplitude.clamp(0.0, 1.0)
                        * (std::f64::consts::TAU * t / period.0.as_secs_f64().max(1e-9)).sin())
        }
        Generator::Burst {
            base_per_s,
            burst_per_s,
            at,
            lasts,
            ..
        } => {
            if (at.0.as_secs_f64()..(at.0 + lasts.0).as_secs_f64()).contains(&t) {
                *burst_per_s
            } else {
                *base_per_s
            }
        }
    };
    let mut out = Vec::new();
    if peak <= 0.0 {
        return out;
    }
    let mut t = 0.0f64;
    loop {
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        t += -u.ln() / peak;
        if t >= end.as_secs_f64() {
            return out;
        }
        let keep: f64 = rng.random();
        if keep * peak <= rate(t) {
            out.push(Duration::from_secs_f64(t));
        }
    }
}

/// The record of one arrival at `t`, from the template.
fn record(t: Duration, template: &QueryTemplate) -> Record {
    Record {
        t_ms: t.as_millis() as u64,
        tenant: template.tenant.clone(),
        user: template.user.clone(),
        sql: template.sql.clone(),
        lakes: template
            .lakes
            .clone()
            .unwrap_or_else(|| LakeSelector::Tenant(template.tenant.clone())),
        priority: template.priority,
        deadline_ms: template.deadline_ms,
    }
}

/// Records for arrival times: one per time, from the template.
pub fn from_template(times: &[Duration], template: &QueryTemplate) -> Trace {
    Trace {
        records: times.iter().map(|t| record(*t, template)).collect(),
        lines: (1..=times.len() as u64).map(|l| l + 1).collect(),
        at: times.to_vec(),
    }
}

/// A lake selector as a column writes it: `all`, lake ids (`3`, `3;7;12`, or with commas or
/// spaces), or a tenant's name.
fn lakes_of(text: &str) -> LakeSelector {
    let text = text.trim();
    if text == "all" {
        return LakeSelector::All;
    }
    let ids: Option<Vec<u32>> = text
        .split([';', ',', ' '])
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().ok())
        .collect();
    match ids {
        Some(ids) if !ids.is_empty() => LakeSelector::Ids(ids),
        _ => LakeSelector::Tenant(text.to_string()),
    }
}

/// Records for the arrivals of `path`: each from the template, with the fields its row gives.
pub fn from_arrivals(
    path: &Path,
    arrivals: Vec<Arrival>,
    template: &QueryTemplate,
) -> Result<Trace, InputError> {
    let mut trace = Trace {
        records: Vec::with_capacity(arrivals.len()),
        lines: Vec::with_capacity(arrivals.len()),
        at: Vec::with_capacity(arrivals.len()),
    };
    for a in arrivals {
        let mut r = record(a.at, template);
        for (field, name, value, column) in &a.values {
            let bad = |message: String| InputError {
                file: path.to_path_buf(),
                line: Some(a.line),
                column: Some(*column),
                field: Some(name.clone()),
                message: format!("{message} (its query's `{field}`, by `query_from`)"),
            };
            match *field {
                "tenant" => {
                    // A tenant named by its row reads its own lakes unless the template says
                    // which (a row's own `lakes` comes after and wins).
                    if template.lakes.is_none() {
                        r.lakes = LakeSelector::Tenant(value.clone());
                    }
                    r.tenant = value.clone();
                }
                "user" => r.user = value.clone(),
                "sql" => r.sql = value.clone(),
                "lakes" => r.lakes = lakes_of(value),
                "priority" => {
                    r.priority = match value.trim().to_ascii_lowercase().as_str() {
                        "interactive" => Priority::Interactive,
                        "batch" => Priority::Batch,
                        _ => {
                            return Err(bad(format!(
                                "`{value}` is not a priority: interactive or batch"
                            )));
                        }
                    }
                }
                _ => {
                    r.deadline_ms = match value.trim() {
                        "" | "0" => None,
                        v => Some(v.parse().map_err(|_| {
                            bad(format!("`{value}` is not a deadline in whole milliseconds"))
                        })?),
                    }
                }
            }
        }
        trace.records.push(r);
        trace.lines.push(a.line);
        trace.at.push(a.at);
    }
    Ok(trace)
}

/// Applies the window, the tenant filter, the load multiplier and the timing, in that order.
pub fn reshape(
    trace: Trace,
    window: Option<Window>,
    tenants: &[String],
    load: f64,
    timing: Timing,
    seed: u64,
) -> Trace {
    let mut rows: Vec<(Record, u64, Duration)> = trace
        .records
        .into_iter()
        .zip(trace.lines)
        .zip(trace.at)
        .map(|((r, l), t)| (r, l, t))
        .collect();
    if let Some(w) = window {
        rows.retain(|(_, _, t)| *t >= w.from.0 && *t < w.to.0);
        for (_, _, t) in &mut rows {
            *t -= w.from.0;
        }
    }
    if !tenants.is_empty() {
        rows.retain(|(r, _, _)| tenants.contains(&r.tenant));
    }
    if (load - 1.0).abs() > f64::EPSILON {
        // Deterministic duplication and sampling: ⌊load⌋ copies of each arrival, and one more
        // with probability frac(load).
        let mut rng = ChaCha8Rng::seed_from_u64(sub_seed(seed, "traffic/load"));
        let whole = load.floor().max(0.0) as usize;
        let frac = load - load.floor();
        let mut out = Vec::with_capacity(rows.len() * (whole + 1));
        for row in rows {
            let extra = usize::from(rng.random::<f64>() < frac);
            for _ in 0..whole + extra {
                out.push(row.clone());
            }
        }
        rows = out;
    }
    for (i, (_, _, t)) in rows.iter_mut().enumerate() {
        *t = match timing {
            Timing::Original => *t,
            Timing::Scaled(k) => t.div_f64(k),
            Timing::FixedRate(r) => Duration::from_secs_f64(i as f64 / r),
        };
    }
    let mut records = Vec::with_capacity(rows.len());
    let mut lines = Vec::with_capacity(rows.len());
    let mut at = Vec::with_capacity(rows.len());
    for (mut r, l, t) in rows {
        r.t_ms = t.as_millis() as u64;
        records.push(r);
        lines.push(l);
        at.push(t);
    }
    Trace { records, lines, at }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(v: &[f64]) -> Vec<Duration> {
        v.iter().map(|s| Duration::from_secs_f64(*s)).collect()
    }

    fn template() -> QueryTemplate {
        QueryTemplate {
            tenant: "tenant-00".into(),
            user: "u".into(),
            sql: "SELECT 1 FROM telemetry".into(),
            lakes: None,
            priority: Priority::Batch,
            deadline_ms: None,
        }
    }

    #[test]
    fn timing_scales_and_spaces_and_the_window_shifts() {
        let t = from_template(&secs(&[0.0, 1.0, 3.0, 7.0]), &template());
        let scaled = reshape(t.clone(), None, &[], 1.0, Timing::Scaled(4.0), 0);
        assert_eq!(scaled.at, secs(&[0.0, 0.25, 0.75, 1.75]));
        let fixed = reshape(t.clone(), None, &[], 1.0, Timing::FixedRate(2.0), 0);
        assert_eq!(fixed.at, secs(&[0.0, 0.5, 1.0, 1.5]));
        let w = Window {
            from: Span(Duration::from_secs(1)),
            to: Span(Duration::from_secs(7)),
        };
        let windowed = reshape(t, Some(w), &[], 1.0, Timing::Original, 0);
        assert_eq!(windowed.at, secs(&[0.0, 2.0]));
    }

    #[test]
    fn load_duplicates_and_samples_deterministically() {
        let times: Vec<Duration> = (0..1000).map(|i| Duration::from_millis(i * 10)).collect();
        let t = from_template(&times, &template());
        let double = reshape(t.clone(), None, &[], 2.0, Timing::Original, 1);
        assert_eq!(double.records.len(), 2000);
        let half = reshape(t.clone(), None, &[], 0.5, Timing::Original, 1);
        assert!(
            (450..=550).contains(&half.records.len()),
            "{}",
            half.records.len()
        );
        assert_eq!(
            half,
            reshape(t, None, &[], 0.5, Timing::Original, 1),
            "same seed, same sample"
        );
    }

    #[test]
    fn generators_hit_their_rates() {
        let hour = Span(Duration::from_secs(3600));
        let p = generate(
            &Generator::Poisson {
                rate_per_s: 2.0,
                duration: hour,
            },
            7,
        );
        assert!((6800..=7600).contains(&p.len()), "{}", p.len());
        assert_eq!(
            p,
            generate(
                &Generator::Poisson {
                    rate_per_s: 2.0,
                    duration: hour
                },
                7
            )
        );
        let b = generate(
            &Generator::Burst {
                base_per_s: 1.0,
                burst_per_s: 20.0,
                at: Span(Duration::from_secs(600)),
                lasts: Span(Duration::from_secs(60)),
                duration: hour,
            },
            7,
        );
        let in_burst = b
            .iter()
            .filter(|t| (600..660).contains(&t.as_secs()))
            .count();
        assert!((1000..=1400).contains(&in_burst), "{in_burst}");
        let d = generate(
            &Generator::Diurnal {
                mean_per_s: 1.0,
                amplitude: 1.0,
                period: hour,
                duration: hour,
            },
            7,
        );
        // The first half of the cycle (sine above zero) carries far more than the second.
        let first = d.iter().filter(|t| t.as_secs() < 1800).count();
        assert!(
            first as f64 > 2.0 * (d.len() - first) as f64,
            "{first} of {}",
            d.len()
        );
    }

    /// Writes `text` to a file of its own under the temp dir, named `name`.
    fn file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("stampede-arrivals-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn spec(csv: Option<&Path>, jsonl: Option<&Path>) -> CsvArrivals {
        CsvArrivals {
            csv: csv.map(Path::to_path_buf),
            jsonl: jsonl.map(Path::to_path_buf),
            column: None,
            field: None,
            unit: None,
            origin: Origin::First,
            query_from: QueryFrom::default(),
        }
    }

    /// The arrival times of `path` as `spec` reads them.
    fn times(path: &Path, spec: &CsvArrivals) -> Result<Vec<Duration>, InputError> {
        Ok(read_arrivals(path, spec)?.iter().map(|a| a.at).collect())
    }

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|m| Duration::from_millis(*m)).collect()
    }

    #[test]
    fn json_lines_of_millisecond_offsets_replay_at_their_own_milliseconds() {
        // The shape of a published LLM-serving request trace: offsets in ms from the
        // recording's start, with other fields beside.
        let path = file(
            "offsets.jsonl",
            "{\"timestamp\": 27, \"input_length\": 6955, \"output_length\": 52}\n\n{\"timestamp\": 27, \"input_length\": 10}\n{\"timestamp\": 3052, \"input_length\": 1}\n",
        );
        let mut s = spec(None, Some(&path));
        s.unit = Some(TimeUnit::Ms);
        s.origin = Origin::Zero;
        assert_eq!(times(&path, &s).unwrap(), ms(&[27, 27, 3052]));
        // From the first line instead.
        s.origin = Origin::First;
        assert_eq!(times(&path, &s).unwrap(), ms(&[0, 0, 3025]));
    }

    #[test]
    fn numbers_in_each_unit_and_timestamps_read_alike() {
        let cases = [
            ("ts\n1700000000\n1700000001.5\n", TimeUnit::S),
            ("ts\n1700000000000\n1700000001500\n", TimeUnit::Ms),
            ("ts\n1700000000000000\n1700000001500000\n", TimeUnit::Us),
            (
                "ts\n1700000000000000000\n1700000001500000000\n",
                TimeUnit::Ns,
            ),
        ];
        for (text, unit) in cases {
            let path = file(&format!("unit-{}.csv", unit.name()), text);
            let mut s = spec(Some(&path), None);
            s.column = Some("ts".into());
            s.unit = Some(unit);
            assert_eq!(times(&path, &s).unwrap(), ms(&[0, 1500]), "{unit:?}");
        }
        let path = file(
            "rfc.jsonl",
            "{\"at\": \"2023-11-16T18:15:46Z\"}\n{\"at\": \"2023-11-16 18:15:47.5\"}\n",
        );
        let mut s = spec(None, Some(&path));
        s.field = Some("at".into());
        assert_eq!(times(&path, &s).unwrap(), ms(&[0, 1500]));
    }

    #[test]
    fn bad_times_are_located_and_say_what_was_expected() {
        let path = file(
            "bad.jsonl",
            "{\"timestamp\": 5}\n{\"other\": 1, \"timestamp\": -3}\n",
        );
        let mut s = spec(None, Some(&path));
        // A number without a unit.
        let e = times(&path, &s).unwrap_err();
        assert_eq!((e.line, e.column), (Some(1), Some(2)), "{e}");
        assert!(e.message.contains("needs its `unit`"), "{e}");
        // A negative one.
        s.unit = Some(TimeUnit::Ms);
        let e = times(&path, &s).unwrap_err();
        assert_eq!((e.line, e.column), (Some(2), Some(14)), "{e}");
        assert!(e.message.contains("not a number of ms"), "{e}");
        // Out of order, and not an object.
        let path = file("order.jsonl", "{\"timestamp\": 5}\n{\"timestamp\": 4}\n");
        let e = times(&path, &s).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("earlier"), "{e}");
        let path = file("array.jsonl", "[1, 2]\n");
        let e = times(&path, &s).unwrap_err();
        assert!(e.message.contains("not a JSON object"), "{e}");
        // Keys that do not go together.
        let mut both = spec(Some(&path), Some(&path));
        assert!(both.check().is_err());
        both.csv = None;
        both.origin = Origin::Zero;
        both.unit = None;
        assert_eq!(both.check().unwrap_err().0, "origin");
        both.origin = Origin::First;
        both.column = Some("ts".into());
        assert_eq!(both.check().unwrap_err().0, "column");
    }

    #[test]
    fn a_rows_own_columns_give_its_query_fields() {
        let path = file(
            "fields.csv",
            "ts,customer,prio,lake,budget\n0,tenant-01,interactive,,\n1,tenant-02,BATCH,3;7,5000\n2,tenant-01,batch,all,0\n",
        );
        let mut s = spec(Some(&path), None);
        s.column = Some("ts".into());
        s.unit = Some(TimeUnit::S);
        s.query_from = QueryFrom {
            tenant: Some("customer".into()),
            priority: Some("prio".into()),
            deadline_ms: Some("budget".into()),
            ..QueryFrom::default()
        };
        let t = from_arrivals(&path, read_arrivals(&path, &s).unwrap(), &template()).unwrap();
        let got: Vec<(&str, Priority, &LakeSelector, Option<u64>)> = t
            .records
            .iter()
            .map(|r| (r.tenant.as_str(), r.priority, &r.lakes, r.deadline_ms))
            .collect();
        let own = |t: &str| LakeSelector::Tenant(t.into());
        assert_eq!(
            got,
            vec![
                ("tenant-01", Priority::Interactive, &own("tenant-01"), None),
                ("tenant-02", Priority::Batch, &own("tenant-02"), Some(5000)),
                ("tenant-01", Priority::Batch, &own("tenant-01"), None),
            ]
        );
        assert_eq!(t.lines, vec![2, 3, 4]);
        // The row's lakes, when a column gives them.
        s.query_from.lakes = Some("lake".into());
        let t = from_arrivals(&path, read_arrivals(&path, &s).unwrap(), &template()).unwrap();
        assert_eq!(t.records[1].lakes, LakeSelector::Ids(vec![3, 7]));
        assert_eq!(t.records[2].lakes, LakeSelector::All);
        // A value that is not one, located; a column that is not there, named.
        let bad = file("bad-prio.jsonl", "{\"t\": 1, \"p\": \"urgent\"}\n");
        let mut j = spec(None, Some(&bad));
        j.field = Some("t".into());
        j.unit = Some(TimeUnit::S);
        j.query_from.priority = Some("p".into());
        let e = from_arrivals(&bad, read_arrivals(&bad, &j).unwrap(), &template()).unwrap_err();
        assert_eq!((e.line, e.column), (Some(1), Some(10)), "{e}");
        assert!(e.message.contains("interactive or batch"), "{e}");
        s.query_from.user = Some("who".into());
        let e = read_arrivals(&path, &s).err().unwrap();
        assert!(e.message.contains("no column `who`"), "{e}");
    }
}
