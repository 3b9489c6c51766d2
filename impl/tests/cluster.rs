//! End-to-end: a 3-member cluster of real `oxetcd` processes started with
//! `--initial-cluster` on free loopback ports, driven by the real `etcdctl`. A write
//! through one member is read from every member; when the leader is killed the other
//! two elect a new one and writes go on; the old leader, restarted, catches up.

#![allow(clippy::unwrap_used, reason = "test code")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{etcdctl_path, free_port};

/// Every wait in this test ends by this bound.
const WAIT: Duration = Duration::from_secs(20);

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    dir: PathBuf,
    child: Option<Child>,
    starts: usize,
}

impl Member {
    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(format!("{}-{}.log", self.name, self.starts))
    }

    fn start(&mut self, initial_cluster: &str, state: &str) {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path()).unwrap();
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        // `OXETCD_BIN` runs a given build (a shared target dir may hold another's).
        let bin =
            std::env::var("OXETCD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_oxetcd").into());
        let child = Command::new(bin)
            .args(["--name", &self.name])
            .args(["--data-dir", self.dir.join("data").to_str().unwrap()])
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", initial_cluster])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", "cluster-test"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start oxetcd");
        self.child = Some(child);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.log().contains("ready to serve client requests") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not become ready; log:\n{}", self.name, self.log());
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn etcdctl(&self, args: &[&str]) -> Output {
        Command::new(etcdctl_path())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint()))
            .arg("--command-timeout=5s")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run etcdctl")
    }

    fn ok(&self, args: &[&str]) -> String {
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
    fn status(&self) -> Option<(u64, u64)> {
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

fn cluster(dir: &Path) -> (Vec<Member>, String) {
    let members: Vec<Member> = (1..=3)
        .map(|i| {
            let dir = dir.join(format!("infra{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            Member {
                name: format!("infra{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                dir,
                child: None,
                starts: 0,
            }
        })
        .collect();
    let initial_cluster = members
        .iter()
        .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
        .collect::<Vec<_>>()
        .join(",");
    (members, initial_cluster)
}

/// Starts 3 members as a new cluster and waits for a leader: the members, the
/// `--initial-cluster` value and the leader's index.
fn start_cluster(dir: &Path) -> (Vec<Member>, String, usize) {
    let (mut members, initial_cluster) = cluster(dir);
    for member in &mut members {
        member.start(&initial_cluster, "new");
    }
    for member in &members {
        member.wait_ready();
    }
    let leader = wait_leader(&members, &[0, 1, 2]);
    (members, initial_cluster, leader)
}

/// Waits until every member of `alive` reports the same non-zero leader, one of them;
/// returns its index in `members`.
fn wait_leader(members: &[Member], alive: &[usize]) -> usize {
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

/// Waits until a serializable (local) read of `key` on `member` gives `value`.
fn wait_local_value(member: &Member, key: &str, value: &str) {
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

#[test]
fn three_members_replicate_elect_a_new_leader_and_catch_up_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut members, initial_cluster, leader) = start_cluster(dir.path());
    let follower = (leader + 1) % 3;

    // A write through a follower (forwarded to the leader) is read from every member,
    // linearizably (ReadIndex through the leader on the followers).
    assert_eq!(members[follower].ok(&["put", "k1", "v1"]).trim(), "OK");
    for member in &members {
        assert_eq!(
            member.ok(&["get", "k1", "--print-value-only"]).trim(),
            "v1",
            "linearizable read on {}",
            member.name
        );
    }

    // Kill the leader: the two others elect a new one and take writes.
    members[leader].kill();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let new_leader = wait_leader(&members, &survivors);
    assert_ne!(new_leader, leader);
    let deadline = Instant::now() + WAIT;
    let writer = survivors[0];
    loop {
        let output = members[writer].etcdctl(&["put", "k2", "v2"]);
        if output.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes did not resume after the leader was killed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for &i in &survivors {
        assert_eq!(
            members[i].ok(&["get", "k2", "--print-value-only"]).trim(),
            "v2"
        );
    }

    // The old leader restarts from its data dir and catches up.
    members[leader].start(&initial_cluster, "new");
    members[leader].wait_ready();
    wait_local_value(&members[leader], "k2", "v2");
    assert_eq!(
        members[leader]
            .ok(&["get", "k1", "--print-value-only"])
            .trim(),
        "v1"
    );
    wait_leader(&members, &[0, 1, 2]);
}

/// Runs `args` on `member` until etcdctl succeeds (a member change is refused as
/// "unhealthy cluster" until the peer streams have been up for etcd's 5 s health
/// interval); returns its output.
fn retry_ok(member: &Member, args: &[&str]) -> String {
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

#[test]
fn a_healthy_three_member_cluster_lists_its_members_and_takes_member_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (members, _initial_cluster, leader) = start_cluster(dir.path());

    // Every member is listed, by the name it published through the log.
    let deadline = Instant::now() + WAIT;
    loop {
        let list = members[leader].ok(&["member", "list"]);
        if members
            .iter()
            .all(|m| list.contains(&format!(", {}, ", m.name)))
        {
            assert_eq!(list.lines().count(), 3, "{list}");
            break;
        }
        assert!(Instant::now() < deadline, "member list: {list}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The strict reconfiguration checks count the connected peers: a learner and then a
    // voter are taken (3 started voters keep the quorum of 4), and both are removed.
    let added = retry_ok(
        &members[leader],
        &[
            "member",
            "add",
            "learner4",
            "--learner",
            "--peer-urls=http://127.0.0.1:1",
        ],
    );
    assert!(
        added.contains("Member") && added.contains("added to cluster"),
        "{added}"
    );
    let added = retry_ok(
        &members[leader],
        &["member", "add", "voter5", "--peer-urls=http://127.0.0.1:2"],
    );
    assert!(added.contains("added to cluster"), "{added}");
    let list = members[leader].ok(&["member", "list", "-w", "json"]);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let added: Vec<u64> = list["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["name"].as_str().unwrap_or("").is_empty())
        .map(|m| m["ID"].as_u64().unwrap())
        .collect();
    assert_eq!(added.len(), 2, "{list}");
    for id in added {
        let removed = retry_ok(&members[leader], &["member", "remove", &format!("{id:x}")]);
        assert!(removed.contains("removed from cluster"), "{removed}");
    }
    assert_eq!(members[leader].ok(&["member", "list"]).lines().count(), 3);
    // Writes still commit.
    assert_eq!(
        members[leader].ok(&["put", "after", "changes"]).trim(),
        "OK"
    );
}

/// A follower answers `lease timetolive` with the leader's remaining TTL (etcd forwards
/// TimeToLive to the leader; a follower's own lease clocks are stopped).
#[test]
fn a_follower_answers_lease_time_to_live_with_the_leaders_clock() {
    let dir = tempfile::tempdir().unwrap();
    let (members, _, leader) = start_cluster(dir.path());
    let follower = (leader + 1) % 3;
    let granted = members[leader].ok(&["lease", "grant", "100"]);
    let id = granted.split_whitespace().nth(1).unwrap().to_owned();
    let deadline = Instant::now() + WAIT;
    let answer = loop {
        let output = members[follower].etcdctl(&["lease", "timetolive", &id]);
        if output.status.success() || Instant::now() > deadline {
            break String::from_utf8_lossy(&output.stdout).into_owned();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let remaining: i64 = answer
        .split("remaining(")
        .nth(1)
        .and_then(|rest| rest.split("s)").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no remaining TTL in {answer:?}"));
    assert!(
        answer.contains("granted with TTL(100s)") && (0..=100).contains(&remaining),
        "{answer}"
    );
}
