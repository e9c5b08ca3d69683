//! `tenant_isolation`: no query returns rows from a lake its user is not entitled to, and no
//! one but a lake's own role touches the lake's data.
//!
//! Judged on the provider's log and on what the users received, never on the system's own
//! account of what it did:
//! - **Rows**: a query whose user received rows (the replay client's `answered`, `rows` > 0)
//!   while the provider served it (an `ok` S3 call carrying the query's id) data of a lake its
//!   tenant is not entitled to. The tenant is the one the replay client submitted for
//!   (`submitted`); entitlement is the world's ([`Tenancy`]): a tenant's own lakes, or every
//!   lake when the world shares them.
//! - **Data**: an S3 or catalog call on lake `i`'s bucket (`arn:aws:s3:::lake-{i:05}…`) or
//!   catalog (`arn:aws:glue:…:3{i:011}:…`) by any account but lake `i`'s own, whatever its
//!   outcome: the system reading a lake with its own credentials (the confused deputy), or one
//!   lake's role on another's data. A refused call still shows the attempt. Background accounts
//!   and unauthenticated calls are not the system's and are left out.
//! - **Roles**: every STS `AssumeRole` call comes from the system's account: none from a lake
//!   account (role chaining out of a tenant's role) or any other.

use std::collections::BTreeMap;

use serde_json::json;

use super::calls::is_call;
use super::obj;
use super::time::secs;
use super::vocabulary::{
    PROVIDER_TARGET, SYSTEM_ACCOUNT, TRAFFIC_TARGET, is_background, lake_of_account,
};
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};

/// Who may read which lake: the world's tenancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tenancy {
    /// How many tenants own the lakes; lake `i` is tenant `i mod tenants`'s.
    pub tenants: u32,
    /// Every lake is shared with every tenant.
    pub shared: bool,
}

impl Tenancy {
    /// Whether users of `tenant` may read lake `lake`.
    fn entitles(&self, tenant: &str, lake: u64) -> bool {
        self.shared
            || stampede_fakes::lakes::tenant_name((lake % u64::from(self.tenants.max(1))) as u32)
                == tenant
    }
}

/// The lake a bucket holds: `lake-{i:05}`.
fn lake_of_bucket(bucket: &str) -> Option<u64> {
    let digits = bucket.strip_prefix("lake-")?;
    if digits.len() == 5 && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

/// The lake whose data a provider call's `resource` names: its bucket, or its catalog.
fn lake_of_resource(service: &str, resource: &str) -> Option<u64> {
    match service {
        "s3" => {
            let path = resource.strip_prefix("arn:aws:s3:::").unwrap_or(resource);
            lake_of_bucket(path.split('/').next().unwrap_or(path))
        }
        // arn:aws:glue:{region}:{account}:...
        "glue" => lake_of_account(resource.split(':').nth(4)?),
        _ => None,
    }
}

/// What a query's user got: its tenant, and the rows of its answer.
#[derive(Default)]
struct Answered<'a> {
    tenant: &'a str,
    rows: u64,
    answered: Option<&'a Event>,
}

/// Checks who touched lakes' data and roles, and which lakes' rows each user received.
pub fn tenant_isolation(log: &EventLog, tenancy: Tenancy) -> Verdict {
    // The replay client's view: seq -> tenant, query id -> what its user received.
    let mut tenant_of_seq = BTreeMap::new();
    let mut queries: BTreeMap<&str, Answered> = BTreeMap::new();
    for e in log.of(TRAFFIC_TARGET) {
        let Some(seq) = e.u64("seq") else { continue };
        match e.name.as_str() {
            "submitted" => {
                tenant_of_seq.insert(seq, e.str("tenant").unwrap_or(""));
            }
            "answered" if e.u64("rows").unwrap_or(0) > 0 => {
                let Some(id) = e.str("query_id") else {
                    continue;
                };
                queries.insert(
                    id,
                    Answered {
                        tenant: tenant_of_seq.get(&seq).copied().unwrap_or(""),
                        rows: e.u64("rows").unwrap_or(0),
                        answered: Some(e),
                    },
                );
            }
            _ => {}
        }
    }
    let (mut lake_calls, mut assumes, mut served_reads) = (0u64, 0u64, 0u64);
    let (mut foreign, mut foreign_assumes, mut leaks) = (Vec::new(), Vec::new(), Vec::new());
    for e in log.of(PROVIDER_TARGET).filter(|e| is_call(e)) {
        let account = e.str("account").unwrap_or("");
        if is_background(account) || account == "anonymous" {
            continue;
        }
        let service = e.str("service").unwrap_or("");
        if service == "sts" && e.str("api") == Some("AssumeRole") {
            assumes += 1;
            if account != SYSTEM_ACCOUNT {
                foreign_assumes.push(e);
            }
            continue;
        }
        let Some(lake) = lake_of_resource(service, e.str("resource").unwrap_or("")) else {
            continue;
        };
        lake_calls += 1;
        if lake_of_account(account) != Some(lake) {
            foreign.push(e);
        }
        if service == "s3" && e.str("outcome") == Some("ok") {
            served_reads += 1;
            let query = e.str("query_id").unwrap_or("");
            if let Some(q) = queries.get(query)
                && !tenancy.entitles(q.tenant, lake)
            {
                leaks.push((e, q));
            }
        }
    }
    if lake_calls == 0 && assumes == 0 {
        return Verdict::Unknown {
            why: "the system neither assumed a role nor touched a lake's bucket or catalog".into(),
        };
    }
    let counts = json!({
        "lake_calls": lake_calls, "lake_reads_served": served_reads,
        "assume_role_calls": assumes, "queries_with_rows": queries.len(),
    });
    if foreign.is_empty() && foreign_assumes.is_empty() && leaks.is_empty() {
        return Verdict::Pass {
            counts: obj(counts),
        };
    }
    let mut offending: Vec<&Event> = leaks
        .iter()
        .flat_map(|(e, q)| [*e].into_iter().chain(q.answered))
        .chain(foreign.iter().copied())
        .chain(foreign_assumes.iter().copied())
        .collect();
    offending.sort_by_key(|e| e.t_us);
    offending.dedup_by_key(|e| (e.t_us, e.host.clone(), e.name.clone()));
    let what = if let Some((e, q)) = leaks.first() {
        format!(
            "a user of {} received {} rows of query {} while the provider served it `{}` at t={}, a lake {} is not entitled to",
            q.tenant,
            q.rows,
            e.str("query_id").unwrap_or("?"),
            e.str("resource").unwrap_or("?"),
            secs(e.t_us),
            q.tenant
        )
    } else if let Some(e) = foreign.first() {
        format!(
            "account {} called {} on `{}` at t={}, a lake not its own",
            e.str("account").unwrap_or("?"),
            e.str("api").unwrap_or("?"),
            e.str("resource").unwrap_or("?"),
            secs(e.t_us)
        )
    } else {
        let e = foreign_assumes[0];
        format!(
            "account {} assumed `{}` at t={}",
            e.str("account").unwrap_or("?"),
            e.str("resource").unwrap_or("?"),
            secs(e.t_us)
        )
    };
    let mut counts = counts;
    counts["rows_from_unentitled_lakes"] = json!(leaks.len());
    counts["calls_on_another_accounts_lake"] = json!(foreign.len());
    counts["foreign_assume_role_calls"] = json!(foreign_assumes.len());
    Verdict::Fail {
        witness: Witness {
            summary: format!(
                "{} reads served rows to users not entitled to them, {} calls touched a lake from another account, {} AssumeRole calls came from an account not the system's; {what}",
                leaks.len(),
                foreign.len(),
                foreign_assumes.len(),
            ),
            counts: obj(counts),
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
    use crate::judge::invariants::test_support::ev;

    const FOUR: Tenancy = Tenancy {
        tenants: 4,
        shared: false,
    };

    fn call(t_us: u64, service: &str, api: &str, account: &str, resource: &str) -> Event {
        read(t_us, service, api, account, resource, "")
    }

    fn read(
        t_us: u64,
        service: &str,
        api: &str,
        account: &str,
        resource: &str,
        query: &str,
    ) -> Event {
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
                ("query_id", json!(query)),
            ],
        )
    }

    fn assume(t_us: u64, account: &str) -> Event {
        let role = "arn:aws:iam::300000000007:role/stampede-lake-reader";
        call(t_us, "sts", "AssumeRole", account, role)
    }

    fn traffic(t_us: u64, name: &str, fields: &[(&str, serde_json::Value)]) -> Event {
        ev(t_us, "traffic", TRAFFIC_TARGET, name, fields)
    }

    fn check(events: Vec<Event>) -> Verdict {
        tenant_isolation(&EventLog::from_events(events), FOUR)
    }

    #[test]
    fn each_lake_read_by_its_own_role_passes() {
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
                "glue",
                "GetTable",
                "300000000012",
                "arn:aws:glue:r:300000000012:table/telemetry_lake/telemetry",
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
        assert_eq!(counts["lake_calls"], json!(2));
        assert_eq!(counts["assume_role_calls"], json!(1));
    }

    #[test]
    fn reading_another_lake_or_a_lake_as_the_system_fails() {
        let v = check(vec![
            call(
                2,
                "s3",
                "GetObject",
                "300000000007",
                "arn:aws:s3:::lake-00008/a",
            ),
            call(
                3,
                "glue",
                "GetTable",
                SYSTEM_ACCOUNT,
                "arn:aws:glue:r:300000000003:table/telemetry_lake/telemetry",
            ),
        ]);
        let Verdict::Fail { witness } = v else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["calls_on_another_accounts_lake"], json!(2));
        assert_eq!(witness.events[0].t_us, 2);
    }

    #[test]
    fn rows_of_a_lake_the_users_tenant_may_not_read_fail_and_shared_lakes_pass() {
        let events = vec![
            traffic(
                1,
                "submitted",
                &[("seq", json!(0)), ("tenant", json!("tenant-01"))],
            ),
            traffic(
                2,
                "accepted",
                &[("seq", json!(0)), ("query_id", json!("c-q0"))],
            ),
            // Lake 4 is tenant-00's; lake 5 is tenant-01's. Both read by their own roles.
            read(
                3,
                "s3",
                "GetObject",
                "300000000005",
                "arn:aws:s3:::lake-00005/k",
                "c-q0",
            ),
            read(
                4,
                "s3",
                "GetObject",
                "300000000004",
                "arn:aws:s3:::lake-00004/k",
                "c-q0",
            ),
            traffic(
                5,
                "answered",
                &[
                    ("seq", json!(0)),
                    ("query_id", json!("c-q0")),
                    ("status", json!(200)),
                    ("rows", json!(3)),
                ],
            ),
        ];
        let v = check(events.clone());
        let Verdict::Fail { witness } = v else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["rows_from_unentitled_lakes"], json!(1));
        assert!(
            witness.summary.contains("lake-00004"),
            "{}",
            witness.summary
        );
        let shared = Tenancy {
            tenants: 4,
            shared: true,
        };
        assert_eq!(
            tenant_isolation(&EventLog::from_events(events), shared).word(),
            "pass"
        );
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
