//! Readable traces of one run of the model, for people learning Raft: numbered steps
//! (which action or message), and after each step every server's role, term, commit
//! index and log; plus the same run as a Mermaid sequence diagram (GitHub and most
//! Markdown viewers draw it).
//!
//! A trace is built from a path: a counterexample found by the checker, or a seeded
//! random walk ([`seeded_walk`]). A scenario's scripted prefix comes first, so every
//! trace starts from a fresh cluster.

use std::fmt::Write as _;

use oxetcd_spec::raft::describe;
use stateright::actor::{ActorModelAction, Id};
use stateright::{Model, Path};

use crate::model::{self, ActorState, ClusterModel, ClusterState, ModelAction, Msg};

/// One step of a trace: the action, and the state after it.
#[derive(Clone, Debug)]
pub struct TraceStep {
    /// The action taken.
    pub action: ModelAction,
    /// The state it was taken in.
    pub before: ClusterState,
    /// The state it led to.
    pub after: ClusterState,
    /// Whether the step belongs to a scenario's scripted prefix.
    pub scripted: bool,
}

/// A run of the model, step by step.
#[derive(Clone, Debug)]
pub struct Trace {
    /// The state before the first step.
    pub start: ClusterState,
    /// The steps, in order.
    pub steps: Vec<TraceStep>,
}

impl Trace {
    /// The trace of `path` (which starts at `model`'s initial state), preceded by the
    /// model's scripted prefix.
    pub fn from_path(model: &ClusterModel, path: &Path<ClusterState, ModelAction>) -> Trace {
        let mut pairs: Vec<(ClusterState, Option<ModelAction>, bool)> = model
            .prefix()
            .iter()
            .map(|(state, action)| (state.clone(), Some(action.clone()), true))
            .collect();
        pairs.extend(
            path.clone()
                .into_vec()
                .into_iter()
                .map(|(state, action)| (state, action, false)),
        );
        let start = pairs
            .first()
            .map_or_else(|| path.last_state().clone(), |(state, _, _)| state.clone());
        let mut steps = Vec::new();
        for window in pairs.windows(2) {
            let [(before, Some(action), scripted), (after, _, _)] = window else {
                continue;
            };
            steps.push(TraceStep {
                action: action.clone(),
                before: before.clone(),
                after: after.clone(),
                scripted: *scripted,
            });
        }
        Trace { start, steps }
    }

    /// Drops every step after the first one that leads to a state violating a safety
    /// property (the checker's counterexample may run on past it). Returns whether one
    /// was found.
    pub fn cut_at_first_violation(&mut self, model: &ClusterModel) -> bool {
        let first = self
            .steps
            .iter()
            .position(|step| !violated(model, &step.after).is_empty());
        if let Some(first) = first {
            self.steps.truncate(first + 1);
        }
        first.is_some()
    }

    /// The final state.
    pub fn last_state(&self) -> &ClusterState {
        self.steps.last().map_or(&self.start, |step| &step.after)
    }
}

/// A seeded random walk of at most `steps` steps from `model`'s initial state (each step a
/// uniformly chosen enabled action that changes the state and stays within the model's
/// boundary). The same seed gives the same walk.
pub fn seeded_walk(
    model: &ClusterModel,
    seed: u64,
    steps: usize,
) -> Path<ClusterState, ModelAction> {
    let mut rng = crate::walk::SplitMix64::new(seed);
    let init = model.init_states().remove(0);
    let mut state = init.clone();
    let mut taken = Vec::new();
    let mut actions = Vec::new();
    while taken.len() < steps {
        let Some((action, candidate)) =
            crate::walk::random_step(model, &state, &mut rng, &mut actions)
        else {
            break;
        };
        taken.push(action);
        state = candidate;
    }
    Path::from_actions(model, init, &taken).expect("a walk replays from the initial state")
}

/// One line per server: role, term, vote, commit index and log.
fn server_lines(
    model: &ClusterModel,
    before: Option<&ClusterState>,
    state: &ClusterState,
) -> String {
    let mut out = String::new();
    for (index, actor) in state.actor_states.iter().enumerate() {
        let ActorState::Server(server) = &**actor else {
            continue;
        };
        let crashed = state.crashed.get(index).copied().unwrap_or(false);
        let line = server_summary(server, crashed);
        let changed = before.is_some_and(|before| {
            before
                .actor_states
                .get(index)
                .is_some_and(|old| match &**old {
                    ActorState::Server(old) => {
                        let old_crashed = before.crashed.get(index).copied().unwrap_or(false);
                        server_summary(old, old_crashed) != line
                    }
                    ActorState::Client(_) => true,
                })
        });
        let name = model::actor_name(model, Id::from(index));
        let _ = writeln!(
            out,
            "      {} {name:<3} {line}",
            if changed { "*" } else { " " }
        );
    }
    out
}

fn server_summary(server: &model::ServerState, crashed: bool) -> String {
    let node = server.node();
    let log = node
        .entries(node.first_index(), node.last_index().next())
        .map_or_else(|| "(compacted)".to_owned(), |e| describe::entries(&e));
    let role = if crashed {
        "crashed".to_owned()
    } else {
        format!("{:?}", node.role())
    };
    let vote = node
        .hard_state()
        .vote
        .map_or_else(|| "-".to_owned(), |v| format!("n{}", v.0));
    format!(
        "{role:<12} term {}  vote {vote:<3} commit {}  log {log}",
        server.term(),
        server.commit_index()
    )
}

/// The text trace: numbered steps, each followed by every server's summary (`*` marks the
/// servers the step changed), then the properties that fail in the final state.
pub fn render_text(model: &ClusterModel, trace: &Trace) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Each step: the action, then every server after it (* = changed by this step).\n\
         Logs list entries as term/index and payload."
    );
    let _ = writeln!(out, "start:");
    out.push_str(&server_lines(model, None, &trace.start));
    let mut scripted_header = false;
    let mut search_header = false;
    for (number, step) in trace.steps.iter().enumerate() {
        if step.scripted && !scripted_header {
            scripted_header = true;
            if let Some(scenario) = model.config().scenario {
                let _ = writeln!(out, "-- scripted prefix of scenario {scenario} --");
            }
        }
        if !step.scripted && scripted_header && !search_header {
            search_header = true;
            let _ = writeln!(out, "-- from here on: found by the search --");
        }
        let _ = writeln!(
            out,
            "{:>3}. {}",
            number + 1,
            crate::run::describe_action(model, &step.before, &step.action)
        );
        out.push_str(&server_lines(model, Some(&step.before), &step.after));
    }
    let failing = violated(model, trace.last_state());
    if failing.is_empty() {
        let _ = writeln!(out, "every safety property holds in the final state");
    } else {
        let _ = writeln!(out, "VIOLATED in the final state: {}", failing.join(", "));
    }
    out
}

/// The safety properties that fail in `state`.
fn violated(model: &ClusterModel, state: &ClusterState) -> Vec<&'static str> {
    model
        .properties()
        .into_iter()
        .filter(|p| p.expectation == stateright::Expectation::Always)
        .filter(|p| !(p.condition)(model, state))
        .map(|p| p.name)
        .collect()
}

/// Escapes text for a Mermaid message or note label.
fn label(text: &str) -> String {
    text.replace(';', ",").replace('#', "no.")
}

/// The Mermaid sequence diagram of `trace`: one lifeline per actor, an arrow per delivered
/// message, notes for timeouts, crashes, restarts, lost messages and every change of a
/// server's role, term or commit index.
pub fn render_mermaid(model: &ClusterModel, trace: &Trace) -> String {
    let mut out = String::from("sequenceDiagram\n");
    let actors = trace.start.actor_states.len();
    for index in 0..actors {
        let _ = writeln!(
            out,
            "    participant {}",
            model::actor_name(model, Id::from(index))
        );
    }
    let name = |id: Id| model::actor_name(model, id);
    let mut scripted_open = false;
    for (number, step) in trace.steps.iter().enumerate() {
        if step.scripted && !scripted_open {
            scripted_open = true;
            let scenario = model
                .config()
                .scenario
                .map_or_else(String::new, |s| s.to_string());
            let _ = writeln!(out, "    rect rgb(240, 240, 240)");
            let _ = writeln!(
                out,
                "    Note over {},{}: scripted prefix {scenario}",
                name(Id::from(0)),
                name(Id::from(actors.saturating_sub(1)))
            );
        }
        if !step.scripted && scripted_open {
            scripted_open = false;
            let _ = writeln!(out, "    end");
        }
        let n = number + 1;
        match &step.action {
            ActorModelAction::Deliver { src, dst, msg } => {
                let text = match msg {
                    Msg::Raft(m) => strip_route(&describe::message(&m.0)),
                    other => other.to_string(),
                };
                let _ = writeln!(
                    out,
                    "    {}->>{}: {n}. {}",
                    name(*src),
                    name(*dst),
                    label(&text)
                );
            }
            ActorModelAction::Drop(envelope) => {
                let text = match &envelope.msg {
                    Msg::Raft(m) => strip_route(&describe::message(&m.0)),
                    other => other.to_string(),
                };
                let _ = writeln!(
                    out,
                    "    Note over {},{}: {n}. lost: {}",
                    name(envelope.src),
                    name(envelope.dst),
                    label(&text)
                );
            }
            ActorModelAction::Timeout(id, timer) => {
                let _ = writeln!(out, "    Note over {}: {n}. {timer} fires", name(*id));
            }
            ActorModelAction::Crash(id) => {
                let _ = writeln!(out, "    Note over {}: {n}. crashes", name(*id));
            }
            ActorModelAction::Recover(id) => {
                let _ = writeln!(out, "    Note over {}: {n}. restarts from disk", name(*id));
            }
            ActorModelAction::SelectRandom { actor, .. } => {
                let _ = writeln!(out, "    Note over {}: {n}. random choice", name(*actor));
            }
        }
        for (index, (old, new)) in step
            .before
            .actor_states
            .iter()
            .zip(&step.after.actor_states)
            .enumerate()
        {
            let (ActorState::Server(old), ActorState::Server(new)) = (&**old, &**new) else {
                continue;
            };
            let key = |s: &model::ServerState| (s.node().role(), s.term(), s.commit_index());
            if key(old) != key(new) {
                let _ = writeln!(
                    out,
                    "    Note right of {}: {:?} term {} commit {}",
                    name(Id::from(index)),
                    new.node().role(),
                    new.term(),
                    new.commit_index()
                );
            }
        }
    }
    if scripted_open {
        let _ = writeln!(out, "    end");
    }
    out
}

/// `1->2 App term=3 ...` without the `1->2 ` route (the arrow shows it).
fn strip_route(text: &str) -> String {
    match text.split_once(' ') {
        Some((route, rest)) if route.contains("->") => rest.to_owned(),
        _ => text.to_owned(),
    }
}
