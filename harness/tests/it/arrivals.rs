//! A real arrival process replayed in virtual time: the Azure LLM inference trace (CSV, one
//! request per row), exactly as recorded and four times faster, at the millisecond resolution
//! of tokio's timers (the recorded offsets have 100 ns digits).

use std::time::Duration;

use stampede::events::Recorder;
use stampede::world::simulate;

/// The Azure trace, as published (`data/README.md`).
fn azure_csv() -> std::path::PathBuf {
    crate::repo("data/traces/azure-llm-inference-2023-conv.csv")
}

/// The Azure trace's arrival offsets, from the file itself.
fn recorded() -> Vec<Duration> {
    let spec = stampede::input::arrivals::CsvArrivals {
        csv: Some(azure_csv()),
        jsonl: None,
        column: None,
        field: None,
        unit: None,
        origin: Default::default(),
        query_from: Default::default(),
    };
    stampede::input::arrivals::read_arrivals(&azure_csv(), &spec)
        .unwrap()
        .iter()
        .map(|a| a.at)
        .collect()
}

/// When the replay client submitted each query, in the run of a scenario with `timing`.
fn submitted(timing: &str, window_s: u64) -> Vec<Duration> {
    let dir = std::env::temp_dir().join(format!(
        "stampede-it-azure-{}-{}",
        timing.replace(':', "-"),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = azure_csv();
    let yaml = format!(
        "name: azure\nduration: 40s\ntick: 1ms\nworld:\n  regions: [eu-west-1]\n  lakes: {{ count: 2, files_per_lake: 1, rows_per_file: 10 }}\ntraffic:\n  arrivals: {{ csv: {} }}\n  query: {{ sql: 'SELECT count(*) FROM telemetry' }}\n  window: {{ to: {window_s}s }}\n  timing: '{timing}'\n",
        csv.display()
    );
    let path = dir.join("azure.yaml");
    std::fs::write(&path, yaml).unwrap();
    let got = submissions_of(&path);
    let _ = std::fs::remove_dir_all(&dir);
    got
}

/// When the replay client submitted each query in a run of the scenario at `path`, seed 1.
fn submissions_of(path: &std::path::Path) -> Vec<Duration> {
    let prepared = stampede::prepare(path).unwrap();
    let recorder = Recorder::new();
    let log = recorder
        .scope(|| simulate(&prepared.scenario, 1, &prepared.trace, &recorder, &[]))
        .unwrap()
        .log;
    log.of("stampede::traffic")
        .filter(|e| e.name == "submitted")
        .map(|e| e.time())
        .collect()
}

/// A time as a timer fires for it: tokio's timers have millisecond resolution, so a deadline
/// fires at the next whole millisecond.
fn timer(t: Duration) -> Duration {
    Duration::from_millis(t.as_nanos().div_ceil(1_000_000) as u64)
}

#[test]
fn a_json_lines_trace_of_millisecond_offsets_replays_each_at_its_millisecond() {
    let got = submissions_of(&crate::repo("scenarios/traffic/jsonl-offsets.yaml"));
    let text =
        std::fs::read_to_string(crate::repo("scenarios/traces/requests-ms-offsets.jsonl")).unwrap();
    let want: Vec<Duration> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Duration::from_millis(v["timestamp"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(want.len(), 30);
    assert_eq!(want[0], Duration::from_millis(412), "the first is not at 0");
    assert_eq!(got, want);
}

#[test]
fn the_azure_trace_replays_its_inter_arrival_times() {
    let recorded = recorded();
    assert!(recorded.len() > 19_000, "{}", recorded.len());
    let window = 30;
    let want: Vec<Duration> = recorded
        .iter()
        .copied()
        .filter(|t| *t < Duration::from_secs(window))
        .collect();
    let got = submitted("original", window);
    assert_eq!(got.len(), want.len());
    // Every query goes out exactly at its recorded offset, as the timer resolves it; so every
    // inter-arrival time is the recorded one, to the millisecond.
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(*g, timer(*w));
    }
    let fast = submitted("scaled:4", window * 4);
    let want4: Vec<Duration> = recorded
        .iter()
        .filter(|t| **t < Duration::from_secs(window * 4))
        .map(|t| *t / 4)
        .collect();
    assert_eq!(fast.len(), want4.len());
    for (g, w) in fast.iter().zip(&want4) {
        assert_eq!(*g, timer(*w));
    }
}

#[test]
fn recorded_cloudtrail_calls_replay_at_their_times_as_another_account() {
    let path = crate::scenario("traffic/cloudtrail-neighbour.yaml");
    let prepared = stampede::prepare(&path).unwrap();
    let recorded = prepared.scenario.world.provider.background.recorded.clone();
    assert_eq!(recorded.len(), 103);
    let recorder = Recorder::new();
    let log = recorder
        .scope(|| simulate(&prepared.scenario, 3, &prepared.trace, &recorder, &[]))
        .unwrap()
        .log;
    let mut started: Vec<(u64, String)> = log
        .of("stampede::provider")
        .filter(|e| e.name == "call" && e.str("account") == Some("200000000000"))
        .map(|e| {
            let start = e.t_us - e.u64("latency_us").unwrap();
            (start / 1000, e.str("api").unwrap().to_string())
        })
        .collect();
    started.sort();
    let mut want: Vec<(u64, String)> = recorded
        .iter()
        .map(|c| (c.at.as_millis() as u64, c.api.clone()))
        .collect();
    want.sort();
    assert_eq!(started, want);
}

#[test]
fn generated_traffic_follows_the_runs_seed_unless_the_file_pins_it() {
    let path = crate::repo("scenarios/mechanisms/retry-budget/hardened.yaml");
    let own = stampede::prepare(&path).unwrap();
    let at = |seed: u64, pin: Option<u64>| {
        let mut p = own.clone();
        p.scenario.traffic.seed = pin;
        p.reseed_traffic(seed).unwrap();
        p.trace.at
    };
    // The scenario's own seed keeps the traffic it was prepared with.
    assert_eq!(at(own.scenario.seed, None), own.trace.at);
    // Other seeds draw other arrivals, each the same every time.
    let (one, two) = (at(1, None), at(2, None));
    assert_ne!(one, two);
    assert_ne!(one, own.trace.at);
    assert_eq!(at(1, None), one);
    // A pinned traffic seed keeps one traffic whatever the run's seed.
    assert_eq!(at(1, Some(7)), at(2, Some(7)));
}
