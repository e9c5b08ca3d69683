//! Every `scenarios/**/*.yaml` is its own test (`cargo test --test scenarios -- NAME` filters by
//! file name). A scenario passes when every invariant it lists holds, except exactly those it
//! `expect`s to be violated, and every invariant that passes reached its "sometimes" state
//! unless the file says why not (`expect.unreached`); a failure prints the seed,
//! the violated invariants with their witness events, and the command that replays the run.
//! Files under `scenarios/invalid/` are malformed on purpose and are not run here.

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let args = Arguments::from_args();
    // Found at run time, not compiled in: CI runs the tests from a copy of the repository that
    // reuses the checkout's build.
    let harness = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test sets it");
    let root = Path::new(&harness).join("../scenarios");
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    let trials = files
        .into_iter()
        .map(|path| {
            let name = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .with_extension("")
                .display()
                .to_string();
            Trial::test(name, move || check(&path))
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "invalid") {
                collect(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

fn check(path: &Path) -> Result<(), Failed> {
    let prepared =
        stampede::prepare(path).map_err(|e| Failed::from(format!("invalid scenario: {e}")))?;
    let report =
        stampede::run(prepared, None).map_err(|e| Failed::from(format!("run failed: {e}")))?;
    let violated = report.unexpected();
    let inconclusive = report.inconclusive();
    let vacuous = report.vacuous();
    let stale = report.reached_after_all();
    if violated.is_empty() && inconclusive.is_empty() && vacuous.is_empty() && stale.is_empty() {
        return Ok(());
    }
    if violated.is_empty() && inconclusive.is_empty() {
        return Err(Failed::from(format!(
            "seed {}: passed without reaching their state (say why under expect.unreached, or make the scenario reach it): {vacuous:?}; said to be unreached but reached (take them out of expect.unreached): {stale:?}",
            report.seed
        )));
    }
    let replay = format!(
        "cargo run -p stampede -- run {} --seed {}",
        path.display(),
        report.seed
    );
    Err(Failed::from(format!(
        "seed {}: violated {violated:?}, inconclusive {inconclusive:?}\n{}",
        report.seed,
        stampede::commands::output::summary(
            &stampede::commands::report_data::run_data(&report, &replay),
            None,
            &replay
        )
    )))
}
