//! The backend quota as etcd enforces it: a tiny `--quota-backend-bytes` raises the
//! NOSPACE alarm, writes are refused with etcd's error until compaction, defragment and
//! `alarm disarm` free the space; and auto-compaction compacts on its own.

#![allow(
    clippy::unwrap_used,
    reason = "integration test: a failed unwrap is a failed test"
)]

mod common;

use common::Server;

const NOSPACE: &str = "etcdserver: mvcc: database space exceeded";

fn value(seed: usize) -> String {
    (0..4000)
        .map(|i| char::from(b'a' + u8::try_from((i * 7 + seed * 13) % 26).unwrap()))
        .collect()
}

#[test]
fn nospace_alarm_refuses_writes_until_compacted_defragmented_and_disarmed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--quota-backend-bytes", "120000"]);
    server.ok(&["put", "keep", "me"]);
    let mut refused = None;
    for i in 0..200 {
        let output = server.etcdctl(&["put", &format!("fill{i:03}"), &value(i)]);
        if !output.status.success() {
            refused = Some(String::from_utf8_lossy(&output.stderr).into_owned());
            break;
        }
    }
    let refused = refused.expect("a put must be refused before 200 puts of 4 KB");
    assert!(refused.contains(NOSPACE), "{refused}");
    let alarms = server.ok(&["alarm", "list"]);
    assert!(alarms.contains("alarm:NOSPACE"), "{alarms}");
    let status = server.ok(&["endpoint", "status"]);
    assert!(status.contains("alarm:NOSPACE"), "{status}");

    // Writes stay refused (the applier is capped), reads and deletes go through.
    let put = server.etcdctl(&["put", "x", "y"]);
    assert!(String::from_utf8_lossy(&put.stderr).contains(NOSPACE));
    let grant = server.etcdctl(&["lease", "grant", "60"]);
    assert!(String::from_utf8_lossy(&grant.stderr).contains(NOSPACE));
    assert_eq!(
        server.ok(&["get", "keep", "--print-value-only"]).trim(),
        "me"
    );
    server.ok(&["del", "fill", "--prefix"]);

    // Compact, defragment, disarm: as etcd's operators do.
    let fields = server.ok(&["get", "keep", "-w", "fields"]);
    let revision = fields
        .lines()
        .find_map(|l| l.strip_prefix("\"Revision\" : "))
        .unwrap()
        .trim()
        .to_owned();
    server.ok(&["compaction", &revision]);
    let defrag = server.ok(&["defrag"]);
    assert!(
        defrag.contains("Finished defragmenting etcd member"),
        "{defrag}"
    );
    let disarmed = server.ok(&["alarm", "disarm"]);
    assert!(disarmed.contains("alarm:NOSPACE"), "{disarmed}");
    assert_eq!(server.ok(&["alarm", "list"]), "");
    server.ok(&["put", "x", "y"]);
    assert_eq!(server.ok(&["get", "x", "--print-value-only"]).trim(), "y");
}

#[test]
fn periodic_auto_compaction_compacts_old_revisions_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[
            "--auto-compaction-mode",
            "periodic",
            "--auto-compaction-retention",
            "1s",
        ],
    );
    server.ok(&["put", "k", "v1"]);
    server.ok(&["put", "k", "v2"]);
    // Bounded polling: the first compaction is due one retention after start.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        server.ok(&["put", "k", "again"]);
        let old = server.etcdctl(&["get", "k", "--rev", "2"]);
        let stderr = String::from_utf8_lossy(&old.stderr).into_owned();
        if stderr.contains("required revision has been compacted") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "revision 2 was never compacted; log:\n{}",
            server.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let log = server.log();
    assert!(
        log.contains("Starting auto-compaction at revision"),
        "{log}"
    );
    assert!(
        log.contains("Finished auto-compaction at revision"),
        "{log}"
    );
}
