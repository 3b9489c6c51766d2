//! Spec invariants: every assertion `spec::raft` makes about its own state
//! (`Node::check_invariants`, run after every input in debug builds and by the harness after
//! every step in all builds) holds. A failed assertion is caught by the harness and kept
//! in the server's state ([`crate::model::ServerState::spec_panic`]) so that it is
//! reported with the path that led to it.

use crate::model::{ClusterModel, ClusterState};

/// Whether no server panicked inside `spec` on its last input.
pub fn holds(_: &ClusterModel, state: &ClusterState) -> bool {
    crate::model::servers(state).all(|(_, server)| server.spec_panic().is_none())
}
