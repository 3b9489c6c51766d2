//! Start-up and request checks compared with etcd 3.4.23: `--max-request-bytes` refuses
//! oversize v3 requests on every API with etcd's error (KV, auth, the JSON gateway)
//! while the v2 keys API takes form bodies up to Go's 10 MiB; the corruption-check
//! flags are accepted, checked and logged as etcd logs them.

#![allow(
    clippy::unwrap_used,
    reason = "integration test: a failed unwrap is a failed test"
)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;

/// One HTTP/1.1 request with a body; returns (status line, body).
fn http(
    server: &Server,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", server.client_port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    // The server may answer before reading the whole body.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn refused_as_too_large(server: &Server, args: &[&str]) {
    let output = server.etcdctl(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("Error: etcdserver: request is too large"),
        "etcdctl {:?}: {stderr}",
        &args[..2]
    );
}

#[test]
fn oversize_requests_are_refused_on_every_v3_api_and_v2_takes_go_sized_forms() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--max-request-bytes", "1024", "--enable-v2"]);
    let big = "a".repeat(2000);
    // etcd 3.4.23 with --max-request-bytes 1024 refuses each of these.
    refused_as_too_large(&server, &["put", "k", &big]);
    refused_as_too_large(&server, &["user", "add", &format!("{big}:pw")]);
    refused_as_too_large(&server, &["role", "add", &big]);
    // Small requests pass.
    server.ok(&["put", "k", "small"]);
    assert!(
        server
            .ok(&["lease", "grant", "10"])
            .contains("granted with TTL(10s)")
    );
    // The gateway answers as etcd's: {"error":...,"message":...,"code":3}.
    let value = base64_of(big.as_bytes());
    let (status, body) = http(
        &server,
        "POST",
        "/v3/kv/put",
        "application/json",
        format!(r#"{{"key":"Zm9v","value":"{value}"}}"#).as_bytes(),
    );
    assert!(
        body.contains(r#""message":"etcdserver: request is too large","code":3"#),
        "{status}: {body}"
    );
    // v2 has no --max-request-bytes limit in etcd: a 3 MB value is set.
    let form = format!("value={}", "b".repeat(3_000_000));
    let (status, body) = http(
        &server,
        "PUT",
        "/v2/keys/big",
        "application/x-www-form-urlencoded",
        form.as_bytes(),
    );
    assert!(
        status.contains("201"),
        "{status}: {}",
        &body[..body.len().min(200)]
    );
    // Past Go's 10 MiB form limit etcd answers 400 with error code 210.
    let form = format!("value={}", "c".repeat(11_000_000));
    let (status, body) = http(
        &server,
        "PUT",
        "/v2/keys/big",
        "application/x-www-form-urlencoded",
        form.as_bytes(),
    );
    assert!(status.contains("400"), "{status}: {body}");
    assert!(
        body.starts_with(
            r#"{"errorCode":210,"message":"Invalid POST form","cause":"http: POST too large","index":0}"#
        ),
        "{body}"
    );
}

fn base64_of(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn corruption_check_flags_are_checked_and_logged_as_etcd_does() {
    // etcd: `invalid value "abc" for flag -experimental-corrupt-check-time: parse
    // error`, exit 2.
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_oxetcd"))
        .args(["--data-dir", dir.path().join("d").to_str().unwrap()])
        .args(["--experimental-corrupt-check-time", "abc"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "a bad value must stop oxetcd");
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(r#"invalid value "abc" for flag -experimental-corrupt-check-time"#),
        "{stderr}"
    );

    let flags = [
        "--experimental-initial-corrupt-check",
        "--experimental-corrupt-check-time",
        "200ms",
    ];
    let wait_for = |server: &Server, line: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !server.log().contains(line) {
            assert!(Instant::now() < deadline, "{}", server.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // A fresh data dir: etcd 3.4.23 runs only the periodic check.
    let mut server = Server::start_with(dir.path(), &flags);
    wait_for(&server, "finished peer corruption check");
    let log = server.log();
    assert!(
        log.contains("enabled corruption checking with 200ms interval"),
        "{log}"
    );
    assert!(!log.contains("initial corruption check"), "{log}");
    server.kill();
    // A restart on it runs the initial check first.
    let server = Server::start_with(dir.path(), &flags);
    wait_for(
        &server,
        "succeeded on initial corruption checking: no corruption",
    );
    wait_for(&server, "finished peer corruption check");
    let log = server.log();
    assert!(
        log.contains("starting initial corruption check with timeout 7s..."),
        "{log}"
    );
}
