//! The harness's integration tests, one binary:
//!
//! - `architecture`: the checkers import nothing of the harness but the event log.
//! - `determinism`: the same seed gives the same event log, another seed another one.
//! - `correctness`: answers in the simulation equal DataFusion run directly over the same data.
//! - `coverage`: every invariant is expected violated by some scenario, or listed as waiting.
//! - `cli`: exit codes, error locations, and the run directory of the `stampede` binary.
//! - `faults`: provider controls at virtual times (a freeze, a regional outage) fail just their window.
//! - `gameday`: `stampede gameday --script`: a branch at 40 s of incident 1, compared and saved.
//! - `isolation`: real clients in simulation refused as AWS refuses them: tokens, clocks, scopes, roles, queues.
//! - `malformed`: garbage requests to every fake get the service's error and change nothing.
//! - `provider`: quotas, the shared fleet and freezes in simulation, through the real STS client.
//! - `queue`: the queue through the real SQS client in virtual time: visibility, long polls, redrive.
//! - `real_clients`: the AWS SDK and `object_store` against the fakes on loopback.
//! - `reports`: `report.html`, `report.md`, `stampede compare` and `stampede capacity`, as a user sees them.
//! - `recorded`: the fakes answer requests a real client recorded against the real IMDS and STS.
//! - `sweep`: `stampede sweep`: records, JUnit by scenario and invariant, shrinking, shards that merge.
//! - `system`: the query system in simulation: 500-lake answers, invalid SQL, a coordinator crash.

mod architecture;
mod arrivals;
mod cli;
mod correctness;
mod coverage;
mod determinism;
mod faults;
mod gameday;
mod isolation;
mod malformed;
mod provider;
mod queue;
mod real_clients;
mod recorded;
mod reports;
mod sweep;
mod system;
mod vocabulary;

use std::path::{Path, PathBuf};

/// A path in the repository, from its root. The root is found at run time from the
/// `CARGO_MANIFEST_DIR` cargo sets for the test, not the one compiled in: CI runs the tests
/// from a copy of the repository that reuses the checkout's build, and a path compiled in
/// would read the checkout instead of the copy.
pub fn repo(rel: &str) -> PathBuf {
    let harness =
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR");
    PathBuf::from(harness).join("..").join(rel)
}

/// A path under the repository's `scenarios/` folder.
pub fn scenario(rel: &str) -> PathBuf {
    repo("scenarios").join(rel)
}

/// Every scenario file under `scenarios/` but the invalid ones, sorted.
pub fn scenario_files() -> Vec<PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "invalid") {
                    walk(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "yaml") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&scenario(""), &mut out);
    out.sort();
    out
}

/// Runs the `stampede` binary with `args` in `cwd`, to its end.
pub fn stampede(args: &[&str], cwd: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_stampede"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

/// What a command printed, stdout then stderr.
pub fn said(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// An empty temporary folder of this test process, named after `name`: removed when the test
/// that holds it passes, kept (and named on stderr) when it fails.
pub fn fresh_dir(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("stampede-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// A test's temporary folder ([`fresh_dir`]).
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for the failure above", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
