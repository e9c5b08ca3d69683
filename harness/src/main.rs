//! The `stampede` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use stampede::output::{self, default_dir, write_run_dir};
use stampede::{Exit, RunError, prepare, run};

/// Chaos and load-replay harness for a data-lake query system, on a deterministic simulated
/// network.
///
/// Exit codes: 0 pass; 1 invariant violated; 2 threshold failed; 3 inconclusive;
/// 64 bad arguments or invalid scenario; 70 internal error.
#[derive(Debug, Parser)]
#[command(name = "stampede", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one scenario with one seed, check its invariants and write its run directory.
    Run {
        /// The scenario file (YAML).
        scenario: PathBuf,
        /// The seed; defaults to the scenario's own.
        #[arg(long)]
        seed: Option<u64>,
        /// Where to write run.json, events.jsonl and results.json [default: runs/<name>/seed-<seed>]
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check scenario files and the traces they replay, without running anything.
    Validate {
        /// Scenario files (YAML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Traces: import recorded traffic.
    Trace {
        #[command(subcommand)]
        command: TraceCommand,
    },
    /// The fake cloud provider, for real clients.
    Fakes {
        #[command(subcommand)]
        command: FakesCommand,
    },
}

#[derive(Debug, Subcommand)]
enum FakesCommand {
    /// Serve the provider's services on 127.0.0.1 until stopped, and print the environment a
    /// client needs as `export` lines (`eval "$(stampede fakes serve &)"` style).
    Serve {
        /// A scenario file whose world (lakes, first region, provider quotas) and seed to serve
        /// [default: 20 lakes of 4 tenants in eu-west-1, seed 0]
        #[arg(long)]
        config: Option<PathBuf>,
        /// First port: S3 on it, then STS, IMDS, SQS and Glue on the next four [default: free ports]
        #[arg(long, default_value_t = 0)]
        port_base: u16,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage.into()
            } else {
                Exit::Pass.into()
            };
        }
    };
    match cli.command {
        Command::Run {
            scenario,
            seed,
            out,
        } => run_command(&scenario, seed, out),
        Command::Validate { files } => validate_command(&files),
        Command::Trace {
            command: TraceCommand::Import { cloudtrail, out },
        } => import_command(&cloudtrail, &out),
        Command::Fakes {
            command: FakesCommand::Serve { config, port_base },
        } => serve_command(config.as_deref(), port_base),
    }
}

fn run_command(path: &Path, seed: Option<u64>, out: Option<PathBuf>) -> ExitCode {
    let prepared = match prepare(path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage.into();
        }
    };
    let report = match run(prepared, seed) {
        Ok(r) => r,
        Err(RunError::Input(e)) => {
            eprintln!("error: {e}");
            return Exit::Usage.into();
        }
        Err(e @ RunError::Sim(_)) => {
            eprintln!("internal error: {e}");
            return Exit::Internal.into();
        }
    };
    let dir = out.unwrap_or_else(|| default_dir(&report));
    if let Err(e) = write_run_dir(&report, &dir)
        .with_context(|| format!("writing run directory {}", dir.display()))
    {
        eprintln!("internal error: {e:#}");
        return Exit::Internal.into();
    }
    print!(
        "{}",
        output::summary(&report, Some(&dir), &replay_command(path, report.seed))
    );
    if !report.unexpected().is_empty() {
        Exit::Violated.into()
    } else if !report.inconclusive().is_empty() {
        Exit::Inconclusive.into()
    } else {
        Exit::Pass.into()
    }
}

#[derive(Debug, Subcommand)]
enum TraceCommand {
    /// Turn AWS CloudTrail records into a provider trace: every recorded call becomes a call by
    /// a background account at its recorded time. Replay it with
    /// `world.provider.background.replay`.
    Import {
        /// CloudTrail files: `{"Records": [...]}` or one record per line, gzipped or not.
        #[arg(long, required = true, num_args = 1..)]
        cloudtrail: Vec<PathBuf>,
        /// The provider trace to write (JSON Lines).
        #[arg(long)]
        out: PathBuf,
    },
}

fn import_command(files: &[PathBuf], out: &Path) -> ExitCode {
    let records = match stampede::cloudtrail::import(files) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage.into();
        }
    };
    // Written beside the target and renamed into place: never half a trace.
    let tmp = out.with_extension("partial");
    let written = std::fs::write(&tmp, stampede::cloudtrail::to_jsonl(&records))
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

fn validate_command(files: &[PathBuf]) -> ExitCode {
    let mut bad = 0;
    for f in files {
        match prepare(f) {
            Ok(p) => println!(
                "ok: {} ({} queries from {})",
                f.display(),
                p.trace.records.len(),
                p.source()
            ),
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

fn serve_command(config: Option<&Path>, port_base: u16) -> ExitCode {
    let (lakes, provider) = match config {
        Some(path) => match stampede::scenario::load(path) {
            Ok(s) => (
                stampede::world::lake_directory(&s, s.seed),
                stampede::world::provider_config(&s).0,
            ),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Usage.into();
            }
        },
        None => (
            stampede_fakes::LakeDirectory {
                seed: 0,
                count: 20,
                tenants: 4,
                regions: vec!["eu-west-1".into()],
                files_per_lake: 2,
                rows_per_file: 500,
            },
            stampede_fakes::ProviderConfig::default(),
        ),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("internal error: cannot start the runtime: {e}");
            return Exit::Internal.into();
        }
    };
    runtime.block_on(async {
        let served = match stampede::serve::start(lakes, provider, port_base).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot listen on 127.0.0.1: {e}");
                return Exit::Usage.into();
            }
        };
        print!("{}", served.exports());
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        eprintln!(
            "serving {} lakes in {}; Ctrl-C stops",
            served.lakes.count, served.region
        );
        let _ = tokio::signal::ctrl_c().await;
        Exit::Pass.into()
    })
}

/// The command that replays this run, in the form the user ran it (`cargo run` sets `CARGO`).
fn replay_command(path: &Path, seed: u64) -> String {
    let args = format!("run {} --seed {seed}", path.display());
    if std::env::var_os("CARGO").is_some() {
        format!("cargo run -p stampede -- {args}")
    } else {
        format!("stampede {args}")
    }
}
