//! `object_store`'s HTTP connector over a [`Dialer`]: each request through the node's
//! [`Via`] (its guard, or straight to the network), signed again on the node's clock.

use std::sync::Arc;

use async_trait::async_trait;
use http::Request;
use http_body_util::BodyExt;
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
use crate::exchange::ExchangeError;
use crate::guard::{Body as GuardBody, Guard, GuardError, Via};
use crate::transport::Dialer;

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
    via: Via,
    signer: Option<NodeSigner>,
}

impl DialerConnector {
    /// A connector over `dialer`.
    pub fn new(dialer: Arc<dyn Dialer>) -> Self {
        Self {
            dialer,
            via: Via::Direct,
            signer: None,
        }
    }

    /// A connector over `dialer` whose requests pass `guard`.
    pub fn guarded(dialer: Arc<dyn Dialer>, guard: Arc<Guard>) -> Self {
        Self {
            dialer,
            via: Via::Guard(guard),
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
        let resp =
            self.via
                .exchange(self.dialer.clone(), req)
                .await
                .map_err(|e| {
                    let kind = match e {
                        GuardError::Exchange(ExchangeError::Http(_))
                        | GuardError::RequestBody(_) => HttpErrorKind::Request,
                        GuardError::Timeout { .. } => HttpErrorKind::Timeout,
                        _ => HttpErrorKind::Connect,
                    };
                    HttpError::new(kind, e)
                })?;
        let (parts, body) = resp.into_parts();
        let body = match body {
            GuardBody::Read(bytes) => HttpResponseBody::from(bytes),
            GuardBody::Streaming(b) => {
                HttpResponseBody::new(b.map_err(|e| HttpError::new(HttpErrorKind::Interrupted, e)))
            }
        };
        Ok(HttpResponse::from_parts(parts, body))
    }
}
