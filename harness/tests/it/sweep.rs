//! `stampede sweep`: scenario files survive being written back as YAML (the shrinker's
//! candidates are such files); a naive scenario without `expect` fails on every seed, with
//! the seeds in the JUnit failure and shrunk files that replay the failure without the fault
//! that played no part; shards merged equal the sweep run whole.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

#[test]
fn every_scenario_reads_back_from_the_yaml_it_is_written_as() {
    let files = crate::scenario_files();
    assert!(files.len() > 30, "{} scenario files", files.len());
    for f in files {
        let s = stampede::input::scenario::load(&f).unwrap();
        let yaml = stampede::input::scenario::to_yaml(&s);
        let back = stampede::input::scenario::parse(&f, &yaml)
            .unwrap_or_else(|e| panic!("{}: {e}\n{yaml}", f.display()));
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&s).unwrap(),
            "{}",
            f.display()
        );
    }
}

/// A scratch directory of its own for a test.
fn scratch(name: &str) -> crate::Scratch {
    crate::fresh_dir(&format!("sweep-{name}"))
}

/// The SQL-validation naive twin as a new user would write it: no `expect`, and a latency
/// fault that has nothing to do with invalid SQL.
fn naive_without_expect(dir: &Path) -> PathBuf {
    let trace = crate::scenario("traces/invalid-sql.jsonl");
    let text = format!(
        "name: invalid-sql-naive\n\
         seed: 5\n\
         duration: 3m\n\
         tick: 20ms\n\
         world:\n  regions: [eu-west-1]\n  lakes: {{ count: 24, tenants: 4, files_per_lake: 1, rows_per_file: 20, shared: true }}\n\
         system:\n  preset: hardened\n  switches: {{ validate_sql: false }}\n\
         traffic:\n  replay: {}\n\
         invariants: [invalid_sql_costs_nothing, no_lost_queries]\n\
         faults:\n  - {{ at: 20s, action: latency, extra: 50ms, for: 10s }}\n",
        trace.display()
    );
    let file = dir.join("naive.yaml");
    std::fs::write(&file, text).unwrap();
    file
}

fn sweep(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stampede"))
        .current_dir(dir)
        .arg("sweep")
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_failing_naive_scenario_comes_back_as_seeds_replay_commands_and_shrunk_files() {
    let dir = scratch("naive");
    let file = naive_without_expect(&dir);
    let (code, text) = sweep(
        &dir,
        &[
            "naive.yaml",
            "--seeds",
            "1..3",
            "--out",
            "out",
            "--shrink-budget",
            "12",
        ],
    );
    assert_eq!(code, 1, "{text}");
    let s = read_json(&dir.join("out/sweep.json"));
    let records = s["records"].as_array().unwrap();
    assert_eq!(records.len(), 3);
    for (r, seed) in records.iter().zip(1..) {
        assert_eq!(r["seed"], seed);
        assert_eq!(
            r["unexpected"],
            serde_json::json!(["invalid_sql_costs_nothing"])
        );
        assert_eq!(r["faults"].as_array().unwrap().len(), 1);
        assert!(r["digest"].as_str().unwrap().len() == 64);
    }
    let junit = std::fs::read_to_string(dir.join("out/junit.xml")).unwrap();
    assert_eq!(junit.matches("<testsuite ").count(), 1);
    let case = junit
        .split("<testcase ")
        .find(|c| c.contains("name=\"invalid_sql_costs_nothing\""))
        .unwrap();
    assert!(case.contains("3/3 seeds violated it: 1, 2, 3"), "{case}");
    for seed in 1..=3 {
        assert!(
            case.contains(&format!("run naive.yaml --seed {seed} (shrunk: shrunk/")),
            "{case}"
        );
    }
    assert!(junit.contains("name=\"no_lost_queries\"/>"), "{junit}");
    // Each shrunk file replays the failure, and the latency fault did not survive.
    for r in records {
        let shrunk = dir.join("out").join(r["shrunk"][0].as_str().unwrap());
        let yaml = std::fs::read_to_string(&shrunk).unwrap();
        assert!(
            !yaml.contains("swarm:") && !yaml.contains("action: latency"),
            "{yaml}"
        );
        assert_eq!(r["shrink"][0]["faults_before"], 1);
        assert_eq!(r["shrink"][0]["faults_after"], 0);
        let run = Command::new(env!("CARGO_BIN_EXE_stampede"))
            .arg("run")
            .arg(&shrunk)
            .arg("--out")
            .arg(dir.join(format!("replay-{}", r["seed"])))
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(1));
        let results = read_json(&dir.join(format!("replay-{}/results.json", r["seed"])));
        assert_eq!(
            results["verdicts"]["invalid_sql_costs_nothing"]["verdict"],
            "fail"
        );
    }
    let summary = std::fs::read_to_string(dir.join("out/summary.md")).unwrap();
    assert!(
        summary.contains("| invalid-sql-naive | invalid_sql_costs_nothing | 3 of 3 (1, 2, 3) |"),
        "{summary}"
    );
    assert!(summary.contains("0 of 1 faults left"), "{summary}");
    assert!(
        summary.contains("Shrinking: 3 failures shrunk in"),
        "{summary}"
    );
    // Promoted into a corpus, a shrunk file expects its failure, and passes while it lasts.
    let shrunk = dir
        .join("out")
        .join(records[0]["shrunk"][0].as_str().unwrap());
    let promote = Command::new(env!("CARGO_BIN_EXE_stampede"))
        .args(["sweep", "promote"])
        .arg(&shrunk)
        .arg("--to")
        .arg(dir.join("corpus"))
        .output()
        .unwrap();
    assert_eq!(promote.status.code(), Some(0), "{promote:?}");
    let promoted = dir.join("corpus/invalid_sql_costs_nothing/invalid-sql-naive-seed-1.yaml");
    let s = stampede::input::scenario::load(&promoted).unwrap();
    assert_eq!(s.expect.violated.len(), 1);
    let run = Command::new(env!("CARGO_BIN_EXE_stampede"))
        .arg("run")
        .arg(&promoted)
        .arg("--out")
        .arg(dir.join("promoted-run"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "the failure is expected");
    let _ = file;
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn inconclusive_runs_are_counted_apart_or_failed_on_request() {
    let dir = scratch("inconclusive");
    // smoke, listing `never_frozen` with no reason for its never being reached, and
    // `failback_ramp`, which no outage lets decide; `no_lost_queries` is not reached either
    // (nothing goes wrong), but the file says why.
    let text = format!(
        "name: undecided\nseed: 7\nduration: 3m\ntick: 20ms\nworld:\n  regions: [eu-west-1]\n  lakes: {{ count: 20, tenants: 4, files_per_lake: 1, rows_per_file: 50, shared: true }}\ntraffic:\n  replay: {}\ninvariants: [no_lost_queries, never_frozen, failback_ramp]\nexpect:\n  unreached:\n    no_lost_queries: a quiet run\n",
        crate::scenario("traces/smoke.jsonl").display()
    );
    std::fs::write(dir.join("undecided.yaml"), text).unwrap();
    let args = ["undecided.yaml", "--seeds", "1..2", "--shrink-budget", "0"];
    let (code, text) = sweep(&dir, &[&args[..], &["--out", "apart"]].concat());
    assert_eq!(code, 0, "counted apart, not failed: {text}");
    assert!(
        text.contains("0 passed, 0 failed (0 crashed or timed out), 2 inconclusive"),
        "{text}"
    );
    let s = read_json(&dir.join("apart/sweep.json"));
    let undecided = &s["records"][0]["inconclusive"];
    assert!(
        undecided["failback_ramp"]
            .as_str()
            .unwrap()
            .contains("no region came back")
    );
    assert!(
        undecided["never_frozen"]
            .as_str()
            .unwrap()
            .contains("without its state being reached")
    );
    assert!(undecided.get("no_lost_queries").is_none());
    let summary = std::fs::read_to_string(dir.join("apart/summary.md")).unwrap();
    assert!(
        summary.contains("| undecided | never_frozen | 1, 2 |"),
        "{summary}"
    );
    let junit = std::fs::read_to_string(dir.join("apart/junit.xml")).unwrap();
    // Both undecided invariants, and determinism (no seed re-checked).
    assert!(junit.contains("skipped=\"3\""), "{junit}");
    assert!(
        junit.contains("<skipped message=\"inconclusive on every seed: passed without its state"),
        "{junit}"
    );
    let (code, text) = sweep(
        &dir,
        &[&args[..], &["--out", "failed", "--fail-inconclusive"]].concat(),
    );
    assert_eq!(code, 1, "{text}");
    let junit = std::fs::read_to_string(dir.join("failed/junit.xml")).unwrap();
    assert!(
        junit.contains("2/2 seeds were inconclusive on it: 1, 2"),
        "{junit}"
    );
}

/// Sweeps `text` as `knob.yaml` on seed 1, shrinking within `budget` runs, and returns
/// `sweep.json`; the sweep must fail.
fn failing_sweep_of(dir: &Path, text: &str, budget: &str) -> Value {
    std::fs::write(dir.join("knob.yaml"), text).unwrap();
    let args = [
        "knob.yaml",
        "--seeds",
        "1..1",
        "--out",
        "out",
        "--shrink-budget",
        budget,
    ];
    let (code, text) = sweep(dir, &args);
    assert_eq!(code, 1, "{text}");
    read_json(&dir.join("out/sweep.json"))
}

/// GetObject failing for a minute under a swarm that draws `max_attempts: 4`, without the
/// retry budget: `attempt_cap` and `retry_amplification` both fail.
const KNOB: &str = "name: knob\nseed: 7\nduration: 2m\ntick: 20ms\nworld:\n  regions: [eu-west-1]\n  lakes: { count: 20, tenants: 4, files_per_lake: 1, rows_per_file: 20, shared: true }\nsystem:\n  preset: hardened\n  workers_per_region: 2\n  switches: { retry_budget: false }\ntraffic:\n  generate: { poisson: { rate_per_s: 0.5, duration: 90s } }\n  query: { tenant: tenant-00, user: analyst, sql: \"SELECT count(*) AS n FROM telemetry\", lakes: all }\nswarm:\n  faults:\n    - { action: api.errors, p: 1, at: 10s, for: 60s, api: GetObject, fraction: 0.7 }\n  tuning:\n    max_attempts: 4\n    task_concurrency: 8\ninvariants: [attempt_cap, retry_amplification]\n";

#[test]
fn shrinking_returns_drawn_tuning_to_the_files_values_and_names_what_it_keeps() {
    let dir = scratch("tuning");
    // GetObject failing for a minute: four attempts (the drawn `max_attempts`) break
    // `attempt_cap`'s three, the preset's three do not; the drawn `task_concurrency` plays
    // no part. Without the retry budget, which would rarely grant one operation three retries.
    let text = KNOB.replace("[attempt_cap, retry_amplification]", "[attempt_cap]");
    let s = failing_sweep_of(&dir, &text, "5");
    let record = &s["records"][0];
    assert_eq!(
        record["shrink"][0]["kept_tuning"],
        serde_json::json!({"max_attempts": 4})
    );
    let shrunk = dir.join("out").join(record["shrunk"][0].as_str().unwrap());
    let yaml = std::fs::read_to_string(&shrunk).unwrap();
    assert!(
        yaml.contains(
            "# Drawn tuning it still needs (the file's own value made it pass): max_attempts: 4."
        ),
        "{yaml}"
    );
    let small = stampede::input::scenario::load(&shrunk).unwrap();
    assert_eq!(
        small.system.tuning.get("max_attempts"),
        Some(&serde_json::json!(4))
    );
    assert_eq!(small.system.tuning.get("task_concurrency"), None, "{yaml}");
}

/// A record without what differs between machines and directories.
fn comparable(mut r: Value) -> Value {
    r.as_object_mut().unwrap().remove("wall_s");
    r
}

#[test]
fn shards_merged_equal_the_sweep_run_whole() {
    let dir = scratch("shards");
    naive_without_expect(&dir);
    let smoke = crate::scenario("smoke.yaml");
    let smoke = smoke.to_str().unwrap();
    let common = [
        "naive.yaml",
        smoke,
        "--seeds",
        "1..2",
        "--shrink-budget",
        "0",
        "--recheck",
        "0.5",
    ];
    let run = |extra: &[&str]| {
        let mut args: Vec<&str> = common.to_vec();
        args.extend(extra);
        sweep(&dir, &args)
    };
    assert_eq!(run(&["--out", "whole"]).0, 1);
    assert_eq!(run(&["--out", "a", "--shard", "1/2"]).0, 1);
    assert_eq!(run(&["--out", "b", "--shard", "2/2", "--jobs", "1"]).0, 1);
    let (code, text) = sweep(&dir, &["merge", "b", "a", "--out", "merged"]);
    assert_eq!(code, 1, "{text}");
    let records = |d: &str| -> Vec<Value> {
        read_json(&dir.join(d).join("sweep.json"))["records"]
            .as_array()
            .unwrap()
            .iter()
            .cloned()
            .map(comparable)
            .collect()
    };
    let (a, b) = (records("a"), records("b"));
    assert_eq!((a.len(), b.len()), (2, 2));
    assert_eq!(records("merged"), records("whole"));
    let junit = |d: &str| {
        let text = std::fs::read_to_string(dir.join(d).join("junit.xml")).unwrap();
        // Suite times are wall times.
        text.lines()
            .map(|l| l.split(" time=").next().unwrap_or(l).to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(junit("merged"), junit("whole"));
    // A shard missing, or given twice, is an error.
    let (code, text) = sweep(&dir, &["merge", "a", "--out", "m2"]);
    assert_eq!(code, 64, "{text}");
    assert!(text.contains("shards missing: 2/2"), "{text}");
    let (code, text) = sweep(&dir, &["merge", "a", "a", "b", "--out", "m3"]);
    assert_eq!(code, 64);
    assert!(text.contains("given twice"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_seeds_and_shards_are_refused_before_anything_runs() {
    let dir = scratch("bad");
    naive_without_expect(&dir);
    for (args, says) in [
        (
            vec!["naive.yaml", "--seeds", "5..2"],
            "write the smaller seed first (2..5)",
        ),
        (
            vec!["naive.yaml", "--shard", "3/2"],
            "shards count from 1/2 to 2/2",
        ),
        (
            vec!["naive.yaml", "--recheck", "1.5"],
            "not a share between 0 and 1",
        ),
        (vec!["missing.yaml"], "missing.yaml"),
    ] {
        let (code, text) = sweep(&dir, &args);
        assert_eq!(code, 64, "{args:?}: {text}");
        assert!(text.contains(says), "{args:?}: {text}");
    }
    assert!(!dir.join("runs").exists(), "nothing ran");
    let _ = std::fs::remove_dir_all(dir);
}

/// A stand-in for the `stampede` binary: a shell script with `body`.
#[cfg(unix)]
fn fake_exe(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let exe = dir.join("fake-stampede");
    std::fs::write(&exe, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    exe
}

#[cfg(unix)]
#[test]
fn a_run_that_panics_or_hangs_is_a_failed_record_and_the_sweep_goes_on() {
    use stampede::commands::sweep::{Ending, Options, sweep};
    let dir = scratch("crash");
    let file = naive_without_expect(&dir);
    let opts = |exe: PathBuf, out: &str| Options {
        files: vec![file.clone()],
        names: vec!["invalid-sql-naive".into()],
        seeds: "1..2".parse().unwrap(),
        shard: stampede::commands::sweep::Shard::ALL,
        jobs: 2,
        recheck: 0.0,
        timeout: std::time::Duration::from_millis(300),
        out: dir.join(out),
        exe,
        replay_prefix: "stampede".into(),
        keep_logs: false,
        shrink_budget: 5,
        fail_inconclusive: false,
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let panics = fake_exe(
        &dir,
        "echo \"thread 'main' panicked at harness/src/world.rs:1:1:\" >&2; echo 'a host ran away' >&2; exit 101",
    );
    let s = sweep(&opts(panics, "panics"), &stop).unwrap();
    assert_eq!(s.records.len(), 2);
    for r in &s.records {
        assert_eq!(r.ending, Ending::Crashed);
        let error = r.error.as_deref().unwrap();
        assert!(
            error.starts_with("the run exited with code 101:"),
            "{error}"
        );
        assert!(error.contains("a host ran away"), "{error}");
        assert!(r.failed() && r.shrunk.is_empty());
    }
    let junit = stampede::commands::sweep::report::junit_xml(&s);
    assert!(
        junit.contains("2/2 seeds crashed or timed out: 1, 2"),
        "{junit}"
    );
    let hangs = fake_exe(&dir, "exec sleep 30");
    let s = sweep(&opts(hangs, "hangs"), &stop).unwrap();
    assert_eq!(s.records.len(), 2);
    assert!(s.records.iter().all(|r| r.ending == Ending::TimedOut));
    assert!(
        s.records[0].error.as_deref().unwrap().contains("300ms"),
        "{:?}",
        s.records[0].error
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_swarm_scenario_draws_its_schedule_from_the_seed_and_records_it_concrete() {
    let file = crate::scenario("swarm/provider-faults-hardened.yaml");
    let schedule = |seed: u64| {
        let mut p = stampede::prepare(&file).unwrap();
        let drawn = p.draw_swarm(seed).unwrap().unwrap();
        assert!(p.scenario.swarm.is_none(), "concrete from here on");
        assert_eq!(p.scenario.faults, drawn.faults);
        // Written back, the concrete scenario is a plain file that reads back the same.
        let yaml = stampede::input::scenario::to_yaml(&p.scenario);
        assert!(!yaml.contains("swarm:"));
        let back = stampede::input::scenario::parse(&file, &yaml).unwrap();
        assert_eq!(back.faults, drawn.faults);
        (drawn.faults, p.scenario.system.tuning)
    };
    assert_eq!(schedule(4), schedule(4));
    let distinct: std::collections::BTreeSet<String> = (1..=8)
        .map(|seed| format!("{:?}", schedule(seed)))
        .collect();
    assert!(
        distinct.len() >= 7,
        "{} distinct schedules of 8",
        distinct.len()
    );
}

/// The shards a CI file's command line covers: `SHARD=<expr>/N` with the indices it takes.
fn shard_line(text: &str) -> (String, u64) {
    let at = text.find("SHARD=").expect("a SHARD= assignment");
    let rest = &text[at + "SHARD=".len()..];
    let (expr, n) = rest.split_once('/').unwrap();
    let n: u64 = n
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap();
    (expr.to_string(), n)
}

#[test]
fn the_nightly_ci_files_run_every_shard_once() {
    let yaml = |rel: &str| -> Value {
        serde_saphyr::from_str(&std::fs::read_to_string(crate::repo(rel)).unwrap()).unwrap()
    };
    // GitHub Actions: a matrix of shard numbers, each passed as SHARD=I/N.
    let gh = yaml("ci/github/nightly.yml");
    let job = &gh["jobs"]["shard"];
    assert_eq!(job["strategy"]["fail-fast"], false);
    let shards: Vec<u64> = job["strategy"]["matrix"]["shard"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let run = job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|s| s["run"].as_str().filter(|r| r.contains("SHARD=")))
        .unwrap();
    let (expr, n) = shard_line(run);
    assert_eq!(expr, "${{ matrix.shard }}");
    assert_eq!(shards, (1..=n).collect::<Vec<_>>());
    assert_eq!(gh["jobs"]["merge"]["needs"], "shard");
    assert_eq!(gh["jobs"]["merge"]["if"], "always()");
    // Kubernetes: an Indexed Job whose index 0..N-1 becomes shard index + 1 of N.
    let k8s = yaml("ci/k8s/sweep-job.yaml");
    assert_eq!(k8s["spec"]["completionMode"], "Indexed");
    let completions = k8s["spec"]["completions"].as_u64().unwrap();
    let args = k8s["spec"]["template"]["spec"]["containers"][0]["args"][0]
        .as_str()
        .unwrap();
    let (expr, n) = shard_line(args);
    assert_eq!(expr, "$((JOB_COMPLETION_INDEX + 1))");
    assert_eq!(n, completions);
    let covered: Vec<String> = (0..completions)
        .map(|index| format!("{}/{n}", index + 1))
        .collect();
    for s in &covered {
        assert!(s.parse::<stampede::commands::sweep::Shard>().is_ok(), "{s}");
    }
    // What a nightly runs: every incident and mechanism twin, on seeds 1 to 20 at least.
    let nightly = std::fs::read_to_string(crate::repo("ci/nightly.sh")).unwrap();
    for glob in [
        "scenarios/incidents/*/*.yaml",
        "scenarios/mechanisms/*/*.yaml",
    ] {
        assert!(nightly.contains(glob), "{glob}");
    }
    assert!(nightly.contains("SEEDS:-1..20"));
}

#[test]
fn a_run_failing_two_invariants_is_shrunk_for_each() {
    let dir = scratch("two");
    let s = failing_sweep_of(&dir, KNOB, "2");
    let r = &s["records"][0];
    assert_eq!(
        r["unexpected"],
        serde_json::json!(["attempt_cap", "retry_amplification"])
    );
    assert_eq!(
        r["shrunk"],
        serde_json::json!([
            "shrunk/knob-seed-1-attempt_cap.yaml",
            "shrunk/knob-seed-1-retry_amplification.yaml"
        ])
    );
    for (k, invariant) in ["attempt_cap", "retry_amplification"].iter().enumerate() {
        assert_eq!(r["shrink"][k]["invariant"], *invariant);
        let file = dir.join("out").join(r["shrunk"][k].as_str().unwrap());
        let yaml = std::fs::read_to_string(&file).unwrap();
        assert!(
            yaml.contains(&format!("invariants:\n- {invariant}\n")),
            "{yaml}"
        );
    }
    // The summary points each invariant's row at its own shrunk file.
    let summary = std::fs::read_to_string(dir.join("out/summary.md")).unwrap();
    let row = summary
        .lines()
        .find(|l| l.starts_with("| knob | retry_amplification |"))
        .unwrap();
    assert!(
        row.contains("shrunk/knob-seed-1-retry_amplification.yaml"),
        "{row}"
    );
}
