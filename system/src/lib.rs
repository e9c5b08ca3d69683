//! stampede-system: the reference data-lake query system that stampede puts under load.
//!
//! A [`Coordinator`] takes a researcher's SQL and a lake selector over HTTP, validates the SQL
//! against the telemetry schema before any provider call, and fans it out as one task per lake
//! through the durable queue. [`Worker`]s take the tasks: credentials from IMDS and STS, the
//! lake's table from the catalog, its Parquet through `object_store`, the fragment with
//! DataFusion. The coordinator merges the fragments.
//!
//! Every provider call passes the node's [`guard::Guard`], where the protective mechanisms
//! live, each a switch in [`config::SystemConfig`]. The system reaches the cloud only through a
//! [`transport::Dialer`], so the same code runs on the simulated network and the real one. This
//! crate knows nothing of the harness or of the fakes.

pub mod admin;
pub mod api;
pub mod aws_http;
pub mod cloud;
pub mod config;
pub mod config_agent;
pub mod coordinator;
pub mod engine;
pub mod exchange;
pub mod guard;
pub mod object_store_http;
pub mod queue;
pub mod transport;
pub mod worker;

pub use api::{LakeSelector, Phase, Priority, Record, Status};
pub use cloud::{Cloud, Lake, RegionEndpoints};
pub use config::{Preset, SystemConfig};
pub use coordinator::{Coordinator, CoordinatorSetup, Journal, MemoryJournal};
pub use engine::Answer;
pub use transport::{Connection, Dialer, TcpDialer};
pub use worker::{Worker, WorkerSetup};
