//! The 3-member cluster harness: real `oxetcd` processes started with
//! `--initial-cluster` on free loopback ports, driven by the real `etcdctl`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use super::{Etcdctl, free_port, oxetcd_path};

/// Every wait of the cluster tests ends by this bound.
pub const WAIT: Duration = Duration::from_secs(60);

/// One member process of a test cluster; killed on drop.
pub struct Member {
    /// `--name`.
    pub name: String,
    /// Client port.
    pub client_port: u16,
    /// Peer port.
    pub peer_port: u16,
    /// This member's directory (data dir and logs).
    pub dir: PathBuf,
    /// `http` or `https`: the scheme of the peer URLs.
    pub peer_scheme: &'static str,
    /// Extra flags for every start.
    pub extra: Vec<String>,
    child: Option<Child>,
    starts: usize,
}

impl Member {
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(format!("{}-{}.log", self.name, self.starts))
    }

    pub fn start(&mut self, initial_cluster: &str, state: &str) {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path()).unwrap();
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("{}://127.0.0.1:{}", self.peer_scheme, self.peer_port);
        // `OXETCD_BIN` runs a given build (a shared target dir may hold another's).
        let child = Command::new(oxetcd_path())
            .args(["--name", &self.name])
            .args(["--data-dir", self.dir.join("data").to_str().unwrap()])
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", initial_cluster])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", "cluster-test"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start oxetcd");
        self.child = Some(child);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.log().contains("ready to serve client requests") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not become ready; log:\n{}", self.name, self.log());
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits (bounded) for the started process to exit on its own; its exit status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the member was started");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not stop; log:\n{}", self.name, self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn etcdctl(&self, args: &[&str]) -> Output {
        Etcdctl::v3(&self.endpoint())
            .flag("--command-timeout=5s")
            .run(args)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.etcdctl(args);
        assert!(
            output.status.success(),
            "etcdctl {args:?} on {} failed: {}{}\nlog:\n{}",
            self.name,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// (member id, leader id) from `endpoint status`, if the member answers.
    pub fn status(&self) -> Option<(u64, u64)> {
        let output = self.etcdctl(&["endpoint", "status", "-w", "json"]);
        if !output.status.success() {
            return None;
        }
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        let status = &json[0]["Status"];
        let member = status["header"]["member_id"].as_u64()?;
        let leader = status["leader"].as_u64()?;
        Some((member, leader))
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A member named `name` (not started) with fresh ports, peer URLs of `peer_scheme` and
/// a directory under `dir`: a fourth member to add to a running cluster.
pub fn member(dir: &Path, name: &str, peer_scheme: &'static str) -> Member {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    Member {
        name: name.to_owned(),
        client_port: free_port(),
        peer_port: free_port(),
        dir,
        peer_scheme,
        extra: Vec::new(),
        child: None,
        starts: 0,
    }
}

/// Three members (not started) under `dir` with `http` peer URLs, and their
/// `--initial-cluster` value.
pub fn cluster(dir: &Path) -> (Vec<Member>, String) {
    cluster_with(dir, "http")
}

/// As [`cluster`], with peer URLs of `peer_scheme`.
pub fn cluster_with(dir: &Path, peer_scheme: &'static str) -> (Vec<Member>, String) {
    let members: Vec<Member> = (1..=3)
        .map(|i| member(dir, &format!("infra{i}"), peer_scheme))
        .collect();
    let initial_cluster = members
        .iter()
        .map(|m| format!("{}={peer_scheme}://127.0.0.1:{}", m.name, m.peer_port))
        .collect::<Vec<_>>()
        .join(",");
    (members, initial_cluster)
}

/// Starts 3 members as a new cluster and waits for a leader: the members, the
/// `--initial-cluster` value and the leader's index.
pub fn start_cluster(dir: &Path) -> (Vec<Member>, String, usize) {
    let (mut members, initial_cluster) = cluster(dir);
    let leader = start_new(&mut members, &initial_cluster);
    (members, initial_cluster, leader)
}

/// Starts `members` as a new cluster and waits until all agree on a leader; returns the
/// leader's index.
pub fn start_new(members: &mut [Member], initial_cluster: &str) -> usize {
    for member in members.iter_mut() {
        member.start(initial_cluster, "new");
    }
    for member in members.iter() {
        member.wait_ready();
    }
    let all: Vec<usize> = (0..members.len()).collect();
    wait_leader(members, &all)
}

/// Waits until every member of `alive` reports the same non-zero leader, one of them;
/// returns its index in `members`.
pub fn wait_leader(members: &[Member], alive: &[usize]) -> usize {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        let statuses: Vec<Option<(u64, u64)>> =
            alive.iter().map(|&i| members[i].status()).collect();
        if let Some(Some((_, leader))) = statuses.first()
            && *leader != 0
            && statuses
                .iter()
                .all(|status| status.is_some_and(|(_, l)| l == *leader))
            && let Some(position) = statuses
                .iter()
                .position(|status| status.is_some_and(|(id, _)| id == *leader))
        {
            return alive[position];
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "no agreed leader among {alive:?}; logs:\n{}",
        alive
            .iter()
            .map(|&i| members[i].log())
            .collect::<Vec<_>>()
            .join("\n-----\n")
    );
}

/// Waits until `member`'s log contains `text`.
pub fn wait_log(member: &Member, text: &str) {
    let deadline = Instant::now() + WAIT;
    while !member.log().contains(text) {
        assert!(
            Instant::now() < deadline,
            "{} never logged {text:?}; log:\n{}",
            member.name,
            member.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until a serializable (local) read of `key` on `member` gives `value`.
pub fn wait_local_value(member: &Member, key: &str, value: &str) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        let output = member.etcdctl(&["get", key, "--print-value-only", "--consistency=s"]);
        if String::from_utf8_lossy(&output.stdout).trim() == value {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{} never served {key}={value} locally; log:\n{}",
        member.name,
        member.log()
    );
}

/// Runs `args` on `member` until etcdctl succeeds (a member change is refused as
/// "unhealthy cluster" until the peer streams have been up for etcd's 5 s health
/// interval); returns its output.
pub fn retry_ok(member: &Member, args: &[&str]) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let output = member.etcdctl(args);
        if output.status.success() {
            return String::from_utf8_lossy(&output.stdout).into_owned();
        }
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            Instant::now() < deadline && stderr.contains("unhealthy cluster"),
            "etcdctl {args:?} on {} failed: {stderr}",
            member.name
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
