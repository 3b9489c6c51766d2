//! Snapshots in etcd's format: `etcdctl snapshot save` against oxetcd, `etcdctl
//! snapshot status` on the file, `oxetcd snapshot restore` into a new data dir that
//! serves the same keys (a corrupted file is refused); a real etcd's snapshot restored
//! into oxetcd, and an oxetcd snapshot restored by `etcdctl` into a real etcd;
//! Maintenance.Hash against the snapshot's content.

#![allow(
    clippy::unwrap_used,
    reason = "integration test: a failed unwrap is a failed test"
)]

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Server, etcdctl_path, free_port};
use oxetcd::snapshot::bbolt::Db;
use oxetcd_spec::mvcc::Crc32c;

/// etcdctl (v3) against `endpoint`.
fn etcdctl_at(endpoint: &str, args: &[&str]) -> Output {
    Command::new(etcdctl_path())
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok_at(endpoint: &str, args: &[&str]) -> String {
    let output = etcdctl_at(endpoint, args);
    assert!(
        output.status.success(),
        "etcdctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A real etcd 3.4.23 on `data_dir`; killed on drop.
struct RealEtcd {
    child: Child,
    endpoint: String,
}

impl RealEtcd {
    fn start(data_dir: &Path, name: &str, client_port: u16, peer_port: u16) -> RealEtcd {
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let etcd = std::env::var("ETCD").unwrap_or_else(|_| "etcd".to_owned());
        let child = Command::new(etcd)
            .args(["--name", name, "--data-dir", data_dir.to_str().unwrap()])
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("{name}={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the reference etcd 3.4.23 on PATH (make etcd-reference)");
        let etcd = RealEtcd {
            child,
            endpoint: format!("127.0.0.1:{client_port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !etcdctl_at(&etcd.endpoint, &["endpoint", "health"])
            .status
            .success()
        {
            assert!(Instant::now() < deadline, "etcd did not become healthy");
            std::thread::sleep(Duration::from_millis(100));
        }
        etcd
    }

    fn ok(&self, args: &[&str]) -> String {
        ok_at(&self.endpoint, args)
    }
}

impl Drop for RealEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `etcdctl snapshot status` computes, from our own reader: CRC-32C over every
/// bucket name and pair (leaving out `meta`'s `consistent_index` when `hash_view`, as
/// Maintenance.Hash does), the number of pairs, and the pairs of bucket `key`.
fn digest(body: &[u8], hash_view: bool) -> (u32, u64, usize) {
    let db = Db::open(body).unwrap();
    let mut crc = Crc32c::new();
    let (mut total, mut revisions) = (0u64, 0usize);
    db.for_each(|bucket, pair| {
        match pair {
            None => crc.update(bucket),
            Some((k, _)) if hash_view && bucket == b"meta" && k == b"consistent_index" => {}
            Some((k, v)) => {
                crc.update(k);
                crc.update(v);
                total += 1;
                if bucket == b"key" {
                    revisions += 1;
                }
            }
        }
        Ok(())
    })
    .unwrap();
    (crc.finish(), total, revisions)
}

/// POST on the JSON gateway; returns the body.
fn post(port: u16, path: &str, body: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

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

/// etcdctl without an endpoint (`snapshot status` reads a file).
fn server_less_ok(args: &[&str]) -> String {
    let output = Command::new(etcdctl_path())
        .env("ETCDCTL_API", "3")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "etcdctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
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

    // The real etcdctl reads the file as etcd's (bbolt, its integrity check included)
    // and agrees with our reader and the data: 20 puts, one overwrite, one delete.
    let status: serde_json::Value = serde_json::from_str(&server_less_ok(&[
        "snapshot",
        "status",
        file.to_str().unwrap(),
        "-w",
        "json",
    ]))
    .unwrap();
    let body = std::fs::read(&file).unwrap();
    let body = &body[..body.len() - 32];
    let (crc, total, revisions) = digest(body, false);
    assert_eq!(revisions, 22);
    assert_eq!(status["hash"], u64::from(crc), "{status}");
    assert_eq!(status["totalKey"], total, "{status}");
    assert_eq!(status["totalSize"], size - 32, "{status}");
    let header_revision: i64 = revision_before
        .lines()
        .find_map(|l| l.strip_prefix("\"Revision\" : "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(status["revision"], header_revision, "{status}");

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

#[test]
fn maintenance_hash_covers_the_snapshot_content_and_follows_writes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.ok(&["put", "a", "1"]);
    server.ok(&["put", "b", "2"]);
    let hash = |server: &Server| -> (u64, String) {
        let body: serde_json::Value =
            serde_json::from_str(&post(server.client_port, "/v3/maintenance/hash", "{}")).unwrap();
        let hash = body["hash"].as_u64().unwrap_or_else(|| panic!("{body}"));
        (
            hash,
            body["header"]["revision"].as_str().unwrap().to_owned(),
        )
    };
    let (first, revision) = hash(&server);
    assert_eq!(revision, "3");
    let file = dir.path().join("s.db");
    server.ok(&["snapshot", "save", file.to_str().unwrap()]);
    let (second, _) = hash(&server);
    assert_eq!(first, second, "no write in between");
    let bytes = std::fs::read(&file).unwrap();
    let (crc, _, _) = digest(&bytes[..bytes.len() - 32], true);
    assert_eq!(u64::from(crc), first, "Hash is the snapshot's content");
    server.ok(&["put", "c", "3"]);
    let (third, revision) = hash(&server);
    assert_ne!(third, first);
    assert_eq!(revision, "4");
}

#[test]
fn a_real_etcd_snapshot_restores_into_oxetcd_with_keys_leases_and_users() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("etcd.db");
    let (lease, created);
    {
        let etcd = RealEtcd::start(&dir.path().join("etcd"), "e1", free_port(), free_port());
        etcd.ok(&["put", "gone", "x"]);
        etcd.ok(&["put", "k1", "v1"]);
        etcd.ok(&["put", "k1", "v2"]);
        etcd.ok(&["del", "gone"]);
        lease = etcd
            .ok(&["lease", "grant", "600"])
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned();
        etcd.ok(&["put", "leased", "x", "--lease", &lease]);
        created = etcd.ok(&["get", "k1", "-w", "json"]);
        etcd.ok(&["user", "add", "root:rootpw"]);
        etcd.ok(&["role", "add", "root"]);
        etcd.ok(&["user", "grant-role", "root", "root"]);
        etcd.ok(&["role", "add", "r1"]);
        etcd.ok(&["role", "grant-permission", "r1", "readwrite", "/a", "/b"]);
        etcd.ok(&["user", "add", "alice:pw"]);
        etcd.ok(&["user", "grant-role", "alice", "r1"]);
        etcd.ok(&["auth", "enable"]);
        etcd.ok(&[
            "--user",
            "root:rootpw",
            "snapshot",
            "save",
            file.to_str().unwrap(),
        ]);
    }
    let target = dir.path().join("restored");
    let (client_port, peer_port) = (free_port(), free_port());
    let restored = restore(&file, &target.join("data.etcd"), peer_port, &[]);
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let server = Server::start_on(&target, client_port, peer_port, &[]);
    let root = ["--user", "root:rootpw"];
    let get = |args: &[&str]| server.ok(&[&root[..], args].concat());
    // Keys with their revisions, the deleted key stays deleted.
    let json = |s: &str| -> serde_json::Value { serde_json::from_str(s).unwrap() };
    let before = json(&created);
    let after = json(&get(&["get", "k1", "-w", "json"]));
    assert_eq!(after["kvs"], before["kvs"]);
    assert_eq!(after["header"]["revision"], 6);
    assert_eq!(get(&["get", "gone"]), "");
    // The lease, with its key attached.
    assert!(get(&["lease", "list"]).contains(&lease));
    let ttl = get(&["lease", "timetolive", &lease, "--keys"]);
    assert!(ttl.contains("leased"), "{ttl}");
    // Users, roles, and auth still on.
    let users = get(&["user", "list"]);
    assert_eq!(
        users.split_whitespace().collect::<Vec<_>>(),
        ["alice", "root"]
    );
    let refused = server.etcdctl(&["get", "k1"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("user name is empty"),
        "{refused:?}"
    );
    server.ok(&["--user", "alice:pw", "put", "/a", "ok"]);
    let denied = server.etcdctl(&["--user", "alice:pw", "put", "k1", "no"]);
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("permission denied"),
        "{denied:?}"
    );
    get(&["put", "after", "restore"]);
}

#[test]
fn an_oxetcd_snapshot_restores_into_a_real_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oxetcd.db");
    let (lease, created);
    {
        let source = dir.path().join("source");
        std::fs::create_dir_all(&source).unwrap();
        let server = Server::start(&source);
        server.ok(&["put", "k1", "v1"]);
        server.ok(&["put", "k1", "v2"]);
        server.ok(&["put", "k2", "v"]);
        lease = server
            .ok(&["lease", "grant", "600"])
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned();
        server.ok(&["put", "leased", "x", "--lease", &lease]);
        created = server.ok(&["get", "k", "--prefix", "-w", "json"]);
        server.ok(&["user", "add", "alice:pw"]);
        server.ok(&["snapshot", "save", file.to_str().unwrap()]);
    }
    let (client_port, peer_port) = (free_port(), free_port());
    let data_dir = dir.path().join("etcd");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let restored = Command::new(etcdctl_path())
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "restore", file.to_str().unwrap()])
        .args(["--data-dir", data_dir.to_str().unwrap(), "--name", "e1"])
        .args(["--initial-cluster", &format!("e1={peer}")])
        .args(["--initial-advertise-peer-urls", &peer])
        .output()
        .unwrap();
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let etcd = RealEtcd::start(&data_dir, "e1", client_port, peer_port);
    let json = |s: &str| -> serde_json::Value { serde_json::from_str(s).unwrap() };
    let after = json(&etcd.ok(&["get", "k", "--prefix", "-w", "json"]));
    assert_eq!(after["kvs"], json(&created)["kvs"]);
    assert!(etcd.ok(&["lease", "list"]).contains(&lease));
    assert_eq!(etcd.ok(&["user", "list"]).trim(), "alice");
    assert_eq!(
        etcd.ok(&["get", "leased", "--print-value-only"]).trim(),
        "x"
    );
    etcd.ok(&["put", "after", "restore"]);
}
