//! Watch events as the dumb twin of the store, with nested txns: replaying the events
//! every apply emitted into a plain map must give exactly what the store answers at every
//! uncompacted revision, and a watcher started at any uncompacted revision
//! (`events_since`) must receive exactly the emitted events from that revision on.
//!
//! etcd 3.4.23 behaviours pinned: one revision per write request, events in sub-revision
//! order, a failed request (duplicate key, key not found, ...) emits nothing and takes no
//! revision, and the watch history equals the live event stream.

use std::collections::{BTreeMap, BTreeSet};

use oxetcd_spec::lease::LeaseId;
use oxetcd_spec::mvcc::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, Event, EventKind, KeyValue,
    MemBackend, PutRequest, RangeRequest, RequestOp, Store, TxnRequest,
};
use quickcheck::{Arbitrary, Gen, QuickCheck};

const KEYS: [&str; 4] = ["a", "b", "ba", "c"];
const ENDS: [&str; 4] = ["", "\0", "b", "c"];

fn pick<T: Copy>(g: &mut Gen, xs: &[T]) -> T {
    *g.choose(xs).expect("non-empty")
}

fn gen_op(g: &mut Gen, depth: usize) -> RequestOp {
    match u8::arbitrary(g) % if depth < 2 { 4 } else { 3 } {
        0 => RequestOp::Put(PutRequest {
            key: pick(g, &KEYS).into(),
            value: pick(g, &["1", "2"]).into(),
            ignore_value: pick(g, &[false, false, false, true]),
            prev_kv: bool::arbitrary(g),
            ..PutRequest::default()
        }),
        1 => RequestOp::DeleteRange(DeleteRangeRequest {
            key: pick(g, &KEYS).into(),
            range_end: pick(g, &ENDS).into(),
            prev_kv: bool::arbitrary(g),
        }),
        2 => RequestOp::Range(RangeRequest {
            key: pick(g, &KEYS).into(),
            range_end: pick(g, &ENDS).into(),
            ..RangeRequest::default()
        }),
        _ => RequestOp::Txn(gen_txn(g, depth + 1)),
    }
}

fn gen_txn(g: &mut Gen, depth: usize) -> TxnRequest {
    let compare = (0..usize::arbitrary(g) % 2)
        .map(|_| Compare {
            result: pick(g, &[CompareResult::Equal, CompareResult::Greater]),
            target: if bool::arbitrary(g) {
                CompareTarget::Version(pick(g, &[0, 1, 2]))
            } else {
                CompareTarget::Value(pick(g, &["1", "2"]).into())
            },
            key: pick(g, &KEYS).into(),
            range_end: pick(g, &ENDS).into(),
        })
        .collect();
    let n = usize::arbitrary(g) % 3;
    let success = (0..n).map(|_| gen_op(g, depth)).collect();
    let n = usize::arbitrary(g) % 3;
    let failure = (0..n).map(|_| gen_op(g, depth)).collect();
    TxnRequest {
        compare,
        success,
        failure,
    }
}

#[derive(Clone, Debug)]
enum Op {
    Write(RequestOp),
    Compact(i64),
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        if u8::arbitrary(g) % 10 == 0 {
            Op::Compact(pick(g, &[0, 1, 3]))
        } else {
            Op::Write(gen_op(g, 0))
        }
    }
}

fn run(ops: &[Op]) -> Result<(), String> {
    let mut store = Store::new(MemBackend::new());
    let leases: BTreeSet<LeaseId> = BTreeSet::new();
    let mut emitted: Vec<Event> = Vec::new();
    for op in ops {
        let before = store.current_revision();
        let ok = match op {
            Op::Write(RequestOp::Put(p)) => store.put(p, &leases).is_ok(),
            Op::Write(RequestOp::DeleteRange(d)) => store.delete_range(d).is_ok(),
            Op::Write(RequestOp::Range(r)) => store.range(r).is_ok(),
            Op::Write(RequestOp::Txn(t)) => store.txn(t, &leases).is_ok(),
            Op::Compact(back) => store.compact(store.current_revision() - back).is_ok(),
        };
        let evs = store.take_events();
        let after = store.current_revision();
        if !ok && (!evs.is_empty() || after != before) {
            return Err(format!("failed {op:?} changed the store"));
        }
        if evs.is_empty() != (after == before) {
            return Err(format!("{op:?}: events and revision disagree"));
        }
        if evs.iter().any(|e| e.kv.mod_revision != after) {
            return Err(format!("{op:?}: event outside the new revision"));
        }
        emitted.extend(evs);
    }
    let compacted = store.compact_revision();
    let mut map: BTreeMap<Vec<u8>, KeyValue> = BTreeMap::new();
    let mut next = 0;
    for rev in 1..=store.current_revision() {
        while next < emitted.len() && emitted[next].kv.mod_revision <= rev {
            let e = &emitted[next];
            match e.kind {
                EventKind::Put => map.insert(e.kv.key.clone(), e.kv.clone()),
                EventKind::Delete => map.remove(&e.kv.key),
            };
            next += 1;
        }
        if rev < compacted {
            continue;
        }
        let all = RangeRequest {
            key: vec![0],
            range_end: vec![0],
            revision: rev,
            ..RangeRequest::default()
        };
        let got = store.range(&all).map_err(|e| e.to_string())?.kvs;
        if got != map.values().cloned().collect::<Vec<_>>() {
            return Err(format!(
                "state at revision {rev} differs from replayed events"
            ));
        }
    }
    if store.key_count() != map.len() {
        return Err(format!(
            "key count {} but {} keys replayed",
            store.key_count(),
            map.len()
        ));
    }
    for start in (compacted + 1).max(1)..=store.current_revision() + 1 {
        let want: Vec<&Event> = emitted
            .iter()
            .filter(|e| e.kv.mod_revision >= start)
            .collect();
        let got = store
            .events_since(start, &[0], &[0])
            .map_err(|e| e.to_string())?;
        if got.iter().collect::<Vec<_>>() != want {
            return Err(format!("watch from {start} differs from the live stream"));
        }
    }
    Ok(())
}

#[test]
fn replayed_events_equal_the_store_and_watch_history_equals_the_live_stream() {
    fn prop(ops: Vec<Op>) -> bool {
        match run(&ops) {
            Ok(()) => true,
            Err(e) => {
                eprintln!("{e}");
                false
            }
        }
    }
    QuickCheck::new()
        .tests(500)
        .quickcheck(prop as fn(Vec<Op>) -> bool);
}
