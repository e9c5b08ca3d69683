//! Shrinking a failure to a small scenario that still fails the same invariant: delta
//! debugging (Zeller and Hildebrandt, 2002) over the concrete fault schedule, then each tuning
//! knob a swarm drew back to the file's own value, then each fault made shorter, milder and
//! earlier, then less traffic and a shorter run.
//!
//! Every candidate is a plain scenario file (no `swarm`, concrete faults, the one invariant)
//! run once with the failing seed, in its own process. A candidate is kept only when that
//! invariant fails again and the candidate is smaller: fewer faults, then a shorter run,
//! then less fault time, then less traffic. Shrinking stops at a budget of runs; whatever it
//! holds then still fails, so it can stop anywhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::input::scenario::{self, Fault, FaultKind, Scenario};
use crate::span::Span;

/// What shrinking one failure did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shrunk {
    /// The invariant it keeps failing.
    pub invariant: String,
    /// Faults and operator actions before and after.
    pub faults_before: usize,
    /// After.
    pub faults_after: usize,
    /// Runs it took, the first (the failure replayed) included.
    pub runs: u32,
    /// Whether the budget ran out before nothing more could be taken away.
    pub budget_spent: bool,
    /// The swarm's drawn tuning knobs the failure still needs, at their drawn values: each
    /// other drawn knob went back to the file's value and the invariant kept failing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kept_tuning: BTreeMap<String, serde_json::Value>,
}

/// How one candidate did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The invariant failed again.
    Fails,
    /// It held, could not be decided, or the candidate was not a valid scenario.
    Passes,
    /// The sweep was stopped.
    Stopped,
}

/// Runs candidates: one `stampede run` each, memoised by the candidate's text.
struct Tester<'a> {
    exe: &'a Path,
    dir: &'a Path,
    stem: String,
    seed: u64,
    invariant: String,
    timeout: Duration,
    stop: &'a AtomicBool,
    budget: u32,
    runs: u32,
    seen: BTreeMap<String, Outcome>,
}

impl Tester<'_> {
    fn spent(&self) -> bool {
        self.runs >= self.budget
    }

    fn test(&mut self, s: &Scenario) -> Outcome {
        let text = scenario::to_yaml(s);
        if let Some(o) = self.seen.get(&text) {
            return *o;
        }
        if self.spent() {
            return Outcome::Passes;
        }
        // A candidate the loader refuses (a fault that now starts after the end) is no
        // candidate: it costs no run.
        let file = self.dir.join(format!(".{}.candidate.yaml", self.stem));
        if scenario::parse(&file, &text).is_err() {
            self.seen.insert(text, Outcome::Passes);
            return Outcome::Passes;
        }
        self.runs += 1;
        let out = self.dir.join(format!(".{}.run", self.stem));
        let written = std::fs::write(&file, &text);
        let outcome = match written {
            Err(_) => Outcome::Passes,
            Ok(()) => {
                match super::run_child(
                    self.exe,
                    &file,
                    self.seed,
                    &[],
                    &out,
                    self.timeout,
                    self.stop,
                ) {
                    super::ChildEnd::Stopped => Outcome::Stopped,
                    super::ChildEnd::Exited(Some(0..=3)) => match super::RunDir::read(&out) {
                        Ok(r) if r.verdicts.get(&self.invariant).is_some_and(|v| v == "fail") => {
                            Outcome::Fails
                        }
                        _ => Outcome::Passes,
                    },
                    _ => Outcome::Passes,
                }
            }
        };
        let _ = std::fs::remove_dir_all(&out);
        let _ = std::fs::remove_file(out.with_extension("stderr"));
        let _ = std::fs::remove_file(&file);
        if outcome != Outcome::Stopped {
            self.seen.insert(text, outcome);
        }
        outcome
    }
}

/// The faults and operator actions of a scenario, as one list of units to drop.
fn units(s: &Scenario) -> Vec<(bool, Fault)> {
    let faults = s.faults.iter().map(|f| (false, f.clone()));
    faults
        .chain(s.operator.iter().map(|f| (true, f.clone())))
        .collect()
}

fn with_units(s: &Scenario, units: &[(bool, Fault)]) -> Scenario {
    let mut out = s.clone();
    out.faults = units
        .iter()
        .filter(|(op, _)| !op)
        .map(|(_, f)| f.clone())
        .collect();
    out.operator = units
        .iter()
        .filter(|(op, _)| *op)
        .map(|(_, f)| f.clone())
        .collect();
    out
}

/// `units` split into `n` nearly equal chunks, in order.
fn chunks<T: Clone>(units: &[T], n: usize) -> Vec<Vec<T>> {
    let n = n.clamp(1, units.len().max(1));
    let (size, extra) = (units.len() / n, units.len() % n);
    let mut out = Vec::new();
    let mut start = 0;
    for i in 0..n {
        let len = size + usize::from(i < extra);
        out.push(units[start..start + len].to_vec());
        start += len;
    }
    out
}

/// ddmin: a 1-minimal subset of `units` for which `fails` holds, given that it holds for all
/// of them. Then one pass from the back drops any single unit that is still not needed.
fn ddmin<T: Clone>(mut units: Vec<T>, mut fails: impl FnMut(&[T]) -> Outcome) -> Vec<T> {
    if fails(&[]) == Outcome::Fails {
        return Vec::new();
    }
    let mut n = 2;
    'outer: while units.len() >= 2 {
        let parts = chunks(&units, n);
        for part in &parts {
            match fails(part) {
                Outcome::Fails => {
                    units = part.clone();
                    n = 2;
                    continue 'outer;
                }
                Outcome::Stopped => return units,
                Outcome::Passes => {}
            }
        }
        if n > 2 {
            for i in 0..parts.len() {
                let rest: Vec<T> = parts
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .flat_map(|(_, p)| p.iter().cloned())
                    .collect();
                match fails(&rest) {
                    Outcome::Fails => {
                        units = rest;
                        n = (n - 1).max(2);
                        continue 'outer;
                    }
                    Outcome::Stopped => return units,
                    Outcome::Passes => {}
                }
            }
        }
        if n >= units.len() {
            break;
        }
        n = (n * 2).min(units.len());
    }
    let mut i = units.len();
    while i > 0 {
        i -= 1;
        let mut rest = units.clone();
        rest.remove(i);
        match fails(&rest) {
            Outcome::Fails => units = rest,
            Outcome::Stopped => return units,
            Outcome::Passes => {}
        }
    }
    units
}

/// Milder versions of one fault, mildest first: shorter, gentler, earlier. Each is tried
/// while the invariant keeps failing.
fn milder(f: &Fault) -> Vec<Fault> {
    let mut out = Vec::new();
    let with = |kind: FaultKind| Fault { kind, ..f.clone() };
    if let Some(lasts) = f.lasts {
        let half = lasts.0 / 2;
        if half >= Duration::from_secs(1) {
            out.push(Fault {
                lasts: Some(Span(round_s(half))),
                ..f.clone()
            });
        }
    }
    let hundredths = |x: f64| (x * 100.0).round() / 100.0;
    match &f.kind {
        FaultKind::ApiThrottle { api, rate_per_s } => out.push(with(FaultKind::ApiThrottle {
            api: api.clone(),
            rate_per_s: rate_per_s * 2.0,
        })),
        FaultKind::ApiErrors { api, fraction } if *fraction > 0.1 => {
            out.push(with(FaultKind::ApiErrors {
                api: api.clone(),
                fraction: hundredths(fraction / 2.0),
            }))
        }
        FaultKind::FleetCapacity { fraction } if *fraction < 0.9 => {
            out.push(with(FaultKind::FleetCapacity {
                fraction: hundredths((1.0 + fraction) / 2.0),
            }))
        }
        FaultKind::Latency { extra } if extra.0 >= Duration::from_millis(20) => {
            out.push(with(FaultKind::Latency {
                extra: Span(extra.0 / 2),
            }))
        }
        _ => {}
    }
    if f.at.0 >= Duration::from_secs(2) {
        out.push(Fault {
            at: Span(round_s(f.at.0 / 2)),
            ..f.clone()
        });
    }
    out
}

/// A duration rounded down to whole seconds (at least one).
fn round_s(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs().max(1))
}

/// Shrinks `s` (concrete, failing `invariant` with `seed`) within `budget` runs. Candidates
/// are written in `dir` (their relative paths resolve as the result's will). `drawn` names the
/// tuning knobs a swarm drew, each with the file's own value (`None`: the file left it to the
/// preset): each goes back to it, one at a time, when the failure stays. Returns the smallest
/// failing scenario found, or `None` when the failure did not come back at all.
#[allow(clippy::too_many_arguments)]
pub fn shrink(
    s: &Scenario,
    drawn: &BTreeMap<String, Option<serde_json::Value>>,
    invariant: &str,
    seed: u64,
    exe: &Path,
    dir: &Path,
    stem: &str,
    budget: u32,
    timeout: Duration,
    stop: &AtomicBool,
) -> Option<(Scenario, Shrunk)> {
    let mut t = Tester {
        exe,
        dir,
        stem: stem.to_string(),
        seed,
        invariant: invariant.to_string(),
        timeout,
        stop,
        budget,
        runs: 0,
        seen: BTreeMap::new(),
    };
    let mut best = s.clone();
    best.invariants.retain(|i| i.name.as_str() == invariant);
    best.expect = Default::default();
    best.name = format!("{}-seed-{seed}-shrunk", s.name);
    // The file runs as the failure did with no `--seed`: the run's seed is its own, and its
    // traffic keeps the seed it was drawn from (the run's, unless the file pinned one).
    best.traffic.seed = Some(s.traffic.seed.unwrap_or(seed));
    best.seed = seed;
    if t.test(&best) != Outcome::Fails {
        return None;
    }
    let before = s.faults.len() + s.operator.len();
    loop {
        let start = scenario::to_yaml(&best);
        // Fewer faults.
        let base = best.clone();
        let kept = ddmin(units(&best), |u| t.test(&with_units(&base, u)));
        best = with_units(&best, &kept);
        // Drawn tuning back to the file's, one knob at a time.
        for (knob, file) in drawn {
            if t.spent() || best.system.tuning.get(knob) == file.as_ref() {
                continue;
            }
            let mut c = best.clone();
            match file {
                Some(v) => c.system.tuning.insert(knob.clone(), v.clone()),
                None => c.system.tuning.remove(knob),
            };
            if t.test(&c) == Outcome::Fails {
                best = c;
            }
        }
        // Each fault milder, one change at a time, while it still fails.
        let mut i = 0;
        while i < kept.len() && !t.spent() {
            let mut current = units(&best);
            let mut changed = true;
            while changed && !t.spent() {
                changed = false;
                for m in milder(&current[i].1) {
                    let mut candidate = current.clone();
                    candidate[i].1 = m;
                    if t.test(&with_units(&best, &candidate)) == Outcome::Fails {
                        best = with_units(&best, &candidate);
                        current = candidate;
                        changed = true;
                        break;
                    }
                }
            }
            i += 1;
        }
        // Less traffic, then a shorter run.
        while best.traffic.load > 0.1 && !t.spent() {
            let mut c = best.clone();
            c.traffic.load = ((best.traffic.load / 2.0) * 100.0).round() / 100.0;
            if t.test(&c) != Outcome::Fails {
                break;
            }
            best = c;
        }
        while !t.spent() {
            let mut c = best.clone();
            c.duration = Span(round_s(best.duration.0 * 3 / 4));
            if c.duration == best.duration || t.test(&c) != Outcome::Fails {
                break;
            }
            best = c;
        }
        if scenario::to_yaml(&best) == start || t.spent() {
            break;
        }
    }
    let shrunk = Shrunk {
        invariant: invariant.to_string(),
        faults_before: before,
        faults_after: best.faults.len() + best.operator.len(),
        runs: t.runs,
        budget_spent: t.spent(),
        kept_tuning: drawn
            .iter()
            .filter(|(knob, file)| best.system.tuning.get(*knob) != file.as_ref())
            .filter_map(|(knob, _)| Some((knob.clone(), best.system.tuning.get(knob)?.clone())))
            .collect(),
    };
    Some((best, shrunk))
}

/// Promotes a shrunk file into the regression corpus: `to/<invariant>/<file name>`, with the
/// files it names made relative to its new place and `expect` saying the invariant must keep
/// failing. Every scenario under `scenarios/` runs in `cargo test`, so from then on the failure
/// is checked on every change; once the bug is fixed the test fails, and the `expect` section
/// is removed to make it a pass. Returns the new file.
pub fn promote(shrunk: &Path, to: &Path) -> Result<PathBuf, String> {
    let text = std::fs::read_to_string(shrunk)
        .map_err(|e| format!("{}: cannot read: {e}", shrunk.display()))?;
    let mut s = scenario::parse(shrunk, &text).map_err(|e| e.to_string())?;
    let [only] = s.invariants.as_slice() else {
        return Err(format!(
            "{}: a shrunk file lists exactly one invariant, the one it fails; this one lists {}",
            shrunk.display(),
            s.invariants.len()
        ));
    };
    let invariant = only.name;
    let dir = to.join(invariant.as_str());
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dest = dir.join(shrunk.file_name().unwrap_or_default());
    if dest.exists() {
        return Err(format!("{} exists already", dest.display()));
    }
    rebase(&mut s, shrunk.parent().unwrap_or(Path::new(".")), &dir);
    s.expect.violated = vec![invariant];
    let mut header: String = text
        .lines()
        .take_while(|l| l.starts_with('#'))
        .filter(|l| !l.starts_with("# Replay:"))
        .map(|l| format!("{l}\n"))
        .collect();
    header.push_str(&format!(
        "# In the regression corpus: `{}` must keep failing until the bug is fixed; then remove\n\
         # the `expect` section, and the file checks that it stays fixed.\n",
        invariant.as_str()
    ));
    let out = format!("{header}{}", scenario::to_yaml(&s));
    scenario::parse(&dest, &out).map_err(|e| format!("the promoted file would not load: {e}"))?;
    super::write_whole(&dest, &out).map_err(|e| format!("{}: {e}", dest.display()))?;
    Ok(dest)
}

/// Makes the files a scenario names (relative to `from`, its old directory) relative to `to`.
pub fn rebase(s: &mut Scenario, from: &Path, to: &Path) {
    let moved = |p: &Path| relative_to(&from.join(p), to);
    if let Some(p) = &s.traffic.replay {
        s.traffic.replay = Some(moved(p));
    }
    if let Some(a) = &mut s.traffic.arrivals {
        a.csv = a.csv.as_deref().map(moved);
        a.jsonl = a.jsonl.as_deref().map(moved);
    }
    if let Some(p) = &s.world.provider.background.replay {
        s.world.provider.background.replay = Some(moved(p));
    }
}

/// `path` as seen from `dir`: relative when both are under one root, else absolute.
pub fn relative_to(path: &Path, dir: &Path) -> PathBuf {
    let (Ok(path), Ok(dir)) = (std::fs::canonicalize(path), std::fs::canonicalize(dir)) else {
        return path.to_path_buf();
    };
    let (p, d): (Vec<_>, Vec<_>) = (path.components().collect(), dir.components().collect());
    let common = p.iter().zip(&d).take_while(|(a, b)| a == b).count();
    if common <= 1 {
        return path;
    }
    let mut out = PathBuf::new();
    for _ in common..d.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(b: bool) -> Outcome {
        if b { Outcome::Fails } else { Outcome::Passes }
    }

    #[test]
    fn ddmin_keeps_what_the_failure_needs() {
        let units: Vec<u32> = (0..12).collect();
        // Runs are memoised by candidate, so distinct subsets are what a shrink pays for.
        let mut tried = std::collections::BTreeSet::new();
        let kept = ddmin(units.clone(), |u| {
            tried.insert(u.to_vec());
            o(u.contains(&3) && u.contains(&9))
        });
        assert_eq!(kept, vec![3, 9]);
        assert!(tried.len() <= 30, "{} runs", tried.len());
        assert_eq!(ddmin(units.clone(), |_| o(true)), Vec::<u32>::new());
        assert_eq!(ddmin(units.clone(), |u| o(u.contains(&11))), vec![11]);
        assert_eq!(ddmin(units, |u| o(u.len() == 12)).len(), 12);
    }

    #[test]
    fn chunks_are_in_order_and_cover_everything() {
        assert_eq!(chunks(&[1, 2, 3, 4, 5], 2), vec![vec![1, 2, 3], vec![4, 5]]);
        assert_eq!(chunks(&[1, 2], 5), vec![vec![1], vec![2]]);
    }

    #[test]
    fn milder_faults_are_shorter_gentler_and_earlier() {
        let yaml = "{ at: 60s, action: api.throttle, api: AssumeRole, rate_per_s: 2, for: 40s }";
        let f: Fault = serde_saphyr::from_str(yaml).unwrap();
        let m = milder(&f);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].lasts, Some(Span(Duration::from_secs(20))));
        assert!(
            matches!(m[1].kind, FaultKind::ApiThrottle { rate_per_s, .. } if rate_per_s == 4.0)
        );
        assert_eq!(m[2].at, Span(Duration::from_secs(30)));
        let yaml = "{ at: 1s, action: fleet.capacity, fraction: 0.2 }";
        let f: Fault = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(
            milder(&f)[0].kind,
            FaultKind::FleetCapacity { fraction: 0.6 }
        );
    }

    #[test]
    fn paths_are_made_relative_to_the_candidates_directory() {
        let root = std::env::temp_dir().join(format!("stampede-rel-{}", std::process::id()));
        let (a, b) = (root.join("x/y"), root.join("z"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("t.jsonl"), "").unwrap();
        assert_eq!(
            relative_to(&a.join("t.jsonl"), &b),
            PathBuf::from("../x/y/t.jsonl")
        );
        let _ = std::fs::remove_dir_all(root);
    }
}
