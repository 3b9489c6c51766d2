//! Linearizability of client operations (Raft §8; thesis §6.3): every history of client
//! invocations and responses observed so far can be ordered into a sequential history of
//! [`crate::kv::KvSpec`] that respects real time.
//!
//! The history is an auxiliary variable recorded from the network: an invocation when a
//! client first sends a request, a return when a response for that client's outstanding
//! request is delivered to it ([`crate::model::ClientLog`]).

use crate::model::{ClusterModel, ClusterState};

/// Whether the client history recorded in `state` is linearizable.
pub fn holds(_: &ClusterModel, state: &ClusterState) -> bool {
    state.history.clients.is_linearizable()
}
