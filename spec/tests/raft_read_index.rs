//! ReadIndex linearizable reads (Raft thesis §6.4, etcd `ReadOnlySafe`): the leader records
//! its commit index, confirms leadership with a heartbeat quorum, then answers; followers
//! forward to the leader; a leader that has not committed an entry in its term queues the
//! read until it has.

use oxetcd_spec::raft::sim::{Cluster, SimConfig, is};
use oxetcd_spec::raft::{MessageKind, NodeId, RaftError, ReadState};

fn cluster(n: u64) -> Cluster {
    let mut cfg = SimConfig::new(n, 3);
    cfg.pre_vote = false;
    Cluster::new(cfg)
}

fn elect(c: &mut Cluster, id: u64) {
    c.campaign(id);
    c.stabilize();
    assert_eq!(c.leader(), Some(NodeId(id)));
}

#[test]
fn leader_answers_only_after_a_heartbeat_quorum_confirms_leadership() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    c.propose(1, b"x").expect("accepted");
    c.stabilize();
    let commit = c.node(1).commit_index();
    c.node_mut(1)
        .read_index(b"r1".to_vec())
        .expect("leader takes reads");
    c.process_readies();
    assert!(
        c.read_states(1).is_empty(),
        "not before the heartbeat round"
    );
    let heartbeats = c
        .in_flight()
        .iter()
        .filter(|m| m.kind == MessageKind::Heartbeat && m.context == b"r1")
        .count();
    assert_eq!(
        heartbeats, 2,
        "leadership is confirmed through heartbeats carrying the ctx"
    );
    c.deliver_where(|m| is(m, MessageKind::Heartbeat, 1, 2));
    c.deliver_where(|m| is(m, MessageKind::HeartbeatResp, 2, 1));
    assert_eq!(
        c.read_states(1),
        &[ReadState {
            index: commit,
            request_ctx: b"r1".to_vec()
        }]
    );
}

#[test]
fn isolated_leader_cannot_answer_reads() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    c.isolate(1);
    c.node_mut(1).read_index(b"stale".to_vec()).expect("queued");
    c.stabilize();
    assert!(c.read_states(1).is_empty(), "no quorum, no answer");
    // Meanwhile the majority elects a new leader and commits a write.
    for _ in 0..100 {
        if c.leader().is_some_and(|l| l != NodeId(1)) {
            break;
        }
        c.tick(2);
        c.tick(3);
        c.stabilize();
    }
    let new_leader = c.leader().expect("the majority elected a leader");
    assert_ne!(new_leader, NodeId(1));
    c.propose(new_leader.0, b"new").expect("accepted");
    c.stabilize();
    assert!(c.read_states(1).is_empty());
}

#[test]
fn new_leader_queues_reads_until_its_empty_entry_commits() {
    let mut c = cluster(3);
    c.campaign(1);
    c.deliver_where(|m| m.kind == MessageKind::Vote);
    c.deliver_where(|m| m.kind == MessageKind::VoteResp);
    assert_eq!(c.leader(), Some(NodeId(1)));
    let noop = c.node(1).last_index();
    assert!(
        c.node(1).commit_index() < noop,
        "nothing of term 1 committed yet"
    );
    // Accepted, not refused: queued until the leader's empty entry of term 1 commits.
    assert_eq!(c.node_mut(1).read_index(b"early".to_vec()), Ok(()));
    // A follower's forwarded read waits in the same queue (n2 learns the leader from its
    // append; n2's acknowledgement stays in flight, so nothing commits yet).
    c.deliver_where(|m| is(m, MessageKind::App, 1, 2));
    c.node_mut(2)
        .read_index(b"forwarded".to_vec())
        .expect("follower knows the leader");
    c.process_readies();
    assert!(
        c.read_states(1).is_empty(),
        "not answered before the commit"
    );
    c.stabilize();
    assert!(c.node(1).commit_index() >= noop);
    assert_eq!(
        c.read_states(1),
        &[ReadState {
            index: c.node(1).commit_index(),
            request_ctx: b"early".to_vec()
        }]
    );
    assert_eq!(
        c.read_states(2),
        &[ReadState {
            index: c.node(1).commit_index(),
            request_ctx: b"forwarded".to_vec()
        }]
    );
}

#[test]
fn reads_queued_by_a_leader_that_loses_leadership_are_dropped() {
    let mut c = cluster(3);
    c.campaign(1);
    c.deliver_where(|m| m.kind == MessageKind::Vote);
    c.deliver_where(|m| m.kind == MessageKind::VoteResp);
    assert_eq!(c.node_mut(1).read_index(b"early".to_vec()), Ok(()));
    c.isolate(1);
    c.campaign(2);
    c.stabilize();
    c.heal();
    c.stabilize();
    assert_ne!(c.leader(), Some(NodeId(1)));
    assert!(
        c.read_states(1).is_empty(),
        "never answered by a deposed leader"
    );
}

#[test]
fn follower_forwards_read_index_to_the_leader_and_gets_the_leader_commit_index() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    c.propose(1, b"x").expect("accepted");
    c.stabilize();
    c.node_mut(2).read_index(b"f".to_vec()).expect("forwarded");
    c.process_readies();
    assert!(
        c.in_flight()
            .iter()
            .any(|m| is(m, MessageKind::ReadIndex, 2, 1))
    );
    c.stabilize();
    assert_eq!(
        c.read_states(2),
        &[ReadState {
            index: c.node(1).commit_index(),
            request_ctx: b"f".to_vec()
        }]
    );
    assert!(c.read_states(1).is_empty(), "the answer goes to the asker");
}

#[test]
fn follower_without_a_leader_refuses_reads() {
    let mut c = cluster(3);
    assert_eq!(
        c.node_mut(2).read_index(b"f".to_vec()),
        Err(RaftError::NotLeader { hint: None })
    );
}

#[test]
fn single_node_leader_answers_immediately() {
    let mut c = cluster(1);
    elect(&mut c, 1);
    c.node_mut(1).read_index(b"solo".to_vec()).expect("leader");
    c.process_readies();
    assert_eq!(c.read_states(1).len(), 1);
    assert_eq!(c.read_states(1)[0].index, c.node(1).commit_index());
}

#[test]
fn a_later_quorum_answers_earlier_pending_reads_in_order() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    c.node_mut(1).read_index(b"a".to_vec()).expect("queued");
    c.node_mut(1).read_index(b"b".to_vec()).expect("queued");
    c.process_readies();
    // Only the heartbeats for "b" get through.
    c.drop_where(|m| m.context == b"a");
    c.stabilize();
    let ctxs: Vec<&[u8]> = c
        .read_states(1)
        .iter()
        .map(|r| r.request_ctx.as_slice())
        .collect();
    assert_eq!(ctxs, vec![b"a".as_slice(), b"b".as_slice()]);
}
