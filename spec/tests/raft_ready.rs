//! The executor contract of `Node` (see `spec::raft::node`): one outstanding Ready,
//! acknowledgements must match, what may be sent before persisting, when a sync is needed,
//! what survives a crash, and redelivery of committed entries after restart.

use oxetcd_spec::raft::sim::{Cluster, SimConfig};
use oxetcd_spec::raft::{
    Config, LogIndex, MemStorage, MessageKind, Node, NodeId, RaftError, ReadyAck, Role, Storage,
    Term,
};

fn single() -> Node<MemStorage> {
    let mut cfg = Config::new(NodeId(1));
    cfg.pre_vote = false;
    Node::new(cfg, MemStorage::new_bootstrapped([1])).expect("valid")
}

fn drive(n: &mut Node<MemStorage>) {
    let rd = n.ready().expect("none outstanding");
    n.storage_mut().persist_ready(&rd).expect("persist");
    n.advance(rd.ack()).expect("advance");
}

#[test]
fn only_one_ready_may_be_outstanding_and_acks_must_match() {
    let mut n = single();
    assert!(n.has_ready(), "bootstrap entries to apply");
    let rd = n.ready().expect("first");
    assert!(!n.has_ready());
    assert_eq!(
        n.ready(),
        Err(RaftError::ReadyNotAdvanced { number: rd.number })
    );
    assert_eq!(
        n.advance(ReadyAck {
            number: rd.number + 1
        }),
        Err(RaftError::UnexpectedAck {
            number: rd.number + 1
        })
    );
    n.storage_mut().persist_ready(&rd).expect("persist");
    n.advance(rd.ack()).expect("the right ack");
    assert_eq!(
        n.advance(rd.ack()),
        Err(RaftError::UnexpectedAck { number: rd.number }),
        "acknowledging twice is a mistake"
    );
}

#[test]
fn bootstrap_configuration_is_applied_from_the_log() {
    let mut n = single();
    assert!(
        n.conf_state().voters.is_empty(),
        "not before the entries are applied"
    );
    n.campaign();
    assert_eq!(
        n.role(),
        Role::Follower,
        "no campaign with unapplied conf changes"
    );
    let rd = n.ready().expect("ready");
    assert_eq!(rd.committed_entries.len(), 1);
    n.storage_mut().persist_ready(&rd).expect("persist");
    n.advance(rd.ack()).expect("advance");
    assert!(n.conf_state().voters.contains(&NodeId(1)));
    n.campaign();
    assert_eq!(n.role(), Role::Leader);
}

#[test]
fn single_node_commits_only_after_its_own_persistence() {
    let mut n = single();
    drive(&mut n);
    n.campaign();
    drive(&mut n); // the leader's empty entry is persisted, then committed
    drive(&mut n); // ...and applied
    let commit = n.commit_index();
    n.propose(b"x".to_vec()).expect("leader");
    let rd = n.ready().expect("ready");
    assert_eq!(rd.entries.len(), 1);
    assert!(
        rd.committed_entries.is_empty(),
        "not committed before it is durable"
    );
    assert!(rd.must_sync);
    n.storage_mut().persist_ready(&rd).expect("persist");
    n.advance(rd.ack()).expect("advance");
    assert_eq!(n.commit_index(), commit.next());
    let rd = n.ready().expect("ready");
    assert_eq!(rd.committed_entries.len(), 1);
    assert!(!rd.must_sync, "a commit-index-only change needs no sync");
}

#[test]
fn follower_acknowledges_appends_only_after_persisting() {
    let mut c = Cluster::new(SimConfig::new(3, 1));
    c.campaign(1);
    c.stabilize();
    c.node_mut(1).propose(b"x".to_vec()).expect("leader");
    let rd = c.node_mut(1).ready().expect("ready");
    assert!(
        rd.messages.iter().all(|m| m.kind == MessageKind::App),
        "leader appends go now"
    );
    assert!(rd.messages_after_persist.is_empty());
    let app = rd.messages[0].clone();
    c.node_mut(1)
        .storage_mut()
        .persist_ready(&rd)
        .expect("persist");
    c.node_mut(1).advance(rd.ack()).expect("advance");
    let to = app.to.0;
    c.node_mut(to).step(app);
    let rd = c.node_mut(to).ready().expect("ready");
    assert!(rd.messages.is_empty());
    assert!(
        rd.messages_after_persist
            .iter()
            .any(|m| m.kind == MessageKind::AppResp && !m.reject),
        "the acknowledgement promises durability, so it waits for the persist step"
    );
}

#[test]
fn crash_before_persisting_loses_the_term_and_sends_no_vote_requests() {
    let mut cfg = Config::new(NodeId(1));
    cfg.pre_vote = false;
    // A three-member cluster so the campaign does not finish on its own.
    let mut storage = MemStorage::new_bootstrapped([1, 2, 3]);
    let mut n = Node::new(cfg.clone(), storage.clone()).expect("valid");
    drive(&mut n);
    storage = n.storage().clone();
    n.campaign();
    let rd = n.ready().expect("ready");
    assert!(
        rd.messages.is_empty(),
        "vote requests wait for the persist step"
    );
    assert_eq!(rd.messages_after_persist.len(), 2);
    // Crash now: nothing of this Ready was persisted.
    cfg.applied = LogIndex(3);
    let restarted = Node::new(cfg, storage).expect("restart");
    assert_eq!(
        restarted.term(),
        Term(1),
        "the candidate term was never durable"
    );
    assert_eq!(restarted.hard_state().vote, None);
}

#[test]
fn restart_keeps_term_vote_and_log_and_redelivers_unapplied_committed_entries() {
    let mut c = Cluster::new(SimConfig::new(3, 2));
    c.campaign(1);
    c.stabilize();
    for i in 0..3 {
        c.propose(1, format!("v{i}").as_bytes()).expect("leader");
    }
    c.stabilize();
    let before = c.node(2).hard_state();
    let last = c.node(2).last_index();
    let storage = c.node(2).storage().clone();
    // Restart node 2 as if its application had applied only up to index 4.
    let mut cfg = c.node(2).config().clone();
    cfg.applied = LogIndex(4);
    let mut n = Node::new(cfg, storage).expect("restart");
    assert_eq!(n.hard_state(), before);
    assert_eq!(n.last_index(), last);
    let rd = n.ready().expect("ready");
    let first = rd.committed_entries.first().map(|e| e.index);
    assert_eq!(first, Some(LogIndex(5)), "redelivered from applied + 1");
    assert_eq!(
        rd.committed_entries.last().map(|e| e.index),
        Some(before.commit)
    );
}

#[test]
fn applied_beyond_commit_is_rejected_at_restart() {
    let mut cfg = Config::new(NodeId(1));
    cfg.applied = LogIndex(5);
    assert_eq!(
        Node::new(cfg, MemStorage::new_bootstrapped([1])).err(),
        Some(RaftError::InvalidConfig { field: "applied" })
    );
}

#[test]
fn invalid_configs_are_rejected() {
    let mut cfg = Config::new(NodeId(1));
    cfg.election_tick = 1;
    assert_eq!(
        Node::new(cfg, MemStorage::new()).err(),
        Some(RaftError::InvalidConfig {
            field: "election_tick"
        })
    );
    assert_eq!(
        Node::new(Config::new(NodeId(0)), MemStorage::new()).err(),
        Some(RaftError::InvalidConfig { field: "id" })
    );
}

#[test]
fn node_state_identity_ignores_the_ready_counter() {
    let mut leader = single();
    drive(&mut leader);
    leader.campaign();
    drive(&mut leader);
    drive(&mut leader);
    // Same proposals, different batching into Readies.
    let mut x = leader.clone();
    let mut y = leader.clone();
    x.propose(b"a".to_vec()).expect("leader");
    drive(&mut x);
    drive(&mut x);
    x.propose(b"b".to_vec()).expect("leader");
    drive(&mut x);
    drive(&mut x);
    y.propose(b"a".to_vec()).expect("leader");
    y.propose(b"b".to_vec()).expect("leader");
    drive(&mut y);
    drive(&mut y);
    assert!(!x.has_ready() && !y.has_ready());
    assert_eq!(x.commit_index(), y.commit_index());
    assert_eq!(x, y, "equal states, though x produced more Readies");
}

mod malformed {
    use super::*;
    use oxetcd_spec::raft::{Entry, EntryPayload, Message};
    use quickcheck_macros::quickcheck;

    /// kind, from, term, log_term, index, commit, reject.
    type Fields = (u8, u8, u8, u8, u8, u8, bool);

    const KINDS: [MessageKind; 14] = MessageKind::ALL;

    fn arbitrary_message(fields: &Fields, entries: &[(u8, u8)]) -> Message {
        let (kind, from, term, log_term, index, commit, reject) = *fields;
        let mut m = Message::new(
            KINDS[usize::from(kind) % KINDS.len()],
            NodeId(u64::from(from % 4)),
            NodeId(1),
            Term(u64::from(term % 6)),
        );
        m.log_term = Term(u64::from(log_term % 6));
        m.index = LogIndex(u64::from(index % 12));
        m.commit = LogIndex(u64::from(commit % 12));
        m.reject = reject;
        m.entries = entries
            .iter()
            .take(4)
            .map(|(i, t)| Entry {
                term: Term(u64::from(t % 6)),
                index: LogIndex(u64::from(i % 12)),
                payload: EntryPayload::Normal(vec![*i]),
            })
            .collect();
        m
    }

    /// Whatever peers send, a node never panics and its invariants hold (they are checked
    /// after every input in debug builds, and explicitly here).
    #[quickcheck]
    fn arbitrary_peer_messages_never_break_a_node(
        msgs: Vec<(Fields, Vec<(u8, u8)>)>,
        become_leader: bool,
    ) -> bool {
        let mut cfg = Config::new(NodeId(1));
        cfg.pre_vote = false;
        cfg.check_quorum = false;
        let mut n = Node::new(cfg, MemStorage::new_bootstrapped([1, 2, 3])).expect("valid");
        drive(&mut n);
        if become_leader {
            n.campaign();
            drive(&mut n);
            let mut grant = Message::new(MessageKind::VoteResp, NodeId(2), NodeId(1), n.term());
            grant.reject = false;
            n.step(grant);
        }
        for (fields, entries) in msgs.iter().take(30) {
            n.step(arbitrary_message(fields, entries));
            n.check_invariants();
            if n.has_ready() {
                drive(&mut n);
            }
            n.tick();
        }
        n.check_invariants();
        true
    }
}

#[test]
fn append_with_non_contiguous_entries_is_dropped() {
    use oxetcd_spec::raft::{Entry, EntryPayload, Message};
    let mut n = Node::new(
        Config::new(NodeId(1)),
        MemStorage::new_bootstrapped([1, 2, 3]),
    )
    .expect("valid");
    drive(&mut n);
    let mut app = Message::new(MessageKind::App, NodeId(2), NodeId(1), Term(2));
    app.index = LogIndex(3);
    app.log_term = Term(1);
    app.entries = [4, 6]
        .into_iter()
        .map(|i| Entry {
            term: Term(2),
            index: LogIndex(i),
            payload: EntryPayload::Normal(vec![1]),
        })
        .collect();
    n.step(app);
    n.check_invariants();
    assert_eq!(n.last_index(), LogIndex(3), "nothing appended");
    assert_eq!(
        n.term(),
        Term(1),
        "a malformed message does not even change the term"
    );
}

#[test]
fn acknowledgement_beyond_the_leader_log_is_dropped() {
    use oxetcd_spec::raft::Message;
    let mut cfg = Config::new(NodeId(1));
    cfg.pre_vote = false;
    let mut n = Node::new(cfg, MemStorage::new_bootstrapped([1, 2, 3])).expect("valid");
    drive(&mut n);
    n.campaign();
    drive(&mut n);
    n.step(Message::new(
        MessageKind::VoteResp,
        NodeId(2),
        NodeId(1),
        n.term(),
    ));
    assert_eq!(n.role(), Role::Leader);
    drive(&mut n);
    let mut ack = Message::new(MessageKind::AppResp, NodeId(2), NodeId(1), n.term());
    ack.index = LogIndex(100);
    n.step(ack);
    n.check_invariants();
    assert!(n.commit_index() <= n.last_index());
    assert_eq!(n.progress(NodeId(2)).map(|p| p.matched), Some(LogIndex(0)));
}
