//! Exact results recorded from a real etcd 3.4.23 (single member, defaults) for the same
//! request sequence, replayed on `spec::mvcc::Store`. Each test names the behaviour.

use std::collections::BTreeSet;

use oxetcd_spec::lease::LeaseId;
use oxetcd_spec::mvcc::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, EventKind, MemBackend, MvccError,
    PutRequest, RangeRequest, RequestOp, Store, TxnRequest,
};

fn no_leases() -> BTreeSet<LeaseId> {
    BTreeSet::new()
}

fn put(s: &mut Store, k: &str, v: &str) -> i64 {
    let req = PutRequest {
        key: k.into(),
        value: v.into(),
        ..PutRequest::default()
    };
    s.put(&req, &no_leases()).expect("put").revision
}

fn del(s: &mut Store, k: &str, end: &str) -> i64 {
    let req = DeleteRangeRequest {
        key: k.into(),
        range_end: end.into(),
        prev_kv: false,
    };
    s.delete_range(&req).expect("delete").deleted
}

/// The history used for the recorded hashes:
/// put a 1; put b 2; put a 3; del b; put b 5; del --prefix a;
/// txn { version("zz") = 0 } then { put c 7; put d 8 }.
fn recorded_history() -> Store {
    let mut s = Store::new(MemBackend::new());
    assert_eq!(put(&mut s, "a", "1"), 2);
    assert_eq!(put(&mut s, "b", "2"), 3);
    assert_eq!(put(&mut s, "a", "3"), 4);
    assert_eq!(del(&mut s, "b", ""), 1);
    assert_eq!(put(&mut s, "b", "5"), 6);
    assert_eq!(del(&mut s, "a", "b"), 1);
    let txn = TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal,
            target: CompareTarget::Version(0),
            key: "zz".into(),
            range_end: Vec::new(),
        }],
        success: vec![
            RequestOp::Put(PutRequest {
                key: "c".into(),
                value: "7".into(),
                ..PutRequest::default()
            }),
            RequestOp::Put(PutRequest {
                key: "d".into(),
                value: "8".into(),
                ..PutRequest::default()
            }),
        ],
        failure: Vec::new(),
    };
    let r = s.txn(&txn, &no_leases()).expect("txn");
    // etcd 3.4.23: one revision for the whole txn; inner put headers carry it too.
    assert!(r.succeeded);
    assert_eq!(r.revision, 8);
    s
}

#[test]
fn hash_kv_equals_etcd_3_4_23_for_the_same_history() {
    let mut s = Store::new(MemBackend::new());
    put(&mut s, "a", "1");
    put(&mut s, "b", "2");
    // etcdctl endpoint hashkv after `put a 1; put b 2`: hash 1827592406, compact -1.
    let h = s.hash_kv(0).expect("hash");
    assert_eq!(
        (h.hash, h.compact_revision, h.revision),
        (1_827_592_406, -1, 3)
    );
    // compact 1 keeps every revision: same hash, compact revision 1.
    s.compact(1).expect("compact");
    assert_eq!(s.hash_kv(0).expect("hash").hash, 1_827_592_406);
    // etcd: compacting at the compacted revision again is an error.
    assert_eq!(s.compact(1), Err(MvccError::Compacted));
}

#[test]
fn hash_kv_at_historic_revisions_and_after_compaction_equals_etcd() {
    let mut s = recorded_history();
    s.compact(1).expect("compact 1");
    let at = |s: &Store, r| s.hash_kv(r).expect("hash").hash;
    assert_eq!(at(&s, 0), 2_549_666_782);
    assert_eq!(at(&s, 4), 2_069_675_932);
    assert_eq!(at(&s, 6), 2_597_070_417);
    assert_eq!(at(&s, 7), 4_184_800_956);
    assert_eq!(at(&s, 8), 2_549_666_782);
    s.compact(5).expect("compact 5");
    assert_eq!(at(&s, 0), 806_468_539);
    assert_eq!(at(&s, 6), 859_056_433);
    // etcd: hash at the compacted revision itself is "compacted".
    assert_eq!(s.hash_kv(5), Err(MvccError::Compacted));
    assert_eq!(s.hash_kv(9), Err(MvccError::FutureRevision));
}

#[test]
fn reads_below_compaction_fail_and_at_it_succeed_like_etcd() {
    let mut s = recorded_history();
    s.compact(5).expect("compact 5");
    let get = |rev| RangeRequest {
        key: "b".into(),
        revision: rev,
        ..RangeRequest::default()
    };
    // etcdctl get b --rev=5: empty result, header revision 8 (b was deleted at 5).
    let r = s.range(&get(5)).expect("read at compacted revision");
    assert_eq!((r.kvs.len(), r.count, r.revision), (0, 0, 8));
    assert_eq!(s.range(&get(4)), Err(MvccError::Compacted));
    assert_eq!(s.range(&get(99)), Err(MvccError::FutureRevision));
    assert_eq!(
        MvccError::Compacted.to_string(),
        "etcdserver: mvcc: required revision has been compacted"
    );
}

#[test]
fn watch_from_the_compacted_revision_misses_the_deletion_at_it_like_etcd() {
    let mut s = recorded_history();
    s.compact(5).expect("compact 5");
    // etcdctl watch --rev=5 --prefix "" --prev-kv after compact 5: the delete of b at 5
    // is gone; events are put b@6, delete a@7 (prev a=3 @4), put c@8, put d@8.
    let evs = s.events_since(5, b"\0", b"\0").expect("watch");
    let got: Vec<(EventKind, String, i64, Option<i64>)> = evs
        .iter()
        .map(|e| {
            (
                e.kind,
                String::from_utf8_lossy(&e.kv.key).into_owned(),
                e.kv.mod_revision,
                e.prev_kv.as_ref().map(|p| p.mod_revision),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (EventKind::Put, "b".into(), 6, None),
            (EventKind::Delete, "a".into(), 7, Some(4)),
            (EventKind::Put, "c".into(), 8, None),
            (EventKind::Put, "d".into(), 8, None),
        ]
    );
    // The delete event's kv is only key + mod_revision, as etcd sends it.
    assert_eq!(evs[1].kv.create_revision, 0);
    assert_eq!(evs[1].kv.version, 0);
    assert_eq!(s.events_since(4, b"\0", b"\0"), Err(MvccError::Compacted));
}
