//! The properties the models check, one file each. Every property reads only the model
//! state (the servers' `spec::raft::Node`s through [`crate::model::ServerState`]'s
//! read-only accessors, the network and the auxiliary history); none of them changes it.
//!
//! | property | expectation | Raft paper | file |
//! | --- | --- | --- | --- |
//! | election safety: at most one leader per term | always | §5.2, Figure 3 | `election_safety.rs` |
//! | log matching: same index and term ⇒ same prefix | always | §5.3, Figure 3 | `log_matching.rs` |
//! | leader completeness: a committed entry is in every later leader's log | always | §5.4.1, §5.4.3, Figure 3 | `leader_completeness.rs` |
//! | state-machine safety: no two servers apply different entries at one index | always | §5.4.3, Figure 3 | `state_machine_safety.rs` |
//! | spec invariants: no assertion inside `spec::raft` fails (`check_invariants`) | always | Figure 2 (state invariants) | `spec_invariants.rs` |
//! | linearizability of client operations | always | §8 (thesis §6.3) | `linearizability.rs` |
//! | a leader is elected (non-vacuity) | sometimes | §5.2 | `reachability.rs` |
//! | a client's write is committed and applied (non-vacuity) | sometimes | §5.3 | `reachability.rs` |
//!
//! Each safety property is shown to be able to fail by an injected bug
//! ([`crate::config::InjectedBug`]) in `tests/injected_bugs.rs`.

pub mod election_safety;
pub mod leader_completeness;
pub mod linearizability;
pub mod log_matching;
pub mod reachability;
pub mod spec_invariants;
pub mod state_machine_safety;

use stateright::{Expectation, Property};

use crate::model::ClusterModel;

/// Name of the election-safety property.
pub const ELECTION_SAFETY: &str = "election safety";
/// Name of the log-matching property.
pub const LOG_MATCHING: &str = "log matching";
/// Name of the leader-completeness property.
pub const LEADER_COMPLETENESS: &str = "leader completeness";
/// Name of the state-machine-safety property.
pub const STATE_MACHINE_SAFETY: &str = "state machine safety";
/// Name of the spec-invariants property.
pub const SPEC_INVARIANTS: &str = "spec invariants";
/// Name of the linearizability property.
pub const LINEARIZABILITY: &str = "linearizability";
/// Name of the "a leader is elected" reachability property.
pub const LEADER_ELECTED: &str = "sometimes a leader is elected";
/// Name of the "a value is committed" reachability property.
pub const VALUE_COMMITTED: &str = "sometimes a value is committed";

/// Every property, in the order of the table above.
pub fn all() -> Vec<Property<ClusterModel>> {
    vec![
        Property {
            expectation: Expectation::Always,
            name: ELECTION_SAFETY,
            condition: election_safety::holds,
        },
        Property {
            expectation: Expectation::Always,
            name: LOG_MATCHING,
            condition: log_matching::holds,
        },
        Property {
            expectation: Expectation::Always,
            name: LEADER_COMPLETENESS,
            condition: leader_completeness::holds,
        },
        Property {
            expectation: Expectation::Always,
            name: STATE_MACHINE_SAFETY,
            condition: state_machine_safety::holds,
        },
        Property {
            expectation: Expectation::Always,
            name: SPEC_INVARIANTS,
            condition: spec_invariants::holds,
        },
        Property {
            expectation: Expectation::Always,
            name: LINEARIZABILITY,
            condition: linearizability::holds,
        },
        Property {
            expectation: Expectation::Sometimes,
            name: LEADER_ELECTED,
            condition: reachability::leader_elected,
        },
        Property {
            expectation: Expectation::Sometimes,
            name: VALUE_COMMITTED,
            condition: reachability::value_committed,
        },
    ]
}
