//! `oxetcd-model`: check and explore the stateright models of an oxetcd Raft cluster.
//!
//! `check` runs the model checker and prints what it explored and either "all properties
//! hold" or each counterexample as a step list (exit status 1); `trace` prints one run
//! step by step and writes it as a Mermaid sequence diagram; `explore` serves
//! stateright's explorer web UI.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use oxetcd_model_check::config::{InjectedBug, ModelConfig, NetworkKind, Scenario};
use oxetcd_model_check::run::{self, Bounds, Strategy};
use oxetcd_model_check::trace;

#[derive(Debug, Parser)]
#[command(
    name = "oxetcd-model",
    about = "Model-check oxetcd's Raft (spec::raft) with stateright"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Explore the state space and check every property.
    Check {
        #[command(flatten)]
        model: ModelArgs,
        /// Stop exploring paths longer than this many steps.
        #[arg(long)]
        depth: Option<usize>,
        /// Stop after about this many states (0: no limit).
        #[arg(long, default_value_t = 0)]
        max_states: usize,
        /// Checker threads (default: available cores).
        #[arg(long)]
        threads: Option<usize>,
        /// If a "sometimes" property is not reached by the exhaustive search, look for it
        /// with random walks for at most this many seconds (0: never).
        #[arg(long, default_value_t = 30)]
        simulate_seconds: u64,
        /// Search order: breadth-first finds the shortest counterexamples.
        #[arg(long, value_enum, default_value_t = Strategy::Bfs)]
        strategy: Strategy,
    },
    /// Print a numbered, step-by-step trace of one run (the checker's first
    /// counterexample, or a seeded random walk with --seed) with every server's role,
    /// term, commit index and log after each step, and write it as a Mermaid sequence
    /// diagram.
    Trace {
        #[command(flatten)]
        model: ModelArgs,
        /// Trace a random walk with this seed instead of searching for a counterexample.
        #[arg(long)]
        seed: Option<u64>,
        /// Most steps of the random walk.
        #[arg(long, default_value_t = 30)]
        steps: usize,
        /// Depth bound of the search for a counterexample.
        #[arg(long)]
        depth: Option<usize>,
        /// Stop the search after about this many states (0: no limit).
        #[arg(long, default_value_t = 0)]
        max_states: usize,
        /// Where to write the sequence diagram: a `.md` file gets a Mermaid block (GitHub
        /// and Markdown previews draw it), any other name the bare Mermaid text.
        #[arg(long, default_value = "trace.md")]
        diagram: std::path::PathBuf,
    },
    /// Serve stateright's explorer web UI for the model.
    Explore {
        #[command(flatten)]
        model: ModelArgs,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:3000")]
        address: String,
    },
}

#[derive(Debug, Args)]
struct ModelArgs {
    /// Number of Raft servers (2..=5).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=5))]
    servers: u8,
    /// Number of clients (each writes once, then reads).
    #[arg(long, default_value_t = 1)]
    clients: u8,
    /// Network behaviour.
    #[arg(long, value_enum, default_value_t = NetworkKind::Lossy)]
    network: NetworkKind,
    /// Maximum number of servers down at the same time (each may restart any number of times).
    #[arg(long, default_value_t = 1)]
    crashes: usize,
    /// Highest term explored (bounds the number of elections).
    #[arg(long, default_value_t = ModelConfig::default().term_max)]
    term_max: u64,
    /// Heartbeat rounds a leader may start per term (bounds the state space).
    #[arg(long, default_value_t = ModelConfig::default().heartbeats_per_term)]
    heartbeats_per_term: u8,
    /// Re-sends of a client request after "not leader".
    #[arg(long, default_value_t = ModelConfig::default().client_retries_max)]
    client_retries: u8,
    /// Run Raft's pre-vote phase before elections.
    #[arg(long)]
    pre_vote: bool,
    /// Switch on a known bug in spec::raft; the check must then report a counterexample.
    #[arg(long, value_enum)]
    inject_bug: Option<InjectedBug>,
    /// Start from the end of a scripted prefix instead of a fresh cluster (figure8: the
    /// Raft paper's Figure 8 (b) with three servers; see docs/raft.md).
    #[arg(long, value_enum)]
    scenario: Option<Scenario>,
}

impl ModelArgs {
    fn config(&self) -> ModelConfig {
        ModelConfig {
            servers: usize::from(self.servers),
            clients: usize::from(self.clients),
            network: self.network,
            crashes: self.crashes,
            term_max: self.term_max,
            heartbeats_per_term: self.heartbeats_per_term,
            client_retries_max: self.client_retries,
            pre_vote: self.pre_vote,
            bug: self.inject_bug,
            scenario: self.scenario,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            model,
            depth,
            max_states,
            threads,
            simulate_seconds,
            strategy,
        } => {
            let config = model.config();
            if let Err(error) = config.validate() {
                eprintln!("oxetcd-model: {error}");
                return ExitCode::from(2);
            }
            let bounds = Bounds {
                depth,
                max_states: (max_states > 0).then_some(max_states),
                threads: threads.unwrap_or_else(run::available_threads),
                strategy,
                stop_on: None,
                simulate: (simulate_seconds > 0)
                    .then(|| std::time::Duration::from_secs(simulate_seconds)),
            };
            println!("{}", run::describe_run(&config, &bounds));
            let outcome = run::check(&config, &bounds);
            print!("{}", outcome.report());
            if outcome.violations.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Trace {
            model,
            seed,
            steps,
            depth,
            max_states,
            diagram,
        } => {
            let config = model.config();
            if let Err(error) = config.validate() {
                eprintln!("oxetcd-model: {error}");
                return ExitCode::from(2);
            }
            let model = oxetcd_model_check::model::build(&config);
            let path = match seed {
                Some(seed) => {
                    println!("random walk, seed {seed}, at most {steps} steps");
                    trace::seeded_walk(&model, seed, steps)
                }
                None => {
                    let bounds = Bounds {
                        depth,
                        max_states: (max_states > 0).then_some(max_states),
                        threads: run::available_threads(),
                        ..Bounds::default()
                    };
                    println!("{}", run::describe_run(&config, &bounds));
                    let outcome = run::check(&config, &bounds);
                    let Some((name, path)) = outcome.violations.into_iter().next() else {
                        println!(
                            "no counterexample within the bounds ({} unique states); \
                             trace a random walk with --seed N",
                            outcome.unique_states
                        );
                        return ExitCode::SUCCESS;
                    };
                    println!("counterexample to: {name}");
                    path
                }
            };
            let mut trace = trace::Trace::from_path(&model, &path);
            if seed.is_none() {
                trace.cut_at_first_violation(&model);
            }
            print!("{}", trace::render_text(&model, &trace));
            let mermaid = trace::render_mermaid(&model, &trace);
            let contents = if diagram.extension().is_some_and(|e| e == "md") {
                format!("```mermaid\n{mermaid}```\n")
            } else {
                mermaid
            };
            match std::fs::write(&diagram, contents) {
                Ok(()) => {
                    println!("sequence diagram written to {}", diagram.display());
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("oxetcd-model: cannot write {}: {error}", diagram.display());
                    ExitCode::FAILURE
                }
            }
        }
        Command::Explore { model, address } => {
            let config = model.config();
            if let Err(error) = config.validate() {
                eprintln!("oxetcd-model: {error}");
                return ExitCode::from(2);
            }
            println!("serving the explorer for {config:?} on http://{address}");
            match run::explore(&config, &address) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("oxetcd-model: cannot serve on {address}: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
