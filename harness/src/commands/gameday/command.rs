//! The gameday's command language, the same at the prompt and in a `--script` file: one
//! command per line, `#` starts a comment.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::input::scenario::Fault;

/// One command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Show the dashboard at the current virtual time.
    Status,
    /// Run for this long (no pause at events on the way).
    Step(Duration),
    /// Run to this virtual time (no pause at events on the way).
    Until(Duration),
    /// Run to the next pause: a fault, an alert firing, a freeze, an annotation, or the end.
    Continue,
    /// An operator action, with its keys as a scenario file writes them (`at` is now).
    Do {
        /// The action's name, e.g. `admission.pause`.
        action: String,
        /// Its keys, e.g. `for: 2m`.
        keys: Map<String, Value>,
        /// The line as typed.
        text: String,
    },
    /// Fork the world here into a new branch, and make it current.
    Branch(String),
    /// Make another branch current.
    Switch(String),
    /// Run every branch to the end and show them side by side.
    Compare,
    /// Write the current branch as a scenario file.
    Save(String),
    /// List the commands.
    Help,
    /// Finish: every branch to the end, then the outputs.
    Quit,
}

/// What `help` prints.
pub const HELP: &str = "\
commands:
  status                  the dashboard at this virtual time
  step DURATION           run for DURATION (e.g. 30s), without pausing on the way
  until TIME              run to virtual time TIME (e.g. 2m30s), without pausing on the way
  continue                run to the next pause: a fault, an alert firing, a freeze, an annotation, the end
  do ACTION key=value...  an operator action now, e.g. `do admission.pause for=2m`,
                          `do drain.rate fraction=0.5 for=5m`, `do failover for=10m`, `do caches.flush`
  branch NAME             fork the world here into branch NAME (re-simulated from zero) and switch to it
  switch NAME             make branch NAME current
  compare                 run every branch to the end and show them side by side
  save FILE               write the current branch as a scenario: its actions become `operator:`
  help                    this list
  quit                    run every branch to the end, write timeline.md and gameday.json, and stop";

/// Reads one line: `Ok(None)` for a blank line or a comment, else the command or a one-line
/// error.
pub fn parse(line: &str) -> Result<Option<Command>, String> {
    let line = line.split('#').next().unwrap_or("").trim();
    let mut words = line.split_whitespace();
    let Some(verb) = words.next() else {
        return Ok(None);
    };
    let rest: Vec<&str> = words.collect();
    let one = |what: &str| -> Result<&str, String> {
        match rest.as_slice() {
            [x] => Ok(*x),
            [] => Err(format!("`{verb}` needs {what}")),
            _ => Err(format!("`{verb}` takes one {what}, not {}", rest.len())),
        }
    };
    let none = || -> Result<(), String> {
        if rest.is_empty() {
            Ok(())
        } else {
            Err(format!("`{verb}` takes no arguments"))
        }
    };
    let span = |text: &str| crate::span::parse(text).map_err(|e| format!("`{verb}`: {e}"));
    let cmd = match verb {
        "status" => none().map(|()| Command::Status)?,
        "step" => Command::Step(span(one("a duration, e.g. 30s")?)?),
        "until" => Command::Until(span(one("a time, e.g. 2m30s")?)?),
        "continue" | "c" => none().map(|()| Command::Continue)?,
        "branch" => Command::Branch(name(one("a name")?)?),
        "switch" => Command::Switch(name(one("a name")?)?),
        "compare" => none().map(|()| Command::Compare)?,
        "save" => Command::Save(one("a file")?.to_string()),
        "help" | "?" => Command::Help,
        "quit" | "exit" => none().map(|()| Command::Quit)?,
        "do" => {
            let (action, pairs) = rest
                .split_first()
                .ok_or("`do` needs an action, e.g. `do admission.pause for=2m`")?;
            let mut keys = Map::new();
            for pair in pairs {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or(format!("`{pair}`: write keys as key=value, e.g. for=2m"))?;
                if k == "at" || k == "action" {
                    return Err(format!("`{k}` is not yours to give: an action happens now"));
                }
                keys.insert(k.to_string(), value(v));
            }
            Command::Do {
                action: action.to_string(),
                keys,
                text: line.to_string(),
            }
        }
        other => return Err(format!("unknown command `{other}` (`help` lists them)")),
    };
    Ok(Some(cmd))
}

fn name(s: &str) -> Result<String, String> {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(s.to_string())
    } else {
        Err(format!("`{s}`: a branch name is letters, digits, - and _"))
    }
}

/// A value as typed: a number when it reads as one, else text (`2m`, `eu-west-1`).
fn value(v: &str) -> Value {
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() => json!(x),
        _ => json!(v),
    }
}

/// The operator action `action` with `keys`, at `at`, as a scenario's `operator:` entry.
pub fn spec(action: &str, keys: &Map<String, Value>, at: Duration) -> Result<Fault, String> {
    let mut obj = keys.clone();
    obj.insert("action".into(), json!(action));
    obj.insert("at".into(), json!(format!("{}ms", at.as_millis())));
    serde_json::from_value(Value::Object(obj)).map_err(|e| {
        let e = e.to_string();
        match e.split_once(" at line") {
            Some((head, _)) => head.to_string(),
            None => e,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_read_as_written() {
        assert_eq!(parse("  # a comment"), Ok(None));
        assert_eq!(parse("status"), Ok(Some(Command::Status)));
        assert_eq!(
            parse("until 40s"),
            Ok(Some(Command::Until(Duration::from_secs(40))))
        );
        assert_eq!(
            parse("step 1m30s"),
            Ok(Some(Command::Step(Duration::from_secs(90))))
        );
        let Ok(Some(Command::Do { action, keys, .. })) = parse("do drain.rate fraction=0.5 for=5m")
        else {
            panic!()
        };
        assert_eq!(action, "drain.rate");
        assert_eq!(keys["fraction"], json!(0.5));
        assert_eq!(keys["for"], json!("5m"));
        let f = spec(&action, &keys, Duration::from_millis(40_100)).unwrap();
        assert_eq!(f.at.0, Duration::from_millis(40_100));
        assert_eq!(f.lasts.map(|s| s.0), Some(Duration::from_secs(300)));
    }

    #[test]
    fn mistakes_get_one_line_each() {
        for (line, says) in [
            ("frobnicate", "unknown command `frobnicate`"),
            ("step", "`step` needs a duration"),
            ("step soon", "`step`:"),
            ("until 1m 2m", "takes one"),
            ("status now", "takes no arguments"),
            ("do", "needs an action"),
            ("do admission.pause for", "key=value"),
            ("do admission.pause at=3s", "not yours to give"),
            ("branch a/b", "letters, digits"),
        ] {
            let err = parse(line).unwrap_err();
            assert!(err.contains(says), "{line}: {err}");
            assert!(!err.contains('\n'), "{line}: {err}");
        }
        let keys = Map::new();
        let err = spec("admission.flop", &keys, Duration::ZERO).unwrap_err();
        assert!(err.contains("admission.flop"), "{err}");
        assert!(!err.contains('\n'));
    }
}
