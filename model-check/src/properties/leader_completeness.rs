//! Leader completeness (Raft §5.4, Figure 3): if a log entry is committed in a given term,
//! that entry is present in the logs of the leaders of all higher-numbered terms.
//!
//! Checked on the live servers: server `a` knows entries `1..=a.commit_index()` to be
//! committed, and learned that in a term no higher than `a.term()`; so every live leader
//! whose term is greater than `a.term()` must hold each of those entries.

use crate::model::{ClusterModel, ClusterState, ServerState};

/// Whether leader completeness holds in `state`.
pub fn holds(_: &ClusterModel, state: &ClusterState) -> bool {
    let servers: Vec<&ServerState> = crate::model::live_servers(state).map(|(_, s)| s).collect();
    servers.iter().all(|a| {
        servers
            .iter()
            .filter(|leader| leader.is_leader() && leader.term() > a.term())
            .all(|leader| holds_committed_prefix(leader, a))
    })
}

fn holds_committed_prefix(leader: &ServerState, a: &ServerState) -> bool {
    (1..=a.commit_index()).all(|index| {
        let committed = a.entry_term(index);
        committed.is_none() || leader.entry_term(index) == committed
    })
}
