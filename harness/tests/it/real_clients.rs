//! Real clients against the fakes on loopback: the AWS SDK for Rust's IMDS credentials
//! provider, STS and Glue clients, and `object_store`'s S3 client, unchanged but for endpoints.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::provider_config::ProviderConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_sts::error::ProvideErrorMetadata;
use futures::TryStreamExt;
use hyper_util::service::TowerToHyperService;
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, RetryConfig as StoreRetry};
use stampede::world::net::serve_tcp;
use stampede::world::system_principal;
use stampede_fakes::glue::GlueFake;
use stampede_fakes::iam::lake_role_arn;
use stampede_fakes::imds::ImdsFake;
use stampede_fakes::sts::StsFake;
use stampede_fakes::{
    Iam, LakeDirectory, ObjectStoreConfig, ObjectStoreFake, ProviderConfig as Provider,
    ProviderRegion, TokioClock,
};
use stampede_system::TcpDialer;
use stampede_system::aws_http::{DialerHttpClient, EpochClock, TokioSleep, sdk_config};

const REGION: &str = "eu-west-1";

/// The fake provider's endpoints on loopback.
pub(crate) struct Fakes {
    pub(crate) s3: String,
    pub(crate) sts: String,
    pub(crate) imds: String,
    pub(crate) glue: String,
    pub(crate) sqs: String,
}

async fn listen() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

/// The lakes the fakes serve: four of four tenants.
pub(crate) fn lakes() -> LakeDirectory {
    LakeDirectory {
        seed: 1,
        count: 4,
        tenants: 4,
        regions: vec![REGION.into()],
        files_per_lake: 3,
        rows_per_file: 10,
    }
}

/// Every service of one region's fake provider on loopback: four lakes of four tenants.
pub(crate) async fn start_fakes() -> Fakes {
    let lakes = lakes();
    let provider = ProviderRegion::new(
        REGION,
        Provider::default(),
        Arc::new(TokioClock::new()),
        stampede::world::clock::wall_unix_secs(),
    );
    let iam = Iam::new(1, lakes.clone(), vec![system_principal()]);
    let config = ObjectStoreConfig {
        region: REGION.into(),
        lakes: lakes.clone(),
        buckets: vec!["conformance".into()],
    };
    let (l, s3) = listen().await;
    tokio::spawn(serve_tcp(
        l,
        ObjectStoreFake::new(config, provider.clone(), iam.clone()).service(),
    ));
    let (l, sts) = listen().await;
    tokio::spawn(serve_tcp(
        l,
        TowerToHyperService::new(StsFake::new(provider.clone(), iam.clone()).router()),
    ));
    let (l, glue) = listen().await;
    let catalog = GlueFake::new(provider.clone(), iam.clone(), lakes.clone());
    tokio::spawn(serve_tcp(l, TowerToHyperService::new(catalog.router())));
    let (l, sqs) = listen().await;
    let queue = stampede_fakes::sqs::SqsFake::new(provider.clone(), iam.clone());
    tokio::spawn(serve_tcp(l, TowerToHyperService::new(queue.router())));
    let (l, imds) = listen().await;
    tokio::spawn(serve_tcp(
        l,
        TowerToHyperService::new(ImdsFake::new("i-test", provider, iam).router()),
    ));
    Fakes {
        s3,
        sts,
        imds,
        glue,
        sqs,
    }
}

/// The clients' clock: the wall clock, as the fakes served for real judge signatures by it.
fn epoch() -> SystemTime {
    stampede::world::clock::wall_now()
}

/// Lake `i`'s role, assumed by the system's user with the tenant's external id.
async fn lake_credentials(fakes: &Fakes, i: u32) -> Credentials {
    let p = system_principal();
    let user = Credentials::new(p.access_key_id, p.secret_access_key, None, None, "test");
    let out = sts_client(&fakes.sts, user)
        .assume_role()
        .role_arn(lake_role_arn(i))
        .role_session_name(format!("lake-{i}"))
        .external_id(lakes().external_id(i))
        .send()
        .await
        .expect("AssumeRole with the external id");
    let c = out.credentials().expect("credentials");
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "sts",
    )
}

fn http() -> DialerHttpClient {
    DialerHttpClient::new(Arc::new(TcpDialer))
}

fn sts_client(endpoint: &str, credentials: Credentials) -> aws_sdk_sts::Client {
    aws_sdk_sts::Client::new(&sdk_config(
        Arc::new(TcpDialer),
        endpoint,
        REGION,
        credentials,
        epoch(),
    ))
}

fn s3(
    endpoint: &str,
    bucket: &str,
    key: &str,
    secret: &str,
    token: Option<&str>,
) -> impl ObjectStore {
    let mut b = AmazonS3Builder::new()
        .with_http_connector(stampede_system::object_store_http::DialerConnector::new(
            Arc::new(TcpDialer),
        ))
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region(REGION)
        .with_bucket_name(bucket)
        .with_access_key_id(key)
        .with_secret_access_key(secret)
        .with_retry(StoreRetry {
            max_retries: 0,
            retry_timeout: Duration::ZERO,
            ..StoreRetry::default()
        });
    if let Some(token) = token {
        b = b.with_token(token);
    }
    b.build().unwrap()
}

#[tokio::test]
async fn sdk_imds_and_sts_then_s3_with_the_assumed_role() {
    let fakes = start_fakes().await;

    // The instance role's keys, through aws-config's IMDSv2 credentials provider.
    let pc = ProviderConfig::empty()
        .with_http_client(http())
        .with_sleep_impl(TokioSleep)
        .with_time_source(EpochClock::new(epoch()));
    let imds = aws_config::imds::Client::builder()
        .configure(&pc)
        .endpoint(&fakes.imds)
        .unwrap()
        .build();
    let provider = aws_config::imds::credentials::ImdsCredentialsProvider::builder()
        .configure(&pc)
        .imds_client(imds)
        .build();
    let instance = provider
        .provide_credentials()
        .await
        .expect("IMDS credentials");
    assert!(instance.access_key_id().starts_with("ASIA"));
    assert!(instance.session_token().is_some());

    // AssumeRole of lake 1's role with them.
    let sts = sts_client(&fakes.sts, instance.clone());
    let out = sts
        .assume_role()
        .role_arn(lake_role_arn(1))
        .role_session_name("query-1")
        .external_id(lakes().external_id(1))
        .send()
        .await
        .expect("AssumeRole");
    let creds = out.credentials().expect("credentials");
    assert!(
        out.assumed_role_user()
            .unwrap()
            .arn()
            .ends_with(":assumed-role/stampede-lake-reader/query-1")
    );
    let me = sts
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity");
    assert_eq!(me.account(), Some("100000000001"));

    // Lake 1's role reads lake 1's bucket, and nothing else.
    let own = s3(
        &fakes.s3,
        "lake-00001",
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token()),
    );
    let listed: Vec<_> = own.list(None).try_collect().await.expect("own lake lists");
    assert_eq!(listed.len(), 3);
    let other = s3(
        &fakes.s3,
        "lake-00002",
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token()),
    );
    let err = other
        .list(None)
        .try_collect::<Vec<_>>()
        .await
        .expect_err("another tenant's lake");
    assert!(err.to_string().contains("AccessDenied"), "{err}");

    // A lake role may not assume another tenant's role.
    let lake_creds = Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token().into()),
        None,
        "test",
    );
    let err = sts_client(&fakes.sts, lake_creds)
        .assume_role()
        .role_arn(lake_role_arn(2))
        .role_session_name("x1")
        .external_id(lakes().external_id(2))
        .send()
        .await
        .expect_err("cross-tenant");
    assert_eq!(err.into_service_error().code(), Some("AccessDenied"));
}

#[tokio::test]
async fn unsigned_and_wrongly_signed_requests_get_s3s_real_errors() {
    let fakes = start_fakes().await;
    let p = system_principal();
    let req = http::Request::get(format!("{}/lake-00000?list-type=2", fakes.s3))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = stampede_system::exchange::send_collect(&TcpDialer, req)
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(String::from_utf8_lossy(resp.body()).contains("<Code>AccessDenied</Code>"));
    let wrong = s3(
        &fakes.s3,
        "lake-00000",
        &p.access_key_id,
        "not-the-secret",
        None,
    );
    let err = wrong
        .list(None)
        .try_collect::<Vec<_>>()
        .await
        .expect_err("wrong secret");
    assert!(err.to_string().contains("SignatureDoesNotMatch"), "{err}");
    // The right secret passes the signature check; the tenant's lake is still not the system
    // user's to read, and its own bucket is.
    let right = s3(
        &fakes.s3,
        "lake-00000",
        &p.access_key_id,
        &p.secret_access_key,
        None,
    );
    let err = right
        .list(None)
        .try_collect::<Vec<_>>()
        .await
        .expect_err("a tenant's lake");
    assert!(err.to_string().contains("AccessDenied"), "{err}");
    let own = s3(
        &fakes.s3,
        "conformance",
        &p.access_key_id,
        &p.secret_access_key,
        None,
    );
    assert!(own.list(None).try_collect::<Vec<_>>().await.is_ok());
}

#[tokio::test]
async fn sdk_glue_reads_a_lake_catalog_with_pagination() {
    let fakes = start_fakes().await;
    let credentials = lake_credentials(&fakes, 2).await;
    let config = sdk_config(
        Arc::new(TcpDialer),
        &fakes.glue,
        REGION,
        credentials,
        epoch(),
    );
    let glue = aws_sdk_glue::Client::new(&config);
    let lake = stampede_fakes::iam::lake_account(2);
    let table = glue
        .get_table()
        .catalog_id(&lake)
        .database_name("telemetry_lake")
        .name("telemetry")
        .send()
        .await
        .expect("GetTable");
    let table = table.table().expect("a table");
    assert_eq!(
        table.storage_descriptor().and_then(|s| s.location()),
        Some("s3://lake-00002/telemetry/")
    );
    assert_eq!(
        table.storage_descriptor().map(|s| s.columns().len()),
        Some(6)
    );
    // One partition a page: the client follows NextToken to the end.
    let mut values = Vec::new();
    let mut token = None;
    loop {
        let page = glue
            .get_partitions()
            .catalog_id(&lake)
            .database_name("telemetry_lake")
            .table_name("telemetry")
            .max_results(1)
            .set_next_token(token)
            .send()
            .await
            .expect("GetPartitions");
        values.extend(page.partitions().iter().flat_map(|p| p.values().to_vec()));
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(
        values,
        vec!["0".to_string(), "1".to_string(), "2".to_string()]
    );
    let err = glue
        .get_table()
        .catalog_id(&lake)
        .database_name("telemetry_lake")
        .name("nope")
        .send()
        .await
        .expect_err("no such table");
    assert!(err.into_service_error().is_entity_not_found_exception());
}

#[tokio::test]
async fn conditional_gets_answer_not_modified_and_precondition_failed() {
    use object_store::{GetOptions, ObjectStoreExt as _, path::Path};
    let fakes = start_fakes().await;
    let c = lake_credentials(&fakes, 0).await;
    let store = s3(
        &fakes.s3,
        "lake-00000",
        c.access_key_id(),
        c.secret_access_key(),
        c.session_token(),
    );
    let path = Path::from("telemetry/part-00000.parquet");
    let meta = store.head(&path).await.expect("head");
    let etag = meta.e_tag.clone().expect("an ETag");
    let get = |options: GetOptions| {
        let (store, path) = (&store, path.clone());
        async move { store.get_opts(&path, options).await.map(|_| ()) }
    };
    let none_match = GetOptions {
        if_none_match: Some(etag.clone()),
        ..GetOptions::default()
    };
    assert!(matches!(
        get(none_match).await,
        Err(object_store::Error::NotModified { .. })
    ));
    let other = GetOptions {
        if_match: Some("\"0123\"".into()),
        ..GetOptions::default()
    };
    assert!(matches!(
        get(other).await,
        Err(object_store::Error::Precondition { .. })
    ));
    let same = GetOptions {
        if_match: Some(etag),
        ..GetOptions::default()
    };
    assert!(get(same).await.is_ok());
    let since = GetOptions {
        if_modified_since: Some(meta.last_modified),
        ..GetOptions::default()
    };
    assert!(matches!(
        get(since).await,
        Err(object_store::Error::NotModified { .. })
    ));
    let unmodified = GetOptions {
        if_unmodified_since: Some(meta.last_modified),
        ..GetOptions::default()
    };
    assert!(get(unmodified).await.is_ok());
}

/// `object_store`'s own conformance functions against an empty bucket of the fake.
#[tokio::test]
async fn object_store_conformance() {
    use object_store::integration::*;
    let fakes = start_fakes().await;
    let p = system_principal();
    // Copy-if-not-exists through a multipart upload completed with `If-None-Match: *`.
    let store = AmazonS3Builder::new()
        .with_http_connector(stampede_system::object_store_http::DialerConnector::new(
            Arc::new(TcpDialer),
        ))
        .with_endpoint(&fakes.s3)
        .with_allow_http(true)
        .with_region(REGION)
        .with_bucket_name("conformance")
        .with_access_key_id(&p.access_key_id)
        .with_secret_access_key(&p.secret_access_key)
        .with_copy_if_not_exists(object_store::aws::S3CopyIfNotExists::Multipart)
        .with_retry(StoreRetry {
            max_retries: 0,
            retry_timeout: Duration::ZERO,
            ..StoreRetry::default()
        })
        .build()
        .unwrap();
    multipart(&store, &store).await;
    multipart_out_of_order(&store).await;
    multipart_race_condition(&store, true).await;
    list_paginated(&store, &store).await;
    let store: &object_store::DynObjectStore = &store;
    put_get_attributes(store).await;
    put_get_delete_list(store).await;
    get_opts(store).await;
    put_opts(store, true).await;
    list_uses_directories_correctly(store).await;
    list_with_delimiter(store).await;
    rename_and_copy(store).await;
    copy_if_not_exists(store).await;
    copy_rename_nonexistent_object(store).await;
    list_with_offset_exclusivity(store).await;
    stream_get(store).await;
    assert!(get_nonexistent_object(store, None).await.is_err());
}

#[tokio::test]
async fn sts_sqs_and_glue_verify_signatures() {
    let fakes = start_fakes().await;
    let p = system_principal();
    let wrong = || {
        Credentials::new(
            p.access_key_id.clone(),
            "not-the-secret",
            None,
            None,
            "test",
        )
    };
    let err = sts_client(&fakes.sts, wrong())
        .get_caller_identity()
        .send()
        .await
        .expect_err("wrong secret");
    assert_eq!(
        err.into_service_error().code(),
        Some("SignatureDoesNotMatch")
    );
    let glue = aws_sdk_glue::Client::new(&sdk_config(
        Arc::new(TcpDialer),
        &fakes.glue,
        REGION,
        wrong(),
        epoch(),
    ));
    let err = glue.get_databases().send().await.expect_err("wrong secret");
    assert_eq!(
        aws_sdk_glue::error::ProvideErrorMetadata::code(&err.into_service_error()),
        Some("InvalidSignatureException")
    );
    let sqs_url = &fakes.sqs;
    let sqs = aws_sdk_sqs::Client::new(&sdk_config(
        Arc::new(TcpDialer),
        sqs_url,
        REGION,
        wrong(),
        epoch(),
    ));
    let err = sqs
        .create_queue()
        .queue_name("q")
        .send()
        .await
        .expect_err("wrong secret");
    assert_eq!(
        aws_sdk_sqs::error::ProvideErrorMetadata::code(&err.into_service_error()),
        Some("SignatureDoesNotMatch")
    );
    let unknown = Credentials::new("AKIANOBODY0000000000", "x", None, None, "test");
    let err = sts_client(&fakes.sts, unknown)
        .get_caller_identity()
        .send()
        .await
        .expect_err("unknown key");
    assert_eq!(
        err.into_service_error().code(),
        Some("InvalidClientTokenId")
    );
}

#[tokio::test]
async fn sdk_sqs_send_receive_delete_and_redrive_on_loopback() {
    use aws_sdk_sqs::types::QueueAttributeName;
    let fakes = start_fakes().await;
    let url = &fakes.sqs;
    let p = system_principal();
    let credentials = Credentials::new(p.access_key_id, p.secret_access_key, None, None, "test");
    let sqs = aws_sdk_sqs::Client::new(&sdk_config(
        Arc::new(TcpDialer),
        url,
        REGION,
        credentials,
        epoch(),
    ));
    let dlq = sqs
        .create_queue()
        .queue_name("dlq")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let arn = arn.attributes().unwrap()[&QueueAttributeName::QueueArn].clone();
    // Visibility 0 and one receive allowed: no waiting, and the second receive redrives.
    let queue = sqs
        .create_queue()
        .queue_name("work")
        .attributes(QueueAttributeName::VisibilityTimeout, "0")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            format!("{{\"deadLetterTargetArn\":\"{arn}\",\"maxReceiveCount\":1}}"),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    sqs.send_message()
        .queue_url(&queue)
        .message_body("keep")
        .send()
        .await
        .unwrap();
    sqs.send_message()
        .queue_url(&queue)
        .message_body("done")
        .send()
        .await
        .unwrap();
    let got = sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let bodies: Vec<&str> = got.messages().iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies, vec!["keep", "done"]);
    sqs.delete_message()
        .queue_url(&queue)
        .receipt_handle(got.messages()[1].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    let again = sqs
        .receive_message()
        .queue_url(&queue)
        .send()
        .await
        .unwrap();
    assert!(
        again.messages().is_empty(),
        "past maxReceiveCount the message left the queue"
    );
    let dead = sqs.receive_message().queue_url(&dlq).send().await.unwrap();
    assert_eq!(dead.messages()[0].body(), Some("keep"));
}
