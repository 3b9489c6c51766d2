//! End-to-end: what a client sees of a new single-member cluster, as etcd 3.4.23 shows
//! it. Recorded from etcd 3.4.23 (`--enable-v2`, one member): the bootstrap entry is
//! committed at term 1, so the member leads at term 2; after its empty entry, its
//! published attributes and the cluster version, `/v2/keys/` answers with X-Etcd-Index 3,
//! X-Raft-Index 4 and X-Raft-Term 2, the first v2 key gets index 4 (Raft index 5), the
//! v3 revision is still 1, and the v2 store's `/0` membership nodes stay hidden.

#![allow(
    clippy::unwrap_used,
    reason = "integration test: the shared harness unwraps, a failed unwrap is a failed test"
)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Server;

/// One HTTP/1.1 request; returns the status line, the headers (lowercase names) and the
/// body.
fn http(
    server: &Server,
    method: &str,
    path: &str,
    body: &str,
) -> (String, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", server.client_port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header(headers: &[(String, String)], name: &str) -> String {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[test]
fn a_new_member_serves_at_term_two_with_etcds_v2_and_raft_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--enable-v2"]);

    // The cluster version is set by the leader just after start: wait for it (bounded).
    let deadline = Instant::now() + Duration::from_secs(20);
    let headers = loop {
        let (status, headers, body) = http(&server, "GET", "/v2/keys/", "");
        assert!(status.contains("200"), "{status} {body}");
        if header(&headers, "x-etcd-index") == "3" || Instant::now() > deadline {
            assert_eq!(body, "{\"action\":\"get\",\"node\":{\"dir\":true}}\n");
            break headers;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        (
            header(&headers, "x-etcd-index"),
            header(&headers, "x-raft-index"),
            header(&headers, "x-raft-term")
        ),
        ("3".to_owned(), "4".to_owned(), "2".to_owned()),
        "{headers:?}"
    );

    let (status, headers, body) = http(&server, "PUT", "/v2/keys/a", "value=1");
    assert!(status.contains("201"), "{status} {body}");
    assert_eq!(
        body,
        "{\"action\":\"set\",\"node\":{\"key\":\"/a\",\"value\":\"1\",\"modifiedIndex\":4,\"createdIndex\":4}}\n"
    );
    assert_eq!(
        (
            header(&headers, "x-etcd-index"),
            header(&headers, "x-raft-index")
        ),
        ("4".to_owned(), "5".to_owned())
    );

    // The membership nodes under /0 are not keys.
    let (status, _, body) = http(&server, "GET", "/v2/keys/0", "");
    assert!(status.contains("404"), "{status} {body}");

    let status: serde_json::Value =
        serde_json::from_str(&server.ok(&["endpoint", "status", "-w", "json"])).unwrap();
    let status = &status[0]["Status"];
    assert_eq!(status["raftTerm"].as_u64(), Some(2), "{status}");
    assert_eq!(status["raftIndex"].as_u64(), Some(5), "{status}");
    assert_eq!(status["header"]["revision"].as_i64(), Some(1), "{status}");
    assert_eq!(status["header"]["raft_term"].as_u64(), Some(2), "{status}");
}

/// An `--initial-cluster` that does not fit the member: etcd 3.4.23 logs its critical
/// `etcdmain` line and exits with status 1 (texts recorded from etcd 3.4.23 with the
/// same flags; only the timestamp before ` C | ` differs).
#[test]
fn a_mismatched_initial_cluster_is_refused_with_etcds_texts() {
    let own = "http://127.0.0.1:1";
    let cases: [(&str, &str, String); 4] = [
        (
            "s1",
            "s1=http://127.0.0.1:9",
            format!(
                "--initial-cluster has s1=http://127.0.0.1:9 but missing from \
                 --initial-advertise-peer-urls={own} (resolved urls: \"{own}\" != \
                 \"http://127.0.0.1:9\")"
            ),
        ),
        (
            "s2",
            "s1=http://127.0.0.1:1",
            "couldn't find local name \"s2\" in the initial cluster configuration".to_owned(),
        ),
        (
            "s1",
            "s1=http://127.0.0.1:1,s1=http://127.0.0.1:9",
            format!(
                "--initial-cluster has s1=http://127.0.0.1:9 but missing from \
                 --initial-advertise-peer-urls={own} (len([\"{own}\"]) != \
                 len([\"{own}\" \"http://127.0.0.1:9\"]))"
            ),
        ),
        (
            "s1",
            "s1=http://127.0.0.1:1,s2=http://127.0.0.1:1",
            "initial cluster s1=http://127.0.0.1:1,s2=http://127.0.0.1:1 has duplicate url"
                .to_owned(),
        ),
    ];
    for (name, initial_cluster, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_oxetcd"))
            .args(["--name", name, "--data-dir"])
            .arg(dir.path().join("d"))
            .args(["--listen-client-urls", "http://127.0.0.1:0"])
            .args(["--advertise-client-urls", "http://127.0.0.1:3"])
            .args(["--listen-peer-urls", "http://127.0.0.1:0"])
            .args(["--initial-advertise-peer-urls", own])
            .args(["--initial-cluster", initial_cluster])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let line = stderr.lines().last().unwrap_or_default();
        let message = line.split_once(" C | etcdmain: ").map(|(_, m)| m);
        assert_eq!(message, Some(expected.as_str()), "stderr:\n{stderr}");
        assert_eq!(output.status.code(), Some(1), "stderr:\n{stderr}");
    }
}
