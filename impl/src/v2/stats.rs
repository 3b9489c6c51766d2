//! `/v2/stats/store`, `/v2/stats/self` and `/v2/stats/leader` in etcd 3.4's shapes.
//!
//! Store figures count the v2 requests this member served (success or failure by
//! store operation) and the expiries it saw; etcd counts the same operations inside its
//! store. Start and leader times are this process's.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oxetcd_spec::v2::{Request, json};

/// The store operation a request counts as (etcd's `Stats` fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Get (also quorum gets).
    Get,
    /// Set.
    Set,
    /// Create (PUT prevExist=false, POST).
    Create,
    /// Update (PUT prevExist=true).
    Update,
    /// CompareAndSwap.
    CompareAndSwap,
    /// Delete.
    Delete,
    /// CompareAndDelete.
    CompareAndDelete,
}

impl Op {
    /// The operation of a write request, by the dispatch `spec::v2` documents on
    /// [`Request::Put`] and [`Request::Delete`].
    pub fn of(request: &Request) -> Option<Op> {
        Some(match request {
            Request::Put {
                prev_exist,
                prev_value,
                prev_index,
                ..
            } => {
                let compare = *prev_index > 0 || !prev_value.is_empty();
                match prev_exist {
                    Some(true) if compare => Op::CompareAndSwap,
                    Some(true) => Op::Update,
                    Some(false) => Op::Create,
                    None if compare => Op::CompareAndSwap,
                    None => Op::Set,
                }
            }
            Request::Post { .. } => Op::Create,
            Request::Delete {
                prev_value,
                prev_index,
                ..
            } if *prev_index > 0 || !prev_value.is_empty() => Op::CompareAndDelete,
            Request::Delete { .. } => Op::Delete,
            Request::QGet { .. } => Op::Get,
            Request::Sync { .. } => return None,
        })
    }

    fn slot(self) -> usize {
        match self {
            Op::Get => 0,
            Op::Set => 1,
            Op::Delete => 2,
            Op::Update => 3,
            Op::Create => 4,
            Op::CompareAndSwap => 5,
            Op::CompareAndDelete => 6,
        }
    }
}

/// etcd's field names, in its JSON order (success, fail).
const FIELDS: [(&str, &str); 7] = [
    ("getsSuccess", "getsFail"),
    ("setsSuccess", "setsFail"),
    ("deleteSuccess", "deleteFail"),
    ("updateSuccess", "updateFail"),
    ("createSuccess", "createFail"),
    ("compareAndSwapSuccess", "compareAndSwapFail"),
    ("compareAndDeleteSuccess", "compareAndDeleteFail"),
];

/// The v2 store counters.
#[derive(Debug, Default)]
pub struct StoreStats {
    success: [AtomicU64; 7],
    fail: [AtomicU64; 7],
    expire: AtomicU64,
}

impl StoreStats {
    /// Counts one request.
    pub fn record(&self, op: Op, ok: bool) {
        let counters = if ok { &self.success } else { &self.fail };
        counters[op.slot()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one expiry.
    pub fn expired(&self) {
        self.expire.fetch_add(1, Ordering::Relaxed);
    }

    /// etcd's `/v2/stats/store` body.
    pub fn to_json(&self, watchers: usize) -> String {
        let mut out = String::from("{");
        for (i, (ok, fail)) in FIELDS.iter().enumerate() {
            let _ = write!(
                out,
                "\"{ok}\":{},\"{fail}\":{},",
                self.success[i].load(Ordering::Relaxed),
                self.fail[i].load(Ordering::Relaxed)
            );
        }
        let _ = write!(
            out,
            "\"expireCount\":{},\"watchers\":{watchers}}}",
            self.expire.load(Ordering::Relaxed)
        );
        out
    }
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn wall_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// This member's start and the moment it last saw a new leader.
#[derive(Debug)]
pub struct SelfStats {
    /// Process start.
    pub start: SystemTime,
    leader: Mutex<(u64, SystemTime)>,
}

impl SelfStats {
    /// Starts the clock now.
    pub fn new() -> SelfStats {
        let now = SystemTime::now();
        SelfStats {
            start: now,
            leader: Mutex::new((0, now)),
        }
    }

    /// Notes the current leader (the time is kept from when it changed).
    pub fn observe_leader(&self, leader: u64) {
        let mut seen = self.leader.lock().unwrap_or_else(|e| e.into_inner());
        if seen.0 != leader {
            *seen = (leader, SystemTime::now());
        }
    }

    /// etcd's `/v2/stats/self` body.
    pub fn to_json(&self, name: &str, id: u64, leader: u64, is_leader: bool) -> String {
        self.observe_leader(leader);
        let since = self.leader.lock().unwrap_or_else(|e| e.into_inner()).1;
        let state = match (leader, is_leader) {
            (_, true) => "StateLeader",
            (0, false) => "StateCandidate",
            _ => "StateFollower",
        };
        let uptime = SystemTime::now().duration_since(since).unwrap_or_default();
        let mut out = String::from("{\"name\":");
        json::push_string(&mut out, name);
        let _ = write!(
            out,
            ",\"id\":\"{id:x}\",\"state\":\"{state}\",\"startTime\":\"{}\",\
             \"leaderInfo\":{{\"leader\":\"{leader:x}\",\"uptime\":\"{}\",\"startTime\":\"{}\"}},\
             \"recvAppendRequestCnt\":0,\"sendAppendRequestCnt\":0}}",
            json::rfc3339_ms(wall_ms(self.start)),
            go_duration(uptime),
            json::rfc3339_ms(wall_ms(since)),
        );
        out
    }
}

impl Default for SelfStats {
    fn default() -> Self {
        Self::new()
    }
}

/// Go's `time.Duration.String()` (e.g. `2.886252569s`, `1m5s`, `1h0m0.5s`, `350ms`).
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    let frac = |value: u128, unit: u128| -> String {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let width = unit.ilog10() as usize;
        let digits = format!("{rest:0width$}");
        format!("{whole}.{}", digits.trim_end_matches('0'))
    };
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", frac(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", frac(nanos, 1_000_000));
    }
    let secs = nanos / 1_000_000_000;
    let sub = nanos % 1_000_000_000;
    let s = frac(
        u128::from(u64::try_from(secs % 60).unwrap_or(0)) * 1_000_000_000 + sub,
        1_000_000_000,
    );
    let mins = secs / 60;
    if mins == 0 {
        return format!("{s}s");
    }
    let hours = mins / 60;
    if hours == 0 {
        return format!("{}m{s}s", mins % 60);
    }
    format!("{hours}h{}m{s}s", mins % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(
            go_duration(Duration::from_nanos(2_886_252_569)),
            "2.886252569s"
        );
        assert_eq!(go_duration(Duration::from_millis(350)), "350ms");
        assert_eq!(go_duration(Duration::from_secs(65)), "1m5s");
        assert_eq!(go_duration(Duration::from_millis(3_600_500)), "1h0m0.5s");
        assert_eq!(go_duration(Duration::from_nanos(1_500)), "1.5µs");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn store_stats_render_in_etcd_field_order() {
        let stats = StoreStats::default();
        stats.record(Op::Get, true);
        stats.record(Op::CompareAndDelete, false);
        stats.expired();
        assert_eq!(
            stats.to_json(2),
            "{\"getsSuccess\":1,\"getsFail\":0,\"setsSuccess\":0,\"setsFail\":0,\
             \"deleteSuccess\":0,\"deleteFail\":0,\"updateSuccess\":0,\"updateFail\":0,\
             \"createSuccess\":0,\"createFail\":0,\"compareAndSwapSuccess\":0,\
             \"compareAndSwapFail\":0,\"compareAndDeleteSuccess\":0,\
             \"compareAndDeleteFail\":1,\"expireCount\":1,\"watchers\":2}"
        );
    }
}
