//! The workloads, as etcd's benchmark tool runs them: closed-loop clients sharing a fixed
//! number of gRPC connections, each issuing its next request as soon as the last returns,
//! until the total is reached.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use oxetcd_api::etcdserverpb::kv_client::KvClient;
use oxetcd_api::etcdserverpb::watch_client::WatchClient;
use oxetcd_api::etcdserverpb::{
    PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, TxnRequest, TxnResponse,
    WatchCreateRequest, WatchRequest, request_op, watch_request,
};
use tonic::transport::{Channel, Endpoint};

use crate::grpc::Conn;
use crate::stats::RunResult;

/// How long a single connection attempt may take.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens `conns` gRPC connections, spread round-robin over `endpoints`
/// (`host:port` or `http://host:port`).
pub async fn connect(endpoints: &[String], conns: usize) -> anyhow::Result<Vec<Channel>> {
    if endpoints.is_empty() {
        bail!("no endpoints given");
    }
    let mut out = Vec::with_capacity(conns.max(1));
    for i in 0..conns.max(1) {
        let url = endpoint_url(&endpoints[i % endpoints.len()]);
        let channel = Endpoint::from_shared(url.clone())
            .with_context(|| format!("bad endpoint {url}"))?
            .connect_timeout(DIAL_TIMEOUT)
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("cannot connect to {url}"))?;
        out.push(channel);
    }
    Ok(out)
}

/// Opens `conns` lean HTTP/2 connections ([`crate::grpc`]) for the closed-loop
/// workloads, spread round-robin over `endpoints`.
pub async fn dial(endpoints: &[String], conns: usize) -> anyhow::Result<Vec<Conn>> {
    if endpoints.is_empty() {
        bail!("no endpoints given");
    }
    let mut out = Vec::with_capacity(conns.max(1));
    for i in 0..conns.max(1) {
        let url = endpoint_url(&endpoints[i % endpoints.len()]);
        out.push(crate::grpc::dial(&url, DIAL_TIMEOUT).await?);
    }
    Ok(out)
}

/// `host:port` becomes `http://host:port`; URLs with a scheme are kept.
pub fn endpoint_url(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    }
}

/// Key and value shape of the write workloads (etcd's `--key-size`, `--val-size`,
/// `--key-space-size`, `--sequential-keys`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyShape {
    /// Bytes per key.
    pub key_size: usize,
    /// Bytes per value.
    pub val_size: usize,
    /// Keys are drawn from `0..key_space_size`.
    pub key_space_size: u64,
    /// Use request `i mod key_space_size` instead of a random key.
    pub sequential: bool,
}

impl KeyShape {
    /// The key for request `i`, drawn with `rng` unless keys are sequential.
    pub fn key(&self, i: u64, rng: &mut SplitMix) -> Vec<u8> {
        key_bytes(self.key_number(i, rng), self.key_size)
    }

    /// The number of the key for request `i` (see [`KeyShape::key`]).
    pub fn key_number(&self, i: u64, rng: &mut SplitMix) -> u64 {
        let space = self.key_space_size.max(1);
        if self.sequential {
            i % space
        } else {
            rng.next_u64() % space
        }
    }
}

/// The key numbered `n`, as etcd's tool builds it: the zig-zag varint of `n` at the
/// start of a zeroed buffer of `size` bytes (longer if the varint needs it).
pub fn key_bytes(n: u64, size: usize) -> Vec<u8> {
    let mut v = (n << 1) ^ ((n as i64 >> 63) as u64);
    let mut out = Vec::with_capacity(size.max(10));
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    if out.len() < size {
        out.resize(size, 0);
    }
    out
}

/// `size` pseudo-random bytes (values are incompressible, as etcd's tool makes them).
pub fn value_bytes(size: usize, seed: u64) -> Vec<u8> {
    let mut rng = SplitMix(seed);
    (0..size).map(|_| (rng.next_u64() >> 56) as u8).collect()
}

/// A tiny deterministic generator (SplitMix64); no statistical claims beyond spreading
/// keys over the key space.
#[derive(Clone, Debug)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// One request kind of the closed-loop workloads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `Put` of a key of the given shape.
    Put(KeyShape),
    /// `Range` of one key or `[key, range_end)`.
    Range {
        /// First key.
        key: Vec<u8>,
        /// Range end (empty: the single key).
        range_end: Vec<u8>,
        /// Serializable (`s`) rather than linearizable (`l`).
        serializable: bool,
    },
    /// `Txn` without compares whose success branch puts `ops` keys of the given shape.
    TxnPut {
        /// Key and value shape.
        shape: KeyShape,
        /// Puts per transaction.
        ops: usize,
    },
}

/// A closed-loop run: `clients` clients over `channels`, `total` requests in all.
#[derive(Clone, Debug)]
pub struct ClosedLoop {
    /// The request kind.
    pub op: Op,
    /// Concurrent clients.
    pub clients: usize,
    /// Requests in all.
    pub total: u64,
    /// Label for the progress line (`None`: no progress output).
    pub progress: Option<String>,
}

/// Runs `spec` over `conns` (clients are spread round-robin over them).
pub async fn run_closed_loop(conns: &[Conn], spec: &ClosedLoop) -> RunResult {
    let issued = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let op = Arc::new(spec.op.clone());
    let value = Arc::new(match &spec.op {
        Op::Put(shape) | Op::TxnPut { shape, .. } => value_bytes(shape.val_size, 7),
        Op::Range { .. } => Vec::new(),
    });
    let progress = spec
        .progress
        .clone()
        .map(|label| spawn_progress(label, spec.total, done.clone()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..spec.clients.max(1) {
        let kv = conns[c % conns.len()].clone();
        let (issued, done, op, value) = (issued.clone(), done.clone(), op.clone(), value.clone());
        let total = spec.total;
        tasks.push(tokio::spawn(async move {
            let mut rng = SplitMix(0x5EED ^ (c as u64).wrapping_mul(0x1234_5678_9ABC_DEF1));
            let mut result = RunResult::default();
            loop {
                let i = issued.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t0 = Instant::now();
                let outcome = one_request(&kv, &op, &value, i, &mut rng).await;
                let took = t0.elapsed();
                done.fetch_add(1, Ordering::Relaxed);
                match outcome {
                    Ok(()) => result
                        .latencies_ns
                        .push(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX)),
                    Err(status) => {
                        result.errors += 1;
                        if result.first_error.is_none() {
                            result.first_error = Some(status.to_string());
                        }
                    }
                }
            }
            result
        }));
    }
    let mut all = RunResult::default();
    for task in tasks {
        match task.await {
            Ok(r) => all.merge(r),
            Err(e) => {
                all.errors += 1;
                all.first_error
                    .get_or_insert_with(|| format!("client task: {e}"));
            }
        }
    }
    all.elapsed = start.elapsed();
    if let Some(p) = progress {
        p.abort();
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
    }
    all
}

async fn one_request(
    kv: &Conn,
    op: &Op,
    value: &[u8],
    i: u64,
    rng: &mut SplitMix,
) -> Result<(), tonic::Status> {
    match op {
        Op::Put(shape) => {
            let request = PutRequest {
                key: shape.key(i, rng),
                value: value.to_vec(),
                ..PutRequest::default()
            };
            kv.unary::<_, PutResponse>("/etcdserverpb.KV/Put", &request)
                .await?;
        }
        Op::Range {
            key,
            range_end,
            serializable,
        } => {
            let request = RangeRequest {
                key: key.clone(),
                range_end: range_end.clone(),
                serializable: *serializable,
                ..RangeRequest::default()
            };
            kv.unary::<_, RangeResponse>("/etcdserverpb.KV/Range", &request)
                .await?;
        }
        Op::TxnPut { shape, ops } => {
            // Consecutive keys from a drawn base: a txn may not put one key twice.
            let space = shape.key_space_size.max(1);
            let base = shape.key_number(i.wrapping_mul(*ops as u64), rng);
            let success = (0..(*ops).max(1))
                .map(|j| RequestOp {
                    request: Some(request_op::Request::RequestPut(PutRequest {
                        key: key_bytes((base + j as u64) % space, shape.key_size),
                        value: value.to_vec(),
                        ..PutRequest::default()
                    })),
                })
                .collect();
            let request = TxnRequest {
                success,
                ..TxnRequest::default()
            };
            kv.unary::<_, TxnResponse>("/etcdserverpb.KV/Txn", &request)
                .await?;
        }
    }
    Ok(())
}

/// Prints `label: done/total` on stderr: in place every second on a terminal, otherwise
/// one line every ten seconds.
fn spawn_progress(label: String, total: u64, done: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    let tty = std::io::stderr().is_terminal();
    let every = if tty {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(10)
    };
    tokio::spawn(async move {
        let start = Instant::now();
        loop {
            tokio::time::sleep(every).await;
            let n = done.load(Ordering::Relaxed);
            let line = format!(
                "{label}: {n}/{total} requests, {:.0}s",
                start.elapsed().as_secs_f64()
            );
            if tty {
                eprint!("\r{line}");
            } else {
                eprintln!("{line}");
            }
        }
    })
}

/// The watch-latency workload (etcd's `watch-latency`): `streams` watch streams with
/// `watchers_per_stream` watchers each on one key; `put_total` puts to that key, one at
/// a time; each event's latency is from the start of its put to its arrival at a
/// watcher. Puts are paced at `put_rate` per second (0: the next put starts once every
/// watcher has seen the previous one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchLatency {
    /// Watch streams.
    pub streams: usize,
    /// Watchers per stream.
    pub watchers_per_stream: usize,
    /// Puts in all.
    pub put_total: u64,
    /// Puts per second (0: as fast as the watchers keep up).
    pub put_rate: u64,
    /// Key size in bytes.
    pub key_size: usize,
    /// Value size in bytes.
    pub val_size: usize,
}

/// How long to wait for all watchers to see one put before counting the rest as lost.
const EVENT_WAIT: Duration = Duration::from_secs(10);

/// Runs the watch-latency workload; missing events are counted as errors.
pub async fn run_watch_latency(
    channels: &[Channel],
    spec: &WatchLatency,
) -> anyhow::Result<RunResult> {
    use futures::StreamExt as _;
    let key = {
        let mut k = b"watch-latency-".to_vec();
        k.resize(spec.key_size.max(k.len()), b'k');
        k
    };
    let watchers = spec.streams.max(1) * spec.watchers_per_stream.max(1);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(i64, Instant)>();
    let mut readers = Vec::new();
    for s in 0..spec.streams.max(1) {
        let mut client = WatchClient::new(channels[s % channels.len()].clone());
        let creates: Vec<WatchRequest> = (0..spec.watchers_per_stream.max(1))
            .map(|_| WatchRequest {
                request_union: Some(watch_request::RequestUnion::CreateRequest(
                    WatchCreateRequest {
                        key: key.clone(),
                        ..WatchCreateRequest::default()
                    },
                )),
            })
            .collect();
        // The request side stays open so the server keeps the stream.
        let requests = futures::stream::iter(creates).chain(futures::stream::pending());
        let mut stream = client
            .watch(requests)
            .await
            .context("cannot open a watch stream")?
            .into_inner();
        let mut created = 0;
        while created < spec.watchers_per_stream.max(1) {
            let resp = tokio::time::timeout(EVENT_WAIT, stream.message())
                .await
                .context("watch create timed out")??
                .context("watch stream ended during create")?;
            if resp.created {
                created += 1;
            }
        }
        let tx = tx.clone();
        readers.push(tokio::spawn(async move {
            while let Ok(Some(resp)) = stream.message().await {
                let now = Instant::now();
                for event in resp.events {
                    if let Some(kv) = event.kv {
                        let _ = tx.send((kv.mod_revision, now));
                    }
                }
            }
        }));
    }
    drop(tx);
    let mut kv = KvClient::new(channels[0].clone());
    let value = value_bytes(spec.val_size, 11);
    let mut result = RunResult::default();
    let mut arrivals: BTreeMap<i64, Vec<Instant>> = BTreeMap::new();
    let interval = (spec.put_rate > 0).then(|| Duration::from_secs_f64(1.0 / spec.put_rate as f64));
    let start = Instant::now();
    for i in 0..spec.put_total {
        if let Some(interval) = interval {
            let due = start + interval.mul_f64(i as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        let t0 = Instant::now();
        let rev = match kv
            .put(PutRequest {
                key: key.clone(),
                value: value.clone(),
                ..PutRequest::default()
            })
            .await
        {
            Ok(resp) => resp.into_inner().header.map_or(0, |h| h.revision),
            Err(status) => {
                result.errors += watchers as u64;
                result.first_error.get_or_insert_with(|| status.to_string());
                continue;
            }
        };
        let deadline = tokio::time::Instant::now() + EVENT_WAIT;
        while arrivals.get(&rev).map_or(0, Vec::len) < watchers {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((r, at))) => arrivals.entry(r).or_default().push(at),
                _ => break,
            }
        }
        let seen = arrivals.remove(&rev).unwrap_or_default();
        for at in &seen {
            let ns = at.saturating_duration_since(t0).as_nanos();
            result
                .latencies_ns
                .push(u64::try_from(ns).unwrap_or(u64::MAX));
        }
        if seen.len() < watchers {
            result.errors += (watchers - seen.len()) as u64;
            result
                .first_error
                .get_or_insert_with(|| format!("put at revision {rev}: an event did not arrive"));
        }
        arrivals.retain(|&r, _| r > rev);
    }
    result.elapsed = start.elapsed();
    for r in readers {
        r.abort();
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_zigzag_varints_padded_to_the_key_size() {
        assert_eq!(key_bytes(0, 4), vec![0, 0, 0, 0]);
        assert_eq!(key_bytes(1, 4), vec![2, 0, 0, 0]);
        assert_eq!(key_bytes(64, 4), vec![0x80, 0x01, 0, 0]);
        assert_eq!(key_bytes(1 << 40, 2).len(), 6);
    }

    #[test]
    fn sequential_keys_cover_the_key_space_exactly() {
        let shape = KeyShape {
            key_size: 8,
            val_size: 1,
            key_space_size: 1000,
            sequential: true,
        };
        let mut rng = SplitMix(1);
        let keys: std::collections::BTreeSet<Vec<u8>> =
            (0..2000).map(|i| shape.key(i, &mut rng)).collect();
        assert_eq!(keys.len(), 1000);
    }

    #[test]
    fn endpoints_without_a_scheme_get_http() {
        assert_eq!(endpoint_url("127.0.0.1:2379"), "http://127.0.0.1:2379");
        assert_eq!(endpoint_url("http://h:1"), "http://h:1");
    }
}
