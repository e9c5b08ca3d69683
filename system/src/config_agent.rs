//! Config at run time. An operator pushes a [`ConfigDocument`] to a coordinator, which stores
//! it in the system's config bucket; every node's agent polls the bucket and applies new
//! versions.
//!
//! With `config_canary` off (naive), every node applies a new version as soon as it sees it.
//! With it on, a version that fails validation is rejected everywhere; the canary nodes apply
//! it first and watch their own health for a bake period; a healthy canary promotes it (the
//! other nodes then apply it), a sick one rolls back to the last known good config and marks
//! the version bad, so no other node ever applies it.
//!
//! Events (target [`CONFIG_EVENTS`]): `config_pushed`, `config_applied`, `config_rejected`,
//! `config_promoted`, `config_rolled_back`, `config_skipped`, each with `version`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::cloud::Cloud;
use crate::config::ConfigDocument;

/// The target of config events.
pub const CONFIG_EVENTS: &str = "stampede::config";

/// The bucket the system keeps its config in.
pub const CONFIG_BUCKET: &str = "stampede-config";

/// The key of the current config document.
pub const CONFIG_KEY: &str = "system/config.json";

/// How often an agent looks for a new version.
pub const POLL_EVERY: Duration = Duration::from_secs(15);

/// How long a canary runs a new version before judging it.
pub const BAKE: Duration = Duration::from_secs(30);

fn verdict_key(version: u64) -> Path {
    Path::from(format!("system/verdicts/{version}"))
}

/// Stores `doc` as the current config (the coordinator's half of a push).
pub async fn publish(cloud: &Cloud, doc: &ConfigDocument) -> Result<(), String> {
    let store = cloud
        .own_store(CONFIG_BUCKET)
        .await
        .map_err(|e| e.to_string())?;
    let body = serde_json::to_vec(doc).map_err(|e| e.to_string())?;
    store
        .put(&Path::from(CONFIG_KEY), PutPayload::from(body))
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(target: CONFIG_EVENTS, version = doc.version, "config_pushed");
    Ok(())
}

async fn read(store: &Arc<dyn ObjectStore>, key: &Path) -> Option<bytes::Bytes> {
    store.get(key).await.ok()?.bytes().await.ok()
}

/// A node's config agent.
#[derive(Debug)]
pub struct ConfigAgent {
    cloud: Arc<Cloud>,
    canary: bool,
    applied: u64,
    bad: BTreeSet<u64>,
}

impl ConfigAgent {
    /// The agent of a node; `canary` if the node is in the canary set.
    pub fn new(cloud: Arc<Cloud>, canary: bool) -> Self {
        Self {
            cloud,
            canary,
            applied: 0,
            bad: BTreeSet::new(),
        }
    }

    /// Polls and applies until the host stops. Each poll first reports how the node's calls
    /// went since the last one under the version it runs (`config_health`), whatever the
    /// preset: that is how anyone can tell a bad version from a good one.
    pub async fn run(mut self) {
        let mut last = self.cloud.guard().health();
        loop {
            tokio::time::sleep(POLL_EVERY).await;
            let now = self.cloud.guard().health();
            let (ok, failed) = (now.0 - last.0, now.1 - last.1);
            last = now;
            if ok + failed > 0 {
                tracing::info!(target: CONFIG_EVENTS, version = self.applied, ok, failed, "config_health");
            }
            let Ok(store) = self.cloud.own_store(CONFIG_BUCKET).await else {
                continue;
            };
            let Some(doc) = read(&store, &Path::from(CONFIG_KEY))
                .await
                .and_then(|b| serde_json::from_slice::<ConfigDocument>(&b).ok())
            else {
                continue;
            };
            if doc.version <= self.applied || self.bad.contains(&doc.version) {
                continue;
            }
            self.consider(&store, doc).await;
            // A canary's bake is judged by its own verdict, not by the next report.
            last = self.cloud.guard().health();
        }
    }

    async fn consider(&mut self, store: &Arc<dyn ObjectStore>, doc: ConfigDocument) {
        let guard = self.cloud.guard().clone();
        let current = guard.config();
        let version = doc.version;
        let candidate = match doc.apply_to(&current) {
            Ok(c) => c,
            Err(why) => {
                tracing::info!(target: CONFIG_EVENTS, version, error = %why, "config_rejected");
                self.bad.insert(version);
                return;
            }
        };
        if !current.switches.config_canary {
            guard.set_config(candidate);
            self.applied = version;
            tracing::info!(target: CONFIG_EVENTS, version, canary = false, "config_applied");
            return;
        }
        if !self.canary {
            match read(store, &verdict_key(version)).await.as_deref() {
                Some(b"good") => {
                    guard.set_config(candidate);
                    self.applied = version;
                    tracing::info!(target: CONFIG_EVENTS, version, canary = false, "config_applied");
                }
                Some(b"bad") => {
                    self.bad.insert(version);
                    tracing::info!(target: CONFIG_EVENTS, version, "config_skipped");
                }
                // The canaries have not judged it yet.
                _ => {}
            }
            return;
        }
        guard.set_config(candidate);
        tracing::info!(target: CONFIG_EVENTS, version, canary = true, "config_applied");
        let (ok0, failed0) = guard.health();
        tokio::time::sleep(BAKE).await;
        let (ok1, failed1) = guard.health();
        let (ok, failed) = (ok1 - ok0, failed1 - failed0);
        let good = ok > 0 && failed <= ok / 10;
        let verdict: &[u8] = if good {
            self.applied = version;
            tracing::info!(target: CONFIG_EVENTS, version, ok, failed, "config_promoted");
            b"good"
        } else {
            guard.set_config((*current).clone());
            self.bad.insert(version);
            tracing::info!(target: CONFIG_EVENTS, version, ok, failed, "config_rolled_back");
            b"bad"
        };
        // Written after a rollback under the last known good config, so it gets through.
        for _ in 0..5 {
            let put = store
                .put(&verdict_key(version), PutPayload::from(verdict.to_vec()))
                .await;
            if put.is_ok() {
                break;
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}
