//! The catalog: a Glue-compatible service on the JSON 1.1 protocol (`X-Amz-Target:
//! AWSGlue.*`): databases, tables and partitions, paginated, behind the metadata fleet.
//!
//! Each lake's account has one database, `telemetry_lake`, with one table, `telemetry`, whose
//! files are its partitions (`part` = the file's index), so a lake with many files pages.
//! A caller sees its own account's catalog, or another account's by passing its `CatalogId`
//! where that catalog's resource policy lets it (`Iam::may_read_catalog`).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use crate::iam::{Iam, Identity, lake_account};
use crate::lakes::LakeDirectory;
use crate::provider::{Admission, CallOutcome, ProviderCall, ProviderRegion};
use crate::sigv4::{Endpoint, Refusal, verify};

/// The database every lake account has.
pub const DATABASE: &str = "telemetry_lake";
/// The table in it.
pub const TABLE: &str = "telemetry";

/// Default and largest page sizes.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// One region's catalog.
#[derive(Debug, Clone)]
pub struct GlueFake {
    region: ProviderRegion,
    iam: Iam,
    lakes: LakeDirectory,
}

#[derive(Debug)]
struct GlueError {
    status: StatusCode,
    code: &'static str,
    message: String,
    outcome: CallOutcome,
}

impl GlueError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
            outcome: CallOutcome::Error(code.into()),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new("EntityNotFoundException", message)
    }
}

impl GlueFake {
    /// The catalog of `region` over the world's `lakes`.
    pub fn new(region: ProviderRegion, iam: Iam, lakes: LakeDirectory) -> Self {
        Self { region, iam, lakes }
    }

    /// The HTTP routes: `POST /`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", post(handle))
            .with_state(self.clone())
    }

    /// The lake whose catalog `input` addresses, if the caller may read it.
    fn catalog(&self, caller: &Identity, input: &Value) -> Result<u32, GlueError> {
        let account = input
            .get("CatalogId")
            .and_then(Value::as_str)
            .unwrap_or(&caller.account);
        if !self.iam.may_read_catalog(caller, account) {
            return Err(GlueError::new(
                "AccessDeniedException",
                format!(
                    "User: {} is not authorized to access the catalog of account {account}",
                    caller.arn
                ),
            ));
        }
        (0..self.lakes.count)
            .find(|&i| lake_account(i) == account && self.lakes.region(i) == self.region.name())
            .ok_or_else(|| GlueError::not_found(format!("Database {DATABASE} not found.")))
    }

    /// When every catalog entry was created: when the provider started.
    fn created(&self) -> f64 {
        self.region.epoch_secs() as f64
    }

    fn database(&self, lake: u32) -> Value {
        json!({ "Name": DATABASE, "CatalogId": lake_account(lake), "CreateTime": self.created(), "Description": format!("telemetry of {}", self.lakes.bucket(lake)) })
    }

    fn table(&self, lake: u32) -> Value {
        json!({
            "Name": TABLE,
            "DatabaseName": DATABASE,
            "CatalogId": lake_account(lake),
            "TableType": "EXTERNAL_TABLE",
            "CreateTime": self.created(),
            "StorageDescriptor": storage(format!("s3://{}/telemetry/", self.lakes.bucket(lake))),
            "PartitionKeys": [{ "Name": "part", "Type": "int" }],
            "Parameters": { "classification": "parquet" },
        })
    }

    fn partitions(&self, lake: u32) -> Vec<Value> {
        let bucket = self.lakes.bucket(lake);
        self.lakes
            .keys()
            .iter()
            .enumerate()
            .map(|(j, key)| {
                json!({
                    "Values": [j.to_string()],
                    "DatabaseName": DATABASE,
                    "TableName": TABLE,
                    "CatalogId": lake_account(lake),
                    "CreationTime": self.created(),
                    "StorageDescriptor": storage(format!("s3://{bucket}/{key}")),
                })
            })
            .collect()
    }

    fn answer(&self, op: &str, caller: &Identity, input: &Value) -> Result<Value, GlueError> {
        let lake = self.catalog(caller, input)?;
        let name = |field: &str| {
            input.get(field).and_then(Value::as_str).ok_or_else(|| {
                GlueError::new("InvalidInputException", format!("{field} is required"))
            })
        };
        let check_database = |db: &str| {
            if db == DATABASE {
                Ok(())
            } else {
                Err(GlueError::not_found(format!("Database {db} not found.")))
            }
        };
        match op {
            "GetDatabase" => {
                check_database(name("Name")?)?;
                Ok(json!({ "Database": self.database(lake) }))
            }
            "GetDatabases" => page(input, vec![self.database(lake)], "DatabaseList", 100),
            "GetTable" => {
                check_database(name("DatabaseName")?)?;
                let table = name("Name")?;
                if table != TABLE {
                    return Err(GlueError::not_found(format!("Table {table} not found.")));
                }
                Ok(json!({ "Table": self.table(lake) }))
            }
            "GetTables" => {
                check_database(name("DatabaseName")?)?;
                page(input, vec![self.table(lake)], "TableList", 100)
            }
            "GetPartitions" => {
                check_database(name("DatabaseName")?)?;
                let table = name("TableName")?;
                if table != TABLE {
                    return Err(GlueError::not_found(format!("Table {table} not found.")));
                }
                page(input, self.partitions(lake), "Partitions", MAX_PAGE)
            }
            _ => Err(GlueError::new(
                "InvalidInputException",
                format!("Unknown operation {op}"),
            )),
        }
    }
}

fn storage(location: String) -> Value {
    json!({
        "Columns": [
            { "Name": "ts", "Type": "timestamp" },
            { "Name": "src_ip", "Type": "string" },
            { "Name": "dst_ip", "Type": "string" },
            { "Name": "domain", "Type": "string" },
            { "Name": "sha256", "Type": "string" },
            { "Name": "bytes", "Type": "bigint" },
        ],
        "Location": location,
        "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
        "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
        "SerdeInfo": { "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe", "Parameters": {} },
    })
}

/// One page of `items` under `key`, from `NextToken` (an offset), at most `MaxResults` long.
fn page(input: &Value, items: Vec<Value>, key: &str, max: usize) -> Result<Value, GlueError> {
    let size = match input.get("MaxResults") {
        None | Some(Value::Null) => DEFAULT_PAGE.min(max),
        Some(v) => v
            .as_u64()
            .map(|n| n as usize)
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                GlueError::new(
                    "InvalidInputException",
                    format!("MaxResults must be between 1 and {max}"),
                )
            })?,
    };
    let from = match input.get("NextToken").and_then(Value::as_str) {
        None | Some("") => 0,
        Some(t) => t
            .strip_prefix("page-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n <= items.len())
            .ok_or_else(|| GlueError::new("InvalidInputException", "Invalid NextToken"))?,
    };
    let end = (from + size).min(items.len());
    let mut out = json!({ key: items[from..end] });
    if end < items.len() {
        out["NextToken"] = json!(format!("page-{end}"));
    }
    Ok(out)
}

async fn handle(
    State(glue): State<GlueFake>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let op = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("AWSGlue."))
        .unwrap_or("")
        .to_string();
    // The api, and the IAM action it is authorised as.
    let (api, action): (&'static str, &'static str) = match op.as_str() {
        "GetDatabase" => ("GetDatabase", "glue:GetDatabase"),
        "GetDatabases" => ("GetDatabases", "glue:GetDatabases"),
        "GetTable" => ("GetTable", "glue:GetTable"),
        "GetTables" => ("GetTables", "glue:GetTables"),
        "GetPartitions" => ("GetPartitions", "glue:GetPartitions"),
        _ => ("Unknown", "glue:Unknown"),
    };
    let endpoint = Endpoint {
        region: glue.region.name(),
        service: "glue",
        now: glue.region.now(),
        unix_now: glue.region.unix_now(),
    };
    let verified = verify(&glue.iam, endpoint, "POST", path_and_query, &headers, &body);
    let caller = verified.as_ref().ok().cloned();
    let account = caller
        .as_ref()
        .map_or_else(|| "anonymous".to_string(), |c| c.account.clone());
    let principal = caller
        .as_ref()
        .map_or_else(|| "anonymous".to_string(), |c| c.arn.clone());
    let input: Result<Value, _> = serde_json::from_slice(&body);
    // The catalog's ARN: whose catalog (its `CatalogId`, else the caller's account), and
    // which database and table.
    let resource = input.as_ref().ok().map_or_else(String::new, |i| {
        let field = |name: &str| i.get(name).and_then(Value::as_str);
        let catalog = field("CatalogId").unwrap_or(&account);
        let region = glue.region.name();
        match (
            field("DatabaseName"),
            field("Name").or_else(|| field("TableName")),
        ) {
            (Some(db), Some(table)) => {
                format!("arn:aws:glue:{region}:{catalog}:table/{db}/{table}")
            }
            (None, Some(db)) => format!("arn:aws:glue:{region}:{catalog}:database/{db}"),
            _ => format!("arn:aws:glue:{region}:{catalog}:catalog"),
        }
    });
    let call = ProviderCall::start(
        account.clone(),
        glue.region.name(),
        "glue",
        api,
        &principal,
        action,
        resource,
    );
    let result = async {
        let caller = verified.map_err(|e| {
            // Glue answers these as 400s (and a missing signature as 403), unlike STS.
            let (status, code) = match e.refusal() {
                Refusal::Missing => (StatusCode::FORBIDDEN, "MissingAuthenticationTokenException"),
                Refusal::Incomplete => (StatusCode::BAD_REQUEST, "IncompleteSignatureException"),
                Refusal::UnknownKey => (StatusCode::BAD_REQUEST, "UnrecognizedClientException"),
                Refusal::ExpiredToken => (StatusCode::BAD_REQUEST, "ExpiredTokenException"),
                Refusal::BadSignature => (StatusCode::BAD_REQUEST, "InvalidSignatureException"),
            };
            let mut err = GlueError::new(code, e.to_string());
            err.status = status;
            err
        })?;
        let input = input.map_err(|_| {
            GlueError::new("SerializationException", "Request body is not valid JSON.")
        })?;
        let decision = glue
            .region
            .model()
            .admit_metadata(&account, api, glue.region.now());
        match decision {
            Admission::Proceed { delay } => tokio::time::sleep(delay).await,
            Admission::Frozen => {
                let mut e = GlueError::new("AccessDeniedException", "The account is suspended.");
                e.outcome = CallOutcome::Frozen;
                return Err(e);
            }
            Admission::Throttled => {
                let mut e = GlueError::new("ThrottlingException", "Rate exceeded");
                e.outcome = CallOutcome::Throttled;
                return Err(e);
            }
            Admission::Shed => {
                let mut e = GlueError::new("InternalServiceException", "Service is unavailable");
                e.status = StatusCode::SERVICE_UNAVAILABLE;
                return Err(e);
            }
            Admission::TimedOut { after } => {
                tokio::time::sleep(after).await;
                let mut e = GlueError::new("OperationTimeoutException", "The operation timed out");
                e.outcome = CallOutcome::Timeout;
                return Err(e);
            }
        }
        glue.answer(&op, &caller, &input)
    }
    .await;
    let (status, body, outcome) = match result {
        Ok(value) => (StatusCode::OK, value.to_string(), CallOutcome::Ok),
        Err(e) => (
            e.status,
            json!({ "__type": e.code, "Message": e.message }).to_string(),
            e.outcome,
        ),
    };
    call.finish(outcome, body.len() as u64);
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    resp
}
