//! `etcd-conformance`: record, replay and Jepsen-style checks against any etcd endpoint.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "etcd-conformance",
    about = "Hold an etcd endpoint to recorded etcd 3.4.23 behaviour"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Jepsen-style run: a concurrent workload (under faults on a launched cluster),
    /// checked for linearizability, lost writes and watch anomalies.
    Jepsen(oxetcd_conformance::jepsen::JepsenArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Jepsen(args) => ExitCode::from(
            u8::try_from(oxetcd_conformance::jepsen::main(&args)).unwrap_or(2),
        ),
    }
}
