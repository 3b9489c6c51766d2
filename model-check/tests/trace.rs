//! Traces for people learning Raft: the text trace and the Mermaid diagram of a small
//! counterexample are pinned as snapshots (a change means the model, `spec::raft` or the
//! rendering changed: read the diff, then accept it with `cargo insta review`).

use oxetcd_model_check::config::{InjectedBug, ModelConfig, NetworkKind};
use oxetcd_model_check::model;
use oxetcd_model_check::run::{self, Bounds};
use oxetcd_model_check::trace::{self, Trace};

fn two_votes_counterexample() -> (model::ClusterModel, Trace) {
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
    // One thread: breadth-first search then finds the same shortest counterexample.
    let outcome = run::check(&config, &Bounds::default());
    let (_, path) = outcome
        .violations
        .first()
        .expect("the injected bug is caught")
        .clone();
    let mut trace = Trace::from_path(&outcome.model, &path);
    assert!(trace.cut_at_first_violation(&outcome.model));
    (outcome.model, trace)
}

#[test]
fn text_trace_of_the_two_votes_counterexample() {
    let (model, trace) = two_votes_counterexample();
    let text = trace::render_text(&model, &trace);
    assert!(
        text.contains("VIOLATED in the final state: election safety"),
        "{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn mermaid_diagram_of_the_two_votes_counterexample() {
    let (model, trace) = two_votes_counterexample();
    let diagram = trace::render_mermaid(&model, &trace);
    assert!(diagram.starts_with("sequenceDiagram\n"));
    insta::assert_snapshot!(diagram);
}

#[test]
fn seeded_walk_is_reproducible_and_bounded() {
    let config = ModelConfig::default();
    let model = model::build(&config);
    let a = trace::seeded_walk(&model, 7, 12);
    let b = trace::seeded_walk(&model, 7, 12);
    let c = trace::seeded_walk(&model, 8, 12);
    let actions = |p: &stateright::Path<_, _>| p.clone().into_actions();
    assert_eq!(actions(&a), actions(&b));
    assert_ne!(actions(&a), actions(&c));
    assert!(actions(&a).len() <= 12);
    let text = trace::render_text(&model, &Trace::from_path(&model, &a));
    assert!(text.contains("  1. "), "{text}");
}
