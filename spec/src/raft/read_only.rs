//! ReadIndex bookkeeping on the leader (Raft thesis §6.4, etcd `read_only.go`,
//! `ReadOnlySafe`): each request records the commit index when it arrived and waits until
//! a quorum has answered a heartbeat carrying its context.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::types::{LogIndex, NodeId};

/// One pending read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ReadIndexStatus {
    /// Who asked (this node for local reads, else a follower).
    pub(crate) from: NodeId,
    /// Commit index when the request arrived.
    pub(crate) index: LogIndex,
    /// Members that answered a heartbeat carrying this context.
    pub(crate) acks: BTreeSet<NodeId>,
}

/// Pending reads in arrival order. Invariant: `queue` and `pending` hold the same contexts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct ReadOnly {
    pub(crate) pending: BTreeMap<Vec<u8>, ReadIndexStatus>,
    pub(crate) queue: VecDeque<Vec<u8>>,
}

impl ReadOnly {
    /// Records a request; a duplicate context is ignored (returns false).
    pub(crate) fn add_request(&mut self, ctx: Vec<u8>, from: NodeId, index: LogIndex) -> bool {
        if self.pending.contains_key(&ctx) {
            return false;
        }
        self.pending.insert(
            ctx.clone(),
            ReadIndexStatus {
                from,
                index,
                acks: BTreeSet::new(),
            },
        );
        self.queue.push_back(ctx);
        true
    }

    /// Records that `id` acknowledged `ctx`; returns the acks so far.
    pub(crate) fn recv_ack(&mut self, id: NodeId, ctx: &[u8]) -> Option<&BTreeSet<NodeId>> {
        let status = self.pending.get_mut(ctx)?;
        status.acks.insert(id);
        Some(&status.acks)
    }

    /// Removes and returns every request up to and including `ctx` (a quorum confirming a
    /// later heartbeat also confirms leadership for earlier requests).
    pub(crate) fn advance(&mut self, ctx: &[u8]) -> Vec<(Vec<u8>, ReadIndexStatus)> {
        let Some(pos) = self.queue.iter().position(|c| c.as_slice() == ctx) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for c in self.queue.drain(..=pos) {
            if let Some(status) = self.pending.remove(&c) {
                out.push((c, status));
            }
        }
        out
    }

    /// The most recent pending context (heartbeats carry it).
    pub(crate) fn last_pending(&self) -> Option<&Vec<u8>> {
        self.queue.back()
    }

    pub(crate) fn check_invariants(&self) {
        assert_eq!(
            self.queue.len(),
            self.pending.len(),
            "read queue matches map"
        );
    }
}
