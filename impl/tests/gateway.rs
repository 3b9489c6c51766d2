//! End-to-end: the v3 JSON gateway of the real `oxetcd` binary, driven with `curl` the way
//! etcd's documentation drives etcd's gateway (the recorded transcripts in
//! `conformance/transcripts/gateway` cover the services; this covers the HTTP edges).

#![allow(
    clippy::unwrap_used,
    reason = "integration test: a failed unwrap is a failed test"
)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};

use common::Server;

/// `curl -s -i` with `args`; returns (status line and headers, body).
fn curl(args: &[&str]) -> (String, String) {
    let output: Output = Command::new("curl")
        .args(["-s", "-i", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    (head.to_owned(), body.to_owned())
}

fn post(server: &Server, path: &str, body: &str) -> (String, String) {
    let url = format!("http://{}{path}", server.endpoint());
    curl(&["-X", "POST", &url, "-d", body])
}

#[test]
fn unary_calls_errors_and_paths_answer_as_etcds_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());

    let (head, body) = post(&server, "/v3/kv/put", r#"{"key":"Zm9v","value":"PGI+"}"#);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    assert!(body.contains(r#""revision":"2""#), "{body}");

    // Both proto and JSON field names; 64-bit integers quoted; bytes as base64.
    let (_, body) = post(
        &server,
        "/v3beta/kv/range",
        r#"{"key":"Zm9v","keysOnly":false,"limit":"1"}"#,
    );
    assert!(
        body.ends_with(r#""kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"PGI+"}],"count":"1"}"#),
        "{body}"
    );

    let cases = [
        (
            "/v3/kv/range",
            "{}",
            "400",
            r#"{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}"#,
        ),
        (
            "/v3/kv/range",
            r#"{"key":"Zm9v""#,
            "400",
            r#"{"error":"unexpected EOF","message":"unexpected EOF","code":3}"#,
        ),
        (
            "/v3/kv/range",
            r#"{"key":"!!"}"#,
            "400",
            r#"{"error":"illegal base64 data at input byte 0","message":"illegal base64 data at input byte 0","code":3}"#,
        ),
        (
            "/v3/lease/revoke",
            r#"{"ID":"77"}"#,
            "404",
            r#"{"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}"#,
        ),
        ("/v3/kv/range/", "{}", "404", "Not Found\n"),
        ("/v3alpha/kv/range", "{}", "404", "404 page not found\n"),
    ];
    for (path, request, status, expected) in cases {
        let (head, body) = post(&server, path, request);
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status}")),
            "{path} {request}: {head}"
        );
        assert_eq!(body, expected, "{path} {request}");
    }

    let url = format!("http://{}/v3/kv/range", server.endpoint());
    let (head, body) = curl(&[&url]);
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
    assert_eq!(body, "Method Not Allowed\n");
}

#[test]
fn watch_streams_newline_delimited_results_until_the_client_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = format!("http://{}/v3/watch", server.endpoint());
    // The request body ends at once; the watch must stay open for the later put.
    let mut watch = Command::new("curl")
        .args(["-s", "-N", "--max-time", "20", &url, "-d"])
        .arg(r#"{"create_request":{"key":"dw==","prev_kv":true}}"#)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let created = lines.next().unwrap().unwrap();
    assert!(created.starts_with(r#"{"result":{"header":"#), "{created}");
    assert!(created.ends_with(r#""created":true}}"#), "{created}");

    for value in ["MQ==", "Mg=="] {
        let (head, _) = post(
            &server,
            "/v3/kv/put",
            &format!(r#"{{"key":"dw==","value":"{value}"}}"#),
        );
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
    let first = lines.next().unwrap().unwrap();
    assert!(
        first.contains(r#""events":[{"kv":{"key":"dw==","create_revision":"2","mod_revision":"2","version":"1","value":"MQ=="}}]"#),
        "{first}"
    );
    let second = lines.next().unwrap().unwrap();
    assert!(second.contains(r#""prev_kv":{"key":"dw==""#), "{second}");
    let _ = watch.kill();
    let _ = watch.wait();

    // A bad first request is answered as an error of unknown kind, as etcd does.
    let (head, body) = post(&server, "/v3/watch", "xx");
    assert!(head.starts_with("HTTP/1.1 500"), "{head}");
    assert_eq!(
        body,
        r#"{"error":"invalid character 'x' looking for beginning of value","message":"invalid character 'x' looking for beginning of value","code":2}"#
    );
}

#[test]
fn lease_keepalive_answers_each_request_of_the_body_then_ends() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (_, body) = post(&server, "/v3/lease/grant", r#"{"ID":7,"TTL":60}"#);
    assert!(body.contains(r#""ID":"7","TTL":"60""#), "{body}");
    let url = format!("http://{}/v3/lease/keepalive", server.endpoint());
    let mut child = Command::new("curl")
        .args(["-s", "-N", "--max-time", "10", &url, "--data-binary", "@-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"ID\":7}\n{\"ID\":\"7\"}\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for line in lines {
        assert!(line.starts_with(r#"{"result":{"header":"#), "{line}");
        assert!(line.ends_with(r#""ID":"7","TTL":"60"}}"#), "{line}");
    }
}

/// etcd's gateway dials its own gRPC server, so its calls count in the gRPC byte
/// metrics (checked on etcd 3.4.23: a put and a range through `/v3/` move both).
#[test]
fn gateway_calls_count_in_the_grpc_byte_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let metric = |name: &str| -> f64 {
        let url = format!("http://{}/metrics", server.endpoint());
        let (_, body) = curl(&[&url]);
        body.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no sample {name}"))
            .parse()
            .unwrap()
    };
    let received = "etcd_network_client_grpc_received_bytes_total";
    let sent = "etcd_network_client_grpc_sent_bytes_total";
    let before = (metric(received), metric(sent));
    let (head, _) = post(&server, "/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (head, _) = post(&server, "/v3/kv/range", r#"{"key":"Zm9v"}"#);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let after = (metric(received), metric(sent));
    // The request messages' bytes, as etcd counts them: 10 (key and value) + 5 (key).
    assert_eq!(after.0 - before.0, 15.0, "received {before:?} -> {after:?}");
    assert!(after.1 > before.1, "sent {before:?} -> {after:?}");
}
