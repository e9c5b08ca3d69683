//! Admission control on a coordinator: a bounded number of queries run at once, the rest wait
//! in a bounded queue ordered by priority, then by the tenant with the fewest running (fair
//! share), then by arrival. A full queue sheds with a `Retry-After` estimate, and so does a
//! queue whose expected wait would outlast the query's deadline, counting only the queries that
//! would start before it: a query that cannot start in time is refused at once rather than
//! held until it fails (the queue is bounded in time as
//! well as in length, after Google SRE's "Handling Overload").

use std::collections::BTreeMap;
use std::time::Duration;

/// A query's priority; interactive goes first.
pub type Priority = u8;

/// The decision on an offered query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start it now.
    Run,
    /// Wait; `position` from 1.
    Queued {
        /// Place in the queue.
        position: u32,
    },
    /// Refused: come back after this long.
    Shed {
        /// The `Retry-After` to send.
        retry_after: Duration,
    },
}

#[derive(Debug, Clone)]
struct Waiting {
    id: String,
    tenant: String,
    priority: Priority,
    seq: u64,
}

/// A query's place in the start order; smaller starts first.
type StartKey = (std::cmp::Reverse<Priority>, u32, u64);

/// The admission state of one coordinator.
#[derive(Debug, Clone)]
pub struct Admission {
    max_running: u32,
    max_queued: u32,
    running: BTreeMap<String, u32>,
    queue: Vec<Waiting>,
    seq: u64,
    typical: Duration,
}

impl Admission {
    /// Room for `max_running` at once and `max_queued` waiting; `typical` is how long a query
    /// usually takes, for `Retry-After` estimates.
    pub fn new(max_running: u32, max_queued: u32, typical: Duration) -> Self {
        Self {
            max_running: max_running.max(1),
            max_queued,
            running: BTreeMap::new(),
            queue: Vec::new(),
            seq: 0,
            typical,
        }
    }

    /// Queries running.
    pub fn running_total(&self) -> u32 {
        self.running.values().sum()
    }

    /// Queries waiting.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// How long a query usually runs: an average over the last few that ran.
    pub fn typical(&self) -> Duration {
        self.typical
    }

    /// A query ran for `took`: the typical run time moves a fifth of the way towards it.
    pub fn observe(&mut self, took: Duration) {
        self.typical = self.typical.mul_f64(0.8) + took.mul_f64(0.2);
    }

    /// Offers a query that must start within `budget` (its deadline, less what it needs to
    /// run), if it has one.
    pub fn offer(
        &mut self,
        id: &str,
        tenant: &str,
        priority: Priority,
        budget: Option<Duration>,
    ) -> Decision {
        if self.running_total() < self.max_running && self.queue.is_empty() {
            *self.running.entry(tenant.to_string()).or_default() += 1;
            return Decision::Run;
        }
        // The query waits for the queries that would start before it: an interactive query,
        // or one of a tenant with little running, is not refused for a queue that batch work
        // or a heavy tenant fills.
        let wait = self.wait_behind(self.ahead_of(self.start_key(priority, tenant, u64::MAX)));
        if self.queue.len() as u32 >= self.max_queued {
            // Full: come back when the queue has drained, about.
            let drained = self.wait_behind(self.queue.len() as u32);
            return Decision::Shed {
                retry_after: drained,
            };
        }
        if budget.is_some_and(|b| wait > b) {
            return Decision::Shed { retry_after: wait };
        }
        self.seq += 1;
        self.queue.push(Waiting {
            id: id.to_string(),
            tenant: tenant.to_string(),
            priority,
            seq: self.seq,
        });
        Decision::Queued {
            position: self.queue.len() as u32,
        }
    }

    /// A query of `tenant` finished (or was removed while waiting, with `id`): frees its slot
    /// and answers the queries to start now.
    pub fn finish(&mut self, tenant: &str) -> Vec<String> {
        if let Some(n) = self.running.get_mut(tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.running.remove(tenant);
            }
        }
        self.start_waiting()
    }

    /// A waiting query's place: its position in the order queries will start (from 1) and the
    /// expected wait, one wave of `max_running` per typical run time for those ahead of it.
    pub fn place(&self, id: &str) -> Option<(u32, Duration)> {
        let me = self.queue.iter().find(|w| w.id == id)?;
        let ahead = self.ahead_of(self.start_key(me.priority, &me.tenant, me.seq));
        Some((ahead + 1, self.wait_behind(ahead)))
    }

    /// Where a query stands in the order queries start: priority first, then the tenant with
    /// the fewest running (fair share), then arrival.
    fn start_key(&self, priority: Priority, tenant: &str, seq: u64) -> StartKey {
        (
            std::cmp::Reverse(priority),
            self.running.get(tenant).copied().unwrap_or(0),
            seq,
        )
    }

    /// How many waiting queries would start before one at `key`.
    fn ahead_of(&self, key: StartKey) -> u32 {
        self.queue
            .iter()
            .filter(|w| self.start_key(w.priority, &w.tenant, w.seq) < key)
            .count() as u32
    }

    /// The expected wait behind `ahead` queries: slots free about one wave of `max_running`
    /// every typical run time.
    fn wait_behind(&self, ahead: u32) -> Duration {
        self.typical * (1 + ahead / self.max_running)
    }

    /// Drops a waiting query (cancelled). Whether it was waiting.
    pub fn withdraw(&mut self, id: &str) -> bool {
        let before = self.queue.len();
        self.queue.retain(|w| w.id != id);
        before != self.queue.len()
    }

    fn start_waiting(&mut self) -> Vec<String> {
        let mut started = Vec::new();
        while self.running_total() < self.max_running && !self.queue.is_empty() {
            let best = self
                .queue
                .iter()
                .enumerate()
                .min_by_key(|(_, w)| self.start_key(w.priority, &w.tenant, w.seq))
                .map(|(i, _)| i)
                .unwrap_or(0);
            let w = self.queue.remove(best);
            *self.running.entry(w.tenant).or_default() += 1;
            started.push(w.id);
        }
        started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_prioritised_fair_and_sheds_with_retry_after() {
        let mut a = Admission::new(1, 3, Duration::from_secs(10));
        assert_eq!(a.offer("q1", "t0", 0, None), Decision::Run);
        assert_eq!(
            a.offer("q2", "t0", 0, None),
            Decision::Queued { position: 1 }
        );
        assert_eq!(
            a.offer("q3", "t1", 0, None),
            Decision::Queued { position: 2 }
        );
        assert_eq!(
            a.offer("q4", "t0", 9, None),
            Decision::Queued { position: 3 }
        );
        assert_eq!(
            a.offer("q5", "t2", 9, None),
            Decision::Shed {
                retry_after: Duration::from_secs(40)
            }
        );
        assert_eq!(a.place("q4"), Some((1, Duration::from_secs(10))));
        assert_eq!(
            a.place("q3"),
            Some((2, Duration::from_secs(20))),
            "t1 has nothing running"
        );
        assert_eq!(a.place("q1"), None, "running, not waiting");
        assert_eq!(a.finish("t0"), vec!["q4"], "priority first");
        assert_eq!(a.finish("t0"), vec!["q2"], "then arrival, all tenants idle");
        assert!(a.withdraw("q3"));
        assert_eq!(a.finish("t0"), Vec::<String>::new());
        let mut b = Admission::new(2, 9, Duration::from_secs(1));
        b.offer("a1", "a", 0, None);
        b.offer("a2", "a", 0, None);
        b.offer("a3", "a", 0, None);
        b.offer("b1", "b", 0, None);
        assert_eq!(b.finish("a"), vec!["b1"], "tenant b has nothing running");
    }

    #[test]
    fn a_query_that_cannot_start_before_its_deadline_is_shed_at_once() {
        let mut a = Admission::new(1, 10, Duration::from_secs(10));
        assert_eq!(a.offer("q1", "t", 0, None), Decision::Run);
        // One wave ahead: about 10 s to wait, within a 15 s budget.
        let budget = Some(Duration::from_secs(15));
        assert_eq!(
            a.offer("q2", "t", 0, budget),
            Decision::Queued { position: 1 }
        );
        // Two waves ahead: 20 s, past it.
        assert_eq!(
            a.offer("q3", "t", 0, budget),
            Decision::Shed {
                retry_after: Duration::from_secs(20)
            }
        );
        // Without a deadline it waits.
        assert_eq!(
            a.offer("q4", "t", 0, None),
            Decision::Queued { position: 2 }
        );
        // An interactive query, or one of a tenant with nothing running, waits only for the
        // queries that go before it: it is queued where batch work of a busy tenant is shed.
        let mut b = Admission::new(1, 10, Duration::from_secs(10));
        assert_eq!(b.offer("h1", "heavy", 0, None), Decision::Run);
        for k in 2..5 {
            b.offer(&format!("h{k}"), "heavy", 0, None);
        }
        assert!(matches!(
            b.offer("h5", "heavy", 0, budget),
            Decision::Shed { .. }
        ));
        assert_eq!(
            b.offer("light", "light", 0, budget),
            Decision::Queued { position: 4 }
        );
        assert_eq!(
            b.offer("urgent", "heavy", 1, budget),
            Decision::Queued { position: 5 }
        );
        // Queries turn out to run in 1 s: the estimate follows.
        for _ in 0..30 {
            a.observe(Duration::from_secs(1));
        }
        assert!(
            a.typical() < Duration::from_millis(1100),
            "{:?}",
            a.typical()
        );
        assert_eq!(
            a.offer("q5", "t", 0, budget),
            Decision::Queued { position: 3 }
        );
    }
}
