//! `retries_off_peak`: retries do not add to a peak, and retry delays are spread: clients that
//! fail together do not come back together.
//!
//! Checks two clauses.
//!
//! (a) Peak buckets: the system's provider `call`s (non-empty `op`) per (`region`, `account`,
//! `api`), in buckets `[k · bucket, (k + 1) · bucket)` of their start (`t_us − latency_us`).
//! The provider's quotas are per (account, api) in each region, and the system calls as many
//! accounts (its own, and each lake's), so capacity is per account: a bucket is at peak when
//! one account's calls of the api, every attempt counted, reach `peak_share` × that account's
//! capacity in one bucket (`quotas[api]` per second × the bucket's length). In a bucket at
//! peak, the retries (calls with `attempt` > 1) are at most `max_retry_share` of its calls.
//! Apis without a quota and buckets of fewer than `min_calls` calls are not judged; many
//! accounts each below their quota are no peak, however many calls they make together.
//!
//! (b) Spread delays, as the provider saw them: for each of the system's operations (`op`),
//! an attempt n that failed (any outcome but `ok`) and its next attempt n + 1 give the delay
//! from the provider's answer to attempt n (its event's time) to the arrival of attempt n + 1
//! (its start). Delays are grouped by n over the whole run and every api (the system has one
//! backoff policy); for each n with at least `min_delays` delays, the coefficient of variation
//! (population standard deviation / mean) is at least `min_cv` (full jitter gives
//! 1/√3 ≈ 0.58, a fixed pause 0). Delays that are all 0 count as not spread. A delay holds the
//! answer's trip back and the retry's trip out (1 to 40 ms on the default network) and any
//! wait at the client's own rate limiter, which spreads retries too: measured in
//! `mechanisms/retry-jitter`'s naive twin with its limiter on, a fixed 100 ms backoff reached
//! the provider from 160 ms to 16.6 s after the failure (coefficient of variation 1.78), so
//! that pair runs without it. Not judged: an attempt that began before the answer to the one
//! before it (the client timed out and did not wait for it), and a failure that carried a
//! `retry_after_us` (a delay the server dictated).
//!
//! Fails on clause (a) first, with its worst bucket (highest retry share, the earliest of
//! equals), else on clause (b) with its attempt number of the lowest spread. Unknown: no bucket
//! at peak and no attempt number with enough delays. Does not check: the quota's burst (a
//! bucket is judged against the sustained rate only); load the region's fleet shares across
//! accounts (`collateral_damage`, `never_frozen`); delays within one burst of failures apart
//! from the rest of the run; delays after `Retry-After`.

use std::collections::BTreeMap;

use serde_json::json;

use super::calls::{is_system_call, started};
use super::obj;
use super::time::{micros, secs};
use super::vocabulary::PROVIDER_TARGET;
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};
use crate::span::Span;

/// Parameters of `retries_off_peak`, from the scenario (`invariants: [{retries_off_peak:
/// {...}}]`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// The length of a load bucket. Default `1s`.
    pub bucket: Span,
    /// The share of capacity at which a bucket is at peak. Default 0.9.
    pub peak_share: f64,
    /// The largest share of retries among a peak bucket's calls. Default 0.1.
    pub max_retry_share: f64,
    /// The capacity of one account: the provider's quota per (account, api), by api, in calls
    /// per second (from the scenario's `world.provider.quotas`). Default empty: no bucket is
    /// judged.
    pub quotas: BTreeMap<String, f64>,
    /// The fewest calls in a bucket that is judged. Default 20.
    pub min_calls: u64,
    /// The least coefficient of variation of the delays of one attempt number. Default 0.5.
    pub min_cv: f64,
    /// The fewest delays of one attempt number that are judged. Default 10.
    pub min_delays: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            bucket: Span(std::time::Duration::from_secs(1)),
            peak_share: 0.9,
            max_retry_share: 0.1,
            quotas: BTreeMap::new(),
            min_calls: 20,
            min_cv: 0.5,
            min_delays: 10,
        }
    }
}

/// A bucket's key: (region, account, api, bucket index).
type Key<'a> = (&'a str, &'a str, &'a str, u64);

/// A bucket's calls: all of them and the retries.
#[derive(Default)]
struct Bucket<'a> {
    calls: u64,
    retries: Vec<&'a Event>,
}

/// The buckets at peak with at least `min_calls` calls.
fn peak_buckets<'a>(log: &'a EventLog, p: &Params) -> BTreeMap<Key<'a>, Bucket<'a>> {
    let width = micros(p.bucket).max(1);
    let mut buckets: BTreeMap<Key<'_>, Bucket<'_>> = BTreeMap::new();
    for e in log.of(PROVIDER_TARGET).filter(|e| is_system_call(e)) {
        let api = e.str("api").unwrap_or("");
        if !p.quotas.contains_key(api) {
            continue;
        }
        let region = e.str("region").unwrap_or("");
        let account = e.str("account").unwrap_or("");
        let b = buckets
            .entry((region, account, api, started(e) / width))
            .or_default();
        b.calls += 1;
        if e.u64("attempt").unwrap_or(0) > 1 {
            b.retries.push(e);
        }
    }
    let seconds = width as f64 / 1e6;
    buckets.retain(|(_, _, api, _), b| {
        let capacity = p.quotas[*api] * seconds;
        b.calls >= p.min_calls && b.calls as f64 >= p.peak_share * capacity - 1e-9
    });
    for b in buckets.values_mut() {
        b.retries.sort_by_key(|e| (started(e), e.t_us));
    }
    buckets
}

/// The spread of one attempt number's delays.
struct Spread<'a> {
    attempt: u64,
    count: u64,
    mean_us: f64,
    cv: f64,
    events: Vec<&'a Event>,
}

/// The attempt numbers with at least `min_delays` delays the provider saw, and their spread.
fn spreads<'a>(log: &'a EventLog, p: &Params) -> Vec<Spread<'a>> {
    let mut by_op: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in log.of(PROVIDER_TARGET).filter(|e| is_system_call(e)) {
        by_op.entry(e.str("op").unwrap_or("")).or_default().push(e);
    }
    // Per failed attempt number: (the delay, the next attempt's call).
    let mut by_attempt: BTreeMap<u64, Vec<(u64, &Event)>> = BTreeMap::new();
    for calls in by_op.values_mut() {
        calls.sort_by_key(|e| (e.u64("attempt").unwrap_or(0), e.t_us));
        for pair in calls.windows(2) {
            let (failed, next) = (pair[0], pair[1]);
            let n = failed.u64("attempt").unwrap_or(0);
            if next.u64("attempt") != Some(n + 1)
                || failed.str("outcome") == Some("ok")
                || failed.u64("retry_after_us").unwrap_or(0) > 0
            {
                continue;
            }
            let (answered, began) = (failed.t_us, started(next));
            if began >= answered {
                by_attempt
                    .entry(n)
                    .or_default()
                    .push((began - answered, next));
            }
        }
    }
    by_attempt
        .into_iter()
        .filter(|(_, events)| events.len() as u64 >= p.min_delays)
        .map(|(attempt, mut delays)| {
            delays.sort_by_key(|(_, e)| (started(e), e.t_us));
            let events: Vec<&Event> = delays.iter().map(|(_, e)| *e).collect();
            let delays: Vec<f64> = delays.iter().map(|(d, _)| *d as f64).collect();
            let n = delays.len() as f64;
            let mean = delays.iter().sum::<f64>() / n;
            let var = delays.iter().map(|d| (d - mean) * (d - mean)).sum::<f64>() / n;
            let cv = if mean > 0.0 { var.sqrt() / mean } else { 0.0 };
            Spread {
                attempt,
                count: events.len() as u64,
                mean_us: mean,
                cv,
                events,
            }
        })
        .collect()
}

/// Checks retry shares in peak buckets and the spread of retry delays.
pub fn retries_off_peak(log: &EventLog, p: &Params) -> Verdict {
    let buckets = peak_buckets(log, p);
    let spreads = spreads(log, p);
    if buckets.is_empty() && spreads.is_empty() {
        return Verdict::Unknown {
            why: format!(
                "no bucket of at least {} calls of one account reached {} of an api's quota, and no attempt number had {} retry delays to judge their spread",
                p.min_calls, p.peak_share, p.min_delays
            ),
        };
    }
    let width = micros(p.bucket).max(1);
    let share = |b: &Bucket<'_>| b.retries.len() as f64 / b.calls as f64;
    let over_buckets: Vec<(&Key<'_>, &Bucket<'_>)> = buckets
        .iter()
        .filter(|(_, b)| b.retries.len() as f64 > p.max_retry_share * b.calls as f64 + 1e-9)
        .collect();
    let worst_bucket = over_buckets.iter().copied().reduce(|w, c| {
        let later = (c.0.3, c.0) > (w.0.3, w.0);
        if share(c.1) > share(w.1) || (share(c.1) == share(w.1) && !later) {
            c
        } else {
            w
        }
    });
    let over_spreads: Vec<&Spread<'_>> =
        spreads.iter().filter(|s| s.cv < p.min_cv - 1e-9).collect();
    let worst_spread = over_spreads
        .iter()
        .copied()
        .reduce(|w, c| if c.cv < w.cv { c } else { w });
    let mut counts = obj(json!({
        "peak_buckets": buckets.len(),
        "peak_calls": buckets.values().map(|b| b.calls).sum::<u64>(),
        "peak_retries": buckets.values().map(|b| b.retries.len() as u64).sum::<u64>(),
        "attempt_numbers_judged": spreads.len(),
        "delays_judged": spreads.iter().map(|s| s.count).sum::<u64>(),
        "min_cv": spreads.iter().map(|s| s.cv).reduce(f64::min),
    }));
    if worst_bucket.is_none() && worst_spread.is_none() {
        return Verdict::Pass { counts };
    }
    counts.insert("buckets_over".into(), over_buckets.len().into());
    counts.insert("attempt_numbers_over".into(), over_spreads.len().into());
    if let Some(((region, account, api, k), b)) = worst_bucket {
        let start = k * width;
        counts.insert("clause".into(), "peak".into());
        counts.insert("bucket_start_us".into(), start.into());
        counts.insert("region".into(), (*region).into());
        counts.insert("account".into(), (*account).into());
        counts.insert("api".into(), (*api).into());
        counts.insert("retries".into(), b.retries.len().into());
        counts.insert("attempts".into(), b.calls.into());
        counts.insert("capacity_per_s".into(), p.quotas[*api].into());
        let summary = format!(
            "in the peak bucket [{}, {}) of {api} by account {account} in {region}, {} of {} calls were retries ({:.1} %, quota {} per s), over {:.1} %",
            secs(start),
            secs(start + width),
            b.retries.len(),
            b.calls,
            100.0 * share(b),
            p.quotas[*api],
            100.0 * p.max_retry_share
        );
        return Verdict::Fail {
            witness: Witness {
                summary,
                counts,
                events: b
                    .retries
                    .iter()
                    .take(WITNESS_EVENTS)
                    .map(|e| (*e).clone())
                    .collect(),
            },
        };
    }
    let s = worst_spread.expect("one clause failed");
    counts.insert("clause".into(), "spread".into());
    counts.insert("attempt".into(), s.attempt.into());
    counts.insert("cv".into(), s.cv.into());
    counts.insert("mean_delay_us".into(), s.mean_us.into());
    counts.insert("delays".into(), s.count.into());
    let first = started(s.events[0]);
    let summary = format!(
        "the {} delays after attempt {} (the first retry at {}) have a coefficient of variation of {:.3} around a mean of {}, under {}: retries are not spread",
        s.count,
        s.attempt,
        secs(first),
        s.cv,
        secs(s.mean_us as u64),
        p.min_cv
    );
    Verdict::Fail {
        witness: Witness {
            summary,
            counts,
            events: s
                .events
                .iter()
                .take(WITNESS_EVENTS)
                .map(|e| (*e).clone())
                .collect(),
        },
    }
}

/// Whether a bucket ran at peak or enough retries were delayed to judge their spread.
pub fn sometimes(log: &EventLog, p: &Params) -> (bool, &'static str) {
    let reached = !peak_buckets(log, p).is_empty() || !spreads(log, p).is_empty();
    (
        reached,
        "a bucket ran at peak or enough retries were delayed to judge their spread",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::test_support::ev;

    const SYSTEM: &str = "100000000001";

    fn call(t_us: u64, account: &str, api: &str, op: &str, attempt: u64) -> Event {
        ev(
            t_us,
            "provider-r",
            PROVIDER_TARGET,
            "call",
            &[
                ("account", json!(account)),
                ("region", json!("r")),
                ("service", json!("sts")),
                ("api", json!(api)),
                ("outcome", json!("ok")),
                ("latency_us", json!(1000)),
                ("op", json!(op)),
                ("attempt", json!(attempt)),
            ],
        )
    }

    /// One operation as the provider saw it: attempt `attempt` failed, answered at `t_us`, and
    /// attempt `attempt + 1` arrived `delay_us` later. Of an api without a quota, so that no
    /// peak bucket counts them.
    fn retry(t_us: u64, attempt: u64, delay_us: u64, retry_after_us: u64) -> Vec<Event> {
        let op = format!("worker-r-0#0.{t_us}.{attempt}");
        let mut failed = call(t_us, SYSTEM, "GetObject", &op, attempt);
        failed.fields.insert("outcome".into(), json!("error"));
        if retry_after_us > 0 {
            failed
                .fields
                .insert("retry_after_us".into(), json!(retry_after_us));
        }
        let next = call(
            t_us + delay_us + 1000,
            SYSTEM,
            "GetObject",
            &op,
            attempt + 1,
        );
        vec![failed, next]
    }

    /// `n` calls of `api` by `account` spread over second `s`, the first `retries` of them
    /// retries.
    fn second_of(account: &str, s: u64, api: &str, n: u64, retries: u64) -> Vec<Event> {
        (0..n)
            .map(|k| {
                let attempt = if k < retries { 2 } else { 1 };
                call(
                    s * 1_000_000 + 1000 + k * (900_000 / n),
                    account,
                    api,
                    &format!("w#0.{account}.{s}.{k}"),
                    attempt,
                )
            })
            .collect()
    }

    /// `n` calls of `api` by the system's own account over second `s`, `retries` of them retries.
    fn second(s: u64, api: &str, n: u64, retries: u64) -> Vec<Event> {
        second_of(SYSTEM, s, api, n, retries)
    }

    fn log(mut events: Vec<Event>) -> EventLog {
        events.sort_by_key(|e| e.t_us);
        EventLog::from_events(events)
    }

    fn quotas() -> Params {
        Params {
            quotas: BTreeMap::from([("AssumeRole".to_string(), 50.0)]),
            ..Params::default()
        }
    }

    /// Full-jitter-like delays: spread evenly over [0, 2·base].
    fn jittered(attempt: u64, base: u64, n: u64) -> Vec<Event> {
        (0..n)
            .flat_map(|k| retry(10_000_000 + k, attempt, k * 2 * base / (n - 1), 0))
            .collect()
    }

    #[test]
    fn few_retries_at_peak_and_spread_delays_pass() {
        // 50 calls a second at quota 50: peak; 4 retries (8 %).
        let mut e = second(0, "AssumeRole", 50, 4);
        // Below peak, retries do not matter.
        e.extend(second(1, "AssumeRole", 30, 30));
        // An api without quota is not judged.
        e.extend(second(2, "GetTable", 100, 100));
        e.extend(jittered(1, 100_000, 20));
        e.extend(jittered(2, 200_000, 20));
        // Dictated delays are the server's: not judged.
        e.extend((0..20).flat_map(|k| retry(20_000_000 + k, 1, 1_000_000, 1_000_000)));
        let v = retries_off_peak(&log(e), &quotas());
        let Verdict::Pass { counts } = v else {
            panic!("must pass: {v:?}")
        };
        assert_eq!(counts["peak_buckets"], json!(1));
        assert_eq!(counts["peak_retries"], json!(4));
        assert_eq!(counts["attempt_numbers_judged"], json!(2));
        assert_eq!(counts["delays_judged"], json!(40));
    }

    #[test]
    fn retries_at_peak_fail_with_the_worst_bucket() {
        let mut e = second(0, "AssumeRole", 50, 10);
        e.extend(second(3, "AssumeRole", 46, 23));
        let Verdict::Fail { witness } = retries_off_peak(&log(e), &quotas()) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["clause"], json!("peak"));
        assert_eq!(witness.counts["account"], json!(SYSTEM));
        assert_eq!(witness.counts["bucket_start_us"], json!(3_000_000));
        assert_eq!(witness.counts["retries"], json!(23));
        assert_eq!(witness.counts["attempts"], json!(46));
        assert_eq!(witness.counts["buckets_over"], json!(2));
        assert!(
            witness
                .summary
                .contains("[3.000s, 4.000s) of AssumeRole by account 100000000001 in r"),
            "{}",
            witness.summary
        );
        assert_eq!(witness.events.len(), WITNESS_EVENTS);
        assert!(witness.events.iter().all(|e| e.u64("attempt") == Some(2)));
    }

    #[test]
    fn a_fixed_backoff_fails_on_spread() {
        let mut e = jittered(1, 100_000, 20);
        // Attempt 2 always waits 200 ms, with a little noise.
        e.extend((0..30).flat_map(|k| retry(30_000_000 + k, 2, 200_000 + k % 3, 0)));
        let Verdict::Fail { witness } = retries_off_peak(&log(e), &quotas()) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["clause"], json!("spread"));
        assert_eq!(witness.counts["attempt"], json!(2));
        assert_eq!(witness.counts["delays"], json!(30));
        assert!(witness.counts["cv"].as_f64().unwrap() < 0.01);
        assert!(
            witness.summary.contains("after attempt 2"),
            "{}",
            witness.summary
        );
        // The witness is the retries, as they reached the provider.
        assert_eq!(started(&witness.events[0]), 30_200_000);
        assert!(witness.events.iter().all(|e| e.u64("attempt") == Some(3)));
    }

    #[test]
    fn only_failures_the_client_waited_for_give_delays() {
        // An attempt after an `ok` answer (the client timed out on it) or begun before the
        // answer came gives no delay: 20 of each, and no attempt number is judged.
        let mut e: Vec<Event> = Vec::new();
        for k in 0..20 {
            let mut pair = retry(k * 1000, 1, 100_000, 0);
            pair[0].fields.insert("outcome".into(), json!("ok"));
            e.extend(pair);
            let mut early = retry(50_000_000 + k * 1000, 1, 0, 0);
            early[1].t_us = 50_000_000 + k * 1000 - 1;
            early[1].fields.insert("latency_us".into(), json!(0));
            e.extend(early);
        }
        assert_eq!(retries_off_peak(&log(e), &quotas()).word(), "unknown");
    }

    #[test]
    fn equal_jitter_is_not_spread_enough() {
        // v/2 + U(0, v/2): cv about 0.19.
        let e: Vec<Event> = (0..100)
            .flat_map(|k| retry(k, 1, 50_000 + k * 500, 0))
            .collect();
        assert!(retries_off_peak(&log(e), &quotas()).is_fail());
    }

    #[test]
    fn no_peak_and_few_delays_is_unknown() {
        let mut e = second(0, "AssumeRole", 30, 30);
        // Too few calls to judge even at peak.
        e.extend(second(1, "AssumeRole", 10, 10));
        e.extend((0..9).flat_map(|k| retry(k, 1, 100, 0)));
        let p = Params {
            quotas: BTreeMap::from([("AssumeRole".to_string(), 10.0)]),
            ..Params::default()
        };
        // 30 calls at quota 10 is peak; a quota of 100 is not reached.
        assert!(retries_off_peak(&log(e.clone()), &p).is_fail());
        let p = Params {
            quotas: BTreeMap::from([("AssumeRole".to_string(), 100.0)]),
            ..Params::default()
        };
        let Verdict::Unknown { why } = retries_off_peak(&log(e), &p) else {
            panic!("must be unknown")
        };
        assert!(why.contains("no bucket"), "{why}");
        // Without quotas no bucket is judged at all.
        let e = second(0, "AssumeRole", 50, 50);
        assert_eq!(
            retries_off_peak(&log(e), &Params::default()).word(),
            "unknown"
        );
    }

    #[test]
    fn capacity_is_per_account() {
        // Five lake accounts call GetTable 30 times each in one second against a quota of 50
        // per account: 150 calls together, but no account near its own quota, so no peak,
        // retries or not.
        let lakes: Vec<String> = (1..=5).map(|i| format!("3{i:011}")).collect();
        let mut e: Vec<Event> = lakes
            .iter()
            .flat_map(|a| second_of(a, 0, "GetTable", 30, 30))
            .collect();
        let p = Params {
            quotas: BTreeMap::from([("GetTable".to_string(), 50.0)]),
            ..Params::default()
        };
        let Verdict::Unknown { why } = retries_off_peak(&log(e.clone()), &p) else {
            panic!("must be unknown")
        };
        assert!(why.contains("of one account"), "{why}");
        assert!(!sometimes(&log(e.clone()), &p).0);
        // One of them at its quota with a third retries is a peak, and only its bucket is.
        e.extend(second_of(&lakes[0], 1, "GetTable", 50, 15));
        let Verdict::Fail { witness } = retries_off_peak(&log(e), &p) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["account"], json!(lakes[0]));
        assert_eq!(witness.counts["bucket_start_us"], json!(1_000_000));
        assert_eq!(witness.counts["buckets_over"], json!(1));
        assert_eq!(witness.counts["attempts"], json!(50));
    }

    #[test]
    fn sometimes_needs_a_peak_or_enough_delays() {
        let p = quotas();
        assert!(!sometimes(&log(second(0, "AssumeRole", 30, 0)), &p).0);
        assert!(sometimes(&log(second(0, "AssumeRole", 50, 0)), &p).0);
        let (reached, what) = sometimes(&log(jittered(1, 100, 10)), &p);
        assert!(reached);
        assert!(what.contains("spread"));
    }
}
