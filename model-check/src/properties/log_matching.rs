//! Log matching (Raft §5.3, Figure 3): if two logs contain an entry with the same index
//! and term, then the logs are identical in all entries up through that index.

use crate::model::{ClusterModel, ClusterState, ServerState};

/// Whether log matching holds between every pair of live servers in `state`.
pub fn holds(_: &ClusterModel, state: &ClusterState) -> bool {
    let servers: Vec<&ServerState> = crate::model::live_servers(state).map(|(_, s)| s).collect();
    servers
        .iter()
        .enumerate()
        .all(|(i, a)| servers[i + 1..].iter().all(|b| logs_match(a, b)))
}

/// Finds the highest index where both logs hold an entry of the same term and checks that
/// the prefixes up to it are identical (which implies the property for every lower index).
fn logs_match(a: &ServerState, b: &ServerState) -> bool {
    let common = a.last_index().min(b.last_index());
    let Some(highest) = (1..=common)
        .rev()
        .find(|&index| a.entry_term(index).is_some() && a.entry_term(index) == b.entry_term(index))
    else {
        return true;
    };
    (1..=highest).all(|index| a.entry(index) == b.entry(index))
}
