//! Checks over a recorded [`History`]: linearizability (porcupine-rs against the models
//! in [`super::model`]), serializable reads, acknowledged writes lost, and (in
//! [`super::watch`]) watch streams.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use porcupine_rs::{CheckResult, Model, Operation};

use super::history::{History, KvOp, KvResult, Op, PausedLeader, Request, Response, WatchEvent};
use super::model::{KvModel, ModelOp, RegisterModel};

/// Which model a history is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// Per-key registers (single-key Put/Get histories), partitioned by key.
    Register,
    /// One global revisioned KV with leases.
    Kv,
}

/// The linearizability verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Linearizable.
    Linearizable,
    /// Not linearizable.
    Violation,
    /// The checker ran out of time.
    Unknown,
    /// Not linearizable as such, but linearizable once the known etcd deviation
    /// [`STALE_LEADER_LEASES`] is allowed inside the windows where it can occur.
    KnownDeviation,
}

/// The known etcd 3.4.23 deviation the lease checks allow around a resumed leader:
/// etcd-io/etcd#15247 (also #12528). A leader paused past a lease's TTL, once resumed,
/// still acts as the primary lessor until raft's step-down reaches the lessor: it
/// revokes leases that were kept alive through the new leader (its revokes are
/// forwarded to the new leader and applied), and it acknowledges keep-alives the new
/// leader never sees. Fixed in etcd 3.4.31 and 3.5.13 (etcd-io/etcd#16822, backports
/// #17465 and #17425): a member confirms it is still the leader before revoking
/// expired leases or renewing one, so leases kept alive through the current leader
/// live on and keep-alives are acknowledged only by the current leader.
pub const STALE_LEADER_LEASES: &str = "etcd-io/etcd#15247 (stale leader's lessor)";

/// How long after its resume a paused leader's lessor may still act as the primary.
pub const STALE_LEADER_WINDOW: Duration = Duration::from_secs(3);

/// Outcome of a linearizability check.
#[derive(Clone, Debug)]
pub struct LinReport {
    /// The verdict.
    pub verdict: Verdict,
    /// Operations given to the checker (after dropping failed and unknown reads).
    pub ops_checked: usize,
    /// Number of partitions checked.
    pub partitions: usize,
    /// Wall time of the check.
    pub elapsed: Duration,
    /// HTML visualisation of the failing partition (when a violation was found).
    pub html: Option<PathBuf>,
    /// A reduced sub-history that is still not linearizable, one line per operation.
    pub excerpt: Vec<String>,
    /// With [`Verdict::KnownDeviation`]: each deviation the history needed, one line.
    pub deviations: Vec<String>,
}

/// Options of the linearizability check.
#[derive(Clone, Debug)]
pub struct LinOptions {
    /// Model to check against.
    pub model: ModelKind,
    /// The store's revision before the run (used by [`ModelKind::Kv`]).
    pub initial_revision: i64,
    /// Time limit of the search.
    pub timeout: Duration,
    /// Check serializable reads as if they were linearizable (a deliberate misuse that
    /// the tests use to prove stale reads are caught).
    pub serializable_as_linearizable: bool,
    /// Where to write the HTML visualisation of a violation (`None`: not written).
    pub html_dir: Option<PathBuf>,
    /// Leaders paused and resumed during the run: windows in which the known deviation
    /// [`STALE_LEADER_LEASES`] is allowed (global KV model only).
    pub paused_leaders: Vec<PausedLeader>,
    /// Leases whose keys the store's complete history shows deleted (`None`: no complete
    /// history). Only leases seen gone (there, or by a "lease not found" answer) are
    /// considered for the stale-leader deviation.
    pub deleted_leases: Option<BTreeSet<i64>>,
}

/// The leases whose keys `log` (the store's history) shows deleted: a delete of a key
/// whose value then was written by a put attached to the lease.
pub fn deleted_leases(history: &[Op], log: &[WatchEvent]) -> BTreeSet<i64> {
    let mut lease_of_value = BTreeMap::new();
    for op in history {
        if let Request::Txn { then, .. } = &op.req {
            for o in then {
                if let KvOp::Put {
                    key,
                    value,
                    lease: Some(l),
                } = o
                {
                    lease_of_value.insert((key.as_str(), value.as_str()), *l);
                }
            }
        }
    }
    let mut current: BTreeMap<&str, &str> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for e in log {
        match &e.value {
            Some(v) => {
                current.insert(&e.key, v);
            }
            None => {
                if let Some(v) = current.remove(e.key.as_str())
                    && let Some(l) = lease_of_value.get(&(e.key.as_str(), v))
                {
                    out.insert(*l);
                }
            }
        }
    }
    out
}

const NEVER: i64 = i64::MAX;

/// Turns the history into the checker's operations: failed operations and reads of
/// unknown outcome are dropped (they had no effect), writes of unknown outcome get an
/// infinite return time, and a synthetic expiry is added for every granted lease.
pub fn to_operations(history: &[Op], opts: &LinOptions) -> Vec<Operation<KvModel>> {
    let mut out = Vec::new();
    if opts.model == ModelKind::Kv {
        out.push(Operation {
            client_id: Some(u32::MAX),
            call_time: i64::MIN + 2,
            return_time: i64::MIN + 3,
            op: ModelOp::Init {
                revision: opts.initial_revision,
            },
            metadata: None,
        });
    }
    for (i, op) in history.iter().enumerate() {
        if op.failed {
            continue;
        }
        if matches!(op.req, Request::SerializableGet { .. }) && !opts.serializable_as_linearizable {
            continue;
        }
        if op.resp.is_none() && !op.req.is_write() {
            continue;
        }
        out.push(Operation {
            client_id: Some(op.client),
            call_time: op.call,
            return_time: if op.resp.is_some() {
                op.ret.unwrap_or(NEVER)
            } else {
                NEVER
            },
            op: ModelOp::Do {
                req: op.req.clone(),
                resp: op.resp.clone(),
            },
            metadata: Some(i),
        });
    }
    out.extend(lease_expiries(history, &|_| false));
    out
}

/// The lease an operation names (grant, keep-alive, revoke, or a put attached to it).
fn lease_of(op: &Op) -> Option<i64> {
    match &op.req {
        Request::LeaseKeepAlive { id }
        | Request::LeaseRevoke { id }
        | Request::LeaseGrant { id, .. } => Some(*id),
        Request::Txn { then, .. } => then.iter().find_map(|o| match o {
            KvOp::Put { lease: Some(l), .. } => Some(*l),
            _ => None,
        }),
        _ => None,
    }
}

/// Synthetic expiry operations: a lease can expire no earlier than its TTL after the
/// later of its grant and its last successful keep-alive was invoked; when that is, is
/// unobserved, so the expiry has an infinite return time. A lease revoked (with a known
/// response) before it could expire gets none. Operations whose index `ignored` accepts
/// do not count.
fn lease_expiries(history: &[Op], ignored: &dyn Fn(usize) -> bool) -> Vec<Operation<KvModel>> {
    let mut grants: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for op in history {
        if let Request::LeaseGrant { id, ttl } = op.req
            && !op.failed
        {
            grants.insert(id, (op.call, ttl));
        }
    }
    let mut out = Vec::new();
    for (id, (grant_call, ttl)) in grants {
        let mut earliest = grant_call;
        let mut revoked_at: Option<i64> = None;
        // The lease was certainly gone when an operation on it answered "not found".
        let mut gone_by = NEVER;
        let mut has_keys = false;
        let mut last_use = grant_call;
        for (_, op) in history
            .iter()
            .enumerate()
            .filter(|(i, o)| lease_of(o) == Some(id) && !ignored(*i))
        {
            last_use = last_use.max(op.ret.unwrap_or(NEVER));
            if matches!(op.req, Request::Txn { .. }) && !op.failed {
                has_keys = true;
            }
            if op.resp == Some(Response::LeaseNotFound) {
                gone_by = gone_by.min(op.ret.unwrap_or(NEVER));
            }
            match op.req {
                Request::LeaseKeepAlive { .. } if op.resp == Some(Response::LeaseOk) => {
                    earliest = earliest.max(op.call);
                }
                Request::LeaseRevoke { .. } if op.resp == Some(Response::LeaseOk) => {
                    let r = op.ret.unwrap_or(NEVER);
                    revoked_at = Some(revoked_at.map_or(r, |x| x.min(r)));
                }
                _ => {}
            }
        }
        // 50 ms of slack for the leader's clock against ours.
        let expiry = earliest
            .saturating_add(ttl.saturating_mul(1_000_000_000))
            .saturating_sub(50_000_000);
        if revoked_at.is_some_and(|r| r < expiry) {
            continue;
        }
        // Unobservable: no keys attached and nothing used the lease after it could expire.
        if !has_keys && last_use < expiry {
            continue;
        }
        out.push(Operation {
            client_id: Some(u32::MAX - 1),
            call_time: expiry,
            return_time: gone_by.max(expiry),
            op: ModelOp::Do {
                req: Request::LeaseExpire { id },
                resp: None,
            },
            metadata: None,
        });
    }
    out
}

fn convert<M: Model<Op = ModelOp, Metadata = usize>>(
    ops: &[Operation<KvModel>],
) -> Vec<Operation<M>> {
    ops.iter()
        .map(|o| Operation {
            client_id: o.client_id,
            call_time: o.call_time,
            return_time: o.return_time,
            op: o.op.clone(),
            metadata: o.metadata,
        })
        .collect()
}

/// Checks the history for linearizability. A history of the global KV model that is
/// not linearizable as such (or whose search timed out) is checked again allowing the
/// known deviation
/// [`STALE_LEADER_LEASES`] around each of `opts.paused_leaders`: when that passes, the
/// verdict is [`Verdict::KnownDeviation`] with the deviations it needed.
pub fn check_linearizable(history: &[Op], opts: &LinOptions) -> LinReport {
    let ops = to_operations(history, opts);
    let mut report = match opts.model {
        ModelKind::Kv => check_with::<KvModel>(history, convert(&ops), opts),
        ModelKind::Register => check_with::<RegisterModel>(history, convert(&ops), opts),
    };
    if matches!(report.verdict, Verdict::Violation | Verdict::Unknown)
        && opts.model == ModelKind::Kv
        && !opts.paused_leaders.is_empty()
    {
        let started = Instant::now();
        if let Some(needed) = stale_leader_deviations(history, opts) {
            // (After a timed-out search, the minimisation may find no allowance needed.)
            report.verdict = if needed.is_empty() {
                Verdict::Linearizable
            } else {
                Verdict::KnownDeviation
            };
            report.deviations = needed
                .iter()
                .map(|r| r.describe(history, &opts.paused_leaders))
                .collect();
        }
        report.elapsed += started.elapsed();
    }
    report
}

/// One allowance of the stale-leader deviation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Allowance {
    /// The paused leader of `window` may revoke lease `id` after it resumed.
    Revoke { window: usize, id: i64 },
    /// Keep-alives of lease `id` answered just after the resume of `window`'s leader may
    /// have been acknowledged by its stale lessor only (they do not extend the lease).
    StaleAcks { window: usize, id: i64 },
}

impl Allowance {
    fn describe(&self, history: &[Op], leaders: &[PausedLeader]) -> String {
        let secs = |t: i64| t as f64 / 1e9;
        let (window, id) = match self {
            Allowance::Revoke { window, id } | Allowance::StaleAcks { window, id } => {
                (*window, *id)
            }
        };
        let Some(l) = leaders.get(window) else {
            return format!("{self:?}");
        };
        match self {
            Allowance::Revoke { .. } => {
                // The last acknowledged keep-alive before the lease was seen gone.
                let gone = history
                    .iter()
                    .filter(|o| lease_of(o) == Some(id) && o.resp == Some(Response::LeaseNotFound))
                    .filter_map(|o| o.ret)
                    .min()
                    .unwrap_or(NEVER)
                    .min(l.resumed.saturating_add(window_nanos()));
                let last = history
                    .iter()
                    .filter(|o| {
                        o.req == Request::LeaseKeepAlive { id } && o.resp == Some(Response::LeaseOk)
                    })
                    .map(|o| o.call)
                    .filter(|c| *c < gone)
                    .max();
                format!(
                    "{STALE_LEADER_LEASES}: lease {id:x} revoked early by {} (the leader, paused at {:.1} s, resumed at {:.1} s){}",
                    l.member,
                    secs(l.paused),
                    secs(l.resumed),
                    last.map_or(String::new(), |t| format!(
                        "; last keep-alive acknowledged before then was sent at {:.1} s",
                        secs(t)
                    ))
                )
            }
            Allowance::StaleAcks { .. } => format!(
                "{STALE_LEADER_LEASES}: keep-alive of lease {id:x} acknowledged by {}'s stale lessor (the leader, paused at {:.1} s, resumed at {:.1} s); the lease expired as if it had not been sent",
                l.member,
                secs(l.paused),
                secs(l.resumed)
            ),
        }
    }
}

fn window_nanos() -> i64 {
    i64::try_from(STALE_LEADER_WINDOW.as_nanos()).unwrap_or(NEVER)
}

/// How soon after its resume a paused leader answers the keep-alives that waited for
/// it (a stale lessor is demoted as soon as raft hears of the new term).
const STALE_ACK_WINDOW: i64 = 1_000_000_000;

/// Whether `o` is a successful keep-alive the paused leader `l` may have acknowledged
/// from its stale lessor: one that returned within [`STALE_ACK_WINDOW`] of the resume.
fn stale_ack(o: &Op, l: &PausedLeader) -> bool {
    matches!(o.req, Request::LeaseKeepAlive { .. })
        && o.resp == Some(Response::LeaseOk)
        && o.ret
            .is_some_and(|r| r >= l.resumed && r <= l.resumed.saturating_add(STALE_ACK_WINDOW))
}

/// Every allowance the windows make possible: a paused leader may revoke a lease it
/// knew of (granted before the pause, not revoked by then) whose TTL, counted from the
/// last renewal it acknowledged before the pause, ran out before the window's end; it
/// may have acknowledged the lease's keep-alives that waited for it (see [`stale_ack`]).
fn allowances(history: &[Op], opts: &LinOptions) -> Vec<Allowance> {
    let leaders = &opts.paused_leaders;
    let mut out = BTreeSet::new();
    let ttls: BTreeMap<i64, i64> = history
        .iter()
        .filter(|o| !o.failed)
        .filter_map(|o| match o.req {
            Request::LeaseGrant { id, ttl } => Some((id, ttl)),
            _ => None,
        })
        .collect();
    for (window, l) in leaders.iter().enumerate() {
        let end = l.resumed.saturating_add(window_nanos());
        for (&id, &ttl) in &ttls {
            let ops: Vec<&Op> = history.iter().filter(|o| lease_of(o) == Some(id)).collect();
            let seen_gone = ops.iter().any(|o| o.resp == Some(Response::LeaseNotFound))
                || opts.deleted_leases.as_ref().is_none_or(|d| d.contains(&id));
            if !seen_gone {
                continue;
            }
            // When the lease could expire by the resume anyway, a revoke after it
            // needs no allowance.
            let renewed = ops
                .iter()
                .filter(|o| {
                    matches!(
                        o.req,
                        Request::LeaseGrant { .. } | Request::LeaseKeepAlive { .. }
                    ) && o.resp == Some(Response::LeaseOk)
                })
                .map(|o| o.call)
                .max()
                .unwrap_or(0);
            let expiry = renewed
                .saturating_add(ttl.saturating_mul(1_000_000_000))
                .saturating_sub(50_000_000);
            let granted_before = ops
                .iter()
                .any(|o| matches!(o.req, Request::LeaseGrant { .. }) && o.call < l.paused);
            let revoked_before = ops.iter().any(|o| {
                matches!(o.req, Request::LeaseRevoke { .. })
                    && o.resp == Some(Response::LeaseOk)
                    && o.ret.is_some_and(|r| r < l.paused)
            });
            let last_renewal = ops
                .iter()
                .filter(|o| {
                    matches!(
                        o.req,
                        Request::LeaseGrant { .. } | Request::LeaseKeepAlive { .. }
                    ) && o.resp == Some(Response::LeaseOk)
                        && o.ret.is_some_and(|r| r < l.paused)
                })
                .map(|o| o.call)
                .max();
            let stale_expiry = last_renewal
                .unwrap_or(l.paused)
                .saturating_add(ttl.saturating_mul(1_000_000_000))
                .saturating_sub(50_000_000);
            if granted_before && !revoked_before && stale_expiry <= end && expiry > l.resumed {
                out.insert(Allowance::Revoke { window, id });
            }
            if ops.iter().any(|o| stale_ack(o, l)) {
                out.insert(Allowance::StaleAcks { window, id });
            }
        }
    }
    out.into_iter().collect()
}

/// The checker's operations with `allowed` deviations: stale-acknowledged keep-alives
/// dropped (they neither extend the lease nor prove it alive), an optional revoke per
/// allowed lease from the leader's resume on, and the end of each window.
fn operations_allowing(
    history: &[Op],
    opts: &LinOptions,
    allowed: &[Allowance],
) -> Vec<Operation<KvModel>> {
    let leaders = &opts.paused_leaders;
    let stale_ack = |i: usize| {
        let o = &history[i];
        let Request::LeaseKeepAlive { id } = o.req else {
            return false;
        };
        allowed.iter().any(|a| match a {
            Allowance::StaleAcks { window, id: l } => {
                *l == id && leaders.get(*window).is_some_and(|p| stale_ack(o, p))
            }
            Allowance::Revoke { .. } => false,
        })
    };
    let mut out: Vec<Operation<KvModel>> = to_operations(history, opts)
        .into_iter()
        .filter(|o| {
            !matches!(
                o.op,
                ModelOp::Do {
                    req: Request::LeaseExpire { .. },
                    ..
                }
            )
        })
        .filter(|o| !o.metadata.is_some_and(stale_ack))
        .collect();
    out.extend(lease_expiries(history, &stale_ack));
    let mut windows = BTreeSet::new();
    for a in allowed {
        if let Allowance::Revoke { window, id } = *a
            && let Some(l) = leaders.get(window)
        {
            windows.insert(window);
            out.push(Operation {
                client_id: Some(u32::MAX - 2),
                call_time: l.resumed,
                return_time: NEVER,
                op: ModelOp::StaleRevoke { id, window },
                metadata: None,
            });
        }
    }
    for window in windows {
        if let Some(l) = leaders.get(window) {
            let end = l.resumed.saturating_add(window_nanos());
            out.push(Operation {
                client_id: Some(u32::MAX - 3),
                call_time: end,
                return_time: end.saturating_add(1),
                op: ModelOp::WindowEnd { window },
                metadata: None,
            });
        }
    }
    out
}

/// When the history is linearizable allowing the stale-leader deviation, a minimal set
/// of allowances it needs (each one dropped in turn while the rest still suffice).
fn stale_leader_deviations(history: &[Op], opts: &LinOptions) -> Option<Vec<Allowance>> {
    let started = Instant::now();
    let budget = opts.timeout.min(Duration::from_secs(30));
    let passes = |allowed: &[Allowance], limit: Duration| {
        let left = budget.saturating_sub(started.elapsed()).min(limit);
        let ops = operations_allowing(history, opts, allowed);
        porcupine_rs::check_operations_timeout::<KvModel>(&ops, left) == CheckResult::Ok
    };
    let mut needed = allowances(history, opts);
    if needed.is_empty() || !passes(&needed, budget) {
        return None;
    }
    // Proving a trial illegal can take long: one that does not pass quickly keeps its
    // allowance (the set stays sufficient, if not minimal).
    let mut i = 0;
    while i < needed.len() && started.elapsed() < budget {
        let mut trial = needed.clone();
        trial.remove(i);
        if passes(&trial, Duration::from_secs(5)) {
            needed = trial;
        } else {
            i += 1;
        }
    }
    Some(needed)
}

fn check_with<M: Model<Op = ModelOp, Metadata = usize>>(
    history: &[Op],
    ops: Vec<Operation<M>>,
    opts: &LinOptions,
) -> LinReport {
    let started = Instant::now();
    let ops_checked = ops.len();
    let parts = M::partition_operations(&ops);
    let partitions = parts.len();
    let mut verdict = Verdict::Linearizable;
    let mut failing = None;
    for part in parts {
        let left = opts.timeout.saturating_sub(started.elapsed());
        match porcupine_rs::check_operations_timeout::<SinglePartition<M>>(&wrap(&part), left) {
            CheckResult::Ok => {}
            CheckResult::Illegal => {
                verdict = Verdict::Violation;
                failing = Some(part);
                break;
            }
            CheckResult::Unknown => verdict = Verdict::Unknown,
        }
    }
    let elapsed = started.elapsed();
    let mut report = LinReport {
        verdict,
        ops_checked,
        partitions,
        elapsed,
        html: None,
        excerpt: vec![],
        deviations: vec![],
    };
    if let Some(part) = failing {
        let reduced = reduce::<M>(
            part.clone(),
            opts.model == ModelKind::Register,
            Duration::from_secs(10),
        );
        let line = |o: &Operation<M>| match o.metadata {
            Some(i) => history[i].to_string(),
            None => format!("(synthetic) {}", M::describe_operation(&o.op)),
        };
        report.excerpt = if reduced.len() <= 30 {
            reduced.iter().map(line).collect()
        } else {
            stuck_excerpt(&reduced, line)
        };
        if let Some(dir) = &opts.html_dir {
            report.html = write_html::<M>(&part, dir).ok();
        }
    }
    report
}

/// Wraps a model so porcupine checks one already-split partition as a whole.
#[derive(Clone, Debug)]
struct SinglePartition<M>(std::marker::PhantomData<M>);

impl<M: Model> Model for SinglePartition<M> {
    type State = M::State;
    type Op = M::Op;
    type Metadata = M::Metadata;
    fn init() -> M::State {
        M::init()
    }
    fn step(state: &M::State, op: &M::Op) -> (bool, M::State) {
        M::step(state, op)
    }
    fn describe_operation(op: &M::Op) -> String {
        M::describe_operation(op)
    }
    fn describe_state(state: &M::State) -> String {
        M::describe_state(state)
    }
}

fn wrap<M: Model>(ops: &[Operation<M>]) -> Vec<Operation<SinglePartition<M>>> {
    ops.iter()
        .map(|o| Operation {
            client_id: o.client_id,
            call_time: o.call_time,
            return_time: o.return_time,
            op: o.op.clone(),
            metadata: o.metadata.clone(),
        })
        .collect()
}

fn illegal<M: Model>(ops: &[Operation<M>], timeout: Duration) -> bool {
    porcupine_rs::check_operations_timeout::<SinglePartition<M>>(&wrap(ops), timeout)
        == CheckResult::Illegal
}

fn is_read(op: &ModelOp) -> bool {
    matches!(op, ModelOp::Do { req, .. } if !req.is_write())
}

/// Whether `op` is a single Put whose value some read in `ops` returned.
fn observed<M: Model<Op = ModelOp>>(op: &ModelOp, ops: &[Operation<M>]) -> bool {
    let ModelOp::Do {
        req: Request::Txn { then, els, .. },
        ..
    } = op
    else {
        return true;
    };
    let [KvOp::Put { key, value, .. }] = then.as_slice() else {
        return true;
    };
    if !els.is_empty() {
        return true;
    }
    ops.iter().any(|o| match &o.op {
        ModelOp::Do { resp: Some(Response::Txn { results, .. }), .. } => results.iter().any(|r| {
            matches!(r, KvResult::Range(kvs) if kvs.iter().any(|kv| kv.key == *key && kv.value == *value))
        }),
        _ => false,
    })
}

/// Cuts the history at invocation time `t`: operations invoked before `t` stay as they
/// are; writes invoked later stay with an unknown outcome; later reads go. If the
/// whole history is linearizable, so is every cut, so an illegal cut is a genuine
/// counterexample.
fn cut<M: Model<Op = ModelOp>>(ops: &[Operation<M>], t: i64) -> Vec<Operation<M>> {
    ops.iter()
        .filter(|o| o.call_time < t || !is_read(&o.op))
        .map(|o| {
            let mut o = o.clone();
            if o.call_time >= t {
                o.return_time = NEVER;
                if let ModelOp::Do { resp, .. } = &mut o.op {
                    *resp = None;
                }
            }
            o
        })
        .collect()
}

/// Shrinks a non-linearizable partition to a short sub-history that is still not
/// linearizable: the earliest illegal cut, then reads removed while it stays illegal
/// (removing reads never makes a linearizable history illegal).
///
/// With `unobserved_writes` (sound for per-key registers with unique values, not for
/// the global revisioned KV), a Put whose value no remaining read returned may go too:
/// in a linearization it is never between a write and a read that returned that write.
pub fn reduce<M: Model<Op = ModelOp>>(
    mut ops: Vec<Operation<M>>,
    unobserved_writes: bool,
    budget: Duration,
) -> Vec<Operation<M>> {
    let started = Instant::now();
    let step = Duration::from_secs(2);
    ops.sort_by_key(|o| o.call_time);
    let mut calls: Vec<i64> = ops.iter().map(|o| o.call_time).collect();
    calls.dedup();
    // Binary search for the earliest cut that is illegal (the full history is).
    let (mut lo, mut hi) = (0usize, calls.len());
    while lo < hi && started.elapsed() < budget / 2 {
        let mid = (lo + hi) / 2;
        let t = calls.get(mid).copied().unwrap_or(NEVER).saturating_add(1);
        if illegal(&cut(&ops, t), step) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let t = calls.get(hi).copied().unwrap_or(NEVER).saturating_add(1);
    let mut current = cut(&ops, t);
    if !illegal(&current, step) {
        current = ops;
    }
    // Drop operations in shrinking chunks while the history stays illegal.
    let mut chunk = current.len().max(1);
    while chunk >= 1 && started.elapsed() < budget {
        let mut i = 0;
        let mut removed_any = false;
        while i < current.len() && started.elapsed() < budget {
            let end = (i + chunk).min(current.len());
            let mut trial = current.clone();
            trial.drain(i..end);
            let droppable = current[i..end]
                .iter()
                .all(|o| is_read(&o.op) || (unobserved_writes && !observed(&o.op, &trial)));
            if droppable && illegal(&trial, step) {
                current = trial;
                removed_any = true;
                continue;
            }
            i = end;
        }
        if chunk == 1 {
            if !removed_any {
                break;
            }
        } else {
            chunk /= 2;
        }
    }
    current
}

/// For a reduced history still too long to read: where the search got stuck. The
/// longest partial linearization the checker found (its last operations and the
/// model state after it), then the operations none of which could be placed next.
fn stuck_excerpt<M: Model>(
    ops: &[Operation<M>],
    line: impl Fn(&Operation<M>) -> String,
) -> Vec<String> {
    let (_, info) = porcupine_rs::check_operations_info_timeout::<SinglePartition<M>>(
        &wrap(ops),
        Duration::from_secs(10),
    );
    let longest = info
        .partial_linearizations
        .first()
        .and_then(|seqs| seqs.iter().max_by_key(|s| s.len()))
        .cloned()
        .unwrap_or_default();
    let mut state = M::init();
    for &i in &longest {
        state = M::step(&state, &ops[i].op).1;
    }
    let placed: std::collections::BTreeSet<usize> = longest.iter().copied().collect();
    let first_stuck_return = (0..ops.len())
        .filter(|i| !placed.contains(i))
        .map(|i| ops[i].return_time)
        .min()
        .unwrap_or(NEVER);
    let mut out = vec![format!(
        "longest linearizable prefix: {} of {} operations; its last ones:",
        longest.len(),
        ops.len()
    )];
    for &i in longest
        .iter()
        .rev()
        .take(12)
        .collect::<Vec<_>>()
        .iter()
        .rev()
    {
        out.push(format!("  {}", line(&ops[*i])));
    }
    out.push(format!("state after it: {}", M::describe_state(&state)));
    out.push("none of these can come next:".to_owned());
    let mut stuck: Vec<usize> = (0..ops.len())
        .filter(|i| !placed.contains(i) && ops[*i].call_time <= first_stuck_return)
        .collect();
    stuck.sort_by_key(|i| ops[*i].call_time);
    for i in stuck.iter().take(20) {
        out.push(format!("  {}", line(&ops[*i])));
    }
    out
}

fn write_html<M: Model>(ops: &[Operation<M>], dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let (_, info) = porcupine_rs::check_operations_info_timeout::<SinglePartition<M>>(
        &wrap(ops),
        Duration::from_secs(20),
    );
    let path = dir.join("violation.html");
    porcupine_rs::visualize_path::<SinglePartition<M>>(&info, &path)?;
    Ok(path)
}

/// Acknowledged writes missing from the store's event log: each acknowledged Put must
/// appear in the log at its response's revision with its value, and each acknowledged
/// Delete that removed keys must appear as deletes at its revision.
pub fn lost_writes(history: &History) -> Vec<String> {
    let mut by_rev: BTreeMap<(i64, &str), &WatchEvent> = BTreeMap::new();
    for e in &history.log {
        by_rev.insert((e.revision, e.key.as_str()), e);
    }
    let mut lost = Vec::new();
    for op in &history.ops {
        let (
            Request::Txn { then, els, .. },
            Some(Response::Txn {
                succeeded,
                revision,
                results,
            }),
        ) = (&op.req, &op.resp)
        else {
            continue;
        };
        let branch = if *succeeded { then } else { els };
        for (kvop, result) in branch.iter().zip(results) {
            match (kvop, result) {
                (KvOp::Put { key, value, .. }, KvResult::Put) => {
                    let found = by_rev
                        .get(&(*revision, key.as_str()))
                        .is_some_and(|e| e.value.as_deref() == Some(value.as_str()));
                    if !found {
                        lost.push(format!("{op}: put({key}={value}) at rev {revision} is not in the store's history"));
                    }
                }
                (KvOp::Delete { key, prefix }, KvResult::Delete(n)) if *n > 0 => {
                    let seen = history
                        .log
                        .iter()
                        .filter(|e| {
                            e.revision == *revision
                                && e.value.is_none()
                                && if *prefix {
                                    e.key.starts_with(key.as_str())
                                } else {
                                    e.key == *key
                                }
                        })
                        .count() as i64;
                    if seen != *n {
                        lost.push(format!(
                            "{op}: {n} deletes at rev {revision}, store's history has {seen}"
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    lost
}

/// Anomalies of serializable reads: a value nobody wrote, a value written only after
/// the read returned (from the future), a value that is not the key's value at the
/// read's own header revision in the store's history, and, per client, header or mod
/// revisions going backwards.
pub fn serializable_anomalies(history: &History) -> Vec<String> {
    // Who wrote each (key, value), and when it was invoked.
    let mut writers: BTreeMap<(&str, &str), &Op> = BTreeMap::new();
    for op in &history.ops {
        if let Request::Txn { then, els, .. } = &op.req {
            for k in then.iter().chain(els) {
                if let KvOp::Put { key, value, .. } = k {
                    writers.insert((key.as_str(), value.as_str()), op);
                }
            }
        }
    }
    // The store's history per key: (revision, value) in order.
    let mut per_key: BTreeMap<&str, Vec<(i64, Option<&str>)>> = BTreeMap::new();
    for e in &history.log {
        per_key
            .entry(e.key.as_str())
            .or_default()
            .push((e.revision, e.value.as_deref()));
    }
    let log_end = history.log.iter().map(|e| e.revision).max().unwrap_or(0);
    let mut last_rev: BTreeMap<u32, i64> = BTreeMap::new();
    let mut out = Vec::new();
    let mut ops: Vec<&Op> = history.ops.iter().collect();
    ops.sort_by_key(|o| o.call);
    for op in ops {
        let (
            Request::SerializableGet { key },
            Some(Response::Txn {
                revision, results, ..
            }),
        ) = (&op.req, &op.resp)
        else {
            continue;
        };
        let seen = match results.as_slice() {
            [KvResult::Range(kvs)] => kvs.first(),
            _ => {
                out.push(format!("{op}: malformed response"));
                continue;
            }
        };
        if let Some(kv) = seen {
            match writers.get(&(key.as_str(), kv.value.as_str())) {
                None => out.push(format!("{op}: value was never written")),
                Some(w) if op.ret.is_some_and(|r| w.call > r) => {
                    out.push(format!("{op}: value from the future (written by: {w})"));
                }
                Some(w) => {
                    if let Some(Response::Txn { revision: wr, .. }) = &w.resp
                        && *wr != kv.mod_rev
                    {
                        out.push(format!(
                            "{op}: mod revision {} but the write was at {wr}",
                            kv.mod_rev
                        ));
                    }
                }
            }
            if kv.mod_rev > *revision {
                out.push(format!("{op}: mod revision above header revision"));
            }
        }
        if *revision <= log_end {
            let at = per_key
                .get(key.as_str())
                .and_then(|evs| evs.iter().rev().find(|(r, _)| *r <= *revision))
                .and_then(|(_, v)| *v);
            if at != seen.map(|kv| kv.value.as_str()) {
                out.push(format!(
                    "{op}: the store's value at rev {revision} is {}",
                    at.unwrap_or("absent")
                ));
            }
        }
        let last = last_rev.entry(op.client).or_insert(0);
        if *revision < *last {
            out.push(format!(
                "{op}: revision went back from {last} (not monotonic for this client)"
            ));
        }
        *last = (*last).max(*revision);
    }
    out
}

/// Settles writes of unknown outcome with the store's complete event log (values are
/// unique): a write whose Put value appears in the log took effect at that revision, so
/// its response is known (its completion time stays unknown); a write none of whose
/// Put values appear had no effect (it never ran, or took a branch without writes) and
/// is dropped. Writes without Puts in their only branch stay unknown. Only sound when
/// `log` holds every event of the run's keys.
pub fn settle_unknown_writes(ops: &[Op], log: &[WatchEvent]) -> Vec<Op> {
    let mut written: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for e in log {
        if let Some(v) = &e.value {
            written.insert((e.key.as_str(), v.as_str()), e.revision);
        }
    }
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        if !op.unknown() {
            out.push(op.clone());
            continue;
        }
        let Request::Txn { then, .. } = &op.req else {
            out.push(op.clone());
            continue;
        };
        let puts: Vec<(&str, &str)> = then
            .iter()
            .filter_map(|o| match o {
                KvOp::Put { key, value, .. } => Some((key.as_str(), value.as_str())),
                _ => None,
            })
            .collect();
        if puts.is_empty() || puts.len() != then.len() {
            out.push(op.clone());
            continue;
        }
        let revs: Vec<Option<i64>> = puts.iter().map(|kv| written.get(kv).copied()).collect();
        match revs.first().copied().flatten() {
            Some(r) if revs.iter().all(|x| *x == Some(r)) => {
                let mut settled = op.clone();
                settled.resp = Some(Response::Txn {
                    succeeded: true,
                    revision: r,
                    results: vec![KvResult::Put; puts.len()],
                });
                out.push(settled);
            }
            // Not one of its values was ever written: it had no effect.
            None if revs.iter().all(Option::is_none) => {}
            // Partly visible: leave it to the checker (it will not linearize).
            _ => out.push(op.clone()),
        }
    }
    out
}
