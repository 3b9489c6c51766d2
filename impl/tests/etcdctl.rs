//! End-to-end: the real `oxetcd` binary driven by the real `etcdctl` 3.4.23, checking
//! what etcdctl prints for the getting-started commands.

#![allow(
    clippy::unwrap_used,
    reason = "integration test: a failed unwrap is a failed test"
)]

mod common;

use std::time::{Duration, Instant};

use common::{Etcdctl, Server};

#[test]
fn put_get_delete_with_prefix_range_and_sort() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    for (key, value) in [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")] {
        assert_eq!(server.ok(&["put", key, value]), "OK\n");
    }
    assert_eq!(server.ok(&["get", "a"]), "a\n1\n");
    assert_eq!(
        server.ok(&["get", "b", "d"]),
        "b\n2\nc\n3\n",
        "range [b, d)"
    );
    assert_eq!(
        server.ok(&[
            "get",
            "--prefix",
            "",
            "--keys-only",
            "--sort-by=KEY",
            "--order=DESCEND"
        ]),
        "d\n\nc\n\nb\n\na\n\n"
    );
    assert_eq!(
        server.ok(&["get", "--prefix", "", "--limit=2", "--print-value-only"]),
        "1\n2\n"
    );
    assert_eq!(
        server.ok(&["get", "--from-key", "c", "--keys-only"]),
        "c\n\nd\n\n"
    );
    let fields = server.ok(&["get", "--prefix", "", "-w", "fields"]);
    assert!(fields.contains("\"Count\" : 4"), "{fields}");
    assert_eq!(server.ok(&["del", "a"]), "1\n");
    assert_eq!(server.ok(&["del", "--prefix", ""]), "3\n");
    assert_eq!(server.ok(&["get", "--prefix", ""]), "");
    let empty = server.etcdctl(&["put", "", "x"]);
    assert!(!empty.status.success());
    assert!(String::from_utf8_lossy(&empty.stderr).contains("etcdserver: key is not provided"));
}

#[test]
fn txn_takes_the_branch_its_compare_selects() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.ok(&["put", "user1", "bad"]);
    let script =
        "value(\"user1\") = \"bad\"\n\ndel user1\nput verdict deleted\n\nput verdict kept\n\n";
    let output = server.etcdctl_stdin(&["txn"], script);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "SUCCESS\n\n1\n\nOK\n"
    );
    assert_eq!(
        server.ok(&["get", "verdict", "--print-value-only"]),
        "deleted\n"
    );
    let output = server.etcdctl_stdin(&["txn"], script);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "FAILURE\n\nOK\n");
    assert_eq!(
        server.ok(&["get", "verdict", "--print-value-only"]),
        "kept\n"
    );
}

#[test]
fn watch_reports_history_and_live_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.ok(&["put", "w/1", "a"]);
    server.ok(&["put", "w/2", "b"]);
    let watcher =
        Etcdctl::v3(&server.endpoint()).spawn(&["watch", "--prefix", "w/", "--rev=1", "--prev-kv"]);
    let mut lines = Vec::new();
    let mut wrote_live = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    // PUT w/1 a, PUT w/2 b (history), then DELETE w/1 (live): etcdctl prints the previous
    // key-value before the deleted one.
    while lines.len() < 11 && Instant::now() < deadline {
        if let Some(line) = watcher.line(Duration::from_millis(200)) {
            lines.push(line);
        }
        if lines.len() >= 6 && !wrote_live {
            server.ok(&["del", "w/1"]);
            wrote_live = true;
        }
    }
    drop(watcher);
    assert_eq!(
        lines,
        [
            "PUT", "w/1", "a", "PUT", "w/2", "b", "DELETE", "w/1", "a", "w/1", ""
        ]
    );
}

#[test]
fn lease_grant_keep_alive_time_to_live_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let granted = server.ok(&["lease", "grant", "60"]);
    let id = granted.split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(granted, format!("lease {id} granted with TTL(60s)\n"));
    server.ok(&["put", "--lease", &id, "leased", "v"]);
    let ttl = server.ok(&["lease", "timetolive", &id, "--keys"]);
    assert!(
        ttl.starts_with(&format!("lease {id} granted with TTL(60s), remaining(")),
        "{ttl}"
    );
    assert!(ttl.ends_with("attached keys([leased])\n"), "{ttl}");
    assert_eq!(
        server.ok(&["lease", "keep-alive", "--once", &id]),
        format!("lease {id} keepalived with TTL(60)\n")
    );
    assert!(server.ok(&["lease", "list"]).contains(&id));
    assert_eq!(
        server.ok(&["lease", "revoke", &id]),
        format!("lease {id} revoked\n")
    );
    assert_eq!(server.ok(&["get", "leased"]), "");
    let revoked_again = server.etcdctl(&["lease", "revoke", &id]);
    assert!(
        String::from_utf8_lossy(&revoked_again.stderr)
            .contains("etcdserver: requested lease not found")
    );
}

#[test]
fn expired_lease_deletes_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let granted = server.ok(&["lease", "grant", "2"]);
    let id = granted.split_whitespace().nth(1).unwrap().to_owned();
    server.ok(&["put", "--lease", &id, "short", "v"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.ok(&["get", "short"]).is_empty() {
        assert!(
            Instant::now() < deadline,
            "leased key still present long after its TTL"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        server
            .ok(&["lease", "timetolive", &id])
            .contains("already expired")
    );
}

#[test]
fn endpoint_status_health_member_list_and_http_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    // etcdctl 3.4 prints the health verdict on stderr.
    let health = server.etcdctl(&["endpoint", "health"]);
    assert!(health.status.success());
    let health = String::from_utf8_lossy(&health.stderr).into_owned();
    assert!(
        health.contains("is healthy: successfully committed proposal"),
        "{health}"
    );
    let status = server.ok(&["endpoint", "status"]);
    assert!(status.contains(", 3.4.23, "), "{status}");
    assert!(
        status.contains(", true, false, "),
        "leader, not learner: {status}"
    );
    let members = server.ok(&["member", "list"]);
    let peer = format!("http://127.0.0.1:{}", server.peer_port);
    let client = format!("http://127.0.0.1:{}", server.client_port);
    assert!(
        members.ends_with(&format!(", started, default, {peer}, {client}, false\n")),
        "{members}"
    );
    assert_eq!(
        server.http_get("/version").1,
        "{\"etcdserver\":\"3.4.23\",\"etcdcluster\":\"3.4.0\"}"
    );
    assert_eq!(server.http_get("/health").1, "{\"health\":\"true\"}");
    let (status_line, metrics) = server.http_get("/metrics");
    assert!(status_line.contains("200"), "{status_line}");
    assert!(metrics.contains("etcd_server_has_leader 1"), "{metrics}");
    let log = server.log();
    for line in [
        "ready to serve client requests",
        "published {Name:default",
        "enabled capabilities for version 3.4",
    ] {
        assert!(log.contains(line), "log lacks {line:?}:\n{log}");
    }
}

#[test]
fn compaction_removes_old_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.ok(&["put", "k", "v1"]);
    server.ok(&["put", "k", "v2"]);
    server.ok(&["put", "k", "v3"]);
    assert_eq!(
        server.ok(&["get", "k", "--rev=2", "--print-value-only"]),
        "v1\n"
    );
    assert_eq!(server.ok(&["compaction", "3"]), "compacted revision 3\n");
    let old = server.etcdctl(&["get", "k", "--rev=2"]);
    assert!(!old.status.success());
    assert!(
        String::from_utf8_lossy(&old.stderr)
            .contains("etcdserver: mvcc: required revision has been compacted")
    );
    assert_eq!(
        server.ok(&["get", "k", "--rev=3", "--print-value-only"]),
        "v2\n"
    );
}

#[test]
fn data_survives_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    server.ok(&["put", "kept", "yes"]);
    let (client_port, peer_port) = (server.client_port, server.peer_port);
    server.kill();
    let server = Server::start_on(dir.path(), client_port, peer_port, &[]);
    assert_eq!(server.ok(&["get", "kept", "--print-value-only"]), "yes\n");
}

/// etcdctl 3.4 sends the whole endpoint URL as the HTTP/2 `:authority` when the endpoint
/// has a scheme; etcd serves it, so oxetcd must too.
#[test]
fn endpoints_given_as_urls_with_a_scheme_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = format!("http://127.0.0.1:{}", server.client_port);
    let run = |args: &[&str]| {
        let output = Etcdctl::v3(&url).flag("--command-timeout=10s").run(args);
        assert!(
            output.status.success(),
            "etcdctl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(run(&["put", "scheme", "yes"]), "OK\n");
    assert_eq!(run(&["get", "scheme"]), "scheme\nyes\n");
    let status = run(&["endpoint", "status"]);
    assert!(status.starts_with(&format!("{url}, ")), "{status}");
    assert!(status.contains(", 3.4.23, "), "{status}");
    // The plain form keeps working on the same server.
    assert_eq!(server.ok(&["get", "scheme", "--print-value-only"]), "yes\n");
}
