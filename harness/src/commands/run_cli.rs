//! `stampede run`: one scenario, one seed, its run directory and its exit code; a progress bar
//! on a terminal.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::Exit;
use crate::RunError;
use crate::commands::output::{self, default_dir, write_run_dir};
use crate::commands::terminal::replay_command;

/// `stampede run`: one scenario with one seed, its run directory written, its exit code.
pub fn run_command(
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
    let prepared = match crate::prepare_scaled(path, load.unwrap_or(1.0)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage.into();
        }
    };
    let progress = run_progress(prepared.scenario.duration.0);
    let options = crate::RunOptions {
        progress: progress.as_ref().map(|(p, _)| p.clone()),
        ..Default::default()
    };
    let outcome = crate::run_with(prepared, seed, &options);
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
    let data = crate::commands::report_data::run_data(&report, &replay);
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
pub fn run_progress(
    duration: std::time::Duration,
) -> Option<(crate::world::Progress, indicatif::ProgressBar)> {
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
    let progress: crate::world::Progress = std::rc::Rc::new(std::cell::RefCell::new(tell));
    Some((progress, bar))
}
