//! A committed conf change the application refuses (etcd's `applyConfChange` when
//! `ValidateConfigurationChange` fails) leaves the Raft configuration as it was.

use oxetcd_spec::raft::{
    ConfChange, ConfState, Config, EntryPayload, MemStorage, Node, NodeId, Role, Storage,
};

fn lone_leader() -> Node<MemStorage> {
    let storage = MemStorage::new_with_conf_state(ConfState::with_voters([1]));
    let mut node = Node::new(Config::new(NodeId(1)), storage).expect("valid");
    node.campaign();
    for _ in 0..10 {
        if !node.has_ready() {
            break;
        }
        let rd = node.ready().expect("ready");
        Storage::persist_ready(node.storage_mut(), &rd).expect("persist");
        node.advance(rd.ack()).expect("advance");
    }
    assert_eq!(node.role(), Role::Leader);
    node
}

/// Proposes adding voter 2 and carries the Readies out, refusing the committed change
/// when `refuse`; returns the voters after.
fn add_voter_two(refuse: bool) -> Vec<u64> {
    let mut node = lone_leader();
    node.propose_conf_change(ConfChange::add_node(NodeId(2)))
        .expect("proposed");
    let mut seen = false;
    for _ in 0..10 {
        if !node.has_ready() {
            break;
        }
        let rd = node.ready().expect("ready");
        Storage::persist_ready(node.storage_mut(), &rd).expect("persist");
        for entry in &rd.committed_entries {
            if matches!(entry.payload, EntryPayload::ConfChange(_)) {
                seen = true;
                if refuse {
                    node.refuse_conf_change(entry.index);
                }
            }
        }
        node.advance(rd.ack()).expect("advance");
    }
    assert!(seen, "the conf change was committed");
    node.conf_state().voters.iter().map(|id| id.0).collect()
}

#[test]
fn a_refused_conf_change_leaves_the_voters_unchanged() {
    assert_eq!(add_voter_two(false), vec![1, 2]);
    assert_eq!(add_voter_two(true), vec![1]);
}
