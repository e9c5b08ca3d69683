//! The AWS SDK's HTTP client over a [`Dialer`], and the SDK's runtime hooks (sleep, clock)
//! bound to tokio's time, which is virtual under a simulator.
//!
//! The SDK's own retries stay off wherever the system builds a client: retrying belongs to
//! the system.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_smithy_async::rt::sleep::{AsyncSleep, Sleep};
use aws_smithy_async::time::TimeSource;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::http_client::{ExchangeError, send};
use crate::transport::Dialer;

/// An SDK HTTP client that sends each request on a fresh connection from a [`Dialer`].
#[derive(Clone)]
pub struct DialerHttpClient {
    dialer: Arc<dyn Dialer>,
}

impl DialerHttpClient {
    /// A client over `dialer`.
    pub fn new(dialer: Arc<dyn Dialer>) -> Self {
        Self { dialer }
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
            read_timeout: settings.read_timeout(),
        })
    }
}

#[derive(Debug)]
struct Connector {
    dialer: Arc<dyn Dialer>,
    read_timeout: Option<Duration>,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let dialer = self.dialer.clone();
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let request = to_http(request)?;
            let exchange = async {
                let response = send(dialer.as_ref(), request)
                    .await
                    .map_err(connector_error)?;
                let (parts, body) = response.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map_err(|e| ConnectorError::io(e.into()))?
                    .to_bytes();
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

fn connector_error(e: ExchangeError) -> ConnectorError {
    match e {
        ExchangeError::Connect { .. } => ConnectorError::io(e.into()).never_connected(),
        ExchangeError::NoHost(_) => ConnectorError::user(e.into()),
        ExchangeError::Http(ref h) if h.is_timeout() => ConnectorError::timeout(e.into()),
        ExchangeError::Http(_) => ConnectorError::io(e.into()),
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
}

impl TimeSource for EpochClock {
    fn now(&self) -> SystemTime {
        self.epoch + self.start.elapsed()
    }
}

/// The shared configuration every SDK client of the system starts from: the transport, one
/// endpoint, static or provided credentials, no SDK retries, upload stall detection off (the
/// connector sends request bodies whole, so the SDK never sees them polled), and sleep and
/// signing time on tokio's clock from `epoch`.
pub fn sdk_config(
    dialer: Arc<dyn Dialer>,
    endpoint: &str,
    region: &str,
    credentials: impl aws_credential_types::provider::ProvideCredentials + 'static,
    epoch: SystemTime,
) -> aws_config::SdkConfig {
    use aws_config::retry::RetryConfig;
    use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .http_client(DialerHttpClient::new(dialer))
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
        .time_source(EpochClock::new(epoch))
        .build()
}
