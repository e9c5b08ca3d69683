//! stampede-system: the reference data-lake query system that stampede puts under load.
//!
//! A worker takes a query over HTTP, reads each selected lake's Parquet through
//! `object_store`'s S3 client, and runs the SQL with DataFusion. It reaches the cloud only
//! through a [`transport::Dialer`], so the same code runs on the simulated network and the real
//! one. This crate knows nothing of the harness or of the fakes.

pub mod aws_http;
pub mod engine;
pub mod http_client;
pub mod transport;
pub mod worker;

pub use engine::{Answer, Engine, LakeRef, StoreConfig};
pub use transport::{Connection, Dialer, TcpDialer};
pub use worker::{QueryRequest, QueryResponse, Worker};
