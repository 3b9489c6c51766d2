//! Member alarms as etcd 3.4 keeps them: the set of raised alarms (`NOSPACE` when a
//! member's backend exceeded its quota, `CORRUPT` when hashes disagree), changed only
//! through the log, and what an active alarm forbids.
//!
//! Rules followed (etcd 3.4 `etcdserver/apply.go`, `quota.go`, `api/v3alarm`):
//! - Activating an alarm already raised by that member is a no-op that still answers
//!   with the alarm; deactivating one that is not raised answers with nothing.
//! - While any `NOSPACE` alarm is raised, the applier refuses every `Put`, every `Txn`
//!   with a put in either branch, and every lease grant with "etcdserver: mvcc: database
//!   space exceeded" (etcd's `applierV3Capped`); deletes, ranges and compactions still
//!   apply, so an operator can free space.
//! - While any `CORRUPT` alarm is raised, every KV request and lease grant is refused
//!   with "etcdserver: corrupt cluster" (etcd's `applierV3Corrupt`).
//! - [`quota_cost`] is etcd's estimate of how many bytes a request adds, used by the
//!   server's quota check before proposing.
//!
//! Persistence: each raised alarm is one record in the meta bucket under
//! [`ALARM_KEY_PREFIX`] + member id (8 bytes BE) + alarm type (1 byte), empty value.

use std::collections::BTreeSet;

use crate::mvcc::{PutRequest, RequestOp, TxnRequest};

/// Meta-bucket key prefix of raised alarms.
pub const ALARM_KEY_PREFIX: &[u8] = b"alarm/";

/// etcd's per-key overhead estimate in the quota cost (`kvOverhead`).
pub const KV_OVERHEAD: u64 = 256;
/// etcd's per-lease overhead estimate in the quota cost (`leaseOverhead`).
pub const LEASE_OVERHEAD: u64 = 64;

/// etcd's `AlarmType`, with its wire numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlarmType {
    /// `NONE` (0): in a request, "any alarm".
    None,
    /// `NOSPACE` (1): the backend exceeded its quota.
    NoSpace,
    /// `CORRUPT` (2): the member's data disagrees with the cluster's.
    Corrupt,
}

impl AlarmType {
    /// The wire number.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            AlarmType::None => 0,
            AlarmType::NoSpace => 1,
            AlarmType::Corrupt => 2,
        }
    }

    /// The type for a wire number, if defined.
    #[must_use]
    pub const fn from_code(code: u8) -> Option<AlarmType> {
        match code {
            0 => Some(AlarmType::None),
            1 => Some(AlarmType::NoSpace),
            2 => Some(AlarmType::Corrupt),
            _ => None,
        }
    }
}

/// One raised alarm: which member raised which alarm (etcd's `AlarmMember`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlarmMember {
    /// The member that raised it.
    pub member_id: u64,
    /// The alarm.
    pub alarm: AlarmType,
}

impl AlarmMember {
    /// The meta-bucket key recording this alarm.
    #[must_use]
    pub fn key(&self) -> Vec<u8> {
        let mut key = ALARM_KEY_PREFIX.to_vec();
        key.extend_from_slice(&self.member_id.to_be_bytes());
        key.push(self.alarm.code());
        key
    }

    /// Reads a key written by [`AlarmMember::key`].
    #[must_use]
    pub fn from_key(key: &[u8]) -> Option<AlarmMember> {
        let rest = key.strip_prefix(ALARM_KEY_PREFIX)?;
        let (id, code) = rest.split_at_checked(8)?;
        let [code] = code else { return None };
        Some(AlarmMember {
            member_id: u64::from_be_bytes(id.try_into().ok()?),
            alarm: AlarmType::from_code(*code)?,
        })
    }
}

/// What an alarm request asks (etcd's `AlarmRequest.AlarmAction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlarmAction {
    /// `GET`: list the raised alarms of the given type (`NONE`: all).
    Get,
    /// `ACTIVATE`: raise the alarm for the member.
    Activate,
    /// `DEACTIVATE`: clear the alarm of the member.
    Deactivate,
}

/// An alarm request as it goes through the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AlarmRequest {
    /// What to do.
    pub action: AlarmAction,
    /// The member concerned.
    pub member_id: u64,
    /// The alarm concerned.
    pub alarm: AlarmType,
}

/// The raised alarms of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Alarms {
    raised: BTreeSet<AlarmMember>,
}

impl Alarms {
    /// The alarms read back from their records.
    #[must_use]
    pub fn from_members(members: impl IntoIterator<Item = AlarmMember>) -> Alarms {
        Alarms {
            raised: members.into_iter().collect(),
        }
    }

    /// The raised alarms of type `alarm` (every alarm for [`AlarmType::None`]), ordered
    /// by member id then type.
    #[must_use]
    pub fn get(&self, alarm: AlarmType) -> Vec<AlarmMember> {
        self.raised
            .iter()
            .filter(|m| alarm == AlarmType::None || m.alarm == alarm)
            .copied()
            .collect()
    }

    /// Whether any member raised `alarm`.
    #[must_use]
    pub fn is_raised(&self, alarm: AlarmType) -> bool {
        self.raised.iter().any(|m| m.alarm == alarm)
    }

    /// Raises `member`'s alarm; returns it (also when already raised) and whether the
    /// set changed. Raising [`AlarmType::None`] is ignored, as etcd's alarm store does.
    pub fn activate(&mut self, member: AlarmMember) -> (Option<AlarmMember>, bool) {
        if member.alarm == AlarmType::None {
            return (None, false);
        }
        let added = self.raised.insert(member);
        (Some(member), added)
    }

    /// Clears `member`'s alarm; returns it if it was raised.
    pub fn deactivate(&mut self, member: AlarmMember) -> Option<AlarmMember> {
        self.raised.remove(&member).then_some(member)
    }
}

/// Why an active alarm refuses a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum AlarmError {
    /// `NOSPACE` is raised and the request would add data.
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// `CORRUPT` is raised.
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
}

/// What a request does, as far as alarms care.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Guarded<'a> {
    /// A put.
    Put(&'a PutRequest),
    /// A txn.
    Txn(&'a TxnRequest),
    /// A range or a delete-range.
    ReadOrDelete,
    /// A lease grant.
    LeaseGrant,
    /// Anything else (compaction, lease revoke, auth, v2, membership, alarms).
    Other,
}

impl Alarms {
    /// Whether the raised alarms let `request` apply (etcd's capped and corrupt
    /// appliers).
    ///
    /// # Errors
    /// [`AlarmError`] naming the alarm that refuses it.
    pub fn check(&self, request: Guarded<'_>) -> Result<(), AlarmError> {
        if self.is_raised(AlarmType::Corrupt)
            && matches!(
                request,
                Guarded::Put(_) | Guarded::Txn(_) | Guarded::ReadOrDelete | Guarded::LeaseGrant
            )
        {
            return Err(AlarmError::Corrupt);
        }
        if self.is_raised(AlarmType::NoSpace) {
            let adds = match request {
                Guarded::Put(_) | Guarded::LeaseGrant => true,
                Guarded::Txn(t) => txn_cost(t) > 0,
                Guarded::ReadOrDelete | Guarded::Other => false,
            };
            if adds {
                return Err(AlarmError::NoSpace);
            }
        }
        Ok(())
    }
}

/// etcd's `costPut`: key, value and the per-key overhead.
#[must_use]
pub fn put_cost(put: &PutRequest) -> u64 {
    KV_OVERHEAD + put.key.len() as u64 + put.value.len() as u64
}

/// etcd's `costTxn`: the larger of the two branches' put costs (nested txns and other
/// operations cost nothing).
#[must_use]
pub fn txn_cost(txn: &TxnRequest) -> u64 {
    let branch = |ops: &[RequestOp]| -> u64 {
        ops.iter()
            .map(|op| match op {
                RequestOp::Put(p) => put_cost(p),
                _ => 0,
            })
            .sum()
    };
    branch(&txn.success).max(branch(&txn.failure))
}

/// etcd's quota cost of a request: bytes it may add to the backend.
#[must_use]
pub fn quota_cost(request: Guarded<'_>) -> u64 {
    match request {
        Guarded::Put(p) => put_cost(p),
        Guarded::Txn(t) => txn_cost(t),
        Guarded::LeaseGrant => LEASE_OVERHEAD,
        Guarded::ReadOrDelete | Guarded::Other => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> PutRequest {
        PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            ..PutRequest::default()
        }
    }

    fn nospace(member_id: u64) -> AlarmMember {
        AlarmMember {
            member_id,
            alarm: AlarmType::NoSpace,
        }
    }

    #[test]
    fn activate_is_idempotent_and_deactivate_clears() {
        let mut alarms = Alarms::default();
        assert_eq!(alarms.activate(nospace(7)), (Some(nospace(7)), true));
        assert_eq!(alarms.activate(nospace(7)), (Some(nospace(7)), false));
        assert_eq!(alarms.get(AlarmType::None), vec![nospace(7)]);
        assert_eq!(alarms.get(AlarmType::Corrupt), vec![]);
        assert_eq!(alarms.deactivate(nospace(7)), Some(nospace(7)));
        assert_eq!(alarms.deactivate(nospace(7)), None);
        assert!(!alarms.is_raised(AlarmType::NoSpace));
    }

    #[test]
    fn raising_none_is_ignored() {
        let mut alarms = Alarms::default();
        let none = AlarmMember {
            member_id: 1,
            alarm: AlarmType::None,
        };
        assert_eq!(alarms.activate(none), (None, false));
        assert!(alarms.get(AlarmType::None).is_empty());
    }

    #[test]
    fn nospace_refuses_puts_grants_and_txns_with_puts_only() {
        let mut alarms = Alarms::default();
        let with_put = TxnRequest {
            failure: vec![RequestOp::Put(put("a", "b"))],
            ..TxnRequest::default()
        };
        let read_only = TxnRequest::default();
        let p = put("k", "v");
        assert_eq!(alarms.check(Guarded::Put(&p)), Ok(()));
        alarms.activate(nospace(1));
        assert_eq!(alarms.check(Guarded::Put(&p)), Err(AlarmError::NoSpace));
        assert_eq!(alarms.check(Guarded::LeaseGrant), Err(AlarmError::NoSpace));
        assert_eq!(
            alarms.check(Guarded::Txn(&with_put)),
            Err(AlarmError::NoSpace)
        );
        assert_eq!(alarms.check(Guarded::Txn(&read_only)), Ok(()));
        assert_eq!(alarms.check(Guarded::ReadOrDelete), Ok(()));
        assert_eq!(alarms.check(Guarded::Other), Ok(()));
        assert_eq!(
            AlarmError::NoSpace.to_string(),
            "etcdserver: mvcc: database space exceeded"
        );
    }

    #[test]
    fn corrupt_refuses_every_kv_request() {
        let mut alarms = Alarms::default();
        alarms.activate(AlarmMember {
            member_id: 1,
            alarm: AlarmType::Corrupt,
        });
        assert_eq!(
            alarms.check(Guarded::ReadOrDelete),
            Err(AlarmError::Corrupt)
        );
        assert_eq!(alarms.check(Guarded::Other), Ok(()));
    }

    #[test]
    fn costs_follow_etcd() {
        assert_eq!(put_cost(&put("ab", "cde")), 256 + 5);
        let txn = TxnRequest {
            success: vec![RequestOp::Put(put("a", "")), RequestOp::Put(put("b", ""))],
            failure: vec![RequestOp::Put(put("c", "0123456789"))],
            ..TxnRequest::default()
        };
        assert_eq!(txn_cost(&txn), 2 * 257);
        assert_eq!(quota_cost(Guarded::LeaseGrant), 64);
        assert_eq!(quota_cost(Guarded::ReadOrDelete), 0);
    }

    #[test]
    fn keys_round_trip() {
        let m = AlarmMember {
            member_id: 0xdead_beef,
            alarm: AlarmType::Corrupt,
        };
        assert_eq!(AlarmMember::from_key(&m.key()), Some(m));
        assert_eq!(AlarmMember::from_key(b"alarm/short"), None);
        assert_eq!(AlarmMember::from_key(b"consistent_index"), None);
    }
}
