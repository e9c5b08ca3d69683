//! The AWS SDK's HTTP client over a [`Dialer`], and the SDK's runtime hooks (sleep, clock)
//! bound to tokio's time, which is virtual under a simulator.
//!
//! The SDK's own retries are off wherever the system builds a client, unless the system runs
//! without `one_retry_layer`: retrying belongs to the system's guard. Every SDK invocation is
//! named in a header ([`InvocationIds`]), so the provider's log links the SDK's own attempts.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_smithy_async::rt::sleep::{AsyncSleep, Sleep};
use aws_smithy_async::time::TimeSource;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::exchange::ExchangeError;
use crate::guard::{Body as GuardBody, Guard, GuardError, Via};
use crate::transport::Dialer;

/// An SDK HTTP client that sends each request on a fresh connection from a [`Dialer`], through
/// the node's [`Guard`] when it has one.
#[derive(Clone)]
pub struct DialerHttpClient {
    dialer: Arc<dyn Dialer>,
    via: Via,
}

impl DialerHttpClient {
    /// A client over `dialer`.
    pub fn new(dialer: Arc<dyn Dialer>) -> Self {
        Self {
            dialer,
            via: Via::Direct,
        }
    }

    /// A client over `dialer` whose requests pass `guard`.
    pub fn guarded(dialer: Arc<dyn Dialer>, guard: Arc<Guard>) -> Self {
        Self {
            dialer,
            via: Via::Guard(guard),
        }
    }
}

impl fmt::Debug for DialerHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DialerHttpClient")
            .field("dialer", &self.dialer)
            .finish()
    }
}

impl HttpClient for DialerHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(Connector {
            dialer: self.dialer.clone(),
            via: self.via.clone(),
            read_timeout: settings.read_timeout(),
        })
    }
}

#[derive(Debug)]
struct Connector {
    dialer: Arc<dyn Dialer>,
    via: Via,
    read_timeout: Option<Duration>,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let dialer = self.dialer.clone();
        let via = self.via.clone();
        // The guard times its attempts out itself; a direct exchange takes the SDK's.
        let read_timeout = self.read_timeout.filter(|_| matches!(via, Via::Direct));
        HttpConnectorFuture::new(async move {
            let request = to_http(request)?;
            let exchange = async {
                let response = via.exchange(dialer, request).await.map_err(guard_error)?;
                let (parts, body) = response.into_parts();
                let bytes = match body {
                    GuardBody::Read(b) => b,
                    GuardBody::Streaming(b) => b
                        .collect()
                        .await
                        .map_err(|e| ConnectorError::io(e.into()))?
                        .to_bytes(),
                };
                Ok::<_, ConnectorError>(http::Response::from_parts(parts, SdkBody::from(bytes)))
            };
            let response = match read_timeout {
                Some(limit) => tokio::time::timeout(limit, exchange)
                    .await
                    .map_err(|e| ConnectorError::timeout(e.into()))??,
                None => exchange.await?,
            };
            HttpResponse::try_from(response).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// The SDK's request as an `http` request with an in-memory body.
fn to_http(request: HttpRequest) -> Result<http::Request<Full<Bytes>>, ConnectorError> {
    let request = request
        .try_into_http1x()
        .map_err(|e| ConnectorError::user(e.into()))?;
    let (parts, body) = request.into_parts();
    let bytes = body
        .bytes()
        .ok_or_else(|| ConnectorError::user("streaming request bodies are not supported".into()))?;
    Ok(http::Request::from_parts(
        parts,
        Full::new(Bytes::copy_from_slice(bytes)),
    ))
}

fn guard_error(e: GuardError) -> ConnectorError {
    match e {
        GuardError::Exchange(x) => connector_error(x),
        GuardError::Timeout { .. } => ConnectorError::timeout(e.into()),
        GuardError::RequestBody(_) => ConnectorError::user(e.into()),
        GuardError::BreakerOpen(_) | GuardError::Deadline(_) => {
            ConnectorError::other(e.into(), None)
        }
    }
}

fn connector_error(e: ExchangeError) -> ConnectorError {
    match e {
        ExchangeError::Connect { .. } => ConnectorError::io(e.into()).never_connected(),
        ExchangeError::NoHost(_) => ConnectorError::user(e.into()),
        ExchangeError::Http(ref h) if h.is_timeout() => ConnectorError::timeout(e.into()),
        ExchangeError::Http(_) | ExchangeError::Aborted(_) => ConnectorError::io(e.into()),
    }
}

/// Sleeps on tokio's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleep;

impl AsyncSleep for TokioSleep {
    fn sleep(&self, duration: Duration) -> Sleep {
        Sleep::new(tokio::time::sleep(duration))
    }
}

/// Wall-clock time as the SDK signs with it: a fixed epoch plus tokio's elapsed time, so that
/// under a simulator signing dates follow virtual time.
#[derive(Debug, Clone, Copy)]
pub struct EpochClock {
    epoch: SystemTime,
    start: tokio::time::Instant,
}

impl EpochClock {
    /// A clock reading `epoch` now.
    pub fn new(epoch: SystemTime) -> Self {
        Self {
            epoch,
            start: tokio::time::Instant::now(),
        }
    }

    /// A clock that read `epoch` at tokio's instant `start`: a node's clock, anchored at its
    /// boot, whenever a client is built from it.
    pub fn anchored(epoch: SystemTime, start: tokio::time::Instant) -> Self {
        Self { epoch, start }
    }
}

impl From<SystemTime> for EpochClock {
    fn from(epoch: SystemTime) -> Self {
        Self::new(epoch)
    }
}

impl TimeSource for EpochClock {
    fn now(&self) -> SystemTime {
        self.epoch + self.start.elapsed()
    }
}

/// The shared configuration every SDK client of the system starts from: the transport, one
/// endpoint, static or provided credentials, no SDK retries, upload stall detection off (the
/// connector sends request bodies whole, so the SDK never sees them polled), and sleep and
/// signing time on `clock` (a time that reads now: [`EpochClock::new`]).
pub fn sdk_config(
    dialer: Arc<dyn Dialer>,
    endpoint: &str,
    region: &str,
    credentials: impl aws_credential_types::provider::ProvideCredentials + 'static,
    clock: impl Into<EpochClock>,
) -> aws_config::SdkConfig {
    sdk_config_over(
        DialerHttpClient::new(dialer),
        endpoint,
        region,
        credentials,
        clock,
    )
}

/// [`sdk_config`] over a given client (a guarded one, say).
pub fn sdk_config_over(
    client: DialerHttpClient,
    endpoint: &str,
    region: &str,
    credentials: impl aws_credential_types::provider::ProvideCredentials + 'static,
    clock: impl Into<EpochClock>,
) -> aws_config::SdkConfig {
    use aws_config::retry::RetryConfig;
    use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .http_client(client)
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(region.to_string()))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
        )
        .retry_config(RetryConfig::disabled())
        .stalled_stream_protection(
            StalledStreamProtectionConfig::enabled()
                .upload_enabled(false)
                .build(),
        )
        .sleep_impl(TokioSleep)
        .time_source(clock.into())
        .build()
}

/// The request header naming an SDK invocation: the same on each of the SDK's own attempts of
/// one call.
pub const INVOCATION_HEADER: &str = "x-stampede-invocation";

/// Names each SDK invocation `{node}#{boot}/{n}`, counting per node, in [`INVOCATION_HEADER`]:
/// set once before the SDK's retry loop, so every attempt carries it. The SDK's own
/// `amz-sdk-invocation-id` is drawn from an unseeded RNG and cannot be logged by a
/// deterministic run; this one can.
/// Clones share one count.
#[derive(Debug, Clone)]
pub struct InvocationIds {
    node: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl InvocationIds {
    /// Invocation ids for `node` (`{node}#{boot}`, as the guard names it).
    pub fn new(node: &str) -> Self {
        Self {
            node: node.into(),
            next: Arc::default(),
        }
    }
}

impl Intercept for InvocationIds {
    fn name(&self) -> &'static str {
        "StampedeInvocationIds"
    }

    fn modify_before_retry_loop(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        context
            .request_mut()
            .headers_mut()
            .insert(INVOCATION_HEADER, format!("{}/{n}", self.node));
        Ok(())
    }
}

/// The SDK's retries as the system runs them. `on`: the SDK's standard mode with its default 3
/// attempts and exponential backoff, without its jitter (drawn from an unseeded RNG, which a
/// deterministic run cannot have). Off: one attempt.
pub fn sdk_retries(on: bool) -> aws_config::retry::RetryConfig {
    use aws_config::retry::RetryConfig;
    if on {
        RetryConfig::standard()
            .with_max_attempts(3)
            .with_use_static_exponential_base(true)
    } else {
        RetryConfig::disabled()
    }
}
