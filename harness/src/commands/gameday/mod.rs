//! `stampede gameday`: a scenario replayed on its timeline, paused at each fault, alert,
//! freeze and annotation, with the engineer's operator actions typed in, and "what if"
//! branches.
//!
//! Each branch's simulation runs on a thread of its own and stops inside the step loop's hook
//! while the engineer reads and types. turmoil cannot snapshot a world, but the world is
//! deterministic: a branch re-simulates from zero with the same seed and the actions taken
//! before the fork, and the digests of the two logs up to the fork must be equal.

pub mod command;
pub mod dashboard;
pub mod prompt;
pub mod story;

use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use serde::Serialize;

use crate::commands::run::{Prepared, RunError, RunReport};
use crate::events::{Event, EventLog, Recorder};
use crate::input::scenario::Fault;
use crate::world::Hooked;
use crate::world::control::{Control, OPERATOR_POLL};
use command::Command;
use dashboard::clock;

/// An operator action taken in a gameday.
#[derive(Debug, Clone, Serialize)]
pub struct Action {
    /// When it takes effect, in ms: the operator's first poll after it was typed.
    pub at_ms: u64,
    /// When the engineer typed it, in ms of virtual time.
    pub typed_at_ms: u64,
    /// The line typed.
    pub text: String,
    /// The action as a scenario's `operator:` entry.
    pub spec: Fault,
}

/// What the REPL asks a branch's simulation.
enum Cmd {
    /// Run to `until`; pause on the way at events when `pauses`.
    Run { until: Duration, pauses: bool },
    /// Add these controls (while paused).
    Add(Vec<Control>),
}

/// A branch's simulation, paused or running on its thread.
struct Live {
    to: Sender<Cmd>,
    from: Receiver<Paused>,
    thread: std::thread::JoinHandle<Result<RunReport, RunError>>,
}

/// A pause: when, why, and the events since the last one.
struct Paused {
    now: Duration,
    why: Vec<String>,
    events: Vec<Event>,
}

/// One line of the world's history.
pub struct Branch {
    /// Its name; the first is `main`.
    pub name: String,
    /// The branch it forked from.
    pub parent: Option<String>,
    /// When it forked.
    pub fork_at: Duration,
    /// The digest of the event log up to the fork.
    pub prefix_digest: String,
    /// How many events the log held at the fork.
    pub fork_events: usize,
    /// Every action on its timeline, inherited ones first.
    pub actions: Vec<Action>,
    /// How many of `actions` it inherited.
    pub inherited: usize,
    /// Its virtual time.
    pub now: Duration,
    /// Why it last paused.
    pub why: Vec<String>,
    /// The events so far.
    pub log: Vec<Event>,
    live: Option<Live>,
    /// Its run, once it has ended.
    pub report: Option<RunReport>,
}

/// Where a gameday stands: its scenario, seed and branches.
pub struct Gameday {
    /// The scenario as loaded.
    pub base: Prepared,
    /// The seed.
    pub seed: u64,
    /// Every branch, `main` first.
    pub branches: Vec<Branch>,
    /// The current branch.
    pub current: usize,
}

/// Where the run pauses by itself: each fault's and operator action's start, and each
/// annotation, in time order.
fn pause_points(p: &Prepared) -> Vec<(Duration, String)> {
    let mut points: Vec<(Duration, String)> = p
        .scenario
        .timeline()
        .map(|f| (f.at.0, format!("{} begins", f.kind.name())))
        .chain(
            p.scenario
                .annotations
                .iter()
                .map(|a| (a.at.0, format!("note: {}", a.note))),
        )
        .collect();
    points.sort_by_key(|p| p.0);
    points
}

/// The scenario of a branch: the base with its actions added to `operator:`.
pub fn scenario_with(base: &Prepared, actions: &[Action]) -> Prepared {
    let mut p = base.clone();
    p.scenario
        .operator
        .extend(actions.iter().map(|a| a.spec.clone()));
    p
}

/// Starts a simulation of `prepared` on its own thread, running to `until`.
fn start(prepared: Prepared, seed: u64, until: Duration, pauses: bool) -> Live {
    let (to, to_rx) = channel::<Cmd>();
    let (from_tx, from) = channel::<Paused>();
    let points = pause_points(&prepared);
    #[allow(clippy::disallowed_methods)] // A simulation per branch, each on its own thread.
    let thread = std::thread::spawn(move || {
        let recorder = Recorder::new();
        let (mut until, mut pauses) = (until, pauses);
        let (mut seen, mut next_point) = (0usize, 0usize);
        let mut buffer: Vec<Event> = Vec::new();
        let mut hook = |now: Duration, rec: &Recorder| -> Hooked {
            let new = rec.since(seen);
            seen += new.len();
            let mut why = Vec::new();
            while next_point < points.len() && points[next_point].0 <= now {
                if pauses {
                    why.push(points[next_point].1.clone());
                }
                next_point += 1;
            }
            if pauses {
                why.extend(new.iter().filter_map(reason));
            }
            buffer.extend(new);
            if now >= until {
                why.push(format!("reached {}", clock(until)));
            }
            if why.is_empty() {
                return Hooked::Go;
            }
            let events = std::mem::take(&mut buffer);
            if from_tx.send(Paused { now, why, events }).is_err() {
                return Hooked::Stop;
            }
            let mut add = Vec::new();
            loop {
                match to_rx.recv() {
                    Ok(Cmd::Add(c)) => add.extend(c),
                    Ok(Cmd::Run {
                        until: u,
                        pauses: p,
                    }) => {
                        (until, pauses) = (u, p);
                        return Hooked::Add(add);
                    }
                    Err(_) => return Hooked::Stop,
                }
            }
        };
        let timer = crate::world::clock::WallTimer::start();
        let options = crate::commands::run::RunOptions::default();
        let out = crate::commands::run::simulate_with(
            &prepared,
            seed,
            &recorder,
            Some(&mut hook),
            &options,
        )?;
        crate::commands::run::judge(prepared, seed, out, timer.elapsed(), None, &options)
    });
    Live { to, from, thread }
}

/// Why an event pauses the run, if it does: an alert starting to fire, or the provider
/// freezing one of the system's accounts.
fn reason(e: &Event) -> Option<String> {
    match (e.target.as_str(), e.name.as_str()) {
        ("stampede::alert", "firing") => Some(format!(
            "alert {} firing ({} = {} over {})",
            e.str("rule").unwrap_or("?"),
            e.str("signal").unwrap_or("?"),
            e.fields.get("value").map_or("?".into(), |v| v.to_string()),
            e.fields
                .get("threshold")
                .map_or("?".into(), |v| v.to_string()),
        )),
        ("stampede::provider", "account_frozen")
            if !crate::judge::invariants::vocabulary::is_background(
                e.str("account").unwrap_or(""),
            ) =>
        {
            Some(format!(
                "the provider froze account {}",
                e.str("account").unwrap_or("?")
            ))
        }
        _ => None,
    }
}

/// The first time on the operator's poll grid after `now`: an action typed at `now` goes out
/// then, in this branch and in any re-simulation of it alike.
pub fn next_poll(now: Duration) -> Duration {
    let poll = OPERATOR_POLL.as_micros();
    let k = now.as_micros() / poll + 1;
    Duration::from_micros((k * poll) as u64)
}

/// The digest of a log's first events: those it held when its run paused at a fork. (Not the
/// events stamped before the fork's time: a host's clock starts its next tick at the fork's
/// time, so the step after a pause may log events stamped with it.)
pub fn prefix_digest(events: &[Event]) -> String {
    EventLog::from_events(events.to_vec()).digest()
}

impl Branch {
    fn new(name: &str, parent: Option<String>, fork_at: Duration, actions: Vec<Action>) -> Self {
        Self {
            name: name.into(),
            parent,
            fork_at,
            prefix_digest: String::new(),
            fork_events: 0,
            inherited: actions.len(),
            actions,
            now: Duration::ZERO,
            why: vec![],
            log: vec![],
            live: None,
            report: None,
        }
    }

    /// Whether its run has ended.
    pub fn ended(&self) -> bool {
        self.report.is_some()
    }

    /// Runs to `until` (pausing at events when `pauses`), and waits for the pause or the end.
    fn advance(&mut self, until: Duration, pauses: bool) -> Result<(), String> {
        let Some(live) = &self.live else {
            return Err(format!("branch {} has ended", self.name));
        };
        live.to
            .send(Cmd::Run { until, pauses })
            .map_err(|_| "the simulation stopped".to_string())?;
        self.wait()
    }

    fn wait(&mut self) -> Result<(), String> {
        let Some(live) = &self.live else {
            return Ok(());
        };
        match live.from.recv() {
            Ok(p) => {
                self.now = p.now;
                self.why = p.why;
                self.log.extend(p.events);
                Ok(())
            }
            Err(_) => {
                let live = self.live.take().expect("checked above");
                let report = live
                    .thread
                    .join()
                    .map_err(|_| "the simulation panicked".to_string())?
                    .map_err(|e| e.to_string())?;
                self.now = report.prepared.scenario.duration.0;
                self.log = report.log.events().to_vec();
                self.why = vec!["the run has ended".into()];
                self.report = Some(report);
                Ok(())
            }
        }
    }

    /// Runs to the end without pausing.
    fn finish(&mut self) -> Result<(), String> {
        while !self.ended() {
            self.advance(Duration::MAX, false)?;
        }
        Ok(())
    }
}

/// What a command did, for the REPL to print.
pub type Said = Result<String, String>;

impl Gameday {
    /// A gameday on `base` with `seed`, its `main` branch paused at 0 or at the first pause.
    pub fn start(base: Prepared, seed: u64) -> Result<Self, String> {
        let mut main = Branch::new("main", None, Duration::ZERO, vec![]);
        main.live = Some(start(base.clone(), seed, Duration::ZERO, true));
        main.wait()?;
        main.prefix_digest = prefix_digest(&[]);
        Ok(Self {
            base,
            seed,
            branches: vec![main],
            current: 0,
        })
    }

    /// The current branch.
    pub fn branch(&self) -> &Branch {
        &self.branches[self.current]
    }

    fn branch_mut(&mut self) -> &mut Branch {
        &mut self.branches[self.current]
    }

    /// The prompt: branch and virtual time.
    pub fn prompt(&self) -> String {
        let b = self.branch();
        format!("[{} {}]> ", b.name, clock(b.now))
    }

    /// The line shown at each pause.
    pub fn pause_line(&self) -> String {
        let b = self.branch();
        format!(
            "paused at {} ({}): {}",
            clock(b.now),
            b.name,
            b.why.join("; ")
        )
    }

    /// The dashboard of the current branch.
    pub fn status(&self) -> String {
        let b = self.branch();
        dashboard::dashboard(&EventLog::from_events(b.log.clone()), b.now)
    }

    /// Carries out one command.
    pub fn execute(&mut self, cmd: Command) -> Said {
        let duration = self.base.scenario.duration.0;
        match cmd {
            Command::Help => Ok(command::HELP.to_string()),
            Command::Status => Ok(self.status()),
            Command::Step(d) => {
                let until = self.branch().now + d;
                self.go(until.min(duration), false)
            }
            Command::Until(t) => {
                if t <= self.branch().now {
                    return Err(format!(
                        "it is {} already: `until` goes forward only (branch to try another past)",
                        clock(self.branch().now)
                    ));
                }
                self.go(t.min(duration), false)
            }
            Command::Continue => self.go(duration, true),
            Command::Do { action, keys, text } => self.act(&action, &keys, text),
            Command::Branch(name) => self.fork(&name),
            Command::Switch(name) => {
                let i = self
                    .branches
                    .iter()
                    .position(|b| b.name == name)
                    .ok_or(format!("no branch {name} (branches: {})", self.names()))?;
                self.current = i;
                Ok(format!("now on {}", self.pause_line()))
            }
            Command::Compare => {
                self.finish_all()?;
                Ok(story::outcomes(self))
            }
            Command::Save(file) => {
                let b = self.current;
                self.branches[b].finish()?;
                story::save(self, b, std::path::Path::new(&file))
            }
            Command::Quit => Ok(String::new()),
        }
    }

    fn names(&self) -> String {
        self.branches
            .iter()
            .map(|b| b.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn go(&mut self, until: Duration, pauses: bool) -> Said {
        self.branch_mut().advance(until, pauses)?;
        Ok(format!("{}\n{}", self.pause_line(), self.status()))
    }

    fn act(
        &mut self,
        action: &str,
        keys: &serde_json::Map<String, serde_json::Value>,
        text: String,
    ) -> Said {
        let b = self.branch();
        if b.ended() {
            return Err(format!(
                "branch {} has ended: nothing more can be done in it",
                b.name
            ));
        }
        let at = next_poll(b.now);
        if at >= self.base.scenario.duration.0 {
            return Err("the run ends before the action could go out".into());
        }
        let spec = command::spec(action, keys, at)?;
        crate::input::scenario::check_fault(&self.base.scenario, true, &spec)?;
        if matches!(
            spec.kind,
            crate::input::scenario::FaultKind::ConfigPush { .. }
        ) {
            return Err(
                "`config.push` needs a document: write it in the scenario's operator section"
                    .into(),
            );
        }
        let mut one = self.base.scenario.clone();
        one.faults.clear();
        one.swarm = None;
        one.operator = vec![spec.clone()];
        let controls = crate::world::control::timeline(&one);
        let typed = b.now;
        let live = b.live.as_ref().ok_or("the branch is not running")?;
        live.to
            .send(Cmd::Add(controls))
            .map_err(|_| "the simulation stopped".to_string())?;
        self.branch_mut().actions.push(Action {
            at_ms: at.as_millis() as u64,
            typed_at_ms: typed.as_millis() as u64,
            text,
            spec,
        });
        Ok(format!(
            "{action} goes out at {} (the operator's next poll)",
            clock(at)
        ))
    }

    fn fork(&mut self, name: &str) -> Said {
        if self.branches.iter().any(|b| b.name == name) {
            return Err(format!("there is a branch {name} already"));
        }
        let parent = self.branch();
        if parent.ended() {
            return Err(format!(
                "branch {} has ended: branch before its end, from a pause",
                parent.name
            ));
        }
        let fork_at = parent.now;
        let actions = parent.actions.clone();
        let parent_digest = prefix_digest(&parent.log);
        let fork_events = parent.log.len();
        let parent_name = parent.name.clone();
        let mut b = Branch::new(name, Some(parent_name.clone()), fork_at, actions);
        let prepared = scenario_with(&self.base, &b.actions);
        b.live = Some(start(prepared, self.seed, fork_at, false));
        b.wait()?;
        b.prefix_digest = prefix_digest(&b.log);
        b.fork_events = fork_events;
        let same = b.prefix_digest == parent_digest && b.now == fork_at;
        let digest = b.prefix_digest.clone();
        self.branches.push(b);
        self.current = self.branches.len() - 1;
        if !same {
            return Err(format!(
                "branch {name} re-simulated to {} but its log differs from {parent_name}'s before the fork ({digest} against {parent_digest}): the world is not deterministic here, a bug",
                clock(fork_at)
            ));
        }
        Ok(format!(
            "branch {name} forked from {parent_name} at {}: re-simulated from zero, the log up to the fork is the same (digest {})",
            clock(fork_at),
            &digest[..16]
        ))
    }

    /// Runs every branch to its end.
    pub fn finish_all(&mut self) -> Result<(), String> {
        for b in &mut self.branches {
            b.finish()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_go_out_on_the_next_poll() {
        assert_eq!(next_poll(Duration::ZERO), Duration::from_millis(100));
        assert_eq!(
            next_poll(Duration::from_millis(40_000)),
            Duration::from_millis(40_100)
        );
        assert_eq!(
            next_poll(Duration::from_millis(40_020)),
            Duration::from_millis(40_100)
        );
    }
}
