//! `spec::mvcc::Store` against a deliberately naive model: a `Vec` of every
//! (key, main, sub, value-or-tombstone) ever written, scanned from the start for every
//! question. Random interleavings of put, delete-range, flat txns, compaction and
//! ranges at historic revisions over a tiny key space (so collisions happen) must give
//! identical responses, errors, watch events and `events_since` streams, and a store
//! reopened from its backend must answer like the original.
//!
//! etcd 3.4.23 behaviours pinned: revisions start at 1 and each write takes one; txn
//! changes share a revision; reads inside a txn see its earlier writes; create
//! revision/version restart after a delete; range count ignores filters and limit;
//! non-key sort targets sort ascending by default, ties in key order; `\0` range end
//! means "from key"; reads below the compaction fail, at it succeed; watching from the
//! compacted revision misses the deletions at it.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use oxetcd_spec::lease::LeaseId;
use oxetcd_spec::mvcc::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, Event,
    EventKind, KeyValue, MemBackend, MvccError, PutRequest, PutResponse, RangeRequest,
    RangeResponse, RequestOp, ResponseOp, SortOrder, SortTarget, Store, TxnRequest, TxnResponse,
};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

const KEYS: [&str; 4] = ["a", "ab", "b", "c"];
const ENDS: [&str; 5] = ["", "\0", "b", "c", "d"];
const VALUES: [&str; 4] = ["", "x", "y", "zz"];

fn pick<T: Copy>(g: &mut Gen, xs: &[T]) -> T {
    *g.choose(xs).expect("non-empty")
}

#[derive(Clone, Debug)]
struct GenPut {
    key: &'static str,
    value: &'static str,
    lease: i64,
    prev_kv: bool,
    ignore_value: bool,
    ignore_lease: bool,
}

impl GenPut {
    fn arbitrary(g: &mut Gen) -> Self {
        Self {
            key: pick(g, &KEYS),
            value: pick(g, &VALUES),
            lease: pick(g, &[0, 0, 0, 7, 9]),
            prev_kv: bool::arbitrary(g),
            ignore_value: pick(g, &[false, false, false, true]),
            ignore_lease: pick(g, &[false, false, false, true]),
        }
    }
    fn request(&self) -> PutRequest {
        PutRequest {
            key: self.key.into(),
            value: self.value.into(),
            lease: LeaseId(self.lease),
            prev_kv: self.prev_kv,
            ignore_value: self.ignore_value,
            ignore_lease: self.ignore_lease,
        }
    }
}

#[derive(Clone, Debug)]
struct GenRange {
    key: &'static str,
    end: &'static str,
    rev_back: i64,
    limit: i64,
    order: SortOrder,
    target: SortTarget,
    keys_only: bool,
    count_only: bool,
    min_mod: i64,
    max_create: i64,
}

impl GenRange {
    fn arbitrary(g: &mut Gen) -> Self {
        Self {
            key: pick(g, &KEYS),
            end: pick(g, &ENDS),
            rev_back: pick(g, &[-1, 0, 0, 0, 1, 2, 3, 5, 8]),
            limit: pick(g, &[0, 0, 1, 2, 3]),
            order: pick(g, &[SortOrder::None, SortOrder::Ascend, SortOrder::Descend]),
            target: pick(
                g,
                &[
                    SortTarget::Key,
                    SortTarget::Version,
                    SortTarget::Create,
                    SortTarget::Mod,
                    SortTarget::Value,
                ],
            ),
            keys_only: pick(g, &[false, false, true]),
            count_only: pick(g, &[false, false, false, true]),
            min_mod: pick(g, &[0, 0, 0, 3, 6]),
            max_create: pick(g, &[0, 0, 0, 4, 8]),
        }
    }
    /// `rev_back`: -1 is one past the current revision (future), else current - n.
    fn request(&self, current: i64) -> RangeRequest {
        RangeRequest {
            key: self.key.into(),
            range_end: self.end.into(),
            limit: self.limit,
            revision: if self.rev_back < 0 {
                current + 1
            } else {
                current - self.rev_back
            },
            sort_order: self.order,
            sort_target: self.target,
            keys_only: self.keys_only,
            count_only: self.count_only,
            min_mod_revision: self.min_mod,
            max_create_revision: self.max_create,
            ..RangeRequest::default()
        }
    }
}

#[derive(Clone, Debug)]
enum GenTxnOp {
    Put(GenPut),
    Delete(&'static str, &'static str),
    Range(&'static str, &'static str),
}

#[derive(Clone, Debug)]
enum Op {
    Put(GenPut),
    Delete(&'static str, &'static str, bool),
    Txn {
        key: &'static str,
        result: CompareResult,
        target: u8,
        operand: i64,
        success: Vec<GenTxnOp>,
        failure: Vec<GenTxnOp>,
    },
    Compact(i64),
    Range(GenRange),
    Watch(i64, &'static str, &'static str),
}

fn gen_txn_ops(g: &mut Gen) -> Vec<GenTxnOp> {
    let n = usize::arbitrary(g) % 4;
    (0..n)
        .map(|_| match u8::arbitrary(g) % 3 {
            0 => GenTxnOp::Put(GenPut::arbitrary(g)),
            1 => GenTxnOp::Delete(pick(g, &KEYS), pick(g, &ENDS)),
            _ => GenTxnOp::Range(pick(g, &KEYS), pick(g, &ENDS)),
        })
        .collect()
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 12 {
            0..=3 => Op::Put(GenPut::arbitrary(g)),
            4 | 5 => Op::Delete(pick(g, &KEYS), pick(g, &ENDS), bool::arbitrary(g)),
            6 | 7 => Op::Txn {
                key: pick(g, &KEYS),
                result: pick(
                    g,
                    &[
                        CompareResult::Equal,
                        CompareResult::NotEqual,
                        CompareResult::Greater,
                        CompareResult::Less,
                    ],
                ),
                target: u8::arbitrary(g) % 5,
                operand: pick(g, &[0, 1, 2, 4, 7]),
                success: gen_txn_ops(g),
                failure: gen_txn_ops(g),
            },
            8 => Op::Compact(pick(g, &[0, 1, 2, 4])),
            9 | 10 => Op::Range(GenRange::arbitrary(g)),
            _ => Op::Watch(pick(g, &[0, 1, 2, 3, 5, 9]), pick(g, &KEYS), pick(g, &ENDS)),
        }
    }
}

impl Op {
    fn txn_request(&self) -> Option<TxnRequest> {
        let Op::Txn {
            key,
            result,
            target,
            operand,
            success,
            failure,
        } = self
        else {
            return None;
        };
        let target = match target {
            0 => CompareTarget::Version(*operand),
            1 => CompareTarget::Create(*operand),
            2 => CompareTarget::Mod(*operand),
            3 => CompareTarget::Value(VALUES[(*operand as usize) % VALUES.len()].into()),
            _ => CompareTarget::Lease(LeaseId(*operand)),
        };
        let ops = |v: &Vec<GenTxnOp>| {
            v.iter()
                .map(|o| match o {
                    GenTxnOp::Put(p) => RequestOp::Put(p.request()),
                    GenTxnOp::Delete(k, e) => RequestOp::DeleteRange(DeleteRangeRequest {
                        key: (*k).into(),
                        range_end: (*e).into(),
                        prev_kv: true,
                    }),
                    GenTxnOp::Range(k, e) => RequestOp::Range(RangeRequest {
                        key: (*k).into(),
                        range_end: (*e).into(),
                        ..RangeRequest::default()
                    }),
                })
                .collect()
        };
        Some(TxnRequest {
            compare: vec![Compare {
                result: *result,
                target,
                key: (*key).into(),
                range_end: Vec::new(),
            }],
            success: ops(success),
            failure: ops(failure),
        })
    }
}

// ---- the naive model ----------------------------------------------------------------

#[derive(Clone, Debug)]
struct Entry {
    key: Vec<u8>,
    main: i64,
    /// `None` for a tombstone; else value and lease.
    value: Option<(Vec<u8>, i64)>,
}

#[derive(Clone, Debug)]
struct Model {
    entries: Vec<Entry>,
    current: i64,
    compacted: i64,
}

fn in_range(k: &[u8], key: &[u8], end: &[u8]) -> bool {
    if end.is_empty() {
        k == key
    } else if end == b"\0" {
        k >= key
    } else {
        k >= key && k < end
    }
}

impl Model {
    fn new() -> Self {
        Self {
            entries: Vec::new(),
            current: 1,
            compacted: -1,
        }
    }

    /// The key at `rev`, rebuilt by scanning every entry of the key up to `rev`.
    fn kv_at(&self, key: &[u8], rev: i64) -> Option<KeyValue> {
        let es: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.key == key && e.main <= rev)
            .collect();
        let last = es.last()?;
        let (value, lease) = last.value.clone()?;
        let start = es
            .iter()
            .rposition(|e| e.value.is_none())
            .map_or(0, |i| i + 1);
        Some(KeyValue {
            key: key.to_vec(),
            create_revision: es[start].main,
            mod_revision: last.main,
            version: (es.len() - start) as i64,
            value,
            lease: LeaseId(lease),
        })
    }

    fn keys(&self) -> BTreeSet<Vec<u8>> {
        self.entries.iter().map(|e| e.key.clone()).collect()
    }

    fn live(&self, key: &[u8], end: &[u8], rev: i64) -> Vec<KeyValue> {
        self.keys()
            .into_iter()
            .filter(|k| in_range(k, key, end))
            .filter_map(|k| self.kv_at(&k, rev))
            .collect()
    }

    fn range_at(&self, r: &RangeRequest, rev: i64, header: i64) -> RangeResponse {
        let all = self.live(&r.key, &r.range_end, rev);
        let count = all.len() as i64;
        if r.count_only {
            return RangeResponse {
                revision: header,
                kvs: vec![],
                more: false,
                count,
            };
        }
        let mut kvs: Vec<KeyValue> = all
            .into_iter()
            .filter(|kv| r.min_mod_revision == 0 || kv.mod_revision >= r.min_mod_revision)
            .filter(|kv| r.max_create_revision == 0 || kv.create_revision <= r.max_create_revision)
            .collect();
        let field = |kv: &KeyValue| -> (i64, Vec<u8>) {
            match r.sort_target {
                SortTarget::Key => (0, kv.key.clone()),
                SortTarget::Version => (kv.version, vec![]),
                SortTarget::Create => (kv.create_revision, vec![]),
                SortTarget::Mod => (kv.mod_revision, vec![]),
                SortTarget::Value => (0, kv.value.clone()),
            }
        };
        let descend = r.sort_order == SortOrder::Descend;
        let sorted = r.sort_order != SortOrder::None || r.sort_target != SortTarget::Key;
        if sorted && descend {
            kvs.sort_by_key(|kv| (Reverse(field(kv)), kv.key.clone()));
        } else if sorted {
            kvs.sort_by_key(|kv| (field(kv), kv.key.clone()));
        }
        let more = r.limit > 0 && kvs.len() as i64 > r.limit;
        if more {
            kvs.truncate(r.limit as usize);
        }
        if r.keys_only {
            kvs.iter_mut().for_each(|kv| kv.value.clear());
        }
        RangeResponse {
            revision: header,
            kvs,
            more,
            count,
        }
    }

    fn range(&self, r: &RangeRequest) -> Result<RangeResponse, MvccError> {
        if r.revision > self.current {
            return Err(MvccError::FutureRevision);
        }
        let rev = if r.revision <= 0 {
            self.current
        } else {
            r.revision
        };
        if rev < self.compacted {
            return Err(MvccError::Compacted);
        }
        Ok(self.range_at(r, rev, self.current))
    }

    fn leases_ok(p: &PutRequest) -> bool {
        p.lease.0 == 0 || p.lease.0 == 7
    }

    fn check_put_request(p: &PutRequest) -> Result<(), MvccError> {
        if p.ignore_value && !p.value.is_empty() {
            return Err(MvccError::ValueProvided);
        }
        if p.ignore_lease && p.lease.0 != 0 {
            return Err(MvccError::LeaseProvided);
        }
        Ok(())
    }

    fn do_put(&mut self, main: i64, p: &PutRequest) -> PutResponse {
        let prev = self.kv_at(&p.key, main);
        let value = if p.ignore_value {
            prev.as_ref().map_or(p.value.clone(), |k| k.value.clone())
        } else {
            p.value.clone()
        };
        let lease = if p.ignore_lease {
            prev.as_ref().map_or(p.lease.0, |k| k.lease.0)
        } else {
            p.lease.0
        };
        self.entries.push(Entry {
            key: p.key.clone(),
            main,
            value: Some((value, lease)),
        });
        PutResponse {
            revision: main,
            prev_kv: if p.prev_kv { prev } else { None },
        }
    }

    fn put(&mut self, p: &PutRequest) -> Result<PutResponse, MvccError> {
        Self::check_put_request(p)?;
        if !Self::leases_ok(p) {
            return Err(MvccError::LeaseNotFound);
        }
        if (p.ignore_value || p.ignore_lease) && self.kv_at(&p.key, self.current).is_none() {
            return Err(MvccError::KeyNotFound);
        }
        self.current += 1;
        Ok(self.do_put(self.current, p))
    }

    fn do_delete(&mut self, main: i64, d: &DeleteRangeRequest) -> Vec<KeyValue> {
        let doomed = self.live(&d.key, &d.range_end, main);
        for kv in &doomed {
            self.entries.push(Entry {
                key: kv.key.clone(),
                main,
                value: None,
            });
        }
        doomed
    }

    fn delete(&mut self, d: &DeleteRangeRequest) -> DeleteRangeResponse {
        let doomed = self.do_delete(self.current + 1, d);
        if !doomed.is_empty() {
            self.current += 1;
        }
        DeleteRangeResponse {
            revision: self.current,
            deleted: doomed.len() as i64,
            prev_kvs: if d.prev_kv { doomed } else { vec![] },
        }
    }

    fn compare(&self, c: &Compare) -> bool {
        let kv = self.kv_at(&c.key, self.current);
        if kv.is_none() && matches!(c.target, CompareTarget::Value(_)) {
            return false;
        }
        let kv = kv.unwrap_or_default();
        let ord = match &c.target {
            CompareTarget::Version(v) => kv.version.cmp(v),
            CompareTarget::Create(v) => kv.create_revision.cmp(v),
            CompareTarget::Mod(v) => kv.mod_revision.cmp(v),
            CompareTarget::Value(v) => kv.value.cmp(v),
            CompareTarget::Lease(v) => kv.lease.cmp(v),
        };
        match c.result {
            CompareResult::Equal => ord.is_eq(),
            CompareResult::NotEqual => ord.is_ne(),
            CompareResult::Greater => ord.is_gt(),
            CompareResult::Less => ord.is_lt(),
        }
    }

    /// Flat txns only: puts unique, and no put inside a delete's interval (a `\0`
    /// range end intersects nothing in etcd's interval tree).
    fn duplicate(ops: &[RequestOp]) -> bool {
        let mut puts = BTreeSet::new();
        for op in ops {
            if let RequestOp::Put(p) = op {
                let under_delete = ops.iter().any(|o| match o {
                    RequestOp::DeleteRange(d) if d.range_end.is_empty() => d.key == p.key,
                    RequestOp::DeleteRange(d) => d.key <= p.key && p.key < d.range_end,
                    _ => false,
                });
                if !puts.insert(p.key.clone()) || under_delete {
                    return true;
                }
            }
        }
        false
    }

    fn txn(&mut self, t: &TxnRequest) -> Result<TxnResponse, MvccError> {
        for op in t.success.iter().chain(&t.failure) {
            if let RequestOp::Put(p) = op {
                Self::check_put_request(p)?;
            }
        }
        if Self::duplicate(&t.success) || Self::duplicate(&t.failure) {
            return Err(MvccError::DuplicateKey);
        }
        let succeeded = t.compare.iter().all(|c| self.compare(c));
        let ops = if succeeded { &t.success } else { &t.failure };
        let writes = t
            .success
            .iter()
            .chain(&t.failure)
            .any(|o| !matches!(o, RequestOp::Range(_)));
        if writes {
            for op in ops {
                if let RequestOp::Put(p) = op {
                    if (p.ignore_value || p.ignore_lease)
                        && self.kv_at(&p.key, self.current).is_none()
                    {
                        return Err(MvccError::KeyNotFound);
                    }
                    if !Self::leases_ok(p) {
                        return Err(MvccError::LeaseNotFound);
                    }
                }
            }
        }
        let main = self.current + 1;
        let before = self.entries.len();
        let mut responses = Vec::new();
        for op in ops {
            let wrote = self.entries.len() > before;
            let read = if wrote { main } else { self.current };
            responses.push(match op {
                RequestOp::Range(r) => ResponseOp::Range(self.range_at(r, read, read)),
                RequestOp::Put(p) => ResponseOp::Put(self.do_put(main, p)),
                RequestOp::DeleteRange(d) => {
                    let doomed = self.do_delete(main, d);
                    let wrote = self.entries.len() > before;
                    ResponseOp::DeleteRange(DeleteRangeResponse {
                        revision: if wrote { main } else { self.current },
                        deleted: doomed.len() as i64,
                        prev_kvs: doomed,
                    })
                }
                RequestOp::Txn(_) => unreachable!("flat txns only"),
            });
        }
        if self.entries.len() > before {
            self.current = main;
        }
        Ok(TxnResponse {
            revision: self.current,
            succeeded,
            responses,
        })
    }

    fn compact(&mut self, rev: i64) -> Result<(), MvccError> {
        if rev <= self.compacted {
            return Err(MvccError::Compacted);
        }
        if rev > self.current {
            return Err(MvccError::FutureRevision);
        }
        self.compacted = rev;
        Ok(())
    }

    /// The key right after entry `idx` (which may share its revision with later ones).
    fn kv_after(&self, idx: usize) -> Option<KeyValue> {
        let e = &self.entries[idx];
        let es: Vec<&Entry> = self.entries[..=idx]
            .iter()
            .filter(|x| x.key == e.key)
            .collect();
        let (value, lease) = e.value.clone()?;
        let start = es
            .iter()
            .rposition(|x| x.value.is_none())
            .map_or(0, |i| i + 1);
        Some(KeyValue {
            key: e.key.clone(),
            create_revision: es[start].main,
            mod_revision: e.main,
            version: (es.len() - start) as i64,
            value,
            lease: LeaseId(lease),
        })
    }

    fn event(&self, idx: usize) -> Event {
        let e = &self.entries[idx];
        let after = self.kv_after(idx);
        let prev = if e.main > self.compacted && e.main > 1 {
            self.kv_at(&e.key, e.main - 1)
        } else {
            None
        };
        match after {
            Some(kv) if kv.version == 1 => Event {
                kind: EventKind::Put,
                kv,
                prev_kv: None,
            },
            Some(kv) => Event {
                kind: EventKind::Put,
                kv,
                prev_kv: prev,
            },
            None => Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: e.key.clone(),
                    mod_revision: e.main,
                    ..KeyValue::default()
                },
                prev_kv: prev,
            },
        }
    }

    fn events_at(&self, main: i64) -> Vec<Event> {
        (0..self.entries.len())
            .filter(|&i| self.entries[i].main == main)
            .map(|i| self.event(i))
            .collect()
    }

    fn events_since(&self, start: i64, key: &[u8], end: &[u8]) -> Result<Vec<Event>, MvccError> {
        if start < self.compacted {
            return Err(MvccError::Compacted);
        }
        Ok((0..self.entries.len())
            .filter(|&i| {
                let e = &self.entries[i];
                e.main >= start.max(1) && in_range(&e.key, key, end)
                    // at the compacted revision itself only a key's last change survives,
                    // and only if it is a put
                    && (e.main != self.compacted
                        || (e.value.is_some()
                            && !self.entries[i + 1..]
                                .iter()
                                .any(|x| x.key == e.key && x.main == e.main)))
            })
            .map(|i| self.event(i))
            .collect())
    }
}

fn leases() -> BTreeSet<LeaseId> {
    [LeaseId(7)].into_iter().collect()
}

fn run(ops: &[Op]) -> Result<(), String> {
    let mut store = Store::new(MemBackend::new());
    let mut model = Model::new();
    for (i, op) in ops.iter().enumerate() {
        let before = model.current;
        let same = match op {
            Op::Put(p) => {
                let r = p.request();
                format!("{:?}", store.put(&r, &leases())) == format!("{:?}", model.put(&r))
            }
            Op::Delete(k, e, prev) => {
                let r = DeleteRangeRequest {
                    key: (*k).into(),
                    range_end: (*e).into(),
                    prev_kv: *prev,
                };
                store.delete_range(&r) == Ok(model.delete(&r))
            }
            Op::Txn { .. } => {
                let t = op.txn_request().expect("a txn");
                store.txn(&t, &leases()) == model.txn(&t)
            }
            Op::Compact(back) => {
                let rev = model.current - back;
                store.compact(rev).map(|_| ()) == model.compact(rev)
            }
            Op::Range(r) => {
                let req = r.request(model.current);
                store.range(&req) == model.range(&req)
            }
            Op::Watch(start, k, e) => {
                store.events_since(*start, k.as_bytes(), e.as_bytes())
                    == model.events_since(*start, k.as_bytes(), e.as_bytes())
            }
        };
        if !same {
            return Err(format!("op {i} {op:?} differs"));
        }
        let evs = store.take_events();
        let want = if model.current > before {
            model.events_at(model.current)
        } else {
            vec![]
        };
        if evs != want {
            return Err(format!("op {i} {op:?}: events {evs:?} != {want:?}"));
        }
        if store.current_revision() != model.current || store.compact_revision() != model.compacted
        {
            return Err(format!("op {i}: revisions differ"));
        }
    }
    store
        .commit(Default::default())
        .map_err(|e| e.to_string())?;
    let reopened = Store::open(store.backend().clone()).map_err(|e| e.to_string())?;
    if reopened.current_revision() != store.current_revision()
        || reopened.compact_revision() != store.compact_revision()
    {
        return Err("reopened store has other revisions".into());
    }
    for rev in store.compact_revision().max(1)..=store.current_revision() {
        let all = RangeRequest {
            key: vec![0],
            range_end: vec![0],
            revision: rev,
            ..Default::default()
        };
        if reopened.range(&all) != store.range(&all) {
            return Err(format!("reopened store differs at revision {rev}"));
        }
        if reopened.hash_kv(rev) != store.hash_kv(rev) {
            return Err(format!("reopened hash differs at revision {rev}"));
        }
    }
    if reopened.events_since(0, &[0], &[0]) != store.events_since(0, &[0], &[0]) {
        return Err("reopened history differs".into());
    }
    Ok(())
}

fn prop(ops: Vec<Op>) -> TestResult {
    match run(&ops) {
        Ok(()) => TestResult::passed(),
        Err(e) => TestResult::error(e),
    }
}

#[test]
fn store_matches_naive_history_model_on_random_interleavings() {
    QuickCheck::new()
        .tests(400)
        .quickcheck(prop as fn(Vec<Op>) -> TestResult);
}

#[test]
fn model_check_can_fail_when_the_store_misbehaves() {
    // A deliberately wrong expectation must be caught: the model run on a sequence that
    // writes must disagree with a store that skipped one of the writes.
    let mut store = Store::new(MemBackend::new());
    let mut model = Model::new();
    let p = PutRequest {
        key: "a".into(),
        value: "x".into(),
        ..Default::default()
    };
    model.put(&p).expect("model put");
    model.put(&p).expect("model put");
    store.put(&p, &leases()).expect("store put");
    let all = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    };
    assert_ne!(store.range(&all), model.range(&all));
}
