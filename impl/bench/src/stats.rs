//! Latency statistics in the shape of etcd's benchmark report: totals, throughput,
//! percentiles (nearest rank) and a linear response-time histogram.

use std::fmt::Write as _;
use std::time::Duration;

/// Percentiles printed in the latency distribution, as etcd's tool prints them.
pub const REPORTED_PERCENTILES: &[f64] = &[10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];

/// Number of buckets in the printed response-time histogram (etcd prints 10).
pub const HISTOGRAM_BUCKETS: usize = 10;

/// The outcome of one run of a workload: every successful request's latency, the
/// failures, and the wall-clock time the run took.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunResult {
    /// Latency of each successful request, in nanoseconds (unsorted).
    pub latencies_ns: Vec<u64>,
    /// Requests that failed.
    pub errors: u64,
    /// The first failure's message, kept for the report.
    pub first_error: Option<String>,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
}

impl RunResult {
    /// Adds another run of the same workload (interleaved rounds): latencies are pooled
    /// and wall-clock times summed, so throughput stays requests over time spent.
    pub fn merge(&mut self, other: RunResult) {
        self.latencies_ns.extend(other.latencies_ns);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.elapsed += other.elapsed;
    }

    /// Summarises the run.
    pub fn summary(&self) -> Summary {
        Summary::new(self)
    }
}

/// Summary figures of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Successful requests.
    pub count: usize,
    /// Failed requests.
    pub errors: u64,
    /// Wall-clock seconds.
    pub total_secs: f64,
    /// Successful requests per second of wall-clock time.
    pub requests_per_sec: f64,
    /// Sorted latencies in nanoseconds.
    sorted_ns: Vec<u64>,
}

impl Summary {
    fn new(run: &RunResult) -> Self {
        let mut sorted_ns = run.latencies_ns.clone();
        sorted_ns.sort_unstable();
        let total_secs = run.elapsed.as_secs_f64();
        let count = sorted_ns.len();
        let requests_per_sec = if total_secs > 0.0 {
            count as f64 / total_secs
        } else {
            0.0
        };
        Summary {
            count,
            errors: run.errors,
            total_secs,
            requests_per_sec,
            sorted_ns,
        }
    }

    /// The nearest-rank percentile `p` (0 < p <= 100) of the latencies, if any.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        percentile(&self.sorted_ns, p).map(Duration::from_nanos)
    }

    /// Fastest latency.
    pub fn fastest(&self) -> Option<Duration> {
        self.sorted_ns.first().copied().map(Duration::from_nanos)
    }

    /// Slowest latency.
    pub fn slowest(&self) -> Option<Duration> {
        self.sorted_ns.last().copied().map(Duration::from_nanos)
    }

    /// Mean latency.
    pub fn mean(&self) -> Option<Duration> {
        if self.sorted_ns.is_empty() {
            return None;
        }
        let sum: u128 = self.sorted_ns.iter().map(|&n| u128::from(n)).sum();
        let mean = sum / self.sorted_ns.len() as u128;
        Some(Duration::from_nanos(
            u64::try_from(mean).unwrap_or(u64::MAX),
        ))
    }

    /// Population standard deviation of the latencies.
    pub fn stddev(&self) -> Option<Duration> {
        let mean = self.mean()?.as_secs_f64();
        let n = self.sorted_ns.len() as f64;
        let var = self
            .sorted_ns
            .iter()
            .map(|&ns| {
                let d = ns as f64 / 1e9 - mean;
                d * d
            })
            .sum::<f64>()
            / n;
        Some(Duration::from_secs_f64(var.sqrt()))
    }

    /// The response-time histogram over the latencies.
    pub fn histogram(&self) -> Vec<Bucket> {
        histogram(&self.sorted_ns, HISTOGRAM_BUCKETS)
    }

    /// Renders the report as etcd's benchmark tool lays it out (seconds, 4 decimals).
    pub fn render(&self, with_histogram: bool) -> String {
        let mut out = String::new();
        let secs = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64());
        let _ = writeln!(out, "Summary:");
        let _ = writeln!(out, "  Total:\t{:.4} secs.", self.total_secs);
        let _ = writeln!(out, "  Slowest:\t{:.4} secs.", secs(self.slowest()));
        let _ = writeln!(out, "  Fastest:\t{:.4} secs.", secs(self.fastest()));
        let _ = writeln!(out, "  Average:\t{:.4} secs.", secs(self.mean()));
        let _ = writeln!(out, "  Stddev:\t{:.4} secs.", secs(self.stddev()));
        let _ = writeln!(out, "  Requests/sec:\t{:.4}", self.requests_per_sec);
        if with_histogram && !self.sorted_ns.is_empty() {
            let _ = writeln!(out, "\nResponse time histogram:");
            let hist = self.histogram();
            let max = hist.iter().map(|b| b.count).max().unwrap_or(0).max(1);
            for bucket in &hist {
                let bar = "∎".repeat(bucket.count * 40 / max);
                let _ = writeln!(
                    out,
                    "  {:.4} [{}]\t|{}",
                    bucket.upper_ns as f64 / 1e9,
                    bucket.count,
                    bar
                );
            }
        }
        let _ = writeln!(out, "\nLatency distribution:");
        for &p in REPORTED_PERCENTILES {
            let _ = writeln!(out, "  {p}% in {:.4} secs.", secs(self.percentile(p)));
        }
        if self.errors > 0 {
            let _ = writeln!(
                out,
                "\nError distribution:\n  [{}] failed requests",
                self.errors
            );
        }
        out
    }
}

/// Nearest-rank percentile of ascending `sorted`: the smallest sample such that at least
/// `p` percent of the samples are at or below it. `None` for no samples.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = (p / 100.0 * n as f64).ceil() as usize;
    let index = rank.clamp(1, n) - 1;
    Some(sorted[index])
}

/// One histogram bucket: the samples in `(previous upper, upper_ns]` (the first bucket
/// also takes everything at or below its bound).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    /// Inclusive upper bound in nanoseconds.
    pub upper_ns: u64,
    /// Samples in the bucket.
    pub count: usize,
}

/// Splits `[fastest, slowest]` of ascending `sorted` into `buckets` equal-width buckets
/// (the last bound is exactly the slowest sample) and counts the samples in each.
pub fn histogram(sorted: &[u64], buckets: usize) -> Vec<Bucket> {
    let (Some(&lo), Some(&hi)) = (sorted.first(), sorted.last()) else {
        return Vec::new();
    };
    let buckets = buckets.max(1);
    let width = (hi - lo) as f64 / buckets as f64;
    let mut out: Vec<Bucket> = (1..=buckets)
        .map(|i| Bucket {
            upper_ns: if i == buckets {
                hi
            } else {
                lo + (width * i as f64) as u64
            },
            count: 0,
        })
        .collect();
    let mut b = 0;
    for &sample in sorted {
        while sample > out[b].upper_ns {
            b += 1;
        }
        out[b].count += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator for sample sets.
    fn samples(seed: u64, n: usize) -> Vec<u64> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % 1_000_000
            })
            .collect()
    }

    /// The naive definition: the smallest sample v with count(samples <= v) >= p% of n.
    fn naive_percentile(samples: &[u64], p: f64) -> u64 {
        let mut sorted = samples.to_vec();
        sorted.sort();
        let n = samples.len() as f64;
        *sorted
            .iter()
            .find(|&&v| samples.iter().filter(|&&s| s <= v).count() as f64 >= p / 100.0 * n)
            .expect("p <= 100 is always reached")
    }

    #[test]
    fn percentile_matches_the_naive_definition_on_many_sample_sets() {
        for (seed, n) in [
            (1, 1),
            (2, 2),
            (3, 7),
            (4, 10),
            (5, 100),
            (6, 999),
            (7, 1000),
        ] {
            let mut data = samples(seed, n);
            // Duplicates exercise ties.
            data.extend(data.clone().into_iter().take(n / 3));
            let mut sorted = data.clone();
            sorted.sort_unstable();
            for &p in REPORTED_PERCENTILES.iter().chain(&[1.0, 33.3, 100.0]) {
                assert_eq!(
                    percentile(&sorted, p),
                    Some(naive_percentile(&data, p)),
                    "p{p} of {n} samples (seed {seed})"
                );
            }
        }
    }

    #[test]
    fn percentile_of_nothing_is_none_and_p100_is_the_maximum() {
        assert_eq!(percentile(&[], 50.0), None);
        let mut data = samples(9, 500);
        data.sort_unstable();
        assert_eq!(percentile(&data, 100.0), data.last().copied());
    }

    #[test]
    fn histogram_counts_every_sample_once_in_its_bucket() {
        for (seed, n) in [(11, 1), (12, 5), (13, 1000), (14, 4321)] {
            let mut data = samples(seed, n);
            data.sort_unstable();
            let hist = histogram(&data, HISTOGRAM_BUCKETS);
            assert_eq!(hist.len(), HISTOGRAM_BUCKETS);
            assert_eq!(hist.iter().map(|b| b.count).sum::<usize>(), n);
            assert_eq!(hist.last().map(|b| b.upper_ns), data.last().copied());
            let mut lower = None;
            for bucket in &hist {
                let naive = data
                    .iter()
                    .filter(|&&s| s <= bucket.upper_ns && lower.is_none_or(|l| s > l))
                    .count();
                assert_eq!(bucket.count, naive, "bucket up to {}", bucket.upper_ns);
                lower = Some(bucket.upper_ns);
            }
        }
    }

    #[test]
    fn merged_runs_pool_latencies_and_sum_time_for_throughput() {
        let mut a = RunResult {
            latencies_ns: vec![3, 1],
            elapsed: Duration::from_secs(1),
            ..RunResult::default()
        };
        a.merge(RunResult {
            latencies_ns: vec![2, 4],
            errors: 1,
            first_error: Some("boom".into()),
            elapsed: Duration::from_secs(1),
        });
        let s = a.summary();
        assert_eq!(s.count, 4);
        assert_eq!(s.errors, 1);
        assert!((s.requests_per_sec - 2.0).abs() < 1e-9);
        assert_eq!(s.percentile(50.0), Some(Duration::from_nanos(2)));
        assert_eq!(s.slowest(), Some(Duration::from_nanos(4)));
        assert_eq!(s.mean(), Some(Duration::from_nanos(2)));
        assert!(s.render(true).contains("Requests/sec:\t2.0000"));
    }
}
