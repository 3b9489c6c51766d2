//! End-to-end: a 3-member cluster of real `oxetcd` processes started with
//! `--initial-cluster` on free loopback ports, driven by the real `etcdctl`. A write
//! through one member is read from every member; when the leader is killed the other
//! two elect a new one and writes go on; the old leader, restarted, catches up. A
//! member added with `etcdctl member add` and started with `--initial-cluster-state
//! existing` joins from the leader's snapshot, and a member that was down while the
//! leader compacted its log catches up from a snapshot after restart.

#![allow(clippy::unwrap_used, reason = "test code")]

mod common;

use std::time::{Duration, Instant};

use common::cluster::{
    Member, WAIT, cluster, member, retry_ok, start_cluster, start_new, wait_leader,
    wait_local_value, wait_log,
};

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

/// Writes `count` keys `{prefix}{i:03}` through `member`.
fn put_keys(member: &Member, prefix: &str, count: usize) {
    for i in 0..count {
        let key = format!("{prefix}{i:03}");
        assert_eq!(member.ok(&["put", &key, &format!("v{i}")]).trim(), "OK");
    }
}

/// The keys under `prefix` that `member` serves from its own state (serializable).
fn local_keys(member: &Member, prefix: &str) -> usize {
    let output = member.etcdctl(&["get", prefix, "--prefix", "--keys-only", "--consistency=s"]);
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .count()
}

#[test]
fn an_added_member_joins_from_the_leaders_snapshot_and_a_lagging_member_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--snapshot-count", "20"];
    let (mut members, initial_cluster) = cluster(dir.path());
    for member in &mut members {
        member.extra = flags.iter().map(ToString::to_string).collect();
    }
    let leader = start_new(&mut members, &initial_cluster);

    // Enough writes that every member compacts its log past the bootstrap entries.
    put_keys(&members[leader], "a", 45);
    for member in &members {
        wait_log(member, "compacted raft log at");
    }

    // `etcdctl member add` prints what the new member starts with.
    let mut joiner = member(dir.path(), "m4", "http");
    joiner.extra = members[0].extra.clone();
    let peer_url = format!("--peer-urls=http://127.0.0.1:{}", joiner.peer_port);
    let added = retry_ok(&members[leader], &["member", "add", "m4", &peer_url]);
    let initial_cluster = added
        .lines()
        .find_map(|line| line.strip_prefix("ETCD_INITIAL_CLUSTER="))
        .map(|value| value.trim_matches('"').to_owned())
        .unwrap_or_else(|| panic!("no ETCD_INITIAL_CLUSTER in {added}"));
    assert!(
        added.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{added}"
    );

    // A member that was not added is refused with etcd's text.
    let mut stranger = member(dir.path(), "m5", "http");
    stranger.extra = members[0].extra.clone();
    stranger.start(
        &format!(
            "{initial_cluster},m5=http://127.0.0.1:{}",
            stranger.peer_port
        ),
        "existing",
    );
    let status = stranger.wait_exit();
    assert_eq!(status.code(), Some(1), "{}", stranger.log());
    let log = stranger.log();
    assert!(
        log.contains("error validating peerURLs {ClusterID:")
            && log.contains("member count is unequal"),
        "{log}"
    );

    joiner.start(&initial_cluster, "existing");
    joiner.wait_ready();
    wait_log(&joiner, "applied snapshot at index");
    wait_local_value(&joiner, "a044", "v44");
    assert_eq!(local_keys(&joiner, "a"), 45);
    // It takes writes, and publishes its name.
    assert_eq!(joiner.ok(&["put", "from-m4", "yes"]).trim(), "OK");
    wait_local_value(&members[leader], "from-m4", "yes");
    let deadline = Instant::now() + WAIT;
    while !joiner.ok(&["member", "list"]).contains(", m4, ") {
        assert!(Instant::now() < deadline, "m4 never published its name");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A follower down while the others compact catches up from a snapshot on restart.
    let follower = (leader + 1) % 3;
    members[follower].kill();
    let compactions = |member: &Member| member.log().matches("compacted raft log at").count();
    let before = compactions(&members[leader]);
    put_keys(&members[leader], "b", 45);
    let deadline = Instant::now() + WAIT;
    while compactions(&members[leader]) < before + 2 {
        assert!(Instant::now() < deadline, "{}", members[leader].log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let cluster_flag = initial_cluster.clone();
    members[follower].start(&cluster_flag, "new");
    members[follower].wait_ready();
    wait_log(&members[follower], "applied snapshot at index");
    wait_local_value(&members[follower], "b044", "v44");
    assert_eq!(local_keys(&members[follower], "b"), 45);
    assert_eq!(local_keys(&members[follower], "a"), 45);
    assert_eq!(
        local_keys(&members[follower], "from-m4"),
        1,
        "{}",
        members[follower].log()
    );
    // After a restart of its own, the joined member serves everything from its data dir.
    joiner.kill();
    joiner.start(&initial_cluster, "existing");
    joiner.wait_ready();
    wait_local_value(&joiner, "b044", "v44");
    assert_eq!(local_keys(&joiner, "a"), 45);
}
