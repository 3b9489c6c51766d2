//! Scenarios: named, scripted prefixes of model steps that take a fresh cluster to an
//! interesting state, from which the checker then explores exhaustively.
//!
//! Some bugs need a long, specific interleaving before they show (the Raft paper's
//! Figure 8 needs three elections before the fourth one loses a committed entry), deeper
//! than breadth-first search from a fresh cluster reaches in test time. A scenario plays
//! the first part of such an interleaving as ordinary model actions, each one checked to
//! be enabled in the state it is taken in (so the start state is reachable by
//! construction, and every property holds along the way), and the search explores every
//! continuation from there. Nothing is assumed about the continuation: with the bug
//! switched off, the same search finds nothing.
//!
//! The prefix is shown before the steps the checker found in every report and trace, so
//! a counterexample reads from the fresh cluster.

use stateright::Model;
use stateright::actor::{ActorModel, ActorModelAction, Id, LossyNetwork};

use oxetcd_spec::raft::MessageKind;

use crate::config::{ModelConfig, NetworkKind, Scenario};
use crate::model::{ActorCluster, ClusterState, ModelAction, Msg, RaftMsg, Timer};

/// One scripted step, in terms a reader of the Raft paper recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Server `server` (an index: n1 is 0) sees its election timeout fire.
    ElectionTimeout {
        /// Index of the server.
        server: usize,
    },
    /// The network delivers a Raft message of `kind` from server `from` to server `to`.
    Deliver {
        /// Index of the sender.
        from: usize,
        /// Index of the receiver.
        to: usize,
        /// Kind of the Raft message.
        kind: MessageKind,
    },
    /// The network loses every message still in flight. Played as the drop actions of the
    /// lossy variant of the model, so it also works when the search itself runs over the
    /// reliable `unordered` network (both keep messages in the same unordered network).
    LoseInFlight,
}

/// The Figure 8 prefix (three servers, lossy network, pre-vote off). At its end n1 is a
/// follower of term 2 holding entry 1@1 that nobody else stores, n3 is leader of term 2
/// with a different entry 1@2 at the same index, n2 (which voted for both) has an empty
/// log, and nothing is in flight. The paper's Figure 8 continues: n1 wins term 3 with
/// n2's vote and replicates 1@1 to n2, so a quorum stores it; if n1 then counted it
/// committed, n3 could still win term 4 (its last term 2 beats n2's 1) and overwrite it.
const FIGURE8: [Step; 9] = [
    // n1 campaigns for term 1 and wins with n2's vote; as leader it appends its empty
    // entry 1@1 and sends it to n2 and n3 (those appends stay in flight).
    Step::ElectionTimeout { server: 0 },
    Step::Deliver {
        from: 0,
        to: 1,
        kind: MessageKind::Vote,
    },
    Step::Deliver {
        from: 1,
        to: 0,
        kind: MessageKind::VoteResp,
    },
    // n3 learns term 1 from n1's vote request (and grants it, too late to matter), then
    // times out and campaigns for term 2; n2, whose log is still empty, votes for it. n3
    // becomes leader of term 2 and appends its own empty entry 1@2.
    Step::Deliver {
        from: 0,
        to: 2,
        kind: MessageKind::Vote,
    },
    Step::ElectionTimeout { server: 2 },
    Step::Deliver {
        from: 2,
        to: 1,
        kind: MessageKind::Vote,
    },
    Step::Deliver {
        from: 1,
        to: 2,
        kind: MessageKind::VoteResp,
    },
    // n1 learns term 2 from n3's vote request: it steps down, and refuses the vote (n3's
    // log was empty when it asked). Then the network loses both leaders' appends and every
    // other message in flight: Figure 8 (b), at rest.
    Step::Deliver {
        from: 2,
        to: 0,
        kind: MessageKind::Vote,
    },
    Step::LoseInFlight,
];

impl Scenario {
    /// The scripted steps.
    pub fn steps(self) -> &'static [Step] {
        match self {
            Scenario::Figure8 => &FIGURE8,
        }
    }

    /// What the scenario sets up, for reports.
    pub fn summary(self) -> &'static str {
        match self {
            Scenario::Figure8 => {
                "Raft paper Figure 8 (b) with three servers: n1 led term 1 and appended 1@1 \
                 that only it stores; n3 leads term 2 (elected by n2) and appended 1@2 at \
                 the same index; nothing is in flight"
            }
        }
    }

    /// Whether the scenario can be played under `config`.
    ///
    /// # Errors
    /// A sentence naming the setting the scenario needs.
    pub fn check_config(self, config: &ModelConfig) -> Result<(), String> {
        match self {
            Scenario::Figure8 => {
                if config.servers != 3 {
                    return Err("scenario figure8 needs --servers 3".to_owned());
                }
                if !matches!(config.network, NetworkKind::Lossy | NetworkKind::Unordered) {
                    return Err("scenario figure8 needs --network lossy or unordered".to_owned());
                }
                if config.pre_vote {
                    return Err("scenario figure8 is scripted without pre-vote".to_owned());
                }
                if config.term_max < 2 {
                    return Err("scenario figure8 reaches term 2: needs --term-max >= 2".into());
                }
                Ok(())
            }
        }
    }
}

/// Plays `scenario` on `model` from `fresh`: every step must match an enabled action that
/// changes the state. Returns the steps taken (each with the state it was taken in) and
/// the final state.
///
/// # Errors
/// Which step could not be taken (the configuration does not allow the script).
pub fn play(
    model: &ActorCluster,
    scenario: Scenario,
    fresh: ClusterState,
) -> Result<(Vec<(ClusterState, ModelAction)>, ClusterState), String> {
    scenario.check_config(&model.cfg)?;
    let lossy = ActorModel {
        lossy_network: LossyNetwork::Yes,
        ..model.clone()
    };
    let mut state = fresh;
    let mut taken = Vec::new();
    for (number, step) in scenario.steps().iter().enumerate() {
        if *step == Step::LoseInFlight {
            while let Some((action, next)) = drop_one(&lossy, &state) {
                taken.push((state, action));
                state = next;
            }
            if state.network.len() != 0 {
                return Err(format!(
                    "step {}: the network cannot lose messages",
                    number + 1
                ));
            }
            continue;
        }
        let mut actions = Vec::new();
        model.actions(&state, &mut actions);
        let next = actions
            .into_iter()
            .filter(|action| matches(step, action))
            .find_map(|action| {
                let next = model.next_state(&state, action.clone())?;
                Model::within_boundary(model, &next).then_some((action, next))
            });
        let Some((action, next)) = next else {
            return Err(format!("step {} ({step:?}) is not enabled", number + 1));
        };
        taken.push((state, action));
        state = next;
    }
    Ok((taken, state))
}

/// Drops one message in flight, if the network may.
fn drop_one(model: &ActorCluster, state: &ClusterState) -> Option<(ModelAction, ClusterState)> {
    let mut actions = Vec::new();
    model.actions(state, &mut actions);
    actions
        .into_iter()
        .filter(|action| matches!(action, ActorModelAction::Drop(_)))
        .find_map(|action| {
            let next = model.next_state(state, action.clone())?;
            Some((action, next))
        })
}

fn matches(step: &Step, action: &ModelAction) -> bool {
    match (step, action) {
        (Step::ElectionTimeout { server }, ActorModelAction::Timeout(id, Timer::Election)) => {
            *id == Id::from(*server)
        }
        (
            Step::Deliver { from, to, kind },
            ActorModelAction::Deliver {
                src,
                dst,
                msg: Msg::Raft(RaftMsg(message)),
            },
        ) => *src == Id::from(*from) && *dst == Id::from(*to) && message.kind == *kind,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{self, ActorState};

    fn figure8_config(network: NetworkKind) -> ModelConfig {
        ModelConfig {
            servers: 3,
            clients: 0,
            network,
            crashes: 0,
            term_max: 4,
            scenario: Some(Scenario::Figure8),
            ..ModelConfig::default()
        }
    }

    #[test]
    fn figure8_prefix_ends_in_figure8_b_with_nothing_in_flight() {
        for network in [NetworkKind::Lossy, NetworkKind::Unordered] {
            let model = model::build(&figure8_config(network));
            let start = model.init_states().remove(0);
            assert_eq!(start.network.len(), 0, "{network}");
            let servers: Vec<_> = model::servers(&start).map(|(_, s)| s).collect();
            let (n1, n2, n3) = (servers[0], servers[1], servers[2]);
            assert!(!n1.is_leader());
            assert_eq!(
                (n1.term(), n1.last_index(), n1.entry_term(1)),
                (2, 1, Some(1))
            );
            assert_eq!((n2.term(), n2.last_index()), (2, 0));
            assert!(n3.is_leader());
            assert_eq!(
                (n3.term(), n3.last_index(), n3.entry_term(1)),
                (2, 1, Some(2))
            );
            assert!(
                start
                    .actor_states
                    .iter()
                    .all(|a| matches!(**a, ActorState::Server(_)))
            );
            // Every scripted step is a real step of the model.
            assert!(model.prefix().len() >= FIGURE8.len(), "{network}");
        }
    }

    #[test]
    fn figure8_rejects_configurations_its_script_does_not_fit() {
        let ordered = figure8_config(NetworkKind::Ordered);
        assert!(ordered.validate().is_err());
        let five = ModelConfig {
            servers: 5,
            ..figure8_config(NetworkKind::Lossy)
        };
        assert!(five.validate().is_err());
        let pre_vote = ModelConfig {
            pre_vote: true,
            ..figure8_config(NetworkKind::Lossy)
        };
        assert!(pre_vote.validate().is_err());
        assert_eq!(figure8_config(NetworkKind::Unordered).validate(), Ok(()));
    }
}
