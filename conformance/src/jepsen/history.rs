//! The recorded history of a run: every client operation with its invocation and
//! completion time (nanoseconds since the start of the run) and its outcome, which is
//! either a response, a definite failure, or unknown (timeout, connection loss).
//!
//! Every KV request is expressed as a transaction (compares, then-ops, else-ops), as
//! etcd's robustness tests do: a plain Get, Put, Range or DeleteRange is a transaction
//! without compares. Lease requests are separate variants.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A condition of a transaction (`Compare` with `EQUAL`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Cond {
    /// The key's version equals the value (0: the key does not exist).
    Version(String, i64),
    /// The key's mod revision equals the value (0: the key does not exist).
    ModRev(String, i64),
}

/// One KV request inside a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvOp {
    /// Range over one key (`prefix == false`) or every key starting with `key`.
    Range {
        /// The key or prefix.
        key: String,
        /// Whether `key` is a prefix.
        prefix: bool,
    },
    /// Put a value, optionally attached to a lease.
    Put {
        /// The key.
        key: String,
        /// The value (unique per history, so a read identifies the write it saw).
        value: String,
        /// The lease to attach, if any.
        lease: Option<i64>,
    },
    /// Delete one key or every key starting with `key`.
    Delete {
        /// The key or prefix.
        key: String,
        /// Whether `key` is a prefix.
        prefix: bool,
    },
}

impl KvOp {
    /// Whether the op can change the store.
    pub fn is_write(&self) -> bool {
        !matches!(self, KvOp::Range { .. })
    }

    /// Whether the op touches `k`.
    pub fn touches(&self, k: &str) -> bool {
        let (key, prefix) = match self {
            KvOp::Range { key, prefix } | KvOp::Delete { key, prefix } => (key, *prefix),
            KvOp::Put { key, .. } => (key, false),
        };
        if prefix {
            k.starts_with(key.as_str())
        } else {
            k == key
        }
    }
}

/// A client request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Request {
    /// A transaction (plain KV requests are transactions without compares).
    Txn {
        /// Conditions; all must hold for `then` to run.
        conds: Vec<Cond>,
        /// Ops run when the conditions hold.
        then: Vec<KvOp>,
        /// Ops run otherwise.
        els: Vec<KvOp>,
    },
    /// A serializable (possibly stale, member-local) single-key read.
    SerializableGet {
        /// The key.
        key: String,
    },
    /// Grant a lease with a client-chosen ID.
    LeaseGrant {
        /// The lease ID.
        id: i64,
        /// Time to live in seconds.
        ttl: i64,
    },
    /// Revoke a lease (deletes its keys).
    LeaseRevoke {
        /// The lease ID.
        id: i64,
    },
    /// One keep-alive round trip.
    LeaseKeepAlive {
        /// The lease ID.
        id: i64,
    },
    /// Synthetic: the lease expires at some unobserved moment (added by the checker).
    LeaseExpire {
        /// The lease ID.
        id: i64,
    },
}

impl Request {
    /// A single-key linearizable Get.
    pub fn get(key: &str) -> Request {
        Request::Txn {
            conds: vec![],
            then: vec![KvOp::Range {
                key: key.to_owned(),
                prefix: false,
            }],
            els: vec![],
        }
    }

    /// A plain Put.
    pub fn put(key: &str, value: &str, lease: Option<i64>) -> Request {
        Request::Txn {
            conds: vec![],
            then: vec![KvOp::Put {
                key: key.to_owned(),
                value: value.to_owned(),
                lease,
            }],
            els: vec![],
        }
    }

    /// Whether the request can change the store.
    pub fn is_write(&self) -> bool {
        match self {
            Request::Txn { then, els, .. } => then.iter().chain(els).any(KvOp::is_write),
            Request::SerializableGet { .. } | Request::LeaseKeepAlive { .. } => false,
            Request::LeaseGrant { .. }
            | Request::LeaseRevoke { .. }
            | Request::LeaseExpire { .. } => true,
        }
    }

    /// The single key of a one-op, compare-free request, if it is one.
    pub fn single_key(&self) -> Option<&str> {
        match self {
            Request::Txn { conds, then, els } if conds.is_empty() && els.is_empty() => {
                match then.as_slice() {
                    [KvOp::Range { key, prefix: false }]
                    | [KvOp::Put { key, .. }]
                    | [KvOp::Delete { key, prefix: false }] => Some(key),
                    _ => None,
                }
            }
            Request::SerializableGet { key } => Some(key),
            _ => None,
        }
    }
}

/// A key as returned by a Range.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Kv {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// Revision of the key's creation.
    pub create_rev: i64,
    /// Revision of the key's last modification.
    pub mod_rev: i64,
    /// Number of modifications since creation.
    pub version: i64,
    /// Attached lease (0: none).
    pub lease: i64,
}

/// The result of one op inside a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvResult {
    /// Keys returned by a Range, sorted by key.
    Range(Vec<Kv>),
    /// A Put succeeded.
    Put,
    /// Number of keys a Delete removed.
    Delete(i64),
}

/// A response.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Response {
    /// A transaction's response.
    Txn {
        /// Whether the conditions held.
        succeeded: bool,
        /// The header revision.
        revision: i64,
        /// One result per op of the branch taken.
        results: Vec<KvResult>,
    },
    /// A lease request succeeded (keep-alive: TTL > 0).
    LeaseOk,
    /// The lease did not exist (revoke error, keep-alive TTL 0, put with a missing lease).
    LeaseNotFound,
}

/// One recorded operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// The client (one sequential process) that issued it.
    pub client: u32,
    /// Invocation time, nanoseconds since the start of the run.
    pub call: i64,
    /// Completion time; `None` when the outcome is unknown.
    pub ret: Option<i64>,
    /// What was asked.
    pub req: Request,
    /// What came back; `None` when unknown or failed.
    pub resp: Option<Response>,
    /// Whether the request failed with a definite error that means it had no effect
    /// (only reads are treated this way: a failed write is always of unknown outcome).
    pub failed: bool,
}

impl Op {
    /// Whether the outcome is unknown (a write that timed out or lost its connection).
    pub fn unknown(&self) -> bool {
        self.resp.is_none() && !self.failed
    }
}

/// A watch event as delivered to a watcher.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WatchEvent {
    /// The revision at which it happened.
    pub revision: i64,
    /// The key.
    pub key: String,
    /// `Some(value)` for a put, `None` for a delete.
    pub value: Option<String>,
}

/// What one watcher received (a logical stream: reconnections resume after the last
/// revision received).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchStream {
    /// The watcher's number.
    pub watcher: u32,
    /// The prefix watched.
    pub prefix: String,
    /// The revision the watch started from.
    pub start_revision: i64,
    /// Events in arrival order.
    pub events: Vec<WatchEvent>,
}

/// Everything a run recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// Client operations.
    pub ops: Vec<Op>,
    /// Watch streams.
    pub watches: Vec<WatchStream>,
    /// The store's complete event log for the workload's keys, read after healing by
    /// watching from revision 1 (the reference the other checks compare against).
    pub log: Vec<WatchEvent>,
    /// Keys and values read at the end, after healing (a final linearizable Range).
    pub final_state: BTreeMap<String, Kv>,
    /// Leaders that were paused and resumed during the run (the windows of the known
    /// etcd deviation [`crate::jepsen::check::STALE_LEADER_LEASES`]).
    pub paused_leaders: Vec<PausedLeader>,
}

/// A member that was the leader when it was paused (SIGSTOP) and was later resumed
/// (SIGCONT). Until it learns of the new term, its lessor still acts as the primary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PausedLeader {
    /// The member's name.
    pub member: String,
    /// When it was paused (nanoseconds since the workload started, as [`Op::call`]).
    pub paused: i64,
    /// When it was resumed (taken just before the signal was sent).
    pub resumed: i64,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ret = self
            .ret
            .map_or_else(|| "?".to_owned(), |r| format!("{:.3}", r as f64 / 1e9));
        write!(
            f,
            "client {:>2} [{:.3}s .. {}s] {} -> {}",
            self.client,
            self.call as f64 / 1e9,
            ret,
            describe_request(&self.req),
            match (&self.resp, self.failed) {
                (Some(r), _) => describe_response(r),
                (None, true) => "failed".to_owned(),
                (None, false) => "unknown".to_owned(),
            }
        )
    }
}

/// A short human-readable form of a request.
pub fn describe_request(req: &Request) -> String {
    fn op(o: &KvOp) -> String {
        match o {
            KvOp::Range { key, prefix } => format!("get({key}{})", if *prefix { "*" } else { "" }),
            KvOp::Put { key, value, lease } => match lease {
                Some(l) => format!("put({key}={value}, lease {l:x})"),
                None => format!("put({key}={value})"),
            },
            KvOp::Delete { key, prefix } => format!("del({key}{})", if *prefix { "*" } else { "" }),
        }
    }
    fn cond(c: &Cond) -> String {
        match c {
            Cond::Version(k, v) => format!("ver({k})=={v}"),
            Cond::ModRev(k, v) => format!("mod({k})=={v}"),
        }
    }
    match req {
        Request::Txn { conds, then, els } if conds.is_empty() && els.is_empty() => {
            then.iter().map(op).collect::<Vec<_>>().join("; ")
        }
        Request::Txn { conds, then, els } => format!(
            "if {} then {} else {}",
            conds.iter().map(cond).collect::<Vec<_>>().join(" && "),
            then.iter().map(op).collect::<Vec<_>>().join("; "),
            els.iter().map(op).collect::<Vec<_>>().join("; ")
        ),
        Request::SerializableGet { key } => format!("sget({key})"),
        Request::LeaseGrant { id, ttl } => format!("grant({id:x}, ttl {ttl})"),
        Request::LeaseRevoke { id } => format!("revoke({id:x})"),
        Request::LeaseKeepAlive { id } => format!("keepalive({id:x})"),
        Request::LeaseExpire { id } => format!("expire({id:x})"),
    }
}

/// A short human-readable form of a response.
pub fn describe_response(resp: &Response) -> String {
    match resp {
        Response::Txn {
            succeeded,
            revision,
            results,
        } => {
            let rs: Vec<String> = results
                .iter()
                .map(|r| match r {
                    KvResult::Range(kvs) if kvs.is_empty() => "nil".to_owned(),
                    KvResult::Range(kvs) => kvs
                        .iter()
                        .map(|kv| format!("{}={}@{}", kv.key, kv.value, kv.mod_rev))
                        .collect::<Vec<_>>()
                        .join(","),
                    KvResult::Put => "ok".to_owned(),
                    KvResult::Delete(n) => format!("deleted {n}"),
                })
                .collect();
            format!(
                "{}rev {} [{}]",
                if *succeeded { "" } else { "else, " },
                revision,
                rs.join("; ")
            )
        }
        Response::LeaseOk => "ok".to_owned(),
        Response::LeaseNotFound => "lease not found".to_owned(),
    }
}
