//! The event log: every event of a run, stamped with its host and virtual time, and its digest.
//!
//! The system and the fakes report through `tracing` with targets under `stampede::`; the
//! [`Recorder`] is a `tracing` layer that turns each such event into an [`Event`]. Nothing else
//! is shared between the harness and what it observes.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Index;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The prefix of every target the recorder keeps.
pub const TARGET_PREFIX: &str = "stampede";

/// One thing that happened, at a virtual time, on a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Virtual time since the start of the run, in microseconds.
    pub t_us: u64,
    /// The simulated host it happened on, or `harness` for the harness itself.
    pub host: String,
    /// The `tracing` target, e.g. `stampede::query`.
    pub target: String,
    /// What happened, e.g. `accepted`.
    pub name: String,
    /// Typed fields, in name order.
    pub fields: Fields,
}

impl Event {
    /// A string field, if present.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    /// An unsigned field, if present.
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.fields.get(key).and_then(Value::as_u64)
    }

    /// A boolean field, if present.
    pub fn bool(&self, key: &str) -> Option<bool> {
        self.fields.get(key).and_then(Value::as_bool)
    }

    /// Whether this is `target`'s event `name`.
    pub fn is(&self, target: &str, name: &str) -> bool {
        self.target == target && self.name == name
    }

    /// The virtual time as a duration.
    pub fn time(&self) -> Duration {
        Duration::from_micros(self.t_us)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.t_us as f64 / 1e6;
        write!(f, "t={t:.3}s {} {} {}", self.host, self.target, self.name)?;
        for (k, v) in &self.fields {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

/// A field's name: borrowed from `tracing`'s static metadata when recorded, owned when read
/// back from a file.
pub type Key = Cow<'static, str>;

/// An event's fields in name order, serialised as a JSON object.
///
/// A sorted vector rather than a map: an event carries a handful of fields and a log holds
/// millions of events. A `BTreeMap` allocates a whole node (eleven slots) per event and a
/// `String` per name; this allocates once, and names recorded from `tracing` are not copied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(Vec<(Key, Value)>);

impl Fields {
    /// No fields.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// No fields, with room for `n`.
    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_ref().cmp(key))
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    /// The value of `key` to change, if present.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.find(key).ok().map(|i| &mut self.0[i].1)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value`, answering the value it replaced.
    pub fn insert(&mut self, key: Key, value: Value) -> Option<Value> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    /// Takes `key` out, answering its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.find(key).ok().map(|i| self.0.remove(i).1)
    }

    /// The fields in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// How many fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Index<&str> for Fields {
    type Output = Value;

    /// The value of `key`; panics when it is absent, as a map's index does.
    fn index(&self, key: &str) -> &Value {
        self.get(key).unwrap_or_else(|| panic!("no field `{key}`"))
    }
}

impl<K: Into<Key>> FromIterator<(K, Value)> for Fields {
    /// Fields from pairs in any order; of two pairs with one name, the later stands.
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        let mut fields = Fields::new();
        for (k, v) in iter {
            fields.insert(k.into(), v);
        }
        fields
    }
}

impl From<BTreeMap<String, Value>> for Fields {
    fn from(map: BTreeMap<String, Value>) -> Self {
        // Already in name order.
        Self(map.into_iter().map(|(k, v)| (Key::Owned(k), v)).collect())
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = (&'a str, &'a Value);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Key, Value)>,
        fn(&'a (Key, Value)) -> (&'a str, &'a Value),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }
}

impl Serialize for Fields {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BTreeMap::<String, Value>::deserialize(d).map(Fields::from)
    }
}

/// An append-only log of events in the order they happened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventLog {
    events: Vec<Event>,
}

impl EventLog {
    /// A log holding these events, in this order.
    pub fn from_events(events: Vec<Event>) -> Self {
        Self { events }
    }

    /// All events, in order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The events of one target.
    pub fn of<'a>(&'a self, target: &'a str) -> impl Iterator<Item = &'a Event> + 'a {
        self.events.iter().filter(move |e| e.target == target)
    }

    /// The log as JSON Lines, one event per line in its serde form: what `events.jsonl` holds
    /// and [`EventLog::digest`] hashes.
    pub fn to_jsonl(&self) -> String {
        let mut out = Vec::new();
        self.write_jsonl(&mut out)
            .expect("writing to memory cannot fail");
        String::from_utf8(out).expect("JSON is UTF-8")
    }

    /// Writes the JSON Lines form to `w`, each event serialised straight into it.
    pub fn write_jsonl(&self, mut w: impl std::io::Write) -> std::io::Result<()> {
        for e in &self.events {
            serde_json::to_writer(&mut w, e)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }

    /// sha256 over the JSON Lines form, as lowercase hex.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        self.write_jsonl(&mut h).expect("hashing cannot fail");
        hex::encode(h.finalize())
    }
}

/// A `tracing` layer that appends every `stampede::*` event to a shared log.
///
/// The host comes from the `node` span turmoil enters around each host's tick; the time from
/// `turmoil::sim_elapsed`, which is exact within a tick. Events outside any host (the harness's
/// own) take the time the harness last set with [`Recorder::set_now`].
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Arc<Mutex<RecorderState>>,
}

/// Sees each event as it is recorded and answers events to record after it (the alert
/// engine).
pub type Monitor = Box<dyn FnMut(&Event) -> Vec<Event> + Send>;

#[derive(Default)]
struct RecorderState {
    events: Vec<Event>,
    harness_now: Duration,
    monitor: Option<Monitor>,
}

impl RecorderState {
    fn append(&mut self, event: Event) {
        let follow = self.monitor.as_mut().map(|m| m(&event));
        self.events.push(event);
        self.events.extend(follow.into_iter().flatten());
    }
}

/// Stored in a span's extensions: the host name of a turmoil `node` span.
struct HostName(String);

impl Recorder {
    /// A recorder with an empty log.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, RecorderState> {
        // A panic while holding the lock already fails the run; the log is still readable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the virtual time stamped on events recorded outside any host.
    pub fn set_now(&self, now: Duration) {
        self.lock().harness_now = now;
    }

    /// Installs `monitor`, which sees every event from now on.
    pub fn set_monitor(&self, monitor: Monitor) {
        self.lock().monitor = Some(monitor);
    }

    /// Appends an event from the harness itself.
    pub fn push(&self, target: &str, name: &str, fields: impl Into<Fields>) {
        let mut state = self.lock();
        let t_us = state.harness_now.as_micros() as u64;
        state.append(Event {
            t_us,
            host: "harness".into(),
            target: target.into(),
            name: name.into(),
            fields: fields.into(),
        });
    }

    /// How many events so far.
    pub fn len(&self) -> usize {
        self.lock().events.len()
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the events from the `from`-th on (a gameday's look at the log so far).
    pub fn since(&self, from: usize) -> Vec<Event> {
        let state = self.lock();
        state
            .events
            .get(from..)
            .map(<[Event]>::to_vec)
            .unwrap_or_default()
    }

    /// Takes the log out of the recorder.
    pub fn take(&self) -> EventLog {
        EventLog::from_events(std::mem::take(&mut self.lock().events))
    }

    /// Runs `f` with this recorder installed as the thread's subscriber. turmoil runs every
    /// host on the calling thread, so this sees everything the simulation logs.
    pub fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(self.clone());
        tracing::subscriber::with_default(subscriber, f)
    }
}

impl<S> Layer<S> for Recorder
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        if self.enabled_meta(meta) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        self.enabled_meta(meta)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "node" {
            return;
        }
        let mut visitor = FieldVisitor::default();
        attrs.record(&mut visitor);
        if let (Some(span), Some(Value::String(name))) =
            (ctx.span(id), visitor.fields.remove("name"))
        {
            span.extensions_mut().insert(HostName(name));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if !meta.target().starts_with(TARGET_PREFIX) {
            return;
        }
        let host = ctx.event_scope(event).and_then(|scope| {
            scope
                .from_root()
                .find_map(|span| span.extensions().get::<HostName>().map(|h| h.0.clone()))
        });
        let mut visitor = FieldVisitor {
            fields: Fields::with_capacity(meta.fields().len()),
        };
        event.record(&mut visitor);
        let name = match visitor.fields.remove("message") {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => meta.name().to_string(),
        };
        let mut state = self.lock();
        let t = turmoil::sim_elapsed().unwrap_or(state.harness_now);
        state.append(Event {
            t_us: t.as_micros() as u64,
            host: host.unwrap_or_else(|| "harness".into()),
            target: meta.target().to_string(),
            name,
            fields: visitor.fields,
        });
    }
}

impl Recorder {
    fn enabled_meta(&self, meta: &Metadata<'_>) -> bool {
        if meta.is_span() {
            meta.name() == "node"
        } else {
            meta.target().starts_with(TARGET_PREFIX)
        }
    }
}

/// Collects an event's fields as JSON values, keeping their types.
#[derive(Default)]
struct FieldVisitor {
    fields: Fields,
}

impl Visit for FieldVisitor {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields
            .insert(field.name().into(), serde_json::json!(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.fields
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_stampede_targets_only() {
        let rec = Recorder::new();
        rec.scope(|| {
            tracing::info!(target: "stampede::query", query_id = "q1", rows = 3u64, "accepted");
            tracing::info!(target: "hyper::client", "ignored");
        });
        let log = rec.take();
        assert_eq!(log.events().len(), 1);
        let e = &log.events()[0];
        assert_eq!(e.name, "accepted");
        assert_eq!(e.str("query_id"), Some("q1"));
        assert_eq!(e.u64("rows"), Some(3));
        assert_eq!(e.host, "harness");
    }

    #[test]
    fn fields_read_and_write_as_the_map_they_replace() {
        use serde_json::json;
        let pairs = [
            ("zeta", json!(1)),
            ("alpha", json!("a")),
            ("Mid", json!(true)),
            ("alpha", json!("b")),
        ];
        let fields: Fields = pairs.iter().cloned().collect();
        let map: BTreeMap<String, Value> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let text = serde_json::to_string(&fields).unwrap();
        assert_eq!(text, serde_json::to_string(&map).unwrap());
        assert_eq!(Fields::from(map.clone()), fields);
        assert_eq!(serde_json::from_str::<Fields>(&text).unwrap(), fields);
        assert_eq!(fields.len(), 3);
        assert_eq!(fields["alpha"], json!("b"));
        assert_eq!(
            fields.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            map.keys().map(String::as_str).collect::<Vec<_>>()
        );
        let mut fewer = fields.clone();
        assert_eq!(fewer.insert("zeta".into(), json!(2)), Some(json!(1)));
        assert_eq!(fewer.remove("Mid"), Some(json!(true)));
        assert!(!fewer.contains_key("Mid") && fewer.get("zeta") == Some(&json!(2)));
    }

    #[test]
    fn digest_changes_with_content_and_order() {
        let e = |name: &str| Event {
            t_us: 1,
            host: "h".into(),
            target: "stampede::x".into(),
            name: name.into(),
            fields: Fields::new(),
        };
        let a = EventLog::from_events(vec![e("a"), e("b")]);
        let b = EventLog::from_events(vec![e("b"), e("a")]);
        assert_eq!(a.digest(), a.clone().digest());
        assert_ne!(a.digest(), b.digest());
        assert_eq!(
            a.digest(),
            hex::encode(Sha256::digest(a.to_jsonl().as_bytes()))
        );
    }
}
