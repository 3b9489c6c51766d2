//! `oxetcd snapshot restore FILE`: a new data dir from a snapshot file, as `etcdctl
//! snapshot restore` makes one for etcd.
//!
//! As etcd: the trailer is checked (unless `--skip-hash-check`), the target data dir
//! must not exist, the membership of the old cluster is dropped and the new member
//! (`--name`, `--initial-cluster`, `--initial-cluster-token`,
//! `--initial-advertise-peer-urls`, etcd's defaults) starts a fresh Raft log whose
//! snapshot covers the restored state, at index 1, term 1. The keys, their revisions,
//! leases, alarms and auth are those of the file.
//!
//! The file is either etcd's format (a bbolt database, saved from etcd or from oxetcd:
//! see [`super::etcd`] for what is kept) or oxetcd's own log-compaction format (which
//! also carries the v2 store). The auth and v2 command logs are rewritten under keys
//! that sort before every index the new member will apply (see
//! [`super::etcd::restored_log_key`]), so they replay first and in their order.

use std::path::PathBuf;

use oxetcd_spec::apply::{CONSISTENT_INDEX_KEY, Command};
use oxetcd_spec::mvcc::Bucket;
use oxetcd_spec::raft::{
    ConfState, HardState, LogIndex, Snapshot, SnapshotMetadata, Storage, Term,
};

use super::{Record, SnapshotError};
use crate::config::url::Url;
use crate::storage::backend::FjallBackend;
use crate::storage::raft_log::FjallRaftStorage;
use crate::storage::{DataDir, Identity};

/// `oxetcd snapshot restore` arguments (etcd's names and defaults).
#[derive(Debug, clap::Parser)]
#[command(
    name = "oxetcd snapshot restore",
    about = "Restores a data dir from a snapshot file"
)]
pub struct RestoreArgs {
    /// The snapshot file (saved with `etcdctl snapshot save` from oxetcd or etcd).
    pub file: PathBuf,
    /// Path to the data directory (default `<name>.etcd`).
    #[arg(long = "data-dir")]
    pub data_dir: Option<PathBuf>,
    /// Human-readable name for this member.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Initial cluster configuration for restore bootstrap.
    #[arg(
        long = "initial-cluster",
        default_value = "default=http://localhost:2380"
    )]
    pub initial_cluster: String,
    /// Initial cluster token for the etcd cluster during restore bootstrap.
    #[arg(long = "initial-cluster-token", default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// List of this member's peer URLs to advertise to the rest of the cluster.
    #[arg(
        long = "initial-advertise-peer-urls",
        default_value = "http://localhost:2380"
    )]
    pub initial_advertise_peer_urls: String,
    /// Path to the dedicated wal directory (as given to the server's `--wal-dir`).
    #[arg(long = "wal-dir")]
    pub wal_dir: Option<PathBuf>,
    /// Ignore the snapshot's integrity hash.
    #[arg(long = "skip-hash-check")]
    pub skip_hash_check: bool,
}

/// Why a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The file is unusable.
    #[error("snapshot {path}: {source}")]
    Snapshot {
        /// The file.
        path: PathBuf,
        /// Why.
        source: SnapshotError,
    },
    /// The target exists.
    #[error("data-dir {0:?} exists")]
    DataDirExists(PathBuf),
    /// Bad flags.
    #[error("{0}")]
    Flags(String),
    /// Storage failed.
    #[error("{0}")]
    Storage(String),
}

fn storage(error: impl std::fmt::Display) -> RestoreError {
    RestoreError::Storage(error.to_string())
}

/// Records written per fjall batch.
const BATCH_RECORDS: usize = 4096;

/// The index and term of the restored state's Raft snapshot.
const RESTORED_INDEX: LogIndex = LogIndex(1);
const RESTORED_TERM: Term = Term(1);

/// Runs the restore; returns the data dir made.
///
/// # Errors
/// [`RestoreError`] with a message for the operator.
pub fn restore(args: &RestoreArgs) -> Result<PathBuf, RestoreError> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", args.name)));
    if data_dir.exists() {
        return Err(RestoreError::DataDirExists(data_dir));
    }
    let snapshot_error = |source| RestoreError::Snapshot {
        path: args.file.clone(),
        source,
    };
    let file = std::fs::read(&args.file).map_err(|e| snapshot_error(SnapshotError::Io(e)))?;
    let body = super::verify(&file, args.skip_hash_check).map_err(snapshot_error)?;
    // Parse everything before creating anything, so a bad file leaves no data dir.
    let records = if super::bbolt::is_bbolt(body) {
        let db =
            super::bbolt::Db::open(body).map_err(|e| snapshot_error(SnapshotError::Bbolt(e.0)))?;
        super::etcd::records_from_bbolt(&db).map_err(snapshot_error)?
    } else {
        let mut records: Vec<Record> = Vec::new();
        super::read_records(body, |record| {
            if let Some(record) = keep(record) {
                records.push(record);
            }
            Ok(())
        })
        .map_err(snapshot_error)?;
        renumber_logs(records)
    };

    let peer_urls = Url::parse_list(&args.initial_advertise_peer_urls)
        .map_err(|e| RestoreError::Flags(format!("--initial-advertise-peer-urls: {e}")))?;
    let mut cluster: Vec<(String, Vec<Url>)> = Vec::new();
    for entry in args.initial_cluster.split(',').filter(|e| !e.is_empty()) {
        let (name, url) = entry.split_once('=').ok_or_else(|| {
            RestoreError::Flags(format!("--initial-cluster: bad entry {entry:?}"))
        })?;
        let url =
            Url::parse(url).map_err(|e| RestoreError::Flags(format!("--initial-cluster: {e}")))?;
        match cluster.iter_mut().find(|(n, _)| n == name) {
            Some((_, urls)) => urls.push(url),
            None => cluster.push((name.to_owned(), vec![url])),
        }
    }
    if !cluster.iter().any(|(n, _)| *n == args.name) {
        return Err(RestoreError::Flags(format!(
            "couldn't find local name {:?} in the initial cluster configuration",
            args.name
        )));
    }
    let token = &args.initial_cluster_token;
    let voters: Vec<u64> = cluster
        .iter()
        .map(|(_, urls)| crate::server::member_id(urls, token))
        .collect();
    let identity = Identity {
        name: args.name.clone(),
        cluster_token: token.clone(),
        member_id: crate::server::member_id(&peer_urls, token),
        cluster_id: crate::server::cluster_id(cluster.iter().map(|(_, u)| u.as_slice()), token),
    };

    let data = DataDir::open_with_wal(&data_dir, args.wal_dir.as_deref()).map_err(storage)?;
    data.claim(&identity).map_err(storage)?;
    let backend = FjallBackend::open(data.clone()).map_err(storage)?;
    let mut batch = Vec::with_capacity(BATCH_RECORDS);
    for record in records {
        batch.push(record);
        if batch.len() >= BATCH_RECORDS {
            backend.insert_all(&batch).map_err(storage)?;
            batch.clear();
        }
    }
    batch.push((
        Bucket::Meta,
        CONSISTENT_INDEX_KEY.to_vec(),
        RESTORED_INDEX.0.to_be_bytes().to_vec(),
    ));
    backend.insert_all(&batch).map_err(storage)?;
    // The restored state is also the member's first log-compaction snapshot file, which
    // the Raft snapshot names: a member that joins later is sent it.
    let file_name =
        super::save_for_log_compaction(&backend.view(), &data.snap_dir(), RESTORED_INDEX.0)
            .map_err(storage)?;

    let conf = ConfState::with_voters(voters);
    let mut log = FjallRaftStorage::open(data.clone(), conf.clone()).map_err(storage)?;
    log.apply_snapshot(Snapshot {
        metadata: SnapshotMetadata {
            index: RESTORED_INDEX,
            term: RESTORED_TERM,
            conf_state: conf,
        },
        data: file_name.into_bytes(),
    })
    .map_err(storage)?;
    log.set_hard_state(HardState {
        term: RESTORED_TERM,
        vote: None,
        commit: RESTORED_INDEX,
    })
    .map_err(storage)?;
    data.sync().map_err(storage)?;
    Ok(data_dir)
}

/// What of the old cluster's state a restored member keeps: not its membership (the
/// members bucket, and membership commands in the v2 command log).
fn keep(record: Record) -> Option<Record> {
    match record.0 {
        Bucket::Members => None,
        Bucket::V2 => {
            let is_membership = record
                .2
                .get(8..)
                .and_then(|bytes| oxetcd_spec::apply::codec::decode(bytes).ok())
                .is_some_and(|p| matches!(p.command, Command::Membership(_)));
            (!is_membership).then_some(record)
        }
        _ => Some(record),
    }
}

/// Rekeys the auth and v2 command logs (by old index) to
/// [`super::etcd::restored_log_key`] order numbers, keeping their order.
fn renumber_logs(records: Vec<Record>) -> Vec<Record> {
    let mut seq: std::collections::BTreeMap<Bucket, u32> = std::collections::BTreeMap::new();
    records
        .into_iter()
        .map(|(bucket, key, value)| match bucket {
            Bucket::Auth | Bucket::V2 => {
                let n = seq.entry(bucket).or_insert(0);
                let key = super::etcd::restored_log_key(*n);
                *n += 1;
                (bucket, key, value)
            }
            _ => (bucket, key, value),
        })
        .collect()
}
