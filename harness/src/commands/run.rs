//! One run of a scenario: load it, simulate it, check its invariants.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::events::{EventLog, Recorder};
use crate::input::arrivals;
use crate::input::scenario::{self, InputError, InvariantName, Scenario};
use crate::input::trace::{self, Trace};
use crate::judge::invariants::{self, Verdict, WITNESS_EVENTS, Witness};
use crate::world::clock::WallTimer;
use crate::world::traffic::Reply;
use crate::world::{self, SimError, World};

/// Why a run could not produce a verdict.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario or its trace is invalid: the user's to fix.
    #[error("{0}")]
    Input(#[from] InputError),
    /// The simulation broke: ours to fix.
    #[error("{0}")]
    Sim(SimError),
}

/// A scenario ready to simulate: parsed, its trace loaded and checked against its world.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The scenario file.
    pub path: PathBuf,
    /// Its contents.
    pub scenario: Scenario,
    /// The file its queries come from (a native trace or a CSV of arrivals); `None` when they
    /// are generated.
    pub trace_path: Option<PathBuf>,
    /// The trace.
    pub trace: Trace,
}

/// Loads a scenario and its trace, checking both before anything runs.
pub fn prepare(path: &Path) -> Result<Prepared, InputError> {
    prepare_scaled(path, 1.0)
}

/// Loads a scenario with its traffic's load multiplied by `multiplier` (`stampede run
/// --load`, and each rung of `stampede capacity`), and its trace.
pub fn prepare_scaled(path: &Path, multiplier: f64) -> Result<Prepared, InputError> {
    let mut scenario = scenario::load(path)?;
    scenario.traffic.load *= multiplier;
    let base = path.parent().unwrap_or(Path::new("."));
    if let Some(replay) = scenario.world.provider.background.replay.clone() {
        let file = base.join(&replay);
        if !file.is_file() {
            let (line, column) = find_text(path, "replay:");
            return Err(InputError {
                file: path.to_path_buf(),
                line,
                column,
                field: Some("world.provider.background.replay".into()),
                message: format!("provider trace `{}` not found", file.display()),
            });
        }
        scenario.world.provider.background.recorded = crate::input::cloudtrail::load(&file)?
            .into_iter()
            .map(|r| stampede_fakes::provider::background::RecordedCall {
                at: Duration::from_millis(r.t_ms),
                account: r.account,
                service: r.service,
                api: r.api,
            })
            .collect();
    }
    let traffic_seed = scenario.traffic.seed.unwrap_or(scenario.seed);
    let (trace_path, trace) = traffic_trace(path, &scenario, traffic_seed)?;
    Ok(Prepared {
        path: path.to_path_buf(),
        scenario,
        trace_path,
        trace,
    })
}

/// The queries of `scenario` (the file at `path`), its generated arrivals and load sampling
/// drawn from `traffic_seed`, checked against its world; and the file they come from, when
/// they are not generated.
fn traffic_trace(
    path: &Path,
    scenario: &Scenario,
    traffic_seed: u64,
) -> Result<(Option<PathBuf>, Trace), InputError> {
    let base = path.parent().unwrap_or(Path::new("."));
    let t = &scenario.traffic;
    let (key, file) = match (&t.replay, &t.arrivals) {
        (Some(replay), _) => ("replay:", replay.clone()),
        (None, Some(arrivals)) => arrivals.file(),
        (None, None) => ("generate:", PathBuf::new()),
    };
    let trace_path = base.join(&file);
    if t.generate.is_none() && !trace_path.is_file() {
        let (line, column) = find_text(path, key);
        return Err(InputError {
            file: path.to_path_buf(),
            line,
            column,
            field: Some(format!("traffic.{}", key.trim_end_matches(':'))),
            message: format!("`{}` not found", trace_path.display()),
        });
    }
    let source = match (&t.replay, &t.arrivals, &t.generate, &t.query) {
        (Some(_), ..) => trace::load(&trace_path)?,
        (None, Some(a), _, Some(q)) => {
            arrivals::from_arrivals(&trace_path, arrivals::read_arrivals(&trace_path, a)?, q)?
        }
        (None, None, Some(g), Some(q)) => {
            arrivals::from_template(&arrivals::generate(g, traffic_seed), q)
        }
        _ => unreachable!("validated: one source, and a query for arrivals and generators"),
    };
    let trace = arrivals::reshape(source, t.window, &t.tenants, t.load, t.timing, traffic_seed);
    let lakes = world::lower::lake_directory(scenario, scenario.seed);
    world::lower::submissions(scenario, &lakes, &trace).map_err(|e| InputError {
        file: trace_path.clone(),
        line: Some(e.line),
        column: column_on_line(&trace_path, e.line, "\"lakes\""),
        field: Some("lakes".into()),
        message: e.message,
    })?;
    Ok((t.generate.is_none().then_some(trace_path), trace))
}

impl Prepared {
    /// Draws the traffic again for a run of `seed`: generated arrivals and load sampling
    /// follow the run's seed, so each seed of a sweep or a ladder sees other arrivals. A file
    /// that pins `traffic.seed` keeps its traffic, and a run of the scenario's own seed the
    /// traffic it was prepared with.
    pub fn reseed_traffic(&mut self, seed: u64) -> Result<(), InputError> {
        if self.scenario.traffic.seed.is_some() || seed == self.scenario.seed {
            return Ok(());
        }
        self.trace = traffic_trace(&self.path, &self.scenario, seed)?.1;
        Ok(())
    }

    /// Draws the scenario's swarm schedule for `seed`, if it has a `swarm` section: the drawn
    /// faults join the file's and the drawn tuning overrides its, and the section is gone, so
    /// the scenario is concrete from here on (as `run.json` records it).
    pub fn draw_swarm(
        &mut self,
        seed: u64,
    ) -> Result<Option<crate::input::swarm::Drawn>, InputError> {
        let Some(swarm) = self.scenario.swarm.take() else {
            return Ok(None);
        };
        let drawn = swarm
            .draw(seed)
            .map_err(|e| InputError::whole_file(&self.path, format!("swarm: {e}")))?;
        self.scenario.faults.extend(drawn.faults.iter().cloned());
        self.scenario.faults.sort_by_key(|f| f.at.0);
        self.scenario
            .system
            .tuning
            .extend(drawn.tuning.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(Some(drawn))
    }

    /// Where the queries come from, for people: the file, or the generator.
    pub fn source(&self) -> String {
        match (&self.trace_path, &self.scenario.traffic.generate) {
            (Some(path), _) => path.display().to_string(),
            (None, Some(generator)) => format!("a generated {} process", generator.kind()),
            (None, None) => "no source".to_string(),
        }
    }
}

fn find_text(path: &Path, needle: &str) -> (Option<u64>, Option<u64>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .enumerate()
        .find_map(|(i, l)| {
            l.find(needle)
                .map(|c| (Some(i as u64 + 1), Some(c as u64 + 1)))
        })
        .unwrap_or((None, None))
}

/// The 1-based column of `needle` on the 1-based `line` of the file, if it is there.
fn column_on_line(path: &Path, line: u64, needle: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let index = usize::try_from(line).ok()?.checked_sub(1)?;
    let column = text.lines().nth(index)?.find(needle)?;
    Some(column as u64 + 1)
}

/// Everything one run produced.
#[derive(Debug)]
pub struct RunReport {
    /// What ran.
    pub prepared: Prepared,
    /// With which seed.
    pub seed: u64,
    /// The event log of the (first) simulation.
    pub log: EventLog,
    /// Its digest.
    pub digest: String,
    /// The replay client's replies.
    pub replies: Vec<Reply>,
    /// One verdict per invariant the scenario lists, by name.
    pub verdicts: BTreeMap<String, Verdict>,
    /// Per invariant that has one, whether the run reached the state its verdict needs.
    pub sometimes: BTreeMap<String, invariants::sometimes::Sometimes>,
    /// Simulator steps taken.
    pub steps: u64,
    /// Wall time the simulation took (not part of any output that must be deterministic).
    pub wall: Duration,
    /// What the scenario's swarm section drew for this seed, if it has one.
    pub swarm: Option<crate::input::swarm::Drawn>,
}

impl RunReport {
    /// Whether any invariant failed.
    pub fn violated(&self) -> Vec<&str> {
        self.verdicts
            .iter()
            .filter(|(_, v)| v.is_fail())
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// What makes the run fail against its `expect`: violations not expected, and expected
    /// violations that did not happen. Empty when the run is as expected.
    pub fn unexpected(&self) -> Vec<String> {
        let expected: Vec<&str> = self
            .prepared
            .scenario
            .expect
            .violated
            .iter()
            .map(|n| n.as_str())
            .collect();
        let violated = self.violated();
        let mut out: Vec<String> = violated
            .iter()
            .filter(|v| !expected.contains(v))
            .map(|v| format!("{v} violated"))
            .collect();
        out.extend(
            expected
                .iter()
                .filter(|e| !violated.contains(e))
                .map(|e| format!("{e} expected to be violated, but held")),
        );
        out
    }

    /// Invariants that passed without reaching the state that gives the pass its meaning
    /// (their sometimes check), whatever the scenario says of them.
    pub fn vacuous_all(&self) -> Vec<&str> {
        self.verdicts
            .iter()
            .filter(|(_, v)| v.word() == "pass")
            .filter(|(k, _)| self.sometimes.get(*k).is_some_and(|s| !s.reached))
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// Invariants that passed without reaching the state that gives the pass its meaning
    /// (their sometimes check), and that the scenario does not say are unreached.
    pub fn vacuous(&self) -> Vec<&str> {
        let declared = &self.prepared.scenario.expect.unreached;
        self.verdicts
            .iter()
            .filter(|(_, v)| v.word() == "pass")
            .filter(|(k, _)| self.sometimes.get(*k).is_some_and(|s| !s.reached))
            .filter(|(k, _)| !declared.keys().any(|d| d.as_str() == k.as_str()))
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// Invariants the scenario says do not reach their state, which did.
    pub fn reached_after_all(&self) -> Vec<&str> {
        self.prepared
            .scenario
            .expect
            .unreached
            .keys()
            .map(|n| n.as_str())
            .filter(|k| self.sometimes.get(*k).is_some_and(|s| s.reached))
            .collect()
    }

    /// Invariants that could not be decided.
    pub fn inconclusive(&self) -> Vec<&str> {
        self.verdicts
            .iter()
            .filter(|(_, v)| v.word() == "unknown")
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

/// How a run is watched and stepped; nothing here changes what happens in it.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Told the virtual time as each simulation goes (a person's progress bar).
    pub progress: Option<world::Progress>,
    /// Every host ticked at every step, even an idle one ([`world::Builder::skip_idle_hosts`]):
    /// to measure what leaving idle hosts unpolled saves, and to check it changes no verdict.
    pub every_host_every_step: bool,
}

/// Simulates `prepared` with `seed` (the scenario's own when `None`) and checks its invariants.
pub fn run(prepared: Prepared, seed: Option<u64>) -> Result<RunReport, RunError> {
    run_with(prepared, seed, &RunOptions::default())
}

/// [`run`], watched and stepped as `options` say.
pub fn run_with(
    mut prepared: Prepared,
    seed: Option<u64>,
    options: &RunOptions,
) -> Result<RunReport, RunError> {
    let seed = seed.unwrap_or(prepared.scenario.seed);
    prepared.reseed_traffic(seed)?;
    let swarm = prepared.draw_swarm(seed)?;
    let timer = WallTimer::start();
    let first = simulate_with(&prepared, seed, &Recorder::new(), None, options)?;
    let wall = timer.elapsed();
    judge(prepared, seed, first, wall, swarm, options)
}

/// Checks a simulation's log against the scenario's invariants. `deterministic` simulates the
/// scenario again from the start, every control known up front.
pub fn judge(
    prepared: Prepared,
    seed: u64,
    first: world::SimOutput,
    wall: std::time::Duration,
    swarm: Option<crate::input::swarm::Drawn>,
    options: &RunOptions,
) -> Result<RunReport, RunError> {
    let digest = first.log.digest();
    let mut verdicts = BTreeMap::new();
    let mut sometimes = BTreeMap::new();
    for spec in &prepared.scenario.invariants {
        let name = spec.name.as_str().to_string();
        if spec.name == InvariantName::Deterministic {
            let second = simulate_with(&prepared, seed, &Recorder::new(), None, options)?;
            verdicts.insert(name, deterministic(&first.log, &second.log));
        } else if let Some((verdict, state)) =
            crate::judge::checks::judge(spec, &first.log, &prepared.scenario)
        {
            verdicts.insert(name.clone(), verdict);
            sometimes.insert(name, state);
        }
    }
    Ok(RunReport {
        prepared,
        seed,
        digest,
        log: first.log,
        replies: first.replies,
        verdicts,
        sometimes,
        steps: first.steps,
        wall,
        swarm,
    })
}

/// Simulates `prepared` once on `recorder`, its alert rules watching; with `hook` after every
/// step when one is given (and the operator host always there, see
/// [`world::Builder::operator_host`]).
pub fn simulate_with(
    prepared: &Prepared,
    seed: u64,
    recorder: &Recorder,
    hook: Option<world::Hook<'_>>,
    options: &RunOptions,
) -> Result<world::SimOutput, RunError> {
    let scenario = &prepared.scenario;
    if !scenario.alerts.is_empty() {
        let mut engine = crate::judge::alerts::AlertEngine::new(
            scenario.alerts.clone(),
            crate::world::control::log_stalls(scenario),
        );
        recorder.set_monitor(Box::new(move |e| engine.observe(e)));
    }
    recorder
        .scope(|| {
            let plan = world::lower::lower_scenario(scenario, seed, &prepared.trace)?;
            let mut builder = World::builder(plan)
                .skip_idle_hosts(!options.every_host_every_step)
                .progress(options.progress.clone());
            if hook.is_some() {
                builder = builder.operator_host(true);
            }
            let mut world = builder.build(recorder);
            world.run_until(Duration::MAX, hook)?;
            Ok(world.finish())
        })
        .map_err(RunError::Sim)
}

/// `deterministic`: two simulations of the same scenario and seed gave the same log.
pub fn deterministic(a: &EventLog, b: &EventLog) -> Verdict {
    let (da, db) = (a.digest(), b.digest());
    if da == db {
        let counts = json!({ "events": a.events().len(), "digest": da });
        return Verdict::Pass {
            counts: counts.as_object().cloned().unwrap_or_default(),
        };
    }
    let first_diff = a
        .events()
        .iter()
        .zip(b.events())
        .position(|(x, y)| x != y)
        .unwrap_or(a.events().len().min(b.events().len()));
    let mut events = Vec::new();
    events.extend(a.events().get(first_diff).cloned());
    events.extend(b.events().get(first_diff).cloned());
    events.truncate(WITNESS_EVENTS);
    let counts = json!({
        "events_first": a.events().len(), "events_second": b.events().len(),
        "first_difference_at": first_diff, "digest_first": da, "digest_second": db,
    });
    Verdict::Fail {
        witness: Witness {
            summary: format!(
                "the two runs diverge at event {first_diff} (first run's event, then the second's)"
            ),
            counts: counts.as_object().cloned().unwrap_or_default(),
            events,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, Fields};

    fn ev(name: &str) -> Event {
        Event {
            t_us: 5,
            host: "h".into(),
            target: "stampede::x".into(),
            name: name.into(),
            fields: Fields::new(),
        }
    }

    #[test]
    fn identical_logs_are_deterministic() {
        let a = EventLog::from_events(vec![ev("a"), ev("b")]);
        assert_eq!(deterministic(&a, &a.clone()).word(), "pass");
    }

    #[test]
    fn diverging_logs_name_the_first_difference() {
        let a = EventLog::from_events(vec![ev("a"), ev("b")]);
        let b = EventLog::from_events(vec![ev("a"), ev("c")]);
        let Verdict::Fail { witness } = deterministic(&a, &b) else {
            panic!()
        };
        assert_eq!(witness.counts["first_difference_at"], json!(1));
        assert_eq!(witness.events[0].name, "b");
        assert_eq!(witness.events[1].name, "c");
    }
}
