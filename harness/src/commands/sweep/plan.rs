//! What a sweep runs: seeds as people write them (`1..20`), shards (`2/4`), and the
//! (scenario, seed) pairs in their canonical order.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The seeds of a sweep: `A..B` (both ends included: `1..20` is twenty seeds), `A..=B`, one
/// seed `N`, or a list `1,4,9`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeds(Vec<u64>);

impl Seeds {
    /// The seeds, in the order they run.
    pub fn list(&self) -> &[u64] {
        &self.0
    }
}

/// The most seeds one sweep takes: beyond this, a typo (`1..1000000000`) is likelier than a plan.
pub const MAX_SEEDS: u64 = 1_000_000;

impl FromStr for Seeds {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let number = |t: &str| {
            t.trim()
                .parse::<u64>()
                .map_err(|_| format!("`{t}` is not a seed (a whole number ≥ 0)"))
        };
        let s = s.trim();
        if let Some((a, b)) = s.split_once("..") {
            let (a, b) = (number(a)?, number(b.strip_prefix('=').unwrap_or(b))?);
            if b < a {
                return Err(format!(
                    "`{s}` runs backwards: write the smaller seed first ({b}..{a})"
                ));
            }
            if b - a >= MAX_SEEDS {
                return Err(format!("`{s}` is more than {MAX_SEEDS} seeds"));
            }
            return Ok(Self((a..=b).collect()));
        }
        let mut seeds = Vec::new();
        for part in s.split(',') {
            let n = number(part)?;
            if seeds.contains(&n) {
                return Err(format!("seed {n} is listed twice in `{s}`"));
            }
            seeds.push(n);
        }
        Ok(Self(seeds))
    }
}

impl fmt::Display for Seeds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.0;
        let contiguous = s.windows(2).all(|w| w[1] == w[0] + 1);
        match (s.first(), s.last()) {
            (Some(a), Some(b)) if contiguous && s.len() > 1 => write!(f, "{a}..{b}"),
            _ => {
                let parts: Vec<String> = s.iter().map(u64::to_string).collect();
                write!(f, "{}", parts.join(","))
            }
        }
    }
}

/// One shard of a sweep, `I/N`: the I-th of N (from 1), as Jest and Playwright count them.
/// Shard I runs the pairs whose canonical index i has i mod N = I − 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Which one, from 1.
    pub index: u64,
    /// Of how many.
    pub count: u64,
}

impl Shard {
    /// The whole sweep.
    pub const ALL: Shard = Shard { index: 1, count: 1 };

    /// Whether the pair at canonical index `i` is this shard's.
    pub fn takes(&self, i: u64) -> bool {
        i % self.count == self.index - 1
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("`{s}` is not a shard: write I/N, the I-th of N shards, from 1/N to N/N");
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let (index, count): (u64, u64) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index == 0 || index > count {
            return Err(format!(
                "`{s}`: shards count from 1/{count} to {count}/{count}",
                count = count.max(1)
            ));
        }
        Ok(Self { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// One run of a sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Its place in the canonical order of the whole sweep: scenarios in the order given, each
    /// with every seed in order. The same in every shard.
    pub index: u64,
    /// Which scenario (its position among the sweep's scenarios).
    pub scenario: usize,
    /// The seed.
    pub seed: u64,
}

/// The jobs of `shard`, over `scenarios` scenarios and `seeds`.
pub fn jobs(scenarios: usize, seeds: &Seeds, shard: Shard) -> Vec<Job> {
    let mut out = Vec::new();
    let mut index = 0u64;
    for scenario in 0..scenarios {
        for &seed in seeds.list() {
            if shard.takes(index) {
                out.push(Job {
                    index,
                    scenario,
                    seed,
                });
            }
            index += 1;
        }
    }
    out
}

/// The scenario files of a sweep, and the names their run directories go by: the scenario's
/// `name`, with `-2`, `-3`... when two files share one.
pub fn slugs(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        let mut slug = name.clone();
        let mut k = 2;
        while out.contains(&slug) {
            slug = format!("{name}-{k}");
            k += 1;
        }
        out.push(slug);
    }
    out
}

/// Whether a sweep re-simulates `seed` of `scenario` to check its determinism: a share
/// `recheck` of runs, chosen by the seed and the scenario's name, the same on every machine.
pub fn rechecked(scenario: &str, seed: u64, recheck: f64) -> bool {
    let draw = crate::rng::sub_seed(seed, &format!("sweep/recheck/{scenario}"));
    (draw as f64 / u64::MAX as f64) < recheck
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_as_people_write_them() {
        assert_eq!("1..3".parse::<Seeds>().unwrap().list(), &[1, 2, 3]);
        assert_eq!("1..=3".parse::<Seeds>().unwrap().list(), &[1, 2, 3]);
        assert_eq!("7".parse::<Seeds>().unwrap().list(), &[7]);
        assert_eq!("4, 1,9".parse::<Seeds>().unwrap().list(), &[4, 1, 9]);
        assert_eq!("5..5".parse::<Seeds>().unwrap().list(), &[5]);
        let e = "5..2".parse::<Seeds>().unwrap_err();
        assert!(e.contains("backwards") && e.contains("2..5"), "{e}");
        assert!("a..3".parse::<Seeds>().unwrap_err().contains("`a`"));
        assert!("1,1".parse::<Seeds>().unwrap_err().contains("twice"));
        assert!("-1".parse::<Seeds>().is_err());
        assert!("0..1000000".parse::<Seeds>().is_err());
        assert_eq!("1..20".parse::<Seeds>().unwrap().to_string(), "1..20");
        assert_eq!("4,1".parse::<Seeds>().unwrap().to_string(), "4,1");
    }

    #[test]
    fn shards_count_from_one() {
        assert_eq!(
            "2/4".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 4 }
        );
        for bad in ["3/2", "0/2", "1/0", "2", "a/b", "1/2/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert!("3/2".parse::<Shard>().unwrap_err().contains("1/2 to 2/2"));
    }

    #[test]
    fn shards_split_the_pairs_and_cover_them_once() {
        let seeds: Seeds = "1..5".parse().unwrap();
        let all = jobs(3, &seeds, Shard::ALL);
        assert_eq!(all.len(), 15);
        assert_eq!(
            (all[5].index, all[5].scenario, all[5].seed),
            (5, 1, 1),
            "scenario by scenario, seeds in order"
        );
        let mut merged: Vec<Job> = (1..=4)
            .flat_map(|i| jobs(3, &seeds, Shard { index: i, count: 4 }))
            .collect();
        merged.sort_by_key(|j| j.index);
        assert_eq!(merged, all);
    }

    #[test]
    fn run_directories_keep_apart_scenarios_of_one_name() {
        let names = ["a", "b", "a", "a"].map(String::from);
        assert_eq!(slugs(&names), ["a", "b", "a-2", "a-3"]);
    }

    #[test]
    fn about_the_asked_share_is_rechecked() {
        let n = (0..2000).filter(|&s| rechecked("x", s, 0.05)).count();
        assert!((60..=140).contains(&n), "{n} of 2000");
        assert!(!(0..100).any(|s| rechecked("x", s, 0.0)));
        assert!((0..100).all(|s| rechecked("x", s, 1.0)));
        assert_eq!(rechecked("x", 17, 0.3), rechecked("x", 17, 0.3));
    }
}
