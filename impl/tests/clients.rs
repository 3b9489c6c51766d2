//! End-to-end: real etcd client libraries against the real `oxetcd` binary. Each script
//! in `clients/` drives one library through its basic calls and prints what it observes;
//! the `.expected` file beside it is what the same script printed against a fresh etcd
//! 3.4.23 started with `--enable-v2`.
//!
//! - `etcd3_basic.py`: python3-etcd3 (v3 gRPC): put/get/range/prefix/delete,
//!   transactions, leases, watches, locks, members.
//! - `etcd_v2_basic.py`: python3-etcd (v2 HTTP): write/read/compare-and-swap/directories/
//!   in-order keys/TTL, watches (plain, recursive, from an index), deletes, members.
//! - `grpc_health.py`: python3-grpcio (python3-etcd3's gRPC library): gRPC health Check
//!   and Watch for the server and for unknown services.
//!
//! The libraries are the Debian packages, installed for `/usr/bin/python3` by
//! `sh conformance/ensure-etcd.sh` (`make etcd-reference`). Re-record an expectation:
//! start `etcd --enable-v2` on a free port, then
//! `/usr/bin/python3 impl/tests/clients/etcd3_basic.py 127.0.0.1 PORT > impl/tests/clients/etcd3_basic.expected`.

#![allow(
    clippy::unwrap_used,
    reason = "integration test: the shared harness unwraps, a failed unwrap is a failed test"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The interpreter the Debian packages install for.
const PYTHON: &str = "/usr/bin/python3";

/// Bound on one script run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Fails clearly when the library is not installed (the test does not skip).
fn require_module(module: &str, package: &str) {
    let found = Command::new(PYTHON)
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{PYTHON} cannot import {module}: install the Debian package {package} with \
         `sh conformance/ensure-etcd.sh` (make etcd-reference)"
    );
}

/// Runs `clients/<script>` against the server and returns its stdout, failing on a
/// non-zero exit or a run longer than [`SCRIPT_TIMEOUT`].
fn run_script(server: &common::Server, script: &str) -> String {
    let mut child = Command::new(PYTHON)
        .arg(clients_dir().join(script))
        .arg("127.0.0.1")
        .arg(server.client_port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "{script} did not finish within {SCRIPT_TIMEOUT:?}; stdout:\n{}",
                String::from_utf8_lossy(&output.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{script} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}\nserver log:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    stdout
}

/// Compares line by line, naming the first line that differs.
fn assert_same_as_etcd(script: &str, actual: &str) {
    let expected_path = clients_dir().join(script.replace(".py", ".expected"));
    let expected = std::fs::read_to_string(&expected_path).unwrap();
    for (n, (want, got)) in expected.lines().zip(actual.lines()).enumerate() {
        assert_eq!(got, want, "{script}: line {} differs from etcd's", n + 1);
    }
    assert_eq!(
        actual.lines().count(),
        expected.lines().count(),
        "{script}: printed\n{actual}\nbut against etcd it printed\n{expected}"
    );
}

/// Runs `script` (whose library is `module` from Debian's `package`) against a fresh
/// oxetcd started with `flags` and compares its output with etcd's.
fn same_as_etcd(script: &str, module: &str, package: &str, flags: &[&str]) {
    require_module(module, package);
    let dir = tempfile::tempdir().unwrap();
    let server = common::Server::start_with(dir.path(), flags);
    let output = run_script(&server, script);
    assert_same_as_etcd(script, &output);
}

#[test]
fn python_etcd3_basic_calls_see_what_they_see_against_etcd() {
    same_as_etcd("etcd3_basic.py", "etcd3", "python3-etcd3", &[]);
}

#[test]
fn python_etcd_v2_basic_calls_see_what_they_see_against_etcd() {
    same_as_etcd("etcd_v2_basic.py", "etcd", "python3-etcd", &["--enable-v2"]);
}

#[test]
fn grpc_health_checks_see_what_they_see_against_etcd() {
    same_as_etcd(
        "grpc_health.py",
        "grpc",
        "python3-etcd3 (python3-grpcio)",
        &[],
    );
}
