//! Controls at virtual times, on the smoke world: a freeze of the system's account delays the
//! query in its window until it ends; a throttle fails its query; a regional outage leaves its
//! query unanswered; added latency slows the query it covers.

use std::time::Duration;

use stampede::events::{EventLog, Recorder};
use stampede::input::fault::FaultKind;
use stampede::span::Span;
use stampede::world::control::Control;
use stampede::world::simulate;
use stampede_fakes::iam::SYSTEM_ACCOUNT;

use crate::scenario;

fn run(controls: &[Control]) -> EventLog {
    let prepared = stampede::prepare(&scenario("smoke.yaml")).unwrap();
    let recorder = Recorder::new();
    recorder
        .scope(|| simulate(&prepared.scenario, 7, &prepared.trace, &recorder, controls))
        .unwrap()
        .log
}

/// (submit second, answered status) of every query.
fn answers(log: &EventLog) -> Vec<(u64, u64)> {
    let submitted: Vec<u64> = log
        .of("stampede::traffic")
        .filter(|e| e.name == "submitted")
        .map(|e| e.time().as_secs())
        .collect();
    let mut answered: Vec<(u64, u64)> = log
        .of("stampede::traffic")
        .filter(|e| e.name == "answered")
        .map(|e| (e.u64("seq").unwrap(), e.u64("status").unwrap()))
        .collect();
    answered.sort();
    answered
        .into_iter()
        .map(|(seq, status)| (submitted[seq as usize], status))
        .collect()
}

#[test]
fn a_freeze_and_an_outage_fail_the_queries_in_their_windows() {
    let region = "eu-west-1";
    let secs = Duration::from_secs;
    let windows = [
        (
            FaultKind::AccountFreeze {
                account: Some(SYSTEM_ACCOUNT.into()),
            },
            (50, 70),
        ),
        (FaultKind::RegionOutage, (110, 130)),
        (
            FaultKind::ApiThrottle {
                api: "GetObject".into(),
                rate_per_s: 0.01,
            },
            (170, 200),
        ),
        (
            FaultKind::Latency {
                extra: Span(Duration::from_millis(500)),
            },
            (230, 260),
        ),
    ];
    let controls: Vec<Control> = windows
        .into_iter()
        .enumerate()
        .flat_map(|(id, (kind, (from, to)))| {
            Control::window(id as u64, region, kind, secs(from), Some(secs(to)))
        })
        .collect();
    let log = run(&controls);
    let faults: Vec<(u64, &str, u64, &str)> = log
        .of("stampede::fault")
        .map(|e| {
            let (id, kind) = (e.u64("id").unwrap(), e.str("fault").unwrap());
            (e.time().as_secs(), e.name.as_str(), id, kind)
        })
        .collect();
    assert_eq!(
        faults,
        vec![
            (50, "fault_start", 0, "account.freeze"),
            (70, "fault_end", 0, "account.freeze"),
            (110, "fault_start", 1, "region.outage"),
            (130, "fault_end", 1, "region.outage"),
            (170, "fault_start", 2, "api.throttle"),
            (200, "fault_end", 2, "api.throttle"),
            (230, "fault_start", 3, "latency"),
            (260, "fault_end", 3, "latency"),
        ]
    );
    // The query at 60 s meets the freeze: the hardened system holds it (workers take no task
    // while the account is suspended, the coordinator holds what it cannot queue) and answers
    // it after the thaw. The one at 120 s finds the whole region down, its coordinator too,
    // and no other region to fail over to: nobody answers it. The throttle fails the query at
    // 180 s: the guard's three attempts of a read meet it, and with one retry layer the queue
    // does not hand out again a task the guard retried in.
    let failed: Vec<(u64, u64)> = answers(&log)
        .into_iter()
        .filter(|(_, status)| *status != 200)
        .collect();
    assert_eq!(failed, vec![(180, 500)]);
    let unanswered: Vec<u64> = log
        .of("stampede::traffic")
        .filter(|e| e.name == "unanswered")
        .filter_map(|e| e.u64("seq"))
        .collect();
    assert_eq!(unanswered, vec![6]);
    let answered_at = |seq: u64| {
        log.of("stampede::traffic")
            .find(|e| e.name == "answered" && e.u64("seq") == Some(seq))
            .unwrap()
            .time()
    };
    assert!(answered_at(5) >= Duration::from_secs(70), "after the thaw");
    assert!(
        answered_at(7) < Duration::from_secs(200),
        "while the throttle holds: {:?}",
        answered_at(7)
    );
    let throttled = log
        .of("stampede::provider")
        .filter(|e| e.str("outcome") == Some("throttled"))
        .count();
    assert!(throttled > 0, "S3 answered SlowDown while throttled");
    let frozen_calls = log
        .of("stampede::provider")
        .filter(|e| e.str("outcome") == Some("frozen"))
        .count();
    assert!(
        frozen_calls > 0,
        "S3 answered AccountProblem during the freeze"
    );
    let during_outage = log
        .of("stampede::provider")
        .filter(|e| {
            e.name == "call"
                && (Duration::from_secs(110)..Duration::from_secs(130)).contains(&e.time())
        })
        .count();
    assert_eq!(during_outage, 0, "a region that is down answers nothing");
    // Without the controls every query succeeds, and the one at 240 s answers faster.
    let baseline = run(&[]);
    assert!(answers(&baseline).iter().all(|(_, status)| *status == 200));
    let took = |log: &EventLog| {
        let at = |name: &str| {
            log.of("stampede::traffic")
                .find(|e| e.name == name && e.u64("seq") == Some(8))
                .unwrap()
                .time()
        };
        at("answered") - at("submitted")
    };
    assert!(
        took(&log) >= took(&baseline) + Duration::from_secs(1),
        "{:?} against {:?}",
        took(&log),
        took(&baseline)
    );
}

#[test]
fn a_partition_between_a_worker_and_the_provider_delays_work_until_it_heals() {
    // Smoke has one worker: cut it off from the provider from 50 s to 90 s. The query at 60 s
    // waits in the queue and is answered after the heal.
    let cut = FaultKind::NetworkPartition {
        a: "worker-eu-west-1-0".into(),
        b: "provider-eu-west-1".into(),
    };
    let (from, to) = (Duration::from_secs(50), Duration::from_secs(90));
    let controls = Control::window(0, "eu-west-1", cut, from, Some(to));
    let log = run(&controls);
    let names: Vec<&str> = log.of("stampede::fault").map(|e| e.name.as_str()).collect();
    assert_eq!(names, vec!["fault_start", "fault_end"]);
    let answered = log
        .of("stampede::traffic")
        .find(|e| e.name == "answered" && e.u64("seq") == Some(5))
        .unwrap();
    assert_eq!(answered.u64("status"), Some(200));
    assert!(
        answered.time() >= Duration::from_secs(90),
        "{:?}",
        answered.time()
    );
    assert!(answers(&log).iter().all(|(_, status)| *status == 200));
}

#[test]
fn every_read_of_a_lake_is_charged_to_its_query() {
    // DataFusion runs extra partitions on tasks of their own, which lose the guard's
    // task-locals; a fragment plans with one partition so that no read escapes its query.
    let log = run(&[]);
    let reads: Vec<_> = log
        .of("stampede::provider")
        .filter(|e| e.name == "call" && e.str("service") == Some("s3"))
        .filter(|e| e.str("op").is_some_and(|op| op.starts_with("worker")))
        .filter(|e| e.str("account").is_some_and(|a| a.starts_with('3')))
        .collect();
    assert!(reads.len() > 100, "{} reads", reads.len());
    let uncharged: Vec<String> = reads
        .iter()
        .filter(|e| e.str("query_id").unwrap_or("").is_empty())
        .map(|e| e.to_string())
        .collect();
    assert!(
        uncharged.is_empty(),
        "{} of {} lake reads name no query, e.g. {}",
        uncharged.len(),
        reads.len(),
        uncharged[0]
    );
}

#[test]
fn a_lake_file_costs_a_head_and_two_gets() {
    // The footer a fragment reads to plan (file statistics) is kept for its scan: one GET for
    // the footer, one for the columns, after the HEAD that sizes the file. Without the
    // fragment's footer cache it would be three GETs.
    let log = run(&[]);
    let count = |api: &str| {
        log.of("stampede::provider")
            .filter(|e| e.name == "call" && e.str("service") == Some("s3"))
            .filter(|e| e.str("account").is_some_and(|a| a.starts_with('3')))
            .filter(|e| e.str("api") == Some(api) && e.str("outcome") == Some("ok"))
            .count()
    };
    let (heads, gets) = (count("HeadObject"), count("GetObject"));
    assert!(heads > 50, "{heads} HEADs");
    assert_eq!(gets, 2 * heads, "{gets} GETs for {heads} HEADs");
}
