//! The compare page: two runs (twins on one seed, most often) side by side. Identity first,
//! then verdicts in two columns, the deltas, one shared timeline and overlaid charts.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::Value;

use super::run::{bands, hdr_chart, lane_color, per_bin, time_axis, y_axis};
use super::{at, class, num, page};
use crate::latency::Latency;
use crate::run::{Lane, RunData, Status, VerdictRow};
use crate::summary::{clock, ms};
use crate::svg::{
    self, Chart, Item, Lane as SvgLane, Mark, PALETTE, Scale, TickFormat, Timeline, escape,
};

/// The first run's colour (dashed) and the second's (solid).
const A_COLOR: &str = PALETTE[6];
const B_COLOR: &str = PALETTE[5];

/// Where two values differ, as dotted paths (`tuning.retries.max_attempts`), at most `limit`.
pub fn differences(a: &Value, b: &Value, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    diff(a, b, String::new(), &mut out, limit);
    out
}

fn diff(a: &Value, b: &Value, path: String, out: &mut Vec<String>, limit: usize) {
    if out.len() >= limit || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    p,
                    out,
                    limit,
                );
            }
        }
        _ => out.push(if path.is_empty() {
            "(all)".into()
        } else {
            path
        }),
    }
}

/// A run's faults and operator actions as the timeline has them, e.g. `account.freeze
/// 1:30–3:30`; `none` without any.
fn fault_list(r: &RunData) -> String {
    let marks: Vec<String> = r
        .timeline
        .iter()
        .filter(|m| matches!(m.lane, Lane::Fault | Lane::Operator))
        .map(|m| match m.end_ms {
            Some(e) => format!("{} {}–{}", m.label, at(m.start_ms), at(e)),
            None => format!("{} at {}", m.label, at(m.start_ms)),
        })
        .collect();
    if marks.is_empty() {
        "none".into()
    } else {
        marks.join(", ")
    }
}

/// What the two runs differ in: `(same world, traffic and seed, the lines to say)`.
pub fn identity(a: &RunData, b: &RunData) -> (bool, Vec<String>) {
    let (ha, hb) = (&a.header, &b.header);
    let mut same = vec![];
    let mut apart = vec![];
    if ha.seed == hb.seed {
        same.push("seed".to_string());
    } else {
        apart.push(format!("seed ({} and {})", ha.seed, hb.seed));
    }
    for (what, x, y) in [
        ("world", &ha.world, &hb.world),
        ("traffic", &ha.traffic, &hb.traffic),
    ] {
        let d = differences(x, y, 4);
        if d.is_empty() {
            same.push(what.to_string());
        } else {
            apart.push(format!("{what} ({})", d.join(", ")));
        }
    }
    if ha.virtual_ms != hb.virtual_ms {
        apart.push(format!(
            "duration ({} and {})",
            clock(ha.virtual_ms),
            clock(hb.virtual_ms)
        ));
    }
    let comparable = apart.is_empty();
    if ha.faults != hb.faults {
        apart.push(format!(
            "faults (A: {}; B: {})",
            fault_list(a),
            fault_list(b)
        ));
    }
    let switches = differences(&ha.system, &hb.system, 8);
    if !switches.is_empty() {
        apart.push(format!("the system's {}", switches.join(", ")));
    }
    let mut lines = vec![];
    if !comparable {
        lines.push(format!(
            "These runs do not share their world, traffic and seed ({} and {}): what can be compared is compared below, with care.",
            ha.scenario, hb.scenario
        ));
    }
    let same_words = match same.len() {
        0 => String::new(),
        _ => format!("Same {}. ", same.join(", ")),
    };
    lines.push(if apart.is_empty() {
        format!("{same_words}The runs differ in nothing the scenarios say.")
    } else {
        format!("{same_words}They differ in: {}.", apart.join("; "))
    });
    (comparable, lines)
}

/// A figure compared: name, A, B, whether higher is better, and how to print it.
type Figure = (
    &'static str,
    Option<f64>,
    Option<f64>,
    bool,
    fn(f64) -> String,
);

/// The deltas: goodput, p99, p99.9, calls per query, throttles, time frozen, time to recover,
/// peak quota use.
pub fn figures(a: &RunData, b: &RunData) -> Vec<Figure> {
    let p = |r: &RunData, q: f64| r.series.latency_total().quantile_any(q).map(|v| v as f64);
    let f_rate: fn(f64) -> String = super::rate;
    let f_ms: fn(f64) -> String = |v| ms(Some(v as u64));
    let f_n: fn(f64) -> String = |v| num(v, 1);
    let f_clock: fn(f64) -> String = |v| clock(v as u64);
    let f_pct: fn(f64) -> String = |v| format!("{}%", num(100.0 * v, 1));
    let lost = |r: &RunData| (r.outcomes.lost + r.outcomes.failed) as f64;
    vec![
        (
            "goodput",
            Some(a.goodput_per_s()),
            Some(b.goodput_per_s()),
            true,
            f_rate,
        ),
        (
            "queries failed or lost",
            Some(lost(a)),
            Some(lost(b)),
            false,
            f_n,
        ),
        (
            "queries refused",
            Some(a.outcomes.refused as f64),
            Some(b.outcomes.refused as f64),
            false,
            f_n,
        ),
        ("p99", p(a, 0.99), p(b, 0.99), false, f_ms),
        ("p99.9", p(a, 0.999), p(b, 0.999), false, f_ms),
        (
            "provider calls per query",
            Some(a.calls_per_query()),
            Some(b.calls_per_query()),
            false,
            f_n,
        ),
        (
            "throttled calls",
            Some(a.throttles() as f64),
            Some(b.throttles() as f64),
            false,
            f_n,
        ),
        (
            "time frozen by the provider",
            Some(a.frozen_ms() as f64),
            Some(b.frozen_ms() as f64),
            false,
            f_clock,
        ),
        (
            "time to recover",
            a.time_to_recover_ms().map(|v| v as f64),
            b.time_to_recover_ms().map(|v| v as f64),
            false,
            f_clock,
        ),
        (
            "peak quota use",
            a.peak_quota().map(|q| q.1),
            b.peak_quota().map(|q| q.1),
            false,
            f_pct,
        ),
    ]
}

/// "better", "worse" or "same" for B against A.
pub fn judge(a: Option<f64>, b: Option<f64>, higher_better: bool) -> &'static str {
    match (a, b) {
        (Some(x), Some(y)) if (x - y).abs() <= 1e-9 * x.abs().max(1.0) => "same",
        (Some(x), Some(y)) if (y > x) == higher_better => "▲ better",
        (Some(_), Some(_)) => "▼ worse",
        _ => "",
    }
}

fn cell(v: Option<f64>, f: fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "–".into())
}

/// The cell of a figure of run `r`: "time to recover" says why it has none.
fn figure_cell(name: &str, r: &RunData, v: Option<f64>, f: fn(f64) -> String) -> String {
    match (name, v) {
        ("time to recover", None) if r.first_failure_ms().is_some() => "not recovered".into(),
        ("time to recover", None) => "no failure".into(),
        _ => cell(v, f),
    }
}

fn names(a: &RunData, b: &RunData) -> (String, String) {
    let (x, y) = (&a.header.scenario, &b.header.scenario);
    if x == y {
        (format!("{x} (A)"), format!("{y} (B)"))
    } else {
        (x.clone(), y.clone())
    }
}

/// Verdict rows of both runs by invariant: `(name, A's, B's)`.
type Rows<'a> = Vec<(String, Option<&'a VerdictRow>, Option<&'a VerdictRow>)>;

fn verdict_rows<'a>(a: &'a RunData, b: &'a RunData) -> Rows<'a> {
    let names: BTreeSet<&String> = a
        .verdicts
        .iter()
        .chain(&b.verdicts)
        .map(|v| &v.name)
        .collect();
    let mut rows: Vec<_> = names
        .into_iter()
        .map(|n| {
            (
                n.clone(),
                a.verdicts.iter().find(|v| &v.name == n),
                b.verdicts.iter().find(|v| &v.name == n),
            )
        })
        .collect();
    // Changed rows first: that is the headline.
    rows.sort_by_key(|(n, x, y)| (x.map(|v| v.status) == y.map(|v| v.status), n.clone()));
    rows
}

fn overlay(
    a: &RunData,
    b: &RunData,
    title: &str,
    desc: &str,
    y: crate::svg::Axis,
    pick: &dyn Fn(&RunData) -> Vec<Option<f64>>,
) -> Chart {
    let (na, nb) = names(a, b);
    let longer = if a.header.virtual_ms >= b.header.virtual_ms {
        a
    } else {
        b
    };
    let mut c = Chart::new(title, desc, time_axis(longer), y);
    let mut sa = per_bin(a, &na, A_COLOR, Mark::Step, pick(a));
    sa.dashed = true;
    let sb = per_bin(b, &nb, B_COLOR, Mark::Step, pick(b));
    c.series = vec![sa, sb];
    c.bands = bands(a);
    for band in bands(b) {
        if !c.bands.contains(&band) {
            c.bands.push(band);
        }
    }
    c
}

fn shared_timeline(a: &RunData, b: &RunData) -> String {
    let item = |m: &crate::run::Mark| Item {
        start: m.start_ms as f64 / 1000.0,
        end: m.end_ms.map(|e| e as f64 / 1000.0),
        label: m.label.clone(),
        color: lane_color(m.lane),
    };
    // The faults once when both runs had the same; else a lane each.
    let mut lanes = vec![];
    let faults = |r: &RunData| r.marks(Lane::Fault).cloned().collect::<Vec<_>>();
    if faults(a) == faults(b) {
        lanes.push(SvgLane {
            name: "faults".into(),
            items: a.marks(Lane::Fault).map(item).collect(),
        });
    }
    for (name, r) in [("A", a), ("B", b)] {
        let mut kinds = vec![Lane::Operator, Lane::Alert, Lane::Frozen, Lane::Users];
        if faults(a) != faults(b) {
            kinds.insert(0, Lane::Fault);
        }
        for lane in kinds {
            lanes.push(SvgLane {
                name: format!("{name}: {}", lane.title()),
                items: r.marks(lane).map(item).collect(),
            });
        }
    }
    let longer = if a.header.virtual_ms >= b.header.virtual_ms {
        a
    } else {
        b
    };
    svg::render_timeline(&Timeline {
        title: "One timeline, a lane per run".into(),
        desc: "The faults (once when both runs had the same), then each run's operator actions, alerts, freezes of the system's accounts by the provider's abuse policy, and the users' first failure and recovery.".into(),
        x: time_axis(longer),
        lanes,
        width: 1060,
    })
}

/// Stacked calls per api of one run, on a y scale given so that both columns share it.
fn calls_by_api(r: &RunData, name: &str, y_max: f64) -> Chart {
    let mut y = y_axis(
        format!("calls per {} of virtual time", clock(r.series.bin_ms)),
        TickFormat::Number,
    );
    y.max = Some(y_max);
    let mut c = Chart::new(
        format!("{name}: the system's calls by api"),
        "The system's provider calls per interval, stacked by api; both columns share one y scale.",
        time_axis(r),
        y,
    );
    c.width = 520;
    for (k, (api, by_outcome)) in r.series.system_calls.iter().enumerate() {
        let mut v = vec![0u64; r.series.len()];
        for series in by_outcome.values() {
            for (o, n) in v.iter_mut().zip(series) {
                *o += n;
            }
        }
        c.series.push(per_bin(
            r,
            api,
            PALETTE[(k + 1) % 8],
            Mark::StackedArea,
            v.into_iter().map(|n| Some(n as f64)),
        ));
    }
    c.bands = bands(r);
    c
}

/// The verdicts of both runs side by side, the changed ones marked.
fn verdicts_html(a: &RunData, b: &RunData, na: &str, nb: &str) -> String {
    let mut body = String::new();
    body.push_str("<section id=\"verdicts\" class=\"verdicts\"><h2>Verdicts</h2>\n<table>\n");
    let _ = writeln!(
        body,
        "<tr><th>invariant</th><th>A: {}</th><th>B: {}</th><th></th></tr>",
        escape(na),
        escape(nb)
    );
    for (name, x, y) in verdict_rows(a, b) {
        let td = |v: Option<&crate::run::VerdictRow>| match v {
            Some(v) => format!(
                "<td class=\"{}\">{}<br><span class=\"small\">{}</span></td>",
                class(v),
                escape(&v.cell()),
                escape(&super::run::md_cell(&v.detail, 120))
            ),
            None => "<td>not checked</td>".into(),
        };
        let changed = x.map(|v| v.status) != y.map(|v| v.status);
        let _ = writeln!(
            body,
            "<tr><td><code>{}</code></td>{}{}<td>{}</td></tr>",
            escape(&name),
            td(x),
            td(y),
            if changed { "changed" } else { "" }
        );
    }
    body.push_str("</table></section>\n");
    body
}

/// The table of figures, A against B.
fn deltas_html(a: &RunData, b: &RunData) -> String {
    let mut body = String::new();
    body.push_str("<h2>Deltas</h2>\n<table>\n<tr><th>figure</th><th class=\"num\">A</th><th class=\"num\">B</th><th class=\"num\">Δ (B − A)</th><th class=\"num\">Δ%</th><th>B against A</th></tr>\n");
    for (name, x, y, higher, f) in figures(a, b) {
        let (delta, pct) = match (x, y) {
            (Some(x), Some(y)) => (
                if y >= x {
                    format!("+{}", f(y - x))
                } else {
                    format!("−{}", f(x - y))
                },
                if x.abs() > 1e-12 {
                    format!("{:+.1}%", 100.0 * (y - x) / x.abs())
                } else {
                    "–".into()
                },
            ),
            _ => ("–".into(), "–".into()),
        };
        let _ = writeln!(
            body,
            "<tr><td>{name}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{delta}</td><td class=\"num\">{pct}</td><td>{}</td></tr>",
            figure_cell(name, a, x, f),
            figure_cell(name, b, y, f),
            judge(x, y, higher)
        );
    }
    body.push_str("</table>\n");
    body
}

/// The charts of both runs overlaid.
fn overlaid(a: &RunData, b: &RunData) -> [Chart; 6] {
    let per = |r: &RunData| format!("per {} of virtual time", clock(r.series.bin_ms));
    let counts = |v: &[u64]| v.iter().map(|n| Some(*n as f64)).collect::<Vec<_>>();
    [
        overlay(
            a,
            b,
            "Goodput: queries succeeded",
            "Queries answered 200 in each interval.",
            y_axis(format!("queries {}", per(a)), TickFormat::Number),
            &|r| counts(&r.series.succeeded),
        ),
        overlay(
            a,
            b,
            "Queries failed, refused or lost",
            "Queries that ended in a failure users see, in each interval.",
            y_axis(format!("queries {}", per(a)), TickFormat::Number),
            &|r| {
                (0..r.series.len())
                    .map(|i| {
                        Some((r.series.failed[i] + r.series.refused[i] + r.series.lost[i]) as f64)
                    })
                    .collect()
            },
        ),
        {
            let mut y = y_axis("p99 latency (ms, log scale)", TickFormat::Number);
            y.scale = Scale::Log10;
            y.min = None;
            overlay(
                a,
                b,
                "p99 latency of succeeded queries",
                "Per interval, from first submission to answer; a gap where an interval has fewer than 100 queries.",
                y,
                &|r| {
                    r.series
                        .latency
                        .iter()
                        .map(|l| l.quantile(0.99).map(|v| v as f64))
                        .collect()
                },
            )
        },
        overlay(
            a,
            b,
            "The system's throttled calls",
            "Provider calls of the system answered with a throttle.",
            y_axis(format!("calls {}", per(a)), TickFormat::Number),
            &|r| counts(&r.series.throttles()),
        ),
        overlay(
            a,
            b,
            "Backlog of lake tasks",
            "Lake tasks of running queries not yet done.",
            y_axis("lake tasks", TickFormat::Number),
            &|r| counts(&r.series.backlog),
        ),
        overlay(
            a,
            b,
            "The system's provider calls",
            "All the system's calls per interval, every api and outcome.",
            y_axis(format!("calls {}", per(a)), TickFormat::Number),
            &|r| counts(&r.series.calls_total()),
        ),
    ]
}

/// The compare page.
pub fn compare_html(a: &RunData, b: &RunData) -> String {
    let (na, nb) = names(a, b);
    let (same, lines) = identity(a, b);
    let mut body = format!(
        "<h1>{} vs {}</h1>\n<p class=\"lede\">Seed {} and {}. A is drawn <span style=\"color:{A_COLOR}\">dashed, vermilion</span>; B <span style=\"color:{B_COLOR}\">solid, blue</span>.</p>\n<div class=\"{}\">{}</div>\n",
        escape(&na),
        escape(&nb),
        a.header.seed,
        b.header.seed,
        if same { "ok-banner" } else { "banner" },
        lines
            .iter()
            .map(|l| escape(l))
            .collect::<Vec<_>>()
            .join("<br>")
    );
    let _ = write!(
        body,
        "<table>\n<tr><th></th><th>A: {}</th><th>B: {}</th></tr>\n<tr><th>file</th><td><code>{}</code></td><td><code>{}</code></td></tr>\n<tr><th>digest</th><td><code>{}</code></td><td><code>{}</code></td></tr>\n<tr><th>replay</th><td><code>{}</code></td><td><code>{}</code></td></tr>\n</table>\n",
        escape(&na),
        escape(&nb),
        escape(&a.header.scenario_file),
        escape(&b.header.scenario_file),
        escape(&a.header.digest),
        escape(&b.header.digest),
        escape(&a.header.replay),
        escape(&b.header.replay),
    );
    body.push_str(&verdicts_html(a, b, &na, &nb));
    body.push_str(&deltas_html(a, b));
    body.push_str("<p class=\"small\">No variance is shown: time is virtual and the world is deterministic, so on one seed a delta is exact. Spread comes only from other seeds.</p>\n");
    body.push_str("<h2>Timeline</h2>\n");
    body.push_str(&shared_timeline(a, b));
    body.push_str("<h2>Overlaid</h2>\n");
    let charts = overlaid(a, b);
    for c in &charts {
        body.push_str(&svg::render(c));
    }
    let y_max = [a, b]
        .iter()
        .flat_map(|r| r.series.calls_total())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let _ = write!(
        body,
        "<h2>Calls by api</h2>\n<div class=\"columns\"><div>{}</div><div>{}</div></div>\n",
        svg::render(&calls_by_api(a, &na, y_max)),
        svg::render(&calls_by_api(b, &nb, y_max))
    );
    let (la, lb): (Latency, Latency) = (a.series.latency_total(), b.series.latency_total());
    body.push_str(&svg::render(&hdr_chart(
        "Latency spectrum, both runs",
        &[(&na, A_COLOR, true, &la), (&nb, B_COLOR, false, &lb)],
    )));
    page(&format!("stampede compare: {na} vs {nb}"), &body)
}

/// The compare page in Markdown: identity, changed verdicts and deltas.
pub fn compare_md(a: &RunData, b: &RunData) -> String {
    let (na, nb) = names(a, b);
    let (_, lines) = identity(a, b);
    let mut out = format!(
        "## stampede compare: `{na}` vs `{nb}`\n\n{}\n\n",
        lines.join(" ")
    );
    let _ = writeln!(out, "| invariant | {na} | {nb} |\n|---|---|---|");
    for (name, x, y) in verdict_rows(a, b) {
        let c = |v: Option<&crate::run::VerdictRow>| {
            v.map(|v| v.cell()).unwrap_or_else(|| "not checked".into())
        };
        let _ = writeln!(out, "| `{name}` | {} | {} |", c(x), c(y));
    }
    let _ = writeln!(
        out,
        "\n| figure | {na} | {nb} | B against A |\n|---|---|---|---|"
    );
    for (name, x, y, higher, f) in figures(a, b) {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} |",
            cell(x, f),
            cell(y, f),
            judge(x, y, higher)
        );
    }
    let frozen = |r: &RunData| {
        r.verdicts
            .iter()
            .any(|v| v.name == "never_frozen" && v.status == Status::Fail)
    };
    if frozen(a) != frozen(b) {
        let _ = writeln!(
            out,
            "\nThe provider froze the system's account only in {}.",
            if frozen(a) { &na } else { &nb }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_name_the_paths() {
        let a = json!({"tuning": {"retries": {"max": 3}, "cache": true}, "x": 1});
        let b = json!({"tuning": {"retries": {"max": 5}, "cache": true}, "y": 1});
        assert_eq!(
            differences(&a, &b, 10),
            vec!["tuning.retries.max", "x", "y"]
        );
        assert!(differences(&a, &a, 10).is_empty());
    }

    #[test]
    fn twins_are_identical_but_for_the_system() {
        let mut a = RunData::default();
        a.header.seed = 1;
        a.header.system = json!({"preset": "naive"});
        let mut b = a.clone();
        b.header.system = json!({"preset": "hardened"});
        let (same, lines) = identity(&a, &b);
        assert!(same);
        assert_eq!(
            lines,
            vec!["Same seed, world, traffic. They differ in: the system's preset."]
        );
        b.header.scenario = "other".into();
        b.header.seed = 2;
        let (same, lines) = identity(&a, &b);
        assert!(!same);
        let text = lines.join(" ");
        assert!(
            text.contains("do not share their world, traffic and seed"),
            "{text}"
        );
        assert!(text.contains("seed (1 and 2)"), "{text}");
    }

    #[test]
    fn judgement_knows_which_way_is_better() {
        assert_eq!(judge(Some(1.0), Some(2.0), true), "▲ better");
        assert_eq!(judge(Some(1.0), Some(2.0), false), "▼ worse");
        assert_eq!(judge(Some(2.0), Some(2.0), false), "same");
        assert_eq!(judge(None, Some(2.0), false), "");
    }
}
