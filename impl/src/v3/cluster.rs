//! `etcdserverpb.Cluster`: the member list and membership changes, as etcd 3.4.23 serves
//! them.
//!
//! The member list is `spec`'s applied membership ([`oxetcd_spec::membership::Cluster`]).
//! At start this member publishes its name and client URLs through the log ([`publish`],
//! etcd's `publish`), after adding the `--initial-cluster` members if the applied
//! membership is empty (a new or restored data dir); a member joining a running cluster
//! (`--initial-cluster-state existing`) waits until the leader's log or snapshot gave
//! it the members.
//!
//! A change ([`add`], [`remove`], [`update`], [`promote`], also used by `/v2/members`) is
//! checked in the node loop just before its Raft conf change is proposed, in etcd's
//! order: learner readiness (promote), the strict reconfiguration checks
//! (`--strict-reconfig-check`, default on: enough started members, and connectivity,
//! "unhealthy cluster", where members this one has not heard from count as down; with
//! `--strict-reconfig-check=false` neither is checked, as with etcd), then
//! `ValidateConfigurationChange`. It
//! answers once applied. Adding a voter to a one-member cluster is allowed, as with etcd:
//! the cluster then has two voters of which one is started, loses its quorum and writes
//! stall.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oxetcd_api::etcdserverpb as pb;
use oxetcd_spec::apply::{ApplyError, AuthInfo, Command, MemberChange};
use oxetcd_spec::membership::{self, Member, MemberId, MembershipError};
use oxetcd_spec::raft::{ConfChange, NodeId};
use tonic::{Code, Request, Status};

use super::{Context, REQUEST_TIMEOUT};
use crate::config::url;
use crate::errors;
use crate::node_loop::{ConfCheck, ConfView, LoopError, Refused};

/// The Cluster service.
#[derive(Clone, Debug)]
pub struct ClusterService(pub Context);

/// Why a membership change failed.
#[derive(Clone, Debug)]
pub enum ChangeError {
    /// etcd's membership errors.
    Membership(MembershipError),
    /// Anything else, as the gRPC status etcd sends.
    Status(Status),
}

impl ChangeError {
    /// The gRPC status etcd sends for it.
    pub fn to_status(&self) -> Status {
        match self {
            ChangeError::Membership(error) => {
                Status::new(Code::from_i32(error.grpc_code() as i32), error.to_string())
            }
            ChangeError::Status(status) => status.clone(),
        }
    }
}

impl From<Status> for ChangeError {
    fn from(status: Status) -> Self {
        ChangeError::Status(status)
    }
}

/// The members in etcd's order (by ID), as the v3 API shows them.
pub fn members(ctx: &Context) -> Result<Vec<pb::Member>, Status> {
    ctx.read(|state| state.cluster().members().map(to_pb).collect())
}

fn to_pb(m: &Member) -> pb::Member {
    pb::Member {
        id: m.id.0,
        name: m.name.clone(),
        peer_ur_ls: m.peer_urls.clone(),
        client_ur_ls: m.client_urls.clone(),
        is_learner: m.is_learner,
    }
}

/// Peer URLs as etcd's `types.NewURLs` takes them: each must parse.
///
/// # Errors
/// [`MembershipError::BadUrls`].
pub fn parse_peer_urls(urls: &[String]) -> Result<Vec<String>, MembershipError> {
    urls.iter()
        .map(|u| url::Url::parse(u).map(|u| u.to_string()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| MembershipError::BadUrls)
}

/// etcd's `checkMembershipOperationPermission`: with auth on, only root may change the
/// membership.
fn check_permission(ctx: &Context, auth: Option<&AuthInfo>) -> Result<(), Status> {
    let info = auth.cloned().unwrap_or_default();
    ctx.read(|state| state.auth().is_admin_permitted(&info))?
        .map_err(errors::auth)
}

async fn change(
    ctx: &Context,
    raft: ConfChange,
    command: MemberChange,
    auth: Option<AuthInfo>,
    check: ConfCheck,
) -> Result<Vec<pb::Member>, ChangeError> {
    check_permission(ctx, auth.as_ref())?;
    let proposed = ctx
        .node
        .propose_conf_change(raft, Command::Membership(command), auth, check);
    match tokio::time::timeout(REQUEST_TIMEOUT, proposed).await {
        Ok(Ok(applied)) => match applied.result {
            Ok(_) => Ok(members(ctx)?),
            Err(ApplyError::Membership(error)) => Err(ChangeError::Membership(error)),
            Err(error) => Err(errors::apply(error).into()),
        },
        Ok(Err(error)) => Err(loop_status(&error).into()),
        Err(_) => Err(errors::request_timed_out().into()),
    }
}

fn loop_status(error: &LoopError) -> Status {
    match error {
        LoopError::NotLeader => Status::new(Code::FailedPrecondition, error.to_string()),
        other => errors::node(other),
    }
}

/// etcd's connectivity check (`isConnectedFullySince` over the voters).
fn all_voters_active(view: &ConfView<'_>) -> bool {
    view.cluster
        .voting_members()
        .all(|m| view.active.contains(&m.id.0))
}

/// Adds a member with `peer_urls` (etcd's `AddMember`); returns it and the new list.
///
/// # Errors
/// etcd's: bad URLs, not enough started members, unhealthy cluster, ID or peer URL
/// exists, too many learners, permission.
pub async fn add(
    ctx: &Context,
    peer_urls: &[String],
    is_learner: bool,
    auth: Option<AuthInfo>,
) -> Result<(Member, Vec<pb::Member>), ChangeError> {
    let urls = parse_peer_urls(peer_urls).map_err(ChangeError::Membership)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let member = Member::new("", &urls, "", Some(now), is_learner);
    let raft = if is_learner {
        ConfChange::add_learner(NodeId(member.id.0))
    } else {
        ConfChange::add_node(NodeId(member.id.0))
    };
    let candidate = member.clone();
    let strict = ctx.config.strict_reconfig_check;
    let check = ConfCheck::new(move |view| {
        let refuse = Refused::Membership;
        if strict {
            view.cluster.may_add_member(is_learner).map_err(refuse)?;
            if !all_voters_active(view) {
                return Err(Refused::Loop(LoopError::Unhealthy));
            }
        }
        view.cluster.validate_add(&candidate).map_err(refuse)
    });
    let list = change(ctx, raft, MemberChange::Add(member.clone()), auth, check).await?;
    Ok((member, list))
}

/// Removes member `id` (etcd's `RemoveMember`); returns the new list.
///
/// # Errors
/// etcd's: not enough started members, unhealthy cluster, not found, permission.
pub async fn remove(
    ctx: &Context,
    id: u64,
    auth: Option<AuthInfo>,
) -> Result<Vec<pb::Member>, ChangeError> {
    let member = MemberId(id);
    let strict = ctx.config.strict_reconfig_check;
    let check = ConfCheck::new(move |view| {
        let is_learner = view.cluster.member(member).is_some_and(|m| m.is_learner);
        if strict && !is_learner {
            view.cluster
                .may_remove_member(member)
                .map_err(Refused::Membership)?;
            // A member this one has not heard from is safe to remove; otherwise the
            // active voters left must keep a quorum.
            if id == view.member_id || view.active.contains(&id) {
                let voters = view.cluster.voting_members().count();
                let active = view
                    .cluster
                    .voting_members()
                    .filter(|m| view.active.contains(&m.id.0))
                    .count();
                if active.saturating_sub(1) < 1 + voters.saturating_sub(1) / 2 {
                    return Err(Refused::Loop(LoopError::Unhealthy));
                }
            }
        }
        view.cluster
            .validate_remove(member)
            .map_err(Refused::Membership)
    });
    let raft = ConfChange::remove_node(NodeId(id));
    change(ctx, raft, MemberChange::Remove(member), auth, check).await
}

/// Replaces the peer URLs of member `id` (etcd's `UpdateMember`); returns the new list.
///
/// # Errors
/// etcd's: bad URLs, not found, peer URL exists, permission.
pub async fn update(
    ctx: &Context,
    id: u64,
    peer_urls: &[String],
    auth: Option<AuthInfo>,
) -> Result<Vec<pb::Member>, ChangeError> {
    let mut urls = parse_peer_urls(peer_urls).map_err(ChangeError::Membership)?;
    urls.sort();
    let member = MemberId(id);
    let checked = urls.clone();
    let check = ConfCheck::new(move |view| {
        view.cluster
            .validate_update(member, &checked)
            .map_err(Refused::Membership)
    });
    // etcd proposes `ConfChangeUpdateNode`, which changes nothing in Raft's
    // configuration: the change is carried by a conf change that keeps it as it is.
    let raft = {
        let learner =
            ctx.read(|state| state.cluster().member(member).is_some_and(|m| m.is_learner))?;
        if learner {
            ConfChange::add_learner(NodeId(id))
        } else {
            ConfChange::add_node(NodeId(id))
        }
    };
    let command = MemberChange::UpdatePeerUrls {
        id: member,
        peer_urls: urls,
    };
    change(ctx, raft, command, auth, check).await
}

/// Promotes learner `id` to a voter (etcd's `PromoteMember`); returns the new list.
///
/// # Errors
/// etcd's: not leader, learner not ready, not enough started members, not found, not a
/// learner, permission.
pub async fn promote(
    ctx: &Context,
    id: u64,
    auth: Option<AuthInfo>,
) -> Result<Vec<pb::Member>, ChangeError> {
    let member = MemberId(id);
    let strict = ctx.config.strict_reconfig_check;
    let check = ConfCheck::new(move |view| {
        // etcd's `isLearnerReady`: only the leader knows the learner's progress.
        if !view.is_leader {
            return Err(Refused::Loop(LoopError::NotLeader));
        }
        if let Some(learner) = view.matched.get(&id) {
            let leader = view.matched.get(&view.member_id).copied().unwrap_or(0);
            if !membership::is_learner_ready(*learner, leader) {
                return Err(Refused::Membership(MembershipError::LearnerNotReady));
            }
        }
        if strict {
            view.cluster
                .may_promote_member()
                .map_err(Refused::Membership)?;
        }
        view.cluster
            .validate_promote(member)
            .map_err(Refused::Membership)
    });
    let raft = ConfChange::promote(NodeId(id));
    change(ctx, raft, MemberChange::Promote(member), auth, check).await
}

/// This member's entry as the `--initial-cluster` and advertise flags give it.
fn initial_members(ctx: &Context) -> Vec<Member> {
    let config = &ctx.config;
    let token = &config.initial_cluster_token;
    config
        .initial_cluster
        .iter()
        .map(|(name, urls)| {
            let urls: Vec<String> = urls.iter().map(ToString::to_string).collect();
            let mut m = Member::new(name, &urls, token, None, false);
            if *name == config.name {
                m.id = MemberId(ctx.node.member_id);
            }
            m
        })
        .collect()
}

/// The bootstrap log of a new cluster (`--initial-cluster-state new`), as etcd writes
/// it: one Raft `AddNode` entry per `--initial-cluster` member, in member ID order, at
/// term 1, each carrying the command that adds the member (so applying the log adds the
/// members and their `/0/members/<id>/raftAttributes`, one v2 index each, before
/// anything else). Every initial member writes the same entries.
pub fn bootstrap_entries(config: &crate::config::Config) -> Vec<oxetcd_spec::raft::Entry> {
    let mut members: Vec<Member> = config
        .initial_cluster
        .iter()
        .map(|(name, urls)| {
            let urls: Vec<String> = urls.iter().map(ToString::to_string).collect();
            Member::new(name, &urls, &config.initial_cluster_token, None, false)
        })
        .collect();
    members.sort_by_key(|m| m.id);
    members.dedup_by_key(|m| m.id);
    oxetcd_spec::raft::storage::bootstrap_entries_with_context(members.into_iter().map(|m| {
        let id = m.id.0;
        let proposal = oxetcd_spec::apply::Proposal {
            request_id: 0,
            auth: None,
            command: Command::Membership(MemberChange::Add(m)),
        };
        (id, oxetcd_spec::apply::codec::encode(&proposal))
    }))
}

/// etcd's `publish` at start: adds the `--initial-cluster` members if the applied
/// membership is empty (a restored data dir), then records this member's name and
/// client URLs through the log. Retries until it succeeds or `patience` is over.
///
/// # Errors
/// The last failure, once `patience` is over.
pub async fn publish(ctx: &Context, patience: Duration) -> Result<(), Status> {
    let started = tokio::time::Instant::now();
    loop {
        let attempt = publish_once(ctx).await;
        match attempt {
            Ok(()) => return Ok(()),
            Err(error) if started.elapsed() >= patience => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn publish_once(ctx: &Context) -> Result<(), Status> {
    let propose = |command| async {
        match tokio::time::timeout(Duration::from_secs(1), ctx.node.propose(command)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(errors::node(&error)),
            Err(_) => Err(errors::request_timed_out()),
        }
    };
    // The applied membership is complete once this member applied what the leader had
    // committed (a new cluster's members arrive through the log's bootstrap entries).
    match tokio::time::timeout(Duration::from_secs(1), ctx.node.read_index()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(errors::node(&error)),
        Err(_) => return Err(errors::request_timed_out()),
    }
    let empty = ctx.read(|state| state.cluster().members().next().is_none())?;
    if empty && ctx.config.initial_cluster_state == crate::config::ClusterState::Existing {
        // A joining member learns the members from the leader's log or snapshot first.
        return Err(Status::unavailable(
            "etcdserver: not caught up with the cluster yet",
        ));
    }
    if empty {
        for member in initial_members(ctx) {
            propose(Command::Membership(MemberChange::Add(member))).await?;
        }
    }
    let config = &ctx.config;
    let client_urls: Vec<String> = config
        .advertise_client_urls
        .iter()
        .map(ToString::to_string)
        .collect();
    let current = ctx.read(|state| {
        state
            .cluster()
            .member(MemberId(ctx.node.member_id))
            .map(|m| (m.name.clone(), m.client_urls.clone()))
    })?;
    if current.is_none() {
        // Removed from the cluster (etcd's member stops); nothing to publish.
        return Ok(());
    }
    propose(Command::Membership(MemberChange::Attributes {
        id: MemberId(ctx.node.member_id),
        name: config.name.clone(),
        client_urls,
    }))
    .await
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<pb::MemberAddRequest>,
    ) -> Result<tonic::Response<pb::MemberAddResponse>, Status> {
        let auth = self.0.auth_info(&request)?;
        let request = request.into_inner();
        let (member, members) = add(&self.0, &request.peer_ur_ls, request.is_learner, auth)
            .await
            .map_err(|e| e.to_status())?;
        Ok(tonic::Response::new(pb::MemberAddResponse {
            header: self.0.header().at(0),
            member: Some(to_pb(&member)),
            members,
        }))
    }

    async fn member_remove(
        &self,
        request: Request<pb::MemberRemoveRequest>,
    ) -> Result<tonic::Response<pb::MemberRemoveResponse>, Status> {
        let auth = self.0.auth_info(&request)?;
        let members = remove(&self.0, request.into_inner().id, auth)
            .await
            .map_err(|e| e.to_status())?;
        Ok(tonic::Response::new(pb::MemberRemoveResponse {
            header: self.0.header().at(0),
            members,
        }))
    }

    async fn member_update(
        &self,
        request: Request<pb::MemberUpdateRequest>,
    ) -> Result<tonic::Response<pb::MemberUpdateResponse>, Status> {
        let auth = self.0.auth_info(&request)?;
        let request = request.into_inner();
        let members = update(&self.0, request.id, &request.peer_ur_ls, auth)
            .await
            .map_err(|e| e.to_status())?;
        Ok(tonic::Response::new(pb::MemberUpdateResponse {
            header: self.0.header().at(0),
            members,
        }))
    }

    async fn member_list(
        &self,
        _request: Request<pb::MemberListRequest>,
    ) -> Result<tonic::Response<pb::MemberListResponse>, Status> {
        // etcd 3.4 answers MemberList with a header that carries no revision.
        Ok(tonic::Response::new(pb::MemberListResponse {
            header: self.0.header().at(0),
            members: members(&self.0)?,
        }))
    }

    async fn member_promote(
        &self,
        request: Request<pb::MemberPromoteRequest>,
    ) -> Result<tonic::Response<pb::MemberPromoteResponse>, Status> {
        let auth = self.0.auth_info(&request)?;
        let members = promote(&self.0, request.into_inner().id, auth)
            .await
            .map_err(|e| e.to_status())?;
        Ok(tonic::Response::new(pb::MemberPromoteResponse {
            header: self.0.header().at(0),
            members,
        }))
    }
}

/// etcd's `MoveLeader`: only the leader takes it; the target must be a voting member;
/// then Raft's leader transfer runs and the answer comes once the target leads (at once
/// when the target is this leader).
///
/// # Errors
/// etcd's "not leader", "bad leader transferee", and "leader transfer took too long"
/// after [`REQUEST_TIMEOUT`].
pub async fn move_leader(ctx: &Context, target: u64) -> Result<(), Status> {
    let node = &ctx.node;
    if !node.is_leader() {
        return Err(Status::new(
            Code::FailedPrecondition,
            "etcdserver: not leader",
        ));
    }
    let voter = ctx.read(|state| {
        state
            .cluster()
            .member(MemberId(target))
            .is_some_and(|m| !m.is_learner)
    })?;
    if !voter {
        return Err(Status::new(
            Code::FailedPrecondition,
            "etcdserver: bad leader transferee",
        ));
    }
    let leader = || {
        node.status
            .leader
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    if leader() == target {
        return Ok(());
    }
    node.transfer_leader(target)
        .await
        .map_err(|error| errors::node(&error))?;
    let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
    let tick = Duration::from_millis(ctx.config.heartbeat_interval_ms.max(1));
    while leader() != target {
        if tokio::time::Instant::now() >= deadline {
            return Err(Status::new(
                Code::Unavailable,
                "etcdserver: request timed out, leader transfer took too long",
            ));
        }
        tokio::time::sleep(tick).await;
    }
    Ok(())
}

/// How often the leader looks whether the cluster version is set (etcd's
/// `monitorVersions` also runs at once when a leader applies its first entry).
const VERSION_CHECK_EVERY: Duration = Duration::from_millis(200);

/// etcd's `monitorVersions` for a new cluster: while the applied cluster version is
/// unset, the leader sets it (`major.minor.0` of the server version, one Raft entry and
/// one v2 index on `/0/version`). Ends once a version is applied.
async fn monitor_version(ctx: Context) {
    let version = cluster_version();
    loop {
        let unset = ctx
            .read(|state| state.cluster().version().is_none())
            .unwrap_or(false);
        if !unset {
            return;
        }
        if ctx.node.is_leader() {
            let command = Command::Membership(MemberChange::ClusterVersion(version));
            let _ = tokio::time::timeout(Duration::from_secs(1), ctx.node.propose(command)).await;
        }
        tokio::time::sleep(VERSION_CHECK_EVERY).await;
    }
}

/// [`crate::version::ETCD_CLUSTER_VERSION`] as a cluster version.
fn cluster_version() -> membership::ClusterVersion {
    let mut parts = crate::version::ETCD_CLUSTER_VERSION
        .split('.')
        .map(|part| part.parse::<u64>().unwrap_or(0));
    membership::ClusterVersion {
        major: parts.next().unwrap_or(0),
        minor: parts.next().unwrap_or(0),
        patch: parts.next().unwrap_or(0),
    }
}

/// Starts [`publish`] and waits for it for a while: etcd serves clients once published;
/// a member without a quorum serves here anyway and keeps trying in the background.
/// Also starts the leader's cluster-version setting ([`monitor_version`]).
pub async fn start_publish(ctx: &Context) {
    let background = ctx.clone();
    let task = tokio::spawn(async move {
        if let Err(error) = publish(&background, Duration::MAX).await {
            tracing::warn!("etcdserver: failed to publish local member: {error}");
        }
        monitor_version(background).await;
    });
    if tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .is_err()
    {
        tracing::warn!("etcdserver: local member not published yet (no quorum?); serving anyway");
    }
}
