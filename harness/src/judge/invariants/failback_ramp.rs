//! `failback_ramp`: nodes coming back after a region's outage ramp up instead of stampeding
//! the provider for credentials.
//!
//! The catalogue: N nodes returning, reconnects (and credential fetches) in any 1 s ≤ R_max,
//! all back within 1.5 × N / R_max, R_max from the provider's quota. After each region's
//! return at t (the `fault_end` of a `region.outage` fault, for its `region`), this checks:
//!
//! - **Credential fetches the quota meters:** the system's `AssumeRole` calls in that region
//!   (by accounts that are not background accounts), placed at the time they reached the
//!   provider (`t_us − latency_us`), number at most `r_max` in any 1 s window `[s, s + 1 s)`
//!   with s a call's time in `[t, t + ramp_us)`; only calls within `[t, t + ramp_us)` count,
//!   every outcome counts. IMDS calls are not counted: no account quota meters them.
//! - **Returning nodes:** a node of the system that called the provider in that region before
//!   the outage's `fault_start` went down with it when its next call, anywhere, names a later
//!   boot (the `{node}#{boot}` of its `op`); a node that calls again under the same boot never
//!   went down and is not judged. Its reconnect is that first call. Reconnects number at most
//!   `r_max` in any 1 s, and every returning node reconnects within 1.5 × N / R_max of t, N
//!   being the nodes that went down (back or not).
//! - **Nobody left behind:** a node that called in the region before and makes no call within
//!   `ramp_us` of the return fails. A return whose window the log ends inside cannot fail this
//!   clause: a node not back yet makes the verdict unknown, unless something else failed.
//!
//! A return without a `region` field judges calls in every region. `r_max` is the AssumeRole
//! quota's rate when the scenario sets one (see `checks.rs`), else 20. Does not check:
//! connections (not events, only calls).

use std::collections::BTreeMap;

use serde_json::json;

use super::calls::{client_host, is_call, is_system_call, started};
use super::obj;
use super::time::{log_end, secs};
use super::vocabulary::{PROVIDER_TARGET, is_background};
use super::windows::max_in_window;
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};

/// The most credential fetches in any 1 s window after a region comes back.
pub const R_MAX: u64 = 20;

/// How long after a region comes back its fetches are watched.
pub const RAMP_US: u64 = 60_000_000;

const SECOND_US: u64 = 1_000_000;

/// A call of the system (not of a background account) to the provider.
fn is_ours(e: &Event) -> bool {
    is_system_call(e) && e.str("account").is_some_and(|a| !is_background(a))
}

/// A credential fetch of the system (not of a background account) that the provider's quota
/// meters.
fn is_metered_fetch(e: &Event) -> bool {
    is_call(e)
        && e.str("account").is_some_and(|a| !is_background(a))
        && e.str("api") == Some("AssumeRole")
}

/// The boot of a call's node: the part of its `op` between `#` and `.`.
fn boot(e: &Event) -> &str {
    let op = e.str("op").unwrap_or("");
    let rest = op.split_once('#').map_or("", |(_, r)| r);
    rest.split_once('.').map_or(rest, |(b, _)| b)
}

/// One region's return, as the provider's log shows it.
struct Return<'a> {
    /// The outage's `fault_end`.
    up: &'a Event,
    /// The system's AssumeRole calls in the region within the ramp, by start time.
    metered: Vec<&'a Event>,
    /// Nodes that went down and came back: each with its first call after the return, by
    /// that call's start.
    back: Vec<(&'a str, &'a Event)>,
    /// Nodes that called in the region before the outage and not within the ramp: each with
    /// its last call before.
    missing: Vec<(&'a str, &'a Event)>,
    /// Whether the log runs past the ramp window.
    closed: bool,
}

impl Return<'_> {
    /// The nodes that went down with the region.
    fn nodes(&self) -> usize {
        self.back.len() + self.missing.len()
    }

    /// When each returning node reconnected, after the return.
    fn delays(&self) -> impl Iterator<Item = u64> + '_ {
        self.back
            .iter()
            .map(|(_, e)| started(e).saturating_sub(self.up.t_us))
    }
}

/// Every region's return in the log, with what the provider saw of the system after it.
fn returns(log: &EventLog, ramp_us: u64) -> Vec<Return<'_>> {
    let mut calls: Vec<&Event> = log
        .of(PROVIDER_TARGET)
        .filter(|e| is_ours(e) || is_metered_fetch(e))
        .collect();
    calls.sort_by_key(|e| started(e));
    let end = log_end(log);
    let mut out = Vec::new();
    for w in super::faults::of_kind(log, "region.outage") {
        let Some(up) = w.end else { continue };
        let (down, from, to) = (w.start.t_us, up.t_us, up.t_us.saturating_add(ramp_us));
        let region = up.str("region");
        let in_region = |e: &&Event| region.is_none() || e.str("region") == region;
        let mut before: BTreeMap<&str, &Event> = BTreeMap::new();
        for e in calls.iter().copied().filter(|e| is_ours(e) && in_region(e)) {
            if started(e) < down {
                before.insert(client_host(e), e);
            }
        }
        // Each node's first call anywhere after the return, within the ramp.
        let mut first: BTreeMap<&str, &Event> = BTreeMap::new();
        for e in calls.iter().copied().filter(|e| is_ours(e)) {
            let t = started(e);
            if (from..to).contains(&t) {
                first.entry(client_host(e)).or_insert(e);
            }
        }
        let mut back = Vec::new();
        let mut missing = Vec::new();
        for (node, last) in before {
            match first.get(node) {
                None => missing.push((node, last)),
                Some(e) if boot(e) != boot(last) => back.push((node, *e)),
                Some(_) => {}
            }
        }
        back.sort_by_key(|(_, e)| started(e));
        out.push(Return {
            up,
            metered: calls
                .iter()
                .copied()
                .filter(|e| is_metered_fetch(e) && in_region(e))
                .filter(|e| (from..to).contains(&started(e)))
                .collect(),
            back,
            missing,
            closed: end >= to,
        });
    }
    out
}

/// The sometimes state: a region came back and nodes that went down with it called the
/// provider again (the injected return alone is not it).
pub fn sometimes(log: &EventLog, ramp_us: u64) -> (bool, &'static str) {
    const STATE: &str = "a region came back and nodes that went down with it called again";
    let reached = returns(log, ramp_us).iter().any(|r| !r.back.is_empty());
    (reached, STATE)
}

/// 1.5 × N / R_max, in microseconds.
fn all_back_us(nodes: usize, r_max: u64) -> u64 {
    (1.5e6 * nodes as f64 / r_max.max(1) as f64) as u64
}

/// Checks every region's return: metered credential fetches and reconnects per second, and
/// when its nodes came back.
pub fn failback_ramp(log: &EventLog, r_max: u64, ramp_us: u64) -> Verdict {
    let returns = returns(log, ramp_us);
    if returns.is_empty() {
        return Verdict::Unknown {
            why: "no region came back".into(),
        };
    }
    let region = |r: &Return| r.up.str("region").unwrap_or("a region").to_string();
    let mut peak_fetches = 0u64;
    let mut peak_reconnects = 0u64;
    let mut slowest_us = 0u64;
    let mut nodes = 0usize;
    let mut failure: Option<Witness> = None;
    let mut pending: Option<String> = None;
    for r in &returns {
        let times: Vec<u64> = r.metered.iter().map(|e| started(e)).collect();
        let (fetches, fetch_range) = max_in_window(&times, SECOND_US);
        let times: Vec<u64> = r.back.iter().map(|(_, e)| started(e)).collect();
        let (reconnects, reconnect_range) = max_in_window(&times, SECOND_US);
        let bound_us = all_back_us(r.nodes(), r_max);
        let late: Vec<&(&str, &Event)> = r
            .back
            .iter()
            .filter(|(_, e)| started(e).saturating_sub(r.up.t_us) > bound_us)
            .collect();
        peak_fetches = peak_fetches.max(fetches);
        peak_reconnects = peak_reconnects.max(reconnects);
        slowest_us = slowest_us.max(r.delays().max().unwrap_or(0));
        nodes = nodes.max(r.nodes());
        if failure.is_some() {
            continue;
        }
        let at = format!("{}'s return at t={}", region(r), secs(r.up.t_us));
        let counts = |extra: serde_json::Value| {
            let mut c = obj(json!({
                "nodes": r.nodes(), "back": r.back.len(), "r_max": r_max,
                "all_back_within_us": bound_us,
            }));
            c.extend(obj(extra));
            c
        };
        if !r.missing.is_empty() && r.closed {
            let (node, last) = r.missing[0];
            failure = Some(Witness {
                summary: format!(
                    "{} of {} nodes did not call again within {} of {at}; the first, {node}, last called at t={}",
                    r.missing.len(),
                    r.nodes(),
                    secs(ramp_us),
                    secs(last.t_us)
                ),
                counts: counts(json!({"not_back": r.missing.len()})),
                events: std::iter::once(r.up)
                    .chain(r.missing.iter().map(|m| m.1))
                    .take(WITNESS_EVENTS)
                    .cloned()
                    .collect(),
            });
        } else if let Some((node, first)) = late.last() {
            failure = Some(Witness {
                summary: format!(
                    "{} of {} returning nodes reconnected later than 1.5 × N / R_max = {} after {at}; the last, {node}, at t={}",
                    late.len(),
                    r.nodes(),
                    secs(bound_us),
                    secs(started(first))
                ),
                counts: counts(
                    json!({"late": late.len(), "slowest_us": started(first).saturating_sub(r.up.t_us)}),
                ),
                events: std::iter::once(r.up)
                    .chain(late.iter().map(|(_, e)| *e))
                    .take(WITNESS_EVENTS)
                    .cloned()
                    .collect(),
            });
        } else if fetches > r_max {
            failure = Some(Witness {
                summary: format!(
                    "after {at} the system called AssumeRole {fetches} times in the second from t={}, over {r_max}",
                    secs(started(r.metered[fetch_range.start]))
                ),
                counts: counts(json!({"peak_fetches_per_s": fetches})),
                events: r.metered[fetch_range]
                    .iter()
                    .take(WITNESS_EVENTS)
                    .copied()
                    .cloned()
                    .collect(),
            });
        } else if reconnects > r_max {
            failure = Some(Witness {
                summary: format!(
                    "after {at} {reconnects} returning nodes reconnected in the second from t={}, over {r_max}",
                    secs(started(r.back[reconnect_range.start].1))
                ),
                counts: counts(json!({"peak_reconnects_per_s": reconnects})),
                events: r.back[reconnect_range]
                    .iter()
                    .take(WITNESS_EVENTS)
                    .map(|(_, e)| (*e).clone())
                    .collect(),
            });
        } else if !r.missing.is_empty() && pending.is_none() {
            pending = Some(format!(
                "the log ends {} after {at}, inside the {} window, and {} nodes ({} first) had not called again yet",
                secs(log_end(log).saturating_sub(r.up.t_us)),
                secs(ramp_us),
                r.missing.len(),
                r.missing[0].0
            ));
        }
    }
    if let Some(witness) = failure {
        return Verdict::Fail { witness };
    }
    if let Some(why) = pending {
        return Verdict::Unknown { why };
    }
    Verdict::Pass {
        counts: obj(json!({
            "returns": returns.len(), "nodes": nodes, "r_max": r_max,
            "peak_fetches_per_s": peak_fetches, "peak_reconnects_per_s": peak_reconnects,
            "slowest_back_us": slowest_us,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::test_support::{ev, fault_window};

    const S: u64 = 1_000_000;

    /// `region`'s outage, from 10 s before `t_us` to `t_us`.
    fn up(t_us: u64, region: &str) -> Vec<Event> {
        let t = t_us / S;
        fault_window(
            0,
            "region.outage",
            (t - 10, Some(t)),
            &[("region", json!(region))],
        )
    }

    fn fetch(t_us: u64, region: &str, service: &str, api: &str, account: &str) -> Event {
        ev(
            t_us,
            &format!("provider-{region}"),
            PROVIDER_TARGET,
            "call",
            &[
                ("account", json!(account)),
                ("region", json!(region)),
                ("service", json!(service)),
                ("api", json!(api)),
                ("outcome", json!("ok")),
                ("latency_us", json!(0)),
            ],
        )
    }

    const SYS: &str = "100000000001";

    fn check(mut events: Vec<Event>) -> Verdict {
        events.sort_by_key(|e| e.t_us);
        failback_ramp(&EventLog::from_events(events), R_MAX, RAMP_US)
    }

    /// `n` fetches spread evenly over `[from, from + over)`, alternating IMDS and STS.
    fn fetches(n: u64, from: u64, over: u64, region: &str) -> Vec<Event> {
        (0..n)
            .map(|k| {
                let t = from + k * over / n;
                if k % 2 == 0 {
                    fetch(t, region, "imds", "GetCredentials", SYS)
                } else {
                    fetch(t, region, "sts", "AssumeRole", SYS)
                }
            })
            .collect()
    }

    #[test]
    fn a_spread_return_passes() {
        // 100 fetches over 10 s: 10 a second.
        let mut events = up(30 * S, "r1");
        events.extend(fetches(100, 30 * S, 10 * S, "r1"));
        // Before the return, another region, and background accounts do not count.
        events.extend(fetches(100, 0, S, "r1"));
        events.extend(fetches(100, 30 * S, S, "r2"));
        events
            .extend((0..100).map(|k| fetch(30 * S + k, "r1", "sts", "AssumeRole", "200000000001")));
        let v = check(events);
        assert_eq!(v.word(), "pass", "{v:?}");
    }

    #[test]
    fn a_stampede_fails() {
        // 50 fetches in the first half second: 25 AssumeRole, 25 IMDS.
        let mut events = up(30 * S, "r1");
        events.extend(fetches(50, 30 * S, S / 2, "r1"));
        let v = check(events);
        let Verdict::Fail { witness } = v else {
            panic!("must fail: {v:?}")
        };
        assert_eq!(witness.counts["peak_fetches_per_s"], json!(25));
        assert_eq!(witness.events.len(), WITNESS_EVENTS);
        assert!(
            witness
                .events
                .iter()
                .all(|e| e.str("api") == Some("AssumeRole")),
            "only metered calls are the witness"
        );
    }

    #[test]
    fn unmetered_fetches_are_not_counted() {
        // 40 fetches in the first half second, every one of them IMDS.
        let mut events = up(30 * S, "r1");
        events.extend(
            (0..40).map(|k| fetch(30 * S + k * S / 80, "r1", "imds", "GetCredentials", SYS)),
        );
        assert_eq!(check(events).word(), "pass");
    }

    /// A call of `node` at `t_us` in r1, under boot `boot`.
    fn node_call(t_us: u64, node: &str, boot: u64) -> Event {
        let mut e = fetch(t_us, "r1", "sqs", "ReceiveMessage", SYS);
        e.fields
            .insert("op".into(), json!(format!("{node}#{boot}.{t_us}")));
        e
    }

    #[test]
    fn returning_nodes_must_all_be_back_within_one_and_a_half_n_over_r_max() {
        // Two nodes call before the outage (down at 20 s, up at 30 s) and come back under a
        // new boot: 1.5 × 2 / 20 = 150 ms.
        let outage = |second_back_us: u64| {
            let mut events = vec![node_call(S, "w-0", 0), node_call(2 * S, "w-1", 0)];
            events.extend(up(30 * S, "r1"));
            events.push(node_call(30 * S + 10_000, "w-0", 30_000));
            events.push(node_call(30 * S + second_back_us, "w-1", 30_000));
            check(events)
        };
        let pass = outage(140_000);
        assert_eq!(pass.word(), "pass", "{pass:?}");
        let Verdict::Fail { witness } = outage(160_000) else {
            panic!("w-1 came back late")
        };
        assert_eq!(witness.counts["late"], json!(1));
        assert_eq!(witness.counts["all_back_within_us"], json!(150_000));
        assert!(
            witness.summary.contains("the last, w-1"),
            "{}",
            witness.summary
        );
    }

    #[test]
    fn too_many_reconnects_in_a_second_fail() {
        // 30 nodes back in the first half second: 1.5 × 30 / 20 = 2.25 s allows it, 20 a
        // second does not.
        let mut events: Vec<Event> = (0..30)
            .map(|k| node_call(S, &format!("w-{k}"), 0))
            .collect();
        events.extend(up(30 * S, "r1"));
        events.extend((0..30).map(|k| node_call(30 * S + k * S / 60, &format!("w-{k}"), 30_000)));
        let Verdict::Fail { witness } = check(events) else {
            panic!("30 reconnects in half a second")
        };
        assert_eq!(witness.counts["peak_reconnects_per_s"], json!(30));
    }

    #[test]
    fn a_stampede_after_the_ramp_is_not_judged() {
        let mut events = up(30 * S, "r1");
        events.extend(fetches(40, 91 * S, S / 2, "r1"));
        assert_eq!(check(events).word(), "pass");
    }

    #[test]
    fn a_node_that_never_comes_back_fails() {
        let call = |t_us: u64, node: &str| {
            let mut e = fetch(t_us, "r1", "sqs", "ReceiveMessage", SYS);
            e.fields
                .insert("op".into(), json!(format!("{node}#0.{t_us}")));
            e
        };
        // Two nodes call before the outage (down at 20 s, up at 30 s); after the return, node
        // 0 calls at 35 s and again at 100 s, and node 1 at `late` seconds, if at all.
        let outage_until = |late: Option<u64>, last: u64| {
            let mut events = vec![
                call(S, "worker-r1-0"),
                call(2 * S, "worker-r1-1"),
                call(35 * S, "worker-r1-0"),
                call(last * S, "worker-r1-0"),
            ];
            events.extend(up(30 * S, "r1"));
            events.extend(late.map(|s| call(s * S, "worker-r1-1")));
            events.sort_by_key(|e| e.t_us);
            check(events)
        };
        let outage = |late: Option<u64>| outage_until(late, 100);
        let Verdict::Fail { witness } = outage(None) else {
            panic!("worker-r1-1 never came back")
        };
        assert_eq!(witness.counts["not_back"], json!(1));
        assert!(
            witness.summary.contains("worker-r1-1"),
            "{}",
            witness.summary
        );
        // Back within the 60 s ramp passes; back after it fails.
        assert_eq!(outage(Some(89)).word(), "pass");
        assert_eq!(outage(Some(91)).word(), "fail");
        // The log ends inside the window with node 1 not back yet: nothing says it would not
        // have come back.
        let Verdict::Unknown { why } = outage_until(None, 50) else {
            panic!("the window never closed")
        };
        assert!(
            why.starts_with("the log ends 20.000s after r1's return"),
            "{why}"
        );
        assert!(why.contains("1 nodes (worker-r1-1 first)"), "{why}");
        // At exactly the window's end it is closed.
        assert_eq!(outage_until(None, 90).word(), "fail");
    }

    #[test]
    fn the_state_is_a_node_back_under_a_new_boot() {
        let mut events = vec![node_call(S, "w-0", 0)];
        events.extend(up(30 * S, "r1"));
        let reached = |events: &[Event]| {
            let mut events = events.to_vec();
            events.sort_by_key(|e| e.t_us);
            sometimes(&EventLog::from_events(events), RAMP_US).0
        };
        assert!(!reached(&events), "the injected return alone");
        events.extend(fetches(4, 31 * S, S, "r1"));
        events.push(node_call(31 * S, "w-0", 0));
        assert!(!reached(&events), "a node that never went down");
        events.push(node_call(32 * S, "w-1", 30_000));
        assert!(!reached(&events), "a node that did not call before");
        events.push(node_call(30 * S + 1, "w-0", 30_000));
        assert!(reached(&events));
    }

    #[test]
    fn no_return_is_unknown() {
        assert_eq!(check(fetches(40, 0, S, "r1")).word(), "unknown");
    }
}
