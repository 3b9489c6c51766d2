//! `spec::lease::Lessor` against a naive scan: random grants, revokes, keep-alives,
//! leader changes and clock advances; the leases listed as expired must be exactly
//! those a scan of every lease finds with `now >= expiry`, and remaining TTLs must be
//! what etcd 3.4.23 reports (`int64(Remaining().Seconds())`, truncated).

use oxetcd_spec::lease::{
    FOREVER_REMAINING_SECS, LeaseError, LeaseId, Lessor, MAX_LEASE_TTL_SECS, min_lease_ttl_secs,
};
use quickcheck::{Arbitrary, Gen, QuickCheck};

#[derive(Clone, Debug)]
enum Op {
    Grant(i64, i64),
    Revoke(i64),
    Renew(i64),
    Promote(u64),
    Demote,
    Advance(u64),
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        let id = *g.choose(&[0, 1, 2, 3, 4]).expect("non-empty");
        match u8::arbitrary(g) % 8 {
            0 | 1 => Op::Grant(id, *g.choose(&[-1, 0, 1, 3, 5, 10]).expect("non-empty")),
            2 => Op::Revoke(id),
            3 => Op::Renew(id),
            4 => Op::Promote(*g.choose(&[0, 1000]).expect("non-empty")),
            5 => Op::Demote,
            _ => Op::Advance(*g.choose(&[1, 499, 500, 1000, 2500]).expect("non-empty")),
        }
    }
}

/// The naive twin: (id, ttl, expiry) in grant order.
#[derive(Default)]
struct Naive {
    leases: Vec<(i64, i64, Option<u64>)>,
    primary: bool,
}

fn run(ops: &[Op]) -> Result<(), String> {
    let min = min_lease_ttl_secs(100, 1000);
    let mut l = Lessor::new(min);
    let mut n = Naive::default();
    let mut now: u64 = 1_000_000;
    for op in ops {
        match *op {
            Op::Grant(id, ttl) => {
                let got = l.grant(LeaseId(id), ttl, now);
                let exists = n.leases.iter().any(|x| x.0 == id);
                let want = if id == 0 {
                    Err(LeaseError::NotFound)
                } else if exists {
                    Err(LeaseError::AlreadyExists)
                } else {
                    let ttl = ttl.max(min);
                    let exp = n.primary.then(|| now + ttl as u64 * 1000);
                    n.leases.push((id, ttl, exp));
                    Ok((ttl, exp))
                };
                if got.map(|x| (x.ttl_secs, x.expiry_ms)) != want {
                    return Err(format!("grant {id} {ttl}"));
                }
            }
            Op::Revoke(id) => {
                let before = n.leases.len();
                n.leases.retain(|x| x.0 != id);
                if l.revoke(LeaseId(id)).is_ok() != (n.leases.len() < before) {
                    return Err(format!("revoke {id}"));
                }
            }
            Op::Renew(id) => {
                let got = l.renew(LeaseId(id), now);
                let want = if !n.primary {
                    Err(LeaseError::NotPrimary)
                } else {
                    match n.leases.iter_mut().find(|x| x.0 == id) {
                        None => Err(LeaseError::NotFound),
                        Some(x) if x.2.is_some_and(|e| now >= e) => Err(LeaseError::NotFound),
                        Some(x) => {
                            x.2 = Some(now + x.1 as u64 * 1000);
                            Ok(x.1)
                        }
                    }
                };
                if got != want {
                    return Err(format!("renew {id}: {got:?} != {want:?}"));
                }
            }
            Op::Promote(extend) => {
                l.promote(now, extend);
                n.primary = true;
                for x in &mut n.leases {
                    x.2 = Some(now + extend + x.1 as u64 * 1000);
                }
            }
            Op::Demote => {
                l.demote();
                n.primary = false;
                for x in &mut n.leases {
                    x.2 = None;
                }
            }
            Op::Advance(ms) => now += ms,
        }
        let mut scan: Vec<(u64, i64)> = n
            .leases
            .iter()
            .filter_map(|x| x.2.filter(|e| now >= *e).map(|e| (e, x.0)))
            .collect();
        scan.sort();
        let want: Vec<LeaseId> = scan.into_iter().map(|(_, id)| LeaseId(id)).collect();
        if l.expired_leases(now, usize::MAX) != want {
            return Err(format!("expired at {now}"));
        }
        for x in &n.leases {
            let ttl = l.time_to_live(LeaseId(x.0), now, vec![]);
            let remaining = match x.2 {
                None => FOREVER_REMAINING_SECS,
                Some(e) => (e as i64 - now as i64) / 1000,
            };
            if (ttl.ttl_secs, ttl.granted_ttl_secs) != (remaining, x.1) {
                return Err(format!("time to live of {}", x.0));
            }
        }
    }
    Ok(())
}

#[test]
fn expired_leases_equal_a_scan_of_every_lease() {
    fn prop(ops: Vec<Op>) -> bool {
        run(&ops).is_ok()
    }
    QuickCheck::new()
        .tests(1000)
        .quickcheck(prop as fn(Vec<Op>) -> bool);
}

#[test]
fn minimum_ttl_is_etcds_rule_two_seconds_with_default_timeouts() {
    // etcd 3.4.23 with defaults: `etcdctl lease grant 1` answers "granted with TTL(2s)".
    assert_eq!(min_lease_ttl_secs(100, 1000), 2);
    // ceil(((3 * 10) / 2) * 50 ms) = ceil(0.75 s) = 1 s
    assert_eq!(min_lease_ttl_secs(50, 500), 1);
    // ceil(((3 * 5) / 2) * 200 ms) = ceil(1.4 s) = 2 s (integer tick division first)
    assert_eq!(min_lease_ttl_secs(200, 1000), 2);
    let mut l = Lessor::new(2);
    assert_eq!(l.grant(LeaseId(1), 1, 0).map(|x| x.ttl_secs), Ok(2));
    assert_eq!(l.grant(LeaseId(2), 0, 0).map(|x| x.ttl_secs), Ok(2));
}

#[test]
fn grant_errors_are_etcds() {
    let mut l = Lessor::new(2);
    assert_eq!(
        l.grant(LeaseId(1), MAX_LEASE_TTL_SECS + 1, 0),
        Err(LeaseError::TtlTooLarge)
    );
    assert!(l.grant(LeaseId(1), MAX_LEASE_TTL_SECS, 0).is_ok());
    assert_eq!(l.grant(LeaseId(1), 5, 0), Err(LeaseError::AlreadyExists));
    assert_eq!(l.grant(LeaseId(0), 5, 0), Err(LeaseError::NotFound));
    assert_eq!(
        LeaseError::AlreadyExists.to_string(),
        "etcdserver: lease already exists"
    );
    assert_eq!(
        LeaseError::TtlTooLarge.to_string(),
        "etcdserver: too large lease TTL"
    );
    assert_eq!(
        LeaseError::NotFound.to_string(),
        "etcdserver: requested lease not found"
    );
}

#[test]
fn leader_change_restarts_every_clock_with_the_extension() {
    let mut l = Lessor::new(2);
    l.promote(0, 1000);
    l.grant(LeaseId(1), 10, 0).expect("grant");
    assert_eq!(l.expired_leases(10_000, 10), vec![LeaseId(1)]);
    // New leader elsewhere: this member stops its clocks and expires nothing.
    l.demote();
    assert!(l.expired_leases(100_000, 10).is_empty());
    // Leadership comes back at t=100 s: the lease gets ttl + election timeout afresh.
    l.promote(100_000, 1000);
    assert!(l.expired_leases(110_999, 10).is_empty());
    assert_eq!(l.expired_leases(111_000, 10), vec![LeaseId(1)]);
}

#[test]
fn lease_ids_follow_etcds_generator_layout() {
    use oxetcd_spec::lease::IdGenerator;
    // (A real etcd 3.4.23 with member ID 0xbac7efc361f1457e granted lease 0x457ea1ff9768b26b.)
    // member ID 0x1234_abcd: prefix is its low 16 bits in the top 2 bytes; the counter
    // starts at (start_ms mod 2^40) << 8 and increments by one per ID.
    let start_ms = 1_700_000_000_123u64;
    let mut g = IdGenerator::new(0x1234_abcd, start_ms);
    let base = (0xabcd_u64 << 48) | ((start_ms & ((1 << 40) - 1)) << 8);
    assert_eq!(g.next_id(), base + 1);
    assert_eq!(g.next_id(), base + 2);
    // Lease IDs drop the sign bit (0xabcd has it set) and are never 0.
    let id = g.next_lease_id();
    assert_eq!(id.0 as u64, (base + 3) & (u64::MAX >> 1));
    assert!(id.0 > 0);
    let mut zero = IdGenerator::new(0, 0);
    assert!((0..1000).all(|_| zero.next_lease_id().0 > 0));
}
