//! `stampede capacity` at the terminal: its arguments, output folder, Ctrl-C and exit code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::Exit;
use crate::commands::terminal::{fresh_dir, on_ctrl_c};
use crate::prepare;

/// `stampede capacity`: the ladder of `path`'s traffic at `loads` on `seeds`, written to `out`.
pub fn capacity_command(
    path: &Path,
    loads: &str,
    seeds: Option<crate::commands::sweep::Seeds>,
    jobs: Option<usize>,
    out: Option<PathBuf>,
    timeout: std::time::Duration,
) -> ExitCode {
    let loads = match crate::commands::capacity::parse_loads(loads) {
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
    let opts = crate::commands::capacity::Options {
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
    let c = match crate::commands::capacity::run(&opts, &STOP) {
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
