//! Log compaction and snapshots (Raft §7): the application snapshots at its applied index,
//! the log is compacted, a follower behind the first index receives the (opaque) snapshot,
//! installs it and continues with normal appends.

use oxetcd_spec::raft::sim::{Cluster, SimConfig, is};
use oxetcd_spec::raft::{LogIndex, MessageKind, NodeId, ProgressState, RaftError};

fn cluster() -> Cluster {
    let mut cfg = SimConfig::new(3, 11);
    cfg.pre_vote = false;
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
fn compaction_discards_the_applied_prefix() {
    let mut c = cluster();
    elect(&mut c, 1);
    for i in 0..10 {
        c.propose(1, format!("v{i}").as_bytes()).expect("accepted");
    }
    c.stabilize();
    let applied = c.node(1).applied_index();
    c.compact(NodeId(1));
    assert_eq!(c.node(1).first_index(), applied.next());
    assert_eq!(
        c.node(1).entries(LogIndex(1), LogIndex(3)),
        None,
        "compacted"
    );
    assert!(
        c.node(1).term_at(applied).is_some(),
        "the snapshot term stays known"
    );
    // Nothing new to snapshot: an error, not a panic.
    assert!(matches!(
        c.node_mut(1).compact_log(Vec::new()),
        Err(RaftError::Storage(_))
    ));
}

fn lagging_follower_with_compacted_leader() -> Cluster {
    let mut c = cluster();
    elect(&mut c, 1);
    c.crash(NodeId(3));
    for i in 0..10 {
        c.propose(1, format!("v{i}").as_bytes()).expect("accepted");
    }
    c.stabilize();
    c.compact(NodeId(1));
    c.restart(NodeId(3));
    c
}

#[test]
fn follower_behind_the_first_index_receives_and_installs_a_snapshot() {
    let mut c = lagging_follower_with_compacted_leader();
    c.tick_all_and_stabilize(3);
    assert!(
        c.transcript
            .iter()
            .any(|l| l.starts_with("deliver 1->3 Snap")),
        "a snapshot was sent"
    );
    assert_eq!(c.node(3).first_index(), c.node(1).first_index());
    assert_eq!(c.node(3).last_index(), c.node(1).last_index());
    // The opaque application data arrived intact: 3's application equals 1's.
    assert_eq!(c.applied(3), c.applied(1));
    assert_eq!(
        c.node(1).progress(NodeId(3)).map(|p| p.state),
        Some(ProgressState::Replicate)
    );
    c.propose(1, b"after").expect("accepted");
    c.stabilize();
    assert_eq!(c.applied(3), c.applied(1));
    c.check_safety().expect("safe");
}

#[test]
fn leader_pauses_appends_while_a_snapshot_is_in_flight() {
    let mut c = lagging_follower_with_compacted_leader();
    c.tick(1);
    c.tick(1);
    c.deliver_where(|m| is(m, MessageKind::Heartbeat, 1, 3));
    c.deliver_where(|m| is(m, MessageKind::HeartbeatResp, 3, 1));
    c.deliver_where(|m| is(m, MessageKind::App, 1, 3));
    c.deliver_where(|m| is(m, MessageKind::AppResp, 3, 1));
    let snap = c.take_where(|m| is(m, MessageKind::Snap, 1, 3));
    assert_eq!(snap.len(), 1, "{:#?}", c.transcript);
    assert_eq!(
        c.node(1).progress(NodeId(3)).map(|p| p.state),
        Some(ProgressState::Snapshot)
    );
    c.propose(1, b"more").expect("accepted");
    assert!(
        !c.in_flight().iter().any(|m| is(m, MessageKind::App, 1, 3)),
        "no appends to a follower in snapshot state"
    );
}

#[test]
fn a_lost_snapshot_is_sent_again() {
    let mut c = lagging_follower_with_compacted_leader();
    for _ in 0..6 {
        c.tick(1);
        // Deliver everything except snapshots, which are lost.
        for _ in 0..100 {
            c.drop_where(|m| m.kind == MessageKind::Snap);
            if c.in_flight().is_empty() {
                break;
            }
            c.deliver_where(|_| true);
        }
    }
    assert!(
        c.node(3).last_index() < c.node(1).last_index(),
        "still behind"
    );
    c.tick_all_and_stabilize(3);
    assert_eq!(c.node(3).last_index(), c.node(1).last_index());
    assert!(
        c.transcript
            .iter()
            .filter(|l| l.contains("1->3 Snap"))
            .count()
            >= 2
    );
}

#[test]
fn a_node_restarts_from_an_installed_snapshot() {
    let mut c = lagging_follower_with_compacted_leader();
    c.tick_all_and_stabilize(3);
    c.crash(NodeId(3));
    c.restart(NodeId(3));
    assert_eq!(c.node(3).first_index(), c.node(1).first_index());
    c.propose(1, b"after-restart").expect("accepted");
    c.stabilize();
    assert_eq!(c.applied(3), c.applied(1));
    c.check_safety().expect("safe");
}
