//! Launching a fresh single-member server for transcripts that declare `server_flags`.
//!
//! The server binary (real etcd, oxetcd, or anything accepting etcd's flag names) is
//! started with a temporary data dir, free loopback ports and
//! `--name default --enable-v2`, the usual `--listen-*`/`--advertise-*` URLs and
//! `--initial-cluster`, followed by the transcript's flags. It counts as ready when
//! `/health` answers 200; if it exits first, the exit status and the end of its log are
//! the error. Dropping a [`Launched`] kills the process and removes the data dir.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// How long a launched server may take to answer `/health`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts servers from one binary.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The server binary (a path, or a name looked up on `PATH`).
    pub bin: PathBuf,
    /// The transcript directory, substituted for `{transcripts}` in flags.
    pub transcripts: PathBuf,
}

/// A running launched server; killed (and its data dir removed) on drop.
#[derive(Debug)]
pub struct Launched {
    child: Child,
    dir: tempfile::TempDir,
    /// Its client URL, e.g. `http://127.0.0.1:41234`.
    pub endpoint: String,
}

fn free_port() -> Result<u16> {
    crate::ports::free_port().context("picking a free port")
}

impl Launcher {
    /// A launcher for `bin`; `{transcripts}` in flags becomes `transcripts`.
    pub fn new(bin: impl Into<PathBuf>, transcripts: &Path) -> Self {
        Self {
            bin: bin.into(),
            transcripts: std::path::absolute(transcripts)
                .unwrap_or_else(|_| transcripts.to_path_buf()),
        }
    }

    /// The transcript's flags with `{transcripts}` expanded.
    pub fn expand(&self, flags: &[String]) -> Vec<String> {
        let dir = self.transcripts.to_string_lossy();
        flags
            .iter()
            .map(|f| f.replace("{transcripts}", &dir))
            .collect()
    }

    /// Starts a fresh server with `flags` and waits until it is healthy.
    pub fn launch(&self, flags: &[String]) -> Result<Launched> {
        let dir = tempfile::tempdir().context("temp dir for the launched server")?;
        let (client, peer) = (free_port()?, free_port()?);
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(&self.bin)
            .args(["--name", "default", "--enable-v2"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &endpoint])
            .args(["--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("default={peer_url}")])
            .args(self.expand(flags))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        let mut launched = Launched {
            child,
            dir,
            endpoint,
        };
        launched.wait_ready(&log_path)?;
        Ok(launched)
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

fn healthy(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200") || out.starts_with("HTTP/1.0 200")
}

impl Launched {
    fn wait_ready(&mut self, log: &Path) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = self.endpoint.trim_start_matches("http://").to_owned();
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the server exited with {status} before it was ready:\n{}",
                    log_tail(log)
                );
            }
            if healthy(&addr) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(anyhow!(
            "the server was not healthy within {READY_TIMEOUT:?}:\n{}",
            log_tail(log)
        ))
    }

    /// The data and log directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
