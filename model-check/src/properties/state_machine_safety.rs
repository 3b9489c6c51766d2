//! State-machine safety (Raft §5.4.3, Figure 3): if a server has applied a log entry at a
//! given index to its state machine, no other server will ever apply a different log entry
//! for the same index.
//!
//! Every server's harness keeps the list of entries it applied since it last started
//! ([`ServerState::applied`]); two such lists must agree on their common prefix.

use crate::model::{ClusterModel, ClusterState, ServerState};

/// Whether state-machine safety holds between every pair of live servers in `state`.
pub fn holds(_: &ClusterModel, state: &ClusterState) -> bool {
    let servers: Vec<&ServerState> = crate::model::live_servers(state).map(|(_, s)| s).collect();
    servers.iter().enumerate().all(|(i, a)| {
        servers[i + 1..]
            .iter()
            .all(|b| a.applied().iter().zip(b.applied()).all(|(x, y)| x == y))
    })
}
