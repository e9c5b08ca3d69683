//! `stampede capacity`: one scenario's traffic at rising load multipliers, on one or more
//! seeds, each run a child process (`stampede run FILE --seed N --load X`), J at a time. The
//! runs' `report.json` files are summed up by the `reports` crate into `capacity.json` and
//! `capacity.html`. A run that crashes or times out is a point with its failure, not a crash.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use stampede_reports::RunData;
use stampede_reports::ladder::{Capacity, LadderRun, capacity, times};

use crate::commands::sweep::plan::Seeds;
use crate::commands::sweep::{ChildEnd, Progress, run_child, stderr_tail, write_whole};

/// What a capacity run needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The scenario file.
    pub file: PathBuf,
    /// Its name.
    pub name: String,
    /// The load multipliers, rising.
    pub loads: Vec<f64>,
    /// The seeds.
    pub seeds: Seeds,
    /// Runs at a time.
    pub jobs: usize,
    /// Where everything goes.
    pub out: PathBuf,
    /// The longest one run may take.
    pub timeout: Duration,
    /// The stampede binary.
    pub exe: PathBuf,
}

/// Reads a load list, `0.5,1,2,4,8`: every load above 0, rising.
pub fn parse_loads(text: &str) -> Result<Vec<f64>, String> {
    let mut loads = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let load: f64 = part
            .trim_end_matches(['x', '×'])
            .parse()
            .map_err(|_| format!("--load: `{part}` is not a number (write e.g. 0.5,1,2,4)"))?;
        if !(load.is_finite() && load > 0.0) {
            return Err(format!("--load: {part} is not above 0"));
        }
        if let Some(last) = loads.last()
            && load <= *last
        {
            return Err(format!(
                "--load: the loads must rise: {part} comes after {}",
                times(*last)
            ));
        }
        loads.push(load);
    }
    if loads.is_empty() {
        return Err("--load: give at least one load".into());
    }
    Ok(loads)
}

/// The run directory of one load and seed, under `out`.
pub fn run_dir(out: &Path, load: f64, seed: u64) -> PathBuf {
    out.join("runs")
        .join(format!("load-{}", stampede_reports::page::num(load, 3)))
        .join(format!("seed-{seed}"))
}

/// Runs the ladder and writes `capacity.json` and `capacity.html` to `opts.out`.
pub fn run(opts: &Options, stop: &AtomicBool) -> std::io::Result<Capacity> {
    std::fs::create_dir_all(&opts.out)?;
    let jobs: Vec<(f64, u64)> = opts
        .loads
        .iter()
        .flat_map(|l| opts.seeds.list().iter().map(move |s| (*l, *s)))
        .collect();
    let mut progress = Progress::with_unit(jobs.len(), "runs");
    let next = AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel::<LadderRun>();
    let mut runs = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.max(1).min(jobs.len()) {
            let tx = tx.clone();
            let (jobs, next) = (&jobs, &next);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Some((load, seed)) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    if tx.send(one(opts, *load, *seed, stop)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for r in rx {
            let line = match &r.run {
                Ok(d) => format!(
                    "{} seed {}: offered {:.2}/s, goodput {:.2}/s, {} violated",
                    times(r.load),
                    r.seed,
                    d.offered_per_s(),
                    d.goodput_per_s(),
                    d.verdicts
                        .iter()
                        .filter(|v| v.status == stampede_reports::run::Status::Fail)
                        .count()
                ),
                Err(e) => format!("{} seed {}: no data: {e}", times(r.load), r.seed),
            };
            progress.line(&line, r.run.is_err());
            runs.push(r);
        }
    });
    progress.close();
    let file = opts.file.display().to_string();
    let c = capacity(&opts.name, &file, &runs);
    let mut json = serde_json::to_string_pretty(&c).expect("capacity serialises");
    json.push('\n');
    write_whole(&opts.out.join("capacity.json"), &json)?;
    write_whole(
        &opts.out.join("capacity.html"),
        &stampede_reports::page::capacity_html(&c),
    )?;
    Ok(c)
}

/// One run of the ladder.
fn one(opts: &Options, load: f64, seed: u64, stop: &AtomicBool) -> LadderRun {
    let dir = run_dir(&opts.out, load, seed);
    let extra = vec!["--load".to_string(), load.to_string()];
    let run = match run_child(
        &opts.exe,
        &opts.file,
        seed,
        &extra,
        &dir,
        opts.timeout,
        stop,
    ) {
        // Pass, violated, inconclusive: the run finished and wrote its directory.
        ChildEnd::Exited(Some(0..=3)) => read(&dir),
        ChildEnd::Exited(code) => Err(format!(
            "the run exited with {}: {}",
            code.map_or("a signal".into(), |c| c.to_string()),
            stderr_tail(&dir)
        )),
        ChildEnd::TimedOut => Err(format!(
            "timed out after {}",
            humantime::format_duration(opts.timeout)
        )),
        ChildEnd::Stopped => Err("stopped".into()),
        ChildEnd::NotStarted(e) => Err(e),
    };
    LadderRun { load, seed, run }
}

/// A run directory's `report.json`.
pub fn read(dir: &Path) -> Result<RunData, String> {
    let path = dir.join("report.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "reading {}: {e} (is it a run directory written by `stampede run`?)",
            path.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|e| format!("reading {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_must_be_positive_and_rising() {
        assert_eq!(parse_loads("0.5,1,2,4").unwrap(), vec![0.5, 1.0, 2.0, 4.0]);
        assert_eq!(parse_loads("1x, 2×").unwrap(), vec![1.0, 2.0]);
        assert!(parse_loads("1,-2").unwrap_err().contains("not above 0"));
        assert!(parse_loads("2,1").unwrap_err().contains("must rise"));
        assert!(parse_loads("1,,2").unwrap_err().contains("not a number"));
        assert!(parse_loads("0").is_err());
    }
}
