//! Jepsen-style testing of any etcd endpoint: concurrent client workloads record a
//! history (invocation and completion times, unknown outcomes), faults are injected on
//! a locally launched cluster on a seeded schedule, and the history is checked for
//! linearizability (porcupine-rs against the sequential models in [`model`]), stale or
//! future serializable reads, lost acknowledged writes and watch anomalies. Leases lost
//! to a paused leader's stale lessor after it resumed (etcd-io/etcd#15247, fixed after
//! 3.4.23) are reported as a known etcd deviation, not as a violation
//! ([`check::STALE_LEADER_LEASES`]).

pub mod check;
pub mod client;
pub mod cluster;
pub mod history;
pub mod liar;
pub mod model;
pub mod proxy;
pub mod run;
pub mod watch;

use std::path::PathBuf;
use std::time::Duration;

pub use run::{Config, Nemesis, RunReport, Workload};

/// `etcd-conformance jepsen`: a Jepsen-style run against a launched cluster (with
/// faults) or against existing endpoints (without).
#[derive(Clone, Debug, clap::Args)]
pub struct JepsenArgs {
    /// Launch a local cluster of this etcd-compatible binary (etcd's flags).
    #[arg(long, value_name = "BIN", conflicts_with = "endpoints")]
    pub launch: Option<String>,
    /// Run against an existing cluster (comma-separated client URLs); no nemesis.
    #[arg(long, value_name = "URLS", value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// Members of the launched cluster.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Workload.
    #[arg(long, value_enum, default_value = "register")]
    pub workload: Workload,
    /// Faults to inject (launched clusters only).
    #[arg(long, value_enum, default_value = "none")]
    pub nemesis: Nemesis,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Seconds of workload.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Seed of the fault schedule and the operations.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Operations per second per client (at most).
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Milliseconds before a request's outcome is declared unknown.
    #[arg(long, default_value_t = 1000)]
    pub op_timeout_ms: u64,
    /// Seconds the linearizability search may take.
    #[arg(long, default_value_t = 120)]
    pub check_timeout: u64,
    /// Directory for the history and the HTML visualisation of a violation.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Check the `history.json` of an earlier run (written with `--out`) again instead
    /// of running anything.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["launch", "endpoints"])]
    pub recheck: Option<PathBuf>,
    /// Testing aid: issue serializable Gets and check them as if linearizable.
    #[arg(long, hide = true)]
    pub serializable_as_linearizable: bool,
    /// Testing aid: clients go through a proxy that acknowledges every Nth Put without
    /// forwarding it.
    #[arg(long, hide = true, value_name = "N")]
    pub lie_every: Option<u64>,
}

impl JepsenArgs {
    /// The run configuration these arguments describe.
    pub fn config(&self) -> Config {
        Config {
            launch: self.launch.clone(),
            endpoints: self.endpoints.clone(),
            nodes: self.nodes.max(1),
            workload: self.workload,
            nemesis: if self.launch.is_some() {
                self.nemesis
            } else {
                Nemesis::None
            },
            clients: self.clients.max(1),
            duration: Duration::from_secs(self.duration),
            seed: self.seed,
            rate: self.rate,
            op_timeout: Duration::from_millis(self.op_timeout_ms),
            check_timeout: Duration::from_secs(self.check_timeout),
            out_dir: self.out.clone(),
            serializable_as_linearizable: self.serializable_as_linearizable,
            lie_every: self.lie_every,
        }
    }
}

/// Runs `etcd-conformance jepsen`; returns the process exit code (0: no violation,
/// 1: a violation was found, 2: the run itself failed).
pub fn main(args: &JepsenArgs) -> i32 {
    let cfg = args.config();
    if let Some(path) = &args.recheck {
        return match run::recheck(path, &cfg) {
            Ok(report) => {
                print!("{}", report.render());
                if report.passed() { 0 } else { 1 }
            }
            Err(e) => {
                eprintln!("etcd-conformance jepsen: {e}");
                2
            }
        };
    }
    if cfg.launch.is_none() && cfg.endpoints.is_empty() {
        eprintln!("etcd-conformance jepsen: give --launch BIN or --endpoints URLS");
        return 2;
    }
    if cfg.launch.is_none() && args.nemesis != Nemesis::None {
        eprintln!("etcd-conformance jepsen: --nemesis needs --launch; running without faults");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("etcd-conformance jepsen: {e}");
            return 2;
        }
    };
    println!(
        "jepsen: workload {:?}, nemesis {:?}, {} clients, {} s, seed {}",
        cfg.workload,
        cfg.nemesis,
        cfg.clients,
        cfg.duration.as_secs(),
        cfg.seed
    );
    match runtime.block_on(run::run(&cfg)) {
        Ok(report) => {
            print!("{}", report.render());
            if report.passed() { 0 } else { 1 }
        }
        Err(e) => {
            eprintln!("etcd-conformance jepsen: {e}");
            2
        }
    }
}
