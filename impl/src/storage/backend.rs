//! `spec::mvcc::Backend` on fjall: one keyspace per bucket (`bucket_key`, `bucket_meta`,
//! ...), each [`WriteBatch`] committed as one fjall batch (atomic through the journal).
//!
//! Each commit is timed into `etcd_disk_backend_commit_duration_seconds`
//! ([`crate::metrics::BACKEND_COMMIT`]).
//!
//! Durability (rule 2 of the trait): batches are not synced one by one; the node loop
//! syncs the shared journal once per Ready before acknowledging anything (see
//! [`super`]). A crash can lose the last batches, never part of one, and the Raft log
//! replays them because the applied index is written inside each batch.
//!
//! Deferred writes: while the node loop's fsync holds the journal, it applies entries
//! that were already durable ([`FjallBackend::defer`]); their batches then gather in
//! memory and go to fjall as one batch at [`FjallBackend::flush`], once the fsync is
//! done. Every read of the backend (`get`, `scan`, [`FjallBackend::view`]) flushes
//! first, so nothing ever reads fjall without the writes already applied, and every
//! commit to fjall happens under the lock of the held-back writes, so batches reach
//! fjall in the order they were written, whichever thread flushes them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use fjall::Keyspace;
use oxetcd_spec::mvcc::{Backend, BackendError, BatchOp, Bucket, Pairs, WriteBatch};

use super::{DataDir, StorageError};

/// `spec::mvcc::Backend` on fjall.
#[derive(Clone, Debug)]
pub struct FjallBackend {
    data: DataDir,
    buckets: BTreeMap<Bucket, KeyspaceHandle>,
    /// Writes held back while deferring (shared by clones: one backend, one buffer).
    deferred: Arc<Mutex<Deferred>>,
}

/// The writes held back by [`FjallBackend::defer`].
#[derive(Default)]
struct Deferred {
    /// Whether writes are held back now.
    on: bool,
    /// The batches held back, in order.
    ops: Vec<BatchOp>,
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred")
            .field("on", &self.on)
            .field("ops", &self.ops.len())
            .finish()
    }
}

/// A keyspace handle with a `Debug` the derive can use.
#[derive(Clone)]
struct KeyspaceHandle(Keyspace);

impl std::fmt::Debug for KeyspaceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyspace")
    }
}

fn keyspace_name(bucket: Bucket) -> String {
    format!("bucket_{}", String::from_utf8_lossy(bucket.name()))
}

fn backend_error(error: impl std::fmt::Display) -> BackendError {
    BackendError {
        message: error.to_string(),
    }
}

impl FjallBackend {
    /// Opens (creating) one keyspace per bucket in `data`.
    ///
    /// # Errors
    /// fjall's error.
    pub fn open(data: DataDir) -> Result<FjallBackend, StorageError> {
        let mut buckets = BTreeMap::new();
        for bucket in Bucket::ALL {
            let keyspace = data
                .db
                .keyspace(&keyspace_name(bucket), super::keyspace_options)
                .map_err(|source| StorageError::Fjall {
                    path: data.path.clone(),
                    source,
                })?;
            buckets.insert(bucket, KeyspaceHandle(keyspace));
        }
        Ok(FjallBackend {
            data,
            buckets,
            deferred: Arc::default(),
        })
    }

    /// Holds back the writes from now on, until [`FjallBackend::flush`] (see the module
    /// docs).
    pub fn defer(&self) {
        if let Ok(mut deferred) = self.deferred.lock() {
            deferred.on = true;
        }
    }

    /// Writes what was held back as one fjall batch and stops holding writes back.
    ///
    /// # Errors
    /// fjall's error (the held-back writes are then lost from the backend, not from the
    /// Raft log: the caller must stop, and a restart applies them again).
    pub fn flush(&self) -> Result<(), BackendError> {
        let mut deferred = self.lock_deferred()?;
        deferred.on = false;
        self.commit(std::mem::take(&mut deferred.ops))
    }

    /// The deferred writes, locked. Every commit to fjall happens under this lock, so
    /// batches reach fjall in the order they were written, whoever flushes them.
    fn lock_deferred(&self) -> Result<std::sync::MutexGuard<'_, Deferred>, BackendError> {
        self.deferred
            .lock()
            .map_err(|_| backend_error("deferred writes lock poisoned"))
    }

    /// Commits `ops` as one fjall batch, timed as a backend commit (called with the
    /// deferred writes locked).
    fn commit(&self, ops: Vec<BatchOp>) -> Result<(), BackendError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut fjall_batch = self.data.db.batch();
        for op in ops {
            match op {
                BatchOp::Put { bucket, key, value } => {
                    fjall_batch.insert(self.keyspace(bucket)?, key, value);
                }
                BatchOp::Delete { bucket, key } => fjall_batch.remove(self.keyspace(bucket)?, key),
            }
        }
        let started = std::time::Instant::now();
        let committed = fjall_batch.commit().map_err(backend_error);
        crate::metrics::BACKEND_COMMIT.observe(started.elapsed());
        committed
    }

    /// Writes anything held back, staying in the current mode: called before every read.
    fn flush_held(&self) -> Result<(), BackendError> {
        let mut deferred = self.lock_deferred()?;
        self.commit(std::mem::take(&mut deferred.ops))
    }

    fn keyspace(&self, bucket: Bucket) -> Result<&Keyspace, BackendError> {
        self.buckets
            .get(&bucket)
            .map(|handle| &handle.0)
            .ok_or_else(|| backend_error(format!("bucket {bucket:?} not opened")))
    }

    /// The data dir (for syncing).
    pub fn data_dir(&self) -> &DataDir {
        &self.data
    }

    /// Calls `visit` with every pair of every bucket, bucket by bucket in
    /// [`Bucket::ALL`] order and keys in order, from one consistent point-in-time view
    /// of the database (later writes are not seen). Stops at `visit`'s first error.
    ///
    /// # Errors
    /// fjall's read error, or `visit`'s.
    pub fn visit_all(
        &self,
        visit: impl FnMut(Bucket, &[u8], &[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        self.view().visit_all(visit)
    }

    /// A point-in-time view of every bucket, taken now: later writes are not seen by
    /// it, so it can be read on another thread while the node loop goes on applying.
    pub fn view(&self) -> BackendView {
        if let Err(error) = self.flush_held() {
            // The node loop stops on the same error at its own flush.
            tracing::error!("writing the deferred backend writes: {}", error.message);
        }
        BackendView {
            snapshot: self.data.db.snapshot(),
            buckets: self.buckets.clone(),
        }
    }

    /// Writes `pairs` (bucket, key, value) as one fjall batch.
    ///
    /// # Errors
    /// fjall's error.
    pub fn insert_all(&self, pairs: &[(Bucket, Vec<u8>, Vec<u8>)]) -> Result<(), BackendError> {
        let mut deferred = self.lock_deferred()?;
        self.commit(std::mem::take(&mut deferred.ops))?;
        let mut batch = self.data.db.batch();
        for (bucket, key, value) in pairs {
            batch.insert(self.keyspace(*bucket)?, key.as_slice(), value.as_slice());
        }
        batch.commit().map_err(backend_error)
    }
}

impl Backend for FjallBackend {
    fn get(&self, bucket: Bucket, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.flush_held()?;
        Ok(self
            .keyspace(bucket)?
            .get(key)
            .map_err(backend_error)?
            .map(|value| value.to_vec()))
    }

    fn scan(&self, bucket: Bucket, from: &[u8]) -> Result<Pairs, BackendError> {
        self.flush_held()?;
        let mut pairs = Vec::new();
        for item in self.keyspace(bucket)?.range(from..) {
            let (key, value) = item.into_inner().map_err(backend_error)?;
            pairs.push((key.to_vec(), value.to_vec()));
        }
        Ok(pairs)
    }

    fn write(&mut self, batch: WriteBatch) -> Result<(), BackendError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut deferred = self.lock_deferred()?;
        if deferred.on {
            deferred.ops.extend(batch.ops);
            return Ok(());
        }
        self.commit(batch.ops)
    }
}

/// A point-in-time view of the applied state ([`FjallBackend::view`]).
pub struct BackendView {
    snapshot: fjall::Snapshot,
    buckets: BTreeMap<Bucket, KeyspaceHandle>,
}

impl std::fmt::Debug for BackendView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendView").finish_non_exhaustive()
    }
}

impl BackendView {
    /// Calls `visit` with every pair of every bucket as of the view, bucket by bucket
    /// in [`Bucket::ALL`] order and keys in order. Stops at `visit`'s first error.
    ///
    /// # Errors
    /// fjall's read error, or `visit`'s.
    pub fn visit_all(
        &self,
        mut visit: impl FnMut(Bucket, &[u8], &[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        use fjall::Readable;
        for (bucket, handle) in &self.buckets {
            for item in self.snapshot.iter(&handle.0) {
                let (key, value) = item.into_inner().map_err(std::io::Error::other)?;
                visit(*bucket, &key, &value)?;
            }
        }
        Ok(())
    }

    /// Calls `visit` with every pair of `bucket` as of the view, in key order; stops at
    /// its first error.
    ///
    /// # Errors
    /// fjall's read error, or `visit`'s.
    pub fn visit(
        &self,
        bucket: Bucket,
        mut visit: impl FnMut(&[u8], &[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        use fjall::Readable;
        let handle = self
            .buckets
            .get(&bucket)
            .ok_or_else(|| std::io::Error::other(format!("bucket {bucket:?} not opened")))?;
        for item in self.snapshot.iter(&handle.0) {
            let (key, value) = item.into_inner().map_err(std::io::Error::other)?;
            visit(&key, &value)?;
        }
        Ok(())
    }

    /// The value of `key` in `bucket` as of the view.
    ///
    /// # Errors
    /// fjall's read error.
    pub fn get(&self, bucket: Bucket, key: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
        use fjall::Readable;
        let handle = self
            .buckets
            .get(&bucket)
            .ok_or_else(|| std::io::Error::other(format!("bucket {bucket:?} not opened")))?;
        Ok(self
            .snapshot
            .get(&handle.0, key)
            .map_err(std::io::Error::other)?
            .map(|value| value.to_vec()))
    }
}
