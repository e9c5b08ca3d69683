//! The provider model in simulation: quotas, the shared fleet and the abuse policy, driven by
//! the real AWS SDK STS client over the simulated network.

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::provider_config::ProviderConfig as SdkProviderConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use hyper_util::service::TowerToHyperService;
use stampede::events::{EventLog, Recorder};
use stampede::world::net::{SimDialer, serve};
use stampede::world::{EPOCH_SECS, SimClock, system_principal};
use stampede_fakes::iam::{SYSTEM_ACCOUNT, lake_role_arn};
use stampede_fakes::imds::ImdsFake;
use stampede_fakes::provider::{AbusePolicy, BackgroundLoad, FleetConfig, Limit};
use stampede_fakes::sts::StsFake;
use stampede_fakes::{Iam, LakeDirectory, ProviderConfig, ProviderRegion};
use stampede_system::aws_http::{DialerHttpClient, EpochClock, TokioSleep, sdk_config};

const REGION: &str = "eu-west-1";

/// The lakes of the provider tests: four of four tenants.
fn lakes() -> LakeDirectory {
    LakeDirectory {
        seed: 1,
        count: 4,
        tenants: 4,
        regions: vec![REGION.into()],
        files_per_lake: 1,
        rows_per_file: 1,
    }
}

fn epoch() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECS)
}

/// Runs a provider host and a client host for `duration`; the client gets an STS client
/// signed with the instance role's keys from IMDS.
fn simulate<F, Fut>(
    config: ProviderConfig,
    background: BackgroundLoad,
    duration: Duration,
    client: F,
) -> EventLog
where
    F: FnOnce(Rc<aws_sdk_sts::Client>) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let recorder = Recorder::new();
    recorder.scope(|| {
        let mut sim = turmoil::Builder::new()
            .simulation_duration(duration * 2)
            .tick_duration(Duration::from_millis(5))
            .epoch(epoch())
            .min_message_latency(Duration::from_millis(1))
            .max_message_latency(Duration::from_millis(2))
            .rng_seed(1)
            // Deep enough for a thousand requests at once.
            .tcp_capacity(4096)
            .build();
        let region = ProviderRegion::new(REGION, config, Arc::new(SimClock), EPOCH_SECS);
        let iam = Iam::new(1, lakes(), vec![system_principal()]);
        let sts = StsFake::new(region.clone(), iam.clone());
        let imds = ImdsFake::new("client", region.clone(), iam);
        sim.host("provider", move || {
            let sts = TowerToHyperService::new(sts.router());
            let imds = TowerToHyperService::new(imds.router());
            let region = region.clone();
            let background = background.clone();
            async move {
                tokio::task::spawn_local(region.clone().run());
                tokio::task::spawn_local(region.run_background(background));
                tokio::task::spawn_local(serve(9200, imds));
                serve(9100, sts).await
            }
        });
        sim.client("client", async move {
            let http = DialerHttpClient::new(Arc::new(SimDialer));
            let pc = SdkProviderConfig::empty()
                .with_http_client(http.clone())
                .with_sleep_impl(TokioSleep)
                .with_time_source(EpochClock::new(epoch()));
            let imds = aws_config::imds::Client::builder()
                .configure(&pc)
                .endpoint("http://provider:9200")
                .unwrap()
                .build();
            let keys = aws_config::imds::credentials::ImdsCredentialsProvider::builder()
                .configure(&pc)
                .imds_client(imds)
                .build();
            let keys: Credentials = keys.provide_credentials().await.expect("instance keys");
            let config = sdk_config(
                Arc::new(SimDialer),
                "http://provider:9100",
                REGION,
                keys,
                epoch(),
            );
            client(Rc::new(aws_sdk_sts::Client::new(&config))).await;
            Ok(())
        });
        while sim.elapsed() < duration {
            recorder.set_now(sim.elapsed());
            sim.step().expect("the simulation runs");
        }
    });
    recorder.take()
}

/// Fires AssumeRole at `rate_per_s` from `from` for `seconds`, without waiting for answers.
async fn offer(sts: Rc<aws_sdk_sts::Client>, from: Duration, rate_per_s: f64, seconds: f64) {
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..(rate_per_s * seconds) as u64 {
        tokio::time::sleep_until(start + from + Duration::from_secs_f64(i as f64 / rate_per_s))
            .await;
        let sts = sts.clone();
        tasks.spawn_local(async move {
            let _ = sts
                .assume_role()
                .role_arn(lake_role_arn(1))
                .role_session_name(format!("s{i}"))
                .external_id(lakes().external_id(1))
                .send()
                .await;
        });
    }
    while tasks.join_next().await.is_some() {}
}

fn calls<'a>(
    log: &'a EventLog,
    account: &'a str,
    api: &'a str,
) -> impl Iterator<Item = &'a stampede::events::Event> + 'a {
    log.of("stampede::provider").filter(move |e| {
        e.name == "call" && e.str("account") == Some(account) && e.str("api") == Some(api)
    })
}

#[test]
fn twice_the_quota_for_a_minute_admits_rate_times_duration_plus_burst() {
    let mut config = ProviderConfig::default();
    config.quotas.insert(
        "AssumeRole".into(),
        Limit {
            rate_per_s: 20.0,
            burst: 40.0,
        },
    );
    let log = simulate(
        config,
        BackgroundLoad::default(),
        Duration::from_secs(65),
        |sts| offer(sts, Duration::ZERO, 40.0, 60.0),
    );
    let ok = calls(&log, SYSTEM_ACCOUNT, "AssumeRole")
        .filter(|e| e.str("outcome") == Some("ok"))
        .count() as f64;
    let throttled = calls(&log, SYSTEM_ACCOUNT, "AssumeRole")
        .filter(|e| e.str("outcome") == Some("throttled"))
        .count();
    let expected = 20.0 * 60.0 + 40.0;
    assert!(
        (ok - expected).abs() <= 0.01 * expected,
        "accepted {ok}, expected {expected} within 1%"
    );
    assert!(throttled > 1000, "the other half is throttled: {throttled}");
}

#[test]
fn sustained_overload_freezes_the_loud_account_and_hurts_the_others() {
    let config = ProviderConfig {
        fleet: FleetConfig {
            servers: 2,
            base_service: Duration::from_millis(10),
            ..FleetConfig::default()
        },
        abuse: AbusePolicy {
            fleet_util_over: 0.9,
            sustained: Duration::from_secs(10),
            freeze_for: Duration::from_secs(30),
            min_share: 0.5,
        },
        ..ProviderConfig::default()
    };
    let background = BackgroundLoad {
        accounts: 4,
        rate_per_s: 5.0,
        ..BackgroundLoad::default()
    };
    // The fleet serves 200 calls/s; the system offers 400/s from 5 s to 25 s.
    let log = simulate(config, background, Duration::from_secs(70), |sts| {
        offer(sts, Duration::from_secs(5), 400.0, 20.0)
    });
    let frozen: Vec<_> = log
        .of("stampede::provider")
        .filter(|e| e.name == "account_frozen")
        .collect();
    assert_eq!(frozen.len(), 1, "one freeze: {frozen:?}");
    assert_eq!(frozen[0].str("account"), Some(SYSTEM_ACCOUNT));
    let t = frozen[0].time();
    // Frozen once the load averaged over the 10 s window passes 90 % of capacity: the first
    // window over 180 calls/s is [0 s, 10 s), with 5 s of 400/s and the background's 20/s.
    assert!(
        t >= Duration::from_secs(10) && t <= Duration::from_secs(11),
        "frozen once the 10 s average is over: {t:?}"
    );
    let thawed: Vec<_> = log
        .of("stampede::provider")
        .filter(|e| e.name == "account_thawed")
        .collect();
    assert_eq!(thawed.len(), 1);
    let thaw = thawed[0].time() - t;
    assert!(
        thaw >= Duration::from_secs(30) && thaw <= Duration::from_secs(31),
        "thawed on time: {thaw:?}"
    );
    // The never_frozen invariant sees it.
    let verdict = stampede::judge::invariants::never_frozen(&log, &[SYSTEM_ACCOUNT]);
    assert_eq!(verdict.word(), "fail");
    // Calls while frozen are refused as frozen.
    assert!(calls(&log, SYSTEM_ACCOUNT, "AssumeRole").any(|e| e.str("outcome") == Some("frozen")));
    // Background accounts: clean before the overload, failing during it.
    let background_error_rate = |from: u64, to: u64| {
        let window: Vec<_> = log
            .of("stampede::provider")
            .filter(|e| e.name == "call" && e.str("account").is_some_and(|a| a.starts_with('2')))
            .filter(|e| (Duration::from_secs(from)..Duration::from_secs(to)).contains(&e.time()))
            .collect();
        let bad = window
            .iter()
            .filter(|e| e.str("outcome") != Some("ok"))
            .count();
        bad as f64 / window.len().max(1) as f64
    };
    assert_eq!(background_error_rate(1, 5), 0.0);
    assert!(
        background_error_rate(8, 15) > 0.2,
        "collateral damage: {}",
        background_error_rate(8, 15)
    );
}

#[test]
fn fleet_latency_rises_with_offered_load() {
    let config = ProviderConfig {
        fleet: FleetConfig {
            servers: 2,
            base_service: Duration::from_millis(10),
            ..FleetConfig::default()
        },
        abuse: AbusePolicy {
            sustained: Duration::from_secs(3600),
            ..AbusePolicy::default()
        },
        ..ProviderConfig::default()
    };
    // 200 calls/s of capacity; offer 20%, 40% and 60% of it for 5 s each, 5 s apart.
    let log = simulate(
        config,
        BackgroundLoad::default(),
        Duration::from_secs(40),
        |sts| async move {
            offer(sts.clone(), Duration::from_secs(1), 40.0, 5.0).await;
            offer(sts.clone(), Duration::from_secs(5), 80.0, 5.0).await;
            offer(sts, Duration::from_secs(5), 120.0, 5.0).await;
        },
    );
    let mean_latency = |from: u64, to: u64| {
        let window: Vec<u64> = calls(&log, SYSTEM_ACCOUNT, "AssumeRole")
            .filter(|e| (Duration::from_secs(from)..Duration::from_secs(to)).contains(&e.time()))
            .filter(|e| e.str("outcome") == Some("ok"))
            .filter_map(|e| e.u64("latency_us"))
            .collect();
        assert!(!window.is_empty(), "calls between {from} s and {to} s");
        window.iter().sum::<u64>() / window.len() as u64
    };
    let (low, mid, high) = (
        mean_latency(1, 7),
        mean_latency(11, 17),
        mean_latency(22, 28),
    );
    assert!(
        low < mid && mid < high,
        "latency must rise with load: {low} µs, {mid} µs, {high} µs"
    );
}

#[test]
fn s3_prefix_limit_holds_in_simulation() {
    use futures::StreamExt as _;
    use object_store::ObjectStoreExt as _;
    let config = ProviderConfig {
        s3_prefix_reads_per_s: 50.0,
        ..ProviderConfig::default()
    };
    let recorder = Recorder::new();
    recorder.scope(|| {
        let mut sim = turmoil::Builder::new()
            .simulation_duration(Duration::from_secs(60))
            .tick_duration(Duration::from_millis(5))
            .epoch(epoch())
            .rng_seed(2)
            .build();
        let lakes = LakeDirectory {
            seed: 1,
            count: 1,
            tenants: 1,
            regions: vec![REGION.into()],
            files_per_lake: 1,
            rows_per_file: 10,
        };
        let region = ProviderRegion::new(REGION, config, Arc::new(SimClock), EPOCH_SECS);
        let iam = Iam::new(1, lakes.clone(), vec![system_principal()]);
        // The system's own bucket: its user may read and write it.
        let store_config = stampede_fakes::ObjectStoreConfig {
            region: REGION.into(),
            lakes,
            buckets: vec!["results".into()],
        };
        let s3 = stampede_fakes::ObjectStoreFake::new(store_config, region, iam);
        sim.host("provider", move || {
            let service = s3.service();
            async move { serve(9000, service).await }
        });
        sim.client("client", async move {
            let p = system_principal();
            // Signed on the simulation's clock, as a node signs: the provider judges its time.
            let signer = stampede_system::object_store_http::NodeSigner::new(
                Credentials::new(&p.access_key_id, &p.secret_access_key, None, None, "test"),
                REGION,
                EpochClock::new(epoch()),
            );
            let store = object_store::aws::AmazonS3Builder::new()
                .with_http_connector(
                    stampede_system::object_store_http::DialerConnector::new(Arc::new(SimDialer))
                        .signing(signer),
                )
                .with_endpoint("http://provider:9000")
                .with_allow_http(true)
                .with_region(REGION)
                .with_bucket_name("results")
                .with_access_key_id(p.access_key_id)
                .with_secret_access_key(p.secret_access_key)
                .with_retry(object_store::RetryConfig {
                    max_retries: 0,
                    retry_timeout: Duration::ZERO,
                    ..Default::default()
                })
                .build()?;
            let key = "telemetry/part-00000.parquet".into();
            store
                .put(&key, object_store::PutPayload::from_static(b"PAR1"))
                .await?;
            let store = Rc::new(store);
            // Twice the prefix's read rate for 10 s.
            let start = tokio::time::Instant::now();
            futures::stream::iter(0..1000u64)
                .map(|i| {
                    let store = store.clone();
                    async move {
                        tokio::time::sleep_until(start + Duration::from_millis(i * 10)).await;
                        let _ = store.head(&"telemetry/part-00000.parquet".into()).await;
                    }
                })
                .buffer_unordered(64)
                .for_each(|()| async {})
                .await;
            Ok(())
        });
        sim.run().unwrap();
    });
    let log = recorder.take();
    let heads = || calls(&log, SYSTEM_ACCOUNT, "HeadObject");
    let ok = heads().filter(|e| e.str("outcome") == Some("ok")).count() as f64;
    let throttled = heads()
        .filter(|e| e.str("outcome") == Some("throttled"))
        .count();
    let expected = 50.0 * 10.0 + 50.0;
    assert!(
        (ok - expected).abs() <= 0.01 * expected,
        "admitted {ok}, expected {expected} within 1%"
    );
    assert!(
        throttled > 400,
        "the rest is throttled with SlowDown: {throttled}"
    );
}

#[test]
fn an_instance_past_its_imds_packet_rate_gets_no_answer() {
    let outcome = Rc::new(std::cell::RefCell::new((0u32, 0u32)));
    let seen = outcome.clone();
    // The SDK's credential fetch took three packets; 1,100 token requests at once meet what is
    // left of the instance's 1,024 a second.
    let log = simulate(
        ProviderConfig::default(),
        BackgroundLoad::default(),
        Duration::from_secs(30),
        move |_sts| async move {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..1100 {
                tasks.spawn_local(async {
                    let req = http::Request::put("http://provider:9200/latest/api/token")
                        .header("x-aws-ec2-metadata-token-ttl-seconds", "21600")
                        .body(http_body_util::Empty::<bytes::Bytes>::new())
                        .unwrap();
                    tokio::time::timeout(
                        Duration::from_secs(5),
                        stampede_system::exchange::send_collect(&SimDialer, req),
                    )
                    .await
                    .map(|r| r.map(|r| r.status().as_u16()).ok())
                });
            }
            while let Some(done) = tasks.join_next().await {
                let mut seen = seen.borrow_mut();
                match done.unwrap() {
                    Ok(Some(200)) => seen.0 += 1,
                    Err(_) => seen.1 += 1,
                    other => panic!("IMDS answered {other:?}"),
                }
            }
        },
    );
    let (answered, timed_out) = *outcome.borrow();
    assert!(
        (1015..=1030).contains(&answered),
        "about the 1,021 packets left: {answered}"
    );
    assert_eq!(answered + timed_out, 1100);
    let throttled = log
        .of("stampede::provider")
        .filter(|e| e.str("api") == Some("GetToken") && e.str("outcome") == Some("throttled"))
        .count();
    assert_eq!(
        throttled as u32, timed_out,
        "each dropped request is logged and never answered"
    );
    // IMDS is not the account's: no quota, fleet or freeze counts it.
    assert!(
        log.of("stampede::provider")
            .filter(|e| e.name == "call" && e.str("service") == Some("imds"))
            .all(|e| e.str("account") == Some(SYSTEM_ACCOUNT))
    );
}
