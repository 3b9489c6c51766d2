//! Snapshot files: what `etcdctl snapshot save` receives from Maintenance.Snapshot,
//! what `oxetcd snapshot restore` rebuilds a data dir from, and what log compaction
//! keeps.
//!
//! Maintenance.Snapshot streams etcd's own format: a bbolt database file ([`bbolt`])
//! in etcd 3.4's schema ([`etcd`]) built from the applied state as of one applied
//! index, followed by the SHA-256 of the database (the file is whole 4096-byte pages,
//! so its size is `512k + 32`, which is how etcdctl recognises the trailer). `etcdctl
//! snapshot status` and `etcdctl snapshot restore` read these files, and `oxetcd
//! snapshot restore` reads them and etcd's.
//!
//! The snapshot files that compact the Raft log ([`save_for_log_compaction`]) keep
//! every stored bucket, the v2 store and the auth/v2 command logs included, in
//! oxetcd's own format, which `oxetcd snapshot restore` still reads:
//!
//! ```text
//! file    = body sha256(body):32
//! body    = magic:"OXETCD-SNAPSHOT\n" version:u32(=1) record* end padding
//! record  = bucket:u8(1..=6, position in Bucket::ALL plus one) key:bytes value:bytes
//! end     = 0:u8
//! padding = zero bytes up to a multiple of 512 (etcdctl checks size % 512 == 32)
//! bytes   = u32 BE length then the bytes
//! ```

pub mod bbolt;
pub mod etcd;
pub mod restore;

use std::io::{Read, Write};

use oxetcd_spec::mvcc::Bucket;
use sha2::{Digest, Sha256};

use crate::storage::backend::{BackendView, FjallBackend};

/// The first bytes of every snapshot file.
pub const MAGIC: &[u8; 16] = b"OXETCD-SNAPSHOT\n";
/// The format version written.
pub const VERSION: u32 = 1;
/// Bodies are padded to a multiple of this (etcd's files are whole bbolt pages).
pub const BLOCK: u64 = 512;
/// Length of the SHA-256 trailer.
pub const HASH_LEN: usize = 32;

/// Why a snapshot file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file has no SHA-256 trailer (size is not a multiple of 512 plus 32).
    #[error(
        "snapshot file has no sha256 trailer ({size} bytes); refusing without --skip-hash-check"
    )]
    MissingHash {
        /// The file size.
        size: u64,
    },
    /// The trailer does not match the content.
    #[error(
        "snapshot file is corrupt: expected sha256 {expected}, got {actual} (use --skip-hash-check to restore anyway)"
    )]
    HashMismatch {
        /// The trailer, hex.
        expected: String,
        /// The content's hash, hex.
        actual: String,
    },
    /// A bbolt (etcd) snapshot file that is malformed or holds malformed records.
    #[error("bad etcd snapshot database: {0}")]
    Bbolt(String),
    /// Not a snapshot file, or a damaged one.
    #[error("not an oxetcd snapshot file: {0}")]
    Malformed(String),
}

fn bucket_code(bucket: Bucket) -> u8 {
    let position = Bucket::ALL.iter().position(|b| *b == bucket).unwrap_or(0);
    u8::try_from(position + 1).unwrap_or(u8::MAX)
}

fn bucket_of(code: u8) -> Option<Bucket> {
    Bucket::ALL.get(usize::from(code).checked_sub(1)?).copied()
}

fn write_bytes(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| std::io::Error::other("a record of 4 GiB or more"))?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(bytes)
}

/// Counts and hashes what passes through.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    written: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the whole snapshot file (body and trailer) of `backend` to `out`; returns
/// its size.
///
/// # Errors
/// Read or write failures.
pub fn write(backend: &FjallBackend, out: impl Write) -> std::io::Result<u64> {
    write_view(&backend.view(), out)
}

/// Writes the whole snapshot file (body and trailer) of the applied state as `view`
/// saw it to `out`; returns its size.
///
/// # Errors
/// Read or write failures.
pub fn write_view(view: &BackendView, out: impl Write) -> std::io::Result<u64> {
    let mut out = Hashing {
        inner: std::io::BufWriter::with_capacity(64 * 1024, out),
        hash: Sha256::new(),
        written: 0,
    };
    out.write_all(MAGIC)?;
    out.write_all(&VERSION.to_be_bytes())?;
    view.visit_all(|bucket, key, value| {
        out.write_all(&[bucket_code(bucket)])?;
        write_bytes(&mut out, key)?;
        write_bytes(&mut out, value)
    })?;
    out.write_all(&[0])?;
    let padding = (BLOCK - out.written % BLOCK) % BLOCK;
    out.write_all(&vec![0; usize::try_from(padding).unwrap_or(0)])?;
    let digest = out.hash.finalize_reset();
    out.inner.write_all(&digest)?;
    out.inner.flush()?;
    Ok(out.written + HASH_LEN as u64)
}

/// Snapshot files kept in the snap dir (etcd's `--max-snapshots` default).
pub const KEEP_SNAPSHOT_FILES: usize = 5;

/// Writes the applied state `view` (taken at Raft index `index`) to `dir/<index>.snap`
/// (durably:
/// written to a temporary name, fsynced, renamed), removes all but the newest
/// [`KEEP_SNAPSHOT_FILES`], and returns the file name: the data of the Raft snapshot
/// that compacts the log up to `index` (the state itself stays in fjall; a member
/// that needs it is sent this file).
///
/// # Errors
/// I/O errors.
pub fn save_for_log_compaction(
    view: &BackendView,
    dir: &std::path::Path,
    index: u64,
) -> std::io::Result<String> {
    std::fs::create_dir_all(dir)?;
    let name = format!("{index:016x}.snap");
    let partial = dir.join(format!("{name}.part"));
    let mut file = std::fs::File::create(&partial)?;
    write_view(view, &mut file)?;
    file.sync_all()?;
    std::fs::rename(&partial, dir.join(&name))?;
    std::fs::File::open(dir)?.sync_all()?;
    let mut existing: Vec<String> = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|file| file.ends_with(".snap"))
        .collect();
    existing.sort();
    let excess = existing.len().saturating_sub(KEEP_SNAPSHOT_FILES);
    for old in &existing[..excess] {
        let _ = std::fs::remove_file(dir.join(old));
    }
    Ok(name)
}

/// Whether a file of `size` bytes carries the trailer (etcd's `hasChecksum`).
pub fn has_hash(size: u64) -> bool {
    size % BLOCK == HASH_LEN as u64
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a whole file's trailer; returns the body (without the trailer when there is
/// one).
///
/// # Errors
/// [`SnapshotError::MissingHash`] or [`SnapshotError::HashMismatch`] unless
/// `skip_hash_check`.
pub fn verify(file: &[u8], skip_hash_check: bool) -> Result<&[u8], SnapshotError> {
    let size = file.len() as u64;
    if !has_hash(size) {
        if skip_hash_check {
            return Ok(file);
        }
        return Err(SnapshotError::MissingHash { size });
    }
    let (body, trailer) = file.split_at(file.len() - HASH_LEN);
    if !skip_hash_check {
        let actual = Sha256::digest(body);
        if actual.as_slice() != trailer {
            return Err(SnapshotError::HashMismatch {
                expected: hex(trailer),
                actual: hex(&actual),
            });
        }
    }
    Ok(body)
}

/// Checks a snapshot file's SHA-256 trailer, reading it in pieces (the file can be as
/// large as the whole applied state).
///
/// # Errors
/// [`SnapshotError::Io`] if it cannot be read (missing), [`SnapshotError::MissingHash`]
/// or [`SnapshotError::HashMismatch`] if it is damaged.
pub fn verify_file(path: &std::path::Path) -> Result<(), SnapshotError> {
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    if !has_hash(size) {
        return Err(SnapshotError::MissingHash { size });
    }
    let mut body_left = size - HASH_LEN as u64;
    let mut hash = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    while body_left > 0 {
        let want = usize::try_from(body_left.min(buffer.len() as u64)).unwrap_or(buffer.len());
        file.read_exact(&mut buffer[..want])?;
        hash.update(&buffer[..want]);
        body_left -= want as u64;
    }
    let mut trailer = [0u8; HASH_LEN];
    file.read_exact(&mut trailer)?;
    let actual = hash.finalize();
    if actual.as_slice() != trailer {
        return Err(SnapshotError::HashMismatch {
            expected: hex(&trailer),
            actual: hex(&actual),
        });
    }
    Ok(())
}

/// Checks, at start-up, the snapshot file that the Raft log's compaction point relies
/// on: `name` (the Raft snapshot's data) in `snap_dir`, covering the log up to `index`.
/// An empty name (a new or restored data dir) names no file.
///
/// # Errors
/// A message naming the file when it is missing or damaged: the log before `index` is
/// gone, so the file cannot be rebuilt, and a member sent it would get a damaged state.
pub fn check_compaction_file(
    snap_dir: &std::path::Path,
    name: &[u8],
    index: u64,
) -> Result<(), String> {
    if name.is_empty() {
        return Ok(());
    }
    let name = String::from_utf8_lossy(name);
    let path = snap_dir.join(name.as_ref());
    verify_file(&path).map_err(|error| {
        let what = match error {
            SnapshotError::Io(error) if error.kind() == std::io::ErrorKind::NotFound => {
                "is missing".to_owned()
            }
            SnapshotError::Io(error) => format!("cannot be read: {error}"),
            SnapshotError::HashMismatch { expected, actual } => {
                format!("is damaged: its sha256 trailer is {expected} but its content hashes to {actual}")
            }
            other => format!("is damaged: {other}"),
        };
        format!(
            "snapshot file {} (the Raft log is compacted up to index {index} on it) {what}; \
             refusing to start: restore the data dir from a backup (`oxetcd snapshot restore`)",
            path.display()
        )
    })
}

/// Installs the log-compaction snapshot file `name` (a Raft snapshot's data, in
/// `snap_dir`) covering the log up to `index` as `state`'s applied state: the file is
/// checked, its pairs replace every bucket in one atomic batch
/// (`AppState::install_snapshot`), and the result is synced. A crash before the sync
/// leaves the old state, which a restart installs again from the same file (the Raft
/// snapshot record, persisted first, is past the applied index).
///
/// # Errors
/// A message naming the file when it is missing, damaged or does not hold the state at
/// `index`; a storage failure. Fatal for the member.
pub fn install(
    state: &mut oxetcd_spec::apply::AppState<FjallBackend>,
    snap_dir: &std::path::Path,
    name: &[u8],
    index: u64,
) -> Result<(), String> {
    let file_name = crate::peer::snapshot_file_name(name)
        .ok_or_else(|| format!("the snapshot at index {index} names no snapshot file"))?;
    let path = snap_dir.join(file_name);
    let fail = |what: String| format!("installing snapshot {}: {what}", path.display());
    let file = std::fs::read(&path).map_err(|error| fail(error.to_string()))?;
    let body = verify(&file, false).map_err(|error| fail(error.to_string()))?;
    let mut records = Vec::new();
    read_records(body, |record| {
        records.push(record);
        Ok(())
    })
    .map_err(|error| fail(error.to_string()))?;
    drop(file);
    let held = records
        .iter()
        .find(|(bucket, key, _)| {
            *bucket == Bucket::Meta && key == oxetcd_spec::apply::CONSISTENT_INDEX_KEY
        })
        .and_then(|(_, _, value)| <[u8; 8]>::try_from(value.as_slice()).ok())
        .map_or(0, u64::from_be_bytes);
    if held != index {
        return Err(fail(format!(
            "it holds the state at index {held}, not {index}"
        )));
    }
    state
        .install_snapshot(records)
        .map_err(|error| fail(error.to_string()))?;
    state
        .store()
        .backend()
        .data_dir()
        .sync()
        .map_err(|error| fail(error.to_string()))
}

/// One record of a snapshot body.
pub type Record = (Bucket, Vec<u8>, Vec<u8>);

/// Reads the records of a body, calling `each` for every one.
///
/// # Errors
/// [`SnapshotError::Malformed`].
pub fn read_records(
    body: &[u8],
    mut each: impl FnMut(Record) -> Result<(), SnapshotError>,
) -> Result<(), SnapshotError> {
    let mut reader = body;
    let mut magic = [0u8; 16];
    reader
        .read_exact(&mut magic)
        .map_err(|_| SnapshotError::Malformed("too short".into()))?;
    if &magic != MAGIC {
        return Err(SnapshotError::Malformed("unknown file type".into()));
    }
    let version = read_u32(&mut reader)?;
    if version != VERSION {
        return Err(SnapshotError::Malformed(format!(
            "unsupported format version {version}"
        )));
    }
    loop {
        let mut code = [0u8];
        reader
            .read_exact(&mut code)
            .map_err(|_| SnapshotError::Malformed("truncated before the end mark".into()))?;
        if code[0] == 0 {
            break;
        }
        let bucket = bucket_of(code[0])
            .ok_or_else(|| SnapshotError::Malformed(format!("unknown bucket {}", code[0])))?;
        let key = read_bytes(&mut reader)?;
        let value = read_bytes(&mut reader)?;
        each((bucket, key, value))?;
    }
    if reader.iter().any(|b| *b != 0) {
        return Err(SnapshotError::Malformed("data after the end mark".into()));
    }
    Ok(())
}

fn read_u32(reader: &mut &[u8]) -> Result<u32, SnapshotError> {
    let mut word = [0u8; 4];
    reader
        .read_exact(&mut word)
        .map_err(|_| SnapshotError::Malformed("truncated".into()))?;
    Ok(u32::from_be_bytes(word))
}

fn read_bytes(reader: &mut &[u8]) -> Result<Vec<u8>, SnapshotError> {
    let len = usize::try_from(read_u32(reader)?).unwrap_or(usize::MAX);
    if len > reader.len() {
        return Err(SnapshotError::Malformed("truncated record".into()));
    }
    let (bytes, rest) = reader.split_at(len);
    *reader = rest;
    Ok(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::DataDir;
    use oxetcd_spec::mvcc::{Backend, WriteBatch};

    fn backend_with(pairs: &[(Bucket, &str, &str)]) -> (tempfile::TempDir, FjallBackend) {
        let dir = tempfile::tempdir().unwrap();
        let mut backend = FjallBackend::open(DataDir::open(dir.path()).unwrap()).unwrap();
        let mut batch = WriteBatch::default();
        for (bucket, key, value) in pairs {
            batch.put(*bucket, key.as_bytes().to_vec(), value.as_bytes().to_vec());
        }
        backend.write(batch).unwrap();
        (dir, backend)
    }

    #[test]
    fn a_written_file_verifies_and_reads_back_every_pair() {
        let pairs = [
            (Bucket::Key, "k1", "v1"),
            (Bucket::Key, "k2", ""),
            (Bucket::Meta, "consistent_index", "12345678"),
            (Bucket::Lease, "l", "x"),
        ];
        let (_dir, backend) = backend_with(&pairs);
        let mut file = Vec::new();
        let size = write(&backend, &mut file).unwrap();
        assert_eq!(size, file.len() as u64);
        assert!(
            has_hash(size),
            "size {size} must be 512k + 32 as etcdctl checks"
        );
        let body = verify(&file, false).unwrap();
        let mut read = Vec::new();
        read_records(body, |r| {
            read.push(r);
            Ok(())
        })
        .unwrap();
        let expected: Vec<Record> = pairs
            .iter()
            .map(|(b, k, v)| (*b, k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        assert_eq!(read, expected);
    }

    #[test]
    fn a_flipped_byte_is_refused_unless_the_check_is_skipped() {
        let (_dir, backend) = backend_with(&[(Bucket::Key, "k", "v")]);
        let mut file = Vec::new();
        write(&backend, &mut file).unwrap();
        file[30] ^= 0x40;
        let error = verify(&file, false).unwrap_err();
        assert!(
            matches!(error, SnapshotError::HashMismatch { .. }),
            "{error}"
        );
        assert!(verify(&file, true).is_ok());
        let error = verify(&file[..file.len() - 1], false).unwrap_err();
        assert!(
            matches!(error, SnapshotError::MissingHash { .. }),
            "{error}"
        );
    }

    fn app_state(dir: &std::path::Path) -> oxetcd_spec::apply::AppState<FjallBackend> {
        let backend = FjallBackend::open(DataDir::open(dir).unwrap()).unwrap();
        oxetcd_spec::apply::AppState::open(backend, oxetcd_spec::apply::AppConfig::default())
            .unwrap()
    }

    fn put_at(state: &mut oxetcd_spec::apply::AppState<FjallBackend>, index: u64, key: &str) {
        let proposal = oxetcd_spec::apply::Proposal {
            request_id: index,
            auth: None,
            command: oxetcd_spec::apply::Command::Put(oxetcd_spec::mvcc::PutRequest {
                key: key.into(),
                value: format!("v{index}").into_bytes(),
                ..Default::default()
            }),
        };
        state.apply(index, &proposal, 0).unwrap().unwrap();
    }

    fn keys(state: &oxetcd_spec::apply::AppState<FjallBackend>) -> Vec<(Vec<u8>, Vec<u8>)> {
        state
            .range(&oxetcd_spec::mvcc::RangeRequest {
                key: vec![0],
                range_end: vec![0],
                ..Default::default()
            })
            .unwrap()
            .kvs
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect()
    }

    #[test]
    fn an_installed_snapshot_file_replaces_the_state_durably_and_a_damaged_one_changes_nothing() {
        let leader_dir = tempfile::tempdir().unwrap();
        let mut leader = app_state(leader_dir.path());
        for index in 1..=5 {
            put_at(&mut leader, index, &format!("k{}", index % 3));
        }
        let follower_dir = tempfile::tempdir().unwrap();
        let snap_dir = {
            let mut follower = app_state(follower_dir.path());
            put_at(&mut follower, 1, "stale");
            let snap_dir = follower.store().backend().data_dir().snap_dir();
            let name =
                save_for_log_compaction(&leader.store().backend().view(), &snap_dir, 5).unwrap();
            install(&mut follower, &snap_dir, name.as_bytes(), 5).unwrap();
            assert_eq!(follower.applied_index(), 5);
            assert_eq!(keys(&follower), keys(&leader));
            // A file that does not hold the state at the index the snapshot claims.
            let error = install(&mut follower, &snap_dir, name.as_bytes(), 6).unwrap_err();
            assert!(error.contains("not 6"), "{error}");
            snap_dir
        };
        // Durable: a restart finds the installed state.
        let mut follower = app_state(follower_dir.path());
        assert_eq!(follower.applied_index(), 5);
        assert_eq!(keys(&follower), keys(&leader));
        // A damaged or missing file is refused before anything is written.
        put_at(&mut leader, 6, "k9");
        let name = save_for_log_compaction(&leader.store().backend().view(), &snap_dir, 6).unwrap();
        let path = snap_dir.join(&name);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[40] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let error = install(&mut follower, &snap_dir, name.as_bytes(), 6).unwrap_err();
        assert!(error.contains("sha256"), "{error}");
        let error = install(&mut follower, &snap_dir, b"missing.snap", 6).unwrap_err();
        assert!(error.contains("missing.snap"), "{error}");
        assert_eq!(follower.applied_index(), 5);
        assert_eq!(keys(&follower), keys(&app_state_reopened(&follower)));
    }

    fn app_state_reopened(
        state: &oxetcd_spec::apply::AppState<FjallBackend>,
    ) -> oxetcd_spec::apply::AppState<FjallBackend> {
        oxetcd_spec::apply::AppState::open(
            state.store().backend().clone(),
            oxetcd_spec::apply::AppConfig::default(),
        )
        .unwrap()
    }

    #[test]
    fn garbage_is_refused() {
        assert!(matches!(
            read_records(b"hello world, this is not a snapshot", |_| Ok(())),
            Err(SnapshotError::Malformed(_))
        ));
        let mut truncated = MAGIC.to_vec();
        truncated.extend_from_slice(&VERSION.to_be_bytes());
        truncated.extend_from_slice(&[1, 0, 0, 0, 9]);
        assert!(matches!(
            read_records(&truncated, |_| Ok(())),
            Err(SnapshotError::Malformed(_))
        ));
    }
}
