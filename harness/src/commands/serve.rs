//! Real mode: the fake provider served on loopback for real clients (the AWS SDKs, boto3, the
//! aws CLI, `object_store`), with the same model and quotas as in a simulation.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::service::TowerToHyperService;
use stampede_fakes::glue::GlueFake;
use stampede_fakes::iam::{LakePolicies, lake_role_arn};
use stampede_fakes::imds::ImdsFake;
use stampede_fakes::provider::Correlated;
use stampede_fakes::sqs::SqsFake;
use stampede_fakes::sts::StsFake;
use stampede_fakes::{
    Iam, LakeDirectory, ObjectStoreConfig, ObjectStoreFake, ProviderConfig, ProviderRegion,
    TokioClock,
};
use tokio::net::TcpListener;

use crate::world::clock::wall_unix_secs;
use crate::world::net::serve_tcp;
use crate::world::system_principal;

/// Where each service listens.
#[derive(Debug, Clone, Copy)]
pub struct Endpoints {
    /// The object store.
    pub s3: SocketAddr,
    /// STS.
    pub sts: SocketAddr,
    /// The instance metadata service.
    pub imds: SocketAddr,
    /// The queue.
    pub sqs: SocketAddr,
    /// The catalog.
    pub glue: SocketAddr,
}

/// A provider region served on loopback.
#[derive(Debug)]
pub struct Served {
    /// Where it listens.
    pub endpoints: Endpoints,
    /// The region.
    pub region: String,
    /// The lakes it serves.
    pub lakes: LakeDirectory,
}

async fn bind(port: u16) -> io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Binds every service of `lakes`' first region on 127.0.0.1 (ports from `port_base`, or any
/// free ports when it is 0) and spawns their servers on the current runtime. The tenants'
/// resource policies are `policies`.
pub async fn start(
    lakes: LakeDirectory,
    config: ProviderConfig,
    policies: LakePolicies,
    port_base: u16,
) -> io::Result<Served> {
    let port = |k: u16| if port_base == 0 { 0 } else { port_base + k };
    let region = lakes.regions[0].clone();
    let epoch = wall_unix_secs();
    let provider = ProviderRegion::new(&region, config, Arc::new(TokioClock::new()), epoch);
    let iam =
        Iam::new(lakes.seed, lakes.clone(), vec![system_principal()]).with_lake_policies(policies);
    let (s3_listener, s3) = bind(port(0)).await?;
    let (sts_listener, sts) = bind(port(1)).await?;
    let (imds_listener, imds) = bind(port(2)).await?;
    let (sqs_listener, sqs) = bind(port(3)).await?;
    let (glue_listener, glue) = bind(port(4)).await?;
    let store = ObjectStoreFake::new(
        ObjectStoreConfig {
            region: region.clone(),
            lakes: lakes.clone(),
            buckets: Vec::new(),
        },
        provider.clone(),
        iam.clone(),
    );
    tokio::spawn(serve_tcp(s3_listener, Correlated(store.service())));
    tokio::spawn(serve_tcp(
        sts_listener,
        Correlated(TowerToHyperService::new(
            StsFake::new(provider.clone(), iam.clone()).router(),
        )),
    ));
    tokio::spawn(serve_tcp(
        glue_listener,
        Correlated(TowerToHyperService::new(
            GlueFake::new(provider.clone(), iam.clone(), lakes.clone()).router(),
        )),
    ));
    tokio::spawn(serve_tcp(
        sqs_listener,
        Correlated(TowerToHyperService::new(
            SqsFake::new(provider.clone(), iam.clone()).router(),
        )),
    ));
    tokio::spawn(serve_tcp(
        imds_listener,
        Correlated(TowerToHyperService::new(
            ImdsFake::new("i-loopback", provider.clone(), iam).router(),
        )),
    ));
    tokio::spawn(provider.run());
    Ok(Served {
        endpoints: Endpoints {
            s3,
            sts,
            imds,
            sqs,
            glue,
        },
        region,
        lakes,
    })
}

impl Served {
    /// The environment a client needs, as `export NAME=value` lines a shell can `eval`.
    pub fn exports(&self) -> String {
        let p = system_principal();
        let e = &self.endpoints;
        let mut out = String::new();
        for (name, value) in [
            ("AWS_ENDPOINT_URL_S3", format!("http://{}", e.s3)),
            ("AWS_ENDPOINT_URL_STS", format!("http://{}", e.sts)),
            ("AWS_ENDPOINT_URL_SQS", format!("http://{}", e.sqs)),
            ("AWS_ENDPOINT_URL_GLUE", format!("http://{}", e.glue)),
            (
                "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                format!("http://{}", e.imds),
            ),
            ("AWS_ACCESS_KEY_ID", p.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", p.secret_access_key),
            ("AWS_REGION", self.region.clone()),
            // The aws CLI v1 and older SDKs read only this one.
            ("AWS_DEFAULT_REGION", self.region.clone()),
            ("STAMPEDE_LAKE_ROLE_ARN", lake_role_arn(0)),
            // The role trusts the system's account only with this id (sts:ExternalId).
            ("STAMPEDE_LAKE_EXTERNAL_ID", self.lakes.external_id(0)),
            ("STAMPEDE_LAKE_BUCKET", self.lakes.bucket(0)),
        ] {
            let _ = writeln!(out, "export {name}='{value}'");
        }
        out
    }
}
