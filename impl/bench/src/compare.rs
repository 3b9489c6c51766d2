//! `compare`: the targets' workloads against a real etcd and oxetcd on this machine,
//! interleaved, printed side by side with ratios and the machine's floor. A member that
//! cannot be started gets no figures (never invented ones), only the reason.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use oxetcd_api::etcdserverpb::kv_client::KvClient;
use oxetcd_api::etcdserverpb::{PutRequest, RangeRequest};

use crate::cli::CompareArgs;
use crate::floor::{self, Floor};
use crate::server::Member;
use crate::stats::RunResult;
use crate::workload::{
    ClosedLoop, KeyShape, Op, WatchLatency, connect, dial, key_bytes, run_closed_loop,
    run_watch_latency, value_bytes,
};

/// Column order: the reference first.
const SIDES: [&str; 2] = ["etcd", "oxetcd"];

/// Key read by the range workloads.
const RANGE_KEY: &[u8] = b"oxetcd-bench-range";

/// Which way is better for a figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
}

/// A row of the table: the figure per side plus the target.
#[derive(Clone, Debug)]
struct Row {
    label: &'static str,
    unit: Unit,
    better: Better,
    /// Target as oxetcd/etcd ratio (or vs the floor for `vs_floor`).
    target: f64,
    vs_floor: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    PerSec,
    Latency,
    Bytes,
}

const ROWS: &[Row] = &[
    Row {
        label: "put 64 clients: throughput",
        unit: Unit::PerSec,
        better: Better::Higher,
        target: 1.5,
        vs_floor: false,
    },
    Row {
        label: "put 64 clients: p99",
        unit: Unit::Latency,
        better: Better::Lower,
        target: 1.0,
        vs_floor: false,
    },
    Row {
        label: "put 1 client: p50",
        unit: Unit::Latency,
        better: Better::Lower,
        target: 1.3,
        vs_floor: true,
    },
    Row {
        label: "range serializable 64 clients: throughput",
        unit: Unit::PerSec,
        better: Better::Higher,
        target: 2.0,
        vs_floor: false,
    },
    Row {
        label: "range linearizable 64 clients: throughput",
        unit: Unit::PerSec,
        better: Better::Higher,
        target: 2.0,
        vs_floor: false,
    },
    Row {
        label: "watch event latency: p99",
        unit: Unit::Latency,
        better: Better::Lower,
        target: 1.0,
        vs_floor: false,
    },
    Row {
        label: "RSS after loading keys",
        unit: Unit::Bytes,
        better: Better::Lower,
        target: 0.75,
        vs_floor: false,
    },
    Row {
        label: "restart to first read",
        unit: Unit::Latency,
        better: Better::Lower,
        target: 1.0,
        vs_floor: false,
    },
];

/// Figures (seconds, req/s or bytes) per side, keyed by row label.
type Figures = BTreeMap<&'static str, f64>;

/// One side of the comparison.
#[derive(Debug)]
struct Side {
    name: &'static str,
    binary: PathBuf,
    member: Option<Member>,
    figures: Figures,
    notes: Vec<String>,
}

impl Side {
    fn start(&mut self, root: &Path) {
        self.member = None;
        if self.name == "oxetcd" && !binary_exists(&self.binary) {
            self.note(format!(
                "binary {} not found (build it: cargo build --release --bin oxetcd)",
                self.binary.display()
            ));
            return;
        }
        match Member::start(self.name, &self.binary, root) {
            Ok(m) => self.member = Some(m),
            Err(e) => self.note(format!("does not serve: {e:#}")),
        }
    }

    fn note(&mut self, note: String) {
        eprintln!("{}: {note}", self.name);
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }
}

fn binary_exists(path: &Path) -> bool {
    if path.components().count() > 1 {
        return path.is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(path).is_file()))
}

/// Runs `compare` and prints the table on stdout. Fails only if etcd itself cannot run.
pub fn run(args: &CompareArgs) -> anyhow::Result<()> {
    let root = args.data_root.clone().unwrap_or_else(std::env::temp_dir);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("build the runtime")?;
    eprintln!(
        "measuring the floor ({} samples each) in {}",
        args.floor_samples,
        root.display()
    );
    let floor = floor::measure(&root, args.floor_samples)?;
    let mut sides: Vec<Side> = SIDES
        .iter()
        .map(|&name| Side {
            name,
            binary: if name == "etcd" {
                args.etcd.clone()
            } else {
                args.oxetcd.clone()
            },
            member: None,
            figures: Figures::new(),
            notes: Vec::new(),
        })
        .collect();

    // Phase 1: throughput and latency on fresh members.
    for side in &mut sides {
        side.start(&root);
    }
    if sides[0].member.is_none() {
        bail!(
            "the reference etcd could not be started ({}); install it with `sh conformance/ensure-etcd.sh`",
            sides[0].notes.join("; ")
        );
    }
    for side in &mut sides {
        if let Some(m) = &side.member {
            let url = m.client_url.clone();
            if let Err(e) = runtime.block_on(seed_range_key(&url)) {
                side.note(format!("cannot write the range key: {e:#}"));
                side.member = None;
            }
        }
    }
    let shape = |space: u64| KeyShape {
        key_size: 8,
        val_size: 256,
        key_space_size: space,
        sequential: false,
    };
    let closed = |op: Op, clients: usize, total: u64| ClosedLoop {
        op,
        clients,
        total,
        progress: None,
    };
    let range = |serializable| Op::Range {
        key: RANGE_KEY.to_vec(),
        range_end: Vec::new(),
        serializable,
    };
    let workloads: Vec<(&str, Workload)> = vec![
        (
            "put 64 clients",
            Workload::Closed(
                closed(
                    Op::Put(shape(100_000)),
                    args.clients,
                    args.scaled(args.put_total),
                ),
                args.conns,
            ),
        ),
        (
            "put 1 client",
            Workload::Closed(
                closed(
                    Op::Put(shape(100_000)),
                    1,
                    args.scaled(args.single_put_total),
                ),
                1,
            ),
        ),
        (
            "range serializable",
            Workload::Closed(
                closed(range(true), args.clients, args.scaled(args.range_total)),
                args.conns,
            ),
        ),
        (
            "range linearizable",
            Workload::Closed(
                closed(range(false), args.clients, args.scaled(args.range_total)),
                args.conns,
            ),
        ),
        (
            "watch latency",
            Workload::Watch(WatchLatency {
                streams: 10,
                watchers_per_stream: 10,
                put_total: args.scaled(args.watch_puts),
                put_rate: 100,
                key_size: 32,
                val_size: 32,
            }),
        ),
    ];
    let mut results: BTreeMap<(&str, &str), RunResult> = BTreeMap::new();
    for (name, workload) in &workloads {
        for round in 0..args.rounds.max(1) {
            for side in &mut sides {
                let Some(member) = &side.member else { continue };
                eprintln!(
                    "{name}: round {}/{} on {}",
                    round + 1,
                    args.rounds.max(1),
                    side.name
                );
                let url = member.client_url.clone();
                match runtime.block_on(workload.run(&url)) {
                    Ok(r) => {
                        if r.errors > 0 {
                            side.note(format!(
                                "{name}: {} failed requests (first: {})",
                                r.errors,
                                r.first_error.clone().unwrap_or_default()
                            ));
                        }
                        results.entry((*name, side.name)).or_default().merge(r);
                    }
                    Err(e) => side.note(format!("{name}: {e:#}")),
                }
            }
        }
    }
    for side in &mut sides {
        let get = |w: &str| results.get(&(w, side.name)).map(RunResult::summary);
        if let Some(s) = get("put 64 clients").filter(|s| s.count > 0) {
            side.figures.insert(ROWS[0].label, s.requests_per_sec);
            side.figures.insert(ROWS[1].label, secs(s.percentile(99.0)));
        }
        if let Some(s) = get("put 1 client").filter(|s| s.count > 0) {
            side.figures.insert(ROWS[2].label, secs(s.percentile(50.0)));
        }
        if let Some(s) = get("range serializable").filter(|s| s.count > 0) {
            side.figures.insert(ROWS[3].label, s.requests_per_sec);
        }
        if let Some(s) = get("range linearizable").filter(|s| s.count > 0) {
            side.figures.insert(ROWS[4].label, s.requests_per_sec);
        }
        if let Some(s) = get("watch latency").filter(|s| s.count > 0) {
            side.figures.insert(ROWS[5].label, secs(s.percentile(99.0)));
        }
        if args.verbose {
            for (name, _) in &workloads {
                if let Some(s) = get(name) {
                    println!("== {name} on {} ==\n{}", side.name, s.render(true));
                }
            }
        }
        side.member = None;
    }

    // Phase 2: memory after a load, then restarts, on fresh members.
    for side in &mut sides {
        side.start(&root);
    }
    for side in &mut sides {
        let Some(member) = &side.member else { continue };
        eprintln!(
            "loading {} keys of {} B into {}",
            args.load_keys, args.load_val_size, side.name
        );
        let url = member.client_url.clone();
        let load = ClosedLoop {
            op: Op::Put(KeyShape {
                key_size: 8,
                val_size: args.load_val_size,
                key_space_size: args.load_keys,
                sequential: true,
            }),
            clients: args.clients,
            total: args.load_keys,
            progress: Some(format!("load {}", side.name)),
        };
        match runtime.block_on(Workload::Closed(load, args.conns).run(&url)) {
            Ok(r) if r.errors == 0 => {}
            Ok(r) => side.note(format!(
                "load: {} failed puts (first: {})",
                r.errors,
                r.first_error.unwrap_or_default()
            )),
            Err(e) => side.note(format!("load: {e:#}")),
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    for side in &mut sides {
        let rss = side.member.as_ref().map(Member::rss_bytes);
        match rss {
            Some(Ok(bytes)) => {
                side.figures.insert(ROWS[6].label, bytes as f64);
            }
            Some(Err(e)) => side.note(format!("rss: {e:#}")),
            None => {}
        }
    }
    let mut restart_times: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for _ in 0..args.restarts.max(1) {
        for side in &mut sides {
            let Some(member) = side.member.as_mut() else {
                continue;
            };
            eprintln!("restarting {}", side.name);
            member.stop();
            let t0 = Instant::now();
            let outcome = member
                .spawn()
                .and_then(|()| member.wait_ready(Duration::from_secs(120)));
            let took = t0.elapsed();
            match outcome {
                Ok(_) => {
                    restart_times.entry(side.name).or_default().push(took);
                    let url = member.client_url.clone();
                    match runtime.block_on(count_loaded(&url, args.load_keys)) {
                        Ok(true) => {}
                        Ok(false) => {
                            side.note("after restart the loaded keys are not all there".into())
                        }
                        Err(e) => side.note(format!("reading after restart: {e:#}")),
                    }
                }
                Err(e) => {
                    side.note(format!("restart: {e:#}"));
                    side.member = None;
                }
            }
        }
    }
    for side in &mut sides {
        if let Some(times) = restart_times.remove(side.name) {
            side.figures
                .insert(ROWS[7].label, floor::median(times).as_secs_f64());
        }
        side.member = None;
    }
    // fdatasync cost moves with the machine's other disk traffic: measure again at the
    // end and take the lower floor (the stricter basis for the 1-client target).
    let floor_end = floor::measure(&root, args.floor_samples)?;
    eprintln!(
        "floor at start {:.3} ms, at end {:.3} ms",
        floor.total().as_secs_f64() * 1e3,
        floor_end.total().as_secs_f64() * 1e3
    );
    let floor = if floor_end.total() < floor.total() {
        floor_end
    } else {
        floor
    };
    print!("{}", render_table(args, &floor, &sides));
    Ok(())
}

fn secs(d: Option<Duration>) -> f64 {
    d.map_or(f64::NAN, |d| d.as_secs_f64())
}

/// A workload run against one endpoint with its own connections.
#[derive(Clone, Debug)]
enum Workload {
    Closed(ClosedLoop, usize),
    Watch(WatchLatency),
}

impl Workload {
    async fn run(&self, url: &str) -> anyhow::Result<RunResult> {
        match self {
            Workload::Closed(spec, conns) => {
                let conns = dial(&[url.to_owned()], *conns).await?;
                Ok(run_closed_loop(&conns, spec).await)
            }
            Workload::Watch(spec) => {
                let channels = connect(&[url.to_owned()], 10).await?;
                run_watch_latency(&channels, spec).await
            }
        }
    }
}

async fn seed_range_key(url: &str) -> anyhow::Result<()> {
    let channels = connect(&[url.to_owned()], 1).await?;
    KvClient::new(channels[0].clone())
        .put(PutRequest {
            key: RANGE_KEY.to_vec(),
            value: value_bytes(256, 3),
            ..PutRequest::default()
        })
        .await?;
    Ok(())
}

/// True if the first and last loaded keys are present (a restart kept the data).
async fn count_loaded(url: &str, keys: u64) -> anyhow::Result<bool> {
    let channels = connect(&[url.to_owned()], 1).await?;
    let mut kv = KvClient::new(channels[0].clone());
    for n in [0, keys.saturating_sub(1)] {
        let resp = kv
            .range(RangeRequest {
                key: key_bytes(n, 8),
                ..RangeRequest::default()
            })
            .await?
            .into_inner();
        if resp.kvs.len() != 1 {
            return Ok(false);
        }
    }
    Ok(true)
}

fn fmt_figure(unit: Unit, v: Option<f64>) -> String {
    match v {
        None => "n/a".into(),
        Some(v) if v.is_nan() => "n/a".into(),
        Some(v) => match unit {
            Unit::PerSec => format!("{v:.0} req/s"),
            Unit::Latency if v < 1.0 => format!("{:.2} ms", v * 1e3),
            Unit::Latency => format!("{v:.2} s"),
            Unit::Bytes => format!("{:.1} MiB", v / (1024.0 * 1024.0)),
        },
    }
}

fn render_table(args: &CompareArgs, floor: &Floor, sides: &[Side]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nfloor: 4 KiB write+fdatasync {:.3} ms + loopback TCP round trip {:.3} ms = {:.3} ms (medians of {}; lower of start and end)",
        floor.write_fdatasync.as_secs_f64() * 1e3,
        floor.loopback_rtt.as_secs_f64() * 1e3,
        floor.total().as_secs_f64() * 1e3,
        floor.samples
    );
    let _ = writeln!(
        out,
        "binaries: etcd = {}, oxetcd = {}",
        args.etcd.display(),
        args.oxetcd.display()
    );
    let _ = writeln!(
        out,
        "workloads: {} clients on {} conns, {} interleaved rounds, scale {}; load {} keys x {} B\n",
        args.clients, args.conns, args.rounds, args.scale, args.load_keys, args.load_val_size
    );
    let _ = writeln!(
        out,
        "{:<44} {:>14} {:>14} {:>9} {:>12} {:>5}",
        "workload", "etcd 3.4.23", "oxetcd", "ox/etcd", "target", "met"
    );
    for row in ROWS {
        let e = sides[0].figures.get(row.label).copied();
        let o = sides[1].figures.get(row.label).copied();
        let ratio = match (e, o) {
            (Some(e), Some(o)) if e > 0.0 && !e.is_nan() && !o.is_nan() => Some(o / e),
            _ => None,
        };
        let (basis, measured) = if row.vs_floor {
            (
                floor.total().as_secs_f64(),
                o.map(|o| o / floor.total().as_secs_f64()),
            )
        } else {
            (1.0, ratio)
        };
        let _ = basis;
        let cmp = if row.better == Better::Higher {
            ">="
        } else {
            "<="
        };
        let target = if row.vs_floor {
            format!("{cmp}{}x floor", row.target)
        } else {
            format!("{cmp}{}x", row.target)
        };
        let met = match measured {
            None => "-",
            Some(m)
                if (row.better == Better::Higher && m >= row.target)
                    || (row.better == Better::Lower && m <= row.target) =>
            {
                "yes"
            }
            Some(_) => "NO",
        };
        let _ = writeln!(
            out,
            "{:<44} {:>14} {:>14} {:>9} {:>12} {:>5}",
            if row.unit == Unit::Bytes {
                "RSS after loading the keys"
            } else {
                row.label
            },
            fmt_figure(row.unit, e),
            fmt_figure(row.unit, o),
            ratio.map_or("n/a".into(), |r| format!("{r:.2}x")),
            target,
            met
        );
    }
    let floor_s = floor.total().as_secs_f64();
    for (i, side) in sides.iter().enumerate() {
        if let Some(p50) = side.figures.get(ROWS[2].label) {
            let _ = writeln!(
                out,
                "{}: 1-client put p50 / floor = {:.2}x",
                SIDES[i],
                p50 / floor_s
            );
        }
    }
    for side in sides {
        for note in &side.notes {
            let _ = writeln!(out, "note ({}): {note}", side.name);
        }
    }
    out
}
