//! `capacity.html`: the headline for planners, the invariant × load matrix, goodput against
//! offered load with the knee, the hockey stick, rates, quota headroom, the USL fit and the
//! latency spectrum per load.

use std::fmt::Write as _;

use super::{num, page};
use crate::ladder::{Capacity, Point, times};
use crate::scaling::usl_throughput;
use crate::summary::ms;
use crate::svg::{self, Axis, Chart, Mark, PALETTE, Rule, Scale, Series, TickFormat, escape};

fn axis(label: &str, format: TickFormat) -> Axis {
    super::run::y_axis(label, format)
}

fn line(
    name: &str,
    color: &'static str,
    dashed: bool,
    mark: Mark,
    points: Vec<(f64, Option<f64>)>,
) -> Series {
    Series {
        name: name.into(),
        color,
        dashed,
        mark,
        points,
        whiskers: vec![],
    }
}

/// A series over the ladder: one value per load, at its offered rate.
fn by_load(
    c: &Capacity,
    name: &str,
    color: &'static str,
    dashed: bool,
    f: impl Fn(&Point) -> Option<f64>,
) -> Series {
    let points = c.points.iter().map(|p| (p.offered_per_s, f(p))).collect();
    line(name, color, dashed, Mark::Line, points)
}

fn offered_axis(c: &Capacity) -> Axis {
    let mut x = axis("offered load (queries/s)", TickFormat::Number);
    x.max = c
        .points
        .iter()
        .map(|p| p.offered_per_s)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    x
}

fn knee_rule(c: &Capacity) -> Vec<Rule> {
    c.knee
        .as_ref()
        .and_then(|k| c.points.iter().find(|p| p.load == k.load))
        .map(|p| Rule {
            value: p.offered_per_s,
            label: format!("knee ({})", times(p.load)),
            vertical: true,
        })
        .into_iter()
        .collect()
}

/// The invariant × load matrix, rows sorted by the load they first break at.
fn matrix(c: &Capacity) -> String {
    let mut names: Vec<&String> = c.points.iter().flat_map(|p| p.verdicts.keys()).collect();
    names.sort();
    names.dedup();
    let first = |n: &str| {
        c.first_breaks
            .iter()
            .find(|b| b.invariant == n)
            .map(|b| b.load)
    };
    names.sort_by(|a, b| {
        let (x, y) = (
            first(a).unwrap_or(f64::INFINITY),
            first(b).unwrap_or(f64::INFINITY),
        );
        x.total_cmp(&y).then(a.cmp(b))
    });
    let mut out = String::from(
        "<section id=\"verdicts\" class=\"verdicts\"><h2>Invariants at each load</h2>\n<table>\n<tr><th>invariant</th>",
    );
    for p in &c.points {
        let _ = write!(out, "<th class=\"num\">{}</th>", times(p.load));
    }
    out.push_str("</tr>\n");
    for n in names {
        let _ = write!(out, "<tr><td><code>{}</code></td>", escape(n));
        for p in &c.points {
            let word = p.verdicts.get(n).map_or("–", |s| s.as_str());
            let (sign, class) = match word {
                "pass" => ("✓", "pass"),
                "fail" => ("✗", "fail"),
                "unknown" => ("?", "unknown"),
                _ => ("–", ""),
            };
            let seeds = p
                .failures
                .get(n)
                .map(|(k, _)| format!(" {k}/{}", p.seeds.len()))
                .unwrap_or_default();
            let cell = format!("{sign} {word}{seeds}");
            if first(n) == Some(p.load) {
                let _ = write!(out, "<td class=\"num {class}\"><b>{cell}</b></td>");
            } else {
                let _ = write!(out, "<td class=\"num {class}\">{cell}</td>");
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n<p class=\"small\">A cell is ✗ when any seed violated the invariant at that load (k/n: on k of n seeds); the first failing load is in bold.</p></section>\n");
    out
}

fn charts(c: &Capacity) -> Vec<Chart> {
    let mut out = vec![
        goodput_chart(c),
        latency_chart(c),
        errors_chart(c),
        calls_chart(c),
    ];
    out.extend(quota_chart(c));
    out.extend(usl_chart(c));
    out.push(spectrum_chart(c));
    out
}

/// Goodput against offered, with y = x and 0.9·x.
fn goodput_chart(c: &Capacity) -> Chart {
    let max_offered = c.points.iter().map(|p| p.offered_per_s).fold(0.0, f64::max);
    // Goodput against offered, with y = x and 0.9·x.
    let mut g = Chart::new(
        "Goodput against offered load",
        "Each load's mean goodput (a line, with the seeds' lowest and highest as whiskers), each seed as a point, the line y = x (all served) and y = 0.9·x (the knee rule's bound).",
        offered_axis(c),
        axis("goodput (queries/s)", TickFormat::Number),
    );
    g.series.push(line(
        "y = x",
        PALETTE[0],
        true,
        Mark::Line,
        vec![(0.0, Some(0.0)), (max_offered, Some(max_offered))],
    ));
    g.series.push(line(
        "0.9 · x",
        PALETTE[1],
        true,
        Mark::Line,
        vec![(0.0, Some(0.0)), (max_offered, Some(0.9 * max_offered))],
    ));
    let mut mean = line(
        "goodput",
        PALETTE[5],
        false,
        Mark::Line,
        c.points
            .iter()
            .map(|p| (p.offered_per_s, Some(p.goodput_per_s)))
            .collect(),
    );
    mean.whiskers = c
        .points
        .iter()
        .map(|p| (p.offered_per_s, p.goodput_range.0, p.goodput_range.1))
        .collect();
    g.series.push(mean);
    g.series.push(line(
        "a seed",
        PALETTE[2],
        false,
        Mark::Points,
        c.points
            .iter()
            .flat_map(|p| {
                p.seeds
                    .iter()
                    .map(|s| (s.offered_per_s, Some(s.goodput_per_s)))
            })
            .collect(),
    ));
    g.rules = knee_rule(c);
    g
}

/// The hockey stick: latency quantiles against offered load.
fn latency_chart(c: &Capacity) -> Chart {
    // The hockey stick: linear x, log y.
    let mut y = axis("latency (ms, log scale)", TickFormat::Number);
    y.scale = Scale::Log10;
    y.min = None;
    let mut h = Chart::new(
        "Latency against offered load",
        "p50, p99 and p99.9 of each load's seeds together, against offered load on a linear axis.",
        offered_axis(c),
        y,
    );
    for (name, color, f) in [
        (
            "p50",
            PALETTE[3],
            (|p: &crate::ladder::Point| p.p50_ms) as fn(&crate::ladder::Point) -> Option<u64>,
        ),
        ("p99", PALETTE[5], |p| p.p99_ms),
        ("p99.9", PALETTE[6], |p| p.p999_ms),
    ] {
        h.series
            .push(by_load(c, name, color, false, |p| f(p).map(|v| v as f64)));
    }
    h.rules = knee_rule(c);
    h
}

/// Failed, lost and refused queries against offered load.
fn errors_chart(c: &Capacity) -> Chart {
    let mut r = Chart::new(
        "Errors and refusals against offered load",
        "Queries that failed or were lost, and queries refused for good, as shares of queries offered.",
        offered_axis(c),
        axis("share of queries offered (%)", TickFormat::Percent),
    );
    r.series
        .push(by_load(c, "failed or lost", PALETTE[6], false, |p| {
            Some(p.error_rate)
        }));
    r.series.push(by_load(c, "refused", PALETTE[1], true, |p| {
        Some(p.refusal_rate)
    }));
    r
}

/// Provider calls per query against offered load.
fn calls_chart(c: &Capacity) -> Chart {
    let mut k = Chart::new(
        "Provider calls per query against offered load",
        "The system's provider calls over queries offered: fan-out regressions show here before they reach a quota.",
        offered_axis(c),
        axis("provider calls per query", TickFormat::Number),
    );
    k.series
        .push(by_load(c, "calls per query", PALETTE[0], false, |p| {
            Some(p.calls_per_query)
        }));
    k
}

/// Peak use of each api's quota against offered load, when any api has one.
fn quota_chart(c: &Capacity) -> Option<Chart> {
    let mut apis: Vec<&String> = c.points.iter().flat_map(|p| p.quota_peaks.keys()).collect();
    apis.sort();
    apis.dedup();
    if apis.is_empty() {
        return None;
    }
    {
        let mut q = Chart::new(
            "Quota headroom: peak use of each api's quota",
            "Per api, the highest share of its quota the system's accounts used in any 1 s, 10 s or 60 s window, over seeds. Above 100 % the provider throttles.",
            offered_axis(c),
            axis("peak share of quota (%)", TickFormat::Percent),
        );
        for (i, api) in apis.iter().enumerate() {
            q.series.push(by_load(
                c,
                api,
                PALETTE[[5, 6, 1, 3, 7, 2, 0, 4][i % 8]],
                i % 2 == 1,
                |p| p.quota_peaks.get(*api).copied(),
            ));
        }
        q.rules.push(Rule {
            value: 1.0,
            label: "quota".into(),
            vertical: false,
        });
        Some(q)
    }
}

/// The Universal Scalability Law fit, when there is one.
fn usl_chart(c: &Capacity) -> Option<Chart> {
    let u = c.usl.as_ref()?;
    {
        let xs: Vec<f64> = c
            .points
            .iter()
            .map(|p| {
                if u.x_is == crate::scaling::X_IS_LOAD {
                    p.load
                } else {
                    p.in_system
                }
            })
            .collect();
        let top = xs.iter().copied().fold(0.0, f64::max) * 1.5;
        let mut f = Chart::new(
            "Universal Scalability Law fit",
            "Measured goodput against the x the fit used, and the fitted curve X(N) = λN / (1 + σ(N−1) + κN(N−1)); beyond the largest measured x it is a prediction.",
            axis(&u.x_is, TickFormat::Number),
            axis("goodput (queries/s)", TickFormat::Number),
        );
        f.series.push(line(
            "measured",
            PALETTE[0],
            false,
            Mark::Points,
            xs.iter()
                .zip(&c.points)
                .map(|(x, p)| (*x, Some(p.goodput_per_s)))
                .collect(),
        ));
        let steps = 60;
        f.series.push(line(
            "USL fit (predicted beyond the data)",
            PALETTE[5],
            true,
            Mark::Line,
            (1..=steps)
                .map(|i| {
                    let n = top * i as f64 / steps as f64;
                    (n, Some(usl_throughput(u.lambda, u.sigma, u.kappa, n)))
                })
                .collect(),
        ));
        Some(f)
    }
}

/// Each load's latency spectrum.
fn spectrum_chart(c: &Capacity) -> Chart {
    let mut d = crate::page::run::hdr_chart("Latency spectrum at each load", &[]);
    let shades = [
        PALETTE[2], PALETTE[5], PALETTE[3], PALETTE[1], PALETTE[6], PALETTE[7], PALETTE[0],
        PALETTE[4],
    ];
    for (i, p) in c.points.iter().enumerate() {
        d.series.push(line(
            &times(p.load),
            shades[i % 8],
            false,
            Mark::Line,
            p.latency
                .spectrum()
                .into_iter()
                .map(|(q, v)| (1.0 / (1.0 - q), Some(v as f64)))
                .collect(),
        ));
    }
    d
}

fn usl_html(c: &Capacity) -> String {
    match (&c.usl, &c.usl_not_fitted) {
        (Some(u), _) => {
            let peak = match (u.n_star, u.x_max) {
                (Some(n), Some(x)) => format!("peak at N* = {} with X_max = {}/s", num(n, 1), num(x, 2)),
                _ => "no peak: κ is 0, so throughput levels off rather than falling (no retrograde region)".into(),
            };
            format!(
                "<p>USL fit on x = {}: λ = {}, σ = {}, κ = {:.3e}, R² = {}; {peak}{}.{}</p>\n",
                escape(&u.x_is),
                num(u.lambda, 3),
                num(u.sigma, 4),
                u.kappa,
                num(u.r2, 3),
                u.n_opt
                    .map(|n| format!("; N_opt = 1/σ = {}", num(n, 1)))
                    .unwrap_or_default(),
                u.weak
                    .as_ref()
                    .map(|w| format!(" <span class=\"small\">({})</span>", escape(w)))
                    .unwrap_or_default(),
            )
        }
        (None, Some(why)) => format!("<p>USL: not fitted: {}.</p>\n", escape(why)),
        _ => String::new(),
    }
}

/// Text with `backticked` spans set as code (the text already escaped).
fn code_spans(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(&format!("<code>{part}</code>"));
        } else {
            out.push_str(part);
        }
    }
    out
}

/// `capacity.html`.
pub fn capacity_html(c: &Capacity) -> String {
    let mut body = format!(
        "<h1>Capacity: {}</h1>\n<p class=\"lede\"><code>{}</code>, loads {}, seeds {}.</p>\n<p class=\"headline\">{}</p>\n",
        escape(&c.scenario),
        escape(&c.scenario_file),
        c.points
            .iter()
            .map(|p| times(p.load))
            .collect::<Vec<_>>()
            .join(", "),
        c.seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        code_spans(&escape(&c.headline)),
    );
    let knee = match (&c.knee, &c.no_knee) {
        (Some(k), _) => format!(
            "The knee is at {}{}: {}. Rule: {}.{}",
            times(k.load),
            k.previous
                .map(|p| format!(" (between {} and {})", times(p), times(k.load)))
                .unwrap_or_default(),
            k.trigger,
            k.rule,
            if c.seeds.len() > 1 {
                format!(
                    " Per seed: {}.",
                    k.per_seed
                        .iter()
                        .map(|(s, l)| format!("seed {s} {}", l.map_or("none".into(), times)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                String::new()
            }
        ),
        (None, Some(why)) => format!("No knee: {why}. Rule: {}.", c.knee_rule),
        _ => String::new(),
    };
    let _ = writeln!(
        body,
        "<p>{}{}</p>",
        escape(&knee),
        c.power_knee
            .map(|l| format!(" Cross-check: goodput over p99 peaks at {}.", times(l)))
            .unwrap_or_default()
    );
    body.push_str(&usl_html(c));
    body.push_str(&matrix(c));
    body.push_str("<h2>Load</h2>\n");
    for ch in charts(c) {
        body.push_str(&svg::render(&ch));
    }
    body.push_str("<h2>Points</h2>\n<table>\n<tr><th class=\"num\">load</th><th class=\"num\">offered/s</th><th class=\"num\">goodput/s</th><th class=\"num\">p50</th><th class=\"num\">p99</th><th class=\"num\">p99.9</th><th class=\"num\">errors</th><th class=\"num\">refused</th><th class=\"num\">calls/query</th><th>runs without data</th></tr>\n");
    for p in &c.points {
        let _ = writeln!(
            body,
            "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}%</td><td class=\"num\">{}%</td><td class=\"num\">{}</td><td>{}</td></tr>",
            times(p.load),
            num(p.offered_per_s, 2),
            num(p.goodput_per_s, 2),
            ms(p.p50_ms),
            ms(p.p99_ms),
            ms(p.p999_ms),
            num(100.0 * p.error_rate, 1),
            num(100.0 * p.refusal_rate, 1),
            num(p.calls_per_query, 1),
            escape(&p.errors.join("; ")),
        );
    }
    body.push_str("</table>\n<p class=\"small\">Rates are per second of virtual time, the mean over seeds; percentiles are read from the seeds' latency histograms added together, never averaged. The same figures are in <code>capacity.json</code>.</p>\n");
    page(&format!("stampede capacity: {}", c.scenario), &body)
}

/// The capacity ladder for a terminal: the headline, the knee, the USL and a table of points.
pub fn capacity_text(c: &Capacity) -> String {
    let mut t = crate::table::Table::new([
        "load",
        "offered/s",
        "goodput/s",
        "p50",
        "p99",
        "p99.9",
        "errors",
        "refused",
        "calls/query",
        "violated",
    ]);
    for p in &c.points {
        let violated: Vec<&str> = p.failures.keys().map(String::as_str).collect();
        t.row([
            times(p.load),
            num(p.offered_per_s, 2),
            num(p.goodput_per_s, 2),
            ms(p.p50_ms),
            ms(p.p99_ms),
            ms(p.p999_ms),
            format!("{}%", num(100.0 * p.error_rate, 1)),
            format!("{}%", num(100.0 * p.refusal_rate, 1)),
            num(p.calls_per_query, 1),
            if p.errors.is_empty() {
                violated.join(", ")
            } else {
                format!(
                    "{} (and {} runs without data)",
                    violated.join(", "),
                    p.errors.len()
                )
            },
        ]);
    }
    let mut out = format!("stampede capacity {}: {}\n\n", c.scenario, c.headline);
    out.push_str(&t.render(2));
    match (&c.knee, &c.no_knee) {
        (Some(k), _) => {
            let _ = writeln!(
                out,
                "\n  knee  {}: {} (rule: {})",
                times(k.load),
                k.trigger,
                k.rule
            );
        }
        (None, Some(why)) => {
            let _ = writeln!(out, "\n  knee  none: {why} (rule: {})", c.knee_rule);
        }
        _ => {}
    }
    match (&c.usl, &c.usl_not_fitted) {
        (Some(u), _) => {
            let _ = writeln!(
                out,
                "  USL   σ = {}, κ = {:.3e}, λ = {}, R² = {}{}",
                num(u.sigma, 4),
                u.kappa,
                num(u.lambda, 3),
                num(u.r2, 3),
                match (u.n_star, u.x_max) {
                    (Some(n), Some(x)) => format!("; peak {}/s at N* = {}", num(x, 2), num(n, 1)),
                    _ => "; no peak (κ = 0)".into(),
                }
            );
        }
        (None, Some(why)) => {
            let _ = writeln!(out, "  USL   not fitted: {why}");
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backticks_become_code() {
        assert_eq!(
            code_spans("at 4×, `provider_quota` breaks"),
            "at 4×, <code>provider_quota</code> breaks"
        );
    }
}
