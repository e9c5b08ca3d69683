//! What people look at: each run's `report.html` and `report.md`, `stampede compare` and
//! `stampede capacity`. What can be checked without eyes is checked here: nothing is fetched,
//! every chart has labelled axes, the page has a verdict panel; the numbers agree with
//! `results.json`; bad arguments get exit 64.

use std::path::{Path, PathBuf};

use crate::{fresh_dir, repo, said as text, stampede};

/// A page fetches nothing: no script, stylesheet link, image, frame, font or `url()`, and the
/// only URL in it is the SVG namespace.
pub fn assert_self_contained(html: &str) {
    for banned in [
        "<script",
        "<link",
        "<img",
        "<iframe",
        "@import",
        "src=",
        "href=\"http",
    ] {
        assert!(!html.contains(banned), "the page has `{banned}`");
    }
    // `url(#id)` points into the page itself (a clip path); any other `url(` fetches.
    assert_eq!(
        html.matches("url(").count(),
        html.matches("url(#").count(),
        "the page has a `url(` that is not a fragment of itself"
    );
    let urls = html.matches("http://").count() + html.matches("https://").count();
    let namespaces = html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count();
    assert_eq!(
        urls, namespaces,
        "the page names a URL other than the SVG namespace"
    );
}

/// Every chart has a title, a description and two axis titles (a timeline has its one x axis),
/// and the page has a verdict panel.
pub fn assert_readable(html: &str) {
    assert!(html.contains("id=\"verdicts\""), "no verdict panel");
    let figures: Vec<&str> = html.split("<figure class=\"chart\">").skip(1).collect();
    assert!(!figures.is_empty(), "no charts");
    for f in figures {
        let f = &f[..f.find("</figure>").unwrap()];
        assert!(
            f.contains("<title") && f.contains("<desc"),
            "a chart without title or desc"
        );
        let axes = f.matches("class=\"axis-title\"").count();
        assert!(
            axes >= 1,
            "a chart without axis titles: {}",
            &f[..200.min(f.len())]
        );
        if !f.contains("class=\"lane") && !f.contains("Timeline") && !f.contains("timeline") {
            assert!(
                axes >= 2,
                "a chart with one axis title: {}",
                &f[..300.min(f.len())]
            );
        }
        assert!(f.contains("<details>"), "a chart without its data table");
        assert!(
            !f.contains("NaN") && !f.contains("inf\""),
            "a chart with NaN"
        );
    }
}

#[test]
fn every_run_writes_a_self_contained_report() {
    let dir = fresh_dir("reports-run");
    let out = stampede(
        &[
            "run",
            repo("scenarios/smoke.yaml").to_str().unwrap(),
            "--out",
            "run",
        ],
        &dir,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let html = std::fs::read_to_string(dir.join("run/report.html")).unwrap();
    assert_self_contained(&html);
    assert_readable(&html);
    for chart in [
        "Queries offered, and how they ended",
        "Latency of succeeded queries",
        "Backlog of lake tasks",
        "Metadata fleet utilisation",
        "throttled calls",
    ] {
        assert!(html.contains(chart), "no chart `{chart}`");
    }
    let md = std::fs::read_to_string(dir.join("run/report.md")).unwrap();
    assert!(
        md.len() < 16_000,
        "report.md is {} bytes: too big for a comment",
        md.len()
    );
    assert!(md.contains("| `no_lost_queries` | ✓ pass"), "{md}");
    // The report's counts are the results' counts.
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run/results.json")).unwrap())
            .unwrap();
    assert_eq!(results["outcomes"]["offered"], 10);
    assert_eq!(results["outcomes"]["succeeded"], 10);
    assert!(md.contains("10 offered, 10 succeeded"), "{md}");
    let data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run/report.json")).unwrap())
            .unwrap();
    let offered: u64 = data["series"]["offered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(offered, 10);
    // The summary keeps the system's calls apart from other accounts'.
    let summary = text(&out);
    assert!(summary.contains("system's provider calls"), "{summary}");
    assert!(summary.contains("still running"), "{summary}");
}

/// The smoke scenario with another preset, in `dir`.
fn twin(dir: &Path, preset: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("traces")).unwrap();
    std::fs::copy(
        repo("scenarios/traces/smoke.jsonl"),
        dir.join("traces/smoke.jsonl"),
    )
    .unwrap();
    let text = std::fs::read_to_string(repo("scenarios/smoke.yaml"))
        .unwrap()
        .replace("name: smoke", &format!("name: smoke-{preset}"))
        .replace(
            "traffic:",
            &format!("system: {{ preset: {preset} }}\ntraffic:"),
        );
    let path = dir.join(format!("{preset}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn compare_puts_twins_side_by_side_and_says_what_differs() {
    let dir = fresh_dir("reports-compare");
    for preset in ["naive", "hardened"] {
        let file = twin(&dir, preset);
        let out = stampede(&["run", file.to_str().unwrap(), "--out", preset], &dir);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let out = stampede(&["compare", "naive", "hardened", "--out", "cmp"], &dir);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let md = text(&out);
    assert!(
        md.contains("Same seed, world, traffic. They differ in: the system's preset."),
        "{md}"
    );
    assert!(md.contains("| goodput |"), "{md}");
    let html = std::fs::read_to_string(dir.join("cmp/compare.html")).unwrap();
    assert_self_contained(&html);
    assert_readable(&html);
    assert!(html.contains("<th>A: smoke-naive</th><th>B: smoke-hardened</th>"));
    // Runs of different scenarios: said, and compared as far as they go.
    let out = stampede(
        &[
            "run",
            repo("scenarios/smoke.yaml").to_str().unwrap(),
            "--seed",
            "8",
            "--out",
            "other",
        ],
        &dir,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = stampede(&["compare", "naive", "other", "--out", "cmp2"], &dir);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("do not share their world"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("seed (7 and 8)"), "{}", text(&out));
    // Not a run directory: exit 64, and it says what it wanted.
    let out = stampede(&["compare", "naive", "nowhere"], &dir);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(text(&out).contains("nowhere/report.json"), "{}", text(&out));
}

#[test]
fn capacity_refuses_bad_ladders_with_exit_64() {
    let dir = fresh_dir("reports-capacity-bad");
    let file = repo("scenarios/capacity/ladder.yaml");
    let file = file.to_str().unwrap();
    for (load, says) in [
        ("", "not a number"),
        ("1,-2", "not above 0"),
        ("2,1", "must rise"),
        ("1,1", "must rise"),
    ] {
        let out = stampede(&["capacity", file, "--load", load, "--out", "c"], &dir);
        assert_eq!(out.status.code(), Some(64), "--load {load}: {}", text(&out));
        assert!(text(&out).contains(says), "--load {load}: {}", text(&out));
    }
    // A scenario whose traffic yields no query has nothing to scale.
    std::fs::create_dir_all(dir.join("traces")).unwrap();
    std::fs::copy(
        repo("scenarios/traces/smoke.jsonl"),
        dir.join("traces/smoke.jsonl"),
    )
    .unwrap();
    let text_ = std::fs::read_to_string(repo("scenarios/smoke.yaml"))
        .unwrap()
        .replace(
            "replay: traces/smoke.jsonl",
            "replay: traces/smoke.jsonl\n  tenants: [nobody]",
        );
    std::fs::write(dir.join("empty.yaml"), text_).unwrap();
    let out = stampede(
        &["capacity", "empty.yaml", "--load", "1,2", "--out", "c"],
        &dir,
    );
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(text(&out).contains("no traffic to scale"), "{}", text(&out));
    assert!(!dir.join("c/capacity.json").exists());
}

#[test]
fn a_capacity_ladder_rises_and_finds_its_knee_or_says_why_not() {
    let dir = fresh_dir("reports-capacity");
    let file = repo("scenarios/capacity/ladder.yaml");
    let out = stampede(
        &[
            "capacity",
            file.to_str().unwrap(),
            "--load",
            "0.5,1,2,4",
            "--jobs",
            "2",
            "--out",
            "c",
        ],
        &dir,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("c/capacity.json")).unwrap())
            .unwrap();
    assert_eq!(c["scenario"], "capacity-ladder");
    let points = c["points"].as_array().unwrap();
    assert_eq!(points.len(), 4);
    let mut last = 0.0;
    for p in points {
        let offered = p["offered_per_s"].as_f64().unwrap();
        let goodput = p["goodput_per_s"].as_f64().unwrap();
        assert!(offered > last, "offered load must rise: {points:?}");
        assert!(goodput <= offered + 1e-9, "goodput above offered: {p}");
        for k in ["load", "p50_ms", "p99_ms", "p999_ms", "verdicts"] {
            assert!(p.get(k).is_some(), "point without {k}: {p}");
        }
        last = offered;
    }
    assert!(
        c["knee"].is_object() || c["no_knee"].as_str().is_some_and(|r| r.contains("none")),
        "neither a knee nor a reason: {c}"
    );
    if let Some(k) = c["knee"].as_object() {
        assert!(k["rule"].as_str().unwrap().contains("0.9"));
    }
    let html = std::fs::read_to_string(dir.join("c/capacity.html")).unwrap();
    assert_self_contained(&html);
    assert_readable(&html);
    assert!(html.contains("Goodput against offered load"));
    // Each rung is a run directory of its own, with its report.
    assert!(dir.join("c/runs/load-4/seed-11/report.html").is_file());
}
