//! `etcdserverpb.Lease`: grant and revoke go through the log; keep-alive, time-to-live
//! and the lease list are answered by the leader from its lease clocks, as etcd does.
//! A follower forwards keep-alives and TimeToLive to the leader's peer port (etcd's
//! `/leases/internal`; here [`LEASE_TTL_PATH`]), so the remaining TTL is the leader's.

use std::pin::Pin;

use futures::Stream;
use oxetcd_api::etcdserverpb as pb;
use oxetcd_spec::apply::{Command, Response};
use oxetcd_spec::lease::{LeaseError, LeaseId};
use prost::Message as _;
use tokio_stream::StreamExt;
use tonic::{Request, Status, Streaming};

use super::Context;
use crate::errors;
use crate::node_loop::NodeHandle;

/// The Lease service.
#[derive(Clone, Debug)]
pub struct LeaseService(pub Context);

/// Bound on keep-alive responses queued for one stream.
const KEEP_ALIVE_QUEUE: usize = 64;

#[tonic::async_trait]
impl pb::lease_server::Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<pb::LeaseGrantRequest>,
    ) -> Result<tonic::Response<pb::LeaseGrantResponse>, Status> {
        let ctx = &self.0;
        let auth = ctx.auth_info(&request)?;
        let request = request.into_inner();
        let id = if request.id == 0 {
            i64::try_from(ctx.node.next_id()).unwrap_or(1)
        } else {
            request.id
        };
        let applied = ctx
            .propose_as(
                Command::LeaseGrant {
                    id: LeaseId(id),
                    ttl_secs: request.ttl,
                },
                auth,
            )
            .await?;
        match applied.result.map_err(errors::apply)? {
            Response::LeaseGrant(granted) => Ok(tonic::Response::new(pb::LeaseGrantResponse {
                header: ctx.header().at(granted.revision),
                id: granted.id.0,
                ttl: granted.ttl_secs,
                error: String::new(),
            })),
            _ => Err(Status::internal(
                "oxetcd: unexpected response to a lease grant",
            )),
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<pb::LeaseRevokeRequest>,
    ) -> Result<tonic::Response<pb::LeaseRevokeResponse>, Status> {
        let ctx = &self.0;
        let auth = ctx.auth_info(&request)?;
        let id = LeaseId(request.into_inner().id);
        let applied = ctx.propose_as(Command::LeaseRevoke { id }, auth).await?;
        match applied.result.map_err(errors::apply)? {
            Response::LeaseRevoke(revoked) => Ok(tonic::Response::new(pb::LeaseRevokeResponse {
                header: ctx.header().at(revoked.revision),
            })),
            _ => Err(Status::internal(
                "oxetcd: unexpected response to a lease revoke",
            )),
        }
    }

    type LeaseKeepAliveStream =
        Pin<Box<dyn Stream<Item = Result<pb::LeaseKeepAliveResponse, Status>> + Send + 'static>>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<tonic::Response<Self::LeaseKeepAliveStream>, Status> {
        let ctx = self.0.clone();
        let mut incoming = request.into_inner();
        let (sender, receiver) = tokio::sync::mpsc::channel(KEEP_ALIVE_QUEUE);
        tokio::spawn(async move {
            while let Some(Ok(keep_alive)) = incoming.next().await {
                let response = if ctx.node.is_leader() {
                    renew(&ctx, LeaseId(keep_alive.id))
                } else {
                    renew_on_leader(&ctx, keep_alive.id).await
                };
                if sender.send(response).await.is_err() {
                    break;
                }
            }
        });
        Ok(tonic::Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<tonic::Response<pb::LeaseTimeToLiveResponse>, Status> {
        let ctx = &self.0;
        let request = request.into_inner();
        let answer = if ctx.node.is_leader() {
            ctx.linearizable_barrier().await?;
            time_to_live(&ctx.node, &request)?
        } else {
            time_to_live_on_leader(ctx, &request).await?
        };
        let revision = ctx.read(|state| state.store().current_revision())?;
        Ok(tonic::Response::new(pb::LeaseTimeToLiveResponse {
            header: ctx.header().at(revision),
            ..answer
        }))
    }

    async fn lease_leases(
        &self,
        _request: Request<pb::LeaseLeasesRequest>,
    ) -> Result<tonic::Response<pb::LeaseLeasesResponse>, Status> {
        let ctx = &self.0;
        ctx.linearizable_barrier().await?;
        let (leases, revision) =
            ctx.read(|state| (state.lease_list(), state.store().current_revision()))?;
        Ok(tonic::Response::new(pb::LeaseLeasesResponse {
            header: ctx.header().at(revision),
            leases: leases
                .into_iter()
                .map(|lease| pb::LeaseStatus { id: lease.id.0 })
                .collect(),
        }))
    }
}

/// TimeToLive from this member's lease clocks (the leader's are the running ones).
fn time_to_live(
    node: &NodeHandle,
    request: &pb::LeaseTimeToLiveRequest,
) -> Result<pb::LeaseTimeToLiveResponse, Status> {
    let now_ms = node.now_ms();
    let ttl = node
        .state
        .read()
        .map_err(|_| Status::internal("state lock poisoned"))?
        .lease_time_to_live(LeaseId(request.id), now_ms, request.keys);
    Ok(pb::LeaseTimeToLiveResponse {
        header: None,
        id: ttl.id.0,
        ttl: ttl.ttl_secs,
        granted_ttl: ttl.granted_ttl_secs,
        keys: ttl.keys,
    })
}

/// A TimeToLive that reached a follower: asked of the leader over its peer port (etcd's
/// `TimeToLiveHTTP`), trying each of its peer URLs.
async fn time_to_live_on_leader(
    ctx: &Context,
    request: &pb::LeaseTimeToLiveRequest,
) -> Result<pb::LeaseTimeToLiveResponse, Status> {
    if !ctx.node.has_leader() {
        return Err(errors::node(&crate::node_loop::LoopError::NoLeader));
    }
    let body = request.encode_to_vec();
    match crate::peer::ask_leader(&ctx.node, LEASE_TTL_PATH, "application/protobuf", &body).await {
        Ok(answer) => pb::LeaseTimeToLiveResponse::decode(answer.as_slice())
            .map_err(|error| Status::internal(format!("lease: leader's answer: {error}"))),
        Err(error) => {
            tracing::warn!(
                "lease: forwarding TimeToLive of {:x} to the leader: {error}",
                request.id
            );
            Err(errors::lease(LeaseError::NotPrimary))
        }
    }
}

/// The peer port's TimeToLive path (body: `LeaseTimeToLiveRequest`, answer:
/// `LeaseTimeToLiveResponse` without header, both protobuf; 503 on a non-leader).
pub const LEASE_TTL_PATH: &str = "/oxetcd/lease/timetolive";

/// The peer port's lease routes (merged into the peer router): the leader's side of a
/// forwarded TimeToLive.
pub fn peer_router(node: NodeHandle) -> axum::Router {
    axum::Router::new()
        .route(LEASE_TTL_PATH, axum::routing::post(time_to_live_handler))
        .with_state(node)
}

async fn time_to_live_handler(
    axum::extract::State(node): axum::extract::State<NodeHandle>,
    body: bytes::Bytes,
) -> (axum::http::StatusCode, Vec<u8>) {
    use axum::http::StatusCode;
    let Ok(request) = pb::LeaseTimeToLiveRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, b"bad request".to_vec());
    };
    if !node.is_leader() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            b"lease: not primary".to_vec(),
        );
    }
    match time_to_live(&node, &request) {
        Ok(answer) => (StatusCode::OK, answer.encode_to_vec()),
        Err(status) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            status.message().as_bytes().to_vec(),
        ),
    }
}

/// One keep-alive that reached a follower: forwarded to the leader's peer port (as
/// etcd forwards it), answered with the TTL the leader granted.
async fn renew_on_leader(ctx: &Context, id: i64) -> Result<pb::LeaseKeepAliveResponse, Status> {
    if !ctx.node.has_leader() {
        return Err(errors::node(&crate::node_loop::LoopError::NoLeader));
    }
    let ttl = crate::peer::forward_lease_renew(&ctx.node, id)
        .await
        .map_err(|error| {
            tracing::warn!("lease: forwarding keep-alive of {id:x} to the leader: {error}");
            errors::lease(LeaseError::NotPrimary)
        })?;
    let revision = ctx.read(|state| state.store().current_revision())?;
    Ok(pb::LeaseKeepAliveResponse {
        header: ctx.header().at(revision),
        id,
        ttl,
    })
}

/// One keep-alive on the leader. etcd answers an unknown lease with TTL 0 (the client
/// then reports the lease expired), not with an error.
fn renew(ctx: &Context, id: LeaseId) -> Result<pb::LeaseKeepAliveResponse, Status> {
    if !ctx.node.is_leader() {
        return Err(errors::lease(LeaseError::NotPrimary));
    }
    let now_ms = ctx.node.now_ms();
    let mut state = ctx
        .node
        .state
        .write()
        .map_err(|_| Status::internal("state lock poisoned"))?;
    let revision = state.store().current_revision();
    let ttl = match state.lease_renew(id, now_ms) {
        Ok(ttl) => ttl,
        Err(LeaseError::NotFound) => 0,
        Err(error) => return Err(errors::lease(error)),
    };
    Ok(pb::LeaseKeepAliveResponse {
        header: ctx.header().at(revision),
        id: id.0,
        ttl,
    })
}
