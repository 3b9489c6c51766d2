//! Non-vacuity of the safety properties: with a known bug switched on in `spec::raft`'s
//! `Config`, the checker must report a counterexample for the property the bug breaks.

use oxetcd_model_check::config::{InjectedBug, ModelConfig, NetworkKind, Scenario};
use oxetcd_model_check::properties;
use oxetcd_model_check::run::{self, Bounds};

/// Checks `config` until one of `expected` is violated and asserts that it was.
fn assert_caught(config: &ModelConfig, expected: &[&'static str]) -> run::Outcome {
    assert_caught_within(config, &Bounds::default(), expected)
}

/// Checks `config` within `bounds` until one of `expected` is violated and asserts that it
/// was.
fn assert_caught_within(
    config: &ModelConfig,
    bounds: &Bounds,
    expected: &[&'static str],
) -> run::Outcome {
    let bounds = Bounds {
        stop_on: Some(expected.to_vec()),
        ..bounds.clone()
    };
    let outcome = run::check(config, &bounds);
    let violated: Vec<&str> = outcome.violations.iter().map(|(name, _)| *name).collect();
    assert!(
        violated.iter().any(|name| expected.contains(name)),
        "bug {:?} must violate one of {expected:?}; found {violated:?} after {} unique states",
        config.bug,
        outcome.unique_states
    );
    // The counterexample is printed as a numbered step list with the final state.
    let report = outcome.report();
    assert!(report.contains("VIOLATED"), "{report}");
    assert!(report.contains("   1. "), "{report}");
    assert!(report.contains("final state:"), "{report}");
    outcome
}

#[test]
fn checker_finds_two_leaders_when_a_node_votes_twice_in_one_term() {
    let config = ModelConfig {
        servers: 3,
        clients: 0,
        network: NetworkKind::Ordered,
        crashes: 0,
        term_max: 1,
        heartbeats_per_term: 0,
        bug: Some(InjectedBug::GrantTwoVotesInOneTerm),
        ..ModelConfig::default()
    };
    let _ = assert_caught(&config, &[properties::ELECTION_SAFETY]);
}

#[test]
fn correct_config_of_the_two_votes_test_has_no_counterexample() {
    // The same bounds without the bug: the counterexample above is the bug's doing.
    let config = ModelConfig {
        servers: 3,
        clients: 0,
        network: NetworkKind::Ordered,
        crashes: 0,
        term_max: 1,
        heartbeats_per_term: 0,
        bug: None,
        ..ModelConfig::default()
    };
    let outcome = run::check(&config, &Bounds::default());
    assert!(outcome.violations.is_empty(), "{}", outcome.report());
}

#[test]
fn random_walks_find_a_stale_append_accepted_without_the_term_check() {
    // Needs a deep interleaving (a stale leader's append overwriting what a newer leader
    // counted as replicated), beyond what the exhaustive search reaches in test time; the
    // seeded walks find it in about 700,000 states.
    let config = ModelConfig {
        servers: 3,
        clients: 1,
        network: NetworkKind::Lossy,
        crashes: 1,
        term_max: 4,
        bug: Some(InjectedBug::AcceptAppendWithoutTermCheck),
        ..ModelConfig::default()
    };
    let bounds = Bounds {
        strategy: run::Strategy::Simulate,
        simulate: Some(std::time::Duration::from_secs(100)),
        ..Bounds::default()
    };
    let outcome = run::check(&config, &bounds);
    let violated: Vec<&str> = outcome.violations.iter().map(|(name, _)| *name).collect();
    let breakable = [
        properties::LOG_MATCHING,
        properties::LEADER_COMPLETENESS,
        properties::STATE_MACHINE_SAFETY,
        properties::LINEARIZABILITY,
        properties::SPEC_INVARIANTS,
    ];
    assert!(
        violated.iter().any(|name| breakable.contains(name)),
        "found {violated:?} after {} states",
        outcome.states
    );
    assert!(outcome.report().contains("   1. "));
}

/// The Figure 8 search: from the scripted Figure 8 (b) state (see `scenario.rs`), every
/// interleaving of up to 12 further steps over a reliable unordered network, terms up to
/// 4. The lost-committed-entry counterexample needs 11 of them.
fn figure8(bug: Option<InjectedBug>) -> (ModelConfig, Bounds) {
    let config = ModelConfig {
        servers: 3,
        clients: 0,
        network: NetworkKind::Unordered,
        crashes: 0,
        term_max: 4,
        heartbeats_per_term: 0,
        bug,
        scenario: Some(Scenario::Figure8),
        ..ModelConfig::default()
    };
    let bounds = Bounds {
        depth: Some(13),
        threads: 2,
        ..Bounds::default()
    };
    (config, bounds)
}

#[test]
fn checker_finds_figure8_when_a_leader_commits_a_previous_term_entry_by_counting() {
    let (config, bounds) = figure8(Some(InjectedBug::CommitPreviousTermByCounting));
    let outcome = assert_caught_within(
        &config,
        &bounds,
        &[
            properties::LEADER_COMPLETENESS,
            properties::STATE_MACHINE_SAFETY,
        ],
    );
    let report = outcome.report();
    // The report starts from the fresh cluster: the scripted prefix, then the search.
    assert!(
        report.contains("scripted prefix of scenario figure8:"),
        "{report}"
    );
    assert!(report.contains("found by the checker:"), "{report}");
}

#[test]
fn correct_figure8_search_with_the_same_bounds_has_no_counterexample() {
    let (config, bounds) = figure8(None);
    let outcome = run::check(&config, &bounds);
    assert!(outcome.violations.is_empty(), "{}", outcome.report());
    // Exhaustive to the depth bound, not cut short: every path of 12 steps was explored.
    assert_eq!(outcome.max_depth, 13, "{}", outcome.report());
    assert!(outcome.unique_states > 50_000, "{}", outcome.report());
}
