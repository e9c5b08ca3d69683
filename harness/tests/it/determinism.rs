//! Same scenario, seed and build: the same event log, byte for byte.

use crate::scenario;

#[test]
fn same_seed_same_digest_other_seed_other_digest() {
    let prepared = stampede::prepare(&scenario("smoke.yaml")).unwrap();
    let a = stampede::run(prepared.clone(), Some(7)).unwrap();
    let b = stampede::run(prepared.clone(), Some(7)).unwrap();
    let c = stampede::run(prepared, Some(8)).unwrap();
    assert_eq!(a.digest, b.digest);
    assert_eq!(a.log.to_jsonl(), b.log.to_jsonl());
    assert_ne!(a.digest, c.digest, "the seed must reach the world");
    // The run is not trivially deterministic: it did real work.
    assert!(a.log.of("stampede::provider").count() > 50);
}

/// What a run's events say happened, and when, with the order of events at one instant and
/// the labels a host numbers its own operations with left out.
fn what_and_when(log: &stampede::events::EventLog) -> Vec<String> {
    let mut seen: Vec<String> = log
        .events()
        .iter()
        .map(|e| {
            let f = |k: &str| e.fields.get(k).map(|v| v.to_string()).unwrap_or_default();
            format!(
                "{} {} {} {} {} {} {}",
                e.t_us,
                e.host,
                e.target,
                e.name,
                f("api"),
                f("outcome"),
                f("resource")
            )
        })
        .collect();
    seen.sort();
    seen
}

/// Leaving idle hosts unpolled (turmoil's `skip_idle_hosts`, on by default) changes no verdict
/// and, where nothing serves same-instant arrivals in their order, moves no event in virtual
/// time. What may change is the order in which one host polls tasks that became ready at the
/// same instant, so the digests may differ.
#[test]
fn idle_hosts_left_unpolled_move_no_event_and_change_no_verdict() {
    let prepared =
        stampede::prepare(&scenario("incidents/metadata-overload-freeze/naive.yaml")).unwrap();
    let skipping = stampede::run(prepared.clone(), Some(7)).unwrap();
    let ticking = stampede::run_with(prepared, Some(7), &every_host_every_step()).unwrap();
    // Verdicts and what they say; a witness may name another of the calls made at the same
    // instant by tasks the host polled in another order.
    let gist = |r: &stampede::RunReport| -> Vec<(String, &'static str, String)> {
        r.verdicts
            .iter()
            .map(|(name, v)| {
                let summary = match v {
                    stampede::judge::invariants::Verdict::Fail { witness } => {
                        witness.summary.clone()
                    }
                    _ => String::new(),
                };
                (name.clone(), v.word(), summary)
            })
            .collect()
    };
    assert_eq!(gist(&skipping), gist(&ticking));
    assert_eq!(skipping.steps, ticking.steps);
    // The run did real work across hosts: calls, a freeze, failed queries.
    assert!(skipping.log.of("stampede::provider").count() > 5_000);
    // Event for event, at the same instants, where no fleet is saturated. In the naive twin's
    // saturated one-server fleet, calls that arrive at one instant are served in the order
    // their host polled the tasks that sent them, which skipping may change; there the run
    // diverges at about 20 s (which of two calls times out), with the same verdicts.
    let prepared = stampede::prepare(&scenario("smoke.yaml")).unwrap();
    let skipping = stampede::run(prepared.clone(), Some(7)).unwrap();
    let ticking = stampede::run_with(prepared, Some(7), &every_host_every_step()).unwrap();
    assert_eq!(what_and_when(&skipping.log), what_and_when(&ticking.log));
    assert!(skipping.log.of("stampede::provider").count() > 50);
}

/// Run options that tick every host at every step.
fn every_host_every_step() -> stampede::RunOptions {
    stampede::RunOptions {
        every_host_every_step: true,
        ..Default::default()
    }
}
