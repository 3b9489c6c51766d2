//! Auto-compaction (`--auto-compaction-mode`, `--auto-compaction-retention`), as etcd
//! 3.4's compactor runs it on the leader: it proposes ordinary Compaction requests
//! through the log, so the compaction itself is `spec`'s.
//!
//! - `periodic`: the retention is a duration (Go syntax, "1h", "5m", "90s"; a plain
//!   number is hours). The revision is sampled every tenth of the compaction interval
//!   (the retention, at most one hour); once an interval has passed since the last
//!   success, the oldest sample (from about one retention ago) is compacted.
//! - `revision`: every 5 minutes, compact at the current revision minus the retention,
//!   unless that is not positive or was already compacted.
//!
//! Log lines are etcd's: "Starting auto-compaction at revision …", "Finished
//! auto-compaction at revision …", "Failed auto-compaction at revision …".

use std::collections::VecDeque;
use std::time::Duration;

use oxetcd_spec::apply::{Command, Response};
use oxetcd_spec::mvcc::{CompactionRequest, MvccError};

use crate::config::AutoCompactionMode;
use crate::v3::Context;

/// How often revision mode checks (etcd's `revInterval`).
pub const REVISION_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// What the flags ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Keep `period` of history.
    Periodic(Duration),
    /// Keep this many revisions.
    Revision(i64),
}

/// Reads the retention as etcd does; `Ok(None)` when auto-compaction is off ("0").
///
/// # Errors
/// etcd's "error parsing CompactionRetention" text.
pub fn parse(mode: AutoCompactionMode, retention: &str) -> Result<Option<Plan>, String> {
    let plan = match retention.parse::<u64>() {
        Ok(n) => match mode {
            AutoCompactionMode::Periodic => {
                Plan::Periodic(Duration::from_secs(n.saturating_mul(3600)))
            }
            AutoCompactionMode::Revision => Plan::Revision(i64::try_from(n).unwrap_or(i64::MAX)),
        },
        Err(_) => {
            let duration = parse_go_duration(retention).ok_or_else(|| {
                format!("error parsing CompactionRetention: time: invalid duration {retention:?}")
            })?;
            match mode {
                AutoCompactionMode::Periodic => Plan::Periodic(duration),
                // etcd reads a duration in revision mode as that many nanoseconds of
                // revisions.
                AutoCompactionMode::Revision => {
                    Plan::Revision(i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX))
                }
            }
        }
    };
    Ok(match plan {
        Plan::Periodic(d) if d.is_zero() => None,
        Plan::Revision(0) => None,
        plan => Some(plan),
    })
}

/// Go's `time.ParseDuration` for non-negative durations ("1h30m", "1.5h", "300ms").
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Go's `Duration.String` for the log lines ("1h0m0s", "5m0s", "1.5s", "300ms").
pub fn go_duration_string(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
        let frac = d.subsec_nanos();
        let s = if frac == 0 {
            s.to_string()
        } else {
            format!("{}", s as f64 + f64::from(frac) / 1e9)
        };
        if h > 0 {
            format!("{h}h{m}m{s}s")
        } else {
            format!("{m}m{s}s")
        }
    } else if secs > 0 {
        format!("{}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_secs_f64() * 1e3)
    }
}

/// The periodic planner (pure): feed it the current revision every retry interval.
#[derive(Debug)]
pub struct Periodic {
    period: Duration,
    revisions: VecDeque<i64>,
    last_success: Duration,
    base_interval: Duration,
}

impl Periodic {
    /// A planner keeping `period` of history, started at `now`.
    pub fn new(period: Duration, now: Duration) -> Periodic {
        Periodic {
            period,
            revisions: VecDeque::new(),
            last_success: now,
            base_interval: period,
        }
    }

    /// The compaction interval: the period, at most one hour.
    pub fn compact_interval(&self) -> Duration {
        self.period.min(Duration::from_secs(3600))
    }

    /// How often the revision is sampled: a tenth of the compaction interval.
    pub fn retry_interval(&self) -> Duration {
        self.compact_interval() / 10
    }

    fn retentions(&self) -> usize {
        let retry = self.retry_interval().as_nanos().max(1);
        usize::try_from(self.period.as_nanos() / retry).unwrap_or(usize::MAX) + 1
    }

    /// Records the current revision (call before waiting one retry interval).
    pub fn sample(&mut self, revision: i64) {
        self.revisions.push_back(revision);
        if self.revisions.len() > self.retentions() {
            self.revisions.pop_front();
        }
    }

    /// After the wait: the revision to compact now, if an interval has passed.
    pub fn due(&mut self, now: Duration) -> Option<i64> {
        if now.saturating_sub(self.last_success) < self.base_interval {
            return None;
        }
        if self.base_interval == self.period {
            self.base_interval = self.compact_interval();
        }
        self.revisions.front().copied()
    }

    /// The compaction at `now` succeeded (or was already done).
    pub fn succeeded(&mut self, now: Duration) {
        self.last_success = now;
    }
}

/// Starts the compactor for `plan` on the current runtime; it acts only while this
/// member leads.
pub fn spawn(ctx: Context, plan: Plan) {
    tokio::spawn(async move {
        match plan {
            Plan::Periodic(period) => run_periodic(&ctx, period).await,
            Plan::Revision(retention) => run_revision(&ctx, retention).await,
        }
    });
}

fn current_revision(ctx: &Context) -> Option<i64> {
    ctx.read(|state| state.store().current_revision()).ok()
}

/// Proposes the compaction; true if it succeeded or the revision was compacted
/// already.
async fn compact(ctx: &Context, revision: i64, retention: &str) -> bool {
    tracing::info!(
        "compactor: Starting auto-compaction at revision {revision} (retention: {retention})"
    );
    let command = Command::Compaction(CompactionRequest {
        revision,
        physical: false,
    });
    let outcome = match ctx.propose(command).await {
        Ok(applied) => match applied.result {
            Ok(Response::Compaction(_))
            | Err(oxetcd_spec::apply::ApplyError::Mvcc(MvccError::Compacted)) => Ok(()),
            Ok(_) => Err("unexpected response".to_owned()),
            Err(error) => Err(error.to_string()),
        },
        Err(status) => Err(status.message().to_owned()),
    };
    match outcome {
        Ok(()) => {
            tracing::info!("compactor: Finished auto-compaction at revision {revision}");
            true
        }
        Err(error) => {
            tracing::warn!("compactor: Failed auto-compaction at revision {revision} ({error})");
            false
        }
    }
}

async fn run_periodic(ctx: &Context, period: Duration) {
    let epoch = tokio::time::Instant::now();
    let mut planner = Periodic::new(period, Duration::ZERO);
    let retry = planner.retry_interval().max(Duration::from_millis(10));
    let retention = go_duration_string(period);
    loop {
        if let Some(revision) = current_revision(ctx) {
            planner.sample(revision);
        }
        tokio::time::sleep(retry).await;
        if !ctx.node.is_leader() {
            continue;
        }
        let now = epoch.elapsed();
        let Some(revision) = planner.due(now) else {
            continue;
        };
        if compact(ctx, revision, &retention).await {
            planner.succeeded(epoch.elapsed());
        } else {
            tracing::info!("compactor: Retry after {}", go_duration_string(retry));
        }
    }
}

async fn run_revision(ctx: &Context, retention: i64) {
    let mut previous = 0;
    let text = format!("{retention} revisions");
    loop {
        tokio::time::sleep(REVISION_INTERVAL).await;
        if !ctx.node.is_leader() {
            continue;
        }
        let Some(current) = current_revision(ctx) else {
            continue;
        };
        let revision = current - retention;
        if revision <= 0 || revision == previous {
            continue;
        }
        if compact(ctx, revision, &text).await {
            previous = revision;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_parsed_as_etcd_does() {
        let periodic = AutoCompactionMode::Periodic;
        let revision = AutoCompactionMode::Revision;
        assert_eq!(parse(periodic, "0"), Ok(None));
        assert_eq!(
            parse(periodic, "1"),
            Ok(Some(Plan::Periodic(Duration::from_secs(3600))))
        );
        assert_eq!(
            parse(periodic, "5m"),
            Ok(Some(Plan::Periodic(Duration::from_secs(300))))
        );
        assert_eq!(
            parse(periodic, "1h30m"),
            Ok(Some(Plan::Periodic(Duration::from_secs(5400))))
        );
        assert_eq!(
            parse(periodic, "1.5s"),
            Ok(Some(Plan::Periodic(Duration::from_millis(1500))))
        );
        assert_eq!(parse(revision, "1000"), Ok(Some(Plan::Revision(1000))));
        assert!(parse(periodic, "5 minutes").is_err());
        assert!(parse(periodic, "").is_err());
    }

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration_string(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration_string(Duration::from_secs(300)), "5m0s");
        assert_eq!(go_duration_string(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration_string(Duration::from_millis(100)), "100ms");
    }

    #[test]
    fn periodic_compacts_the_revision_from_one_period_ago_each_interval() {
        let second = Duration::from_secs(1);
        let mut planner = Periodic::new(10 * second, Duration::ZERO);
        assert_eq!(planner.retry_interval(), second);
        let mut compacted = Vec::new();
        // The revision grows by 5 every second; 30 seconds pass.
        for t in 0..30u64 {
            planner.sample(i64::try_from(t).unwrap() * 5 + 1);
            let now = Duration::from_secs(t + 1);
            if let Some(revision) = planner.due(now) {
                compacted.push((t + 1, revision));
                planner.succeeded(now);
            }
        }
        // First after one period, then every interval, always about one period back.
        assert_eq!(compacted, vec![(10, 1), (20, 46), (30, 96)]);
    }

    #[test]
    fn long_periods_compact_hourly() {
        let planner = Periodic::new(Duration::from_secs(10 * 3600), Duration::ZERO);
        assert_eq!(planner.compact_interval(), Duration::from_secs(3600));
        assert_eq!(planner.retry_interval(), Duration::from_secs(360));
    }
}
