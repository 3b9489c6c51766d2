//! The storage the applied state is written to: a small ordered key-value trait with
//! atomic batch writes, and [`MemBackend`], the in-memory implementation used by tests
//! and the model checker. The server provides a fjall implementation of the same trait.
//!
//! What is stored (all byte layouts are part of the data-dir format and never change
//! meaning; new data goes under new keys or buckets):
//! - [`Bucket::Key`]: revision key (see [`super::revision`]) -> `mvccpb.KeyValue` bytes,
//!   exactly etcd's `key` bucket.
//! - [`Bucket::Meta`]: `consistent_index` -> u64 BE (last applied Raft index),
//!   `finishedCompactRev` -> 8-byte BE main revision of the last compaction.
//! - [`Bucket::Lease`]: 8-byte BE lease ID -> `leasepb.Lease` bytes (ID, TTL).
//! - the remaining buckets belong to the auth, membership and v2 state.

use std::collections::BTreeMap;

/// A namespace inside the backend (bbolt's bucket; a fjall partition).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bucket {
    /// MVCC history: revision -> key-value.
    Key,
    /// Applied index, compaction progress, format version.
    Meta,
    /// Leases: ID -> granted TTL.
    Lease,
    /// Authentication and authorisation state.
    Auth,
    /// Cluster membership and cluster version.
    Members,
    /// The v2 store.
    V2,
}

impl Bucket {
    /// Every bucket, in a fixed order.
    pub const ALL: [Bucket; 6] = [
        Bucket::Key,
        Bucket::Meta,
        Bucket::Lease,
        Bucket::Auth,
        Bucket::Members,
        Bucket::V2,
    ];

    /// The bucket's name as etcd spells it where etcd has the bucket (`key`, `meta`,
    /// `lease`, `auth`, `members`); part of [`super::Store::hash_kv`]'s input for `key`.
    #[must_use]
    pub const fn name(self) -> &'static [u8] {
        match self {
            Bucket::Key => b"key",
            Bucket::Meta => b"meta",
            Bucket::Lease => b"lease",
            Bucket::Auth => b"auth",
            Bucket::Members => b"members",
            Bucket::V2 => b"v2",
        }
    }
}

/// Key-value pairs in key order, as [`Backend::scan`] returns them.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// One change inside a [`WriteBatch`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BatchOp {
    /// Set `key` to `value` in `bucket`.
    Put {
        /// Where.
        bucket: Bucket,
        /// The key.
        key: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
    },
    /// Remove `key` from `bucket` (no effect if absent).
    Delete {
        /// Where.
        bucket: Bucket,
        /// The key.
        key: Vec<u8>,
    },
}

/// Changes that must become durable together or not at all, applied in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct WriteBatch {
    /// The changes, in the order they apply (a later op on the same key wins).
    pub ops: Vec<BatchOp>,
}

impl WriteBatch {
    /// Adds a put.
    pub fn put(&mut self, bucket: Bucket, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push(BatchOp::Put { bucket, key, value });
    }

    /// Adds a delete.
    pub fn delete(&mut self, bucket: Bucket, key: Vec<u8>) {
        self.ops.push(BatchOp::Delete { bucket, key });
    }

    /// True if there is nothing to write.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A backend failed: the server must stop (fail-stop), since durability is unknown.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("backend failure: {message}")]
pub struct BackendError {
    /// What failed, for the log.
    pub message: String,
}

/// Ordered key-value storage with atomic batches.
///
/// # Correctness
///
/// An implementation must guarantee, for the applier's crash safety:
/// 1. **Atomic batches**: after [`Backend::write`] returns `Ok`, every op of the batch is
///    visible to reads; after a crash at any moment, either all ops of a batch are
///    present or none are. (The applied index is written in the same batch as the state
///    it covers, so a restart replays exactly the entries not yet applied.)
/// 2. **Durability**: when `write` returns `Ok`, the batch survives process crash and
///    power loss (for fjall: `PersistMode::SyncAll`, or the caller syncs before it
///    acknowledges anything that depends on the batch).
/// 3. **Order**: [`Backend::scan`] returns pairs in ascending byte-lexicographic key
///    order, each key at most once, reflecting every batch written before.
/// 4. **Isolation of buckets**: the same key in two buckets is two entries.
/// 5. **Failure**: an `Err` means durability is unknown; the caller must stop, not retry.
pub trait Backend {
    /// The value stored under `key`, if any.
    ///
    /// # Errors
    /// [`BackendError`] if the storage cannot be read.
    fn get(&self, bucket: Bucket, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError>;

    /// Every pair in `bucket` with `from <= key`, in ascending key order.
    ///
    /// # Errors
    /// [`BackendError`] if the storage cannot be read.
    fn scan(&self, bucket: Bucket, from: &[u8]) -> Result<Pairs, BackendError>;

    /// Applies `batch` atomically and durably (see the trait's correctness rules).
    ///
    /// # Errors
    /// [`BackendError`]; the caller must treat it as fatal.
    fn write(&mut self, batch: WriteBatch) -> Result<(), BackendError>;
}

/// An in-memory [`Backend`]: a `BTreeMap` per bucket. Never fails.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct MemBackend {
    buckets: BTreeMap<Bucket, BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemBackend {
    /// An empty backend.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries in `bucket` (for tests and metrics).
    #[must_use]
    pub fn len(&self, bucket: Bucket) -> usize {
        self.buckets.get(&bucket).map_or(0, BTreeMap::len)
    }

    /// True if `bucket` holds nothing.
    #[must_use]
    pub fn is_empty(&self, bucket: Bucket) -> bool {
        self.len(bucket) == 0
    }
}

impl Backend for MemBackend {
    fn get(&self, bucket: Bucket, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.buckets.get(&bucket).and_then(|b| b.get(key)).cloned())
    }

    fn scan(&self, bucket: Bucket, from: &[u8]) -> Result<Pairs, BackendError> {
        Ok(self.buckets.get(&bucket).map_or_else(Vec::new, |b| {
            b.range(from.to_vec()..)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }))
    }

    fn write(&mut self, batch: WriteBatch) -> Result<(), BackendError> {
        for op in batch.ops {
            match op {
                BatchOp::Put { bucket, key, value } => {
                    self.buckets.entry(bucket).or_default().insert(key, value);
                }
                BatchOp::Delete { bucket, key } => {
                    if let Some(b) = self.buckets.get_mut(&bucket) {
                        b.remove(&key);
                    }
                }
            }
        }
        Ok(())
    }
}
