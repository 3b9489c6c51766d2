//! Starting an etcd-compatible single member (real etcd or oxetcd, same flags) on free
//! loopback ports with a fresh data dir, waiting until it serves, and stopping it.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use oxetcd_api::etcdserverpb::RangeRequest;
use oxetcd_api::etcdserverpb::kv_client::KvClient;
use tonic::transport::Endpoint;

/// How long a member may take to serve its first read.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A free loopback port (bound then released; the member binds it next).
pub fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("bind an ephemeral port")?;
    Ok(l.local_addr().context("local addr")?.port())
}

/// A member process; killed and its data dir removed on drop.
#[derive(Debug)]
pub struct Member {
    /// Display name (`etcd`, `oxetcd`).
    pub name: String,
    binary: PathBuf,
    dir: tempfile::TempDir,
    peer_url: String,
    /// Client URL (`http://127.0.0.1:PORT`).
    pub client_url: String,
    child: Option<Child>,
}

impl Member {
    /// Spawns `binary` with etcd's single-member flags in a fresh dir under `root` and
    /// waits until a linearizable read succeeds.
    pub fn start(name: &str, binary: &Path, root: &Path) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("oxetcd-bench-{name}-"))
            .tempdir_in(root)
            .with_context(|| format!("create a data dir under {}", root.display()))?;
        let client_url = format!("http://127.0.0.1:{}", free_port()?);
        let peer_url = format!("http://127.0.0.1:{}", free_port()?);
        let mut member = Member {
            name: name.to_owned(),
            binary: binary.to_owned(),
            dir,
            peer_url,
            client_url,
            child: None,
        };
        member.spawn()?;
        member.wait_ready(READY_TIMEOUT)?;
        Ok(member)
    }

    /// The member's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Process id of the running member.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("member.log")
    }

    /// Starts the process (again) on the same ports and data dir.
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("open the member log")?;
        let log2 = log.try_clone().context("clone the log handle")?;
        let child = Command::new(&self.binary)
            .args(["--name", "default", "--data-dir"])
            .arg(self.data_dir())
            .args(["--listen-client-urls", &self.client_url])
            .args(["--advertise-client-urls", &self.client_url])
            .args(["--listen-peer-urls", &self.peer_url])
            .args(["--initial-advertise-peer-urls", &self.peer_url])
            .args(["--initial-cluster", &format!("default={}", self.peer_url)])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .with_context(|| format!("cannot run {}", self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Polls with linearizable reads until one succeeds; fails if the process exits or
    /// `timeout` passes (with the tail of its log). Returns the time waited.
    pub fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("build a runtime")?;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                bail!(
                    "{} exited ({status}) before serving; log tail:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if runtime.block_on(probe(&self.client_url)) {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                bail!(
                    "{} did not serve a read within {timeout:?}; log tail:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The last lines of the member's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Asks the process to stop (SIGTERM), waiting up to 20 s before killing it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Resident set size of the process (VmRSS from /proc), in bytes.
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        let pid = self.pid().context("the member is not running")?;
        rss_of(pid)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// VmRSS of `pid` from /proc/PID/status, in bytes.
pub fn rss_of(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    parse_vm_rss(&status).context("no VmRSS line in /proc status")
}

/// The `VmRSS:  N kB` line of a /proc status file, in bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// One linearizable read of an arbitrary key; true if the member answered.
async fn probe(url: &str) -> bool {
    let Ok(endpoint) = Endpoint::from_shared(url.to_owned()) else {
        return false;
    };
    let endpoint = endpoint
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(2));
    let Ok(channel) = endpoint.connect().await else {
        return false;
    };
    KvClient::new(channel)
        .range(RangeRequest {
            key: b"oxetcd-bench-probe".to_vec(),
            ..RangeRequest::default()
        })
        .await
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_kib_from_proc_status() {
        let status = "Name:\tetcd\nVmPeak:\t  999 kB\nVmRSS:\t   1234 kB\nThreads:\t9\n";
        assert_eq!(parse_vm_rss(status), Some(1234 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn our_own_rss_is_positive() {
        assert!(rss_of(std::process::id()).expect("own /proc status") > 0);
    }
}
