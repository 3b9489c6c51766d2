//! Property test: etcd's range-permission check (interval-tree "overlapping intervals
//! are contiguous and cover the query") against a naive interval scan that walks the
//! query range from its start, jumping to the furthest end of any granted interval
//! containing the current position. Keys come from a tiny alphabet so ranges touch,
//! nest and leave gaps often.

use oxetcd_spec::auth::{Permission, PermissionType, range_permitted};
use quickcheck::{Arbitrary, Gen, QuickCheck};

#[derive(Clone, Debug)]
struct Case {
    perms: Vec<Permission>,
    key: Vec<u8>,
    range_end: Vec<u8>,
    wanted: PermissionType,
}

fn key(g: &mut Gen) -> Vec<u8> {
    let len = 1 + usize::from(u8::arbitrary(g) % 2);
    (0..len)
        .map(|_| *g.choose(b"abc").expect("alphabet"))
        .collect()
}

fn perm_type(g: &mut Gen) -> PermissionType {
    *g.choose(&[
        PermissionType::Read,
        PermissionType::Write,
        PermissionType::ReadWrite,
    ])
    .expect("types")
}

/// A range end after `k`: empty (single key), `[0]` (from key) or a larger key.
fn end_after(g: &mut Gen, k: &[u8]) -> Vec<u8> {
    match u8::arbitrary(g) % 4 {
        0 => Vec::new(),
        1 => vec![0],
        _ => loop {
            let e = key(g);
            if e.as_slice() > k {
                break e;
            }
            if k.first() == Some(&b'c') && k.len() == 2 {
                break vec![b'd'];
            }
        },
    }
}

impl Arbitrary for Case {
    fn arbitrary(g: &mut Gen) -> Self {
        let n = usize::from(u8::arbitrary(g) % 5);
        let perms = (0..n)
            .map(|_| {
                let k = key(g);
                Permission {
                    perm_type: perm_type(g),
                    range_end: end_after(g, &k),
                    key: k,
                }
            })
            .collect();
        let k = key(g);
        Case {
            perms,
            range_end: end_after(g, &k),
            key: k,
            wanted: perm_type_wanted(g),
        }
    }
}

fn perm_type_wanted(g: &mut Gen) -> PermissionType {
    *g.choose(&[PermissionType::Read, PermissionType::Write])
        .expect("types")
}

/// End bound: `None` is +infinity.
fn naive_interval(key: &[u8], range_end: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    if range_end.is_empty() {
        let mut e = key.to_vec();
        e.push(0);
        (key.to_vec(), Some(e))
    } else if range_end == [0] {
        (key.to_vec(), None)
    } else {
        (key.to_vec(), Some(range_end.to_vec()))
    }
}

fn naive(case: &Case) -> bool {
    let granted: Vec<(Vec<u8>, Option<Vec<u8>>)> = case
        .perms
        .iter()
        .filter(|p| p.perm_type == PermissionType::ReadWrite || p.perm_type == case.wanted)
        .map(|p| naive_interval(&p.key, &p.range_end))
        .collect();
    let (begin, end) = naive_interval(&case.key, &case.range_end);
    let mut pos = begin;
    // Each jump strictly advances `pos` to a granted end, so this ends in <= n+1 rounds.
    for _ in 0..=granted.len() {
        if end.as_ref().is_some_and(|e| pos >= *e) {
            return true;
        }
        let best = granted
            .iter()
            .filter(|(b, e)| *b <= pos && e.as_ref().is_none_or(|e| *e > pos))
            .map(|(_, e)| e.clone())
            .max_by(|a, b| match (a, b) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(_), None) => std::cmp::Ordering::Less,
                (Some(x), Some(y)) => x.cmp(y),
            });
        match best {
            None => return false,
            Some(None) => return true,
            Some(Some(e)) => pos = e,
        }
    }
    end.as_ref().is_some_and(|e| pos >= *e)
}

fn prop(case: Case) -> bool {
    let got = range_permitted(&case.perms, &case.key, &case.range_end, case.wanted);
    if got != naive(&case) {
        eprintln!("disagree on {case:?}: etcd-style {got}");
        return false;
    }
    true
}

#[test]
fn range_check_agrees_with_naive_interval_scan() {
    QuickCheck::new()
        .tests(3000)
        .max_tests(6000)
        .quickcheck(prop as fn(Case) -> bool);
}

#[test]
fn adjacent_grants_cover_a_range_together_but_gaps_do_not() {
    let p = |k: &[u8], e: &[u8]| Permission {
        perm_type: PermissionType::Read,
        key: k.to_vec(),
        range_end: e.to_vec(),
    };
    let touching = [p(b"a", b"b"), p(b"b", b"c")];
    assert!(range_permitted(&touching, b"a", b"c", PermissionType::Read));
    let gap = [p(b"a", b"b"), p(b"b\0", b"c")];
    assert!(
        !range_permitted(&gap, b"a", b"c", PermissionType::Read),
        "key b itself missing"
    );
    let with_point = [p(b"a", b"b"), p(b"b", b""), p(b"b\0", b"c")];
    assert!(range_permitted(
        &with_point,
        b"a",
        b"c",
        PermissionType::Read
    ));
    assert!(!range_permitted(
        &touching,
        b"a",
        b"c",
        PermissionType::Write
    ));
}
