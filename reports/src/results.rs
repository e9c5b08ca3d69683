//! The run directory's machine-readable files: `results.json` (verdicts and counts, for CI and
//! scripts) and `junit.xml` (the run as a test suite, for CI test tabs).

use std::collections::BTreeMap;

use quick_xml::escape::escape;
use serde_json::{Value, json};

use crate::run::{Calls, RunData, Status};

/// What makes the run fail against its `expect`: violations not expected, and expected
/// violations that did not happen. Empty when the run is as expected.
pub fn unexpected(run: &RunData) -> Vec<String> {
    let mut out: Vec<String> = run
        .verdicts
        .iter()
        .filter(|v| v.status == Status::Fail && !v.expected)
        .map(|v| format!("{} violated", v.name))
        .collect();
    out.extend(
        run.header
            .expected_violations
            .iter()
            .filter(|e| {
                !run.verdicts
                    .iter()
                    .any(|v| &v.name == *e && v.status == Status::Fail)
            })
            .map(|e| format!("{e} expected to be violated, but held")),
    );
    out
}

/// Two call tables added together.
pub fn merge_calls(a: &Calls, b: &Calls) -> Calls {
    let mut out = a.clone();
    for (service, apis) in b {
        for (api, outcomes) in apis {
            for (outcome, n) in outcomes {
                *out.entry(service.clone())
                    .or_default()
                    .entry(api.clone())
                    .or_default()
                    .entry(outcome.clone())
                    .or_default() += n;
            }
        }
    }
    out
}

/// The contents of `results.json`.
pub fn results_json(run: &RunData) -> Value {
    let verdicts: BTreeMap<&str, &Value> = run
        .verdicts
        .iter()
        .map(|v| (v.name.as_str(), &v.raw))
        .collect();
    let sometimes: BTreeMap<&str, Value> = run
        .verdicts
        .iter()
        .filter_map(|v| Some((v.name.as_str(), json!(v.sometimes.as_ref()?))))
        .collect();
    let unexpected = unexpected(run);
    let inconclusive: BTreeMap<&str, String> = run
        .verdicts
        .iter()
        .filter_map(|v| Some((v.name.as_str(), v.inconclusive()?)))
        .collect();
    json!({
        "scenario": run.header.scenario,
        "scenario_file": run.header.scenario_file,
        "seed": run.header.seed,
        "digest": run.header.digest,
        "events": run.header.events,
        "verdicts": verdicts,
        "sometimes": sometimes,
        "expected_violations": run.header.expected_violations,
        "as_expected": unexpected.is_empty(),
        "unexpected": unexpected,
        "inconclusive": inconclusive,
        "queries": run.query_events,
        "outcomes": run.outcomes,
        "provider_calls": merge_calls(&run.system_calls, &run.other_calls),
        "system_calls": run.system_calls,
        "other_calls": run.other_calls,
        "quota_peaks": run.quota_peaks,
    })
}

/// The verdicts as JUnit XML: the run is a test suite, each invariant a test case. A violation
/// the scenario expects is a passing case (its witness in `system-out`); an unexpected one, or
/// an expected one that did not happen, is a failure; `unknown` is skipped.
pub fn junit_xml(run: &RunData) -> String {
    let h = &run.header;
    let mut cases = String::new();
    let (mut failures, mut skipped) = (0, 0);
    for v in &run.verdicts {
        let detail = serde_json::to_string_pretty(&v.raw).unwrap_or_default();
        cases.push_str(&format!(
            "    <testcase classname=\"{}\" name=\"{}\">\n",
            escape(h.scenario.as_str()),
            escape(v.name.as_str())
        ));
        match (v.status, v.expected) {
            (Status::Fail, false) => {
                failures += 1;
                cases.push_str(&format!(
                    "      <failure message=\"{}\">{}</failure>\n",
                    escape(v.detail.as_str()),
                    escape(detail.as_str())
                ));
            }
            (Status::Fail, true) => cases.push_str(&format!(
                "      <system-out>violated, as the scenario expects\n{}</system-out>\n",
                escape(detail.as_str())
            )),
            (Status::Pass, true) => {
                failures += 1;
                cases.push_str(&format!(
                    "      <failure message=\"expected to be violated, but held\">{}</failure>\n",
                    escape(detail.as_str())
                ));
            }
            (Status::Unknown, _) => {
                skipped += 1;
                cases.push_str(&format!(
                    "      <skipped message=\"{}\"/>\n",
                    escape(v.detail.as_str())
                ));
            }
            (Status::Pass, false) => {
                // A pass that proves nothing is reported as one.
                if let Some(why) = v.inconclusive() {
                    skipped += 1;
                    cases.push_str(&format!(
                        "      <skipped message=\"{}\"/>\n",
                        escape(why.as_str())
                    ));
                }
            }
        }
        cases.push_str("    </testcase>\n");
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{:.3}\">\n    <properties>\n      <property name=\"seed\" value=\"{}\"/>\n      <property name=\"digest\" value=\"{}\"/>\n      <property name=\"replay\" value=\"stampede run {} --seed {}\"/>\n    </properties>\n{cases}  </testsuite>\n</testsuites>\n",
        escape(h.scenario.as_str()),
        run.verdicts.len(),
        h.wall_s,
        h.seed,
        h.digest,
        escape(h.scenario_file.as_str()),
        h.seed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{Sometimes, VerdictRow};

    fn row(name: &str, status: Status, expected: bool) -> VerdictRow {
        VerdictRow {
            name: name.into(),
            status,
            expected,
            detail: format!("{name} <detail>"),
            ..VerdictRow::default()
        }
    }

    #[test]
    fn junit_counts_unexpected_failures_and_unknowns() {
        let mut run = RunData::default();
        run.header.scenario = "s".into();
        run.header.expected_violations = vec!["b".into(), "c".into()];
        run.verdicts = vec![
            row("a", Status::Fail, false),
            row("b", Status::Fail, true),
            row("c", Status::Pass, true),
            row("d", Status::Unknown, false),
        ];
        let xml = junit_xml(&run);
        assert!(
            xml.contains("tests=\"4\" failures=\"2\" skipped=\"1\""),
            "{xml}"
        );
        assert!(xml.contains("a &lt;detail&gt;"));
        assert_eq!(
            unexpected(&run),
            vec!["a violated", "c expected to be violated, but held"]
        );
        assert_eq!(results_json(&run)["as_expected"], json!(false));
        assert!(results_json(&run)["inconclusive"]["d"].is_string());
    }

    #[test]
    fn a_pass_never_reached_is_inconclusive_unless_the_scenario_says_why() {
        let mut run = RunData::default();
        let mut vacuous = row("v", Status::Pass, false);
        vacuous.sometimes = Some(Sometimes {
            state: "a region came back".into(),
            reached: false,
        });
        let mut explained = vacuous.clone();
        explained.name = "e".into();
        explained.unreached_why = Some("no outage here".into());
        run.verdicts = vec![vacuous, explained, row("p", Status::Pass, false)];
        let results = results_json(&run);
        let inconclusive = results["inconclusive"].as_object().unwrap();
        assert_eq!(inconclusive.keys().collect::<Vec<_>>(), ["v"]);
        assert!(
            inconclusive["v"]
                .as_str()
                .unwrap()
                .contains("a region came back")
        );
        assert!(junit_xml(&run).contains("skipped=\"1\""));
    }
}
