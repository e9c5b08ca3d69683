//! Swarm faults (Groce et al., "Swarm Testing", ISSTA 2012): a scenario's `swarm:` section
//! gives fault kinds with ranges for their parameters, each kind switched on for a seed with
//! its probability `p`, so that different seeds stress different combinations; system tuning
//! knobs may vary the same way. Each seed draws one concrete schedule from its own sub-seeds
//! (one stream per kind, so adding a kind does not reshuffle the others' draws), and the run
//! then goes on as if the file had listed those faults.
//!
//! A parameter is written as a fixed value, `[lo, hi]` (uniform; numbers or durations),
//! `{log: [lo, hi]}` (log-uniform, so short and mild values come up most) or
//! `{one_of: [a, b, ...]}`.

use std::time::Duration;

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::input::fault::Fault;
use crate::rng::sub_seed;

/// A scenario's `swarm:` section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Swarm {
    /// The share of seeds that draw no fault at all, as a control: failures there come from
    /// the traffic alone. Default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub control: f64,
    /// Fault kinds: `action`, `p` (the chance the kind is on for a seed, default 0.5),
    /// `count` (how many of it when on: `n` or `[lo, hi]`, default 1), and the fault's own
    /// keys (`at`, `for`, `api`, `rate_per_s`, ...), each fixed or drawn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<Map<String, Value>>,
    /// `system.tuning` knobs drawn per seed, each fixed or drawn; they override the file's.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub tuning: Map<String, Value>,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// An error in the section, with the dotted key of the entry it is about.
pub type KeyedError = (String, String);

/// What one seed drew.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drawn {
    /// Whether the seed fell in the control share (no faults).
    pub control: bool,
    /// The kinds switched on, by index in `swarm.faults`.
    pub kinds_on: Vec<usize>,
    /// The concrete faults.
    pub faults: Vec<Fault>,
    /// The concrete tuning knobs.
    pub tuning: Map<String, Value>,
}

/// The keys of a swarm fault that are not the fault's own.
const SWARM_KEYS: [&str; 2] = ["p", "count"];

/// A bound of a range: an integer, a number, or a duration.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Bound {
    Int(i64),
    Num(f64),
    Dur(Duration),
}

impl Bound {
    fn of(v: &Value) -> Option<Self> {
        match v {
            Value::Number(n) => n
                .as_i64()
                .map(Bound::Int)
                .or_else(|| n.as_f64().map(Bound::Num)),
            Value::String(s) => crate::span::parse(s).ok().map(Bound::Dur),
            _ => None,
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Bound::Int(i) => i as f64,
            Bound::Num(x) => x,
            Bound::Dur(d) => d.as_secs_f64() * 1000.0,
        }
    }

    /// A value of this bound's kind, from `x` on the `as_f64` scale.
    fn value(self, x: f64) -> Value {
        match self {
            Bound::Int(_) => Value::from(x.round() as i64),
            Bound::Num(_) => Value::from((x * 1000.0).round() / 1000.0),
            Bound::Dur(_) => Value::from(
                humantime::format_duration(Duration::from_millis(x.round().max(0.0) as u64))
                    .to_string(),
            ),
        }
    }
}

/// How a parameter is drawn.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Fixed(Value),
    OneOf(Vec<Value>),
    Uniform(Bound, Bound),
    Log(Bound, Bound),
}

/// Reads a parameter's shape; `key` is the parameter's name, for errors.
fn shape(key: &str, v: &Value) -> Result<Shape, String> {
    let range = |a: &Value, b: &Value, log: bool| -> Result<(Bound, Bound), String> {
        let (Some(lo), Some(hi)) = (Bound::of(a), Bound::of(b)) else {
            return Err(format!(
                "`{key}`: a range takes two numbers or two durations, not {a} and {b}"
            ));
        };
        let same = matches!(
            (lo, hi),
            (Bound::Dur(_), Bound::Dur(_))
                | (Bound::Int(_) | Bound::Num(_), Bound::Int(_) | Bound::Num(_))
        );
        if !same {
            return Err(format!(
                "`{key}`: both ends of a range are numbers, or both durations"
            ));
        }
        if lo.as_f64() > hi.as_f64() {
            return Err(format!("`{key}`: the range runs backwards ({a} > {b})"));
        }
        if log && lo.as_f64() <= 0.0 {
            return Err(format!("`{key}`: a log-uniform range starts above 0"));
        }
        Ok((lo, hi))
    };
    match v {
        Value::Object(m) if m.len() == 1 && m.contains_key("one_of") => match &m["one_of"] {
            Value::Array(a) if !a.is_empty() => Ok(Shape::OneOf(a.clone())),
            _ => Err(format!(
                "`{key}`: one_of takes a list of at least one value"
            )),
        },
        Value::Object(m) if m.len() == 1 && m.contains_key("log") => match &m["log"] {
            Value::Array(a) if a.len() == 2 => {
                let (lo, hi) = range(&a[0], &a[1], true)?;
                Ok(Shape::Log(lo, hi))
            }
            _ => Err(format!("`{key}`: log takes [lo, hi]")),
        },
        // Two hosts are a fixed pair, not a range.
        Value::Array(a) if a.len() == 2 && key != "between" => {
            let (lo, hi) = range(&a[0], &a[1], false)?;
            Ok(Shape::Uniform(lo, hi))
        }
        other => Ok(Shape::Fixed(other.clone())),
    }
}

impl Shape {
    fn draw(&self, rng: &mut ChaCha8Rng) -> Value {
        match self {
            Shape::Fixed(v) => v.clone(),
            Shape::OneOf(a) => a[rng.random_range(0..a.len())].clone(),
            Shape::Uniform(lo, hi) => {
                if let (Bound::Int(a), Bound::Int(b)) = (lo, hi) {
                    return Value::from(rng.random_range(*a..=*b));
                }
                let u: f64 = rng.random_range(0.0..=1.0);
                lo.value(lo.as_f64() + u * (hi.as_f64() - lo.as_f64()))
            }
            Shape::Log(lo, hi) => {
                let u: f64 = rng.random_range(0.0..=1.0);
                let (a, b) = (lo.as_f64().ln(), hi.as_f64().ln());
                lo.value((a + u * (b - a)).exp())
            }
        }
    }

    /// The values at the ends: both ends of a range, every choice of a list.
    fn ends(&self) -> Vec<Value> {
        match self {
            Shape::Fixed(v) => vec![v.clone()],
            Shape::OneOf(a) => a.clone(),
            Shape::Uniform(lo, hi) | Shape::Log(lo, hi) => {
                vec![lo.value(lo.as_f64()), hi.value(hi.as_f64())]
            }
        }
    }
}

/// One fault kind, read.
struct Kind {
    p: f64,
    count: Shape,
    params: Vec<(String, Shape)>,
}

fn kind(i: usize, m: &Map<String, Value>) -> Result<Kind, String> {
    let p = match m.get("p") {
        None => 0.5,
        Some(v) => v
            .as_f64()
            .filter(|p| (0.0..=1.0).contains(p))
            .ok_or_else(|| format!("`p` is a chance between 0 and 1, not {v}"))?,
    };
    if !m.contains_key("action") {
        return Err(format!("swarm fault {i} needs `action`"));
    }
    let count = match m.get("count") {
        None => Shape::Fixed(Value::from(1)),
        Some(v) => match shape("count", v)? {
            s @ (Shape::Fixed(Value::Number(_)) | Shape::Uniform(Bound::Int(_), Bound::Int(_))) => {
                s
            }
            _ => return Err("`count` is a whole number or [lo, hi] of them".into()),
        },
    };
    let mut params = Vec::new();
    for (k, v) in m {
        if !SWARM_KEYS.contains(&k.as_str()) {
            params.push((k.clone(), shape(k, v)?));
        }
    }
    Ok(Kind { p, count, params })
}

/// A fault from drawn parameters.
fn fault(params: Map<String, Value>) -> Result<Fault, String> {
    serde_json::from_value(Value::Object(params)).map_err(|e| e.to_string())
}

impl Swarm {
    /// The faults each kind can give at the ends of its ranges, for checking before any run:
    /// per kind, one fault with every parameter at its low end, one at its high end, and one
    /// per choice of each list. Errors name the kind's index.
    pub fn extremes(&self) -> Result<Vec<(usize, Vec<Fault>)>, KeyedError> {
        let mut out = Vec::new();
        for (i, m) in self.faults.iter().enumerate() {
            let key = format!("swarm.faults.{i}");
            let k = kind(i, m).map_err(|e| (key.clone(), e))?;
            let mut faults = Vec::new();
            for end in 0..2 {
                let params: Map<String, Value> = k
                    .params
                    .iter()
                    .map(|(name, s)| {
                        let ends = s.ends();
                        (name.clone(), ends[end.min(ends.len() - 1)].clone())
                    })
                    .collect();
                faults.push(fault(params).map_err(|e| (key.clone(), e))?);
            }
            for (name, s) in &k.params {
                if let Shape::OneOf(choices) = s {
                    for c in choices {
                        let mut params: Map<String, Value> = k
                            .params
                            .iter()
                            .map(|(n, s)| (n.clone(), s.ends()[0].clone()))
                            .collect();
                        params.insert(name.clone(), c.clone());
                        faults.push(fault(params).map_err(|e| (key.clone(), e))?);
                    }
                }
            }
            out.push((i, faults));
        }
        for (name, v) in &self.tuning {
            shape(name, v).map_err(|e| ("swarm.tuning".to_string(), e))?;
        }
        Ok(out)
    }

    /// The tuning knobs at the ends of their ranges: low ends, then high ends.
    pub fn tuning_extremes(&self) -> Vec<Map<String, Value>> {
        (0..2)
            .map(|end| {
                self.tuning
                    .iter()
                    .filter_map(|(n, v)| {
                        let ends = shape(n, v).ok()?.ends();
                        Some((n.clone(), ends[end.min(ends.len() - 1)].clone()))
                    })
                    .collect()
            })
            .collect()
    }

    /// The concrete schedule of `seed`. Never empty outside the control share: when no kind
    /// came up, one is switched on, chosen by the seed.
    pub fn draw(&self, seed: u64) -> Result<Drawn, String> {
        let unit = |name: &str| {
            let mut rng = ChaCha8Rng::seed_from_u64(sub_seed(seed, name));
            rng.random_range(0.0..1.0)
        };
        let control = unit("swarm/control") < self.control;
        let kinds: Vec<Kind> = self
            .faults
            .iter()
            .enumerate()
            .map(|(i, m)| kind(i, m))
            .collect::<Result<_, _>>()?;
        let mut on: Vec<usize> = (0..kinds.len())
            .filter(|&i| unit(&format!("swarm/on/{i}")) < kinds[i].p)
            .collect();
        if on.is_empty() && !kinds.is_empty() {
            let mut rng = ChaCha8Rng::seed_from_u64(sub_seed(seed, "swarm/at-least-one"));
            on.push(rng.random_range(0..kinds.len()));
        }
        if control {
            on.clear();
        }
        let mut faults = Vec::new();
        for &i in &on {
            let k = &kinds[i];
            let mut rng = ChaCha8Rng::seed_from_u64(sub_seed(seed, &format!("swarm/fault/{i}")));
            let n = k.count.draw(&mut rng).as_u64().unwrap_or(1);
            for _ in 0..n {
                let params = k
                    .params
                    .iter()
                    .map(|(name, s)| (name.clone(), s.draw(&mut rng)))
                    .collect();
                faults.push(fault(params)?);
            }
        }
        faults.sort_by_key(|f| f.at.0);
        let mut rng = ChaCha8Rng::seed_from_u64(sub_seed(seed, "swarm/tuning"));
        let mut tuning = Map::new();
        for (name, v) in &self.tuning {
            tuning.insert(name.clone(), shape(name, v)?.draw(&mut rng));
        }
        Ok(Drawn {
            control,
            kinds_on: on,
            faults,
            tuning,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::fault::FaultKind;

    fn swarm(yaml: &str) -> Swarm {
        serde_saphyr::from_str(yaml).unwrap()
    }

    const TWO_KINDS: &str = "
faults:
  - { action: api.throttle, p: 0.5, at: [10s, 60s], for: { log: [1s, 30s] }, api: { one_of: [AssumeRole, GetObject] }, rate_per_s: { log: [0.5, 20] } }
  - { action: latency, p: 0.5, count: [1, 3], at: [0s, 90s], extra: [10ms, 500ms], for: 20s }
tuning:
  max_running_queries: [2, 8]
";

    #[test]
    fn seeds_draw_their_own_schedules_within_the_ranges() {
        let s = swarm(TWO_KINDS);
        let mut combinations = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let d = s.draw(seed).unwrap();
            assert_eq!(d, s.draw(seed).unwrap(), "the same seed draws the same");
            assert!(!d.faults.is_empty(), "never an empty schedule");
            combinations.insert(d.kinds_on.clone());
            for f in &d.faults {
                assert!(f.at.0 <= Duration::from_secs(90));
                if let FaultKind::ApiThrottle { rate_per_s: r, .. } = f.kind {
                    assert!((0.5..=20.0).contains(&r), "{r}");
                }
                if let Some(lasts) = f.lasts {
                    assert!(
                        lasts.0 >= Duration::from_secs(1) && lasts.0 <= Duration::from_secs(30)
                    );
                }
                if let FaultKind::Latency { extra: e } = f.kind {
                    assert!(e.0 >= Duration::from_millis(10) && e.0 <= Duration::from_millis(500));
                }
            }
            let m = d.tuning["max_running_queries"].as_i64().unwrap();
            assert!((2..=8).contains(&m));
            assert!(d.faults.windows(2).all(|w| w[0].at.0 <= w[1].at.0));
        }
        // Each kind alone, and both together.
        assert_eq!(combinations.len(), 3, "{combinations:?}");
    }

    #[test]
    fn adding_a_kind_does_not_reshuffle_the_others() {
        let one = swarm("faults:\n  - { action: latency, p: 1, at: [0s, 90s], extra: 50ms }\n");
        let two = swarm(
            "faults:\n  - { action: latency, p: 1, at: [0s, 90s], extra: 50ms }\n  - { action: caches.flush, p: 1, at: 5s }\n",
        );
        for seed in 0..8 {
            let a = one.draw(seed).unwrap().faults;
            let b = two.draw(seed).unwrap().faults;
            assert!(a.iter().all(|f| b.contains(f)));
        }
    }

    #[test]
    fn the_control_share_draws_nothing() {
        let s = swarm(&format!("control: 0.25\n{TWO_KINDS}"));
        let controls = (0..400)
            .filter(|&seed| s.draw(seed).unwrap().control)
            .count();
        assert!((60..=140).contains(&controls), "{controls}");
        let seed = (0..400)
            .find(|&seed| s.draw(seed).unwrap().control)
            .unwrap();
        assert!(s.draw(seed).unwrap().faults.is_empty());
    }

    #[test]
    fn the_ends_of_every_range_are_checked() {
        let s = swarm(TWO_KINDS);
        let ends = s.extremes().unwrap();
        assert_eq!(ends.len(), 2);
        // Low, high, and each api of the list.
        assert_eq!(ends[0].1.len(), 4);
        assert!(matches!(
            ends[0].1[1].kind,
            FaultKind::ApiThrottle { rate_per_s, .. } if rate_per_s == 20.0
        ));
        let bad = swarm("faults:\n  - { action: api.throttle, at: [60s, 10s] }\n");
        let (key, e) = bad.extremes().unwrap_err();
        assert_eq!(key, "swarm.faults.0");
        assert!(e.contains("backwards"), "{e}");
        let bad = swarm("faults:\n  - { action: latency, at: 5s, extra: 1s, rate_per_sec: 3 }\n");
        assert!(bad.extremes().unwrap_err().1.contains("rate_per_sec"));
        let bad = swarm("faults:\n  - { action: latency, at: [5s, 3], extra: 1s }\n");
        assert!(bad.extremes().unwrap_err().1.contains("both durations"));
        let bad = swarm("faults:\n  - { action: latency, p: 2, at: 5s }\n");
        assert!(bad.extremes().unwrap_err().1.contains("between 0 and 1"));
    }
}
