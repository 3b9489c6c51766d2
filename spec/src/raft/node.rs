//! [`Node`]: the public face of a Raft node. Inputs are methods; the output is a
//! [`Ready`] value that the executor (the server's node loop, the model checker, the test
//! simulation) carries out and then acknowledges with [`Node::advance`].
//!
//! # The executor contract
//!
//! Repeat, for as long as the node lives:
//!
//! 1. Feed inputs: [`Node::tick`] on every timer tick, [`Node::step`] for every message
//!    received from a peer, [`Node::propose`], [`Node::propose_conf_change`],
//!    [`Node::read_index`], [`Node::transfer_leader`] for client requests.
//! 2. If [`Node::has_ready`], take `let rd = node.ready()?`. Only one `Ready` may be
//!    outstanding.
//! 3. **Send** `rd.messages` (they depend on nothing unpersisted; may overlap with 4).
//! 4. **Persist**, in this order: `rd.snapshot` (if any) then `rd.entries` (appending, with
//!    any overlapping stored suffix replaced) then `rd.hard_state` (if any).
//!    [`Storage::persist_ready`] does exactly this for a [`Storage`]. If `rd.must_sync`,
//!    make it durable (one fsync) before going on.
//! 5. **Send** `rd.messages_after_persist` (votes, vote and append acknowledgements: they
//!    promise that state is durable).
//! 6. **Apply**: restore the application from `rd.snapshot` if any, then apply
//!    `rd.committed_entries` in order (through `spec::apply`), then answer the reads in
//!    `rd.read_states` once the applied index reaches each `ReadState::index`. Committed
//!    entries at or below the last index this member had persisted before `rd` (and no
//!    snapshot in `rd`) may be applied earlier, while 4 runs: they are committed and
//!    durable here already (etcd applies in parallel with its WAL sync the same way).
//! 7. **Advance**: `node.advance(rd.ack())`. The node then marks the entries stable,
//!    counts itself towards commit if leader, marks the committed entries applied and
//!    applies configuration changes among them.
//!
//! A crash may happen anywhere; on restart build a new node with [`Node::new`] over the
//! storage as it was persisted, and `Config::applied` set to what the application had
//! durably applied (0 if it restarts from the snapshot).

use super::config::Config;
use super::error::RaftError;
use super::message::Message;
use super::raft::Raft;
use super::storage::Storage;
use super::types::{
    ConfChange, ConfState, Entry, EntryPayload, HardState, LogIndex, NodeId, Proposed, ReadState,
    Role, Snapshot, SoftState, Term,
};

/// Everything the executor must do now, in the order given by the contract in the module
/// docs of [`super::node`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ready {
    /// Sequence number, echoed by [`Ready::ack`].
    pub number: u64,
    /// New soft state, if it changed since the previous Ready.
    pub soft_state: Option<SoftState>,
    /// New hard state to persist, if it changed.
    pub hard_state: Option<HardState>,
    /// Entries to append to storage (they may replace a stored suffix).
    pub entries: Vec<Entry>,
    /// Snapshot to persist and install in the application.
    pub snapshot: Option<Snapshot>,
    /// Messages that may be sent immediately (before persisting).
    pub messages: Vec<Message>,
    /// Messages that must be sent only after this Ready is persisted.
    pub messages_after_persist: Vec<Message>,
    /// Committed entries to apply, in order (after persisting).
    pub committed_entries: Vec<Entry>,
    /// Answers to ReadIndex requests.
    pub read_states: Vec<ReadState>,
    /// Whether persisting needs a sync (term, vote, entries or snapshot changed).
    pub must_sync: bool,
}

impl Ready {
    /// The acknowledgement to pass to [`Node::advance`] after carrying this Ready out.
    #[must_use]
    pub fn ack(&self) -> ReadyAck {
        ReadyAck {
            number: self.number,
        }
    }

    /// Whether the Ready asks nothing of the executor.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.soft_state.is_none()
            && self.hard_state.is_none()
            && self.entries.is_empty()
            && self.snapshot.is_none()
            && self.messages.is_empty()
            && self.messages_after_persist.is_empty()
            && self.committed_entries.is_empty()
            && self.read_states.is_empty()
    }
}

/// Acknowledges that a [`Ready`] was persisted, sent and applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReadyAck {
    /// The `Ready::number` acknowledged.
    pub number: u64,
}

/// What an outstanding Ready contained, to be marked done on `advance`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct InFlight {
    number: ReadySeq,
    last_entry: Option<(LogIndex, Term)>,
    snapshot_index: Option<LogIndex>,
    applying_to: LogIndex,
    /// The committed conf changes handed out, by index, to take effect on `advance`.
    conf_changes: Vec<(LogIndex, ConfChange)>,
}

/// The sequence number of the last Ready handed out. It only guards against mismatched
/// acknowledgements, so it is deliberately not part of the node's identity: all values
/// compare equal and hash alike, letting the model checker deduplicate states that differ
/// only in how many Readies were produced.
#[derive(Clone, Copy, Debug, Default)]
struct ReadySeq(u64);

impl PartialEq for ReadySeq {
    fn eq(&self, _other: &ReadySeq) -> bool {
        true
    }
}

impl Eq for ReadySeq {}

impl std::hash::Hash for ReadySeq {
    fn hash<H: std::hash::Hasher>(&self, _state: &mut H) {}
}

/// A Raft node over storage `S`. See the module docs for the executor contract.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Node<S: Storage> {
    raft: Raft<S>,
    prev_soft_state: SoftState,
    prev_hard_state: HardState,
    ready_number: ReadySeq,
    in_flight: Option<InFlight>,
}

impl<S: Storage> Node<S> {
    /// A node restored from `storage` (hard state, snapshot, log). For a new cluster,
    /// bootstrap each member's storage with the initial configuration as log entries
    /// ([`super::storage::bootstrap_entries`], [`super::MemStorage::new_bootstrapped`]); a
    /// member joining later starts with empty storage and learns everything from the log
    /// or a snapshot.
    ///
    /// # Errors
    /// An invalid config or a storage failure.
    pub fn new(config: Config, storage: S) -> Result<Node<S>, RaftError> {
        let raft = Raft::new(config, storage)?;
        let node = Node {
            prev_soft_state: raft.soft_state(),
            prev_hard_state: raft.hard_state(),
            raft,
            ready_number: ReadySeq(0),
            in_flight: None,
        };
        node.check_invariants();
        Ok(node)
    }

    // ----- inputs -----------------------------------------------------------------

    /// One logical clock tick: followers count towards an election timeout, leaders
    /// towards heartbeats and the check-quorum round.
    pub fn tick(&mut self) {
        self.raft.tick();
        self.debug_check();
    }

    /// Processes a message from a peer. Stale, misdirected or malformed messages are
    /// dropped.
    pub fn step(&mut self, message: Message) {
        self.raft.step(message);
        self.debug_check();
    }

    /// Proposes opaque application data.
    ///
    /// # Errors
    /// `ProposalDropped` when there is no leader to take it (or transfer in progress).
    pub fn propose(&mut self, data: Vec<u8>) -> Result<Proposed, RaftError> {
        let result = self.raft.propose(EntryPayload::Normal(data));
        self.debug_check();
        result
    }

    /// Proposes a single-member configuration change. It takes effect when its entry is
    /// applied (acknowledged by `advance`). Only one may be pending at a time.
    ///
    /// # Errors
    /// `ConfChangePending`, `InvalidConfChange` (would leave no voter), `ProposalDropped`.
    pub fn propose_conf_change(&mut self, change: ConfChange) -> Result<Proposed, RaftError> {
        let result = self.raft.propose(EntryPayload::ConfChange(change));
        self.debug_check();
        result
    }

    /// Requests a linearizable read point. The answer arrives as a [`ReadState`] carrying
    /// `ctx` in a later Ready (after a heartbeat quorum confirmed leadership). Contexts must
    /// be unique among pending requests.
    ///
    /// # Errors
    /// `NotLeader` on a follower that knows no leader. A leader that has not committed an
    /// entry of its term yet queues the request and answers it once its empty entry
    /// commits (as etcd-raft does); a leader that loses leadership first drops it.
    pub fn read_index(&mut self, ctx: Vec<u8>) -> Result<(), RaftError> {
        let result = self.raft.read_index(ctx);
        self.debug_check();
        result
    }

    /// Asks the leader to hand leadership to `to` (thesis §3.10): it brings `to` up to date
    /// and sends it `TimeoutNow`. Proposals are refused meanwhile; the transfer is
    /// abandoned after an election timeout.
    pub fn transfer_leader(&mut self, to: NodeId) {
        self.raft.transfer_leader(to);
        self.debug_check();
    }

    /// Forces an election timeout now (tests and model checking): starts a pre-vote or an
    /// election if this node may.
    pub fn campaign(&mut self) {
        self.raft.hup(false);
        self.debug_check();
    }

    /// Takes a snapshot at the applied index with the application's `data`, then compacts
    /// the log up to it.
    ///
    /// # Errors
    /// Storage errors (for example nothing new to snapshot).
    pub fn compact_log(&mut self, data: Vec<u8>) -> Result<(), RaftError> {
        let index = self.raft.log.applied;
        if index.0 == 0 {
            return Err(RaftError::SnapshotIndex { index });
        }
        let conf = self.raft.conf.clone();
        self.raft.log.storage.create_snapshot(index, conf, data)?;
        self.raft.log.storage.compact(index)?;
        self.debug_check();
        Ok(())
    }

    // ----- output -----------------------------------------------------------------

    /// Whether [`Node::ready`] would return something to do.
    #[must_use]
    pub fn has_ready(&self) -> bool {
        if self.in_flight.is_some() {
            return false;
        }
        let r = &self.raft;
        r.soft_state() != self.prev_soft_state
            || r.hard_state() != self.prev_hard_state
            || !r.log.unstable.entries.is_empty()
            || r.log.unstable.snapshot.is_some()
            || !r.msgs.is_empty()
            || !r.msgs_after_persist.is_empty()
            || !r.read_states.is_empty()
            || r.log.has_next_committed_entries()
    }

    /// Collects what the executor must do. Call [`Node::advance`] before the next `ready`.
    ///
    /// # Errors
    /// `ReadyNotAdvanced` if the previous Ready was not acknowledged.
    pub fn ready(&mut self) -> Result<Ready, RaftError> {
        if let Some(in_flight) = &self.in_flight {
            return Err(RaftError::ReadyNotAdvanced {
                number: in_flight.number.0,
            });
        }
        self.ready_number.0 += 1;
        let r = &mut self.raft;
        let soft = r.soft_state();
        let hard = r.hard_state();
        let soft_state = (soft != self.prev_soft_state).then(|| soft.clone());
        let hard_state = (hard != self.prev_hard_state).then(|| hard.clone());
        let must_sync = hard.term != self.prev_hard_state.term
            || hard.vote != self.prev_hard_state.vote
            || !r.log.unstable.entries.is_empty()
            || r.log.unstable.snapshot.is_some();
        let snapshot = r.log.unstable.snapshot.clone();
        let entries = r.log.unstable.entries.clone();
        let committed_entries = r.log.next_committed_entries(None);
        let applying_to = committed_entries
            .last()
            .map(|e| e.index)
            .or_else(|| snapshot.as_ref().map(|s| s.metadata.index))
            .unwrap_or(r.log.applying);
        r.log.applying = applying_to.max(r.log.applying);
        let conf_changes = committed_entries
            .iter()
            .filter_map(|e| match &e.payload {
                EntryPayload::ConfChange(cc) => Some((e.index, cc.clone())),
                _ => None,
            })
            .collect();
        let ready = Ready {
            number: self.ready_number.0,
            soft_state,
            hard_state,
            must_sync,
            messages: std::mem::take(&mut r.msgs),
            messages_after_persist: std::mem::take(&mut r.msgs_after_persist),
            read_states: std::mem::take(&mut r.read_states),
            entries,
            snapshot,
            committed_entries,
        };
        self.in_flight = Some(InFlight {
            number: ReadySeq(ready.number),
            last_entry: ready.entries.last().map(|e| (e.index, e.term)),
            snapshot_index: ready.snapshot.as_ref().map(|s| s.metadata.index),
            applying_to,
            conf_changes,
        });
        self.prev_soft_state = soft;
        self.prev_hard_state = hard;
        self.debug_check();
        Ok(ready)
    }

    /// The application refused the committed conf change at `index` of the outstanding
    /// Ready (etcd's `applyConfChange` when `ValidateConfigurationChange` fails, e.g. a
    /// member added through a follower whose view was stale): it will not change the
    /// configuration on [`Node::advance`]. Unknown indexes are ignored.
    pub fn refuse_conf_change(&mut self, index: LogIndex) {
        if let Some(in_flight) = self.in_flight.as_mut() {
            in_flight.conf_changes.retain(|(i, _)| *i != index);
        }
    }

    /// Acknowledges that the outstanding Ready was carried out (contract step 7).
    ///
    /// # Errors
    /// `UnexpectedAck` if `ack` is not for the outstanding Ready.
    pub fn advance(&mut self, ack: ReadyAck) -> Result<(), RaftError> {
        let Some(in_flight) = self.in_flight.take_if(|f| f.number.0 == ack.number) else {
            return Err(RaftError::UnexpectedAck { number: ack.number });
        };
        let log = &mut self.raft.log;
        if let Some(index) = in_flight.snapshot_index {
            log.stable_snap_to(index);
        }
        if let Some((index, term)) = in_flight.last_entry {
            log.stable_to(index, term);
        }
        log.applied = log.applied.max(in_flight.applying_to);
        for (_, cc) in &in_flight.conf_changes {
            self.raft.apply_conf_change(cc);
        }
        self.raft.on_persisted();
        self.debug_check();
        Ok(())
    }

    // ----- observation ------------------------------------------------------------

    /// This node's id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.raft.id
    }

    /// Current term.
    #[must_use]
    pub fn term(&self) -> Term {
        self.raft.term
    }

    /// Current role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.raft.role
    }

    /// Known leader of the current term.
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.leader
    }

    /// Current hard state (possibly not yet persisted).
    #[must_use]
    pub fn hard_state(&self) -> HardState {
        self.raft.hard_state()
    }

    /// Current soft state.
    #[must_use]
    pub fn soft_state(&self) -> SoftState {
        self.raft.soft_state()
    }

    /// Commit index.
    #[must_use]
    pub fn commit_index(&self) -> LogIndex {
        self.raft.log.committed
    }

    /// Applied index (acknowledged by the application).
    #[must_use]
    pub fn applied_index(&self) -> LogIndex {
        self.raft.log.applied
    }

    /// Index of the last entry (persisted or not).
    #[must_use]
    pub fn last_index(&self) -> LogIndex {
        self.raft.log.last_index()
    }

    /// Index of the first entry still in the log (after compaction).
    #[must_use]
    pub fn first_index(&self) -> LogIndex {
        self.raft.log.first_index()
    }

    /// Term of the entry at `index`, if still in the log.
    #[must_use]
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        self.raft.log.term(index)
    }

    /// Entries in `[lo, hi)` (persisted or not); `None` if compacted.
    #[must_use]
    pub fn entries(&self, lo: LogIndex, hi: LogIndex) -> Option<Vec<Entry>> {
        self.raft.log.slice(lo, hi, None).ok()
    }

    /// Configuration as of the applied index.
    #[must_use]
    pub fn conf_state(&self) -> &ConfState {
        &self.raft.conf
    }

    /// The leader's view of a member's replication progress.
    #[must_use]
    pub fn progress(&self, id: NodeId) -> Option<&super::progress::Progress> {
        if self.raft.role == Role::Leader {
            self.raft.progress.get(&id)
        } else {
            None
        }
    }

    /// The member leadership is being transferred to, if any.
    #[must_use]
    pub fn lead_transferee(&self) -> Option<NodeId> {
        self.raft.lead_transferee
    }

    /// The configuration this node was built with.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.raft.cfg
    }

    /// The storage (durable part of the log).
    #[must_use]
    pub fn storage(&self) -> &S {
        &self.raft.log.storage
    }

    /// Mutable access to the storage, for the executor's persist step.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.raft.log.storage
    }

    /// Checks every invariant of the node (panics on violation). Runs after every input
    /// in debug builds; the model checker calls it in release too.
    pub fn check_invariants(&self) {
        self.raft.check_invariants();
        if let Some(f) = &self.in_flight {
            assert_eq!(
                f.number, self.ready_number,
                "in-flight Ready is the last one"
            );
        }
    }

    fn debug_check(&self) {
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }
}
