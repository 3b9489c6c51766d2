//! The measurements behind `/metrics` that are taken away from the node loop's
//! [`crate::node_loop::Status`]: the backend commit duration histogram (timed around each
//! commit of the applied state to fjall), the MVCC operation counters (counted from each
//! applied command and each served Range, as etcd's metrics-wrapped transactions count
//! them) and the bytes of gRPC messages received from and sent to clients.
//!
//! Like etcd's Prometheus collectors they are process-wide. Recording is a few relaxed
//! atomic additions: it runs on the write path.
//!
//! What this is not: the exposition (see [`crate::http`]) or any MVCC logic (the ops are
//! read from the commands and responses `spec` produced).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use oxetcd_spec::apply::{ApplyError, Command, Response};
use oxetcd_spec::mvcc::{
    DeleteRangeRequest, PutRequest, RequestOp, ResponseOp, TxnRequest, TxnResponse,
};

/// Number of buckets of etcd's disk latency histograms (1 ms doubling 14 times).
pub const DISK_BUCKETS: usize = 14;

/// Upper bounds of etcd's disk latency histogram buckets, seconds
/// (`prometheus.ExponentialBuckets(0.001, 2, 14)`).
pub const DISK_BUCKET_SECONDS: [f64; DISK_BUCKETS] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
    8.192,
];

/// A latency histogram with etcd's disk buckets.
#[derive(Debug)]
pub struct Histogram {
    /// Observations per bucket: bucket `i` counts those of at most
    /// [`DISK_BUCKET_SECONDS`]`[i]` and above the bucket before (not cumulative).
    buckets: [AtomicU64; DISK_BUCKETS],
    /// All observations, also those above the last bound.
    count: AtomicU64,
    /// Sum of the observations, microseconds.
    sum_micros: AtomicU64,
}

impl Histogram {
    /// An empty histogram.
    #[must_use]
    pub const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; DISK_BUCKETS],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, took: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let seconds = took.as_secs_f64();
        if let Some(bucket) = DISK_BUCKET_SECONDS
            .iter()
            .position(|bound| seconds <= *bound)
        {
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Appends the histogram in Prometheus text format under `name`.
    pub fn write(&self, text: &mut String, name: &str, help: &str) {
        write_histogram(
            text,
            name,
            help,
            self.buckets.iter().map(|b| b.load(Ordering::Relaxed)),
            self.count.load(Ordering::Relaxed),
            self.sum_micros.load(Ordering::Relaxed),
        );
    }
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram::new()
    }
}

/// Appends a histogram with etcd's disk buckets in Prometheus text format: `buckets`
/// are per-bucket (not cumulative) counts, `sum_micros` the sum of the observations.
pub fn write_histogram(
    text: &mut String,
    name: &str,
    help: &str,
    buckets: impl Iterator<Item = u64>,
    count: u64,
    sum_micros: u64,
) {
    let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} histogram");
    let mut cumulative = 0;
    for (bound, in_bucket) in DISK_BUCKET_SECONDS.iter().zip(buckets) {
        cumulative += in_bucket;
        let _ = writeln!(text, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let sum = sum_micros as f64 / 1e6;
    let _ = writeln!(
        text,
        "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}"
    );
}

/// `etcd_disk_backend_commit_duration_seconds`: each commit of an applied batch to the
/// backend (see `crate::storage::backend`).
pub static BACKEND_COMMIT: Histogram = Histogram::new();

/// `etcd_mvcc_range_total`.
pub static MVCC_RANGES: AtomicU64 = AtomicU64::new(0);
/// `etcd_mvcc_put_total`.
pub static MVCC_PUTS: AtomicU64 = AtomicU64::new(0);
/// `etcd_mvcc_delete_total`.
pub static MVCC_DELETES: AtomicU64 = AtomicU64::new(0);
/// `etcd_mvcc_txn_total`.
pub static MVCC_TXNS: AtomicU64 = AtomicU64::new(0);

/// `etcd_network_client_grpc_received_bytes_total`.
pub static GRPC_RECEIVED_BYTES: AtomicU64 = AtomicU64::new(0);
/// `etcd_network_client_grpc_sent_bytes_total`.
pub static GRPC_SENT_BYTES: AtomicU64 = AtomicU64::new(0);

/// The reads and writes one MVCC transaction made. etcd counts, per transaction, one
/// range for each Range, for each compare (it reads the compared key) and for each Put
/// with `prev_kv`, `ignore_value` or `ignore_lease` or DeleteRange with `prev_kv` (they
/// read the old value), one put per Put and one delete per DeleteRange; a transaction
/// with more than one of these counts as a txn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    ranges: u64,
    puts: u64,
    deletes: u64,
}

impl Tally {
    fn put(&mut self, request: &PutRequest) {
        self.puts += 1;
        if request.prev_kv || request.ignore_value || request.ignore_lease {
            self.ranges += 1;
        }
    }

    fn delete(&mut self, request: &DeleteRangeRequest) {
        self.deletes += 1;
        if request.prev_kv {
            self.ranges += 1;
        }
    }

    /// The compares of `request` and of the nested txns on the path taken.
    fn compares(&mut self, request: &TxnRequest, response: &TxnResponse) {
        self.ranges += request.compare.len() as u64;
        for (op, result) in branch(request, response).iter().zip(&response.responses) {
            if let (RequestOp::Txn(nested), ResponseOp::Txn(nested_result)) = (op, result) {
                self.compares(nested, nested_result);
            }
        }
    }

    /// The ops of the branches taken.
    fn ops(&mut self, request: &TxnRequest, response: &TxnResponse) {
        for (op, result) in branch(request, response).iter().zip(&response.responses) {
            match (op, result) {
                (RequestOp::Range(_), _) => self.ranges += 1,
                (RequestOp::Put(put), _) => self.put(put),
                (RequestOp::DeleteRange(delete), _) => self.delete(delete),
                (RequestOp::Txn(nested), ResponseOp::Txn(nested_result)) => {
                    self.ops(nested, nested_result);
                }
                (RequestOp::Txn(_), _) => {}
            }
        }
    }

    fn total(self) -> u64 {
        self.ranges + self.puts + self.deletes
    }

    /// Adds this transaction to the counters.
    fn record(self) {
        MVCC_RANGES.fetch_add(self.ranges, Ordering::Relaxed);
        MVCC_PUTS.fetch_add(self.puts, Ordering::Relaxed);
        MVCC_DELETES.fetch_add(self.deletes, Ordering::Relaxed);
        if self.total() > 1 {
            MVCC_TXNS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn branch<'a>(request: &'a TxnRequest, response: &TxnResponse) -> &'a [RequestOp] {
    if response.succeeded {
        &request.success
    } else {
        &request.failure
    }
}

/// Whether a txn writes in any branch (etcd's `isTxnReadonly`, negated).
fn txn_writes(request: &TxnRequest) -> bool {
    request
        .success
        .iter()
        .chain(&request.failure)
        .any(|op| match op {
            RequestOp::Range(_) => false,
            RequestOp::Put(_) | RequestOp::DeleteRange(_) => true,
            RequestOp::Txn(nested) => txn_writes(nested),
        })
}

/// The MVCC transactions an applied command made, in order: a Txn that writes reads its
/// compares in one transaction and runs its ops in a second, as etcd does.
fn tallies(command: &Command, response: &Response) -> Vec<Tally> {
    let mut tally = Tally::default();
    match (command, response) {
        (Command::Range(_), Response::Range(_)) => tally.ranges += 1,
        (Command::Put(put), Response::Put(_)) => tally.put(put),
        (Command::DeleteRange(delete), Response::DeleteRange(_)) => tally.delete(delete),
        (Command::Txn(request), Response::Txn(result)) => {
            tally.compares(request, result);
            if txn_writes(request) {
                let mut writes = Tally::default();
                writes.ops(request, result);
                return vec![tally, writes];
            }
            tally.ops(request, result);
        }
        _ => return Vec::new(),
    }
    vec![tally]
}

/// Counts the MVCC operations of one applied command (called by the node loop for
/// every applied entry, on every member, as etcd counts at apply).
pub fn count_applied(command: &Command, result: &Result<Response, ApplyError>) {
    if let Ok(response) = result {
        for tally in tallies(command, response) {
            tally.record();
        }
    }
}

/// Counts one Range served from this member's applied state.
pub fn count_range() {
    Tally {
        ranges: 1,
        ..Tally::default()
    }
    .record();
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxetcd_spec::mvcc::{
        Compare, CompareResult, CompareTarget, PutResponse, RangeRequest, RangeResponse,
    };

    fn put(key: &str, prev_kv: bool) -> PutRequest {
        PutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            prev_kv,
            ..PutRequest::default()
        }
    }

    fn compare(key: &str) -> Compare {
        Compare {
            result: CompareResult::Greater,
            target: CompareTarget::Version(0),
            key: key.into(),
            range_end: Vec::new(),
        }
    }

    #[test]
    fn a_plain_put_is_one_put_and_prev_kv_adds_a_range_and_makes_it_a_txn() {
        let response = Response::Put(PutResponse::default());
        let plain = tallies(&Command::Put(put("a", false)), &response);
        assert_eq!(
            plain,
            vec![Tally {
                puts: 1,
                ..Tally::default()
            }]
        );
        assert_eq!(plain[0].total(), 1);
        let with_prev = tallies(&Command::Put(put("a", true)), &response);
        assert_eq!(
            with_prev,
            vec![Tally {
                puts: 1,
                ranges: 1,
                deletes: 0
            }]
        );
        assert!(with_prev[0].total() > 1, "counted as a txn, as etcd does");
    }

    #[test]
    fn a_writing_txn_reads_its_compares_apart_from_its_ops_on_the_branch_taken() {
        // etcd 3.4.23, measured: `txn` with one compare, then `put c 1` and `get b` on
        // success adds 2 ranges, 1 put and 1 txn.
        let request = TxnRequest {
            compare: vec![compare("b")],
            success: vec![
                RequestOp::Put(put("c", false)),
                RequestOp::Range(RangeRequest {
                    key: b"b".to_vec(),
                    ..RangeRequest::default()
                }),
            ],
            failure: vec![RequestOp::Put(put("d", false))],
        };
        let response = TxnResponse {
            revision: 3,
            succeeded: true,
            responses: vec![
                ResponseOp::Put(PutResponse::default()),
                ResponseOp::Range(RangeResponse::default()),
            ],
        };
        let counted = tallies(&Command::Txn(request), &Response::Txn(response));
        assert_eq!(
            counted,
            vec![
                Tally {
                    ranges: 1,
                    ..Tally::default()
                },
                Tally {
                    ranges: 1,
                    puts: 1,
                    deletes: 0
                }
            ]
        );
        assert_eq!(counted.iter().filter(|t| t.total() > 1).count(), 1);
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_count_every_observation() {
        let histogram = Histogram::new();
        histogram.observe(Duration::from_micros(500));
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_secs(10));
        let mut text = String::new();
        histogram.write(&mut text, "h", "help");
        assert!(text.contains("h_bucket{le=\"0.001\"} 1\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"0.002\"} 1\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"0.004\"} 2\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"8.192\"} 2\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("h_count 3\n"), "{text}");
        assert!(text.contains("h_sum 10.0035\n"), "{text}");
    }
}
