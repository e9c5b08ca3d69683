//! Runs a researcher's SQL with DataFusion over the Parquet files of a set of lakes.
//!
//! Each lake is a bucket read through `object_store`'s S3 client; the lakes are unioned into
//! the `telemetry` view the SQL is written against.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::DataFusionError;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, RetryConfig};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::http_client::DialerConnector;
use crate::transport::Dialer;

/// The name of the table every query is written against.
pub const TABLE: &str = "telemetry";

/// Where a lake's table lives inside its bucket.
pub const TABLE_PREFIX: &str = "telemetry/";

/// Partitions DataFusion plans with. Fixed, so that a plan does not depend on the machine's cores.
pub const TARGET_PARTITIONS: usize = 4;

/// One lake to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LakeRef {
    /// Its bucket.
    pub bucket: String,
    /// The region the bucket lives in.
    pub region: String,
}

/// How to reach the object store of each region, and as whom.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// S3 endpoint by region, e.g. `http://provider-eu-west-1:9000`.
    pub s3_endpoints: BTreeMap<String, String>,
    /// Access key id the system signs with.
    pub access_key_id: String,
    /// Secret the system signs with.
    pub secret_access_key: String,
}

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

/// Why a query could not be answered, by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The query selects no lakes.
    #[error("the query selects no lakes")]
    NoLakes,
    /// A lake is in a region the system has no endpoint for.
    #[error("no object store endpoint for region `{0}`")]
    UnknownRegion(String),
    /// A bucket name that cannot be a URL host.
    #[error("bad bucket name `{0}`")]
    BadBucket(String),
    /// The object store client could not be built.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// Planning or execution failed (bad SQL, unreadable data, provider errors).
    #[error("{0}")]
    DataFusion(#[from] DataFusionError),
}

/// Reads lakes through S3 clients that dial over the given transport.
#[derive(Debug, Clone)]
pub struct Engine {
    dialer: Arc<dyn Dialer>,
    config: StoreConfig,
}

impl Engine {
    /// An engine reaching the stores of `config` over `dialer`.
    pub fn new(dialer: Arc<dyn Dialer>, config: StoreConfig) -> Self {
        Self { dialer, config }
    }

    fn store(&self, lake: &LakeRef) -> Result<Arc<dyn ObjectStore>, EngineError> {
        let endpoint = self
            .config
            .s3_endpoints
            .get(&lake.region)
            .ok_or_else(|| EngineError::UnknownRegion(lake.region.clone()))?;
        // object_store's own retries are off: retrying belongs to the system, and its backoff
        // would draw on unseeded randomness.
        let retry = RetryConfig {
            max_retries: 0,
            retry_timeout: std::time::Duration::ZERO,
            ..RetryConfig::default()
        };
        let store = AmazonS3Builder::new()
            .with_http_connector(DialerConnector::new(self.dialer.clone()))
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_region(&lake.region)
            .with_bucket_name(&lake.bucket)
            .with_access_key_id(&self.config.access_key_id)
            .with_secret_access_key(&self.config.secret_access_key)
            .with_retry(retry)
            .build()?;
        Ok(Arc::new(store))
    }

    /// Runs `sql` over the union of `lakes`. Only queries are allowed: no DDL, DML or `SET`.
    pub async fn query(&self, sql: &str, lakes: &[LakeRef]) -> Result<Answer, EngineError> {
        if lakes.is_empty() {
            return Err(EngineError::NoLakes);
        }
        let config = SessionConfig::new().with_target_partitions(TARGET_PARTITIONS);
        // DataFusion 55 caches Parquet footers by object path alone, checked only by size and
        // last-modified time. Every lake has the same keys in its own bucket, so two lakes'
        // files of equal size and time would share a footer and the query would read one
        // lake's data with the other's offsets: wrong answers or decode errors. Off it goes.
        let caches = CacheManagerConfig::default().with_metadata_cache_limit(0);
        let runtime = RuntimeEnvBuilder::new()
            .with_cache_manager(caches)
            .build_arc()?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        let mut selects = Vec::with_capacity(lakes.len());
        for lake in lakes {
            let url = Url::parse(&format!("s3://{}", lake.bucket))
                .map_err(|_| EngineError::BadBucket(lake.bucket.clone()))?;
            ctx.register_object_store(&url, self.store(lake)?);
            let table = table_name(&lake.bucket);
            let location = format!("s3://{}/{TABLE_PREFIX}", lake.bucket);
            ctx.register_parquet(&table, &location, ParquetReadOptions::default())
                .await?;
            selects.push(format!("SELECT * FROM {table}"));
        }
        let view = ctx
            .sql(&format!("SELECT * FROM ({})", selects.join(" UNION ALL ")))
            .await?;
        ctx.register_table(TABLE, view.into_view())?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = ctx.sql_with_options(sql, options).await?;
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
}

/// The SQL identifier a lake's table is registered under.
fn table_name(bucket: &str) -> String {
    bucket.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
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
