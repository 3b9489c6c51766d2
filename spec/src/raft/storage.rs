//! The durable log behind a node: the [`Storage`] trait and [`MemStorage`], its in-memory
//! implementation used by tests and the model checker (the server implements the trait on
//! fjall).
//!
//! Shape follows etcd-io/raft's `Storage` + `MemoryStorage`: the log starts after a
//! snapshot (index 0 when there is none); `first_index() - 1` is the snapshot index and
//! its term is still answerable by `term()`.

use super::error::StorageError;
use super::node::Ready;
use super::types::{ConfState, Entry, HardState, LogIndex, Snapshot, SnapshotMetadata, Term};

/// Durable Raft state: hard state, log entries after the latest snapshot, the snapshot.
///
/// # Correctness
/// - Everything written before a call returns must survive a crash once the executor has
///   synced (`Ready::must_sync`); reads must reflect all earlier writes.
/// - `append` replaces any existing entries at and after the first appended index
///   (a follower truncating a conflicting suffix) and must keep the log contiguous.
/// - `term(first_index() - 1)` answers the snapshot's term; smaller indexes are
///   `Compacted`, indexes after `last_index()` are `Unavailable`.
/// - `entries(lo, hi, max)` returns `[lo, hi)`, at least one entry if the range is non-empty,
///   stopping before the total size would exceed `max` bytes.
pub trait Storage {
    /// Hard state and the configuration as of the snapshot.
    ///
    /// # Errors
    /// A backend failure.
    fn initial_state(&self) -> Result<(HardState, ConfState), StorageError>;

    /// Entries in `[lo, hi)`, size-limited as described on the trait.
    ///
    /// # Errors
    /// `Compacted` if `lo <= snapshot index`, `Unavailable` if `hi > last_index + 1`.
    fn entries(
        &self,
        lo: LogIndex,
        hi: LogIndex,
        max_size_bytes: Option<u64>,
    ) -> Result<Vec<Entry>, StorageError>;

    /// Term of the entry at `index`.
    ///
    /// # Errors
    /// `Compacted` or `Unavailable` as described on the trait.
    fn term(&self, index: LogIndex) -> Result<Term, StorageError>;

    /// Index of the first entry still stored (snapshot index + 1).
    fn first_index(&self) -> LogIndex;

    /// Index of the last entry (the snapshot index if no entry follows it).
    fn last_index(&self) -> LogIndex;

    /// The latest snapshot.
    ///
    /// # Errors
    /// `Unavailable` if it cannot be produced right now (the leader retries later).
    fn snapshot(&self) -> Result<Snapshot, StorageError>;

    /// Appends `entries` (contiguous), replacing any stored suffix they overlap.
    ///
    /// # Errors
    /// `NotContiguous` on a gap; backend failures.
    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError>;

    /// Stores the hard state.
    ///
    /// # Errors
    /// Backend failures.
    fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), StorageError>;

    /// Replaces the log with `snapshot` (entries after it are discarded).
    ///
    /// # Errors
    /// `SnapshotOutOfDate` if older than the stored snapshot.
    fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), StorageError>;

    /// Records a snapshot of the application at `index` (which must be applied) with the
    /// configuration as of `index`.
    ///
    /// # Errors
    /// `SnapshotOutOfDate` if not newer than the stored one, `Unavailable` past the log.
    fn create_snapshot(
        &mut self,
        index: LogIndex,
        conf_state: ConfState,
        data: Vec<u8>,
    ) -> Result<(), StorageError>;

    /// Discards entries up to and including `index` (which must not exceed the snapshot
    /// index).
    ///
    /// # Errors
    /// `Compacted` if already compacted, `CompactBeyondSnapshot` past the snapshot.
    fn compact(&mut self, index: LogIndex) -> Result<(), StorageError>;

    /// Step 1 of the executor contract ([`super::node`]): writes a Ready's snapshot, entries
    /// and hard state, in that order. The caller then syncs if `ready.must_sync`.
    ///
    /// # Errors
    /// Whatever the writes return.
    fn persist_ready(&mut self, ready: &Ready) -> Result<(), StorageError> {
        if let Some(snapshot) = &ready.snapshot {
            self.apply_snapshot(snapshot.clone())?;
        }
        if !ready.entries.is_empty() {
            self.append(&ready.entries)?;
        }
        if let Some(hard_state) = &ready.hard_state {
            self.set_hard_state(hard_state.clone())?;
        }
        Ok(())
    }
}

/// In-memory [`Storage`]. `entries[0]` is a dummy entry holding the snapshot index and
/// term, as in etcd's `MemoryStorage`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MemStorage {
    hard_state: HardState,
    snapshot: Snapshot,
    entries: Vec<Entry>,
}

impl Default for MemStorage {
    fn default() -> Self {
        MemStorage::new()
    }
}

impl MemStorage {
    /// An empty storage with an empty configuration (a node that will join later).
    #[must_use]
    pub fn new() -> MemStorage {
        MemStorage {
            hard_state: HardState::default(),
            snapshot: Snapshot::default(),
            entries: vec![Entry::default()],
        }
    }

    /// An empty storage whose initial configuration is `conf_state`, held in the (empty)
    /// snapshot at index 0. Fine for a fixed membership; a member added later would never
    /// learn this configuration (it is not in the log), so clusters that may grow should
    /// use [`MemStorage::new_bootstrapped`].
    #[must_use]
    pub fn new_with_conf_state(conf_state: ConfState) -> MemStorage {
        let mut storage = MemStorage::new();
        storage.snapshot.metadata.conf_state = conf_state;
        storage
    }

    /// A storage bootstrapped as etcd does for a new cluster: one committed `AddNode`
    /// entry per initial voter (term 1, indexes 1..=n), so every member, including ones
    /// that join later and replay the log from index 1, derives the same configuration.
    /// Every initial member must be bootstrapped with the same voters in the same order.
    #[must_use]
    pub fn new_bootstrapped(voters: impl IntoIterator<Item = u64>) -> MemStorage {
        let mut storage = MemStorage::new();
        let entries = bootstrap_entries(voters);
        let commit = LogIndex(entries.len() as u64);
        storage.entries.extend(entries);
        storage.hard_state = HardState {
            term: Term(u64::from(commit.0 > 0)),
            vote: None,
            commit,
        };
        storage
    }

    /// The stored hard state.
    #[must_use]
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// All stored entries after the snapshot.
    #[must_use]
    pub fn stored_entries(&self) -> &[Entry] {
        &self.entries[1..]
    }

    fn offset(&self) -> u64 {
        self.entries[0].index.0
    }

    /// Checks the storage's internal consistency (panics on violation).
    pub fn check_invariants(&self) {
        assert!(!self.entries.is_empty(), "dummy entry present");
        assert!(
            self.entries[0].index >= self.snapshot.metadata.index,
            "compaction point not before the snapshot"
        );
        for pair in self.entries.windows(2) {
            assert_eq!(pair[0].index.next(), pair[1].index, "contiguous");
            assert!(pair[0].term <= pair[1].term, "terms non-decreasing");
        }
    }
}

impl Storage for MemStorage {
    fn initial_state(&self) -> Result<(HardState, ConfState), StorageError> {
        Ok((
            self.hard_state.clone(),
            self.snapshot.metadata.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        lo: LogIndex,
        hi: LogIndex,
        max_size_bytes: Option<u64>,
    ) -> Result<Vec<Entry>, StorageError> {
        let offset = self.offset();
        if lo.0 <= offset {
            return Err(StorageError::Compacted);
        }
        if hi.0 > self.last_index().0 + 1 {
            return Err(StorageError::Unavailable);
        }
        let lo_pos = usize::try_from(lo.0 - offset).map_err(|_| StorageError::Unavailable)?;
        let hi_pos = usize::try_from(hi.0 - offset).map_err(|_| StorageError::Unavailable)?;
        let slice = self.entries.get(lo_pos..hi_pos).unwrap_or(&[]);
        Ok(limit_size(slice, max_size_bytes))
    }

    fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        let offset = self.offset();
        if index.0 < offset {
            return Err(StorageError::Compacted);
        }
        let pos = usize::try_from(index.0 - offset).map_err(|_| StorageError::Unavailable)?;
        self.entries
            .get(pos)
            .map(|e| e.term)
            .ok_or(StorageError::Unavailable)
    }

    fn first_index(&self) -> LogIndex {
        LogIndex(self.offset() + 1)
    }

    fn last_index(&self) -> LogIndex {
        LogIndex(self.offset() + self.entries.len() as u64 - 1)
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        Ok(self.snapshot.clone())
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        for pair in entries.windows(2) {
            if pair[0].index.next() != pair[1].index {
                return Err(StorageError::NotContiguous);
            }
        }
        let first_stored = self.first_index();
        let last_new = entries[entries.len() - 1].index;
        if last_new < first_stored {
            return Ok(()); // entirely compacted already
        }
        let entries = if first.index < first_stored {
            let skip = usize::try_from(first_stored.0 - first.index.0)
                .map_err(|_| StorageError::NotContiguous)?;
            &entries[skip..]
        } else {
            entries
        };
        let start = entries[0].index.0;
        if start > self.last_index().0 + 1 {
            return Err(StorageError::NotContiguous);
        }
        let keep =
            usize::try_from(start - self.offset()).map_err(|_| StorageError::NotContiguous)?;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), StorageError> {
        self.hard_state = hard_state;
        Ok(())
    }

    fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), StorageError> {
        if snapshot.metadata.index < self.snapshot.metadata.index {
            return Err(StorageError::SnapshotOutOfDate);
        }
        self.entries = vec![Entry {
            term: snapshot.metadata.term,
            index: snapshot.metadata.index,
            payload: super::types::EntryPayload::Empty,
        }];
        self.snapshot = snapshot;
        Ok(())
    }

    fn create_snapshot(
        &mut self,
        index: LogIndex,
        conf_state: ConfState,
        data: Vec<u8>,
    ) -> Result<(), StorageError> {
        if index <= self.snapshot.metadata.index {
            return Err(StorageError::SnapshotOutOfDate);
        }
        let term = self.term(index)?;
        self.snapshot = Snapshot {
            metadata: SnapshotMetadata {
                index,
                term,
                conf_state,
            },
            data,
        };
        Ok(())
    }

    fn compact(&mut self, index: LogIndex) -> Result<(), StorageError> {
        let offset = self.offset();
        if index.0 <= offset {
            return Err(StorageError::Compacted);
        }
        if index > self.snapshot.metadata.index {
            return Err(StorageError::CompactBeyondSnapshot);
        }
        let pos = usize::try_from(index.0 - offset).map_err(|_| StorageError::Unavailable)?;
        if pos >= self.entries.len() {
            return Err(StorageError::Unavailable);
        }
        let dummy = Entry {
            term: self.entries[pos].term,
            index,
            payload: super::types::EntryPayload::Empty,
        };
        self.entries.drain(..=pos);
        self.entries.insert(0, dummy);
        Ok(())
    }
}

/// The bootstrap log of a new cluster (see [`MemStorage::new_bootstrapped`]): one
/// committed `AddNode` entry per voter, term 1, indexes 1..=n. A server storage seeds its
/// log with these entries and a hard state `{term: 1, vote: none, commit: n}`.
#[must_use]
pub fn bootstrap_entries(voters: impl IntoIterator<Item = u64>) -> Vec<Entry> {
    bootstrap_entries_with_context(voters.into_iter().map(|id| (id, Vec::new())))
}

/// As [`bootstrap_entries`], each `AddNode` carrying an application context (etcd puts
/// the member there, so that applying the entry also adds the member to the
/// application's membership). This is why a new etcd cluster serves at term 2: the
/// bootstrap entries hold term 1 and the first election moves past it.
#[must_use]
pub fn bootstrap_entries_with_context(
    voters: impl IntoIterator<Item = (u64, Vec<u8>)>,
) -> Vec<Entry> {
    voters
        .into_iter()
        .enumerate()
        .map(|(i, (id, context))| {
            let mut change = super::types::ConfChange::add_node(super::types::NodeId(id));
            change.context = context;
            Entry {
                term: Term(1),
                index: LogIndex(i as u64 + 1),
                payload: super::types::EntryPayload::ConfChange(change),
            }
        })
        .collect()
}

/// Seeds a new member's empty `storage` with the bootstrap `entries` (from
/// [`bootstrap_entries`] or [`bootstrap_entries_with_context`]), committed, under the
/// hard state `{term: 1, vote: none, commit: n}` (term 0 if there are none), as etcd's
/// raft does when a new cluster starts.
///
/// # Errors
/// The storage's.
pub fn bootstrap<S: Storage + ?Sized>(
    storage: &mut S,
    entries: &[Entry],
) -> Result<(), StorageError> {
    storage.append(entries)?;
    let commit = entries.last().map_or(LogIndex(0), |e| e.index);
    storage.set_hard_state(HardState {
        term: Term(u64::from(commit.0 > 0)),
        vote: None,
        commit,
    })
}

/// The longest prefix of `entries` whose total size stays within `max` bytes, but at
/// least one entry.
pub(crate) fn limit_size(entries: &[Entry], max: Option<u64>) -> Vec<Entry> {
    let Some(max) = max else {
        return entries.to_vec();
    };
    let mut total = 0u64;
    let mut out = Vec::new();
    for entry in entries {
        total += entry.size_bytes();
        if !out.is_empty() && total > max {
            break;
        }
        out.push(entry.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            term: Term(term),
            index: LogIndex(index),
            payload: super::super::types::EntryPayload::Normal(vec![index as u8]),
        }
    }

    #[test]
    fn append_truncates_conflicting_suffix_and_rejects_gaps() {
        let mut s = MemStorage::new();
        s.append(&[entry(1, 1), entry(2, 1), entry(3, 1)])
            .expect("append");
        s.append(&[entry(2, 2)]).expect("overwrite");
        assert_eq!(s.last_index(), LogIndex(2));
        assert_eq!(s.term(LogIndex(2)), Ok(Term(2)));
        assert_eq!(s.append(&[entry(5, 2)]), Err(StorageError::NotContiguous));
        s.check_invariants();
    }

    #[test]
    fn compaction_keeps_snapshot_term_and_refuses_older_indexes() {
        let mut s = MemStorage::new();
        s.append(&[entry(1, 1), entry(2, 1), entry(3, 2)])
            .expect("append");
        assert_eq!(
            s.compact(LogIndex(2)),
            Err(StorageError::CompactBeyondSnapshot)
        );
        s.create_snapshot(LogIndex(2), ConfState::with_voters([1]), b"s".to_vec())
            .expect("snapshot");
        s.compact(LogIndex(2)).expect("compact");
        assert_eq!(s.first_index(), LogIndex(3));
        assert_eq!(s.term(LogIndex(2)), Ok(Term(1)));
        assert_eq!(s.term(LogIndex(1)), Err(StorageError::Compacted));
        assert_eq!(
            s.entries(LogIndex(2), LogIndex(4), None),
            Err(StorageError::Compacted)
        );
        assert_eq!(
            s.entries(LogIndex(3), LogIndex(4), None),
            Ok(vec![entry(3, 2)])
        );
        s.check_invariants();
    }

    #[test]
    fn size_limit_returns_at_least_one_entry() {
        let es = vec![entry(1, 1), entry(2, 1), entry(3, 1)];
        assert_eq!(limit_size(&es, Some(1)).len(), 1);
        assert_eq!(limit_size(&es, Some(50)).len(), 2);
        assert_eq!(limit_size(&es, None).len(), 3);
    }
}
