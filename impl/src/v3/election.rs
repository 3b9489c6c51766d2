//! `v3electionpb.Election`: leader election recipes over KV, as etcd's election service
//! serves them.
//!
//! A candidate's key is `name/<lease in hex>` (a 60 s session lease is granted when
//! `lease` is 0), holding its proposal; the leader is the key under `name/` with the
//! lowest create revision. `Campaign` puts the key (or, if the lease already campaigns,
//! keeps it and proclaims the new value) and returns once every earlier candidate is
//! gone; its header is that of the put. `Proclaim` and `Resign` act only while the key
//! still has the leader's create revision ("election: not leader" otherwise for
//! Proclaim; Resign then succeeds doing nothing). `Leader` reads the current leader
//! ("election: no leader" when none). `Observe` streams the leader's key-value at once
//! (or when the first candidate appears), then each change of it, and follows the next
//! leader when it is deleted. Errors are sent with code Unknown and etcd's text, as
//! etcd's in-process client reports them.

use std::pin::Pin;

use futures::Stream;
use oxetcd_api::{mvccpb, v3electionpb as pb};
use oxetcd_spec::lease::LeaseId;
use oxetcd_spec::mvcc::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, EventKind, KeyValue, PutRequest,
    RangeRequest, RequestOp, ResponseOp, SortOrder, TxnRequest,
};
use tonic::{Code, Request, Status};

use super::lock::session_key;
use super::recipe::{Caller, Feed, ReleaseOnDrop, by_create, unknown};
use super::{Context, convert};

/// The Election service.
#[derive(Clone, Debug)]
pub struct ElectionService(pub Context);

/// Bound on leader changes queued for one Observe stream.
const OBSERVE_QUEUE: usize = 16;

fn no_leader() -> Status {
    Status::new(Code::Unknown, "election: no leader")
}

fn not_leader() -> Status {
    Status::new(Code::Unknown, "election: not leader")
}

fn missing_leader_key() -> Status {
    Status::new(Code::Unknown, "\"leader\" field must be provided")
}

fn prefix_of(name: &[u8]) -> Vec<u8> {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    prefix
}

fn is_leader(leader: &pb::LeaderKey) -> Compare {
    Compare {
        result: CompareResult::Equal,
        target: CompareTarget::Create(leader.rev),
        key: leader.key.clone(),
        range_end: Vec::new(),
    }
}

/// etcd's `Election.Proclaim`: the txn's header revision.
async fn proclaim(caller: &Caller, leader: &pb::LeaderKey, value: Vec<u8>) -> Result<i64, Status> {
    let txn = TxnRequest {
        compare: vec![is_leader(leader)],
        success: vec![RequestOp::Put(PutRequest {
            key: leader.key.clone(),
            value,
            lease: LeaseId(leader.lease),
            ..PutRequest::default()
        })],
        failure: Vec::new(),
    };
    let response = caller.txn(txn).await?;
    if !response.succeeded {
        return Err(not_leader());
    }
    Ok(response.revision)
}

/// etcd's `Election.Resign`: the txn's header revision.
async fn resign(caller: &Caller, leader: &pb::LeaderKey) -> Result<i64, Status> {
    let txn = TxnRequest {
        compare: vec![is_leader(leader)],
        success: vec![RequestOp::DeleteRange(DeleteRangeRequest {
            key: leader.key.clone(),
            ..DeleteRangeRequest::default()
        })],
        failure: Vec::new(),
    };
    Ok(caller.txn(txn).await?.revision)
}

/// etcd's `Election.Campaign`: the header revision and the leader key.
async fn campaign(
    caller: &Caller,
    request: pb::CampaignRequest,
) -> Result<(i64, pb::LeaderKey), Status> {
    let lease = if request.lease == 0 {
        caller.grant_session_lease().await?
    } else {
        LeaseId(request.lease)
    };
    let prefix = prefix_of(&request.name);
    let key = session_key(&prefix, lease);
    let txn = TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal,
            target: CompareTarget::Create(0),
            key: key.clone(),
            range_end: Vec::new(),
        }],
        success: vec![RequestOp::Put(PutRequest {
            key: key.clone(),
            value: request.value.clone(),
            lease,
            ..PutRequest::default()
        })],
        failure: vec![RequestOp::Range(RangeRequest {
            key: key.clone(),
            ..RangeRequest::default()
        })],
    };
    let response = caller.txn(txn).await?;
    let mut leader = pb::LeaderKey {
        name: request.name,
        key: key.clone(),
        rev: response.revision,
        lease: lease.0,
    };
    if !response.succeeded {
        let existing = match response.responses.first() {
            Some(ResponseOp::Range(range)) => range.kvs.first().cloned(),
            _ => None,
        };
        if let Some(kv) = existing {
            leader.rev = kv.create_revision;
            if kv.value != request.value
                && let Err(status) = proclaim(caller, &leader, request.value).await
            {
                let _ = resign(caller, &leader).await;
                return Err(status);
            }
        }
    }
    let mut release = ReleaseOnDrop::new(caller.clone(), key);
    caller.wait_deletes(&prefix, leader.rev - 1).await?;
    release.disarm();
    Ok((response.revision, leader))
}

/// The current leader of the election with `prefix`: header revision and key-value.
async fn current_leader(caller: &Caller, prefix: &[u8]) -> Result<(i64, Option<KeyValue>), Status> {
    let response = caller.get(by_create(prefix, SortOrder::Ascend, 0)).await?;
    Ok((response.revision, response.kvs.into_iter().next()))
}

/// etcd's `Election.observe`, sending each leader answer into `out` until the client
/// goes away or an error ends it.
async fn observe(
    caller: Caller,
    name: Vec<u8>,
    out: tokio::sync::mpsc::Sender<Result<pb::LeaderResponse, Status>>,
) {
    let send = |revision: i64, kv: KeyValue| {
        let out = out.clone();
        let header = caller.ctx.header();
        async move {
            out.send(Ok(pb::LeaderResponse {
                header: header.at(revision),
                kv: Some(convert::kv_to_pb(kv)),
            }))
            .await
            .is_ok()
        }
    };
    let prefix = prefix_of(&name);
    let follow = async {
        loop {
            let (revision, first) = current_leader(&caller, &prefix).await?;
            let (revision, kv) = match first {
                Some(kv) => (revision, kv),
                None => {
                    // Wait for the first candidate's put on the prefix.
                    let end = super::recipe::prefix_end(&prefix);
                    let mut feed = Feed::new(caller.clone(), prefix.clone(), end, revision);
                    loop {
                        let (_, events) = feed.next().await?;
                        if let Some(put) = events.into_iter().find(|e| e.kind == EventKind::Put) {
                            break (put.kv.mod_revision, put.kv);
                        }
                    }
                }
            };
            let key = kv.key.clone();
            if !send(revision, kv).await {
                return Ok(());
            }
            // Follow the leader's key until it is deleted.
            let mut feed = Feed::new(caller.clone(), key, Vec::new(), revision + 1);
            'leader: loop {
                let (revision, events) = feed.next().await?;
                for event in events {
                    if event.kind == EventKind::Delete {
                        break 'leader;
                    }
                    if !send(revision, event.kv).await {
                        return Ok(());
                    }
                }
            }
        }
    };
    // Stop as soon as the client goes away, even while no event comes.
    let result: Result<(), Status> = tokio::select! {
        result = follow => result,
        () = out.closed() => Ok(()),
    };
    if let Err(status) = result {
        let _ = out.send(Err(unknown(status))).await;
    }
}

fn leader_kv(kv: KeyValue) -> Option<mvccpb::KeyValue> {
    Some(convert::kv_to_pb(kv))
}

#[tonic::async_trait]
impl pb::election_server::Election for ElectionService {
    async fn campaign(
        &self,
        request: Request<pb::CampaignRequest>,
    ) -> Result<tonic::Response<pb::CampaignResponse>, Status> {
        let caller = Caller::of(&self.0, &request)?;
        let (revision, leader) = campaign(&caller, request.into_inner())
            .await
            .map_err(unknown)?;
        Ok(tonic::Response::new(pb::CampaignResponse {
            header: self.0.header().at(revision),
            leader: Some(leader),
        }))
    }

    async fn proclaim(
        &self,
        request: Request<pb::ProclaimRequest>,
    ) -> Result<tonic::Response<pb::ProclaimResponse>, Status> {
        let caller = Caller::of(&self.0, &request)?;
        let request = request.into_inner();
        let leader = request.leader.ok_or_else(missing_leader_key)?;
        let revision = proclaim(&caller, &leader, request.value)
            .await
            .map_err(unknown)?;
        Ok(tonic::Response::new(pb::ProclaimResponse {
            header: self.0.header().at(revision),
        }))
    }

    async fn leader(
        &self,
        request: Request<pb::LeaderRequest>,
    ) -> Result<tonic::Response<pb::LeaderResponse>, Status> {
        let caller = Caller::of(&self.0, &request)?;
        let prefix = prefix_of(&request.into_inner().name);
        let (revision, kv) = current_leader(&caller, &prefix).await.map_err(unknown)?;
        let kv = kv.ok_or_else(no_leader)?;
        Ok(tonic::Response::new(pb::LeaderResponse {
            header: self.0.header().at(revision),
            kv: leader_kv(kv),
        }))
    }

    type ObserveStream =
        Pin<Box<dyn Stream<Item = Result<pb::LeaderResponse, Status>> + Send + 'static>>;

    async fn observe(
        &self,
        request: Request<pb::LeaderRequest>,
    ) -> Result<tonic::Response<Self::ObserveStream>, Status> {
        let caller = Caller::of(&self.0, &request)?;
        let name = request.into_inner().name;
        let (out, receiver) = tokio::sync::mpsc::channel(OBSERVE_QUEUE);
        tokio::spawn(observe(caller, name, out));
        Ok(tonic::Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }

    async fn resign(
        &self,
        request: Request<pb::ResignRequest>,
    ) -> Result<tonic::Response<pb::ResignResponse>, Status> {
        let caller = Caller::of(&self.0, &request)?;
        let leader = request.into_inner().leader.ok_or_else(missing_leader_key)?;
        let revision = resign(&caller, &leader).await.map_err(unknown)?;
        Ok(tonic::Response::new(pb::ResignResponse {
            header: self.0.header().at(revision),
        }))
    }
}
