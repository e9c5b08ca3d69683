//! The simulated world's addresses: each host's name and each service's port. The world
//! builds its hosts with them; faults and operator actions find their targets with them.

/// Port of the object store on each provider host.
pub const S3_PORT: u16 = 9000;
/// Port of STS on each provider host.
pub const STS_PORT: u16 = 9100;
/// Port of the metadata service on each provider host.
pub const IMDS_PORT: u16 = 9200;
/// Port of the queue on each provider host.
pub const SQS_PORT: u16 = 9300;
/// Port of the catalog on each provider host.
pub const GLUE_PORT: u16 = 9400;
/// Port of each coordinator's query API.
pub const COORDINATOR_PORT: u16 = 8080;
/// Host of the replay client.
pub const TRAFFIC_HOST: &str = "traffic";

/// The provider host of a region.
pub fn provider_host(region: &str) -> String {
    format!("provider-{region}")
}

/// The coordinator host of a region.
pub fn coordinator_host(region: &str) -> String {
    format!("coordinator-{region}")
}

/// The `k`th worker host of a region.
pub fn worker_host(region: &str, k: u32) -> String {
    format!("worker-{region}-{k}")
}
