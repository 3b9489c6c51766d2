//! Cluster membership (etcd 3.4 `etcdserver/api/membership` and the reconfiguration
//! checks of `etcdserver/server.go`): members and learners, add/remove/update/promote with
//! etcd's validation and errors, member and cluster ID derivation, the cluster version,
//! and the records etcd 3.4 keeps for members in the v2 store.
//!
//! What it is not: connectivity checks ("etcdserver: unhealthy cluster", based on which
//! peers the transport has heard from recently) and the learner catch-up measurement are
//! the server's; [`is_learner_ready`] is the pure rule it applies.

mod sha1;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::v2;

pub use sha1::sha1;

/// A member ID (etcd `types.ID`); shown in hex by etcd's v2 API and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MemberId(pub u64);

impl fmt::Display for MemberId {
    /// etcd's `types.ID.String()`: lower-case hex without padding.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// A cluster ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ClusterId(pub u64);

/// The most learners a cluster may have (etcd 3.4 `maxLearners`).
pub const MAX_LEARNERS: usize = 1;
/// A learner is ready for promotion when its match index is at least this fraction of
/// the leader's (etcd's `readyPercent`).
pub const LEARNER_READY_PERCENT: f64 = 0.9;

/// Membership errors; `Display` is the gRPC text etcd sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error)]
pub enum MembershipError {
    /// `ErrIDExists`.
    #[error("etcdserver: member ID already exist")]
    IdExists,
    /// `ErrPeerURLexists`: another member already uses one of the peer URLs.
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    /// `ErrIDNotFound`, and `ErrIDRemoved` (etcd maps both to this text).
    #[error("etcdserver: member not found")]
    NotFound,
    /// `ErrMemberNotLearner`: promoting a voting member.
    #[error("etcdserver: can only promote a learner member")]
    NotLearner,
    /// `ErrLearnerNotReady`: the learner is too far behind the leader.
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// `ErrTooManyLearners`.
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    /// `ErrNotEnoughStartedMembers` (strict reconfiguration check).
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStarted,
    /// Peer URLs that do not parse (the server validates URLs).
    #[error("etcdserver: given member URLs are invalid")]
    BadUrls,
}

impl MembershipError {
    /// The gRPC status code number etcd 3.4.23 sends: NotFound (5), InvalidArgument (3)
    /// for bad URLs, Unknown (2) for `NotEnoughStarted` (etcd has no gRPC mapping for it),
    /// FailedPrecondition (9) otherwise.
    pub fn grpc_code(self) -> u32 {
        match self {
            Self::NotFound => 5,
            Self::BadUrls => 3,
            Self::NotEnoughStarted => 2,
            _ => 9,
        }
    }
}

/// A member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Member {
    /// Its ID.
    pub id: MemberId,
    /// Its name; empty until the member has started and published its attributes.
    pub name: String,
    /// Peer URLs, sorted (etcd sorts them when deriving the ID).
    pub peer_urls: Vec<String>,
    /// Client URLs, as published by the member.
    pub client_urls: Vec<String>,
    /// A learner: receives the log but does not vote.
    pub is_learner: bool,
}

impl Member {
    /// etcd's `NewMember`/`NewMemberAsLearner`: the ID is the first 8 bytes (big endian)
    /// of SHA-1 over the sorted peer URLs concatenated, then `cluster_token`, then (when
    /// given) the decimal Unix time in seconds. Initial members use the cluster token and
    /// no time; members added at run time use an empty token and the time of the request.
    pub fn new(
        name: &str,
        peer_urls: &[String],
        cluster_token: &str,
        now_unix_s: Option<i64>,
        is_learner: bool,
    ) -> Self {
        let mut peer_urls = peer_urls.to_vec();
        peer_urls.sort();
        Self {
            id: member_id(&peer_urls, cluster_token, now_unix_s),
            name: name.to_string(),
            peer_urls,
            client_urls: Vec::new(),
            is_learner,
        }
    }

    /// Whether the member has started (published a name), etcd's `IsStarted`.
    pub fn is_started(&self) -> bool {
        !self.name.is_empty()
    }

    /// etcd's `RaftAttributes` JSON as stored in the v2 store:
    /// `{"peerURLs":[...]}` plus `"isLearner":true` for learners.
    pub fn raft_attributes_json(&self) -> String {
        let urls: Vec<String> = self.peer_urls.iter().map(|u| v2::json::string(u)).collect();
        let mut out = format!("{{\"peerURLs\":[{}]", urls.join(","));
        if self.is_learner {
            out.push_str(",\"isLearner\":true");
        }
        out.push('}');
        out
    }

    /// etcd's `Attributes` JSON: `{"name":"...","clientURLs":[...]}`, each field omitted
    /// when empty.
    pub fn attributes_json(&self) -> String {
        let mut fields = Vec::new();
        if !self.name.is_empty() {
            fields.push(format!("\"name\":{}", v2::json::string(&self.name)));
        }
        if !self.client_urls.is_empty() {
            let urls: Vec<String> = self
                .client_urls
                .iter()
                .map(|u| v2::json::string(u))
                .collect();
            fields.push(format!("\"clientURLs\":[{}]", urls.join(",")));
        }
        format!("{{{}}}", fields.join(","))
    }
}

/// etcd's member ID derivation (see [`Member::new`]); `peer_urls` are sorted first.
pub fn member_id(peer_urls: &[String], cluster_token: &str, now_unix_s: Option<i64>) -> MemberId {
    let mut sorted = peer_urls.to_vec();
    sorted.sort();
    let mut bytes = Vec::new();
    for url in &sorted {
        bytes.extend_from_slice(url.as_bytes());
    }
    bytes.extend_from_slice(cluster_token.as_bytes());
    if let Some(t) = now_unix_s {
        bytes.extend_from_slice(t.to_string().as_bytes());
    }
    let digest = sha1(&bytes);
    MemberId(u64::from_be_bytes(first8(&digest)))
}

/// etcd's cluster ID: the first 8 bytes (big endian) of SHA-1 over the sorted member IDs
/// as 8-byte big-endian integers.
pub fn cluster_id(member_ids: &[MemberId]) -> ClusterId {
    let mut ids = member_ids.to_vec();
    ids.sort();
    let bytes: Vec<u8> = ids.iter().flat_map(|id| id.0.to_be_bytes()).collect();
    ClusterId(u64::from_be_bytes(first8(&sha1(&bytes))))
}

fn first8(digest: &[u8; 20]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// The rule of etcd's `isLearnerReady`: a learner may be promoted when its match index
/// is at least 90% of the leader's.
pub fn is_learner_ready(learner_match: u64, leader_match: u64) -> bool {
    // Exact form of `learner >= 0.9 * leader` without floating point.
    u128::from(learner_match) * 10 >= u128::from(leader_match) * 9
}

/// A cluster version `major.minor.patch` (etcd keeps `major.minor.0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterVersion {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Patch (0 for cluster versions).
    pub patch: u64,
}

impl fmt::Display for ClusterVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// etcd's `decideClusterVersion` followed by the truncation to `major.minor.0`: the
/// lowest server version among all members, or `None` if any member's version is
/// unknown.
pub fn decide_cluster_version(
    server_versions: &[Option<ClusterVersion>],
) -> Option<ClusterVersion> {
    let mut lowest: Option<ClusterVersion> = None;
    for v in server_versions {
        let v = (*v)?;
        lowest = Some(match lowest {
            Some(l) if l <= v => l,
            _ => v,
        });
    }
    lowest.map(|v| ClusterVersion {
        major: v.major,
        minor: v.minor,
        patch: 0,
    })
}

/// The cluster: members by ID, removed IDs, cluster ID and version.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Cluster {
    cluster_id: ClusterId,
    members: BTreeMap<MemberId, Member>,
    removed: BTreeSet<MemberId>,
    version: Option<ClusterVersion>,
}

impl Cluster {
    /// The initial cluster from `--initial-cluster` (name to peer URLs) and
    /// `--initial-cluster-token`: members with IDs derived without a time, and the
    /// cluster ID derived from them. Names are only known to the members themselves
    /// until they publish them; etcd keeps them from the flag for the initial cluster.
    pub fn initial(members: &[(String, Vec<String>)], cluster_token: &str) -> Self {
        let mut cluster = Self::default();
        for (name, urls) in members {
            let m = Member::new(name, urls, cluster_token, None, false);
            cluster.members.insert(m.id, m);
        }
        cluster.cluster_id = cluster_id(&cluster.member_ids());
        cluster
    }

    /// The cluster ID.
    pub fn id(&self) -> ClusterId {
        self.cluster_id
    }

    /// Sets the cluster ID (a joining member learns it from the existing cluster).
    pub fn set_id(&mut self, id: ClusterId) {
        self.cluster_id = id;
    }

    /// The member IDs, ascending.
    pub fn member_ids(&self) -> Vec<MemberId> {
        self.members.keys().copied().collect()
    }

    /// All members in ID order (etcd's `Members()` order).
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// The voting (non-learner) members in ID order.
    pub fn voting_members(&self) -> impl Iterator<Item = &Member> {
        self.members.values().filter(|m| !m.is_learner)
    }

    /// The member with this ID.
    pub fn member(&self, id: MemberId) -> Option<&Member> {
        self.members.get(&id)
    }

    /// Whether `id` was removed (a removed ID can never rejoin).
    pub fn is_removed(&self, id: MemberId) -> bool {
        self.removed.contains(&id)
    }

    /// The removed member IDs, ascending.
    pub fn removed_ids(&self) -> impl Iterator<Item = MemberId> + '_ {
        self.removed.iter().copied()
    }

    /// Asserts the invariants: members keyed by their ID, no removed ID among the members,
    /// at most [`MAX_LEARNERS`] learners, no peer URL shared by two members.
    pub fn check_invariants(&self) {
        let mut urls = BTreeSet::new();
        for (id, m) in &self.members {
            assert_eq!(*id, m.id, "member keyed by its ID");
            assert!(!self.removed.contains(id), "a removed ID is not a member");
            for u in &m.peer_urls {
                assert!(urls.insert(u.clone()), "peer URL {u} used twice");
            }
        }
        let learners = self.members.values().filter(|m| m.is_learner).count();
        assert!(learners <= MAX_LEARNERS, "too many learners");
    }

    /// The cluster version, once decided.
    pub fn version(&self) -> Option<ClusterVersion> {
        self.version
    }

    fn peer_url_taken(&self, urls: &[String], except: Option<MemberId>) -> bool {
        self.members
            .values()
            .filter(|m| Some(m.id) != except)
            .flat_map(|m| m.peer_urls.iter())
            .any(|u| urls.contains(u))
    }

    /// `ValidateConfigurationChange` for adding `member` (voter or learner).
    ///
    /// # Errors
    /// `NotFound` (ID removed), `IdExists`, `PeerUrlExists`, `TooManyLearners`.
    pub fn validate_add(&self, member: &Member) -> Result<(), MembershipError> {
        if self.is_removed(member.id) {
            return Err(MembershipError::NotFound);
        }
        if self.members.contains_key(&member.id) {
            return Err(MembershipError::IdExists);
        }
        if self.peer_url_taken(&member.peer_urls, None) {
            return Err(MembershipError::PeerUrlExists);
        }
        if member.is_learner
            && self.members.values().filter(|m| m.is_learner).count() + 1 > MAX_LEARNERS
        {
            return Err(MembershipError::TooManyLearners);
        }
        Ok(())
    }

    /// `ValidateConfigurationChange` for promoting `id`.
    ///
    /// # Errors
    /// `NotFound`, `NotLearner`.
    pub fn validate_promote(&self, id: MemberId) -> Result<(), MembershipError> {
        if self.is_removed(id) {
            return Err(MembershipError::NotFound);
        }
        let m = self.members.get(&id).ok_or(MembershipError::NotFound)?;
        if !m.is_learner {
            return Err(MembershipError::NotLearner);
        }
        Ok(())
    }

    /// `ValidateConfigurationChange` for removing `id`.
    ///
    /// # Errors
    /// `NotFound` (unknown or already removed).
    pub fn validate_remove(&self, id: MemberId) -> Result<(), MembershipError> {
        if self.is_removed(id) || !self.members.contains_key(&id) {
            return Err(MembershipError::NotFound);
        }
        Ok(())
    }

    /// `ValidateConfigurationChange` for updating the peer URLs of `id`.
    ///
    /// # Errors
    /// `NotFound`, `PeerUrlExists` (a URL used by another member).
    pub fn validate_update(
        &self,
        id: MemberId,
        peer_urls: &[String],
    ) -> Result<(), MembershipError> {
        if self.is_removed(id) || !self.members.contains_key(&id) {
            return Err(MembershipError::NotFound);
        }
        if self.peer_url_taken(peer_urls, Some(id)) {
            return Err(MembershipError::PeerUrlExists);
        }
        Ok(())
    }

    /// The strict-reconfig check before proposing an add (`mayAddMember` /
    /// `IsReadyToAddVotingMember`): adding a voter needs a quorum of the grown voting set
    /// to be started, except that a one-member cluster whose member is started may grow
    /// to two. Learners are not checked.
    ///
    /// # Errors
    /// `NotEnoughStarted`.
    pub fn may_add_member(&self, is_learner: bool) -> Result<(), MembershipError> {
        if is_learner {
            return Ok(());
        }
        let voters: Vec<&Member> = self.voting_members().collect();
        let n_members = voters.len() + 1;
        let n_started = voters.iter().filter(|m| m.is_started()).count();
        if n_started == 1 && n_members == 2 {
            return Ok(());
        }
        if n_started < n_members / 2 + 1 {
            return Err(MembershipError::NotEnoughStarted);
        }
        Ok(())
    }

    /// The strict-reconfig check before removing `id` (`mayRemoveMember` /
    /// `IsReadyToRemoveVotingMember`): removing a learner is always fine; otherwise the
    /// remaining voters must have a started quorum.
    ///
    /// # Errors
    /// `NotEnoughStarted`.
    pub fn may_remove_member(&self, id: MemberId) -> Result<(), MembershipError> {
        if self.members.get(&id).is_some_and(|m| m.is_learner) {
            return Ok(());
        }
        let rest: Vec<&Member> = self.voting_members().filter(|m| m.id != id).collect();
        let n_started = rest.iter().filter(|m| m.is_started()).count();
        if n_started < rest.len() / 2 + 1 {
            return Err(MembershipError::NotEnoughStarted);
        }
        Ok(())
    }

    /// The strict-reconfig check before promoting (`IsReadyToPromoteMember`): the voters
    /// plus the promoted learner (counted as started) must have a started quorum.
    ///
    /// # Errors
    /// `NotEnoughStarted`.
    pub fn may_promote_member(&self) -> Result<(), MembershipError> {
        let voters: Vec<&Member> = self.voting_members().collect();
        let n_members = voters.len() + 1;
        let n_started = voters.iter().filter(|m| m.is_started()).count() + 1;
        if n_started < n_members / 2 + 1 {
            return Err(MembershipError::NotEnoughStarted);
        }
        Ok(())
    }

    /// Applies an add (after [`Self::validate_add`]). Also records
    /// `/0/members/<id>/raftAttributes` in the v2 store as etcd 3.4 does (one index).
    ///
    /// # Errors
    /// As [`Self::validate_add`].
    pub fn add_member(
        &mut self,
        member: Member,
        store: &mut v2::Store,
        now_ms: u64,
    ) -> Result<(), MembershipError> {
        self.validate_add(&member)?;
        // The v2 write cannot fail: the ID is new, so its directory does not exist.
        let _ = store.create(
            &raft_attributes_key(member.id),
            false,
            &member.raft_attributes_json(),
            false,
            v2::TtlOptions::PERMANENT,
            now_ms,
        );
        self.members.insert(member.id, member);
        Ok(())
    }

    /// Applies a removal: deletes `/0/members/<id>` recursively and creates
    /// `/0/removed_members/<id>` in the v2 store (two indexes), and remembers the ID.
    ///
    /// # Errors
    /// As [`Self::validate_remove`].
    pub fn remove_member(
        &mut self,
        id: MemberId,
        store: &mut v2::Store,
        now_ms: u64,
    ) -> Result<(), MembershipError> {
        self.validate_remove(id)?;
        let _ = store.delete(&member_store_key(id), true, true, now_ms);
        let _ = store.create(
            &removed_member_store_key(id),
            false,
            "",
            false,
            v2::TtlOptions::PERMANENT,
            now_ms,
        );
        self.members.remove(&id);
        self.removed.insert(id);
        Ok(())
    }

    /// Applies a peer URL update (`UpdateRaftAttributes`; one v2 index).
    ///
    /// # Errors
    /// As [`Self::validate_update`].
    pub fn update_peer_urls(
        &mut self,
        id: MemberId,
        peer_urls: &[String],
        store: &mut v2::Store,
        now_ms: u64,
    ) -> Result<(), MembershipError> {
        self.validate_update(id, peer_urls)?;
        let m = self.members.get_mut(&id).ok_or(MembershipError::NotFound)?;
        m.peer_urls = peer_urls.to_vec();
        let json = m.raft_attributes_json();
        let _ = store.update(
            &raft_attributes_key(id),
            &json,
            v2::TtlOptions::PERMANENT,
            now_ms,
        );
        Ok(())
    }

    /// Applies a promotion (`PromoteMember`; one v2 index).
    ///
    /// # Errors
    /// As [`Self::validate_promote`].
    pub fn promote_member(
        &mut self,
        id: MemberId,
        store: &mut v2::Store,
        now_ms: u64,
    ) -> Result<(), MembershipError> {
        self.validate_promote(id)?;
        let m = self.members.get_mut(&id).ok_or(MembershipError::NotFound)?;
        m.is_learner = false;
        let json = m.raft_attributes_json();
        let _ = store.update(
            &raft_attributes_key(id),
            &json,
            v2::TtlOptions::PERMANENT,
            now_ms,
        );
        Ok(())
    }

    /// Applies a member's published name and client URLs (`UpdateAttributes`; one v2
    /// index via Set of `/0/members/<id>/attributes`). Unknown or removed IDs are ignored
    /// (etcd logs and skips them).
    pub fn update_attributes(
        &mut self,
        id: MemberId,
        name: &str,
        client_urls: &[String],
        store: &mut v2::Store,
        now_ms: u64,
    ) {
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        m.name = name.to_string();
        m.client_urls = client_urls.to_vec();
        let json = m.attributes_json();
        let _ = store.set(
            &attributes_key(id),
            false,
            &json,
            v2::TtlOptions::PERMANENT,
            now_ms,
        );
    }

    /// Applies a cluster version (`SetVersion`; one v2 index via Set of `/0/version`
    /// with the text `major.minor.patch`).
    pub fn set_version(&mut self, version: ClusterVersion, store: &mut v2::Store, now_ms: u64) {
        self.version = Some(version);
        let _ = store.set(
            CLUSTER_VERSION_KEY,
            false,
            &version.to_string(),
            v2::TtlOptions::PERMANENT,
            now_ms,
        );
    }
}

/// v2 store key of the cluster version.
pub const CLUSTER_VERSION_KEY: &str = "/0/version";

/// v2 store directory of a member: `/0/members/<hex id>`.
pub fn member_store_key(id: MemberId) -> String {
    format!("{}/members/{id}", v2::CLUSTER_PREFIX)
}

/// v2 store key of a member's raft attributes.
pub fn raft_attributes_key(id: MemberId) -> String {
    format!("{}/raftAttributes", member_store_key(id))
}

/// v2 store key of a member's published attributes.
pub fn attributes_key(id: MemberId) -> String {
    format!("{}/attributes", member_store_key(id))
}

/// v2 store key recording a removed member: `/0/removed_members/<hex id>`.
pub fn removed_member_store_key(id: MemberId) -> String {
    format!("{}/removed_members/{id}", v2::CLUSTER_PREFIX)
}

/// The member whose attributes key this store path is (`/0/members/<1-16 hex
/// digits>/attributes`, etcd's `storeMemberAttributeRegexp`). etcd 3.4's v2 applier
/// intercepts PUTs of such paths (and of [`CLUSTER_VERSION_KEY`]) and updates the cluster
/// instead of the store directly.
pub fn member_id_from_attributes_key(store_path: &str) -> Option<MemberId> {
    let rest = store_path
        .strip_prefix(v2::CLUSTER_PREFIX)?
        .strip_prefix("/members/")?;
    let hex = rest.strip_suffix("/attributes")?;
    if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(MemberId)
}
