//! Leader election: randomised timeouts, term and vote rules (Raft §5.2, §5.4.1), pre-vote
//! (thesis §9.6), check-quorum and the leader-lease rejection of disruptive votes (thesis
//! §4.2.3, §6.2), and the executor ordering of vote messages.

use oxetcd_spec::raft::describe;
use oxetcd_spec::raft::sim::{Cluster, SimConfig};
use oxetcd_spec::raft::{
    ConfState, Config, InjectedBugs, LogIndex, MemStorage, Message, MessageKind, Node, NodeId,
    Ready, Role, Term,
};

fn node(id: u64, voters: &[u64], cfg: impl FnOnce(&mut Config)) -> Node<MemStorage> {
    let mut config = Config::new(NodeId(id));
    config.pre_vote = false;
    config.check_quorum = false;
    cfg(&mut config);
    let storage = MemStorage::new_with_conf_state(ConfState::with_voters(voters.iter().copied()));
    Node::new(config, storage).expect("valid")
}

/// Persists and acknowledges one Ready, returning it.
fn drive(n: &mut Node<MemStorage>) -> Ready {
    let rd = n.ready().expect("no Ready outstanding");
    oxetcd_spec::raft::Storage::persist_ready(n.storage_mut(), &rd).expect("persist");
    n.advance(rd.ack()).expect("advance");
    rd
}

fn vote(from: u64, to: u64, term: u64, last_index: u64, last_term: u64) -> Message {
    let mut m = Message::new(MessageKind::Vote, NodeId(from), NodeId(to), Term(term));
    m.index = LogIndex(last_index);
    m.log_term = Term(last_term);
    m
}

fn sim(n: u64, pre_vote: bool, check_quorum: bool) -> Cluster {
    let mut cfg = SimConfig::new(n, 42);
    cfg.pre_vote = pre_vote;
    cfg.check_quorum = check_quorum;
    let mut c = Cluster::new(cfg);
    c.record = true;
    c
}

fn elect(c: &mut Cluster, id: u64) {
    c.campaign(id);
    c.stabilize();
    assert_eq!(c.leader(), Some(NodeId(id)), "node {id} elected");
}

#[test]
fn election_timeout_is_randomised_within_one_to_two_timeouts() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..20 {
        let mut n = node(1, &[1, 2, 3], |c| c.seed = seed);
        let mut ticks = 0;
        while n.role() == Role::Follower {
            n.tick();
            ticks += 1;
            assert!(ticks < 100, "campaigned eventually");
        }
        assert!((10..20).contains(&ticks), "timeout {ticks} in [10, 20)");
        seen.insert(ticks);
    }
    assert!(seen.len() > 3, "timeouts vary with the seed: {seen:?}");
}

#[test]
fn campaign_bumps_term_votes_for_self_and_sends_votes_after_persisting() {
    let mut n = node(1, &[1, 2, 3], |_| {});
    n.campaign();
    let rd = drive(&mut n);
    insta::assert_snapshot!(describe::ready(&rd), @r#"
    soft: Candidate(lead=none)
    hard: term=1 vote=1 commit=0
    send-after-persist: 1->2 Vote term=1 log_term=0
    send-after-persist: 1->3 Vote term=1 log_term=0
    must-sync
    "#);
    assert!(
        rd.messages.is_empty(),
        "votes never leave before the term is durable"
    );
}

#[test]
fn candidate_with_majority_becomes_leader_and_appends_an_empty_entry() {
    let mut n = node(1, &[1, 2, 3], |_| {});
    n.campaign();
    drive(&mut n);
    let mut resp = Message::new(MessageKind::VoteResp, NodeId(2), NodeId(1), Term(1));
    resp.reject = false;
    n.step(resp);
    assert_eq!(n.role(), Role::Leader);
    let rd = drive(&mut n);
    insta::assert_snapshot!(describe::ready(&rd), @r#"
    soft: Leader(lead=1)
    entries: [1/1 empty]
    send: 1->2 App term=1 log_term=0 index=0 entries=[1/1 empty]
    send: 1->3 App term=1 log_term=0 index=0 entries=[1/1 empty]
    must-sync
    "#);
}

#[test]
fn candidate_rejected_by_majority_returns_to_follower() {
    let mut n = node(1, &[1, 2, 3], |_| {});
    n.campaign();
    drive(&mut n);
    for from in [2, 3] {
        let mut resp = Message::new(MessageKind::VoteResp, NodeId(from), NodeId(1), Term(1));
        resp.reject = true;
        n.step(resp);
    }
    assert_eq!(n.role(), Role::Follower);
    assert_eq!(n.term(), Term(1));
}

#[test]
fn follower_grants_one_vote_per_term() {
    let mut n = node(1, &[1, 2, 3], |_| {});
    n.step(vote(2, 1, 1, 0, 0));
    n.step(vote(3, 1, 1, 0, 0));
    n.step(vote(2, 1, 1, 0, 0)); // a retransmission is granted again
    let rd = drive(&mut n);
    insta::assert_snapshot!(describe::ready(&rd), @r#"
    hard: term=1 vote=2 commit=0
    send-after-persist: 1->2 VoteResp term=1
    send-after-persist: 1->3 VoteResp term=1 REJECT hint=0
    send-after-persist: 1->2 VoteResp term=1
    must-sync
    "#);
}

#[test]
fn injected_bug_grants_two_votes_in_one_term() {
    let bugs = InjectedBugs {
        grant_two_votes_in_one_term: true,
        ..InjectedBugs::default()
    };
    let mut n = node(1, &[1, 2, 3], |c| c.bugs = bugs);
    n.step(vote(2, 1, 1, 0, 0));
    n.step(vote(3, 1, 1, 0, 0));
    let rd = drive(&mut n);
    let granted = rd
        .messages_after_persist
        .iter()
        .filter(|m| m.kind == MessageKind::VoteResp && !m.reject)
        .count();
    assert_eq!(granted, 2);
}

#[test]
fn vote_is_refused_to_a_candidate_with_a_less_up_to_date_log() {
    let mut n = node(1, &[1, 2, 3], |_| {});
    // Give node 1 a log ending at term 2, index 2.
    let mut app = Message::new(MessageKind::App, NodeId(2), NodeId(1), Term(2));
    app.entries = vec![
        oxetcd_spec::raft::Entry {
            term: Term(1),
            index: LogIndex(1),
            payload: Default::default(),
        },
        oxetcd_spec::raft::Entry {
            term: Term(2),
            index: LogIndex(2),
            payload: Default::default(),
        },
    ];
    n.step(app);
    drive(&mut n);
    // Longer log but older last term: refused (Raft §5.4.1).
    n.step(vote(3, 1, 3, 5, 1));
    // Same last term, shorter: refused.
    n.step(vote(3, 1, 4, 1, 2));
    // Same last term, same length: granted.
    n.step(vote(3, 1, 5, 2, 2));
    let rd = drive(&mut n);
    let answers: Vec<(u64, bool)> = rd
        .messages_after_persist
        .iter()
        .map(|m| (m.term.0, m.reject))
        .collect();
    assert_eq!(answers, vec![(3, true), (4, true), (5, false)]);
}

#[test]
fn higher_term_message_turns_a_leader_into_a_follower() {
    let mut c = sim(3, false, false);
    elect(&mut c, 1);
    let term = c.node(1).term();
    c.campaign(2);
    c.stabilize();
    assert_eq!(c.node(1).role(), Role::Follower);
    assert!(c.node(1).term() > term);
    assert_eq!(c.leader(), Some(NodeId(2)));
    c.check_safety().expect("safe");
}

#[test]
fn stale_term_messages_are_ignored() {
    let mut n = node(1, &[1, 2, 3], |_| {});
    n.step(vote(2, 1, 5, 0, 0));
    drive(&mut n);
    n.step(vote(3, 1, 4, 0, 0));
    let mut hb = Message::new(MessageKind::Heartbeat, NodeId(3), NodeId(1), Term(4));
    hb.commit = LogIndex(0);
    n.step(hb);
    assert!(
        !n.has_ready(),
        "nothing answers a stale message without check-quorum"
    );
    assert_eq!(n.term(), Term(5));
}

#[test]
fn pre_vote_keeps_an_isolated_node_from_inflating_its_term() {
    let mut c = sim(3, true, false);
    elect(&mut c, 1);
    let term = c.node(1).term();
    c.isolate(3);
    for _ in 0..100 {
        c.tick(3);
        c.stabilize();
    }
    assert_eq!(c.node(3).term(), term, "pre-vote failed, term unchanged");
    c.heal();
    c.tick_all_and_stabilize(5);
    assert_eq!(
        c.leader(),
        Some(NodeId(1)),
        "the rejoining node did not disrupt"
    );
    assert_eq!(c.node(1).term(), term);
}

#[test]
fn without_pre_vote_an_isolated_node_disrupts_the_leader_on_return() {
    let mut c = sim(3, false, false);
    elect(&mut c, 1);
    let term = c.node(1).term();
    c.isolate(3);
    for _ in 0..100 {
        c.tick(3);
        c.stabilize();
    }
    assert!(c.node(3).term() > term);
    c.heal();
    c.tick_all_and_stabilize(30);
    assert!(c.node(1).term() > term, "the higher term deposed leader 1");
}

#[test]
fn check_quorum_leader_steps_down_when_it_cannot_reach_a_quorum() {
    let mut c = sim(3, false, true);
    elect(&mut c, 1);
    c.isolate(1);
    for _ in 0..25 {
        c.tick(1);
        c.stabilize();
    }
    assert_eq!(c.node(1).role(), Role::Follower);
}

#[test]
fn without_check_quorum_an_isolated_leader_stays_leader() {
    let mut c = sim(3, false, false);
    elect(&mut c, 1);
    c.isolate(1);
    for _ in 0..25 {
        c.tick(1);
        c.stabilize();
    }
    assert_eq!(c.node(1).role(), Role::Leader);
}

#[test]
fn check_quorum_followers_ignore_disruptive_votes_while_the_leader_is_alive() {
    let mut c = sim(3, false, true);
    elect(&mut c, 1);
    let term = c.node(2).term();
    // Node 3 campaigns without having timed out (as after a partition).
    c.campaign(3);
    c.deliver_where(|m| m.kind == MessageKind::Vote);
    assert_eq!(c.node(2).term(), term, "vote from 3 was ignored in lease");
    assert_eq!(c.node(1).role(), Role::Leader);
}

#[test]
fn without_check_quorum_a_disruptive_vote_bumps_the_term() {
    let mut c = sim(3, false, false);
    elect(&mut c, 1);
    let term = c.node(2).term();
    c.campaign(3);
    c.deliver_where(|m| m.kind == MessageKind::Vote);
    assert!(c.node(2).term() > term);
}

#[test]
fn followers_elect_a_new_leader_when_the_leader_crashes() {
    let mut c = sim(5, true, true);
    elect(&mut c, 1);
    c.crash(NodeId(1));
    c.tick_all_and_stabilize(40);
    let leader = c.leader().expect("a new leader");
    assert_ne!(leader, NodeId(1));
    c.check_safety().expect("safe");
}

#[test]
fn election_transcript() {
    let mut c = sim(3, true, true);
    c.campaign(1);
    c.stabilize();
    insta::assert_snapshot!(c.transcript.join("\n"));
}
