//! `etcdserverpb.Cluster`: the member list of this single-member cluster. Membership
//! changes are refused until the peer transport exists (not done).

use oxetcd_api::etcdserverpb as pb;
use tonic::{Request, Status};

use super::Context;
use crate::config::url;
use crate::errors;

/// The Cluster service.
#[derive(Clone, Debug)]
pub struct ClusterService(pub Context);

impl ClusterService {
    /// This member as etcd lists it.
    pub fn members(&self) -> Vec<pb::Member> {
        let config = &self.0.config;
        vec![pb::Member {
            id: self.0.node.member_id,
            name: config.name.clone(),
            peer_ur_ls: config
                .initial_advertise_peer_urls
                .iter()
                .map(ToString::to_string)
                .collect(),
            client_ur_ls: url::join(&config.advertise_client_urls)
                .split(',')
                .map(str::to_owned)
                .collect(),
            is_learner: false,
        }]
    }
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for ClusterService {
    async fn member_add(
        &self,
        _request: Request<pb::MemberAddRequest>,
    ) -> Result<tonic::Response<pb::MemberAddResponse>, Status> {
        Err(errors::member_change_unsupported())
    }

    async fn member_remove(
        &self,
        _request: Request<pb::MemberRemoveRequest>,
    ) -> Result<tonic::Response<pb::MemberRemoveResponse>, Status> {
        Err(errors::member_change_unsupported())
    }

    async fn member_update(
        &self,
        _request: Request<pb::MemberUpdateRequest>,
    ) -> Result<tonic::Response<pb::MemberUpdateResponse>, Status> {
        Err(errors::member_change_unsupported())
    }

    async fn member_list(
        &self,
        _request: Request<pb::MemberListRequest>,
    ) -> Result<tonic::Response<pb::MemberListResponse>, Status> {
        // etcd 3.4 answers MemberList with a header that carries no revision.
        Ok(tonic::Response::new(pb::MemberListResponse {
            header: self.0.header().at(0),
            members: self.members(),
        }))
    }

    async fn member_promote(
        &self,
        _request: Request<pb::MemberPromoteRequest>,
    ) -> Result<tonic::Response<pb::MemberPromoteResponse>, Status> {
        Err(errors::member_change_unsupported())
    }
}
