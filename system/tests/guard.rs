//! The guard in real mode, against wiremock on loopback: retries with jitter within the
//! budget, `Retry-After`, errors that must not be retried, and a breaker that opens and closes.
//! Each decision is read back from the guard's own events.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use stampede_system::config::{Preset, SystemConfig};
use stampede_system::guard::{Guard, GuardError};
use stampede_system::{Dialer, TcpDialer};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// One mechanism event: its name and numeric fields.
#[derive(Debug, Clone, Default)]
struct Seen {
    name: String,
    numbers: Vec<(String, u64)>,
}

impl Seen {
    fn number(&self, field: &str) -> Option<u64> {
        self.numbers
            .iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| *v)
    }
}

impl Visit for Seen {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.name = format!("{value:?}");
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.numbers.push((field.name().to_string(), value));
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Seen>>>);

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == stampede_system::guard::MECHANISM_EVENTS {
            let mut seen = Seen::default();
            event.record(&mut seen);
            self.0.lock().unwrap().push(seen);
        }
    }
}

impl Capture {
    fn named(&self, name: &str) -> Vec<Seen> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }
}

fn config() -> SystemConfig {
    let mut c = SystemConfig::preset(Preset::Hardened);
    c.tuning.retry_base = Duration::from_millis(50);
    c.tuning.retry_cap = Duration::from_millis(200);
    c.tuning.call_timeout = Duration::from_secs(5);
    c
}

/// Runs `body` on a fresh runtime with the guard's events captured.
fn with_events<F: std::future::Future<Output = ()>>(body: impl FnOnce() -> F) -> Capture {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || rt.block_on(body()));
    capture
}

const KEY: &str = "/lake-00001/telemetry/part-00000.parquet";

async fn get(guard: &Arc<Guard>, server: &MockServer) -> Result<u16, GuardError> {
    let req = http::Request::get(format!("{}{KEY}", server.uri()))
        .body(Bytes::new())
        .unwrap();
    let dialer: Arc<dyn Dialer> = Arc::new(TcpDialer);
    guard
        .exchange(dialer, req)
        .await
        .map(|r| r.status().as_u16())
}

fn slow_down() -> ResponseTemplate {
    ResponseTemplate::new(503).set_body_string(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
    )
}

/// A server answering `first` once, then `then` for ever.
async fn server(first: ResponseTemplate, times: u64, then: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(KEY))
        .respond_with(first)
        .up_to_n_times(times)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(KEY))
        .respond_with(then)
        .mount(&server)
        .await;
    server
}

#[test]
fn slow_down_then_ok_is_retried_after_a_jittered_delay_within_the_budget() {
    let events = with_events(|| async {
        let server = server(
            slow_down(),
            1,
            ResponseTemplate::new(200).set_body_string("PAR1"),
        )
        .await;
        let guard = Arc::new(Guard::new(config(), 1));
        assert_eq!(get(&guard, &server).await.unwrap(), 200);
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
    });
    let retries = events.named("retry");
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0].number("attempt"), Some(1));
    assert!(
        retries[0].number("delay_us").unwrap() <= 50_000,
        "full jitter under the base: {retries:?}"
    );
    assert!(events.named("retry_denied").is_empty());
    // Other seeds draw other delays: the jitter is real, and seeded.
    let delays: Vec<u64> = (0..4u64)
        .map(|seed| {
            let e = with_events(|| async move {
                let server = server(slow_down(), 1, ResponseTemplate::new(200)).await;
                let guard = Arc::new(Guard::new(config(), seed));
                get(&guard, &server).await.unwrap();
            });
            e.named("retry")[0].number("delay_us").unwrap()
        })
        .collect();
    assert!(delays.windows(2).any(|w| w[0] != w[1]), "{delays:?}");
}

#[test]
fn a_spent_budget_stops_retrying() {
    let events = with_events(|| async {
        let server = server(slow_down(), 1, slow_down()).await;
        let mut c = config();
        // The budget starts with its one saved retry; 10 % of two requests earns no other,
        // and there is no floor.
        c.tuning.retry_budget_min_per_s = 0.0;
        let guard = Arc::new(Guard::new(c, 1));
        assert_eq!(get(&guard, &server).await.unwrap(), 503);
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
        assert_eq!(get(&guard, &server).await.unwrap(), 503);
        assert_eq!(server.received_requests().await.unwrap().len(), 3);
    });
    assert_eq!(events.named("retry").len(), 1);
    assert_eq!(events.named("retry_denied").len(), 2);
}

#[test]
fn retry_after_is_honoured() {
    let events = with_events(|| async {
        let busy = ResponseTemplate::new(503)
            .insert_header("retry-after", "1")
            .set_body_string(
                "{\"__type\":\"com.amazonaws.sqs#ServiceUnavailable\",\"message\":\"busy\"}",
            );
        let server = server(busy, 1, ResponseTemplate::new(200)).await;
        let guard = Arc::new(Guard::new(config(), 1));
        assert_eq!(get(&guard, &server).await.unwrap(), 200);
    });
    let retries = events.named("retry");
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0].number("retry_after_us"), Some(1_000_000));
    assert!(
        retries[0].number("delay_us").unwrap() >= 1_000_000,
        "{retries:?}"
    );
}

#[test]
fn errors_that_cannot_improve_are_not_retried() {
    for (status, code) in [
        (403, "AccessDenied"),
        (403, "AccountProblem"),
        (400, "InvalidArgument"),
        (404, "NoSuchKey"),
    ] {
        let events = with_events(|| async move {
            let body = format!("<Error><Code>{code}</Code><Message>no</Message></Error>");
            let answer = ResponseTemplate::new(status).set_body_string(body);
            let server = server(answer.clone(), 1, answer).await;
            let guard = Arc::new(Guard::new(config(), 1));
            assert_eq!(get(&guard, &server).await.unwrap(), status);
            assert_eq!(server.received_requests().await.unwrap().len(), 1, "{code}");
        });
        assert!(events.named("retry").is_empty(), "{code}");
    }
}

#[test]
fn the_breaker_opens_fails_fast_and_closes_after_a_good_probe() {
    let events = with_events(|| async {
        let server = server(ResponseTemplate::new(500), 2, ResponseTemplate::new(200)).await;
        let mut c = config();
        c.tuning.max_attempts = 1;
        c.tuning.breaker_failures = 2;
        c.tuning.breaker_open_for = Duration::from_millis(300);
        let guard = Arc::new(Guard::new(c, 1));
        assert_eq!(get(&guard, &server).await.unwrap(), 500);
        assert_eq!(get(&guard, &server).await.unwrap(), 500);
        assert!(matches!(
            get(&guard, &server).await,
            Err(GuardError::BreakerOpen(_))
        ));
        assert_eq!(
            server.received_requests().await.unwrap().len(),
            2,
            "failed fast, without a request"
        );
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(get(&guard, &server).await.unwrap(), 200, "the probe");
        assert_eq!(get(&guard, &server).await.unwrap(), 200, "closed again");
    });
    assert_eq!(events.named("breaker_opened").len(), 1);
    assert_eq!(events.named("breaker_rejected").len(), 1);
    assert_eq!(events.named("breaker_closed").len(), 1);
}
