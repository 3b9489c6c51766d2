//! Domain types of the Raft log and node state: identifiers, entries, hard/soft state,
//! snapshots, configuration state and membership changes.
//!
//! These are plain values (no protobuf): every type derives `Clone, Debug, PartialEq, Eq,
//! Hash` so whole node states can be hashed by the model checker. The byte encoding used on
//! disk and on the wire lives in [`super::codec`].

use std::collections::BTreeSet;
use std::fmt;

/// Identifier of a cluster member. `NodeId(0)` is never a valid member id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

/// A Raft term (Raft §5.1). Terms only grow on a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Term(pub u64);

/// A position in the replicated log. Index 0 is the empty prefix; the first entry is 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogIndex(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl LogIndex {
    /// The next index (`self + 1`), saturating.
    #[must_use]
    pub fn next(self) -> LogIndex {
        LogIndex(self.0.saturating_add(1))
    }

    /// The previous index (`self - 1`), saturating at 0.
    #[must_use]
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }
}

impl Term {
    /// The next term (`self + 1`), saturating.
    #[must_use]
    pub fn next(self) -> Term {
        Term(self.0.saturating_add(1))
    }
}

/// What an entry carries. Raft never looks inside `Normal` data: it is the applier's
/// encoded command.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum EntryPayload {
    /// No payload: the entry a new leader appends at the start of its term (Raft §8),
    /// or a replacement for a refused conf change.
    #[default]
    Empty,
    /// Opaque application data (an encoded command).
    Normal(Vec<u8>),
    /// A single-member configuration change, applied when the entry is applied.
    ConfChange(ConfChange),
}

/// One log entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Term of the leader that created the entry.
    pub term: Term,
    /// Position in the log.
    pub index: LogIndex,
    /// Content.
    pub payload: EntryPayload,
}

impl Entry {
    /// Approximate size in bytes used for `max_size_per_msg` accounting: payload length
    /// plus a fixed 24-byte header. Never 0.
    #[must_use]
    pub fn size_bytes(&self) -> u64 {
        let payload = match &self.payload {
            EntryPayload::Empty => 0,
            EntryPayload::Normal(data) => data.len(),
            EntryPayload::ConfChange(cc) => 17 + cc.context.len(),
        };
        24 + payload as u64
    }
}

/// The state a node must persist before sending messages that depend on it
/// (Raft Figure 2: currentTerm, votedFor; plus the commit index as etcd does).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct HardState {
    /// Latest term this node has seen.
    pub term: Term,
    /// Candidate voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// Highest log index known committed. Persisting it is an optimisation (fewer
    /// entries to re-learn after restart); it never exceeds the persisted log.
    pub commit: LogIndex,
}

/// The role of a node (Raft §5.2 plus the pre-vote phase of thesis §9.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Follows a leader (or waits for one).
    #[default]
    Follower,
    /// Asking whether it could win an election, without bumping its term (pre-vote).
    PreCandidate,
    /// Asking for votes in a new term.
    Candidate,
    /// The leader of the current term.
    Leader,
}

/// Volatile state that the executor may want to observe (not persisted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SoftState {
    /// Leader of the current term as known by this node.
    pub leader: Option<NodeId>,
    /// Role of this node.
    pub role: Role,
}

/// The membership configuration: who votes and who only learns.
/// Invariant: `voters` and `learners` are disjoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConfState {
    /// Members whose votes and acknowledgements count towards quorums.
    pub voters: BTreeSet<NodeId>,
    /// Members that receive the log but never vote or count for commit.
    pub learners: BTreeSet<NodeId>,
}

impl ConfState {
    /// A configuration of the given voters and no learners.
    #[must_use]
    pub fn with_voters(voters: impl IntoIterator<Item = u64>) -> ConfState {
        ConfState {
            voters: voters.into_iter().map(NodeId).collect(),
            learners: BTreeSet::new(),
        }
    }

    /// Whether `id` is a voter or a learner.
    #[must_use]
    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }
}

/// Kind of a single-member configuration change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfChangeKind {
    /// Add a voter; if the node is currently a learner this promotes it.
    AddNode,
    /// Add a learner (ignored if the node is already a voter: no demotion).
    AddLearner,
    /// Remove a voter or learner. A leader that removes itself steps down.
    RemoveNode,
}

/// A single-member configuration change (etcd's `ConfChange`, not joint consensus).
/// At most one may be pending (proposed but not yet applied) at a time.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConfChange {
    /// What to do.
    pub kind: ConfChangeKind,
    /// The member concerned.
    pub node_id: NodeId,
    /// Opaque bytes for the application (etcd puts the member's URLs here).
    pub context: Vec<u8>,
}

impl ConfChange {
    /// Add `id` as a voter.
    #[must_use]
    pub fn add_node(id: NodeId) -> ConfChange {
        ConfChange {
            kind: ConfChangeKind::AddNode,
            node_id: id,
            context: Vec::new(),
        }
    }

    /// Add `id` as a learner.
    #[must_use]
    pub fn add_learner(id: NodeId) -> ConfChange {
        ConfChange {
            kind: ConfChangeKind::AddLearner,
            node_id: id,
            context: Vec::new(),
        }
    }

    /// Promote learner `id` to voter (an `AddNode` of an existing learner, as in etcd).
    #[must_use]
    pub fn promote(id: NodeId) -> ConfChange {
        ConfChange::add_node(id)
    }

    /// Remove `id`.
    #[must_use]
    pub fn remove_node(id: NodeId) -> ConfChange {
        ConfChange {
            kind: ConfChangeKind::RemoveNode,
            node_id: id,
            context: Vec::new(),
        }
    }

    /// The configuration after applying this change to `conf`.
    #[must_use]
    pub fn apply_to(&self, conf: &ConfState) -> ConfState {
        let mut next = conf.clone();
        let id = self.node_id;
        match self.kind {
            ConfChangeKind::AddNode => {
                next.learners.remove(&id);
                next.voters.insert(id);
            }
            ConfChangeKind::AddLearner => {
                if !next.voters.contains(&id) {
                    next.learners.insert(id);
                }
            }
            ConfChangeKind::RemoveNode => {
                next.voters.remove(&id);
                next.learners.remove(&id);
            }
        }
        next
    }
}

/// Metadata of a snapshot: the log prefix it replaces and the configuration at its end.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SnapshotMetadata {
    /// Index of the last entry the snapshot covers.
    pub index: LogIndex,
    /// Term of that entry.
    pub term: Term,
    /// The configuration as of `index`.
    pub conf_state: ConfState,
}

/// A snapshot of the application state machine at `metadata.index`. `data` is opaque to
/// Raft (the applier produces and restores it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Snapshot {
    /// What the snapshot covers.
    pub metadata: SnapshotMetadata,
    /// Application state, opaque to Raft.
    pub data: Vec<u8>,
}

/// The answer to a `read_index` request: once the application has applied up to `index`,
/// a read started when `request_ctx` was submitted is linearizable (Raft thesis §6.4).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReadState {
    /// Commit index at the time leadership was confirmed.
    pub index: LogIndex,
    /// The context bytes given to `read_index`, returned unchanged for correlation.
    pub request_ctx: Vec<u8>,
}

/// What `propose` did with a proposal, so the caller can correlate it with the entry that
/// later appears in `Ready::committed_entries`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proposed {
    /// Appended to this leader's log at `index` in `term`. The proposal succeeded iff the
    /// committed entry at `index` has this `term`; a different term means it was lost.
    Appended {
        /// Term of the appended entry.
        term: Term,
        /// Index of the appended entry.
        index: LogIndex,
    },
    /// Forwarded to the leader `to`; the caller must correlate through the data itself
    /// (for example a request id inside the command) or time out.
    Forwarded {
        /// The leader the proposal was sent to.
        to: NodeId,
    },
}
