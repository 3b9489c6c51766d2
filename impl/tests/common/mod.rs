//! Harness for end-to-end tests: starts the real `oxetcd` binary (or the reference etcd
//! 3.4.23, with the same flags) on free loopback ports with a temporary data dir, and runs
//! the real `etcdctl` against it.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

pub mod cluster;
pub mod pki;
pub mod session;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A port free right now, outside the range outgoing connections take their source
/// ports from (`oxetcd_conformance::ports`).
pub fn free_port() -> u16 {
    oxetcd_conformance::ports::free_port().unwrap()
}

/// The `oxetcd` binary under test: `$OXETCD_BIN`, else the one Cargo built for this test
/// (the `oxetcd` package's own, or impl/client-tests' `oxetcd-under-test`, built from the
/// same source).
pub fn oxetcd_path() -> PathBuf {
    if let Ok(path) = std::env::var("OXETCD_BIN") {
        return PathBuf::from(path);
    }
    let built = option_env!("CARGO_BIN_EXE_oxetcd")
        .or(option_env!("CARGO_BIN_EXE_oxetcd-under-test"))
        .expect("this test package builds no oxetcd binary: set OXETCD_BIN");
    PathBuf::from(built)
}

/// The reference `etcd` (3.4.23): `$ETCD` or the one on `PATH`. Fails clearly if missing.
pub fn etcd_path() -> PathBuf {
    program_path("ETCD", "etcd")
}

/// The `etcdctl` to use: `$ETCDCTL` or the one on `PATH`. Fails clearly if missing.
pub fn etcdctl_path() -> PathBuf {
    program_path("ETCDCTL", "etcdctl")
}

/// `$variable`, else `name` on `PATH`; panics with how to install it.
fn program_path(variable: &str, name: &str) -> PathBuf {
    if let Ok(path) = std::env::var(variable) {
        return PathBuf::from(path);
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "{name} (3.4.23) not found on PATH: run `make etcd-reference` (sh conformance/ensure-etcd.sh) \
         or set {variable}=/path/to/{name}"
    );
}

/// A running `oxetcd` (or reference etcd) process; killed on drop.
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
        Server::start_program(&oxetcd_path(), dir, extra)
    }

    /// Starts the reference etcd 3.4.23 with the same flags as [`Server::start_with`].
    pub fn start_etcd(dir: &Path, extra: &[&str]) -> Server {
        Server::start_program(&etcd_path(), dir, extra)
    }

    /// Starts `program` (oxetcd or etcd) on fresh ports, picked again (up to 5 times)
    /// when another process took one between picking and binding it.
    fn start_program(program: &Path, dir: &Path, extra: &[&str]) -> Server {
        for _ in 0..4 {
            let mut server = Server::spawn_on(program, dir, free_port(), free_port(), extra);
            match server.ready() {
                Ok(()) => return server,
                Err(log) if address_in_use(&log) => server.kill(),
                Err(log) => panic!("{} did not become ready; log:\n{log}", program.display()),
            }
        }
        let server = Server::spawn_on(program, dir, free_port(), free_port(), extra);
        server.wait_ready();
        server
    }

    /// Starts oxetcd on given ports (a restart keeps its ports and data dir).
    pub fn start_on(dir: &Path, client_port: u16, peer_port: u16, extra: &[&str]) -> Server {
        let server = Server::spawn_on(&oxetcd_path(), dir, client_port, peer_port, extra);
        server.wait_ready();
        server
    }

    /// Starts the process without waiting for it.
    fn spawn_on(
        program: &Path,
        dir: &Path,
        client_port: u16,
        peer_port: u16,
        extra: &[&str],
    ) -> Server {
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
        let child = Command::new(program)
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
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
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
            panic!("server did not become ready; log:\n{log}");
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
            if address_in_use(&log) {
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

    /// etcdctl (v3) against this server, with a 10 s command timeout.
    pub fn etcdctl_v3(&self) -> Etcdctl {
        Etcdctl::v3(&self.endpoint()).flag("--command-timeout=10s")
    }

    /// etcdctl with `ETCDCTL_API=2` against this server, with a 10 s timeout.
    pub fn etcdctl_v2(&self) -> Etcdctl {
        Etcdctl::v2(&self.endpoint()).flag("--timeout=10s")
    }

    /// Runs etcdctl (v3) with `args`; returns the whole output.
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        self.etcdctl_v3().output(args, "")
    }

    /// Runs etcdctl with `stdin` fed in.
    pub fn etcdctl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        self.etcdctl_v3().output(args, stdin)
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
        let (head, body) = http_get(&self.endpoint(), path);
        (head.lines().next().unwrap_or_default().to_owned(), body)
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

/// oxetcd says "Address already in use", etcd "address already in use".
fn address_in_use(log: &str) -> bool {
    log.contains("ddress already in use")
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain HTTP/1.1 GET of `path` at `endpoint` (`host:port`, `http://` allowed); returns
/// (header block, body).
pub fn http_get(endpoint: &str, path: &str) -> (String, String) {
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_default();
    (head.to_owned(), body.to_owned())
}

/// How to run the real etcdctl against one endpoint: API version, flags, environment.
#[derive(Debug, Clone)]
pub struct Etcdctl {
    api: u8,
    endpoint: String,
    flags: Vec<String>,
    dir: Option<PathBuf>,
}

impl Etcdctl {
    /// `ETCDCTL_API=3` against `endpoint` (`host:port` or a URL), given as it is.
    pub fn v3(endpoint: &str) -> Etcdctl {
        Etcdctl::api(3, endpoint)
    }

    /// `ETCDCTL_API=2` against `endpoint`; `http://` is added when it has no scheme.
    pub fn v2(endpoint: &str) -> Etcdctl {
        Etcdctl::api(2, endpoint)
    }

    /// The given API version (2 or 3), as [`Etcdctl::v2`] or [`Etcdctl::v3`].
    pub fn api(api: u8, endpoint: &str) -> Etcdctl {
        let endpoint = if api == 2 && !endpoint.contains("://") {
            format!("http://{endpoint}")
        } else {
            endpoint.to_owned()
        };
        Etcdctl {
            api,
            endpoint,
            flags: Vec::new(),
            dir: None,
        }
    }

    /// One more global flag, before the command's arguments.
    pub fn flag(mut self, flag: impl Into<String>) -> Etcdctl {
        self.flags.push(flag.into());
        self
    }

    /// Runs in `dir` (where files the command names are read and written).
    pub fn in_dir(mut self, dir: &Path) -> Etcdctl {
        self.dir = Some(dir.to_owned());
        self
    }

    /// The command, with stdin, stdout and stderr piped.
    pub fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut command = Command::new(etcdctl_path());
        command
            .env("ETCDCTL_API", self.api.to_string())
            .arg(format!("--endpoints={}", self.endpoint))
            .args(&self.flags)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        command
    }

    /// Runs to the end with nothing on stdin; the whole output.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.output(args, "")
    }

    /// Runs to the end with `stdin` fed in; the whole output.
    pub fn output<S: AsRef<OsStr>>(&self, args: &[S], stdin: &str) -> Output {
        let mut child = self.command(args).spawn().expect("run etcdctl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Starts in the background (stdin closed); see [`Background`].
    pub fn spawn<S: AsRef<OsStr>>(&self, args: &[S]) -> Background {
        Background::start(self.command(args))
    }
}

/// A background process whose stdout lines arrive on a channel; killed and reaped on drop.
#[derive(Debug)]
pub struct Background {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Background {
    /// Spawns `command` (stdout and stderr piped) with its stdin closed.
    pub fn start(mut command: Command) -> Background {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a background process");
        drop(child.stdin.take());
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Background { child, lines }
    }

    /// The next stdout line, or `None` if none comes within `wait` (or stdout closed).
    pub fn line(&self, wait: Duration) -> Option<String> {
        self.lines.recv_timeout(wait).ok()
    }

    /// Up to `count` lines, each newline-terminated, waiting `wait` at most in all.
    pub fn lines(&self, count: usize, wait: Duration) -> String {
        let deadline = Instant::now() + wait;
        let mut out = String::new();
        for _ in 0..count {
            match self.line(deadline.saturating_duration_since(Instant::now())) {
                Some(line) => {
                    out.push_str(&line);
                    out.push('\n');
                }
                None => break,
            }
        }
        out
    }

    /// Waits (`wait` at most) for the process to exit: the rest of its stdout, its
    /// stderr and its exit status; `None` if it is still running (it is then killed).
    pub fn finish(&mut self, wait: Duration) -> Option<(String, String, Option<i32>)> {
        let deadline = Instant::now() + wait;
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                self.stop(false);
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut out = String::new();
        while let Ok(line) = self.lines.recv_timeout(wait) {
            out.push_str(&line);
            out.push('\n');
        }
        let mut err = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            stderr.read_to_string(&mut err).unwrap();
        }
        Some((out, err, self.child.wait().unwrap().code()))
    }

    /// Stops the process: with `interrupt`, SIGINT first (as ^C, so etcdctl releases a
    /// lock or resigns) and a bounded wait for it to exit; then SIGKILL.
    pub fn stop(&mut self, interrupt: bool) {
        if interrupt {
            let _ = Command::new("kill")
                .args(["-INT", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process has not exited yet.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop(false);
    }
}
