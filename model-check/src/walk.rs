//! Random walks over the model: from the initial state, repeatedly take a uniformly chosen
//! enabled action, checking every property on every state, up to a depth bound. Not
//! exhaustive; it reaches states far beyond the exhaustive search's frontier (a committed
//! client write, a Figure 8 interleaving) in seconds.
//!
//! stateright 0.31 has a simulation checker, but it records the index of a chosen action
//! after earlier choices were removed from the list, so the counterexample path cannot be
//! rebuilt when an action turns out to be a no-op (which this model has); this module keeps
//! the actions themselves instead. Seeded: the same seed gives the same walks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use stateright::{Expectation, Model, Path};

use crate::model::{ClusterModel, ClusterState};
use crate::run::ModelAction;

/// What the walks found.
#[derive(Debug)]
pub struct Walks {
    /// States visited (counting revisits).
    pub states: usize,
    /// Longest walk.
    pub max_depth: usize,
    /// Property name -> the walk that reached it (a counterexample for an "always"
    /// property, an example for a "sometimes" one).
    pub discoveries: BTreeMap<&'static str, Path<ClusterState, ModelAction>>,
}

/// A small seeded generator (SplitMix64): walks are reproducible.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 if `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap_or(u64::MAX)).unwrap_or(0)
    }
}

/// One uniformly chosen enabled action from `state` that changes it and stays within the
/// model's boundary, with the state it leads to; `None` when there is none. `actions` is
/// scratch space, reused across steps.
pub fn random_step(
    model: &ClusterModel,
    state: &ClusterState,
    rng: &mut SplitMix64,
    actions: &mut Vec<ModelAction>,
) -> Option<(ModelAction, ClusterState)> {
    actions.clear();
    model.actions(state, actions);
    while !actions.is_empty() {
        let action = actions.swap_remove(rng.below(actions.len()));
        if let Some(candidate) = model.next_state(state, action.clone())
            && model.within_boundary(&candidate)
        {
            return Some((action, candidate));
        }
    }
    None
}

/// Walks `model` for at most `limit`, each walk at most `depth_max` steps. Stops early at
/// the first violated safety property, or, if `stop_at_examples`, once every "sometimes"
/// property has an example.
pub fn random_walks(
    model: &ClusterModel,
    seed: u64,
    limit: Duration,
    depth_max: usize,
    stop_at_examples: bool,
) -> Walks {
    let started = Instant::now();
    let properties = model.properties();
    let mut rng = SplitMix64(seed);
    let mut walks = Walks {
        states: 0,
        max_depth: 0,
        discoveries: BTreeMap::new(),
    };
    let Some(init) = model.init_states().into_iter().next() else {
        return walks;
    };
    let mut actions = Vec::new();
    while started.elapsed() < limit {
        let mut state = init.clone();
        let mut taken: Vec<ModelAction> = Vec::new();
        loop {
            walks.states += 1;
            walks.max_depth = walks.max_depth.max(taken.len());
            let mut failed = false;
            for property in &properties {
                if walks.discoveries.contains_key(property.name) {
                    continue;
                }
                let holds = (property.condition)(model, &state);
                let found = match property.expectation {
                    Expectation::Always | Expectation::Eventually => !holds,
                    Expectation::Sometimes => holds,
                };
                if found {
                    failed |= property.expectation != Expectation::Sometimes;
                    if let Some(path) = Path::from_actions(model, init.clone(), &taken) {
                        walks.discoveries.insert(property.name, path);
                    }
                }
            }
            let all_examples = properties.iter().all(|p| {
                p.expectation != Expectation::Sometimes || walks.discoveries.contains_key(p.name)
            });
            if failed || (stop_at_examples && all_examples) {
                return walks;
            }
            if taken.len() >= depth_max {
                break;
            }
            let Some((action, candidate)) = random_step(model, &state, &mut rng, &mut actions)
            else {
                break;
            };
            taken.push(action);
            state = candidate;
        }
    }
    walks
}
