//! The simulated network as the system and the fakes see it: a [`Dialer`] over turmoil's TCP,
//! and an accept loop that serves any hyper service on a simulated port.

use std::error::Error as StdError;
use std::io;

use async_trait::async_trait;
use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper_util::rt::TokioIo;
use stampede_system::transport::{Connection, Dialer};

/// Dials hosts of the simulation by name, through turmoil's simulated TCP.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimDialer;

#[async_trait]
impl Dialer for SimDialer {
    async fn dial(&self, host: &str, port: u16) -> io::Result<Connection> {
        let stream = turmoil::net::TcpStream::connect((host, port)).await?;
        Ok(Box::new(stream))
    }
}

/// Accepts connections on `port` of the current simulated host and serves `service` on each,
/// until the host is crashed.
pub async fn serve<S, B>(port: u16, service: S) -> turmoil::Result
where
    S: Service<http::Request<Incoming>, Response = http::Response<B>> + Clone + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let service = service.clone();
        tokio::task::spawn_local(async move {
            // No Date header: hyper would read the wall clock for it.
            let _ = hyper::server::conn::http1::Builder::new()
                .auto_date_header(false)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Serves `service` on a real TCP listener (the fakes served for real clients), until the
/// listener fails. Connections are served concurrently.
pub async fn serve_tcp<S, B>(listener: tokio::net::TcpListener, service: S) -> io::Result<()>
where
    S: Service<http::Request<Incoming>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    loop {
        let (stream, _) = listener.accept().await?;
        let service = service.clone();
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
