//! `report.html` and `report.md` of one run: header, verdicts, timeline, steady state, and
//! charts over virtual time that share one x axis and the fault windows.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{at, num, page, verdict_table};
use crate::latency::{DEFINITION, Latency, PERCENTILES};
use crate::run::{Lane, RunData, Status};
use crate::summary::{clock, ms};
use crate::svg::{
    self, Axis, Band, Chart, Item, Lane as SvgLane, Mark, PALETTE, Rule, Scale, Series, TickFormat,
    Timeline, escape,
};

/// Colours by outcome, the same on every chart.
pub fn outcome_color(outcome: &str) -> &'static str {
    match outcome {
        "ok" | "succeeded" => PALETTE[3],
        "throttled" | "refused" => PALETTE[1],
        "frozen" | "lost" => PALETTE[0],
        "error" | "failed" => PALETTE[6],
        "timeout" => PALETTE[7],
        _ => PALETTE[2],
    }
}

/// The lane colour of timeline marks and chart bands.
pub fn lane_color(lane: Lane) -> &'static str {
    match lane {
        Lane::Fault => PALETTE[6],
        Lane::Operator => PALETTE[5],
        Lane::Alert => PALETTE[1],
        Lane::Frozen => PALETTE[0],
        Lane::Users => PALETTE[7],
    }
}

/// The x axis every chart of a run shares.
pub fn time_axis(run: &RunData) -> Axis {
    Axis {
        label: "virtual time (m:ss)".into(),
        scale: Scale::Linear,
        min: Some(0.0),
        max: Some(run.header.virtual_ms as f64 / 1000.0),
        format: TickFormat::Duration,
    }
}

/// A linear y axis from 0.
pub fn y_axis(label: impl Into<String>, format: TickFormat) -> Axis {
    Axis {
        label: label.into(),
        scale: Scale::Linear,
        min: Some(0.0),
        max: None,
        format,
    }
}

/// The fault and operator windows, shaded on every chart.
pub fn bands(run: &RunData) -> Vec<Band> {
    run.timeline
        .iter()
        .filter(|m| matches!(m.lane, Lane::Fault | Lane::Operator | Lane::Frozen))
        .filter_map(|m| {
            Some(Band {
                x0: m.start_ms as f64 / 1000.0,
                x1: m.end_ms? as f64 / 1000.0,
                label: m.label.clone(),
                color: lane_color(m.lane),
            })
        })
        .collect()
}

/// A series of one value per interval, at each interval's start.
pub fn per_bin(
    run: &RunData,
    name: &str,
    color: &'static str,
    mark: Mark,
    values: impl IntoIterator<Item = Option<f64>>,
) -> Series {
    Series {
        name: name.into(),
        color,
        dashed: false,
        mark,
        points: values
            .into_iter()
            .enumerate()
            .map(|(i, v)| (run.series.start_s(i), v))
            .collect(),
        whiskers: vec![],
    }
}

/// Calls per interval stacked by outcome, each in its outcome's colour.
fn by_outcome(run: &RunData, calls: &BTreeMap<String, Vec<u64>>) -> Vec<Series> {
    calls
        .iter()
        .map(|(outcome, v)| {
            let color = outcome_color(outcome);
            per_bin(run, outcome, color, Mark::StackedArea, counts(v))
        })
        .collect()
}

fn counts(v: &[u64]) -> impl Iterator<Item = Option<f64>> + '_ {
    v.iter().map(|n| Some(*n as f64))
}

fn bin_words(run: &RunData) -> String {
    format!("per {} of virtual time", clock(run.series.bin_ms))
}

fn chart(run: &RunData, title: &str, desc: &str, y: Axis, series: Vec<Series>) -> Chart {
    let mut c = Chart::new(title, desc, time_axis(run), y);
    c.series = series;
    c.bands = bands(run);
    c
}

/// The timeline strip.
pub fn timeline(run: &RunData, title: &str) -> String {
    let lanes = [
        Lane::Fault,
        Lane::Operator,
        Lane::Alert,
        Lane::Frozen,
        Lane::Users,
    ]
    .into_iter()
    .map(|lane| SvgLane {
        name: lane.title().into(),
        items: run
            .marks(lane)
            .map(|m| Item {
                start: m.start_ms as f64 / 1000.0,
                end: m.end_ms.map(|e| e as f64 / 1000.0),
                label: m.label.clone(),
                color: lane_color(lane),
            })
            .collect(),
    })
    .collect();
    svg::render_timeline(&Timeline {
        title: title.into(),
        desc: "Faults and operator actions as the scenario scheduled them; alerts as the monitor fired them; freezes of the system's accounts as the provider logged them; the first failure users saw and their recovery, from the replay client's view.".into(),
        x: time_axis(run),
        lanes,
        width: 1060,
    })
}

/// The traffic charts: offered over outcomes, then the gauges.
pub fn traffic_charts(run: &RunData) -> Vec<Chart> {
    let s = &run.series;
    let per = bin_words(run);
    let mut outcomes = vec![];
    for (name, v) in [
        ("succeeded", &s.succeeded),
        ("refused", &s.refused),
        ("failed", &s.failed),
        ("lost", &s.lost),
    ] {
        outcomes.push(per_bin(
            run,
            name,
            outcome_color(name),
            Mark::StackedArea,
            counts(v),
        ));
    }
    outcomes.push(per_bin(
        run,
        "offered",
        PALETTE[5],
        Mark::Step,
        counts(&s.offered),
    ));
    let mut gauges = vec![
        per_bin(run, "running", PALETTE[5], Mark::Step, counts(&s.running)),
        per_bin(run, "queued", PALETTE[1], Mark::Step, counts(&s.queued)),
    ];
    gauges[1].dashed = true;
    vec![
        chart(
            run,
            "Queries offered, and how they ended",
            "Offered: first submissions in each interval (a line). Stacked below it: queries that ended in each interval, by outcome, as the replay client saw them.",
            y_axis(format!("queries {per}"), TickFormat::Number),
            outcomes,
        ),
        chart(
            run,
            "Queries running and queued on the coordinators",
            "The coordinators' admission gauges, summed over coordinators: the highest in each interval.",
            y_axis("queries", TickFormat::Number),
            gauges,
        ),
        chart(
            run,
            "Backlog of lake tasks",
            "Lake tasks of running queries not yet done: the most in each interval.",
            y_axis("lake tasks", TickFormat::Number),
            vec![per_bin(
                run,
                "backlog",
                PALETTE[0],
                Mark::Step,
                counts(&s.backlog),
            )],
        ),
    ]
}

/// Latency per interval, as users saw it.
pub fn latency_chart(run: &RunData) -> Chart {
    let mut series: Vec<Series> = PERCENTILES
        .iter()
        .enumerate()
        .map(|(k, (q, name))| {
            per_bin(
                run,
                name,
                [PALETTE[3], PALETTE[2], PALETTE[5], PALETTE[6]][k],
                Mark::Line,
                run.series
                    .latency
                    .iter()
                    .map(|l| l.quantile(*q).map(|v| v as f64)),
            )
        })
        .collect();
    let mut max = per_bin(
        run,
        "max",
        PALETTE[0],
        Mark::Points,
        run.series.latency.iter().map(|l| l.max().map(|v| v as f64)),
    );
    max.dashed = true;
    series.push(max);
    let mut y = y_axis("latency (ms, log scale)", TickFormat::Number);
    y.scale = Scale::Log10;
    y.min = None;
    chart(
        run,
        &format!(
            "Latency of succeeded queries, from first submission to answer, {}",
            bin_words(run)
        ),
        "Percentiles of the queries that succeeded in each interval, by the interval they ended in. An interval with too few queries for a percentile leaves a gap (p99 needs 100). Refused, failed and lost queries are counted in the chart above.",
        y,
        series,
    )
}

/// The provider panels: the system's calls per api by outcome (small multiples), other
/// accounts' calls, throttles, fleet utilisation and quota use.
pub fn provider_charts(run: &RunData) -> Vec<Chart> {
    let s = &run.series;
    let per = bin_words(run);
    let mut out = vec![];
    // The busiest apis first: the page would be too long with every one.
    let mut apis: Vec<(&String, u64)> = s
        .system_calls
        .iter()
        .map(|(api, o)| (api, o.values().flatten().sum()))
        .collect();
    apis.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for (api, _) in apis.iter().take(6) {
        let series = by_outcome(run, &s.system_calls[*api]);
        out.push(chart(
            run,
            &format!("The system's {api} calls, by outcome"),
            "Calls the provider logged from the system (those naming the system's operation), by the interval they ended in.",
            y_axis(format!("calls {per}"), TickFormat::Number),
            series,
        ));
    }
    if !s.other_calls.is_empty() {
        let series = by_outcome(run, &s.other_calls);
        out.push(chart(
            run,
            "Other accounts' calls, by outcome",
            "Calls of other customers and background traffic at the same provider: not the system's, shown apart.",
            y_axis(format!("calls {per}"), TickFormat::Number),
            series,
        ));
    }
    out.push(chart(
        run,
        "The system's throttled calls",
        "Calls of the system the provider answered with a throttle, all apis.",
        y_axis(format!("throttled calls {per}"), TickFormat::Number),
        vec![per_bin(
            run,
            "throttled",
            outcome_color("throttled"),
            Mark::Step,
            counts(&s.throttles()),
        )],
    ));
    if !s.fleet.is_empty() {
        let series = s
            .fleet
            .iter()
            .enumerate()
            .map(|(k, (region, v))| {
                per_bin(
                    run,
                    region,
                    PALETTE[(k + 5) % 8],
                    Mark::Line,
                    v.iter().copied(),
                )
            })
            .collect();
        let mut c = chart(
            run,
            "Metadata fleet utilisation",
            "The provider's metadata fleet, per region: the share of its capacity in use, read every 10 s.",
            y_axis("utilisation (%)", TickFormat::Percent),
            series,
        );
        c.rules.push(Rule {
            value: 1.0,
            label: "100 %".into(),
            vertical: false,
        });
        out.push(c);
    }
    if !s.quota_use.is_empty() {
        let series = s
            .quota_use
            .iter()
            .enumerate()
            .map(|(k, (api, v))| {
                let mut x = per_bin(
                    run,
                    api,
                    PALETTE[[5, 6, 1, 3, 7, 2, 0, 4][k % 8]],
                    Mark::Step,
                    v.iter().map(|x| Some(*x)),
                );
                x.dashed = k % 2 == 1;
                x
            })
            .collect();
        let mut c = chart(
            run,
            &format!("Quota use per api: the system's calls over what the quota admits, {per}"),
            "For each api with a quota: the calls of the system's accounts that reached the provider in the interval, over the quota's burst plus its rate times the interval. Above 100 % the provider throttles.",
            y_axis("share of quota (%)", TickFormat::Percent),
            series,
        );
        c.rules.push(Rule {
            value: 1.0,
            label: "quota".into(),
            vertical: false,
        });
        out.push(c);
    }
    out
}

/// The HDR percentile plot of whole-run latencies, one line per run.
pub fn hdr_chart(title: &str, runs: &[(&str, &'static str, bool, &Latency)]) -> Chart {
    let x = Axis {
        label: "percentile, as 1/(1−p) on a log scale (10 = p90, 100 = p99, 1000 = p99.9)".into(),
        scale: Scale::Log10,
        min: Some(1.0),
        max: None,
        format: TickFormat::Number,
    };
    let mut y = y_axis("latency (ms)", TickFormat::Number);
    y.min = Some(0.0);
    let mut c = Chart::new(
        title,
        "The latency spectrum of succeeded queries over the whole run (HDR percentile plot): each line stops where its sample does.",
        x,
        y,
    );
    for (name, color, dashed, l) in runs {
        c.series.push(Series {
            name: (*name).into(),
            color,
            dashed: *dashed,
            mark: Mark::Line,
            points: l
                .spectrum()
                .into_iter()
                .map(|(p, v)| (1.0 / (1.0 - p), Some(v as f64)))
                .collect(),
            whiskers: vec![],
        });
    }
    c
}

/// Goodput, p99 and user-visible error rate before the first fault, during faults, and from
/// recovery (or the last fault's end) to the end.
pub fn phases(run: &RunData) -> Vec<(&'static str, u64, u64)> {
    let faults: Vec<(u64, u64)> = run
        .timeline
        .iter()
        .filter(|m| m.lane == Lane::Fault)
        .map(|m| (m.start_ms, m.end_ms.unwrap_or(m.start_ms)))
        .collect();
    let end = run.header.virtual_ms;
    let Some(first) = faults.iter().map(|f| f.0).min() else {
        return vec![("whole run (no faults)", 0, end)];
    };
    let last = faults.iter().map(|f| f.1).max().unwrap_or(first).max(first);
    let after = run.recovered_ms().unwrap_or(last).max(last);
    vec![
        ("before the first fault", 0, first),
        ("during faults", first, last),
        ("after recovery", after.min(end), end),
    ]
}

/// One phase's figures: goodput per second, p99 in ms, and the share of ended queries that
/// failed as users see it.
pub fn phase_figures(run: &RunData, from_ms: u64, to_ms: u64) -> (f64, Option<u64>, f64) {
    let s = &run.series;
    let (mut ok, mut bad) = (0u64, 0u64);
    let mut lat = Latency::new();
    for i in 0..s.len() {
        let t = i as u64 * s.bin_ms;
        if t >= from_ms && t < to_ms {
            ok += s.succeeded[i];
            bad += s.failed[i] + s.lost[i] + s.refused[i];
            lat.add(&s.latency[i]);
        }
    }
    let span = to_ms.saturating_sub(from_ms);
    (
        crate::run::per_s(ok, span),
        lat.quantile_any(0.99),
        bad as f64 / (ok + bad).max(1) as f64,
    )
}

fn header_html(run: &RunData) -> String {
    let h = &run.header;
    format!(
        "<h1>{}</h1>\n<p class=\"lede\">{}</p>\n<table>\n<tr><th>seed</th><td>{}</td><th>virtual time</th><td>{}</td><th>build</th><td>{}</td></tr>\n<tr><th>scenario file</th><td><code>{}</code></td><th>wall time</th><td>{:.1} s ({:.0}× real time)</td><th>events</th><td>{}</td></tr>\n<tr><th>event-log digest</th><td colspan=\"5\"><code>{}</code></td></tr>\n<tr><th>replay</th><td colspan=\"5\"><code>{}</code></td></tr>\n</table>\n",
        escape(&h.scenario),
        escape(&h.description),
        h.seed,
        clock(h.virtual_ms),
        escape(&h.build),
        escape(&h.scenario_file),
        h.wall_s,
        h.virtual_ms as f64 / 1000.0 / h.wall_s.max(1e-9),
        h.events,
        escape(&h.digest),
        escape(&h.replay),
    )
}

/// Outcome counts and whole-run latency.
pub fn outcome_table(run: &RunData) -> String {
    let o = &run.outcomes;
    let l = run.series.latency_total();
    let mut out = String::from("<table>\n<tr>");
    for h in [
        "offered",
        "succeeded",
        "failed",
        "refused",
        "lost",
        "cancelled",
        "still running",
    ] {
        let _ = write!(out, "<th class=\"num\">{h}</th>");
    }
    out.push_str("</tr>\n<tr>");
    for n in [
        o.offered,
        o.succeeded,
        o.failed,
        o.refused,
        o.lost,
        o.cancelled,
        o.running,
    ] {
        let _ = write!(out, "<td class=\"num\">{n}</td>");
    }
    out.push_str("</tr>\n</table>\n<table>\n<tr><th>latency of succeeded queries</th>");
    for (_, name) in PERCENTILES {
        let _ = write!(out, "<th class=\"num\">{name}</th>");
    }
    out.push_str("<th class=\"num\">max</th></tr>\n<tr><td>whole run</td>");
    for (q, _) in PERCENTILES {
        let _ = write!(out, "<td class=\"num\">{}</td>", ms(l.quantile_any(q)));
    }
    let _ = write!(
        out,
        "<td class=\"num\">{}</td></tr>\n</table>\n",
        ms(l.max())
    );
    out
}

fn steady_state(run: &RunData) -> String {
    let mut out = String::from(
        "<table>\n<tr><th>phase</th><th>from</th><th>to</th><th class=\"num\">goodput</th><th class=\"num\">p99</th><th class=\"num\">failed, refused or lost</th></tr>\n",
    );
    for (name, from, to) in phases(run) {
        let (g, p99, err) = phase_figures(run, from, to);
        let _ = writeln!(
            out,
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td class=\"num\">{}/s</td><td class=\"num\">{}</td><td class=\"num\">{}%</td></tr>",
            at(from),
            at(to),
            num(g, 2),
            ms(p99),
            num(100.0 * err, 1)
        );
    }
    out.push_str("</table>\n");
    out
}

fn quota_table(run: &RunData) -> String {
    if run.quota_peaks.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<table>\n<tr><th>api</th><th class=\"num\">peak use of quota (any 1 s, 10 s or 60 s window)</th></tr>\n",
    );
    for (api, share) in &run.quota_peaks {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}%{}</td></tr>",
            escape(api),
            num(100.0 * share, 1),
            if *share > 1.0 { " ✗ over" } else { "" }
        );
    }
    out.push_str("</table>\n");
    out
}

/// `report.html`.
pub fn run_html(run: &RunData) -> String {
    let mut body = header_html(run);
    body.push_str(&verdict_table(run));
    body.push_str("<h2>Timeline</h2>\n");
    body.push_str(&timeline(run, "Timeline of the run"));
    body.push_str("<h2>Queries</h2>\n");
    body.push_str(&outcome_table(run));
    body.push_str("<h3>Steady state</h3>\n");
    body.push_str(&steady_state(run));
    for c in traffic_charts(run) {
        body.push_str(&svg::render(&c));
    }
    body.push_str("<h2>Latency</h2>\n");
    body.push_str(&svg::render(&latency_chart(run)));
    let total = run.series.latency_total();
    body.push_str(&svg::render(&hdr_chart(
        "Latency spectrum of the whole run",
        &[("this run", PALETTE[5], false, &total)],
    )));
    body.push_str("<h2>Provider</h2>\n");
    body.push_str(&quota_table(run));
    for c in provider_charts(run) {
        body.push_str(&svg::render(&c));
    }
    let _ = write!(
        body,
        "<h2>Notes</h2>\n<p class=\"small\">Intervals are {} of virtual time. Latency is measured from a query's first submission (its arrival in the trace: the replay is open-loop) to its answer, resubmissions included. Percentiles: {}. An interval's percentile is drawn only when it has enough queries to have one (1/(1−p)).</p>\n",
        clock(run.series.bin_ms),
        escape(DEFINITION)
    );
    page(&format!("stampede: {}", run.header.scenario), &body)
}

/// `report.md`: header, verdicts, timeline and the key figures, small enough for a pull
/// request comment.
pub fn run_md(run: &RunData) -> String {
    let h = &run.header;
    let mut out = String::new();
    let _ = writeln!(out, "## stampede: `{}` (seed {})\n", h.scenario, h.seed);
    let _ = writeln!(out, "{}\n", h.description);
    let _ = writeln!(
        out,
        "{} of virtual time in {:.1} s wall · digest `{}` · replay: `{}`\n",
        clock(h.virtual_ms),
        h.wall_s,
        short(&h.digest),
        h.replay
    );
    out.push_str("| invariant | verdict | first violation | detail |\n|---|---|---|---|\n");
    for v in super::ordered(&run.verdicts) {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            v.name,
            v.cell(),
            v.first_violation_ms.map(at).unwrap_or_default(),
            md_cell(&v.detail, 160)
        );
    }
    let o = &run.outcomes;
    let l = run.series.latency_total();
    let _ = writeln!(
        out,
        "\n**Queries:** {} offered, {} succeeded, {} failed, {} refused, {} lost, {} still running. Latency p50 {}, p99 {}, p99.9 {}.\n",
        o.offered,
        o.succeeded,
        o.failed,
        o.refused,
        o.lost,
        o.running,
        ms(l.quantile_any(0.5)),
        ms(l.quantile_any(0.99)),
        ms(l.quantile_any(0.999)),
    );
    let _ = writeln!(
        out,
        "**Provider:** {} calls by the system ({} per query, {} throttled); frozen for {}.{}\n",
        run.system_calls_total(),
        num(run.calls_per_query(), 1),
        run.throttles(),
        clock(run.frozen_ms()),
        run.peak_quota()
            .map(|(api, s)| format!(" Peak quota use: {api} at {}%.", num(100.0 * s, 1)))
            .unwrap_or_default()
    );
    if !run.timeline.is_empty() {
        out.push_str("**Timeline:**\n\n");
        for m in &run.timeline {
            let when = match m.end_ms {
                Some(e) => format!("{}–{}", at(m.start_ms), at(e)),
                None => at(m.start_ms),
            };
            let _ = writeln!(out, "- {when} {}: {}", m.lane.title(), m.label);
        }
        out.push('\n');
    }
    let failed = run
        .verdicts
        .iter()
        .filter(|v| v.status == Status::Fail)
        .count();
    let _ = writeln!(
        out,
        "{} invariants, {failed} violated. The full report with charts is `report.html` beside this file.",
        run.verdicts.len()
    );
    out
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(16)]
}

/// Text for a Markdown table cell: no pipes or newlines, at most `max` characters.
pub fn md_cell(s: &str, max: usize) -> String {
    let s = s.replace('|', "\\|").replace('\n', " ");
    if s.chars().count() > max {
        format!("{}…", s.chars().take(max).collect::<String>())
    } else {
        s
    }
}
