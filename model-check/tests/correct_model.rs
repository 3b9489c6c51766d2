//! The correct algorithm: every property holds, the non-vacuity properties are reached,
//! and the smallest configuration explores a pinned number of states (a change in that
//! number means the model or `spec::raft` changed behaviour: look at why, then re-pin).

use oxetcd_model_check::config::{ModelConfig, NetworkKind};
use oxetcd_model_check::run::{self, Bounds};

fn smallest() -> ModelConfig {
    ModelConfig {
        servers: 2,
        clients: 1,
        network: NetworkKind::Ordered,
        crashes: 0,
        term_max: 1,
        ..ModelConfig::default()
    }
}

fn assert_all_hold(config: &ModelConfig, bounds: &Bounds) -> run::Outcome {
    let outcome = run::check(config, bounds);
    assert!(
        outcome.violations.is_empty(),
        "{config:?}: {}",
        outcome.report()
    );
    outcome
}

#[test]
fn smallest_cluster_satisfies_every_property_with_pinned_state_count() {
    let outcome = assert_all_hold(&smallest(), &Bounds::default());
    assert!(
        outcome.unreached.is_empty(),
        "non-vacuity: {:?} never reached",
        outcome.unreached
    );
    assert_eq!(outcome.unique_states, 1081, "{}", outcome.report());
}

#[test]
fn state_count_does_not_depend_on_thread_count() {
    let bounds = Bounds {
        threads: 2,
        ..Bounds::default()
    };
    let outcome = assert_all_hold(&smallest(), &bounds);
    assert_eq!(outcome.unique_states, 1081);
}
