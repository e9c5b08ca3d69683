//! An HTTP/1.1 client over a [`Dialer`], for `object_store` and the system's own calls.
//!
//! One connection per request: simple, and every request is visible on the network as its own
//! exchange. Responses with error statuses are returned, not turned into errors; retrying is the
//! system's job, not the client's.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, Uri, header};
use http_body_util::BodyExt;
use hyper::body::Body;
use hyper_util::rt::TokioIo;
use object_store::client::{
    ClientOptions, HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse,
    HttpResponseBody, HttpService,
};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode,
    sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_async::time::TimeSource;

use crate::aws_http::EpochClock;
use crate::guard::{Body as GuardBody, Guard, GuardError};
use crate::transport::Dialer;

/// Why an HTTP exchange failed below the HTTP level.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The URI names no host.
    #[error("uri `{0}` has no host")]
    NoHost(Uri),
    /// The connection could not be opened.
    #[error("connect to {host}:{port}: {source}")]
    Connect {
        /// Host dialled.
        host: String,
        /// Port dialled.
        port: u16,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The exchange broke after connecting.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// The task running the exchange ended abnormally.
    #[error("exchange aborted: {0}")]
    Aborted(String),
}

/// Sends one request on a fresh connection and returns the response with its body streaming.
pub async fn send<B>(
    dialer: &dyn Dialer,
    req: Request<B>,
) -> Result<Response<hyper::body::Incoming>, ExchangeError>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut parts, body) = req.into_parts();
    let host = parts
        .uri
        .host()
        .ok_or_else(|| ExchangeError::NoHost(parts.uri.clone()))?
        .to_string();
    let port = parts.uri.port_u16().unwrap_or(80);
    if !parts.headers.contains_key(header::HOST) {
        let authority = parts.uri.authority().map(|a| a.as_str()).unwrap_or(&host);
        if let Ok(value) = HeaderValue::from_str(authority) {
            parts.headers.insert(header::HOST, value);
        }
    }
    // hyper's connection-level client sends the URI as given: HTTP/1.1 wants origin-form.
    let origin = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = origin.parse().unwrap_or_else(|_| Uri::from_static("/"));
    let io = dialer
        .dial(&host, port)
        .await
        .map_err(|source| ExchangeError::Connect {
            host: host.clone(),
            port,
            source,
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    // The connection task must outlive this call: the body streams after we return.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender
        .send_request(Request::from_parts(parts, body))
        .await?)
}

/// Sends a request and reads the whole response body.
pub async fn send_collect<B>(
    dialer: &dyn Dialer,
    req: Request<B>,
) -> Result<Response<Bytes>, ExchangeError>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let resp = send(dialer, req).await?;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, bytes))
}

/// Signs an S3 request again, as `credentials`, dated by the node's clock. `object_store`
/// dates its signatures with the host's wall clock and takes no clock of its own; a node's time
/// is its clock's (virtual under a simulator), as the AWS SDK's is through its time source, so
/// that a provider that judges signing times sees the node's time and not the machine's.
#[derive(Debug, Clone)]
pub struct NodeSigner {
    credentials: Credentials,
    region: String,
    clock: EpochClock,
}

impl NodeSigner {
    /// Signs as `credentials` in `region` on `clock`.
    pub fn new(credentials: Credentials, region: &str, clock: EpochClock) -> Self {
        Self {
            credentials,
            region: region.to_string(),
            clock,
        }
    }

    /// Replaces the request's SigV4 signature with one made now: the same signed headers and
    /// payload hash (`x-amz-content-sha256`, which object_store always sends), S3's single
    /// encoding of the path.
    fn sign<B>(&self, req: &mut Request<B>) -> Result<(), String> {
        for name in ["authorization", "x-amz-date", "x-amz-security-token"] {
            req.headers_mut().remove(name);
        }
        let payload = req
            .headers()
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("UNSIGNED-PAYLOAD")
            .to_string();
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(self.clock.now())
            .settings(settings)
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let headers: Vec<(&str, &str)> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
            .collect();
        let signable = SignableRequest::new(
            req.method().as_str(),
            req.uri().to_string(),
            headers.into_iter(),
            SignableBody::Precomputed(payload),
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        instructions.apply_to_request_http1x(req);
        Ok(())
    }
}

/// An `object_store` HTTP connector that sends every request over a [`Dialer`], through the
/// node's [`Guard`] when it has one, signed on the node's clock when it has a [`NodeSigner`].
#[derive(Debug, Clone)]
pub struct DialerConnector {
    dialer: Arc<dyn Dialer>,
    guard: Option<Arc<Guard>>,
    signer: Option<NodeSigner>,
}

impl DialerConnector {
    /// A connector over `dialer`.
    pub fn new(dialer: Arc<dyn Dialer>) -> Self {
        Self {
            dialer,
            guard: None,
            signer: None,
        }
    }

    /// A connector over `dialer` whose requests pass `guard`.
    pub fn guarded(dialer: Arc<dyn Dialer>, guard: Arc<Guard>) -> Self {
        Self {
            dialer,
            guard: Some(guard),
            signer: None,
        }
    }

    /// The same connector, signing every request again with `signer`.
    pub fn signing(mut self, signer: NodeSigner) -> Self {
        self.signer = Some(signer);
        self
    }
}

impl HttpConnector for DialerConnector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(self.clone()))
    }
}

#[async_trait]
impl HttpService for DialerConnector {
    async fn call(&self, mut req: HttpRequest) -> Result<HttpResponse, HttpError> {
        if let Some(signer) = &self.signer {
            signer
                .sign(&mut req)
                .map_err(|e| HttpError::new(HttpErrorKind::Request, std::io::Error::other(e)))?;
        }
        if let Some(guard) = &self.guard {
            let (parts, body) = req.into_parts();
            let bytes = body
                .collect()
                .await
                .map_err(|e| HttpError::new(HttpErrorKind::Request, e))?
                .to_bytes();
            let resp = guard
                .exchange(self.dialer.clone(), Request::from_parts(parts, bytes))
                .await
                .map_err(|e| {
                    let kind = match e {
                        GuardError::Exchange(ExchangeError::Http(_)) => HttpErrorKind::Request,
                        GuardError::Timeout { .. } => HttpErrorKind::Timeout,
                        _ => HttpErrorKind::Connect,
                    };
                    HttpError::new(kind, e)
                })?;
            let (parts, body) = resp.into_parts();
            let body = match body {
                GuardBody::Read(bytes) => HttpResponseBody::from(bytes),
                GuardBody::Streaming(b) => HttpResponseBody::new(
                    b.map_err(|e| HttpError::new(HttpErrorKind::Interrupted, e)),
                ),
            };
            return Ok(HttpResponse::from_parts(parts, body));
        }
        let resp = send(self.dialer.as_ref(), req).await.map_err(|e| {
            let kind = match e {
                ExchangeError::Http(_) => HttpErrorKind::Request,
                _ => HttpErrorKind::Connect,
            };
            HttpError::new(kind, e)
        })?;
        let (parts, body) = resp.into_parts();
        let body = body.map_err(|e| HttpError::new(HttpErrorKind::Interrupted, e));
        Ok(HttpResponse::from_parts(parts, HttpResponseBody::new(body)))
    }
}
