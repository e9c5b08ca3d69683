//! DataFusion's three jobs in the system: validate a query against the telemetry schema before
//! anything costs a provider call; run one lake's fragment (the query's columns, read from the
//! lake's Parquet through `object_store`); merge the fragments and run the query over them.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::catalog::{MemTable, TableProvider};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::collect;
use datafusion::prelude::{SessionConfig, SessionContext};
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};
use url::Url;

/// The name of the table every query is written against.
pub const TABLE: &str = "telemetry";

/// Partitions DataFusion plans with. Fixed, so that a plan does not depend on the machine's cores.
pub const TARGET_PARTITIONS: usize = 4;

/// A query's answer: column names and rows of display-formatted cells, in the engine's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, each cell formatted as text (nulls as empty strings).
    pub rows: Vec<Vec<String>>,
}

impl Answer {
    /// The rows sorted, so answers can be compared whatever order the engine produced.
    pub fn normalised(mut self) -> Self {
        self.rows.sort();
        self
    }
}

/// Formats every cell of `batches` as text.
pub fn rows_of(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, DataFusionError> {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect(),
            );
        }
    }
    Ok(rows)
}

/// The telemetry schema every lake's table has: `ts`, `src_ip`, `dst_ip`, `domain`, `sha256`,
/// `bytes`.
pub fn telemetry_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("src_ip", DataType::Utf8, false),
        Field::new("dst_ip", DataType::Utf8, false),
        Field::new("domain", DataType::Utf8, false),
        Field::new("sha256", DataType::Utf8, false),
        Field::new("bytes", DataType::Int64, false),
    ]))
}

/// A query that failed validation, with where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct SqlError {
    /// 1-based line of the offending token.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
    /// What is wrong.
    pub message: String,
}

/// A query and the columns its fragments must read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The query.
    pub sql: String,
    /// Columns of `telemetry` it reads (at least one, so that counts still count rows).
    pub columns: Vec<String>,
    /// Whether the SQL was checked against the schema. An unchecked plan reads every column,
    /// and its SQL goes with each task, where the worker finds out.
    #[serde(default = "checked")]
    pub validated: bool,
}

fn checked() -> bool {
    true
}

/// A plan for SQL nobody checked: every column of `telemetry`, the SQL as it came.
pub fn unvalidated(sql: &str) -> Plan {
    Plan {
        sql: sql.to_string(),
        columns: telemetry_schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect(),
        validated: false,
    }
}

/// A session for SQL over tables in memory: validation and the merge read no Parquet.
fn session() -> Result<SessionContext, DataFusionError> {
    let mut config = SessionConfig::new().with_target_partitions(TARGET_PARTITIONS);
    config.options_mut().sql_parser.collect_spans = true;
    Ok(SessionContext::new_with_config(config))
}

fn sql_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Where an error points: DataFusion's diagnostic span, or the parser's `Line: l, Column: c`.
fn position(e: &DataFusionError) -> (u64, u64) {
    if let Some(span) = e.diagnostic().and_then(|d| d.span) {
        return (span.start.line, span.start.column);
    }
    let text = e.to_string();
    let number_after = |tag: &str| {
        let at = text.find(tag)? + tag.len();
        text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u64>()
            .ok()
    };
    match (number_after("Line: "), number_after("Column: ")) {
        (Some(l), Some(c)) => (l, c),
        _ => (1, 1),
    }
}

/// Validates `sql` against the telemetry schema, reading nothing: plans it over an empty table.
pub async fn validate(sql: &str) -> Result<Plan, SqlError> {
    let invalid = |e: DataFusionError| {
        let (line, column) = position(&e);
        SqlError {
            line,
            column,
            message: e.strip_backtrace(),
        }
    };
    let ctx = session().map_err(invalid)?;
    let empty = MemTable::try_new(telemetry_schema(), vec![vec![]]).map_err(invalid)?;
    ctx.register_table(TABLE, Arc::new(empty))
        .map_err(invalid)?;
    let df = ctx
        .sql_with_options(sql, sql_options())
        .await
        .map_err(invalid)?;
    let plan = ctx.state().optimize(df.logical_plan()).map_err(invalid)?;
    let schema = telemetry_schema();
    let mut used = std::collections::BTreeSet::new();
    let mut scans = 0;
    plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            scans += 1;
            match &scan.projection {
                Some(p) => used.extend(p.iter().copied()),
                None => used.extend(0..schema.fields().len()),
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map_err(invalid)?;
    if scans == 0 {
        return Err(SqlError {
            line: 1,
            column: 1,
            message: format!("the query reads no lake: it must select from `{TABLE}`"),
        });
    }
    if used.is_empty() {
        used.insert(0);
    }
    Ok(Plan {
        sql: sql.to_string(),
        columns: used
            .into_iter()
            .map(|i| schema.field(i).name().clone())
            .collect(),
        validated: true,
    })
}

/// Reads `columns` of one lake's `files` (`s3://bucket/key`) through `store`.
///
/// A fragment only scans, so it asks the table for its scan plan and runs it: no SQL, no
/// catalog, no optimiser passes over a plan that is one scan. Its session is built bare, with
/// no function registry, and its runtime keeps the Parquet footers it reads, so a footer read
/// to plan (file statistics) is not read again to scan. That cache lives and dies with the
/// fragment, which reads one lake: two lakes' files under the same key never meet in it.
pub async fn fragment(
    store: Arc<dyn ObjectStore>,
    bucket: &str,
    files: &[String],
    columns: &[String],
) -> Result<Vec<RecordBatch>, DataFusionError> {
    let url = Url::parse(&format!("s3://{bucket}"))
        .map_err(|e| DataFusionError::Plan(format!("bad bucket `{bucket}`: {e}")))?;
    let runtime = RuntimeEnvBuilder::new().build_arc()?;
    runtime.register_object_store(&url, store);
    // One partition: DataFusion runs each further partition on a task of its own, and a
    // spawned task loses the guard's task-locals (the query, the delivery, the deadline), so
    // its reads would reach the provider charged to no query and outside the one retry layer.
    // A fragment's few small files gain nothing from more.
    let state = SessionStateBuilder::new()
        .with_config(SessionConfig::new().with_target_partitions(1))
        .with_runtime_env(runtime)
        .build();
    let urls = files
        .iter()
        .map(ListingTableUrl::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let schema = telemetry_schema();
    let projection = columns
        .iter()
        .map(|c| schema.index_of(c))
        .collect::<Result<Vec<_>, _>>()?;
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    let scan = ListingTable::try_new(config)?
        .scan(&state, Some(&projection), &[], None)
        .await?;
    collect(scan, state.task_ctx()).await
}

/// Runs `plan` over the fragments of every lake.
pub async fn merge(plan: &Plan, fragments: Vec<RecordBatch>) -> Result<Answer, DataFusionError> {
    let ctx = session()?;
    let full = telemetry_schema();
    let schema: SchemaRef = Arc::new(Schema::new(
        plan.columns
            .iter()
            .map(|c| full.field_with_name(c).cloned())
            .collect::<Result<Vec<_>, _>>()?,
    ));
    let table = MemTable::try_new(schema, vec![fragments])?;
    ctx.register_table(TABLE, Arc::new(table))?;
    let df = ctx.sql_with_options(&plan.sql, sql_options()).await?;
    let columns = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let batches = df.collect().await?;
    Ok(Answer {
        columns,
        rows: rows_of(&batches)?,
    })
}

/// Batches as an Arrow IPC stream.
pub fn to_ipc(batches: &[RecordBatch], schema: &SchemaRef) -> Result<Vec<u8>, DataFusionError> {
    let mut out = Vec::new();
    let mut w = StreamWriter::try_new(&mut out, schema)?;
    for b in batches {
        w.write(b)?;
    }
    w.finish()?;
    drop(w);
    Ok(out)
}

/// Batches from an Arrow IPC stream.
pub fn from_ipc(bytes: &[u8]) -> Result<Vec<RecordBatch>, DataFusionError> {
    let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None)?;
    Ok(reader.collect::<Result<Vec<_>, _>>()?)
}

/// The schema of a fragment of `plan`.
pub fn fragment_schema(columns: &[String]) -> Result<SchemaRef, DataFusionError> {
    let full = telemetry_schema();
    Ok(Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| full.field_with_name(c).cloned())
            .collect::<Result<Vec<_>, _>>()?,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn validation_finds_the_columns_and_points_at_errors() {
        let p = validate("SELECT domain, count(*) FROM telemetry WHERE bytes > 10 GROUP BY domain")
            .await
            .unwrap();
        assert_eq!(p.columns, vec!["domain", "bytes"]);
        let p = validate("SELECT count(*) FROM telemetry").await.unwrap();
        assert_eq!(p.columns, vec!["ts"]);
        let e = validate("SELECT domain\nFROM telemetry\nWHERE nope = 1")
            .await
            .unwrap_err();
        assert_eq!((e.line, e.column), (3, 7), "{e}");
        let e = validate("SELECT domain FROM telemetry WHER x")
            .await
            .unwrap_err();
        assert_eq!(e.line, 1, "{e}");
        assert!(e.column > 1, "{e}");
        assert!(validate("DROP TABLE telemetry").await.is_err());
        assert!(validate("SELECT 1").await.is_err(), "reads no lake");
    }
}
