//! Malformed requests to the fakes: garbage bodies, unknown operations, missing and mistyped
//! parameters. Each gets the service's error response (a 4xx with its error shape); none
//! panics, none changes state.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::service::TowerToHyperService;
use proptest::prelude::*;
use stampede::world::net::serve_tcp;
use stampede::world::system_principal;
use stampede_fakes::glue::GlueFake;
use stampede_fakes::sqs::SqsFake;
use stampede_fakes::sts::StsFake;
use stampede_fakes::{
    Iam, LakeDirectory, ObjectStoreConfig, ObjectStoreFake, ProviderConfig, ProviderRegion,
    TokioClock,
};
use stampede_system::TcpDialer;
use stampede_system::exchange::send_collect;

struct Endpoints {
    s3: String,
    sts: String,
    sqs: String,
    glue: String,
}

async fn start() -> Endpoints {
    let lakes = LakeDirectory {
        seed: 1,
        count: 2,
        tenants: 2,
        regions: vec!["eu-west-1".into()],
        files_per_lake: 1,
        rows_per_file: 5,
    };
    let region = ProviderRegion::new(
        "eu-west-1",
        ProviderConfig::default(),
        Arc::new(TokioClock::new()),
        stampede::world::clock::wall_unix_secs(),
    );
    let iam = Iam::new(1, lakes.clone(), vec![system_principal()]);
    let listen = || async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        (l, url)
    };
    let (l, s3) = listen().await;
    let config = ObjectStoreConfig {
        region: "eu-west-1".into(),
        lakes: lakes.clone(),
        buckets: Vec::new(),
    };
    tokio::spawn(serve_tcp(
        l,
        ObjectStoreFake::new(config, region.clone(), iam.clone()).service(),
    ));
    let (l, sts) = listen().await;
    tokio::spawn(serve_tcp(
        l,
        TowerToHyperService::new(StsFake::new(region.clone(), iam.clone()).router()),
    ));
    let (l, sqs) = listen().await;
    tokio::spawn(serve_tcp(
        l,
        TowerToHyperService::new(SqsFake::new(region.clone(), iam.clone()).router()),
    ));
    let (l, glue) = listen().await;
    tokio::spawn(serve_tcp(
        l,
        TowerToHyperService::new(GlueFake::new(region, iam, lakes).router()),
    ));
    Endpoints { s3, sts, sqs, glue }
}

/// A header naming the system's access key, as a signed request would.
fn auth() -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={}/20260101/eu-west-1/x/aws4_request, SignedHeaders=host, Signature=00",
        system_principal().access_key_id
    )
}

async fn post(url: &str, target: Option<&str>, content_type: &str, body: Vec<u8>) -> (u16, String) {
    let mut req = http::Request::post(format!("{url}/"))
        .header("content-type", content_type)
        .header("authorization", auth());
    if let Some(t) = target {
        req = req.header("x-amz-target", t);
    }
    let resp = send_collect(&TcpDialer, req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        String::from_utf8_lossy(resp.body()).into_owned(),
    )
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        "\\{\"[A-Za-z]{1,12}\":(\"[ -~]{0,20}\"|[0-9]{1,6}|null|\\[\\]|\\{\\})\\}".prop_map(String::into_bytes),
        Just(b"{\"QueueUrl\":\"http://x/1/q\",\"MaxNumberOfMessages\":\"ten\"}".to_vec()),
        Just(b"{\"DatabaseName\":7,\"Name\":[]}".to_vec()),
        Just(b"Action=AssumeRole&Version=2011-06-15".to_vec()),
        Just(b"Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A300000000000%3Arole%2Fx&RoleSessionName=%00".to_vec()),
    ]
}

fn op() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("SendMessage".to_string()),
        Just("ReceiveMessage".to_string()),
        Just("DeleteMessage".to_string()),
        Just("CreateQueue".to_string()),
        Just("GetTable".to_string()),
        Just("GetPartitions".to_string()),
        "[A-Za-z]{0,16}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn malformed_requests_get_errors_and_change_nothing(body in body(), op in op()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let e = start().await;
            let (status, text) = post(&e.sqs, Some(&format!("AmazonSQS.{op}")), "application/x-amz-json-1.0", body.clone()).await;
            prop_assert!((400..500).contains(&status) || status == 200, "sqs {status} {text}");
            if status != 200 {
                prop_assert!(text.contains("__type"), "sqs error shape: {text}");
            }
            let (status, text) = post(&e.glue, Some(&format!("AWSGlue.{op}")), "application/x-amz-json-1.1", body.clone()).await;
            prop_assert!((400..500).contains(&status), "glue {status} {text}");
            prop_assert!(text.contains("__type"), "glue error shape: {text}");
            let (status, text) = post(&e.sts, None, "application/x-www-form-urlencoded", body.clone()).await;
            prop_assert!((400..500).contains(&status), "sts {status} {text}");
            prop_assert!(text.contains("<ErrorResponse"), "sts error shape: {text}");
            let (status, text) = post(&format!("{}/lake-00000/telemetry/part-00000.parquet", e.s3), None, "application/xml", body.clone()).await;
            prop_assert!((400..500).contains(&status) || status == 501, "s3 {status} {text}");
            // Nothing changed: no queue was created, the lake still lists its one file.
            let (status, text) = post(&e.sqs, Some("AmazonSQS.GetQueueUrl"), "application/x-amz-json-1.0", b"{\"QueueName\":\"tasks\"}".to_vec()).await;
            prop_assert_eq!(status, 400, "{}", text);
            Ok(())
        })?;
    }
}
