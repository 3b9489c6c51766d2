//! The Raft log, hard state and snapshot on fjall: `spec::raft::Storage` for the server.
//!
//! Layout: keyspace `raft_log` maps the 8-byte big-endian index to `Entry::encode()`;
//! keyspace `raft` holds `hard_state` (`HardState::encode()`) and `snapshot`
//! (`Snapshot::encode()`). The first/last index and the hard state and snapshot are
//! cached in memory; entries are read from fjall. Nothing here syncs: the node loop
//! calls [`super::DataDir::sync`] once per Ready (see [`super`]).
//!
//! A joining member's data dir starts with an empty log and no configuration.
//! Installing a leader's snapshot moves the commit index with the snapshot record, in
//! one write.
//!
//! Opening checks the whole stored log (each entry decodes, indexes are contiguous and
//! follow the snapshot, terms never decrease) and reports a corrupt data dir instead of
//! truncating it.

use oxetcd_spec::raft::{
    ConfState, Entry, EntryPayload, HardState, LogIndex, Snapshot, SnapshotMetadata, Storage,
    StorageError as RaftStorageError, Term,
};

use super::{DataDir, StorageError};

const HARD_STATE_KEY: &[u8] = b"hard_state";
const SNAPSHOT_KEY: &[u8] = b"snapshot";

/// `spec::raft::Storage` on fjall.
#[derive(Debug)]
pub struct FjallRaftStorage {
    data: DataDir,
    hard_state: HardState,
    snapshot: Snapshot,
    /// The compaction point: entries at or below it are gone. Equal to the snapshot
    /// index except between `create_snapshot` and `compact`.
    offset: LogIndex,
    /// Term of the entry at `offset`.
    offset_term: Term,
    last_index: LogIndex,
}

fn backend_error(error: impl std::fmt::Display) -> RaftStorageError {
    RaftStorageError::Backend {
        reason: error.to_string(),
    }
}

fn index_key(index: LogIndex) -> [u8; 8] {
    index.0.to_be_bytes()
}

impl FjallRaftStorage {
    /// Opens the log in `data`. A data dir with no snapshot record is new: its initial
    /// configuration is `initial_conf` (every bootstrapping member gets the same one),
    /// recorded durably here.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] if a record does not decode or the log has a gap.
    pub fn open(data: DataDir, initial_conf: ConfState) -> Result<FjallRaftStorage, StorageError> {
        let fjall = |source| StorageError::Fjall {
            path: data.path.clone(),
            source,
        };
        let hard_state = match data.raft.get(HARD_STATE_KEY).map_err(fjall)? {
            None => HardState::default(),
            Some(bytes) => HardState::decode(&bytes)
                .map_err(|error| data.corrupt(format!("hard state: {error}")))?,
        };
        let snapshot = match data.raft.get(SNAPSHOT_KEY).map_err(fjall)? {
            Some(bytes) => Snapshot::decode(&bytes)
                .map_err(|error| data.corrupt(format!("snapshot record: {error}")))?,
            None => {
                let snapshot = Snapshot {
                    metadata: SnapshotMetadata {
                        index: LogIndex(0),
                        term: Term(0),
                        conf_state: initial_conf,
                    },
                    data: Vec::new(),
                };
                data.raft
                    .insert(SNAPSHOT_KEY, snapshot.encode())
                    .map_err(fjall)?;
                data.sync()?;
                snapshot
            }
        };
        let last_index = check_log(&data, &snapshot.metadata)?;
        if hard_state.commit > last_index {
            return Err(data.corrupt(format!(
                "hard state commit index {} is past the last log entry {}",
                hard_state.commit, last_index
            )));
        }
        let (offset, offset_term) = (snapshot.metadata.index, snapshot.metadata.term);
        tracing::info!(
            "etcdserver: recovered raft log: snapshot at index {offset}, entries {} to {last_index}",
            offset.next()
        );
        Ok(FjallRaftStorage {
            data,
            hard_state,
            snapshot,
            offset,
            offset_term,
            last_index,
        })
    }

    /// The stored hard state.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The stored snapshot's metadata.
    pub fn snapshot_metadata(&self) -> &SnapshotMetadata {
        &self.snapshot.metadata
    }

    /// The stored snapshot's data (the name of the snapshot file it was taken with;
    /// empty for a new or restored data dir).
    pub fn snapshot_data(&self) -> &[u8] {
        &self.snapshot.data
    }

    /// The data dir this log lives in.
    pub fn data_dir(&self) -> &DataDir {
        &self.data
    }

    fn offset(&self) -> LogIndex {
        self.offset
    }

    fn remove_range(
        &self,
        batch: &mut fjall::OwnedWriteBatch,
        from: LogIndex,
        to_inclusive: LogIndex,
    ) {
        let mut index = from;
        while index <= to_inclusive && index.0 != 0 {
            batch.remove(&self.data.log, index_key(index));
            index = index.next();
        }
    }
}

/// Reads the whole log once, checking it; returns the last index.
fn check_log(data: &DataDir, snapshot: &SnapshotMetadata) -> Result<LogIndex, StorageError> {
    let mut expected = snapshot.index.next();
    let mut last_term = snapshot.term;
    for item in data.log.range(index_key(expected)..) {
        let (key, value) = item.into_inner().map_err(|source| StorageError::Fjall {
            path: data.path.clone(),
            source,
        })?;
        let entry = Entry::decode(&value)
            .map_err(|error| data.corrupt(format!("log entry at key {key:?}: {error}")))?;
        if key[..] != index_key(entry.index) || entry.index != expected {
            return Err(data.corrupt(format!(
                "log has a gap or misplaced entry: expected index {expected}, found {}",
                entry.index
            )));
        }
        if entry.term < last_term {
            return Err(data.corrupt(format!("log term decreases at index {}", entry.index)));
        }
        last_term = entry.term;
        expected = expected.next();
    }
    Ok(expected.prev())
}

impl Storage for FjallRaftStorage {
    fn initial_state(&self) -> Result<(HardState, ConfState), RaftStorageError> {
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
    ) -> Result<Vec<Entry>, RaftStorageError> {
        if lo <= self.offset() {
            return Err(RaftStorageError::Compacted);
        }
        if hi > self.last_index.next() {
            return Err(RaftStorageError::Unavailable);
        }
        let mut out = Vec::new();
        let mut total = 0u64;
        for item in self.data.log.range(index_key(lo)..index_key(hi)) {
            let (_, value) = item.into_inner().map_err(backend_error)?;
            let entry = Entry::decode(&value).map_err(backend_error)?;
            total += entry.size_bytes();
            if !out.is_empty() && max_size_bytes.is_some_and(|max| total > max) {
                break;
            }
            out.push(entry);
        }
        Ok(out)
    }

    fn term(&self, index: LogIndex) -> Result<Term, RaftStorageError> {
        if index < self.offset() {
            return Err(RaftStorageError::Compacted);
        }
        if index == self.offset() {
            return Ok(self.offset_term);
        }
        if index > self.last_index {
            return Err(RaftStorageError::Unavailable);
        }
        let value = self
            .data
            .log
            .get(index_key(index))
            .map_err(backend_error)?
            .ok_or_else(|| backend_error(format!("log entry {index} missing")))?;
        Ok(Entry::decode(&value).map_err(backend_error)?.term)
    }

    fn first_index(&self) -> LogIndex {
        self.offset().next()
    }

    fn last_index(&self) -> LogIndex {
        self.last_index
    }

    fn snapshot(&self) -> Result<Snapshot, RaftStorageError> {
        Ok(self.snapshot.clone())
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), RaftStorageError> {
        for pair in entries.windows(2) {
            if pair[0].index.next() != pair[1].index {
                return Err(RaftStorageError::NotContiguous);
            }
        }
        let first_stored = self.first_index();
        let entries: Vec<&Entry> = entries.iter().filter(|e| e.index >= first_stored).collect();
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(()); // empty, or entirely compacted already
        };
        if first.index > self.last_index.next() {
            return Err(RaftStorageError::NotContiguous);
        }
        let mut batch = self.data.wal_db.batch();
        // A follower replacing a conflicting suffix: drop what the new entries do not cover.
        self.remove_range(&mut batch, last.index.next(), self.last_index);
        for entry in &entries {
            batch.insert(&self.data.log, index_key(entry.index), entry.encode());
        }
        batch.commit().map_err(backend_error)?;
        self.last_index = last.index;
        Ok(())
    }

    fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), RaftStorageError> {
        self.data
            .raft
            .insert(HARD_STATE_KEY, hard_state.encode())
            .map_err(backend_error)?;
        self.hard_state = hard_state;
        Ok(())
    }

    fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), RaftStorageError> {
        if snapshot.metadata.index < self.snapshot.metadata.index {
            return Err(RaftStorageError::SnapshotOutOfDate);
        }
        let mut batch = self.data.wal_db.batch();
        self.remove_range(&mut batch, self.offset.next(), self.last_index);
        batch.insert(&self.data.raft, SNAPSHOT_KEY, snapshot.encode());
        // The commit index covers the snapshot in the same batch: a restart never sees
        // a snapshot past its commit index (the Ready's hard state is written after).
        let mut hard_state = self.hard_state.clone();
        if hard_state.commit < snapshot.metadata.index {
            hard_state.commit = snapshot.metadata.index;
            batch.insert(&self.data.raft, HARD_STATE_KEY, hard_state.encode());
        }
        batch.commit().map_err(backend_error)?;
        self.hard_state = hard_state;
        self.last_index = snapshot.metadata.index;
        self.offset = snapshot.metadata.index;
        self.offset_term = snapshot.metadata.term;
        self.snapshot = snapshot;
        Ok(())
    }

    fn create_snapshot(
        &mut self,
        index: LogIndex,
        conf_state: ConfState,
        data: Vec<u8>,
    ) -> Result<(), RaftStorageError> {
        if index <= self.snapshot.metadata.index {
            return Err(RaftStorageError::SnapshotOutOfDate);
        }
        let term = self.term(index)?;
        let snapshot = Snapshot {
            metadata: SnapshotMetadata {
                index,
                term,
                conf_state,
            },
            data,
        };
        self.data
            .raft
            .insert(SNAPSHOT_KEY, snapshot.encode())
            .map_err(backend_error)?;
        // The compaction point stays where it is until `compact`.
        self.snapshot = snapshot;
        Ok(())
    }

    fn compact(&mut self, index: LogIndex) -> Result<(), RaftStorageError> {
        if index <= self.offset {
            return Err(RaftStorageError::Compacted);
        }
        if index > self.snapshot.metadata.index {
            return Err(RaftStorageError::CompactBeyondSnapshot);
        }
        let term = self.term(index)?;
        let mut batch = self.data.wal_db.batch();
        self.remove_range(&mut batch, self.offset.next(), index);
        batch.commit().map_err(backend_error)?;
        self.offset = index;
        self.offset_term = term;
        Ok(())
    }
}

/// Whether an entry carries a client command (not Raft's empty or conf-change entries).
pub fn command_bytes(entry: &Entry) -> Option<&[u8]> {
    match &entry.payload {
        EntryPayload::Normal(data) => Some(data),
        EntryPayload::Empty | EntryPayload::ConfChange(_) => None,
    }
}

#[cfg(test)]
mod tests;
