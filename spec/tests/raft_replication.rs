//! Log replication: the AppendEntries consistency check and repair of divergent logs with
//! fast back-off (Raft §5.3, etcd's conflict hint), flow control (probe/replicate states,
//! `max_inflight_msgs`, `max_size_per_msg`), commit by counting current-term replicas
//! only (Raft §5.4.2) with the paper's Figure 8 scenario, and the stale-append term check.

use std::collections::BTreeMap;

use oxetcd_spec::raft::sim::{Cluster, SimConfig, is};
use oxetcd_spec::raft::{
    ConfState, Entry, EntryPayload, HardState, InjectedBugs, LogIndex, MemStorage, MessageKind,
    NodeId, ProgressState, Storage, Term,
};

fn config(nodes: u64) -> SimConfig {
    let mut cfg = SimConfig::new(nodes, 7);
    cfg.pre_vote = false;
    cfg.check_quorum = false;
    cfg
}

fn elect(c: &mut Cluster, id: u64) {
    c.campaign(id);
    c.stabilize();
    assert_eq!(c.leader(), Some(NodeId(id)));
}

/// A storage for a member of `voters` holding entries with the given terms (index 1..).
fn storage_with_terms(voters: &[u64], terms: &[u64], commit: u64) -> MemStorage {
    let mut s = MemStorage::new_with_conf_state(ConfState::with_voters(voters.iter().copied()));
    let entries: Vec<Entry> = terms
        .iter()
        .enumerate()
        .map(|(i, t)| Entry {
            term: Term(*t),
            index: LogIndex(i as u64 + 1),
            payload: EntryPayload::Normal(format!("t{t}").into_bytes()),
        })
        .collect();
    s.append(&entries).expect("append");
    s.set_hard_state(HardState {
        term: Term(terms.last().copied().unwrap_or(0)),
        vote: None,
        commit: LogIndex(commit),
    })
    .expect("hard state");
    s
}

fn log_terms(c: &Cluster, id: u64) -> Vec<u64> {
    let n = c.node(id);
    n.entries(LogIndex(1), n.last_index().next())
        .expect("not compacted")
        .iter()
        .map(|e| e.term.0)
        .collect()
}

fn count(c: &Cluster, needle: &str) -> usize {
    c.transcript.iter().filter(|l| l.contains(needle)).count()
}

#[test]
fn divergent_follower_log_is_repaired_with_one_rejection_thanks_to_the_hint() {
    let mut leader_terms = vec![1, 1, 1];
    leader_terms.extend([4; 7]);
    let mut divergent = vec![1, 1, 1];
    divergent.extend([2; 27]);
    let storages = BTreeMap::from([
        (NodeId(1), storage_with_terms(&[1, 2, 3], &leader_terms, 3)),
        (NodeId(2), storage_with_terms(&[1, 2, 3], &divergent, 3)),
        (NodeId(3), storage_with_terms(&[1, 2, 3], &[1, 1, 1], 3)),
    ]);
    let mut c = Cluster::with_storages(config(3), storages);
    c.record = true;
    elect(&mut c, 1);
    c.stabilize();
    let expected = {
        let mut t = leader_terms.clone();
        t.push(5); // the new leader's empty entry
        t
    };
    assert_eq!(log_terms(&c, 2), expected, "divergent suffix replaced");
    assert_eq!(log_terms(&c, 3), expected, "short log filled in");
    // Naive decrement would need 7 rejections from node 2 and 7 from node 3.
    assert_eq!(
        count(&c, "deliver 2->1 AppResp term=5 log_term=2 index=10 REJECT"),
        1
    );
    assert_eq!(
        count(&c, "deliver 3->1 AppResp term=5 log_term=1 index=10 REJECT"),
        1
    );
    let rejections = c
        .transcript
        .iter()
        .filter(|l| l.starts_with("deliver") && l.contains("REJECT"))
        .count();
    assert_eq!(rejections, 2, "{:#?}", c.transcript);
    assert_eq!(c.node(1).commit_index(), LogIndex(11));
    c.check_safety().expect("safe");
}

#[test]
fn follower_rejects_append_whose_previous_entry_does_not_match() {
    let storages = BTreeMap::from([
        (NodeId(1), storage_with_terms(&[1, 2], &[1, 1, 3], 1)),
        (NodeId(2), storage_with_terms(&[1, 2], &[1, 2], 1)),
    ]);
    let mut c = Cluster::with_storages(config(2), storages);
    c.record = true;
    c.campaign(1);
    c.deliver_where(|m| m.kind == MessageKind::Vote);
    c.deliver_where(|m| m.kind == MessageKind::VoteResp);
    // First probe: prev = (3, term 3) which node 2 lacks.
    c.deliver_where(|m| is(m, MessageKind::App, 1, 2));
    let rejection = c
        .take_where(|m| is(m, MessageKind::AppResp, 2, 1))
        .pop()
        .expect("an answer");
    assert!(rejection.reject);
    assert_eq!(rejection.index, LogIndex(3), "the rejected prev index");
    assert_eq!(rejection.reject_hint, LogIndex(2), "its last index");
    assert_eq!(rejection.log_term, Term(2), "and that entry's term");
    assert_eq!(
        log_terms(&c, 2),
        vec![1, 2],
        "log untouched by the rejected append"
    );
}

#[test]
fn progress_moves_from_probe_to_replicate_on_first_acknowledgement() {
    let mut c = Cluster::new(config(3));
    c.campaign(1);
    c.deliver_where(|m| m.kind == MessageKind::Vote);
    c.deliver_where(|m| m.kind == MessageKind::VoteResp);
    let pr = c.node(1).progress(NodeId(2)).expect("leader tracks 2");
    assert_eq!(pr.state, ProgressState::Probe);
    assert!(pr.probe_sent, "one probe in flight");
    c.stabilize();
    let pr = c.node(1).progress(NodeId(2)).expect("leader tracks 2");
    assert_eq!(pr.state, ProgressState::Replicate);
    assert_eq!(pr.matched, c.node(1).last_index());
}

#[test]
fn probing_follower_receives_at_most_one_append_until_it_answers() {
    let mut c = Cluster::new(config(3));
    c.campaign(1);
    c.deliver_where(|m| m.kind == MessageKind::Vote);
    c.deliver_where(|m| m.kind == MessageKind::VoteResp);
    for i in 0..5 {
        c.propose(1, format!("v{i}").as_bytes())
            .expect("leader accepts");
    }
    let to_two = c
        .in_flight()
        .iter()
        .filter(|m| is(m, MessageKind::App, 1, 2))
        .count();
    assert_eq!(to_two, 1, "probe state sends one append per round trip");
}

#[test]
fn replicating_follower_has_at_most_max_inflight_appends_outstanding() {
    let mut c = Cluster::new(config(3)); // max_inflight_msgs = 4
    elect(&mut c, 1);
    for i in 0..10 {
        c.propose(1, format!("v{i}").as_bytes())
            .expect("leader accepts");
    }
    let to_two = c
        .in_flight()
        .iter()
        .filter(|m| is(m, MessageKind::App, 1, 2))
        .count();
    assert_eq!(to_two, 4);
    let pr = c.node(1).progress(NodeId(2)).expect("tracked");
    assert!(pr.inflights.is_full());
    // Acknowledgements open the window again and everything arrives.
    c.stabilize();
    assert_eq!(c.node(2).last_index(), c.node(1).last_index());
    assert_eq!(c.node(2).commit_index(), c.node(1).commit_index());
}

#[test]
fn appends_respect_max_size_per_msg_but_always_carry_one_entry() {
    let mut cfg = config(3);
    cfg.max_size_per_msg = 300; // two 124-byte entries fit, three do not
    cfg.max_inflight_msgs = 64;
    let mut c = Cluster::new(cfg);
    elect(&mut c, 1);
    c.crash(NodeId(3));
    for i in 0..7 {
        c.propose(1, &[i; 100]).expect("leader accepts");
        c.stabilize();
    }
    c.restart(NodeId(3));
    c.record = true;
    c.tick_all_and_stabilize(4);
    let sizes: Vec<usize> = c
        .transcript
        .iter()
        .filter(|l| l.starts_with("deliver 1->3 App"))
        .map(|l| l.matches("\"").count() / 2)
        .collect();
    assert!(sizes.iter().all(|n| *n <= 2), "{sizes:?}");
    assert!(sizes.contains(&2), "{sizes:?}");
    assert_eq!(c.node(3).last_index(), c.node(1).last_index());
}

#[test]
fn commit_needs_a_quorum_of_acknowledgements() {
    let mut c = Cluster::new(config(5));
    elect(&mut c, 1);
    let before = c.node(1).commit_index();
    c.propose(1, b"x").expect("accepted");
    c.deliver_where(|m| is(m, MessageKind::App, 1, 2));
    c.deliver_where(|m| is(m, MessageKind::AppResp, 2, 1));
    assert_eq!(c.node(1).commit_index(), before, "2 of 5 is not a quorum");
    c.deliver_where(|m| is(m, MessageKind::App, 1, 3));
    c.deliver_where(|m| is(m, MessageKind::AppResp, 3, 1));
    assert_eq!(c.node(1).commit_index(), before.next(), "3 of 5 is");
}

#[test]
fn leader_counts_itself_only_after_persisting() {
    let mut c = Cluster::new(config(3));
    elect(&mut c, 1);
    let before = c.node(1).commit_index();
    c.node_mut(1).propose(b"x".to_vec()).expect("accepted");
    // The entry is only in the leader's unstable log: its own match must not count it
    // until the Ready holding it was persisted and acknowledged.
    let me = c.node(1).progress(NodeId(1)).expect("self tracked").matched;
    assert_eq!(me, before, "not counted before persist");
    c.process_readies();
    let me = c.node(1).progress(NodeId(1)).expect("self tracked").matched;
    assert_eq!(me, before.next(), "counted after advance");
}

/// Raft paper Figure 8, adapted: an entry from an earlier term that is stored on a
/// majority is still not safe to commit by counting; a later leader may overwrite it.
/// Returns the cluster, S1's commit index right after index `a` reached a majority, and `a`.
fn figure_8(bugs: InjectedBugs) -> (Cluster, LogIndex, LogIndex) {
    let mut cfg = config(5);
    cfg.max_size_per_msg = 1; // one entry per append, to control exactly what arrives
    cfg.bugs = bugs;
    let mut c = Cluster::new(cfg);
    c.record = true;
    // (a) S1 leads term 2 and replicates index a ("a") only to S2.
    elect(&mut c, 1);
    let a = c.node(1).last_index().next();
    let a_term = c.node(1).term();
    c.propose(1, b"a").expect("accepted");
    c.deliver_where(|m| is(m, MessageKind::App, 1, 2));
    c.deliver_where(|m| is(m, MessageKind::AppResp, 2, 1));
    c.drop_where(|_| true);
    // (b) S1 crashes; S5 wins the next term with votes from S3, S4 and appends index a
    // itself.
    c.crash(NodeId(1));
    c.campaign(5);
    c.deliver_where(|m| m.kind == MessageKind::Vote);
    c.deliver_where(|m| m.kind == MessageKind::VoteResp);
    assert_eq!(c.leader(), Some(NodeId(5)));
    assert_eq!(c.node(5).term_at(a), Some(a_term.next()));
    c.drop_where(|_| true);
    // (c) S5 crashes; S1 restarts and wins a later term with S2, S3, S4.
    c.crash(NodeId(5));
    c.restart(NodeId(1));
    for _ in 0..4 {
        if c.leader() == Some(NodeId(1)) {
            break;
        }
        c.campaign(1);
        c.deliver_where(|m| m.kind == MessageKind::Vote);
        c.deliver_where(|m| m.kind == MessageKind::VoteResp);
    }
    assert_eq!(c.leader(), Some(NodeId(1)));
    // S1 replicates its current-term entry (index a+1) to S2 only, and index a (older
    // term) to S3: now S1, S2, S3 hold index a -- a majority of five.
    c.deliver_where(|m| is(m, MessageKind::App, 1, 2) || is(m, MessageKind::App, 1, 3));
    c.deliver_where(|m| is(m, MessageKind::AppResp, 3, 1)); // rejection: back off
    c.deliver_where(|m| is(m, MessageKind::App, 1, 3)); // index a only
    c.deliver_where(|m| m.kind == MessageKind::AppResp);
    let commit_after_majority = c.node(1).commit_index();
    // (d) S1 crashes before index a+1 reaches a majority; S5 restarts and wins.
    c.drop_where(|_| true);
    c.crash(NodeId(1));
    c.restart(NodeId(5));
    for _ in 0..6 {
        if c.leader() == Some(NodeId(5)) {
            break;
        }
        c.campaign(5);
        c.deliver_where(|m| m.kind == MessageKind::Vote);
        c.deliver_where(|m| m.kind == MessageKind::VoteResp);
    }
    assert_eq!(
        c.leader(),
        Some(NodeId(5)),
        "S5 can win: its last term beats theirs"
    );
    c.stabilize();
    c.tick_all_and_stabilize(3);
    (c, commit_after_majority, a)
}

#[test]
fn figure_8_previous_term_entry_on_a_majority_is_not_committed_by_counting() {
    let (mut c, commit, a) = figure_8(InjectedBugs::default());
    assert_eq!(commit, a.prev(), "index a (older term) was not committed");
    assert_eq!(
        c.node(3).term_at(a),
        c.node(5).term_at(a),
        "S5 overwrote it"
    );
    assert_ne!(c.node(3).term_at(a), Some(Term(2)));
    assert!(
        c.applied(1)
            .iter()
            .all(|e| e.payload != EntryPayload::Normal(b"a".to_vec())),
        "nobody applied the overwritten entry"
    );
    c.check_safety()
        .expect("Figure 8 is safe with the current-term rule");
}

#[test]
fn figure_8_with_commit_by_counting_bug_loses_a_committed_entry() {
    let bugs = InjectedBugs {
        commit_previous_term_by_counting: true,
        ..InjectedBugs::default()
    };
    let (mut c, commit, a) = figure_8(bugs);
    assert_eq!(commit, a, "the bug commits index a by counting");
    let err = c
        .check_safety()
        .expect_err("the overwrite of a committed entry is caught");
    assert!(
        err.contains("state-machine safety") || err.contains("leader completeness"),
        "{err}"
    );
}

/// A stale leader's append reaching a follower of a newer term.
fn stale_append(bugs: InjectedBugs) -> Cluster {
    let mut cfg = config(3);
    cfg.bugs = bugs;
    let mut c = Cluster::new(cfg);
    elect(&mut c, 1);
    // Leader 1 proposes "x" but its appends are held back (delayed in the network).
    c.propose(1, b"x").expect("accepted");
    let held = c.take_where(|m| is(m, MessageKind::App, 1, 3));
    c.drop_where(|m| m.from == NodeId(1));
    // Node 2 takes over in a new term and commits its entry with node 3's help, but node 3
    // does not learn the commit index yet.
    c.crash(NodeId(1));
    c.campaign(2);
    c.deliver_where(|m| m.kind == MessageKind::Vote);
    c.deliver_where(|m| m.kind == MessageKind::VoteResp);
    assert_eq!(c.leader(), Some(NodeId(2)));
    c.deliver_where(|m| is(m, MessageKind::App, 2, 3));
    c.deliver_where(|m| is(m, MessageKind::AppResp, 3, 2));
    assert_eq!(c.node(2).commit_index(), c.node(2).last_index());
    c.drop_where(|_| true);
    // The delayed append from the old term finally arrives at node 3.
    for m in held {
        c.inject(m);
    }
    c.deliver_where(|m| m.to == NodeId(3));
    c.drop_where(|_| true);
    // Node 2 crashes; 1 and 3 elect a leader among themselves.
    c.crash(NodeId(2));
    c.restart(NodeId(1));
    c.tick_all_and_stabilize(60);
    c
}

#[test]
fn follower_rejects_append_from_stale_term() {
    let mut c = stale_append(InjectedBugs::default());
    let x_index = c.node(1).commit_index().max(c.node(3).commit_index());
    assert!(
        c.node(3)
            .entries(LogIndex(1), x_index.next())
            .expect("not compacted")
            .iter()
            .all(|e| e.payload != EntryPayload::Normal(b"x".to_vec())),
        "the stale entry never replaced node 2's"
    );
    c.check_safety().expect("safe");
}

#[test]
fn injected_bug_accepting_stale_appends_loses_a_committed_entry() {
    let bugs = InjectedBugs {
        accept_append_without_term_check: true,
        ..InjectedBugs::default()
    };
    let mut c = stale_append(bugs);
    let err = c.check_safety().expect_err("violation found");
    assert!(
        err.contains("leader completeness") || err.contains("state-machine"),
        "{err}"
    );
}
