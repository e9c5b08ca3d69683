//! `stampede gameday` in its scripted mode, as CI and rehearsals use it: incident 1's naive
//! twin run to 25 s, a branch that pauses admission there, the comparison, and the branch
//! saved as a scenario that `stampede run` replays with the branch's verdicts.

use std::process::Command;

use crate::{fresh_dir, repo, said as text, stampede};

#[test]
fn a_scripted_gameday_branches_compares_and_saves_a_rehearsal() {
    let dir = fresh_dir("gameday-script");
    let naive = repo("scenarios/incidents/metadata-overload-freeze/naive.yaml");
    std::fs::write(
        dir.join("script.txt"),
        "until 25s\nstatus\nbranch pause-admission\ndo admission.pause for=5m\nswitch nowhere\ncompare\nsave saved.yaml\nquit\n",
    )
    .unwrap();
    let out = stampede(
        &[
            "gameday",
            naive.to_str().unwrap(),
            "--script",
            "script.txt",
            "--out",
            "gd",
        ],
        &dir,
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    // The dashboard at 25 s, the fork's check, a one-line error and the comparison.
    assert!(
        said.contains("paused at 0:25 (main): reached 0:25"),
        "{said}"
    );
    assert!(said.contains("backlog"), "{said}");
    assert!(
        said.contains("the log up to the fork is the same"),
        "{said}"
    );
    assert!(
        said.contains("error: no branch nowhere (branches: main, pause-admission)"),
        "{said}"
    );
    assert!(said.contains("admission.pause goes out at 0:25"), "{said}");
    assert!(said.contains("time frozen by the provider"), "{said}");
    // gameday.json: two branches, equal prefix digests, actions and verdicts.
    let g: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("gd/gameday.json")).unwrap())
            .unwrap();
    let branches = g["branches"].as_array().unwrap();
    assert_eq!(branches.len(), 2, "{g}");
    assert_eq!(branches[0]["name"], "main");
    assert_eq!(branches[1]["name"], "pause-admission");
    assert_eq!(branches[1]["parent"], "main");
    assert_eq!(branches[1]["fork_at_ms"].as_u64().unwrap() / 1000, 25);
    let prefix = |b: &serde_json::Value| b["prefix_digest"].as_str().unwrap().to_string();
    assert_eq!(prefix(&branches[1]).len(), 64);
    assert_eq!(
        prefix(&branches[0]),
        prefix(&branches[1]),
        "main and its branch share the log up to the fork"
    );
    assert_eq!(branches[1]["actions"].as_array().unwrap().len(), 1);
    assert_eq!(branches[0]["actions"].as_array().unwrap().len(), 0);
    assert_ne!(branches[0]["digest"], branches[1]["digest"]);
    for b in branches {
        assert!(b["verdicts"]["never_frozen"].is_string(), "{b}");
    }
    // timeline.md tells both branches and the outcome.
    let md = std::fs::read_to_string(dir.join("gd/timeline.md")).unwrap();
    assert!(
        md.contains("## Branch `main`") && md.contains("## Branch `pause-admission`"),
        "{md}"
    );
    assert!(md.contains("`do admission.pause for=5m`"), "{md}");
    assert!(md.contains("note: Ten seconds over the threshold"), "{md}");
    assert!(md.contains("## Outcomes"), "{md}");
    // The saved branch is a plain scenario: `stampede run` gives the branch's verdicts.
    let saved = dir.join("saved.yaml");
    let yaml = std::fs::read_to_string(&saved).unwrap();
    assert!(yaml.contains("admission.pause"), "{yaml}");
    let run = stampede(&["run", "saved.yaml", "--out", "rerun"], &dir);
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rerun/results.json")).unwrap())
            .unwrap();
    for (name, word) in branches[1]["verdicts"].as_object().unwrap() {
        assert_eq!(
            &results["verdicts"][name]["verdict"],
            word,
            "{name}: the saved scenario's run differs from the branch\n{}",
            text(&run)
        );
    }
    assert_eq!(
        results["digest"], branches[1]["digest"],
        "the saved scenario replays the branch event for event"
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
}

#[test]
fn a_script_with_a_mistake_is_refused_before_anything_runs() {
    let dir = fresh_dir("gameday-bad");
    std::fs::write(dir.join("script.txt"), "until 25s\nstep soon\n").unwrap();
    let naive = repo("scenarios/incidents/metadata-overload-freeze/naive.yaml");
    let out = stampede(
        &["gameday", naive.to_str().unwrap(), "--script", "script.txt"],
        &dir,
    );
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(
        text(&out).contains("script.txt:2: `step`:"),
        "{}",
        text(&out)
    );
}

#[test]
fn at_the_prompt_a_mistake_gets_one_line_and_the_prompt_back() {
    use std::io::Write as _;
    let dir = fresh_dir("gameday-stdin");
    let smoke = repo("scenarios/smoke.yaml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stampede"))
        .args(["gameday", smoke.to_str().unwrap(), "--out", "gd"])
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"frobnicate\nstep soon\nuntil 1m\nuntil 30s\nquit\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("error: unknown command `frobnicate` (`help` lists them)"),
        "{said}"
    );
    assert!(said.contains("error: `step`:"), "{said}");
    assert!(
        said.contains("paused at 1:00 (main): reached 1:00"),
        "{said}"
    );
    assert!(said.contains("error: it is 1:00 already"), "{said}");
    assert!(dir.join("gd/timeline.md").is_file());
}
