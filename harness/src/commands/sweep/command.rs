//! `stampede sweep`, `sweep promote` and `sweep merge` at the terminal: their arguments,
//! output folders, Ctrl-C and exit codes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::Exit;
use crate::commands::terminal::{fresh_dir, on_ctrl_c, replay_prefix};
use crate::prepare;

/// The arguments of `stampede sweep`.
#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// Scenario files (YAML).
    #[arg(required = true)]
    scenarios: Vec<PathBuf>,
    /// Seeds: A..B (both included: 1..20 is twenty seeds), one seed, or a list 1,4,9.
    #[arg(long, default_value = "1..10")]
    seeds: crate::commands::sweep::Seeds,
    /// Runs at once, each in its own process [default: the number of cores]
    #[arg(long)]
    jobs: Option<usize>,
    /// Run only shard I of N (1/N to N/N) of the (scenario, seed) pairs; merge the shards'
    /// directories with `stampede sweep merge`.
    #[arg(long)]
    shard: Option<crate::commands::sweep::Shard>,
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
    /// Fail the sweep on an inconclusive run: a listed invariant unknown, or passed without
    /// reaching its state when the file gives no reason under `expect.unreached`. By default
    /// such runs are counted apart (sweep.json, summary.md, skipped in JUnit).
    #[arg(long)]
    fail_inconclusive: bool,
}

/// `stampede sweep`: every (scenario, seed) run, reported, its exit code.
pub fn sweep_command(a: SweepArgs) -> ExitCode {
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
    let opts = crate::commands::sweep::Options {
        files: a.scenarios,
        names,
        seeds: a.seeds,
        shard: a.shard.unwrap_or(crate::commands::sweep::Shard::ALL),
        jobs,
        recheck: a.recheck,
        timeout: a.timeout,
        out: a.out.clone(),
        exe,
        replay_prefix: replay_prefix(),
        keep_logs: a.keep_logs,
        shrink_budget: a.shrink_budget,
        fail_inconclusive: a.fail_inconclusive,
    };
    static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    on_ctrl_c(&STOP);
    let sweep = crate::commands::sweep::sweep(&opts, &STOP).and_then(|s| {
        crate::commands::sweep::report::write(&s, &a.out)?;
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
    print!("{}", crate::commands::sweep::report::summary(&sweep));
    println!(
        "
  sweep dir  {}",
        a.out.display()
    );
    sweep_exit(&sweep)
}

/// A sweep's exit code: 0 when every run was as expected (inconclusive runs too, unless the
/// sweep fails those), else 1.
pub fn sweep_exit(sweep: &crate::commands::sweep::Sweep) -> ExitCode {
    if sweep.interrupted {
        ExitCode::from(130)
    } else if sweep.failed() {
        Exit::Violated.into()
    } else {
        Exit::Pass.into()
    }
}

/// `stampede sweep promote`: shrunk files into the regression corpus `to`.
pub fn promote_command(files: &[PathBuf], to: &Path) -> ExitCode {
    for f in files {
        match crate::commands::sweep::shrink::promote(f, to) {
            Ok(dest) => println!("promoted {} to {}", f.display(), dest.display()),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Usage.into();
            }
        }
    }
    Exit::Pass.into()
}

/// `stampede sweep merge`: the shards' directories merged into `out`.
pub fn merge_command(dirs: &[PathBuf], out: &Path) -> ExitCode {
    if let Err(e) = fresh_dir(out) {
        eprintln!("error: {e}");
        return Exit::Usage.into();
    }
    let sweep = match crate::commands::sweep::report::merge(dirs) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage.into();
        }
    };
    let written = std::fs::create_dir_all(out)
        .and_then(|()| {
            dirs.iter()
                .try_for_each(|d| crate::commands::sweep::report::copy_artefacts(d, out))
        })
        .and_then(|()| crate::commands::sweep::report::write(&sweep, out));
    if let Err(e) = written {
        eprintln!(
            "internal error: writing the merged sweep to {}: {e}",
            out.display()
        );
        return Exit::Internal.into();
    }
    print!("{}", crate::commands::sweep::report::summary(&sweep));
    println!(
        "
  sweep dir  {}",
        out.display()
    );
    sweep_exit(&sweep)
}
