//! Request checks etcd 3.4 makes in its gRPC layer before a request is proposed
//! (`etcdserver/api/v3rpc/key.go`: `checkPutRequest`, `checkTxnRequest`,
//! `checkIntervals`). The store runs them too, so a request that etcd would never have
//! applied gives etcd's error instead of an effect. The limit on txn ops
//! (`--max-txn-ops`) is configuration and stays in the server.

use std::collections::BTreeSet;

use super::request::{
    DeleteRangeRequest, MvccError, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use crate::lease::LeaseId;

/// `checkRangeRequest`: the key must not be empty.
///
/// # Errors
/// [`MvccError::EmptyKey`].
pub fn check_range(r: &RangeRequest) -> Result<(), MvccError> {
    if r.key.is_empty() {
        return Err(MvccError::EmptyKey);
    }
    Ok(())
}

/// `checkPutRequest`: non-empty key; no value with `ignore_value`; no lease with
/// `ignore_lease`.
///
/// # Errors
/// [`MvccError::EmptyKey`], [`MvccError::ValueProvided`], [`MvccError::LeaseProvided`].
pub fn check_put(r: &PutRequest) -> Result<(), MvccError> {
    if r.key.is_empty() {
        return Err(MvccError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(MvccError::ValueProvided);
    }
    if r.ignore_lease && r.lease != LeaseId::NONE {
        return Err(MvccError::LeaseProvided);
    }
    Ok(())
}

/// `checkDeleteRequest`: the key must not be empty.
///
/// # Errors
/// [`MvccError::EmptyKey`].
pub fn check_delete(r: &DeleteRangeRequest) -> Result<(), MvccError> {
    if r.key.is_empty() {
        return Err(MvccError::EmptyKey);
    }
    Ok(())
}

/// `checkTxnRequest` (without the op-count limit) followed by `checkIntervals` on
/// both branches, in etcd's order.
///
/// # Errors
/// The first [`MvccError`] etcd would report.
pub fn check_txn(r: &TxnRequest) -> Result<(), MvccError> {
    check_txn_ops(r)?;
    check_intervals(&r.success)?;
    check_intervals(&r.failure)?;
    Ok(())
}

fn check_txn_ops(r: &TxnRequest) -> Result<(), MvccError> {
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(MvccError::EmptyKey);
    }
    for op in r.success.iter().chain(&r.failure) {
        match op {
            RequestOp::Range(x) => check_range(x)?,
            RequestOp::Put(x) => check_put(x)?,
            RequestOp::DeleteRange(x) => check_delete(x)?,
            RequestOp::Txn(x) => check_txn_ops(x)?,
        }
    }
    Ok(())
}

/// A deleted interval as etcd's interval tree holds it: `[begin, end)` where a delete
/// of one key is `[key, key + "\0")`. A delete whose `range_end` is `"\0"` becomes
/// `[key, "\0")`, which intersects no key: etcd 3.4 does not flag puts under a
/// from-key delete, and neither do we.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Interval {
    begin: Vec<u8>,
    end: Vec<u8>,
}

impl Interval {
    fn of_delete(d: &DeleteRangeRequest) -> Self {
        if d.range_end.is_empty() {
            Self::point(&d.key)
        } else {
            Self {
                begin: d.key.clone(),
                end: d.range_end.clone(),
            }
        }
    }

    fn point(k: &[u8]) -> Self {
        let mut end = k.to_vec();
        end.push(0);
        Self {
            begin: k.to_vec(),
            end,
        }
    }

    /// etcd's `adt` intersection of half-open intervals.
    fn intersects(&self, other: &Self) -> bool {
        self.begin < other.end && other.begin < self.end
    }
}

fn any_intersects(dels: &[Interval], key: &[u8]) -> bool {
    let p = Interval::point(key);
    dels.iter().any(|d| d.intersects(&p))
}

type PutsDels = (BTreeSet<Vec<u8>>, Vec<Interval>);

/// `checkIntervals`: puts may not repeat a key or fall in a delete's interval, across
/// nested txns; the two branches of one nested txn may put the same key. Walks the ops
/// in etcd's exact order (this level's deletes, then each nested txn, then this level's
/// puts), so it flags exactly what etcd 3.4 flags.
fn check_intervals(reqs: &[RequestOp]) -> Result<PutsDels, MvccError> {
    let mut dels: Vec<Interval> = reqs
        .iter()
        .filter_map(|r| match r {
            RequestOp::DeleteRange(d) => Some(Interval::of_delete(d)),
            _ => None,
        })
        .collect();
    let mut puts: BTreeSet<Vec<u8>> = BTreeSet::new();
    for r in reqs {
        let RequestOp::Txn(t) = r else { continue };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || any_intersects(&dels, k) {
                return Err(MvccError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            if puts.contains(k) && !puts_then.contains(k) {
                return Err(MvccError::DuplicateKey);
            }
            if any_intersects(&dels, k) {
                return Err(MvccError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for r in reqs {
        let RequestOp::Put(p) = r else { continue };
        if puts.contains(&p.key) || any_intersects(&dels, &p.key) {
            return Err(MvccError::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}
