//! Spans of virtual time as people write them (`500ms`, `10m`, `2h`): the one duration type
//! scenario files, checkers' parameters and alert rules share.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A span of virtual time written the human way: `500ms`, `10m`, `2h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

/// Reads a span written the human way; the error says how to write one.
pub fn parse(text: &str) -> Result<Duration, String> {
    // humantime reads `M` as months and `y` as years: nobody simulates those, and `10M`
    // was surely meant as minutes.
    if text.contains('M') || text.contains('y') || text.contains("month") {
        return Err(format!(
            "invalid duration `{text}`: months and years are not simulated; write e.g. 500ms, 10s, 5m (minutes), 2h, 3d"
        ));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("invalid duration `{text}` ({e}); write e.g. 500ms, 10s, 5m, 2h"))
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map(Span).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}
