//! `etcdctl snapshot save` against oxetcd, then `oxetcd snapshot restore` into a new
//! data dir that starts and serves the same keys; a corrupted file is refused.

#![allow(
    clippy::unwrap_used,
    reason = "integration test: a failed unwrap is a failed test"
)]

mod common;

use std::process::Command;

use common::{Server, free_port};

fn restore(
    file: &std::path::Path,
    data_dir: &std::path::Path,
    peer_port: u16,
    extra: &[&str],
) -> std::process::Output {
    let peer = format!("http://127.0.0.1:{peer_port}");
    Command::new(env!("CARGO_BIN_EXE_oxetcd"))
        .args(["snapshot", "restore", file.to_str().unwrap()])
        .args(["--data-dir", data_dir.to_str().unwrap()])
        .args(["--initial-cluster", &format!("default={peer}")])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn saved_snapshot_restores_into_a_data_dir_that_serves_the_same_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    let revision_before;
    {
        let source_dir = dir.path().join("source");
        std::fs::create_dir_all(&source_dir).unwrap();
        let server = Server::start(&source_dir);
        for i in 0..20 {
            server.ok(&["put", &format!("key{i:02}"), &format!("value{i}")]);
        }
        server.ok(&["put", "key05", "changed"]);
        server.ok(&["del", "key19"]);
        revision_before = server.ok(&["get", "key00", "-w", "fields"]);
        let saved = server.ok(&["snapshot", "save", file.to_str().unwrap()]);
        assert!(saved.contains("Snapshot saved at"), "{saved}");
    }
    let size = std::fs::metadata(&file).unwrap().len();
    assert_eq!(
        size % 512,
        32,
        "etcdctl's checksum rule: 512-byte blocks plus sha256"
    );

    // A flipped byte is refused, and no data dir is left behind.
    let bad = dir.path().join("bad.db");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[40] ^= 0x01;
    std::fs::write(&bad, &bytes).unwrap();
    let bad_target = dir.path().join("bad").join("data.etcd");
    let refused = restore(&bad, &bad_target, free_port(), &[]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("sha256"), "{message}");
    assert!(!bad_target.exists());

    let target = dir.path().join("restored");
    let peer_port = free_port();
    let client_port = free_port();
    let restored = restore(&file, &target.join("data.etcd"), peer_port, &[]);
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    // Restoring over an existing data dir is refused, as etcdctl does.
    let again = restore(&file, &target.join("data.etcd"), peer_port, &[]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));

    let server = Server::start_on(&target, client_port, peer_port, &[]);
    let keys = server.ok(&["get", "key", "--prefix", "--keys-only"]);
    assert_eq!(keys.split_whitespace().count(), 19, "{keys}");
    assert_eq!(
        server.ok(&["get", "key05", "--print-value-only"]).trim(),
        "changed"
    );
    assert_eq!(server.ok(&["get", "key19"]), "");
    // Revisions survive the restore (etcd keeps them too).
    let create = |fields: &str| {
        fields
            .lines()
            .find(|l| l.starts_with("\"CreateRevision\""))
            .map(str::to_owned)
    };
    assert_eq!(
        create(&server.ok(&["get", "key00", "-w", "fields"])),
        create(&revision_before)
    );
    server.ok(&["put", "after", "restore"]);
    assert_eq!(
        server.ok(&["get", "after", "--print-value-only"]).trim(),
        "restore"
    );

    // --skip-hash-check restores a file whose trailer was damaged.
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&bad, &bytes).unwrap();
    let skipped = restore(
        &bad,
        &dir.path().join("skip").join("data.etcd"),
        free_port(),
        &["--skip-hash-check"],
    );
    assert!(
        skipped.status.success(),
        "{}",
        String::from_utf8_lossy(&skipped.stderr)
    );
}

#[test]
fn snapshot_count_compacts_the_raft_log_and_a_restart_replays_only_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(dir.path(), &["--snapshot-count", "10"]);
    for i in 0..35 {
        server.ok(&["put", &format!("k{i:02}"), &format!("v{i}")]);
    }
    let log = server.log();
    assert!(log.contains("compacted raft log at"), "{log}");
    let snap_dir = server.data_dir.join("member").join("oxetcd-snap");
    let snaps = std::fs::read_dir(&snap_dir).unwrap().count();
    assert!((1..=5).contains(&snaps), "{snaps} snapshot files");
    let (client_port, peer_port) = (server.client_port, server.peer_port);
    server.kill();

    let server = Server::start_on(
        dir.path(),
        client_port,
        peer_port,
        &["--snapshot-count", "10"],
    );
    let log = server.log();
    let snapshot_index: u64 = log
        .lines()
        .find_map(|l| l.split("recovered raft log: snapshot at index ").nth(1))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no recovery line in:\n{log}"));
    assert!(
        snapshot_index >= 30,
        "log compacted only up to {snapshot_index}"
    );
    let keys = server.ok(&["get", "k", "--prefix", "--keys-only"]);
    assert_eq!(keys.split_whitespace().count(), 35, "{keys}");
    assert_eq!(
        server.ok(&["get", "k34", "--print-value-only"]).trim(),
        "v34"
    );
}

#[test]
fn wal_dir_holds_the_raft_log_and_a_restart_reads_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("wal");
    let wal_flag = wal.to_str().unwrap().to_owned();
    let mut server = Server::start_with(dir.path(), &["--wal-dir", &wal_flag]);
    server.ok(&["put", "in", "wal"]);
    assert!(wal.join("oxetcd-fjall-wal").is_dir());
    let (client_port, peer_port) = (server.client_port, server.peer_port);
    server.kill();
    let server = Server::start_on(
        dir.path(),
        client_port,
        peer_port,
        &["--wal-dir", &wal_flag],
    );
    assert_eq!(
        server.ok(&["get", "in", "--print-value-only"]).trim(),
        "wal"
    );
    server.ok(&["put", "after", "restart"]);
}
