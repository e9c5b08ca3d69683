//! `stampede compare`: two run directories side by side.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::Exit;

/// Compares two run directories: writes `compare.html` and `compare.md` and prints the
/// Markdown.
pub fn compare_command(a: &Path, b: &Path, out: Option<PathBuf>) -> ExitCode {
    let (ra, rb) = match (
        crate::commands::capacity::read(a),
        crate::commands::capacity::read(b),
    ) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return Exit::Usage.into();
        }
    };
    let out = out.unwrap_or_else(|| {
        PathBuf::from("runs").join("compare").join(format!(
            "{}-vs-{}-seed-{}",
            ra.header.scenario, rb.header.scenario, rb.header.seed
        ))
    });
    let md = stampede_reports::page::compare_md(&ra, &rb);
    let written = std::fs::create_dir_all(&out)
        .and_then(|()| {
            crate::commands::sweep::write_whole(
                &out.join("compare.html"),
                &stampede_reports::page::compare_html(&ra, &rb),
            )
        })
        .and_then(|()| crate::commands::sweep::write_whole(&out.join("compare.md"), &md));
    if let Err(e) = written {
        eprintln!("internal error: writing {}: {e}", out.display());
        return Exit::Internal.into();
    }
    print!("{md}");
    println!(
        "\n  compare dir  {}  (compare.html, compare.md)",
        out.display()
    );
    Exit::Pass.into()
}
