//! `stampede trace import` and `stampede validate`: recorded traffic in, input files checked.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::Exit;
use crate::prepare;

/// `stampede trace import --cloudtrail`: recorded CloudTrail files into a provider trace at
/// `out`.
pub fn import_command(files: &[PathBuf], out: &Path) -> ExitCode {
    let records = match crate::input::cloudtrail::import(files) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage.into();
        }
    };
    // Written beside the target and renamed into place: never half a trace.
    let tmp = out.with_extension("partial");
    let written = std::fs::write(&tmp, crate::input::cloudtrail::to_jsonl(&records))
        .and_then(|()| std::fs::rename(&tmp, out));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        eprintln!("internal error: writing {}: {e}", out.display());
        return Exit::Internal.into();
    }
    let accounts: std::collections::BTreeSet<&str> =
        records.iter().map(|r| r.account.as_str()).collect();
    println!(
        "wrote {}: {} calls from {} accounts over {:.1}s",
        out.display(),
        records.len(),
        accounts.len(),
        records.last().map_or(0.0, |r| r.t_ms as f64 / 1000.0)
    );
    Exit::Pass.into()
}

/// `stampede validate`: each scenario file and its traces checked, nothing run.
pub fn validate_command(files: &[PathBuf]) -> ExitCode {
    let mut bad = 0;
    for f in files {
        match prepare(f) {
            Ok(p) => {
                let ms = |t: &Duration| {
                    humantime::format_duration(Duration::from_millis(t.as_millis() as u64))
                };
                let span = match (p.trace.at.first(), p.trace.at.last()) {
                    (Some(a), Some(b)) => format!(", arriving from {} to {}", ms(a), ms(b)),
                    _ => String::new(),
                };
                println!(
                    "ok: {} ({} queries from {}{span})",
                    f.display(),
                    p.trace.records.len(),
                    p.source()
                )
            }
            Err(e) => {
                eprintln!("error: {e}");
                bad += 1;
            }
        }
    }
    if bad == 0 {
        Exit::Pass.into()
    } else {
        Exit::Usage.into()
    }
}
