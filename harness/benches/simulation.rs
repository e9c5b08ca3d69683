//! Simulation benchmarks: the smoke scenario end to end, and one idle virtual hour with 10 hosts
//! (what turmoil costs per host per tick when nothing happens).

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};

fn smoke(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/smoke.yaml");
    let mut prepared = stampede::prepare(&path).expect("smoke scenario");
    // One simulation per iteration: the determinism check would double it.
    prepared
        .scenario
        .invariants
        .retain(|i| i.as_str() != "deterministic");
    let mut group = c.benchmark_group("smoke");
    group.sample_size(10);
    group.bench_function("10 queries, 20 lakes, 10 virtual minutes", |b| {
        b.iter(|| stampede::run(prepared.clone(), None).expect("smoke runs"))
    });
    group.finish();
}

/// Five regions, each with a provider host and a worker: ten hosts, no traffic, one hour.
const IDLE_HOUR: &str = "
name: idle-hour
duration: 1h
tick: 10ms
world:
  regions: [r1, r2, r3, r4, r5]
  lakes: { count: 5 }
traffic:
  replay: empty.jsonl
";

fn idle_hour(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("stampede-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("empty.jsonl"),
        "{\"format\":\"stampede-trace\",\"version\":1}\n",
    )
    .unwrap();
    std::fs::write(dir.join("idle.yaml"), IDLE_HOUR).unwrap();
    let prepared = stampede::prepare(&dir.join("idle.yaml")).expect("idle scenario");
    let mut group = c.benchmark_group("idle");
    // About 9 s an iteration in the dev profile: ten samples need more than the default 5 s.
    group
        .sample_size(10)
        .measurement_time(std::time::Duration::from_secs(100));
    group.bench_function("10 hosts, 1 virtual hour, 10ms tick", |b| {
        b.iter(|| stampede::run(prepared.clone(), Some(1)).expect("idle runs"))
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, smoke, idle_hour);
criterion_main!(benches);
