//! The v3 gRPC services, one file each: KV, Watch, Lease, Maintenance, Cluster. Each
//! handler checks the request as etcd's gRPC layer does, proposes through the node loop
//! (writes) or reads the applied state (reads, after ReadIndex unless serializable), and
//! converts the `spec` response back to protobuf. Auth, Lock and Election are not served
//! yet.

pub mod cluster;
pub mod convert;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod watch;

use std::sync::atomic::Ordering;
use std::time::Duration;

use oxetcd_spec::apply::{Applied, Command};
use tonic::Status;

use crate::errors;
use crate::node_loop::NodeHandle;
use convert::HeaderSource;

/// How long a client request waits for its proposal or read (etcd: 5 s plus two
/// election timeouts by default).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(7);

/// What every service needs.
#[derive(Clone, Debug)]
pub struct Context {
    /// The node loop.
    pub node: NodeHandle,
    /// `--max-request-bytes`.
    pub max_request_bytes: usize,
    /// `--max-txn-ops`.
    pub max_txn_ops: usize,
    /// The configuration (member list, versions).
    pub config: std::sync::Arc<crate::config::Config>,
}

impl Context {
    /// Header source with the current term.
    pub fn header(&self) -> HeaderSource {
        HeaderSource {
            cluster_id: self.node.cluster_id,
            member_id: self.node.member_id,
            raft_term: self.node.status.term.load(Ordering::Relaxed),
        }
    }

    /// Refuses requests larger than `--max-request-bytes` (etcd's
    /// `ErrGRPCRequestTooLarge`).
    pub fn check_size(&self, message: &impl prost::Message) -> Result<(), Status> {
        if message.encoded_len() > self.max_request_bytes {
            return Err(errors::request_too_large());
        }
        Ok(())
    }

    /// Proposes and waits for the applied result (bounded by [`REQUEST_TIMEOUT`]).
    /// Requests that add data are first checked against `--quota-backend-bytes`.
    pub async fn propose(&self, command: Command) -> Result<Applied, Status> {
        maintenance::check_quota(self, &command).await?;
        self.propose_unchecked(command).await
    }

    /// [`Context::propose`] without the quota check.
    pub async fn propose_unchecked(&self, command: Command) -> Result<Applied, Status> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.node.propose(command)).await {
            Ok(Ok(applied)) => Ok(applied),
            Ok(Err(error)) => Err(errors::node(&error)),
            Err(_) => Err(errors::request_timed_out()),
        }
    }

    /// Waits until a local read is linearizable.
    pub async fn linearizable_barrier(&self) -> Result<(), Status> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.node.read_index()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(errors::node(&error)),
            Err(_) => Err(errors::request_timed_out()),
        }
    }

    /// Runs `read` on the applied state under the read lock.
    pub fn read<T>(
        &self,
        read: impl FnOnce(&oxetcd_spec::apply::AppState<crate::storage::backend::FjallBackend>) -> T,
    ) -> Result<T, Status> {
        let state = self
            .node
            .state
            .read()
            .map_err(|_| Status::internal("state lock poisoned"))?;
        Ok(read(&state))
    }
}
