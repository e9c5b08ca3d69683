//! S3 GET throughput on loopback (goal P4): our object store fake against moto's server, side
//! by side, with the same client each time, two ways: `object_store`'s own HTTP client (reqwest,
//! keeping connections alive, as a user's program would), and the system's connector (one fresh
//! TCP connection per request, as the system under test calls the provider).
//!
//! moto runs when `moto_server` is on the PATH (`pip install "moto[server]"`); otherwise only
//! the fake is measured and the comparison is skipped with a note.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt as _;
use http_body_util::Empty;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload, RetryConfig};
use stampede::world::clock::WallTimer;
use stampede::world::net::serve_tcp;
use stampede::world::system_principal;
use stampede_fakes::{
    Iam, LakeDirectory, ObjectStoreConfig, ObjectStoreFake, ProviderConfig, ProviderRegion,
    TokioClock,
};
use stampede_system::TcpDialer;
use stampede_system::{exchange::send_collect, object_store_http::DialerConnector};

/// GETs per iteration, and how many run at once.
const GETS: usize = 200;
const CONCURRENCY: usize = 8;
const KEY: &str = "telemetry/part-00000.parquet";
/// The bucket the objects are read from: the system user's own.
const BUCKET: &str = "bench";

/// How the client reaches the server.
#[derive(Clone, Copy)]
enum Client {
    /// `object_store`'s default: reqwest, with a pool of kept-alive connections.
    Pooled,
    /// The system's connector: one fresh TCP connection per request.
    Fresh,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Self::Pooled => "object_store's client, kept-alive connections",
            Self::Fresh => "one fresh connection per request",
        }
    }
}

fn store(endpoint: &str, bucket: &str) -> Arc<dyn ObjectStore> {
    store_with(Client::Fresh, endpoint, bucket)
}

fn store_with(client: Client, endpoint: &str, bucket: &str) -> Arc<dyn ObjectStore> {
    let p = system_principal();
    let mut builder = AmazonS3Builder::new();
    if let Client::Fresh = client {
        builder = builder.with_http_connector(DialerConnector::new(Arc::new(TcpDialer)));
    }
    let store = builder
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(bucket)
        .with_access_key_id(p.access_key_id)
        .with_secret_access_key(p.secret_access_key)
        .with_retry(RetryConfig {
            max_retries: 0,
            retry_timeout: Duration::ZERO,
            ..RetryConfig::default()
        })
        .build()
        .expect("an S3 client");
    Arc::new(store)
}

async fn gets(store: Arc<dyn ObjectStore>) {
    futures::stream::iter(0..GETS)
        .map(|_| {
            let store = store.clone();
            async move {
                store
                    .get(&Path::from(KEY))
                    .await
                    .expect("get")
                    .bytes()
                    .await
                    .expect("body")
            }
        })
        .buffer_unordered(CONCURRENCY)
        .for_each(|_| async {})
        .await;
}

async fn start_fake() -> (String, Bytes) {
    let lakes = LakeDirectory {
        seed: 1,
        count: 1,
        tenants: 1,
        regions: vec!["us-east-1".into()],
        files_per_lake: 1,
        rows_per_file: 500,
    };
    let data = lakes.generate(0, KEY);
    // The fake enforces S3's 5,500 reads/s per prefix, which a loopback client exceeds: lift it
    // to measure the server itself.
    let config = ProviderConfig {
        s3_prefix_reads_per_s: 1e12,
        ..ProviderConfig::default()
    };
    let region = ProviderRegion::new(
        "us-east-1",
        config,
        Arc::new(TokioClock::new()),
        stampede::world::clock::wall_unix_secs(),
    );
    let iam = Iam::new(1, lakes.clone(), vec![system_principal()]);
    // The object lives in a bucket of the system's own account, as in moto: the tenants'
    // lakes are not the system user's to read.
    let config = ObjectStoreConfig {
        region: "us-east-1".into(),
        lakes,
        buckets: vec![BUCKET.into()],
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    tokio::spawn(serve_tcp(
        listener,
        ObjectStoreFake::new(config, region, iam).service(),
    ));
    store(&url, BUCKET)
        .put(&Path::from(KEY), PutPayload::from(data.clone()))
        .await
        .expect("the fake stores the object");
    (url, data)
}

/// A moto server process, stopped when dropped (also when a benchmark panics).
struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts moto on a free port with the same object in [`BUCKET`], if moto is installed.
async fn start_moto(data: Bytes) -> Option<(Moto, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Moto(
        Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?,
    );
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        let create = http::Request::put(format!("{url}/{BUCKET}"))
            .body(Empty::<Bytes>::new())
            .expect("a request");
        if send_collect(&TcpDialer, create).await.is_ok() {
            store(&url, BUCKET)
                .put(&Path::from(KEY), PutPayload::from(data))
                .await
                .ok()?;
            return Some((child, url));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

fn loopback(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (fake_url, data) = rt.block_on(start_fake());
    let moto = rt.block_on(start_moto(data.clone()));
    let mut group = c.benchmark_group("P4 s3-get-loopback");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(GETS as u64));
    let kib = data.len() / 1024;
    for client in [Client::Pooled, Client::Fresh] {
        let fake = store_with(client, &fake_url, BUCKET);
        group.bench_function(
            format!("stampede fake, {kib} KiB objects, {}", client.name()),
            |b| b.iter(|| rt.block_on(gets(fake.clone()))),
        );
        let Some((_, url)) = &moto else {
            println!("s3-get-loopback: moto_server not found; install moto[server] to compare");
            continue;
        };
        let moto_store = store_with(client, url, BUCKET);
        group.bench_function(
            format!("moto server, {kib} KiB objects, {}", client.name()),
            |b| b.iter(|| rt.block_on(gets(moto_store.clone()))),
        );
        // The ratio, from five more timed rounds of each, in turn.
        let time = |s: &Arc<dyn ObjectStore>| {
            let t = WallTimer::start();
            rt.block_on(gets(s.clone()));
            t.elapsed().as_secs_f64()
        };
        let (mut ours, mut theirs) = (0.0, 0.0);
        for _ in 0..5 {
            ours += time(&fake);
            theirs += time(&moto_store);
        }
        println!(
            "s3-get-loopback ({}): stampede {:.0} GET/s, moto {:.0} GET/s, ratio {:.1}x",
            client.name(),
            5.0 * GETS as f64 / ours,
            5.0 * GETS as f64 / theirs,
            theirs / ours
        );
    }
    group.finish();
    drop(moto);
}

/// What the provider's identity checks cost one S3 call, apart from the rest of the request:
/// reading the request's claims, its scope and signing time on the provider's clock, its key's
/// token and expiry, and the caller's right to the bucket. A lake role's session, as the system
/// reads a lake with it.
fn identity_checks(c: &mut Criterion) {
    use stampede_fakes::iam::{BucketAccess, lake_account, lake_role_arn};
    use stampede_fakes::sigv4::Claims;
    let lakes = LakeDirectory {
        seed: 1,
        count: 4,
        tenants: 4,
        regions: vec!["us-east-1".into()],
        files_per_lake: 1,
        rows_per_file: 1,
    };
    let iam = Iam::new(1, lakes, vec![system_principal()]);
    // Many sessions, as a busy provider holds them.
    for n in 0..10_000 {
        iam.issue(
            &lake_role_arn(n % 4),
            &format!("s{n}"),
            Duration::ZERO,
            Duration::from_secs(3600),
        );
    }
    let who = iam.issue(
        &lake_role_arn(1),
        "reader",
        Duration::ZERO,
        Duration::from_secs(3600),
    );
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={}/20260101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=0123456789abcdef",
            who.access_key_id
        )
        .parse()
        .expect("a header"),
    );
    headers.insert("x-amz-date", "20260101T000000Z".parse().expect("a date"));
    headers.insert(
        "x-amz-security-token",
        who.session_token
            .clone()
            .expect("a session token")
            .parse()
            .expect("a token"),
    );
    let now = std::time::UNIX_EPOCH + Duration::from_secs(1_767_225_600 + 60);
    let owner = lake_account(1);
    c.bench_function("P4 identity checks per S3 call", |b| {
        b.iter(|| {
            let claims = Claims::of(None, &headers).expect("claims").expect("signed");
            claims.check_scope("us-east-1", "s3").expect("scope");
            claims.check_time(now).expect("time");
            let who = iam
                .authenticate(
                    &claims.key,
                    claims.token.as_deref(),
                    Duration::from_secs(60),
                )
                .expect("a valid key");
            assert!(iam.may_use_bucket(&who, "lake-00001", &owner, BucketAccess::Read));
        })
    });
}

criterion_group!(benches, loopback, identity_checks);
criterion_main!(benches);
