//! `v3lockpb.Lock`: a mutex recipe over KV, as etcd's lock service serves it.
//!
//! `Lock(name, lease)` puts the key `name/<lease in hex>` attached to the lease (a
//! session lease of 60 s is granted when `lease` is 0), unless that key already exists
//! (the same lease locking again keeps its place). The holder is the key under `name/`
//! with the lowest create revision: the call returns when every key created before its
//! own is deleted (unlocked, or its lease revoked or expired). The answer's header is the
//! put's when the lock was free, else that of the last check. If the client goes away
//! while waiting, its key is deleted. `Unlock(key)` deletes the key. Errors are sent
//! with code Unknown and etcd's text, as etcd's in-process client reports them.

use oxetcd_api::v3lockpb as pb;
use oxetcd_spec::lease::LeaseId;
use oxetcd_spec::mvcc::{
    Compare, CompareResult, CompareTarget, PutRequest, RangeRequest, RequestOp, ResponseOp,
    SortOrder, TxnRequest,
};
use tonic::{Request, Status};

use super::Context;
use super::recipe::{Caller, ReleaseOnDrop, by_create, unknown};

/// The Lock service.
#[derive(Clone, Debug)]
pub struct LockService(pub Context);

/// The key a session holds under `prefix` (`<prefix><lease in lowercase hex>`).
pub fn session_key(prefix: &[u8], lease: LeaseId) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(format!("{:x}", lease.0).as_bytes());
    key
}

/// etcd's `Mutex.Lock`: returns the header revision and the lock key.
async fn lock(caller: &Caller, name: &[u8], lease: i64) -> Result<(i64, Vec<u8>), Status> {
    let lease = if lease == 0 {
        caller.grant_session_lease().await?
    } else {
        LeaseId(lease)
    };
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    let key = session_key(&prefix, lease);
    let owner = RequestOp::Range(by_create(&prefix, SortOrder::Ascend, 0));
    let txn = TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal,
            target: CompareTarget::Create(0),
            key: key.clone(),
            range_end: Vec::new(),
        }],
        success: vec![
            RequestOp::Put(PutRequest {
                key: key.clone(),
                lease,
                ..PutRequest::default()
            }),
            owner.clone(),
        ],
        failure: vec![
            RequestOp::Range(RangeRequest {
                key: key.clone(),
                ..RangeRequest::default()
            }),
            owner,
        ],
    };
    let response = caller.txn(txn).await?;
    let mut my_revision = response.revision;
    if !response.succeeded
        && let Some(ResponseOp::Range(mine)) = response.responses.first()
        && let Some(kv) = mine.kvs.first()
    {
        my_revision = kv.create_revision;
    }
    let holder = match response.responses.get(1) {
        Some(ResponseOp::Range(owner)) => owner.kvs.first().map(|kv| kv.create_revision),
        _ => None,
    };
    if holder.is_none_or(|revision| revision == my_revision) {
        return Ok((response.revision, key));
    }
    let mut release = ReleaseOnDrop::new(caller.clone(), key.clone());
    let waited = caller.wait_deletes(&prefix, my_revision - 1).await;
    match waited {
        Ok(revision) => {
            release.disarm();
            Ok((revision, key))
        }
        // Dropping `release` gives up the place in the queue.
        Err(status) => Err(status),
    }
}

#[tonic::async_trait]
impl pb::lock_server::Lock for LockService {
    async fn lock(
        &self,
        request: Request<pb::LockRequest>,
    ) -> Result<tonic::Response<pb::LockResponse>, Status> {
        let caller = Caller::of(&self.0, &request)?;
        let request = request.into_inner();
        let (revision, key) = lock(&caller, &request.name, request.lease)
            .await
            .map_err(unknown)?;
        Ok(tonic::Response::new(pb::LockResponse {
            header: self.0.header().at(revision),
            key,
        }))
    }

    async fn unlock(
        &self,
        request: Request<pb::UnlockRequest>,
    ) -> Result<tonic::Response<pb::UnlockResponse>, Status> {
        let caller = Caller::of(&self.0, &request)?;
        let key = request.into_inner().key;
        let deleted = caller.delete(key).await.map_err(unknown)?;
        Ok(tonic::Response::new(pb::UnlockResponse {
            header: self.0.header().at(deleted.revision),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_key_is_the_prefix_and_the_lease_in_lowercase_hex() {
        assert_eq!(
            session_key(b"mutex1/", LeaseId(0x4952_7f59_8bbf_e018)),
            b"mutex1/49527f598bbfe018".to_vec()
        );
    }
}
