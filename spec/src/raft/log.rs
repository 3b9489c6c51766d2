//! The node's view of the log: the durable [`Storage`] prefix plus an unstable tail (entries
//! and possibly a snapshot not yet persisted), and the commit/applied indexes.
//! Follows etcd-io/raft `log.go` + `log_unstable.go`.

use super::storage::{Storage, limit_size};
use super::types::{Entry, LogIndex, Snapshot, Term};

/// Entries and snapshot not yet persisted. Invariant: `entries[i].index == offset + i`;
/// with a snapshot, `offset == snapshot.index + 1`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Unstable {
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) offset: LogIndex,
}

/// Storage + unstable tail + commit/applied bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RaftLog<S: Storage> {
    pub(crate) storage: S,
    pub(crate) unstable: Unstable,
    /// Highest index known committed.
    pub(crate) committed: LogIndex,
    /// Highest index handed to the application in a `Ready` (not yet acknowledged).
    pub(crate) applying: LogIndex,
    /// Highest index the application acknowledged as applied.
    pub(crate) applied: LogIndex,
}

impl<S: Storage> RaftLog<S> {
    pub(crate) fn new(storage: S, committed: LogIndex, applied: LogIndex) -> RaftLog<S> {
        let last = storage.last_index();
        let first = storage.first_index();
        let applied = applied.max(first.prev()).min(committed);
        RaftLog {
            storage,
            unstable: Unstable {
                snapshot: None,
                entries: Vec::new(),
                offset: last.next(),
            },
            committed,
            applying: applied,
            applied,
        }
    }

    pub(crate) fn first_index(&self) -> LogIndex {
        match &self.unstable.snapshot {
            Some(s) => s.metadata.index.next(),
            None => self.storage.first_index(),
        }
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        if let Some(last) = self.unstable.entries.last() {
            return last.index;
        }
        match &self.unstable.snapshot {
            Some(s) => s.metadata.index,
            None => self.storage.last_index(),
        }
    }

    /// Last index known durable (only meaningful with no unstable snapshot).
    pub(crate) fn persisted_index(&self) -> LogIndex {
        if self.unstable.snapshot.is_some() {
            return LogIndex(0);
        }
        self.unstable.offset.prev().min(self.storage.last_index())
    }

    /// Term at `index`, or `None` if compacted or beyond the log.
    pub(crate) fn term(&self, index: LogIndex) -> Option<Term> {
        if index.0 == 0 {
            return Some(Term(0));
        }
        if index >= self.unstable.offset {
            let pos = usize::try_from(index.0 - self.unstable.offset.0).ok()?;
            return self.unstable.entries.get(pos).map(|e| e.term);
        }
        if let Some(s) = &self.unstable.snapshot {
            return (s.metadata.index == index).then_some(s.metadata.term);
        }
        self.storage.term(index).ok()
    }

    pub(crate) fn last_term(&self) -> Term {
        self.term(self.last_index()).unwrap_or_default()
    }

    pub(crate) fn match_term(&self, index: LogIndex, term: Term) -> bool {
        self.term(index) == Some(term)
    }

    /// Raft §5.4.1: is a log ending at (`index`, `term`) at least as up-to-date as ours?
    pub(crate) fn is_up_to_date(&self, index: LogIndex, term: Term) -> bool {
        let last_term = self.last_term();
        term > last_term || (term == last_term && index >= self.last_index())
    }

    /// Entries in `[lo, hi)`, size-limited. `Err(())` if `lo` is compacted.
    pub(crate) fn slice(
        &self,
        lo: LogIndex,
        hi: LogIndex,
        max: Option<u64>,
    ) -> Result<Vec<Entry>, ()> {
        if lo >= hi {
            return Ok(Vec::new());
        }
        if lo < self.first_index() {
            return Err(());
        }
        let mut out = Vec::new();
        if lo < self.unstable.offset {
            let stored_hi = hi.min(self.unstable.offset);
            out = self.storage.entries(lo, stored_hi, max).map_err(|_| ())?;
            if (out.len() as u64) < stored_hi.0 - lo.0 {
                return Ok(out);
            }
        }
        if hi > self.unstable.offset {
            let start = lo.max(self.unstable.offset);
            let a = usize::try_from(start.0 - self.unstable.offset.0).map_err(|_| ())?;
            let b = usize::try_from(hi.0 - self.unstable.offset.0).map_err(|_| ())?;
            let tail = self.unstable.entries.get(a..b).ok_or(())?;
            out.extend_from_slice(tail);
        }
        Ok(limit_size(&out, max))
    }

    /// The first index in `entries` whose term differs from ours (or that we lack), or
    /// `None` if all match.
    fn find_conflict(&self, entries: &[Entry]) -> Option<LogIndex> {
        entries
            .iter()
            .find(|e| !self.match_term(e.index, e.term))
            .map(|e| e.index)
    }

    /// Whether appending `entries` would replace a committed entry.
    pub(crate) fn conflicts_with_committed(&self, entries: &[Entry]) -> bool {
        self.find_conflict(entries)
            .is_some_and(|conflict| conflict <= self.committed)
    }

    /// Fast back-off (etcd `findConflictByTerm`): the largest index <= `index` whose term
    /// is <= `term`, with that term.
    pub(crate) fn find_conflict_by_term(&self, index: LogIndex, term: Term) -> (LogIndex, Term) {
        let mut i = index.min(self.last_index());
        loop {
            match self.term(i) {
                Some(t) if t > term => i = i.prev(),
                Some(t) => return (i, t),
                None => return (i, Term(0)),
            }
            if i.0 == 0 {
                return (i, Term(0));
            }
        }
    }

    /// AppendEntries receiver (Raft Figure 2): if our log has (`prev_index`, `prev_term`),
    /// append `entries` (truncating conflicts), advance commit to
    /// min(`commit`, last new index) and return the last new index.
    pub(crate) fn maybe_append(
        &mut self,
        prev_index: LogIndex,
        prev_term: Term,
        commit: LogIndex,
        entries: &[Entry],
    ) -> Option<LogIndex> {
        if !self.match_term(prev_index, prev_term) {
            return None;
        }
        let last_new = LogIndex(prev_index.0 + entries.len() as u64);
        if let Some(conflict) = self.find_conflict(entries) {
            assert!(
                conflict > self.committed,
                "conflict at {conflict} with committed entry (committed {})",
                self.committed
            );
            let skip = usize::try_from(conflict.0 - prev_index.0 - 1).unwrap_or(usize::MAX);
            self.append(&entries[skip..]);
        }
        self.commit_to(commit.min(last_new));
        Some(last_new)
    }

    /// Appends entries to the unstable tail, truncating anything at or after the first.
    pub(crate) fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        assert!(first.index > self.committed, "append below commit");
        let after = first.index;
        let u = &mut self.unstable;
        if after == LogIndex(u.offset.0 + u.entries.len() as u64) {
            u.entries.extend_from_slice(entries);
        } else if after <= u.offset {
            // Replaces the whole unstable tail and some stored entries.
            u.offset = after;
            u.entries = entries.to_vec();
        } else {
            let keep = usize::try_from(after.0 - u.offset.0).unwrap_or(usize::MAX);
            u.entries.truncate(keep);
            u.entries.extend_from_slice(entries);
        }
    }

    pub(crate) fn commit_to(&mut self, index: LogIndex) {
        if index > self.committed {
            assert!(
                index <= self.last_index(),
                "commit {index} beyond last index {}",
                self.last_index()
            );
            self.committed = index;
        }
    }

    /// Commits `index` if it is beyond the commit index and has `term`.
    pub(crate) fn maybe_commit(&mut self, index: LogIndex, term: Term) -> bool {
        if index > self.committed && self.term(index) == Some(term) {
            self.commit_to(index);
            return true;
        }
        false
    }

    /// Replaces the log with a snapshot to install.
    pub(crate) fn restore(&mut self, snapshot: Snapshot) {
        self.committed = snapshot.metadata.index;
        self.unstable.offset = snapshot.metadata.index.next();
        self.unstable.entries.clear();
        self.unstable.snapshot = Some(snapshot);
    }

    /// Committed entries not yet handed to the application.
    pub(crate) fn next_committed_entries(&self, max: Option<u64>) -> Vec<Entry> {
        if self.unstable.snapshot.is_some() {
            return Vec::new();
        }
        let lo = self.applying.max(self.first_index().prev()).next();
        let hi = self.committed.next();
        self.slice(lo, hi, max).unwrap_or_default()
    }

    pub(crate) fn has_next_committed_entries(&self) -> bool {
        self.unstable.snapshot.is_none()
            && self.committed > self.applying.max(self.first_index().prev())
    }

    /// Entries up to (`index`, `term`) are now durable.
    pub(crate) fn stable_to(&mut self, index: LogIndex, term: Term) {
        let u = &mut self.unstable;
        if index < u.offset {
            return;
        }
        let pos = usize::try_from(index.0 - u.offset.0).unwrap_or(usize::MAX);
        if u.entries.get(pos).is_some_and(|e| e.term == term) {
            u.entries.drain(..=pos);
            u.offset = index.next();
        }
    }

    /// The unstable snapshot at `index` is now durable.
    pub(crate) fn stable_snap_to(&mut self, index: LogIndex) {
        if self
            .unstable
            .snapshot
            .as_ref()
            .is_some_and(|s| s.metadata.index == index)
        {
            self.unstable.snapshot = None;
        }
    }

    /// Snapshot to send to a follower that is behind the first index.
    pub(crate) fn snapshot(&self) -> Option<Snapshot> {
        if let Some(s) = &self.unstable.snapshot {
            return Some(s.clone());
        }
        self.storage.snapshot().ok()
    }

    pub(crate) fn check_invariants(&self) {
        assert!(self.applied <= self.applying, "applied <= applying");
        assert!(self.applying <= self.committed, "applying <= committed");
        assert!(
            self.committed <= self.last_index(),
            "committed {} <= last {}",
            self.committed,
            self.last_index()
        );
        for (i, e) in self.unstable.entries.iter().enumerate() {
            assert_eq!(
                e.index.0,
                self.unstable.offset.0 + i as u64,
                "unstable contiguous"
            );
        }
        if let Some(s) = &self.unstable.snapshot {
            assert_eq!(
                s.metadata.index.next(),
                self.unstable.offset,
                "snapshot offset"
            );
        }
    }
}
