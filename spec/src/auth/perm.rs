//! Key permissions and the range-permission check (etcd 3.4 `auth/range_perm_cache.go`
//! with `pkg/adt`'s interval tree semantics).

use std::cmp::Ordering;

/// A permission type (`authpb.Permission_Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PermissionType {
    /// READ (0).
    Read,
    /// WRITE (1).
    Write,
    /// READWRITE (2).
    ReadWrite,
}

impl PermissionType {
    /// The protobuf enum number.
    pub fn number(self) -> i32 {
        match self {
            Self::Read => 0,
            Self::Write => 1,
            Self::ReadWrite => 2,
        }
    }

    /// The type for a protobuf enum number.
    pub fn from_number(n: i32) -> Option<Self> {
        match n {
            0 => Some(Self::Read),
            1 => Some(Self::Write),
            2 => Some(Self::ReadWrite),
            _ => None,
        }
    }

    fn grants(self, wanted: PermissionType) -> bool {
        self == PermissionType::ReadWrite || self == wanted
    }
}

/// A key permission of a role (`authpb.Permission`).
///
/// `range_end` empty: the single key `key`; `range_end == [0]`: every key >= `key`
/// (from-key); otherwise the half-open range `[key, range_end)` (a prefix `p` is
/// `[p, p+1)` as etcdctl computes it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    /// READ, WRITE or READWRITE.
    pub perm_type: PermissionType,
    /// First key.
    pub key: Vec<u8>,
    /// End of the range (see the type docs).
    pub range_end: Vec<u8>,
}

/// An interval bound as etcd's `BytesAffineComparable`: empty bytes compare greater than
/// everything (so an empty begin or end means +infinity).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Affine(Vec<u8>);

impl Affine {
    fn cmp(&self, other: &Affine) -> Ordering {
        match (self.0.is_empty(), other.0.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => self.0.cmp(&other.0),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Interval {
    begin: Affine,
    end: Affine,
}

impl Interval {
    /// `[key, range_end)` with `range_end == [0]` meaning +infinity
    /// (`NewBytesAffineInterval`).
    fn range(key: &[u8], range_end: &[u8]) -> Self {
        let end = if range_end == [0] {
            Vec::new()
        } else {
            range_end.to_vec()
        };
        Self {
            begin: Affine(key.to_vec()),
            end: Affine(end),
        }
    }

    /// `[key, key + "\x00")` (`NewBytesAffinePoint`).
    fn point(key: &[u8]) -> Self {
        let mut end = key.to_vec();
        end.push(0);
        Self {
            begin: Affine(key.to_vec()),
            end: Affine(end),
        }
    }

    /// The interval a permission grants (`getMergedPerms`).
    fn of_permission(perm: &Permission) -> Self {
        if perm.range_end.is_empty() {
            Self::point(&perm.key)
        } else {
            Self::range(&perm.key, &perm.range_end)
        }
    }

    /// `adt.Interval.Compare == 0`: `self` (the query) overlaps `stored` as etcd's tree
    /// decides it.
    fn overlaps(&self, stored: &Interval) -> bool {
        let left_of = self.begin.cmp(&stored.begin) == Ordering::Less
            && self.end.cmp(&stored.begin) != Ordering::Greater;
        let right_of = self.begin.cmp(&stored.end) != Ordering::Less;
        !left_of && !right_of
    }
}

/// `intervalTree.Contains`: the stored intervals overlapping `query`, in begin order,
/// are contiguous and together cover it.
fn contains(stored: &[Interval], query: &Interval) -> bool {
    let mut visited: Vec<&Interval> = stored.iter().filter(|s| query.overlaps(s)).collect();
    visited.sort_by(|a, b| a.begin.cmp(&b.begin).then(a.end.cmp(&b.end)));
    let Some(first) = visited.first() else {
        return false;
    };
    let min_begin = &first.begin;
    let mut max_end = &first.end;
    for ivl in &visited[1..] {
        if max_end.cmp(&ivl.begin) == Ordering::Less {
            return false;
        }
        if ivl.end.cmp(max_end) == Ordering::Greater {
            max_end = &ivl.end;
        }
    }
    max_end.cmp(&query.end) != Ordering::Less && min_begin.cmp(&query.begin) != Ordering::Greater
}

/// Whether `perms` (all permissions of all of a user's roles) allow `wanted` access to
/// `key` (when `range_end` is empty) or to the whole range `[key, range_end)`
/// (`range_end == [0]`: from `key` on). This is etcd 3.4's `isRangeOpPermitted` for a
/// non-root user: a single key needs one granted interval containing it; a range must be
/// covered by the union of the granted intervals.
pub fn range_permitted(
    perms: &[Permission],
    key: &[u8],
    range_end: &[u8],
    wanted: PermissionType,
) -> bool {
    let stored: Vec<Interval> = perms
        .iter()
        .filter(|p| p.perm_type.grants(wanted))
        .map(Interval::of_permission)
        .collect();
    if range_end.is_empty() {
        let point = Interval::point(key);
        stored.iter().any(|s| point.overlaps(s))
    } else {
        contains(&stored, &Interval::range(key, range_end))
    }
}
