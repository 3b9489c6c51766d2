//! Errors of the Raft module. Inputs return an error only for caller mistakes or refused
//! requests; a malformed or stale peer message is dropped, never an error.

use super::types::{LogIndex, NodeId};

/// Errors returned by the storage behind a node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum StorageError {
    /// The requested index is at or below the compaction point.
    #[error("requested index is unavailable due to compaction")]
    Compacted,
    /// The requested index is beyond the last entry.
    #[error("requested entry at index is unavailable")]
    Unavailable,
    /// The snapshot is older than the one already stored.
    #[error("requested index is older than the existing snapshot")]
    SnapshotOutOfDate,
    /// Compaction must not go past the stored snapshot.
    #[error("cannot compact beyond the stored snapshot")]
    CompactBeyondSnapshot,
    /// Appended entries would leave a gap in the log.
    #[error("appended entries are not contiguous with the log")]
    NotContiguous,
    /// A backend failure (the server treats this as fatal).
    #[error("storage backend failure: {reason}")]
    Backend {
        /// Human-readable cause.
        reason: String,
    },
}

/// Errors returned by [`super::Node`] inputs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum RaftError {
    /// A configuration field is invalid.
    #[error("invalid raft config: {field}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
    },
    /// The proposal was dropped (no leader known, leader transfer in progress, this node
    /// was removed, or forwarding is disabled). The caller may retry.
    #[error("raft proposal dropped")]
    ProposalDropped,
    /// This request needs the leader; `hint` is the leader if known.
    #[error("not leader")]
    NotLeader {
        /// The known leader, if any.
        hint: Option<NodeId>,
    },
    /// A configuration change is already pending (proposed but not applied).
    #[error("a configuration change is already pending")]
    ConfChangePending,
    /// The configuration change cannot be applied (for example removing the last voter).
    #[error("invalid configuration change")]
    InvalidConfChange,
    /// `ready()` was called while a previous `Ready` was not yet acknowledged.
    #[error("previous Ready {number} not yet advanced")]
    ReadyNotAdvanced {
        /// Number of the outstanding Ready.
        number: u64,
    },
    /// `advance` acknowledged a Ready that is not the outstanding one.
    #[error("advance for unknown Ready {number}")]
    UnexpectedAck {
        /// The number given.
        number: u64,
    },
    /// The requested index is not available for a snapshot.
    #[error("cannot snapshot at index {index}")]
    SnapshotIndex {
        /// The index.
        index: LogIndex,
    },
    /// The storage failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}
