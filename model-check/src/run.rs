//! Running the checker: bounds, the outcome of a run, and readable reports (counts, speed,
//! counterexamples as numbered step lists). Shared by the CLI and the tests.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use stateright::actor::ActorModelAction;
use stateright::{Checker, Expectation, HasDiscoveries, Model, Path};

use crate::config::ModelConfig;
use crate::model::{self, ClusterModel, ClusterState};

/// Order in which the checker visits states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    /// Breadth-first: shortest counterexamples (with one thread), more memory.
    Bfs,
    /// Depth-first: little memory, long counterexamples.
    Dfs,
    /// Seeded random walks ([`crate::walk`]) from the initial state, for the
    /// [`Bounds::simulate`] time (default 30 s), each up to the depth bound (default
    /// [`SIMULATION_DEPTH_MAX`]): not exhaustive, but reaches deep states quickly. The
    /// unique-state figure then counts states per walk, not globally.
    Simulate,
}

/// How far one run explores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Paths are not extended past this many steps.
    pub depth: Option<usize>,
    /// The run stops after about this many states.
    pub max_states: Option<usize>,
    /// Checker threads.
    pub threads: usize,
    /// Search order.
    pub strategy: Strategy,
    /// Stop at the first violation of one of these properties instead of at the first
    /// violation of any (used to show that an injected bug breaks a particular property).
    pub stop_on: Option<Vec<&'static str>>,
    /// If some "sometimes" property is not reached by the exhaustive search, run seeded
    /// random walks ([`crate::walk`]) for at most this long, up to
    /// [`SIMULATION_DEPTH_MAX`] steps each, to reach it beyond the exhaustive frontier.
    /// Safety properties are checked on those walks too.
    pub simulate: Option<Duration>,
}

/// Longest random walk of the simulation phase.
pub const SIMULATION_DEPTH_MAX: usize = 80;

/// Seed of the simulation phase (fixed: runs are reproducible).
pub const SIMULATION_SEED: u64 = 0x0e7c_d5ee_d000_0001;

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            depth: None,
            max_states: None,
            threads: 1,
            strategy: Strategy::Bfs,
            stop_on: None,
            simulate: None,
        }
    }
}

/// The number of threads to use when the user does not say: the available cores.
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// What one run found.
pub struct Outcome {
    /// The model that was checked.
    pub model: ClusterModel,
    /// States generated, counting revisits.
    pub states: usize,
    /// Distinct states.
    pub unique_states: usize,
    /// Longest path explored.
    pub max_depth: usize,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Safety properties that failed, each with its counterexample.
    pub violations: Vec<(&'static str, Path<ClusterState, ModelAction>)>,
    /// "Sometimes" properties never satisfied within the bounds (the run may be vacuous).
    pub unreached: Vec<&'static str>,
    /// The simulation phase, if one ran: states visited, and the "sometimes" properties it
    /// reached with the length of the walk that reached each.
    pub simulation: Option<SimulationOutcome>,
}

/// What the simulation phase did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulationOutcome {
    /// States visited on random walks.
    pub states: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// "Sometimes" properties reached, with the number of steps to reach them.
    pub reached: Vec<(&'static str, usize)>,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcome")
            .field("config", self.model.config())
            .field("states", &self.states)
            .field("unique_states", &self.unique_states)
            .field("max_depth", &self.max_depth)
            .field("elapsed", &self.elapsed)
            .field(
                "violations",
                &self.violations.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("unreached", &self.unreached)
            .finish()
    }
}

pub use crate::model::ModelAction;

impl Outcome {
    /// States generated per second of wall time.
    pub fn states_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.states as f64 / seconds
        } else {
            0.0
        }
    }

    /// The human-readable report the CLI prints.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "states explored:  {}", self.states);
        let _ = writeln!(out, "unique states:    {}", self.unique_states);
        let _ = writeln!(out, "max depth:        {}", self.max_depth);
        let _ = writeln!(out, "elapsed:          {:.1} s", self.elapsed.as_secs_f64());
        let _ = writeln!(out, "states/second:    {:.0}", self.states_per_second());
        if let Some(simulation) = &self.simulation {
            let _ = writeln!(
                out,
                "simulation:       {} states on random walks of up to {SIMULATION_DEPTH_MAX} steps in {:.1} s",
                simulation.states,
                simulation.elapsed.as_secs_f64()
            );
            for (name, steps) in &simulation.reached {
                let _ = writeln!(out, "reached by simulation in {steps} steps: {name}");
            }
        }
        for name in &self.unreached {
            let _ = writeln!(out, "warning: never reached within the bounds: {name}");
        }
        if self.violations.is_empty() {
            let _ = writeln!(out, "all properties hold");
        }
        for (name, path) in &self.violations {
            let _ = writeln!(out, "\nVIOLATED: {name}");
            out.push_str(&describe_path(&self.model, path));
        }
        out
    }
}

/// One line saying what is about to be checked.
pub fn describe_run(config: &ModelConfig, bounds: &Bounds) -> String {
    format!(
        "checking {} servers, {} client(s), {} network, up to {} crashed, terms <= {}, \
         bug: {}, start: {}, depth: {}, max states: {}, {} thread(s), {:?}",
        config.servers,
        config.clients,
        config.network,
        config.crashes,
        config.term_max,
        config
            .bug
            .map_or_else(|| "none".to_owned(), |bug| bug.to_string()),
        config.scenario.map_or_else(
            || "fresh cluster".to_owned(),
            |scenario| format!("scenario {scenario}")
        ),
        bounds
            .depth
            .map_or_else(|| "unbounded".to_owned(), |d| d.to_string()),
        bounds
            .max_states
            .map_or_else(|| "unbounded".to_owned(), |n| n.to_string()),
        bounds.threads,
        bounds.strategy,
    )
}

/// Checks `config` within `bounds`, stopping early at the first safety violation.
pub fn check(config: &ModelConfig, bounds: &Bounds) -> Outcome {
    let model = model::build(config);
    let properties = model.properties();
    let mut builder = model
        .clone()
        .checker()
        .threads(bounds.threads.max(1))
        .finish_when(match &bounds.stop_on {
            None => HasDiscoveries::AnyFailures,
            Some(names) => HasDiscoveries::AnyOf(names.iter().copied().collect()),
        });
    if let Some(depth) = bounds.depth {
        builder = builder.target_max_depth(depth);
    }
    if let Some(states) = bounds.max_states {
        builder = builder.target_state_count(states);
    }
    let started = Instant::now();
    let (states, unique_states, max_depth, discoveries) = match bounds.strategy {
        Strategy::Bfs => summarise(builder.spawn_bfs().join()),
        Strategy::Dfs => summarise(builder.spawn_dfs().join()),
        Strategy::Simulate => {
            let limit = bounds.simulate.unwrap_or(Duration::from_secs(30));
            let depth = bounds.depth.unwrap_or(SIMULATION_DEPTH_MAX);
            let walks = crate::walk::random_walks(&model, SIMULATION_SEED, limit, depth, false);
            (
                walks.states,
                walks.states,
                walks.max_depth,
                walks.discoveries.into_iter().collect(),
            )
        }
    };
    let elapsed = started.elapsed();
    let mut violations = Vec::new();
    let mut unreached = Vec::new();
    for property in &properties {
        let found = discoveries.iter().find(|(name, _)| *name == property.name);
        match (&property.expectation, found) {
            (Expectation::Sometimes, None) => unreached.push(property.name),
            (Expectation::Always | Expectation::Eventually, Some((name, path))) => {
                violations.push((*name, path.clone()));
            }
            _ => {}
        }
    }
    let mut outcome = Outcome {
        model,
        states,
        unique_states,
        max_depth,
        elapsed,
        violations,
        unreached,
        simulation: None,
    };
    if let Some(limit) = bounds.simulate
        && bounds.strategy != Strategy::Simulate
        && outcome.violations.is_empty()
        && !outcome.unreached.is_empty()
    {
        simulate(&mut outcome, limit);
    }
    outcome
}

/// The simulation phase (see [`Bounds::simulate`]): updates `outcome` with what the random
/// walks reached or violated.
fn simulate(outcome: &mut Outcome, limit: Duration) {
    let started = Instant::now();
    let walks = crate::walk::random_walks(
        &outcome.model,
        SIMULATION_SEED,
        limit,
        SIMULATION_DEPTH_MAX,
        true,
    );
    let discoveries = walks.discoveries;
    let mut reached = Vec::new();
    for property in outcome.model.properties() {
        let Some(path) = discoveries.get(property.name) else {
            continue;
        };
        match property.expectation {
            Expectation::Sometimes => {
                if outcome.unreached.contains(&property.name) {
                    reached.push((property.name, path.clone().into_actions().len()));
                }
            }
            Expectation::Always | Expectation::Eventually => {
                outcome.violations.push((property.name, path.clone()));
            }
        }
    }
    outcome
        .unreached
        .retain(|name| !reached.iter().any(|(found, _)| found == name));
    outcome.simulation = Some(SimulationOutcome {
        states: walks.states,
        elapsed: started.elapsed(),
        reached,
    });
}

type Discoveries = Vec<(&'static str, Path<ClusterState, ModelAction>)>;

fn summarise(checker: impl Checker<ClusterModel>) -> (usize, usize, usize, Discoveries) {
    let mut discoveries: Discoveries = checker.discoveries().into_iter().collect();
    discoveries.sort_by_key(|(name, _)| *name);
    (
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
        discoveries,
    )
}

/// Serves stateright's explorer for `config` on `address` until the process is stopped.
pub fn explore(config: &ModelConfig, address: &str) -> std::io::Result<()> {
    use std::net::ToSocketAddrs;
    // Resolve first so that a bad address is an error, not a panic inside stateright.
    let resolved: Vec<_> = address.to_socket_addrs()?.collect();
    std::net::TcpListener::bind(&resolved[..])?;
    let _checker = model::build(config).checker().serve(&resolved[..]);
    Ok(())
}

/// A counterexample as a numbered list of steps, then the final state of every server.
pub fn describe_path(model: &ClusterModel, path: &Path<ClusterState, ModelAction>) -> String {
    let mut out = String::new();
    let mut number = 0;
    if let Some(scenario) = model.config().scenario {
        let _ = writeln!(out, "scripted prefix of scenario {scenario}:");
        for (state, action) in model.prefix() {
            number += 1;
            let _ = writeln!(
                out,
                "{number:>4}. {}",
                describe_action(model, state, action)
            );
        }
        let _ = writeln!(out, "found by the checker:");
    }
    let steps = path.clone().into_vec();
    for (state, action) in &steps {
        let Some(action) = action else { continue };
        number += 1;
        let _ = writeln!(
            out,
            "{number:>4}. {}",
            describe_action(model, state, action)
        );
    }
    let _ = writeln!(out, "final state:");
    out.push_str(&model::describe_state(model, path.last_state()));
    out
}

/// One action as a sentence: `n1 -> n2: <message>`, `n1: election timeout fires`, ...
pub fn describe_action(model: &ClusterModel, state: &ClusterState, action: &ModelAction) -> String {
    let name = |id| model::actor_name(model, id);
    match action {
        ActorModelAction::Deliver { src, dst, msg } => {
            format!("{} -> {}: {}", name(*src), name(*dst), msg)
        }
        ActorModelAction::Drop(envelope) => format!(
            "network drops {} -> {}: {}",
            name(envelope.src),
            name(envelope.dst),
            envelope.msg
        ),
        ActorModelAction::Timeout(id, timer) => format!("{}: {} fires", name(*id), timer),
        ActorModelAction::Crash(id) => format!("{} crashes (volatile state lost)", name(*id)),
        ActorModelAction::Recover(id) => {
            let _ = state;
            format!("{} restarts from its durable state", name(*id))
        }
        ActorModelAction::SelectRandom { actor, random, .. } => {
            format!("{} chooses {random:?}", name(*actor))
        }
    }
}
