//! The query system in simulation: a fan-out over 500 lakes answers exactly what DataFusion
//! computes directly; invalid SQL is refused with its position before any provider call; a
//! coordinator that crashes mid-query loses nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use stampede::events::{EventLog, Recorder};
use stampede::input::fault::FaultKind;
use stampede::judge::invariants::no_lost_queries;
use stampede::world::control::{Action, Control};
use stampede::world::{lower::lake_directory, simulate};

use crate::correctness::direct;

/// Writes `yaml` (which replays `trace.jsonl`) and the trace of `records` into a folder of
/// their own, and prepares them.
fn write_world(
    name: &str,
    yaml: &str,
    records: &[serde_json::Value],
) -> (stampede::Prepared, PathBuf) {
    let dir = std::env::temp_dir().join(format!("stampede-it-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut trace = String::from("{\"format\":\"stampede-trace\",\"version\":1}\n");
    for record in records {
        trace.push_str(&format!("{record}\n"));
    }
    std::fs::write(dir.join("trace.jsonl"), trace).unwrap();
    let path = dir.join("scenario.yaml");
    std::fs::write(&path, yaml).unwrap();
    (stampede::prepare(&path).unwrap(), dir)
}

/// Writes a scenario and its trace into a folder of their own and prepares them.
fn world(name: &str, lakes: u32, queries: &[(u64, &str)]) -> (stampede::Prepared, PathBuf) {
    world_with(name, lakes, queries, "{ workers_per_region: 2 }")
}

/// [`world`] with the scenario's `system:` written out.
fn world_with(
    name: &str,
    lakes: u32,
    queries: &[(u64, &str)],
    system: &str,
) -> (stampede::Prepared, PathBuf) {
    let records: Vec<serde_json::Value> = queries
        .iter()
        .map(|(t_ms, sql)| {
            serde_json::json!({
                "t_ms": t_ms, "tenant": "tenant-00", "user": "it", "sql": sql, "lakes": "all",
            })
        })
        .collect();
    let yaml = format!(
        "name: {name}\nduration: 5m\ntick: 20ms\nworld:\n  regions: [eu-west-1]\n  lakes: {{ count: {lakes}, tenants: 10, files_per_lake: 1, rows_per_file: 20, shared: true }}\nsystem: {system}\ntraffic:\n  replay: trace.jsonl\n"
    );
    write_world(name, &yaml, &records)
}

fn simulate_with(prepared: &stampede::Prepared, controls: &[Control]) -> EventLog {
    let recorder = Recorder::new();
    recorder
        .scope(|| simulate(&prepared.scenario, 7, &prepared.trace, &recorder, controls))
        .unwrap()
        .log
}

fn cleanup(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_query_over_500_lakes_answers_what_datafusion_computes_directly() {
    let queries = [
        (
            1_000,
            "SELECT domain, count(*) AS hits, sum(bytes) AS total FROM telemetry GROUP BY domain",
        ),
        (
            2_000,
            "SELECT src_ip, max(ts) AS last_seen FROM telemetry WHERE domain = 'c2.example.info' GROUP BY src_ip",
        ),
    ];
    let (prepared, dir) = world("fanout500", 500, &queries);
    let seed = 7;
    let lakes = lake_directory(&prepared.scenario, seed);
    let report = stampede::run(prepared, Some(seed)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ids: Vec<u32> = (0..500).collect();
    assert_eq!(report.replies.len(), 2);
    for ((_, sql), reply) in queries.iter().zip(&report.replies) {
        assert_eq!(reply.status, 200, "{sql}");
        let answer = reply.answer.as_ref().unwrap();
        let expected = rt.block_on(direct(sql, &lakes, &ids));
        assert!(!expected.is_empty());
        assert_eq!(answer.rows, expected, "{sql}");
    }
    let fragments = report
        .log
        .of("stampede::task")
        .filter(|e| e.name == "task_done")
        .count();
    assert_eq!(fragments, 1000, "one fragment per lake per query");
    cleanup(&dir);
}

#[test]
fn invalid_sql_is_refused_with_its_position_before_any_provider_call() {
    let (prepared, dir) = world(
        "invalid",
        20,
        &[(10_000, "SELECT domain\nFROM telemetry\nWHERE nosuch > 3")],
    );
    let log = simulate_with(&prepared, &[]);
    let refused = log
        .of("stampede::query")
        .find(|e| e.name == "refused")
        .expect("the coordinator refuses it");
    assert_eq!(refused.str("reason"), Some("invalid_sql"));
    assert_eq!(
        (refused.u64("line"), refused.u64("column")),
        (Some(3), Some(7))
    );
    let answered = log
        .of("stampede::traffic")
        .find(|e| e.name == "refused")
        .unwrap();
    assert_eq!(answered.u64("status"), Some(400));
    assert!(answered.str("error").unwrap().contains("line 3, column 7"));
    assert_eq!(
        log.of("stampede::query")
            .filter(|e| e.name == "accepted")
            .count(),
        0
    );
    // The only provider calls in the whole run are the nodes' own upkeep: workers polling
    // their queue, config agents reading the config bucket, and the credentials for both.
    let upkeep = |e: &&stampede::events::Event| {
        let api = e.str("api").unwrap_or("");
        [
            "ReceiveMessage",
            "CreateQueue",
            "GetToken",
            "GetRoleName",
            "GetCredentials",
        ]
        .contains(&api)
            || e.str("resource")
                .is_some_and(|r| r.contains("stampede-config"))
    };
    let calls: Vec<&str> = log
        .of("stampede::provider")
        .filter(|e| e.name == "call")
        .filter(|e| !upkeep(e))
        .filter_map(|e| e.str("api"))
        .collect();
    assert_eq!(calls, Vec::<&str>::new());
    cleanup(&dir);
}

#[test]
fn a_coordinator_crash_mid_query_loses_no_accepted_query() {
    let (prepared, dir) = world(
        "crash",
        300,
        &[
            (1_000, "SELECT count(*) AS n FROM telemetry"),
            (
                1_500,
                "SELECT domain, count(*) FROM telemetry GROUP BY domain",
            ),
        ],
    );
    let crash = FaultKind::HostCrash {
        host: "coordinator-eu-west-1".into(),
    };
    let (from, to) = (Duration::from_secs(3), Duration::from_secs(20));
    let controls = Control::window(0, "eu-west-1", crash, from, Some(to));
    let log = simulate_with(&prepared, &controls);
    let done_before_crash = log
        .of("stampede::task")
        .filter(|e| e.name == "task_done" && e.time() < Duration::from_secs(3))
        .count();
    assert!(done_before_crash > 0, "the crash comes mid-query");
    assert!(log.of("stampede::query").any(|e| e.name == "recovered"));
    assert_eq!(
        no_lost_queries(&log).word(),
        "pass",
        "{:?}",
        no_lost_queries(&log)
    );
    let answered: Vec<u64> = log
        .of("stampede::traffic")
        .filter(|e| e.name == "answered")
        .filter_map(|e| e.u64("status"))
        .collect();
    assert_eq!(
        answered,
        vec![200, 200],
        "both queries answered after the restart"
    );
    cleanup(&dir);
}

#[test]
fn an_answer_finished_before_its_coordinator_crashed_still_reaches_the_client() {
    // The recorded hour, seed 5, lost one this way: the query succeeded, the coordinator went
    // down before the client's next poll, and came back knowing nothing of it.
    let (prepared, dir) = world(
        "answer-kept",
        10,
        &[(1_000, "SELECT count(*) AS n FROM telemetry")],
    );
    let calm = simulate_with(&prepared, &[]);
    let at = |log: &EventLog, target: &str, name: &str| {
        log.of(target)
            .find(|e| e.name == name)
            .map(|e| (e.t_us, e.str("rows_digest").map(str::to_string)))
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let (succeeded, _) = at(&calm, "stampede::query", "succeeded");
    let (answered, digest) = at(&calm, "stampede::traffic", "answered");
    assert!(
        answered >= succeeded + 200_000,
        "the crash must fit between the answer and the next poll: {succeeded} {answered}"
    );
    // The coordinator crashes between the two, for 20 s.
    let crash = FaultKind::HostCrash {
        host: "coordinator-eu-west-1".into(),
    };
    let from = Duration::from_micros(succeeded + (answered - succeeded) / 2);
    let controls = Control::window(
        0,
        "eu-west-1",
        crash,
        from,
        Some(from + Duration::from_secs(20)),
    );
    let log = simulate_with(&prepared, &controls);
    assert_eq!(at(&log, "stampede::query", "succeeded").0, succeeded);
    let (late, got) = at(&log, "stampede::traffic", "answered");
    assert!(
        late > from.as_micros() as u64 + 20_000_000,
        "answered after the restart"
    );
    let status = log
        .of("stampede::traffic")
        .find(|e| e.name == "answered")
        .and_then(|e| e.u64("status"));
    assert_eq!(status, Some(200));
    assert_eq!(got, digest, "the same rows");
    cleanup(&dir);
}

/// A config that validates and breaks everything: every call times out.
const BAD_CONFIG: &str = r#"{"version":1,"tuning":{"call_timeout":"1ms"}}"#;

fn push_bad_config(preset: &str) -> EventLog {
    let queries = [
        (10_000, "SELECT count(*) FROM telemetry"),
        (100_000, "SELECT count(*) FROM telemetry"),
    ];
    let system = format!("{{ preset: {preset}, workers_per_region: 3 }}");
    let (prepared, dir) = world_with(&format!("config-{preset}"), 12, &queries, &system);
    let push = Control {
        at: Duration::from_secs(30),
        region: "eu-west-1".into(),
        action: Action::Request {
            host: "coordinator-eu-west-1".into(),
            port: 8080,
            path: "/v1/config".into(),
            body: BAD_CONFIG.into(),
        },
    };
    let log = simulate_with(&prepared, &[push]);
    cleanup(&dir);
    log
}

fn config_events<'a>(log: &'a EventLog, name: &str) -> Vec<&'a str> {
    log.of("stampede::config")
        .filter(|e| e.name == name)
        .map(|e| e.host.as_str())
        .collect()
}

#[test]
fn a_bad_config_push_reaches_every_node_when_naive() {
    let log = push_bad_config("naive");
    assert_eq!(
        config_events(&log, "config_pushed"),
        vec!["coordinator-eu-west-1"]
    );
    let mut applied = config_events(&log, "config_applied");
    applied.sort();
    assert_eq!(
        applied,
        vec![
            "coordinator-eu-west-1",
            "worker-eu-west-1-0",
            "worker-eu-west-1-1",
            "worker-eu-west-1-2"
        ]
    );
    assert!(config_events(&log, "config_rolled_back").is_empty());
}

#[test]
fn a_bad_config_push_stops_at_the_canary_and_rolls_back_when_hardened() {
    let log = push_bad_config("hardened");
    assert_eq!(
        config_events(&log, "config_applied"),
        vec!["worker-eu-west-1-0"]
    );
    assert_eq!(
        config_events(&log, "config_rolled_back"),
        vec!["worker-eu-west-1-0"]
    );
    let mut skipped = config_events(&log, "config_skipped");
    skipped.sort();
    assert_eq!(
        skipped,
        vec![
            "coordinator-eu-west-1",
            "worker-eu-west-1-1",
            "worker-eu-west-1-2"
        ]
    );
    // The fleet kept working: the query after the push is answered.
    let statuses: Vec<u64> = log
        .of("stampede::traffic")
        .filter(|e| e.name == "answered")
        .filter_map(|e| e.u64("status"))
        .collect();
    assert_eq!(statuses, vec![200, 200]);
}

/// Two regions of 20 lakes, tenants 0 and 1: lake i is in region i mod 2 and belongs to tenant
/// i mod 2, so each tenant's lakes are all in one region.
fn two_regions(name: &str, preset: &str, queries: &[(u64, &str)]) -> (stampede::Prepared, PathBuf) {
    let records: Vec<serde_json::Value> = queries
        .iter()
        .map(|(t_ms, tenant)| {
            serde_json::json!({
                "t_ms": t_ms, "tenant": tenant, "user": "it", "sql": "SELECT count(*) FROM telemetry",
                "lakes": { "tenant": tenant },
            })
        })
        .collect();
    let yaml = format!(
        "name: {name}\nduration: 4m\ntick: 20ms\nworld:\n  regions: [eu-west-1, eu-central-1]\n  lakes: {{ count: 20, tenants: 2, files_per_lake: 1, rows_per_file: 20, shared: true }}\nsystem: {{ preset: {preset}, workers_per_region: 4 }}\ntraffic:\n  replay: trace.jsonl\n"
    );
    write_world(name, &yaml, &records)
}

fn outage(region: &str, from_s: u64, to_s: u64) -> Vec<Control> {
    let (from, to) = (Duration::from_secs(from_s), Duration::from_secs(to_s));
    Control::window(0, region, FaultKind::RegionOutage, from, Some(to))
}

#[test]
fn a_query_fails_over_to_the_healthy_region() {
    // Query 0 prefers eu-west-1's coordinator, which is down at 60 s; its lakes (tenant-01's)
    // live in eu-central-1, which is up.
    let (prepared, dir) = two_regions("failover", "hardened", &[(60_000, "tenant-01")]);
    let log = simulate_with(&prepared, &outage("eu-west-1", 30, 120));
    let accepted = log
        .of("stampede::query")
        .find(|e| e.name == "accepted")
        .expect("accepted somewhere");
    assert_eq!(accepted.host, "coordinator-eu-central-1");
    let answered = log
        .of("stampede::traffic")
        .find(|e| e.name == "answered")
        .unwrap();
    assert_eq!(answered.u64("status"), Some(200));
    assert!(
        answered.time() < Duration::from_secs(120),
        "before the failback"
    );
    cleanup(&dir);
}

#[test]
fn an_operator_failover_sends_new_queries_to_the_next_region_until_it_is_undone() {
    // Queries take turns preferring each region's coordinator: queries 0 and 2 prefer
    // eu-west-1's, query 1 eu-central-1's. The operator fails eu-west-1 over from 30 s to 90 s.
    let query = |t_ms: u64| {
        serde_json::json!({
            "t_ms": t_ms, "tenant": "tenant-01", "user": "it",
            "sql": "SELECT count(*) FROM telemetry", "lakes": { "tenant": "tenant-01" },
        })
    };
    let yaml = "name: operator-failover\nduration: 4m\ntick: 20ms\nworld:\n  regions: [eu-west-1, eu-central-1]\n  lakes: { count: 20, tenants: 2, files_per_lake: 1, rows_per_file: 20, shared: true }\nsystem: { preset: hardened, workers_per_region: 2 }\ntraffic:\n  replay: trace.jsonl\noperator:\n  - { at: 30s, action: failover, region: eu-west-1, for: 60s }\ninvariants: [no_lost_queries, explicit_backpressure]\n";
    let (prepared, dir) = write_world(
        "operator-failover",
        yaml,
        &[query(60_000), query(70_000), query(120_000)],
    );
    let report = stampede::run(prepared, None).unwrap();
    cleanup(&dir);
    let log = &report.log;
    let accepted: Vec<&str> = log
        .of("stampede::query")
        .filter(|e| e.name == "accepted")
        .map(|e| e.host.as_str())
        .collect();
    assert_eq!(
        accepted,
        [
            "coordinator-eu-central-1",
            "coordinator-eu-central-1",
            "coordinator-eu-west-1"
        ],
        "during the failover the next region admits; after it, the home region again"
    );
    // The client moved on from the 503 without giving up on the query.
    assert!(log.of("stampede::traffic").all(|e| e.name != "refused"));
    let paused: Vec<&str> = log
        .of("stampede::query")
        .filter(|e| e.name == "admission_paused" || e.name == "admission_resumed")
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(paused, ["admission_paused", "admission_resumed"]);
    for (name, verdict) in &report.verdicts {
        assert_eq!(verdict.word(), "pass", "{name}: {verdict:?}");
    }
    let statuses: Vec<u64> = log
        .of("stampede::traffic")
        .filter(|e| e.name == "answered")
        .filter_map(|e| e.u64("status"))
        .collect();
    assert_eq!(statuses, [200, 200, 200]);
}

#[test]
fn failback_restarts_all_at_once_when_naive_and_spread_when_hardened() {
    let spread = |preset: &str| {
        let (prepared, dir) = two_regions(&format!("failback-{preset}"), preset, &[]);
        let log = simulate_with(&prepared, &outage("eu-west-1", 30, 60));
        cleanup(&dir);
        let restarts: Vec<Duration> = log
            .of("stampede::mechanism")
            .filter(|e| e.name == "restart_jitter")
            .map(|e| Duration::from_micros(e.u64("wait_us").unwrap()))
            .collect();
        restarts
    };
    assert!(spread("naive").is_empty(), "naive nodes start at once");
    let hardened_jitter = spread("hardened");
    assert_eq!(
        hardened_jitter.len(),
        5,
        "every returning node waits: 4 workers and the coordinator"
    );
    let max = hardened_jitter.iter().max().unwrap();
    let min = hardened_jitter.iter().min().unwrap();
    assert!(
        *max - *min >= Duration::from_secs(2),
        "spread out: {hardened_jitter:?}"
    );
}

#[test]
fn the_audit_log_is_a_trace_that_replays_what_was_submitted() {
    let prepared = stampede::prepare(&crate::scenario("smoke.yaml")).unwrap();
    let original = prepared.trace.clone();
    let report = stampede::run(prepared, None).unwrap();
    let text = stampede::commands::output::audit_trace(&report.log);
    let audit = stampede::input::trace::parse(Path::new("audit.jsonl"), &text).unwrap();
    assert_eq!(audit.records.len(), original.records.len());
    let first = original.records[0].t_ms;
    for (a, o) in audit.records.iter().zip(&original.records) {
        assert_eq!((&a.sql, &a.tenant, &a.lakes), (&o.sql, &o.tenant, &o.lakes));
        // Submission times, shifted to start at 0, within the network's delay.
        let expected = o.t_ms - first;
        assert!(a.t_ms.abs_diff(expected) <= 100, "{} vs {expected}", a.t_ms);
    }
}

#[test]
fn an_operator_pause_refuses_with_retry_after_and_the_client_comes_back() {
    let record = serde_json::json!({
        "t_ms": 60_000, "tenant": "tenant-00", "user": "it",
        "sql": "SELECT count(*) FROM telemetry", "lakes": "all",
    });
    let yaml = "name: pause\nduration: 4m\ntick: 20ms\nworld:\n  regions: [eu-west-1]\n  lakes: { count: 4, files_per_lake: 1, rows_per_file: 10 }\ntraffic:\n  replay: trace.jsonl\nfaults:\n  - { at: 30s, action: admission.pause, for: 45s }\ninvariants: [no_lost_queries, explicit_backpressure]\n";
    let (prepared, dir) = write_world("pause", yaml, &[record]);
    let report = stampede::run(prepared, None).unwrap();
    cleanup(&dir);
    let log = &report.log;
    let refused: Vec<(u64, u64)> = log
        .of("stampede::traffic")
        .filter(|e| e.name == "refused")
        .map(|e| (e.u64("status").unwrap(), e.u64("retry_after_s").unwrap()))
        .collect();
    assert_eq!(refused, vec![(503, 30)], "refused once while paused");
    let answered = log
        .of("stampede::traffic")
        .find(|e| e.name == "answered")
        .unwrap();
    assert_eq!(answered.u64("status"), Some(200));
    assert!(
        answered.time() >= Duration::from_secs(90),
        "after coming back: {:?}",
        answered.time()
    );
    let operator: Vec<&str> = log
        .of("stampede::query")
        .filter(|e| e.name.starts_with("admission_"))
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(operator, vec!["admission_paused", "admission_resumed"]);
    assert!(report.unexpected().is_empty(), "{:?}", report.verdicts);
}

#[test]
fn an_operator_flushes_a_workers_caches_and_caps_its_rates() {
    let queries = [
        (10_000, "SELECT count(*) FROM telemetry"),
        (60_000, "SELECT count(*) FROM telemetry"),
    ];
    let (prepared, dir) = world_with("operator", 10, &queries, "{ workers_per_region: 1 }");
    let request = |at: u64, path: &str, body: &str| Control {
        at: Duration::from_secs(at),
        region: "eu-west-1".into(),
        action: Action::Request {
            host: "worker-eu-west-1-0".into(),
            port: stampede_system::admin::ADMIN_PORT,
            path: path.into(),
            body: body.into(),
        },
    };
    let misses_after = |log: &EventLog, t: u64| {
        log.of("stampede::mechanism")
            .filter(|e| e.name == "cache_miss" && e.time() >= Duration::from_secs(t))
            .filter(|e| e.str("key").is_some_and(|k| k.contains(":role/")))
            .count()
    };
    let kept = simulate_with(&prepared, &[]);
    assert_eq!(
        misses_after(&kept, 30),
        0,
        "the second query finds every role cached"
    );
    let flushed = simulate_with(
        &prepared,
        &[
            request(30, "/v1/admin/caches/flush", "{}"),
            request(40, "/v1/admin/drain", r#"{"factor":0.5}"#),
        ],
    );
    cleanup(&dir);
    assert_eq!(
        misses_after(&flushed, 30),
        10,
        "after the flush, every lake's role again"
    );
    let operator: Vec<(&str, Option<u64>)> = flushed
        .of("stampede::operator")
        .map(|e| (e.name.as_str(), e.u64("factor_permille")))
        .collect();
    assert_eq!(
        operator,
        vec![("caches_flushed", None), ("drain_set", Some(500))]
    );
    let statuses: Vec<u64> = flushed
        .of("stampede::fault")
        .filter(|e| e.name == "operator_request")
        .filter_map(|e| e.u64("status"))
        .collect();
    assert_eq!(statuses, vec![200, 200]);
}
