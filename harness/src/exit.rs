//! Exit codes, in one place (README.md, "Exit codes").

/// How a `stampede` command ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: everything checked held.
    Pass = 0,
    /// 1: an invariant was violated.
    Violated = 1,
    /// 2: a threshold failed.
    Threshold = 2,
    /// 3: some check could not decide.
    Inconclusive = 3,
    /// 64: bad arguments, or an invalid scenario or trace.
    Usage = 64,
    /// 70: an internal error (a bug in stampede, or an unwritable output).
    Internal = 70,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}
