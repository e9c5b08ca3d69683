//! `littles_law`: the harness's own meters agree: |L − λW| / L ≤ 5 % over long windows.
//!
//! Checks the replay client's meter (`stampede::meter` `traffic`, every 1 s: `in_flight`, the
//! queries submitted and not yet ended at the client) against the client's own events
//! (`stampede::traffic`), over the span from the first `submitted` to the last end:
//!
//! - a seq starts at its first `submitted` and ends as [`super::clients::client_queries`] reads
//!   it: at its `answered` or `unanswered`, or at its final `refused` (a refusal followed by a
//!   resubmission does not end it: the query is still the user's, waiting);
//! - the span is `[t0, t1]`: `t0` the first `submitted`, `t1` the last end; if some seqs never
//!   end, `t1` is the log's last event, and those seqs are counted as in flight up to it;
//! - L: the time-average over the span of the meter's `in_flight`, each sample held until the
//!   next (the last sample at or before `t0` holds from `t0`; 0 if there is none);
//! - λ: the distinct seqs first submitted in the span, over its length;
//! - W: the mean time from a seq's first `submitted` to its end (or to `t1`).
//!
//! λW is then the exact time-average of the queries in flight by the events; the run passes
//! when `|L − λW| / L ≤ max_error`. A meter that leaks (counts a query in flight after it
//! ended) or drops queries fails. The witness names L, λ, W, λW and the error, and shows the
//! first meter samples whose `in_flight` differs from the count of seqs in flight at that
//! instant (either side of the events at the same microsecond).
//!
//! Unknown: no `submitted`, no meter sample, or a span shorter than `min_span` (the law holds
//! over long windows; a short run's edges and 1 s sampling dominate). Does not check: the
//! meter's `submitted`, `ended` and `failed` (reported in the counts, not judged), or events of
//! seqs never submitted.

use std::collections::BTreeMap;

use serde_json::json;

use super::clients::client_queries;
use super::obj;
use super::time::{log_end, micros, secs};
use super::vocabulary::METER_TARGET;
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};
use crate::span::Span;

/// Parameters of `littles_law`, from the scenario (`invariants: [{littles_law: {...}}]`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// The largest relative error `|L − λW| / L` allowed. Default 0.05.
    pub max_error: f64,
    /// The shortest span from the first submission to the last end that is judged; shorter
    /// runs answer unknown. Default `10m`.
    pub min_span: Span,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            max_error: 0.05,
            min_span: Span(std::time::Duration::from_secs(10 * 60)),
        }
    }
}

/// One seq at the client: when it was first submitted, and when it ended.
#[derive(Debug, Clone, Copy)]
struct Seq {
    first: u64,
    end: Option<u64>,
}

/// The seqs of the client's events, and the span they cover.
struct Traffic {
    seqs: BTreeMap<u64, Seq>,
    t0: u64,
    t1: u64,
    ended: u64,
}

impl Traffic {
    fn read(log: &EventLog) -> Option<Self> {
        // Seqs never submitted are not the client's queries.
        let seqs: BTreeMap<u64, Seq> = client_queries(log)
            .into_iter()
            .filter_map(|(n, q)| {
                let first = q.submitted_us?;
                Some((
                    n,
                    Seq {
                        first,
                        end: q.end.map(|e| e.t_us),
                    },
                ))
            })
            .collect();
        let t0 = seqs.values().map(|s| s.first).min()?;
        let ended = seqs.values().filter(|s| s.end.is_some()).count() as u64;
        let t1 = if ended == seqs.len() as u64 {
            seqs.values().filter_map(|s| s.end).max().unwrap_or(t0)
        } else {
            log_end(log)
        }
        .max(t0);
        Some(Self {
            seqs,
            t0,
            t1,
            ended,
        })
    }

    fn span(&self) -> u64 {
        self.t1 - self.t0
    }
}

/// Checks the meter's `in_flight` against the client's events by Little's law.
pub fn littles_law(log: &EventLog, p: &Params) -> Verdict {
    let Some(tr) = Traffic::read(log) else {
        return Verdict::Unknown {
            why: "no query was submitted".into(),
        };
    };
    let mut samples: Vec<(u64, u64, &Event)> = log
        .of(METER_TARGET)
        .filter(|e| e.name == "traffic")
        .filter_map(|e| Some((e.t_us, e.u64("in_flight")?, e)))
        .collect();
    if samples.is_empty() {
        return Verdict::Unknown {
            why: "the client's traffic meter reported no in_flight sample".into(),
        };
    }
    samples.sort_by_key(|s| s.0);
    let (t0, t1, span) = (tr.t0, tr.t1, tr.span());
    let min_span = micros(p.min_span);
    if span == 0 || span < min_span {
        return Verdict::Unknown {
            why: format!(
                "the traffic spans {} (from {} to {}), less than {}: Little's law is judged over long windows",
                secs(span),
                secs(t0),
                secs(t1),
                secs(min_span)
            ),
        };
    }

    // L: the meter's in_flight, held from each sample to the next, over [t0, t1].
    let first_in = samples.partition_point(|s| s.0 <= t0);
    let mut held = if first_in > 0 {
        samples[first_in - 1].1
    } else {
        0
    };
    let (mut area, mut prev) = (0u128, t0);
    for &(t, v, _) in samples[first_in..].iter().take_while(|s| s.0 < t1) {
        area += u128::from(held) * u128::from(t - prev);
        (held, prev) = (v, t);
    }
    area += u128::from(held) * u128::from(t1 - prev);
    let big_l = area as f64 / span as f64;

    // λ and W from the events; seqs that never ended count up to t1.
    let n = tr.seqs.len() as u64;
    let sojourn: u128 = tr
        .seqs
        .values()
        .map(|s| u128::from(s.end.unwrap_or(t1).min(t1) - s.first))
        .sum();
    let lambda_per_s = n as f64 / (span as f64 / 1e6);
    let w_s = sojourn as f64 / n as f64 / 1e6;
    let lambda_w = sojourn as f64 / span as f64;
    let error = if big_l > 0.0 {
        (big_l - lambda_w).abs() / big_l
    } else if lambda_w > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };

    // Meter samples in the span that no ordering of simultaneous events explains.
    let mut starts: Vec<u64> = tr.seqs.values().map(|s| s.first).collect();
    let mut ends: Vec<u64> = tr.seqs.values().filter_map(|s| s.end).collect();
    starts.sort_unstable();
    ends.sort_unstable();
    let below = |v: &[u64], t: u64| v.partition_point(|&x| x < t) as i64;
    let upto = |v: &[u64], t: u64| v.partition_point(|&x| x <= t) as i64;
    let disagreeing: Vec<&Event> = samples
        .iter()
        .filter(|s| (t0..=t1).contains(&s.0))
        .filter(|&&(t, v, _)| {
            let lo = below(&starts, t) - upto(&ends, t);
            let hi = upto(&starts, t) - below(&ends, t);
            !(lo..=hi).contains(&(v as i64))
        })
        .map(|s| s.2)
        .collect();

    let last = samples[samples.len() - 1].2;
    let c = obj(json!({
        "l": big_l, "lambda_per_s": lambda_per_s, "w_s": w_s, "lambda_w": lambda_w,
        "error": error, "max_error": p.max_error,
        "span_us": span, "t0_us": t0, "t1_us": t1,
        "seqs": n, "ended": tr.ended, "unended": n - tr.ended,
        "samples": samples.len(), "disagreeing_samples": disagreeing.len(),
        "meter_submitted": last.u64("submitted"), "meter_ended": last.u64("ended"),
    }));
    if error <= p.max_error + 1e-12 {
        return Verdict::Pass { counts: c };
    }
    let unended = if tr.ended < n {
        format!(
            "; {} seqs never ended and count up to the log's end",
            n - tr.ended
        )
    } else {
        String::new()
    };
    Verdict::Fail {
        witness: Witness {
            summary: format!(
                "over [{}, {}] the meter's average in_flight L = {big_l:.2} but λW = {lambda_per_s:.3}/s × {w_s:.3}s = {lambda_w:.2}: error {:.1} %, over {:.1} % ({} of {} meter samples disagree with the events){unended}",
                secs(t0),
                secs(t1),
                100.0 * error,
                100.0 * p.max_error,
                disagreeing.len(),
                samples.len()
            ),
            counts: c,
            events: disagreeing
                .into_iter()
                .take(WITNESS_EVENTS)
                .cloned()
                .collect(),
        },
    }
}

/// Whether the traffic ran for at least `min_span` and at least one query ended: the state in
/// which the meters can be compared at all.
pub fn sometimes(log: &EventLog, p: &Params) -> (bool, &'static str) {
    let min_span = micros(p.min_span);
    let reached = Traffic::read(log).is_some_and(|tr| tr.ended > 0 && tr.span() >= min_span);
    (
        reached,
        "the traffic ran for at least min_span and a query ended",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::test_support::ev;
    use crate::judge::invariants::vocabulary::TRAFFIC_TARGET;

    const S: u64 = 1_000_000;

    fn traffic(t_us: u64, name: &str, seq: u64, status: Option<u64>) -> Event {
        let mut fields = vec![("seq", json!(seq))];
        if let Some(s) = status {
            fields.push(("status", json!(s)));
        }
        ev(t_us, "traffic", TRAFFIC_TARGET, name, &fields)
    }

    fn meter(t_us: u64, in_flight: u64) -> Event {
        ev(
            t_us,
            "traffic",
            METER_TARGET,
            "traffic",
            &[
                ("in_flight", json!(in_flight)),
                ("submitted", json!(0)),
                ("ended", json!(0)),
                ("failed", json!(0)),
            ],
        )
    }

    /// A run of `secs_long` seconds: a query every 0.7 s, each in flight 2.3 to 5.1 s; every
    /// 7th is refused once (429) and resubmitted, every 11th refused for good (503), every
    /// 13th unanswered; the meter samples every 1 s with `meter_at(t, exact in_flight, ended
    /// so far)`.
    fn run(secs_long: u64, meter_at: impl Fn(u64, u64, u64) -> u64) -> EventLog {
        let mut events = Vec::new();
        let mut spans = Vec::new();
        let mut k = 0u64;
        while k * 700_000 < secs_long * S {
            let start = k * 700_000 + 3_000;
            let end = start + 2_300_000 + (k * 400_000) % 2_800_000;
            events.push(traffic(start, "submitted", k, None));
            if k.is_multiple_of(7) {
                events.push(traffic(start + 100_000, "refused", k, Some(429)));
            }
            if k.is_multiple_of(11) {
                events.push(traffic(end, "refused", k, Some(503)));
            } else if k.is_multiple_of(13) {
                events.push(traffic(end, "unanswered", k, None));
            } else {
                events.push(traffic(end, "answered", k, Some(200)));
            }
            spans.push((start, end));
            k += 1;
        }
        let last_end = spans.iter().map(|s| s.1).max().unwrap_or(0);
        for s in 1..=last_end / S + 1 {
            let t = s * S;
            let exact = spans.iter().filter(|&&(a, b)| a <= t && t < b).count() as u64;
            let ended = spans.iter().filter(|&&(_, b)| b <= t).count() as u64;
            events.push(meter(t, meter_at(t, exact, ended)));
        }
        events.sort_by_key(|e| e.t_us);
        EventLog::from_events(events)
    }

    #[test]
    fn a_meter_consistent_with_the_events_passes() {
        let log = run(15 * 60, |_, exact, _| exact);
        let Verdict::Pass { counts } = littles_law(&log, &Params::default()) else {
            panic!("must pass: {:?}", littles_law(&log, &Params::default()))
        };
        assert_eq!(counts["disagreeing_samples"], json!(0));
        assert_eq!(counts["unended"], json!(0));
        assert!(counts["error"].as_f64().unwrap() < 0.01, "{counts:?}");
        let l = counts["l"].as_f64().unwrap();
        // 3.5 s in flight on average, one query per 0.7 s: L ≈ 5.
        assert!((4.9..5.1).contains(&l), "{l}");
        assert_eq!(
            sometimes(&log, &Params::default()),
            (
                true,
                "the traffic ran for at least min_span and a query ended"
            )
        );
    }

    #[test]
    fn a_leaking_meter_fails_with_l_lambda_and_w() {
        // One in ten ended queries stays counted in flight.
        let log = run(15 * 60, |_, exact, ended| exact + ended / 10);
        let Verdict::Fail { witness } = littles_law(&log, &Params::default()) else {
            panic!("must fail")
        };
        assert!(
            witness.summary.contains("L = ") && witness.summary.contains("λW = "),
            "{}",
            witness.summary
        );
        assert!(witness.counts["error"].as_f64().unwrap() > 0.5);
        // The first samples that disagree are the first after 10 queries ended.
        assert_eq!(witness.events.len(), WITNESS_EVENTS);
        let first = &witness.events[0];
        assert_eq!(first.target, METER_TARGET);
        assert!(first.t_us > 5 * S && first.t_us < 15 * S, "{first}");
    }

    #[test]
    fn queries_that_never_end_count_up_to_the_log_end() {
        // Another seq is submitted at 100 s and never ends; the meter counts it until the log ends
        // at 1000 s, with the run's last meter sample.
        let mut events =
            run(15 * 60, |t, exact, _| exact + u64::from(t > 100 * S)).events()[..].to_vec();
        events.push(traffic(100 * S, "submitted", 1_000_000, None));
        events.push(meter(1000 * S, 1));
        events.sort_by_key(|e| e.t_us);
        let log = EventLog::from_events(events);
        let Verdict::Pass { counts } = littles_law(&log, &Params::default()) else {
            panic!("must pass: {:?}", littles_law(&log, &Params::default()))
        };
        assert_eq!(counts["unended"], json!(1));
        assert_eq!(counts["t1_us"], json!(1000 * S));
        // A meter that forgets it fails: 1 of about 5 in flight for 900 s.
        let log = run(15 * 60, |_, exact, _| exact);
        let mut events = log.events().to_vec();
        events.push(traffic(100 * S, "submitted", 1_000_000, None));
        events.push(meter(1000 * S, 0));
        events.sort_by_key(|e| e.t_us);
        let v = littles_law(&EventLog::from_events(events), &Params::default());
        let Verdict::Fail { witness } = v else {
            panic!("must fail: {v:?}")
        };
        assert!(
            witness
                .summary
                .ends_with("1 seqs never ended and count up to the log's end"),
            "{}",
            witness.summary
        );
    }

    #[test]
    fn a_short_run_is_unknown() {
        let log = run(5 * 60, |_, exact, _| exact);
        let Verdict::Unknown { why } = littles_law(&log, &Params::default()) else {
            panic!("must be unknown")
        };
        assert!(why.contains("less than 600.000s"), "{why}");
        assert!(!sometimes(&log, &Params::default()).0);
        let p = Params {
            min_span: Span(std::time::Duration::from_secs(60)),
            ..Params::default()
        };
        assert_eq!(littles_law(&log, &p).word(), "pass");
        assert!(sometimes(&log, &p).0);
        // Without a meter, or without traffic, nothing can be compared.
        let no_meter: Vec<Event> = log
            .events()
            .iter()
            .filter(|e| e.target != METER_TARGET)
            .cloned()
            .collect();
        assert_eq!(
            littles_law(&EventLog::from_events(no_meter), &p).word(),
            "unknown"
        );
        assert_eq!(littles_law(&EventLog::default(), &p).word(), "unknown");
        assert!(!sometimes(&EventLog::default(), &p).0);
    }

    #[test]
    fn refusals_end_a_seq_only_when_final() {
        let log = EventLog::from_events(vec![
            traffic(0, "submitted", 1, None),
            traffic(S, "refused", 1, Some(429)),
            traffic(2 * S, "submitted", 1, None),
            traffic(5 * S, "refused", 1, Some(503)),
            traffic(S, "submitted", 2, None),
            traffic(2 * S, "refused", 2, Some(429)),
            traffic(4 * S, "answered", 2, Some(200)),
            traffic(9 * S, "answered", 3, Some(200)),
        ]);
        let tr = Traffic::read(&log).unwrap();
        assert_eq!(tr.seqs.len(), 2);
        assert_eq!(tr.seqs[&1].end, Some(5 * S));
        assert_eq!(tr.seqs[&2].end, Some(4 * S));
        assert_eq!((tr.t0, tr.t1, tr.ended), (0, 5 * S, 2));
    }
}
