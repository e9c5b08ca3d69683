//! A worker: takes tasks from its region's queue and, for each, gets the lake's credentials
//! (IMDS, then AssumeRole), its table from the catalog, reads its Parquet through
//! `object_store`, runs the fragment with DataFusion, and sends it to the query's coordinator.
//! A task is deleted from the queue only once its coordinator has the fragment, so a crashed
//! worker or coordinator loses nothing: the queue hands the task out again.
//!
//! Events (target [`TASK_EVENTS`]): `task_done` and `task_failed` (with `final` when the query
//! is told), each with `query_id` and `lake`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use bytes::Bytes;
use http_body_util::Full;

use crate::cloud::{Cloud, Lake};
use crate::engine;
use crate::exchange::send_collect;
use crate::guard::{DEADLINE, DELIVERY, Delivery, QUERY};
use crate::queue::{FRAGMENT_ERROR, Task};
use crate::transport::Dialer;

/// The target of task events.
pub const TASK_EVENTS: &str = "stampede::task";

/// How long a worker waits between probes while its account is frozen.
const FROZEN_PAUSE: Duration = Duration::from_secs(30);

/// Under one retry layer, how often a worker whose answer did not reach the coordinator tries
/// again, and for how long at most.
const REPLY_EVERY: Duration = Duration::from_secs(5);
const REPLY_PATIENCE: Duration = Duration::from_secs(300);

fn config_switches(cloud: &Cloud) -> crate::config::Switches {
    cloud.guard().config().switches
}

/// How long one receive waits for messages.
const LONG_POLL_S: i32 = 2;

/// Everything a worker is deployed with.
#[derive(Debug, Clone)]
pub struct WorkerSetup {
    /// Its host name.
    pub name: String,
    /// Every lake the system serves.
    pub lakes: Arc<Vec<Lake>>,
    /// Wall-clock time when the node booted.
    pub epoch: SystemTime,
    /// Whether this boot is a restart (after a crash or a region's outage).
    pub restarted: bool,
    /// Whether the node is in the canary set for config pushes.
    pub canary: bool,
}

/// A worker node.
#[derive(Debug)]
pub struct Worker {
    setup: WorkerSetup,
    cloud: Arc<Cloud>,
    dialer: Arc<dyn Dialer>,
    start: tokio::time::Instant,
}

impl Worker {
    /// A worker.
    pub fn new(setup: WorkerSetup, cloud: Arc<Cloud>, dialer: Arc<dyn Dialer>) -> Arc<Self> {
        Arc::new(Self {
            setup,
            cloud,
            dialer,
            start: tokio::time::Instant::now(),
        })
    }

    /// The operator's endpoints of this worker (serve them on [`crate::admin::ADMIN_PORT`]).
    pub fn admin_router(&self) -> axum::Router {
        crate::admin::router(self.cloud.clone())
    }

    fn now_unix_ms(&self) -> u64 {
        (self.setup.epoch + self.start.elapsed())
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    /// Takes and runs tasks until the host stops.
    pub async fn run(self: Arc<Self>) {
        let config = self.cloud.guard().config();
        if self.setup.restarted {
            // The whole node waits, its config agent too.
            self.cloud.guard().jittered_restart().await;
        }
        let agent = crate::config_agent::ConfigAgent::new(self.cloud.clone(), self.setup.canary);
        tokio::spawn(agent.run());
        let tuning = config.tuning.clone();
        let permits = Arc::new(tokio::sync::Semaphore::new(
            tuning.task_concurrency.max(1) as usize
        ));
        let mut queue: Option<(aws_sdk_sqs::Client, String)> = None;
        loop {
            let (sqs, url) = match &queue {
                Some(q) => q.clone(),
                None => match self.cloud.task_queue(self.cloud.home()).await {
                    Ok(q) => {
                        queue = Some(q.clone());
                        q
                    }
                    Err(_) => {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                },
            };
            // Under the drain controller, a frozen account takes no work: the backlog waits in
            // the queue, untouched (no redeliveries counted against it), and every 30 s a
            // look at the queue's attributes probes whether the freeze is over.
            if config_switches(&self.cloud).drain_controller
                && self.cloud.guard().frozen_within(FROZEN_PAUSE)
            {
                tokio::time::sleep(FROZEN_PAUSE).await;
                let probe = sqs.get_queue_attributes().queue_url(&url).send().await;
                if probe.is_ok() {
                    tracing::info!(target: crate::guard::MECHANISM_EVENTS, "freeze_over");
                    self.cloud.guard().clear_frozen();
                } else {
                    continue;
                }
            }
            // Take only as many tasks as there are free slots.
            let free = permits.available_permits().min(10);
            if free == 0 {
                let _ = permits.clone().acquire_owned().await.map(drop);
                continue;
            }
            let received = sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(free as i32)
                .wait_time_seconds(LONG_POLL_S)
                .visibility_timeout(tuning.task_visibility.as_secs() as i32)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await;
            let messages = match received {
                Ok(out) => out.messages.unwrap_or_default(),
                Err(_) => {
                    // The credentials may have been the problem: connect afresh after a pause.
                    queue = None;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            for m in messages {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let me = self.clone();
                let sqs = sqs.clone();
                let url = url.clone();
                tokio::spawn(async move {
                    me.handle(&sqs, &url, m).await;
                    drop(permit);
                });
            }
        }
    }

    async fn handle(&self, sqs: &aws_sdk_sqs::Client, url: &str, m: aws_sdk_sqs::types::Message) {
        let receipt = m.receipt_handle().unwrap_or_default().to_string();
        let receives: u32 = m
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let Ok(task) = serde_json::from_str::<Task>(m.body().unwrap_or_default()) else {
            // Not a task: nothing can ever run it.
            let _ = sqs
                .delete_message()
                .queue_url(url)
                .receipt_handle(&receipt)
                .send()
                .await;
            return;
        };
        let config = self.cloud.guard().config();
        let switches = config.switches;
        let tuning = &config.tuning;
        let deadline = task
            .deadline_unix_ms
            .filter(|_| switches.deadline_propagation);
        let work = async {
            match deadline {
                Some(at) if at <= self.now_unix_ms() => {
                    Err("deadline exceeded before the task started".to_string())
                }
                Some(at) => {
                    let left = Duration::from_millis(at - self.now_unix_ms());
                    DEADLINE
                        .scope(tokio::time::Instant::now() + left, self.compute(&task))
                        .await
                }
                None => self.compute(&task).await,
            }
        };
        if receives == 1 {
            self.cloud.guard().task_delivered();
        }
        let delivery = Delivery::new(m.message_id().unwrap_or_default(), receives);
        let result = QUERY
            .scope(
                task.query_id.as_str().into(),
                DELIVERY.scope(delivery.clone(), work),
            )
            .await;
        let fragment = match result {
            Ok(ipc) => {
                tracing::info!(target: TASK_EVENTS, query_id = %task.query_id, lake = task.lake, bytes = ipc.len() as u64, "task_done");
                Ok(ipc)
            }
            Err(e) => {
                let e = without_wall_times(&e);
                // Under one retry layer, a task the guard already retried in is not handed out
                // again: the queue would retry what the guard retried; nor is one denied
                // access, which another delivery would only be denied again.
                // And under the retry budget, a redelivery spends from the budget as a retry does.
                let last = receives >= tuning.task_receives.max(1)
                    || e.starts_with("deadline exceeded")
                    || (switches.one_retry_layer && (delivery.retried() || delivery.refused()))
                    || !self.cloud.guard().may_redeliver(receives);
                tracing::info!(target: TASK_EVENTS, query_id = %task.query_id, lake = task.lake, receives = receives as u64, r#final = last, error = %e, "task_failed");
                if !last {
                    return;
                }
                Err(e)
            }
        };
        let mut landed = self.reply(&task, fragment.clone()).await;
        if !landed && switches.one_retry_layer {
            landed = self
                .keep_replying(sqs, url, &receipt, &task, &fragment, deadline)
                .await;
        }
        if landed {
            let _ = sqs
                .delete_message()
                .queue_url(url)
                .receipt_handle(&receipt)
                .send()
                .await;
        }
    }

    async fn compute(&self, task: &Task) -> Result<Vec<u8>, String> {
        let lake = self
            .setup
            .lakes
            .iter()
            .find(|l| l.id == task.lake)
            .ok_or_else(|| format!("unknown lake {}", task.lake))?;
        let creds = self
            .cloud
            .lake_credentials(lake)
            .await
            .map_err(|e| e.to_string())?;
        let files = self
            .cloud
            .lake_files(lake, creds.clone())
            .await
            .map_err(|e| e.to_string())?;
        // SQL nobody checked is planned here, against the table just read: an invalid query
        // has already cost the lake's credentials and catalog calls.
        if let Some(sql) = &task.sql {
            engine::validate(sql).await.map_err(|e| {
                format!(
                    "invalid SQL at line {}, column {}: {}",
                    e.line, e.column, e.message
                )
            })?;
        }
        let store = self
            .cloud
            .lake_store(lake, &creds)
            .map_err(|e| e.to_string())?;
        let batches = engine::fragment(store, &lake.bucket, &files, &task.columns)
            .await
            .map_err(|e| e.strip_backtrace())?;
        let schema = engine::fragment_schema(&task.columns).map_err(|e| e.to_string())?;
        engine::to_ipc(&batches, &schema).map_err(|e| e.to_string())
    }

    /// Under one retry layer, a worker whose answer did not reach the coordinator keeps it and
    /// tries again every [`REPLY_EVERY`], holding the task's message hidden meanwhile, rather
    /// than let the queue hand the task out again to redo work (the guard may have retried in
    /// it already): until the answer lands, the query's deadline passes, or
    /// [`REPLY_PATIENCE`]. Whether it landed.
    async fn keep_replying(
        &self,
        sqs: &aws_sdk_sqs::Client,
        url: &str,
        receipt: &str,
        task: &Task,
        fragment: &Result<Vec<u8>, String>,
        deadline: Option<u64>,
    ) -> bool {
        let give_up = tokio::time::Instant::now() + REPLY_PATIENCE;
        let hidden = self.cloud.guard().config().tuning.task_visibility;
        while tokio::time::Instant::now() + REPLY_EVERY < give_up {
            tokio::time::sleep(REPLY_EVERY).await;
            if deadline.is_some_and(|at| at <= self.now_unix_ms()) {
                return false;
            }
            let _ = sqs
                .change_message_visibility()
                .queue_url(url)
                .receipt_handle(receipt)
                .visibility_timeout(hidden.as_secs() as i32)
                .send()
                .await;
            if self.reply(task, fragment.clone()).await {
                return true;
            }
        }
        false
    }

    /// Sends the fragment (or the reason there is none) to the coordinator. Whether it landed:
    /// taken, or no longer wanted.
    async fn reply(&self, task: &Task, fragment: Result<Vec<u8>, String>) -> bool {
        let uri = format!(
            "{}/v1/queries/{}/fragments/{}",
            task.reply_to, task.query_id, task.lake
        );
        let mut req = http::Request::post(uri);
        let body = match fragment {
            Ok(ipc) => Bytes::from(ipc),
            Err(e) => {
                let reason: String = e
                    .chars()
                    .filter(|c| c.is_ascii() && !c.is_ascii_control())
                    .take(200)
                    .collect();
                req = req.header(FRAGMENT_ERROR, reason);
                Bytes::new()
            }
        };
        let Ok(req) = req.body(Full::new(body)) else {
            return false;
        };
        match send_collect(self.dialer.as_ref(), req).await {
            Ok(resp) => resp.status().is_success() || resp.status() == http::StatusCode::GONE,
            Err(_) => false,
        }
    }
}

/// `object_store` writes how long a failed request took by the wall clock (`Error performing
/// GET ... in 50.97µs - ...`): dropped, so an error logged or answered is the same every run.
fn without_wall_times(message: &str) -> String {
    const UNITS: [&str; 4] = ["ns", "µs", "ms", "s"];
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(" in ") {
        let after = &rest[at + 4..];
        let token_len = after.find([' ', ',']).unwrap_or(after.len());
        let token = &after[..token_len];
        let is_duration = token.starts_with(|c: char| c.is_ascii_digit())
            && UNITS.iter().any(|u| token.ends_with(u))
            && token
                .trim_end_matches(|c: char| c.is_alphabetic() || c == 'µ')
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.');
        if is_duration {
            out.push_str(&rest[..at]);
            rest = &after[token_len..];
        } else {
            out.push_str(&rest[..at + 4]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod wall_time_tests {
    use super::without_wall_times;

    #[test]
    fn wall_clock_durations_are_dropped_and_nothing_else() {
        assert_eq!(
            without_wall_times(
                "Generic S3 error: Error performing GET http://h:9000/b/k in 50.97µs - HTTP error: GetObject: deadline exceeded"
            ),
            "Generic S3 error: Error performing GET http://h:9000/b/k - HTTP error: GetObject: deadline exceeded"
        );
        assert_eq!(
            without_wall_times("Error performing GET u in 1.2s, after 2 retries - x"),
            "Error performing GET u, after 2 retries - x"
        );
        assert_eq!(
            without_wall_times("not in table t in 3 parts"),
            "not in table t in 3 parts"
        );
    }
}
