//! The v3 gRPC services, one file each: KV, Watch, Lease, Maintenance, Cluster, Auth,
//! Lock and Election. Each handler checks the request as etcd's gRPC layer does, reads
//! the caller's identity from the `token` metadata ([`Context::auth_info`]), proposes
//! through the node loop on the caller's behalf (writes) or reads the applied state
//! (reads, after ReadIndex unless serializable, permission-checked through `spec::auth`),
//! and converts the `spec` response back to protobuf. Lock and Election are recipes over
//! KV, leases and watch events, as etcd serves them. `grpc.health.v1.Health` answers
//! gRPC health checks ([`health`]).

pub mod auth;
pub mod cluster;
pub mod convert;
pub mod election;
pub mod health;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod recipe;
pub mod watch;

use std::sync::atomic::Ordering;
use std::time::Duration;

use oxetcd_spec::apply::{Applied, AuthInfo, Command};
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
    /// The auth token provider and password hasher.
    pub tokens: std::sync::Arc<crate::token::Tokens>,
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

    /// etcd refuses every v3 request it would put in the Raft log when the entry is
    /// larger than `--max-request-bytes` (`ErrGRPCRequestTooLarge`): lease, auth,
    /// compaction and alarm requests are measured here as encoded proposals (KV writes
    /// are measured by their handlers on the gRPC message). v2 and membership requests
    /// are not limited, as in etcd.
    fn check_proposal_size(
        &self,
        command: Command,
        auth: Option<&AuthInfo>,
    ) -> Result<Command, Status> {
        if matches!(
            command,
            Command::Put(_)
                | Command::DeleteRange(_)
                | Command::Txn(_)
                | Command::V2(_)
                | Command::Membership(_)
        ) {
            return Ok(command);
        }
        let proposal = oxetcd_spec::apply::Proposal {
            request_id: 0,
            auth: auth.cloned(),
            command,
        };
        if oxetcd_spec::apply::codec::encode(&proposal).len() > self.max_request_bytes {
            return Err(errors::request_too_large());
        }
        Ok(proposal.command)
    }

    /// Proposes and waits for the applied result (bounded by [`REQUEST_TIMEOUT`]).
    /// Requests that add data are first checked against `--quota-backend-bytes`.
    pub async fn propose(&self, command: Command) -> Result<Applied, Status> {
        self.propose_as(command, None).await
    }

    /// [`Context::propose`] on behalf of `auth` (from [`Context::auth_info`]).
    pub async fn propose_as(
        &self,
        command: Command,
        auth: Option<AuthInfo>,
    ) -> Result<Applied, Status> {
        maintenance::check_quota(self, &command).await?;
        self.propose_unchecked_as(command, auth).await
    }

    /// [`Context::propose`] without the quota check.
    pub async fn propose_unchecked(&self, command: Command) -> Result<Applied, Status> {
        self.propose_unchecked_as(command, None).await
    }

    /// [`Context::propose_as`] without the quota check.
    pub async fn propose_unchecked_as(
        &self,
        command: Command,
        auth: Option<AuthInfo>,
    ) -> Result<Applied, Status> {
        let command = self.check_proposal_size(command, auth.as_ref())?;
        match tokio::time::timeout(REQUEST_TIMEOUT, self.node.propose_as(command, auth)).await {
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

/// The gRPC metadata keys etcd reads a token from (`rpctypes.TokenFieldNameGRPC`, and
/// the gateway's `authorization`).
const TOKEN_KEYS: [&str; 2] = ["token", "authorization"];

/// The token a request carries, if any.
pub fn request_token(metadata: &tonic::metadata::MetadataMap) -> Option<String> {
    TOKEN_KEYS
        .iter()
        .find_map(|key| metadata.get(*key))
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
}

impl Context {
    /// Who a request with `token` speaks for (etcd's `AuthInfoFromCtx`): `None` without a
    /// token.
    ///
    /// # Errors
    /// etcd's "invalid auth token" for a token this member does not know (also while
    /// auth is disabled: disabling drops every simple token).
    pub fn token_info(&self, token: Option<&str>) -> Result<Option<AuthInfo>, Status> {
        let Some(token) = token else {
            return Ok(None);
        };
        let revision = self.read(|state| state.auth().revision())?;
        self.tokens
            .info(token, revision)
            .map(Some)
            .ok_or_else(|| errors::auth(oxetcd_spec::auth::AuthError::InvalidAuthToken))
    }

    /// [`Context::token_info`] for the token in `request`'s metadata. Without a token,
    /// under `--client-cert-auth`, the request runs as the user its TLS client
    /// certificate's CommonName names (etcd's `AuthInfoFromTLS`).
    ///
    /// # Errors
    /// As [`Context::token_info`].
    pub fn auth_info<T>(&self, request: &tonic::Request<T>) -> Result<Option<AuthInfo>, Status> {
        let token = request_token(request.metadata());
        if token.is_none()
            && self.config.client_tls.client_cert_auth
            && let Some(name) = crate::tls::request_common_name(request.extensions())
        {
            let revision = self.read(|state| state.auth().revision())?;
            return Ok(Some(AuthInfo::new(name, revision)));
        }
        self.token_info(token.as_deref())
    }
}

impl Context {
    /// etcd's admin check on the Maintenance calls that expose or change the whole
    /// store (Hash, HashKV, Defragment, Snapshot, MoveLeader): with auth enabled only a
    /// user with the root role may call them. etcd sends these refusals with code Unknown
    /// and its auth package's texts ("auth: user name is empty", "auth: permission
    /// denied", ...).
    ///
    /// # Errors
    /// The refusal, as etcd words it.
    pub fn check_admin<T>(&self, request: &tonic::Request<T>) -> Result<(), Status> {
        let etcd_text = |error: oxetcd_spec::auth::AuthError| {
            let text = error.to_string();
            let text = text
                .strip_prefix("etcdserver: ")
                .unwrap_or(&text)
                .to_owned();
            Status::new(tonic::Code::Unknown, format!("auth: {text}"))
        };
        let info = match self.auth_info(request) {
            Ok(info) => info.unwrap_or_default(),
            Err(_) => return Err(etcd_text(oxetcd_spec::auth::AuthError::InvalidAuthToken)),
        };
        self.read(|state| state.auth().is_admin_permitted(&info))?
            .map_err(etcd_text)
    }
}
