//! A local cluster of any etcd-compatible binary, started with etcd's flags on
//! 127.0.0.1 with free ports and temporary data directories; members advertise their
//! peer proxy's address so partitions can be injected. Members can be killed (SIGKILL),
//! paused (SIGSTOP/SIGCONT), stopped (SIGTERM) and restarted with the same data dir.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use oxetcd_api::etcdserverpb::{
    MemberListRequest, StatusRequest, cluster_client::ClusterClient,
    maintenance_client::MaintenanceClient,
};
use tokio::process::{Child, Command};

use super::client::EtcdClient;
use super::proxy::PeerProxies;

/// One member.
#[derive(Debug)]
pub struct Member {
    /// Its name (`n0`, `n1`, ...).
    pub name: String,
    /// Client URL.
    pub client_url: String,
    /// Peer listener (`127.0.0.1:port`), reached through the proxy.
    pub peer_addr: String,
    /// Data directory.
    pub data_dir: PathBuf,
    child: Option<Child>,
    paused: bool,
}

/// A running local cluster.
#[derive(Debug)]
pub struct Cluster {
    bin: String,
    token: String,
    /// The members.
    pub members: Vec<Member>,
    /// The peer proxies (one per member).
    pub proxies: PeerProxies,
    dir: tempfile::TempDir,
    initial_cluster: String,
}

pub use crate::ports::free_port;

/// Error of cluster operations.
#[derive(Debug)]
pub enum ClusterError {
    /// An I/O error (ports, processes, files).
    Io(std::io::Error),
    /// The cluster did not become healthy.
    Unhealthy(String),
}

impl std::error::Error for ClusterError {}

impl std::fmt::Display for ClusterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClusterError::Io(e) => write!(f, "{e}"),
            ClusterError::Unhealthy(e) => write!(f, "cluster not healthy: {e}"),
        }
    }
}

impl From<std::io::Error> for ClusterError {
    fn from(e: std::io::Error) -> Self {
        ClusterError::Io(e)
    }
}

impl Cluster {
    /// Starts `nodes` members of `bin` and waits until every member serves a
    /// linearizable read.
    pub async fn launch(bin: &str, nodes: usize, seed: u64) -> Result<Cluster, ClusterError> {
        let dir = tempfile::Builder::new()
            .prefix("oxetcd-jepsen-")
            .tempdir()?;
        let mut peers = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..nodes {
            peers.push(format!("127.0.0.1:{}", free_port()?));
            clients.push(format!("http://127.0.0.1:{}", free_port()?));
        }
        let proxies = PeerProxies::start(&peers).await?;
        let initial_cluster = proxies
            .addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("n{i}=http://{a}"))
            .collect::<Vec<_>>()
            .join(",");
        let members = (0..nodes)
            .map(|i| Member {
                name: format!("n{i}"),
                client_url: clients[i].clone(),
                peer_addr: peers[i].clone(),
                data_dir: dir.path().join(format!("n{i}.etcd")),
                child: None,
                paused: false,
            })
            .collect();
        let mut cluster = Cluster {
            bin: bin.to_owned(),
            token: format!("jepsen-{seed}"),
            members,
            proxies,
            dir,
            initial_cluster,
        };
        for i in 0..nodes {
            cluster.start(i)?;
        }
        cluster.wait_healthy(Duration::from_secs(30)).await?;
        let ids = cluster.member_ids().await?;
        cluster.proxies.set_member_ids(ids);
        Ok(cluster)
    }

    /// The temporary directory holding data dirs and member logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Client URLs of all members.
    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// Starts (or restarts, keeping the data dir) member `i`.
    pub fn start(&mut self, i: usize) -> std::io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("n{i}.log")))?;
        let m = &mut self.members[i];
        let advertise = format!("http://{}", self.proxies.addrs[i]);
        let child = Command::new(&self.bin)
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .arg("--listen-client-urls")
            .arg(&m.client_url)
            .arg("--advertise-client-urls")
            .arg(&m.client_url)
            .arg("--listen-peer-urls")
            .arg(format!("http://{}", m.peer_addr))
            .arg("--initial-advertise-peer-urls")
            .arg(&advertise)
            .arg("--initial-cluster")
            .arg(&self.initial_cluster)
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg(&self.token)
            .arg("--heartbeat-interval")
            .arg("50")
            .arg("--election-timeout")
            .arg("500")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()?;
        m.child = Some(child);
        m.paused = false;
        Ok(())
    }

    fn signal(&self, i: usize, sig: &str) -> std::io::Result<()> {
        if let Some(pid) = self.members[i].child.as_ref().and_then(Child::id) {
            std::process::Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(pid.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?;
        }
        Ok(())
    }

    /// SIGKILLs member `i` and reaps it.
    pub async fn kill(&mut self, i: usize) -> std::io::Result<()> {
        if self.members[i].paused {
            self.resume(i)?;
        }
        if let Some(mut child) = self.members[i].child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    /// Stops member `i` gracefully (SIGTERM, then SIGKILL after 5 s).
    pub async fn stop(&mut self, i: usize) -> std::io::Result<()> {
        if self.members[i].paused {
            self.resume(i)?;
        }
        self.signal(i, "TERM")?;
        if let Some(mut child) = self.members[i].child.take()
            && tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
        {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    /// SIGSTOPs member `i`.
    pub fn pause(&mut self, i: usize) -> std::io::Result<()> {
        self.signal(i, "STOP")?;
        self.members[i].paused = true;
        Ok(())
    }

    /// SIGCONTs member `i`.
    pub fn resume(&mut self, i: usize) -> std::io::Result<()> {
        self.signal(i, "CONT")?;
        self.members[i].paused = false;
        Ok(())
    }

    /// Whether member `i` is running (started and not killed).
    pub fn running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// Names → raft member IDs, as the cluster reports them.
    async fn member_ids(&self) -> Result<BTreeMap<u64, usize>, ClusterError> {
        for m in &self.members {
            let Ok(client) = EtcdClient::new(&m.client_url, Duration::from_secs(2)) else {
                continue;
            };
            let mut cc = ClusterClient::new(client.channel());
            let fut = cc.member_list(MemberListRequest {
                linearizable: false,
            });
            if let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_secs(2), fut).await {
                let mut ids = BTreeMap::new();
                for member in resp.into_inner().members {
                    if let Some(i) = member
                        .name
                        .strip_prefix('n')
                        .and_then(|n| n.parse::<usize>().ok())
                    {
                        ids.insert(member.id, i);
                    }
                }
                return Ok(ids);
            }
        }
        Err(ClusterError::Unhealthy(
            "member list unavailable".to_owned(),
        ))
    }

    /// The index of the current leader, as reported by a running member.
    pub async fn leader(&self) -> Option<usize> {
        let ids = self.member_ids().await.ok()?;
        for (i, m) in self.members.iter().enumerate() {
            if !self.running(i) || m.paused {
                continue;
            }
            let Ok(client) = EtcdClient::new(&m.client_url, Duration::from_secs(1)) else {
                continue;
            };
            let mut mc = MaintenanceClient::new(client.channel());
            if let Ok(Ok(s)) =
                tokio::time::timeout(Duration::from_secs(1), mc.status(StatusRequest {})).await
                && let Some(i) = ids.get(&s.into_inner().leader)
            {
                return Some(*i);
            }
        }
        None
    }

    /// Waits until every running member serves a linearizable read.
    pub async fn wait_healthy(&self, limit: Duration) -> Result<(), ClusterError> {
        let deadline = tokio::time::Instant::now() + limit;
        for (i, m) in self.members.iter().enumerate() {
            if !self.running(i) {
                continue;
            }
            let mut client = EtcdClient::new(&m.client_url, Duration::from_secs(1))
                .map_err(ClusterError::Unhealthy)?;
            loop {
                match client.revision("/jepsen-health").await {
                    Ok(_) => break,
                    Err(e) if tokio::time::Instant::now() >= deadline => {
                        let log =
                            std::fs::read_to_string(self.dir.path().join(format!("n{i}.log")))
                                .unwrap_or_default();
                        let tail: Vec<&str> = log.lines().rev().take(3).collect();
                        return Err(ClusterError::Unhealthy(format!(
                            "{} ({}) did not answer: {e}; the end of its log: {}",
                            m.name,
                            m.client_url,
                            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                        )));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
        Ok(())
    }

    /// Resumes paused members, restarts stopped ones and heals partitions.
    pub async fn heal(&mut self) -> std::io::Result<()> {
        self.proxies.heal();
        for i in 0..self.members.len() {
            if self.members[i].paused {
                self.resume(i)?;
            }
            if !self.running(i) {
                self.start(i)?;
            }
        }
        Ok(())
    }

    /// Stops every member.
    pub async fn shutdown(&mut self) {
        for i in 0..self.members.len() {
            let _ = self.kill(i).await;
        }
    }
}
