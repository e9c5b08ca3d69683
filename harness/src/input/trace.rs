//! Traces in the native format: JSON Lines, a header line, then one submitted query per line.
//!
//! ```text
//! {"format":"stampede-trace","version":1}
//! {"t_ms":1000,"tenant":"tenant-00","user":"ana","sql":"SELECT count(*) FROM telemetry","lakes":{"tenant":"tenant-00"},"priority":"interactive","deadline_ms":60000}
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::input::InputError;

/// The value of the header's `format` field.
pub const FORMAT: &str = "stampede-trace";
/// The only format version this build reads and writes.
pub const VERSION: u32 = 1;

/// The first line of every trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Always `stampede-trace`.
    pub format: String,
    /// Always 1.
    pub version: u32,
}

pub use stampede_system::api::{LakeSelector, Priority, Record};

/// A parsed trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// The queries, in submit order.
    pub records: Vec<Record>,
    /// The 1-based line of each record in its file, for errors found later.
    pub lines: Vec<u64>,
    /// When each record is submitted, from the start: `t_ms` for a native trace, finer for a
    /// CSV arrival process (its timestamps down to the nanosecond).
    pub at: Vec<std::time::Duration>,
}

/// Reads a native trace file.
pub fn load(path: &Path) -> Result<Trace, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::whole_file(path, format!("cannot read trace: {e}")))?;
    parse(path, &text)
}

/// Parses native trace text; `path` is used only in errors.
pub fn parse(path: &Path, text: &str) -> Result<Trace, InputError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((header_index, header_line)) = lines.next() else {
        return Err(InputError::whole_file(
            path,
            "empty trace: the first line must be the header",
        ));
    };
    let header: Header = parse_line(path, header_index, header_line)?;
    if header.format != FORMAT || header.version != VERSION {
        return Err(InputError {
            file: path.to_path_buf(),
            line: Some(header_index as u64 + 1),
            column: Some(1),
            field: Some("format".into()),
            message: format!(
                "expected header {{\"format\":\"{FORMAT}\",\"version\":{VERSION}}}, found format `{}` version {}",
                header.format, header.version
            ),
        });
    }
    let mut records = Vec::new();
    let mut record_lines = Vec::new();
    let mut last_t = 0;
    for (index, line) in lines {
        let record: Record = parse_line(path, index, line)?;
        if record.t_ms < last_t {
            return Err(InputError {
                file: path.to_path_buf(),
                line: Some(index as u64 + 1),
                column: line.find("\"t_ms\"").map(|c| c as u64 + 1),
                field: Some("t_ms".into()),
                message: format!(
                    "t_ms {} is earlier than the line before ({last_t}); traces are in time order",
                    record.t_ms
                ),
            });
        }
        last_t = record.t_ms;
        records.push(record);
        record_lines.push(index as u64 + 1);
    }
    let at = records
        .iter()
        .map(|r| std::time::Duration::from_millis(r.t_ms))
        .collect();
    Ok(Trace {
        records,
        lines: record_lines,
        at,
    })
}

fn parse_line<T: for<'de> Deserialize<'de>>(
    path: &Path,
    index: usize,
    line: &str,
) -> Result<T, InputError> {
    let mut de = serde_json::Deserializer::from_str(line);
    let at = |field: Option<String>, e: &serde_json::Error| {
        let message = e.to_string();
        // serde_json appends " at line L column C"; we report the file's line instead.
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        InputError {
            file: path.to_path_buf(),
            line: Some(index as u64 + 1),
            column: Some(e.column() as u64),
            field: field.and_then(crate::input::tidy_field),
            message,
        }
    };
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| at(Some(e.path().to_string()), e.inner()))?;
    de.end().map_err(|e| at(None, &e))?;
    Ok(value)
}

impl Trace {
    /// Writes the trace in the native format.
    pub fn to_jsonl(&self) -> String {
        let header = Header {
            format: FORMAT.into(),
            version: VERSION,
        };
        let mut out = serde_json::to_string(&header).expect("header serialises");
        out.push('\n');
        for r in &self.records {
            out.push_str(&serde_json::to_string(r).expect("record serialises"));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "{\"format\":\"stampede-trace\",\"version\":1}\n";

    fn parse_str(body: &str) -> Result<Trace, InputError> {
        parse(Path::new("t.jsonl"), &format!("{HEADER}{body}"))
    }

    #[test]
    fn round_trips() {
        let body = r#"{"t_ms":5,"tenant":"tenant-00","user":"u","sql":"SELECT 1","lakes":{"ids":[1,2]},"priority":"interactive","deadline_ms":100}
{"t_ms":9,"tenant":"tenant-01","user":"u","sql":"SELECT 2","lakes":"all"}
"#;
        let t = parse_str(body).unwrap();
        assert_eq!(t.records.len(), 2);
        assert_eq!(t.records[1].priority, Priority::Batch);
        assert_eq!(t.records[0].lakes, LakeSelector::Ids(vec![1, 2]));
        assert_eq!(parse(Path::new("x"), &t.to_jsonl()).unwrap(), t);
    }

    #[test]
    fn unknown_field_names_line_column_and_field() {
        let body = "{\"t_ms\":5,\"tenant\":\"a\",\"user\":\"u\",\"sql\":\"S\",\"lakes\":\"all\",\"prio\":1}\n";
        let e = parse_str(body).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.column.unwrap() > 50, "{e}");
        assert!(e.message.contains("unknown field `prio`"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let body =
            "{\"t_ms\":\"soon\",\"tenant\":\"a\",\"user\":\"u\",\"sql\":\"S\",\"lakes\":\"all\"}\n";
        let e = parse_str(body).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("t_ms"));
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn out_of_order_is_an_error() {
        let body = "{\"t_ms\":9,\"tenant\":\"a\",\"user\":\"u\",\"sql\":\"S\",\"lakes\":\"all\"}\n{\"t_ms\":5,\"tenant\":\"a\",\"user\":\"u\",\"sql\":\"S\",\"lakes\":\"all\"}\n";
        let e = parse_str(body).unwrap_err();
        assert_eq!(e.line, Some(3));
        assert_eq!(e.field.as_deref(), Some("t_ms"));
    }

    #[test]
    fn missing_header_is_an_error() {
        let e = parse(Path::new("t"), "{\"t_ms\":1}\n").unwrap_err();
        assert_eq!(e.line, Some(1));
    }
}
