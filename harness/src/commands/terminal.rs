//! What every subcommand does at the terminal: a fresh output folder, Ctrl-C, and the command
//! line that replays a run.

use std::path::Path;

/// Refuses a directory that holds something: a sweep never overwrites another's results.
pub fn fresh_dir(out: &Path) -> Result<(), String> {
    let busy = std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some());
    if busy {
        return Err(format!(
            "{} already holds files: choose another --out, or remove it",
            out.display()
        ));
    }
    Ok(())
}

/// Stops the sweep on Ctrl-C: sets `stop`, which the sweep's workers watch.
#[allow(clippy::disallowed_methods)] // The sweep's own watcher thread, outside every simulation.
pub fn on_ctrl_c(stop: &'static std::sync::atomic::AtomicBool) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("stopping: the runs under way are cut, the finished ones kept");
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        });
    });
}

/// How commands that replay a run start, in the form the user ran this one (`cargo run`
/// sets `CARGO`).
pub fn replay_prefix() -> String {
    if std::env::var_os("CARGO").is_some() {
        "cargo run -p stampede --".into()
    } else {
        "stampede".into()
    }
}

/// The command that replays this run, in the form the user ran it (`cargo run` sets `CARGO`).
pub fn replay_command(path: &Path, seed: u64) -> String {
    format!("{} run {} --seed {seed}", replay_prefix(), path.display())
}
