//! etcd 3.4's data corruption checks: this member's KV hash (Maintenance.HashKV of the
//! `key` bucket) compared with its peers'.
//!
//! - `--experimental-initial-corrupt-check`: before serving, the hash at this member's
//!   current revision is compared with every peer's hash at that revision; a peer with
//!   the same compact revision and another hash fails the start ("found data
//!   inconsistency with peers"), as in etcd.
//! - `--experimental-corrupt-check-time D`: every `D` the leader hashes, asks its peers,
//!   hashes again, and raises the CORRUPT alarm (through Raft) for each member found
//!   inconsistent by etcd's rules ([`periodic_mismatches`]); the alarm then refuses
//!   writes with "etcdserver: corrupt cluster" (`spec::alarm`).
//!
//! Peers: the other members' hashes come through [`PeerHashes`]. A single member has no
//! peers ([`NoPeers`]): both checks then compare against nobody and pass, which is also
//! what etcd does for a one-member cluster (it logs the same lines). The peer transport
//! is the hook's implementor: it should call each peer's Maintenance.HashKV at the given
//! revision and return the answers. Nothing here hashes a snapshot file or the Raft
//! log; those have their own checks (SHA-256 trailers, `storage` at start-up).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use oxetcd_spec::alarm::{AlarmAction, AlarmRequest, AlarmType};
use oxetcd_spec::apply::Command;

use crate::node_loop::NodeHandle;

/// One member's answer to HashKV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberHash {
    /// The member.
    pub member_id: u64,
    /// Its current revision (the response header's).
    pub revision: i64,
    /// Its compacted revision.
    pub compact_revision: i64,
    /// The hash.
    pub hash: u32,
}

/// The hashes of a future.
pub type HashesFuture<'a> = Pin<Box<dyn Future<Output = Vec<MemberHash>> + Send + 'a>>;

/// Where the peers' hashes come from (the peer transport implements it).
pub trait PeerHashes: Send + Sync {
    /// Every reachable peer's HashKV at `revision`; unreachable peers are left out (etcd
    /// only warns about them).
    fn hashes_at(&self, revision: i64) -> HashesFuture<'_>;
}

/// A single member: no peers to compare with.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPeers;

impl PeerHashes for NoPeers {
    fn hashes_at(&self, _revision: i64) -> HashesFuture<'_> {
        Box::pin(std::future::ready(Vec::new()))
    }
}

/// The start-up check's verdict (etcd's `CheckInitialHashKV`): the peers whose hash
/// differs at the same compact revision. A peer compacted differently cannot be
/// compared and is skipped.
pub fn initial_mismatches(local: &MemberHash, peers: &[MemberHash]) -> Vec<u64> {
    peers
        .iter()
        .filter(|peer| peer.hash != local.hash && peer.compact_revision == local.compact_revision)
        .map(|peer| peer.member_id)
        .collect()
}

/// The leader's periodic verdict (etcd's `checkHashKV`): `before` and `after` are the
/// leader's own hashes taken around asking the peers. Returns the members to raise the
/// CORRUPT alarm for: the leader itself if its hash changed with no new revision, and
/// each peer ahead of the leader's revision or compact revision, or with another hash
/// at the leader's compact revision.
pub fn periodic_mismatches(
    before: &MemberHash,
    after: &MemberHash,
    peers: &[MemberHash],
) -> Vec<u64> {
    let mut members = Vec::new();
    let mut mismatch = |id: u64| {
        if !members.contains(&id) {
            members.push(id);
        }
    };
    if after.hash != before.hash
        && after.revision == before.revision
        && after.compact_revision == before.compact_revision
    {
        mismatch(before.member_id);
    }
    for peer in peers {
        if peer.revision > after.revision
            || peer.compact_revision > after.compact_revision
            || (peer.compact_revision == before.compact_revision && peer.hash != before.hash)
        {
            mismatch(peer.member_id);
        }
    }
    members
}

fn local_hash(node: &NodeHandle) -> anyhow::Result<MemberHash> {
    let state = node
        .state
        .read()
        .map_err(|_| anyhow::anyhow!("state lock poisoned"))?;
    let hash = state
        .hash_kv(0)
        .map_err(|error| anyhow::anyhow!("hashing the key-value state: {error}"))?;
    Ok(MemberHash {
        member_id: node.member_id,
        revision: hash.revision,
        compact_revision: hash.compact_revision,
        hash: hash.hash,
    })
}

/// `--experimental-initial-corrupt-check`: runs the start-up comparison.
///
/// # Errors
/// A peer's data is inconsistent with this member's, or the local hash failed.
pub async fn initial_check(
    node: &NodeHandle,
    peers: &dyn PeerHashes,
    timeout: Duration,
) -> anyhow::Result<()> {
    tracing::info!(
        "etcdserver: {:x} starting initial corruption check with timeout {}...",
        node.member_id,
        crate::v2::stats::go_duration(timeout)
    );
    let local = local_hash(node)?;
    let answers = tokio::time::timeout(timeout, peers.hashes_at(local.revision))
        .await
        .unwrap_or_default();
    for peer in &answers {
        if peer.hash != local.hash && peer.compact_revision != local.compact_revision {
            tracing::warn!(
                "etcdserver: {:x} cannot check hash of peer({:x}): peer has a different compact revision {} (revision:{})",
                node.member_id,
                peer.member_id,
                peer.compact_revision,
                local.revision
            );
        }
    }
    let mismatches = initial_mismatches(&local, &answers);
    for id in &mismatches {
        tracing::error!(
            "etcdserver: {:x}'s hash {} != {id:x}'s hash (revision {}, compact revision {})",
            node.member_id,
            local.hash,
            local.revision,
            local.compact_revision
        );
    }
    if !mismatches.is_empty() {
        anyhow::bail!("{:x} found data inconsistency with peers", node.member_id);
    }
    tracing::info!(
        "etcdserver: {:x} succeeded on initial corruption checking: no corruption",
        node.member_id
    );
    Ok(())
}

/// `--experimental-corrupt-check-time`: the leader's periodic comparison, raising the
/// CORRUPT alarm through Raft for each inconsistent member.
pub fn spawn_periodic(node: NodeHandle, peers: Arc<dyn PeerHashes>, period: Duration) {
    tracing::info!(
        "etcdserver: enabled corruption checking with {} interval",
        crate::v2::stats::go_duration(period)
    );
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            ticker.tick().await;
            if !node.is_leader() {
                continue;
            }
            let Ok(before) = local_hash(&node) else {
                continue;
            };
            let answers = peers.hashes_at(before.revision).await;
            let Ok(after) = local_hash(&node) else {
                continue;
            };
            for member_id in periodic_mismatches(&before, &after, &answers) {
                tracing::error!(
                    "etcdserver: data corruption detected on member {member_id:x}: raising the CORRUPT alarm"
                );
                let alarm = Command::Alarm(AlarmRequest {
                    action: AlarmAction::Activate,
                    member_id,
                    alarm: AlarmType::Corrupt,
                });
                if let Err(error) = node.propose(alarm).await {
                    tracing::warn!("etcdserver: raising the CORRUPT alarm failed: {error}");
                }
            }
            tracing::info!("etcdserver: finished peer corruption check");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(member_id: u64, revision: i64, compact_revision: i64, hash: u32) -> MemberHash {
        MemberHash {
            member_id,
            revision,
            compact_revision,
            hash,
        }
    }

    #[test]
    fn initial_check_flags_only_peers_comparable_at_the_same_compaction() {
        let local = at(1, 10, 4, 0xaaaa);
        let peers = [
            at(2, 10, 4, 0xaaaa),
            at(3, 10, 4, 0xbbbb),
            at(4, 10, 2, 0xcccc),
        ];
        assert_eq!(initial_mismatches(&local, &peers), vec![3]);
        assert!(initial_mismatches(&local, &[]).is_empty());
    }

    #[test]
    fn periodic_check_follows_etcds_rules() {
        let before = at(1, 10, 4, 0xaaaa);
        // The leader's own hash changed without a new revision: the leader is corrupt.
        assert_eq!(
            periodic_mismatches(&before, &at(1, 10, 4, 0xdddd), &[]),
            vec![1]
        );
        // A write in between changes the hash legitimately.
        assert!(periodic_mismatches(&before, &at(1, 11, 4, 0xdddd), &[]).is_empty());
        let peers = [
            at(2, 10, 4, 0xaaaa), // consistent
            at(3, 12, 4, 0xaaaa), // ahead of the leader
            at(4, 10, 6, 0xaaaa), // compacted past the leader
            at(5, 10, 4, 0xbbbb), // another hash at the same compaction
            at(6, 9, 2, 0xcccc),  // behind: not comparable
        ];
        assert_eq!(periodic_mismatches(&before, &before, &peers), vec![3, 4, 5]);
    }
}
