//! Architecture invariants that the compiler does not keep: the checkers are pure functions of
//! the event log, so nothing under `harness/src/judge/invariants/` may import any other part of the
//! harness than the log (`events`) and its durations (`span`); and the system and the fakes,
//! which know nothing of each other, agree on the correlation headers.

use crate::repo;

#[test]
fn the_checkers_import_nothing_of_the_harness_but_the_log() {
    let dir = repo("harness/src/judge/invariants");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    assert!(files.len() > 30, "the checkers are in {}", dir.display());
    let allowed = ["crate::events", "crate::span", "crate::judge::invariants"];
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for (at, _) in code.match_indices("crate::") {
                let path = &code[at..];
                if !allowed.iter().any(|a| path.starts_with(a)) {
                    problems.push(format!(
                        "{}:{}: {}",
                        file.file_name().unwrap().to_string_lossy(),
                        i + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "checkers must read only the event log; these lines reach into the harness:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_system_sends_the_correlation_headers_the_fakes_log() {
    // The system and the fakes know nothing of each other, so each names the headers itself.
    use stampede_fakes::provider::call as fakes;
    use stampede_system::{aws_http, guard};
    assert_eq!(guard::OP_HEADER, fakes::OP_HEADER);
    assert_eq!(guard::ATTEMPT_HEADER, fakes::ATTEMPT_HEADER);
    assert_eq!(guard::QUERY_HEADER, fakes::QUERY_HEADER);
    assert_eq!(aws_http::INVOCATION_HEADER, fakes::INVOCATION_HEADER);
}

#[test]
fn reports_depend_on_no_other_crate_of_the_workspace() {
    // `reports` takes plain data in: it must not learn of the simulation, the system or the
    // fakes, so that its pages can be drawn from any run directory.
    let manifest = std::fs::read_to_string(repo("reports/Cargo.toml")).unwrap();
    for other in [
        "stampede-system",
        "stampede-fakes",
        "stampede\"",
        "stampede =",
    ] {
        assert!(
            !manifest.contains(other),
            "reports/Cargo.toml names {other}:\n{manifest}"
        );
    }
    assert!(manifest.contains("[dependencies]"));
}
