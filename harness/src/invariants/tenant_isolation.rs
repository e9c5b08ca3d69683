//! `tenant_isolation`: the system never crosses from one tenant's lake into another's, and
//! only the system itself assumes the lakes' roles.
//!
//! Checks:
//! - no S3 `call` by a lake account (`3{i:011}`, the credentials of lake `i`'s role) names
//!   another lake's bucket (`lake-{j:05}`, j ≠ i). The fake S3 fills `resource` with the ARN
//!   `arn:aws:s3:::BUCKET` or `arn:aws:s3:::BUCKET/KEY`; a bare bucket name is read too. Every
//!   outcome counts: a call refused with `AccessDenied` still shows the system using one
//!   tenant's role on another's data. Buckets that are not lakes are not judged.
//! - every STS `AssumeRole` call comes from the system's account: none from a lake account
//!   (role chaining out of a tenant's role) or any other. Background accounts (other customers,
//!   assuming their own roles) and unauthenticated calls (`anonymous`, refused before any role
//!   is looked at) are not the system's and are left out.
//!
//! Does not check: whether a query returned rows from a lake its user is not entitled to. No
//! event links a provider call to a query, and entitlement is not an event (a trace may select
//! `"all"` lakes for any tenant); that needs the lakes a query read (`task_done` has them) and
//! the lakes its user may read (on `accepted`).

use serde_json::json;

use super::calls::is_call;
use super::obj;
use super::time::secs;
use super::vocabulary::{PROVIDER_TARGET, SYSTEM_ACCOUNT, is_background, lake_of_account};
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};

/// The lake a bucket holds: `lake-{i:05}`.
fn lake_of_bucket(bucket: &str) -> Option<u64> {
    let digits = bucket.strip_prefix("lake-")?;
    if digits.len() == 5 && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

/// The bucket an S3 call's `resource` names.
fn bucket_of(resource: &str) -> &str {
    let path = resource.strip_prefix("arn:aws:s3:::").unwrap_or(resource);
    path.split('/').next().unwrap_or(path)
}

/// Checks lake accounts' S3 calls against their own bucket, and who calls `AssumeRole`.
pub fn tenant_isolation(log: &EventLog) -> Verdict {
    let (mut lake_reads, mut assumes) = (0u64, 0u64);
    let (mut crossings, mut foreign_assumes) = (Vec::new(), Vec::new());
    for e in log.of(PROVIDER_TARGET).filter(|e| is_call(e)) {
        let account = e.str("account").unwrap_or("");
        match e.str("service") {
            Some("s3") => {
                let Some(own) = lake_of_account(account) else {
                    continue;
                };
                lake_reads += 1;
                let bucket = bucket_of(e.str("resource").unwrap_or(""));
                if lake_of_bucket(bucket).is_some_and(|other| other != own) {
                    crossings.push(e);
                }
            }
            Some("sts") if e.str("api") == Some("AssumeRole") => {
                if is_background(account) || account == "anonymous" {
                    continue;
                }
                assumes += 1;
                if account != SYSTEM_ACCOUNT {
                    foreign_assumes.push(e);
                }
            }
            _ => {}
        }
    }
    if lake_reads == 0 && assumes == 0 {
        return Verdict::Unknown {
            why: "the system neither assumed a role nor called S3 as a lake".into(),
        };
    }
    if crossings.is_empty() && foreign_assumes.is_empty() {
        return Verdict::Pass {
            counts: obj(json!({ "lake_s3_calls": lake_reads, "assume_role_calls": assumes })),
        };
    }
    let mut offending: Vec<&Event> = crossings.iter().chain(&foreign_assumes).copied().collect();
    offending.sort_by_key(|e| e.t_us);
    let first = offending[0];
    let what = if first.str("service") == Some("s3") {
        format!(
            "lake account {} called {} on `{}`",
            first.str("account").unwrap_or("?"),
            first.str("api").unwrap_or("?"),
            first.str("resource").unwrap_or("?")
        )
    } else {
        format!(
            "account {} assumed `{}`",
            first.str("account").unwrap_or("?"),
            first.str("resource").unwrap_or("?")
        )
    };
    Verdict::Fail {
        witness: Witness {
            summary: format!(
                "{} S3 calls crossed into another lake's bucket and {} AssumeRole calls came from an account not the system's; the first at t={}: {what}",
                crossings.len(),
                foreign_assumes.len(),
                secs(first.t_us)
            ),
            counts: obj(json!({
                "cross_lake_s3_calls": crossings.len(), "foreign_assume_role_calls": foreign_assumes.len(),
                "lake_s3_calls": lake_reads, "assume_role_calls": assumes,
            })),
            events: offending
                .into_iter()
                .take(WITNESS_EVENTS)
                .cloned()
                .collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::test_support::ev;

    fn call(t_us: u64, service: &str, api: &str, account: &str, resource: &str) -> Event {
        ev(
            t_us,
            "provider-r",
            PROVIDER_TARGET,
            "call",
            &[
                ("account", json!(account)),
                ("service", json!(service)),
                ("api", json!(api)),
                ("resource", json!(resource)),
                ("outcome", json!("ok")),
                ("latency_us", json!(0)),
            ],
        )
    }

    fn assume(t_us: u64, account: &str) -> Event {
        let role = "arn:aws:iam::300000000007:role/stampede-lake-reader";
        call(t_us, "sts", "AssumeRole", account, role)
    }

    fn check(events: Vec<Event>) -> Verdict {
        tenant_isolation(&EventLog::from_events(events))
    }

    #[test]
    fn each_lake_reading_its_own_bucket_passes() {
        let v = check(vec![
            assume(1, SYSTEM_ACCOUNT),
            call(
                2,
                "s3",
                "GetObject",
                "300000000007",
                "arn:aws:s3:::lake-00007/telemetry/part-00000.parquet",
            ),
            call(
                3,
                "s3",
                "ListObjectsV2",
                "300000000012",
                "arn:aws:s3:::lake-00012",
            ),
            // The system's own bucket, and other customers' role sessions.
            call(
                4,
                "s3",
                "GetObject",
                SYSTEM_ACCOUNT,
                "arn:aws:s3:::stampede-system/config.json",
            ),
            assume(5, "200000000001"),
            assume(6, "anonymous"),
        ]);
        let Verdict::Pass { counts } = v else {
            panic!("{v:?}")
        };
        assert_eq!(counts["lake_s3_calls"], json!(2));
        assert_eq!(counts["assume_role_calls"], json!(1));
    }

    #[test]
    fn reading_another_lake_fails() {
        let v = check(vec![
            call(
                2,
                "s3",
                "GetObject",
                "300000000007",
                "arn:aws:s3:::lake-00007/a",
            ),
            call(
                3,
                "s3",
                "GetObject",
                "300000000007",
                "arn:aws:s3:::lake-00008/a",
            ),
        ]);
        let Verdict::Fail { witness } = v else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["cross_lake_s3_calls"], json!(1));
        assert_eq!(witness.events[0].t_us, 3);
    }

    #[test]
    fn assuming_a_role_from_a_lake_fails() {
        let v = check(vec![assume(1, SYSTEM_ACCOUNT), assume(2, "300000000003")]);
        let Verdict::Fail { witness } = v else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["foreign_assume_role_calls"], json!(1));
    }

    #[test]
    fn nothing_to_judge_is_unknown() {
        assert_eq!(check(vec![assume(1, "200000000001")]).word(), "unknown");
    }
}
