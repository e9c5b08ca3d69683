//! The HTML pages (`report.html`, the compare page, `capacity.html`) and `report.md`: one
//! stylesheet, inline SVG, nothing fetched, readable without JavaScript.

pub mod capacity;
pub mod compare;
pub mod run;

pub use capacity::{capacity_html, capacity_text};
pub use compare::{compare_html, compare_md};
pub use run::{run_html, run_md};

use crate::run::{RunData, Status, VerdictRow};
use crate::svg::escape;

/// The stylesheet every page inlines. System fonts only: nothing is fetched.
const CSS: &str = r#"
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #1a1a1a; background: #fff; margin: 0 auto; max-width: 1120px; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 14px; margin: 16px 0 4px; }
p.lede { color: #444; margin: 0 0 12px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #e4e4e4; padding: 3px 10px 3px 0; text-align: left; vertical-align: top; }
th { font-weight: 600; color: #333; }
td.num, th.num { text-align: right; }
code, pre { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; white-space: pre-wrap; }
.pass { color: #0b6e4f; } .fail { color: #b3261e; font-weight: 600; } .unknown { color: #7a5a00; } .expected { color: #6b4c00; font-weight: 600; }
.banner { background: #fff6da; border: 1px solid #e6c65c; padding: 8px 12px; margin: 10px 0; }
.ok-banner { background: #eaf5ef; border: 1px solid #9ccfb3; padding: 8px 12px; margin: 10px 0; }
figure.chart { margin: 10px 0 18px; }
figcaption { margin: 0 0 4px; } .chart-title { font-weight: 600; display: block; } .chart-desc { font-size: 12px; color: #555; display: block; }
figure.chart svg { width: 100%; height: auto; max-width: 1060px; display: block; }
figure.chart details, section details { font-size: 12px; color: #444; }
.axis-title { font-size: 12px; fill: #333; } .tick { font-size: 11px; fill: #555; }
.band-label, .direct-label, .legend { font-size: 11px; fill: #333; }
.grid { stroke: #eee; }
.columns { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
.small { font-size: 12px; color: #555; }
.headline { font-size: 16px; font-weight: 600; margin: 10px 0; }
"#;

/// A whole page around `body`.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n",
        escape(title)
    )
}

/// The verdict cell's class.
pub fn class(v: &VerdictRow) -> &'static str {
    match (v.status, v.expected) {
        (Status::Fail, true) => "expected",
        (Status::Fail, false) => "fail",
        (Status::Pass, true) => "fail",
        (Status::Pass, false) => "pass",
        (Status::Unknown, _) => "unknown",
    }
}

/// Rows in the order a reader wants them: what went against the scenario's expectation first,
/// then expected violations, unknowns and passes; by name within each.
pub fn ordered(verdicts: &[VerdictRow]) -> Vec<&VerdictRow> {
    let mut rows: Vec<&VerdictRow> = verdicts.iter().collect();
    rows.sort_by_key(|v| {
        let rank = match (v.status, v.expected) {
            (Status::Fail, false) | (Status::Pass, true) => 0,
            (Status::Fail, true) => 1,
            (Status::Unknown, _) => 2,
            (Status::Pass, false) => 3,
        };
        (rank, v.name.clone())
    });
    rows
}

/// Seconds of virtual time as `m:ss` (or `h:mm:ss`).
pub fn at(ms: u64) -> String {
    crate::svg::format_tick(ms as f64 / 1000.0, &crate::svg::TickFormat::Duration)
}

/// A rate per second, per minute or per hour, whichever shows it in two decimals: one query in
/// ten minutes is `0.1/min`, not `0/s`.
pub fn rate(per_s: f64) -> String {
    if per_s == 0.0 || per_s >= 0.01 {
        format!("{}/s", num(per_s, 2))
    } else if per_s * 60.0 >= 0.01 {
        format!("{}/min", num(per_s * 60.0, 2))
    } else {
        format!("{}/h", num(per_s * 3600.0, 2))
    }
}

/// A number with at most `digits` decimals, without trailing zeros.
pub fn num(v: f64, digits: usize) -> String {
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The verdict panel: one row per invariant, with the witness under a disclosure.
pub fn verdict_table(run: &RunData) -> String {
    let mut out = String::from(
        "<section id=\"verdicts\" class=\"verdicts\"><h2>Verdicts</h2>\n<table>\n<tr><th>invariant</th><th>verdict</th><th>first violation</th><th>detail</th></tr>\n",
    );
    for v in ordered(&run.verdicts) {
        let mut detail = escape(&v.detail);
        if let Some(s) = v.sometimes.as_ref().filter(|s| !s.reached) {
            detail.push_str(&format!(
                "<br><span class=\"small\">never reached: {}{}</span>",
                escape(&s.state),
                v.unreached_why
                    .as_ref()
                    .map(|w| format!(" (the scenario says: {})", escape(w)))
                    .unwrap_or_default()
            ));
        }
        if !v.witness.is_empty() {
            detail.push_str(&format!(
                "<details><summary>witness: {} events</summary><pre>{}</pre></details>",
                v.witness.len(),
                escape(&v.witness.join("\n"))
            ));
        }
        out.push_str(&format!(
            "<tr><td><code>{}</code></td><td class=\"{}\">{}</td><td>{}</td><td>{detail}</td></tr>\n",
            escape(&v.name),
            class(v),
            escape(&v.cell()),
            v.first_violation_ms.map(at).unwrap_or_default(),
        ));
    }
    out.push_str("</table></section>\n");
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn slow_rates_are_shown_per_minute_or_per_hour() {
        assert_eq!(super::rate(0.0), "0/s");
        assert_eq!(super::rate(1.5), "1.5/s");
        assert_eq!(super::rate(1.0 / 600.0), "0.1/min");
        assert_eq!(super::rate(1.0 / 36_000.0), "0.1/h");
    }
}
