//! `never_frozen`: the provider never froze an account the system owns.

use serde_json::json;

use super::obj;
use super::vocabulary::PROVIDER_TARGET;
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::EventLog;

/// Checks that no `account_frozen` event names one of `accounts`.
pub fn never_frozen(log: &EventLog, accounts: &[&str]) -> Verdict {
    let frozen: Vec<_> = log
        .of(PROVIDER_TARGET)
        .filter(|e| {
            e.name == "account_frozen" && e.str("account").is_some_and(|a| accounts.contains(&a))
        })
        .collect();
    if frozen.is_empty() {
        let all_freezes = log
            .of(PROVIDER_TARGET)
            .filter(|e| e.name == "account_frozen")
            .count();
        return Verdict::Pass {
            counts: obj(json!({ "freezes_of_other_accounts": all_freezes })),
        };
    }
    let first = &frozen[0];
    Verdict::Fail {
        witness: Witness {
            summary: format!(
                "account {} was frozen at t={:.3}s",
                first.str("account").unwrap_or("?"),
                first.time().as_secs_f64()
            ),
            counts: obj(json!({ "freezes": frozen.len() })),
            events: frozen.into_iter().take(WITNESS_EVENTS).cloned().collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, Fields};

    fn frozen(t: u64, account: &str) -> Event {
        Event {
            t_us: t,
            host: "provider-r".into(),
            target: PROVIDER_TARGET.into(),
            name: "account_frozen".into(),
            fields: Fields::from_iter([("account", json!(account))]),
        }
    }

    #[test]
    fn a_freeze_of_another_account_passes() {
        let log = EventLog::from_events(vec![frozen(5, "200000000001")]);
        assert_eq!(never_frozen(&log, &["100000000001"]).word(), "pass");
    }

    #[test]
    fn a_freeze_of_the_system_fails_with_it_as_witness() {
        let log = EventLog::from_events(vec![frozen(5, "200000000001"), frozen(9, "100000000001")]);
        let Verdict::Fail { witness } = never_frozen(&log, &["100000000001"]) else {
            panic!("must fail")
        };
        assert_eq!(witness.events[0].t_us, 9);
    }
}
