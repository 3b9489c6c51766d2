//! What travels on the model's network: Raft messages between servers and the client
//! protocol of the replicated key-value map.

use std::cmp::Ordering;
use std::fmt;

use oxetcd_spec::raft::{EntryPayload, Message, describe};

use crate::kv::{KvOp, KvRet, RequestId};

/// A `spec::raft::Message` as a network payload. stateright orders actions by message, so
/// the wrapper adds a total order that agrees with `Eq` (every field takes part); the
/// spec type itself does not need to be ordered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RaftMsg(pub Message);

impl Ord for RaftMsg {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (&self.0, &other.0);
        (a.kind, a.from, a.to, a.term, a.log_term, a.index, a.commit)
            .cmp(&(b.kind, b.from, b.to, b.term, b.log_term, b.index, b.commit))
            .then_with(|| (a.reject, a.reject_hint).cmp(&(b.reject, b.reject_hint)))
            .then_with(|| a.context.cmp(&b.context))
            .then_with(|| a.entries.len().cmp(&b.entries.len()))
            .then_with(|| {
                a.entries
                    .iter()
                    .zip(&b.entries)
                    .map(|(x, y)| {
                        (x.term, x.index)
                            .cmp(&(y.term, y.index))
                            .then_with(|| payload_cmp(&x.payload, &y.payload))
                    })
                    .find(|o| o.is_ne())
                    .unwrap_or(Ordering::Equal)
            })
            .then_with(|| match (&a.snapshot, &b.snapshot) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(x), Some(y)) => {
                    let (mx, my) = (&x.metadata, &y.metadata);
                    (
                        mx.index,
                        mx.term,
                        &mx.conf_state.voters,
                        &mx.conf_state.learners,
                    )
                        .cmp(&(
                            my.index,
                            my.term,
                            &my.conf_state.voters,
                            &my.conf_state.learners,
                        ))
                        .then_with(|| x.data.cmp(&y.data))
                }
            })
    }
}

impl PartialOrd for RaftMsg {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn payload_cmp(a: &EntryPayload, b: &EntryPayload) -> Ordering {
    let rank = |p: &EntryPayload| match p {
        EntryPayload::Empty => 0,
        EntryPayload::Normal(_) => 1,
        EntryPayload::ConfChange(_) => 2,
    };
    match (a, b) {
        (EntryPayload::Normal(x), EntryPayload::Normal(y)) => x.cmp(y),
        (EntryPayload::ConfChange(x), EntryPayload::ConfChange(y)) => {
            (x.kind, x.node_id, &x.context).cmp(&(y.kind, y.node_id, &y.context))
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// A message of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Msg {
    /// Server to server: a Raft message, delivered to `Node::step`.
    Raft(RaftMsg),
    /// Client to server: perform `op`. `attempt` counts re-sends after "not leader"; the
    /// first send (attempt 0) is the operation's invocation.
    Request {
        /// Identifies the operation.
        request: RequestId,
        /// What to do.
        op: KvOp,
        /// 0 for the first send, then 1, 2, ...
        attempt: u8,
    },
    /// Server to client: the operation took effect with this result.
    Response {
        /// The operation answered.
        request: RequestId,
        /// Its result.
        ret: KvRet,
    },
    /// Server to client: this server could not take the request (no known leader, not
    /// yet able to serve reads); the client may try another server.
    NotLeader {
        /// The operation refused.
        request: RequestId,
        /// The attempt refused.
        attempt: u8,
    },
}

impl fmt::Display for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Msg::Raft(m) => f.write_str(&describe::message(&m.0)),
            Msg::Request {
                request,
                op,
                attempt,
            } => write!(
                f,
                "request c{}#{} {} (attempt {attempt})",
                request.client,
                request.seq,
                describe_op(op)
            ),
            Msg::Response { request, ret } => {
                write!(
                    f,
                    "response c{}#{} {}",
                    request.client,
                    request.seq,
                    describe_ret(ret)
                )
            }
            Msg::NotLeader { request, attempt } => write!(
                f,
                "not-leader c{}#{} (attempt {attempt})",
                request.client, request.seq
            ),
        }
    }
}

/// `put(k0=1)` / `get(k0)`.
pub fn describe_op(op: &KvOp) -> String {
    match op {
        KvOp::Put { key, value } => format!("put(k{key}={value})"),
        KvOp::Get { key } => format!("get(k{key})"),
    }
}

/// `ok` / `=1` / `=none`.
pub fn describe_ret(ret: &KvRet) -> String {
    match ret {
        KvRet::PutOk => "ok".to_owned(),
        KvRet::GetOk(Some(v)) => format!("={v}"),
        KvRet::GetOk(None) => "=none".to_owned(),
    }
}

/// The timers of a server: the coarse election timeout (one action instead of
/// `election_tick` ticks) and the leader's heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// The election timeout elapses: `Node::campaign`.
    Election,
    /// A leader's heartbeat interval elapses: one `Node::tick` (`heartbeat_tick` is 1).
    Heartbeat,
}

impl fmt::Display for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Timer::Election => "election timeout",
            Timer::Heartbeat => "heartbeat timer",
        })
    }
}
