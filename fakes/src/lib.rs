//! stampede-fakes: a fake cloud provider whose services speak the real wire protocols, so that
//! real clients work against them unchanged, in a simulation and on loopback.
//!
//! This crate knows nothing of the system under test or of the harness: it serves HTTP on
//! whatever connections it is handed and reports each call through `tracing`.

pub mod clock;
pub mod glue;
pub mod iam;
pub mod imds;
pub mod lakes;
pub mod provider;
pub mod s3;
pub mod sigv4;
pub mod sqs;
pub mod sts;

pub use clock::{Clock, TokioClock};
pub use iam::{Iam, Identity};
pub use lakes::LakeDirectory;
pub use provider::{ProviderConfig, ProviderRegion};
pub use s3::{ObjectStoreConfig, ObjectStoreFake};
