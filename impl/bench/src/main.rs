//! `oxetcd-bench`: load generator and comparison harness for etcd-compatible endpoints.

use anyhow::Context as _;
use clap::Parser as _;
use oxetcd_bench::cli::{Cli, Command, ConnArgs, Consistency, KeyArgs};
use oxetcd_bench::stats::RunResult;
use oxetcd_bench::workload::{
    ClosedLoop, KeyShape, Op, WatchLatency, connect, dial, run_closed_loop, run_watch_latency,
};

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("oxetcd-bench: {e:#}");
        std::process::exit(1);
    }
}

fn shape(keys: &KeyArgs) -> KeyShape {
    KeyShape {
        key_size: keys.key_size,
        val_size: keys.val_size,
        key_space_size: keys.key_space_size,
        sequential: keys.sequential_keys,
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Compare(args) = &cli.command {
        return oxetcd_bench::compare::run(args);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("build the runtime")?;
    runtime.block_on(async move {
        let (conn, result): (&ConnArgs, RunResult) = match &cli.command {
            Command::Put(a) => {
                let spec = closed(&a.conn, Op::Put(shape(&a.keys)), a.keys.total, "put");
                (&a.conn, run_on(&a.conn, &spec).await?)
            }
            Command::Range(a) => {
                let op = Op::Range {
                    key: a.key.clone().into_bytes(),
                    range_end: a.end.clone().unwrap_or_default().into_bytes(),
                    serializable: a.consistency == Consistency::S,
                };
                let spec = closed(&a.conn, op, a.total, "range");
                (&a.conn, run_on(&a.conn, &spec).await?)
            }
            Command::TxnPut(a) => {
                if a.keys.key_space_size < a.txn_ops as u64 {
                    anyhow::bail!(
                        "--key-space-size ({}) must be at least --txn-ops ({}): a txn may not put one key twice",
                        a.keys.key_space_size,
                        a.txn_ops
                    );
                }
                let op = Op::TxnPut {
                    shape: shape(&a.keys),
                    ops: a.txn_ops,
                };
                let spec = closed(&a.conn, op, a.keys.total, "txn-put");
                (&a.conn, run_on(&a.conn, &spec).await?)
            }
            Command::WatchLatency(a) => {
                let channels = connect(&a.conn.endpoints, a.conn.conns).await?;
                let spec = WatchLatency {
                    streams: a.streams,
                    watchers_per_stream: a.watchers_per_stream,
                    put_total: a.put_total,
                    put_rate: a.put_rate,
                    key_size: a.key_size,
                    val_size: a.val_size,
                };
                (&a.conn, run_watch_latency(&channels, &spec).await?)
            }
            Command::Compare(_) => anyhow::bail!("compare is not a load subcommand"),
        };
        print!("{}", result.summary().render(conn.histogram));
        if let Some(e) = &result.first_error {
            println!("  first error: {e}");
        }
        anyhow::Ok(())
    })
}

fn closed(conn: &ConnArgs, op: Op, total: u64, label: &str) -> ClosedLoop {
    ClosedLoop {
        op,
        clients: conn.clients,
        total,
        progress: (!conn.no_progress).then(|| label.to_owned()),
    }
}

async fn run_on(conn: &ConnArgs, spec: &ClosedLoop) -> anyhow::Result<RunResult> {
    let conns = dial(&conn.endpoints, conn.conns).await?;
    Ok(run_closed_loop(&conns, spec).await)
}
