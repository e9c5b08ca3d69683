//! Simulation benchmarks, one group per performance goal (README, "Performance"):
//!
//! - `P1`: the incident-1 twins end to end, in virtual time against wall time;
//! - `P2`: an idle virtual hour with ten system hosts, with idle hosts left unpolled (the
//!   default) and with every host ticked at every step;
//! - `P3`: fragments per wall second, one query over 500 lakes;
//! - `P5`: cost against traffic (a ladder's load once and twice) and against lakes never read.
//!
//! `P4`, the object store fake against moto, is `benches/loopback.rs`. Beside the goals: the
//! smoke scenario, provider calls per wall second through the fakes, every checker over an
//! incident's log, and the reports of an incident's run.

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};

fn smoke(c: &mut Criterion) {
    let path = Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo bench sets it"))
        .join("../scenarios/smoke.yaml");
    let mut prepared = stampede::prepare(&path).expect("smoke scenario");
    // One simulation per iteration: the determinism check would double it.
    prepared
        .scenario
        .invariants
        .retain(|i| i.name.as_str() != "deterministic");
    let mut group = c.benchmark_group("smoke");
    group.sample_size(10);
    group.bench_function("10 queries, 20 lakes, 10 virtual minutes", |b| {
        b.iter(|| stampede::run(prepared.clone(), None).expect("smoke runs"))
    });
    group.finish();
}

/// A scenario of `yaml` with `trace` as its replay, written to a folder of its own under the
/// system's temporary folder (removed by the caller) and prepared at `load`.
fn prepared_in_temp(
    name: &str,
    yaml: &str,
    trace: &str,
    load: f64,
) -> (std::path::PathBuf, stampede::Prepared) {
    let dir = std::env::temp_dir().join(format!("stampede-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("trace.jsonl"), trace).unwrap();
    std::fs::write(dir.join("scenario.yaml"), yaml).unwrap();
    let prepared =
        stampede::prepare_scaled(&dir.join("scenario.yaml"), load).expect("bench scenario");
    (dir, prepared)
}

/// A trace with no query.
const EMPTY: &str = "{\"format\":\"stampede-trace\",\"version\":1}\n";

/// One region with a provider host, a coordinator and nine workers: ten system hosts, no
/// traffic, one hour.
const IDLE_HOUR: &str = "
name: idle-hour
duration: 1h
tick: 10ms
world:
  regions: [r1]
  lakes: { count: 5 }
system: { workers_per_region: 9 }
traffic:
  replay: trace.jsonl
";

fn p2_idle(c: &mut Criterion) {
    let (dir, prepared) = prepared_in_temp("idle", IDLE_HOUR, EMPTY, 1.0);
    let mut group = c.benchmark_group("P2 idle");
    // Seconds an iteration: ten samples need more than the default 5 s.
    group
        .sample_size(10)
        .measurement_time(std::time::Duration::from_secs(100));
    group.bench_function("10 system hosts, 1 virtual hour, 10ms tick", |b| {
        b.iter(|| stampede::run(prepared.clone(), Some(1)).expect("idle runs"))
    });
    // The same with every host ticked at every step: what leaving idle hosts unpolled saves.
    group.bench_function(
        "10 system hosts, 1 virtual hour, 10ms tick, every host ticked",
        |b| {
            b.iter(|| {
                let options = stampede::RunOptions {
                    every_host_every_step: true,
                    ..Default::default()
                };
                stampede::run_with(prepared.clone(), Some(1), &options).expect("idle runs")
            })
        },
    );
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The incident-1 twins (`scenarios/incidents/metadata-overload-freeze`), 8 virtual minutes
/// each, simulated once an iteration.
fn p1_incident(c: &mut Criterion) {
    let mut group = c.benchmark_group("P1 incident-1");
    group
        .sample_size(10)
        .measurement_time(std::time::Duration::from_secs(60));
    for twin in ["naive", "hardened"] {
        let mut prepared =
            prepared_scenario(&format!("incidents/metadata-overload-freeze/{twin}.yaml"));
        prepared
            .scenario
            .invariants
            .retain(|i| i.name.as_str() != "deterministic");
        group.bench_function(format!("{twin}, 8 virtual minutes"), |b| {
            b.iter(|| stampede::run(prepared.clone(), None).expect("incident runs"))
        });
    }
    group.finish();
}

/// `scenarios/FILE`, prepared.
fn prepared_scenario(file: &str) -> stampede::Prepared {
    let path = Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo bench sets it"))
        .join("../scenarios")
        .join(file);
    stampede::prepare(&path).expect("scenario")
}

/// Linear cost: the capacity ladder's traffic once and twice (same seed, same world), and one
/// query over 5 lakes in a world of 50 lakes and of 5,000.
fn p5_linear(c: &mut Criterion) {
    let path = Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo bench sets it"))
        .join("../scenarios/capacity/ladder.yaml");
    let mut group = c.benchmark_group("P5 linear");
    group
        .sample_size(10)
        .measurement_time(std::time::Duration::from_secs(30));
    for load in [1.0, 2.0] {
        let prepared = stampede::prepare_scaled(&path, load).expect("ladder scenario");
        group.bench_function(format!("capacity ladder at {load}x"), |b| {
            b.iter(|| stampede::run(prepared.clone(), Some(1)).expect("ladder runs"))
        });
    }
    let trace = format!(
        "{EMPTY}{{\"t_ms\":1000,\"tenant\":\"tenant-00\",\"user\":\"bench\",\"sql\":\"SELECT count(*) FROM telemetry\",\"lakes\":{{\"ids\":[0,1,2,3,4]}}}}\n"
    );
    for lakes in [50, 5000] {
        let yaml = format!(
            "name: lakes-{lakes}\nduration: 1m\ntick: 20ms\nworld:\n  regions: [eu-west-1]\n  lakes: {{ count: {lakes}, tenants: 1 }}\ntraffic:\n  replay: trace.jsonl\n"
        );
        let (dir, prepared) = prepared_in_temp(&format!("lakes-{lakes}"), &yaml, &trace, 1.0);
        group.bench_function(format!("5 lakes read of {lakes}"), |b| {
            b.iter(|| {
                let report = stampede::run(prepared.clone(), Some(1)).expect("runs");
                assert_eq!(report.replies[0].status, 200);
            })
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
    group.finish();
}

/// One query over 500 lakes, two workers, no quota to wait for: the fragments the whole system
/// (queue, credentials, catalog, Parquet reads, DataFusion, merge) completes per wall second.
const FANOUT: &str = "
name: fanout-500
duration: 2m
tick: 20ms
world:
  regions: [eu-west-1]
  lakes: { count: 500, tenants: 10, files_per_lake: 1, rows_per_file: 20, shared: true }
system: { workers_per_region: 2 }
traffic:
  replay: trace.jsonl
";

fn p3_fragments(c: &mut Criterion) {
    let trace = format!(
        "{EMPTY}{{\"t_ms\":1000,\"tenant\":\"tenant-00\",\"user\":\"bench\",\"sql\":\"SELECT domain, count(*) FROM telemetry GROUP BY domain\",\"lakes\":\"all\"}}\n"
    );
    let (dir, prepared) = prepared_in_temp("fanout", FANOUT, &trace, 1.0);
    let mut group = c.benchmark_group("P3 fragments");
    group
        .sample_size(10)
        .measurement_time(std::time::Duration::from_secs(60))
        .throughput(criterion::Throughput::Elements(500));
    group.bench_function("one query over 500 lakes", |b| {
        b.iter(|| {
            let report = stampede::run(prepared.clone(), Some(1)).expect("fan-out runs");
            assert_eq!(report.replies[0].status, 200);
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every checker over the log of the naive incident replay (incident 1: a freeze, throttling,
/// retries, about 10⁵ events): how long a verdict and its sometimes state take per event.
fn checkers(c: &mut Criterion) {
    use stampede::input::scenario::{InvariantName, InvariantSpec};

    let path = Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo bench sets it"))
        .join("../scenarios/incidents/metadata-overload-freeze/naive.yaml");
    let mut prepared = stampede::prepare(&path).expect("incident scenario");
    prepared.scenario.invariants.clear();
    let scenario = prepared.scenario.clone();
    let log = stampede::run(prepared, None).expect("incident runs").log;
    let mut group = c.benchmark_group("checkers");
    group
        .sample_size(10)
        .measurement_time(std::time::Duration::from_secs(2))
        .throughput(criterion::Throughput::Elements(log.events().len() as u64));
    for name in InvariantName::ALL {
        if name == InvariantName::Deterministic {
            continue;
        }
        let spec = InvariantSpec::named(name);
        group.bench_function(name.as_str(), |b| {
            b.iter(|| stampede::judge::checks::judge(&spec, &log, &scenario))
        });
    }
    group.finish();
}

/// What the reports cost after a run: the hardened incident-1 replay (about 10⁵ events) read
/// into report data, and its `report.html`, `report.md` and `report.json` rendered. Compare
/// with the run itself (`smoke` above, or the summary line of `stampede run`).
fn reports(c: &mut Criterion) {
    let path = Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo bench sets it"))
        .join("../scenarios/incidents/metadata-overload-freeze/hardened.yaml");
    let prepared = stampede::prepare(&path).expect("incident scenario");
    let report = stampede::run(prepared, None).expect("incident runs");
    let data = stampede::commands::report_data::run_data(&report, "bench");
    let mut group = c.benchmark_group("reports");
    group
        .sample_size(10)
        .throughput(criterion::Throughput::Elements(
            report.log.events().len() as u64
        ));
    group.bench_function("report data from the log", |b| {
        b.iter(|| stampede::commands::report_data::run_data(&report, "bench"))
    });
    group.bench_function("report.html, report.md and report.json", |b| {
        b.iter(|| {
            (
                stampede_reports::page::run_html(&data),
                stampede_reports::page::run_md(&data),
                serde_json::to_string(&data).expect("report data serialises"),
            )
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    p1_incident,
    p2_idle,
    p3_fragments,
    p5_linear,
    smoke,
    provider_calls,
    checkers,
    reports
);
criterion_main!(benches);

/// Provider calls per wall second: the real SQS client sending `CALLS` messages, 50 at a time,
/// to the fake queue over the simulated network.
fn provider_calls(c: &mut Criterion) {
    use std::rc::Rc;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use aws_credential_types::Credentials;
    use hyper_util::service::TowerToHyperService;
    use stampede::world::net::{SimDialer, serve};
    use stampede::world::{EPOCH_SECS, SimClock, system_principal};
    use stampede_fakes::sqs::SqsFake;
    use stampede_fakes::{Iam, LakeDirectory, ProviderConfig, ProviderRegion};
    use stampede_system::aws_http::sdk_config;

    const CALLS: u64 = 1000;
    let run = || {
        let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECS);
        let mut sim = turmoil::Builder::new()
            .simulation_duration(Duration::from_secs(600))
            .tick_duration(Duration::from_millis(1))
            .epoch(epoch)
            .rng_seed(1)
            .build();
        let lakes = LakeDirectory {
            seed: 1,
            count: 1,
            tenants: 1,
            regions: vec!["r".into()],
            files_per_lake: 1,
            rows_per_file: 1,
        };
        let region = ProviderRegion::new(
            "r",
            ProviderConfig::default(),
            Arc::new(SimClock),
            EPOCH_SECS,
        );
        let sqs = SqsFake::new(region, Iam::new(1, lakes, vec![system_principal()]));
        sim.host("provider", move || {
            let service = TowerToHyperService::new(sqs.router());
            async move { serve(9300, service).await }
        });
        sim.client("client", async move {
            let p = system_principal();
            let credentials =
                Credentials::new(p.access_key_id, p.secret_access_key, None, None, "bench");
            let config = sdk_config(
                Arc::new(SimDialer),
                "http://provider:9300",
                "r",
                credentials,
                epoch,
            );
            let sqs = Rc::new(aws_sdk_sqs::Client::new(&config));
            let url = sqs
                .create_queue()
                .queue_name("bench")
                .send()
                .await?
                .queue_url
                .unwrap_or_default();
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..CALLS {
                if tasks.len() == 50 {
                    tasks.join_next().await;
                }
                let (sqs, url) = (sqs.clone(), url.clone());
                tasks.spawn_local(async move {
                    sqs.send_message()
                        .queue_url(url)
                        .message_body(format!("m{i}"))
                        .send()
                        .await
                });
            }
            while tasks.join_next().await.is_some() {}
            Ok(())
        });
        sim.run().expect("the benchmark simulation runs");
    };
    let mut group = c.benchmark_group("provider");
    group
        .sample_size(10)
        .measurement_time(std::time::Duration::from_secs(10))
        .throughput(criterion::Throughput::Elements(CALLS));
    group.bench_function(
        "SQS SendMessage via the SDK over the simulated network",
        |b| b.iter(run),
    );
    group.finish();
}
