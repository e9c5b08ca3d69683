//! The `stampede` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stampede::Exit;

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
        /// Where to write the run directory (report.html, report.md, results.json, junit.xml,
        /// events.jsonl, run.json) [default: runs/<name>/seed-<seed>]
        #[arg(long)]
        out: Option<PathBuf>,
        /// Multiply the traffic's load (`traffic.load`) by this, e.g. 2 for twice the queries
        #[arg(long, value_name = "MULTIPLIER")]
        load: Option<f64>,
    },
    /// Compare two run directories side by side (twins on one seed, most often): verdicts in
    /// two columns, deltas, one timeline, overlaid charts.
    ///
    /// Writes OUT/compare.html and OUT/compare.md and prints the Markdown. Runs of different
    /// scenarios are compared as far as they can be, and the page says how they differ.
    /// Exit codes: 0 written; 64 a directory is not a run directory; 70 internal error.
    Compare {
        /// The first run directory (drawn dashed): the naive twin, say.
        a: PathBuf,
        /// The second run directory (drawn solid): the hardened twin, say.
        b: PathBuf,
        /// Where to write the pages [default: runs/compare/<A's name>-vs-<B's name>-seed-<N>]
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run one scenario's traffic at rising load multipliers, on one or more seeds, and find
    /// where it stops keeping up: the knee, a USL fit, and the first load at which each
    /// invariant breaks.
    ///
    /// Writes DIR/capacity.json, DIR/capacity.html and DIR/runs/load-<X>/seed-<N>/ (each run's
    /// directory). Exit codes: 0 the ladder ran (whatever broke: that is its finding); 64 bad
    /// arguments or scenario; 70 internal error; 130 stopped by Ctrl-C.
    Capacity {
        /// The scenario file (YAML); its traffic is what gets scaled.
        scenario: PathBuf,
        /// The load multipliers, rising, e.g. 0.5,1,2,4,8
        #[arg(long, value_name = "LOADS", default_value = "0.5,1,2,4,8")]
        load: String,
        /// Seeds: `N`, `S..T` or `a,b,c`; several give error bars [default: the scenario's own]
        #[arg(long)]
        seeds: Option<stampede::commands::sweep::Seeds>,
        /// Runs at a time [default: the number of cores]
        #[arg(long)]
        jobs: Option<usize>,
        /// Where to write it; must not exist yet, or be empty [default: runs/capacity/<name>]
        #[arg(long)]
        out: Option<PathBuf>,
        /// The longest one run may take, e.g. 10m
        #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Run scenarios over many seeds, J at a time, and report failures grouped by scenario and
    /// invariant, each with the seeds that replay it.
    ///
    /// Writes DIR/sweep.json (one record per run), DIR/junit.xml (one suite per scenario, one
    /// case per invariant), DIR/summary.md, DIR/records.jsonl (records as runs finish) and
    /// DIR/runs/<scenario>/seed-<N>/ (each run's directory; the event log kept only for failed
    /// runs unless --keep-logs). Exit codes: 0 every run as expected; 1 some run failed
    /// (an invariant violated unexpectedly, an expected violation that held, a crash, a
    /// timeout, a determinism mismatch); 64 bad arguments or scenario; 70 internal error;
    /// 130 stopped by Ctrl-C (the finished runs are kept and reported).
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Sweep {
        #[command(subcommand)]
        command: Option<SweepCommand>,
        #[command(flatten)]
        args: stampede::commands::sweep::command::SweepArgs,
    },
    /// Replay a scenario on its timeline as a gameday: it pauses at each fault, alert, freeze
    /// and annotation; type operator actions (`do admission.pause for=2m`), branch "what if"
    /// (`branch NAME`), and `compare` the branches.
    ///
    /// On a terminal it is interactive (`help` lists the commands); `--script FILE` reads the
    /// same commands from a file, one per line. Both write DIR/timeline.md (the story in
    /// virtual time, per branch, and the outcome table) and DIR/gameday.json when done.
    /// Exit codes: 0 done; 64 bad arguments, scenario or script; 70 internal error.
    Gameday {
        /// The scenario file (YAML), e.g. an incident's naive twin.
        scenario: PathBuf,
        /// The seed; defaults to the scenario's own.
        #[arg(long)]
        seed: Option<u64>,
        /// Read the commands from FILE instead of the terminal.
        #[arg(long, value_name = "FILE")]
        script: Option<PathBuf>,
        /// Where to write timeline.md and gameday.json [default: runs/gameday/<name>]
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
enum SweepCommand {
    /// Promote shrunk files (DIR/shrunk/*.yaml) into the regression corpus, which runs in
    /// `cargo test`: each goes to TO/<invariant>/, expecting that invariant to fail until the
    /// bug is fixed.
    Promote {
        /// Shrunk scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The corpus.
        #[arg(long, default_value = "scenarios/regressions")]
        to: PathBuf,
    },
    /// Merge the directories of a sweep's shards into one: the same sweep.json, junit.xml and
    /// summary as the sweep run whole. Every shard must be there.
    Merge {
        /// The shards' directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where to write the merged sweep; it must not exist yet, or be empty.
        #[arg(long)]
        out: PathBuf,
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
            load,
        } => stampede::commands::run_cli::run_command(&scenario, seed, out, load),
        Command::Compare { a, b, out } => stampede::commands::compare::compare_command(&a, &b, out),
        Command::Capacity {
            scenario,
            load,
            seeds,
            jobs,
            out,
            timeout,
        } => stampede::commands::capacity_cli::capacity_command(
            &scenario, &load, seeds, jobs, out, timeout,
        ),
        Command::Sweep {
            command: Some(SweepCommand::Merge { dirs, out }),
            ..
        } => stampede::commands::sweep::command::merge_command(&dirs, &out),
        Command::Sweep {
            command: Some(SweepCommand::Promote { files, to }),
            ..
        } => stampede::commands::sweep::command::promote_command(&files, &to),
        Command::Sweep {
            command: None,
            args,
        } => stampede::commands::sweep::command::sweep_command(args),
        Command::Validate { files } => stampede::commands::trace::validate_command(&files),
        Command::Gameday {
            scenario,
            seed,
            script,
            out,
        } => stampede::commands::gameday::prompt::gameday_command(
            &scenario,
            seed,
            script.as_deref(),
            out,
        ),
        Command::Trace {
            command: TraceCommand::Import { cloudtrail, out },
        } => stampede::commands::trace::import_command(&cloudtrail, &out),
        Command::Fakes {
            command: FakesCommand::Serve { config, port_base },
        } => stampede::commands::serve_cli::serve_command(config.as_deref(), port_base),
    }
}

#[derive(Debug, Subcommand)]
enum TraceCommand {
    /// Turn AWS CloudTrail records into a provider trace: every recorded call becomes a call by
    /// a background account at its recorded time. Replay it with
    /// `world.provider.background.replay`.
    Import {
        /// CloudTrail files: `{"Records": [...]}`, a JSON array of records, one record per
        /// line, or `aws cloudtrail lookup-events` output; gzipped or not.
        #[arg(long, required = true, num_args = 1..)]
        cloudtrail: Vec<PathBuf>,
        /// The provider trace to write (JSON Lines).
        #[arg(long)]
        out: PathBuf,
    },
}
