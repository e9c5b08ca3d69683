//! The `stampede` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use stampede::commands::output::{self, default_dir, write_run_dir};
use stampede::{Exit, RunError, prepare};

/// Chaos and load-replay harness for a data-lake query system, on a deterministic simulated
/// network.
///
/// Exit codes: 0 pass; 1 invariant violated; 2 threshold failed; 3 inconclusive;
/// 64 bad arguments or invalid scenario; 70 internal error.
#[derive(Debug, Parser)]
#[command(name = "stampede", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one scenario with one seed, check its invariants and write its run directory.
    Run {
        /// The scenario file (YAML).
        scenario: PathBuf,
        /// The seed; defaults to the scenario's own.
        #[arg(long)]
        seed: Option<u64>,
        /// Where to write the run directory (report.html, report.md, results.json, junit.xml,
        /// events.jsonl, run.json) [default: runs/<name>/seed-<seed>]
        #[arg(long)]
        out: Option<PathBuf>,
        /// Multiply the traffic's load (`traffic.load`) by this, e.g. 2 for twice the queries
        #[arg(long, value_name = "MULTIPLIER")]
        load: Option<f64>,
    },
    /// Compare two run directories side by side (twins on one seed, most often): verdicts in
    /// two columns, deltas, one timeline, overlaid charts.
    ///
    /// Writes OUT/compare.html and OUT/compare.md and prints the Markdown. Runs of different
    /// scenarios are compared as far as they can be, and the page says how they differ.
    /// Exit codes: 0 written; 64 a directory is not a run directory; 70 internal error.
    Compare {
        /// The first run directory (drawn dashed): the naive twin, say.
        a: PathBuf,
        /// The second run directory (drawn solid): the hardened twin, say.
        b: PathBuf,
        /// Where to write the pages [default: runs/compare/<A's name>-vs-<B's name>-seed-<N>]
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run one scenario's traffic at rising load multipliers, on one or more seeds, and find
    /// where it stops keeping up: the knee, a USL fit, and the first load at which each
    /// invariant breaks.
    ///
    /// Writes DIR/capacity.json, DIR/capacity.html and DIR/runs/load-<X>/seed-<N>/ (each run's
    /// directory). Exit codes: 0 the ladder ran (whatever broke: that is its finding); 64 bad
    /// arguments or scenario; 70 internal error; 130 stopped by Ctrl-C.
    Capacity {
        /// The scenario file (YAML); its traffic is what gets scaled.
        scenario: PathBuf,
        /// The load multipliers, rising, e.g. 0.5,1,2,4,8
        #[arg(long, value_name = "LOADS", default_value = "0.5,1,2,4,8")]
        load: String,
        /// Seeds: `N`, `S..T` or `a,b,c`; several give error bars [default: the scenario's own]
        #[arg(long)]
        seeds: Option<stampede::commands::sweep::Seeds>,
        /// Runs at a time [default: the number of cores]
        #[arg(long)]
        jobs: Option<usize>,
        /// Where to write it; must not exist yet, or be empty [default: runs/capacity/<name>]
        #[arg(long)]
        out: Option<PathBuf>,
        /// The longest one run may take, e.g. 10m
        #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Run scenarios over many seeds, J at a time, and report failures grouped by scenario and
    /// invariant, each with the seeds that replay it.
    ///
    /// Writes DIR/sweep.json (one record per run), DIR/junit.xml (one suite per scenario, one
    /// case per invariant), DIR/summary.md, DIR/records.jsonl (records as runs finish) and
    /// DIR/runs/<scenario>/seed-<N>/ (each run's directory; the event log kept only for failed
    /// runs unless --keep-logs). Exit codes: 0 every run as expected; 1 some run failed
    /// (an invariant violated unexpectedly, an expected violation that held, a crash, a
    /// timeout, a determinism mismatch); 64 bad arguments or scenario; 70 internal error;
    /// 130 stopped by Ctrl-C (the finished runs are kept and reported).
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Sweep {
        #[command(subcommand)]
        command: Option<SweepCommand>,
        #[command(flatten)]
        args: SweepArgs,
    },
    /// Replay a scenario on its timeline as a gameday: it pauses at each fault, alert, freeze
    /// and annotation; type operator actions (`do admission.pause for=2m`), branch "what if"
    /// (`branch NAME`), and `compare` the branches.
    ///
    /// On a terminal it is interactive (`help` lists the commands); `--script FILE` reads the
    /// same commands from a file, one per line. Both write DIR/timeline.md (the story in
    /// virtual time, per branch, and the outcome table) and DIR/gameday.json when done.
    /// Exit codes: 0 done; 64 bad arguments, scenario or script; 70 internal error.
    Gameday {
        /// The scenario file (YAML), e.g. an incident's naive twin.
        scenario: PathBuf,
        /// The seed; defaults to the scenario's own.
        #[arg(long)]
        seed: Option<u64>,
        /// Read the commands from FILE instead of the terminal.
        #[arg(long, value_name = "FILE")]
        script: Option<PathBuf>,
        /// Where to write timeline.md and gameday.json [default: runs/gameday/<name>]
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check scenario files and the traces they replay, without running anything.
    Validate {
        /// Scenario files (YAML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Traces: import recorded traffic.
    Trace {
        #[command(subcommand)]
        command: TraceCommand,
    },
    /// The fake cloud provider, for real clients.
    Fakes {
        #[command(subcommand)]
        command: FakesCommand,
    },
}

#[derive(Debug, Subcommand)]
enum SweepCommand {
    /// Promote shrunk files (DIR/shrunk/*.yaml) into the regression corpus, which runs in
    /// `cargo test`: each goes to TO/<invariant>/, expecting that invariant to fail until the
    /// bug is fixed.
    Promote {
        /// Shrunk scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The corpus.
        #[arg(long, default_value = "scenarios/regressions")]
        to: PathBuf,
    },
    /// Merge the directories of a sweep's shards into one: the same sweep.json, junit.xml and
    /// summary as the sweep run whole. Every shard must be there.
    Merge {
        /// The shards' directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where to write the merged sweep; it must not exist yet, or be empty.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum FakesCommand {
    /// Serve the provider's services on 127.0.0.1 until stopped, and print the environment a
    /// client needs as `export` lines (`eval "$(stampede fakes serve &)"` style).
    Serve {
        /// A scenario file whose world (lakes, first region, provider quotas) and seed to serve
        /// [default: 20 lakes of 4 tenants in eu-west-1, seed 0]
        #[arg(long)]
        config: Option<PathBuf>,
        /// First port: S3 on it, then STS, IMDS, SQS and Glue on the next four [default: free ports]
        #[arg(long, default_value_t = 0)]
        port_base: u16,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage.into()
            } else {
                Exit::Pass.into()
            };
        }
    };
    match cli.command {
        Command::Run {
            scenario,
            seed,
            out,
            load,
        } => run_command(&scenario, seed, out, load),
        Command::Compare { a, b, out } => compare_command(&a, &b, out),
        Command::Capacity {
            scenario,
            load,
            seeds,
            jobs,
            out,
            timeout,
        } => capacity_command(&scenario, &load, seeds, jobs, out, timeout),
        Command::Sweep {
            command: Some(SweepCommand::Merge { dirs, out }),
            ..
        } => merge_command(&dirs, &out),
        Command::Sweep {
            command: Some(SweepCommand::Promote { files, to }),
            ..
        } => promote_command(&files, &to),
        Command::Sweep {
            command: None,
            args,
        } => sweep_command(args),
        Command::Validate { files } => validate_command(&files),
        Command::Gameday {
            scenario,
            seed,
            script,
            out,
        } => gameday_command(&scenario, seed, script.as_deref(), out),
        Command::Trace {
            command: TraceCommand::Import { cloudtrail, out },
        } => import_command(&cloudtrail, &out),
        Command::Fakes {
            command: FakesCommand::Serve { config, port_base },
        } => serve_command(config.as_deref(), port_base),
    }
}

fn run_command(
    path: &Path,
    seed: Option<u64>,
    out: Option<PathBuf>,
    load: Option<f64>,
) -> ExitCode {
    if let Some(l) = load
        && !(l.is_finite() && l > 0.0)
    {
        eprintln!("error: --load {l} is not above 0");
        return Exit::Usage.into();
    }
    let prepared = match stampede::prepare_scaled(path, load.unwrap_or(1.0)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage.into();
        }
    };
    let progress = run_progress(prepared.scenario.duration.0);
    let options = stampede::RunOptions {
        progress: progress.as_ref().map(|(p, _)| p.clone()),
        ..Default::default()
    };
    let outcome = stampede::run_with(prepared, seed, &options);
    if let Some((_, bar)) = progress {
        bar.finish_and_clear();
    }
    let report = match outcome {
        Ok(r) => r,
        Err(RunError::Input(e)) => {
            eprintln!("error: {e}");
            return Exit::Usage.into();
        }
        Err(e @ RunError::Sim(_)) => {
            eprintln!("internal error: {e}");
            return Exit::Internal.into();
        }
    };
    let dir = out.unwrap_or_else(|| default_dir(&report));
    let mut replay = replay_command(path, report.seed);
    if let Some(l) = load {
        replay.push_str(&format!(" --load {l}"));
    }
    let data = stampede::commands::report_data::run_data(&report, &replay);
    if let Err(e) = write_run_dir(&report, &data, &dir)
        .with_context(|| format!("writing run directory {}", dir.display()))
    {
        eprintln!("internal error: {e:#}");
        return Exit::Internal.into();
    }
    print!("{}", output::summary(&data, Some(&dir), &replay));
    // A pass whose state was never reached proves nothing, unless the file says why.
    for name in report.vacuous() {
        let state = report.sometimes.get(name).map_or("", |s| s.state);
        eprintln!(
            "inconclusive: {name} passed without its state being reached ({state}), and the scenario gives no reason under `expect.unreached`"
        );
    }
    if !report.unexpected().is_empty() {
        Exit::Violated.into()
    } else if !report.inconclusive().is_empty() || !report.vacuous().is_empty() {
        Exit::Inconclusive.into()
    } else {
        Exit::Pass.into()
    }
}

/// A progress bar of virtual time against `duration` and wall time, when stderr is a terminal
/// (a run of minutes is otherwise silent), and what tells it the virtual time.
fn run_progress(
    duration: std::time::Duration,
) -> Option<(stampede::world::Progress, indicatif::ProgressBar)> {
    use std::io::IsTerminal as _;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let total = duration.as_millis() as u64;
    let bar = indicatif::ProgressBar::new(total.max(1));
    let style = indicatif::ProgressStyle::with_template(
        "{elapsed_precise} wall [{bar:30}] {msg}, ETA {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    let shown = bar.clone();
    let mut pass = 1;
    let mut last = 0;
    let tell = move |now: std::time::Duration| {
        let ms = now.as_millis() as u64;
        if ms < last {
            // `deterministic` simulates a second time.
            pass += 1;
            shown.reset();
        }
        last = ms;
        shown.set_position(ms);
        let at = std::time::Duration::from_secs(now.as_secs());
        let second = if pass > 1 { " (second simulation)" } else { "" };
        shown.set_message(format!(
            "{} of {} virtual{second}",
            humantime::format_duration(at),
            humantime::format_duration(duration)
        ));
    };
    let progress: stampede::world::Progress = std::rc::Rc::new(std::cell::RefCell::new(tell));
    Some((progress, bar))
}

#[derive(Debug, Subcommand)]
enum TraceCommand {
    /// Turn AWS CloudTrail records into a provider trace: every recorded call becomes a call by
    /// a background account at its recorded time. Replay it with
    /// `world.provider.background.replay`.
    Import {
        /// CloudTrail files: `{"Records": [...]}` or one record per line, gzipped or not.
        #[arg(long, required = true, num_args = 1..)]
        cloudtrail: Vec<PathBuf>,
        /// The provider trace to write (JSON Lines).
        #[arg(long)]
        out: PathBuf,
    },
}

fn import_command(files: &[PathBuf], out: &Path) -> ExitCode {
    let records = match stampede::input::cloudtrail::import(files) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage.into();
        }
    };
    // Written beside the target and renamed into place: never half a trace.
    let tmp = out.with_extension("partial");
    let written = std::fs::write(&tmp, stampede::input::cloudtrail::to_jsonl(&records))
        .and_then(|()| std::fs::rename(&tmp, out));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        eprintln!("internal error: writing {}: {e}", out.display());
        return Exit::Internal.into();
    }
    let accounts: std::collections::BTreeSet<&str> =
        records.iter().map(|r| r.account.as_str()).collect();
    println!(
        "wrote {}: {} calls from {} accounts over {:.1}s",
        out.display(),
        records.len(),
        accounts.len(),
        records.last().map_or(0.0, |r| r.t_ms as f64 / 1000.0)
    );
    Exit::Pass.into()
}

fn validate_command(files: &[PathBuf]) -> ExitCode {
    let mut bad = 0;
    for f in files {
        match prepare(f) {
            Ok(p) => println!(
                "ok: {} ({} queries from {})",
                f.display(),
                p.trace.records.len(),
                p.source()
            ),
            Err(e) => {
                eprintln!("error: {e}");
                bad += 1;
            }
        }
    }
    if bad == 0 {
        Exit::Pass.into()
    } else {
        Exit::Usage.into()
    }
}

fn serve_command(config: Option<&Path>, port_base: u16) -> ExitCode {
    let (lakes, provider, policies) = match config {
        Some(path) => match stampede::input::scenario::load(path) {
            Ok(s) => (
                stampede::world::lower::lake_directory(&s, s.seed),
                stampede::world::lower::provider_config(&s).0,
                stampede_fakes::iam::LakePolicies {
                    trust_system: s.world.lakes.trust_system,
                },
            ),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Usage.into();
            }
        },
        None => (
            stampede_fakes::LakeDirectory {
                seed: 0,
                count: 20,
                tenants: 4,
                regions: vec!["eu-west-1".into()],
                files_per_lake: 2,
                rows_per_file: 500,
            },
            stampede_fakes::ProviderConfig::default(),
            stampede_fakes::iam::LakePolicies::default(),
        ),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("internal error: cannot start the runtime: {e}");
            return Exit::Internal.into();
        }
    };
    runtime.block_on(async {
        let served =
            match stampede::commands::serve::start(lakes, provider, policies, port_base).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: cannot listen on 127.0.0.1: {e}");
                    return Exit::Usage.into();
                }
            };
        print!("{}", served.exports());
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        eprintln!(
            "serving {} lakes in {}; Ctrl-C stops",
            served.lakes.count, served.region
        );
        let _ = tokio::signal::ctrl_c().await;
        Exit::Pass.into()
    })
}

/// The arguments of `stampede sweep`.
#[derive(Debug, clap::Args)]
struct SweepArgs {
    /// Scenario files (YAML).
    #[arg(required = true)]
    scenarios: Vec<PathBuf>,
    /// Seeds: A..B (both included: 1..20 is twenty seeds), one seed, or a list 1,4,9.
    #[arg(long, default_value = "1..10")]
    seeds: stampede::commands::sweep::Seeds,
    /// Runs at once, each in its own process [default: the number of cores]
    #[arg(long)]
    jobs: Option<usize>,
    /// Run only shard I of N (1/N to N/N) of the (scenario, seed) pairs; merge the shards'
    /// directories with `stampede sweep merge`.
    #[arg(long)]
    shard: Option<stampede::commands::sweep::Shard>,
    /// The share of runs simulated a second time to check that the log is the same.
    #[arg(long, default_value_t = 0.05)]
    recheck: f64,
    /// The longest one run may take in wall time before it is stopped and counted failed.
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
    /// The sweep's directory; it must not exist yet, or be empty.
    #[arg(long, default_value = "runs/sweep")]
    out: PathBuf,
    /// Keep every run's event log, not only those of failed runs.
    #[arg(long)]
    keep_logs: bool,
    /// The most runs shrinking one failure may take (each failure is shrunk to a small
    /// scenario that still fails, in DIR/shrunk/); 0 shrinks nothing.
    #[arg(long, default_value_t = 100)]
    shrink_budget: u32,
}

/// Refuses a directory that holds something: a sweep never overwrites another's results.
fn fresh_dir(out: &Path) -> Result<(), String> {
    let busy = std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some());
    if busy {
        return Err(format!(
            "{} already holds files: choose another --out, or remove it",
            out.display()
        ));
    }
    Ok(())
}

/// Stops the sweep on Ctrl-C: sets `stop`, which the sweep's workers watch.
#[allow(clippy::disallowed_methods)] // The sweep's own watcher thread, outside every simulation.
fn on_ctrl_c(stop: &'static std::sync::atomic::AtomicBool) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("stopping: the runs under way are cut, the finished ones kept");
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        });
    });
}

fn sweep_command(a: SweepArgs) -> ExitCode {
    if !(0.0..=1.0).contains(&a.recheck) {
        eprintln!(
            "error: --recheck {} is not a share between 0 and 1",
            a.recheck
        );
        return Exit::Usage.into();
    }
    if a.jobs == Some(0) {
        eprintln!("error: --jobs 0 would run nothing: give 1 or more");
        return Exit::Usage.into();
    }
    if let Err(e) = fresh_dir(&a.out) {
        eprintln!("error: {e}");
        return Exit::Usage.into();
    }
    // Every scenario is checked before anything runs.
    let mut names = Vec::new();
    for f in &a.scenarios {
        match prepare(f) {
            Ok(p) => names.push(p.scenario.name),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Usage.into();
            }
        }
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("internal error: cannot find the stampede binary to run: {e}");
            return Exit::Internal.into();
        }
    };
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let opts = stampede::commands::sweep::Options {
        files: a.scenarios,
        names,
        seeds: a.seeds,
        shard: a.shard.unwrap_or(stampede::commands::sweep::Shard::ALL),
        jobs,
        recheck: a.recheck,
        timeout: a.timeout,
        out: a.out.clone(),
        exe,
        replay_prefix: replay_prefix(),
        keep_logs: a.keep_logs,
        shrink_budget: a.shrink_budget,
    };
    static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    on_ctrl_c(&STOP);
    let sweep = stampede::commands::sweep::sweep(&opts, &STOP).and_then(|s| {
        stampede::commands::sweep::report::write(&s, &a.out)?;
        Ok(s)
    });
    let sweep = match sweep {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "internal error: writing the sweep to {}: {e}",
                a.out.display()
            );
            return Exit::Internal.into();
        }
    };
    print!("{}", stampede::commands::sweep::report::summary(&sweep));
    println!(
        "
  sweep dir  {}",
        a.out.display()
    );
    sweep_exit(&sweep)
}

fn sweep_exit(sweep: &stampede::commands::sweep::Sweep) -> ExitCode {
    if sweep.interrupted {
        ExitCode::from(130)
    } else if sweep.failed() {
        Exit::Violated.into()
    } else {
        Exit::Pass.into()
    }
}

fn promote_command(files: &[PathBuf], to: &Path) -> ExitCode {
    for f in files {
        match stampede::commands::sweep::shrink::promote(f, to) {
            Ok(dest) => println!("promoted {} to {}", f.display(), dest.display()),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Usage.into();
            }
        }
    }
    Exit::Pass.into()
}

fn merge_command(dirs: &[PathBuf], out: &Path) -> ExitCode {
    if let Err(e) = fresh_dir(out) {
        eprintln!("error: {e}");
        return Exit::Usage.into();
    }
    let sweep = match stampede::commands::sweep::report::merge(dirs) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage.into();
        }
    };
    let written = std::fs::create_dir_all(out)
        .and_then(|()| {
            dirs.iter()
                .try_for_each(|d| stampede::commands::sweep::report::copy_artefacts(d, out))
        })
        .and_then(|()| stampede::commands::sweep::report::write(&sweep, out));
    if let Err(e) = written {
        eprintln!(
            "internal error: writing the merged sweep to {}: {e}",
            out.display()
        );
        return Exit::Internal.into();
    }
    print!("{}", stampede::commands::sweep::report::summary(&sweep));
    println!(
        "
  sweep dir  {}",
        out.display()
    );
    sweep_exit(&sweep)
}

/// How commands that replay a run start, in the form the user ran this one (`cargo run`
/// sets `CARGO`).
fn compare_command(a: &Path, b: &Path, out: Option<PathBuf>) -> ExitCode {
    let (ra, rb) = match (
        stampede::commands::capacity::read(a),
        stampede::commands::capacity::read(b),
    ) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return Exit::Usage.into();
        }
    };
    let out = out.unwrap_or_else(|| {
        PathBuf::from("runs").join("compare").join(format!(
            "{}-vs-{}-seed-{}",
            ra.header.scenario, rb.header.scenario, rb.header.seed
        ))
    });
    let md = stampede_reports::page::compare_md(&ra, &rb);
    let written = std::fs::create_dir_all(&out)
        .and_then(|()| {
            stampede::commands::sweep::write_whole(
                &out.join("compare.html"),
                &stampede_reports::page::compare_html(&ra, &rb),
            )
        })
        .and_then(|()| stampede::commands::sweep::write_whole(&out.join("compare.md"), &md));
    if let Err(e) = written {
        eprintln!("internal error: writing {}: {e}", out.display());
        return Exit::Internal.into();
    }
    print!("{md}");
    println!(
        "\n  compare dir  {}  (compare.html, compare.md)",
        out.display()
    );
    Exit::Pass.into()
}

fn capacity_command(
    path: &Path,
    loads: &str,
    seeds: Option<stampede::commands::sweep::Seeds>,
    jobs: Option<usize>,
    out: Option<PathBuf>,
    timeout: std::time::Duration,
) -> ExitCode {
    let loads = match stampede::commands::capacity::parse_loads(loads) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage.into();
        }
    };
    if jobs == Some(0) {
        eprintln!("error: --jobs 0 would run nothing: give 1 or more");
        return Exit::Usage.into();
    }
    let prepared = match prepare(path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage.into();
        }
    };
    if prepared.trace.records.is_empty() {
        eprintln!(
            "error: {}: the scenario has no traffic to scale: its `traffic` section yields no queries",
            path.display()
        );
        return Exit::Usage.into();
    }
    let name = prepared.scenario.name.clone();
    let out = out.unwrap_or_else(|| PathBuf::from("runs").join("capacity").join(&name));
    if let Err(e) = fresh_dir(&out) {
        eprintln!("error: {e}");
        return Exit::Usage.into();
    }
    let seeds = match seeds {
        Some(s) => s,
        None => match prepared.scenario.seed.to_string().parse() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("internal error: {e}");
                return Exit::Internal.into();
            }
        },
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("internal error: cannot find the stampede binary to run: {e}");
            return Exit::Internal.into();
        }
    };
    let opts = stampede::commands::capacity::Options {
        file: path.to_path_buf(),
        name,
        loads,
        seeds,
        jobs: jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        out: out.clone(),
        timeout,
        exe,
    };
    static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    on_ctrl_c(&STOP);
    let c = match stampede::commands::capacity::run(&opts, &STOP) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("internal error: writing {}: {e}", out.display());
            return Exit::Internal.into();
        }
    };
    print!("{}", stampede_reports::page::capacity_text(&c));
    println!(
        "\n  capacity dir  {}  (capacity.html, capacity.json)",
        out.display()
    );
    if STOP.load(std::sync::atomic::Ordering::Relaxed) {
        ExitCode::from(130)
    } else {
        Exit::Pass.into()
    }
}

fn gameday_command(
    path: &Path,
    seed: Option<u64>,
    script: Option<&Path>,
    out: Option<PathBuf>,
) -> ExitCode {
    use std::io::IsTerminal as _;
    let prepared = match prepare(path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage.into();
        }
    };
    // A script is read whole first: a mistake in it is found before anything runs.
    let lines: Option<Vec<(usize, String)>> = match script {
        Some(file) => match std::fs::read_to_string(file) {
            Ok(text) => {
                let lines: Vec<(usize, String)> = text
                    .lines()
                    .enumerate()
                    .map(|(i, l)| (i + 1, l.to_string()))
                    .collect();
                for (n, l) in &lines {
                    if let Err(e) = stampede::commands::gameday::command::parse(l) {
                        eprintln!("error: {}:{n}: {e}", file.display());
                        return Exit::Usage.into();
                    }
                }
                Some(lines)
            }
            Err(e) => {
                eprintln!("error: reading {}: {e}", file.display());
                return Exit::Usage.into();
            }
        },
        None => None,
    };
    let out = out.unwrap_or_else(|| {
        PathBuf::from("runs")
            .join("gameday")
            .join(&prepared.scenario.name)
    });
    let seed = seed.unwrap_or(prepared.scenario.seed);
    println!(
        "stampede gameday {} (seed {}): {} of virtual time; `help` lists the commands",
        prepared.scenario.name,
        seed,
        humantime::format_duration(prepared.scenario.duration.0)
    );
    let mut g = match stampede::commands::gameday::Gameday::start(prepared, seed) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("internal error: {e}");
            return Exit::Internal.into();
        }
    };
    println!("{}", g.pause_line());
    let interactive = lines.is_none() && std::io::stdin().is_terminal();
    let mut editor = if interactive {
        match rustyline::DefaultEditor::new() {
            Ok(e) => Some(e),
            Err(e) => {
                eprintln!("internal error: the line editor: {e}");
                return Exit::Internal.into();
            }
        }
    } else {
        None
    };
    let mut script_lines = lines.map(|l| l.into_iter());
    let stdin = std::io::stdin();
    loop {
        let prompt = g.prompt();
        let line = if let Some(lines) = script_lines.as_mut() {
            match lines.next() {
                Some((_, l)) => {
                    if !l.trim().is_empty() {
                        println!("{prompt}{l}");
                    }
                    l
                }
                None => break,
            }
        } else if let Some(editor) = editor.as_mut() {
            match editor.readline(&prompt) {
                Ok(l) => {
                    if !l.trim().is_empty() {
                        let _ = editor.add_history_entry(l.as_str());
                    }
                    l
                }
                Err(_) => break,
            }
        } else {
            let mut l = String::new();
            match stdin.read_line(&mut l) {
                Ok(0) | Err(_) => break,
                Ok(_) => l,
            }
        };
        let cmd = match stampede::commands::gameday::command::parse(&line) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                println!("error: {e}");
                continue;
            }
        };
        let quit = cmd == stampede::commands::gameday::command::Command::Quit;
        match g.execute(cmd) {
            Ok(said) if !said.is_empty() => println!("{}", said.trim_end()),
            Ok(_) => {}
            Err(e) => println!("error: {e}"),
        }
        if quit {
            break;
        }
    }
    println!("running every branch to its end...");
    if let Err(e) = g.finish_all() {
        eprintln!("internal error: {e}");
        return Exit::Internal.into();
    }
    let written = std::fs::create_dir_all(&out)
        .and_then(|()| {
            stampede::commands::sweep::write_whole(
                &out.join("timeline.md"),
                &stampede::commands::gameday::story::timeline_md(&g),
            )
        })
        .and_then(|()| {
            let mut json =
                serde_json::to_string_pretty(&stampede::commands::gameday::story::gameday_json(&g))
                    .expect("gameday.json serialises");
            json.push('\n');
            stampede::commands::sweep::write_whole(&out.join("gameday.json"), &json)
        });
    if let Err(e) = written {
        eprintln!("internal error: writing {}: {e}", out.display());
        return Exit::Internal.into();
    }
    println!(
        "{}",
        stampede::commands::gameday::story::outcomes(&g).trim_end()
    );
    println!(
        "\n  gameday dir  {}  (timeline.md, gameday.json)",
        out.display()
    );
    Exit::Pass.into()
}

fn replay_prefix() -> String {
    if std::env::var_os("CARGO").is_some() {
        "cargo run -p stampede --".into()
    } else {
        "stampede".into()
    }
}

/// The command that replays this run, in the form the user ran it (`cargo run` sets `CARGO`).
fn replay_command(path: &Path, seed: u64) -> String {
    format!("{} run {} --seed {seed}", replay_prefix(), path.display())
}
