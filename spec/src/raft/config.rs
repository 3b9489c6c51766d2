//! Node configuration, including the switches that inject known bugs for the model
//! checker. Field names follow etcd-io/raft's `Config`.

use super::error::RaftError;
use super::types::{LogIndex, NodeId};

/// Deliberate protocol bugs, each breaking exactly one rule, so the model checker and the
/// simulation can prove they detect them. All off by default; never enable in production.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InjectedBugs {
    /// Grant a vote even after voting for someone else in the same term (breaks Raft
    /// §5.2 "at most one vote per term", hence election safety).
    pub grant_two_votes_in_one_term: bool,
    /// Commit an entry of a previous term as soon as a quorum stores it (breaks Raft
    /// §5.4.2; the Figure 8 scenario then loses a committed entry).
    pub commit_previous_term_by_counting: bool,
    /// Follower accepts `App` from a leader with a term lower than its own (breaks the
    /// term check of AppendEntries, Raft Figure 2 receiver rule 1).
    pub accept_append_without_term_check: bool,
}

/// Configuration of one Raft node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// This node's id (non-zero).
    pub id: NodeId,
    /// Election timeout in ticks; the randomised timeout is drawn from
    /// `[election_tick, 2 * election_tick)`. Must exceed `heartbeat_tick`.
    pub election_tick: u32,
    /// Heartbeat interval in ticks (leader).
    pub heartbeat_tick: u32,
    /// Index the application's state machine has already applied (restart). Committed
    /// entries are delivered from `applied + 1`. 0 means "from the snapshot".
    pub applied: LogIndex,
    /// Soft limit on the bytes of entries in one `App` message (at least one entry is
    /// always sent).
    pub max_size_per_msg: u64,
    /// Maximum number of `App` messages in flight to one follower in replicate state.
    pub max_inflight_msgs: usize,
    /// Leader only: bytes of entry payloads appended in this term but not yet committed
    /// above which proposals are dropped (`ProposalDropped`), as etcd-raft's
    /// `MaxUncommittedEntriesSize`. A proposal is always taken when nothing is
    /// uncommitted, and empty payloads always. 0: no limit.
    pub max_uncommitted_entries_size: u64,
    /// Leader steps down if it has not heard from a quorum within an election timeout;
    /// followers that heard from a leader recently ignore disruptive votes.
    pub check_quorum: bool,
    /// Run a pre-vote phase before bumping the term (thesis §9.6).
    pub pre_vote: bool,
    /// Drop proposals on followers instead of forwarding them to the leader.
    pub disable_proposal_forwarding: bool,
    /// Seed of the election-jitter generator. Give each node a different seed.
    pub seed: u64,
    /// Injected bugs (model checking only).
    pub bugs: InjectedBugs,
}

impl Config {
    /// etcd's defaults (election 10 ticks, heartbeat 1 tick, 1 MiB messages, 256
    /// inflight, check-quorum and pre-vote on), seeded by the id.
    #[must_use]
    pub fn new(id: NodeId) -> Config {
        Config {
            id,
            election_tick: 10,
            heartbeat_tick: 1,
            applied: LogIndex(0),
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            max_uncommitted_entries_size: 0,
            check_quorum: true,
            pre_vote: true,
            disable_proposal_forwarding: false,
            seed: id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5151,
            bugs: InjectedBugs::default(),
        }
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`RaftError::InvalidConfig`] naming the first bad field.
    pub fn validate(&self) -> Result<(), RaftError> {
        if self.id.0 == 0 {
            return Err(RaftError::InvalidConfig { field: "id" });
        }
        if self.heartbeat_tick == 0 {
            return Err(RaftError::InvalidConfig {
                field: "heartbeat_tick",
            });
        }
        if self.election_tick <= self.heartbeat_tick {
            return Err(RaftError::InvalidConfig {
                field: "election_tick",
            });
        }
        if self.max_inflight_msgs == 0 {
            return Err(RaftError::InvalidConfig {
                field: "max_inflight_msgs",
            });
        }
        Ok(())
    }
}
