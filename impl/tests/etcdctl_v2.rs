//! End-to-end: the real `etcdctl` 3.4.23 with `ETCDCTL_API=2` against `oxetcd
//! --enable-v2`, replaying the session in `etcdctl_v2_session.yaml`, whose expected
//! outputs were recorded from etcd 3.4.23 (store indexes are kept relative to the
//! index the session started at).
//!
//! Re-record against a real etcd started with `--enable-v2`:
//! `ETCDCTL_V2_RECORD=http://127.0.0.1:PORT cargo test -p oxetcd --test etcdctl_v2`.

#![allow(
    clippy::unwrap_used,
    reason = "integration test: the shared harness unwraps, a failed unwrap is a failed test"
)]

mod common;

use std::io::Read as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One step of the session.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct Step {
    /// etcdctl arguments, run to completion (or, with `spawn`, in the background).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    run: Vec<String>,
    /// Name of a background run.
    #[serde(skip_serializing_if = "Option::is_none")]
    spawn: Option<String>,
    /// Wait until the server reports this many waiting v2 watchers.
    #[serde(skip_serializing_if = "Option::is_none")]
    wait_watchers: Option<u64>,
    /// Finish a background run: wait for it to exit, or (with `lines`) until it printed
    /// that many lines, then stop it.
    #[serde(skip_serializing_if = "Option::is_none")]
    finish: Option<String>,
    /// See `finish`.
    #[serde(skip_serializing_if = "Option::is_none")]
    lines: Option<usize>,
    /// Output lines come in no set order (etcd lists unsorted children in Go map
    /// order): compared sorted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    unordered: bool,
    /// Expected stdout (normalised).
    #[serde(skip_serializing_if = "Option::is_none")]
    stdout: Option<String>,
    /// Expected stderr (normalised).
    #[serde(skip_serializing_if = "Option::is_none")]
    stderr: Option<String>,
    /// Expected exit status (foreground runs and waited background runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<i32>,
}

/// Bound on any single wait.
const WAIT: Duration = Duration::from_secs(15);

/// `{i+N}` in an argument is the store index the session started at plus N.
fn expand(arg: &str, base: u64) -> String {
    match arg
        .strip_prefix("{i+")
        .and_then(|r| r.strip_suffix('}'))
        .and_then(|n| n.parse::<u64>().ok())
    {
        Some(n) => (base + n).to_string(),
        None => arg.to_owned(),
    }
}

fn etcdctl(endpoint: &str, args: &[String], base: u64) -> Command {
    let mut command = Command::new(common::etcdctl_path());
    command
        .env("ETCDCTL_API", "2")
        .arg(format!("--endpoints={endpoint}"))
        .args(args.iter().map(|a| expand(a, base)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A v2 GET over plain HTTP/1.1: (header block, body).
fn http_get(endpoint: &str, path: &str) -> (String, String) {
    use std::io::Write as _;
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_default();
    (head.to_ascii_lowercase(), body.to_owned())
}

/// The store index now (`X-Etcd-Index` of `GET /v2/keys/`).
fn store_index(endpoint: &str) -> u64 {
    let (head, _) = http_get(endpoint, "/v2/keys/");
    head.lines()
        .find_map(|l| l.strip_prefix("x-etcd-index: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("X-Etcd-Index header")
}

fn watchers(endpoint: &str) -> u64 {
    let (_, body) = http_get(endpoint, "/v2/stats/store");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["watchers"].as_u64().unwrap()
}

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

fn wait_for_output(child: &mut Child, lines: usize) -> String {
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    while out.iter().filter(|b| **b == b'\n').count() < lines && Instant::now() < deadline {
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(100)) {
            out.extend(chunk);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs the session against `endpoint`: with `record`, fills in the expected outputs.
fn run_session(endpoint: &str, steps: &mut [Step], record: bool) {
    let base = store_index(endpoint);
    let mut background: Vec<(String, Child)> = Vec::new();
    for (n, step) in steps.iter_mut().enumerate() {
        if let Some(count) = step.wait_watchers {
            let deadline = Instant::now() + WAIT;
            while watchers(endpoint) < count {
                assert!(
                    Instant::now() < deadline,
                    "step {n}: watchers never reached {count}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            continue;
        }
        let (stdout, stderr, status) = if let Some(name) = &step.spawn {
            let child = etcdctl(endpoint, &step.run, base).spawn().unwrap();
            background.push((name.clone(), child));
            continue;
        } else if let Some(name) = &step.finish {
            let i = background.iter().position(|(b, _)| b == name).unwrap();
            let (_, mut child) = background.remove(i);
            match step.lines {
                Some(lines) => {
                    let out = wait_for_output(&mut child, lines);
                    let _ = child.kill();
                    let _ = child.wait();
                    (out, String::new(), None)
                }
                None => {
                    let deadline = Instant::now() + WAIT;
                    while child.try_wait().unwrap().is_none() {
                        if Instant::now() > deadline {
                            let _ = child.kill();
                            panic!("step {n}: background {name} did not finish");
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    let output = child.wait_with_output().unwrap();
                    (
                        String::from_utf8_lossy(&output.stdout).into_owned(),
                        String::from_utf8_lossy(&output.stderr).into_owned(),
                        output.status.code(),
                    )
                }
            }
        } else {
            let output = etcdctl(endpoint, &step.run, base).output().unwrap();
            (
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
                output.status.code(),
            )
        };
        let mut stdout = normalize(&stdout, base);
        if step.run.first().is_some_and(|c| c == "member") {
            stdout = normalize_member_line(&stdout);
        }
        if step.unordered {
            let mut lines: Vec<&str> = stdout.lines().collect();
            lines.sort_unstable();
            stdout = lines.iter().map(|l| format!("{l}\n")).collect();
        }
        let stderr = normalize(&stderr, base);
        if record {
            step.stdout = Some(stdout);
            step.stderr = (!stderr.is_empty()).then_some(stderr);
            step.status = status;
        } else {
            let what = format!("step {n}: etcdctl {:?} {:?}", step.run, step.finish);
            assert_eq!(Some(&stdout), step.stdout.as_ref(), "{what}: stdout");
            assert_eq!(
                stderr,
                step.stderr.clone().unwrap_or_default(),
                "{what}: stderr"
            );
            assert_eq!(status, step.status, "{what}: exit status");
        }
    }
    for (_, mut child) in background {
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[test]
fn etcdctl_v2_session_prints_what_etcd_prints() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/etcdctl_v2_session.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut steps: Vec<Step> = serde_yaml::from_str(&text).unwrap();
    if let Ok(endpoint) = std::env::var("ETCDCTL_V2_RECORD") {
        run_session(&endpoint, &mut steps, true);
        std::fs::write(&path, serde_yaml::to_string(&steps).unwrap()).unwrap();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = common::Server::start_with(dir.path(), &["--enable-v2"]);
    let endpoint = format!("http://{}", server.endpoint());
    run_session(&endpoint, &mut steps, false);
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
    let output = etcdctl(
        &format!("http://{}", server.endpoint()),
        &["--no-sync".to_owned(), "ls".to_owned()],
        0,
    )
    .output()
    .unwrap();
    assert!(
        !output.status.success(),
        "etcdctl ls must fail without --enable-v2"
    );
}
