//! What a sweep leaves in its directory: `sweep.json`, `junit.xml` (one suite per scenario,
//! one case per invariant, whatever the number of seeds, so names stay stable night to night)
//! and `summary.md` (failures grouped by scenario and invariant, with their seeds).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use quick_xml::escape::escape;

use super::record::{Ending, Record};
use super::{FORMAT_VERSION, Header, Shard, Sweep, write_whole};

/// How many failing seeds a JUnit failure lists with their commands.
pub const LISTED_SEEDS: usize = 10;

/// A record's outcome in a few words: `pass`, or what failed.
pub fn outcome_words(r: &Record) -> String {
    let mut parts: Vec<String> = Vec::new();
    match r.ending {
        Ending::Ran => {}
        Ending::Crashed => parts.push("crashed".into()),
        Ending::TimedOut => parts.push("timed out".into()),
    }
    if !r.unexpected.is_empty() {
        parts.push(format!("FAIL {}", r.unexpected.join(", ")));
    }
    if !r.held_unexpectedly.is_empty() {
        parts.push(format!(
            "held though expected to fail: {}",
            r.held_unexpectedly.join(", ")
        ));
    }
    if r.nondeterministic() {
        parts.push("NOT DETERMINISTIC".into());
    }
    if parts.is_empty() {
        "pass".into()
    } else {
        parts.join("; ")
    }
}

/// Strips what XML 1.0 cannot carry (C0 controls other than tab and newline).
fn xml_text(s: &str) -> String {
    let clean: String = s
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect();
    escape(clean.as_str()).into_owned()
}

/// The seeds in `records`, as a list people read: `4, 9, 17`.
fn seed_list(records: &[&Record]) -> String {
    let seeds: Vec<String> = records.iter().map(|r| r.seed.to_string()).collect();
    seeds.join(", ")
}

/// One JUnit case: its name, its failure (message and body) if it failed, or why it was
/// skipped.
struct Case {
    name: String,
    failure: Option<(String, String)>,
    skipped: Option<String>,
    /// What a passing case says for readers (an expected violation, seen on these seeds).
    out: Option<String>,
}

/// The failure of a case failed by `bad` of `runs` records: message and body.
fn failure(what: &str, bad: &[&Record], runs: usize, first: String) -> (String, String) {
    let head = bad[0];
    let mut message = format!(
        "{}/{runs} seeds {what}: {}; first seed={}",
        bad.len(),
        seed_list(bad),
        head.seed
    );
    if !head.shrunk.is_empty() {
        let _ = write!(message, "; shrunk: {}", head.shrunk.join(", "));
    }
    let mut body = String::new();
    for r in bad.iter().take(LISTED_SEEDS) {
        let _ = write!(body, "seed {}: {}", r.seed, r.replay);
        if !r.shrunk.is_empty() {
            let _ = write!(body, " (shrunk: {})", r.shrunk.join(", "));
        }
        body.push('\n');
    }
    if bad.len() > LISTED_SEEDS {
        let _ = writeln!(body, "... and {} more seeds", bad.len() - LISTED_SEEDS);
    }
    let _ = write!(body, "\nfirst witness (seed {}): {first}\n", head.seed);
    (message, body)
}

/// The cases of one scenario's suite; `strict`: an inconclusive seed fails its invariant's
/// case.
fn cases(records: &[&Record], strict: bool) -> Vec<Case> {
    let names: BTreeSet<&String> = records
        .iter()
        .flat_map(|r| r.verdicts.keys().chain(&r.held_unexpectedly))
        .collect();
    let mut out = Vec::new();
    for name in names {
        let bad: Vec<&Record> = records
            .iter()
            .filter(|r| r.failed_invariants().any(|n| n == name))
            .copied()
            .collect();
        let decided = records
            .iter()
            .any(|r| r.verdicts.get(name).is_some_and(|v| v != "unknown"));
        let violated: Vec<&Record> = records
            .iter()
            .filter(|r| r.verdicts.get(name).is_some_and(|v| v == "fail"))
            .copied()
            .collect();
        let mut case = Case {
            name: name.clone(),
            failure: None,
            skipped: None,
            out: (!violated.is_empty()).then(|| {
                format!(
                    "violated on {} of {} seeds ({}), as the scenario expects",
                    violated.len(),
                    records.len(),
                    seed_list(&violated)
                )
            }),
        };
        // Seeds that ran, did not fail it, and left it undecided.
        let undecided: Vec<&Record> = records
            .iter()
            .filter(|r| r.ending == Ending::Ran && !r.failed_invariants().any(|n| n == name))
            .filter(|r| r.inconclusive.contains_key(name))
            .copied()
            .collect();
        let why = |r: &Record| r.inconclusive.get(name).cloned().unwrap_or_default();
        if let Some(head) = bad.first() {
            let first = head
                .witnesses
                .get(name)
                .cloned()
                .unwrap_or_else(|| "expected to be violated, but held".into());
            let what = if head.unexpected.contains(name) {
                "violated it"
            } else {
                "held it though the scenario expects a violation"
            };
            case.failure = Some(failure(what, &bad, records.len(), first));
        } else if let (true, Some(head)) = (strict, undecided.first()) {
            let what = "were inconclusive on it";
            case.failure = Some(failure(what, &undecided, records.len(), why(head)));
        } else if !decided || (!undecided.is_empty() && undecided.len() == records.len()) {
            let first = undecided.first().map_or_else(String::new, |r| why(r));
            case.skipped = Some(format!("inconclusive on every seed: {first}"));
        } else if let Some(head) = undecided.first() {
            let note = format!(
                "inconclusive on {} of {} seeds ({}): {}",
                undecided.len(),
                records.len(),
                seed_list(&undecided),
                why(head)
            );
            case.out = Some(match case.out.take() {
                Some(out) => format!("{out}\n{note}"),
                None => note,
            });
        }
        out.push(case);
    }
    let rechecked: Vec<&Record> = records
        .iter()
        .filter(|r| r.recheck.is_some())
        .copied()
        .collect();
    let mismatched: Vec<&Record> = rechecked
        .iter()
        .filter(|r| r.nondeterministic())
        .copied()
        .collect();
    let mut determinism = Case {
        name: "determinism".into(),
        failure: None,
        skipped: None,
        out: (!rechecked.is_empty()).then(|| {
            format!(
                "{} seeds simulated twice: {}",
                rechecked.len(),
                seed_list(&rechecked)
            )
        }),
    };
    if let Some(head) = mismatched.first() {
        let recheck = head.recheck.as_ref().expect("a mismatch has a recheck");
        let first = format!(
            "digests {} and {}; first difference: {}",
            head.digest.as_deref().unwrap_or("none"),
            recheck
                .digest
                .as_deref()
                .unwrap_or("none (the second run did not end)"),
            recheck
                .first_difference
                .as_ref()
                .map_or("not found".to_string(), |d| d.to_string())
        );
        determinism.failure = Some(failure(
            "gave another log when simulated again",
            &mismatched,
            rechecked.len(),
            first,
        ));
    } else if rechecked.is_empty() {
        determinism.skipped = Some("no seed of this scenario was re-checked".into());
    }
    out.push(determinism);
    let broken: Vec<&Record> = records
        .iter()
        .filter(|r| r.ending != Ending::Ran)
        .copied()
        .collect();
    let mut completes = Case {
        name: "runs to its end".into(),
        failure: None,
        skipped: None,
        out: None,
    };
    if let Some(head) = broken.first() {
        let first = head.error.clone().unwrap_or_default();
        completes.failure = Some(failure(
            "crashed or timed out",
            &broken,
            records.len(),
            first,
        ));
    }
    out.push(completes);
    out
}

/// Records grouped by scenario, in the sweep's order of scenarios.
fn by_scenario(sweep: &Sweep) -> Vec<(&str, Vec<&Record>)> {
    sweep
        .header
        .scenarios
        .iter()
        .map(|name| {
            let records = sweep
                .records
                .iter()
                .filter(|r| &r.scenario == name)
                .collect();
            (name.as_str(), records)
        })
        .collect()
}

/// The sweep as JUnit XML.
pub fn junit_xml(sweep: &Sweep) -> String {
    let mut suites = String::new();
    let (mut tests, mut failures) = (0usize, 0usize);
    let mut seen = BTreeSet::new();
    for (name, records) in by_scenario(sweep) {
        if records.is_empty() || !seen.insert(name) {
            continue;
        }
        let cases = cases(&records, sweep.header.fail_inconclusive);
        let failed = cases.iter().filter(|c| c.failure.is_some()).count();
        let skipped = cases.iter().filter(|c| c.skipped.is_some()).count();
        let time: f64 = records.iter().map(|r| r.wall_s).sum();
        tests += cases.len();
        failures += failed;
        let _ = writeln!(
            suites,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">",
            xml_text(name),
            cases.len(),
        );
        for c in cases {
            let _ = write!(
                suites,
                "    <testcase classname=\"{}\" name=\"{}\"",
                xml_text(name),
                xml_text(&c.name),
            );
            match (&c.failure, &c.skipped) {
                (None, None) if c.out.is_some() => {
                    let _ = writeln!(
                        suites,
                        ">\n      <system-out>{}</system-out>\n    </testcase>",
                        xml_text(c.out.as_deref().unwrap_or_default())
                    );
                }
                (Some((message, body)), _) => {
                    let _ = writeln!(
                        suites,
                        ">\n      <failure message=\"{}\" type=\"violation\">{}</failure>\n    </testcase>",
                        xml_text(message),
                        xml_text(body)
                    );
                }
                (None, Some(why)) => {
                    let _ = writeln!(
                        suites,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        xml_text(why)
                    );
                }
                (None, None) => suites.push_str("/>\n"),
            }
        }
        suites.push_str("  </testsuite>\n");
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"stampede sweep\" tests=\"{tests}\" failures=\"{failures}\">\n{suites}</testsuites>\n"
    )
}

/// The summary: totals, then failures by scenario and invariant with their seeds.
pub fn summary(sweep: &Sweep) -> String {
    let h = &sweep.header;
    let runs = sweep.records.len();
    let failed = sweep.records.iter().filter(|r| sweep.fails(r)).count();
    let undecided: Vec<&Record> = sweep
        .records
        .iter()
        .filter(|r| r.is_inconclusive())
        .collect();
    let broken = sweep
        .records
        .iter()
        .filter(|r| r.ending != Ending::Ran)
        .count();
    let rechecked = sweep.records.iter().filter(|r| r.recheck.is_some()).count();
    let mismatched = sweep
        .records
        .iter()
        .filter(|r| r.nondeterministic())
        .count();
    let virtual_s: f64 = sweep.records.iter().map(|r| r.virtual_s).sum();
    let mut out = String::new();
    let _ = writeln!(out, "# stampede sweep\n");
    let shard = if h.shard == Shard::ALL {
        String::new()
    } else {
        format!(", shard {}", h.shard)
    };
    let _ = writeln!(
        out,
        "{runs} runs of {} scenarios on seeds {}{shard}: {} passed, {failed} failed ({broken} crashed or timed out){}; {rechecked} re-checked for determinism, {mismatched} differed.",
        h.scenarios.iter().collect::<BTreeSet<_>>().len(),
        h.seeds,
        runs - failed
            - if h.fail_inconclusive {
                0
            } else {
                undecided.len()
            },
        match (undecided.len(), h.fail_inconclusive) {
            (0, _) => String::new(),
            (n, false) => format!(", {n} inconclusive"),
            (n, true) => format!(", {n} of them inconclusive"),
        },
    );
    let _ = writeln!(
        out,
        "{:.0} s of virtual time in {:.1} s of wall time with {} jobs ({:.1} runs a minute).",
        virtual_s,
        sweep.wall_s,
        sweep.jobs,
        runs as f64 / (sweep.wall_s / 60.0).max(1e-9)
    );
    let shrunk: Vec<&super::shrink::Shrunk> =
        sweep.records.iter().flat_map(|r| &r.shrink).collect();
    if !shrunk.is_empty() {
        let runs: u32 = shrunk.iter().map(|s| s.runs).sum();
        let left: usize = shrunk.iter().map(|s| s.faults_after).sum();
        let before: usize = shrunk.iter().map(|s| s.faults_before).sum();
        let _ = writeln!(
            out,
            "Shrinking: {} failures shrunk in {runs} runs, from {before} faults to {left} in all.",
            shrunk.len()
        );
    }
    if sweep.interrupted {
        let _ = writeln!(
            out,
            "\nStopped by Ctrl-C: the {runs} runs that finished are kept; the rest did not run."
        );
    }
    inconclusive_table(&mut out, sweep, &undecided);
    failures_table(&mut out, sweep);
    out
}

/// The failures by scenario and what failed, with their seeds, the first one's replay command
/// and report, and each group's first witness.
fn failures_table(out: &mut String, sweep: &Sweep) {
    let h = &sweep.header;
    // (scenario, what failed) → records.
    let mut groups: BTreeMap<(usize, String), Vec<&Record>> = BTreeMap::new();
    for r in sweep.records.iter().filter(|r| sweep.fails(r)) {
        let order = h
            .scenarios
            .iter()
            .position(|s| s == &r.scenario)
            .unwrap_or(usize::MAX);
        for name in r.failed_invariants() {
            groups.entry((order, name.clone())).or_default().push(r);
        }
        if h.fail_inconclusive && r.is_inconclusive() {
            for name in r.inconclusive.keys() {
                let what = format!("{name} (inconclusive)");
                groups.entry((order, what)).or_default().push(r);
            }
        }
        if r.nondeterministic() {
            groups
                .entry((order, "determinism".into()))
                .or_default()
                .push(r);
        }
        if r.ending != Ending::Ran {
            groups
                .entry((order, "runs to its end".into()))
                .or_default()
                .push(r);
        }
    }
    if groups.is_empty() {
        let _ = writeln!(out, "\nNo failures.");
        return;
    }
    let _ = writeln!(
        out,
        "\n| scenario | failed | seeds | replay the first | its report |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for ((_, what), records) in &groups {
        let head = records[0];
        let replay = match head.shrunk_for(what) {
            Some((file, s)) => format!(
                "`{}` (shrunk to `{file}`: {} of {} faults left, {} runs{})",
                head.replay,
                s.faults_after,
                s.faults_before,
                s.runs,
                if s.budget_spent { ", budget spent" } else { "" }
            ),
            _ => format!("`{}`", head.replay),
        };
        // The first failing run's page, where its run finished and wrote one.
        let report = if head.ending == Ending::Ran {
            format!("[report.html]({}/report.html)", head.run_dir)
        } else {
            "–".into()
        };
        let _ = writeln!(
            out,
            "| {} | {what} | {} of {} ({}) | {replay} | {report} |",
            head.scenario,
            records.len(),
            sweep
                .records
                .iter()
                .filter(|r| r.scenario == head.scenario)
                .count(),
            seed_list(records),
        );
    }
    for ((_, what), records) in &groups {
        let head = records[0];
        let detail = head
            .witnesses
            .get(what)
            .cloned()
            .or_else(|| head.error.clone())
            .unwrap_or_default();
        if !detail.is_empty() {
            let _ = writeln!(
                out,
                "\n{} / {what}, seed {}: {detail}",
                head.scenario, head.seed
            );
        }
    }
}

/// The inconclusive runs by scenario and invariant: their seeds and the first one's reason.
fn inconclusive_table(out: &mut String, sweep: &Sweep, undecided: &[&Record]) {
    if undecided.is_empty() {
        return;
    }
    let mut groups: BTreeMap<(usize, &str, &str), Vec<&Record>> = BTreeMap::new();
    for r in undecided {
        let order = sweep.header.scenarios.iter().position(|s| s == &r.scenario);
        for name in r.inconclusive.keys() {
            let key = (
                order.unwrap_or(usize::MAX),
                r.scenario.as_str(),
                name.as_str(),
            );
            groups.entry(key).or_default().push(r);
        }
    }
    let _ = writeln!(
        out,
        "
Inconclusive: a listed invariant undecided (unknown, or passed without reaching its state and no reason under `expect.unreached`){}.
",
        if sweep.header.fail_inconclusive {
            "; `--fail-inconclusive` counts these as failures"
        } else {
            "; counted apart (`--fail-inconclusive` fails them)"
        }
    );
    let _ = writeln!(out, "| scenario | invariant | seeds | why (first seed) |");
    let _ = writeln!(out, "|---|---|---|---|");
    for ((_, scenario, name), records) in &groups {
        let why = records[0]
            .inconclusive
            .get(*name)
            .cloned()
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {scenario} | {name} | {} | {} |",
            seed_list(records),
            why.replace('|', "\\|")
        );
    }
}

/// Writes `sweep.json`, `junit.xml` and `summary.md` into `dir`, each whole or not at all.
pub fn write(sweep: &Sweep, dir: &Path) -> std::io::Result<()> {
    let mut json = serde_json::to_string_pretty(sweep).expect("a sweep serialises");
    json.push('\n');
    write_whole(&dir.join("sweep.json"), &json)?;
    write_whole(&dir.join("junit.xml"), &junit_xml(sweep))?;
    write_whole(&dir.join("summary.md"), &summary(sweep))
}

/// Reads a sweep directory's `sweep.json`.
pub fn read(dir: &Path) -> Result<Sweep, String> {
    let path = dir.join("sweep.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Merges the shards in `dirs` into one sweep. They must be the shards of one sweep (same
/// files, seeds and re-check share), each shard once and every one of them there: a missing
/// shard is an error, not a pass. Records are the union, in canonical order.
pub fn merge(dirs: &[PathBuf]) -> Result<Sweep, String> {
    let mut parts: Vec<(PathBuf, Sweep)> = Vec::new();
    for d in dirs {
        parts.push((d.clone(), read(d)?));
    }
    let Some((first_dir, first)) = parts.first() else {
        return Err("no sweep directories to merge".into());
    };
    let same = |h: &Header| {
        h.files == first.header.files
            && h.seeds == first.header.seeds
            && h.recheck == first.header.recheck
            && h.shard.count == first.header.shard.count
            && h.version == FORMAT_VERSION
    };
    for (d, s) in &parts {
        if !same(&s.header) {
            return Err(format!(
                "{} is not a shard of the same sweep as {} (files, seeds, re-check share and shard count must match, and the format be version {FORMAT_VERSION})",
                d.display(),
                first_dir.display()
            ));
        }
        if s.interrupted {
            return Err(format!(
                "{} was stopped before its end: run its shard again",
                d.display()
            ));
        }
    }
    let count = first.header.shard.count;
    let mut have: BTreeMap<u64, &Path> = BTreeMap::new();
    for (d, s) in &parts {
        if let Some(other) = have.insert(s.header.shard.index, d) {
            return Err(format!(
                "shard {} is given twice: {} and {}",
                s.header.shard,
                other.display(),
                d.display()
            ));
        }
    }
    let missing: Vec<String> = (1..=count)
        .filter(|i| !have.contains_key(i))
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(format!("shards missing: {}", missing.join(", ")));
    }
    let mut records: Vec<Record> = parts
        .iter()
        .flat_map(|(_, s)| s.records.iter().cloned())
        .collect();
    records.sort_by_key(|r| r.index);
    let wall_s = parts.iter().map(|(_, s)| s.wall_s).fold(0.0, f64::max);
    let jobs = parts.iter().map(|(_, s)| s.jobs).sum();
    Ok(Sweep {
        header: Header {
            shard: Shard::ALL,
            ..first.header.clone()
        },
        interrupted: false,
        wall_s,
        jobs,
        records,
    })
}

/// Copies a shard's run directories and shrunk files into the merged directory.
pub fn copy_artefacts(from: &Path, to: &Path) -> std::io::Result<()> {
    for sub in ["runs", "shrunk"] {
        let src = from.join(sub);
        if src.is_dir() {
            copy_tree(&src, &to.join(sub))?;
        }
    }
    Ok(())
}

fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dst)?;
    let mut entries: Vec<_> = std::fs::read_dir(src)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let (s, d) = (e.path(), dst.join(e.file_name()));
        if e.file_type()?.is_dir() {
            copy_tree(&s, &d)?;
        } else {
            std::fs::copy(&s, &d)?;
        }
    }
    Ok(())
}
