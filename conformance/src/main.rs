//! `etcd-conformance`: record, replay and Jepsen-style checks against any etcd endpoint.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use oxetcd_conformance::{launch::Launcher, report, suite::Suite, transcript};

#[derive(Debug, Parser)]
#[command(
    name = "etcd-conformance",
    about = "Hold an etcd endpoint to recorded etcd 3.4.23 behaviour"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the scenarios against a server (real etcd) and write its answers into the transcripts.
    Record {
        /// Client URL, e.g. http://127.0.0.1:2379 (transcripts that need server flags
        /// are skipped on it unless --launch is given).
        #[arg(long, required_unless_present = "launch")]
        endpoint: Option<String>,
        /// Server binary accepting etcd's flags: transcripts that declare
        /// `server_flags` run on a fresh server started from it with those flags (on free
        /// loopback ports and a temp dir); without --endpoint, the others run on one
        /// launched without extra flags.
        #[arg(long, value_name = "BIN")]
        launch: Option<PathBuf>,
        /// Only transcripts whose `area/name` matches this glob.
        #[arg(long)]
        only: Option<String>,
        /// Transcript directory.
        #[arg(long, default_value_os_t = default_dir())]
        dir: PathBuf,
    },
    /// Replay the transcripts against a server; exit 0 only if every one matches.
    Replay {
        /// Client URL, e.g. http://127.0.0.1:2379 (transcripts that need server flags
        /// are skipped on it unless --launch is given).
        #[arg(long, required_unless_present = "launch")]
        endpoint: Option<String>,
        /// Server binary accepting etcd's flags: transcripts that declare
        /// `server_flags` run on a fresh server started from it with those flags (on free
        /// loopback ports and a temp dir); without --endpoint, the others run on one
        /// launched without extra flags.
        #[arg(long, value_name = "BIN")]
        launch: Option<PathBuf>,
        /// Only transcripts whose `area/name` matches this glob.
        #[arg(long)]
        only: Option<String>,
        /// Transcript directory.
        #[arg(long, default_value_os_t = default_dir())]
        dir: PathBuf,
        /// Also write a report (`.md` or `.html`).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Output format on stdout.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Jepsen-style run: a concurrent workload (under faults on a launched cluster),
    /// checked for linearizability, lost writes and watch anomalies.
    Jepsen(oxetcd_conformance::jepsen::JepsenArgs),
}

fn default_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("transcripts")
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("etcd-conformance: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Jepsen(args) => Ok(ExitCode::from(
            u8::try_from(oxetcd_conformance::jepsen::main(&args)).unwrap_or(2),
        )),
        Command::Record {
            endpoint,
            launch,
            only,
            dir,
        } => rt.block_on(async {
            let launcher = launch.map(|b| Launcher::new(b, &dir));
            let mut suite = Suite::new(endpoint.as_deref(), launcher)?;
            let all = transcript::load_all(&dir, only.as_deref())?;
            if all.is_empty() {
                bail!("no transcripts match");
            }
            let mut failed = 0;
            for mut l in all {
                let r = suite.run(&mut l, true).await;
                if let Some(why) = &r.skipped {
                    eprintln!("{}: not recorded: {why}", l.name);
                    continue;
                }
                if let Some(f) = &r.first_failure {
                    failed += 1;
                    eprintln!(
                        "{}: step {} could not be recorded: {} ({})",
                        l.name, f.step, f.got, f.request
                    );
                    continue;
                }
                transcript::save(&l.path, &l.transcript)?;
                println!("recorded {} ({} steps)", l.name, r.steps);
            }
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }),
        Command::Replay {
            endpoint,
            launch,
            only,
            dir,
            report: report_path,
            format,
            quiet,
        } => rt.block_on(async {
            let launcher = launch.map(|b| Launcher::new(b, &dir));
            let mut suite = Suite::new(endpoint.as_deref(), launcher)?;
            let mut all = transcript::load_all(&dir, only.as_deref())?;
            if all.is_empty() {
                bail!("no transcripts match");
            }
            let bar = if quiet {
                indicatif::ProgressBar::hidden()
            } else {
                indicatif::ProgressBar::new(all.len() as u64)
            };
            let mut started = false;
            let results = suite
                .run_all(&mut all, false, |name| {
                    if started {
                        bar.inc(1);
                    }
                    started = true;
                    bar.set_message(name.to_owned());
                })
                .await;
            bar.finish_and_clear();
            if let Some(p) = report_path {
                let content = if p.extension().and_then(|e| e.to_str()) == Some("html") {
                    report::html(&results)
                } else {
                    report::text(&results, true)
                };
                std::fs::write(&p, content)?;
            }
            match format {
                Format::Text => print!("{}", report::text(&results, false)),
                Format::Json => {
                    println!("{}", report::json(&results));
                    println!("{}", report::last_line(&results));
                }
            }
            Ok(if results.iter().all(|r| r.ok()) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }),
    }
}
