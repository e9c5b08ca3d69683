//! The provider refuses what AWS refuses, seen by real clients inside the simulation: the AWS
//! SDK's STS, SQS and Glue clients and `object_store`'s S3 client, each signing on a node's
//! virtual clock. Every misuse gets the code the real service sends, and leaves a provider call
//! with that code.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::provider_config::ProviderConfig as SdkProviderConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_sts::error::ProvideErrorMetadata;
use futures::TryStreamExt;
use hyper_util::service::TowerToHyperService;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload, RetryConfig};
use stampede::events::{EventLog, Recorder};
use stampede::world::net::{SimDialer, serve};
use stampede::world::{EPOCH_SECS, SimClock, system_principal};
use stampede_fakes::glue::GlueFake;
use stampede_fakes::iam::{lake_account, lake_role_arn};
use stampede_fakes::imds::ImdsFake;
use stampede_fakes::sqs::SqsFake;
use stampede_fakes::sts::StsFake;
use stampede_fakes::{
    Iam, LakeDirectory, ObjectStoreConfig, ObjectStoreFake, ProviderConfig, ProviderRegion,
};
use stampede_system::aws_http::{EpochClock, TokioSleep, sdk_config};
use stampede_system::object_store_http::{DialerConnector, NodeSigner};

const REGION: &str = "eu-west-1";

fn lakes() -> LakeDirectory {
    LakeDirectory {
        seed: 1,
        count: 4,
        tenants: 4,
        regions: vec![REGION.into()],
        files_per_lake: 1,
        rows_per_file: 5,
    }
}

/// The node's clock, `shift` off the simulation's: read when a client is built.
fn clock(shift: i64) -> EpochClock {
    let now = SystemTime::UNIX_EPOCH
        + Duration::from_secs(EPOCH_SECS)
        + turmoil::sim_elapsed().unwrap_or_default();
    let at = if shift >= 0 {
        now + Duration::from_secs(shift as u64)
    } else {
        now - Duration::from_secs(shift.unsigned_abs())
    };
    EpochClock::new(at)
}

/// What each probe got: `ok`, or the error code the client saw.
type Outcomes = Rc<RefCell<Vec<(String, String)>>>;

/// Runs a provider host (S3, STS, SQS, Glue) and a node with its own IMDS, and `client` on the
/// node; returns the log and what the client noted.
fn simulate<F, Fut>(client: F) -> (EventLog, Vec<(String, String)>)
where
    F: FnOnce(Outcomes) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let recorder = Recorder::new();
    let outcomes: Outcomes = Rc::default();
    let noted = outcomes.clone();
    let duration = Duration::from_secs(20 * 60);
    recorder.scope(|| {
        let mut sim = turmoil::Builder::new()
            .simulation_duration(duration * 2)
            .tick_duration(Duration::from_millis(50))
            .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
            .min_message_latency(Duration::from_millis(1))
            .max_message_latency(Duration::from_millis(2))
            .rng_seed(1)
            .build();
        let region = ProviderRegion::new(
            REGION,
            ProviderConfig::default(),
            Arc::new(SimClock),
            EPOCH_SECS,
        );
        let iam = Iam::new(1, lakes(), vec![system_principal()]);
        let store = ObjectStoreFake::new(
            ObjectStoreConfig {
                region: REGION.into(),
                lakes: lakes(),
                buckets: Vec::new(),
            },
            region.clone(),
            iam.clone(),
        );
        let sts = StsFake::new(region.clone(), iam.clone());
        let sqs = SqsFake::new(region.clone(), iam.clone());
        let glue = GlueFake::new(region.clone(), iam.clone(), lakes());
        let imds = ImdsFake::new("node", region, iam);
        sim.host("provider", move || {
            let s3 = store.service();
            let sts = TowerToHyperService::new(sts.router());
            let sqs = TowerToHyperService::new(sqs.router());
            let glue = TowerToHyperService::new(glue.router());
            async move {
                tokio::task::spawn_local(serve(9100, sts));
                tokio::task::spawn_local(serve(9300, sqs));
                tokio::task::spawn_local(serve(9400, glue));
                serve(9000, s3).await
            }
        });
        sim.client("node", async move {
            tokio::task::spawn_local(serve(9200, TowerToHyperService::new(imds.router())));
            client(outcomes).await;
            Ok(())
        });
        while sim.elapsed() < duration {
            recorder.set_now(sim.elapsed());
            if sim.step().expect("the simulation runs") {
                break;
            }
        }
    });
    let noted = noted.borrow().clone();
    (recorder.take(), noted)
}

fn note<T, E: ProvideErrorMetadata>(out: &Outcomes, label: &str, r: Result<T, E>) {
    let got = match r {
        Ok(_) => "ok".to_string(),
        Err(e) => e.code().unwrap_or("no code").to_string(),
    };
    out.borrow_mut().push((label.into(), got));
}

/// `object_store` reports the S3 error document in its message: the code it names.
fn note_store<T>(out: &Outcomes, label: &str, r: object_store::Result<T>) {
    let got = match r {
        Ok(_) => "ok".to_string(),
        Err(e) => {
            let text = e.to_string();
            text.split_once("<Code>")
                .and_then(|(_, rest)| rest.split_once("</Code>"))
                .map_or(text.clone(), |(code, _)| code.to_string())
        }
    };
    out.borrow_mut().push((label.into(), got));
}

fn creds(key: &str, secret: &str, token: Option<&str>) -> Credentials {
    Credentials::new(key, secret, token.map(str::to_string), None, "test")
}

fn sts(c: Credentials, region: &str, shift: i64) -> aws_sdk_sts::Client {
    let conf = sdk_config(
        Arc::new(SimDialer),
        "http://provider:9100",
        region,
        c,
        clock(shift),
    );
    aws_sdk_sts::Client::new(&conf)
}

fn sqs(c: Credentials, shift: i64) -> aws_sdk_sqs::Client {
    let conf = sdk_config(
        Arc::new(SimDialer),
        "http://provider:9300",
        REGION,
        c,
        clock(shift),
    );
    aws_sdk_sqs::Client::new(&conf)
}

fn glue(c: Credentials, shift: i64) -> aws_sdk_glue::Client {
    let conf = sdk_config(
        Arc::new(SimDialer),
        "http://provider:9400",
        REGION,
        c,
        clock(shift),
    );
    aws_sdk_glue::Client::new(&conf)
}

fn s3(c: &Credentials, bucket: &str, region: &str, shift: i64) -> impl ObjectStore {
    let connector = DialerConnector::new(Arc::new(SimDialer)).signing(NodeSigner::new(
        c.clone(),
        region,
        clock(shift),
    ));
    let mut b = AmazonS3Builder::new()
        .with_http_connector(connector)
        .with_endpoint("http://provider:9000")
        .with_allow_http(true)
        .with_region(region)
        .with_bucket_name(bucket)
        .with_access_key_id(c.access_key_id())
        .with_secret_access_key(c.secret_access_key())
        .with_retry(RetryConfig {
            max_retries: 0,
            retry_timeout: Duration::ZERO,
            ..RetryConfig::default()
        });
    if let Some(t) = c.session_token() {
        b = b.with_token(t);
    }
    b.build().unwrap()
}

async fn instance_credentials() -> Credentials {
    let pc = SdkProviderConfig::empty()
        .with_http_client(stampede_system::aws_http::DialerHttpClient::new(Arc::new(
            SimDialer,
        )))
        .with_sleep_impl(TokioSleep)
        .with_time_source(clock(0));
    let imds = aws_config::imds::Client::builder()
        .configure(&pc)
        .endpoint("http://node:9200")
        .unwrap()
        .build();
    aws_config::imds::credentials::ImdsCredentialsProvider::builder()
        .configure(&pc)
        .imds_client(imds)
        .build()
        .provide_credentials()
        .await
        .expect("the node's IMDS answers")
}

/// Lake 1's role, assumed by the instance with the tenant's external id, for `seconds`.
async fn lake_session(instance: &Credentials, session: &str, seconds: i32) -> Credentials {
    let out = sts(instance.clone(), REGION, 0)
        .assume_role()
        .role_arn(lake_role_arn(1))
        .role_session_name(session)
        .external_id(lakes().external_id(1))
        .duration_seconds(seconds)
        .send()
        .await
        .expect("the instance assumes lake 1's role with its external id");
    let c = out.credentials().unwrap();
    creds(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token()),
    )
}

fn expect(outcomes: &[(String, String)], want: &[(&str, &str)]) {
    let got: Vec<(&str, &str)> = outcomes
        .iter()
        .map(|(l, c)| (l.as_str(), c.as_str()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn session_keys_need_their_own_token_and_expire() {
    let (log, outcomes) = simulate(|out| async move {
        let instance = instance_credentials().await;
        let a = lake_session(&instance, "short", 900).await;
        let b = lake_session(&instance, "long", 3600).await;
        let bare = creds(a.access_key_id(), a.secret_access_key(), None);
        let swapped = creds(a.access_key_id(), a.secret_access_key(), b.session_token());
        for (what, c) in [("no token", &bare), ("another token", &swapped)] {
            let r = sts(c.clone(), REGION, 0).get_caller_identity().send().await;
            note(&out, &format!("sts {what}"), r);
            let r = sqs(c.clone(), 0).list_queues().send().await;
            note(&out, &format!("sqs {what}"), r);
            let r = glue(c.clone(), 0).get_databases().send().await;
            note(&out, &format!("glue {what}"), r);
            let r = s3(c, "lake-00001", REGION, 0)
                .list(None)
                .try_collect::<Vec<_>>()
                .await;
            note_store(&out, &format!("s3 {what}"), r);
        }
        let r = s3(&a, "lake-00001", REGION, 0)
            .list(None)
            .try_collect::<Vec<_>>()
            .await;
        note_store(&out, "s3 own token", r);
        // Session a lasts 15 minutes.
        tokio::time::sleep(Duration::from_secs(901)).await;
        let r = sts(a.clone(), REGION, 0).get_caller_identity().send().await;
        note(&out, "sts expired", r);
        let r = glue(a.clone(), 0).get_databases().send().await;
        note(&out, "glue expired", r);
        let r = s3(&a, "lake-00001", REGION, 0)
            .list(None)
            .try_collect::<Vec<_>>()
            .await;
        note_store(&out, "s3 expired", r);
    });
    expect(
        &outcomes,
        &[
            ("sts no token", "InvalidClientTokenId"),
            ("sqs no token", "InvalidClientTokenId"),
            ("glue no token", "UnrecognizedClientException"),
            ("s3 no token", "InvalidAccessKeyId"),
            ("sts another token", "InvalidClientTokenId"),
            ("sqs another token", "InvalidClientTokenId"),
            ("glue another token", "UnrecognizedClientException"),
            ("s3 another token", "InvalidToken"),
            ("s3 own token", "ok"),
            ("sts expired", "ExpiredToken"),
            ("glue expired", "ExpiredTokenException"),
            ("s3 expired", "ExpiredToken"),
        ],
    );
    // Each refusal is a provider call with its code.
    let codes: Vec<&str> = log
        .of("stampede::provider")
        .filter(|e| e.name == "call" && e.str("outcome") == Some("error"))
        .filter_map(|e| e.str("code"))
        .collect();
    for code in [
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "InvalidToken",
        "ExpiredToken",
        "ExpiredTokenException",
    ] {
        assert!(codes.contains(&code), "no call logged {code}: {codes:?}");
    }
}

#[test]
fn a_signature_older_or_newer_than_fifteen_minutes_or_for_another_region_is_refused() {
    let (_, outcomes) = simulate(|out| async move {
        let instance = instance_credentials().await;
        for (what, shift) in [
            ("20 min behind", -1200),
            ("20 min ahead", 1200),
            ("14 min behind", -840),
        ] {
            let r = sts(instance.clone(), REGION, shift)
                .get_caller_identity()
                .send()
                .await;
            note(&out, &format!("sts {what}"), r);
            let r = sqs(instance.clone(), shift)
                .create_queue()
                .queue_name("probe")
                .send()
                .await;
            note(&out, &format!("sqs {what}"), r);
            let r = glue(instance.clone(), shift).get_databases().send().await;
            note(&out, &format!("glue {what}"), r);
            let r = s3(&instance, "stampede-results", REGION, shift)
                .list(None)
                .try_collect::<Vec<_>>()
                .await;
            note_store(&out, &format!("s3 {what}"), r);
        }
        let r = sts(instance.clone(), "us-west-2", 0)
            .get_caller_identity()
            .send()
            .await;
        note(&out, "sts another region", r);
        let r = s3(&instance, "stampede-results", "us-west-2", 0)
            .list(None)
            .try_collect::<Vec<_>>()
            .await;
        note_store(&out, "s3 another region", r);
    });
    expect(
        &outcomes,
        &[
            ("sts 20 min behind", "SignatureDoesNotMatch"),
            ("sqs 20 min behind", "SignatureDoesNotMatch"),
            ("glue 20 min behind", "InvalidSignatureException"),
            ("s3 20 min behind", "RequestTimeTooSkewed"),
            ("sts 20 min ahead", "SignatureDoesNotMatch"),
            ("sqs 20 min ahead", "SignatureDoesNotMatch"),
            ("glue 20 min ahead", "InvalidSignatureException"),
            ("s3 20 min ahead", "RequestTimeTooSkewed"),
            // Within the 15 minutes the signature passes: the system's account has no catalog
            // and no such bucket.
            ("sts 14 min behind", "ok"),
            ("sqs 14 min behind", "ok"),
            ("glue 14 min behind", "EntityNotFoundException"),
            ("s3 14 min behind", "NoSuchBucket"),
            ("sts another region", "SignatureDoesNotMatch"),
            ("s3 another region", "AuthorizationHeaderMalformed"),
        ],
    );
}

#[test]
fn the_system_reads_a_tenants_data_only_through_its_role_and_the_role_only_reads() {
    let (_, outcomes) = simulate(|out| async move {
        let instance = instance_credentials().await;
        let system = sts(instance.clone(), REGION, 0);
        let r = system
            .assume_role()
            .role_arn(lake_role_arn(1))
            .role_session_name("no-id")
            .send()
            .await;
        note(&out, "assume without external id", r);
        let r = system
            .assume_role()
            .role_arn(lake_role_arn(1))
            .role_session_name("other-id")
            .external_id(lakes().external_id(2))
            .send()
            .await;
        note(&out, "assume with another tenant's id", r);
        let r = system
            .assume_role()
            .role_arn(lake_role_arn(1))
            .role_session_name("long")
            .external_id(lakes().external_id(1))
            .duration_seconds(7200)
            .send()
            .await;
        note(&out, "assume for two hours", r);
        let lake = lake_session(&instance, "reader", 3600).await;
        let path = Path::from("telemetry/part-00000.parquet");
        // The instance, on the tenant's bucket and catalog.
        let r = s3(&instance, "lake-00001", REGION, 0).get(&path).await;
        note_store(&out, "instance reads the lake", r);
        let r = glue(instance.clone(), 0)
            .get_table()
            .catalog_id(lake_account(1))
            .database_name("telemetry_lake")
            .name("telemetry")
            .send()
            .await;
        note(&out, "instance reads the catalog", r);
        // The lake's role: reads its own, writes nothing, reads no other.
        let own = s3(&lake, "lake-00001", REGION, 0);
        note_store(&out, "role reads its lake", own.get(&path).await);
        let r = own
            .put(&Path::from("x"), PutPayload::from_static(b"x"))
            .await;
        note_store(&out, "role writes its lake", r);
        note_store(&out, "role deletes in its lake", own.delete(&path).await);
        let r = s3(&lake, "lake-00002", REGION, 0).get(&path).await;
        note_store(&out, "role reads another lake", r);
        let r = glue(lake.clone(), 0)
            .get_table()
            .catalog_id(lake_account(2))
            .database_name("telemetry_lake")
            .name("telemetry")
            .send()
            .await;
        note(&out, "role reads another catalog", r);
        let r = glue(lake.clone(), 0)
            .get_table()
            .database_name("telemetry_lake")
            .name("telemetry")
            .send()
            .await;
        note(&out, "role reads its catalog", r);
        // The system's own queue: no other account may use it.
        let queue = sqs(instance.clone(), 0)
            .create_queue()
            .queue_name("tasks")
            .send()
            .await
            .expect("the instance creates its queue")
            .queue_url()
            .unwrap()
            .to_string();
        let stranger = sqs(lake.clone(), 0);
        let r = stranger.receive_message().queue_url(&queue).send().await;
        note(&out, "another account receives", r);
        let r = stranger.purge_queue().queue_url(&queue).send().await;
        note(&out, "another account purges", r);
        let r = stranger
            .delete_message()
            .queue_url(&queue)
            .receipt_handle("x")
            .send()
            .await;
        note(&out, "another account deletes", r);
        let own_url = stranger
            .create_queue()
            .queue_name("tasks")
            .send()
            .await
            .expect("another account creates its own queue")
            .queue_url()
            .unwrap()
            .to_string();
        out.borrow_mut().push((
            "same name, another queue".into(),
            (own_url != queue).to_string(),
        ));
    });
    expect(
        &outcomes,
        &[
            ("assume without external id", "AccessDenied"),
            ("assume with another tenant's id", "AccessDenied"),
            ("assume for two hours", "ValidationError"),
            ("instance reads the lake", "AccessDenied"),
            ("instance reads the catalog", "AccessDeniedException"),
            ("role reads its lake", "ok"),
            ("role writes its lake", "AccessDenied"),
            ("role deletes in its lake", "AccessDenied"),
            ("role reads another lake", "AccessDenied"),
            ("role reads another catalog", "AccessDeniedException"),
            ("role reads its catalog", "ok"),
            ("another account receives", "AccessDenied"),
            ("another account purges", "AccessDenied"),
            ("another account deletes", "AccessDenied"),
            ("same name, another queue", "true"),
        ],
    );
}
