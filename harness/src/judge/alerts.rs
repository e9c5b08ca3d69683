//! Alert rules and the engine that evaluates them over the event stream: the monitoring the
//! `alert_fires` invariant judges.
//!
//! A scenario lists its rules under `alerts:`; each watches one [`Signal`] from one
//! [`Source`] over a trailing window and pages when the value goes above a threshold. The
//! source matters because of incident 6 of docs/why.md (a self-inflicted monitoring blackout):
//! error logs flooded the log pipeline, the log agents stalled, and the rules that read logs
//! saw nothing, so no page went out. Alerting must work when logging does not.
//!
//! - Source `logs`: the rule reads the system's own logs, which travel through the log
//!   pipeline. While the pipeline is stalled (the `stalls` given to [`AlertEngine::new`]: the
//!   scenario's `logs.stall` faults, from `at` for `for`, recorded as their `fault_start` and
//!   `fault_end` on `stampede::fault`) the log agents drop what they receive: events
//!   stamped inside a stall never reach the rule, and are not delivered later either.
//! - Source `metrics`: the rule reads the replay client's user-facing meter, the
//!   `stampede::meter` event `traffic` on host `traffic`, sampled every 1 s of virtual time with
//!   `in_flight` (queries submitted and not yet ended at the client), `submitted`, `ended` and
//!   `failed` (cumulative: distinct seqs submitted, ended, and ended in a failure a user sees,
//!   as [`crate::judge::invariants::user_visible_failure`] defines it: no answer, refused for load for
//!   good, or 5xx). The meter does not travel through the log pipeline: stalls do not touch it.
//!
//! Signals, each over the trailing window `[t − window, t]` (closed) at the time `t` of the
//! event being observed:
//!
//! | signal | `logs` | `metrics` |
//! |---|---|---|
//! | `failed_queries` | `stampede::query` `failed` and `deadline_exceeded` events in the window | the increase of the meter's `failed` over the window: the last sample less the last sample at or before `t − window` (0 when the run is younger) |
//! | `throttled_calls` | `stampede::provider` `call`s with outcome `throttled` of accounts that are not background accounts (the system's own and the lakes'), in the window, at the time the call was logged | — |
//! | `in_flight` | — | the lowest `in_flight` held over the whole window, sample-and-hold: the smallest of the last sample at or before `t − window` and every later one (0 when the run is younger), so the rule fires only on a level held for a whole window |
//!
//! A rule pairs a signal with a source it has; [`AlertRule::validate`] refuses the others
//! (the engine would never feed them).
//!
//! The engine evaluates every rule, in file order, at every event it observes, after taking
//! the event in: a rule that is not firing fires (one `stampede::alert` `firing` event) when its
//! value is above `above`; a firing rule resolves (`resolved`) when its value falls to
//! `above` or below. The alert events are stamped with the observed event's time, on host
//! `monitor`, with fields `rule` (its name), `signal`, `source`, `value` (the value that crossed)
//! and `threshold` (`above`). The engine is pure and deterministic: the same events in the same
//! order give the same alerts in the same order.
//!
//! Does not model: evaluation intervals, `for:` durations on count signals, grouping,
//! inhibition, or delivery of the page; a logs rule does not see events the pipeline dropped
//! even after the stall ends.

use std::collections::VecDeque;
use std::ops::Range;

use serde_json::json;

use stampede_fakes::provider::call::PROVIDER_EVENTS;
use stampede_system::coordinator::QUERY_EVENTS;

use crate::events::Event;
use crate::judge::invariants::is_background;
use crate::world::traffic::METER_EVENTS;

/// The target alert events are recorded under.
pub const ALERT_TARGET: &str = crate::judge::invariants::vocabulary::ALERT_TARGET;

/// The host alert events are recorded on.
pub const MONITOR_HOST: &str = "monitor";

/// One alert rule of a scenario (`alerts:` in the scenario file).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// The rule's name, carried by its alert events as `rule`.
    pub name: String,
    /// What it watches.
    pub signal: Signal,
    /// Where it reads it from.
    pub source: Source,
    /// It fires when the signal's value over the window is above this, and resolves when the
    /// value is at or below it.
    pub above: f64,
    /// The trailing window the value is taken over, e.g. `60s`.
    pub window: crate::span::Span,
}

/// What an alert rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Failed queries in the window: from `logs` the system's own failures (`failed`,
    /// `deadline_exceeded`); from `metrics` the failures users saw
    /// ([`crate::judge::invariants::user_visible_failure`]).
    FailedQueries,
    /// The system's provider calls throttled in the window (`logs` only).
    ThrottledCalls,
    /// Queries in flight at the client, the lowest level held over the window (`metrics`
    /// only).
    InFlight,
}

impl Signal {
    /// The signal's name as written in scenarios and alert events.
    pub fn name(self) -> &'static str {
        match self {
            Self::FailedQueries => "failed_queries",
            Self::ThrottledCalls => "throttled_calls",
            Self::InFlight => "in_flight",
        }
    }
}

/// Where an alert rule reads its signal from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The system's own logs, through the log pipeline: blind while it is stalled.
    Logs,
    /// The client's user-facing meter, outside the log pipeline.
    Metrics,
}

impl Source {
    /// The source's name as written in scenarios and alert events.
    pub fn name(self) -> &'static str {
        match self {
            Self::Logs => "logs",
            Self::Metrics => "metrics",
        }
    }
}

/// How a (signal, source) pair is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Matching events in the window.
    Count,
    /// The increase of a cumulative meter field over the window.
    Increase(&'static str),
    /// The lowest level of a meter field held over the window.
    Lowest(&'static str),
}

impl AlertRule {
    fn kind(&self) -> Option<Kind> {
        match (self.signal, self.source) {
            (Signal::FailedQueries | Signal::ThrottledCalls, Source::Logs) => Some(Kind::Count),
            (Signal::FailedQueries, Source::Metrics) => Some(Kind::Increase("failed")),
            (Signal::InFlight, Source::Metrics) => Some(Kind::Lowest("in_flight")),
            (Signal::ThrottledCalls, Source::Metrics) | (Signal::InFlight, Source::Logs) => None,
        }
    }

    /// Whether the rule can be evaluated: its signal exists in its source, its threshold is a
    /// finite number, and its name is not empty. Answers what is wrong, in words.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("an alert rule needs a name".into());
        }
        if !self.above.is_finite() {
            return Err(format!(
                "alert rule `{}`: `above` must be a finite number",
                self.name
            ));
        }
        if self.kind().is_none() {
            let has = match self.signal {
                Signal::ThrottledCalls => "logs",
                Signal::FailedQueries | Signal::InFlight => "metrics",
            };
            return Err(format!(
                "alert rule `{}`: signal `{}` is not in source `{}`; it is read from `{has}`",
                self.name,
                self.signal.name(),
                self.source.name()
            ));
        }
        Ok(())
    }

    /// Whether `e` is a point of a count signal (before any stall drops it).
    fn counts(&self, e: &Event) -> bool {
        match self.signal {
            Signal::FailedQueries => {
                e.target == QUERY_EVENTS && (e.name == "failed" || e.name == "deadline_exceeded")
            }
            Signal::ThrottledCalls => {
                e.is(PROVIDER_EVENTS, "call")
                    && e.str("outcome") == Some("throttled")
                    && e.str("account").is_some_and(|a| !is_background(a))
            }
            Signal::InFlight => false,
        }
    }
}

/// One rule and what it has seen.
#[derive(Debug)]
struct Watch {
    rule: AlertRule,
    kind: Option<Kind>,
    window_us: u64,
    /// Count: the times of the points in the window. Increase and lowest: every meter sample
    /// from the last one at or before the window's start on, as (time, value).
    points: VecDeque<(u64, f64)>,
    /// Lowest: the samples of `points` that can still be the lowest, values increasing.
    lows: VecDeque<(u64, f64)>,
    firing: bool,
}

impl Watch {
    fn take(&mut self, e: &Event, stalled: bool) {
        match self.kind {
            Some(Kind::Count) if !stalled && self.rule.counts(e) => {
                self.points.push_back((e.t_us, 1.0));
            }
            Some(Kind::Increase(field) | Kind::Lowest(field)) => {
                if !e.is(METER_EVENTS, "traffic") {
                    return;
                }
                let Some(v) = e.u64(field) else { return };
                let v = v as f64;
                self.points.push_back((e.t_us, v));
                if matches!(self.kind, Some(Kind::Lowest(_))) {
                    while self.lows.back().is_some_and(|&(_, low)| low >= v) {
                        self.lows.pop_back();
                    }
                    self.lows.push_back((e.t_us, v));
                }
            }
            Some(Kind::Count) | None => {}
        }
    }

    /// The value over `[now − window, now]`, after expiring what fell out of it.
    fn value(&mut self, now: u64) -> f64 {
        let Some(kind) = self.kind else { return 0.0 };
        // `None` while the run is younger than the window: it reaches back before the start.
        let start = now.checked_sub(self.window_us);
        match kind {
            Kind::Count => {
                let start = start.unwrap_or(0);
                while self.points.front().is_some_and(|&(t, _)| t < start) {
                    self.points.pop_front();
                }
                self.points.len() as f64
            }
            Kind::Increase(_) | Kind::Lowest(_) => {
                // Keep the last sample at or before the start: it holds into the window.
                if let Some(start) = start {
                    while self.points.len() >= 2 && self.points[1].0 <= start {
                        self.points.pop_front();
                    }
                }
                let Some(&(first_t, first_v)) = self.points.front() else {
                    return 0.0;
                };
                // Before the first sample, nothing had been counted and nothing was in flight.
                let held_from_start = start.is_some_and(|s| first_t <= s);
                if let Kind::Increase(_) = kind {
                    let base = if held_from_start { first_v } else { 0.0 };
                    let last = self.points.back().map_or(0.0, |p| p.1);
                    (last - base).max(0.0)
                } else {
                    while self.lows.front().is_some_and(|&(t, _)| t < first_t) {
                        self.lows.pop_front();
                    }
                    if held_from_start {
                        self.lows.front().map_or(0.0, |p| p.1)
                    } else {
                        0.0
                    }
                }
            }
        }
    }
}

/// Evaluates alert rules over the events of a run, in order.
#[derive(Debug)]
pub struct AlertEngine {
    watches: Vec<Watch>,
    /// The stalls of the log pipeline, merged, sorted and disjoint.
    stalls: Vec<Range<u64>>,
    /// The latest event time seen.
    now: u64,
}

impl AlertEngine {
    /// An engine for `rules` (in file order) with the log pipeline stalled over `stalls`, in µs
    /// of virtual time, half-open. Rules that fail [`AlertRule::validate`] never fire.
    pub fn new(rules: Vec<AlertRule>, stalls: Vec<Range<u64>>) -> Self {
        let mut sorted: Vec<Range<u64>> = stalls.into_iter().filter(|r| r.start < r.end).collect();
        sorted.sort_by_key(|r| (r.start, r.end));
        let mut merged: Vec<Range<u64>> = Vec::with_capacity(sorted.len());
        for r in sorted {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        let watches = rules
            .into_iter()
            .map(|rule| Watch {
                kind: rule.validate().ok().and(rule.kind()),
                window_us: u64::try_from(rule.window.0.as_micros()).unwrap_or(u64::MAX),
                rule,
                points: VecDeque::new(),
                lows: VecDeque::new(),
                firing: false,
            })
            .collect();
        Self {
            watches,
            stalls: merged,
            now: 0,
        }
    }

    /// Whether the log pipeline is stalled at `t_us`.
    pub fn stalled(&self, t_us: u64) -> bool {
        let k = self.stalls.partition_point(|r| r.end <= t_us);
        self.stalls.get(k).is_some_and(|r| r.start <= t_us)
    }

    /// Feed every recorded event in log order; answers the alert events to append after it
    /// (stamped with `e.t_us`, host `monitor`, target `stampede::alert`), rules in file order.
    pub fn observe(&mut self, e: &Event) -> Vec<Event> {
        // Events are in time order; one stamped earlier (the harness's own) does not turn the
        // clock back.
        self.now = self.now.max(e.t_us);
        let stalled = self.stalled(e.t_us);
        let mut out = Vec::new();
        for w in &mut self.watches {
            w.take(e, stalled);
            let value = w.value(self.now);
            let name = match (w.firing, value > w.rule.above) {
                (false, true) => "firing",
                (true, false) => "resolved",
                _ => continue,
            };
            w.firing = !w.firing;
            out.push(Event {
                t_us: e.t_us,
                host: MONITOR_HOST.into(),
                target: ALERT_TARGET.into(),
                name: name.into(),
                fields: [
                    ("rule", json!(w.rule.name)),
                    ("signal", json!(w.rule.signal.name())),
                    ("source", json!(w.rule.source.name())),
                    ("value", json!(value)),
                    ("threshold", json!(w.rule.above)),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            });
        }
        out
    }

    /// Runs the engine over `events` in order and answers them with the alert events
    /// interleaved, each after the event that raised it (as the recorder's monitor does).
    #[cfg(test)]
    pub fn replay(mut self, events: &[Event]) -> Vec<Event> {
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            out.push(e.clone());
            out.extend(self.observe(e));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::span::Span;

    fn ev(t_s: f64, target: &str, name: &str, fields: &[(&str, serde_json::Value)]) -> Event {
        Event {
            t_us: (t_s * 1e6).round() as u64,
            host: "h".into(),
            target: target.into(),
            name: name.into(),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }

    fn failed(t_s: f64) -> Event {
        ev(
            t_s,
            QUERY_EVENTS,
            "failed",
            &[("query_id", json!("q")), ("error", json!("boom"))],
        )
    }

    fn meter(t_s: f64, in_flight: u64, failed: u64) -> Event {
        ev(
            t_s,
            METER_EVENTS,
            "traffic",
            &[
                ("in_flight", json!(in_flight)),
                ("submitted", json!(100)),
                ("ended", json!(90)),
                ("failed", json!(failed)),
            ],
        )
    }

    fn rule(name: &str, signal: Signal, source: Source, above: f64, window_s: u64) -> AlertRule {
        AlertRule {
            name: name.into(),
            signal,
            source,
            above,
            window: Span(Duration::from_secs(window_s)),
        }
    }

    /// The alert events only, as (time in s, name, rule, value).
    fn alerts(out: &[Event]) -> Vec<(f64, String, String, f64)> {
        out.iter()
            .filter(|e| e.target == ALERT_TARGET)
            .map(|e| {
                (
                    e.t_us as f64 / 1e6,
                    e.name.clone(),
                    e.str("rule").unwrap_or("").to_string(),
                    e.fields["value"].as_f64().unwrap_or(f64::NAN),
                )
            })
            .collect()
    }

    #[test]
    fn rules_parse_and_validate() {
        let r: AlertRule = serde_json::from_str(
            r#"{"name":"errors","signal":"failed_queries","source":"metrics","above":3,"window":"60s"}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            rule("errors", Signal::FailedQueries, Source::Metrics, 3.0, 60)
        );
        assert_eq!(r.validate(), Ok(()));
        let unknown = serde_json::from_str::<AlertRule>(
            r#"{"name":"e","signal":"failed_queries","source":"logs","above":3,"window":"60s","for":"1m"}"#,
        );
        assert!(unknown.is_err());
        let e = rule("t", Signal::ThrottledCalls, Source::Metrics, 1.0, 60)
            .validate()
            .unwrap_err();
        assert!(e.contains("read from `logs`"), "{e}");
        assert!(
            rule("f", Signal::InFlight, Source::Logs, 1.0, 60)
                .validate()
                .is_err()
        );
        assert!(
            rule("n", Signal::InFlight, Source::Metrics, f64::NAN, 60)
                .validate()
                .is_err()
        );
    }

    #[test]
    fn a_rule_fires_and_resolves() {
        let engine = AlertEngine::new(
            vec![rule("errors", Signal::FailedQueries, Source::Logs, 2.0, 10)],
            vec![],
        );
        let events = vec![
            failed(1.0),
            failed(2.0),
            failed(3.0),
            failed(4.0),
            // [4, 14] still holds the failure at 4 s: 1, at or below 2, resolves.
            meter(14.0, 0, 0),
            meter(20.0, 0, 0),
        ];
        let out = engine.replay(&events);
        assert_eq!(
            alerts(&out),
            vec![
                (3.0, "firing".into(), "errors".into(), 3.0),
                (14.0, "resolved".into(), "errors".into(), 1.0),
            ]
        );
        // Each alert right after the event that raised it, with its fields.
        let k = out.iter().position(|e| e.name == "firing").unwrap();
        assert_eq!(out[k - 1], failed(3.0));
        assert_eq!(out[k].host, MONITOR_HOST);
        assert_eq!(out[k].str("signal"), Some("failed_queries"));
        assert_eq!(out[k].str("source"), Some("logs"));
        assert_eq!(out[k].fields["threshold"], json!(2.0));
        assert_eq!(out.len(), events.len() + 2);
    }

    #[test]
    fn a_logs_rule_is_blind_during_a_stall_while_a_metrics_rule_fires() {
        let rules = vec![
            rule("log-errors", Signal::FailedQueries, Source::Logs, 5.0, 60),
            rule(
                "user-errors",
                Signal::FailedQueries,
                Source::Metrics,
                5.0,
                60,
            ),
        ];
        // Failures flood from 10 s on; the log pipeline stalls at 12 s and never recovers.
        let mut events = Vec::new();
        for s in 0..120u64 {
            let t = s as f64;
            if s >= 10 {
                events.push(failed(t + 0.5));
                events.push(failed(t + 0.6));
            }
            events.push(meter(t, 3, 2 * s.saturating_sub(10)));
        }
        events.sort_by_key(|e| e.t_us);
        // Two stalls back to back: the pipeline stays down from 12 s to the end.
        let stalls = vec![60_000_000..u64::MAX, 12_000_000..60_000_000];
        let out = AlertEngine::new(rules.clone(), stalls).replay(&events);
        let a = alerts(&out);
        // The logs rule saw 4 failures (10.5, 10.6, 11.5, 11.6) and then nothing.
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].2, "user-errors");
        assert_eq!(a[0].1, "firing");
        // The meter at 13 s counts 6 failures since the start.
        assert_eq!((a[0].0, a[0].3), (13.0, 6.0));
        // Without the stall the logs rule fires first, at the 6th failure.
        let out = AlertEngine::new(rules, vec![]).replay(&events);
        let a = alerts(&out);
        assert_eq!(a[0].2, "log-errors");
        assert_eq!((a[0].0, a[0].3), (12.6, 6.0));
    }

    #[test]
    fn the_meter_increase_is_over_the_window_only() {
        // 1 failure a second: 10 over any 10 s, at the threshold and not above.
        let engine = AlertEngine::new(
            vec![rule("e", Signal::FailedQueries, Source::Metrics, 10.0, 10)],
            vec![],
        );
        let mut events: Vec<Event> = (0..60).map(|s| meter(s as f64, 0, s)).collect();
        // Then a burst of 15 in one second, then none.
        events.extend((60..100).map(|s| meter(s as f64, 0, 74)));
        let a = alerts(&engine.replay(&events));
        assert_eq!(
            a,
            vec![
                (60.0, "firing".into(), "e".into(), 24.0),
                // At 70 s the window's start holds the 60 s sample: 74 − 74.
                (70.0, "resolved".into(), "e".into(), 0.0),
            ]
        );
    }

    #[test]
    fn in_flight_fires_only_when_held_for_the_window() {
        let engine = AlertEngine::new(
            vec![rule("backlog", Signal::InFlight, Source::Metrics, 100.0, 5)],
            vec![],
        );
        let mut events: Vec<Event> = Vec::new();
        // A spike of 3 s does not fire; a plateau from 20 s fires once it held 5 s.
        for s in 0..40u64 {
            let level = if (10..13).contains(&s) || (20..30).contains(&s) {
                500
            } else {
                10
            };
            events.push(meter(s as f64, level, 0));
        }
        let a = alerts(&engine.replay(&events));
        assert_eq!(
            a,
            vec![
                (25.0, "firing".into(), "backlog".into(), 500.0),
                (30.0, "resolved".into(), "backlog".into(), 10.0),
            ]
        );
    }

    #[test]
    fn throttled_calls_count_the_systems_calls_only() {
        let call = |t: f64, account: &str| {
            ev(
                t,
                PROVIDER_EVENTS,
                "call",
                &[("account", json!(account)), ("outcome", json!("throttled"))],
            )
        };
        let engine = AlertEngine::new(
            vec![rule("thr", Signal::ThrottledCalls, Source::Logs, 1.0, 60)],
            vec![],
        );
        let events = vec![
            call(1.0, "200000000001"),
            call(2.0, "200000000001"),
            call(3.0, "300000000001"),
            call(4.0, "100000000001"),
        ];
        let a = alerts(&engine.replay(&events));
        assert_eq!(a, vec![(4.0, "firing".into(), "thr".into(), 2.0)]);
    }

    #[test]
    fn alerts_come_in_rule_order_and_the_same_every_time() {
        // Three rules cross on the same event: they answer in file order, not by name.
        let rules = vec![
            rule("zeta", Signal::FailedQueries, Source::Logs, 0.0, 60),
            rule("alpha", Signal::FailedQueries, Source::Logs, 0.0, 30),
            rule("mid", Signal::FailedQueries, Source::Logs, 0.0, 10),
        ];
        let events = vec![failed(1.0), meter(15.0, 0, 0), meter(40.0, 0, 0)];
        let run = || AlertEngine::new(rules.clone(), vec![5..6, 100..200]).replay(&events);
        let first = run();
        let names: Vec<(String, String)> = alerts(&first).into_iter().map(|a| (a.1, a.2)).collect();
        assert_eq!(
            names,
            vec![
                ("firing".into(), "zeta".into()),
                ("firing".into(), "alpha".into()),
                ("firing".into(), "mid".into()),
                ("resolved".into(), "mid".into()),
                ("resolved".into(), "alpha".into()),
            ]
        );
        assert_eq!(first, run());
    }

    #[test]
    fn stalls_merge() {
        let engine = AlertEngine::new(vec![], vec![10..20, 15..30, 40..40, 50..60]);
        assert!(!engine.stalled(9));
        assert!(engine.stalled(10) && engine.stalled(25) && engine.stalled(29));
        assert!(!engine.stalled(30) && !engine.stalled(40));
        assert!(engine.stalled(55) && !engine.stalled(60));
    }
}
