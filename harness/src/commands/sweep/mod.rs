//! `stampede sweep`: many (scenario, seed) runs, J at a time, each in its own process, with a
//! share re-simulated to check determinism; records, JUnit and a summary that group failures
//! by scenario and invariant; shards that merge into the same result.
//!
//! Each run is the `run` command in a child process: a run that panics, aborts or hangs is a
//! failed record, and the sweep goes on. Children run in their own process group, so Ctrl-C
//! reaches the sweep alone, which stops them and keeps what finished.

pub mod command;
pub mod plan;
pub mod record;
pub mod report;
pub mod shrink;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::world::clock::WallTimer;
pub use plan::{Job, Seeds, Shard};
pub use record::{Ending, Recheck, Record, RunDir};

/// How a sweep runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The scenario files, in the order given.
    pub files: Vec<PathBuf>,
    /// Their names (each file's `name`), in the same order. Two files of one name are told
    /// apart as `name`, `name-2`, ... in records, reports and run directories.
    pub names: Vec<String>,
    /// The seeds.
    pub seeds: Seeds,
    /// Which shard of the pairs to run.
    pub shard: Shard,
    /// How many runs at once.
    pub jobs: usize,
    /// The share of runs simulated twice to check determinism.
    pub recheck: f64,
    /// The longest one run may take, in wall time.
    pub timeout: Duration,
    /// The sweep's directory.
    pub out: PathBuf,
    /// The `stampede` binary each run is a `run` of.
    pub exe: PathBuf,
    /// How the replay command starts: `stampede`, or `cargo run -p stampede --`.
    pub replay_prefix: String,
    /// Keep every run's event log, not only those of failed runs.
    pub keep_logs: bool,
    /// The most runs shrinking one failure may take; 0 shrinks nothing.
    pub shrink_budget: u32,
    /// Whether an inconclusive run fails the sweep.
    pub fail_inconclusive: bool,
}

/// What `sweep.json` says about the sweep itself; its records follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// The format's version.
    pub version: u32,
    /// The scenario files, as given.
    pub files: Vec<String>,
    /// Their names.
    pub scenarios: Vec<String>,
    /// The seeds, as `A..B` or a list.
    pub seeds: String,
    /// The shard this directory holds (`1/1` for a whole or merged sweep).
    pub shard: Shard,
    /// The share of runs re-checked.
    pub recheck: f64,
    /// Whether an inconclusive run fails the sweep (`--fail-inconclusive`); counted apart
    /// otherwise.
    #[serde(default)]
    pub fail_inconclusive: bool,
}

/// A sweep's outcome: its header, its records in canonical order, and whether Ctrl-C cut it
/// short.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// What ran.
    #[serde(flatten)]
    pub header: Header,
    /// Whether it was stopped before every run was done.
    pub interrupted: bool,
    /// Wall time of the whole sweep, in seconds.
    pub wall_s: f64,
    /// How many runs at once.
    pub jobs: usize,
    /// One per finished run, in canonical order.
    pub records: Vec<Record>,
}

impl Sweep {
    /// Whether any run failed, or was inconclusive when the sweep fails those.
    pub fn failed(&self) -> bool {
        self.records.iter().any(|r| self.fails(r))
    }

    /// Whether this run fails the sweep: it failed, or it was inconclusive and the sweep fails
    /// those.
    pub fn fails(&self, r: &Record) -> bool {
        r.failed() || (self.header.fail_inconclusive && r.is_inconclusive())
    }
}

/// The version of `sweep.json`.
pub const FORMAT_VERSION: u32 = 1;

/// The run directory of a job, relative to the sweep's.
fn run_dir(slug: &str, seed: u64) -> String {
    format!("runs/{slug}/seed-{seed}")
}

/// How a child process ended.
pub(crate) enum ChildEnd {
    Exited(Option<i32>),
    TimedOut,
    Stopped,
    NotStarted(String),
}

/// Runs `exe run FILE --seed N --out DIR [EXTRA...]`, its stderr to `DIR.stderr`, until it
/// ends, the timeout passes, or `stop` is set.
pub(crate) fn run_child(
    exe: &Path,
    file: &Path,
    seed: u64,
    extra: &[String],
    dir: &Path,
    timeout: Duration,
    stop: &AtomicBool,
) -> ChildEnd {
    if let Some(parent) = dir.parent()
        && let Err(e) = std::fs::create_dir_all(parent)
    {
        return ChildEnd::NotStarted(format!("creating {}: {e}", parent.display()));
    }
    let stderr = match std::fs::File::create(dir.with_extension("stderr")) {
        Ok(f) => f,
        Err(e) => return ChildEnd::NotStarted(format!("creating the run's stderr file: {e}")),
    };
    let mut command = Command::new(exe);
    command
        .arg("run")
        .arg(file)
        .arg("--seed")
        .arg(seed.to_string())
        .arg("--out")
        .arg(dir)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    #[cfg(unix)]
    {
        // Its own process group: Ctrl-C in the terminal reaches the sweep, not the runs.
        use std::os::unix::process::CommandExt as _;
        command.process_group(0);
    }
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => return ChildEnd::NotStarted(format!("starting {}: {e}", exe.display())),
    };
    let timer = WallTimer::start();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return ChildEnd::Exited(status.code()),
            Ok(None) => {}
            Err(e) => return ChildEnd::NotStarted(format!("waiting for the run: {e}")),
        }
        let stopped = stop.load(Ordering::Relaxed);
        if stopped || timer.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return if stopped {
                ChildEnd::Stopped
            } else {
                ChildEnd::TimedOut
            };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last lines of a run's stderr: where a panic says what happened.
pub(crate) fn stderr_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.with_extension("stderr")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(12)..];
    tail.join("\n")
}

/// The first line where two event logs differ: its number (from 1) and both lines.
fn first_difference(a: &Path, b: &Path) -> Option<serde_json::Value> {
    let a = std::fs::read_to_string(a.join("events.jsonl")).ok()?;
    let b = std::fs::read_to_string(b.join("events.jsonl")).ok()?;
    let (mut la, mut lb) = (a.lines(), b.lines());
    let mut n = 0u64;
    loop {
        n += 1;
        match (la.next(), lb.next()) {
            (None, None) => return None,
            (x, y) if x == y => {}
            (x, y) => {
                return Some(serde_json::json!({ "line": n, "first": x, "second": y }));
            }
        }
    }
}

/// Runs one job and makes its record; `None` when the sweep was stopped under it.
fn run_job(opts: &Options, slugs: &[String], job: &Job, stop: &AtomicBool) -> Option<Record> {
    let file = &opts.files[job.scenario];
    let slug = &slugs[job.scenario];
    let rel = run_dir(slug, job.seed);
    let dir = opts.out.join(&rel);
    let timer = WallTimer::start();
    let end = run_child(&opts.exe, file, job.seed, &[], &dir, opts.timeout, stop);
    let wall_s = timer.elapsed().as_secs_f64();
    let mut record = Record {
        index: job.index,
        scenario: slugs[job.scenario].clone(),
        file: file.display().to_string(),
        seed: job.seed,
        ending: Ending::Ran,
        digest: None,
        verdicts: Default::default(),
        unexpected: Vec::new(),
        held_unexpectedly: Vec::new(),
        witnesses: Default::default(),
        inconclusive: Default::default(),
        faults: serde_json::Value::Null,
        wall_s,
        virtual_s: 0.0,
        replay: format!(
            "{} run {} --seed {}",
            opts.replay_prefix,
            file.display(),
            job.seed
        ),
        run_dir: rel.clone(),
        error: None,
        recheck: None,
        shrunk: Vec::new(),
        shrink: Vec::new(),
    };
    let forget = |dir: &Path| {
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_file(dir.with_extension("stderr"));
    };
    let read = match end {
        ChildEnd::Stopped => {
            forget(&dir);
            return None;
        }
        ChildEnd::TimedOut => Err((
            Ending::TimedOut,
            format!(
                "ran past the sweep's limit of {} wall time and was stopped",
                humantime::format_duration(opts.timeout)
            ),
        )),
        ChildEnd::NotStarted(e) => Err((Ending::Crashed, e)),
        // 0 pass, 1 violated, 2 threshold, 3 inconclusive: the run was checked.
        ChildEnd::Exited(Some(0..=3)) => {
            RunDir::read(&dir).map_err(|e| (Ending::Crashed, format!("the run ended but {e}")))
        }
        ChildEnd::Exited(code) => {
            let how = code.map_or("was killed by a signal".to_string(), |c| {
                format!("exited with code {c}")
            });
            let tail = stderr_tail(&dir);
            Err((
                Ending::Crashed,
                if tail.is_empty() {
                    format!("the run {how}")
                } else {
                    format!("the run {how}:\n{tail}")
                },
            ))
        }
    };
    match read {
        Ok(run) => {
            let (unexpected, held) = run.surprises();
            record.digest = Some(run.digest.clone());
            record.unexpected = unexpected;
            record.held_unexpectedly = held;
            record.verdicts = run.verdicts;
            record.witnesses = run.witnesses;
            record.inconclusive = run.inconclusive;
            record.faults = run.faults;
            record.virtual_s = run.virtual_s;
        }
        Err((ending, error)) => {
            record.ending = ending;
            record.error = Some(error);
        }
    }
    if record.ending == Ending::Ran && plan::rechecked(&record.scenario, job.seed, opts.recheck) {
        let again = opts.out.join(format!("{rel}-recheck"));
        let digest = match run_child(&opts.exe, file, job.seed, &[], &again, opts.timeout, stop) {
            ChildEnd::Stopped => {
                forget(&dir);
                forget(&again);
                return None;
            }
            ChildEnd::Exited(Some(0..=3)) => RunDir::read(&again).ok().map(|r| r.digest),
            _ => None,
        };
        let matches = digest.as_deref() == record.digest.as_deref();
        record.recheck = Some(Recheck {
            first_difference: (!matches).then(|| first_difference(&dir, &again)).flatten(),
            digest,
            matches,
        });
        if matches {
            let _ = std::fs::remove_dir_all(&again);
            let _ = std::fs::remove_file(again.with_extension("stderr"));
        }
    }
    if !record.failed() && !opts.keep_logs {
        // What a passing run leaves: its verdicts and configuration, not its log.
        for name in ["events.jsonl", "audit.jsonl"] {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }
    let stderr = dir.with_extension("stderr");
    if std::fs::metadata(&stderr).is_ok_and(|m| m.len() == 0) {
        let _ = std::fs::remove_file(stderr);
    }
    Some(record)
}

/// Shrinks every run that failed an invariant unexpectedly, `opts.jobs` at a time, and
/// writes each result as `shrunk/<scenario>-seed-<N>.yaml`.
fn shrink_failures(opts: &Options, slugs: &[String], records: &mut [Record], stop: &AtomicBool) {
    if opts.shrink_budget == 0 {
        return;
    }
    // Each failed invariant of each failed run, shrunk apart: a run that failed two
    // invariants may fail them for two causes.
    let todo: Vec<(usize, usize)> = (0..records.len())
        .filter(|&i| records[i].ending == Ending::Ran)
        .flat_map(|i| (0..records[i].unexpected.len()).map(move |k| (i, k)))
        .collect();
    if todo.is_empty() {
        return;
    }
    let dir = opts.out.join("shrunk");
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let progress = std::sync::Mutex::new(Progress::with_unit(todo.len(), "failures shrunk"));
    let next = AtomicUsize::new(0);
    // (record, which of its failed invariants), the shrunk file, the shrinking.
    type Done = ((usize, usize), String, shrink::Shrunk);
    let results: std::sync::Mutex<Vec<Done>> = Default::default();
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.max(1).min(todo.len()) {
            let (todo, next, records, dir) = (&todo, &next, &*records, &dir);
            let (results, progress) = (&results, &progress);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(i, which)) = todo.get(k) else {
                        break;
                    };
                    let r = &records[i];
                    let slug = &slugs[plan_position(opts, r)];
                    let done = shrink_one(opts, r, which, slug, dir, stop);
                    if let Ok(mut p) = progress.lock() {
                        p.shrunk(r, done.as_ref().map(|(_, s)| s));
                    }
                    if let Some((file, s)) = done {
                        results.lock().expect("no panics under the lock").push((
                            (i, which),
                            file,
                            s,
                        ));
                    }
                }
            });
        }
    });
    if let Ok(p) = progress.lock() {
        p.close();
    }
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|(at, _, _)| *at);
    for ((i, _), file, s) in results {
        records[i].shrunk.push(file);
        records[i].shrink.push(s);
    }
}

/// Which of the sweep's scenarios a record ran.
fn plan_position(opts: &Options, r: &Record) -> usize {
    (r.index / opts.seeds.list().len().max(1) as u64) as usize
}

/// Shrinks one failed run for its `which`th failed invariant; returns the shrunk file
/// (relative to the sweep's directory).
fn shrink_one(
    opts: &Options,
    r: &Record,
    which: usize,
    slug: &str,
    dir: &Path,
    stop: &AtomicBool,
) -> Option<(String, shrink::Shrunk)> {
    let invariant = r.unexpected.get(which)?;
    let run_json = std::fs::read_to_string(opts.out.join(&r.run_dir).join("run.json")).ok()?;
    let run: serde_json::Value = serde_json::from_str(&run_json).ok()?;
    let mut s: crate::input::scenario::Scenario =
        serde_json::from_value(run["scenario"].clone()).ok()?;
    // Files the scenario names are relative to it: make them relative to the shrunk file.
    shrink::rebase(
        &mut s,
        Path::new(&r.file).parent().unwrap_or(Path::new(".")),
        dir,
    );
    // The tuning knobs the swarm drew, each with the file's own value.
    let file = crate::input::scenario::load(Path::new(&r.file)).ok()?;
    let drawn: std::collections::BTreeMap<String, Option<serde_json::Value>> =
        run["swarm"]["tuning"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| (k.clone(), file.system.tuning.get(k).cloned()))
            .collect();
    // One invariant keeps the name it always had; several are told apart by theirs.
    let stem = if r.unexpected.len() > 1 {
        format!("{slug}-seed-{}-{invariant}", r.seed)
    } else {
        format!("{slug}-seed-{}", r.seed)
    };
    let (small, done) = shrink::shrink(
        &s,
        &drawn,
        invariant,
        r.seed,
        &opts.exe,
        dir,
        &stem,
        opts.shrink_budget,
        opts.timeout,
        stop,
    )?;
    let name = format!("{stem}.yaml");
    let kept = if done.kept_tuning.is_empty() {
        String::new()
    } else {
        let knobs: Vec<String> = done
            .kept_tuning
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        format!(
            "# Drawn tuning it still needs (the file's own value made it pass): {}.\n",
            knobs.join(", ")
        )
    };
    let header = format!(
        "# Shrunk by `stampede sweep` from {} with seed {}: `{invariant}` fails.\n\
         # {} faults and operator actions before, {} after; {} runs{}.\n\
         {kept}\
         # Replay: {} run {} --seed {}\n",
        r.file,
        r.seed,
        done.faults_before,
        done.faults_after,
        done.runs,
        if done.budget_spent {
            " (the budget ran out: it may shrink further)"
        } else {
            ""
        },
        opts.replay_prefix,
        dir.join(&name).display(),
        r.seed,
    );
    let text = format!("{header}{}", crate::input::scenario::to_yaml(&small));
    write_whole(&dir.join(&name), &text).ok()?;
    Some((format!("shrunk/{name}"), done))
}

/// Shows a sweep's progress: a bar on a terminal, one plain line per run otherwise.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    done: usize,
    failed: usize,
}

impl Progress {
    /// Progress over `total` runs; a bar when stderr is a terminal.
    pub fn new(total: usize) -> Self {
        Self::with_unit(total, "runs")
    }

    /// Progress over `total` things called `unit`.
    pub fn with_unit(total: usize, unit: &str) -> Self {
        use std::io::IsTerminal as _;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            let style = indicatif::ProgressStyle::with_template(&format!(
                "{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {unit}, {{msg}}, ETA {{eta}}"
            ))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message("0 failed");
            bar
        });
        Self {
            bar,
            total,
            done: 0,
            failed: 0,
        }
    }

    fn finished(&mut self, r: &Record) {
        self.done += 1;
        self.failed += usize::from(r.failed());
        let line = format!(
            "[{}/{}] {} seed {}: {} ({:.1}s)",
            self.done,
            self.total,
            r.scenario,
            r.seed,
            report::outcome_words(r),
            r.wall_s
        );
        match &self.bar {
            Some(bar) => {
                if r.failed() {
                    bar.println(line);
                }
                bar.set_message(format!("{} failed", self.failed));
                bar.inc(1);
            }
            None => println!("{line}"),
        }
    }

    fn shrunk(&mut self, r: &Record, s: Option<&shrink::Shrunk>) {
        self.done += 1;
        let line = match s {
            Some(s) => format!(
                "[{}/{}] {} seed {}: {} shrunk from {} faults to {} in {} runs",
                self.done,
                self.total,
                r.scenario,
                r.seed,
                s.invariant,
                s.faults_before,
                s.faults_after,
                s.runs
            ),
            None => format!(
                "[{}/{}] {} seed {}: the failure did not come back with only its invariant: not shrunk",
                self.done, self.total, r.scenario, r.seed
            ),
        };
        match &self.bar {
            Some(bar) => {
                bar.println(line);
                bar.inc(1);
            }
            None => println!("{line}"),
        }
    }

    /// One finished item, told in `text`: printed above the bar when it `failed`, else only
    /// counted; one plain line per item off a terminal.
    pub fn line(&mut self, text: &str, failed: bool) {
        self.done += 1;
        self.failed += usize::from(failed);
        let line = format!("[{}/{}] {text}", self.done, self.total);
        match &self.bar {
            Some(bar) => {
                if failed {
                    bar.println(line);
                }
                bar.set_message(format!("{} failed", self.failed));
                bar.inc(1);
            }
            None => println!("{line}"),
        }
    }

    /// Clears the bar.
    pub fn close(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Writes `contents` to `path` through a temporary file beside it: never half a file.
pub fn write_whole(path: &Path, contents: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

/// Runs the sweep: every job of the shard, `opts.jobs` at a time, until done or `stop` is set.
/// Records go to `records.jsonl` as runs finish, so an interrupted sweep keeps them.
pub fn sweep(opts: &Options, stop: &AtomicBool) -> std::io::Result<Sweep> {
    std::fs::create_dir_all(&opts.out)?;
    let slugs = plan::slugs(&opts.names);
    let jobs = plan::jobs(opts.files.len(), &opts.seeds, opts.shard);
    let mut progress = Progress::new(jobs.len());
    let timer = WallTimer::start();
    let mut ledger = std::fs::File::create(opts.out.join("records.jsonl"))?;
    let next = AtomicUsize::new(0);
    let mut records: Vec<Record> = Vec::new();
    let (tx, rx) = std::sync::mpsc::channel::<Record>();
    let mut written = Ok(());
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.max(1).min(jobs.len().max(1)) {
            let tx = tx.clone();
            let (jobs, next, slugs) = (&jobs, &next, &slugs);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    match run_job(opts, slugs, job, stop) {
                        Some(r) => {
                            if tx.send(r).is_err() {
                                break;
                            }
                        }
                        None => break,
                    }
                }
            });
        }
        drop(tx);
        for r in rx {
            if written.is_ok() {
                let line = serde_json::to_string(&r).expect("records serialise");
                written = writeln!(ledger, "{line}").and_then(|()| ledger.flush());
            }
            progress.finished(&r);
            records.push(r);
        }
    });
    progress.close();
    written?;
    records.sort_by_key(|r| r.index);
    shrink_failures(opts, &slugs, &mut records, stop);
    Ok(Sweep {
        header: Header {
            version: FORMAT_VERSION,
            files: opts.files.iter().map(|f| f.display().to_string()).collect(),
            scenarios: slugs.clone(),
            seeds: opts.seeds.to_string(),
            shard: opts.shard,
            recheck: opts.recheck,
            fail_inconclusive: opts.fail_inconclusive,
        },
        interrupted: stop.load(Ordering::Relaxed) && records.len() < jobs.len(),
        wall_s: timer.elapsed().as_secs_f64(),
        jobs: opts.jobs,
        records,
    })
}
