//! AWS CloudTrail records turned into provider traffic from background accounts: each recorded
//! call becomes a call by another customer of the region, at its recorded time, so a noisy
//! neighbour or a recorded burst of AssumeRole calls can be replayed against the shared fleet.
//!
//! Reads CloudTrail's own files (`{"Records": [...]}`), a JSON array of records, exports with
//! one record per line, the output of `aws cloudtrail lookup-events` (`{"Events": [...]}`,
//! each with its record in `CloudTrailEvent`), any of them gzipped; the time is `eventTime`,
//! or `@timestamp` where an export renamed it.
//!
//! The result is a provider trace, JSON Lines:
//!
//! ```text
//! {"format":"stampede-provider-trace","version":1}
//! {"t_ms":0,"account":"200000000000","service":"ec2","api":"DescribeInstanceTypes"}
//! ```

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::input::InputError;

/// The header's `format`.
pub const FORMAT: &str = "stampede-provider-trace";
/// The version this build reads and writes.
pub const VERSION: u32 = 1;

/// One recorded call, as replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderRecord {
    /// Milliseconds from the first record.
    pub t_ms: u64,
    /// The background account that makes it (`2` and 11 digits).
    pub account: String,
    /// The service, e.g. `sts` (from `eventSource`).
    pub service: String,
    /// The api, e.g. `AssumeRole` (from `eventName`).
    pub api: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    version: u32,
}

/// A file's text, un-gzipped when it starts with gzip's magic bytes.
fn text_of(path: &Path) -> Result<String, InputError> {
    let bytes = std::fs::read(path)
        .map_err(|e| InputError::whole_file(path, format!("cannot read: {e}")))?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = String::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut out)
            .map_err(|e| InputError::whole_file(path, format!("cannot gunzip: {e}")))?;
        return Ok(out);
    }
    String::from_utf8(bytes)
        .map_err(|e| InputError::whole_file(path, format!("not UTF-8 text: {e}")))
}

/// A record's time: `eventTime`, or the `@timestamp` of a Logstash export.
fn time_of(record: &Value) -> Option<SystemTime> {
    let t = record
        .get("eventTime")
        .or_else(|| record.get("@timestamp"))?
        .as_str()?;
    humantime::parse_rfc3339_weak(t.trim_end_matches('Z')).ok()
}

/// The record of one event of `aws cloudtrail lookup-events`: its `CloudTrailEvent`, the whole
/// record as a JSON string.
fn lookup_event(event: &Value) -> Result<Value, String> {
    let id = event.get("EventId").and_then(Value::as_str).unwrap_or("?");
    let text = event
        .get("CloudTrailEvent")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("lookup-events event {id} has no `CloudTrailEvent`"))?;
    serde_json::from_str(text)
        .map_err(|e| format!("lookup-events event {id}: `CloudTrailEvent` is not a record: {e}"))
}

/// (time, account, service, api) of every record in `path`, with the line it came from.
fn records_of(path: &Path) -> Result<Vec<(SystemTime, String, String, String)>, InputError> {
    let text = text_of(path)?;
    let trimmed = text.trim_start();
    let mut values: Vec<(u64, Value)> = Vec::new();
    let whole = serde_json::from_str::<Value>(trimmed).ok();
    let events = whole.as_ref().and_then(|v| v.get("Events"));
    match (
        whole.as_ref(),
        whole.as_ref().and_then(|v| v.get("Records")),
    ) {
        // A JSON array of records, as a query tool exports them.
        (Some(Value::Array(records)), _) => {
            values.extend(records.iter().cloned().map(|r| (1, r)));
        }
        (_, Some(Value::Array(records))) => {
            values.extend(records.iter().cloned().map(|r| (1, r)));
        }
        (_, Some(_)) => {
            return Err(InputError::whole_file(path, "`Records` is not an array"));
        }
        // `aws cloudtrail lookup-events`: each event carries its whole record as a string.
        (Some(_), None) if events.is_some() => {
            let Some(Value::Array(events)) = events else {
                return Err(InputError::whole_file(path, "`Events` is not an array"));
            };
            for e in events {
                values.push((
                    1,
                    lookup_event(e).map_err(|m| InputError::whole_file(path, m))?,
                ));
            }
        }
        _ => {
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let v: Value = serde_json::from_str(line).map_err(|e| InputError {
                    file: path.to_path_buf(),
                    line: Some(i as u64 + 1),
                    column: Some(e.column() as u64),
                    field: None,
                    message: format!("not a CloudTrail record: {e}"),
                })?;
                values.push((i as u64 + 1, v));
            }
        }
    }
    let mut out = Vec::with_capacity(values.len());
    for (line, v) in values {
        let missing = |field: &str| InputError {
            file: path.to_path_buf(),
            line: Some(line),
            column: Some(1),
            field: Some(field.to_string()),
            message: format!("a CloudTrail record needs `{field}`"),
        };
        let time = time_of(&v).ok_or_else(|| missing("eventTime"))?;
        let source = v
            .get("eventSource")
            .and_then(Value::as_str)
            .ok_or_else(|| missing("eventSource"))?;
        let api = v
            .get("eventName")
            .and_then(Value::as_str)
            .ok_or_else(|| missing("eventName"))?;
        let account = v
            .pointer("/userIdentity/accountId")
            .or_else(|| v.get("recipientAccountId"))
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        let service = source.split('.').next().unwrap_or(source);
        out.push((
            time,
            account.to_string(),
            service.to_string(),
            api.to_string(),
        ));
    }
    Ok(out)
}

/// Imports CloudTrail `files` as one provider trace: every recorded account becomes a
/// background account (`2` and 11 digits, in order of first appearance), times relative to the
/// earliest record. Deterministic: the same files give the same trace.
pub fn import(files: &[PathBuf]) -> Result<Vec<ProviderRecord>, InputError> {
    let mut all = Vec::new();
    for f in files {
        all.extend(records_of(f)?);
    }
    // Stable order: by time, then by what was called.
    all.sort();
    let start = all.first().map(|r| r.0);
    let mut accounts: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut out = Vec::with_capacity(all.len());
    for (time, account, service, api) in all {
        if !accounts.contains_key(&account) {
            let id = format!("2{:011}", order.len());
            accounts.insert(account.clone(), id);
            order.push(account.clone());
        }
        let t = start
            .and_then(|s| time.duration_since(s).ok())
            .unwrap_or(Duration::ZERO);
        out.push(ProviderRecord {
            t_ms: t.as_millis() as u64,
            account: accounts[&account].clone(),
            service,
            api,
        });
    }
    Ok(out)
}

/// A provider trace as text.
pub fn to_jsonl(records: &[ProviderRecord]) -> String {
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
    };
    let mut out = serde_json::to_string(&header).expect("a header serialises");
    out.push('\n');
    for r in records {
        out.push_str(&serde_json::to_string(r).expect("records serialise"));
        out.push('\n');
    }
    out
}

/// Reads a provider trace.
pub fn load(path: &Path) -> Result<Vec<ProviderRecord>, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::whole_file(path, format!("cannot read: {e}")))?;
    let located = |i: usize, e: serde_json::Error, field: Option<&str>| InputError {
        file: path.to_path_buf(),
        line: Some(i as u64 + 1),
        column: Some(e.column() as u64),
        field: field.map(str::to_string),
        message: e.to_string(),
    };
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((i, first)) = lines.next() else {
        return Err(InputError::whole_file(
            path,
            "empty provider trace: the first line must be the header",
        ));
    };
    let header: Header = serde_json::from_str(first).map_err(|e| located(i, e, Some("format")))?;
    if header.format != FORMAT || header.version != VERSION {
        return Err(InputError {
            file: path.to_path_buf(),
            line: Some(i as u64 + 1),
            column: Some(1),
            field: Some("format".into()),
            message: format!("expected header {{\"format\":\"{FORMAT}\",\"version\":{VERSION}}}"),
        });
    }
    let mut out: Vec<ProviderRecord> = Vec::new();
    for (i, line) in lines {
        let r: ProviderRecord = serde_json::from_str(line).map_err(|e| located(i, e, None))?;
        if out.last().is_some_and(|last| r.t_ms < last.t_ms) {
            return Err(InputError {
                file: path.to_path_buf(),
                line: Some(i as u64 + 1),
                column: line.find("\"t_ms\"").map(|c| c as u64 + 1),
                field: Some("t_ms".into()),
                message: "t_ms is earlier than the line before; records are in time order".into(),
            });
        }
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A test's own folder, removed when the test passes and kept when it fails.
    struct Dir(PathBuf);

    impl Dir {
        fn new(test: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("stampede-ct-{test}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            if std::thread::panicking() {
                eprintln!("kept {} for the failure above", self.0.display());
            } else {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    const A: &str = r#"{"eventTime":"2020-09-14T00:44:25Z","eventSource":"sts.amazonaws.com","eventName":"AssumeRole","userIdentity":{"accountId":"111111111111"}}"#;
    const B: &str = r#"{"@timestamp":"2020-09-14T00:44:23.000Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","userIdentity":{"accountId":"222222222222"}}"#;

    #[test]
    fn records_files_lines_and_gzip_give_the_same_trace() {
        let dir = Dir::new("shapes");
        let lines = dir.write("lines.ndjson", format!("{A}\n{B}\n").as_bytes());
        let records = dir.write(
            "records.json",
            format!("{{\"Records\":[{A},{B}]}}").as_bytes(),
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(format!("{{\"Records\":[{A},{B}]}}").as_bytes())
            .unwrap();
        let gzipped = dir.write("records.json.gz", &gz.finish().unwrap());
        let want = vec![
            ProviderRecord {
                t_ms: 0,
                account: "200000000000".into(),
                service: "s3".into(),
                api: "GetObject".into(),
            },
            ProviderRecord {
                t_ms: 2000,
                account: "200000000001".into(),
                service: "sts".into(),
                api: "AssumeRole".into(),
            },
        ];
        let array = dir.write("array.json", format!("[{A},{B}]").as_bytes());
        // As `aws cloudtrail lookup-events --output json` prints it: newest first, each record
        // a string.
        let event = |r: &str, id: &str| {
            serde_json::json!({"EventId": id, "EventName": "x", "ReadOnly": "true",
                "EventTime": "2020-09-14T00:44:25+00:00", "CloudTrailEvent": r})
        };
        let lookup = serde_json::json!({"Events": [event(A, "a"), event(B, "b")]});
        let lookup = dir.write("lookup.json", lookup.to_string().as_bytes());
        for f in [lines, records, gzipped, array, lookup] {
            assert_eq!(
                import(std::slice::from_ref(&f)).unwrap(),
                want,
                "{}",
                f.display()
            );
        }
        let text = to_jsonl(&want);
        let back = dir.write("trace.jsonl", text.as_bytes());
        assert_eq!(load(&back).unwrap(), want);
    }

    #[test]
    fn a_lookup_event_without_its_record_is_named() {
        let dir = Dir::new("lookup");
        let f = dir.write(
            "l.json",
            br#"{"Events": [{"EventId": "e-1", "EventName": "X"}]}"#,
        );
        let e = import(&[f]).unwrap_err();
        assert!(
            e.message.contains("e-1") && e.message.contains("CloudTrailEvent"),
            "{e}"
        );
    }

    #[test]
    fn a_record_without_a_time_is_located() {
        let dir = Dir::new("no-time");
        let f = dir.write(
            "bad.ndjson",
            format!("{A}\n{{\"eventSource\":\"sts.amazonaws.com\",\"eventName\":\"X\"}}\n")
                .as_bytes(),
        );
        let e = import(&[f]).unwrap_err();
        assert_eq!((e.line, e.field.as_deref()), (Some(2), Some("eventTime")));
    }
}
