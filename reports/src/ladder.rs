//! A capacity ladder: the same scenario at rising load multipliers, on one or more seeds,
//! summed up per load (`capacity.json`), with the knee, a USL fit and the first load at which
//! each invariant breaks.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::latency::Latency;
use crate::page::num;
use crate::run::{RunData, Status};
use crate::scaling::{self, KNEE_RULE, Rung, Usl};

/// One run of the ladder, as it came back: its data, or why it has none.
#[derive(Debug, Clone)]
pub struct LadderRun {
    /// The load multiplier.
    pub load: f64,
    /// The seed.
    pub seed: u64,
    /// The run, or what went wrong (it crashed, timed out, wrote nothing).
    pub run: Result<RunData, String>,
}

/// One seed at one load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedPoint {
    /// The seed.
    pub seed: u64,
    /// Offered queries per second.
    pub offered_per_s: f64,
    /// Succeeded queries per second.
    pub goodput_per_s: f64,
    /// Its p99 in ms.
    pub p99_ms: Option<u64>,
    /// Time-averaged queries in the system.
    pub in_system: f64,
    /// Its event-log digest.
    pub digest: String,
}

/// One load of the ladder, over its seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// The load multiplier.
    pub load: f64,
    /// Offered queries per second, the mean over seeds.
    pub offered_per_s: f64,
    /// Succeeded queries per second, the mean over seeds.
    pub goodput_per_s: f64,
    /// The lowest and highest goodput of a seed.
    pub goodput_range: (f64, f64),
    /// Latency percentiles of the seeds' histograms added together (never averaged).
    pub p50_ms: Option<u64>,
    /// See `p50_ms`.
    pub p99_ms: Option<u64>,
    /// See `p50_ms`.
    pub p999_ms: Option<u64>,
    /// Queries that failed or were lost, over queries offered.
    pub error_rate: f64,
    /// Queries refused for good, over queries offered.
    pub refusal_rate: f64,
    /// The system's provider calls per query offered.
    pub calls_per_query: f64,
    /// Per api, the highest share of its quota used in any window, over seeds.
    pub quota_peaks: BTreeMap<String, f64>,
    /// Per invariant: `pass`, `fail` or `unknown`; `fail` when any seed failed it.
    pub verdicts: BTreeMap<String, String>,
    /// Per invariant that failed: on how many seeds, and the first failure's summary.
    pub failures: BTreeMap<String, (usize, String)>,
    /// Time-averaged queries in the system, the mean over seeds.
    pub in_system: f64,
    /// Each seed's figures.
    pub seeds: Vec<SeedPoint>,
    /// Runs that gave no data, with why.
    pub errors: Vec<String>,
    /// The seeds' latency added together (for the HDR plot; not in `capacity.json`).
    #[serde(skip)]
    pub latency: Latency,
}

/// The first load at which an invariant breaks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FirstBreak {
    /// The invariant.
    pub invariant: String,
    /// The load.
    pub load: f64,
    /// The first failing seed's witness summary.
    pub detail: String,
}

/// The knee, as `capacity.json` has it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KneeAt {
    /// The first load (of the mean ladder) where the rule triggers.
    pub load: f64,
    /// The load before it: the knee lies between the two.
    pub previous: Option<f64>,
    /// The rule.
    pub rule: String,
    /// Which clause triggered, with its numbers.
    pub trigger: String,
    /// Per seed, the load its own ladder's knee is at (none when it has none).
    pub per_seed: BTreeMap<u64, Option<f64>>,
}

/// The whole ladder: `capacity.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Capacity {
    /// The scenario's name.
    pub scenario: String,
    /// Its file.
    pub scenario_file: String,
    /// The seeds.
    pub seeds: Vec<u64>,
    /// One point per load, in rising order.
    pub points: Vec<Point>,
    /// The knee, or null.
    pub knee: Option<KneeAt>,
    /// Why there is no knee, when there is none.
    pub no_knee: Option<String>,
    /// The rule the knee follows.
    pub knee_rule: String,
    /// Cross-check: the load where goodput over p99 peaks.
    pub power_knee: Option<f64>,
    /// The Universal Scalability Law fitted to the points.
    pub usl: Option<Usl>,
    /// Why no fit, when there is none.
    pub usl_not_fitted: Option<String>,
    /// The first load at which each invariant breaks, earliest first.
    pub first_breaks: Vec<FirstBreak>,
    /// The sentence for planners.
    pub headline: String,
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { s / n as f64 }
}

/// A load as people write it: `0.5×`, `4×`.
pub fn times(load: f64) -> String {
    format!("{}×", num(load, 3))
}

fn point(load: f64, runs: &[&LadderRun]) -> Point {
    let ok: Vec<&RunData> = runs.iter().filter_map(|r| r.run.as_ref().ok()).collect();
    let mut latency = Latency::new();
    for r in &ok {
        latency.add(&r.series.latency_total());
    }
    let offered: u64 = ok.iter().map(|r| r.outcomes.offered).sum();
    let sum = |f: fn(&RunData) -> u64| ok.iter().map(|r| f(r)).sum::<u64>() as f64;
    let mut quota_peaks: BTreeMap<String, f64> = BTreeMap::new();
    let mut verdicts: BTreeMap<String, String> = BTreeMap::new();
    let mut failures: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for r in &ok {
        for (api, s) in &r.quota_peaks {
            let e = quota_peaks.entry(api.clone()).or_default();
            *e = e.max(*s);
        }
        for v in &r.verdicts {
            let e = verdicts
                .entry(v.name.clone())
                .or_insert_with(|| "pass".into());
            match v.status {
                Status::Fail => {
                    *e = "fail".into();
                    let f = failures
                        .entry(v.name.clone())
                        .or_insert((0, v.detail.clone()));
                    f.0 += 1;
                }
                Status::Unknown if e == "pass" => *e = "unknown".into(),
                _ => {}
            }
        }
    }
    let goodputs: Vec<f64> = ok.iter().map(|r| r.goodput_per_s()).collect();
    let lowest = goodputs.iter().copied().fold(f64::INFINITY, f64::min);
    Point {
        load,
        offered_per_s: mean(ok.iter().map(|r| r.offered_per_s())),
        goodput_per_s: mean(goodputs.iter().copied()),
        goodput_range: (
            if lowest.is_finite() { lowest } else { 0.0 },
            goodputs.iter().copied().fold(0.0, f64::max),
        ),
        p50_ms: latency.quantile_any(0.5),
        p99_ms: latency.quantile_any(0.99),
        p999_ms: latency.quantile_any(0.999),
        error_rate: (sum(|r| r.outcomes.failed + r.outcomes.lost)) / offered.max(1) as f64,
        refusal_rate: sum(|r| r.outcomes.refused) / offered.max(1) as f64,
        calls_per_query: sum(|r| r.system_calls_total()) / offered.max(1) as f64,
        quota_peaks,
        verdicts,
        failures,
        in_system: mean(ok.iter().map(|r| r.in_system_avg())),
        seeds: ok
            .iter()
            .map(|r| SeedPoint {
                seed: r.header.seed,
                offered_per_s: r.offered_per_s(),
                goodput_per_s: r.goodput_per_s(),
                p99_ms: r.series.latency_total().quantile_any(0.99),
                in_system: r.in_system_avg(),
                digest: r.header.digest.clone(),
            })
            .collect(),
        errors: runs
            .iter()
            .filter_map(|r| {
                r.run
                    .as_ref()
                    .err()
                    .map(|e| format!("seed {}: {e}", r.seed))
            })
            .collect(),
        latency,
    }
}

fn rungs(points: &[Point], seed: Option<u64>) -> Vec<Rung> {
    points
        .iter()
        .filter_map(|p| match seed {
            None => (!p.seeds.is_empty()).then(|| Rung {
                load: p.load,
                offered_per_s: p.offered_per_s,
                goodput_per_s: p.goodput_per_s,
                p99_ms: p.p99_ms.map(|v| v as f64),
                in_system: Some(p.in_system),
            }),
            Some(seed) => p.seeds.iter().find(|s| s.seed == seed).map(|s| Rung {
                load: p.load,
                offered_per_s: s.offered_per_s,
                goodput_per_s: s.goodput_per_s,
                p99_ms: s.p99_ms.map(|v| v as f64),
                in_system: Some(s.in_system),
            }),
        })
        .collect()
}

/// Sums a ladder up. `runs` may come in any order; loads are sorted.
pub fn capacity(scenario: &str, scenario_file: &str, runs: &[LadderRun]) -> Capacity {
    let mut loads: Vec<f64> = runs.iter().map(|r| r.load).collect();
    loads.sort_by(f64::total_cmp);
    loads.dedup();
    let mut seeds: Vec<u64> = runs.iter().map(|r| r.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    let points: Vec<Point> = loads
        .iter()
        .map(|l| {
            let at: Vec<&LadderRun> = runs.iter().filter(|r| r.load == *l).collect();
            point(*l, &at)
        })
        .collect();
    let mean_rungs = rungs(&points, None);
    let knee = scaling::knee(&mean_rungs).map(|k| KneeAt {
        load: k.load,
        previous: k.previous,
        rule: KNEE_RULE.into(),
        trigger: k.trigger,
        per_seed: seeds
            .iter()
            .map(|s| (*s, scaling::knee(&rungs(&points, Some(*s))).map(|k| k.load)))
            .collect(),
    });
    let no_knee = knee.is_none().then(|| scaling::no_knee_reason(&mean_rungs));
    // Little's N where the runs measured it; the multiplier only when they did not.
    let (usl, usl_not_fitted) = match scaling::fit_usl_rungs(&mean_rungs) {
        Ok(u) => (Some(u), None),
        Err(why) => (None, Some(why)),
    };
    let mut first_breaks: Vec<FirstBreak> = vec![];
    for p in &points {
        for (name, (_, detail)) in &p.failures {
            if !first_breaks.iter().any(|b| &b.invariant == name) {
                first_breaks.push(FirstBreak {
                    invariant: name.clone(),
                    load: p.load,
                    detail: detail.clone(),
                });
            }
        }
    }
    let headline = match first_breaks.first() {
        Some(b) => {
            let also: Vec<&str> = first_breaks
                .iter()
                .skip(1)
                .filter(|x| x.load == b.load)
                .map(|x| x.invariant.as_str())
                .collect();
            format!(
                "at {}, `{}` breaks first: {}{}",
                times(b.load),
                b.invariant,
                b.detail,
                if also.is_empty() {
                    String::new()
                } else {
                    format!(" (with {} at the same load)", also.join(", "))
                }
            )
        }
        None => format!(
            "no invariant breaks up to {}",
            loads.last().map_or("–".into(), |l| times(*l))
        ),
    };
    Capacity {
        scenario: scenario.into(),
        scenario_file: scenario_file.into(),
        seeds,
        power_knee: scaling::power_knee(&mean_rungs),
        points,
        knee,
        no_knee,
        knee_rule: KNEE_RULE.into(),
        usl,
        usl_not_fitted,
        first_breaks,
        headline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::VerdictRow;

    fn run(load: f64, seed: u64, offered: u64, ok: u64, fail: bool) -> LadderRun {
        let mut r = RunData::default();
        r.header.virtual_ms = 10_000;
        r.header.traffic_ms = 10_000;
        r.header.seed = seed;
        r.outcomes.offered = offered;
        r.outcomes.succeeded = ok;
        r.series.latency = vec![Latency::new()];
        for _ in 0..ok {
            r.series.latency[0].record((load * 100.0) as u64);
        }
        r.verdicts.push(VerdictRow {
            name: "provider_quota".into(),
            status: if fail { Status::Fail } else { Status::Pass },
            detail: "AssumeRole at 112% of quota".into(),
            ..VerdictRow::default()
        });
        LadderRun {
            load,
            seed,
            run: Ok(r),
        }
    }

    #[test]
    fn the_ladder_has_its_knee_and_first_break() {
        let runs = vec![
            run(2.0, 1, 200, 190, false),
            run(1.0, 1, 100, 100, false),
            run(4.0, 1, 400, 200, true),
            LadderRun {
                load: 4.0,
                seed: 2,
                run: Err("timed out".into()),
            },
        ];
        let c = capacity("s", "s.yaml", &runs);
        assert_eq!(c.points.len(), 3);
        assert_eq!(c.points[0].load, 1.0);
        assert!((c.points[2].offered_per_s - 40.0).abs() < 1e-9);
        assert_eq!(c.points[2].errors, vec!["seed 2: timed out"]);
        assert_eq!(c.knee.as_ref().map(|k| k.load), Some(4.0));
        assert_eq!(c.first_breaks[0].load, 4.0);
        assert!(
            c.headline
                .starts_with("at 4×, `provider_quota` breaks first: AssumeRole"),
            "{}",
            c.headline
        );
        let json = serde_json::to_value(&c).unwrap();
        for k in [
            "load",
            "offered_per_s",
            "goodput_per_s",
            "p50_ms",
            "p99_ms",
            "p999_ms",
            "verdicts",
        ] {
            assert!(json["points"][0].get(k).is_some(), "{k}");
        }
    }
}
