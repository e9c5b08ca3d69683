//! The transport: how the system opens connections. In a simulation it is the simulated network;
//! otherwise the real one. The system never names either.

use std::fmt::Debug;
use std::io;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream to a peer.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// An open connection.
pub type Connection = Box<dyn Io>;

/// Opens connections by host name and port.
#[async_trait]
pub trait Dialer: Debug + Send + Sync + 'static {
    /// Connects to `host:port`.
    async fn dial(&self, host: &str, port: u16) -> io::Result<Connection>;
}

/// The real network, through tokio's TCP.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpDialer;

#[async_trait]
impl Dialer for TcpDialer {
    async fn dial(&self, host: &str, port: u16) -> io::Result<Connection> {
        let stream = tokio::net::TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        Ok(Box::new(stream))
    }
}
