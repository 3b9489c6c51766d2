//! The stateright model of an oxetcd cluster: `config.servers` Raft servers (each a
//! `spec::raft::Node` driven verbatim, see [`server`]) and `config.clients` clients of the
//! replicated key-value map ([`client`]), over stateright's network (lossy, duplicating or
//! ordered) with crash-restart from durable state.
//!
//! Actor ids: servers are `0..servers` (Raft `NodeId` = actor index + 1), clients follow.
//! The model's boundary keeps every term at or below `config.term_max`.

pub mod client;
pub mod history;
pub mod msg;
pub mod server;

use std::borrow::Cow;
use std::fmt::Write as _;

use oxetcd_spec::raft::{MemStorage, MessageKind, NodeId, describe};
use stateright::actor::{
    Actor, ActorModel, ActorModelState, Envelope, Id, LossyNetwork, Network, Out,
};
use stateright::{Model, Path, Property};

use crate::config::{ModelConfig, NetworkKind};
use crate::kv::KvOp;
pub use client::{ClientPlan, ClientState};
pub use history::{ClientLog, LeaderLog, ModelHistory};
pub use msg::{Msg, RaftMsg, Timer};
pub use server::ServerState;

/// The stateright actor model of the cluster (servers, clients, network, crashes).
pub type ActorCluster = ActorModel<ClusterActor, ModelConfig, ModelHistory>;
/// A state of the model.
pub type ClusterState = ActorModelState<ClusterActor, ModelHistory>;
/// An action of the model (deliver, drop, timeout, crash, restart).
pub type ModelAction = <ActorCluster as Model>::Action;

/// The model the checker explores: the actor model, started either from a fresh cluster
/// or from the last state of a scenario's scripted prefix ([`crate::scenario`]). Every
/// step, property and boundary is the actor model's; only the initial state differs.
#[derive(Clone)]
pub struct ClusterModel {
    actors: ActorCluster,
    /// The scenario's scripted steps from the fresh cluster to `init` (empty without a
    /// scenario), each with the state it was taken in.
    prefix: Vec<(ClusterState, ModelAction)>,
    init: ClusterState,
}

impl ClusterModel {
    /// The configuration this model was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.actors.cfg
    }

    /// The underlying stateright actor model.
    pub fn actor_model(&self) -> &ActorCluster {
        &self.actors
    }

    /// The scripted steps that lead from a fresh cluster to this model's initial state
    /// (empty unless a scenario is selected).
    pub fn prefix(&self) -> &[(ClusterState, ModelAction)] {
        &self.prefix
    }
}

impl std::fmt::Debug for ClusterModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterModel")
            .field("config", self.config())
            .field("prefix_steps", &self.prefix.len())
            .finish_non_exhaustive()
    }
}

impl Model for ClusterModel {
    type State = ClusterState;
    type Action = ModelAction;

    fn init_states(&self) -> Vec<ClusterState> {
        vec![self.init.clone()]
    }

    fn actions(&self, state: &ClusterState, actions: &mut Vec<ModelAction>) {
        self.actors.actions(state, actions);
    }

    fn next_state(&self, last_state: &ClusterState, action: ModelAction) -> Option<ClusterState> {
        self.actors.next_state(last_state, action)
    }

    fn format_action(&self, action: &ModelAction) -> String {
        self.actors.format_action(action)
    }

    fn format_step(&self, last_state: &ClusterState, action: ModelAction) -> Option<String> {
        self.actors.format_step(last_state, action)
    }

    fn as_svg(&self, path: Path<ClusterState, ModelAction>) -> Option<String> {
        self.actors.as_svg(path)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        crate::properties::all()
    }

    fn within_boundary(&self, state: &ClusterState) -> bool {
        Model::within_boundary(&self.actors, state)
    }
}

/// The Raft node id of server `index`.
pub fn server_id(index: usize) -> NodeId {
    NodeId(u64::try_from(index).unwrap_or(u64::MAX).saturating_add(1))
}

/// An actor of the model.
#[derive(Clone, Debug)]
pub enum ClusterActor {
    /// Raft server number `index` (actor id `index`).
    Server {
        /// Its index among the servers.
        index: usize,
        /// The model configuration (Raft config, injected bug, heartbeat budget).
        config: ModelConfig,
    },
    /// A client.
    Client(ClientPlan),
}

/// The state of an actor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ActorState {
    /// A server's state.
    Server(Box<ServerState>),
    /// A client's state.
    Client(ClientState),
}

impl Actor for ClusterActor {
    type Msg = Msg;
    type Timer = Timer;
    type State = ActorState;
    type Storage = MemStorage;
    type Random = ();

    fn name(&self) -> String {
        match self {
            ClusterActor::Server { index, .. } => format!("n{}", server_id(*index)),
            ClusterActor::Client(plan) => format!("c{}", plan.index),
        }
    }

    fn on_start(&self, _: Id, storage: &Option<MemStorage>, o: &mut Out<Self>) -> ActorState {
        match self {
            ClusterActor::Server { index, config } => {
                ActorState::Server(Box::new(server::on_start(config, *index, storage, o)))
            }
            ClusterActor::Client(plan) => ActorState::Client(plan.on_start(o)),
        }
    }

    fn on_msg(&self, _: Id, state: &mut Cow<ActorState>, src: Id, msg: Msg, o: &mut Out<Self>) {
        match (self, &**state) {
            (ClusterActor::Server { .. }, ActorState::Server(server_state)) => {
                if let Some(next) = guarded(server_state, o, |inner, out| {
                    server::on_msg(inner, src, msg, out);
                }) {
                    *state = Cow::Owned(ActorState::Server(Box::new(next)));
                }
            }
            (ClusterActor::Client(plan), ActorState::Client(client_state)) => {
                let mut inner = Cow::Borrowed(client_state);
                plan.on_msg(&mut inner, msg, o);
                if let Cow::Owned(next) = inner {
                    *state = Cow::Owned(ActorState::Client(next));
                }
            }
            _ => unreachable!("actor and state kinds always match"),
        }
    }

    fn on_timeout(&self, _: Id, state: &mut Cow<ActorState>, timer: &Timer, o: &mut Out<Self>) {
        if let (ClusterActor::Server { config, .. }, ActorState::Server(server_state)) =
            (self, &**state)
            && let Some(next) = guarded(server_state, o, |inner, out| {
                server::on_timeout(config, inner, *timer, out);
            })
        {
            *state = Cow::Owned(ActorState::Server(Box::new(next)));
        }
    }
}

thread_local! {
    /// Set while [`guarded`] runs a handler, so that its panics are not printed.
    static IN_GUARD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs (once) a panic hook that stays silent for panics [`guarded`] catches and
/// reports, and defers to the previous hook for every other panic.
fn quiet_guarded_panics() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_GUARD.get() {
                previous(info);
            }
        }));
    });
}

/// Runs one server handler; a panic inside `spec` (an assertion of its own invariants,
/// typically tripped by an injected bug) becomes a model state that records it, so the
/// checker reports it as a counterexample with its path instead of aborting. Returns the
/// new server state if it changed.
fn guarded(
    server_state: &ServerState,
    o: &mut Out<ClusterActor>,
    handler: impl FnOnce(&mut Cow<ServerState>, &mut Out<ClusterActor>),
) -> Option<ServerState> {
    quiet_guarded_panics();
    IN_GUARD.set(true);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut inner = Cow::Borrowed(server_state);
        let mut out = Out::new();
        handler(&mut inner, &mut out);
        let next = match inner {
            Cow::Owned(next) => Some(next),
            Cow::Borrowed(_) => None,
        };
        (next, out)
    }));
    IN_GUARD.set(false);
    match outcome {
        Ok((next, mut out)) => {
            o.append(&mut out);
            next
        }
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "non-string panic".to_owned());
            Some(server_state.with_spec_panic(message))
        }
    }
}

/// The client operations of client number `n` (0-based): write `n + 1` to key 0, then
/// read key 0. Tiny domains make operations of different clients collide.
pub fn client_ops(n: usize) -> Vec<KvOp> {
    let value = u8::try_from(n + 1).unwrap_or(u8::MAX);
    vec![KvOp::Put { key: 0, value }, KvOp::Get { key: 0 }]
}

/// Builds the model for `config`, with every property of [`crate::properties`], starting
/// from the end of `config.scenario`'s scripted prefix if one is selected.
///
/// # Panics
/// If the scenario cannot be played under `config`; [`ModelConfig::validate`] rejects
/// such configurations.
pub fn build(config: &ModelConfig) -> ClusterModel {
    let actors = build_actors(config);
    let fresh = actors
        .init_states()
        .into_iter()
        .next()
        .expect("an actor model has one initial state");
    let (prefix, init) = match config.scenario {
        None => (Vec::new(), fresh),
        Some(scenario) => crate::scenario::play(&actors, scenario, fresh)
            .unwrap_or_else(|error| panic!("scenario {scenario}: {error}")),
    };
    ClusterModel {
        actors,
        prefix,
        init,
    }
}

fn build_actors(config: &ModelConfig) -> ActorCluster {
    let servers = config
        .servers
        .clamp(ModelConfig::SERVERS_MIN, ModelConfig::SERVERS_MAX);
    ActorModel::new(config.clone(), ModelHistory::new())
        .actors((0..servers).map(|index| ClusterActor::Server {
            index,
            config: ModelConfig {
                servers,
                ..config.clone()
            },
        }))
        .actors((0..config.clients).map(|n| {
            ClusterActor::Client(ClientPlan {
                index: u8::try_from(servers + n).unwrap_or(u8::MAX),
                servers,
                ops: client_ops(n),
                retries_max: config.client_retries_max,
            })
        }))
        .init_network(match config.network {
            NetworkKind::Lossy | NetworkKind::Unordered => {
                Network::new_unordered_nonduplicating([])
            }
            NetworkKind::Duplicating => Network::new_unordered_duplicating([]),
            NetworkKind::Ordered => Network::new_ordered([]),
        })
        .lossy_network(match config.network {
            NetworkKind::Lossy => LossyNetwork::Yes,
            NetworkKind::Unordered | NetworkKind::Duplicating | NetworkKind::Ordered => {
                LossyNetwork::No
            }
        })
        .max_crashes(config.crashes)
        .record_msg_out(record_msg_out)
        .record_msg_in(record_msg_in)
        .within_boundary(within_boundary)
}

fn record_msg_out(
    _: &ModelConfig,
    history: &ModelHistory,
    env: Envelope<&Msg>,
) -> Option<ModelHistory> {
    match env.msg {
        Msg::Request {
            request,
            op,
            attempt: 0,
        } => history
            .clients
            .on_invoke(env.src, *request, *op)
            .map(|clients| ModelHistory {
                clients,
                ..history.clone()
            }),
        Msg::Raft(RaftMsg(m))
            if matches!(
                m.kind,
                MessageKind::App | MessageKind::Heartbeat | MessageKind::Snap
            ) =>
        {
            history
                .leaders
                .on_leader_message(m.term.0, env.src)
                .map(|leaders| ModelHistory {
                    leaders,
                    ..history.clone()
                })
        }
        _ => None,
    }
}

fn record_msg_in(
    _: &ModelConfig,
    history: &ModelHistory,
    env: Envelope<&Msg>,
) -> Option<ModelHistory> {
    match env.msg {
        Msg::Response { request, ret } => {
            history
                .clients
                .on_return(env.dst, *request, *ret)
                .map(|clients| ModelHistory {
                    clients,
                    ..history.clone()
                })
        }
        _ => None,
    }
}

/// The explored part of the state space: terms up to `term_max`, and clients never
/// crashed (stateright's crash action applies to every actor; the model's crashes are
/// server crashes, so a state with a crashed client is outside the model).
fn within_boundary(config: &ModelConfig, state: &ClusterState) -> bool {
    let client_crashed = state
        .actor_states
        .iter()
        .zip(&state.crashed)
        .any(|(actor, crashed)| *crashed && matches!(**actor, ActorState::Client(_)));
    !client_crashed && servers(state).all(|(_, server)| server.term() <= config.term_max)
}

/// Every server with its actor index, crashed or not.
pub fn servers(state: &ClusterState) -> impl Iterator<Item = (usize, &ServerState)> {
    state
        .actor_states
        .iter()
        .enumerate()
        .filter_map(|(index, actor)| match &**actor {
            ActorState::Server(server) => Some((index, &**server)),
            ActorState::Client(_) => None,
        })
}

/// The servers that are up (a crashed server's last state stays in the model state until
/// it restarts, but it is not a participant meanwhile).
pub fn live_servers(state: &ClusterState) -> impl Iterator<Item = (usize, &ServerState)> {
    servers(state).filter(|(index, _)| !state.crashed.get(*index).copied().unwrap_or(false))
}

/// The display name of actor `id`.
pub fn actor_name(model: &ClusterModel, id: Id) -> String {
    model
        .actors
        .actors
        .get(usize::from(id))
        .map_or_else(|| format!("{id:?}"), Actor::name)
}

/// Every actor's state, one line each, then the client history.
pub fn describe_state(model: &ClusterModel, state: &ClusterState) -> String {
    let mut out = String::new();
    for (index, actor) in state.actor_states.iter().enumerate() {
        let name = actor_name(model, Id::from(index));
        let crashed = state.crashed.get(index).copied().unwrap_or(false);
        match &**actor {
            ActorState::Server(server) => {
                let node = server.node();
                let log = node
                    .entries(node.first_index(), node.last_index().next())
                    .map_or_else(|| "(compacted)".to_owned(), |e| describe::entries(&e));
                let _ = writeln!(
                    out,
                    "  {name}{}: {} {} applied={} log={log} k0={:?}",
                    if crashed { " (crashed)" } else { "" },
                    describe::soft_state(&node.soft_state()),
                    describe::hard_state(&node.hard_state()),
                    node.applied_index(),
                    server.read(0),
                );
                if let Some(message) = server.spec_panic() {
                    let _ = writeln!(out, "    PANICKED inside spec: {message}");
                }
            }
            ActorState::Client(client) => {
                let _ = writeln!(
                    out,
                    "  {name}: {} operation(s) done, attempt {} at n{}",
                    client.done,
                    client.attempt,
                    server_id(client.server)
                );
            }
        }
    }
    match state.history.clients.serialized() {
        Some(ops) => {
            let ops: Vec<String> = ops
                .iter()
                .map(|(op, ret)| format!("{}{}", msg::describe_op(op), msg::describe_ret(ret)))
                .collect();
            let _ = writeln!(out, "  client history linearizes as: {}", ops.join(", "));
        }
        None => {
            let _ = writeln!(out, "  client history is NOT linearizable");
        }
    }
    if let Some((term, first, second)) = state.history.leaders.second_leader() {
        let _ = writeln!(
            out,
            "  two leaders in term {term}: {} and {}",
            actor_name(model, first),
            actor_name(model, second)
        );
    }
    out
}
