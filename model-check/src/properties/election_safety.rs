//! Election safety (Raft §5.2, Figure 3): at most one leader can be elected in a given term.
//!
//! Leadership is observed two ways, because a leader may crash before a second one of the
//! same term appears: (1) among the live servers, no two leaders share a term; (2) the
//! auxiliary history records, for every term, which server was seen acting as its leader
//! (see [`crate::model::LeaderLog`]), and flags a second one.

use crate::model::{ClusterModel, ClusterState};

/// Whether election safety holds in `state`.
pub fn holds(_: &ClusterModel, state: &ClusterState) -> bool {
    if state.history.leaders.second_leader_seen() {
        return false;
    }
    let leaders: Vec<_> = crate::model::live_servers(state)
        .filter(|(_, server)| server.is_leader())
        .map(|(_, server)| server.term())
        .collect();
    leaders
        .iter()
        .enumerate()
        .all(|(i, term)| !leaders[i + 1..].contains(term))
}
