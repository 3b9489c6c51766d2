//! End-to-end: a 3-member cluster of real `oxetcd` processes started with
//! `--initial-cluster` on free loopback ports, driven by the real `etcdctl`. A write
//! through one member is read from every member; when the leader is killed the other
//! two elect a new one and writes go on; the old leader, restarted, catches up.

#![allow(clippy::unwrap_used, reason = "test code")]

mod common;

use std::time::{Duration, Instant};

use common::cluster::{WAIT, retry_ok, start_cluster, wait_leader, wait_local_value};

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
