//! One HTTP/1.1 exchange over a [`Dialer`]: the lowest layer under every client of the system
//! and of the harness.
//!
//! One connection per request: simple, and every request is visible on the network as its own
//! exchange. Responses with error statuses are returned, not turned into errors; retrying is the
//! system's job ([`crate::guard`]), not the client's.

use bytes::Bytes;
use http::{HeaderValue, Request, Response, Uri, header};
use http_body_util::BodyExt;
use hyper::body::Body;
use hyper_util::rt::TokioIo;

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
