//! The names the log uses: the event targets checkers read, the query lifecycle names that end a
//! query, and the classes of accounts (the system's own, background customers, lakes).

// Each target is the constant its producer logs with, so a checker cannot drift from it: the
// system's and the fakes' are theirs; the harness's own producers (the replay client, the
// alerts, the fault timeline) log with these.

/// The target the provider reports calls on.
pub const PROVIDER_TARGET: &str = stampede_fakes::provider::call::PROVIDER_EVENTS;

/// The target the system reports its protective mechanisms' decisions on.
pub const MECHANISM_TARGET: &str = stampede_system::guard::MECHANISM_EVENTS;

/// The target the system reports query lifecycle events on.
pub const QUERY_TARGET: &str = stampede_system::coordinator::QUERY_EVENTS;

/// The target workers report a lake's fragment of a query on.
pub const TASK_TARGET: &str = stampede_system::worker::TASK_EVENTS;

/// The target the replay client reports on.
pub const TRAFFIC_TARGET: &str = "stampede::traffic";

/// The target of the replay client's meter.
pub const METER_TARGET: &str = "stampede::meter";

/// The target of the scenario's alerts.
pub const ALERT_TARGET: &str = "stampede::alert";

/// The target of config changes at run time.
pub const CONFIG_TARGET: &str = stampede_system::config_agent::CONFIG_EVENTS;

/// The target of the fault timeline.
pub const FAULT_TARGET: &str = "stampede::fault";

/// Query lifecycle event names that end a query.
pub const TERMINAL: [&str; 5] = [
    "succeeded",
    "failed",
    "rejected",
    "cancelled",
    "deadline_exceeded",
];

/// The system's own account.
pub const SYSTEM_ACCOUNT: &str = stampede_fakes::iam::SYSTEM_ACCOUNT;

fn twelve_digits_from(account: &str, first: u8) -> bool {
    account.len() == 12
        && account.as_bytes()[0] == first
        && account.bytes().all(|b| b.is_ascii_digit())
}

/// A background account: another customer of the region (12 digits starting with `2`).
pub fn is_background(account: &str) -> bool {
    twelve_digits_from(account, b'2')
}

/// A lake account (12 digits starting with `3`): lake `i` is account `3{i:011}`.
pub fn lake_of_account(account: &str) -> Option<u64> {
    if twelve_digits_from(account, b'3') {
        account[1..].parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_told_apart() {
        assert!(is_background("200000000007"));
        assert!(!is_background("100000000001"));
        assert!(!is_background("2000"));
        assert_eq!(lake_of_account("300000000042"), Some(42));
        assert_eq!(lake_of_account("100000000001"), None);
        assert_eq!(lake_of_account("anonymous"), None);
    }
}
