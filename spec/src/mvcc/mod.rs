//! The revisioned key-value store (etcd 3.4 mvcc): revisions, key index, range, put,
//! delete-range, txn, compaction, hash and the watch events each revision produces.
//!
//! What it is: [`Store`], a pure, deterministic model of etcd 3.4.23's `mvcc` store
//! plus the response shaping etcd does in `etcdserver/apply.go` and the request checks
//! of its gRPC layer, persisted through the small [`Backend`] trait. What it is not:
//! watch streams (a server keeps watchers and feeds them [`Store::events_since`] and the
//! events of each apply), protobuf, or auth checks (the applier does those).
//!
//! etcd 3.4 behaviour followed throughout: a fresh store is at revision 1; each write
//! request (or txn with at least one change) takes the next main revision; reads inside
//! a write txn see its earlier writes; a deletion that deletes nothing creates no
//! revision.

mod backend;
mod hash;
pub(crate) mod kv;
mod request;
mod revision;
mod store;
pub mod validate;

pub use backend::{Backend, BackendError, BatchOp, Bucket, MemBackend, Pairs, WriteBatch};
pub use hash::{Crc32c, crc32c};
pub use kv::{DecodeError, Event, EventKind, KeyValue};
pub use request::{
    CompactionRequest, CompactionResponse, Compare, CompareResult, CompareTarget,
    DeleteRangeRequest, DeleteRangeResponse, HashKv, MvccError, PutRequest, PutResponse,
    RangeRequest, RangeResponse, RequestOp, ResponseOp, SortOrder, SortTarget, TxnRequest,
    TxnResponse,
};
pub use revision::{REVISION_BYTES, Revision, TOMBSTONE_MARK};
pub use store::{
    FINISHED_COMPACT_KEY, INVARIANT_CHECK_HISTORY_MAX, LeaseCheck, OpenError, Store, in_range,
};
