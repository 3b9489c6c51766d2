//! Leader transfer (thesis §3.10): the leader brings the transferee up to date, then sends
//! `TimeoutNow`; the transferee campaigns at once, bypassing pre-vote and the check-quorum
//! lease. Proposals are refused during a transfer, which aborts after an election timeout.

use oxetcd_spec::raft::sim::{Cluster, SimConfig, is};
use oxetcd_spec::raft::{MessageKind, NodeId, RaftError, Role};

fn cluster() -> Cluster {
    let cfg = SimConfig::new(3, 9); // pre-vote and check-quorum on
    let mut c = Cluster::new(cfg);
    c.record = true;
    c
}

fn elect(c: &mut Cluster, id: u64) {
    c.campaign(id);
    c.stabilize();
    assert_eq!(c.leader(), Some(NodeId(id)));
}

#[test]
fn leader_hands_over_to_an_up_to_date_follower_with_timeout_now() {
    let mut c = cluster();
    elect(&mut c, 1);
    let term = c.node(1).term();
    c.node_mut(1).transfer_leader(NodeId(2));
    c.process_readies();
    assert!(
        c.in_flight()
            .iter()
            .any(|m| is(m, MessageKind::TimeoutNow, 1, 2))
    );
    c.stabilize();
    assert_eq!(c.leader(), Some(NodeId(2)));
    assert_eq!(
        c.node(2).term(),
        term.next(),
        "no pre-vote round, one new term"
    );
    assert_eq!(c.node(1).role(), Role::Follower);
    assert!(
        c.transcript
            .iter()
            .any(|l| l.contains("Vote term=") && l.contains("ctx=\"transfer\"")),
        "votes are marked as a transfer so the lease does not block them"
    );
}

#[test]
fn leader_first_catches_up_a_lagging_transferee() {
    let mut c = cluster();
    elect(&mut c, 1);
    c.crash(NodeId(3));
    for i in 0..5 {
        c.propose(1, format!("v{i}").as_bytes()).expect("accepted");
    }
    c.stabilize();
    c.restart(NodeId(3));
    c.node_mut(1).transfer_leader(NodeId(3));
    c.process_readies();
    assert!(
        !c.in_flight()
            .iter()
            .any(|m| m.kind == MessageKind::TimeoutNow),
        "not before 3 has the whole log"
    );
    // Heartbeats reveal where 3 is; the leader repairs its log, then hands over.
    for _ in 0..8 {
        if c.leader() == Some(NodeId(3)) {
            break;
        }
        c.tick(1);
        c.stabilize();
    }
    assert_eq!(c.leader(), Some(NodeId(3)));
    assert!(
        c.transcript
            .iter()
            .any(|l| l.starts_with("deliver 1->3 TimeoutNow"))
    );
    assert_eq!(c.node(3).last_index(), c.node(1).last_index());
    c.check_safety().expect("safe");
}

#[test]
fn proposals_are_refused_during_a_transfer_and_the_transfer_aborts_after_a_timeout() {
    let mut c = cluster();
    elect(&mut c, 1);
    c.partition_into(&[&[1, 2], &[3]]);
    c.node_mut(1).transfer_leader(NodeId(3));
    assert_eq!(c.node(1).lead_transferee(), Some(NodeId(3)));
    assert_eq!(c.propose(1, b"x"), Err(RaftError::ProposalDropped));
    for _ in 0..10 {
        c.tick(1);
        c.stabilize();
    }
    assert_eq!(
        c.node(1).lead_transferee(),
        None,
        "aborted after an election timeout"
    );
    assert_eq!(c.leader(), Some(NodeId(1)));
    assert!(c.propose(1, b"x").is_ok());
}

#[test]
fn follower_forwards_a_transfer_request_to_the_leader() {
    let mut c = cluster();
    elect(&mut c, 1);
    c.node_mut(3).transfer_leader(NodeId(3));
    c.stabilize();
    assert_eq!(c.leader(), Some(NodeId(3)));
}

#[test]
fn transfer_to_self_or_a_non_member_is_ignored() {
    let mut c = cluster();
    elect(&mut c, 1);
    c.node_mut(1).transfer_leader(NodeId(1));
    c.node_mut(1).transfer_leader(NodeId(9));
    assert_eq!(c.node(1).lead_transferee(), None);
    c.stabilize();
    assert_eq!(c.leader(), Some(NodeId(1)));
}
