//! Command line of `oxetcd-bench`, with etcd's benchmark tool flag names where they exist.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Load generator for etcd-compatible endpoints, modelled on etcd's `benchmark` tool.
#[derive(Clone, Debug, Parser)]
#[command(name = "oxetcd-bench", version)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// Put keys (etcd's `benchmark put`).
    Put(PutArgs),
    /// Range one key or a key range (etcd's `benchmark range KEY [END]`).
    Range(RangeArgs),
    /// Transactions of puts (etcd's `benchmark txn-put`).
    TxnPut(TxnPutArgs),
    /// Latency from a put to its watch events (etcd's `benchmark watch-latency`).
    WatchLatency(WatchLatencyArgs),
    /// Run the targets' workloads against a real etcd and oxetcd, interleaved, and print
    /// a side-by-side table with ratios and the machine's floor.
    Compare(CompareArgs),
}

/// Connection flags shared by the load subcommands.
#[derive(Clone, Debug, Args, PartialEq, Eq)]
pub struct ConnArgs {
    /// Comma-separated endpoints (`host:port` or URL).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// gRPC connections shared by the clients.
    #[arg(long, default_value_t = 1)]
    pub conns: usize,
    /// Also print the response-time histogram.
    #[arg(long)]
    pub histogram: bool,
    /// No progress output on stderr.
    #[arg(long)]
    pub no_progress: bool,
}

/// Key/value shape flags of the write workloads.
#[derive(Clone, Debug, Args, PartialEq, Eq)]
pub struct KeyArgs {
    /// Total requests.
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// Key size in bytes.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Keys are drawn from this many distinct keys.
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
    /// Use sequential keys instead of random ones.
    #[arg(long)]
    pub sequential_keys: bool,
}

/// `put`.
#[derive(Clone, Debug, Args, PartialEq, Eq)]
pub struct PutArgs {
    /// Connections.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Keys.
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// Range consistency (etcd's `--consistency`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    /// Linearizable.
    L,
    /// Serializable.
    S,
}

/// `range`.
#[derive(Clone, Debug, Args, PartialEq, Eq)]
pub struct RangeArgs {
    /// Connections.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Key to read.
    pub key: String,
    /// Range end (exclusive); a single key when absent.
    pub end: Option<String>,
    /// Total requests.
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// Linearizable (`l`) or serializable (`s`).
    #[arg(long, value_enum, default_value = "l")]
    pub consistency: Consistency,
}

/// `txn-put`.
#[derive(Clone, Debug, Args, PartialEq, Eq)]
pub struct TxnPutArgs {
    /// Connections.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Keys.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Puts per transaction.
    #[arg(long, default_value_t = 1)]
    pub txn_ops: usize,
}

/// `watch-latency`.
#[derive(Clone, Debug, Args, PartialEq, Eq)]
pub struct WatchLatencyArgs {
    /// Connections.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Puts in all.
    #[arg(long, default_value_t = 1000)]
    pub put_total: u64,
    /// Puts per second (0: next put once every watcher saw the previous).
    #[arg(long, default_value_t = 100)]
    pub put_rate: u64,
    /// Watch streams.
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Watchers per stream.
    #[arg(long, default_value_t = 10)]
    pub watchers_per_stream: usize,
    /// Key size in bytes.
    #[arg(long, default_value_t = 32)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 32)]
    pub val_size: usize,
}

/// `compare`.
#[derive(Clone, Debug, Args, PartialEq)]
pub struct CompareArgs {
    /// The oxetcd binary.
    #[arg(long, default_value = "target/release/oxetcd")]
    pub oxetcd: PathBuf,
    /// The reference etcd 3.4.23 binary.
    #[arg(long, default_value = "etcd")]
    pub etcd: PathBuf,
    /// Where data dirs (and the floor's scratch file) go; default: the temp dir.
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Clients of the concurrent workloads.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// gRPC connections of the concurrent workloads.
    #[arg(long, default_value_t = 8)]
    pub conns: usize,
    /// Interleaved rounds per workload (etcd, oxetcd, etcd, oxetcd, ...).
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Multiplies every request total (not the 100k-key load).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Puts per round of the 64-client put workload.
    #[arg(long, default_value_t = 20_000)]
    pub put_total: u64,
    /// Puts per round of the 1-client put workload.
    #[arg(long, default_value_t = 1_000)]
    pub single_put_total: u64,
    /// Ranges per round of each range workload.
    #[arg(long, default_value_t = 40_000)]
    pub range_total: u64,
    /// Puts per round of the watch-latency workload (10 streams x 10 watchers, 100/s).
    #[arg(long, default_value_t = 300)]
    pub watch_puts: u64,
    /// Keys loaded before measuring memory and restart.
    #[arg(long, default_value_t = 100_000)]
    pub load_keys: u64,
    /// Value size of the loaded keys.
    #[arg(long, default_value_t = 256)]
    pub load_val_size: usize,
    /// Restarts measured per member (median reported).
    #[arg(long, default_value_t = 3)]
    pub restarts: usize,
    /// Samples of each floor measurement (median reported).
    #[arg(long, default_value_t = 200)]
    pub floor_samples: usize,
    /// Also print every workload's full report.
    #[arg(long)]
    pub verbose: bool,
}

impl CompareArgs {
    /// `n` scaled by `--scale`, at least 1.
    pub fn scaled(&self, n: u64) -> u64 {
        ((n as f64 * self.scale).round() as u64).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("oxetcd-bench").chain(args.iter().copied()))
            .expect("valid command line")
    }

    #[test]
    fn put_takes_etcd_benchmark_flags() {
        let cli = parse(&[
            "put",
            "--endpoints",
            "127.0.0.1:1,127.0.0.1:2",
            "--clients",
            "64",
            "--conns",
            "8",
            "--key-size",
            "16",
            "--val-size",
            "256",
            "--total",
            "500",
            "--key-space-size",
            "1000",
            "--sequential-keys",
        ]);
        let Command::Put(put) = cli.command else {
            panic!("expected put, got {:?}", cli.command);
        };
        assert_eq!(put.conn.endpoints, vec!["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!((put.conn.clients, put.conn.conns), (64, 8));
        assert_eq!(
            put.keys,
            KeyArgs {
                total: 500,
                key_size: 16,
                val_size: 256,
                key_space_size: 1000,
                sequential_keys: true
            }
        );
    }

    #[test]
    fn range_defaults_to_linearizable_and_accepts_serializable() {
        let Command::Range(r) = parse(&["range", "foo"]).command else {
            panic!("expected range");
        };
        assert_eq!(
            (r.key.as_str(), r.end, r.consistency),
            ("foo", None, Consistency::L)
        );
        let Command::Range(r) = parse(&["range", "a", "z", "--consistency", "s"]).command else {
            panic!("expected range");
        };
        assert_eq!(
            (r.end.as_deref(), r.consistency),
            (Some("z"), Consistency::S)
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        for bad in [
            &["range", "foo", "--consistency", "x"][..],
            &["put", "--total", "-1"],
            &["put", "--clients", "many"],
            &["range"],
            &["frobnicate"],
        ] {
            let args = std::iter::once("oxetcd-bench").chain(bad.iter().copied());
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn txn_put_watch_latency_and_compare_parse() {
        let Command::TxnPut(t) = parse(&["txn-put", "--txn-ops", "4"]).command else {
            panic!("expected txn-put");
        };
        assert_eq!(t.txn_ops, 4);
        let Command::WatchLatency(w) =
            parse(&["watch-latency", "--streams", "2", "--put-rate", "0"]).command
        else {
            panic!("expected watch-latency");
        };
        assert_eq!((w.streams, w.put_rate, w.watchers_per_stream), (2, 0, 10));
        let Command::Compare(c) =
            parse(&["compare", "--oxetcd", "/x/oxetcd", "--scale", "0.5"]).command
        else {
            panic!("expected compare");
        };
        assert_eq!(c.oxetcd, PathBuf::from("/x/oxetcd"));
        assert_eq!((c.clients, c.scaled(20_000)), (64, 10_000));
    }
}
