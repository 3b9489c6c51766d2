//! Non-vacuity: states the models must be able to reach, or the safety properties could
//! hold merely because nothing happens.

use crate::model::{ClusterModel, ClusterState};

/// Some live server is a leader (Raft §5.2).
pub fn leader_elected(_: &ClusterModel, state: &ClusterState) -> bool {
    crate::model::live_servers(state).any(|(_, server)| server.is_leader())
}

/// Some live server has applied a client's write (Raft §5.3).
pub fn value_committed(_: &ClusterModel, state: &ClusterState) -> bool {
    crate::model::live_servers(state).any(|(_, server)| server.has_applied_write())
}
