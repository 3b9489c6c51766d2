//! What etcd users see on the client port's HTTP side, checked against figures measured
//! on etcd 3.4.23: `/metrics` values that follow what the server does (keys, MVCC
//! operations, backend commits, gRPC bytes), `--cors` headers, and the v2 SYNC the
//! leader proposes while TTL nodes exist.

#![allow(
    clippy::unwrap_used,
    reason = "integration test: a failed unwrap is a failed test"
)]

mod common;

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use common::Server;

/// One HTTP/1.1 request on the client port: (lower-cased status line and headers, body).
fn request(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.client_port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    if !body.is_empty() {
        text.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    text.push_str(body);
    stream.write_all(text.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_default();
    (head.to_ascii_lowercase(), body.to_owned())
}

/// The value of the sample `name` (exactly, labels included) in a metrics body.
fn sample(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{body}"))
        .parse()
        .unwrap()
}

#[test]
fn metrics_follow_keys_operations_commits_and_grpc_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (head, before) = request(&server, "GET", "/metrics", &[], "");
    assert!(
        head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    server.ok(&["put", "a", "1"]);
    server.ok(&["put", "b", "1"]);
    server.ok(&["put", "b", "2"]);
    server.ok(&["put", "--prev-kv", "c", "1"]);
    server.ok(&["del", "a"]);
    server.ok(&["get", "b"]);
    // Lease 1 does not exist: NotFound ("etcdserver: requested lease not found").
    assert!(!server.etcdctl(&["lease", "revoke", "1"]).status.success());
    let (_, after) = request(&server, "GET", "/metrics", &[], "");
    let delta = |name: &str| sample(&after, name) - sample(&before, name);
    // Live keys: b and c (a was deleted).
    assert_eq!(sample(&after, "etcd_debugging_mvcc_keys_total"), 2.0);
    // etcd 3.4.23 counts the same way: a put with --prev-kv also reads the old value,
    // which makes it a txn of two operations.
    assert_eq!(delta("etcd_mvcc_put_total"), 4.0);
    assert_eq!(delta("etcd_mvcc_delete_total"), 1.0);
    assert_eq!(delta("etcd_mvcc_range_total"), 2.0);
    assert_eq!(delta("etcd_mvcc_txn_total"), 1.0);
    let commits = delta("etcd_disk_backend_commit_duration_seconds_count");
    assert!(commits >= 5.0, "five writes, {commits} backend commits");
    assert_eq!(
        sample(
            &after,
            "etcd_disk_backend_commit_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        sample(&after, "etcd_disk_backend_commit_duration_seconds_count")
    );
    // etcd counts the bytes of the protobuf messages, not their 5-byte gRPC prefixes:
    // on etcd 3.4.23 these seven calls received 6+6+6+8+3+3+2 = 34 bytes; the lease
    // revoke failed and sent nothing.
    assert_eq!(delta("etcd_network_client_grpc_received_bytes_total"), 34.0);
    // Each answer starts with a response header whose ids (varints) take 9 or 10 bytes;
    // the revisions and the term take one each. etcd sent 180 bytes with 27-byte put
    // answers: four puts, a delete (+2 for `deleted: 1`) and a range (+16: the kv
    // `b`=`2` at revisions 3/4, version 2, and `count: 1`).
    let status = server.ok(&["endpoint", "status", "-w", "json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let varint = |id: &serde_json::Value| {
        let id = id.as_u64().unwrap();
        f64::from((64 - id.leading_zeros()).div_ceil(7).max(1))
    };
    let header = &status[0]["Status"]["header"];
    let header_len = 1.0 + varint(&header["cluster_id"]) + 1.0 + varint(&header["member_id"]) + 4.0;
    let answer = 2.0 + header_len;
    assert_eq!(
        delta("etcd_network_client_grpc_sent_bytes_total"),
        6.0 * answer + 18.0
    );
    let size = sample(&after, "etcd_mvcc_db_total_size_in_bytes");
    let in_use = sample(&after, "etcd_mvcc_db_total_size_in_use_in_bytes");
    assert!(
        size > 4096.0 && in_use > 0.0 && in_use <= size,
        "{size} {in_use}"
    );
    assert_eq!(
        sample(&after, "etcd_server_quota_backend_bytes"),
        2_147_483_648.0
    );
    assert_eq!(sample(&after, "etcd_server_is_learner"), 0.0);
    assert_eq!(
        sample(&after, "etcd_cluster_version{cluster_version=\"3.4\"}"),
        1.0
    );

    // The gRPC server families, with etcd 3.4.23's labels: four Puts, one DeleteRange,
    // one Range, and a LeaseRevoke answered NotFound.
    let kv = |method: &str| {
        format!("grpc_method=\"{method}\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"")
    };
    assert_eq!(
        delta(&format!("grpc_server_started_total{{{}}}", kv("Put"))),
        4.0
    );
    assert_eq!(
        delta(&format!(
            "grpc_server_handled_total{{grpc_code=\"OK\",{}}}",
            kv("Put")
        )),
        4.0
    );
    assert_eq!(
        delta(&format!("grpc_server_msg_received_total{{{}}}", kv("Put"))),
        4.0
    );
    assert_eq!(
        delta(&format!("grpc_server_msg_sent_total{{{}}}", kv("Put"))),
        4.0
    );
    assert_eq!(
        delta(&format!(
            "grpc_server_started_total{{{}}}",
            kv("DeleteRange")
        )),
        1.0
    );
    assert_eq!(
        delta(&format!("grpc_server_started_total{{{}}}", kv("Range"))),
        1.0
    );
    let revoke =
        "grpc_method=\"LeaseRevoke\",grpc_service=\"etcdserverpb.Lease\",grpc_type=\"unary\"";
    assert_eq!(
        delta(&format!(
            "grpc_server_handled_total{{grpc_code=\"NotFound\",{revoke}}}"
        )),
        1.0
    );
    assert_eq!(
        delta(&format!("grpc_server_msg_sent_total{{{revoke}}}")),
        0.0
    );
    // Methods never called are listed with zeros, as etcd lists them: 41 methods (the
    // etcd services' and grpc.health.v1.Health's), each with 17 status codes.
    let handled = after
        .lines()
        .filter(|line| line.starts_with("grpc_server_handled_total{"))
        .count();
    assert_eq!(handled, 41 * 17, "{after}");
    assert_eq!(
        sample(
            &after,
            "grpc_server_started_total{grpc_method=\"Watch\",grpc_service=\"etcdserverpb.Watch\",grpc_type=\"bidi_stream\"}"
        ),
        0.0
    );
}

#[test]
fn cors_headers_follow_the_cors_flag() {
    let open_dir = tempfile::tempdir().unwrap();
    // etcd's default `--cors '*'`: every HTTP answer allows every origin.
    let open = Server::start(open_dir.path());
    let (head, _) = request(&open, "GET", "/version", &[], "");
    assert!(
        head.contains("access-control-allow-origin: *\r\n"),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-methods: post, get, options, put, delete"),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-headers: accept, content-type, authorization"),
        "{head}"
    );
    drop(open);

    let listed_dir = tempfile::tempdir().unwrap();
    let listed = Server::start_with(listed_dir.path(), &["--cors", "http://a.example:80"]);
    let (head, body) = request(
        &listed,
        "GET",
        "/version",
        &["Origin: http://a.example:80"],
        "",
    );
    assert!(
        head.contains("access-control-allow-origin: http://a.example:80\r\n"),
        "{head}"
    );
    assert!(body.contains("etcdserver"), "{body}");
    let (head, _) = request(
        &listed,
        "GET",
        "/version",
        &["Origin: http://c.example:80"],
        "",
    );
    assert!(!head.contains("access-control"), "{head}");
    let (head, _) = request(&listed, "GET", "/metrics", &[], "");
    assert!(!head.contains("access-control"), "{head}");
    // A preflight is answered 200 with an empty body on any path.
    let (head, body) = request(
        &listed,
        "OPTIONS",
        "/v3/kv/range",
        &["Origin: http://a.example:80"],
        "",
    );
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("access-control-allow-origin: http://a.example:80"),
        "{head}"
    );
    assert_eq!(body, "");
}

fn raft_index(head: &str) -> u64 {
    head.lines()
        .find_map(|line| line.strip_prefix("x-raft-index: "))
        .unwrap_or_else(|| panic!("no X-Raft-Index in {head}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn v2_leader_proposes_sync_while_ttl_nodes_exist() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--enable-v2"]);
    let (head, _) = request(&server, "PUT", "/v2/keys/t", &[], "value=1&ttl=100");
    assert!(head.starts_with("http/1.1 201"), "{head}");
    let start = raft_index(&head);
    let header = |head: &str, name: &str| {
        head.lines()
            .find_map(|line| line.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {head}"))
            .trim()
            .to_owned()
    };
    let store_index = header(&head, "x-etcd-index: ");
    // etcd 3.4.23 (measured): with a TTL key and no client writes, X-Raft-Index grows by
    // one SYNC per 500 ms tick while the store index (X-Etcd-Index) stays.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (head, _) = request(&server, "GET", "/v2/keys/t", &[], "");
        assert_eq!(header(&head, "x-etcd-index: "), store_index, "{head}");
        if raft_index(&head) >= start + 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no SYNC was proposed while a TTL key exists"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
