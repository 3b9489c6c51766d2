//! A new cluster's bootstrap log as etcd writes it: one committed `AddNode` per initial
//! voter at term 1, each carrying the application's context, so the first election
//! moves to term 2 and the application applies the members before anything else.

use oxetcd_spec::raft::storage::{bootstrap, bootstrap_entries_with_context};
use oxetcd_spec::raft::{
    ConfState, Config, EntryPayload, LogIndex, MemStorage, Node, NodeId, Ready, Role, Storage, Term,
};

fn drive(n: &mut Node<MemStorage>) -> Ready {
    let rd = n.ready().expect("no Ready outstanding");
    Storage::persist_ready(n.storage_mut(), &rd).expect("persist");
    n.advance(rd.ack()).expect("advance");
    rd
}

#[test]
fn a_bootstrapped_lone_voter_leads_at_term_two_after_applying_the_contexts() {
    let mut storage = MemStorage::new_with_conf_state(ConfState::with_voters([7]));
    let entries = bootstrap_entries_with_context([(7, b"member 7".to_vec())]);
    bootstrap(&mut storage, &entries).expect("bootstrap");
    let (hard, _) = storage.initial_state().expect("state");
    assert_eq!(
        (hard.term, hard.vote, hard.commit),
        (Term(1), None, LogIndex(1))
    );

    let mut node = Node::new(Config::new(NodeId(7)), storage).expect("valid");
    // As etcd's raft, a node campaigns only once the committed conf changes are applied.
    let mut committed = Vec::new();
    for round in 0..10 {
        if !node.has_ready() {
            if round > 0 && node.role() == Role::Leader {
                break;
            }
            node.campaign();
            continue;
        }
        committed.extend(drive(&mut node).committed_entries);
    }
    assert_eq!(node.role(), Role::Leader);
    assert_eq!(node.term(), Term(2));
    let seen: Vec<(u64, u64, Option<Vec<u8>>)> = committed
        .iter()
        .map(|e| {
            let context = match &e.payload {
                EntryPayload::ConfChange(change) => Some(change.context.clone()),
                _ => None,
            };
            (e.index.0, e.term.0, context)
        })
        .collect();
    assert_eq!(
        seen,
        vec![(1, 1, Some(b"member 7".to_vec())), (2, 2, None)],
        "the bootstrap entry, then the new leader's empty entry"
    );
}

#[test]
fn bootstrap_entries_follow_the_given_order_at_term_one() {
    let entries = bootstrap_entries_with_context([(3, vec![3]), (1, vec![1]), (2, Vec::new())]);
    let seen: Vec<(u64, u64, u64)> = entries
        .iter()
        .map(|e| match &e.payload {
            EntryPayload::ConfChange(change) => (e.index.0, e.term.0, change.node_id.0),
            other => panic!("not a conf change: {other:?}"),
        })
        .collect();
    assert_eq!(seen, vec![(1, 1, 3), (2, 1, 1), (3, 1, 2)]);
}
