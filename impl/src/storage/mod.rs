//! Durable state on fjall, under `--data-dir`: the Raft log, hard state and snapshot
//! ([`raft_log::FjallRaftStorage`], implementing `spec::raft::Storage`) and the applied
//! state ([`backend::FjallBackend`], implementing `spec::mvcc::Backend`), in one fjall
//! database so that they share one journal.
//!
//! Durability: every write goes to fjall's journal without an fsync; the node loop calls
//! [`DataDir::sync`] (`PersistMode::SyncData`: one `fdatasync`) once per Raft `Ready`
//! before anything that depends on it is acknowledged (group commit). Because the journal is shared and
//! ordered, that one fsync also makes every earlier applied batch durable; applied
//! batches written after the last fsync may be lost by a crash, which is safe because
//! each batch carries its applied index and the log still holds the entries (restart
//! replays them). A torn final journal record is the one thing fjall drops on recovery:
//! it was never synced, so never acknowledged. Damage anywhere else is refused before
//! fjall opens the database (`journal_check`): fjall would truncate the journal there
//! and silently drop the synced writes after it. A `member/` dir without its database
//! (or a `--wal-dir` database gone missing) is refused too, never started afresh.
//!
//! `--wal-dir`: the Raft log, hard state, snapshot and identity records then live in a
//! second fjall database under that directory; [`DataDir::sync`] syncs both (two
//! fsyncs per Ready instead of one).
//!
//! Identity: the data dir records the member name and cluster token it was created
//! with; opening it with another name or token is refused (etcd 3.4 would silently use
//! the stored identity; refusing protects an operator who pointed at the wrong dir).
//! What this is not: MVCC, lease or Raft logic (all in `oxetcd_spec`).

pub mod backend;
mod journal_check;
pub mod raft_log;

#[cfg(test)]
mod backend_suite;

use std::path::{Path, PathBuf};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

/// The directory inside the data dir that holds the fjall database.
pub const DB_DIR: &str = "member/oxetcd-fjall";

/// fjall's block cache. The applied state lives in memory (`spec::mvcc::Store`), so
/// the cache serves mostly restarts and log reads: kept small to keep memory low.
const CACHE_BYTES: u64 = 4 * 1024 * 1024;

/// Memtable size per keyspace before fjall flushes it to disk. fjall's default (64 MiB)
/// would keep the whole recent Raft log and key history in memory a second time, and
/// make a restart replay that much journal. Measured with `oxetcd-bench` on 2 cores
/// (100k keys of 256 B loaded, then 64 clients putting): 4 MiB (and an 8 MiB cache)
/// kept 120.8 MB resident, 2 MiB (and 4 MiB) 111.0 MB, 1 MiB 108.6 MB; smaller
/// memtables flush and compact more often, which cost 4 KiB-value puts about 15 % of
/// their throughput at 2 MiB and 20 % at 1 MiB (256 B puts were not slower).
const MEMTABLE_BYTES: u64 = 2 * 1024 * 1024;

/// Options of every keyspace this data dir opens.
pub(crate) fn keyspace_options() -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES)
}

/// Why the data dir could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// fjall reported an error (I/O or corruption found on recovery).
    #[error("data dir {path}: {source}")]
    Fjall {
        /// The database path.
        path: PathBuf,
        /// fjall's error.
        source: fjall::Error,
    },
    /// A stored record does not decode: the data dir is corrupt. Never truncated or
    /// repaired silently.
    #[error("data dir {path} is corrupt: {what}")]
    Corrupt {
        /// The database path.
        path: PathBuf,
        /// What failed to decode.
        what: String,
    },
    /// The data dir belongs to another member or cluster.
    #[error(
        "data dir {path} was created for member {stored_name:?} of cluster token {stored_token:?}, \
         but this member is {name:?} with token {token:?}; refusing to start (use the right \
         --data-dir, or the matching --name and --initial-cluster-token)"
    )]
    IdentityMismatch {
        /// The data dir.
        path: PathBuf,
        /// Name stored in the data dir.
        stored_name: String,
        /// Token stored in the data dir.
        stored_token: String,
        /// Name given now.
        name: String,
        /// Token given now.
        token: String,
    },
    /// The data dir could not be created.
    #[error("cannot create data dir {path}: {source}")]
    Create {
        /// The data dir.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Who a data dir belongs to; written once when the data dir is created.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    /// `--name` of the member.
    pub name: String,
    /// `--initial-cluster-token`.
    pub cluster_token: String,
    /// The member's Raft id.
    pub member_id: u64,
    /// The cluster's id.
    pub cluster_id: u64,
}

const IDENTITY_NAME: &[u8] = b"identity/name";
const IDENTITY_TOKEN: &[u8] = b"identity/cluster_token";
const IDENTITY_MEMBER_ID: &[u8] = b"identity/member_id";
const IDENTITY_CLUSTER_ID: &[u8] = b"identity/cluster_id";

/// An open data dir: the fjall database and its keyspaces.
#[derive(Clone)]
pub struct DataDir {
    path: PathBuf,
    db: Database,
    /// The database of the Raft log: `db` itself, or a second database under
    /// `--wal-dir`.
    wal_db: Database,
    /// Whether `wal_db` is a second database.
    separate_wal: bool,
    /// Raft log, hard state, snapshot and identity records.
    raft: Keyspace,
    /// Raft log entries by index (8-byte big-endian).
    log: Keyspace,
}

impl std::fmt::Debug for DataDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataDir")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl DataDir {
    /// Opens (creating if absent) the database under `data_dir`.
    ///
    /// # Errors
    /// [`StorageError`] if the directory cannot be created or fjall cannot recover it.
    pub fn open(data_dir: &Path) -> Result<DataDir, StorageError> {
        DataDir::open_with_wal(data_dir, None)
    }

    /// As [`DataDir::open`], with the Raft log, hard state, snapshot and identity
    /// records in a second fjall database under `wal_dir` (`--wal-dir`) when given. Then
    /// [`DataDir::sync`] makes two fsyncs.
    ///
    /// # Errors
    /// As [`DataDir::open`].
    pub fn open_with_wal(data_dir: &Path, wal_dir: Option<&Path>) -> Result<DataDir, StorageError> {
        let path = data_dir.join(DB_DIR);
        let member_dir = data_dir.join("member");
        if member_dir.exists() && !path.exists() {
            return Err(StorageError::Corrupt {
                path: data_dir.to_path_buf(),
                what: format!(
                    "{} exists but its database {} is missing{}; refusing to start \
                     a new, empty member over it",
                    member_dir.display(),
                    path.display(),
                    if member_dir.join("wal").exists() {
                        " (member/wal: this is an etcd data dir, which oxetcd cannot read; \
                         use `etcdctl snapshot save` from etcd and start a new data dir)"
                    } else {
                        ""
                    }
                ),
            });
        }
        journal_check::check(&path)?;
        let existed = path.join("version").exists();
        std::fs::create_dir_all(&path).map_err(|source| StorageError::Create {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let fjall_error = |source| StorageError::Fjall {
            path: path.clone(),
            source,
        };
        let db = Database::builder(&path)
            .manual_journal_persist(true)
            .cache_size(CACHE_BYTES)
            .open()
            .map_err(fjall_error)?;
        let wal_db = match wal_dir {
            None => db.clone(),
            Some(wal_dir) => {
                let wal_path = wal_dir.join("oxetcd-fjall-wal");
                journal_check::check(&wal_path)?;
                if existed && !wal_path.join("version").exists() {
                    return Err(StorageError::Corrupt {
                        path: path.clone(),
                        what: format!(
                            "its Raft log database {} (--wal-dir) is missing; refusing to \
                             start (give the --wal-dir this data dir was created with)",
                            wal_path.display()
                        ),
                    });
                }
                std::fs::create_dir_all(&wal_path).map_err(|source| StorageError::Create {
                    path: wal_dir.to_path_buf(),
                    source,
                })?;
                Database::builder(&wal_path)
                    .manual_journal_persist(true)
                    .cache_size(CACHE_BYTES)
                    .open()
                    .map_err(|source| StorageError::Fjall {
                        path: wal_path.clone(),
                        source,
                    })?
            }
        };
        let names = db.list_keyspace_names();
        if wal_dir.is_none()
            && existed
            && names.iter().any(|name| name.starts_with("bucket_"))
            && !names.iter().any(|name| &**name == "raft")
        {
            return Err(StorageError::Corrupt {
                path: path.clone(),
                what: "it holds no Raft log: it was created with --wal-dir; give that \
                       --wal-dir again"
                    .to_owned(),
            });
        }
        let raft = wal_db
            .keyspace("raft", keyspace_options)
            .map_err(fjall_error)?;
        let log = wal_db
            .keyspace("raft_log", keyspace_options)
            .map_err(fjall_error)?;
        Ok(DataDir {
            path,
            db,
            wal_db,
            separate_wal: wal_dir.is_some(),
            raft,
            log,
        })
    }

    /// The database path (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes everything written so far durable: one `fdatasync` of the shared journal
    /// (the journal is only appended to, and `fdatasync` also persists the file size
    /// and block allocation needed to read the appended data back).
    ///
    /// # Errors
    /// fjall's error; the caller must stop (durability unknown).
    pub fn sync(&self) -> Result<(), StorageError> {
        if self.separate_wal {
            self.wal_db
                .persist(PersistMode::SyncData)
                .map_err(|source| self.fjall(source))?;
        }
        self.db
            .persist(PersistMode::SyncData)
            .map_err(|source| self.fjall(source))
    }

    /// Bytes the database occupies on disk (for Status and metrics): blocks actually
    /// allocated, so fjall's preallocated, still sparse journal does not count in full.
    pub fn disk_space_bytes(&self) -> u64 {
        allocated_bytes(&self.path)
    }

    /// The backend's size on disk, the figure etcd reports as the size of its bbolt file
    /// (Status `dbSize`, `etcd_mvcc_db_total_size_in_bytes`, the quota check): the
    /// blocks allocated to the files of every `bucket_*` keyspace (tables and version
    /// records), plus the bytes of their active memtables, which so far are on disk only
    /// in the journal the backend shares with the Raft log. The Raft log itself is not
    /// counted, as etcd does not count its WAL. Compaction and [`DataDir::defragment`]
    /// shrink it.
    pub fn backend_size_bytes(&self) -> u64 {
        use fjall::AbstractTree;
        self.backend_keyspaces()
            .iter()
            .map(|keyspace| {
                allocated_bytes(keyspace.path()) + keyspace.tree.active_memtable().size()
            })
            .sum()
    }

    /// The part of the backend that holds data (Status `dbSizeInUse`,
    /// `etcd_mvcc_db_total_size_in_use_in_bytes`): the bytes of the `bucket_*`
    /// keyspaces' tables and active memtables, without the file system's allocation
    /// slack and the version records [`DataDir::backend_size_bytes`] counts.
    pub fn backend_size_in_use_bytes(&self) -> u64 {
        use fjall::AbstractTree;
        self.backend_keyspaces()
            .iter()
            .map(|keyspace| keyspace.tree.disk_space() + keyspace.tree.active_memtable().size())
            .sum()
    }

    /// The keyspaces of the applied state (`bucket_*`).
    fn backend_keyspaces(&self) -> Vec<Keyspace> {
        self.db
            .list_keyspace_names()
            .iter()
            .filter(|name| name.starts_with("bucket_"))
            .filter_map(|name| self.db.keyspace(name, KeyspaceCreateOptions::default).ok())
            .collect()
    }

    /// Where the snapshot files that compact the Raft log are kept (beside the
    /// database, not counted in its size).
    pub fn snap_dir(&self) -> PathBuf {
        self.path.with_file_name("oxetcd-snap")
    }

    /// A directory beside the database for temporary files (snapshots being sent); not
    /// counted in [`DataDir::disk_space_bytes`].
    pub fn spool_dir(&self) -> PathBuf {
        self.path.with_file_name("oxetcd-spool")
    }

    /// Defragments: flushes every keyspace's memtable and compacts all its tables into
    /// one run, dropping overwritten and deleted data, then syncs. Blocks until done.
    ///
    /// # Errors
    /// fjall's error.
    pub fn defragment(&self) -> Result<(), StorageError> {
        let databases: &[&Database] = if self.separate_wal {
            &[&self.db, &self.wal_db]
        } else {
            &[&self.db]
        };
        for db in databases {
            for name in db.list_keyspace_names() {
                let keyspace = db
                    .keyspace(&name, KeyspaceCreateOptions::default)
                    .map_err(|source| self.fjall(source))?;
                keyspace
                    .rotate_memtable_and_wait()
                    .map_err(|source| self.fjall(source))?;
                keyspace
                    .major_compact()
                    .map_err(|source| self.fjall(source))?;
            }
        }
        self.sync()
    }

    fn fjall(&self, source: fjall::Error) -> StorageError {
        StorageError::Fjall {
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, what: impl Into<String>) -> StorageError {
        StorageError::Corrupt {
            path: self.path.clone(),
            what: what.into(),
        }
    }

    fn get_text(&self, key: &[u8]) -> Result<Option<String>, StorageError> {
        match self.raft.get(key).map_err(|source| self.fjall(source))? {
            None => Ok(None),
            Some(value) => String::from_utf8(value.to_vec()).map(Some).map_err(|_| {
                self.corrupt(format!("{} is not UTF-8", String::from_utf8_lossy(key)))
            }),
        }
    }

    fn get_u64(&self, key: &[u8]) -> Result<Option<u64>, StorageError> {
        match self.raft.get(key).map_err(|source| self.fjall(source))? {
            None => Ok(None),
            Some(value) => <[u8; 8]>::try_from(&value[..])
                .map(|bytes| Some(u64::from_be_bytes(bytes)))
                .map_err(|_| {
                    self.corrupt(format!("{} is not 8 bytes", String::from_utf8_lossy(key)))
                }),
        }
    }

    /// The stored identity, if this data dir was initialised.
    ///
    /// # Errors
    /// Read failures or malformed records.
    pub fn identity(&self) -> Result<Option<Identity>, StorageError> {
        let name = self.get_text(IDENTITY_NAME)?;
        let token = self.get_text(IDENTITY_TOKEN)?;
        let member_id = self.get_u64(IDENTITY_MEMBER_ID)?;
        let cluster_id = self.get_u64(IDENTITY_CLUSTER_ID)?;
        match (name, token, member_id, cluster_id) {
            (None, None, None, None) => Ok(None),
            (Some(name), Some(cluster_token), Some(member_id), Some(cluster_id)) => {
                Ok(Some(Identity {
                    name,
                    cluster_token,
                    member_id,
                    cluster_id,
                }))
            }
            _ => Err(self.corrupt("identity records are incomplete")),
        }
    }

    /// Checks the stored identity against `wanted`, or records `wanted` if the data dir
    /// is new (synced before returning). Returns the identity in force.
    ///
    /// # Errors
    /// [`StorageError::IdentityMismatch`] for another member's or cluster's data dir.
    pub fn claim(&self, wanted: &Identity) -> Result<Identity, StorageError> {
        if let Some(stored) = self.identity()? {
            if stored.name != wanted.name || stored.cluster_token != wanted.cluster_token {
                return Err(StorageError::IdentityMismatch {
                    path: self.path.clone(),
                    stored_name: stored.name,
                    stored_token: stored.cluster_token,
                    name: wanted.name.clone(),
                    token: wanted.cluster_token.clone(),
                });
            }
            return Ok(stored);
        }
        let mut batch = self.wal_db.batch();
        batch.insert(&self.raft, IDENTITY_NAME, wanted.name.as_bytes());
        batch.insert(&self.raft, IDENTITY_TOKEN, wanted.cluster_token.as_bytes());
        batch.insert(
            &self.raft,
            IDENTITY_MEMBER_ID,
            wanted.member_id.to_be_bytes(),
        );
        batch.insert(
            &self.raft,
            IDENTITY_CLUSTER_ID,
            wanted.cluster_id.to_be_bytes(),
        );
        batch.commit().map_err(|source| self.fjall(source))?;
        self.sync()?;
        Ok(wanted.clone())
    }
}

/// Bytes allocated on disk for everything under `path` (0 for what cannot be read).
fn allocated_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !metadata.is_dir() {
        return metadata.blocks().saturating_mul(512);
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| allocated_bytes(&entry.path()))
        .sum()
}

/// A stable 64-bit id from text (FNV-1a): member and cluster ids derived from the peer
/// URLs and cluster token, so every member computes the same ids for the same
/// `--initial-cluster` (as etcd derives them, though with a different hash).
pub fn stable_id(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    // 0 is never a valid member id.
    hash.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(name: &str, token: &str) -> Identity {
        Identity {
            name: name.into(),
            cluster_token: token.into(),
            member_id: 7,
            cluster_id: 9,
        }
    }

    #[test]
    fn new_data_dir_records_identity_and_reopens_with_it() {
        let dir = tempfile::tempdir().unwrap();
        {
            let data = DataDir::open(dir.path()).unwrap();
            assert_eq!(data.identity().unwrap(), None);
            assert_eq!(data.claim(&identity("a", "t")).unwrap(), identity("a", "t"));
        }
        let data = DataDir::open(dir.path()).unwrap();
        assert_eq!(data.identity().unwrap(), Some(identity("a", "t")));
        assert_eq!(data.claim(&identity("a", "t")).unwrap().member_id, 7);
    }

    #[test]
    fn data_dir_of_another_member_or_cluster_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let data = DataDir::open(dir.path()).unwrap();
            data.claim(&identity("a", "t")).unwrap();
        }
        let data = DataDir::open(dir.path()).unwrap();
        let error = data.claim(&identity("b", "t")).unwrap_err();
        assert!(matches!(error, StorageError::IdentityMismatch { .. }));
        assert!(
            error.to_string().contains("created for member \"a\""),
            "{error}"
        );
        assert!(matches!(
            data.claim(&identity("a", "u")),
            Err(StorageError::IdentityMismatch { .. })
        ));
    }

    #[test]
    fn disk_space_counts_allocated_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        data.claim(&identity("a", "t")).unwrap();
        let allocated = data.disk_space_bytes();
        assert!(allocated > 0, "a synced database takes some space");
        let apparent = data.db.disk_space().unwrap();
        assert!(
            allocated <= apparent + 1024 * 1024,
            "{allocated} vs apparent {apparent}"
        );
    }

    /// Pseudo-random bytes (xorshift), which the tables cannot compress away.
    fn incompressible(len: usize) -> Vec<u8> {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect()
    }

    #[test]
    fn backend_size_is_what_its_keyspace_files_take_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let backend = backend::FjallBackend::open(data.clone()).unwrap();
        let on_disk = |data: &DataDir| -> u64 {
            data.backend_keyspaces()
                .iter()
                .map(|keyspace| allocated_bytes(keyspace.path()))
                .sum()
        };
        // A fresh backend already has files (as a fresh bbolt file has 20 KiB).
        let fresh = data.backend_size_bytes();
        assert!(on_disk(&data) > 0);
        assert!(fresh >= on_disk(&data), "{fresh}");
        assert!(fresh > data.backend_size_in_use_bytes());
        backend
            .insert_all(&[(
                oxetcd_spec::mvcc::Bucket::Key,
                b"k".to_vec(),
                incompressible(64 * 1024),
            )])
            .unwrap();
        data.defragment().unwrap();
        let written = data.backend_size_bytes();
        assert!(
            written >= fresh + 64 * 1024,
            "{written} after 64 KiB, {fresh} before"
        );
        assert!(written >= on_disk(&data));
        assert!(data.backend_size_in_use_bytes() <= written);
    }

    #[test]
    fn stable_ids_differ_by_input_and_are_never_zero() {
        assert_eq!(stable_id(&["a", "b"]), stable_id(&["a", "b"]));
        assert_ne!(stable_id(&["a", "b"]), stable_id(&["ab"]));
        assert_ne!(stable_id(&[]), 0);
    }
}
