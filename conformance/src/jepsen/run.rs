//! A whole Jepsen run: launch (or attach to) a cluster, run a seeded workload while a
//! seeded nemesis injects faults, heal, read the store's event log, and check.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::check::{self, LinOptions, LinReport, ModelKind, Verdict};
use super::client::{EtcdClient, Outcome, watch_once};
use super::cluster::{Cluster, ClusterError};
use super::history::{
    Cond, History, KvOp, KvResult, Op, PausedLeader, Request, Response, WatchEvent, WatchStream,
};
use super::liar;
use super::watch::{WatchReport, check_watches};

/// The client workload.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
pub enum Workload {
    /// Put/Get on a few keys; some serializable Gets (checked separately).
    Register,
    /// Compare-and-set transactions on versions and mod revisions, prefix ranges, deletes.
    KvTxn,
    /// Lease grant, attach, keep-alive, revoke and expiry.
    Lease,
    /// Writes on a few keys watched by several watchers.
    Watch,
}

/// The fault injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Nemesis {
    /// No faults.
    None,
    /// SIGKILL a member, restart it with the same data dir.
    Kill,
    /// SIGSTOP a member, SIGCONT it.
    Pause,
    /// Isolate a member from its peers (through the peer proxies).
    Partition,
    /// Stop a member gracefully, start it again.
    Restart,
    /// SIGKILL the current leader, restart it.
    LeaderKill,
    /// Any of the above.
    Mixed,
}

/// Options of a run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Binary to launch a cluster of (`None`: use `endpoints`).
    pub launch: Option<String>,
    /// Endpoints of an existing cluster.
    pub endpoints: Vec<String>,
    /// Members to launch.
    pub nodes: usize,
    /// Workload.
    pub workload: Workload,
    /// Nemesis.
    pub nemesis: Nemesis,
    /// Concurrent clients.
    pub clients: usize,
    /// Length of the workload.
    pub duration: Duration,
    /// Seed of the fault schedule and of every client's operations.
    pub seed: u64,
    /// Operations per second per client (an upper bound).
    pub rate: f64,
    /// Time limit of one request.
    pub op_timeout: Duration,
    /// Time limit of the linearizability search.
    pub check_timeout: Duration,
    /// Where to write the history and the visualisation of a violation.
    pub out_dir: Option<PathBuf>,
    /// Deliberate misuse for the tests: issue only serializable Gets and check them as
    /// if they were linearizable.
    pub serializable_as_linearizable: bool,
    /// Deliberately wrong endpoint for the tests: clients talk to a proxy in front of
    /// member 0 that acknowledges every `n`th Put without forwarding it.
    pub lie_every: Option<u64>,
}

impl Config {
    /// A short run of `workload` against a launched cluster of `bin`.
    pub fn launched(bin: &str, workload: Workload, nemesis: Nemesis) -> Config {
        Config {
            launch: Some(bin.to_owned()),
            endpoints: vec![],
            nodes: 3,
            workload,
            nemesis,
            clients: 4,
            duration: Duration::from_secs(10),
            seed: 1,
            rate: 50.0,
            op_timeout: Duration::from_millis(1000),
            check_timeout: Duration::from_secs(60),
            out_dir: None,
            serializable_as_linearizable: false,
            lie_every: None,
        }
    }
}

/// One scheduled fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Start, from the beginning of the workload.
    pub at: Duration,
    /// How long it lasts.
    pub length: Duration,
    /// What it does.
    pub kind: Nemesis,
    /// The member (ignored by leader-kill, which picks the leader at run time).
    pub target: usize,
}

/// The fault schedule of a seed: one fault at a time, each followed by a quiet period.
pub fn schedule(nemesis: Nemesis, nodes: usize, duration: Duration, seed: u64) -> Vec<Fault> {
    let mut out = Vec::new();
    if nemesis == Nemesis::None || nodes == 0 {
        return out;
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0x006e_656d_6573_6973);
    let kinds = [
        Nemesis::Kill,
        Nemesis::Pause,
        Nemesis::Partition,
        Nemesis::Restart,
        Nemesis::LeaderKill,
    ];
    let mut t = Duration::from_millis(rng.random_range(500..1500));
    loop {
        let length = Duration::from_millis(rng.random_range(1500..3500));
        if t + length + Duration::from_millis(500) > duration {
            break;
        }
        let kind = if nemesis == Nemesis::Mixed {
            kinds[rng.random_range(0..kinds.len())]
        } else {
            nemesis
        };
        out.push(Fault {
            at: t,
            length,
            kind,
            target: rng.random_range(0..nodes),
        });
        t += length + Duration::from_millis(rng.random_range(1000..2500));
    }
    out
}

/// Everything a run measured.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// Workload.
    pub workload: Workload,
    /// Operations recorded.
    pub ops: usize,
    /// Operations with a response.
    pub ok: usize,
    /// Operations that definitely failed.
    pub failed: usize,
    /// Operations of unknown outcome.
    pub unknown: usize,
    /// Faults injected (one line each).
    pub faults: Vec<String>,
    /// Acknowledged writes missing from the store's history.
    pub lost: Vec<String>,
    /// The linearizability check.
    pub lin: LinReport,
    /// Serializable reads recorded.
    pub serializable_reads: usize,
    /// Serializable read anomalies.
    pub serializable: Vec<String>,
    /// The watch check (watch workload).
    pub watch: Option<WatchReport>,
    /// Events in the store's history of the run's keys.
    pub log_events: usize,
    /// Problems of the run itself (cluster did not heal, log incomplete).
    pub errors: Vec<String>,
    /// Where the history was written.
    pub history_file: Option<PathBuf>,
}

impl RunReport {
    /// Whether nothing wrong was found.
    pub fn passed(&self) -> bool {
        self.lost.is_empty()
            && matches!(
                self.lin.verdict,
                Verdict::Linearizable | Verdict::KnownDeviation
            )
            && self.serializable.is_empty()
            && self.watch.as_ref().is_none_or(|w| w.anomalies() == 0)
            && self.errors.is_empty()
    }

    /// The printed report.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "operations: {} (ok {}, failed {}, unknown {})",
            self.ops, self.ok, self.failed, self.unknown
        );
        let _ = writeln!(s, "faults injected: {}", self.faults.len());
        for f in &self.faults {
            let _ = writeln!(s, "  {f}");
        }
        let _ = writeln!(s, "acknowledged writes lost: {}", self.lost.len());
        for l in self.lost.iter().take(10) {
            let _ = writeln!(s, "  {l}");
        }
        let verdict = match self.lin.verdict {
            Verdict::Linearizable => "yes",
            Verdict::Violation => "NO",
            Verdict::Unknown => "unknown (checker timed out)",
            Verdict::KnownDeviation => {
                "known-deviation (linearizable only allowing a known etcd deviation)"
            }
        };
        let _ = writeln!(
            s,
            "linearizable: {verdict} ({} operations in {} partition(s), checked in {:.2} s)",
            self.lin.ops_checked,
            self.lin.partitions,
            self.lin.elapsed.as_secs_f64()
        );
        if !self.lin.excerpt.is_empty() {
            let _ = writeln!(
                s,
                "  minimal non-linearizable excerpt ({} operations):",
                self.lin.excerpt.len()
            );
            for l in self.lin.excerpt.iter().take(60) {
                let _ = writeln!(s, "    {l}");
            }
        }
        if let Some(h) = &self.lin.html {
            let _ = writeln!(s, "  visualisation: {}", h.display());
        }
        let _ = writeln!(s, "known etcd deviations: {}", self.lin.deviations.len());
        for d in &self.lin.deviations {
            let _ = writeln!(s, "  {d}");
        }
        let _ = writeln!(
            s,
            "serializable reads: {}, anomalies {}",
            self.serializable_reads,
            self.serializable.len()
        );
        for a in self.serializable.iter().take(10) {
            let _ = writeln!(s, "  {a}");
        }
        match &self.watch {
            Some(w) => {
                let _ = writeln!(
                    s,
                    "watch anomalies: {} ({} streams, {} events; gaps {}, duplicates {}, reorders {}, disagreements {}; unfinished streams {})",
                    w.anomalies(),
                    w.streams,
                    w.events,
                    w.gaps,
                    w.duplicates,
                    w.reorders,
                    w.disagreements,
                    w.unfinished
                );
                for d in &w.details {
                    let _ = writeln!(s, "  {d}");
                }
            }
            None => {
                let _ = writeln!(s, "watch anomalies: - (no watchers in this workload)");
            }
        }
        let _ = writeln!(s, "store history: {} events", self.log_events);
        for e in &self.errors {
            let _ = writeln!(s, "error: {e}");
        }
        if let Some(p) = &self.history_file {
            let _ = writeln!(s, "history: {}", p.display());
        }
        let _ = writeln!(
            s,
            "verdict: {}",
            if self.passed() { "PASS" } else { "FAIL" }
        );
        s
    }
}

/// Shared per-run constants of the clients.
#[derive(Debug)]
struct Plan {
    prefix: String,
    keys: Vec<String>,
    workload: Workload,
    seed: u64,
    rate: f64,
    sloppy_reads: bool,
    lease_base: i64,
}

fn nanos(start: Instant) -> i64 {
    i64::try_from(start.elapsed().as_nanos()).unwrap_or(i64::MAX)
}

/// Per-client state that shapes the next operations (observed versions, leases).
#[derive(Debug, Default)]
struct ClientState {
    seq: u64,
    mod_revs: BTreeMap<String, i64>,
    leases: Vec<(i64, bool)>,
}

fn next_request(plan: &Plan, client: u32, rng: &mut StdRng, st: &mut ClientState) -> Request {
    st.seq += 1;
    let value = format!("{client}.{}", st.seq);
    let key = plan.keys[rng.random_range(0..plan.keys.len())].clone();
    let p: f64 = rng.random();
    match plan.workload {
        Workload::Register | Workload::Watch => {
            let put_share = if plan.workload == Workload::Watch {
                0.7
            } else {
                0.5
            };
            if p < put_share {
                Request::put(&key, &value, None)
            } else if plan.sloppy_reads || p > 0.9 {
                Request::SerializableGet { key }
            } else {
                Request::get(&key)
            }
        }
        Workload::KvTxn => {
            let other = plan.keys[rng.random_range(0..plan.keys.len())].clone();
            let seen = st.mod_revs.get(&key).copied().unwrap_or(0);
            if p < 0.3 {
                Request::Txn {
                    conds: vec![Cond::ModRev(key.clone(), seen)],
                    then: vec![KvOp::Put {
                        key: key.clone(),
                        value,
                        lease: None,
                    }],
                    els: vec![KvOp::Range { key, prefix: false }],
                }
            } else if p < 0.45 {
                let mut then = vec![KvOp::Put {
                    key: key.clone(),
                    value: value.clone(),
                    lease: None,
                }];
                if other != key {
                    then.push(KvOp::Put {
                        key: other,
                        value: format!("{value}b"),
                        lease: None,
                    });
                }
                Request::Txn {
                    conds: vec![Cond::Version(key, rng.random_range(0..3))],
                    then,
                    els: vec![KvOp::Range {
                        key: plan.prefix.clone(),
                        prefix: true,
                    }],
                }
            } else if p < 0.65 {
                Request::Txn {
                    conds: vec![],
                    then: vec![KvOp::Range {
                        key: plan.prefix.clone(),
                        prefix: true,
                    }],
                    els: vec![],
                }
            } else if p < 0.8 {
                Request::put(&key, &value, None)
            } else if p < 0.9 {
                Request::get(&key)
            } else if p < 0.98 {
                Request::Txn {
                    conds: vec![],
                    then: vec![KvOp::Delete { key, prefix: false }],
                    els: vec![],
                }
            } else {
                Request::Txn {
                    conds: vec![],
                    then: vec![KvOp::Delete {
                        key: plan.prefix.clone(),
                        prefix: true,
                    }],
                    els: vec![],
                }
            }
        }
        Workload::Lease => {
            if st.leases.is_empty() || (p < 0.1 && st.leases.len() < 2) {
                let id = plan.lease_base
                    + i64::from(client) * 1_000_000
                    + i64::try_from(st.seq).unwrap_or(0);
                // Half the leases are kept alive, the others left to expire.
                st.leases.push((id, rng.random_bool(0.5)));
                return Request::LeaseGrant { id, ttl: 2 };
            }
            let (lease, kept) = st.leases[rng.random_range(0..st.leases.len())];
            if p < 0.4 {
                Request::put(&key, &value, Some(lease))
            } else if p < 0.55 && kept {
                Request::LeaseKeepAlive { id: lease }
            } else if p < 0.6 && kept {
                // Only kept-alive leases are revoked: the others are left to expire.
                st.leases.retain(|(l, _)| *l != lease);
                Request::LeaseRevoke { id: lease }
            } else if p < 0.7 {
                Request::put(&key, &value, None)
            } else if p < 0.9 {
                Request::get(&key)
            } else {
                Request::Txn {
                    conds: vec![],
                    then: vec![KvOp::Range {
                        key: plan.prefix.clone(),
                        prefix: true,
                    }],
                    els: vec![],
                }
            }
        }
    }
}

fn observe(st: &mut ClientState, req: &Request, resp: &Response) {
    if let (
        Request::Txn { then, els, .. },
        Response::Txn {
            succeeded,
            revision,
            results,
        },
    ) = (req, resp)
    {
        let branch = if *succeeded { then } else { els };
        for (op, r) in branch.iter().zip(results) {
            match (op, r) {
                (KvOp::Put { key, .. }, KvResult::Put) => {
                    st.mod_revs.insert(key.clone(), *revision);
                }
                (KvOp::Range { .. }, KvResult::Range(kvs)) => {
                    for kv in kvs {
                        st.mod_revs.insert(kv.key.clone(), kv.mod_rev);
                    }
                }
                _ => {}
            }
        }
    }
    if let (
        Request::LeaseKeepAlive { id } | Request::LeaseGrant { id, .. },
        Response::LeaseNotFound,
    ) = (req, resp)
    {
        st.leases.retain(|(l, _)| l != id);
    }
    // A put to an expired lease: forget the lease.
    if let (Request::Txn { then, .. }, Response::LeaseNotFound) = (req, resp) {
        for op in then {
            if let KvOp::Put {
                lease: Some(id), ..
            } = op
            {
                st.leases.retain(|(l, _)| l != id);
            }
        }
    }
}

async fn client_loop(
    plan: Arc<Plan>,
    client: u32,
    url: String,
    timeout: Duration,
    start: Instant,
    end: Instant,
) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut rng =
        StdRng::seed_from_u64(plan.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(client));
    let Ok(mut etcd) = EtcdClient::new(&url, timeout) else {
        return ops;
    };
    let mut st = ClientState::default();
    let interval = Duration::from_secs_f64(1.0 / plan.rate.max(0.1));
    while Instant::now() < end {
        let req = next_request(&plan, client, &mut rng, &mut st);
        let call = nanos(start);
        let outcome = etcd.execute(&req).await;
        let ret = nanos(start);
        let pause = interval.mul_f64(rng.random_range(0.5..1.5));
        let (resp, failed, extra) = match outcome {
            Outcome::Done(r) => (Some(r), false, Duration::ZERO),
            Outcome::Failed(_) => (None, true, Duration::from_millis(100)),
            Outcome::Unknown(_) => (None, false, Duration::from_millis(100)),
        };
        if let Some(r) = &resp {
            observe(&mut st, &req, r);
        }
        ops.push(Op {
            client,
            call,
            ret: resp.as_ref().map(|_| ret),
            req,
            resp,
            failed,
        });
        tokio::time::sleep(pause + extra).await;
    }
    ops
}

async fn watcher_loop(
    watcher: u32,
    url: String,
    prefix: String,
    start_revision: i64,
    sentinel: Arc<AtomicI64>,
    delay: Duration,
    deadline: Instant,
) -> WatchStream {
    tokio::time::sleep(delay).await;
    let mut stream = WatchStream {
        watcher,
        prefix: prefix.clone(),
        start_revision,
        events: vec![],
    };
    while Instant::now() < deadline {
        let Ok(client) = EtcdClient::new(&url, Duration::from_secs(1)) else {
            break;
        };
        let from = stream
            .events
            .last()
            .map_or(start_revision, |e| e.revision + 1);
        let done = |events: &[WatchEvent]| {
            let target = sentinel.load(Ordering::SeqCst);
            target > 0 && events.last().is_some_and(|e| e.revision >= target)
        };
        match watch_once(
            client.channel(),
            &prefix,
            from,
            &mut stream.events,
            done,
            deadline,
        )
        .await
        {
            Ok(()) => break,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    stream
}

/// Runs the whole thing: cluster, workload, nemesis, healing, checks.
pub async fn run(cfg: &Config) -> Result<RunReport, String> {
    let mut cluster = match &cfg.launch {
        Some(bin) => {
            // Free ports are released before the members bind them, so another process
            // may take one meanwhile: a cluster that does not come up is launched again
            // on fresh ports (twice at most).
            let mut launched = Cluster::launch(bin, cfg.nodes, cfg.seed).await;
            for _ in 0..2 {
                match &launched {
                    Err(ClusterError::Unhealthy(e)) => {
                        eprintln!("etcd-conformance jepsen: launching again: {e}");
                        launched = Cluster::launch(bin, cfg.nodes, cfg.seed).await;
                    }
                    _ => break,
                }
            }
            Some(launched.map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let result = run_on(cfg, cluster.as_mut()).await;
    if let Some(c) = cluster.as_mut() {
        c.shutdown().await;
        // The members' logs go next to the history (the cluster's directory is removed).
        if let Some(out) = &cfg.out_dir {
            let _ = std::fs::create_dir_all(out);
            for i in 0..c.members.len() {
                let name = format!("n{i}.log");
                let _ = std::fs::copy(c.dir().join(&name), out.join(&name));
            }
        }
    }
    result
}

async fn run_on(cfg: &Config, mut cluster: Option<&mut Cluster>) -> Result<RunReport, String> {
    let real: Vec<String> = match cluster.as_deref() {
        Some(c) => c.client_urls(),
        None => cfg.endpoints.clone(),
    };
    if real.is_empty() {
        return Err("no endpoints: give --launch BIN or --endpoints URLS".to_owned());
    }
    let mut client_urls = real.clone();
    let _liar = match cfg.lie_every {
        Some(n) => {
            let l = liar::start(&real[0], n).await?;
            client_urls[0] = l.url.clone();
            Some(l)
        }
        None => None,
    };
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let prefix = format!("/jepsen/{}-{unique}/", cfg.seed);
    let keys = (0..4).map(|i| format!("{prefix}k{i}")).collect();
    let plan = Arc::new(Plan {
        prefix: prefix.clone(),
        keys,
        workload: cfg.workload,
        seed: cfg.seed,
        rate: cfg.rate,
        sloppy_reads: cfg.serializable_as_linearizable,
        // Lease IDs are cluster-wide: make them unique per run (base + client * 10^6 + seq).
        lease_base: (1 << 52)
            + (i64::try_from(cfg.seed % 4096).unwrap_or(0) << 40)
            + (i64::try_from(unique % 4096).unwrap_or(0) << 28),
    });
    let mut admin = EtcdClient::new(&real[0], Duration::from_secs(2))?;
    let mut initial_revision = None;
    for _ in 0..20 {
        match admin.revision(&prefix).await {
            Ok(r) => {
                initial_revision = Some(r);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    let initial_revision = initial_revision.ok_or("endpoint does not answer")?;

    let start = Instant::now();
    let end = start + cfg.duration;
    let mut tasks = Vec::new();
    for c in 0..cfg.clients {
        let url = client_urls[c % client_urls.len()].clone();
        let client = u32::try_from(c).unwrap_or(u32::MAX);
        tasks.push(tokio::spawn(client_loop(
            Arc::clone(&plan),
            client,
            url,
            cfg.op_timeout,
            start,
            end,
        )));
    }
    let sentinel = Arc::new(AtomicI64::new(0));
    let watch_deadline = end + Duration::from_secs(60);
    let mut watchers = Vec::new();
    if cfg.workload == Workload::Watch {
        for w in 0..cfg.clients.clamp(1, 4) {
            let url = real[w % real.len()].clone();
            let delay = cfg.duration.mul_f64(w as f64 / 8.0);
            watchers.push(tokio::spawn(watcher_loop(
                u32::try_from(w).unwrap_or(0),
                url,
                prefix.clone(),
                initial_revision + 1,
                Arc::clone(&sentinel),
                delay,
                watch_deadline,
            )));
        }
    }

    // The nemesis runs here, on the seeded schedule.
    let mut faults = Vec::new();
    let mut errors = Vec::new();
    let mut paused_leaders = Vec::new();
    if let Some(c) = cluster.as_deref_mut() {
        for f in schedule(cfg.nemesis, c.members.len(), cfg.duration, cfg.seed) {
            tokio::time::sleep_until(start + f.at).await;
            let leader = if matches!(f.kind, Nemesis::LeaderKill | Nemesis::Pause) {
                c.leader().await
            } else {
                None
            };
            let target = if f.kind == Nemesis::LeaderKill {
                leader.unwrap_or(f.target)
            } else {
                f.target
            };
            let paused = nanos(start);
            let name = c.members[target].name.clone();
            let r = match f.kind {
                Nemesis::Kill | Nemesis::LeaderKill => c.kill(target).await,
                Nemesis::Pause => c.pause(target),
                Nemesis::Partition => {
                    c.proxies.isolate(target);
                    Ok(())
                }
                Nemesis::Restart => c.stop(target).await,
                Nemesis::None | Nemesis::Mixed => Ok(()),
            };
            if let Err(e) = r {
                errors.push(format!("injecting {:?} on {name}: {e}", f.kind));
            }
            faults.push(format!(
                "{:?} {name} at {:.1}s for {:.1}s{}",
                f.kind,
                f.at.as_secs_f64(),
                f.length.as_secs_f64(),
                if f.kind == Nemesis::Pause && leader == Some(target) {
                    " (the leader)"
                } else {
                    ""
                }
            ));
            tokio::time::sleep_until(start + f.at + f.length).await;
            if f.kind == Nemesis::Pause && leader == Some(target) {
                paused_leaders.push(PausedLeader {
                    member: name.clone(),
                    paused,
                    resumed: nanos(start),
                });
            }
            if let Err(e) = c.heal().await {
                errors.push(format!("healing {name}: {e}"));
            }
        }
    }
    let mut ops = Vec::new();
    for t in tasks {
        ops.extend(t.await.map_err(|e| e.to_string())?);
    }
    if let Some(c) = cluster {
        c.heal().await.map_err(|e| e.to_string())?;
        if let Err(e) = c.wait_healthy(Duration::from_secs(30)).await {
            errors.push(e.to_string());
        }
    }

    // Mark the end of the history with a sentinel write, then read the store's history.
    let mut sentinel_rev = None;
    for _ in 0..40 {
        match admin
            .execute(&Request::put(&format!("{prefix}~end"), "end", None))
            .await
        {
            Outcome::Done(Response::Txn { revision, .. }) => {
                sentinel_rev = Some(revision);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    let mut log = Vec::new();
    match sentinel_rev {
        Some(rev) => {
            sentinel.store(rev, Ordering::SeqCst);
            let done = |events: &[WatchEvent]| events.last().is_some_and(|e| e.revision >= rev);
            let deadline = Instant::now() + Duration::from_secs(30);
            let r = watch_once(
                admin.channel(),
                &prefix,
                initial_revision + 1,
                &mut log,
                done,
                deadline,
            )
            .await;
            if let Err(e) = r {
                errors.push(format!("reading the store's history: {e}"));
            }
        }
        None => errors.push("the cluster did not accept the final write".to_owned()),
    }
    let mut streams = Vec::new();
    for w in watchers {
        streams.push(w.await.map_err(|e| e.to_string())?);
    }
    let final_state = admin
        .range_prefix(&prefix)
        .await
        .map(|(_, kvs)| kvs)
        .unwrap_or_default();
    let history = History {
        ops,
        watches: streams,
        log,
        final_state: final_state
            .into_iter()
            .map(|kv| (kv.key.clone(), kv))
            .collect(),
        paused_leaders,
    };
    Ok(check_history(
        cfg,
        &history,
        initial_revision,
        faults,
        errors,
    ))
}

/// What `history.json` holds: a run's history and what its checks need, so it can be
/// checked again later (`etcd-conformance jepsen --recheck FILE`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Recorded {
    /// The workload.
    pub workload: Workload,
    /// The store's revision before the run.
    pub initial_revision: i64,
    /// Whether serializable reads were checked as linearizable.
    pub serializable_as_linearizable: bool,
    /// The faults injected.
    pub faults: Vec<String>,
    /// Problems of the run itself.
    pub errors: Vec<String>,
    /// The history.
    pub history: History,
}

/// Checks a history saved by an earlier run with `--out` (its `history.json`) again,
/// with `cfg`'s check options.
pub fn recheck(path: &std::path::Path, cfg: &Config) -> Result<RunReport, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let rec: Recorded =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let cfg = Config {
        workload: rec.workload,
        serializable_as_linearizable: rec.serializable_as_linearizable,
        ..cfg.clone()
    };
    Ok(check_history(
        &cfg,
        &rec.history,
        rec.initial_revision,
        rec.faults,
        rec.errors,
    ))
}

/// Runs every check on a recorded history.
pub fn check_history(
    cfg: &Config,
    history: &History,
    initial_revision: i64,
    faults: Vec<String>,
    errors: Vec<String>,
) -> RunReport {
    let model = match cfg.workload {
        Workload::Register | Workload::Watch => ModelKind::Register,
        Workload::KvTxn | Workload::Lease => ModelKind::Kv,
    };
    let opts = LinOptions {
        model,
        initial_revision,
        timeout: cfg.check_timeout,
        serializable_as_linearizable: cfg.serializable_as_linearizable,
        html_dir: cfg.out_dir.clone(),
        paused_leaders: history.paused_leaders.clone(),
        deleted_leases: (errors.is_empty() && !history.log.is_empty())
            .then(|| check::deleted_leases(&history.ops, &history.log)),
    };
    // With the store's complete history, settle writes of unknown outcome first.
    let complete = errors.is_empty() && !history.log.is_empty();
    let lin = if complete {
        check::check_linearizable(
            &check::settle_unknown_writes(&history.ops, &history.log),
            &opts,
        )
    } else {
        check::check_linearizable(&history.ops, &opts)
    };
    let history_file = cfg.out_dir.as_ref().and_then(|d| {
        std::fs::create_dir_all(d).ok()?;
        let path = d.join("history.txt");
        let mut text = String::new();
        for op in &history.ops {
            let _ = writeln!(text, "{op}");
        }
        for p in &history.paused_leaders {
            let _ = writeln!(
                text,
                "# leader {} paused at {} ns, resumed at {} ns",
                p.member, p.paused, p.resumed
            );
        }
        let _ = writeln!(text, "# store history");
        for e in &history.log {
            let _ = writeln!(text, "rev {} {} {:?}", e.revision, e.key, e.value);
        }
        std::fs::write(&path, text).ok()?;
        let recorded = Recorded {
            workload: cfg.workload,
            initial_revision,
            serializable_as_linearizable: cfg.serializable_as_linearizable,
            faults: faults.clone(),
            errors: errors.clone(),
            history: history.clone(),
        };
        let json = serde_json::to_string(&recorded).ok()?;
        std::fs::write(d.join("history.json"), json).ok()?;
        Some(path)
    });
    RunReport {
        workload: cfg.workload,
        ops: history.ops.len(),
        ok: history.ops.iter().filter(|o| o.resp.is_some()).count(),
        failed: history.ops.iter().filter(|o| o.failed).count(),
        unknown: history.ops.iter().filter(|o| o.unknown()).count(),
        faults,
        lost: check::lost_writes(history),
        lin,
        serializable_reads: history
            .ops
            .iter()
            .filter(|o| matches!(o.req, Request::SerializableGet { .. }) && o.resp.is_some())
            .count(),
        serializable: check::serializable_anomalies(history),
        watch: (cfg.workload == Workload::Watch)
            .then(|| check_watches(&history.watches, &history.log)),
        log_events: history.log.len(),
        errors,
        history_file,
    }
}
