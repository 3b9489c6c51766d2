//! A Raft server of the model: a `spec::raft::Node` over `MemStorage`, driven through the
//! executor contract of `spec::raft::node` (persist, send, apply, advance), plus the
//! replicated key-value map it applies committed entries to.
//!
//! Nothing here decides anything Raft decides. The harness only (1) feeds the node its
//! inputs (messages, client requests, the coarse election timeout as `campaign`, the
//! heartbeat as one `tick`), (2) carries out each `Ready` verbatim, and (3) answers clients
//! from the applied state. All of a Ready happens in one model step; a crash happens
//! between steps, so it sees either none or all of a Ready's persistence (the durable
//! state stateright keeps is the storage saved by step 4 of the contract).

use std::borrow::Cow;

use oxetcd_spec::raft::{
    Config, EntryPayload, InjectedBugs, LogIndex, MemStorage, Node, NodeId, Role, Storage as _,
    Term,
};
use stateright::actor::{Id, Out};

use super::msg::{Msg, RaftMsg, Timer};
use super::{ClusterActor, server_id};
use crate::config::{InjectedBug, ModelConfig};
use crate::kv::{Key, KvCommand, KvOp, KvRet, KvStateMachine, RequestId};

/// Bound on Ready rounds carried out in one model step; the node settles in a few.
const READY_ROUNDS_MAX: usize = 16;

/// One entry a server applied since it last started: what state-machine safety compares.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AppliedEntry {
    /// Log index of the entry.
    pub index: LogIndex,
    /// Term of the entry.
    pub term: Term,
    /// The client command it carried (`None`: an empty or configuration entry).
    pub command: Option<KvCommand>,
}

/// A read waiting for the applied index to reach its ReadIndex.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PendingRead {
    index: LogIndex,
    request: RequestId,
    key: Key,
}

/// The state of one server: the Raft node (its storage is the durable part) and the
/// volatile application state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerState {
    node: Node<MemStorage>,
    kv: KvStateMachine,
    applied: Vec<AppliedEntry>,
    pending_reads: Vec<PendingRead>,
    /// Term of the leadership the heartbeat budget belongs to, and heartbeats left.
    heartbeat_budget: (Term, u8),
    /// The message of a panic raised inside `spec` while handling the last input (the
    /// node's own invariant checks); reported by the "spec invariants" property.
    spec_panic: Option<String>,
}

/// The Raft configuration of server `index` under `config`.
pub fn raft_config(config: &ModelConfig, index: usize) -> Config {
    let mut raft = Config::new(server_id(index));
    // The election timeout is modelled as one action, heartbeats as one tick.
    raft.election_tick = 2;
    raft.heartbeat_tick = 1;
    raft.pre_vote = config.pre_vote;
    raft.check_quorum = false;
    raft.max_inflight_msgs = 2;
    // One entry per AppendEntries (at least one is always sent): entries of different
    // terms are then acknowledged separately, which the Figure 8 scenario (Raft §5.4.2)
    // needs, and no behaviour depends on message size otherwise.
    raft.max_size_per_msg = 1;
    raft.bugs = injected_bugs(config.bug);
    raft
}

fn injected_bugs(bug: Option<InjectedBug>) -> InjectedBugs {
    let mut bugs = InjectedBugs::default();
    match bug {
        None => {}
        Some(InjectedBug::GrantTwoVotesInOneTerm) => bugs.grant_two_votes_in_one_term = true,
        Some(InjectedBug::CommitPreviousTermByCounting) => {
            bugs.commit_previous_term_by_counting = true;
        }
        Some(InjectedBug::AcceptAppendWithoutTermCheck) => {
            bugs.accept_append_without_term_check = true;
        }
    }
    bugs
}

/// Starts (or restarts, from `storage`) server `index`.
pub fn on_start(
    config: &ModelConfig,
    index: usize,
    storage: &Option<MemStorage>,
    o: &mut Out<ClusterActor>,
) -> ServerState {
    let storage = storage.clone().unwrap_or_else(|| {
        let voters = (0..config.servers).map(|i| server_id(i).0);
        MemStorage::new_with_conf_state(oxetcd_spec::raft::ConfState::with_voters(voters))
    });
    // The application is volatile, so it restarts from nothing: `applied` stays 0 and the
    // node hands back every committed entry.
    let node = Node::new(raft_config(config, index), storage)
        .expect("the model's Raft config and storage are valid");
    let mut state = ServerState {
        node,
        kv: KvStateMachine::default(),
        applied: Vec::new(),
        pending_reads: Vec::new(),
        heartbeat_budget: (Term(0), 0),
        spec_panic: None,
    };
    state.drive(o);
    o.set_timer(Timer::Election, stateright::actor::model_timeout());
    o.set_timer(Timer::Heartbeat, stateright::actor::model_timeout());
    state
}

/// Handles a message delivered to a server.
pub fn on_msg(state: &mut Cow<ServerState>, src: Id, msg: Msg, o: &mut Out<ClusterActor>) {
    match msg {
        Msg::Raft(RaftMsg(message)) => {
            let server = state.to_mut();
            server.node.step(message);
            server.drive(o);
        }
        Msg::Request {
            request,
            op,
            attempt,
        } => {
            let server = state.to_mut();
            let accepted = match op {
                KvOp::Put { .. } => {
                    let command = KvCommand { request, op };
                    server.node.propose(command.encode()).is_ok()
                }
                KvOp::Get { key } => server.node.read_index(read_ctx(request, key)).is_ok(),
            };
            if !accepted {
                o.send(src, Msg::NotLeader { request, attempt });
            }
            server.drive(o);
        }
        Msg::Response { .. } | Msg::NotLeader { .. } => {}
    }
}

/// Handles a server timer.
pub fn on_timeout(
    config: &ModelConfig,
    state: &mut Cow<ServerState>,
    timer: Timer,
    o: &mut Out<ClusterActor>,
) {
    // Timers are always re-armed: stateright treats "nothing changed but the timer was
    // set again" as a no-op step, so an idle timer costs no states.
    o.set_timer(timer, stateright::actor::model_timeout());
    match timer {
        Timer::Election => {
            if state.node.role() == Role::Leader {
                return;
            }
            let server = state.to_mut();
            server.node.campaign();
            server.drive(o);
        }
        Timer::Heartbeat => {
            if state.node.role() != Role::Leader {
                return;
            }
            let term = state.node.term();
            let left = if state.heartbeat_budget.0 == term {
                state.heartbeat_budget.1
            } else {
                config.heartbeats_per_term
            };
            if left == 0 {
                return;
            }
            let server = state.to_mut();
            server.heartbeat_budget = (term, left - 1);
            server.node.tick();
            server.drive(o);
        }
    }
}

impl ServerState {
    /// Carries out every pending Ready, following the executor contract of
    /// `spec::raft::node` step by step.
    fn drive(&mut self, o: &mut Out<ClusterActor>) {
        for _ in 0..READY_ROUNDS_MAX {
            if !self.node.has_ready() {
                break;
            }
            let ready = self
                .node
                .ready()
                .expect("the harness advances every Ready before asking for the next");
            // 3. Messages that depend on nothing unpersisted.
            for message in &ready.messages {
                send_raft(message, o);
            }
            // 4. Persist snapshot, entries, hard state; stateright's Save is the fsync.
            self.node
                .storage_mut()
                .persist_ready(&ready)
                .expect("MemStorage accepts what the node hands out");
            o.save(self.node.storage().clone());
            // 5. Messages that promise durability.
            for message in &ready.messages_after_persist {
                send_raft(message, o);
            }
            // 6. Apply committed entries, then serve reads that became answerable.
            let is_leader = self.node.role() == Role::Leader;
            for entry in &ready.committed_entries {
                let command = match &entry.payload {
                    EntryPayload::Normal(data) => KvCommand::decode(data),
                    EntryPayload::Empty | EntryPayload::ConfChange(_) => None,
                };
                self.applied.push(AppliedEntry {
                    index: entry.index,
                    term: entry.term,
                    command,
                });
                let Some(command) = command else { continue };
                let ret = self.kv.apply(&command);
                if let (true, Some(ret)) = (is_leader, ret) {
                    let client = Id::from(usize::from(command.request.client));
                    o.send(
                        client,
                        Msg::Response {
                            request: command.request,
                            ret,
                        },
                    );
                }
            }
            for read in &ready.read_states {
                if let Some((request, key)) = parse_read_ctx(&read.request_ctx) {
                    self.pending_reads.push(PendingRead {
                        index: read.index,
                        request,
                        key,
                    });
                }
            }
            self.serve_reads(o);
            // 7. Advance.
            self.node
                .advance(ready.ack())
                .expect("the harness acknowledges the Ready it was given");
        }
        self.node.check_invariants();
    }

    fn serve_reads(&mut self, o: &mut Out<ClusterActor>) {
        let applied = self.applied.last().map_or(LogIndex(0), |entry| entry.index);
        let kv = &self.kv;
        self.pending_reads.retain(|read| {
            if read.index > applied {
                return true;
            }
            let client = Id::from(usize::from(read.request.client));
            let ret = KvRet::GetOk(kv.read(read.key));
            o.send(
                client,
                Msg::Response {
                    request: read.request,
                    ret,
                },
            );
            false
        });
    }

    /// This state, marked as having panicked inside `spec` with `message`.
    pub fn with_spec_panic(&self, message: String) -> ServerState {
        ServerState {
            spec_panic: Some(message),
            ..self.clone()
        }
    }

    /// The panic raised inside `spec` by the last input, if any.
    pub fn spec_panic(&self) -> Option<&str> {
        self.spec_panic.as_deref()
    }

    /// Whether this server is the leader of its term.
    pub fn is_leader(&self) -> bool {
        self.node.role() == Role::Leader
    }

    /// Its current term.
    pub fn term(&self) -> u64 {
        self.node.term().0
    }

    /// Its commit index.
    pub fn commit_index(&self) -> u64 {
        self.node.commit_index().0
    }

    /// Index of its last log entry.
    pub fn last_index(&self) -> u64 {
        self.node.last_index().0
    }

    /// Term of its entry at `index`, if it has one.
    pub fn entry_term(&self, index: u64) -> Option<u64> {
        if index == 0 || index > self.last_index() {
            return None;
        }
        self.node.term_at(LogIndex(index)).map(|term| term.0)
    }

    /// Its entry at `index` (term and payload), if it has one.
    pub fn entry(&self, index: u64) -> Option<oxetcd_spec::raft::Entry> {
        if index == 0 || index > self.last_index() {
            return None;
        }
        self.node
            .entries(LogIndex(index), LogIndex(index + 1))
            .and_then(|mut entries| entries.pop())
    }

    /// Every entry applied since this server last started, in order.
    pub fn applied(&self) -> &[AppliedEntry] {
        &self.applied
    }

    /// Whether it has applied some client write.
    pub fn has_applied_write(&self) -> bool {
        self.applied.iter().any(|entry| {
            matches!(
                entry.command,
                Some(KvCommand {
                    op: KvOp::Put { .. },
                    ..
                })
            )
        })
    }

    /// The Raft node, for reports.
    pub fn node(&self) -> &Node<MemStorage> {
        &self.node
    }

    /// The applied key-value map's value for `key`, for reports.
    pub fn read(&self, key: Key) -> Option<crate::kv::Value> {
        self.kv.read(key)
    }
}

fn send_raft(message: &oxetcd_spec::raft::Message, o: &mut Out<ClusterActor>) {
    o.send(actor_id(message.to), Msg::Raft(RaftMsg(message.clone())));
}

/// The stateright actor of Raft node `id` (node ids are actor index + 1).
pub fn actor_id(id: NodeId) -> Id {
    Id::from(usize::try_from(id.0.saturating_sub(1)).unwrap_or(usize::MAX))
}

fn read_ctx(request: RequestId, key: Key) -> Vec<u8> {
    vec![request.client, request.seq, key]
}

fn parse_read_ctx(ctx: &[u8]) -> Option<(RequestId, Key)> {
    let [client, seq, key]: [u8; 3] = ctx.try_into().ok()?;
    Some((RequestId { client, seq }, key))
}
