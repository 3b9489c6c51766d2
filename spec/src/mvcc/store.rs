//! The revisioned store: range, put, delete-range, txn, compaction, hash and the watch
//! events of every revision (etcd 3.4 `mvcc` package plus the parts of
//! `etcdserver/apply.go` that shape KV responses).
//!
//! State: the whole uncompacted history (`revision -> record`, a mirror of the `key`
//! bucket) and a per-key index of revisions. Every change is also queued as a backend
//! write; [`Store::commit`] writes the queue as one atomic batch, and [`Store::open`]
//! rebuilds the in-memory state from the backend.

use std::collections::{BTreeMap, BTreeSet};

use super::backend::{Backend, BackendError, Bucket, MemBackend, WriteBatch};
use super::hash::Crc32c;
use super::kv::{DecodeError, Event, EventKind, KeyValue};
use super::request::{
    CompactionResponse, Compare, CompareResult, CompareTarget, DeleteRangeRequest,
    DeleteRangeResponse, HashKv, MvccError, PutRequest, PutResponse, RangeRequest, RangeResponse,
    RequestOp, ResponseOp, SortOrder, SortTarget, TxnRequest, TxnResponse,
};
use super::revision::Revision;
use super::validate;
use crate::lease::LeaseId;

/// Meta-bucket key of the last compaction's revision (etcd's name).
pub const FINISHED_COMPACT_KEY: &[u8] = b"finishedCompactRev";

/// Largest history for which debug builds re-check every invariant after each write.
pub const INVARIANT_CHECK_HISTORY_MAX: usize = 4096;

/// Answers "does this lease exist?" for puts that attach one.
pub trait LeaseCheck {
    /// True if `id` is a granted, unrevoked lease.
    fn lease_exists(&self, id: LeaseId) -> bool;
}

impl LeaseCheck for BTreeSet<LeaseId> {
    fn lease_exists(&self, id: LeaseId) -> bool {
        self.contains(&id)
    }
}

/// Why [`Store::open`] failed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum OpenError {
    /// The backend could not be read.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A stored entry is malformed.
    #[error("corrupt entry in bucket {bucket:?} at key {key:?}: {reason}")]
    Corrupt {
        /// Where.
        bucket: Bucket,
        /// The entry's key.
        key: Vec<u8>,
        /// What is wrong.
        reason: String,
    },
}

/// One entry of the history: the stored key-value and whether it is a tombstone
/// (a tombstone's `kv` holds only the key, as in etcd's `key` bucket).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Record {
    kv: KeyValue,
    tombstone: bool,
}

/// An open write transaction: everything it writes gets main revision `begin + 1`.
#[derive(Clone, Copy, Debug)]
struct WriteTxn {
    begin: i64,
    changes: i64,
}

impl WriteTxn {
    /// The revision reads inside the txn see (etcd: `beginRev`, plus one once it wrote).
    fn read_rev(self) -> i64 {
        if self.changes > 0 {
            self.begin + 1
        } else {
            self.begin
        }
    }

    fn next(&mut self) -> Revision {
        let r = Revision::new(self.begin + 1, self.changes);
        self.changes += 1;
        r
    }
}

/// The compares' outcome for a txn and, in op order, for the nested txns of the branch
/// taken (etcd's `compareToPath`, all evaluated before any op runs).
#[derive(Clone, Debug)]
struct TxnPath {
    succeeded: bool,
    nested: Vec<TxnPath>,
}

/// The revisioned key-value store.
///
/// Invariants (see [`Store::check_invariants`]): revisions in the history are at most
/// `current_revision`; every indexed revision is in the history and vice versa; the
/// compacted revision is below or at the current one; a key's revisions ascend.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Store<B = MemBackend> {
    backend: B,
    current: i64,
    compacted: i64,
    history: BTreeMap<Revision, Record>,
    index: BTreeMap<Vec<u8>, Vec<(Revision, bool)>>,
    lease_keys: BTreeMap<LeaseId, BTreeSet<Vec<u8>>>,
    pending: WriteBatch,
    events: Vec<Event>,
}

/// True if `k` lies in etcd's key range (`key`, `range_end`).
#[must_use]
pub fn in_range(k: &[u8], key: &[u8], range_end: &[u8]) -> bool {
    match range_end {
        [] => k == key,
        [0] => k >= key,
        end => k >= key && k < end,
    }
}

impl<B: Backend> Store<B> {
    /// A fresh store at revision 1 over `backend` (which should be empty).
    #[must_use]
    pub fn new(backend: B) -> Self {
        Self {
            backend,
            current: 1,
            compacted: -1,
            history: BTreeMap::new(),
            index: BTreeMap::new(),
            lease_keys: BTreeMap::new(),
            pending: WriteBatch::default(),
            events: Vec::new(),
        }
    }

    /// Rebuilds the store from what `backend` holds (restart). The current revision is
    /// the highest stored one, but never below the compacted revision (etcd's restore
    /// rule: compaction may have removed the newest tombstones) nor below 1.
    ///
    /// # Errors
    /// [`OpenError`] if the backend fails or holds malformed entries.
    pub fn open(backend: B) -> Result<Self, OpenError> {
        let mut s = Self::new(backend);
        if let Some(v) = s.backend.get(Bucket::Meta, FINISHED_COMPACT_KEY)? {
            let (rev, _) = Revision::from_key_bytes(&v).ok_or_else(|| OpenError::Corrupt {
                bucket: Bucket::Meta,
                key: FINISHED_COMPACT_KEY.to_vec(),
                reason: "not a revision".to_owned(),
            })?;
            s.compacted = rev.main;
        }
        for (k, v) in s.backend.scan(Bucket::Key, &[])? {
            let corrupt = |reason: String| OpenError::Corrupt {
                bucket: Bucket::Key,
                key: k.clone(),
                reason,
            };
            let (rev, tombstone) =
                Revision::from_key_bytes(&k).ok_or_else(|| corrupt("not a revision".into()))?;
            let kv = KeyValue::decode(&v).map_err(|e: DecodeError| corrupt(e.to_string()))?;
            s.index
                .entry(kv.key.clone())
                .or_default()
                .push((rev, tombstone));
            s.history.insert(rev, Record { kv, tombstone });
            s.current = s.current.max(rev.main);
        }
        s.current = s.current.max(s.compacted);
        let live: Vec<KeyValue> = s.live_in(&[0], &[0], s.current);
        for kv in live {
            if kv.lease != LeaseId::NONE {
                s.lease_keys.entry(kv.lease).or_default().insert(kv.key);
            }
        }
        s.check_invariants();
        Ok(s)
    }

    /// The backend (for reads of other buckets).
    #[must_use]
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// How many keys exist at the current revision: keys whose newest revision is not a
    /// tombstone (etcd's `etcd_debugging_mvcc_keys_total`).
    #[must_use]
    pub fn key_count(&self) -> usize {
        self.index
            .values()
            .filter(|revs| revs.last().is_some_and(|(_, tombstone)| !tombstone))
            .count()
    }

    /// The current revision: the last write's main revision (1 for a fresh store).
    #[must_use]
    pub fn current_revision(&self) -> i64 {
        self.current
    }

    /// The compacted revision; -1 if the store was never compacted (etcd's initial
    /// `compactMainRev`).
    #[must_use]
    pub fn compact_revision(&self) -> i64 {
        self.compacted
    }

    /// Live keys attached to `lease`, ascending.
    #[must_use]
    pub fn keys_of_lease(&self, lease: LeaseId) -> Vec<Vec<u8>> {
        self.lease_keys
            .get(&lease)
            .map_or_else(Vec::new, |s| s.iter().cloned().collect())
    }

    /// Writes everything queued since the last commit, plus `extra`, as one batch.
    ///
    /// # Errors
    /// [`BackendError`]: fatal, durability unknown.
    pub fn commit(&mut self, extra: WriteBatch) -> Result<(), BackendError> {
        let mut batch = std::mem::take(&mut self.pending);
        batch.ops.extend(extra.ops);
        if batch.is_empty() {
            return Ok(());
        }
        self.backend.write(batch)
    }

    /// The watch events produced since the last call, in revision order.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Asserts the store's invariants (debug builds call it after every write).
    ///
    /// # Panics
    /// If an invariant is broken: a bug in this module.
    pub fn check_invariants(&self) {
        assert!(self.compacted <= self.current, "compacted above current");
        assert!(self.current >= 1, "revision below 1");
        if let Some((last, _)) = self.history.last_key_value() {
            assert!(last.main <= self.current, "history beyond current revision");
        }
        let indexed: usize = self.index.values().map(Vec::len).sum();
        assert_eq!(indexed, self.history.len(), "index and history disagree");
        for (key, revs) in &self.index {
            assert!(!revs.is_empty(), "empty index entry");
            assert!(
                revs.windows(2).all(|w| w[0].0 < w[1].0),
                "revisions not ascending"
            );
            for (rev, tomb) in revs {
                let rec = self.history.get(rev).expect("indexed revision in history");
                assert_eq!(&rec.kv.key, key, "index key mismatch");
                assert_eq!(rec.tombstone, *tomb, "tombstone flag mismatch");
            }
        }
    }

    /// Debug builds check every invariant after each write while the history is small
    /// ([`INVARIANT_CHECK_HISTORY_MAX`] entries): the full check is linear in the
    /// history, and a debug-built server with a large store must stay usable.
    fn maybe_check_invariants(&self) {
        if cfg!(debug_assertions) && self.history.len() <= INVARIANT_CHECK_HISTORY_MAX {
            self.check_invariants();
        }
    }

    // ---- reads -------------------------------------------------------------------

    /// The latest record of `key` at or below `rev`, if it is a live value.
    fn latest(&self, key: &[u8], rev: i64) -> Option<&KeyValue> {
        let revs = self.index.get(key)?;
        let n = revs.partition_point(|(r, _)| r.main <= rev);
        let (r, tomb) = revs.get(n.checked_sub(1)?)?;
        if *tomb {
            return None;
        }
        self.history.get(r).map(|rec| &rec.kv)
    }

    /// The value of `key` at `rev`, or `None` if absent or `rev` is compacted.
    #[must_use]
    pub fn kv_at(&self, key: &[u8], rev: i64) -> Option<KeyValue> {
        if rev < self.compacted || rev < 1 {
            return None;
        }
        self.latest(key, rev).cloned()
    }

    /// Live key-values in the range at `rev`, in key order.
    fn live_in(&self, key: &[u8], range_end: &[u8], rev: i64) -> Vec<KeyValue> {
        let keys: Box<dyn Iterator<Item = &Vec<u8>>> = match range_end {
            [] => Box::new(self.index.get_key_value(key).map(|(k, _)| k).into_iter()),
            [0] => Box::new(self.index.range(key.to_vec()..).map(|(k, _)| k)),
            end if key < end => {
                Box::new(self.index.range(key.to_vec()..end.to_vec()).map(|(k, _)| k))
            }
            _ => Box::new(std::iter::empty()),
        };
        keys.filter_map(|k| self.latest(k, rev).cloned()).collect()
    }

    /// Checks a read revision like etcd's `rangeKeys`: future first, then compacted.
    fn read_revision(&self, requested: i64, current: i64) -> Result<i64, MvccError> {
        if requested > current {
            return Err(MvccError::FutureRevision);
        }
        let rev = if requested <= 0 { current } else { requested };
        if rev < self.compacted {
            return Err(MvccError::Compacted);
        }
        Ok(rev)
    }

    /// A range (etcd 3.4 `applierV3backend.Range`): validation, read revision checks,
    /// min/max filters, default sort rules, limit with `more`, count and keys-only.
    ///
    /// # Errors
    /// [`MvccError::EmptyKey`], [`MvccError::FutureRevision`], [`MvccError::Compacted`].
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        validate::check_range(req)?;
        let rev = self.read_revision(req.revision, self.current)?;
        Ok(self.range_at(req, rev, self.current))
    }

    fn range_at(&self, req: &RangeRequest, rev: i64, header: i64) -> RangeResponse {
        let mut kvs = self.live_in(&req.key, &req.range_end, rev);
        let count = kvs.len() as i64;
        if req.count_only {
            return RangeResponse {
                revision: header,
                kvs: Vec::new(),
                more: false,
                count,
            };
        }
        let keep = |kv: &KeyValue| {
            (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
                && (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
                && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
                && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
        };
        kvs.retain(keep);
        sort_kvs(&mut kvs, req.sort_order, req.sort_target);
        let mut more = false;
        if req.limit > 0 && kvs.len() as i64 > req.limit {
            kvs.truncate(usize::try_from(req.limit).unwrap_or(usize::MAX));
            more = true;
        }
        if req.keys_only {
            for kv in &mut kvs {
                kv.value.clear();
            }
        }
        RangeResponse {
            revision: header,
            kvs,
            more,
            count,
        }
    }

    // ---- writes ------------------------------------------------------------------

    fn begin(&self) -> WriteTxn {
        WriteTxn {
            begin: self.current,
            changes: 0,
        }
    }

    fn end(&mut self, w: WriteTxn) -> i64 {
        if w.changes > 0 {
            self.current = w.begin + 1;
        }
        self.maybe_check_invariants();
        self.current
    }

    fn record(&mut self, rev: Revision, kv: KeyValue, tombstone: bool) {
        self.pending
            .put(Bucket::Key, rev.to_key_bytes(tombstone), kv.encode());
        match self.index.get_mut(&kv.key) {
            Some(revs) => revs.push((rev, tombstone)),
            None => {
                self.index.insert(kv.key.clone(), vec![(rev, tombstone)]);
            }
        }
        self.history.insert(rev, Record { kv, tombstone });
    }

    fn detach(&mut self, lease: LeaseId, key: &[u8]) {
        if let Some(set) = self.lease_keys.get_mut(&lease) {
            set.remove(key);
            if set.is_empty() {
                self.lease_keys.remove(&lease);
            }
        }
    }

    /// Writes one put inside `w` (etcd `storeTxnWrite.put`); `prev` is the key's value
    /// as `w` reads it.
    fn put_in(
        &mut self,
        w: &mut WriteTxn,
        key: &[u8],
        value: Vec<u8>,
        lease: LeaseId,
        prev: Option<KeyValue>,
    ) {
        let read = w.read_rev();
        let rev = w.next();
        let (create_revision, version) = prev
            .as_ref()
            .map_or((rev.main, 1), |p| (p.create_revision, p.version + 1));
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision,
            mod_revision: rev.main,
            version,
            value,
            lease,
        };
        if let Some(p) = &prev
            && p.lease != LeaseId::NONE
        {
            self.detach(p.lease, key);
        }
        if lease != LeaseId::NONE {
            self.lease_keys
                .entry(lease)
                .or_default()
                .insert(key.to_vec());
        }
        // The event's previous value is the key's before this revision; when `w` reads
        // at exactly that revision (no earlier change in this txn) it is `prev`.
        let prev_kv = if version == 1 {
            None
        } else if read == rev.main - 1 {
            prev.filter(|_| read >= self.compacted && read >= 1)
        } else {
            self.kv_at(key, rev.main - 1)
        };
        self.events.push(Event {
            kind: EventKind::Put,
            kv: kv.clone(),
            prev_kv,
        });
        self.record(rev, kv, false);
    }

    /// Deletes every live key of the range inside `w`, in key order; returns the count.
    fn delete_in(&mut self, w: &mut WriteTxn, key: &[u8], range_end: &[u8]) -> i64 {
        let doomed = self.live_in(key, range_end, w.read_rev());
        for old in &doomed {
            let rev = w.next();
            if old.lease != LeaseId::NONE {
                self.detach(old.lease, &old.key);
            }
            let prev_kv = self.kv_at(&old.key, rev.main - 1);
            self.events.push(Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: old.key.clone(),
                    mod_revision: rev.main,
                    ..KeyValue::default()
                },
                prev_kv,
            });
            let tomb = KeyValue {
                key: old.key.clone(),
                ..KeyValue::default()
            };
            self.record(rev, tomb, true);
        }
        doomed.len() as i64
    }

    /// A put (etcd 3.4 `applierV3backend.Put` outside a txn, after the gRPC checks).
    ///
    /// # Errors
    /// In etcd's order: [`MvccError::EmptyKey`], [`MvccError::ValueProvided`],
    /// [`MvccError::LeaseProvided`], [`MvccError::LeaseNotFound`],
    /// [`MvccError::KeyNotFound`].
    pub fn put(
        &mut self,
        req: &PutRequest,
        leases: &dyn LeaseCheck,
    ) -> Result<PutResponse, MvccError> {
        validate::check_put(req)?;
        if req.lease != LeaseId::NONE && !leases.lease_exists(req.lease) {
            return Err(MvccError::LeaseNotFound);
        }
        if (req.ignore_value || req.ignore_lease) && self.latest(&req.key, self.current).is_none() {
            return Err(MvccError::KeyNotFound);
        }
        let mut w = self.begin();
        let resp = self.put_op(&mut w, req);
        self.end(w);
        Ok(resp)
    }

    /// The put itself, once checked (also used inside txns).
    fn put_op(&mut self, w: &mut WriteTxn, req: &PutRequest) -> PutResponse {
        let prev = self.latest(&req.key, w.read_rev()).cloned();
        let value = match (&prev, req.ignore_value) {
            (Some(p), true) => p.value.clone(),
            _ => req.value.clone(),
        };
        let lease = match (&prev, req.ignore_lease) {
            (Some(p), true) => p.lease,
            _ => req.lease,
        };
        let prev_kv = if req.prev_kv { prev.clone() } else { None };
        self.put_in(w, &req.key, value, lease, prev);
        PutResponse {
            revision: w.begin + 1,
            prev_kv,
        }
    }

    /// A delete-range (etcd 3.4 `applierV3backend.DeleteRange`).
    ///
    /// # Errors
    /// [`MvccError::EmptyKey`].
    pub fn delete_range(
        &mut self,
        req: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, MvccError> {
        validate::check_delete(req)?;
        let mut w = self.begin();
        let resp = self.delete_op(&mut w, req);
        self.end(w);
        Ok(resp)
    }

    fn delete_op(&mut self, w: &mut WriteTxn, req: &DeleteRangeRequest) -> DeleteRangeResponse {
        let prev_kvs = if req.prev_kv {
            self.live_in(&req.key, &req.range_end, w.read_rev())
        } else {
            Vec::new()
        };
        let deleted = self.delete_in(w, &req.key, &req.range_end);
        let revision = if deleted != 0 || w.changes > 0 {
            w.begin + 1
        } else {
            w.begin
        };
        DeleteRangeResponse {
            revision,
            deleted,
            prev_kvs,
        }
    }

    /// Deletes `keys` (each as a single-key delete, in the order given) in one revision;
    /// returns the resulting current revision. Used by lease revocation, which etcd
    /// does with the keys sorted.
    pub fn delete_keys(&mut self, keys: &[Vec<u8>]) -> i64 {
        let mut w = self.begin();
        for k in keys {
            self.delete_in(&mut w, k, &[]);
        }
        self.end(w)
    }

    // ---- txn ---------------------------------------------------------------------

    fn compare_holds(&self, c: &Compare) -> bool {
        let kvs = self.live_in(&c.key, &c.range_end, self.current);
        if kvs.is_empty() {
            // etcd: a value compare on missing keys always fails; other targets
            // compare against a zero key-value.
            if matches!(c.target, CompareTarget::Value(_)) {
                return false;
            }
            return compare_kv(c, &KeyValue::default());
        }
        kvs.iter().all(|kv| compare_kv(c, kv))
    }

    fn path(&self, t: &TxnRequest) -> TxnPath {
        let succeeded = t.compare.iter().all(|c| self.compare_holds(c));
        let ops = if succeeded { &t.success } else { &t.failure };
        let nested = ops
            .iter()
            .filter_map(|op| match op {
                RequestOp::Txn(n) => Some(self.path(n)),
                _ => None,
            })
            .collect();
        TxnPath { succeeded, nested }
    }

    /// etcd's `checkRequests` with `checkRequestPut` over the branches taken.
    fn check_puts(
        &self,
        t: &TxnRequest,
        p: &TxnPath,
        leases: &dyn LeaseCheck,
    ) -> Result<(), MvccError> {
        let ops = if p.succeeded { &t.success } else { &t.failure };
        let mut nested = p.nested.iter();
        for op in ops {
            match op {
                RequestOp::Txn(n) => {
                    let np = nested.next().expect("one path per nested txn");
                    self.check_puts(n, np, leases)?;
                }
                RequestOp::Put(r) => {
                    if (r.ignore_value || r.ignore_lease)
                        && self.latest(&r.key, self.current).is_none()
                    {
                        return Err(MvccError::KeyNotFound);
                    }
                    if r.lease != LeaseId::NONE && !leases.lease_exists(r.lease) {
                        return Err(MvccError::LeaseNotFound);
                    }
                }
                RequestOp::Range(_) | RequestOp::DeleteRange(_) => {}
            }
        }
        Ok(())
    }

    /// etcd's `checkRequests` with `checkRequestRange` over the branches taken.
    fn check_ranges(&self, t: &TxnRequest, p: &TxnPath) -> Result<(), MvccError> {
        let ops = if p.succeeded { &t.success } else { &t.failure };
        let mut nested = p.nested.iter();
        for op in ops {
            match op {
                RequestOp::Txn(n) => {
                    let np = nested.next().expect("one path per nested txn");
                    self.check_ranges(n, np)?;
                }
                RequestOp::Range(r) if r.revision != 0 => {
                    if r.revision > self.current {
                        return Err(MvccError::FutureRevision);
                    }
                    if r.revision < self.compacted {
                        return Err(MvccError::Compacted);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn apply_ops(&mut self, w: &mut WriteTxn, t: &TxnRequest, p: &TxnPath) -> TxnResponse {
        let ops = if p.succeeded { &t.success } else { &t.failure };
        let mut nested = p.nested.iter();
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let r = match op {
                RequestOp::Range(r) => {
                    let read = w.read_rev();
                    let rev = if r.revision <= 0 { read } else { r.revision };
                    ResponseOp::Range(self.range_at(r, rev, read))
                }
                RequestOp::Put(r) => ResponseOp::Put(self.put_op(w, r)),
                RequestOp::DeleteRange(r) => ResponseOp::DeleteRange(self.delete_op(w, r)),
                RequestOp::Txn(n) => {
                    let np = nested.next().expect("one path per nested txn");
                    ResponseOp::Txn(self.apply_ops(w, n, np))
                }
            };
            responses.push(r);
        }
        TxnResponse {
            revision: 0,
            succeeded: p.succeeded,
            responses,
        }
    }

    /// A txn (etcd 3.4 `applierV3backend.Txn` after the gRPC checks): all compares,
    /// nested ones included, are evaluated on the state before the txn; puts and ranges
    /// of the branches taken are checked; then the ops run in one revision (each change
    /// one sub revision), later ops seeing earlier ones.
    ///
    /// # Errors
    /// [`MvccError::EmptyKey`], [`MvccError::ValueProvided`],
    /// [`MvccError::LeaseProvided`], [`MvccError::DuplicateKey`] (request checks);
    /// then [`MvccError::KeyNotFound`], [`MvccError::LeaseNotFound`] (write txns only),
    /// [`MvccError::FutureRevision`], [`MvccError::Compacted`].
    pub fn txn(
        &mut self,
        req: &TxnRequest,
        leases: &dyn LeaseCheck,
    ) -> Result<TxnResponse, MvccError> {
        validate::check_txn(req)?;
        let path = self.path(req);
        if is_write(req) {
            self.check_puts(req, &path, leases)?;
        }
        self.check_ranges(req, &path)?;
        let mut w = self.begin();
        let mut resp = self.apply_ops(&mut w, req, &path);
        resp.revision = self.end(w);
        Ok(resp)
    }

    // ---- compaction, hash, history ------------------------------------------------

    /// Compacts history (etcd 3.4 `store.Compact`): for each key only the newest
    /// revision at or below `rev` survives, and not even that if it is a tombstone.
    /// Reads at or above `rev` are unchanged.
    ///
    /// # Errors
    /// [`MvccError::Compacted`] if `rev` is at or below the compacted revision;
    /// [`MvccError::FutureRevision`] if above the current revision.
    pub fn compact(&mut self, rev: i64) -> Result<CompactionResponse, MvccError> {
        if rev <= self.compacted {
            return Err(MvccError::Compacted);
        }
        if rev > self.current {
            return Err(MvccError::FutureRevision);
        }
        self.compacted = rev;
        let mut removed: Vec<(Revision, bool)> = Vec::new();
        self.index.retain(|_, revs| {
            let n = revs.partition_point(|(r, _)| r.main <= rev);
            let mut cut = n.saturating_sub(1);
            if n > 0 && revs[n - 1].1 {
                cut = n;
            }
            removed.extend(revs.drain(..cut));
            !revs.is_empty()
        });
        for (r, tomb) in removed {
            self.history.remove(&r);
            self.pending.delete(Bucket::Key, r.to_key_bytes(tomb));
        }
        self.pending.put(
            Bucket::Meta,
            FINISHED_COMPACT_KEY.to_vec(),
            Revision::new(rev, 0).to_key_bytes(false),
        );
        self.maybe_check_invariants();
        Ok(CompactionResponse {
            revision: self.current,
        })
    }

    /// etcd 3.4's `HashKV` (`store.HashByRev`): crc32-Castagnoli over the bytes `key`
    /// (the bucket name), then, in revision order, each `key`-bucket entry's key bytes
    /// (revision, plus `t` for tombstones) and value bytes (`mvccpb.KeyValue`), for
    /// entries with main revision `<= rev`; entries at or below the compacted revision
    /// count only if they are what compacting at `rev` would keep (the newest live
    /// revision of a key at `rev`), unless nothing would be kept. `rev = 0` means the
    /// current revision.
    ///
    /// # Errors
    /// [`MvccError::Compacted`] if `0 < rev <= compacted`; [`MvccError::FutureRevision`]
    /// if `rev > current`.
    pub fn hash_kv(&self, rev: i64) -> Result<HashKv, MvccError> {
        if rev > 0 && rev <= self.compacted {
            return Err(MvccError::Compacted);
        }
        if rev > 0 && rev > self.current {
            return Err(MvccError::FutureRevision);
        }
        let rev = if rev == 0 { self.current } else { rev };
        let keep: BTreeSet<Revision> = self
            .index
            .values()
            .filter_map(|revs| {
                let n = revs.partition_point(|(r, _)| r.main <= rev);
                let (r, tomb) = revs.get(n.checked_sub(1)?)?;
                (!tomb).then_some(*r)
            })
            .collect();
        let mut h = Crc32c::new();
        h.update(Bucket::Key.name());
        for (r, rec) in &self.history {
            if r.main > rev {
                break;
            }
            if r.main <= self.compacted && !keep.is_empty() && !keep.contains(r) {
                continue;
            }
            h.update(&r.to_key_bytes(rec.tombstone));
            h.update(&rec.kv.encode());
        }
        Ok(HashKv {
            hash: h.finish(),
            compact_revision: self.compacted,
            revision: self.current,
        })
    }

    /// Every event on keys in (`key`, `range_end`) with revision `>= start_rev`, in
    /// revision order, as a watcher created with that start revision receives them
    /// (`start_rev <= 0` is treated as 1). `prev_kv` is filled where etcd can read it.
    ///
    /// etcd 3.4 behaviour kept: watching from exactly the compacted revision is allowed,
    /// but a deletion at that revision was removed by the compaction and is not seen.
    ///
    /// # Errors
    /// [`MvccError::Compacted`] if `start_rev` is below the compacted revision (the
    /// watch response then carries [`Store::compact_revision`]).
    pub fn events_since(
        &self,
        start_rev: i64,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<Vec<Event>, MvccError> {
        if start_rev < self.compacted {
            return Err(MvccError::Compacted);
        }
        let from = Revision::new(start_rev.max(1), 0);
        Ok(self
            .history
            .range(from..)
            .filter(|(_, rec)| in_range(&rec.kv.key, key, range_end))
            .map(|(r, rec)| self.event_of(*r, rec))
            .collect())
    }

    fn event_of(&self, r: Revision, rec: &Record) -> Event {
        let mut kv = rec.kv.clone();
        let kind = if rec.tombstone {
            kv.mod_revision = r.main;
            EventKind::Delete
        } else {
            EventKind::Put
        };
        let prev_kv = if kind == EventKind::Put && kv.version == 1 {
            None
        } else {
            self.kv_at(&kv.key, r.main - 1)
        };
        Event { kind, kv, prev_kv }
    }
}

fn is_write(t: &TxnRequest) -> bool {
    t.success.iter().chain(&t.failure).any(|op| match op {
        RequestOp::Put(_) | RequestOp::DeleteRange(_) => true,
        RequestOp::Txn(n) => is_write(n),
        RequestOp::Range(_) => false,
    })
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    let ord = match &c.target {
        CompareTarget::Value(v) => kv.value.as_slice().cmp(v.as_slice()),
        CompareTarget::Create(v) => kv.create_revision.cmp(v),
        CompareTarget::Mod(v) => kv.mod_revision.cmp(v),
        CompareTarget::Version(v) => kv.version.cmp(v),
        CompareTarget::Lease(v) => kv.lease.0.cmp(&v.0),
    };
    match c.result {
        CompareResult::Equal => ord.is_eq(),
        CompareResult::NotEqual => ord.is_ne(),
        CompareResult::Greater => ord.is_gt(),
        CompareResult::Less => ord.is_lt(),
    }
}

/// etcd's range sort: a non-`Key` target with no order sorts ascending; `Key` with no
/// order keeps key order. Sorting is stable (ties stay in key order), which is what
/// etcd's insertion-sorted small results give.
fn sort_kvs(kvs: &mut [KeyValue], order: SortOrder, target: SortTarget) {
    let order = if target != SortTarget::Key && order == SortOrder::None {
        SortOrder::Ascend
    } else {
        order
    };
    let cmp = |a: &KeyValue, b: &KeyValue| match target {
        SortTarget::Key => a.key.cmp(&b.key),
        SortTarget::Version => a.version.cmp(&b.version),
        SortTarget::Create => a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => a.value.cmp(&b.value),
    };
    match order {
        SortOrder::None => {}
        SortOrder::Ascend => kvs.sort_by(cmp),
        SortOrder::Descend => kvs.sort_by(|a, b| cmp(b, a)),
    }
}
