//! Answers in the simulation equal DataFusion run directly, outside the simulation, over the
//! same generated Parquet files held in memory.

use std::sync::Arc;

use datafusion::prelude::{ParquetReadOptions, SessionContext};
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use stampede::input::trace::LakeSelector;
use stampede::world::lower::{lake_directory, submissions};
use stampede_system::engine::rows_of;

use crate::scenario;

/// The same SQL over the same files, outside the simulation: every lake's files in one in-memory
/// store under a prefix of its own (so no two files share a path), read as one table.
pub async fn direct(
    sql: &str,
    lakes: &stampede_fakes::LakeDirectory,
    ids: &[u32],
) -> Vec<Vec<String>> {
    // Every lake's files sit in subfolders of one prefix: list them all.
    let config = datafusion::prelude::SessionConfig::new().set_bool(
        "datafusion.execution.listing_table_ignore_subdirectory",
        false,
    );
    let ctx = SessionContext::new_with_config(config);
    let store = Arc::new(InMemory::new());
    ctx.register_object_store(
        &url::Url::parse("memory://").unwrap(),
        store.clone() as Arc<dyn ObjectStore>,
    );
    for &i in ids {
        let bucket = lakes.bucket(i);
        for key in lakes.keys() {
            let data = lakes.generate(i, &key);
            store
                .put(
                    &format!("lakes/{bucket}/{key}").as_str().into(),
                    PutPayload::from(data),
                )
                .await
                .unwrap();
        }
    }
    ctx.register_parquet(
        "telemetry",
        "memory:///lakes/",
        ParquetReadOptions::default(),
    )
    .await
    .unwrap();
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let mut rows = rows_of(&batches).unwrap();
    rows.sort();
    rows
}

#[test]
fn simulated_answers_equal_direct_datafusion() {
    let prepared = stampede::prepare(&scenario("smoke.yaml")).unwrap();
    let seed = 7;
    let lakes = lake_directory(&prepared.scenario, seed);
    let subs = submissions(&prepared.scenario, &lakes, &prepared.trace).unwrap();
    let report = stampede::run(prepared, Some(seed)).unwrap();
    assert_eq!(report.replies.len(), subs.len());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut non_empty = 0;
    for (sub, reply) in subs.iter().zip(&report.replies) {
        assert_eq!(reply.status, 200, "query {} failed", sub.seq);
        let answer = reply.answer.as_ref().expect("a succeeded query has rows");
        let ids: Vec<u32> = match &sub.record.lakes {
            LakeSelector::All => (0..lakes.count).collect(),
            LakeSelector::Tenant(t) => (0..lakes.count)
                .filter(|&i| &lakes.tenant(i) == t)
                .collect(),
            LakeSelector::Ids(ids) => ids.clone(),
        };
        let expected = rt.block_on(direct(&sub.record.sql, &lakes, &ids));
        assert_eq!(
            answer.rows, expected,
            "query {}: {}",
            sub.seq, sub.record.sql
        );
        non_empty += usize::from(!expected.is_empty());
    }
    assert!(
        non_empty >= 8,
        "the smoke queries should mostly return rows"
    );
    // count(*) over tenant-00's 5 lakes x 2 files x 500 rows, computed by hand.
    assert_eq!(
        report.replies[0].answer.as_ref().unwrap().rows,
        vec![vec!["5000".to_string()]]
    );
}

#[test]
fn the_system_validates_against_the_schema_the_lakes_have() {
    // Written twice on purpose: the system knows nothing of the fakes.
    assert_eq!(
        stampede_system::engine::telemetry_schema(),
        stampede_fakes::lakes::telemetry_schema()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_client_judges_sql_without_the_systems_validator_and_they_agree_on_the_traces() {
    use stampede::world::traffic::sql_is_valid;
    assert!(sql_is_valid("SELECT domain, count(*) FROM telemetry GROUP BY domain").await);
    assert!(
        !sql_is_valid("SELECT domian FROM telemetry").await,
        "no such column"
    );
    assert!(
        !sql_is_valid("SELECT * FROM nowhere").await,
        "no such table"
    );
    assert!(!sql_is_valid("SELEC 1").await, "not SQL");
    assert!(
        !sql_is_valid("CREATE TABLE t (a INT)").await,
        "not read-only"
    );
    // Every SQL of the shipped traces: the client's check and the system's validator agree,
    // except where the system refuses valid SQL that reads no lake.
    let mut checked = 0;
    for trace in [
        "smoke",
        "invalid-sql",
        "tenants",
        "priorities",
        "fanout-all",
    ] {
        let text =
            std::fs::read_to_string(crate::scenario(&format!("traces/{trace}.jsonl"))).unwrap();
        for line in text.lines().skip(1) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let sql = v["sql"].as_str().unwrap();
            let client = sql_is_valid(sql).await;
            let system = stampede_system::engine::validate(sql).await;
            let reads_no_lake = system
                .as_ref()
                .err()
                .is_some_and(|e| e.message.contains("reads no lake"));
            assert!(
                client == system.is_ok() || (client && reads_no_lake),
                "{trace}: {sql}"
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "{checked}");
}
