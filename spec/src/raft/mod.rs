//! Raft consensus as a pure state machine (Raft paper; Ongaro's thesis; etcd-io/raft's
//! separation of algorithm and I/O). Inputs are methods on [`Node`]; the output is a
//! [`Ready`] value that an executor carries out following the contract documented in
//! [`node`], then acknowledges with [`Node::advance`].
//!
//! What this is not: it does no I/O, keeps no clock (time is `tick()`), draws no OS
//! randomness (election jitter comes from a seeded [`rng::SplitMix64`] in the state) and
//! uses no hash-ordered collections, so the same inputs always give the same outputs and
//! the model checker can hash whole node states.
//!
//! Features: leader election with randomised timeouts, pre-vote (thesis §9.6) and
//! check-quorum (thesis §6.2) with the leader-lease rejection of disruptive votes (thesis
//! §4.2.3); log replication with the consistency check, fast back-off, probe/replicate/
//! snapshot flow control bounded by `max_inflight_msgs` and `max_size_per_msg`; commit by
//! counting current-term replicas only (Raft §5.4.2); a bound on uncommitted payload bytes
//! (`Config::max_uncommitted_entries_size`); ReadIndex (thesis §6.4; queued on a new leader
//! until its first commit in its term); leader
//! transfer (thesis §3.10); log compaction and snapshots (Raft §7); learners and
//! single-member configuration changes applied when applied (etcd style, one pending at a
//! time). [`InjectedBugs`] breaks one rule each, for the model checker.
//!
//! Bootstrapping: like etcd, a new cluster's members start with one committed `AddNode`
//! entry per initial voter ([`storage::bootstrap_entries`], [`MemStorage::new_bootstrapped`]),
//! so members added later learn the configuration by replaying the log or from a snapshot.
//!
//! Layout: [`types`] and [`message`] (domain values), [`node`] (inputs, `Ready`/`advance`),
//! `raft` (the algorithm), `log` (stable + unstable log), [`progress`], [`quorum`],
//! `read_only`, [`storage`] (trait + `MemStorage`), [`codec`] (versioned byte encoding),
//! [`describe`] (one-line renderings), [`sim`] (a deterministic in-process cluster used by
//! tests).

pub mod codec;
pub mod config;
pub mod describe;
pub mod error;
mod log;
pub mod message;
pub mod node;
pub mod progress;
pub mod quorum;
#[allow(
    clippy::module_inception,
    reason = "raft::raft mirrors etcd-io/raft's raft.go"
)]
mod raft;
mod read_only;
pub mod rng;
pub mod sim;

pub mod storage;
pub mod types;

pub use codec::DecodeError;
pub use config::{Config, InjectedBugs};
pub use error::{RaftError, StorageError};
pub use message::{Message, MessageKind};
pub use node::{Node, Ready, ReadyAck};
pub use progress::{Progress, ProgressState};
pub use storage::{MemStorage, Storage};
pub use types::{
    ConfChange, ConfChangeKind, ConfState, Entry, EntryPayload, HardState, LogIndex, NodeId,
    Proposed, ReadState, Role, Snapshot, SnapshotMetadata, SoftState, Term,
};
