//! The queue in simulation, through the real AWS SDK SQS client: visibility timeouts, long
//! polling, deletes and dead-letter redrive, in virtual time.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::QueueAttributeName;
use hyper_util::service::TowerToHyperService;
use stampede::world::net::{SimDialer, serve};
use stampede::world::{EPOCH_SECS, SimClock, system_principal};
use stampede_fakes::sqs::SqsFake;
use stampede_fakes::{Iam, LakeDirectory, ProviderConfig, ProviderRegion};
use stampede_system::aws_http::sdk_config;

/// What the client saw, in order, with the virtual second it saw it at.
type Seen = Rc<RefCell<Vec<(u64, String)>>>;

fn client() -> aws_sdk_sqs::Client {
    let p = system_principal();
    let credentials = Credentials::new(p.access_key_id, p.secret_access_key, None, None, "test");
    let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECS);
    aws_sdk_sqs::Client::new(&sdk_config(
        Arc::new(SimDialer),
        "http://provider:9300",
        "eu-west-1",
        credentials,
        epoch,
    ))
}

async fn scenario(seen: Seen) {
    let sqs = client();
    let start = tokio::time::Instant::now();
    let note = |what: String| seen.borrow_mut().push((start.elapsed().as_secs(), what));
    let dlq = sqs
        .create_queue()
        .queue_name("tasks-dlq")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let redrive = format!("{{\"deadLetterTargetArn\":\"{dlq_arn}\",\"maxReceiveCount\":\"2\"}}");
    let queue = sqs
        .create_queue()
        .queue_name("tasks")
        .attributes(QueueAttributeName::VisibilityTimeout, "10")
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();

    // A long poll on an empty queue waits for the message sent 3 s later.
    let q = queue.clone();
    let sender = tokio::task::spawn_local(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        client()
            .send_message()
            .queue_url(q)
            .message_body("lake-00001")
            .send()
            .await
            .unwrap();
    });
    let got = sqs
        .receive_message()
        .queue_url(&queue)
        .wait_time_seconds(20)
        .send()
        .await
        .unwrap();
    sender.await.unwrap();
    let m = &got.messages()[0];
    note(format!(
        "received {} count {}",
        m.body().unwrap(),
        m.attributes().unwrap()
            [&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount]
    ));

    // Not deleted: it is invisible for the visibility timeout, then comes back.
    let empty = sqs
        .receive_message()
        .queue_url(&queue)
        .send()
        .await
        .unwrap();
    note(format!("immediately again: {}", empty.messages().len()));
    let again = sqs
        .receive_message()
        .queue_url(&queue)
        .wait_time_seconds(20)
        .send()
        .await
        .unwrap();
    note(format!("redelivered: {}", again.messages().len()));

    // Past maxReceiveCount it moves to the dead-letter queue.
    let gone = sqs
        .receive_message()
        .queue_url(&queue)
        .wait_time_seconds(15)
        .send()
        .await
        .unwrap();
    note(format!("after two receives: {}", gone.messages().len()));
    let dead = sqs.receive_message().queue_url(&dlq).send().await.unwrap();
    note(format!(
        "in the dead-letter queue: {}",
        dead.messages()[0].body().unwrap()
    ));

    // Delete and change visibility use the latest receipt handle.
    let receipt = dead.messages()[0].receipt_handle().unwrap().to_string();
    sqs.change_message_visibility()
        .queue_url(&dlq)
        .receipt_handle(&receipt)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let back = sqs.receive_message().queue_url(&dlq).send().await.unwrap();
    let receipt = back.messages()[0].receipt_handle().unwrap().to_string();
    sqs.delete_message()
        .queue_url(&dlq)
        .receipt_handle(&receipt)
        .send()
        .await
        .unwrap();
    let err = sqs
        .delete_message()
        .queue_url(&dlq)
        .receipt_handle(&receipt)
        .send()
        .await
        .unwrap_err();
    note(format!(
        "second delete: {}",
        err.into_service_error().code().unwrap_or("?")
    ));
    let err = sqs
        .send_message()
        .queue_url("http://provider:9300/100000000001/nope")
        .message_body("x")
        .send()
        .await
        .unwrap_err();
    note(format!(
        "unknown queue: {}",
        err.into_service_error().is_queue_does_not_exist()
    ));
}

#[test]
fn visibility_long_polling_and_redrive_with_the_sdk_in_virtual_time() {
    let seen: Seen = Rc::default();
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(120))
        .tick_duration(Duration::from_millis(10))
        .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
        .rng_seed(3)
        .build();
    let lakes = LakeDirectory {
        seed: 1,
        count: 1,
        tenants: 1,
        regions: vec!["eu-west-1".into()],
        files_per_lake: 1,
        rows_per_file: 1,
    };
    let region = ProviderRegion::new(
        "eu-west-1",
        ProviderConfig::default(),
        Arc::new(SimClock),
        EPOCH_SECS,
    );
    let sqs = SqsFake::new(region, Iam::new(1, lakes, vec![system_principal()]));
    sim.host("provider", move || {
        let service = TowerToHyperService::new(sqs.router());
        async move { serve(9300, service).await }
    });
    let s = seen.clone();
    sim.client("client", async move {
        scenario(s).await;
        Ok(())
    });
    sim.run().unwrap();
    let seen = seen.borrow().clone();
    let expected: Vec<(u64, String)> = vec![
        (3, "received lake-00001 count 1".into()),
        (3, "immediately again: 0".into()),
        (13, "redelivered: 1".into()),
        (28, "after two receives: 0".into()),
        (28, "in the dead-letter queue: lake-00001".into()),
        (28, "second delete: ReceiptHandleIsInvalid".into()),
        (28, "unknown queue: true".into()),
    ];
    assert_eq!(seen, expected);
}
