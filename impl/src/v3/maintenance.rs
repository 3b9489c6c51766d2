//! `etcdserverpb.Maintenance`: Status with real figures, HashKV, Alarm (through the
//! log; NOSPACE raised by the quota check below), Defragment (flushes and fully
//! compacts every fjall keyspace), Snapshot (streams etcd's snapshot file, a bbolt
//! database in etcd's schema, see [`crate::snapshot::etcd`], in 32 KiB chunks with
//! `remaining_bytes`, then etcd's SHA-256 trailer as the last message), Hash (etcd's
//! CRC-32C over that same schema), MoveLeader (see `super::cluster::move_leader`).
//! Downgrade is not served yet.
//!
//! Quota: [`check_quota`] runs before every proposal that adds data (put, txn with
//! puts, lease grant): if the database size plus etcd's cost estimate reaches
//! `--quota-backend-bytes`, it raises the NOSPACE alarm through the log and refuses the
//! request with "etcdserver: mvcc: database space exceeded", as etcd does. The size is
//! what the applied state takes on disk (`DataDir::backend_size_bytes`, not the Raft
//! log, as etcd does not count its WAL), sampled every heartbeat by the sampler
//! [`start_background`] starts; Status and `etcd_mvcc_db_total_size_in_bytes` report the
//! same figure.

use std::io::Read;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::Stream;
use oxetcd_api::etcdserverpb as pb;
use oxetcd_spec::alarm::{AlarmAction, AlarmError, AlarmMember, AlarmRequest, AlarmType};
use oxetcd_spec::apply::{Command, Response};
use tonic::{Request, Status};

use super::Context;
use crate::errors;
use crate::version::ETCD_VERSION;

/// Bytes per Snapshot message (etcd's `snapshotSendBufferSize`).
const SNAPSHOT_CHUNK: usize = 32 * 1024;

/// Refuses `command` if it adds data and the database has reached the quota, raising
/// the NOSPACE alarm for this member first (etcd's `quotaKVServer`/`quotaLeaseServer`).
///
/// # Errors
/// etcd's `ErrGRPCNoSpace`.
pub async fn check_quota(ctx: &Context, command: &Command) -> Result<(), Status> {
    let cost = oxetcd_spec::alarm::quota_cost(command.guarded());
    if cost == 0 {
        return Ok(());
    }
    let size = ctx.node.status.db_size.load(Ordering::Relaxed);
    if size.saturating_add(cost) < ctx.config.quota_bytes() {
        return Ok(());
    }
    let raise = Command::Alarm(AlarmRequest {
        action: AlarmAction::Activate,
        member_id: ctx.node.member_id,
        alarm: AlarmType::NoSpace,
    });
    let already = ctx.read(|state| state.alarms().is_raised(AlarmType::NoSpace))?;
    if !already && ctx.propose_unchecked(raise).await.is_ok() {
        tracing::warn!(
            "etcdserver: alarm NOSPACE raised by peer {:x} (database size {size} bytes, quota {} bytes)",
            ctx.node.member_id,
            ctx.config.quota_bytes()
        );
    }
    Err(errors::alarm(AlarmError::NoSpace))
}

/// Starts what runs beside the API: the database size sampler and the auto-compactor
/// (`crate::compactor`),
/// and logs the quota in force as etcd does.
pub fn start_background(ctx: &Context, data_dir: &crate::storage::DataDir) {
    let quota = ctx.config.quota_bytes();
    if ctx.config.quota_backend_bytes == 0 {
        tracing::info!(
            "etcdserver: enabled backend quota with default value (quota size {quota} bytes)"
        );
    } else {
        if quota > crate::config::MAX_QUOTA_BYTES {
            tracing::warn!(
                "etcdserver: backend quota {quota} exceeds maximum recommended quota {}",
                crate::config::MAX_QUOTA_BYTES
            );
        }
        tracing::info!("etcdserver: enabled backend quota (quota size {quota} bytes)");
    }
    let period = Duration::from_millis(ctx.config.heartbeat_interval_ms.max(10));
    spawn_size_sampler(ctx, data_dir.clone(), period);
    // The retention was checked when the configuration was loaded.
    if let Ok(Some(plan)) = crate::compactor::parse(
        ctx.config.auto_compaction_mode,
        &ctx.config.auto_compaction_retention,
    ) {
        tracing::info!("etcdserver: auto-compaction enabled: {plan:?}");
        crate::compactor::spawn(ctx.clone(), plan);
    }
}

/// Samples the database's disk space into `Status::db_size` now and then every
/// `period`, for the quota check, Status and metrics.
fn spawn_size_sampler(ctx: &Context, data_dir: crate::storage::DataDir, period: Duration) {
    let status = ctx.node.status.clone();
    status
        .db_size
        .store(data_dir.backend_size_bytes(), Ordering::Relaxed);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        loop {
            ticker.tick().await;
            let data_dir = data_dir.clone();
            if let Ok(size) =
                tokio::task::spawn_blocking(move || data_dir.backend_size_bytes()).await
            {
                status.db_size.store(size, Ordering::Relaxed);
            }
        }
    });
}

fn alarm_to_pb(member: &AlarmMember) -> pb::AlarmMember {
    pb::AlarmMember {
        member_id: member.member_id,
        alarm: i32::from(member.alarm.code()),
    }
}

fn alarm_name(alarm: AlarmType) -> &'static str {
    match alarm {
        AlarmType::None => "NONE",
        AlarmType::NoSpace => "NOSPACE",
        AlarmType::Corrupt => "CORRUPT",
    }
}

/// etcd's text form of an alarm in Status errors (the protobuf text form).
fn alarm_text(member: &AlarmMember) -> String {
    format!(
        "memberID:{} alarm:{} ",
        member.member_id,
        alarm_name(member.alarm)
    )
}

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
        request: Request<pb::AlarmRequest>,
    ) -> Result<tonic::Response<pb::AlarmResponse>, Status> {
        let request = request.into_inner();
        let alarm = u8::try_from(request.alarm)
            .ok()
            .and_then(AlarmType::from_code)
            .unwrap_or(AlarmType::None);
        let action = match request.action {
            1 => AlarmAction::Activate,
            2 => AlarmAction::Deactivate,
            _ => AlarmAction::Get,
        };
        let alarms = if action == AlarmAction::Get {
            self.ctx.read(|state| state.alarms().get(alarm))?
        } else {
            let command = Command::Alarm(AlarmRequest {
                action,
                member_id: request.member_id,
                alarm,
            });
            match self
                .ctx
                .propose_unchecked(command)
                .await?
                .result
                .map_err(errors::apply)?
            {
                Response::Alarm(alarms) => alarms,
                _ => return Err(Status::internal("oxetcd: unexpected response to an alarm")),
            }
        };
        if action == AlarmAction::Deactivate {
            for member in &alarms {
                tracing::warn!(
                    "etcdserver: alarm {} cleared by peer {:x}",
                    alarm_name(member.alarm),
                    member.member_id
                );
            }
        }
        // etcd 3.4.23 answers Alarm (GET, ACTIVATE, DEACTIVATE) with no header at all.
        Ok(tonic::Response::new(pb::AlarmResponse {
            header: None,
            alarms: alarms.iter().map(alarm_to_pb).collect(),
        }))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<tonic::Response<pb::StatusResponse>, Status> {
        let status = &self.ctx.node.status;
        let db_size = i64::try_from(self.data_dir.backend_size_bytes()).unwrap_or(i64::MAX);
        let mut errors: Vec<String> = Vec::new();
        if status.leader.load(Ordering::Relaxed) == 0 {
            errors.push("etcdserver: no leader".to_owned());
        }
        errors.extend(
            self.ctx
                .read(|state| state.alarms().get(AlarmType::None))?
                .iter()
                .map(alarm_text),
        );
        Ok(tonic::Response::new(pb::StatusResponse {
            header: self.ctx.header().at(self.revision()?),
            version: ETCD_VERSION.to_owned(),
            db_size,
            leader: status.leader.load(Ordering::Relaxed),
            raft_index: status.raft_index.load(Ordering::Relaxed),
            raft_term: status.term.load(Ordering::Relaxed),
            raft_applied_index: status.applied_index.load(Ordering::Relaxed),
            errors,
            db_size_in_use: i64::try_from(self.data_dir.backend_size_in_use_bytes())
                .unwrap_or(i64::MAX),
            is_learner: false,
        }))
    }

    async fn defragment(
        &self,
        request: Request<pb::DefragmentRequest>,
    ) -> Result<tonic::Response<pb::DefragmentResponse>, Status> {
        // etcd: Defragment, Hash, HashKV and Snapshot are for the root role when auth is on.
        self.ctx.check_admin(&request)?;
        let data_dir = self.data_dir.clone();
        tokio::task::spawn_blocking(move || data_dir.defragment())
            .await
            .map_err(|error| Status::internal(format!("defragment: {error}")))?
            .map_err(|error| Status::internal(format!("defragment: {error}")))?;
        let size = self.data_dir.backend_size_bytes();
        self.ctx.node.status.db_size.store(size, Ordering::Relaxed);
        tracing::info!(
            "etcdserver: finished defragmenting the storage backend (size {size} bytes)"
        );
        // etcd 3.4.23 answers Defragment with no header.
        Ok(tonic::Response::new(pb::DefragmentResponse {
            header: None,
        }))
    }

    async fn hash(
        &self,
        request: Request<pb::HashRequest>,
    ) -> Result<tonic::Response<pb::HashResponse>, Status> {
        self.ctx.check_admin(&request)?;
        let state = self.ctx.read(crate::snapshot::etcd::EtcdState::capture)?;
        let revision = state.revision();
        let hash = tokio::task::spawn_blocking(move || state.hash())
            .await
            .map_err(|error| Status::internal(format!("hash: {error}")))?
            .map_err(|error| Status::internal(format!("hash: {error}")))?;
        Ok(tonic::Response::new(pb::HashResponse {
            header: self.ctx.header().at(revision),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<pb::HashKvRequest>,
    ) -> Result<tonic::Response<pb::HashKvResponse>, Status> {
        self.ctx.check_admin(&request)?;
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
        request: Request<pb::SnapshotRequest>,
    ) -> Result<tonic::Response<Self::SnapshotStream>, Status> {
        self.ctx.check_admin(&request)?;
        // One applied index: captured under the state lock.
        let state = self.ctx.read(crate::snapshot::etcd::EtcdState::capture)?;
        let spool = self.data_dir.spool_dir();
        // Written to a temporary file first: the stream announces the remaining size.
        let file = tokio::task::spawn_blocking(move || -> std::io::Result<(std::fs::File, u64)> {
            std::fs::create_dir_all(&spool)?;
            let mut file = tempfile::tempfile_in(&spool)?;
            let size = state.write_snapshot(&mut file)?;
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0))?;
            Ok((file, size))
        })
        .await
        .map_err(|error| Status::internal(format!("snapshot: {error}")))?
        .map_err(|error| Status::internal(format!("snapshot: {error}")))?;
        let (mut file, total) = file;
        tracing::info!("etcdserver: sending database snapshot to client ({total} bytes)");
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            // The body in chunks, then the SHA-256 trailer alone with 0 remaining, as
            // etcd sends them.
            let body = total.saturating_sub(crate::snapshot::HASH_LEN as u64);
            let mut sent = 0u64;
            let mut buffer = vec![0u8; SNAPSHOT_CHUNK];
            while sent < total {
                let limit = if sent < body { body } else { total };
                let want = usize::try_from((limit - sent).min(SNAPSHOT_CHUNK as u64))
                    .unwrap_or(SNAPSHOT_CHUNK);
                if let Err(error) = file.read_exact(&mut buffer[..want]) {
                    let _ =
                        sender.blocking_send(Err(Status::internal(format!("snapshot: {error}"))));
                    return;
                }
                sent += want as u64;
                let message = pb::SnapshotResponse {
                    header: None,
                    remaining_bytes: body.saturating_sub(sent),
                    blob: buffer[..want].to_vec(),
                    version: String::new(),
                };
                if sender.blocking_send(Ok(message)).is_err() {
                    return;
                }
            }
            tracing::info!("etcdserver: sent database snapshot to client ({total} bytes)");
        });
        Ok(tonic::Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }

    async fn move_leader(
        &self,
        request: Request<pb::MoveLeaderRequest>,
    ) -> Result<tonic::Response<pb::MoveLeaderResponse>, Status> {
        // etcd 3.4.23 answers MoveLeader without a header (see `cluster::move_leader`).
        super::cluster::move_leader(&self.ctx, request.into_inner().target_id).await?;
        Ok(tonic::Response::new(pb::MoveLeaderResponse::default()))
    }

    async fn downgrade(
        &self,
        _request: Request<pb::DowngradeRequest>,
    ) -> Result<tonic::Response<pb::DowngradeResponse>, Status> {
        Err(errors::not_implemented("Maintenance.Downgrade"))
    }
}
