//! The leader's bound on uncommitted entries (etcd-raft's `MaxUncommittedEntriesSize`):
//! proposals are dropped while the payload bytes appended in this term and not yet
//! committed would exceed `Config::max_uncommitted_entries_size`; empty proposals and the
//! first proposal after everything committed are always taken.

use oxetcd_spec::raft::sim::{Cluster, SimConfig};
use oxetcd_spec::raft::{NodeId, RaftError};

fn cluster(limit: u64) -> Cluster {
    let mut cfg = SimConfig::new(3, 5);
    cfg.pre_vote = false;
    cfg.max_uncommitted_entries_size = limit;
    let mut c = Cluster::new(cfg);
    c.campaign(1);
    c.stabilize();
    assert_eq!(c.leader(), Some(NodeId(1)));
    c
}

#[test]
fn leader_drops_proposals_over_the_uncommitted_limit_until_they_commit() {
    let mut c = cluster(10);
    // The followers are cut off: nothing the leader appends can commit.
    c.isolate(1);
    c.propose(1, b"123456").expect("within the limit");
    assert_eq!(c.propose(1, b"abcdef"), Err(RaftError::ProposalDropped));
    c.propose(1, b"1234").expect("exactly at the limit");
    assert_eq!(c.propose(1, b"x"), Err(RaftError::ProposalDropped));
    // Empty proposals never count.
    c.propose(1, b"").expect("empty payloads are always taken");
    // Once the appended entries commit, there is room again.
    c.heal();
    for _ in 0..20 {
        if c.node(1).commit_index() == c.node(1).last_index() {
            break;
        }
        c.tick(1); // heartbeats make the leader re-send what the partition lost
        c.stabilize();
    }
    assert_eq!(c.leader(), Some(NodeId(1)));
    assert_eq!(c.node(1).commit_index(), c.node(1).last_index());
    c.propose(1, b"abcdef").expect("room after the commit");
}

#[test]
fn a_proposal_larger_than_the_limit_is_taken_when_nothing_is_uncommitted() {
    let mut c = cluster(4);
    c.isolate(1);
    c.propose(1, b"much larger than four bytes")
        .expect("nothing uncommitted");
    assert_eq!(c.propose(1, b"a"), Err(RaftError::ProposalDropped));
}

#[test]
fn no_limit_by_default() {
    let mut c = cluster(0);
    c.isolate(1);
    for _ in 0..50 {
        c.propose(1, &[7; 100]).expect("unbounded");
    }
}
