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

/// A CSV file of arrival times.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CsvArrivals {
    /// The file, relative to the scenario.
    pub csv: PathBuf,
    /// The column holding each row's timestamp (`2023-11-16 18:15:46.6805900`, RFC 3339 with a
    /// space or a `T`, fractions down to nanoseconds). Default: `TIMESTAMP`.
    #[serde(default = "default_column")]
    pub column: String,
}

fn default_column() -> String {
    "TIMESTAMP".into()
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

/// Arrival times read from a CSV file, relative to the first row.
pub fn read_csv(path: &Path, column: &str) -> Result<Vec<Duration>, InputError> {
    let mut reader = csv::Reader::from_path(path)
        .map_err(|e| InputError::whole_file(path, format!("cannot read CSV: {e}")))?;
    let headers = reader
        .headers()
        .map_err(|e| InputError::whole_file(path, format!("cannot read the CSV header: {e}")))?
        .clone();
    let Some(index) = headers.iter().position(|h| h == column) else {
        return Err(InputError {
            file: path.to_path_buf(),
            line: Some(1),
            column: Some(1),
            field: Some(column.to_string()),
            message: format!(
                "no column `{column}` (columns: {})",
                headers.iter().collect::<Vec<_>>().join(", ")
            ),
        });
    };
    let mut times = Vec::new();
    let mut first = None;
    for (i, row) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let row = row.map_err(|e| InputError {
            file: path.to_path_buf(),
            line: Some(line),
            column: Some(1),
            field: None,
            message: format!("bad CSV row: {e}"),
        })?;
        let cell = row.get(index).unwrap_or("");
        let at = humantime::parse_rfc3339_weak(cell.trim()).map_err(|e| InputError {
            file: path.to_path_buf(),
            line: Some(line),
            column: Some(1),
            field: Some(column.to_string()),
            message: format!("`{cell}` is not a timestamp ({e})"),
        })?;
        let first = *first.get_or_insert(at);
        let offset = at.duration_since(first).map_err(|_| InputError {
            file: path.to_path_buf(),
            line: Some(line),
            column: Some(1),
            field: Some(column.to_string()),
            message: format!("`{cell}` is earlier than the first row; arrivals are in time order"),
        })?;
        if times.last().is_some_and(|last: &Duration| offset < *last) {
            return Err(InputError {
                file: path.to_path_buf(),
                line: Some(line),
                column: Some(1),
                field: Some(column.to_string()),
                message: format!(
                    "`{cell}` is earlier than the row before; arrivals are in time order"
                ),
            });
        }
        times.push(offset);
    }
    Ok(times)
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

/// Records for arrival times: one per time, from the template.
pub fn from_template(times: &[Duration], template: &QueryTemplate) -> Trace {
    let lakes = template
        .lakes
        .clone()
        .unwrap_or_else(|| LakeSelector::Tenant(template.tenant.clone()));
    let records = times
        .iter()
        .map(|t| Record {
            t_ms: t.as_millis() as u64,
            tenant: template.tenant.clone(),
            user: template.user.clone(),
            sql: template.sql.clone(),
            lakes: lakes.clone(),
            priority: template.priority,
            deadline_ms: template.deadline_ms,
        })
        .collect();
    Trace {
        records,
        lines: (1..=times.len() as u64).map(|l| l + 1).collect(),
        at: times.to_vec(),
    }
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
}
