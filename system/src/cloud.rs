//! The node's clients to the cloud, all behind the node's [`Guard`]: the instance's
//! credentials from IMDS (aws-config's IMDS client), a lake role's from STS (aws-sdk-sts), a
//! lake's table from the catalog (aws-sdk-glue), tasks through the queue (aws-sdk-sqs), and
//! Parquet through `object_store`. Credentials and table metadata are cached with coalescing
//! when the `credential_cache` switch is on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_sts::config::retry::{RetryPartition, TokenBucket};
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, RetryConfig};
use serde::{Deserialize, Serialize};

use crate::aws_http::{
    DialerHttpClient, EpochClock, InvocationIds, TokioSleep, sdk_config_over, sdk_retries,
};
use crate::guard::cache::{CoalescingCache, Lookup};
use crate::guard::{Guard, MECHANISM_EVENTS};
use crate::object_store_http::{DialerConnector, NodeSigner};
use crate::transport::Dialer;

/// The catalog database every lake's table lives in.
pub const DATABASE: &str = "telemetry_lake";

/// Where each service of a region answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionEndpoints {
    /// The object store.
    pub s3: String,
    /// STS.
    pub sts: String,
    /// The queue.
    pub sqs: String,
    /// The catalog.
    pub glue: String,
    /// The instance metadata service the region's nodes use.
    pub imds: String,
}

/// A lake the system serves: who owns it, where it lives, the role to read it as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lake {
    /// Its number.
    pub id: u32,
    /// The tenant that owns it.
    pub tenant: String,
    /// Its region.
    pub region: String,
    /// Its bucket.
    pub bucket: String,
    /// The role the system assumes to read it.
    pub role_arn: String,
    /// The external id the tenant gave the system for its roles' trust policies.
    pub external_id: String,
    /// Its owner lets every tenant's users query it; otherwise only its own tenant's.
    pub shared: bool,
}

impl Lake {
    /// The account the lake lives in: its role's.
    pub fn account(&self) -> &str {
        self.role_arn.split(':').nth(4).unwrap_or("")
    }

    /// Whether users of `tenant` may query it.
    pub fn entitles(&self, tenant: &str) -> bool {
        self.shared || self.tenant == tenant
    }
}

/// Why a cloud operation failed, as text (shared between coalesced callers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CloudError(pub String);

impl CloudError {
    fn of(what: &str, e: impl std::fmt::Display) -> Self {
        Self(format!("{what}: {e}"))
    }
}

/// The node's cloud clients.
#[derive(Debug)]
pub struct Cloud {
    node: String,
    dialer: Arc<dyn Dialer>,
    guard: Arc<Guard>,
    epoch: SystemTime,
    home: String,
    endpoints: BTreeMap<String, RegionEndpoints>,
    start: tokio::time::Instant,
    credentials: CoalescingCache<Credentials, CloudError>,
    tables: CoalescingCache<Vec<String>, CloudError>,
    /// Names the SDK's invocations in the provider's log.
    invocations: InvocationIds,
    /// The SDK's retry quota, when its retries are on: this node's own, not the one the SDK
    /// keeps per partition name for the whole process, which would join simulations run side
    /// by side.
    retry_partition: RetryPartition,
    /// The task queue's URL per region, once `CreateQueue` has answered it: a queue's URL does
    /// not change, so a real service resolves it once, not once per query.
    queue_urls: std::sync::Mutex<BTreeMap<String, String>>,
    /// Long-lived clients, as a real service keeps them: STS and the queue per region (as the
    /// instance), the catalog and the object store per lake (as its role).
    sts_clients: Clients<aws_sdk_sts::Client>,
    sqs_clients: Clients<aws_sdk_sqs::Client>,
    glue_clients: Clients<aws_sdk_glue::Client>,
    stores: Clients<Arc<dyn ObjectStore>>,
}

/// Clients by key, each kept while the credentials it signs with stay the same: credentials
/// that rotate get a new client.
#[derive(Debug)]
struct Clients<C>(std::sync::Mutex<BTreeMap<String, (Credentials, C)>>);

impl<C> Default for Clients<C> {
    fn default() -> Self {
        Self(std::sync::Mutex::new(BTreeMap::new()))
    }
}

impl<C: Clone> Clients<C> {
    /// The client kept under `key` for `creds`, or a new one from `build`, kept from now on.
    fn get(
        &self,
        key: &str,
        creds: &Credentials,
        build: impl FnOnce() -> Result<C, CloudError>,
    ) -> Result<C, CloudError> {
        let mut clients = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((c, client)) = clients.get(key)
            && c == creds
        {
            return Ok(client.clone());
        }
        let client = build()?;
        clients.insert(key.to_string(), (creds.clone(), client.clone()));
        Ok(client)
    }
}

impl Cloud {
    /// Clients for node `node` in region `home`.
    pub fn new(
        node: &str,
        home: &str,
        dialer: Arc<dyn Dialer>,
        guard: Arc<Guard>,
        endpoints: BTreeMap<String, RegionEndpoints>,
        epoch: SystemTime,
    ) -> Self {
        Self {
            node: node.to_string(),
            dialer,
            epoch,
            home: home.to_string(),
            endpoints,
            start: tokio::time::Instant::now(),
            credentials: CoalescingCache::default(),
            tables: CoalescingCache::default(),
            invocations: InvocationIds::new(guard.name()),
            retry_partition: RetryPartition::custom(guard.name().to_string())
                .token_bucket(TokenBucket::default())
                .build(),
            queue_urls: std::sync::Mutex::new(BTreeMap::new()),
            sts_clients: Clients::default(),
            sqs_clients: Clients::default(),
            glue_clients: Clients::default(),
            stores: Clients::default(),
            guard,
        }
    }

    /// The node's guard.
    pub fn guard(&self) -> &Arc<Guard> {
        &self.guard
    }

    /// The node's home region.
    pub fn home(&self) -> &str {
        &self.home
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// The node's wall clock: its boot epoch plus the time since boot (virtual under a
    /// simulator). Every signature the node makes is dated by it.
    pub fn clock(&self) -> EpochClock {
        EpochClock::anchored(self.epoch, self.start)
    }

    fn endpoints(&self, region: &str) -> Result<&RegionEndpoints, CloudError> {
        self.endpoints
            .get(region)
            .ok_or_else(|| CloudError(format!("no endpoints for region `{region}`")))
    }

    fn http(&self) -> DialerHttpClient {
        DialerHttpClient::guarded(self.dialer.clone(), self.guard.clone())
    }

    /// SDK configuration for `region`'s `endpoint`, signing as `credentials`.
    pub fn sdk(
        &self,
        endpoint: &str,
        region: &str,
        credentials: Credentials,
    ) -> aws_config::SdkConfig {
        sdk_config_over(self.http(), endpoint, region, credentials, self.clock())
    }

    /// The SDK's retries and the invocation header, as the node's config says.
    fn sdk_retries(&self) -> aws_config::retry::RetryConfig {
        sdk_retries(!self.guard.config().switches.one_retry_layer)
    }

    /// An STS client on `sdk`.
    fn sts_client(&self, sdk: &aws_config::SdkConfig) -> aws_sdk_sts::Client {
        let conf = aws_sdk_sts::config::Builder::from(sdk)
            .retry_config(self.sdk_retries())
            .retry_partition(self.retry_partition.clone())
            .interceptor(self.invocations.clone())
            .build();
        aws_sdk_sts::Client::from_conf(conf)
    }

    /// A catalog client on `sdk`.
    fn glue_client(&self, sdk: &aws_config::SdkConfig) -> aws_sdk_glue::Client {
        let conf = aws_sdk_glue::config::Builder::from(sdk)
            .retry_config(self.sdk_retries())
            .retry_partition(self.retry_partition.clone())
            .interceptor(self.invocations.clone())
            .build();
        aws_sdk_glue::Client::from_conf(conf)
    }

    /// A queue client on `sdk`.
    fn sqs_client(&self, sdk: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
        let conf = aws_sdk_sqs::config::Builder::from(sdk)
            .retry_config(self.sdk_retries())
            .retry_partition(self.retry_partition.clone())
            .interceptor(self.invocations.clone())
            .build();
        aws_sdk_sqs::Client::from_conf(conf)
    }

    /// How long credentials expiring at `expiry` may be cached from now: the cache's TTL, cut
    /// five minutes short of expiry.
    fn cache_until(&self, expiry: Option<SystemTime>) -> Duration {
        let ttl = self.guard.config().tuning.cache_ttl;
        let left = expiry
            .and_then(|e| e.duration_since(self.epoch + self.start.elapsed()).ok())
            .map_or(ttl, |l| l.saturating_sub(Duration::from_secs(300)));
        self.now() + ttl.min(left)
    }

    /// Looks `key` up in `cache` (or fetches straight through with the switch off) and reports
    /// the lookup.
    async fn cached<V, Fut>(
        &self,
        cache: &CoalescingCache<V, CloudError>,
        kind: &'static str,
        key: &str,
        fetch: Fut,
    ) -> Result<V, CloudError>
    where
        V: Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(V, Duration), CloudError>> + Send + 'static,
    {
        if !self.guard.config().switches.credential_cache {
            return fetch.await.map(|(v, _)| v);
        }
        let (result, lookup) = cache.get(key, self.now(), || fetch).await;
        if lookup != Lookup::Miss || result.is_ok() {
            tracing::info!(target: MECHANISM_EVENTS, cache = kind, key, "{}", lookup.event());
        }
        result
    }

    /// Forgets cached credentials and metadata.
    pub fn flush_caches(&self) {
        self.credentials.clear();
        self.tables.clear();
    }

    /// The instance role's credentials, from the home region's IMDS.
    pub async fn instance_credentials(&self) -> Result<Credentials, CloudError> {
        let endpoint = self.endpoints(&self.home)?.imds.clone();
        let provider = aws_config::provider_config::ProviderConfig::empty()
            .with_http_client(self.http())
            .with_sleep_impl(TokioSleep)
            .with_time_source(self.clock());
        let client = aws_config::imds::Client::builder()
            .endpoint(&endpoint)
            .map_err(|e| CloudError::of("imds endpoint", e))?
            .max_attempts(1)
            .configure(&provider)
            .build();
        let epoch = self.epoch;
        let start = self.start;
        let ttl = self.guard.config().tuning.cache_ttl;
        let now = self.now();
        let fetch = async move {
            const PATH: &str = "/latest/meta-data/iam/security-credentials/";
            let role: String = client
                .get(PATH)
                .await
                .map_err(|e| CloudError::of("imds", e))?
                .into();
            let role = role.lines().next().unwrap_or("").trim().to_string();
            let doc: String = client
                .get(format!("{PATH}{role}"))
                .await
                .map_err(|e| CloudError::of("imds", e))?
                .into();
            let doc: ImdsCredentials =
                serde_json::from_str(&doc).map_err(|e| CloudError::of("imds credentials", e))?;
            let expiry = humantime::parse_rfc3339(&doc.expiration).ok();
            let creds = Credentials::new(
                doc.access_key_id,
                doc.secret_access_key,
                Some(doc.token),
                expiry,
                "imds",
            );
            let left = expiry
                .and_then(|e| e.duration_since(epoch + start.elapsed()).ok())
                .map_or(ttl, |l| l.saturating_sub(Duration::from_secs(300)));
            Ok((creds, now + ttl.min(left)))
        };
        self.cached(&self.credentials, "credentials", "instance", fetch)
            .await
    }

    /// Credentials to read `lake` with: its role's, from STS in the lake's region, assumed with
    /// the tenant's external id. With `least_privilege` off, the instance's own: the confused
    /// deputy reads every lake as itself.
    pub async fn lake_credentials(&self, lake: &Lake) -> Result<Credentials, CloudError> {
        let instance = self.instance_credentials().await?;
        if !self.guard.config().switches.least_privilege {
            return Ok(instance);
        }
        let client = self.sts_clients.get(&lake.region, &instance, || {
            let sdk = self.sdk(
                &self.endpoints(&lake.region)?.sts,
                &lake.region,
                instance.clone(),
            );
            Ok(self.sts_client(&sdk))
        })?;
        let arn = lake.role_arn.clone();
        let external_id = lake.external_id.clone();
        let session = self.node.clone();
        let epoch = self.epoch;
        let start = self.start;
        let ttl = self.guard.config().tuning.cache_ttl;
        let now = self.now();
        let fetch = async move {
            let out = client
                .assume_role()
                .role_arn(&arn)
                .role_session_name(session)
                .external_id(external_id)
                .send()
                .await
                .map_err(|e| {
                    CloudError::of("AssumeRole", aws_sdk_sts::error::DisplayErrorContext(e))
                })?;
            let c = out
                .credentials()
                .ok_or_else(|| CloudError("AssumeRole answered no credentials".into()))?;
            let expiry = SystemTime::try_from(*c.expiration()).ok();
            let creds = Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_string()),
                expiry,
                "sts",
            );
            let left = expiry
                .and_then(|e| e.duration_since(epoch + start.elapsed()).ok())
                .map_or(ttl, |l| l.saturating_sub(Duration::from_secs(300)));
            Ok((creds, now + ttl.min(left)))
        };
        self.cached(&self.credentials, "credentials", &lake.role_arn, fetch)
            .await
    }

    /// The Parquet files of `lake`'s table, from its catalog (GetTable, then every page of
    /// GetPartitions), as `s3://bucket/key` locations.
    pub async fn lake_files(
        &self,
        lake: &Lake,
        creds: Credentials,
    ) -> Result<Vec<String>, CloudError> {
        let client = self.glue_clients.get(&lake.bucket, &creds, || {
            let sdk = self.sdk(
                &self.endpoints(&lake.region)?.glue,
                &lake.region,
                creds.clone(),
            );
            Ok(self.glue_client(&sdk))
        })?;
        let until = self.cache_until(None);
        let catalog = lake.account().to_string();
        let fetch = async move {
            let table = client
                .get_table()
                .catalog_id(&catalog)
                .database_name(DATABASE)
                .name("telemetry")
                .send()
                .await
                .map_err(|e| {
                    CloudError::of("GetTable", aws_sdk_glue::error::DisplayErrorContext(e))
                })?;
            let has_partitions = table
                .table()
                .is_some_and(|t| !t.partition_keys().is_empty());
            let mut files = Vec::new();
            if !has_partitions {
                if let Some(loc) = table
                    .table()
                    .and_then(|t| t.storage_descriptor())
                    .and_then(|s| s.location())
                {
                    files.push(loc.to_string());
                }
                return Ok((files, until));
            }
            let mut token: Option<String> = None;
            loop {
                let page = client
                    .get_partitions()
                    .catalog_id(&catalog)
                    .database_name(DATABASE)
                    .table_name("telemetry")
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| {
                        CloudError::of("GetPartitions", aws_sdk_glue::error::DisplayErrorContext(e))
                    })?;
                files.extend(
                    page.partitions()
                        .iter()
                        .filter_map(|p| p.storage_descriptor()?.location().map(str::to_string)),
                );
                match page.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
            Ok((files, until))
        };
        self.cached(&self.tables, "table", &lake.bucket, fetch)
            .await
    }

    /// An object store for `lake`'s bucket, signing as `creds`, through the guard: the one kept
    /// for the bucket while `creds` stay the same.
    pub fn lake_store(
        &self,
        lake: &Lake,
        creds: &Credentials,
    ) -> Result<Arc<dyn ObjectStore>, CloudError> {
        self.stores
            .get(&lake.bucket, creds, || self.new_store(lake, creds))
    }

    fn new_store(
        &self,
        lake: &Lake,
        creds: &Credentials,
    ) -> Result<Arc<dyn ObjectStore>, CloudError> {
        let retry = RetryConfig {
            max_retries: 0,
            retry_timeout: Duration::ZERO,
            ..RetryConfig::default()
        };
        let mut builder = AmazonS3Builder::new()
            .with_http_connector(
                DialerConnector::guarded(self.dialer.clone(), self.guard.clone())
                    .signing(NodeSigner::new(creds.clone(), &lake.region, self.clock())),
            )
            .with_endpoint(&self.endpoints(&lake.region)?.s3)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_region(&lake.region)
            .with_bucket_name(&lake.bucket)
            .with_access_key_id(creds.access_key_id())
            .with_secret_access_key(creds.secret_access_key())
            .with_retry(retry);
        if let Some(token) = creds.session_token() {
            builder = builder.with_token(token);
        }
        Ok(Arc::new(
            builder
                .build()
                .map_err(|e| CloudError::of("object store", e))?,
        ))
    }

    /// An object store for the system's own `bucket` in its home region, as the instance.
    pub async fn own_store(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, CloudError> {
        let creds = self.instance_credentials().await?;
        let lake = Lake {
            id: u32::MAX,
            tenant: String::new(),
            region: self.home.clone(),
            bucket: bucket.to_string(),
            role_arn: String::new(),
            external_id: String::new(),
            shared: false,
        };
        self.lake_store(&lake, &creds)
    }

    /// The task queue of `region` and a client for it, as the instance. The first call creates
    /// the queue if missing (creating is idempotent) and keeps its URL for the node's life.
    pub async fn task_queue(
        &self,
        region: &str,
    ) -> Result<(aws_sdk_sqs::Client, String), CloudError> {
        let sqs = self.sqs(region).await?;
        let known = self
            .queue_urls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(region)
            .cloned();
        if let Some(url) = known {
            return Ok((sqs, url));
        }
        let url = sqs
            .create_queue()
            .queue_name(crate::queue::TASK_QUEUE)
            .send()
            .await
            .map_err(|e| CloudError::of("CreateQueue", aws_sdk_sqs::error::DisplayErrorContext(e)))?
            .queue_url()
            .unwrap_or_default()
            .to_string();
        if !url.is_empty() {
            self.queue_urls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(region.to_string(), url.clone());
        }
        Ok((sqs, url))
    }

    /// A queue client in `region`, as the instance.
    pub async fn sqs(&self, region: &str) -> Result<aws_sdk_sqs::Client, CloudError> {
        let creds = self.instance_credentials().await?;
        self.sqs_clients.get(region, &creds, || {
            let sdk = self.sdk(&self.endpoints(region)?.sqs, region, creds.clone());
            Ok(self.sqs_client(&sdk))
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ImdsCredentials {
    access_key_id: String,
    secret_access_key: String,
    token: String,
    expiration: String,
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn a_client_is_kept_while_its_credentials_stay_and_rebuilt_when_they_rotate() {
        let clients: Clients<u32> = Clients::default();
        let built = Cell::new(0);
        let build = || {
            built.set(built.get() + 1);
            Ok(built.get())
        };
        let first = Credentials::new("AKIA1", "secret", Some("token".into()), None, "test");
        let rotated = Credentials::new("AKIA2", "secret", Some("token".into()), None, "test");
        assert_eq!(clients.get("lake-0", &first, build).unwrap(), 1);
        assert_eq!(clients.get("lake-0", &first, build).unwrap(), 1, "kept");
        assert_eq!(clients.get("lake-1", &first, build).unwrap(), 2, "per key");
        assert_eq!(
            clients.get("lake-0", &rotated, build).unwrap(),
            3,
            "rotated"
        );
        assert_eq!(
            clients.get("lake-0", &rotated, build).unwrap(),
            3,
            "kept again"
        );
        assert_eq!(built.get(), 3);
    }
}
