//! Learners and single-member configuration changes (etcd style): a change takes effect
//! when its entry is applied, only one may be pending, learners receive the log but never
//! vote or count for commit, and a removed leader steps down.

use oxetcd_spec::raft::sim::{Cluster, SimConfig};
use oxetcd_spec::raft::{ConfChange, NodeId, RaftError, Role};

fn cluster(n: u64) -> Cluster {
    let mut cfg = SimConfig::new(n, 13);
    cfg.pre_vote = false;
    cfg.check_quorum = false;
    let mut c = Cluster::new(cfg);
    c.record = true;
    c
}

fn elect(c: &mut Cluster, id: u64) {
    c.campaign(id);
    c.stabilize();
    assert_eq!(c.leader(), Some(NodeId(id)));
}

fn voters(c: &Cluster, id: u64) -> Vec<u64> {
    c.node(id).conf_state().voters.iter().map(|v| v.0).collect()
}

fn learners(c: &Cluster, id: u64) -> Vec<u64> {
    c.node(id)
        .conf_state()
        .learners
        .iter()
        .map(|v| v.0)
        .collect()
}

fn with_learner_4() -> Cluster {
    let mut c = cluster(3);
    elect(&mut c, 1);
    c.add_empty_member(NodeId(4));
    c.propose_conf_change(1, ConfChange::add_learner(NodeId(4)))
        .expect("accepted");
    c.stabilize();
    c.tick_all_and_stabilize(3);
    c
}

#[test]
fn learner_is_added_when_the_change_is_applied_and_receives_the_log() {
    let c = with_learner_4();
    for id in [1, 2, 3, 4] {
        assert_eq!(learners(&c, id), vec![4], "node {id}");
        assert_eq!(voters(&c, id), vec![1, 2, 3], "node {id}");
    }
    assert_eq!(c.node(4).last_index(), c.node(1).last_index());
    assert_eq!(c.applied(4), c.applied(1));
}

#[test]
fn learner_never_campaigns_and_does_not_count_for_commit() {
    let mut c = with_learner_4();
    c.campaign(4);
    assert_eq!(
        c.node(4).role(),
        Role::Follower,
        "a learner does not campaign"
    );
    c.crash(NodeId(2));
    c.crash(NodeId(3));
    let commit = c.node(1).commit_index();
    c.propose(1, b"x").expect("accepted");
    c.stabilize();
    assert_eq!(
        c.node(4).last_index(),
        c.node(1).last_index(),
        "replicated to 4"
    );
    assert_eq!(
        c.node(1).commit_index(),
        commit,
        "leader + learner is no quorum"
    );
}

#[test]
fn learner_is_promoted_to_voter() {
    let mut c = with_learner_4();
    c.propose_conf_change(1, ConfChange::promote(NodeId(4)))
        .expect("accepted");
    c.stabilize();
    c.tick_all_and_stabilize(2);
    assert_eq!(voters(&c, 1), vec![1, 2, 3, 4]);
    assert!(learners(&c, 4).is_empty());
    // Now 4 counts: with 2 and 3 down, 1 + 4 is 2 of 4 -- still no quorum; with 3 down,
    // 1 + 2 + 4 is.
    c.crash(NodeId(3));
    let commit = c.node(1).commit_index();
    c.propose(1, b"x").expect("accepted");
    c.stabilize();
    assert!(c.node(1).commit_index() > commit);
    c.campaign(4);
    c.stabilize();
    assert_eq!(c.leader(), Some(NodeId(4)), "a promoted learner may lead");
}

#[test]
fn only_one_conf_change_may_be_pending() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    c.propose_conf_change(1, ConfChange::add_learner(NodeId(4)))
        .expect("accepted");
    assert_eq!(
        c.propose_conf_change(1, ConfChange::add_learner(NodeId(5))),
        Err(RaftError::ConfChangePending)
    );
    c.stabilize();
    assert!(
        c.propose_conf_change(1, ConfChange::add_learner(NodeId(5)))
            .is_ok(),
        "accepted once the first is applied"
    );
}

#[test]
fn a_new_leader_waits_for_earlier_entries_before_accepting_a_conf_change() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    // Node 2 receives an entry but not the news that it is committed.
    c.propose(1, b"x").expect("accepted");
    c.deliver_where(|m| oxetcd_spec::raft::sim::is(m, oxetcd_spec::raft::MessageKind::App, 1, 2));
    c.drop_where(|_| true);
    c.campaign(2);
    c.deliver_where(|m| m.kind == oxetcd_spec::raft::MessageKind::Vote);
    c.deliver_where(|m| m.kind == oxetcd_spec::raft::MessageKind::VoteResp);
    assert_eq!(c.leader(), Some(NodeId(2)));
    assert_eq!(
        c.propose_conf_change(2, ConfChange::remove_node(NodeId(3))),
        Err(RaftError::ConfChangePending),
        "its log may hold an unapplied change"
    );
}

#[test]
fn removed_node_leaves_the_configuration_and_the_rest_keep_committing() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    c.propose_conf_change(1, ConfChange::remove_node(NodeId(3)))
        .expect("accepted");
    c.stabilize();
    assert_eq!(voters(&c, 1), vec![1, 2]);
    c.crash(NodeId(3));
    let commit = c.node(1).commit_index();
    c.propose(1, b"x").expect("accepted");
    c.stabilize();
    assert!(c.node(1).commit_index() > commit, "2 of 2 commit");
}

#[test]
fn removed_leader_steps_down_and_the_rest_elect_a_new_one() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    c.propose_conf_change(1, ConfChange::remove_node(NodeId(1)))
        .expect("accepted");
    c.stabilize();
    assert_eq!(
        c.node(1).role(),
        Role::Follower,
        "removed leader stepped down"
    );
    c.tick_all_and_stabilize(40);
    let leader = c.leader().expect("the remaining voters elect a leader");
    assert_ne!(leader, NodeId(1));
    assert_eq!(voters(&c, leader.0), vec![2, 3]);
    c.campaign(1);
    assert_eq!(
        c.node(1).role(),
        Role::Follower,
        "a removed node never campaigns"
    );
    c.check_safety().expect("safe");
}

#[test]
fn removing_the_last_voter_is_refused() {
    let mut c = cluster(1);
    elect(&mut c, 1);
    assert_eq!(
        c.propose_conf_change(1, ConfChange::remove_node(NodeId(1))),
        Err(RaftError::InvalidConfChange)
    );
}

#[test]
fn configuration_is_rebuilt_from_the_log_after_restart() {
    let mut c = with_learner_4();
    c.crash(NodeId(2));
    c.restart(NodeId(2));
    assert_eq!(learners(&c, 2), vec![4]);
    c.crash(NodeId(4));
    c.restart(NodeId(4));
    assert_eq!(learners(&c, 4), vec![4]);
}

#[test]
fn a_voter_added_after_compaction_catches_up_by_snapshot() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    for i in 0..5 {
        c.propose(1, format!("v{i}").as_bytes()).expect("accepted");
    }
    c.stabilize();
    c.compact(NodeId(1));
    c.add_empty_member(NodeId(4));
    c.propose_conf_change(1, ConfChange::add_node(NodeId(4)))
        .expect("accepted");
    c.stabilize();
    c.tick_all_and_stabilize(3);
    assert!(
        c.transcript
            .iter()
            .any(|l| l.starts_with("deliver 1->4 Snap"))
    );
    assert_eq!(voters(&c, 4), vec![1, 2, 3, 4]);
    assert_eq!(c.applied(4).last(), c.applied(1).last());
    c.check_safety().expect("safe");
}
