//! `etcdserverpb.Maintenance`: Status with real figures, HashKV, Alarm (no alarms are
//! raised yet: the quota is not enforced), Defragment (fjall compacts on its own, so
//! there is nothing to do). Hash, Snapshot, MoveLeader and Downgrade are not served yet.

use std::pin::Pin;
use std::sync::atomic::Ordering;

use futures::Stream;
use oxetcd_api::etcdserverpb as pb;
use tonic::{Request, Status};

use super::Context;
use crate::errors;
use crate::version::ETCD_VERSION;

/// The Maintenance service.
#[derive(Clone, Debug)]
pub struct MaintenanceService {
    /// Shared context.
    pub ctx: Context,
    /// The data dir (for its size).
    pub data_dir: crate::storage::DataDir,
}

impl MaintenanceService {
    fn revision(&self) -> Result<i64, Status> {
        self.ctx.read(|state| state.store().current_revision())
    }
}

#[tonic::async_trait]
impl pb::maintenance_server::Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        _request: Request<pb::AlarmRequest>,
    ) -> Result<tonic::Response<pb::AlarmResponse>, Status> {
        // etcd 3.4.23 answers Alarm (GET, ACTIVATE, DEACTIVATE) with no header at all.
        Ok(tonic::Response::new(pb::AlarmResponse {
            header: None,
            alarms: Vec::new(),
        }))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<tonic::Response<pb::StatusResponse>, Status> {
        let status = &self.ctx.node.status;
        let db_size = i64::try_from(self.data_dir.disk_space_bytes()).unwrap_or(i64::MAX);
        Ok(tonic::Response::new(pb::StatusResponse {
            header: self.ctx.header().at(self.revision()?),
            version: ETCD_VERSION.to_owned(),
            db_size,
            leader: status.leader.load(Ordering::Relaxed),
            raft_index: status.raft_index.load(Ordering::Relaxed),
            raft_term: status.term.load(Ordering::Relaxed),
            raft_applied_index: status.applied_index.load(Ordering::Relaxed),
            errors: Vec::new(),
            db_size_in_use: db_size,
            is_learner: false,
        }))
    }

    async fn defragment(
        &self,
        _request: Request<pb::DefragmentRequest>,
    ) -> Result<tonic::Response<pb::DefragmentResponse>, Status> {
        // etcd 3.4.23 answers Defragment with no header.
        Ok(tonic::Response::new(pb::DefragmentResponse {
            header: None,
        }))
    }

    async fn hash(
        &self,
        _request: Request<pb::HashRequest>,
    ) -> Result<tonic::Response<pb::HashResponse>, Status> {
        Err(errors::not_implemented("Maintenance.Hash"))
    }

    async fn hash_kv(
        &self,
        request: Request<pb::HashKvRequest>,
    ) -> Result<tonic::Response<pb::HashKvResponse>, Status> {
        let revision = request.into_inner().revision;
        let hash = self
            .ctx
            .read(|state| state.hash_kv(revision))?
            .map_err(errors::mvcc)?;
        Ok(tonic::Response::new(pb::HashKvResponse {
            header: self.ctx.header().at(hash.revision),
            hash: hash.hash,
            compact_revision: hash.compact_revision,
            // etcd 3.5's field: the revision the hash covers.
            hash_revision: if revision == 0 {
                hash.revision
            } else {
                revision
            },
        }))
    }

    type SnapshotStream =
        Pin<Box<dyn Stream<Item = Result<pb::SnapshotResponse, Status>> + Send + 'static>>;

    async fn snapshot(
        &self,
        _request: Request<pb::SnapshotRequest>,
    ) -> Result<tonic::Response<Self::SnapshotStream>, Status> {
        Err(errors::not_implemented("Maintenance.Snapshot"))
    }

    async fn move_leader(
        &self,
        _request: Request<pb::MoveLeaderRequest>,
    ) -> Result<tonic::Response<pb::MoveLeaderResponse>, Status> {
        Err(errors::not_implemented("Maintenance.MoveLeader"))
    }

    async fn downgrade(
        &self,
        _request: Request<pb::DowngradeRequest>,
    ) -> Result<tonic::Response<pb::DowngradeResponse>, Status> {
        Err(errors::not_implemented("Maintenance.Downgrade"))
    }
}
