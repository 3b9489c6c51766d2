//! Requests and responses of the KV API as domain types (etcd's `etcdserverpb` messages
//! without protobuf), and the errors they can give.
//!
//! Key ranges follow etcd: an empty `range_end` means the single key `key`; a
//! `range_end` of one zero byte (`"\0"`) means every key `>= key`; otherwise the half-open
//! interval `[key, range_end)`. `key = "\0"`, `range_end = "\0"` is every key.

use super::kv::KeyValue;
use crate::lease::LeaseId;

/// Errors of KV operations, with the exact texts etcd 3.4.23's clients see (the gRPC
/// status messages: etcd's `mvcc` package errors reach clients prefixed with
/// `etcdserver: `, e.g. `etcdserver: mvcc: required revision has been compacted`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum MvccError {
    /// The requested revision is at or below the compacted revision (etcd: `ErrCompacted`).
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    /// The requested revision is above the current revision (etcd: `ErrFutureRev`).
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    /// `ignore_value`/`ignore_lease` on a key that does not exist.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// A put names a lease that does not exist.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// `ignore_value` together with a non-empty value (etcd checks this in the gRPC layer).
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// `ignore_lease` together with a lease (etcd checks this in the gRPC layer).
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// A txn writes one key twice, or puts a key it also deletes (gRPC-layer check).
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// An empty key (gRPC-layer check).
    #[error("etcdserver: key is not provided")]
    EmptyKey,
}

/// Sort direction of a range (etcd's `RangeRequest.SortOrder`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum SortOrder {
    /// No sorting requested (keys come in ascending key order unless the target is not
    /// `Key`, in which case etcd sorts ascending).
    #[default]
    None,
    /// Ascending.
    Ascend,
    /// Descending.
    Descend,
}

/// What a range sorts by (etcd's `RangeRequest.SortTarget`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum SortTarget {
    /// The key.
    #[default]
    Key,
    /// The version.
    Version,
    /// The create revision.
    Create,
    /// The mod revision.
    Mod,
    /// The value (bytewise).
    Value,
}

/// etcd's `RangeRequest`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct RangeRequest {
    /// First key (or the only key).
    pub key: Vec<u8>,
    /// End of the range; see the module docs.
    pub range_end: Vec<u8>,
    /// Most keys to return; `<= 0` is unlimited.
    pub limit: i64,
    /// Read at this revision; `<= 0` is the current revision.
    pub revision: i64,
    /// Sort direction.
    pub sort_order: SortOrder,
    /// Sort key.
    pub sort_target: SortTarget,
    /// Linearizable (false) or serializable (true) read; no effect inside the store.
    pub serializable: bool,
    /// Return keys without values.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
    /// Drop keys with a mod revision below this (0: no filter).
    pub min_mod_revision: i64,
    /// Drop keys with a mod revision above this (0: no filter).
    pub max_mod_revision: i64,
    /// Drop keys with a create revision below this (0: no filter).
    pub min_create_revision: i64,
    /// Drop keys with a create revision above this (0: no filter).
    pub max_create_revision: i64,
}

/// etcd's `RangeResponse`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct RangeResponse {
    /// Header revision: the store's revision when the range ran (not the read revision).
    pub revision: i64,
    /// The key-values, after filters, sort and limit.
    pub kvs: Vec<KeyValue>,
    /// True if the limit cut the result short.
    pub more: bool,
    /// Number of keys in the range at the read revision, before the min/max filters
    /// and the limit (etcd 3.4 behaviour).
    pub count: i64,
}

/// etcd's `PutRequest`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct PutRequest {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// Lease to attach; [`LeaseId::NONE`] detaches.
    pub lease: LeaseId,
    /// Return the previous key-value.
    pub prev_kv: bool,
    /// Keep the current value (the key must exist).
    pub ignore_value: bool,
    /// Keep the current lease (the key must exist).
    pub ignore_lease: bool,
}

/// etcd's `PutResponse`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct PutResponse {
    /// Header revision: the put's revision.
    pub revision: i64,
    /// The key-value before the put, if asked for and present.
    pub prev_kv: Option<KeyValue>,
}

/// etcd's `DeleteRangeRequest`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct DeleteRangeRequest {
    /// First key (or the only key).
    pub key: Vec<u8>,
    /// End of the range; see the module docs.
    pub range_end: Vec<u8>,
    /// Return the deleted key-values.
    pub prev_kv: bool,
}

/// etcd's `DeleteRangeResponse`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct DeleteRangeResponse {
    /// Header revision: the delete's revision, or the unchanged current revision when
    /// nothing was deleted (outside a txn that already wrote).
    pub revision: i64,
    /// Number of keys deleted.
    pub deleted: i64,
    /// The deleted key-values, if asked for.
    pub prev_kvs: Vec<KeyValue>,
}

/// How a compare relates the stored field to the given one (etcd's `Compare.CompareResult`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CompareResult {
    /// `==`
    Equal,
    /// `>` (stored greater than given)
    Greater,
    /// `<`
    Less,
    /// `!=`
    NotEqual,
}

/// What a compare looks at, with the value to compare against (etcd's `Compare.target`
/// and `target_union` together).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CompareTarget {
    /// `version`
    Version(i64),
    /// `create_revision`
    Create(i64),
    /// `mod_revision`
    Mod(i64),
    /// `value` (bytewise)
    Value(Vec<u8>),
    /// `lease`
    Lease(LeaseId),
}

/// etcd's `Compare`: one guard of a txn.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Compare {
    /// The relation.
    pub result: CompareResult,
    /// The field and the value.
    pub target: CompareTarget,
    /// First key.
    pub key: Vec<u8>,
    /// End of the range; every key in it must satisfy the compare.
    pub range_end: Vec<u8>,
}

/// One operation of a txn branch (etcd's `RequestOp`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RequestOp {
    /// A range.
    Range(RangeRequest),
    /// A put.
    Put(PutRequest),
    /// A delete-range.
    DeleteRange(DeleteRangeRequest),
    /// A nested txn.
    Txn(TxnRequest),
}

/// etcd's `TxnRequest`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct TxnRequest {
    /// Guards; all must hold for `success` to run.
    pub compare: Vec<Compare>,
    /// Ops run when every compare holds.
    pub success: Vec<RequestOp>,
    /// Ops run otherwise.
    pub failure: Vec<RequestOp>,
}

/// One result of a txn branch (etcd's `ResponseOp`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ResponseOp {
    /// For a range.
    Range(RangeResponse),
    /// For a put.
    Put(PutResponse),
    /// For a delete-range.
    DeleteRange(DeleteRangeResponse),
    /// For a nested txn (its `revision` is 0: etcd leaves nested headers empty).
    Txn(TxnResponse),
}

/// etcd's `TxnResponse`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct TxnResponse {
    /// Header revision: the txn's revision if it wrote, else the current revision.
    pub revision: i64,
    /// Whether the compares held.
    pub succeeded: bool,
    /// One response per op of the branch that ran.
    pub responses: Vec<ResponseOp>,
}

/// etcd's `CompactionRequest`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct CompactionRequest {
    /// Compact away history below this revision.
    pub revision: i64,
    /// Wait for the physical compaction (no effect on state; the store compacts at once).
    pub physical: bool,
}

/// etcd's `CompactionResponse`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct CompactionResponse {
    /// Header revision: the current revision.
    pub revision: i64,
}

/// The answer of [`super::Store::hash_kv`] (etcd's `HashKVResponse`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HashKv {
    /// crc32-Castagnoli of the `key` bucket up to the revision.
    pub hash: u32,
    /// The compacted revision (-1 if never compacted).
    pub compact_revision: i64,
    /// Header revision: the current revision.
    pub revision: i64,
}
