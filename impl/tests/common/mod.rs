//! Harness for end-to-end tests: starts the real `oxetcd` binary on free loopback ports
//! with a temporary data dir, and runs the real `etcdctl` against it.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

pub mod cluster;
pub mod pki;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A port the OS says is free right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `etcdctl` to use: `$ETCDCTL` or the one on `PATH`. Fails clearly if missing.
pub fn etcdctl_path() -> PathBuf {
    if let Ok(path) = std::env::var("ETCDCTL") {
        return PathBuf::from(path);
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let candidate = dir.join("etcdctl");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "etcdctl (3.4.23) not found on PATH: run `make etcd-reference` (sh conformance/ensure-etcd.sh) \
         or set ETCDCTL=/path/to/etcdctl"
    );
}

/// A running `oxetcd` process; killed on drop.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    /// Client port.
    pub client_port: u16,
    /// Peer port.
    pub peer_port: u16,
    /// Data dir.
    pub data_dir: PathBuf,
    /// Log file (stderr of the process).
    pub log_path: PathBuf,
}

impl Server {
    /// Starts `oxetcd` with a data dir under `dir` and waits until it serves.
    pub fn start(dir: &Path) -> Server {
        Server::start_with(dir, &[])
    }

    /// As [`Server::start`], with extra flags.
    /// Ports are picked afresh (up to 5 times) when another process took one between
    /// picking and binding it.
    pub fn start_with(dir: &Path, extra: &[&str]) -> Server {
        for _ in 0..4 {
            let mut server = Server::spawn_on(dir, free_port(), free_port(), extra);
            match server.ready() {
                Ok(()) => return server,
                Err(log) if log.contains("Address already in use") => server.kill(),
                Err(log) => panic!("oxetcd did not become ready; log:\n{log}"),
            }
        }
        Server::start_on(dir, free_port(), free_port(), extra)
    }

    /// Starts on given ports (a restart keeps its ports and data dir).
    pub fn start_on(dir: &Path, client_port: u16, peer_port: u16, extra: &[&str]) -> Server {
        let server = Server::spawn_on(dir, client_port, peer_port, extra);
        server.wait_ready();
        server
    }

    /// Starts the process without waiting for it.
    fn spawn_on(dir: &Path, client_port: u16, peer_port: u16, extra: &[&str]) -> Server {
        let data_dir = dir.join("data.etcd");
        // One fresh log file per start: a restart must not see the previous process's
        // "ready" line and return before the new process listens.
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let start = STARTS.fetch_add(1, Ordering::Relaxed);
        let log_path = dir.join(format!("oxetcd-{client_port}-{start}.log"));
        let log = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&log_path)
            .unwrap();
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let child = Command::new(env!("CARGO_BIN_EXE_oxetcd"))
            .args(["--data-dir", data_dir.to_str().unwrap()])
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("default={peer}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start oxetcd");
        Server {
            child: Some(child),
            client_port,
            peer_port,
            data_dir,
            log_path,
        }
    }

    fn wait_ready(&self) {
        if let Err(log) = self.ready() {
            panic!("oxetcd did not become ready; log:\n{log}");
        }
    }

    /// Waits (30 s at most) until the process serves; its log if it exits or times out.
    fn ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            if log.contains("ready to serve client requests") {
                return Ok(());
            }
            if log.contains("Address already in use") {
                return Err(log);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(std::fs::read_to_string(&self.log_path).unwrap_or_default())
    }

    /// `127.0.0.1:port` for etcdctl's `--endpoints`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// Runs etcdctl (v3) with `args`; returns the whole output.
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        self.etcdctl_stdin(args, "")
    }

    /// Runs etcdctl with `stdin` fed in.
    pub fn etcdctl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(etcdctl_path())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint()))
            .arg("--command-timeout=10s")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run etcdctl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs etcdctl and returns stdout, failing the test on a non-zero exit.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.etcdctl(args);
        assert!(
            output.status.success(),
            "etcdctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// A plain HTTP/1.1 GET on the client port; returns (status line, body).
    pub fn http_get(&self, path: &str) -> (String, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.client_port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response.lines().next().unwrap_or_default().to_owned();
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
