//! Leases (etcd 3.4 lessor): grant, revoke, keep-alive, time-to-live, listing, and expiry
//! decided from an explicit `now_ms`.
//!
//! What it is: the replicated lease table (ID and granted TTL, changed only by applied
//! commands) plus each member's local expiry clock, which only the leader ("primary")
//! runs, as in etcd: on a follower every lease lives forever; [`Lessor::promote`] (on
//! becoming leader) restarts every lease's clock with an extension, as etcd's
//! `Promote(electionTimeout)` does; [`Lessor::demote`] stops it. The leader lists
//! expired leases with [`Lessor::expired_leases`] and proposes a revoke for each through
//! the log. Keep-alive is leader-local (etcd 3.4 does not replicate renewals).
//!
//! What it is not: the key attachment table (the MVCC store tracks which live keys
//! carry which lease, so revocation and time-to-live read it from there) or
//! checkpointing (off by default in etcd 3.4 and not modelled). The expiry pile-up
//! spreading etcd's `Promote` does for 1000 or more leases is not modelled either.

use std::collections::BTreeMap;

use crate::mvcc::kv::{PbField, pb_fields, put_varint};
use crate::mvcc::{DecodeError, LeaseCheck};

/// A lease's ID (etcd's `LeaseID`, an int64; 0 means "no lease").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LeaseId(pub i64);

impl LeaseId {
    /// "No lease" (etcd's `NoLease`).
    pub const NONE: LeaseId = LeaseId(0);
}

/// Largest TTL a lease may be granted with, in seconds (etcd's `MaxLeaseTTL`).
pub const MAX_LEASE_TTL_SECS: i64 = 9_000_000_000;

/// The remaining TTL etcd reports for a lease whose clock is not running (a follower's):
/// `int64(time.Duration(math.MaxInt64).Seconds())`.
pub const FOREVER_REMAINING_SECS: i64 = 9_223_372_036;

/// Lease errors, with etcd 3.4.23's texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum LeaseError {
    /// No such lease (also for ID 0 on grant, as etcd's lessor does).
    #[error("etcdserver: requested lease not found")]
    NotFound,
    /// Grant with an ID already in use.
    #[error("etcdserver: lease already exists")]
    AlreadyExists,
    /// Grant with TTL above [`MAX_LEASE_TTL_SECS`].
    #[error("etcdserver: too large lease TTL")]
    TtlTooLarge,
    /// Keep-alive on a member that is not the leader (the server forwards it).
    #[error("etcdserver: not primary")]
    NotPrimary,
}

/// etcd's request/lease ID generator (`pkg/idutil.Generator`): the high 2 bytes are the
/// low 16 bits of the member ID, the low 6 bytes a counter started at the member's start
/// time in ms (low 40 bits) shifted left by 8. Each [`IdGenerator::next_id`] increments the
/// counter. Deterministic given its seed; the server seeds it once at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IdGenerator {
    prefix: u64,
    suffix: u64,
}

const ID_TS_BITS: u32 = 40;
const ID_COUNT_BITS: u32 = 8;
const ID_SUFFIX_BITS: u32 = ID_TS_BITS + ID_COUNT_BITS;

fn low_bits(x: u64, n: u32) -> u64 {
    x & (u64::MAX >> (64 - n))
}

impl IdGenerator {
    /// etcd's `NewGenerator(uint16(memberID), now)`.
    #[must_use]
    pub fn new(member_id: u64, start_ms: u64) -> Self {
        Self {
            prefix: (member_id & 0xffff) << ID_SUFFIX_BITS,
            suffix: low_bits(start_ms, ID_TS_BITS) << ID_COUNT_BITS,
        }
    }

    /// The next ID (etcd's `Next`).
    pub fn next_id(&mut self) -> u64 {
        self.suffix = self.suffix.wrapping_add(1);
        self.prefix | low_bits(self.suffix, ID_SUFFIX_BITS)
    }

    /// An ID for a lease granted with ID 0: etcd's `LeaseGrant` draws `Next() & (2^63-1)`
    /// until it is not 0.
    pub fn next_lease_id(&mut self) -> LeaseId {
        loop {
            let id = self.next_id() & (u64::MAX >> 1);
            if id != 0 {
                return LeaseId(i64::try_from(id).expect("63-bit value fits in i64"));
            }
        }
    }
}

/// etcd's default minimum lease TTL rule: `ceil(((3 * election_ticks) / 2) * heartbeat)`
/// in seconds, where `election_ticks = election_ms / heartbeat_ms` (integer division,
/// as etcd's `ElectionTicks`). With etcd's defaults (100 ms, 1000 ms) it is 2 s.
#[must_use]
pub fn min_lease_ttl_secs(heartbeat_ms: u64, election_ms: u64) -> i64 {
    if heartbeat_ms == 0 {
        return 0;
    }
    let election_ticks = election_ms / heartbeat_ms;
    let min_ms = (3 * election_ticks / 2) * heartbeat_ms;
    i64::try_from(min_ms.div_ceil(1000)).unwrap_or(i64::MAX)
}

/// One lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    /// Its ID.
    pub id: LeaseId,
    /// Granted TTL in seconds (after raising to the minimum).
    pub ttl_secs: i64,
    /// When it expires on this member's clock; `None` while the clock is not running
    /// (this member is not the leader).
    pub expiry_ms: Option<u64>,
}

impl Lease {
    /// etcd's `Remaining().Seconds()` truncated to an integer, as `TimeToLive` reports.
    #[must_use]
    pub fn remaining_secs(&self, now_ms: u64) -> i64 {
        match self.expiry_ms {
            None => FOREVER_REMAINING_SECS,
            Some(e) => {
                let diff = i128::from(e) - i128::from(now_ms);
                i64::try_from(diff / 1000).unwrap_or(i64::MAX)
            }
        }
    }

    /// etcd `leasepb.Lease` bytes (field 1 ID, field 2 TTL) for the `lease` bucket.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (field, v) in [(1u64, self.id.0), (2, self.ttl_secs)] {
            if v != 0 {
                put_varint(&mut out, field << 3);
                put_varint(&mut out, v as u64);
            }
        }
        out
    }

    /// Parses [`Lease::encode`] output (the expiry is local and not stored).
    ///
    /// # Errors
    /// [`DecodeError`] on malformed bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut l = Lease {
            id: LeaseId::NONE,
            ttl_secs: 0,
            expiry_ms: None,
        };
        for f in pb_fields(bytes)? {
            match f {
                PbField::Int(1, v) => l.id = LeaseId(v),
                PbField::Int(2, v) => l.ttl_secs = v,
                // field 3 is etcd's checkpointed remaining TTL: accepted, not used.
                PbField::Int(3, _) => {}
                PbField::Int(field, _) => {
                    return Err(DecodeError::UnexpectedField {
                        field,
                        wire_type: 0,
                    });
                }
                PbField::Bytes(field, _) => {
                    return Err(DecodeError::UnexpectedField {
                        field,
                        wire_type: 2,
                    });
                }
            }
        }
        Ok(l)
    }
}

/// The answer to a time-to-live query (etcd's `LeaseTimeToLiveResponse` fields).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TimeToLive {
    /// The lease asked about.
    pub id: LeaseId,
    /// Remaining seconds; -1 if the lease does not exist (etcd answers so, not with an
    /// error).
    pub ttl_secs: i64,
    /// Granted TTL; 0 if the lease does not exist.
    pub granted_ttl_secs: i64,
    /// Attached keys, ascending (only if asked for).
    pub keys: Vec<Vec<u8>>,
}

/// The lease table plus this member's expiry clock.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Lessor {
    leases: BTreeMap<LeaseId, Lease>,
    primary: bool,
    min_ttl_secs: i64,
}

impl LeaseCheck for Lessor {
    fn lease_exists(&self, id: LeaseId) -> bool {
        self.leases.contains_key(&id)
    }
}

impl Lessor {
    /// An empty table; grants are raised to `min_ttl_secs` (see [`min_lease_ttl_secs`]).
    #[must_use]
    pub fn new(min_ttl_secs: i64) -> Self {
        Self {
            leases: BTreeMap::new(),
            primary: false,
            min_ttl_secs,
        }
    }

    /// Restores leases read back from storage (clocks stopped until [`Lessor::promote`]).
    pub fn restore(&mut self, leases: impl IntoIterator<Item = Lease>) {
        for mut l in leases {
            l.expiry_ms = None;
            self.leases.insert(l.id, l);
        }
        self.primary = false;
    }

    /// True while this member runs the expiry clock (it is the leader).
    #[must_use]
    pub fn is_primary(&self) -> bool {
        self.primary
    }

    /// The minimum TTL grants are raised to.
    #[must_use]
    pub fn min_ttl_secs(&self) -> i64 {
        self.min_ttl_secs
    }

    /// The lease `id`, if granted.
    #[must_use]
    pub fn get(&self, id: LeaseId) -> Option<&Lease> {
        self.leases.get(&id)
    }

    /// Grants a lease (etcd `lessor.Grant`): ID 0 is not found; TTL above the maximum
    /// is too large (checked before raising); an existing ID already exists; TTL is
    /// raised to the minimum; on the leader the clock starts at `now_ms`.
    ///
    /// # Errors
    /// [`LeaseError::NotFound`], [`LeaseError::TtlTooLarge`], [`LeaseError::AlreadyExists`].
    pub fn grant(&mut self, id: LeaseId, ttl_secs: i64, now_ms: u64) -> Result<Lease, LeaseError> {
        if id == LeaseId::NONE {
            return Err(LeaseError::NotFound);
        }
        if ttl_secs > MAX_LEASE_TTL_SECS {
            return Err(LeaseError::TtlTooLarge);
        }
        if self.leases.contains_key(&id) {
            return Err(LeaseError::AlreadyExists);
        }
        let ttl_secs = ttl_secs.max(self.min_ttl_secs);
        let lease = Lease {
            id,
            ttl_secs,
            expiry_ms: self.primary.then(|| expiry(now_ms, 0, ttl_secs)),
        };
        self.leases.insert(id, lease);
        Ok(lease)
    }

    /// Removes a lease from the table (the applier deletes its keys in the same step).
    ///
    /// # Errors
    /// [`LeaseError::NotFound`].
    pub fn revoke(&mut self, id: LeaseId) -> Result<Lease, LeaseError> {
        self.leases.remove(&id).ok_or(LeaseError::NotFound)
    }

    /// Keep-alive (etcd `lessor.Renew`): on the leader, restarts the lease's clock and
    /// returns its TTL. A lease already expired (waiting for its revoke) is reported
    /// as not found, which is what etcd answers once the revoke lands.
    ///
    /// # Errors
    /// [`LeaseError::NotPrimary`] off the leader; [`LeaseError::NotFound`]. (etcd's
    /// keep-alive stream turns not-found into a response with TTL 0.)
    pub fn renew(&mut self, id: LeaseId, now_ms: u64) -> Result<i64, LeaseError> {
        if !self.primary {
            return Err(LeaseError::NotPrimary);
        }
        let l = self.leases.get_mut(&id).ok_or(LeaseError::NotFound)?;
        if l.expiry_ms.is_some_and(|e| now_ms >= e) {
            return Err(LeaseError::NotFound);
        }
        l.expiry_ms = Some(expiry(now_ms, 0, l.ttl_secs));
        Ok(l.ttl_secs)
    }

    /// Time-to-live (etcd `LeaseTimeToLive` on the leader): remaining and granted TTL,
    /// and the attached `keys` the caller passes in (from
    /// [`crate::mvcc::Store::keys_of_lease`]) if wanted. Unknown leases give TTL -1.
    #[must_use]
    pub fn time_to_live(&self, id: LeaseId, now_ms: u64, keys: Vec<Vec<u8>>) -> TimeToLive {
        match self.leases.get(&id) {
            None => TimeToLive {
                id,
                ttl_secs: -1,
                granted_ttl_secs: 0,
                keys: Vec::new(),
            },
            Some(l) => TimeToLive {
                id,
                ttl_secs: l.remaining_secs(now_ms),
                granted_ttl_secs: l.ttl_secs,
                keys,
            },
        }
    }

    /// All leases, by expiry then ID (etcd sorts `Leases()` by expiry; stopped clocks
    /// sort last).
    #[must_use]
    pub fn leases(&self) -> Vec<Lease> {
        let mut v: Vec<Lease> = self.leases.values().copied().collect();
        v.sort_by_key(|l| (l.expiry_ms.is_none(), l.expiry_ms, l.id));
        v
    }

    /// Leases whose clock has run out at `now_ms` (`now_ms >= expiry`), soonest first,
    /// at most `limit` (etcd revokes at most 500 per check). Empty off the leader. The
    /// leader proposes a revoke for each; they stay listed until the revoke is applied.
    #[must_use]
    pub fn expired_leases(&self, now_ms: u64, limit: usize) -> Vec<LeaseId> {
        if !self.primary {
            return Vec::new();
        }
        let mut v: Vec<(u64, LeaseId)> = self
            .leases
            .values()
            .filter_map(|l| l.expiry_ms.filter(|e| now_ms >= *e).map(|e| (e, l.id)))
            .collect();
        v.sort_unstable();
        v.into_iter().take(limit).map(|(_, id)| id).collect()
    }

    /// Becoming leader (etcd `Promote(extend)`): every lease's clock restarts at
    /// `now_ms + extend_ms + ttl`. The server passes the election timeout as
    /// `extend_ms`, as etcd does.
    pub fn promote(&mut self, now_ms: u64, extend_ms: u64) {
        self.primary = true;
        for l in self.leases.values_mut() {
            l.expiry_ms = Some(expiry(now_ms, extend_ms, l.ttl_secs));
        }
    }

    /// Losing leadership (etcd `Demote`): every clock stops.
    pub fn demote(&mut self) {
        self.primary = false;
        for l in self.leases.values_mut() {
            l.expiry_ms = None;
        }
    }
}

fn expiry(now_ms: u64, extend_ms: u64, ttl_secs: i64) -> u64 {
    let ttl_ms = u64::try_from(ttl_secs.max(0))
        .unwrap_or(0)
        .saturating_mul(1000);
    now_ms.saturating_add(extend_ms).saturating_add(ttl_ms)
}
