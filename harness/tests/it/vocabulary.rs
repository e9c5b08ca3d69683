//! `EVENTS.md` is the vocabulary checkers and users read: every event the code logs is listed
//! there under its target, and every event listed there is logged by some code.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use stampede::input::fault::FaultKind;
use stampede::span::Span;

use crate::repo;

/// Each target's event names as `EVENTS.md` lists them: the first column of each table under a
/// `## \`stampede::…\`` heading.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(repo("EVENTS.md")).unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut target = None;
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            // A heading without a target (the kinds of fault) ends the target's section.
            target = h
                .strip_prefix('`')
                .and_then(|h| h.split('`').next())
                .map(str::to_string);
            continue;
        }
        let (Some(t), Some(row)) = (&target, line.strip_prefix('|')) else {
            continue;
        };
        let first = row.split('|').next().unwrap_or("");
        for name in first.split('`').skip(1).step_by(2) {
            out.entry(t.clone()).or_default().insert(name.to_string());
        }
    }
    out
}

/// Every `tracing` macro with a `target:` in the code of the three crates that log, as
/// (target expression's last segment, the message: the last string literal).
fn logged_by_macros() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut files = Vec::new();
    for krate in ["system/src", "fakes/src", "harness/src"] {
        let mut dirs = vec![repo(krate)];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    files.push(p);
                }
            }
        }
    }
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        // Test modules log what they like.
        let code = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or(&text);
        for (at, _) in code.match_indices("!(") {
            let before = &code[..at];
            if !["info", "warn", "error", "debug", "trace"]
                .iter()
                .any(|m| before.ends_with(m))
            {
                continue;
            }
            let args = balanced(&code[at + 2..]);
            let Some(t) = args.trim_start().strip_prefix("target:") else {
                continue;
            };
            let target = t.split(',').next().unwrap_or("").trim();
            let target = target.rsplit("::").next().unwrap_or(target).to_string();
            let Some(name) = args.rsplit('"').nth(1) else {
                continue;
            };
            // A name chosen at run time (`"{}", phase.event()`): [`named_at_run_time`] has them.
            if name.starts_with('{') {
                continue;
            }
            out.push((target, name.to_string()));
        }
    }
    out
}

/// The text up to the parenthesis that closes the one just opened, string literals skipped.
fn balanced(s: &str) -> &str {
    let (mut depth, mut in_str, mut escaped) = (1, false, false);
    for (i, c) in s.char_indices() {
        match (in_str, c) {
            (true, '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (true, '"') if !escaped => in_str = false,
            (false, '"') => in_str = true,
            (false, '(') => depth += 1,
            (false, ')') => {
                depth -= 1;
                if depth == 0 {
                    return &s[..i];
                }
            }
            _ => {}
        }
        escaped = false;
    }
    s
}

/// The target constants of the code, by name: `const X: &str = "stampede::…"`.
fn target_constants() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("QUERY_EVENTS", stampede_system::coordinator::QUERY_EVENTS),
        ("AUDIT_EVENTS", stampede_system::coordinator::AUDIT_EVENTS),
        (
            "CONFIG_EVENTS",
            stampede_system::config_agent::CONFIG_EVENTS,
        ),
        ("TASK_EVENTS", stampede_system::worker::TASK_EVENTS),
        ("MECHANISM_EVENTS", stampede_system::guard::MECHANISM_EVENTS),
        ("OPERATOR_EVENTS", stampede_system::admin::OPERATOR_EVENTS),
        (
            "PROVIDER_EVENTS",
            stampede_fakes::provider::call::PROVIDER_EVENTS,
        ),
        ("FAULT_EVENTS", stampede::world::control::FAULT_EVENTS),
        ("TRAFFIC_EVENTS", stampede::world::traffic::TRAFFIC_EVENTS),
        ("METER_EVENTS", stampede::world::traffic::METER_EVENTS),
    ])
}

/// One fault of each kind (the match fails to compile when a kind is added and not listed).
fn every_kind() -> Vec<FaultKind> {
    let s = String::new;
    let document = serde_json::from_str(r#"{"version": 1}"#).unwrap();
    let all = vec![
        FaultKind::AccountFreeze { account: None },
        FaultKind::AccessRevoke { lake: 0 },
        FaultKind::ApiThrottle {
            api: s(),
            rate_per_s: 1.0,
        },
        FaultKind::ApiErrors {
            api: s(),
            fraction: 1.0,
        },
        FaultKind::RegionOutage,
        FaultKind::HostCrash { host: s() },
        FaultKind::Latency {
            extra: Span(Duration::ZERO),
        },
        FaultKind::FleetCapacity { fraction: 1.0 },
        FaultKind::NetworkPartition { a: s(), b: s() },
        FaultKind::LogsStall,
        FaultKind::ConfigPush { document },
        FaultKind::AdmissionPause,
        FaultKind::AdmissionResume,
        FaultKind::CachesFlush,
        FaultKind::DrainRate { fraction: 1.0 },
        FaultKind::Failover,
        FaultKind::TrafficBurst { per_s: 1.0 },
    ];
    for k in &all {
        match k {
            FaultKind::AccountFreeze { .. }
            | FaultKind::AccessRevoke { .. }
            | FaultKind::ApiThrottle { .. }
            | FaultKind::ApiErrors { .. }
            | FaultKind::RegionOutage
            | FaultKind::HostCrash { .. }
            | FaultKind::Latency { .. }
            | FaultKind::FleetCapacity { .. }
            | FaultKind::NetworkPartition { .. }
            | FaultKind::LogsStall
            | FaultKind::ConfigPush { .. }
            | FaultKind::AdmissionPause
            | FaultKind::AdmissionResume
            | FaultKind::CachesFlush
            | FaultKind::DrainRate { .. }
            | FaultKind::Failover
            | FaultKind::TrafficBurst { .. } => {}
        }
    }
    all
}

/// The first column of the table under `## {heading}` in `EVENTS.md`.
fn table_after(heading: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo("EVENTS.md")).unwrap();
    let section = text
        .split(&format!("## {heading}"))
        .nth(1)
        .unwrap_or("")
        .split("\n## ")
        .next()
        .unwrap_or("");
    section
        .lines()
        .filter_map(|l| l.strip_prefix('|'))
        .flat_map(|row| {
            let first = row.split('|').next().unwrap_or("").to_string();
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_kind_of_fault_with_a_window_is_in_events_md_and_only_those() {
    let windows: BTreeSet<String> = every_kind()
        .iter()
        .filter(|k| !k.is_operator())
        .map(|k| k.name().to_string())
        .collect();
    assert_eq!(windows.len(), 11, "{windows:?}");
    assert_eq!(table_after("Kinds of fault"), windows);
}

/// The events whose names the code chooses at run time from an enum: a query's phases and the
/// caches' lookups (each enum's every variant, so that a new one must be listed here).
fn named_at_run_time() -> Vec<(&'static str, &'static str)> {
    use stampede_system::api::Phase;
    use stampede_system::guard::cache::Lookup;
    let phases = [
        Phase::Queued,
        Phase::Running,
        Phase::Succeeded,
        Phase::Failed,
        Phase::Cancelled,
        Phase::DeadlineExceeded,
    ];
    let lookups = [Lookup::Hit, Lookup::Miss, Lookup::Coalesced];
    for p in phases {
        match p {
            Phase::Queued
            | Phase::Running
            | Phase::Succeeded
            | Phase::Failed
            | Phase::Cancelled
            | Phase::DeadlineExceeded => {}
        }
    }
    for l in lookups {
        match l {
            Lookup::Hit | Lookup::Miss | Lookup::Coalesced => {}
        }
    }
    let query = stampede_system::coordinator::QUERY_EVENTS;
    let mechanism = stampede_system::guard::MECHANISM_EVENTS;
    phases
        .iter()
        .map(|p| (query, p.event()))
        .chain(lookups.iter().map(|l| (mechanism, l.event())))
        .collect()
}

/// What the code logs, by target.
fn logged() -> BTreeMap<String, BTreeSet<String>> {
    let constants = target_constants();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (target, name) in logged_by_macros() {
        let target = constants
            .get(target.as_str())
            .map_or(target.trim_matches('"').to_string(), |t| t.to_string());
        out.entry(target).or_default().insert(name);
    }
    for (target, name) in named_at_run_time() {
        out.entry(target.into()).or_default().insert(name.into());
    }
    // The timeline's, pushed to the log as faults begin and end.
    let fault = stampede::world::control::FAULT_EVENTS.to_string();
    for name in stampede::world::control::EVENT_NAMES {
        out.entry(fault.clone()).or_default().insert(name.into());
    }
    // The alert engine's two, pushed to the log as the rules change state.
    let alert = stampede::judge::invariants::vocabulary::ALERT_TARGET.to_string();
    for name in ["firing", "resolved"] {
        out.entry(alert.clone()).or_default().insert(name.into());
    }
    out
}

#[test]
fn every_event_logged_is_in_events_md_and_every_one_listed_is_logged() {
    let (docs, code) = (documented(), logged());
    assert!(code.len() >= 10, "{code:?}");
    let mut problems = Vec::new();
    for (target, names) in &code {
        for n in names {
            if !docs.get(target).is_some_and(|d| d.contains(n)) {
                problems.push(format!("`{target}` `{n}` is logged but not in EVENTS.md"));
            }
        }
    }
    for (target, names) in &docs {
        for n in names {
            if !code.get(target).is_some_and(|c| c.contains(n)) {
                problems.push(format!(
                    "EVENTS.md lists `{target}` `{n}`, which nothing logs"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_vocabulary_check_sees_a_missing_event() {
    // An event EVENTS.md does not list is found: the check reads both sides.
    let mut docs = documented();
    let fault = stampede::world::control::FAULT_EVENTS;
    assert!(docs[fault].contains("fault_start") && docs[fault].contains("fault_end"));
    docs.get_mut(fault).unwrap().remove("fault_end");
    let code = logged();
    let missing: Vec<&String> = code[fault]
        .iter()
        .filter(|n| !docs[fault].contains(*n))
        .collect();
    assert_eq!(missing, ["fault_end"]);
}
