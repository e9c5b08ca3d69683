//! `tenant_fairness`: tenants with demand get their fair share of goodput, window by window:
//! Jain's index over them is at least 0.9 in every judged window.
//!
//! Reads the replay client's view (`stampede::traffic`, per `seq`). A query's arrival is its
//! first `submitted` (with its `tenant`); it is demand unless it was refused for good with a
//! status other than 429 or 503 (invalid SQL is not unserved demand); it is goodput when it
//! ends `answered` 200. A tenant whose queries were all shed still has demand. Arrivals are
//! bucketed into consecutive windows of `window` from the first arrival, so a heavy tenant's
//! overload is judged where it happens and not diluted by quiet periods. A window is judged
//! once one more window has passed by the log's end (time for its queries to end), when at
//! least 2 tenants had demand in it and some query of it was served.
//!
//! In a judged window with goodput G and demands d_t, each tenant's fair share f_t is its
//! max-min fair share of G (water-filling: no tenant gets more than its demand, and what a
//! tenant does not need is split evenly among the others), and `x_t = goodput_t / f_t`. This
//! is the catalogue's `x = goodput / min(demand, fair share)` with the fair share of a tenant
//! that asks for little handed to those that ask for more: with an even split of G, a heavy
//! tenant that rightly uses what light tenants leave would count as unfair. Jain's index
//! `J = (Σ x)² / (n · Σ x²)` must be at least `min_index`.
//!
//! Unknown when no window is judged. Does not check: latency by tenant, nor windows without
//! goodput (nobody was served, so nothing was shared unfairly).

use std::collections::BTreeMap;

use serde_json::json;

use super::clients::{client_queries, closed_windows};
use super::obj;
use super::time::{log_end, micros, secs};
use super::vocabulary::TRAFFIC_TARGET;
use super::{Verdict, Witness};
use crate::events::{Event, EventLog};
use crate::span::Span;

/// The lowest Jain's index allowed.
pub const MIN_JAIN_INDEX: f64 = 0.9;

/// Parameters of `tenant_fairness`, from the scenario.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// The least Jain's index. Default: 0.9.
    pub min_index: f64,
    /// The windows demand and goodput are counted in. Default: `60s`.
    pub window: Span,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            min_index: MIN_JAIN_INDEX,
            window: Span(std::time::Duration::from_secs(60)),
        }
    }
}

/// Per tenant: demand, goodput.
type Tally<'a> = BTreeMap<&'a str, (u64, u64)>;

/// Each query's arrival, tenant and whether it was served; invalid ones left out.
fn queries(log: &EventLog) -> Vec<(u64, &str, bool)> {
    client_queries(log)
        .values()
        .filter(|q| !q.refused_as_invalid())
        .filter_map(|q| {
            let first = q.first?;
            Some((first.t_us, first.str("tenant")?, q.served()))
        })
        .collect()
}

/// The max-min fair split of `total` over `demands`, in their order.
fn water_fill(total: f64, demands: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..demands.len()).collect();
    order.sort_by(|&a, &b| demands[a].total_cmp(&demands[b]));
    let mut share = vec![0.0; demands.len()];
    let mut left = total;
    for (k, &i) in order.iter().enumerate() {
        let even = left / (order.len() - k) as f64;
        share[i] = demands[i].min(even);
        left -= share[i];
    }
    share
}

/// Jain's index of a tally: (index, x per tenant).
fn jain(tally: &Tally<'_>) -> (f64, Vec<f64>) {
    let demands: Vec<f64> = tally.values().map(|(d, _)| *d as f64).collect();
    let total: f64 = tally.values().map(|(_, g)| *g as f64).sum();
    let fair = water_fill(total, &demands);
    let xs: Vec<f64> = tally
        .values()
        .zip(&fair)
        .map(|((_, g), f)| if *f > 0.0 { *g as f64 / f } else { 0.0 })
        .collect();
    let n = xs.len() as f64;
    let sum: f64 = xs.iter().sum();
    let sq: f64 = xs.iter().map(|x| x * x).sum();
    let index = if sq == 0.0 { 1.0 } else { sum * sum / (n * sq) };
    (index, xs)
}

/// The judged windows: (start, tally), or why there are none.
fn windows<'a>(log: &'a EventLog, p: &Params) -> Result<Vec<(u64, Tally<'a>)>, String> {
    let w = micros(p.window);
    if w == 0 {
        return Err("the window is empty".into());
    }
    let qs = queries(log);
    if qs.is_empty() {
        return Err("no query was submitted".into());
    }
    let arrivals = qs
        .into_iter()
        .map(|(t, tenant, served)| (t, (tenant, served)));
    let judged: Vec<(u64, Tally<'_>)> = closed_windows(arrivals.collect(), w, log_end(log))
        .into_iter()
        .map(|(start, queries)| {
            let mut tally = Tally::new();
            for (tenant, served) in queries {
                let e = tally.entry(tenant).or_default();
                e.0 += 1;
                e.1 += u64::from(served);
            }
            (start, tally)
        })
        .filter(|(_, tally)| tally.len() >= 2 && tally.values().any(|(_, g)| *g > 0))
        .collect();
    if judged.is_empty() {
        return Err(format!(
            "no window of {} had two tenants with demand and some goodput, a window before the log's end",
            secs(w)
        ));
    }
    Ok(judged)
}

/// Checks Jain's index over the tenants with demand, window by window.
pub fn tenant_fairness(log: &EventLog, p: &Params) -> Verdict {
    let judged = match windows(log, p) {
        Ok(j) => j,
        Err(why) => return Verdict::Unknown { why },
    };
    let scored: Vec<(u64, &Tally<'_>, f64, Vec<f64>)> = judged
        .iter()
        .map(|(t, tally)| {
            let (j, xs) = jain(tally);
            (*t, tally, j, xs)
        })
        .collect();
    let (worst_t, worst, worst_j, xs) = scored
        .iter()
        .min_by(|a, b| a.2.total_cmp(&b.2))
        .expect("judged is not empty");
    let unfair = scored.iter().filter(|s| s.2 < p.min_index - 1e-12).count();
    let tenants: serde_json::Map<String, serde_json::Value> = worst
        .iter()
        .zip(xs)
        .map(|((t, (d, g)), x)| {
            (
                t.to_string(),
                json!({ "demand": d, "goodput": g, "x": (x * 1000.0).round() / 1000.0 }),
            )
        })
        .collect();
    let counts = obj(json!({
        "windows": scored.len(), "unfair_windows": unfair,
        "worst_window_start_us": worst_t, "worst_index": (worst_j * 1000.0).round() / 1000.0,
        "worst_window_tenants": tenants,
    }));
    if unfair == 0 {
        return Verdict::Pass { counts };
    }
    let shares: Vec<String> = worst
        .iter()
        .map(|(t, (d, g))| format!("{t} {g}/{d}"))
        .collect();
    // The witness: the worst window's arrivals of the tenants served least, at most a few.
    let w = micros(p.window);
    let least = worst
        .iter()
        .zip(xs)
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map(|((t, _), _)| *t);
    let mut events: Vec<Event> = log
        .of(TRAFFIC_TARGET)
        .filter(|e| {
            e.t_us >= *worst_t
                && e.t_us < worst_t + w
                && e.name == "submitted"
                && e.str("tenant") == least
        })
        .take(super::WITNESS_EVENTS)
        .cloned()
        .collect();
    events.sort_by_key(|e| e.t_us);
    Verdict::Fail {
        witness: Witness {
            summary: format!(
                "{unfair} of {} windows were unfair; the worst, from t={}, had Jain's index {:.3} < {} (served/demand: {})",
                scored.len(),
                secs(*worst_t),
                worst_j,
                p.min_index,
                shares.join(", ")
            ),
            counts,
            events,
        },
    }
}

/// The sometimes state: in a judged window some tenant with demand was not fully served, so
/// goodput had to be shared.
pub fn sometimes(log: &EventLog, p: &Params) -> (bool, &'static str) {
    let reached =
        windows(log, p).is_ok_and(|j| j.iter().any(|(_, t)| t.values().any(|(d, g)| g < d)));
    (
        reached,
        "two or more tenants had demand in a window that left some of it unserved",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::test_support::{answered, ev, submitted_with};

    const S: u64 = 1_000_000;

    /// A tenant's traffic: name, queries a minute, which of them are served (k → bool).
    type Tenant<'a> = (&'a str, u64, &'a dyn Fn(u64) -> bool);

    /// Each tenant's traffic for `minutes`.
    fn run(minutes: u64, tenants: &[Tenant<'_>]) -> EventLog {
        let mut events = Vec::new();
        let mut seq = 0;
        for (tenant, per_min, served) in tenants {
            for k in 0..per_min * minutes {
                let t = k * 60 * S / per_min + 1;
                events.push(submitted_with(t, seq, &[("tenant", json!(tenant))]));
                events.push(answered(t + S, seq, if served(k) { 200 } else { 504 }));
                seq += 1;
            }
        }
        events.push(ev(0, "h", "stampede::other", "tick", &[]));
        events.push(ev(
            (minutes + 1) * 60 * S,
            "h",
            "stampede::other",
            "tick",
            &[],
        ));
        events.sort_by_key(|e| e.t_us);
        EventLog::from_events(events)
    }

    #[test]
    fn water_filling_gives_light_tenants_their_demand() {
        assert_eq!(
            water_fill(12.0, &[2.0, 20.0, 2.0, 2.0]),
            [2.0, 6.0, 2.0, 2.0]
        );
        assert_eq!(
            water_fill(4.0, &[2.0, 20.0, 2.0, 2.0]),
            [1.0, 1.0, 1.0, 1.0]
        );
        assert_eq!(water_fill(0.0, &[1.0, 1.0]), [0.0, 0.0]);
    }

    #[test]
    fn light_tenants_served_and_the_heavy_one_the_rest_passes() {
        // A heavy tenant at 20 a minute, three light ones at 2; 12 a minute served: all the
        // light tenants' and 6 of the heavy one's.
        let log = run(
            3,
            &[
                ("heavy", 20, &|k| k % 20 < 6),
                ("a", 2, &|_| true),
                ("b", 2, &|_| true),
                ("c", 2, &|_| true),
            ],
        );
        let Verdict::Pass { counts } = tenant_fairness(&log, &Params::default()) else {
            panic!("max-min fair")
        };
        assert_eq!(
            counts["windows"], 2,
            "the last minute has no minute after it"
        );
        assert_eq!(counts["worst_index"], 1.0);
        assert!(sometimes(&log, &Params::default()).0);
    }

    #[test]
    fn goodput_shared_by_demand_fails() {
        // The same 12 a minute, shared in proportion to demand as a system without fair share
        // would: the heavy tenant gets 10 of 26 arrivals' worth... here 9, the light ones 1.
        let log = run(
            3,
            &[
                ("heavy", 20, &|k| k % 20 < 9),
                ("a", 2, &|k| k % 2 == 0),
                ("b", 2, &|k| k % 2 == 0),
                ("c", 2, &|k| k % 2 == 0),
            ],
        );
        let Verdict::Fail { witness } = tenant_fairness(&log, &Params::default()) else {
            panic!("the light tenants got half their demand")
        };
        assert!(
            witness.summary.contains("heavy 9/20"),
            "{}",
            witness.summary
        );
        assert_eq!(witness.counts["unfair_windows"], 2);
        assert!(witness.events.iter().all(|e| e.str("tenant") == Some("a")));
    }

    #[test]
    fn unfairness_in_one_window_is_not_diluted_by_quiet_ones() {
        // Minute 0 unfair (light tenants starved), minutes 1 to 8 every query served.
        let log = run(
            9,
            &[
                ("heavy", 20, &|_| true),
                ("a", 2, &|k| k >= 2),
                ("b", 2, &|k| k >= 2),
            ],
        );
        let v = tenant_fairness(&log, &Params::default());
        let Verdict::Fail { witness } = v else {
            panic!("minute 0 served only the heavy tenant")
        };
        assert_eq!(witness.counts["unfair_windows"], 1);
        assert_eq!(witness.counts["worst_window_start_us"], 1);
    }

    /// Per tenant and minute: (arrivals, served); arrivals spread over the minute from
    /// `from_s`; the log ends at `end_s`.
    fn minutes(from_s: u64, end_s: u64, plan: &[(&str, &[(u64, u64)])]) -> EventLog {
        let mut events = Vec::new();
        let mut seq = 0;
        for (tenant, per_minute) in plan {
            for (m, &(n, served)) in per_minute.iter().enumerate() {
                for k in 0..n {
                    let t = from_s * S + m as u64 * 60 * S + k * 60 * S / n;
                    events.push(submitted_with(t, seq, &[("tenant", json!(tenant))]));
                    events.push(answered(t + S, seq, if k < served { 200 } else { 504 }));
                    seq += 1;
                }
            }
        }
        events.push(ev(end_s * S, "h", "stampede::other", "tick", &[]));
        events.sort_by_key(|e| e.t_us);
        EventLog::from_events(events)
    }

    #[test]
    fn windows_start_at_the_first_arrival_and_the_witness_stays_in_the_worst() {
        // From 30 s: minute 0 fair, minute 1 unfair to tenant a, minute 2 fair; tenant a also
        // arrives exactly at the end of minute 1 (the start of minute 2).
        let log = minutes(
            30,
            30 + 4 * 60,
            &[
                ("heavy", &[(10, 10), (10, 10), (10, 10)]),
                ("a", &[(4, 4), (4, 0), (4, 4)]),
            ],
        );
        let Verdict::Fail { witness } = tenant_fairness(&log, &Params::default()) else {
            panic!("minute 1 served only the heavy tenant")
        };
        assert_eq!(
            witness.counts["windows"], 3,
            "the log ends two minutes after the third"
        );
        assert_eq!(witness.counts["worst_window_start_us"], 90 * S);
        assert!(!witness.events.is_empty());
        for e in &witness.events {
            assert_eq!(e.name, "submitted");
            assert_eq!(e.str("tenant"), Some("a"));
            assert!((90 * S..150 * S).contains(&e.t_us), "{e:?}");
        }
        // One second less of log: the third minute is not judged.
        let log = minutes(
            30,
            30 + 4 * 60 - 1,
            &[
                ("heavy", &[(10, 10), (10, 10), (10, 10)]),
                ("a", &[(4, 4), (4, 0), (4, 4)]),
            ],
        );
        let Verdict::Fail { witness } = tenant_fairness(&log, &Params::default()) else {
            panic!("still unfair")
        };
        assert_eq!(witness.counts["windows"], 2);
        // One minute, and a log that ends before a second has passed: nothing judged yet.
        let log = minutes(
            30,
            30 + 2 * 60 - 1,
            &[("heavy", &[(10, 10)]), ("a", &[(4, 0)])],
        );
        assert_eq!(tenant_fairness(&log, &Params::default()).word(), "unknown");
    }

    #[test]
    fn each_tenants_share_and_an_index_of_exactly_the_bound() {
        // Equal demand of 10, served 6 and 3: fair shares 4.5 each, x = 4/3 and 2/3, and
        // Jain's index (2)² / (2 · 20/9) = 0.9 exactly: not under the bound.
        let log = minutes(0, 180, &[("a", &[(10, 6)]), ("b", &[(10, 3)])]);
        let Verdict::Pass { counts } = tenant_fairness(&log, &Params::default()) else {
            panic!("an index of 0.9 is the bound")
        };
        assert_eq!(counts["worst_index"], 0.9);
        assert_eq!(counts["worst_window_tenants"]["a"]["x"], 1.333);
        assert_eq!(counts["worst_window_tenants"]["b"]["x"], 0.667);
        assert!(sometimes(&log, &Params::default()).0);
        // Every query served: nothing had to be shared.
        let all = minutes(0, 180, &[("a", &[(10, 10)]), ("b", &[(10, 10)])]);
        assert!(!sometimes(&all, &Params::default()).0);
    }

    #[test]
    fn one_tenant_or_no_goodput_is_unknown() {
        let log = run(3, &[("a", 2, &|_| true)]);
        assert_eq!(tenant_fairness(&log, &Params::default()).word(), "unknown");
        let log = run(3, &[("a", 2, &|_| false), ("b", 2, &|_| false)]);
        assert_eq!(tenant_fairness(&log, &Params::default()).word(), "unknown");
        assert!(!sometimes(&log, &Params::default()).0);
    }
}
