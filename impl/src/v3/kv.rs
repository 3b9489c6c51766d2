//! `etcdserverpb.KV`: Range, Put, DeleteRange, Txn, Compact.

use oxetcd_api::etcdserverpb as pb;
use oxetcd_spec::apply::{Command, Response};
use oxetcd_spec::mvcc::CompactionRequest;
use tonic::{Request, Status};

use super::{Context, convert};
use crate::errors;

/// The KV service.
#[derive(Clone, Debug)]
pub struct KvService(pub Context);

fn unexpected() -> Status {
    Status::internal("oxetcd: applier returned a response of another kind")
}

#[tonic::async_trait]
impl pb::kv_server::Kv for KvService {
    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<tonic::Response<pb::RangeResponse>, Status> {
        let ctx = &self.0;
        let auth = ctx.auth_info(&request)?.unwrap_or_default();
        let request = convert::range_from_pb(request.into_inner());
        oxetcd_spec::mvcc::validate::check_range(&request).map_err(errors::mvcc)?;
        if !request.serializable {
            ctx.linearizable_barrier().await?;
        }
        let response = ctx.read(|state| {
            state
                .auth()
                .is_range_permitted(&auth, &request.key, &request.range_end)
                .map_err(errors::auth)?;
            state.range(&request).map_err(errors::mvcc)
        })??;
        crate::metrics::count_range();
        Ok(tonic::Response::new(convert::range_to_pb(
            response,
            ctx.header(),
        )))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<tonic::Response<pb::PutResponse>, Status> {
        let ctx = &self.0;
        ctx.check_size(request.get_ref())?;
        let auth = ctx.auth_info(&request)?;
        let request = convert::put_from_pb(request.into_inner());
        oxetcd_spec::mvcc::validate::check_put(&request).map_err(errors::mvcc)?;
        let applied = ctx.propose_as(Command::Put(request), auth).await?;
        match applied.result.map_err(errors::apply)? {
            Response::Put(response) => Ok(tonic::Response::new(convert::put_to_pb(
                response,
                ctx.header(),
            ))),
            _ => Err(unexpected()),
        }
    }

    async fn delete_range(
        &self,
        request: Request<pb::DeleteRangeRequest>,
    ) -> Result<tonic::Response<pb::DeleteRangeResponse>, Status> {
        let ctx = &self.0;
        ctx.check_size(request.get_ref())?;
        let auth = ctx.auth_info(&request)?;
        let request = convert::delete_from_pb(request.into_inner());
        oxetcd_spec::mvcc::validate::check_delete(&request).map_err(errors::mvcc)?;
        let applied = ctx.propose_as(Command::DeleteRange(request), auth).await?;
        match applied.result.map_err(errors::apply)? {
            Response::DeleteRange(response) => Ok(tonic::Response::new(convert::delete_to_pb(
                response,
                ctx.header(),
            ))),
            _ => Err(unexpected()),
        }
    }

    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<tonic::Response<pb::TxnResponse>, Status> {
        let ctx = &self.0;
        ctx.check_size(request.get_ref())?;
        if convert::txn_op_count(request.get_ref()) > ctx.max_txn_ops {
            return Err(errors::too_many_ops());
        }
        let auth = ctx.auth_info(&request)?;
        let request = convert::txn_from_pb(request.into_inner());
        oxetcd_spec::mvcc::validate::check_txn(&request).map_err(errors::mvcc)?;
        let applied = ctx.propose_as(Command::Txn(request), auth).await?;
        match applied.result.map_err(errors::apply)? {
            Response::Txn(response) => Ok(tonic::Response::new(convert::txn_to_pb(
                response,
                ctx.header(),
            ))),
            _ => Err(unexpected()),
        }
    }

    async fn compact(
        &self,
        request: Request<pb::CompactionRequest>,
    ) -> Result<tonic::Response<pb::CompactionResponse>, Status> {
        let ctx = &self.0;
        let auth = ctx.auth_info(&request)?;
        let request = request.into_inner();
        let command = Command::Compaction(CompactionRequest {
            revision: request.revision,
            physical: request.physical,
        });
        let applied = ctx.propose_as(command, auth).await?;
        match applied.result.map_err(errors::apply)? {
            Response::Compaction(response) => Ok(tonic::Response::new(pb::CompactionResponse {
                header: ctx.header().at(response.revision),
            })),
            _ => Err(unexpected()),
        }
    }
}
