//! The queue: an SQS-compatible service on the JSON protocol (`X-Amz-Target: AmazonSQS.*`),
//! with visibility timeouts, long polling and dead-letter redrive after `maxReceiveCount`.
//!
//! Clients post every call to the endpoint root with the queue URL in the body. A queue belongs
//! to the account that created it and is found by its owner and name, as its URL
//! (`http://host/{account}/{name}`) and ARN spell them; a dead-letter queue is found by its ARN.
//! Only the owner's principals may use a queue: no queue here carries a policy granting another
//! account, so another account is refused with `AccessDenied`, as SQS refuses it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use sha2::Digest as _;
use tokio::sync::Notify;

use crate::iam::Iam;
use crate::provider::{Admission, CallOutcome, ProviderCall, ProviderRegion};
use crate::sigv4::{Endpoint, Refusal, verify};

/// Default visibility timeout of a new queue, as on SQS.
const DEFAULT_VISIBILITY_S: u64 = 30;
/// Longest visibility timeout SQS allows: 12 hours.
const MAX_VISIBILITY_S: u64 = 43_200;
/// Longest long poll: 20 seconds.
const MAX_WAIT_S: u64 = 20;
/// Most messages one receive or one batch carries.
const MAX_BATCH: usize = 10;
/// Largest message body: 256 KiB.
const MAX_BODY: usize = 262_144;

#[derive(Debug, Clone)]
struct Message {
    id: String,
    body: String,
    sent_at: Duration,
    visible_at: Duration,
    receive_count: u64,
    first_receive: Option<Duration>,
    receipt: Option<String>,
}

/// A queue's owner account and name.
type QueueKey = (String, String);

#[derive(Debug)]
struct Queue {
    name: String,
    account: String,
    visibility: Duration,
    /// The dead-letter queue and the receive count past which messages move there.
    redrive: Option<(QueueKey, u64)>,
    redrive_json: Option<String>,
    /// Messages in send order.
    messages: BTreeMap<u64, Message>,
}

#[derive(Debug, Default)]
struct SqsState {
    queues: BTreeMap<QueueKey, Queue>,
    sent: u64,
}

/// One region's queue service.
#[derive(Debug, Clone)]
pub struct SqsFake {
    region: ProviderRegion,
    iam: Iam,
    state: Arc<Mutex<SqsState>>,
    /// Wakes long polls when a message is sent or becomes visible again.
    arrivals: Arc<Notify>,
}

/// An error as SQS's JSON protocol writes it.
#[derive(Debug, Clone)]
struct SqsError {
    status: StatusCode,
    /// The shape name, for `__type`.
    shape: &'static str,
    /// The query-compatible code, for `x-amzn-query-error`.
    code: &'static str,
    message: String,
    outcome: CallOutcome,
}

impl SqsError {
    fn new(
        status: StatusCode,
        shape: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            shape,
            code,
            message: message.into(),
            outcome: CallOutcome::Error(code.to_string()),
        }
    }

    fn no_queue() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "QueueDoesNotExist",
            "AWS.SimpleQueueService.NonExistentQueue",
            "The specified queue does not exist or you do not have access to it.",
        )
    }

    fn access_denied(url: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "AccessDenied",
            format!("Access to the resource {url} is denied."),
        )
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValue",
            "InvalidParameterValue",
            message,
        )
    }

    fn into_response(self) -> Response {
        let body = json!({ "__type": format!("com.amazonaws.sqs#{}", self.shape), "message": self.message });
        let mut resp = (self.status, body.to_string()).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.0"),
        );
        if let Ok(v) = HeaderValue::from_str(&format!("{};Sender", self.code)) {
            headers.insert("x-amzn-query-error", v);
        }
        resp
    }
}

type Answer = Result<Value, SqsError>;

impl SqsFake {
    /// The queue service of `region`.
    pub fn new(region: ProviderRegion, iam: Iam) -> Self {
        Self {
            region,
            iam,
            state: Arc::default(),
            arrivals: Arc::new(Notify::new()),
        }
    }

    /// The HTTP routes: `POST /`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", post(handle))
            .with_state(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, SqsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn arn(&self, account: &str, name: &str) -> String {
        format!("arn:aws:sqs:{}:{account}:{name}", self.region.name())
    }

    async fn call(&self, op: &str, host: &str, account: &str, input: &Value) -> Answer {
        match op {
            "CreateQueue" => self.create_queue(host, account, input),
            "GetQueueUrl" => {
                let name = str_field(input, "QueueName")?;
                let owner = input
                    .get("QueueOwnerAWSAccountId")
                    .and_then(Value::as_str)
                    .unwrap_or(account);
                let url = queue_url(host, owner, name);
                // Another account's queue is as good as absent: no policy here grants it.
                if owner != account {
                    return Err(SqsError::no_queue());
                }
                let state = self.lock();
                state
                    .queues
                    .get(&(owner.to_string(), name.to_string()))
                    .ok_or_else(SqsError::no_queue)?;
                Ok(json!({ "QueueUrl": url }))
            }
            "SendMessage" => {
                let body = str_field(input, "MessageBody")?;
                let delay = u64_field(input, "DelaySeconds")?.unwrap_or(0);
                let (id, md5) = self.send(&own_queue(account, input)?, body, delay)?;
                Ok(json!({ "MessageId": id, "MD5OfMessageBody": md5 }))
            }
            "SendMessageBatch" => self.send_batch(&own_queue(account, input)?, input),
            "ReceiveMessage" => self.receive(&own_queue(account, input)?, input).await,
            "DeleteMessage" => {
                let key = own_queue(account, input)?;
                let receipt = str_field(input, "ReceiptHandle")?;
                let mut state = self.lock();
                let q = state.queues.get_mut(&key).ok_or_else(SqsError::no_queue)?;
                let seq = find_receipt(q, receipt)?;
                q.messages.remove(&seq);
                Ok(json!({}))
            }
            "ChangeMessageVisibility" => {
                let key = own_queue(account, input)?;
                let receipt = str_field(input, "ReceiptHandle")?;
                let timeout = visibility(
                    u64_field(input, "VisibilityTimeout")?
                        .ok_or_else(|| missing("VisibilityTimeout"))?,
                )?;
                let now = self.region.now();
                let mut state = self.lock();
                let q = state.queues.get_mut(&key).ok_or_else(SqsError::no_queue)?;
                let seq = find_receipt(q, receipt)?;
                let m = q.messages.get_mut(&seq).expect("found above");
                if m.visible_at <= now {
                    return Err(SqsError::new(
                        StatusCode::BAD_REQUEST,
                        "MessageNotInflight",
                        "AWS.SimpleQueueService.MessageNotInflight",
                        "The message referred to isn't in flight.",
                    ));
                }
                m.visible_at = now + timeout;
                if timeout.is_zero() {
                    self.arrivals.notify_waiters();
                }
                Ok(json!({}))
            }
            "GetQueueAttributes" => self.attributes(&own_queue(account, input)?),
            "SetQueueAttributes" => {
                let key = own_queue(account, input)?;
                let attributes = input
                    .get("Attributes")
                    .ok_or_else(|| missing("Attributes"))?
                    .clone();
                let mut state = self.lock();
                let q = state.queues.get_mut(&key).ok_or_else(SqsError::no_queue)?;
                apply_attributes(q, &attributes)?;
                Ok(json!({}))
            }
            "PurgeQueue" => {
                let key = own_queue(account, input)?;
                let mut state = self.lock();
                let q = state.queues.get_mut(&key).ok_or_else(SqsError::no_queue)?;
                q.messages.clear();
                Ok(json!({}))
            }
            _ => Err(SqsError::new(
                StatusCode::BAD_REQUEST,
                "InvalidAction",
                "InvalidAction",
                format!("The action {op} is not valid for this endpoint."),
            )),
        }
    }

    fn create_queue(&self, host: &str, account: &str, input: &Value) -> Answer {
        let name = str_field(input, "QueueName")?;
        let valid = !name.is_empty()
            && name.len() <= 80
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(SqsError::invalid(
                "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length",
            ));
        }
        let key = (account.to_string(), name.to_string());
        let mut state = self.lock();
        if let std::collections::btree_map::Entry::Vacant(slot) = state.queues.entry(key) {
            let mut q = Queue {
                name: name.to_string(),
                account: account.to_string(),
                visibility: Duration::from_secs(DEFAULT_VISIBILITY_S),
                redrive: None,
                redrive_json: None,
                messages: BTreeMap::new(),
            };
            if let Some(attributes) = input.get("Attributes") {
                apply_attributes(&mut q, attributes)?;
            }
            slot.insert(q);
        }
        Ok(json!({ "QueueUrl": queue_url(host, account, name) }))
    }

    fn send(&self, key: &QueueKey, body: &str, delay_s: u64) -> Result<(String, String), SqsError> {
        if body.is_empty() || body.len() > MAX_BODY {
            return Err(SqsError::invalid(format!(
                "Message must be between 1 and {MAX_BODY} bytes long."
            )));
        }
        if delay_s > 900 {
            return Err(SqsError::invalid("DelaySeconds must be between 0 and 900."));
        }
        let now = self.region.now();
        let mut state = self.lock();
        state.sent += 1;
        let seq = state.sent;
        let q = state.queues.get_mut(key).ok_or_else(SqsError::no_queue)?;
        let digest = sha2::Sha256::digest(
            format!("{}/{}/{}/{seq}", self.region.name(), key.0, key.1).as_bytes(),
        );
        let h = hex::encode(&digest[..16]);
        let id = format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        );
        q.messages.insert(
            seq,
            Message {
                id: id.clone(),
                body: body.to_string(),
                sent_at: now,
                visible_at: now + Duration::from_secs(delay_s),
                receive_count: 0,
                first_receive: None,
                receipt: None,
            },
        );
        drop(state);
        self.arrivals.notify_waiters();
        Ok((id, md5_hex(body)))
    }

    fn send_batch(&self, key: &QueueKey, input: &Value) -> Answer {
        let entries = input
            .get("Entries")
            .and_then(Value::as_array)
            .ok_or_else(|| missing("Entries"))?;
        if entries.is_empty() {
            return Err(SqsError::new(
                StatusCode::BAD_REQUEST,
                "EmptyBatchRequest",
                "AWS.SimpleQueueService.EmptyBatchRequest",
                "There should be at least one SendMessageBatchRequestEntry in the request.",
            ));
        }
        if entries.len() > MAX_BATCH {
            return Err(SqsError::new(
                StatusCode::BAD_REQUEST,
                "TooManyEntriesInBatchRequest",
                "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
                format!("Maximum number of entries per request are {MAX_BATCH}."),
            ));
        }
        let mut ids: Vec<&str> = entries
            .iter()
            .filter_map(|e| e.get("Id").and_then(Value::as_str))
            .collect();
        ids.sort_unstable();
        if ids.len() != entries.len() || ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(SqsError::new(
                StatusCode::BAD_REQUEST,
                "BatchEntryIdsNotDistinct",
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
                "Two or more batch entries in the request have the same Id.",
            ));
        }
        let (mut ok, mut failed) = (Vec::new(), Vec::new());
        for entry in entries {
            let id = entry.get("Id").and_then(Value::as_str).unwrap_or("");
            let body = entry
                .get("MessageBody")
                .and_then(Value::as_str)
                .unwrap_or("");
            let delay = entry
                .get("DelaySeconds")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            match self.send(key, body, delay) {
                Ok((message_id, md5)) => {
                    ok.push(json!({ "Id": id, "MessageId": message_id, "MD5OfMessageBody": md5 }))
                }
                Err(e) if e.shape == "QueueDoesNotExist" => return Err(e),
                Err(e) => failed.push(
                    json!({ "Id": id, "SenderFault": true, "Code": e.code, "Message": e.message }),
                ),
            }
        }
        Ok(json!({ "Successful": ok, "Failed": failed }))
    }

    async fn receive(&self, key: &QueueKey, input: &Value) -> Answer {
        let max = u64_field(input, "MaxNumberOfMessages")?.unwrap_or(1);
        if !(1..=MAX_BATCH as u64).contains(&max) {
            return Err(SqsError::invalid(
                "Value for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided.",
            ));
        }
        let wait = u64_field(input, "WaitTimeSeconds")?.unwrap_or(0);
        if wait > MAX_WAIT_S {
            return Err(SqsError::invalid(
                "Value for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided.",
            ));
        }
        let override_visibility = u64_field(input, "VisibilityTimeout")?
            .map(visibility)
            .transpose()?;
        let deadline = self.region.now() + Duration::from_secs(wait);
        loop {
            let notified = self.arrivals.notified();
            let now = self.region.now();
            let (messages, next_visible) =
                self.take_visible(key, max as usize, override_visibility, now)?;
            if !messages.is_empty() || now >= deadline {
                return Ok(if messages.is_empty() {
                    json!({})
                } else {
                    json!({ "Messages": messages })
                });
            }
            let until = next_visible.map_or(deadline, |v| v.min(deadline));
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(until.saturating_sub(now).max(Duration::from_millis(1))) => {}
            }
        }
    }

    /// Takes up to `max` visible messages, moving those past their receive limit to the
    /// dead-letter queue. Returns them and when the next hidden message becomes visible.
    fn take_visible(
        &self,
        key: &QueueKey,
        max: usize,
        vt: Option<Duration>,
        now: Duration,
    ) -> Result<(Vec<Value>, Option<Duration>), SqsError> {
        let mut state = self.lock();
        // Redrive only to a queue that exists; otherwise messages stay and keep coming back.
        let redrive = state
            .queues
            .get(key)
            .and_then(|q| q.redrive.clone())
            .filter(|(dlq, _)| state.queues.contains_key(dlq));
        let q = state.queues.get_mut(key).ok_or_else(SqsError::no_queue)?;
        let timeout = vt.unwrap_or(q.visibility);
        let mut out = Vec::new();
        let mut dead = Vec::new();
        for (&seq, m) in q.messages.iter_mut() {
            if out.len() == max {
                break;
            }
            if m.visible_at > now {
                continue;
            }
            if let Some((_, limit)) = &redrive
                && m.receive_count >= *limit
            {
                dead.push(seq);
                continue;
            }
            m.receive_count += 1;
            m.first_receive.get_or_insert(now);
            // The queue's own record of what it handed out: a delivery after the first is the
            // queue's retry of the message's work.
            tracing::info!(
                target: crate::provider::PROVIDER_EVENTS,
                account = %q.account,
                region = %self.region.name(),
                queue = %q.name,
                message_id = %m.id,
                receive = m.receive_count,
                "delivered"
            );
            m.visible_at = now + timeout;
            let receipt = format!("{}#{}", m.id, m.receive_count);
            m.receipt = Some(receipt.clone());
            out.push(json!({
                "MessageId": m.id,
                "ReceiptHandle": receipt,
                "MD5OfBody": md5_hex(&m.body),
                "Body": m.body,
                "Attributes": {
                    "ApproximateReceiveCount": m.receive_count.to_string(),
                    "SentTimestamp": m.sent_at.as_millis().to_string(),
                    "ApproximateFirstReceiveTimestamp": m.first_receive.unwrap_or(now).as_millis().to_string(),
                    "SenderId": q.account,
                },
            }));
        }
        let next_visible = q
            .messages
            .values()
            .map(|m| m.visible_at)
            .filter(|&v| v > now)
            .min();
        // Sequence numbers are unique across the service, so a moved message keeps its own.
        let moved: Vec<(u64, Message)> = dead
            .iter()
            .filter_map(|&seq| q.messages.remove(&seq).map(|m| (seq, m)))
            .collect();
        if let Some((dlq, _)) = redrive
            && let Some(target) = state.queues.get_mut(&dlq)
        {
            for (seq, mut m) in moved {
                m.visible_at = now;
                m.receipt = None;
                target.messages.insert(seq, m);
            }
        }
        Ok((out, next_visible))
    }

    fn attributes(&self, key: &QueueKey) -> Answer {
        let now = self.region.now();
        let state = self.lock();
        let q = state.queues.get(key).ok_or_else(SqsError::no_queue)?;
        let visible = q.messages.values().filter(|m| m.visible_at <= now).count();
        let mut attributes = BTreeMap::new();
        attributes.insert("QueueArn", self.arn(&q.account, &q.name));
        attributes.insert("ApproximateNumberOfMessages", visible.to_string());
        attributes.insert(
            "ApproximateNumberOfMessagesNotVisible",
            (q.messages.len() - visible).to_string(),
        );
        attributes.insert("VisibilityTimeout", q.visibility.as_secs().to_string());
        if let Some(r) = &q.redrive_json {
            attributes.insert("RedrivePolicy", r.clone());
        }
        Ok(json!({ "Attributes": attributes }))
    }
}

/// Applies `VisibilityTimeout` and `RedrivePolicy` from an attribute map.
fn apply_attributes(q: &mut Queue, attributes: &Value) -> Result<(), SqsError> {
    let Some(map) = attributes.as_object() else {
        return Err(SqsError::invalid("Attributes must be a map"));
    };
    for (name, value) in map {
        let text = value
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| value.to_string());
        match name.as_str() {
            "VisibilityTimeout" => {
                let s = text.parse().map_err(|_| {
                    SqsError::invalid("Invalid value for the parameter VisibilityTimeout.")
                })?;
                q.visibility = visibility(s)?;
            }
            "RedrivePolicy" => {
                let policy: Value = serde_json::from_str(&text).map_err(|_| SqsError::invalid("Invalid value for the parameter RedrivePolicy. Reason: Redrive policy is not a valid JSON map."))?;
                let target = policy.get("deadLetterTargetArn").and_then(Value::as_str).ok_or_else(|| SqsError::invalid("Value for parameter RedrivePolicy is invalid. Reason: Redrive policy does not contain mandatory attribute: deadLetterTargetArn."))?;
                let count = policy.get("maxReceiveCount").and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))).filter(|c| (1..=1000).contains(c)).ok_or_else(|| SqsError::invalid("Value for parameter RedrivePolicy is invalid. Reason: Invalid value for maxReceiveCount: must be between 1 and 1000."))?;
                // arn:aws:sqs:{region}:{account}:{name}
                let mut arn = target.rsplit(':');
                let name = arn.next().unwrap_or("").to_string();
                let account = arn.next().unwrap_or("").to_string();
                q.redrive = Some(((account, name), count));
                q.redrive_json = Some(text);
            }
            // Other attributes are accepted and have no effect here.
            _ => {}
        }
    }
    Ok(())
}

fn find_receipt(q: &Queue, receipt: &str) -> Result<u64, SqsError> {
    q.messages
        .iter()
        .find(|(_, m)| m.receipt.as_deref() == Some(receipt))
        .map(|(&seq, _)| seq)
        .ok_or_else(|| {
            SqsError::new(
                StatusCode::NOT_FOUND,
                "ReceiptHandleIsInvalid",
                "ReceiptHandleIsInvalid",
                format!("The input receipt handle \"{receipt}\" is not a valid receipt handle."),
            )
        })
}

fn visibility(seconds: u64) -> Result<Duration, SqsError> {
    if seconds > MAX_VISIBILITY_S {
        return Err(SqsError::invalid(format!(
            "Value {seconds} for parameter VisibilityTimeout is invalid. Reason: Must be >= 0 and <= {MAX_VISIBILITY_S}."
        )));
    }
    Ok(Duration::from_secs(seconds))
}

fn missing(name: &str) -> SqsError {
    SqsError::new(
        StatusCode::BAD_REQUEST,
        "MissingParameter",
        "MissingParameter",
        format!("The request must contain the parameter {name}."),
    )
}

fn str_field<'a>(input: &'a Value, name: &str) -> Result<&'a str, SqsError> {
    input
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| missing(name))
}

fn u64_field(input: &Value, name: &str) -> Result<Option<u64>, SqsError> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| SqsError::invalid(format!("Value for parameter {name} is invalid."))),
    }
}

/// The queue a request's `QueueUrl` names, if the caller's `account` owns it.
fn own_queue(account: &str, input: &Value) -> Result<QueueKey, SqsError> {
    let url = str_field(input, "QueueUrl")?;
    let mut path = url.trim_end_matches('/').rsplit('/');
    let name = path.next().unwrap_or("").to_string();
    let owner = path.next().unwrap_or("").to_string();
    if owner != account {
        return Err(SqsError::access_denied(url));
    }
    Ok((owner, name))
}

fn queue_url(host: &str, account: &str, name: &str) -> String {
    format!("http://{host}/{account}/{name}")
}

fn md5_hex(body: &str) -> String {
    hex::encode(md5::Md5::digest(body.as_bytes()))
}

async fn handle(State(sqs): State<SqsFake>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let op = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("AmazonSQS."))
        .unwrap_or("")
        .to_string();
    let api: &'static str = match op.as_str() {
        "CreateQueue" => "CreateQueue",
        "GetQueueUrl" => "GetQueueUrl",
        "SendMessage" => "SendMessage",
        "SendMessageBatch" => "SendMessageBatch",
        "ReceiveMessage" => "ReceiveMessage",
        "DeleteMessage" => "DeleteMessage",
        "ChangeMessageVisibility" => "ChangeMessageVisibility",
        "GetQueueAttributes" => "GetQueueAttributes",
        "SetQueueAttributes" => "SetQueueAttributes",
        "PurgeQueue" => "PurgeQueue",
        _ => "Unknown",
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let endpoint = Endpoint {
        region: sqs.region.name(),
        service: "sqs",
        now: sqs.region.now(),
        unix_now: sqs.region.unix_now(),
    };
    let verified = verify(&sqs.iam, endpoint, "POST", path_and_query, &headers, &body);
    let identity = verified.as_ref().ok().cloned();
    let account = identity
        .as_ref()
        .map_or_else(|| "anonymous".to_string(), |i| i.account.clone());
    let input: Result<Value, _> = serde_json::from_slice(&body);
    let resource = input
        .as_ref()
        .ok()
        .and_then(|i| i.get("QueueUrl").or_else(|| i.get("QueueName")))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let call = ProviderCall::start(
        account.clone(),
        sqs.region.name(),
        "sqs",
        api,
        &account,
        "sqs:Call",
        resource,
    );
    let result = async {
        if let Err(e) = &verified {
            let (status, code): (StatusCode, &'static str) = match e.refusal() {
                Refusal::Missing => (StatusCode::FORBIDDEN, "MissingAuthenticationToken"),
                Refusal::Incomplete => (StatusCode::BAD_REQUEST, "IncompleteSignature"),
                Refusal::UnknownKey => (StatusCode::FORBIDDEN, "InvalidClientTokenId"),
                Refusal::ExpiredToken => (StatusCode::FORBIDDEN, "ExpiredToken"),
                Refusal::BadSignature => (StatusCode::FORBIDDEN, "SignatureDoesNotMatch"),
            };
            return Err(SqsError::new(status, code, code, e.to_string()));
        }
        let input = input.map_err(|_| {
            SqsError::new(
                StatusCode::BAD_REQUEST,
                "SerializationException",
                "SerializationException",
                "Request body is not valid JSON.",
            )
        })?;
        let decision = sqs
            .region
            .model()
            .admit_plain(&account, api, sqs.region.now());
        match decision {
            Admission::Proceed { delay } => tokio::time::sleep(delay).await,
            Admission::Frozen => {
                let mut e = SqsError::new(
                    StatusCode::FORBIDDEN,
                    "AccessDenied",
                    "AccessDenied",
                    "Access to the resource is denied: the account is suspended.",
                );
                e.outcome = CallOutcome::Frozen;
                return Err(e);
            }
            _ => {
                let mut e = SqsError::new(
                    StatusCode::FORBIDDEN,
                    "RequestThrottled",
                    "RequestThrottled",
                    "Request is throttled.",
                );
                e.outcome = CallOutcome::Throttled;
                return Err(e);
            }
        }
        sqs.call(&op, &host, &account, &input).await
    }
    .await;
    match result {
        Ok(value) => {
            let body = value.to_string();
            call.finish(CallOutcome::Ok, body.len() as u64);
            let mut resp = body.into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-amz-json-1.0"),
            );
            resp
        }
        Err(e) => {
            call.finish(e.outcome.clone(), 0);
            e.into_response()
        }
    }
}
