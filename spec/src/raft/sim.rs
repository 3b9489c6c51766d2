//! A deterministic in-process cluster of [`Node`]s over a simulated network, for scenario
//! tests and seeded fault simulation. Everything is driven by a seeded generator: the same
//! seed replays the same run.
//!
//! The executor here follows the contract in [`super::node`] exactly (send `messages`,
//! persist, send `messages_after_persist`, apply, advance); a crash keeps only the node's
//! storage (what was persisted) and the application's applied entries (durably applied, as
//! etcd's consistent index). The application is a list of applied entries; its snapshot
//! data is that list, encoded.
//!
//! [`Cluster::check_safety`] checks the Raft safety properties (Raft §5.4, Figure 3):
//! election safety, log matching, leader completeness and state-machine safety.

use std::collections::{BTreeMap, BTreeSet};

use super::config::{Config, InjectedBugs};
use super::describe;
use super::message::{Message, MessageKind};
use super::node::Node;
use super::rng::SplitMix64;
use super::storage::{MemStorage, Storage};
use super::types::{
    ConfChange, Entry, EntryPayload, LogIndex, NodeId, Proposed, ReadState, Role, Term,
};

/// Knobs of a simulated cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SimConfig {
    /// Number of initial voters (ids 1..=n).
    pub nodes: u64,
    /// Seed of the network/fault generator (node seeds derive from it).
    pub seed: u64,
    /// Per-mille chance a sent message is lost.
    pub drop_per_mille: u64,
    /// Per-mille chance a delivered message stays in the network to be delivered again.
    pub duplicate_per_mille: u64,
    /// Pre-vote on every node.
    pub pre_vote: bool,
    /// Check-quorum on every node.
    pub check_quorum: bool,
    /// Small messages and windows, to exercise flow control.
    pub max_size_per_msg: u64,
    /// Inflight window.
    pub max_inflight_msgs: usize,
    /// Injected bugs on every node.
    pub bugs: InjectedBugs,
    /// Let the chaos run propose membership changes (add learner, promote, remove).
    pub membership_changes: bool,
    /// Every node's `Config::max_uncommitted_entries_size` (0: no limit).
    pub max_uncommitted_entries_size: u64,
}

impl SimConfig {
    /// A fault-free configuration of `nodes` voters.
    #[must_use]
    pub fn new(nodes: u64, seed: u64) -> SimConfig {
        SimConfig {
            nodes,
            seed,
            drop_per_mille: 0,
            duplicate_per_mille: 0,
            pre_vote: true,
            check_quorum: true,
            max_size_per_msg: 200,
            max_inflight_msgs: 4,
            bugs: InjectedBugs::default(),
            membership_changes: false,
            max_uncommitted_entries_size: 0,
        }
    }

    fn node_config(&self, id: NodeId, applied: LogIndex) -> Config {
        let mut cfg = Config::new(id);
        cfg.election_tick = 10;
        cfg.heartbeat_tick = 2;
        cfg.pre_vote = self.pre_vote;
        cfg.check_quorum = self.check_quorum;
        cfg.max_size_per_msg = self.max_size_per_msg;
        cfg.max_inflight_msgs = self.max_inflight_msgs;
        cfg.max_uncommitted_entries_size = self.max_uncommitted_entries_size;
        cfg.seed = self.seed.wrapping_mul(31).wrapping_add(id.0);
        cfg.bugs = self.bugs;
        cfg.applied = applied;
        cfg
    }
}

/// One member: a live node (or none while crashed), its durable storage while crashed, and
/// its application state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Member {
    /// The running node; `None` while crashed.
    pub node: Option<Node<MemStorage>>,
    /// What survived the crash (only meaningful while `node` is `None`).
    pub durable: MemStorage,
    /// The application: every applied entry, in order (snapshots replace the prefix).
    pub applied: Vec<Entry>,
    /// Read states received so far (answers to `read_index`).
    pub read_states: Vec<ReadState>,
}

/// A simulated cluster. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cluster {
    /// Simulation knobs.
    pub config: SimConfig,
    /// Members by id.
    pub members: BTreeMap<NodeId, Member>,
    /// Messages in flight, in send order.
    pub network: Vec<Message>,
    /// If set, messages only flow within each group.
    pub partition: Option<Vec<BTreeSet<NodeId>>>,
    /// Log of what happened, one line per event (for transcripts and failure reports).
    pub transcript: Vec<String>,
    /// Whether to record the transcript.
    pub record: bool,
    rng: SplitMix64,
    leaders_by_term: BTreeMap<Term, NodeId>,
    /// Every applied entry, with the applying node's term then (>= the term it was
    /// committed in).
    applied_by_index: BTreeMap<LogIndex, (Entry, Term)>,
    proposals: u64,
    violation: Option<String>,
}

impl Cluster {
    /// A cluster of `config.nodes` voters bootstrapped as etcd does: each log starts with
    /// one committed `AddNode` entry per voter (term 1), already applied.
    #[must_use]
    pub fn new(config: SimConfig) -> Cluster {
        let mut members = BTreeMap::new();
        for id in 1..=config.nodes {
            let storage = MemStorage::new_bootstrapped(1..=config.nodes);
            let node = Node::new(config.node_config(NodeId(id), LogIndex(0)), storage)
                .expect("simulation config is valid");
            members.insert(
                NodeId(id),
                Member {
                    node: Some(node),
                    durable: MemStorage::new(),
                    applied: Vec::new(),
                    read_states: Vec::new(),
                },
            );
        }
        let mut cluster = Cluster {
            rng: SplitMix64::new(config.seed),
            config,
            members,
            network: Vec::new(),
            partition: None,
            transcript: Vec::new(),
            record: false,
            leaders_by_term: BTreeMap::new(),
            applied_by_index: BTreeMap::new(),
            proposals: 0,
            violation: None,
        };
        // Apply the bootstrap configuration entries.
        cluster.process_readies();
        cluster
    }

    /// A cluster whose members start from the given storages (for scenarios that need
    /// pre-built, possibly divergent logs). Members are the keys of `storages`.
    #[must_use]
    pub fn with_storages(config: SimConfig, storages: BTreeMap<NodeId, MemStorage>) -> Cluster {
        let mut cluster = Cluster::new(SimConfig { nodes: 0, ..config });
        for (id, storage) in storages {
            let applied = LogIndex(0);
            let node = Node::new(cluster.config.node_config(id, applied), storage)
                .expect("simulation config is valid");
            cluster.members.insert(
                id,
                Member {
                    node: Some(node),
                    durable: MemStorage::new(),
                    applied: Vec::new(),
                    read_states: Vec::new(),
                },
            );
        }
        cluster.config.nodes = cluster.members.len() as u64;
        cluster
    }

    /// Removes and returns the in-flight messages matching `pred` (to deliver later with
    /// [`Cluster::inject`], for example as stale messages).
    pub fn take_where(&mut self, pred: impl Fn(&Message) -> bool) -> Vec<Message> {
        self.process_readies();
        let (taken, kept) = std::mem::take(&mut self.network)
            .into_iter()
            .partition(|m| pred(m));
        self.network = kept;
        taken
    }

    /// Puts `m` back in flight.
    pub fn inject(&mut self, m: Message) {
        self.network.push(m);
    }

    /// Messages currently in flight (after processing Readies).
    pub fn in_flight(&mut self) -> &[Message] {
        self.process_readies();
        &self.network
    }

    fn log(&mut self, line: String) {
        if self.record {
            self.transcript.push(line);
        }
    }

    /// Adds a new, empty member `id` (not yet in any configuration: it joins when a conf
    /// change adding it is applied and the leader replicates to it).
    pub fn add_empty_member(&mut self, id: NodeId) {
        let node = Node::new(self.config.node_config(id, LogIndex(0)), MemStorage::new())
            .expect("simulation config is valid");
        self.members.insert(
            id,
            Member {
                node: Some(node),
                durable: MemStorage::new(),
                applied: Vec::new(),
                read_states: Vec::new(),
            },
        );
    }

    /// The live node `id`. Panics if crashed or unknown (a test mistake).
    #[must_use]
    pub fn node(&self, id: u64) -> &Node<MemStorage> {
        self.members
            .get(&NodeId(id))
            .and_then(|m| m.node.as_ref())
            .expect("node exists and is up")
    }

    /// Mutable access to live node `id`.
    pub fn node_mut(&mut self, id: u64) -> &mut Node<MemStorage> {
        self.members
            .get_mut(&NodeId(id))
            .and_then(|m| m.node.as_mut())
            .expect("node exists and is up")
    }

    /// Ids of live nodes.
    #[must_use]
    pub fn live(&self) -> Vec<NodeId> {
        self.members
            .iter()
            .filter(|(_, m)| m.node.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    /// The live leader with the highest term, if any.
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        self.members
            .iter()
            .filter_map(|(id, m)| m.node.as_ref().map(|n| (id, n)))
            .filter(|(_, n)| n.role() == Role::Leader)
            .max_by_key(|(_, n)| n.term())
            .map(|(id, _)| *id)
    }

    /// The read states member `id` received so far.
    #[must_use]
    pub fn read_states(&self, id: u64) -> &[ReadState] {
        self.members
            .get(&NodeId(id))
            .map_or(&[], |m| m.read_states.as_slice())
    }

    /// The applied entries of member `id`.
    #[must_use]
    pub fn applied(&self, id: u64) -> &[Entry] {
        self.members
            .get(&NodeId(id))
            .map_or(&[], |m| m.applied.as_slice())
    }

    // ----- executor ---------------------------------------------------------------

    fn send(&mut self, m: Message) {
        if self.config.drop_per_mille > 0 && self.rng.below(1000) < self.config.drop_per_mille {
            let line = format!("drop {}", describe::message(&m));
            self.log(line);
            return;
        }
        self.network.push(m);
    }

    /// Carries out one Ready of node `id` (contract steps 3-7). With `crash_before_persist`
    /// the node crashes after sending `messages` and before persisting anything.
    fn process_ready_of(&mut self, id: NodeId, crash_before_persist: bool) -> bool {
        let Some(member) = self.members.get_mut(&id) else {
            return false;
        };
        let Some(node) = member.node.as_mut() else {
            return false;
        };
        if !node.has_ready() {
            return false;
        }
        let rd = node
            .ready()
            .expect("no Ready outstanding in the simulation");
        let line = format!(
            "{id} ready #{}: {}",
            rd.number,
            describe::ready(&rd).replace('\n', "; ")
        );
        self.log(line);
        for m in rd.messages.clone() {
            self.send(m);
        }
        if crash_before_persist {
            self.crash(id);
            return true;
        }
        let Some(member) = self.members.get_mut(&id) else {
            return false;
        };
        let Some(node) = member.node.as_mut() else {
            return false;
        };
        node.storage_mut()
            .persist_ready(&rd)
            .expect("MemStorage accepts what Raft asks to persist");
        if let Some(snapshot) = &rd.snapshot {
            member.applied = decode_app_snapshot(&snapshot.data);
        }
        member.applied.extend(rd.committed_entries.iter().cloned());
        member.read_states.extend(rd.read_states.iter().cloned());
        node.advance(rd.ack())
            .expect("acknowledging the outstanding Ready");
        let term = node.term();
        node.check_invariants();
        for m in rd.messages_after_persist {
            self.send(m);
        }
        for e in &rd.committed_entries {
            self.record_applied(id, e, term);
        }
        true
    }

    fn record_applied(&mut self, id: NodeId, e: &Entry, term: Term) {
        match self.applied_by_index.get(&e.index) {
            Some((previous, _)) => {
                if previous != e && self.violation.is_none() {
                    self.violation = Some(format!(
                        "state-machine safety: node {id} applied {} where {} was applied",
                        describe::entry(e),
                        describe::entry(previous)
                    ));
                }
            }
            None => {
                self.applied_by_index.insert(e.index, (e.clone(), term));
            }
        }
    }

    /// Processes Readies of every live node until none has anything to do.
    pub fn process_readies(&mut self) {
        for _ in 0..100 {
            let mut any = false;
            for id in self.live() {
                any |= self.process_ready_of(id, false);
            }
            if !any {
                return;
            }
        }
        panic!("Ready processing did not settle");
    }

    fn can_deliver(&self, m: &Message) -> bool {
        let up = self.members.get(&m.to).is_some_and(|mm| mm.node.is_some());
        let connected = match &self.partition {
            None => true,
            Some(groups) => groups
                .iter()
                .any(|g| g.contains(&m.from) && g.contains(&m.to)),
        };
        up && connected
    }

    fn deliver_at(&mut self, pos: usize) {
        let m = if self.config.duplicate_per_mille > 0
            && self.rng.below(1000) < self.config.duplicate_per_mille
        {
            self.network[pos].clone()
        } else {
            self.network.remove(pos)
        };
        if !self.can_deliver(&m) {
            let line = format!("lost {}", describe::message(&m));
            self.log(line);
            return;
        }
        let line = format!("deliver {}", describe::message(&m));
        self.log(line);
        let to = m.to;
        if let Some(node) = self.members.get_mut(&to).and_then(|mm| mm.node.as_mut()) {
            node.step(m);
        }
    }

    /// Delivers every message in flight (FIFO, including ones sent meanwhile) and processes
    /// Readies, until the network is empty. Bounded.
    pub fn stabilize(&mut self) {
        for _ in 0..10_000 {
            self.process_readies();
            if self.network.is_empty() {
                return;
            }
            self.deliver_at(0);
        }
        panic!("cluster did not stabilize");
    }

    /// Delivers (in order) the messages in flight now that match `pred`, processing
    /// Readies after each. Messages sent meanwhile stay in flight, as do non-matching ones.
    pub fn deliver_where(&mut self, pred: impl Fn(&Message) -> bool) {
        for m in self.take_where(pred) {
            if self.can_deliver(&m) {
                let line = format!("deliver {}", describe::message(&m));
                self.log(line);
                if let Some(node) = self.members.get_mut(&m.to).and_then(|mm| mm.node.as_mut()) {
                    node.step(m);
                }
            }
            self.process_readies();
        }
    }

    /// Removes every in-flight message matching `pred`.
    pub fn drop_where(&mut self, pred: impl Fn(&Message) -> bool) {
        self.process_readies();
        self.network.retain(|m| !pred(m));
    }

    /// Forces node `id` to campaign, then processes its Ready.
    pub fn campaign(&mut self, id: u64) {
        self.node_mut(id).campaign();
        self.process_readies();
    }

    /// Ticks node `id` once.
    pub fn tick(&mut self, id: u64) {
        self.node_mut(id).tick();
        self.process_readies();
    }

    /// Ticks every live node `times` times, stabilizing in between.
    pub fn tick_all_and_stabilize(&mut self, times: u32) {
        for _ in 0..times {
            for id in self.live() {
                if let Some(node) = self.members.get_mut(&id).and_then(|m| m.node.as_mut()) {
                    node.tick();
                }
            }
            self.stabilize();
        }
    }

    /// Proposes `data` at node `id`.
    pub fn propose(&mut self, id: u64, data: &[u8]) -> Result<Proposed, super::RaftError> {
        let result = self.node_mut(id).propose(data.to_vec());
        self.process_readies();
        result
    }

    /// Proposes a conf change at node `id`.
    pub fn propose_conf_change(
        &mut self,
        id: u64,
        cc: ConfChange,
    ) -> Result<Proposed, super::RaftError> {
        let result = self.node_mut(id).propose_conf_change(cc);
        self.process_readies();
        result
    }

    /// Cuts `id` off from everyone else.
    pub fn isolate(&mut self, id: u64) {
        let rest: BTreeSet<NodeId> = self
            .members
            .keys()
            .copied()
            .filter(|n| *n != NodeId(id))
            .collect();
        self.partition = Some(vec![BTreeSet::from([NodeId(id)]), rest]);
    }

    /// Splits the cluster into `groups` (ids not listed are isolated alone).
    pub fn partition_into(&mut self, groups: &[&[u64]]) {
        self.partition = Some(
            groups
                .iter()
                .map(|g| g.iter().copied().map(NodeId).collect())
                .collect(),
        );
    }

    /// Removes any partition.
    pub fn heal(&mut self) {
        self.partition = None;
    }

    /// Crashes node `id`: only its storage and durably applied entries survive.
    pub fn crash(&mut self, id: NodeId) {
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        if let Some(node) = member.node.take() {
            member.durable = node.storage().clone();
        }
        self.log(format!("crash {id}"));
    }

    /// Restarts crashed node `id` from its durable storage.
    pub fn restart(&mut self, id: NodeId) {
        let config = self.config.clone();
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        if member.node.is_some() {
            return;
        }
        let applied = member.applied.last().map(|e| e.index).unwrap_or_default();
        let node = Node::new(config.node_config(id, applied), member.durable.clone())
            .expect("restart from durable storage");
        member.node = Some(node);
        self.log(format!("restart {id}"));
    }

    /// Takes a snapshot of node `id`'s application and compacts its log.
    pub fn compact(&mut self, id: NodeId) {
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        let data = encode_app_snapshot(&member.applied);
        if let Some(node) = member.node.as_mut() {
            // Nothing new to snapshot is fine.
            let _nothing_to_do = node.compact_log(data);
        }
    }

    // ----- safety -----------------------------------------------------------------

    /// Checks election safety, log matching, leader completeness, state-machine safety
    /// (recorded as entries are applied) and every node's invariants.
    ///
    /// # Errors
    /// A description of the first violation.
    pub fn check_safety(&mut self) -> Result<(), String> {
        if let Some(v) = &self.violation {
            return Err(v.clone());
        }
        let nodes: Vec<&Node<MemStorage>> = self
            .members
            .values()
            .filter_map(|m| m.node.as_ref())
            .collect();
        for n in &nodes {
            n.check_invariants();
        }
        // Election safety: at most one leader per term, ever.
        for n in &nodes {
            if n.role() == Role::Leader {
                match self.leaders_by_term.get(&n.term()) {
                    Some(l) if *l != n.id() => {
                        return Err(format!(
                            "election safety: {} and {} both leaders in term {}",
                            l,
                            n.id(),
                            n.term()
                        ));
                    }
                    _ => {
                        self.leaders_by_term.insert(n.term(), n.id());
                    }
                }
            }
        }
        // Log matching: same term at an index implies identical prefixes.
        for (i, a) in nodes.iter().enumerate() {
            for b in &nodes[i + 1..] {
                check_log_matching(a, b)?;
            }
        }
        // Leader completeness: an entry committed in term T is in the log of every leader
        // of a later term (unless compacted away there).
        for n in &nodes {
            if n.role() != Role::Leader {
                continue;
            }
            for (index, (e, commit_term)) in &self.applied_by_index {
                if *index < n.first_index() || n.term() <= *commit_term {
                    continue;
                }
                if n.term_at(*index) != Some(e.term) {
                    return Err(format!(
                        "leader completeness: leader {} (term {}) lacks committed entry {}",
                        n.id(),
                        n.term(),
                        describe::entry(e)
                    ));
                }
            }
        }
        Ok(())
    }

    // ----- random faults ----------------------------------------------------------

    /// Runs `steps` random actions (ticks, deliveries in random order, proposals,
    /// crashes and restarts, partitions, compactions), checking safety after each.
    ///
    /// # Errors
    /// The first safety violation, with the step number.
    pub fn run_chaos(&mut self, steps: u32) -> Result<(), String> {
        for step in 0..steps {
            self.random_action();
            self.process_readies();
            self.check_safety()
                .map_err(|e| format!("step {step}: {e}"))?;
        }
        Ok(())
    }

    fn random_action(&mut self) {
        let ids: Vec<NodeId> = self.members.keys().copied().collect();
        let pick = |rng: &mut SplitMix64| ids[rng.below(ids.len() as u64) as usize];
        let roll = self.rng.below(1000);
        match roll {
            // Time passes for everyone (a global clock keeps elections plausible).
            0..=149 => {
                for id in self.live() {
                    if let Some(node) = self.members.get_mut(&id).and_then(|m| m.node.as_mut()) {
                        node.tick();
                    }
                }
            }
            150..=749 | 900..=999 => {
                if !self.network.is_empty() {
                    let pos = self.rng.below(self.network.len() as u64) as usize;
                    self.deliver_at(pos);
                }
            }
            750..=849 => {
                let id = pick(&mut self.rng);
                self.proposals += 1;
                let data = format!("p{}", self.proposals).into_bytes();
                if let Some(node) = self.members.get_mut(&id).and_then(|m| m.node.as_mut()) {
                    let _maybe_dropped = node.propose(data);
                }
            }
            850..=854 => {
                let id = pick(&mut self.rng);
                let crash_mid_ready = self.rng.below(2) == 0;
                if crash_mid_ready && self.process_ready_of(id, true) {
                    return;
                }
                self.crash(id);
            }
            855..=874 => {
                let id = pick(&mut self.rng);
                self.restart(id);
            }
            875..=879 => {
                let cut: BTreeSet<NodeId> = ids
                    .iter()
                    .copied()
                    .filter(|_| self.rng.below(2) == 0)
                    .collect();
                let rest: BTreeSet<NodeId> =
                    ids.iter().copied().filter(|i| !cut.contains(i)).collect();
                self.log(format!("partition {cut:?} | {rest:?}"));
                self.partition = Some(vec![cut, rest]);
            }
            880..=884 => {
                self.log("heal".to_string());
                self.partition = None;
            }
            885..=889 => {
                if self.config.membership_changes {
                    self.random_conf_change();
                }
            }
            _ => {
                let id = pick(&mut self.rng);
                self.compact(id);
            }
        }
    }

    /// At the leader: promote a learner if there is one, else add a new learner while
    /// there are fewer than five voters, else remove a random other voter.
    fn random_conf_change(&mut self) {
        let Some(leader) = self.leader() else {
            return;
        };
        let conf = self.node(leader.0).conf_state().clone();
        let change = if let Some(learner) = conf.learners.iter().next() {
            ConfChange::promote(*learner)
        } else if conf.voters.len() < 5 {
            let next_id = self.members.keys().last().map_or(1, |id| id.0 + 1);
            self.add_empty_member(NodeId(next_id));
            ConfChange::add_learner(NodeId(next_id))
        } else {
            let others: Vec<NodeId> = conf
                .voters
                .iter()
                .copied()
                .filter(|v| *v != leader)
                .collect();
            let victim = others[self.rng.below(others.len() as u64) as usize];
            ConfChange::remove_node(victim)
        };
        self.log(format!("propose conf change {change:?}"));
        let _maybe_refused = self.node_mut(leader.0).propose_conf_change(change);
    }

    /// Heals the network, stops losing messages, restarts everyone, then checks that a
    /// leader emerges and a new proposal is applied by every member, within a bounded
    /// number of ticks.
    ///
    /// # Errors
    /// Liveness or safety failure.
    pub fn heal_and_check_progress(&mut self) -> Result<(), String> {
        self.partition = None;
        self.config.drop_per_mille = 0;
        self.config.duplicate_per_mille = 0;
        for id in self.members.keys().copied().collect::<Vec<_>>() {
            self.restart(id);
        }
        let marker = b"after-heal".to_vec();
        let mut proposed: Option<(NodeId, Proposed)> = None;
        for _round in 0..400 {
            self.tick_all_and_stabilize(1);
            self.check_safety()?;
            let Some(leader) = self.leader() else {
                continue;
            };
            let still_valid = proposed.is_some_and(|(l, p)| {
                l == leader
                    && matches!(p, Proposed::Appended { term, .. }
                        if Some(term) == self.members.get(&l).and_then(|m| m.node.as_ref()).map(Node::term))
            });
            if !still_valid {
                let node = self.node_mut(leader.0);
                if let Ok(p) = node.propose(marker.clone()) {
                    proposed = Some((leader, p));
                }
                continue;
            }
            let conf = self.node(leader.0).conf_state().clone();
            let everyone_applied = self
                .members
                .iter()
                .filter(|(id, _)| conf.contains(**id))
                .all(|(_, m)| {
                    m.applied
                        .iter()
                        .any(|e| e.payload == EntryPayload::Normal(marker.clone()))
                });
            if everyone_applied {
                return Ok(());
            }
        }
        Err(format!(
            "no progress after healing: leader {:?}, roles {:?}",
            self.leader(),
            self.members
                .values()
                .filter_map(|m| m.node.as_ref())
                .map(|n| (n.id().0, n.role(), n.term().0, n.commit_index().0))
                .collect::<Vec<_>>()
        ))
    }
}

fn check_log_matching(a: &Node<MemStorage>, b: &Node<MemStorage>) -> Result<(), String> {
    let lo = a.first_index().max(b.first_index());
    let hi = a.last_index().min(b.last_index());
    if lo > hi {
        return Ok(());
    }
    let (Some(ea), Some(eb)) = (a.entries(lo, hi.next()), b.entries(lo, hi.next())) else {
        return Ok(());
    };
    // The highest index where both have the same term: everything up to it must match.
    let Some(last_same) = (0..ea.len()).rev().find(|i| ea[*i].term == eb[*i].term) else {
        return Ok(());
    };
    for i in 0..=last_same {
        if ea[i] != eb[i] {
            return Err(format!(
                "log matching: nodes {} and {} agree at {} but differ at {}: {} vs {}",
                a.id(),
                b.id(),
                ea[last_same].index,
                ea[i].index,
                describe::entry(&ea[i]),
                describe::entry(&eb[i])
            ));
        }
    }
    Ok(())
}

/// The application's snapshot: its applied entries, each `Entry::encode`d with a length.
fn encode_app_snapshot(applied: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in applied {
        let bytes = e.encode();
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

fn decode_app_snapshot(mut data: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    while data.len() >= 8 {
        let mut len = [0u8; 8];
        len.copy_from_slice(&data[..8]);
        let len = usize::try_from(u64::from_be_bytes(len)).unwrap_or(usize::MAX);
        let Some(bytes) = data.get(8..8 + len) else {
            break;
        };
        if let Ok(e) = Entry::decode(bytes) {
            out.push(e);
        }
        data = &data[8 + len..];
    }
    out
}

/// Whether `m` is of `kind` from `from` to `to` (for `deliver_where`/`drop_where`).
#[must_use]
pub fn is(m: &Message, kind: MessageKind, from: u64, to: u64) -> bool {
    m.kind == kind && m.from == NodeId(from) && m.to == NodeId(to)
}

/// Whether `m` is from or to `id`.
#[must_use]
pub fn involves(m: &Message, id: u64) -> bool {
    m.from == NodeId(id) || m.to == NodeId(id)
}
