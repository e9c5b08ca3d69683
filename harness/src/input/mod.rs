//! What a user gives stampede: scenario files, their YAML, arrival processes, traces, recorded
//! CloudTrail traffic, swarm sections; and what is wrong with one ([`InputError`]), located as
//! precisely as the input allows: file, line, column and field.

pub mod arrivals;
pub mod cloudtrail;
pub mod fault;
pub mod scenario;
pub mod swarm;
pub mod trace;
pub mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};

/// A scenario or trace that cannot be used, located as precisely as the input allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// The file at fault.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// The field at fault, as a dotted path (`world.lakes.count`), when known.
    pub field: Option<String>,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for InputError {}

impl InputError {
    /// An error about the whole file (unreadable, empty, ...).
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: None,
            column: None,
            field: None,
            message: message.into(),
        }
    }
}

/// A field path as people read it: serde's `?` (a map key or an untagged value it cannot
/// name) is left out, and a path of nothing but those is no path.
pub fn tidy_field(path: String) -> Option<String> {
    let kept: Vec<&str> = path
        .split('.')
        .filter(|segment| !segment.is_empty() && *segment != "?")
        .collect();
    (!kept.is_empty()).then(|| kept.join("."))
}
