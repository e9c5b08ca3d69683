//! Charts and timelines as inline SVG strings for self-contained HTML reports.
//!
//! The output needs no script, font or URL. Text carries CSS classes (`axis`, `tick`,
//! `axis-title`, `grid`, `band-label`, `rule-label`, `legend`, `direct-label`, `lane-label`,
//! `item-label`) so that the page's stylesheet chooses fonts; the `font-size` and `fill`
//! attributes are only a fallback. Every figure ends with its numbers in a `<details>` table,
//! for readers who cannot see the picture.

use std::collections::BTreeMap;
use std::fmt::{self, Write};

/// Appends formatted text to a `String`; the result is dropped because writing to a `String`
/// cannot fail.
macro_rules! out {
    ($o:expr, $($t:tt)*) => {{
        let _ = write!($o, $($t)*);
    }};
}

/// The Okabe–Ito palette, with amber #F5C710 in place of #F0E442 (hard to see on white).
pub const PALETTE: [&str; 8] = [
    "#000000", "#E69F00", "#56B4E9", "#009E73", "#F5C710", "#0072B2", "#D55E00", "#CC79A7",
];

/// Data tables stop here so that a long series cannot bloat the page.
const MAX_ROWS: usize = 400;
/// Layout needs text widths before a browser measures them: this is a generous average
/// character width at the 11px fallback size.
const CHAR_W: f64 = 6.2;
/// Height of one timeline sub-row: a window bar plus breathing room.
const ROW_H: f64 = 20.0;
/// Placeholder for the figure's id, replaced once the SVG's content is known. Control characters
/// never survive [`escape`], so no user text can contain it.
const ID: char = '\u{1}';

/// How values map onto an axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Equal distances for equal differences.
    Linear,
    /// Equal distances for equal ratios; non-positive values are left out as gaps.
    Log10,
}

/// How tick labels and table cells show a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickFormat {
    /// A plain number, with k/M/G/T suffixes on ticks.
    Number,
    /// A fraction shown as a percentage: 1.0 is "100%".
    Percent,
    /// Seconds of virtual time as m:ss, or h:mm:ss from an hour on.
    Duration,
    /// A ratio shown as "2×".
    Multiplier,
}

/// One axis of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// The axis title including units, e.g. "queries per 10 s".
    pub label: String,
    /// Linear or logarithmic.
    pub scale: Scale,
    /// A fixed lower bound; `None` takes it from the data.
    pub min: Option<f64>,
    /// A fixed upper bound; `None` takes it from the data.
    pub max: Option<f64>,
    /// How ticks and table cells are written.
    pub format: TickFormat,
}

impl Axis {
    /// A linear axis whose bounds come from the data.
    pub fn new(label: impl Into<String>, format: TickFormat) -> Self {
        let (scale, min, max, label) = (Scale::Linear, None, None, label.into());
        Self {
            label,
            scale,
            min,
            max,
            format,
        }
    }
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Straight segments between points.
    Line,
    /// Step-after: each value holds until the next point.
    Step,
    /// A dot per point.
    Points,
    /// A filled area stacked on the chart's earlier `StackedArea` series at equal x values.
    StackedArea,
}

/// One data series.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Name shown in the legend, the direct label and the table heading.
    pub name: String,
    /// Colour, usually from [`PALETTE`].
    pub color: &'static str,
    /// Whether the line is dashed (a second cue besides colour).
    pub dashed: bool,
    /// How the points are drawn.
    pub mark: Mark,
    /// `(x, y)` pairs; `None` is a gap that breaks the line.
    pub points: Vec<(f64, Option<f64>)>,
    /// `(x, lo, hi)` error bars drawn as vertical whiskers.
    pub whiskers: Vec<(f64, f64, f64)>,
}

impl Series {
    /// A solid series without whiskers.
    pub fn new(
        name: impl Into<String>,
        color: &'static str,
        mark: Mark,
        points: Vec<(f64, Option<f64>)>,
    ) -> Self {
        let (name, dashed, whiskers) = (name.into(), false, Vec::new());
        Self {
            name,
            color,
            dashed,
            mark,
            points,
            whiskers,
        }
    }
}

/// A translucent shaded x-window with its label above the plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    /// Where the window starts.
    pub x0: f64,
    /// Where the window ends.
    pub x1: f64,
    /// Label drawn at the window's top.
    pub label: String,
    /// Fill colour.
    pub color: &'static str,
}

/// A dashed grey reference line, e.g. a 100 % quota or a vertical "knee" marker.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Position on the y axis, or on the x axis when `vertical`.
    pub value: f64,
    /// Label drawn by the line.
    pub label: String,
    /// Whether the rule marks an x value.
    pub vertical: bool,
}

/// A chart: axes, series and annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Title, the SVG's `<title>` (its accessible name).
    pub title: String,
    /// One or two sentences on what the chart shows, the SVG's `<desc>`.
    pub desc: String,
    /// Horizontal axis.
    pub x: Axis,
    /// Vertical axis.
    pub y: Axis,
    /// Series in drawing and stacking order.
    pub series: Vec<Series>,
    /// Shaded x-windows, drawn behind the data.
    pub bands: Vec<Band>,
    /// Reference lines.
    pub rules: Vec<Rule>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels without the legend, which adds its own rows below.
    pub height: u32,
}

impl Chart {
    /// An empty 760×240 chart.
    pub fn new(title: impl Into<String>, desc: impl Into<String>, x: Axis, y: Axis) -> Self {
        let (title, desc) = (title.into(), desc.into());
        let (series, bands, rules) = (Vec::new(), Vec::new(), Vec::new());
        Self {
            title,
            desc,
            x,
            y,
            series,
            bands,
            rules,
            width: 760,
            height: 240,
        }
    }
}

/// One row of a timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Lane {
    /// Name shown in the label column.
    pub name: String,
    /// Windows and instants on this lane.
    pub items: Vec<Item>,
}

/// A window (with an end) or an instant (without) on a timeline lane.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Where the item starts.
    pub start: f64,
    /// Where the window ends; `None` marks an instant, drawn as a diamond.
    pub end: Option<f64>,
    /// Label drawn inside the window if it fits, else beside it.
    pub label: String,
    /// Colour.
    pub color: &'static str,
}

/// A timeline strip: lanes of windows and instants over a shared x axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// Title, the SVG's `<title>`.
    pub title: String,
    /// What the timeline shows, the SVG's `<desc>`.
    pub desc: String,
    /// The shared x axis, usually with `TickFormat::Duration`.
    pub x: Axis,
    /// Lanes from top to bottom.
    pub lanes: Vec<Lane>,
    /// Width in pixels; the height follows from the lanes.
    pub width: u32,
}

/// Escapes `&`, `<`, `>`, `"` and `'` for XML and HTML text and attributes.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\t' | '\n' | '\r' => o.push(c),
            // XML 1.0 forbids other control characters even when escaped, so they are dropped.
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => o.push(c),
        }
    }
    o
}

/// Ticks at 1, 2 or 5 times a power of ten, about `target` intervals, the first at or below
/// `min` and the last at or above `max`. Non-finite input gives no ticks.
pub fn nice_ticks(min: f64, max: f64, target: usize) -> Vec<f64> {
    if !(min.is_finite() && max.is_finite()) {
        return Vec::new();
    }
    let (mut lo, mut hi) = (min.min(max), min.max(max));
    if lo == hi {
        // A single value still needs an interval around it to pick a step.
        let d = 10f64.powf(lo.abs().log10().floor());
        let d = if d > 0.0 { d } else { 1.0 };
        (lo, hi) = (lo - d, hi + d);
    }
    let raw = (hi - lo) / target.max(1) as f64;
    if !(raw.is_finite() && raw > 0.0) {
        return vec![lo, hi];
    }
    let mut e = raw.log10().floor() as i32;
    let f = raw / 10f64.powi(e);
    let m = match f {
        f if f <= 1.0 => 1,
        f if f <= 2.0 => 2,
        f if f <= 5.0 => 5,
        _ => {
            e += 1;
            1
        }
    };
    multiples(lo, hi, m, e)
}

/// Multiples of `m`×10^`e` from at or below `lo` to at or above `hi`. A negative exponent divides
/// by an exact power of ten, so that 0.3 prints as 0.3 and not 0.30000000000000004.
fn multiples(lo: f64, hi: f64, m: i64, e: i32) -> Vec<f64> {
    let p = 10f64.powi(e.abs());
    let step = if e >= 0 { m as f64 * p } else { m as f64 / p };
    let (k0, k1) = ((lo / step + 1e-9).floor(), (hi / step - 1e-9).ceil());
    if !(k0.is_finite() && k1.is_finite()) || k1 - k0 > 10_000.0 {
        return vec![lo, hi];
    }
    let scale = |n: f64| if e >= 0 { n * p } else { n / p };
    (k0 as i64..=k1 as i64)
        .map(|k| scale((k * m) as f64) + 0.0)
        .collect()
}

/// Ticks suited to the format: durations step by whole seconds, minutes and hours (0:30, 1:00,
/// 1:30 rather than 0:20, 0:40); other formats use [`nice_ticks`].
pub fn ticks_for(min: f64, max: f64, target: usize, format: &TickFormat) -> Vec<f64> {
    const STEPS: [i64; 18] = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
    ];
    let raw = (max - min).abs() / target.max(1) as f64;
    if *format != TickFormat::Duration || raw.is_nan() || raw < 1.0 {
        return nice_ticks(min, max, target);
    }
    match STEPS.iter().find(|s| **s as f64 >= raw) {
        Some(&step) => multiples(min.min(max), min.max(max), step, 0),
        None => nice_ticks(min / 86400.0, max / 86400.0, target)
            .into_iter()
            .map(|d| d * 86400.0)
            .collect(),
    }
}

/// Powers of ten from at or below `lo` to at or above `hi`, skipping decades when there are many.
fn log_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let e0 = lo.log10().floor().clamp(-300.0, 300.0) as i32;
    let e1 = (hi.log10().ceil().clamp(-300.0, 300.0) as i32).max(e0 + 1);
    let step = ((e1 - e0) as usize).div_ceil(target.max(1)).max(1);
    let n = ((e1 - e0) as usize).div_ceil(step);
    (0..=n).map(|i| pow10(e0 + (i * step) as i32)).collect()
}

/// 10^e, parsed from decimal text so that 10^-1 is exactly the f64 nearest 0.1.
fn pow10(e: i32) -> f64 {
    format!("1e{e}").parse().unwrap_or(1.0)
}

/// Formats a tick value: numbers with k/M/G/T suffixes (0.1, 1, 10, 1k, 2.5M), percentages,
/// durations as m:ss or h:mm:ss, multipliers as "2×". Non-finite values give "".
pub fn format_tick(v: f64, f: &TickFormat) -> String {
    if !v.is_finite() {
        return String::new();
    }
    match f {
        TickFormat::Number => {
            let a = v.abs();
            let units = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
            match units.iter().find(|(u, _)| a >= *u) {
                Some((u, s)) => format!("{}{s}", short(v / u)),
                None => short(v),
            }
        }
        TickFormat::Percent => format!("{}%", short(v * 100.0)),
        TickFormat::Multiplier => format!("{}×", short(v)),
        TickFormat::Duration => duration(v),
    }
}

/// Formats a value for the data table: like [`format_tick`] but without suffixes, so that
/// nothing is rounded away.
fn format_value(v: f64, f: &TickFormat) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let plain = |v: f64| match v.abs() {
        a if v.fract() == 0.0 && a < 1e15 => format!("{v:.0}"),
        a if a >= 1.0 => trim(&format!("{v:.3}")),
        _ => short(v),
    };
    match f {
        TickFormat::Number => plain(v),
        TickFormat::Percent => format!("{}%", plain(v * 100.0)),
        TickFormat::Multiplier => format!("{}×", plain(v)),
        TickFormat::Duration => duration(v),
    }
}

/// About three significant digits, trailing zeros trimmed; tiny values in exponent form.
fn short(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    if a < 1e-3 {
        let s = format!("{v:.2e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        return format!("{}e{e}", trim(m));
    }
    let prec = match a {
        a if a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        a if a >= 1.0 => 2,
        a => (2.0 - a.log10().floor()) as usize,
    };
    trim(&format!("{v:.prec$}"))
}

/// Drops trailing zeros after a decimal point, and a "-" left on a zero.
fn trim(s: &str) -> String {
    let t = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    };
    if t == "-0" { "0".into() } else { t.into() }
}

/// Seconds as m:ss or h:mm:ss, with tenths when the value has them.
fn duration(v: f64) -> String {
    let tenths = (v.abs() * 10.0).round();
    if tenths >= 1e15 {
        return format!("{} s", short(v));
    }
    let tenths = tenths as u64;
    let s = tenths / 10;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    let sign = if v < 0.0 && tenths > 0 { "-" } else { "" };
    let d = tenths % 10;
    let frac = if d > 0 {
        format!(".{d}")
    } else {
        String::new()
    };
    match h {
        0 => format!("{sign}{m}:{s:02}{frac}"),
        h => format!("{sign}{h}:{m:02}:{s:02}{frac}"),
    }
}

/// A pixel coordinate with one decimal. Non-finite values print as 0, so "NaN" never reaches
/// the SVG.
struct P(f64);

impl fmt::Display for P {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = (self.0 * 10.0).round() / 10.0;
        let v = if v.is_finite() { v } else { 0.0 };
        if v == v.trunc() {
            write!(f, "{}", v as i64)
        } else {
            write!(f, "{v:.1}")
        }
    }
}

/// Maps axis values (their logarithms on a log axis) linearly onto pixels `a`..`b`.
#[derive(Debug, Clone, Copy)]
struct Map {
    lo: f64,
    hi: f64,
    log: bool,
    a: f64,
    b: f64,
}

impl Map {
    fn new(lo: f64, hi: f64, log: bool, a: f64, b: f64) -> Self {
        let t = |v: f64| if log { v.log10() } else { v };
        let (lo, hi) = (t(lo), t(hi));
        Self { lo, hi, log, a, b }
    }

    /// The pixel for `v`; `None` if the axis cannot show it (non-finite, or not positive on a
    /// log axis).
    fn at(&self, v: f64) -> Option<f64> {
        let t = match self.log {
            true if v > 0.0 => v.log10(),
            true => return None,
            false => v,
        };
        // A zero-width domain divides by zero; its one value then sits mid-axis.
        let f = (t - self.lo) / (self.hi - self.lo);
        let p = self.a + (self.b - self.a) * if f.is_finite() { f } else { 0.5 };
        // Far-off points are pulled in to keep coordinates short; the clip path hides them.
        p.is_finite().then(|| p.clamp(-1e5, 1e5))
    }

    /// Like `at`, but what the axis cannot show sits at its low end, e.g. an area's zero base
    /// on a log axis.
    fn clamped(&self, v: f64) -> f64 {
        self.at(v).unwrap_or(self.a)
    }
}

/// Axis bounds and ticks for these values: fixed bounds win; otherwise the ticks round the data
/// range outwards. `zero` pulls a linear range to include 0.
fn domain(axis: &Axis, vals: &[f64], zero: bool, target: usize) -> (f64, f64, Vec<f64>) {
    let log = axis.scale == Scale::Log10;
    let ok = |v: &f64| v.is_finite() && (!log || *v > 0.0);
    let (fmin, fmax) = (axis.min.filter(ok), axis.max.filter(ok));
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in vals.iter().copied().filter(ok) {
        (lo, hi) = (lo.min(v), hi.max(v));
    }
    if !lo.is_finite() {
        // With no data, a duration axis still shows a minute rather than tenths of a second.
        let span = if axis.format == TickFormat::Duration {
            60.0
        } else {
            1.0
        };
        (lo, hi) = if log { (1.0, 10.0) } else { (0.0, span) };
    }
    if zero && !log {
        (lo, hi) = (lo.min(0.0), hi.max(0.0));
    }
    (lo, hi) = (fmin.unwrap_or(lo), fmax.unwrap_or(hi));
    (lo, hi) = (lo.min(hi), lo.max(hi));
    let mut ticks = match log {
        true => log_ticks(lo, hi, target),
        false => ticks_for(lo, hi, target, &axis.format),
    };
    let lo = fmin.or(ticks.first().copied()).unwrap_or(lo);
    let mut hi = fmax.or(ticks.last().copied()).unwrap_or(hi);
    if hi <= lo {
        hi = if log { lo * 10.0 } else { lo + 1.0 };
    }
    let eps = (hi - lo) * 1e-9;
    ticks.retain(|t| *t >= lo - eps && *t <= hi + eps);
    (lo, hi, ticks)
}

/// Width of `s` in pixels at the fallback font size, an estimate.
fn text_w(s: &str) -> f64 {
    s.chars().count() as f64 * CHAR_W
}

/// Gives each span `(left, right)` the first row where it overlaps nothing; once `max_rows` rows
/// are taken, spans cycle through them.
fn assign_rows(spans: &[(f64, f64)], max_rows: usize) -> Vec<usize> {
    let mut rows: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut out = Vec::with_capacity(spans.len());
    for (i, &(l, r)) in spans.iter().enumerate() {
        let free = rows
            .iter()
            .position(|row| row.iter().all(|&(a, b)| r + 4.0 <= a || l >= b + 4.0));
        let k = match free {
            Some(k) => k,
            None if rows.len() < max_rows.max(1) => {
                rows.push(Vec::new());
                rows.len() - 1
            }
            None => i % rows.len(),
        };
        rows[k].push((l, r));
        out.push(k);
    }
    out
}

/// Total-order key for an x value, so that rows and stacks can be keyed in a `BTreeMap`.
fn okey(x: f64) -> u64 {
    let b = (x + 0.0).to_bits();
    if b >> 63 == 1 { !b } else { b | 1 << 63 }
}

/// Appends a `<line>`; `attrs` adds styling such as a stroke.
fn line(o: &mut String, x1: f64, y1: f64, x2: f64, y2: f64, attrs: &str) {
    let (x1, y1, x2, y2) = (P(x1), P(y1), P(x2), P(y2));
    out!(o, r#"<line x1="{x1}" y1="{y1}" x2="{x2}""#);
    out!(o, r#" y2="{y2}"{attrs}/>"#);
}

/// Appends a `<rect>`; `attrs` adds styling such as a fill.
fn rect(o: &mut String, x: f64, y: f64, w: f64, h: f64, attrs: &str) {
    let (x, y, w, h) = (P(x), P(y), P(w), P(h));
    out!(o, r#"<rect x="{x}" y="{y}" width="{w}""#);
    out!(o, r#" height="{h}"{attrs}/>"#);
}

/// Appends a `<text>` holding `s`, escaped.
fn text(o: &mut String, x: f64, y: f64, attrs: &str, s: &str) {
    let (x, y, s) = (P(x), P(y), escape(s));
    out!(o, r#"<text x="{x}" y="{y}"{attrs}>{s}</text>"#);
}

/// Opens the figure and its SVG with the `<title>` and `<desc>` an assistive reader announces.
fn svg_open(title: &str, desc: &str, w: f64, h: f64) -> String {
    let (w, h, title, desc) = (P(w), P(h), escape(title), escape(desc));
    // The title and what is drawn, as text above the chart: a reader sees them first.
    let mut o = format!(
        r#"<figure class="chart"><figcaption><span class="chart-title">{title}</span> <span class="chart-desc">{desc}</span></figcaption><svg xmlns="http://www.w3.org/2000/svg" "#
    );
    out!(o, r#"viewBox="0 0 {w} {h}" width="{w}" "#);
    out!(
        o,
        r#"height="{h}" role="img" aria-labelledby="{ID}-t {ID}-d">"#
    );
    out!(o, r#"<title id="{ID}-t">{title}</title>"#);
    out!(o, r#"<desc id="{ID}-d">{desc}</desc>"#);
    o
}

/// Closes the SVG, appends the data table and names the figure's ids after a hash of its
/// content: ids must differ between figures on one page, and must not change between runs.
fn finish(mut o: String, head: &[String], rows: &[Vec<String>]) -> String {
    o.push_str(r#"</svg><details><summary>Data table</summary><table class="data">"#);
    let n = rows.len();
    if n > MAX_ROWS {
        out!(o, "<caption>first {MAX_ROWS} of {n} rows</caption>");
    }
    o.push_str("<thead><tr>");
    for h in head {
        out!(o, r#"<th scope="col">{}</th>"#, escape(h));
    }
    o.push_str("</tr></thead><tbody>");
    for r in rows.iter().take(MAX_ROWS) {
        o.push_str("<tr>");
        for c in r {
            out!(o, "<td>{}</td>", escape(c));
        }
        o.push_str("</tr>");
    }
    o.push_str("</tbody></table></details></figure>");
    let fnv = |h: u64, b: u8| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    let hash = o.bytes().fold(0xcbf2_9ce4_8422_2325, fnv);
    o.replace(ID, &format!("svg{:012x}", hash >> 16))
}

/// Draws an x axis at pixel row `y`: line, ticks, labels (thinned where they would collide)
/// and the axis title. Gridlines up to `top` go first, behind everything else.
fn x_axis(o: &mut String, m: &Map, ticks: &[f64], axis: &Axis, y: f64) {
    let px: Vec<(f64, String)> = ticks
        .iter()
        .filter_map(|t| Some((m.at(*t)?, format_tick(*t, &axis.format))))
        .collect();
    o.push_str(r##"<g class="axis" stroke="#444">"##);
    line(o, m.a, y, m.b, y, "");
    for (x, _) in &px {
        line(o, *x, y, *x, y + 4.0, "");
    }
    let widest = px.iter().map(|(_, l)| text_w(l)).fold(0.0, f64::max) + 8.0;
    let gap = px.windows(2).map(|w| w[1].0 - w[0].0).reduce(f64::min);
    let every = (widest / gap.unwrap_or(1.0)).ceil().clamp(1.0, 1e3) as usize;
    o.push_str(r##"</g><g class="tick" font-size="11" fill="#333" text-anchor="middle">"##);
    for (x, l) in px.iter().step_by(every) {
        text(o, *x, y + 16.0, "", l);
    }
    o.push_str("</g>");
    let attrs = r##" class="axis-title" font-size="12" fill="#222" text-anchor="middle""##;
    text(o, (m.a + m.b) / 2.0, y + 34.0, attrs, &axis.label);
}

/// Opens the gridline group with vertical lines at the x ticks, from `top` to `bottom`.
fn x_grid(m: &Map, ticks: &[f64], top: f64, bottom: f64) -> String {
    let mut o = String::from(r##"<g class="grid" stroke="#e4e4e4">"##);
    for x in ticks.iter().filter_map(|t| m.at(*t)) {
        line(&mut o, x, top, x, bottom, "");
    }
    o
}

/// A series' points after stacking: `(x, Some((base, top)))`, or `None` for a gap. Only
/// stacked areas have a base below their top.
type Layer = Vec<(f64, Option<(f64, f64)>)>;

/// Resolves gaps and stacks the `StackedArea` series on one another, in series order.
fn layers(chart: &Chart) -> Vec<Layer> {
    let (xlog, ylog) = (chart.x.scale == Scale::Log10, chart.y.scale == Scale::Log10);
    let mut stack: BTreeMap<u64, f64> = BTreeMap::new();
    let mut all = Vec::with_capacity(chart.series.len());
    for s in &chart.series {
        let stacked = s.mark == Mark::StackedArea;
        let mut pts = Vec::with_capacity(s.points.len());
        for &(x, y) in &s.points {
            let x_ok = x.is_finite() && (!xlog || x > 0.0);
            // A stacked zero still stacks, so only unstacked values drop out of a log axis.
            let y = y.filter(|v| x_ok && v.is_finite() && (stacked || !ylog || *v > 0.0));
            let v = match (stacked, y) {
                (true, Some(v)) => {
                    let top = stack.entry(okey(x)).or_insert(0.0);
                    *top += v;
                    Some((*top - v, *top))
                }
                (false, Some(v)) => Some((v, v)),
                (_, None) => None,
            };
            pts.push((x, v));
        }
        all.push(pts);
    }
    all
}

/// The dash pattern of dashed series, in lines and legend swatches alike.
const DASH: &str = r#" stroke-dasharray="6 3""#;

/// The stroke-dasharray attribute for a dashed series, else nothing.
fn dash(s: &Series) -> &'static str {
    if s.dashed { DASH } else { "" }
}

/// A run of drawable points `(x, top, base)` in pixels, and the x of the gap that ended it.
type Run = (Vec<(f64, f64, f64)>, Option<f64>);

/// Draws one series, clipped by the caller to the plot area.
fn draw_series(o: &mut String, s: &Series, pts: &Layer, xm: &Map, ym: &Map) {
    // Runs of drawable points `(x, top, base)` in pixels; a gap ends a run, and the gap's x
    // tells a step where the last value stopped holding.
    let mut runs: Vec<Run> = vec![(Vec::new(), None)];
    for &(x, v) in pts {
        let p = v.and_then(|(b, t)| Some((xm.at(x)?, ym.at(t)?, ym.clamped(b))));
        let Some(run) = runs.last_mut() else { break };
        match p {
            Some(p) => run.0.push(p),
            None if !run.0.is_empty() => {
                run.1 = xm.at(x);
                runs.push((Vec::new(), None));
            }
            None => {}
        }
    }
    let (c, mut d, mut dots) = (s.color, String::new(), Vec::new());
    for (run, end) in runs.iter().filter(|r| !r.0.is_empty()) {
        let lone = run.len() == 1 && (s.mark != Mark::Step || end.is_none());
        let mut to = |i: usize, x: f64, y: f64| {
            out!(d, "{}{} {}", ["L", "M"][usize::from(i == 0)], P(x), P(y))
        };
        match s.mark {
            Mark::Points => dots.extend(run.iter().map(|p| (p.0, p.1))),
            _ if lone => dots.push((run[0].0, run[0].1)),
            Mark::Line => run.iter().enumerate().for_each(|(i, p)| to(i, p.0, p.1)),
            // Stacked values are counts per interval: each holds until the next x, so the
            // area is drawn in steps (a sloped edge would invent values in between).
            Mark::StackedArea => {
                to(0, run[0].0, run[0].1);
                for p in &run[1..] {
                    out!(d, "H{}V{}", P(p.0), P(p.1));
                }
                let last = run[run.len() - 1];
                let x_end = end.unwrap_or(last.0);
                out!(d, "H{}V{}", P(x_end), P(last.2));
                for w in run.windows(2).rev() {
                    out!(d, "H{}V{}", P(w[1].0), P(w[0].2));
                }
                out!(d, "H{}Z", P(run[0].0));
            }
            Mark::Step => {
                to(0, run[0].0, run[0].1);
                for p in &run[1..] {
                    out!(d, "H{}V{}", P(p.0), P(p.1));
                }
                if let Some(x) = end {
                    out!(d, "H{}", P(*x));
                }
            }
        }
    }
    if !d.is_empty() {
        let fill = match s.mark {
            Mark::StackedArea => format!(r#"fill="{c}" fill-opacity="0.8""#),
            _ => r#"fill="none""#.into(),
        };
        let dash = dash(s);
        // A stacked area's edge is its fill's: a thick one would hide the thin layers.
        let width = if s.mark == Mark::StackedArea {
            "0.5"
        } else {
            "1.75"
        };
        out!(o, r#"<path d="{d}" {fill} stroke="{c}""#);
        out!(o, r#" stroke-width="{width}"{dash}/>"#);
    }
    for (x, y) in dots {
        circle(o, x, y, 2.5, c);
    }
    for &(x, lo, hi) in &s.whiskers {
        let (Some(x), Some(top)) = (xm.at(x), ym.at(lo.max(hi))) else {
            continue;
        };
        let bot = ym.clamped(lo.min(hi));
        let (xp, l, t, b) = (P(x), P(x - 3.0), P(top), P(bot));
        out!(o, r#"<path d="M{xp} {b}V{t}M{l} {b}h6M{l} {t}h6""#);
        out!(o, r#" stroke="{c}" fill="none"/>"#);
    }
}

/// Fill of a legend swatch for an area, with `C` standing for the colour.
const AREA: &str = r#" fill="C" fill-opacity="0.8""#;
/// Stroke of a legend swatch for a line, with `C` standing for the colour.
const LINE: &str = r#" stroke="C" stroke-width="2""#;

/// Appends a filled `<circle>`.
fn circle(o: &mut String, x: f64, y: f64, r: f64, color: &str) {
    let (x, y) = (P(x), P(y));
    out!(o, r#"<circle cx="{x}" cy="{y}" r="{r}" fill="{color}"/>"#);
}

/// Lays the legend out in rows from `(x0, y)`, wrapping before `right`; returns it and the
/// height of the whole chart with it.
fn legend(series: &[Series], x0: f64, right: f64, y: f64) -> (String, f64) {
    if series.is_empty() {
        return (String::new(), y - 8.0);
    }
    let mut o = String::from(r##"<g class="legend" font-size="11" fill="#333">"##);
    let (mut x, mut y) = (x0, y);
    for s in series {
        let ew = 40.0 + text_w(&s.name);
        if x + ew > right && x > x0 {
            (x, y) = (x0, y + 16.0);
        }
        let (c, mid) = (s.color, y - 4.0);
        let (fill, stroke) = (AREA.replace('C', c), LINE.replace('C', c) + dash(s));
        match s.mark {
            Mark::Points => circle(&mut o, x + 10.0, mid, 3.0, c),
            Mark::StackedArea => rect(&mut o, x + 1.0, y - 9.0, 18.0, 10.0, &fill),
            _ => line(&mut o, x, mid, x + 20.0, mid, &stroke),
        }
        text(&mut o, x + 26.0, y, "", &s.name);
        x += ew;
    }
    o.push_str("</g>");
    (o, y + 8.0)
}

/// Direct labels just right of each line's last drawable point, nudged at least 12px apart;
/// labels that do not fit are left to the legend.
fn direct_labels(chart: &Chart, layers: &[Layer], xm: &Map, ym: &Map, w: f64) -> String {
    let mut labels: Vec<(f64, f64, &Series)> = Vec::new();
    let lines = chart.series.iter().zip(layers);
    for (s, pts) in lines.filter(|(s, _)| s.mark != Mark::Points) {
        let last = pts.iter().rev().find_map(|&(x, v)| {
            let (b, t) = v?;
            Some((xm.at(x)?, ym.at(t)?, ym.clamped(b)))
        });
        let Some((x, t, b)) = last.filter(|l| l.0 + 5.0 + text_w(&s.name) <= w - 2.0) else {
            continue;
        };
        // An area's label sits halfway between its base and its top.
        let y = if s.mark == Mark::StackedArea {
            (t + b) / 2.0
        } else {
            t
        };
        labels.push((x + 5.0, y, s));
    }
    labels.sort_by(|a, b| a.1.total_cmp(&b.1));
    for i in 1..labels.len() {
        labels[i].1 = labels[i].1.max(labels[i - 1].1 + 12.0);
    }
    if let Some(last) = labels.last_mut() {
        last.1 = last.1.min(ym.a);
    }
    for i in (1..labels.len()).rev() {
        labels[i - 1].1 = labels[i - 1].1.min(labels[i].1 - 12.0);
    }
    let mut o = String::from(r##"<g class="direct-label" font-size="11" paint-order="stroke" "##);
    o.push_str(r##"stroke="#fff" stroke-width="3">"##);
    for (x, y, s) in labels.iter().filter(|l| l.1 >= ym.b) {
        let fill = format!(r#" fill="{}""#, s.color);
        text(&mut o, *x, y + 4.0, &fill, &s.name);
    }
    o + "</g>"
}

/// The data table: each series' own value (not a stacked total) at every x any series has.
fn chart_table(chart: &Chart) -> (Vec<String>, Vec<Vec<String>>) {
    let all = chart.series.iter().flat_map(|s| {
        s.points
            .iter()
            .map(|p| p.0)
            .chain(s.whiskers.iter().map(|w| w.0))
    });
    let mut xs: Vec<f64> = all.filter(|x| x.is_finite()).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let (mut head, mut cols) = (vec![chart.x.label.clone()], Vec::new());
    let fy = &chart.y.format;
    for s in &chart.series {
        head.push(s.name.clone());
        // Reversed so that the first of duplicate x values wins.
        let own = s
            .points
            .iter()
            .rev()
            .map(|&(x, y)| (okey(x), y.map(|v| format_value(v, fy))));
        cols.push(
            own.map(|(k, v)| (k, v.unwrap_or_default()))
                .collect::<BTreeMap<_, _>>(),
        );
        if !s.whiskers.is_empty() {
            head.push(format!("{} (range)", s.name));
            let range = |lo, hi| format!("{} – {}", format_value(lo, fy), format_value(hi, fy));
            cols.push(
                s.whiskers
                    .iter()
                    .rev()
                    .map(|&(x, lo, hi)| (okey(x), range(lo, hi)))
                    .collect(),
            );
        }
    }
    let row = |x: f64| {
        let cells = cols
            .iter()
            .map(|c| c.get(&okey(x)).cloned().unwrap_or_default());
        std::iter::once(format_value(x, &chart.x.format))
            .chain(cells)
            .collect()
    };
    (head, xs.into_iter().map(row).collect())
}

/// Renders a chart as a `<figure>` holding the SVG and a `<details>` data table.
pub fn render(chart: &Chart) -> String {
    let w = f64::from(chart.width.max(200));
    let h = f64::from(chart.height.max(120));
    let layers = layers(chart);
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for (s, pts) in chart.series.iter().zip(&layers) {
        xs.extend(pts.iter().map(|p| p.0));
        ys.extend(pts.iter().filter_map(|p| p.1.map(|v| v.1)));
        xs.extend(s.whiskers.iter().map(|w| w.0));
        ys.extend(s.whiskers.iter().flat_map(|w| [w.1, w.2]));
    }
    xs.extend(chart.bands.iter().flat_map(|b| [b.x0, b.x1]));
    for r in &chart.rules {
        if r.vertical { &mut xs } else { &mut ys }.push(r.value);
    }
    let ytarget = ((h - 60.0) / 36.0).clamp(2.0, 8.0) as usize;
    let (ylo, yhi, yticks) = domain(&chart.y, &ys, true, ytarget);
    let ylabels: Vec<String> = yticks
        .iter()
        .map(|v| format_tick(*v, &chart.y.format))
        .collect();
    // Room for the widest tick label and the rotated title; never under 64px.
    let left = ylabels.iter().map(|l| text_w(l)).fold(28.0, f64::max) + 36.0;
    // Direct labels go right of each line's last point, so the right margin fits the names.
    let named = chart
        .series
        .iter()
        .filter(|s| s.mark != Mark::Points && !s.points.is_empty());
    let right = named
        .map(|s| text_w(&s.name) + 12.0)
        .fold(28.0, f64::max)
        .min(150.0);
    let (px0, px1) = (left, (w - right).max(left + 40.0));
    let xtarget = ((px1 - px0) / 90.0).clamp(2.0, 10.0) as usize;
    let (xlo, xhi, xticks) = domain(&chart.x, &xs, false, xtarget);
    let xm = Map::new(xlo, xhi, chart.x.scale == Scale::Log10, px0, px1);
    let xpx = |v: f64| xm.clamped(v).clamp(px0, px1);

    // Band and marker labels sit above the plot, staggered where they would overlap.
    let bands = chart
        .bands
        .iter()
        .map(|b| (xpx(b.x0.min(b.x1)) + 2.0, b.label.as_str()));
    let marks = chart
        .rules
        .iter()
        .filter(|r| r.vertical)
        .map(|r| (xpx(r.value) + 3.0, r.label.as_str()));
    let tops: Vec<(f64, &str)> = bands.chain(marks).filter(|t| !t.1.is_empty()).collect();
    let spans: Vec<_> = tops.iter().map(|&(x, l)| (x, x + text_w(l))).collect();
    let rows = assign_rows(&spans, 3);
    let py0 = 12.0 + 13.0 * rows.iter().map(|r| r + 1).max().unwrap_or(0) as f64;
    let py1 = (h - 44.0).max(py0 + 40.0);
    let ym = Map::new(ylo, yhi, chart.y.scale == Scale::Log10, py1, py0);
    let (legend, total) = legend(&chart.series, px0, w - 4.0, py1 + 52.0);

    let mut o = svg_open(&chart.title, &chart.desc, w, total);
    out!(o, r#"<defs><clipPath id="{ID}-c">"#);
    rect(&mut o, px0, py0 - 2.0, px1 - px0, py1 - py0 + 4.0, "");
    o.push_str("</clipPath></defs>");
    o.push_str(&x_grid(&xm, &xticks, py0, py1));
    for y in yticks.iter().filter_map(|t| ym.at(*t)) {
        line(&mut o, px0, y, px1, y, "");
    }
    o.push_str("</g>");
    for b in &chart.bands {
        let (a, z) = (xpx(b.x0.min(b.x1)), xpx(b.x0.max(b.x1)));
        let fill = format!(r#" class="band" fill="{}" fill-opacity="0.12""#, b.color);
        rect(&mut o, a, py0, (z - a).max(1.0), py1 - py0, &fill);
    }
    o.push_str(r##"<g class="band-label" font-size="11" fill="#444">"##);
    for (&(x, l), r) in tops.iter().zip(&rows) {
        text(&mut o, x, 20.0 + 13.0 * *r as f64, "", l);
    }
    o.push_str(r##"</g><g class="rule" stroke="#888" stroke-dasharray="4 3">"##);
    let mut rule_labels = String::new();
    for r in &chart.rules {
        let m = if r.vertical { &xm } else { &ym };
        let inside = m.b.min(m.a)..=m.b.max(m.a);
        let Some(p) = m.at(r.value).filter(|p| inside.contains(p)) else {
            continue;
        };
        if r.vertical {
            line(&mut o, p, py0, p, py1, "");
        } else {
            line(&mut o, px0, p, px1, p, "");
            text(&mut rule_labels, px1 - 4.0, p - 4.0, "", &r.label);
        }
    }
    o.push_str(r##"</g><g class="rule-label" font-size="11" fill="#555" text-anchor="end">"##);
    out!(o, r#"{rule_labels}</g><g clip-path="url(#{ID}-c)">"#);
    // Areas go first so that lines and points stay visible on top of them.
    let mut order: Vec<usize> = (0..chart.series.len()).collect();
    order.sort_by_key(|&i| chart.series[i].mark != Mark::StackedArea);
    for i in order {
        draw_series(&mut o, &chart.series[i], &layers[i], &xm, &ym);
    }
    o.push_str("</g>");
    x_axis(&mut o, &xm, &xticks, &chart.x, py1);
    o.push_str(r##"<g class="axis" stroke="#444">"##);
    line(&mut o, px0, py0, px0, py1, "");
    let yp: Vec<(f64, &String)> = yticks
        .iter()
        .zip(&ylabels)
        .filter_map(|(t, l)| Some((ym.at(*t)?, l)))
        .collect();
    for (y, _) in &yp {
        line(&mut o, px0 - 4.0, *y, px0, *y, "");
    }
    o.push_str(r##"</g><g class="tick" font-size="11" fill="#333" text-anchor="end">"##);
    for (y, l) in &yp {
        text(&mut o, px0 - 7.0, y + 4.0, "", l);
    }
    let (cy, title) = (P((py0 + py1) / 2.0), escape(&chart.y.label));
    o.push_str(r##"</g><text class="axis-title" font-size="12" fill="#222" "##);
    // A title longer than the plot is tall is squeezed to fit rather than cut off.
    let room = (py1 - py0).abs();
    if text_w(&chart.y.label) * 12.0 / 11.0 > room {
        out!(
            o,
            r#"textLength="{}" lengthAdjust="spacingAndGlyphs" "#,
            P(room)
        );
    }
    out!(o, r#"text-anchor="middle" transform="translate(14 {cy})"#);
    out!(o, r#" rotate(-90)">{title}</text>"#);
    o.push_str(&direct_labels(chart, &layers, &xm, &ym, w));
    o.push_str(&legend);
    let (head, rows) = chart_table(chart);
    finish(o, &head, &rows)
}

/// One timeline item laid out: its shape's left and right pixels, its label's x and anchor,
/// and the span the two cover, which must not overlap another's in the same sub-row.
struct Placed<'a> {
    item: &'a Item,
    window: bool,
    x0: f64,
    x1: f64,
    lx: f64,
    anchor: &'static str,
    span: (f64, f64),
}

/// Places an item's shape and label: inside a window if the label fits, else beside it, on the
/// left only when the right has no room.
fn place<'a>(item: &'a Item, xm: &Map, right: f64) -> Option<Placed<'a>> {
    let xpx = |v: f64| xm.at(v).map(|p| p.clamp(xm.a, xm.b));
    let a = xpx(item.start)?;
    let z = item.end.and_then(xpx);
    let (x0, x1) = match z {
        Some(z) => (a.min(z), a.max(z).max(a.min(z) + 2.0)),
        None => (a - 5.0, a + 5.0),
    };
    let tw = text_w(&item.label);
    let (lx, anchor, span) = if z.is_some() && tw + 8.0 <= x1 - x0 {
        ((x0 + x1) / 2.0, "middle", (x0, x1))
    } else if x1 + 4.0 + tw <= right || x0 - 4.0 - tw < xm.a {
        (x1 + 4.0, "start", (x0, x1 + 4.0 + tw))
    } else {
        (x0 - 4.0, "end", (x0 - 4.0 - tw, x1))
    };
    Some(Placed {
        item,
        window: z.is_some(),
        x0,
        x1,
        lx,
        anchor,
        span,
    })
}

/// Renders a timeline as a `<figure>` holding the SVG and a `<details>` table of its items.
pub fn render_timeline(t: &Timeline) -> String {
    let w = f64::from(t.width.max(300));
    // The label column is 128px unless a lane's name needs more, up to a third of the width.
    let names = t
        .lanes
        .iter()
        .map(|l| text_w(&l.name) + 14.0)
        .fold(128.0, f64::max);
    let (px0, px1) = (names.min(w / 3.0), w - 28.0);
    let items = t.lanes.iter().flat_map(|l| &l.items);
    let xs: Vec<f64> = items
        .flat_map(|i| [Some(i.start), i.end])
        .flatten()
        .collect();
    let target = ((px1 - px0) / 90.0).clamp(2.0, 10.0) as usize;
    let (lo, hi, ticks) = domain(&t.x, &xs, false, target);
    let xm = Map::new(lo, hi, t.x.scale == Scale::Log10, px0, px1);
    let (mut body, mut y) = (String::new(), 8.0);
    for lane in &t.lanes {
        let placed: Vec<Placed> = lane
            .items
            .iter()
            .filter_map(|i| place(i, &xm, w - 2.0))
            .collect();
        let rows = assign_rows(
            &placed.iter().map(|p| p.span).collect::<Vec<_>>(),
            usize::MAX,
        );
        line(
            &mut body,
            4.0,
            y,
            px1,
            y,
            r##" class="lane" stroke="#ddd""##,
        );
        let attrs = r#" class="lane-label""#;
        text(&mut body, 6.0, y + 7.0 + ROW_H / 2.0, attrs, &lane.name);
        for (p, r) in placed.iter().zip(&rows) {
            let (top, c) = (y + 3.0 + ROW_H * *r as f64, p.item.color);
            let mid = top + ROW_H / 2.0;
            if p.window {
                let attrs = format!(r#" rx="3" fill="{c}" fill-opacity="0.3" stroke="{c}""#);
                rect(&mut body, p.x0, top + 2.0, p.x1 - p.x0, ROW_H - 4.0, &attrs);
            } else {
                let (x, t, b) = (P((p.x0 + p.x1) / 2.0), P(mid - 5.0), P(mid + 5.0));
                let (l, r, m) = (P(p.x0), P(p.x1), P(mid));
                out!(body, r#"<path d="M{x} {t}L{r} {m}L{x} {b}L{l} {m}Z""#);
                out!(body, r#" fill="{c}"/>"#);
            }
            let attrs = format!(r#" class="item-label" text-anchor="{}""#, p.anchor);
            text(&mut body, p.lx, mid + 4.0, &attrs, &p.item.label);
        }
        y += ROW_H * rows.iter().map(|r| r + 1).max().unwrap_or(1) as f64 + 6.0;
    }
    let mut o = svg_open(&t.title, &t.desc, w, y + 44.0);
    o.push_str(&x_grid(&xm, &ticks, 8.0, y));
    o.push_str("</g>");
    // Text in the lanes inherits its fallback size and colour from one group.
    out!(o, r##"<g font-size="11" fill="#222">{body}</g>"##);
    x_axis(&mut o, &xm, &ticks, &t.x, y);
    let head = ["lane", "start", "end", "label"].map(String::from);
    let f = &t.x.format;
    let cell = |v: Option<f64>| v.map(|v| format_value(v, f)).unwrap_or_default();
    let rows: Vec<Vec<String>> = t
        .lanes
        .iter()
        .flat_map(|l| l.items.iter().map(move |i| (l, i)))
        .map(|(l, i)| {
            vec![
                l.name.clone(),
                cell(Some(i.start)),
                cell(i.end),
                i.label.clone(),
            ]
        })
        .collect();
    finish(o, &head, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, mark: Mark, points: &[(f64, Option<f64>)]) -> Series {
        Series::new(name, PALETTE[1], mark, points.to_vec())
    }

    fn chart(series: Vec<Series>) -> Chart {
        let x = Axis::new("time since start", TickFormat::Duration);
        let y = Axis::new("queries per 10 s", TickFormat::Number);
        let mut c = Chart::new("Load", "Queries per interval.", x, y);
        c.series = series;
        c
    }

    fn clean(s: &str) {
        assert!(!s.contains("NaN") && !s.contains("inf"), "{s}");
    }

    /// The y attribute of the `<text>` element whose content is `label`.
    fn text_y(svg: &str, label: &str) -> String {
        let end = svg.find(&format!(">{label}</text>")).expect("label drawn");
        let el = &svg[svg[..end].rfind("<text").expect("text element")..end];
        let y = &el[el.find(" y=\"").expect("y") + 4..];
        y[..y.find('"').expect("quote")].to_string()
    }

    #[test]
    fn renders_structure() {
        let pts: Vec<_> = (0..20)
            .map(|i| (f64::from(i) * 10.0, Some(f64::from(i * i))))
            .collect();
        let mut c = chart(vec![series("served", Mark::Line, &pts)]);
        let quota = Rule {
            value: 200.0,
            label: "quota".into(),
            vertical: false,
        };
        c.rules.push(quota);
        let s = render(&c);
        assert!(s.starts_with("<figure") && s.ends_with("</figure>"));
        for needle in [
            "<title",
            "<desc",
            ">time since start</text>",
            ">queries per 10 s</text>",
            "rotate(-90)",
            "<details>",
            "<table",
            ">0:30</text>",
            ">served</text>",
            "class=\"direct-label\"",
            ">quota</text>",
        ] {
            assert!(s.contains(needle), "missing {needle}");
        }
        clean(&s);
        // Ids are stable from run to run but differ between charts.
        assert_eq!(s, render(&c));
        let id = |s: &str| s[s.find("<title id=").expect("id")..][..30].to_string();
        c.title = "Other".into();
        assert_ne!(id(&s), id(&render(&c)));
    }

    #[test]
    fn degenerate_inputs_stay_finite() {
        let zeros: Vec<_> = (0..5).map(|i| (f64::from(i), Some(0.0))).collect();
        let odd = [
            (f64::NAN, Some(1.0)),
            (1.0, Some(f64::INFINITY)),
            (2.0, None),
        ];
        let cases = vec![
            vec![],
            vec![series("empty", Mark::Line, &[])],
            vec![series("zero", Mark::Step, &zeros)],
            vec![series("one", Mark::Line, &[(3.0, Some(7.0))])],
            vec![
                series("a", Mark::StackedArea, &zeros),
                series("b", Mark::StackedArea, &zeros),
            ],
            vec![series("odd", Mark::Points, &odd)],
        ];
        for series in cases {
            let mut c = chart(series);
            clean(&render(&c));
            (c.x.scale, c.y.scale) = (Scale::Log10, Scale::Log10);
            clean(&render(&c));
            (c.y.min, c.y.max) = (Some(5.0), Some(5.0));
            clean(&render(&c));
        }
        let pts = [
            (0.0, Some(0.0)),
            (1.0, Some(-3.0)),
            (2.0, Some(10.0)),
            (3.0, Some(1e3)),
        ];
        let mut c = chart(vec![series("log", Mark::Line, &pts)]);
        c.y.scale = Scale::Log10;
        let s = render(&c);
        clean(&s);
        assert!(s.contains(">1k</text>") && s.contains(">10</text>"));
        let x = Axis::new("time", TickFormat::Duration);
        let (title, desc, lanes) = ("t".into(), "d".into(), vec![]);
        clean(&render_timeline(&Timeline {
            title,
            desc,
            x,
            lanes,
            width: 760,
        }));
    }

    #[test]
    fn escapes_text() {
        let escaped = "&lt;a href=&quot;x&quot;&gt;&amp;&apos;";
        assert_eq!(escape("<a href=\"x\">&'\u{1}"), escaped);
        let mut c = chart(vec![series("<script>", Mark::Line, &[(0.0, Some(1.0))])]);
        c.title = "a & b".into();
        let s = render(&c);
        assert!(!s.contains("<script>") && s.contains("&lt;script&gt;"));
        assert!(s.contains("a &amp; b"));
    }

    #[test]
    fn nice_ticks_step_by_1_2_5_and_cover() {
        let ranges = [
            (0.0, 97.0),
            (0.013, 0.87),
            (-3.2, 41.0),
            (1234.0, 98765.0),
            (5.0, 5.0),
        ];
        for (lo, hi) in ranges.into_iter().chain([(0.0, 0.0)]) {
            let t = nice_ticks(lo, hi, 5);
            assert!(t.len() >= 2 && t[0] <= lo && t[t.len() - 1] >= hi, "{t:?}");
            let step = t[1] - t[0];
            let m = step / 10f64.powf(step.log10().floor());
            assert!(
                [1.0, 2.0, 5.0].iter().any(|k| (m - k).abs() < 1e-6),
                "{step}"
            );
            assert!(
                t.windows(2)
                    .all(|w| ((w[1] - w[0]) - step).abs() < step * 1e-6)
            );
        }
        assert_eq!(nice_ticks(0.0, 1.0, 5), [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(
            ticks_for(0.0, 100.0, 4, &TickFormat::Duration),
            [0.0, 30.0, 60.0, 90.0, 120.0]
        );
        assert!(nice_ticks(f64::NAN, 1.0, 5).is_empty());
    }

    #[test]
    fn formats_ticks() {
        let f =
            |v: &[f64], f: TickFormat| v.iter().map(|v| format_tick(*v, &f)).collect::<Vec<_>>();
        let d = f(
            &[90.0, 3725.0, 0.0, 30.0, 3600.0, 2.5],
            TickFormat::Duration,
        );
        assert_eq!(d, ["1:30", "1:02:05", "0:00", "0:30", "1:00:00", "0:02.5"]);
        let n = f(
            &[0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 2.5e6, 0.0, f64::NAN],
            TickFormat::Number,
        );
        assert_eq!(n, ["0.1", "1", "10", "100", "1k", "10k", "2.5M", "0", ""]);
        assert_eq!(f(&[1.0, 0.05], TickFormat::Percent), ["100%", "5%"]);
        assert_eq!(f(&[2.0, 1.5], TickFormat::Multiplier), ["2×", "1.5×"]);
    }

    #[test]
    fn table_lists_own_values_and_cuts_long_series() {
        let a = series("a", Mark::StackedArea, &[(0.0, Some(1.0))]);
        let b = series("b", Mark::StackedArea, &[(0.0, Some(2.0))]);
        let s = render(&chart(vec![a, b]));
        assert!(s.contains("<td>2</td>") && !s.contains("<td>3</td>"));
        let long: Vec<_> = (0..1000).map(|i| (f64::from(i), Some(1.0))).collect();
        let s = render(&chart(vec![series("long", Mark::Line, &long)]));
        assert!(s.contains("first 400 of 1000 rows"));
        assert_eq!(s.matches("<tr>").count(), 401);
    }

    #[test]
    fn overlapping_labels_are_staggered() {
        let band = |l: &str| Band {
            x0: 10.0,
            x1: 20.0,
            label: l.into(),
            color: PALETTE[6],
        };
        let mut c = chart(vec![]);
        c.bands = vec![band("deploy"), band("failover")];
        let s = render(&c);
        assert_ne!(text_y(&s, "deploy"), text_y(&s, "failover"));
        let item = |start, end, label: &str| Item {
            start,
            end: Some(end),
            label: label.into(),
            color: PALETTE[2],
        };
        let items = vec![
            item(0.0, 60.0, "alpha"),
            item(30.0, 90.0, "beta"),
            item(45.0, 46.0, "gamma"),
        ];
        let lanes = vec![Lane {
            name: "node-1".into(),
            items,
        }];
        let x = Axis::new("time", TickFormat::Duration);
        let (title, desc) = ("Faults".into(), "Fault windows.".into());
        let s = render_timeline(&Timeline {
            title,
            desc,
            x,
            lanes,
            width: 760,
        });
        let ys = ["alpha", "beta", "gamma"].map(|l| text_y(&s, l));
        assert!(ys[0] != ys[1] && ys[1] != ys[2] && ys[0] != ys[2], "{ys:?}");
        assert!(s.starts_with("<figure") && s.contains("<title") && s.contains("<details>"));
        assert!(s.contains(">node-1</text>") && s.contains(">lane</th>"));
        clean(&s);
    }
}
