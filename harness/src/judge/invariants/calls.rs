//! Provider calls: whether an event is one, whether it is the system's, its client host, and
//! when it reached the provider.

use crate::events::Event;

use super::vocabulary::PROVIDER_TARGET;

/// Whether a call's error is a lookup of something absent (`NoSuchKey`,
/// `EntityNotFoundException`, ...): an answer, not a failure.
pub fn is_absent(e: &Event) -> bool {
    e.str("code")
        .is_some_and(|c| c.starts_with("NoSuch") || c.contains("NotFound"))
}

/// Whether `e` is a provider `call`.
pub fn is_call(e: &Event) -> bool {
    e.is(PROVIDER_TARGET, "call")
}

/// Whether `e` is a provider `call` of the system: one that names its operation (a non-empty
/// `op`). Background accounts and real clients send none.
pub fn is_system_call(e: &Event) -> bool {
    is_call(e) && e.str("op").is_some_and(|o| !o.is_empty())
}

/// A call's logical operation: its AWS SDK invocation (`sdk_invocation`, the same on each of
/// the SDK's attempts) if it has one, else the guard's operation (`op`, the same on each of the
/// guard's attempts); `None` for a call that names neither (background accounts, real clients).
pub fn operation(e: &Event) -> Option<&str> {
    let invocation = e.str("sdk_invocation").unwrap_or("");
    if !invocation.is_empty() {
        return Some(invocation);
    }
    e.str("op").filter(|o| !o.is_empty())
}

/// The client host of a provider call: the part of its `op` before `#` (the whole `op` when it
/// has no `#`; `""` when it has none).
pub fn client_host(e: &Event) -> &str {
    let op = e.str("op").unwrap_or("");
    op.split_once('#').map_or(op, |(host, _)| host)
}

/// When a provider call reached the provider: its event's time less its latency.
pub fn started(e: &Event) -> u64 {
    e.t_us.saturating_sub(e.u64("latency_us").unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::judge::invariants::test_support::ev;

    #[test]
    fn calls_of_the_system_name_their_client() {
        let call = |op: &str| ev(5, "p", PROVIDER_TARGET, "call", &[("op", json!(op))]);
        assert!(is_system_call(&call("worker-r-0#3.17")));
        assert_eq!(client_host(&call("worker-r-0#3.17")), "worker-r-0");
        assert_eq!(client_host(&call("bare")), "bare");
        assert!(!is_system_call(&call("")));
        assert_eq!(client_host(&call("")), "");
        let not_a_call = ev(5, "p", PROVIDER_TARGET, "fleet", &[("op", json!("a#1"))]);
        assert!(!is_system_call(&not_a_call));
    }
}
