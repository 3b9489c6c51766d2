//! Starts a throwaway real etcd 3.4.23 on free loopback ports for the suite's tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running etcd; killed and its data dir removed on drop.
pub struct RealEtcd {
    child: Child,
    _dir: tempfile::TempDir,
    /// Client URL.
    pub endpoint: String,
}

fn free_port() -> u16 {
    oxetcd_conformance::ports::free_port().expect("a free port")
}

impl RealEtcd {
    /// Starts etcd with the v2 API enabled; panics with a clear message if the binary is
    /// missing (run `make etcd-reference` or `sh conformance/ensure-etcd.sh`).
    pub fn start() -> Self {
        let found = Command::new("etcd")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "the reference `etcd` (3.4.23) is not on PATH: run `make etcd-reference` \
             (or `sh conformance/ensure-etcd.sh`) first; the conformance test does not skip"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let data: PathBuf = dir.path().join("data");
        let child = Command::new("etcd")
            .args(["--name", "default", "--enable-v2"])
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--listen-client-urls",
                &endpoint,
                "--advertise-client-urls",
                &endpoint,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &format!("default={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn etcd");
        let etcd = RealEtcd {
            child,
            _dir: dir,
            endpoint,
        };
        etcd.wait_ready();
        etcd
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = self.endpoint.trim_start_matches("http://").to_owned();
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let req = format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n");
                if s.write_all(req.as_bytes()).is_ok() {
                    let mut out = String::new();
                    let _ = s.read_to_string(&mut out);
                    if out.contains("\"health\":\"true\"") {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "etcd at {} did not become healthy within 30 s",
            self.endpoint
        );
    }
}

impl Drop for RealEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The transcript directory (not every test binary uses it).
#[allow(dead_code)]
pub fn transcripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("transcripts")
}
