//! The revisioned key-value store (etcd 3.4 mvcc): revisions, key index, range, put,
//! delete-range, txn, compaction and the watch events each revision produces.
