//! End-to-end: the real `etcdctl` 3.4.23 with `ETCDCTL_API=2` against `oxetcd
//! --enable-v2`, replaying the session in `etcdctl_v2_session.yaml`, whose expected
//! outputs were recorded from etcd 3.4.23 (store indexes are kept relative to the
//! index the session started at).
//!
//! Re-record against etcd 3.4.23 (`etcd --enable-v2`, started by the test itself):
//! `ETCDCTL_V2_RECORD=1 cargo test -p oxetcd --test etcdctl_v2`.

#![allow(
    clippy::unwrap_used,
    reason = "integration test: the shared harness unwraps, a failed unwrap is a failed test"
)]

mod common;

use std::path::Path;

use common::Etcdctl;
use common::session::{Session, Step};

/// Rewrites store indexes as `{i+N}` relative to `base`: 20-digit in-order key names,
/// the `[N]` of error lines, the `*Index:` lines of `-o extended` and the indexes of
/// `-o json`.
fn normalize(text: &str, base: u64) -> String {
    let rel = |n: u64| format!("{{i+{}}}", n.saturating_sub(base));
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let mut line = line.to_owned();
        for prefix in ["Created-Index: ", "Modified-Index: ", "Index: "] {
            if let Some(n) = line
                .strip_prefix(prefix)
                .and_then(|r| r.trim_end().parse::<u64>().ok())
            {
                line = format!("{prefix}{}\n", rel(n));
            }
        }
        for field in ["\"createdIndex\":", "\"modifiedIndex\":"] {
            if let Some(at) = line.find(field) {
                let start = at + field.len();
                let digits = line[start..].bytes().take_while(u8::is_ascii_digit).count();
                if let Ok(n) = line[start..start + digits].parse::<u64>() {
                    line.replace_range(start..start + digits, &rel(n));
                }
            }
        }
        if line.starts_with("Error:")
            && let Some(open) = line.rfind('[')
            && let Some(n) = line[open + 1..]
                .trim_end()
                .strip_suffix(']')
                .and_then(|n| n.parse::<u64>().ok())
        {
            line = format!("{}[{}]\n", &line[..open], rel(n));
        }
        // 20-digit in-order names.
        let bytes = line.as_bytes();
        let mut fixed = String::new();
        let mut i = 0;
        while i < bytes.len() {
            let run = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            if run == 20 {
                let n: u64 = line[i..i + 20].parse().unwrap();
                fixed.push_str(&rel(n));
                i += 20;
            } else if run > 0 {
                fixed.push_str(&line[i..i + run]);
                i += run;
            } else {
                let c = line[i..].chars().next().unwrap();
                fixed.push(c);
                i += c.len_utf8();
            }
        }
        out.push_str(&fixed);
    }
    out
}

/// etcdctl prints the member id, name and URLs: keep only the shape.
fn normalize_member_line(text: &str) -> String {
    text.lines()
        .map(|l| match l.split_once(": name=") {
            Some((_, rest)) => {
                let leader = rest.split_whitespace().last().unwrap_or("");
                format!("<id>: name=<name> peerURLs=<peer> clientURLs=<client> {leader}\n")
            }
            None => format!("{l}\n"),
        })
        .collect()
}

#[test]
fn etcdctl_v2_session_prints_what_etcd_prints() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/etcdctl_v2_session.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut steps: Vec<Step> = serde_yaml::from_str(&text).unwrap();
    let normalized = |step: &Step, base: u64, stdout: &str, stderr: &str| {
        let mut stdout = normalize(stdout, base);
        if step.run.first().is_some_and(|c| c == "member") {
            stdout = normalize_member_line(&stdout);
        }
        (stdout, normalize(stderr, base))
    };
    let dir = tempfile::tempdir().unwrap();
    if std::env::var_os("ETCDCTL_V2_RECORD").is_some() {
        let etcd = common::Server::start_etcd(dir.path(), &["--enable-v2"]);
        Session::new(&etcd.endpoint(), 2).run(&mut steps, true, &normalized);
        std::fs::write(&path, serde_yaml::to_string(&steps).unwrap()).unwrap();
        return;
    }
    let server = common::Server::start_with(dir.path(), &["--enable-v2"]);
    Session::new(&server.endpoint(), 2).run(&mut steps, false, &normalized);
}

#[test]
fn without_enable_v2_the_v2_api_is_not_found_as_in_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::Server::start(dir.path());
    for path in ["/v2/keys/", "/v2/members", "/v2/stats/self", "/v2/machines"] {
        let (status, body) = server.http_get(path);
        assert!(status.contains("404"), "{path}: {status}");
        assert_eq!(body, "404 page not found\n", "{path}");
    }
    let output = Etcdctl::v2(&server.endpoint()).run(&["--no-sync", "ls"]);
    assert!(
        !output.status.success(),
        "etcdctl ls must fail without --enable-v2"
    );
}
