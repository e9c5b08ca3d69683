//! Capacity-planning math: the knee of a load ladder and a Universal Scalability Law (USL) fit.
//!
//! The knee is the first rung that breaks [`KNEE_RULE`]; the power knee (argmax of X/R) is a
//! cross-check. The USL, X(N) = λN / (1 + σ(N−1) + κN(N−1)), is fitted by a small hand-written
//! projected Levenberg–Marquardt, because three bounded parameters do not justify pulling in an
//! optimisation crate.

/// One rung of a load ladder, one seed.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Rung {
    /// The load multiplier of this rung.
    pub load: f64,
    /// Queries offered per second.
    pub offered_per_s: f64,
    /// Queries answered successfully per second.
    pub goodput_per_s: f64,
    /// The 99th-percentile latency in milliseconds, when measured.
    pub p99_ms: Option<f64>,
    /// Time-averaged queries in the system (Little's N), when measured.
    pub in_system: Option<f64>,
}

/// The printed knee rule.
pub const KNEE_RULE: &str =
    "the first load where goodput < 0.9 × offered, or p99 > 2 × p99 at the lowest load";

/// What x means when it is the time-averaged number of queries in the system.
pub const X_IS_IN_SYSTEM: &str = "queries in the system (Little's N)";
/// What x means when it is the load multiplier.
pub const X_IS_LOAD: &str = "load multiplier";

// The thresholds of KNEE_RULE; its text and the trigger texts spell them out, so change all three.
const GOODPUT_FRACTION: f64 = 0.9;
const P99_FACTOR: f64 = 2.0;

/// The knee of one seed's ladder.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Knee {
    /// The load of the first rung that breaks the rule.
    pub load: f64,
    /// The rung before it, so the knee reads "between previous and load".
    pub previous: Option<f64>,
    /// Which clause fired, with its numbers.
    pub trigger: String,
}

/// Formats a load multiplier without needless decimals: 0.5, 1, 2, 4.
fn fmt_load(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Formats a rate or latency: one decimal, or three below 1 so that small values do not vanish.
fn fmt_val(v: f64) -> String {
    let digits = if v.abs() >= 1.0 { 1 } else { 3 };
    format!("{v:.digits$}")
}

/// Formats a latency in ms: `840 ms` under 10 s, else `12.3 s`.
fn fmt_ms(ms: f64) -> String {
    if ms < 10_000.0 {
        format!("{} ms", fmt_val(ms))
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

/// The p99 at the lowest load, if it is usable as a baseline.
fn base_p99(rungs: &[Rung]) -> Option<f64> {
    rungs.first()?.p99_ms.filter(|p| p.is_finite() && *p > 0.0)
}

/// Knee for one seed's ladder (rungs sorted by load ascending; caller guarantees). None if
/// nothing triggers.
pub fn knee(rungs: &[Rung]) -> Option<Knee> {
    let base = base_p99(rungs);
    let low = fmt_load(rungs.first()?.load);
    for (i, r) in rungs.iter().enumerate() {
        let trigger = if r.goodput_per_s < GOODPUT_FRACTION * r.offered_per_s {
            let (g, o) = (fmt_val(r.goodput_per_s), fmt_val(r.offered_per_s));
            format!("goodput {g}/s < 0.9 × offered {o}/s")
        } else if let (Some(b), Some(p)) = (base, r.p99_ms)
            && p > P99_FACTOR * b
        {
            format!("p99 {} > 2 × p99 at {low}× ({})", fmt_ms(p), fmt_ms(b))
        } else {
            continue;
        };
        let previous = i.checked_sub(1).map(|j| rungs[j].load);
        return Some(Knee {
            load: r.load,
            previous,
            trigger,
        });
    }
    None
}

/// The reason when there is no knee, e.g. "none up to 8×: goodput stays ≥ 0.9 × offered and
/// p99 ≤ 2 × p99 at 0.5×"; also handles "no p99 at the lowest load".
pub fn no_knee_reason(rungs: &[Rung]) -> String {
    let (Some(first), Some(last)) = (rungs.first(), rungs.last()) else {
        return "no rungs to judge".to_string();
    };
    // A caller that asks anyway still gets a true sentence rather than a false "none".
    if let Some(k) = knee(rungs) {
        return format!("knee at {}×: {}", fmt_load(k.load), k.trigger);
    }
    let (top, low) = (fmt_load(last.load), fmt_load(first.load));
    let head = format!("none up to {top}×: goodput stays ≥ 0.9 × offered");
    if base_p99(rungs).is_none() {
        return format!(
            "{head}; no p99 at the lowest load ({low}×), so the p99 clause cannot fire"
        );
    }
    let gaps = rungs
        .iter()
        .any(|r| r.p99_ms.is_none())
        .then_some(" where measured");
    format!(
        "{head} and p99 ≤ 2 × p99 at {low}×{}",
        gaps.unwrap_or_default()
    )
}

/// Cross-check: the power knee, argmax over rungs of goodput/p99 (X/R); None without p99s.
pub fn power_knee(rungs: &[Rung]) -> Option<f64> {
    let power = |r: &Rung| Some((r.goodput_per_s / r.p99_ms.filter(|p| *p > 0.0)?, r.load));
    // Reversed, so that max_by (which keeps the last of equals) keeps the lowest load on a tie.
    let powers = rungs
        .iter()
        .rev()
        .filter_map(power)
        .filter(|(x, _)| x.is_finite());
    powers
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, load)| load)
}

/// A fitted Universal Scalability Law and what follows from it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Usl {
    /// λ: throughput per unit of x without contention or coherency costs.
    pub lambda: f64,
    /// σ: the contention (serial) fraction, 0 ≤ σ < 1.
    pub sigma: f64,
    /// κ: the coherency (crosstalk) cost, κ ≥ 0; zero when negligible.
    pub kappa: f64,
    /// R² = 1 − SSE/SST of the fit.
    pub r2: f64,
    /// N* = sqrt((1−σ)/κ), where throughput peaks; None when κ≈0 (no peak).
    pub n_star: Option<f64>,
    /// The throughput at N*; None when there is no peak.
    pub x_max: Option<f64>,
    /// 1/σ; None when σ≈0.
    pub n_opt: Option<f64>,
    /// λ/σ, the Amdahl ceiling on throughput; None when σ≈0.
    pub x_roof: Option<f64>,
    /// How many points the fit used.
    pub points: usize,
    /// What x means, e.g. "queries in the system (Little's N)" or "load multiplier".
    pub x_is: String,
    /// Why the fit deserves caution, if it does.
    pub weak: Option<String>,
}

/// X(N) = λN / (1 + σ(N−1) + κN(N−1)).
pub fn usl_throughput(lambda: f64, sigma: f64, kappa: f64, n: f64) -> f64 {
    lambda * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))
}

const MAX_ITER: usize = 200;
// Clamping needs closed bounds, so λ > 0 and σ < 1 become bounds just inside them.
const LOWER: [f64; 3] = [f64::MIN_POSITIVE, 0.0, 0.0];
const UPPER: [f64; 3] = [f64::INFINITY, 1.0 - 1e-9, f64::INFINITY];
/// Below this (κ scaled by max(x)², or σ) a parameter counts as zero.
const NEGLIGIBLE: f64 = 1e-9;

/// Parameters (λ, σ, κ) and their SSE.
type Fit = ([f64; 3], f64);

/// The sum of squared residuals, or None where the model is undefined (denominator ≤ 0 for x < 1).
fn sse_of(p: [f64; 3], xs: &[f64], ys: &[f64]) -> Option<f64> {
    let mut sse = 0.0;
    for (&x, &y) in xs.iter().zip(ys) {
        let d = 1.0 + p[1] * (x - 1.0) + p[2] * x * (x - 1.0);
        if d <= 0.0 {
            return None;
        }
        sse += (y - p[0] * x / d).powi(2);
    }
    sse.is_finite().then_some(sse)
}

/// Solves a 3×3 system by Cramer's rule after scaling it to unit diagonal, since the columns for
/// λ, σ and κ differ by many orders of magnitude; None when it is singular. LM's acceptance test
/// rejects a step spoilt by ill-conditioning, so this need not be the most stable solver.
fn solve3(m: [[f64; 3]; 3], b: [f64; 3]) -> Option<[f64; 3]> {
    let d: [f64; 3] = std::array::from_fn(|i| m[i][i].sqrt());
    let det = |c: &dyn Fn(usize, usize) -> f64| {
        c(0, 0) * (c(1, 1) * c(2, 2) - c(1, 2) * c(2, 1))
            - c(0, 1) * (c(1, 0) * c(2, 2) - c(1, 2) * c(2, 0))
            + c(0, 2) * (c(1, 0) * c(2, 1) - c(1, 1) * c(2, 0))
    };
    let scaled = |i: usize, k: usize| m[i][k] / (d[i] * d[k]);
    let whole = det(&scaled);
    // The finiteness check also rejects the NaN of a zero or non-finite diagonal.
    if !whole.is_finite() || whole.abs() <= 1e-14 {
        return None;
    }
    let out: [f64; 3] = std::array::from_fn(|j| {
        let column = |i: usize, k: usize| if k == j { b[i] / d[i] } else { scaled(i, k) };
        det(&column) / whole / d[j]
    });
    out.iter().all(|v| v.is_finite()).then_some(out)
}

/// Projected Levenberg–Marquardt from one start, κ held fixed unless `fit_kappa`: returns
/// (params, SSE, converged).
fn lm(mut p: [f64; 3], xs: &[f64], ys: &[f64], fit_kappa: bool) -> ([f64; 3], f64, bool) {
    let Some(mut sse) = sse_of(p, xs, ys) else {
        return (p, f64::INFINITY, false);
    };
    // Typical magnitudes, so that "a tiny step" means the same for all three parameters.
    let x_top = xs.iter().fold(0.0, |a: f64, &b| a.max(b));
    let scale = [p[0], 1e-3, 1e-3 / (x_top * x_top)];
    // An exact fit stops here rather than chasing rounding noise.
    let floor = 1e-28 * ys.iter().map(|y| y * y).sum::<f64>();
    let mut mu = 1e-3;
    for _ in 0..MAX_ITER {
        if sse <= floor {
            return (p, sse, true);
        }
        let (mut a, mut g) = ([[0.0; 3]; 3], [0.0; 3]);
        for (&x, &y) in xs.iter().zip(ys) {
            let d = 1.0 + p[1] * (x - 1.0) + p[2] * x * (x - 1.0);
            let (q, r) = (p[0] * x * (x - 1.0) / (d * d), y - p[0] * x / d);
            let j = [x / d, -q, -q * x];
            for ((gi, ai), ji) in g.iter_mut().zip(&mut a).zip(j) {
                *gi += ji * r;
                ai.iter_mut().zip(j).for_each(|(aik, jk)| *aik += ji * jk);
            }
        }
        // A parameter on its bound whose descent direction points outward is held there, so that
        // clamping does not swallow the step for the others.
        let held: [bool; 3] = std::array::from_fn(|i| {
            (i == 2 && !fit_kappa)
                || (p[i] <= LOWER[i] && g[i] <= 0.0)
                || (p[i] >= UPPER[i] && g[i] >= 0.0)
        });
        loop {
            let m = std::array::from_fn(|i| {
                std::array::from_fn(|k| match (held[i] || held[k], i == k) {
                    (true, diagonal) => f64::from(u8::from(diagonal)),
                    (false, true) => a[i][i] * (1.0 + mu),
                    (false, false) => a[i][k],
                })
            });
            let rhs = std::array::from_fn(|i| if held[i] { 0.0 } else { g[i] });
            let try_step = |s: [f64; 3]| {
                let t: [f64; 3] = std::array::from_fn(|i| (p[i] + s[i]).clamp(LOWER[i], UPPER[i]));
                Some((t, sse_of(t, xs, ys)?))
            };
            match solve3(m, rhs).and_then(try_step) {
                Some((t, s)) if s < sse => {
                    let tiny_step =
                        (0..3).all(|i| (t[i] - p[i]).abs() <= 1e-10 * (p[i].abs() + scale[i]));
                    let tiny_gain = sse - s <= 1e-12 * sse;
                    (p, sse, mu) = (t, s, (mu / 10.0).max(1e-12));
                    if tiny_step || tiny_gain {
                        return (p, sse, true);
                    }
                    break;
                }
                _ => {
                    mu *= 10.0;
                    // No damped step lowers the SSE: this is a minimum to working precision.
                    if mu > 1e12 {
                        return (p, sse, true);
                    }
                }
            }
        }
    }
    (p, sse, false)
}

/// Fit by bounded nonlinear least squares: λ > 0, 0 ≤ σ < 1, κ ≥ 0.
///
/// Only points with finite positive x and y are used. Err(reason) with fewer than 4 such points,
/// fewer than 3 distinct x values, or when no start converges. `x_is` says Little's N (the usual
/// x); a caller fitting against the load multiplier sets it to [`X_IS_LOAD`].
pub fn fit_usl(xs: &[f64], ys: &[f64]) -> Result<Usl, String> {
    if xs.len() != ys.len() {
        return Err(format!("{} x values but {} y values", xs.len(), ys.len()));
    }
    let ok = |v: f64| v.is_finite() && v > 0.0;
    let pairs = xs.iter().zip(ys).filter(|(x, y)| ok(**x) && ok(**y));
    let (xs, ys): (Vec<f64>, Vec<f64>) = pairs.map(|(x, y)| (*x, *y)).unzip();
    let n = xs.len();
    if n < 4 {
        return Err(format!("{n} usable points; the fit needs 4"));
    }
    let mut sorted = xs.clone();
    sorted.sort_by(f64::total_cmp);
    let apart = |w: &&[f64]| w[1] > w[0] * (1.0 + 1e-9);
    let distinct = 1 + sorted.windows(2).filter(apart).count();
    if distinct < 3 {
        return Err(format!("{distinct} distinct x values; the fit needs 3"));
    }
    let x_top = sorted[n - 1];
    // A part per million of RMS residual: far below measurement noise, far above rounding.
    let tiny = 1e-12 * ys.iter().map(|y| y * y).sum::<f64>();
    let no_peak = |p: [f64; 3]| p[2] * x_top * x_top < NEGLIGIBLE;
    let (mut best, mut best_flat): (Option<Fit>, Option<Fit>) = (None, None);
    for sigma in [0.0, 0.05, 0.3] {
        // None holds κ at zero, so that the no-peak model always gets a fit of its own.
        for k in [None, Some(0.0), Some(1e-4), Some(1e-2), Some(1.0)] {
            let kappa = k.unwrap_or(0.0) / (x_top * x_top);
            // Given σ and κ the model is linear in λ, so each start takes its least-squares λ.
            let unit = |x: &f64| usl_throughput(1.0, sigma, kappa, *x);
            let f: Vec<f64> = xs.iter().map(unit).collect();
            let fy: f64 = f.iter().zip(&ys).map(|(f, y)| f * y).sum();
            let lambda = fy / f.iter().map(|f| f * f).sum::<f64>();
            if !ok(lambda) {
                continue;
            }
            let (p, sse, converged) = lm([lambda, sigma, kappa], &xs, &ys, k.is_some());
            if converged && best.is_none_or(|(_, b)| sse < b) {
                best = Some((p, sse));
            }
            if converged && no_peak(p) && best_flat.is_none_or(|(_, b)| sse < b) {
                best_flat = Some((p, sse));
            }
        }
    }
    let Some((mut p, best_sse)) = best else {
        return Err(format!("no start converged in {MAX_ITER} iterations"));
    };
    // A peak that improves the fit by less than a part in a million is not evidence of one: with
    // σ pinned at its bound, a trace of κ can flatten a curve a little further and invent a peak.
    if let Some((flat, _)) = best_flat.filter(|(_, s)| *s <= best_sse * (1.0 + 1e-6) + tiny) {
        p = flat;
    }
    let lambda = p[0];
    let sigma = if p[1] < NEGLIGIBLE { 0.0 } else { p[1] };
    let kappa = if no_peak(p) { 0.0 } else { p[2] };
    let sse = sse_of([lambda, sigma, kappa], &xs, &ys).unwrap_or(f64::INFINITY);
    let mean = ys.iter().sum::<f64>() / n as f64;
    let sst: f64 = ys.iter().map(|y| (y - mean).powi(2)).sum();
    // Flat data has SST = 0: R² is then 1 for an exact fit and 0 otherwise.
    let exact = f64::from(u8::from(sse <= tiny));
    let r2 = if sst > 0.0 { 1.0 - sse / sst } else { exact };
    // With κ = 0 the curve rises to its Amdahl roof and never turns down: there is no peak.
    let n_star = (kappa > 0.0).then(|| ((1.0 - sigma) / kappa).sqrt());
    Ok(Usl {
        lambda,
        sigma,
        kappa,
        r2,
        n_star,
        x_max: n_star.map(|s| usl_throughput(lambda, sigma, kappa, s)),
        n_opt: (sigma > 0.0).then(|| 1.0 / sigma),
        x_roof: (sigma > 0.0).then(|| lambda / sigma),
        points: n,
        x_is: X_IS_IN_SYSTEM.to_string(),
        weak: (n < 6).then(|| format!("{n} points; usl4j and the R usl package want 6 or more")),
    })
}

/// Fits goodput against Little's N when every rung has it, else against the load multiplier.
pub fn fit_usl_rungs(rungs: &[Rung]) -> Result<Usl, String> {
    let little = !rungs.is_empty() && rungs.iter().all(|r| r.in_system.is_some_and(|n| n > 0.0));
    let x = |r: &Rung| r.in_system.filter(|_| little).unwrap_or(r.load);
    let (xs, ys): (Vec<f64>, Vec<f64>) = rungs.iter().map(|r| (x(r), r.goodput_per_s)).unzip();
    let x_is = if little { X_IS_IN_SYSTEM } else { X_IS_LOAD }.to_string();
    fit_usl(&xs, &ys).map(|u| Usl { x_is, ..u })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAMBDA: f64 = 10.0;
    const SIGMA: f64 = 0.05;
    const KAPPA: f64 = 0.002;

    /// A ladder at 0.5, 1, 2, … offering 20/s per unit of load, with these goodput shares and p99s.
    fn ladder(shares: &[f64], p99s: &[Option<f64>]) -> Vec<Rung> {
        let rung = |(i, (s, p)): (usize, (&f64, &Option<f64>))| {
            let (load, in_system) = (0.5 * 2f64.powi(i as i32), None);
            let (offered_per_s, p99_ms) = (20.0 * load, *p);
            let goodput_per_s = s * offered_per_s;
            Rung {
                load,
                offered_per_s,
                goodput_per_s,
                p99_ms,
                in_system,
            }
        };
        shares.iter().zip(p99s).enumerate().map(rung).collect()
    }

    /// x = 1, 2, 4, … with `count` points, or half steps (1, √2, 2, …) when `halves`.
    fn grid(count: i32, halves: bool) -> Vec<f64> {
        let step = if halves { 0.5 } else { 1.0 };
        (0..count).map(|i| 2f64.powf(step * f64::from(i))).collect()
    }

    /// Fits exact model data times (1 + noise·sin(2.4 i)), and checks that nothing is NaN.
    fn fit(xs: &[f64], (l, s, k): (f64, f64, f64), noise: f64) -> Usl {
        let y = |(i, x): (usize, &f64)| {
            usl_throughput(l, s, k, *x) * (1.0 + noise * (2.4 * i as f64).sin())
        };
        let u = fit_usl(xs, &xs.iter().enumerate().map(y).collect::<Vec<_>>()).unwrap();
        let opts = [u.n_star, u.x_max, u.n_opt, u.x_roof].into_iter().flatten();
        let mut all = opts.chain([u.lambda, u.sigma, u.kappa, u.r2]);
        assert!(all.all(f64::is_finite), "{u:?}");
        u
    }

    /// Asserts each (got, want) pair agrees within a relative tolerance.
    fn assert_near(u: &Usl, pairs: &[(f64, f64)], tol: f64) {
        for (got, want) in pairs {
            let near = (got - want).abs() <= tol * want.abs();
            assert!(near, "{got} vs {want} in {u:?}");
        }
    }

    #[test]
    fn knee_fires_on_the_goodput_clause() {
        let r = ladder(&[1.0, 1.0, 0.95, 0.8, 0.5], &[Some(10.0); 5]);
        let k = knee(&r).unwrap();
        assert_eq!((k.load, k.previous), (4.0, Some(2.0)));
        assert_eq!(k.trigger, "goodput 64.0/s < 0.9 × offered 80.0/s");
        assert_eq!(no_knee_reason(&r), format!("knee at 4×: {}", k.trigger));
        let k = knee(&ladder(&[0.5, 0.4], &[None, None])).unwrap();
        assert_eq!((k.load, k.previous), (0.5, None));
    }

    #[test]
    fn knee_fires_on_the_p99_clause() {
        let p = [Some(10.0), Some(12.0), Some(25.0), Some(90.0), None];
        let k = knee(&ladder(&[1.0; 5], &p)).unwrap();
        assert_eq!((k.load, k.previous), (2.0, Some(1.0)));
        assert_eq!(k.trigger, "p99 25.0 ms > 2 × p99 at 0.5× (10.0 ms)");
    }

    #[test]
    fn no_knee_names_the_top_load() {
        let p = [Some(10.0), Some(11.0), Some(15.0), Some(20.0)];
        let r = ladder(&[1.0, 0.99, 0.95, 0.92], &p);
        assert_eq!(knee(&r), None);
        let want = "none up to 4×: goodput stays ≥ 0.9 × offered and p99 ≤ 2 × p99 at 0.5×";
        assert_eq!(no_knee_reason(&r), want);
        let r = ladder(&[1.0, 1.0, 1.0], &[None, Some(50.0), Some(500.0)]);
        assert_eq!(knee(&r), None);
        assert!(no_knee_reason(&r).starts_with("none up to 2×:"));
        assert!(no_knee_reason(&r).contains("no p99 at the lowest load (0.5×)"));
        assert_eq!(knee(&[]), None);
        assert_eq!(no_knee_reason(&[]), "no rungs to judge");
        let loads = [0.5, 1.0, 2.0, 4.0, 2.25, 0.125].map(fmt_load);
        assert_eq!(loads, ["0.5", "1", "2", "4", "2.25", "0.125"]);
    }

    #[test]
    fn power_knee_is_the_argmax_of_goodput_over_p99() {
        let p = [Some(10.0), Some(10.0), Some(12.0), Some(40.0), Some(400.0)];
        // Powers are 1.0, 2.0, 3.3, 1.8 and 0.2.
        let found = power_knee(&ladder(&[1.0, 1.0, 1.0, 0.9, 0.5], &p));
        assert_eq!(found, Some(2.0));
        assert_eq!(power_knee(&ladder(&[1.0; 3], &[None; 3])), None);
    }

    #[test]
    fn fit_recovers_exact_parameters() {
        let u = fit(&grid(7, false), (LAMBDA, SIGMA, KAPPA), 0.0);
        assert_eq!(u.x_is, X_IS_IN_SYSTEM);
        let n_star = ((1.0 - SIGMA) / KAPPA).sqrt();
        let want = [
            (u.lambda, LAMBDA),
            (u.sigma, SIGMA),
            (u.kappa, KAPPA),
            (u.r2, 1.0),
        ];
        assert_near(&u, &want, 1e-3);
        let derived = [
            (u.n_star.unwrap(), n_star),
            (u.n_opt.unwrap(), 20.0),
            (u.x_roof.unwrap(), 200.0),
        ];
        assert_near(&u, &derived, 1e-3);
        assert!(u.points == 7 && u.weak.is_none(), "{u:?}");
        let u = fit(&grid(5, false), (LAMBDA, SIGMA, KAPPA), 0.0);
        let want = "5 points; usl4j and the R usl package want 6 or more";
        assert_eq!(u.weak.as_deref(), Some(want));
    }

    #[test]
    fn fit_recovers_parameters_from_noisy_data() {
        // Up to ±3% of deterministic noise on 13 points from 1 to 64.
        let u = fit(&grid(13, true), (LAMBDA, SIGMA, KAPPA), 0.03);
        assert_near(
            &u,
            &[
                (u.lambda, LAMBDA),
                (u.kappa, KAPPA),
                (u.n_star.unwrap(), 21.8),
            ],
            0.3,
        );
        assert!((u.sigma - SIGMA).abs() < 0.03 && u.r2 > 0.95, "{u:?}");
    }

    #[test]
    fn amdahl_data_has_no_peak_and_linear_data_no_roof() {
        let u = fit(&grid(6, false), (5.0, 0.1, 0.0), 0.0);
        assert_eq!((u.kappa, u.n_star, u.x_max), (0.0, None, None), "{u:?}");
        assert_near(&u, &[(u.sigma, 0.1), (u.x_roof.unwrap(), 50.0)], 1e-3);
        let u = fit(&[0.5, 1.0, 1.5, 2.0, 3.0, 4.0], (7.0, 0.0, 0.0), 0.0);
        assert_eq!(
            (u.sigma, u.kappa, u.n_opt, u.x_roof),
            (0.0, 0.0, None, None)
        );
        assert_near(&u, &[(u.lambda, 7.0)], 1e-9);
        // Flat data pins σ at its bound; a trace of κ must not turn that into a peak.
        let u = fit_usl(&[1.0, 2.0, 4.0, 8.0], &[5.0; 4]).unwrap();
        assert!(u.n_star.is_none() && u.r2 == 1.0 && u.sigma > 0.99, "{u:?}");
    }

    #[test]
    fn too_few_points_or_distinct_xs_is_an_error() {
        let few = fit_usl(&[1.0, 2.0, 4.0], &[1.0, 2.0, 3.0]);
        assert!(few.unwrap_err().starts_with("3 usable points"));
        let nan = fit_usl(&[1.0, 2.0, f64::NAN, 4.0, 8.0], &[1.0, 2.0, 3.0, -1.0, 5.0]);
        assert!(nan.unwrap_err().starts_with("3 usable points"));
        let same = fit_usl(&[1.0, 1.0, 2.0, 2.0], &[1.0, 1.1, 2.0, 2.1]);
        assert!(same.unwrap_err().starts_with("2 distinct"));
        assert!(fit_usl(&[1.0, 2.0], &[1.0]).is_err());
    }

    #[test]
    fn rungs_fit_against_littles_n_when_every_rung_has_it() {
        let mut rungs = ladder(&[1.0; 6], &[None; 6]);
        for r in &mut rungs {
            r.in_system = Some(3.0 * r.load);
            r.goodput_per_s = usl_throughput(LAMBDA, SIGMA, KAPPA, 3.0 * r.load);
        }
        let u = fit_usl_rungs(&rungs).unwrap();
        assert_eq!(u.x_is, X_IS_IN_SYSTEM);
        assert_near(&u, &[(u.lambda, LAMBDA), (u.kappa, KAPPA)], 1e-3);
        rungs[2].in_system = None;
        let json = serde_json::to_string(&fit_usl_rungs(&rungs).unwrap()).unwrap();
        assert!(json.contains(r#""x_is":"load multiplier""#), "{json}");
    }
}
