//! The query system in simulation: a fan-out over 500 lakes answers exactly what DataFusion
//! computes directly; invalid SQL is refused with its position before any provider call; a
//! coordinator that crashes mid-query loses nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use stampede::control::{Control, ProviderAction};
use stampede::events::{EventLog, Recorder};
use stampede::invariants::no_lost_queries;
use stampede::world::{lake_directory, simulate};

use crate::correctness::direct;

/// Writes a scenario and its trace into a folder of their own and prepares them.
fn world(name: &str, lakes: u32, queries: &[(u64, &str)]) -> (stampede::Prepared, PathBuf) {
    let dir = std::env::temp_dir().join(format!("stampede-it-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut trace = String::from("{\"format\":\"stampede-trace\",\"version\":1}\n");
    for (t_ms, sql) in queries {
        let record = serde_json::json!({
            "t_ms": t_ms, "tenant": "tenant-00", "user": "it", "sql": sql, "lakes": "all",
        });
        trace.push_str(&format!("{record}\n"));
    }
    std::fs::write(dir.join("trace.jsonl"), trace).unwrap();
    let yaml = format!(
        "name: {name}\nduration: 5m\ntick: 20ms\nworld:\n  regions: [eu-west-1]\n  lakes: {{ count: {lakes}, tenants: 10, files_per_lake: 1, rows_per_file: 20 }}\nsystem: {{ workers_per_region: 2 }}\ntraffic:\n  replay: trace.jsonl\n"
    );
    let path = dir.join("scenario.yaml");
    std::fs::write(&path, yaml).unwrap();
    (stampede::prepare(&path).unwrap(), dir)
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
    // The only provider calls in the whole run are the idle workers polling their queue.
    let calls: Vec<&str> = log
        .of("stampede::provider")
        .filter(|e| e.name == "call")
        .filter_map(|e| e.str("api"))
        .filter(|api| {
            ![
                "ReceiveMessage",
                "CreateQueue",
                "GetToken",
                "GetRoleName",
                "GetCredentials",
            ]
            .contains(api)
        })
        .collect();
    assert_eq!(calls, Vec::<&str>::new());
    let after: usize = log
        .of("stampede::provider")
        .filter(|e| {
            e.name == "call" && e.time() >= refused.time() && e.str("api") != Some("ReceiveMessage")
        })
        .count();
    assert_eq!(after, 0, "nothing but idle polling after the refusal");
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
    let host = "coordinator-eu-west-1".to_string();
    let region = "eu-west-1".to_string();
    let controls = [
        Control {
            at: Duration::from_secs(3),
            region: region.clone(),
            action: ProviderAction::HostCrash { host: host.clone() },
        },
        Control {
            at: Duration::from_secs(20),
            region,
            action: ProviderAction::HostRestart { host },
        },
    ];
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
