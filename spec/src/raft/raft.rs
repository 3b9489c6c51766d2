//! The Raft algorithm proper: role transitions (`become_*`), `step` dispatch by role,
//! replication, commit, ReadIndex, leader transfer and configuration changes. No I/O:
//! everything it wants done is queued in `msgs`, `msgs_after_persist` and `read_states`
//! and handed out by [`super::Node::ready`]. Follows etcd-io/raft `raft.go` closely;
//! section references are to the Raft paper and Ongaro's thesis.

use std::collections::{BTreeMap, BTreeSet};

use super::config::Config;
use super::error::RaftError;
use super::log::RaftLog;
use super::message::{Message, MessageKind};
use super::progress::{Progress, ProgressState};
use super::quorum::{VoteResult, committed_index, has_quorum, vote_result};
use super::read_only::ReadOnly;
use super::rng::SplitMix64;
use super::storage::Storage;
use super::types::{
    ConfChange, ConfChangeKind, ConfState, Entry, EntryPayload, HardState, LogIndex, NodeId,
    Proposed, ReadState, Role, Snapshot, SoftState, Term,
};

/// Bytes an entry payload counts against `Config::max_uncommitted_entries_size` (its data;
/// an empty entry counts nothing).
fn payload_size(payload: &EntryPayload) -> u64 {
    let bytes = match payload {
        EntryPayload::Empty => 0,
        EntryPayload::Normal(data) => data.len(),
        EntryPayload::ConfChange(cc) => cc.context.len(),
    };
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

/// Why a campaign starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum CampaignKind {
    /// Pre-vote phase (thesis §9.6).
    PreElection,
    /// Normal election (Raft §5.2).
    Election,
    /// Election requested by the leader through `TimeoutNow` (thesis §3.10).
    Transfer,
}

/// The whole state of one Raft node. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Raft<S: Storage> {
    pub(crate) id: NodeId,
    pub(crate) term: Term,
    pub(crate) vote: Option<NodeId>,
    pub(crate) role: Role,
    pub(crate) leader: Option<NodeId>,
    pub(crate) log: RaftLog<S>,
    /// Configuration as of the applied index.
    pub(crate) conf: ConfState,
    /// Leader only: progress of every member (voters and learners, including self).
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    /// Candidate/pre-candidate: votes received in this campaign.
    pub(crate) votes: BTreeMap<NodeId, bool>,
    /// Messages that may be sent before persisting the current Ready.
    pub(crate) msgs: Vec<Message>,
    /// Messages that may only be sent after persisting the current Ready.
    pub(crate) msgs_after_persist: Vec<Message>,
    pub(crate) read_states: Vec<ReadState>,
    pub(crate) read_only: ReadOnly,
    /// Leader only: ReadIndex requests (context, requester) received before the leader
    /// committed an entry of its term; served once it does (thesis §6.4, etcd-raft's
    /// `pendingReadIndexMessages`), dropped on any role or term change.
    pub(crate) pending_read_index: Vec<(Vec<u8>, NodeId)>,
    /// Leader only: payload bytes appended in this term and not yet committed (bounded by
    /// `cfg.max_uncommitted_entries_size`; counted only when that is set).
    pub(crate) uncommitted_size: u64,
    pub(crate) lead_transferee: Option<NodeId>,
    /// Index of the latest conf change appended by this leader; a new one may be proposed
    /// only once the applied index reaches it.
    pub(crate) pending_conf_index: LogIndex,
    pub(crate) election_elapsed: u32,
    pub(crate) heartbeat_elapsed: u32,
    pub(crate) randomized_election_timeout: u32,
    pub(crate) rng: SplitMix64,
    pub(crate) cfg: Config,
}

impl<S: Storage> Raft<S> {
    pub(crate) fn new(cfg: Config, storage: S) -> Result<Raft<S>, RaftError> {
        cfg.validate()?;
        let (hard_state, conf_state) = storage.initial_state()?;
        let commit = hard_state.commit.min(storage.last_index());
        if cfg.applied > commit {
            return Err(RaftError::InvalidConfig { field: "applied" });
        }
        let log = RaftLog::new(storage, commit, cfg.applied);
        // The configuration as of `applied`: the snapshot's, plus conf changes up to it.
        let mut conf = conf_state;
        let first = log.storage.first_index();
        if log.applied >= first {
            for entry in log.storage.entries(first, log.applied.next(), None)? {
                if let EntryPayload::ConfChange(cc) = &entry.payload {
                    conf = cc.apply_to(&conf);
                }
            }
        }
        let mut raft = Raft {
            id: cfg.id,
            term: hard_state.term,
            vote: hard_state.vote,
            role: Role::Follower,
            leader: None,
            log,
            conf,
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            msgs: Vec::new(),
            msgs_after_persist: Vec::new(),
            read_states: Vec::new(),
            read_only: ReadOnly::default(),
            pending_read_index: Vec::new(),
            uncommitted_size: 0,
            lead_transferee: None,
            pending_conf_index: LogIndex(0),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_timeout: cfg.election_tick,
            rng: SplitMix64::new(cfg.seed),
            cfg,
        };
        raft.become_follower(hard_state.term, None);
        Ok(raft)
    }

    // ----- observation -------------------------------------------------------------

    pub(crate) fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
        }
    }

    pub(crate) fn soft_state(&self) -> SoftState {
        SoftState {
            leader: self.leader,
            role: self.role,
        }
    }

    /// Whether this node may campaign: it is a voter of its configuration.
    pub(crate) fn promotable(&self) -> bool {
        self.conf.voters.contains(&self.id)
    }

    fn committed_entry_in_current_term(&self) -> bool {
        self.log.term(self.log.committed) == Some(self.term)
    }

    // ----- sending -----------------------------------------------------------------

    /// Queues `m`, filling `from` and `term`. Leader-originated replication messages
    /// depend only on durable state (the leader's term was persisted before it could win)
    /// and go out at once; everything else waits for the Ready to be persisted.
    fn send(&mut self, mut m: Message) {
        m.from = if m.kind == MessageKind::TransferLeader {
            m.from
        } else {
            self.id
        };
        let local = matches!(
            m.kind,
            MessageKind::Prop | MessageKind::ReadIndex | MessageKind::TransferLeader
        );
        let is_vote_kind = matches!(
            m.kind,
            MessageKind::Vote
                | MessageKind::VoteResp
                | MessageKind::PreVote
                | MessageKind::PreVoteResp
        );
        if local {
            m.term = Term(0);
        } else if !is_vote_kind {
            m.term = self.term;
        }
        let immediate = local
            || matches!(
                m.kind,
                MessageKind::App
                    | MessageKind::Heartbeat
                    | MessageKind::Snap
                    | MessageKind::TimeoutNow
                    | MessageKind::ReadIndexResp
            );
        if immediate {
            self.msgs.push(m);
        } else {
            self.msgs_after_persist.push(m);
        }
    }

    /// Sends an append (or snapshot) to `to` if its progress allows. With
    /// `send_if_empty`, sends even without new entries (to carry the commit index or to
    /// trigger a rejection that repairs the follower's position).
    fn send_append(&mut self, to: NodeId, send_if_empty: bool) -> bool {
        let Some(pr) = self.progress.get(&to) else {
            return false;
        };
        if pr.is_paused() {
            return false;
        }
        let next = pr.next;
        let prev_index = next.prev();
        let prev_term = self.log.term(prev_index);
        let entries = self.log.slice(
            next,
            self.log.last_index().next(),
            Some(self.cfg.max_size_per_msg),
        );
        let (Some(prev_term), Ok(entries)) = (prev_term, entries) else {
            return self.send_snapshot(to);
        };
        if entries.is_empty() && !send_if_empty {
            return false;
        }
        let last = entries.last().map(|e| e.index);
        let mut m = Message::new(MessageKind::App, self.id, to, self.term);
        m.index = prev_index;
        m.log_term = prev_term;
        m.entries = entries;
        m.commit = self.log.committed;
        if let Some(pr) = self.progress.get_mut(&to) {
            match pr.state {
                ProgressState::Replicate => {
                    if let Some(last) = last {
                        pr.next = last.next();
                        pr.inflights.add(last);
                    }
                }
                ProgressState::Probe => pr.probe_sent = true,
                ProgressState::Snapshot => {}
            }
        }
        self.send(m);
        true
    }

    fn send_snapshot(&mut self, to: NodeId) -> bool {
        let recently_active = self.progress.get(&to).is_some_and(|p| p.recent_active);
        if !recently_active {
            return false;
        }
        let Some(snapshot) = self.log.snapshot() else {
            return false;
        };
        if snapshot.metadata.index.0 == 0 {
            return false; // nothing to send: storage has not been compacted
        }
        if let Some(pr) = self.progress.get_mut(&to) {
            pr.become_snapshot(snapshot.metadata.index);
        }
        let mut m = Message::new(MessageKind::Snap, self.id, to, self.term);
        m.snapshot = Some(snapshot);
        self.send(m);
        true
    }

    fn send_heartbeat(&mut self, to: NodeId, ctx: Vec<u8>) {
        let matched = self
            .progress
            .get(&to)
            .map(|p| p.matched)
            .unwrap_or_default();
        let mut m = Message::new(MessageKind::Heartbeat, self.id, to, self.term);
        m.commit = matched.min(self.log.committed);
        m.context = ctx;
        self.send(m);
    }

    fn peers(&self) -> Vec<NodeId> {
        self.progress
            .keys()
            .copied()
            .filter(|id| *id != self.id)
            .collect()
    }

    pub(crate) fn bcast_append(&mut self) {
        for id in self.peers() {
            self.send_append(id, true);
        }
    }

    fn bcast_heartbeat(&mut self) {
        let ctx = self.read_only.last_pending().cloned().unwrap_or_default();
        self.bcast_heartbeat_with_ctx(ctx);
    }

    fn bcast_heartbeat_with_ctx(&mut self, ctx: Vec<u8>) {
        for id in self.peers() {
            self.send_heartbeat(id, ctx.clone());
        }
    }

    // ----- role changes ------------------------------------------------------------

    fn reset(&mut self, term: Term) {
        if self.term != term {
            self.term = term;
            self.vote = None;
        }
        self.leader = None;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_randomized_election_timeout();
        self.lead_transferee = None;
        self.votes.clear();
        self.read_only = ReadOnly::default();
        self.pending_read_index.clear();
        self.uncommitted_size = 0;
        self.pending_conf_index = LogIndex(0);
        self.rebuild_progress();
    }

    fn rebuild_progress(&mut self) {
        let next = self.log.last_index().next();
        let cap = self.cfg.max_inflight_msgs;
        let mut progress = BTreeMap::new();
        for id in &self.conf.voters {
            progress.insert(*id, Progress::new(next, cap, false));
        }
        for id in &self.conf.learners {
            progress.insert(*id, Progress::new(next, cap, true));
        }
        if let Some(me) = progress.get_mut(&self.id) {
            me.matched = self.log.persisted_index().min(self.log.last_index());
            me.next = me.next.max(me.matched.next());
            me.recent_active = true;
        }
        self.progress = progress;
    }

    fn reset_randomized_election_timeout(&mut self) {
        let base = self.cfg.election_tick;
        let jitter = self.rng.below(u64::from(base));
        self.randomized_election_timeout = base + u32::try_from(jitter).unwrap_or(0);
    }

    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        self.reset(term);
        self.leader = leader;
        self.role = Role::Follower;
    }

    fn become_pre_candidate(&mut self) {
        assert_ne!(
            self.role,
            Role::Leader,
            "leader cannot become pre-candidate"
        );
        // Pre-vote changes neither term nor vote (thesis §9.6).
        self.votes.clear();
        self.leader = None;
        self.role = Role::PreCandidate;
    }

    fn become_candidate(&mut self) {
        assert_ne!(self.role, Role::Leader, "leader cannot become candidate");
        self.reset(self.term.next());
        self.vote = Some(self.id);
        self.role = Role::Candidate;
    }

    fn become_leader(&mut self) {
        assert_ne!(self.role, Role::Follower, "follower cannot become leader");
        self.reset(self.term);
        self.leader = Some(self.id);
        self.role = Role::Leader;
        if let Some(me) = self.progress.get_mut(&self.id) {
            me.become_replicate();
        }
        // Raft §8: commit an entry of the new term so earlier entries commit and
        // ReadIndex becomes possible.
        self.append_entries(vec![EntryPayload::Empty]);
        // Conservatively treat every entry up to and including that empty entry as a
        // pending conf change: no new change until an entry of this term is applied
        // (the fix for single-server changes across leader changes, Ongaro 2015).
        self.pending_conf_index = self.log.last_index();
    }

    /// Whether committed-but-unapplied entries include a conf change (a node must not
    /// campaign with a configuration that is about to change).
    fn has_unapplied_conf_change(&self) -> bool {
        if self.log.committed <= self.log.applied {
            return false;
        }
        self.log
            .slice(self.log.applied.next(), self.log.committed.next(), None)
            .map(|es| {
                es.iter()
                    .any(|e| matches!(e.payload, EntryPayload::ConfChange(_)))
            })
            .unwrap_or(true)
    }

    /// Starts an election (or pre-election) if this node may.
    pub(crate) fn hup(&mut self, transfer: bool) {
        if self.role == Role::Leader || !self.promotable() || self.has_unapplied_conf_change() {
            return;
        }
        if transfer {
            self.campaign(CampaignKind::Transfer);
        } else if self.cfg.pre_vote {
            self.campaign(CampaignKind::PreElection);
        } else {
            self.campaign(CampaignKind::Election);
        }
    }

    fn campaign(&mut self, kind: CampaignKind) {
        let (vote_term, msg_kind) = if kind == CampaignKind::PreElection {
            self.become_pre_candidate();
            (self.term.next(), MessageKind::PreVote)
        } else {
            self.become_candidate();
            (self.term, MessageKind::Vote)
        };
        self.votes.insert(self.id, true);
        if vote_result(&self.conf.voters, &self.votes) == VoteResult::Won {
            // Single-voter cluster.
            if kind == CampaignKind::PreElection {
                self.campaign(CampaignKind::Election);
            } else {
                self.become_leader();
            }
            return;
        }
        let voters: Vec<NodeId> = self.conf.voters.iter().copied().collect();
        for id in voters {
            if id == self.id {
                continue;
            }
            let mut m = Message::new(msg_kind, self.id, id, vote_term);
            m.index = self.log.last_index();
            m.log_term = self.log.last_term();
            if kind == CampaignKind::Transfer {
                m.context = Message::CONTEXT_TRANSFER.to_vec();
            }
            self.send(m);
        }
    }

    // ----- local inputs ------------------------------------------------------------

    pub(crate) fn tick(&mut self) {
        if self.role == Role::Leader {
            self.tick_heartbeat();
        } else {
            self.tick_election();
        }
    }

    fn tick_election(&mut self) {
        self.election_elapsed = self.election_elapsed.saturating_add(1);
        if self.promotable() && self.election_elapsed >= self.randomized_election_timeout {
            self.election_elapsed = 0;
            self.hup(false);
        }
    }

    fn tick_heartbeat(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.cfg.election_tick {
            self.election_elapsed = 0;
            if self.cfg.check_quorum && !self.check_quorum_active() {
                // Check-quorum (thesis §6.2): cannot reach a quorum, step down.
                self.become_follower(self.term, None);
                return;
            }
            self.lead_transferee = None; // a transfer that did not finish in time aborts
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_tick {
            self.heartbeat_elapsed = 0;
            self.bcast_heartbeat();
        }
    }

    /// Whether a quorum of voters was active since the last check; resets the marks.
    fn check_quorum_active(&mut self) -> bool {
        let mut active = BTreeSet::new();
        for (id, pr) in &mut self.progress {
            if *id == self.id || pr.recent_active {
                active.insert(*id);
            }
            if *id != self.id {
                pr.recent_active = false;
            }
        }
        has_quorum(&self.conf.voters, &active)
    }

    fn append_entries(&mut self, payloads: Vec<EntryPayload>) -> LogIndex {
        let mut index = self.log.last_index();
        let mut entries = Vec::with_capacity(payloads.len());
        for payload in payloads {
            index = index.next();
            if matches!(payload, EntryPayload::ConfChange(_)) {
                self.pending_conf_index = index;
            }
            entries.push(Entry {
                term: self.term,
                index,
                payload,
            });
        }
        self.log.append(&entries);
        // The leader's own match advances only when the entries are persisted (advance).
        index
    }

    /// A proposal arriving at the leader (local or forwarded). Conf changes are refused
    /// while another is pending; a forwarded one is replaced by an empty entry (etcd).
    fn leader_propose(&mut self, mut payloads: Vec<EntryPayload>) -> Result<Proposed, RaftError> {
        if !self.progress.contains_key(&self.id) || self.lead_transferee.is_some() {
            return Err(RaftError::ProposalDropped);
        }
        let size: u64 = payloads.iter().map(payload_size).sum();
        let limit = self.cfg.max_uncommitted_entries_size;
        if limit > 0
            && self.uncommitted_size > 0
            && size > 0
            && self.uncommitted_size + size > limit
        {
            return Err(RaftError::ProposalDropped);
        }
        if limit > 0 {
            // Counted only under a limit: with none, commits need not read back what
            // they release.
            self.uncommitted_size = self.uncommitted_size.saturating_add(size);
        }
        for payload in &mut payloads {
            if let EntryPayload::ConfChange(cc) = payload {
                let refused =
                    self.pending_conf_index > self.log.applied || !self.conf_change_is_valid(cc);
                if refused {
                    *payload = EntryPayload::Empty;
                }
            }
        }
        let index = self.append_entries(payloads);
        self.bcast_append();
        Ok(Proposed::Appended {
            term: self.term,
            index,
        })
    }

    fn conf_change_is_valid(&self, cc: &ConfChange) -> bool {
        let next = cc.apply_to(&self.conf);
        !next.voters.is_empty()
    }

    pub(crate) fn propose(&mut self, payload: EntryPayload) -> Result<Proposed, RaftError> {
        match self.role {
            Role::Leader => {
                if let EntryPayload::ConfChange(cc) = &payload {
                    if self.pending_conf_index > self.log.applied {
                        return Err(RaftError::ConfChangePending);
                    }
                    if !self.conf_change_is_valid(cc) {
                        return Err(RaftError::InvalidConfChange);
                    }
                }
                self.leader_propose(vec![payload])
            }
            Role::Follower => {
                let Some(leader) = self.leader else {
                    return Err(RaftError::ProposalDropped);
                };
                if self.cfg.disable_proposal_forwarding {
                    return Err(RaftError::ProposalDropped);
                }
                let mut m = Message::new(MessageKind::Prop, self.id, leader, Term(0));
                m.entries = vec![Entry {
                    term: Term(0),
                    index: LogIndex(0),
                    payload,
                }];
                self.send(m);
                Ok(Proposed::Forwarded { to: leader })
            }
            Role::Candidate | Role::PreCandidate => Err(RaftError::ProposalDropped),
        }
    }

    pub(crate) fn read_index(&mut self, ctx: Vec<u8>) -> Result<(), RaftError> {
        match self.role {
            Role::Leader => self.leader_read_index(ctx, self.id),
            _ => {
                let Some(leader) = self.leader else {
                    return Err(RaftError::NotLeader { hint: None });
                };
                let mut m = Message::new(MessageKind::ReadIndex, self.id, leader, Term(0));
                m.context = ctx;
                self.send(m);
                Ok(())
            }
        }
    }

    fn leader_read_index(&mut self, ctx: Vec<u8>, from: NodeId) -> Result<(), RaftError> {
        if !self.committed_entry_in_current_term() {
            // Its commit index may still lag entries earlier leaders committed: answer
            // once the empty entry of this term commits.
            self.pending_read_index.push((ctx, from));
            return Ok(());
        }
        let index = self.log.committed;
        if self.conf.voters.len() <= 1 && self.conf.voters.contains(&self.id) {
            self.respond_read(from, index, ctx);
            return Ok(());
        }
        if self.read_only.add_request(ctx.clone(), from, index) {
            self.bcast_heartbeat_with_ctx(ctx);
        }
        Ok(())
    }

    fn respond_read(&mut self, from: NodeId, index: LogIndex, ctx: Vec<u8>) {
        if from == self.id {
            self.read_states.push(ReadState {
                index,
                request_ctx: ctx,
            });
        } else {
            let mut m = Message::new(MessageKind::ReadIndexResp, self.id, from, self.term);
            m.index = index;
            m.context = ctx;
            self.send(m);
        }
    }

    pub(crate) fn transfer_leader(&mut self, to: NodeId) {
        match self.role {
            Role::Leader => self.leader_transfer(to),
            _ => {
                if let Some(leader) = self.leader {
                    let m = Message::new(MessageKind::TransferLeader, to, leader, Term(0));
                    self.send(m);
                }
            }
        }
    }

    fn leader_transfer(&mut self, to: NodeId) {
        if to == self.id || !self.conf.voters.contains(&to) {
            return;
        }
        if self.lead_transferee == Some(to) {
            return;
        }
        self.lead_transferee = Some(to);
        self.election_elapsed = 0; // the transfer must finish within an election timeout
        let caught_up = self
            .progress
            .get(&to)
            .is_some_and(|p| p.matched == self.log.last_index());
        if caught_up {
            self.send_timeout_now(to);
        } else {
            self.send_append(to, true);
        }
    }

    fn send_timeout_now(&mut self, to: NodeId) {
        let m = Message::new(MessageKind::TimeoutNow, self.id, to, self.term);
        self.send(m);
    }

    // ----- step --------------------------------------------------------------------

    /// Validation at the trust boundary: a message that could only come from a buggy or
    /// corrupted peer is dropped instead of breaking local invariants.
    fn is_well_formed(&self, m: &Message) -> bool {
        if m.to != self.id || m.from.0 == 0 {
            return false;
        }
        match m.kind {
            MessageKind::App => {
                let mut prev_term = m.log_term;
                for (i, e) in m.entries.iter().enumerate() {
                    if e.index.0 != m.index.0.saturating_add(1 + i as u64)
                        || e.term < prev_term
                        || e.term > m.term
                    {
                        return false;
                    }
                    prev_term = e.term;
                }
                m.log_term <= m.term
            }
            MessageKind::AppResp if !m.reject => m.index <= self.log.last_index(),
            MessageKind::Snap => m.snapshot.as_ref().is_some_and(|s| {
                s.metadata.index.0 > 0
                    && s.metadata.term <= m.term
                    && s.metadata
                        .conf_state
                        .voters
                        .is_disjoint(&s.metadata.conf_state.learners)
            }),
            _ => true,
        }
    }

    pub(crate) fn step(&mut self, m: Message) {
        if !self.is_well_formed(&m) {
            return; // misdelivered or malformed: dropped
        }
        let local = matches!(
            m.kind,
            MessageKind::Prop | MessageKind::ReadIndex | MessageKind::TransferLeader
        );
        if !local && m.term > self.term {
            if matches!(m.kind, MessageKind::Vote | MessageKind::PreVote) {
                let force = m.context == Message::CONTEXT_TRANSFER;
                let in_lease = self.cfg.check_quorum
                    && self.leader.is_some()
                    && self.election_elapsed < self.cfg.election_tick;
                if !force && in_lease {
                    // Thesis §4.2.3: a node that heard from a leader within the minimum
                    // election timeout ignores disruptive vote requests.
                    return;
                }
            }
            match m.kind {
                MessageKind::PreVote => {}
                MessageKind::PreVoteResp if !m.reject => {}
                MessageKind::App | MessageKind::Heartbeat | MessageKind::Snap => {
                    self.become_follower(m.term, Some(m.from));
                }
                _ => self.become_follower(m.term, None),
            }
        } else if !local && m.term < self.term {
            self.step_stale(m);
            return;
        }
        match m.kind {
            MessageKind::Vote | MessageKind::PreVote => self.handle_vote_request(&m),
            _ => match self.role {
                Role::Leader => self.step_leader(m),
                Role::Candidate | Role::PreCandidate => self.step_candidate(m),
                Role::Follower => self.step_follower(m),
            },
        }
    }

    /// A message from an older term.
    fn step_stale(&mut self, m: Message) {
        if self.cfg.bugs.accept_append_without_term_check
            && m.kind == MessageKind::App
            && self.role == Role::Follower
        {
            // Injected bug: skip the term check of AppendEntries. (Entries that would
            // overwrite what this node knows committed are still refused, so the bug shows
            // up as a protocol violation rather than a local assertion.)
            if !self.log.conflicts_with_committed(&m.entries) {
                self.handle_append(&m);
            }
            return;
        }
        let quiet = self.cfg.check_quorum || self.cfg.pre_vote;
        if quiet && matches!(m.kind, MessageKind::App | MessageKind::Heartbeat) {
            // A stale leader (for example after a partition) learns the new term from
            // this answer and steps down; otherwise it would never hear a higher term
            // because we ignore its votes (etcd behaviour).
            let resp = Message::new(MessageKind::AppResp, self.id, m.from, self.term);
            self.send(resp);
        } else if m.kind == MessageKind::PreVote {
            let mut resp = Message::new(MessageKind::PreVoteResp, self.id, m.from, self.term);
            resp.reject = true;
            self.send(resp);
        }
    }

    fn handle_vote_request(&mut self, m: &Message) {
        let pre = m.kind == MessageKind::PreVote;
        let can_vote = self.vote == Some(m.from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre && m.term > self.term)
            || (self.cfg.bugs.grant_two_votes_in_one_term && !pre && self.role == Role::Follower);
        let resp_kind = if pre {
            MessageKind::PreVoteResp
        } else {
            MessageKind::VoteResp
        };
        if can_vote && self.log.is_up_to_date(m.index, m.log_term) {
            // Respond in the requested term: a pre-vote grant must be recognisable by a
            // pre-candidate whose own term is still lower.
            let resp = Message::new(resp_kind, self.id, m.from, m.term);
            self.send(resp);
            if !pre {
                self.election_elapsed = 0;
                self.vote = Some(m.from);
            }
        } else {
            let mut resp = Message::new(resp_kind, self.id, m.from, self.term);
            resp.reject = true;
            self.send(resp);
        }
    }

    fn step_leader(&mut self, m: Message) {
        match m.kind {
            MessageKind::Prop => {
                let payloads = m.entries.into_iter().map(|e| e.payload).collect();
                // A forwarded proposal that is dropped is simply lost; the client retries.
                let _dropped = self.leader_propose(payloads);
            }
            MessageKind::ReadIndex => {
                let _not_ready = self.leader_read_index(m.context, m.from);
            }
            MessageKind::TransferLeader
                if self.progress.get(&m.from).is_some_and(|p| !p.is_learner) =>
            {
                self.leader_transfer(m.from);
            }
            MessageKind::AppResp => self.handle_append_response(&m),
            MessageKind::HeartbeatResp => self.handle_heartbeat_response(&m),
            _ => {}
        }
    }

    fn handle_append_response(&mut self, m: &Message) {
        let last_index = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&m.from) else {
            return;
        };
        pr.recent_active = true;
        if m.reject {
            // Fast back-off (etcd): jump to the follower's hint, or to the last index in
            // our log whose term is <= the follower's term at the hint.
            let mut hint = m.reject_hint;
            if m.log_term.0 > 0 {
                hint = self.log.find_conflict_by_term(m.reject_hint, m.log_term).0;
            }
            let Some(pr) = self.progress.get_mut(&m.from) else {
                return;
            };
            if pr.maybe_decr_to(m.index, hint) {
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
                self.send_append(m.from, true);
            }
            return;
        }
        let old_paused = pr.is_paused();
        let updated = pr.maybe_update(m.index);
        // A duplicate acknowledgement of the current match also proves the position of a
        // probing follower (etcd does the same).
        let confirms_probe = pr.matched == m.index && pr.state == ProgressState::Probe;
        if !updated && !confirms_probe {
            return;
        }
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Snapshot if pr.matched >= pr.pending_snapshot => {
                // The snapshot is installed: resume normal replication after it.
                pr.become_probe();
                pr.become_replicate();
            }
            ProgressState::Replicate => pr.inflights.free_to(m.index),
            ProgressState::Snapshot => {}
        }
        let caught_up = pr.matched == last_index;
        if self.maybe_commit() {
            self.bcast_append();
        } else if old_paused {
            // It was paused, so it may have missed the commit index: tell it now.
            self.send_append(m.from, true);
        }
        // Keep the pipeline going (bounded by the inflight window).
        while self.send_append(m.from, false) {}
        if self.lead_transferee == Some(m.from) && caught_up {
            self.send_timeout_now(m.from);
        }
    }

    fn handle_heartbeat_response(&mut self, m: &Message) {
        let last_index = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&m.from) else {
            return;
        };
        pr.recent_active = true;
        pr.probe_sent = false;
        if pr.state == ProgressState::Replicate && pr.inflights.is_full() {
            pr.inflights.free_first_one();
        }
        if pr.state == ProgressState::Snapshot {
            // The snapshot may have been lost; probing again re-sends it if still needed.
            pr.become_probe();
        }
        if pr.matched < last_index {
            self.send_append(m.from, true);
        }
        if m.context.is_empty() {
            return;
        }
        let voters = self.conf.voters.clone();
        let me = self.id;
        let Some(acks) = self.read_only.recv_ack(m.from, &m.context) else {
            return;
        };
        let mut acks = acks.clone();
        acks.insert(me);
        if !has_quorum(&voters, &acks) {
            return;
        }
        for (ctx, status) in self.read_only.advance(&m.context) {
            self.respond_read(status.from, status.index, ctx);
        }
    }

    /// Advances the commit index to what a quorum of voters stores, but only to an entry
    /// of the current term (Raft §5.4.2; the injected bug drops the term condition).
    pub(crate) fn maybe_commit(&mut self) -> bool {
        let progress = &self.progress;
        let index = committed_index(&self.conf.voters, |id| {
            progress.get(&id).map(|p| p.matched).unwrap_or_default()
        });
        let before = self.log.committed;
        let committed = if self.cfg.bugs.commit_previous_term_by_counting {
            let advance = index > self.log.committed && index <= self.log.last_index();
            if advance {
                self.log.commit_to(index);
            }
            advance
        } else {
            self.log.maybe_commit(index, self.term)
        };
        if committed && self.uncommitted_size > 0 {
            let released: u64 = self
                .log
                .slice(before.next(), self.log.committed.next(), None)
                .map(|entries| entries.iter().map(|e| payload_size(&e.payload)).sum())
                .unwrap_or(self.uncommitted_size);
            self.uncommitted_size = self.uncommitted_size.saturating_sub(released);
        }
        if committed {
            self.release_pending_read_index();
        }
        committed
    }

    /// Serves the ReadIndex requests queued before this leader's first commit in its
    /// term, once that commit happened.
    fn release_pending_read_index(&mut self) {
        if self.pending_read_index.is_empty() || !self.committed_entry_in_current_term() {
            return;
        }
        for (ctx, from) in std::mem::take(&mut self.pending_read_index) {
            let _served = self.leader_read_index(ctx, from);
        }
    }

    fn step_candidate(&mut self, m: Message) {
        let my_resp = if self.role == Role::PreCandidate {
            MessageKind::PreVoteResp
        } else {
            MessageKind::VoteResp
        };
        match m.kind {
            MessageKind::App => {
                self.become_follower(m.term, Some(m.from));
                self.handle_append(&m);
            }
            MessageKind::Heartbeat => {
                self.become_follower(m.term, Some(m.from));
                self.handle_heartbeat(&m);
            }
            MessageKind::Snap => {
                self.become_follower(m.term, Some(m.from));
                self.handle_snapshot(m);
            }
            kind if kind == my_resp => {
                self.votes.entry(m.from).or_insert(!m.reject);
                match vote_result(&self.conf.voters, &self.votes) {
                    VoteResult::Won => {
                        if self.role == Role::PreCandidate {
                            self.campaign(CampaignKind::Election);
                        } else {
                            self.become_leader();
                            self.bcast_append();
                        }
                    }
                    VoteResult::Lost => self.become_follower(self.term, None),
                    VoteResult::Pending => {}
                }
            }
            _ => {}
        }
    }

    fn step_follower(&mut self, m: Message) {
        match m.kind {
            MessageKind::Prop => {
                if let Some(leader) = self.leader
                    && !self.cfg.disable_proposal_forwarding
                {
                    let mut fwd = m;
                    fwd.to = leader;
                    self.send(fwd);
                }
            }
            MessageKind::App => {
                self.election_elapsed = 0;
                self.leader = Some(m.from);
                self.handle_append(&m);
            }
            MessageKind::Heartbeat => {
                self.election_elapsed = 0;
                self.leader = Some(m.from);
                self.handle_heartbeat(&m);
            }
            MessageKind::Snap => {
                self.election_elapsed = 0;
                self.leader = Some(m.from);
                self.handle_snapshot(m);
            }
            MessageKind::TransferLeader | MessageKind::ReadIndex => {
                if let Some(leader) = self.leader {
                    let mut fwd = m;
                    fwd.to = leader;
                    self.send(fwd);
                }
            }
            MessageKind::TimeoutNow => self.hup(true),
            MessageKind::ReadIndexResp => self.read_states.push(ReadState {
                index: m.index,
                request_ctx: m.context,
            }),
            _ => {}
        }
    }

    fn handle_append(&mut self, m: &Message) {
        let mut resp = Message::new(MessageKind::AppResp, self.id, m.from, self.term);
        if m.index < self.log.committed {
            resp.index = self.log.committed;
        } else if let Some(last_new) = self
            .log
            .maybe_append(m.index, m.log_term, m.commit, &m.entries)
        {
            resp.index = last_new;
        } else {
            let (hint_index, hint_term) = self
                .log
                .find_conflict_by_term(m.index.min(self.log.last_index()), m.log_term);
            resp.reject = true;
            resp.index = m.index;
            resp.reject_hint = hint_index;
            resp.log_term = hint_term;
        }
        self.send(resp);
    }

    fn handle_heartbeat(&mut self, m: &Message) {
        self.log.commit_to(m.commit.min(self.log.last_index()));
        let mut resp = Message::new(MessageKind::HeartbeatResp, self.id, m.from, self.term);
        resp.context = m.context.clone();
        self.send(resp);
    }

    fn handle_snapshot(&mut self, m: Message) {
        let Some(snapshot) = m.snapshot else {
            return; // malformed: dropped
        };
        let mut resp = Message::new(MessageKind::AppResp, self.id, m.from, self.term);
        if self.restore(snapshot) {
            resp.index = self.log.last_index();
        } else {
            resp.index = self.log.committed;
        }
        self.send(resp);
    }

    /// Installs a snapshot unless the log already covers it (Raft §7).
    fn restore(&mut self, snapshot: Snapshot) -> bool {
        let meta = &snapshot.metadata;
        if meta.index <= self.log.committed {
            return false;
        }
        if self.log.match_term(meta.index, meta.term) {
            // Our log already contains it: just fast-forward the commit index.
            self.log.commit_to(meta.index);
            return false;
        }
        self.conf = meta.conf_state.clone();
        self.log.restore(snapshot);
        self.rebuild_progress();
        true
    }

    // ----- configuration -----------------------------------------------------------

    /// Applies a committed conf change (called when the application acknowledged applying
    /// its entry).
    pub(crate) fn apply_conf_change(&mut self, cc: &ConfChange) {
        let next = cc.apply_to(&self.conf);
        if cc.kind == ConfChangeKind::RemoveNode && next.voters.is_empty() {
            return; // never leave a configuration without voters (the leader refuses it too)
        }
        self.conf = next;
        let cap = self.cfg.max_inflight_msgs;
        let next_index = self.log.last_index().next();
        match cc.kind {
            ConfChangeKind::AddNode | ConfChangeKind::AddLearner => {
                let learner = self.conf.learners.contains(&cc.node_id);
                let pr = self
                    .progress
                    .entry(cc.node_id)
                    .or_insert_with(|| Progress::new(next_index, cap, learner));
                pr.is_learner = learner;
                // A newly added member counts as active so check-quorum does not fire
                // before it had a chance to answer.
                pr.recent_active = true;
            }
            ConfChangeKind::RemoveNode => {
                self.progress.remove(&cc.node_id);
            }
        }
        if self.role != Role::Leader {
            return;
        }
        if !self.conf.voters.contains(&self.id) {
            // A removed (or demoted) leader steps down.
            self.become_follower(self.term, None);
            return;
        }
        if self
            .lead_transferee
            .is_some_and(|t| !self.conf.voters.contains(&t))
        {
            self.lead_transferee = None;
        }
        if self.maybe_commit() {
            self.bcast_append();
        }
    }

    // ----- persistence acknowledgements --------------------------------------------

    /// Entries up to `index` are durable on this node: a leader counts itself now.
    pub(crate) fn on_persisted(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let persisted = self.log.persisted_index();
        let updated = self
            .progress
            .get_mut(&self.id)
            .is_some_and(|me| me.maybe_update(persisted));
        if updated && self.maybe_commit() {
            self.bcast_append();
        }
    }

    // ----- invariants --------------------------------------------------------------

    pub(crate) fn check_invariants(&self) {
        self.log.check_invariants();
        self.read_only.check_invariants();
        assert!(
            self.conf.voters.is_disjoint(&self.conf.learners),
            "voters and learners are disjoint"
        );
        match self.role {
            Role::Leader => {
                assert_eq!(self.leader, Some(self.id), "leader knows itself");
                assert_eq!(self.vote, Some(self.id), "leader voted for itself");
                for pr in self.progress.values() {
                    pr.check_invariants();
                }
            }
            Role::Candidate => {
                assert_eq!(self.vote, Some(self.id), "candidate voted for itself");
                assert_eq!(self.leader, None, "candidate has no leader");
            }
            Role::PreCandidate | Role::Follower => {}
        }
        assert!(
            self.role == Role::Leader || self.pending_read_index.is_empty(),
            "only a leader queues ReadIndex requests"
        );
        if let Some(leader) = self.leader
            && leader != self.id
        {
            assert_ne!(self.role, Role::Leader, "a leader follows nobody");
        }
        assert!(
            self.randomized_election_timeout >= self.cfg.election_tick
                && self.randomized_election_timeout < 2 * self.cfg.election_tick,
            "timeout in [election_tick, 2*election_tick)"
        );
    }
}
