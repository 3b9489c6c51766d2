//! A damaged data dir is reported, never silently truncated or started afresh: the real
//! `oxetcd` is run over a data dir whose journal, snapshot files or database were
//! damaged or removed, and must exit non-zero naming the file (no panic); a torn journal
//! tail (what a crash leaves) must still recover every acknowledged write.

#![allow(
    clippy::unwrap_used,
    reason = "integration test: a failed unwrap is a failed test"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;

/// Starts `oxetcd` over `dir`'s data dir expecting it to refuse: returns its exit code
/// and log. Fails if it is still running after 30 s.
fn start_expecting_refusal(dir: &Path, extra: &[&str]) -> (i32, String) {
    let data_dir = dir.join("data.etcd");
    let client = format!("http://127.0.0.1:{}", common::free_port());
    let peer = format!("http://127.0.0.1:{}", common::free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_oxetcd"))
        .args(["--data-dir", data_dir.to_str().unwrap()])
        .args(["--listen-client-urls", &client])
        .args(["--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("default={peer}")])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            let output = child.wait_with_output().unwrap();
            let log = String::from_utf8_lossy(&output.stderr).into_owned();
            assert!(
                !log.contains("panicked"),
                "a panic instead of an error:\n{log}"
            );
            return (output.status.code().unwrap_or(-1), log);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    panic!(
        "oxetcd started over a damaged data dir; log:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn db_dir(dir: &Path) -> PathBuf {
    dir.join("data.etcd/member/oxetcd-fjall")
}

fn journal(dir: &Path) -> PathBuf {
    let mut journals: Vec<PathBuf> = std::fs::read_dir(db_dir(dir))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "jnl"))
        .collect();
    journals.sort();
    journals.pop().expect("a journal file")
}

/// Offsets just after every batch end marker of fjall's journal (`... "FJL" 3`).
fn batch_ends(bytes: &[u8]) -> Vec<usize> {
    bytes
        .windows(4)
        .enumerate()
        .filter(|(_, window)| *window == b"FJL\x03")
        .map(|(at, _)| at + 4)
        .collect()
}

/// Writes `count` keys one put at a time (one journal batch each), then kills the
/// server with SIGKILL.
fn write_keys_and_kill(dir: &Path, count: usize, extra: &[&str]) {
    let mut server = Server::start_with(dir, extra);
    for i in 0..count {
        server.ok(&["put", &format!("k{i:02}"), "v"]);
    }
    server.kill();
}

fn keys(server: &Server) -> Vec<String> {
    server
        .ok(&["get", "k", "--prefix", "--keys-only"])
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_torn_journal_tail_recovers_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    write_keys_and_kill(dir.path(), 12, &[]);
    let path = journal(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let end = *batch_ends(&bytes).last().unwrap();
    // A batch the process was writing when it died: a start marker and part of an item.
    let torn = [1u8, 3, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 5, 0, 0];
    bytes[end..end + torn.len()].copy_from_slice(&torn);
    std::fs::write(&path, &bytes).unwrap();
    let server = Server::start(dir.path());
    let expected: Vec<String> = (0..12).map(|i| format!("k{i:02}")).collect();
    assert_eq!(keys(&server), expected);
}

#[test]
fn a_journal_damaged_in_the_middle_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    write_keys_and_kill(dir.path(), 12, &[]);
    let path = journal(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let ends = batch_ends(&bytes);
    assert!(ends.len() > 4, "{} batches", ends.len());
    // The start marker of a batch in the middle becomes garbage: fjall alone would
    // truncate the journal there and drop the acknowledged puts after it.
    let middle = ends[ends.len() / 2];
    assert_eq!(bytes[middle], 1, "a batch starts after an end marker");
    bytes[middle] = 0x7f;
    std::fs::write(&path, &bytes).unwrap();
    let (code, log) = start_expecting_refusal(dir.path(), &[]);
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains(&format!("{} is damaged at byte {middle}", path.display())),
        "{log}"
    );
}

#[test]
fn a_missing_journal_or_database_is_refused_not_started_afresh() {
    let dir = tempfile::tempdir().unwrap();
    write_keys_and_kill(dir.path(), 3, &[]);
    std::fs::remove_file(journal(dir.path())).unwrap();
    let (code, log) = start_expecting_refusal(dir.path(), &[]);
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("journal") && log.contains("is missing"),
        "{log}"
    );

    std::fs::remove_dir_all(db_dir(dir.path())).unwrap();
    let (code, log) = start_expecting_refusal(dir.path(), &[]);
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains(&format!(
            "database {} is missing",
            db_dir(dir.path()).display()
        )),
        "{log}"
    );
}

#[test]
fn a_damaged_or_missing_snapshot_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--snapshot-count", "5"];
    let mut server = Server::start_with(dir.path(), &flags);
    for i in 0..12 {
        server.ok(&["put", &format!("k{i:02}"), "v"]);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.log().contains("compacted raft log") {
        assert!(
            Instant::now() < deadline,
            "no compaction:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.kill();
    let snap_dir = dir.path().join("data.etcd/member/oxetcd-snap");
    let snaps: Vec<PathBuf> = std::fs::read_dir(&snap_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "snap"))
        .collect();
    assert!(!snaps.is_empty());
    for snap in &snaps {
        let mut bytes = std::fs::read(snap).unwrap();
        bytes[40] ^= 0x20;
        std::fs::write(snap, &bytes).unwrap();
    }
    let (code, log) = start_expecting_refusal(dir.path(), &flags);
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains(&format!("snapshot file {}", snap_dir.display())) && log.contains("damaged"),
        "{log}"
    );
    for snap in &snaps {
        std::fs::remove_file(snap).unwrap();
    }
    let (code, log) = start_expecting_refusal(dir.path(), &flags);
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("is missing"), "{log}");
}

/// Puts keys, defragments (which writes the key bucket to table files) and kills the
/// server; returns the table files of the key bucket (`bucket_key`, the third keyspace
/// the data dir creates after `raft` and `raft_log`).
fn key_tables_after_defrag(dir: &Path) -> Vec<PathBuf> {
    let mut server = Server::start(dir);
    for i in 0..30 {
        server.ok(&["put", &format!("k{i:02}"), "some value"]);
    }
    server.ok(&["defrag"]);
    server.kill();
    let tables = db_dir(dir).join("keyspaces/3/tables");
    let files: Vec<PathBuf> = std::fs::read_dir(&tables)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert!(
        !files.is_empty(),
        "defrag writes tables to {}",
        tables.display()
    );
    files
}

#[test]
fn a_damaged_or_missing_table_file_is_refused_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    for table in key_tables_after_defrag(dir.path()) {
        let mut bytes = std::fs::read(&table).unwrap();
        // Inside the first data block: fjall's block checksum catches it.
        bytes[200] ^= 0x55;
        std::fs::write(&table, &bytes).unwrap();
    }
    let (code, log) = start_expecting_refusal(dir.path(), &[]);
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("is corrupt") || log.contains("ChecksumMismatch"),
        "{log}"
    );

    let dir = tempfile::tempdir().unwrap();
    for table in key_tables_after_defrag(dir.path()) {
        std::fs::remove_file(table).unwrap();
    }
    let (code, log) = start_expecting_refusal(dir.path(), &[]);
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("Recovered less tables than expected"), "{log}");
}
