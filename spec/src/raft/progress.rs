//! The leader's view of each follower: match/next indexes, flow-control state
//! (probe, replicate, snapshot) and the bounded window of in-flight appends.
//! Follows etcd-io/raft `tracker/progress.go` and `tracker/inflights.go`.

use std::collections::VecDeque;

use super::types::LogIndex;

/// Flow-control state of one follower.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProgressState {
    /// Unknown position: at most one append per heartbeat interval until one succeeds.
    #[default]
    Probe,
    /// Known position: stream appends optimistically, bounded by the inflight window.
    Replicate,
    /// A snapshot is being sent; appends pause until it is acknowledged.
    Snapshot,
}

/// Bounded FIFO of the last index of each in-flight append (`max_inflight_msgs`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Inflights {
    /// Last index of each in-flight `App`, increasing.
    pub indexes: VecDeque<LogIndex>,
    /// Capacity (`Config::max_inflight_msgs`).
    pub capacity: usize,
}

impl Inflights {
    /// Whether no more appends may be sent.
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.indexes.len() >= self.capacity
    }

    /// Records an append ending at `index`.
    pub fn add(&mut self, index: LogIndex) {
        self.indexes.push_back(index);
    }

    /// Frees every append ending at or before `index`.
    pub fn free_to(&mut self, index: LogIndex) {
        while self.indexes.front().is_some_and(|i| *i <= index) {
            self.indexes.pop_front();
        }
    }

    /// Frees the oldest append (a heartbeat response proves the follower is alive).
    pub fn free_first_one(&mut self) {
        self.indexes.pop_front();
    }
}

/// Replication progress of one member, as tracked by the leader.
/// Invariants: `matched < next`; `inflights.len() <= capacity`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Progress {
    /// Highest index known replicated on the member.
    pub matched: LogIndex,
    /// Next index to send.
    pub next: LogIndex,
    /// Flow-control state.
    pub state: ProgressState,
    /// Index of the snapshot being sent (in `Snapshot` state).
    pub pending_snapshot: LogIndex,
    /// Heard from since the last check-quorum round.
    pub recent_active: bool,
    /// In `Probe`: an append was sent and no answer has come yet.
    pub probe_sent: bool,
    /// In-flight appends (`Replicate`).
    pub inflights: Inflights,
    /// Whether the member is a learner.
    pub is_learner: bool,
}

impl Progress {
    /// A fresh progress probing from `next`.
    #[must_use]
    pub fn new(next: LogIndex, inflight_capacity: usize, is_learner: bool) -> Progress {
        Progress {
            matched: LogIndex(0),
            next,
            state: ProgressState::Probe,
            pending_snapshot: LogIndex(0),
            recent_active: false,
            probe_sent: false,
            inflights: Inflights {
                indexes: VecDeque::new(),
                capacity: inflight_capacity,
            },
            is_learner,
        }
    }

    fn reset_state(&mut self, state: ProgressState) {
        self.probe_sent = false;
        self.pending_snapshot = LogIndex(0);
        self.state = state;
        self.inflights.indexes.clear();
    }

    /// Enter probe state; after a snapshot, continue after it.
    pub fn become_probe(&mut self) {
        if self.state == ProgressState::Snapshot {
            let pending = self.pending_snapshot;
            self.reset_state(ProgressState::Probe);
            self.next = self.matched.next().max(pending.next());
        } else {
            self.reset_state(ProgressState::Probe);
            self.next = self.matched.next();
        }
    }

    /// Enter replicate state.
    pub fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next = self.matched.next();
    }

    /// Enter snapshot state for a snapshot at `index`.
    pub fn become_snapshot(&mut self, index: LogIndex) {
        self.reset_state(ProgressState::Snapshot);
        self.pending_snapshot = index;
    }

    /// An acknowledgement up to `index` arrived; returns whether `matched` grew.
    pub fn maybe_update(&mut self, index: LogIndex) -> bool {
        let mut updated = false;
        if self.matched < index {
            self.matched = index;
            updated = true;
            self.probe_sent = false;
        }
        self.next = self.next.max(index.next());
        updated
    }

    /// A rejection of an append at `rejected` with hint `match_hint` (the follower's
    /// largest plausibly matching index). Returns whether `next` moved.
    pub fn maybe_decr_to(&mut self, rejected: LogIndex, match_hint: LogIndex) -> bool {
        if self.state == ProgressState::Replicate {
            // Stale rejection: it refers to an index we already know matches.
            if rejected <= self.matched {
                return false;
            }
            self.next = self.matched.next();
            return true;
        }
        if self.next.prev() != rejected {
            return false; // stale
        }
        self.next = rejected
            .min(match_hint.next())
            .max(self.matched.next())
            .max(LogIndex(1));
        self.probe_sent = false;
        true
    }

    /// Whether sending appends is paused.
    #[must_use]
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.is_full(),
            ProgressState::Snapshot => true,
        }
    }

    /// Checks the invariants listed on the type (panics on violation).
    pub fn check_invariants(&self) {
        assert!(
            self.matched < self.next,
            "match {} < next {}",
            self.matched,
            self.next
        );
        assert!(
            self.inflights.indexes.len() <= self.inflights.capacity,
            "inflights bounded"
        );
    }
}
