//! The node loop: the one task that owns the `spec` Raft [`Node`] and carries out its
//! executor contract (documented in `oxetcd_spec::raft::node`), for this member.
//!
//! Inputs arrive as [`Input`]s on a bounded channel (client proposals, linearizable read
//! requests; the reads taken in one batch share one ReadIndex request) and as ticks of
//! a tokio interval (`--heartbeat-interval`). After each batch of inputs the loop drains
//! every Ready: persist (snapshot, entries, hard state) to
//! fjall and sync once if the Ready asks (group commit: all proposals taken in the same
//! batch share the fsync), send messages through the peer transport ([`crate::peer`]:
//! `messages` before persisting, `messages_after_persist` only after the sync), apply
//! committed entries through `AppState::apply`, publish their watch events, complete the
//! waiting requests by request id, answer ReadIndex requests once applied, then
//! `advance`. Messages from peers arrive as [`Input::Step`].
//!
//! On a follower, proposals and ReadIndex requests are forwarded to the leader by
//! `spec` (`Proposed::Forwarded`, the `ReadIndex` message); the loop only waits for the
//! entry to apply locally or the read state to come back. Requests still unanswered
//! after [`REQUEST_TIMEOUT_TICKS`] election timeouts fail with etcd's "request timed
//! out" (a forwarded proposal the leader dropped is never answered otherwise).
//!
//! The loop runs on a thread of its own (see [`start`]): its fsyncs block only that
//! thread, never the runtime serving the API, and inputs keep queueing (into the next
//! group commit) while one is in flight.
//!
//! Applying during the fsync: the committed entries of a Ready that this member had
//! already made durable before it (on a leader, all of them: they were appended and
//! synced by an earlier Ready) are applied and answered while a second thread (the
//! syncer) runs this Ready's fsync, as etcd applies in parallel with its WAL sync; the
//! applied state's writes wait in memory meanwhile (the fsync holds fjall's journal)
//! and go to fjall as one batch when it is done ([`FjallBackend::defer`]). Committed
//! entries not yet durable here (a follower's) are applied after the fsync.
//!
//! Membership: a member add/remove/update/promote arrives as [`Input::ProposeConfChange`]
//! with its check (etcd's strict reconfiguration checks and `ValidateConfigurationChange`),
//! run here against the applied membership just before the Raft conf change is proposed
//! (Raft takes one conf change at a time, so nothing unapplied can invalidate it). The
//! change's `Command::Membership` rides in the conf change's context and is applied through
//! `AppState::apply` at that entry's index; Raft takes the new configuration on `advance`.
//! A proposal made while no leader is known waits (as etcd's Raft node does) until a
//! leader appears or its client gives up.
//!
//! Leases: the leader checks its lease clocks on every tick and proposes a revoke for
//! each expired lease (etcd's lessor does the same through its revoke channel). Log
//! compaction: every `--snapshot-count` applied entries the loop syncs the applied
//! state and takes a point-in-time view of it; a blocking task writes the view to a
//! snapshot file (fsynced) while the loop goes on; only once the file is durable does
//! the loop record the Raft snapshot (its data names the file) and compact the log up
//! to the view's index, never further.
//!
//! Snapshot install: a member behind the leader's compacted log is sent the leader's
//! snapshot file (see [`crate::peer`]). The loop checks the file, persists the Raft
//! snapshot (log dropped, commit index moved, one fsync), then replaces the applied
//! state from the file in one atomic batch ([`crate::snapshot::install`]); a crash in
//! between leaves the old state with a Raft snapshot past it, which start-up installs
//! again. Watchers then resynchronise from the new history ([`AppliedEvents::restored`])
//! and the peer transport follows the snapshot's membership, as it follows every applied
//! membership change.
//!
//! What this is not: consensus, MVCC or lease logic — those are `spec` calls only.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use oxetcd_spec::apply::{AppState, Applied, ApplyError, AuthInfo, Command, Proposal};
use oxetcd_spec::lease::LeaseId;
use oxetcd_spec::membership::{Cluster, MembershipError};
use oxetcd_spec::mvcc::Event;
use oxetcd_spec::raft::{
    ConfChange, Entry, EntryPayload, LogIndex, Node, NodeId, Ready, Role, Snapshot, Storage,
};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::storage::backend::FjallBackend;
use crate::storage::raft_log::FjallRaftStorage;

/// The application state shared with the API (readers take the read lock; the loop
/// takes the write lock to apply).
pub type SharedState = Arc<RwLock<AppState<FjallBackend>>>;

/// Why a request could not be completed; the API maps these to etcd's errors.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoopError {
    /// No leader to take the proposal (etcd: "etcdserver: no leader").
    #[error("etcdserver: no leader")]
    NoLeader,
    /// The node loop has stopped (fatal storage error or shutdown).
    #[error("etcdserver: server stopped")]
    Stopped,
    /// The proposal was lost (leader change) before it committed.
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    /// No answer in time (a forwarded request the leader dropped, a lost quorum).
    #[error("etcdserver: request timed out")]
    Timeout,
    /// A membership change needs the leader's view (etcd's `ErrNotLeader`).
    #[error("etcdserver: not leader")]
    NotLeader,
    /// A membership change would need members this one is not connected to (etcd's
    /// `ErrUnhealthy`).
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
}

/// Why a membership change was refused before it was proposed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// etcd's membership errors (strict reconfiguration and validation).
    Membership(MembershipError),
    /// Not leader, unhealthy cluster.
    Loop(LoopError),
}

/// What a membership check sees in the loop just before its conf change is proposed.
#[derive(Clone, Debug)]
pub struct ConfView<'a> {
    /// The applied membership.
    pub cluster: &'a Cluster,
    /// This member's id.
    pub member_id: u64,
    /// Whether this member is the leader.
    pub is_leader: bool,
    /// On the leader: each member's replication match index (etcd's raft progress).
    pub matched: BTreeMap<u64, u64>,
    /// This member and the peers whose stream has been up for at least etcd's
    /// `HealthInterval` (5 s), as the peer transport reports them.
    pub active: BTreeSet<u64>,
}

/// The check function of a [`ConfCheck`].
type ConfCheckFn = Box<dyn FnOnce(&ConfView<'_>) -> Result<(), Refused> + Send>;

/// A membership check run by the loop (see [`ConfView`]).
pub struct ConfCheck(ConfCheckFn);

impl ConfCheck {
    /// Wraps `check`.
    pub fn new(check: impl FnOnce(&ConfView<'_>) -> Result<(), Refused> + Send + 'static) -> Self {
        ConfCheck(Box::new(check))
    }
}

impl std::fmt::Debug for ConfCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConfCheck")
    }
}

/// One input to the loop.
#[derive(Debug)]
pub enum Input {
    /// Propose `command`; the reply comes when the entry is applied.
    Propose {
        /// The command.
        command: Command,
        /// The sender's identity from its auth token (`None`: no token).
        auth: Option<AuthInfo>,
        /// Where the applied result goes.
        reply: oneshot::Sender<Result<Applied, LoopError>>,
    },
    /// Wait until this member has applied everything committed when the request was
    /// confirmed by a quorum (ReadIndex, Raft thesis §6.4); then a local read is
    /// linearizable.
    ReadIndex {
        /// Completed when the read may proceed.
        reply: oneshot::Sender<Result<(), LoopError>>,
    },
    /// A Raft message from a peer (see [`crate::peer`]).
    Step(oxetcd_spec::raft::Message),
    /// Check, then propose the Raft conf change `change` carrying `command` (a
    /// `Command::Membership`); the reply comes when it is applied.
    ProposeConfChange {
        /// The Raft change (its context is filled in by the loop).
        change: ConfChange,
        /// The membership command applied with it.
        command: Command,
        /// The sender's identity.
        auth: Option<AuthInfo>,
        /// Run just before proposing.
        check: ConfCheck,
        /// Where the applied result goes.
        reply: oneshot::Sender<Result<Applied, LoopError>>,
    },
    /// Hand leadership to `to` (etcd's `TransferLeadership`); see [`NodeHandle::status`]
    /// for the outcome.
    TransferLeader {
        /// The transferee.
        to: u64,
    },
}

/// What the loop publishes for watchers: the events of one applied entry.
#[derive(Clone, Debug)]
pub struct AppliedEvents {
    /// The store revision after the entry.
    pub revision: i64,
    /// The entry's events, in order.
    pub events: Arc<Vec<Event>>,
    /// A snapshot from the leader replaced the whole applied state (no events): every
    /// watcher resynchronises from the new history, as after falling behind (etcd moves
    /// its watchers to the unsynced group on restore).
    pub restored: bool,
}

/// Figures the API reports (Maintenance Status, metrics), updated by the loop.
#[derive(Debug, Default)]
pub struct Status {
    /// Current leader id (0 for none).
    pub leader: AtomicU64,
    /// Current term.
    pub term: AtomicU64,
    /// Last log index.
    pub raft_index: AtomicU64,
    /// Applied index.
    pub applied_index: AtomicU64,
    /// Committed index.
    pub commit_index: AtomicU64,
    /// Proposals committed (applied) since start.
    pub proposals_committed: AtomicU64,
    /// Proposals that failed (dropped, no leader).
    pub proposals_failed: AtomicU64,
    /// Client proposals waiting for their entry to apply.
    pub proposals_pending: AtomicU64,
    /// Number of fsyncs done.
    pub fsyncs: AtomicU64,
    /// Sum of fsync durations, microseconds.
    pub fsync_micros: AtomicU64,
    /// Fsyncs per duration bucket: bucket `i` counts those of at most
    /// [`FSYNC_BUCKET_SECONDS`]`[i]` (not cumulative).
    pub fsync_buckets: [AtomicU64; FSYNC_BUCKETS],
    /// Times this member saw a leader change.
    pub leader_changes: AtomicU64,
    /// Bytes the database occupies on disk, sampled (see `v3::maintenance`).
    pub db_size: AtomicU64,
}

/// Number of fsync duration buckets (etcd's WAL fsync histogram: 1 ms doubling 14 times).
pub const FSYNC_BUCKETS: usize = 14;

/// Upper bound of each fsync duration bucket, seconds.
pub const FSYNC_BUCKET_SECONDS: [f64; FSYNC_BUCKETS] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
    8.192,
];

impl Status {
    /// Records one fsync that took `took`.
    pub fn record_fsync(&self, took: Duration) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.fsync_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let seconds = took.as_secs_f64();
        if let Some(bucket) = FSYNC_BUCKET_SECONDS
            .iter()
            .position(|bound| seconds <= *bound)
        {
            self.fsync_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The handle the API uses to talk to the loop.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    inputs: mpsc::Sender<Input>,
    /// Applied state, for reads.
    pub state: SharedState,
    /// Applied watch events.
    pub events: broadcast::Sender<AppliedEvents>,
    /// Live figures.
    pub status: Arc<Status>,
    /// This member's id.
    pub member_id: u64,
    /// The cluster id.
    pub cluster_id: u64,
    /// Lease and request id generator.
    ids: Arc<IdGenerator>,
    /// Start of this process's monotonic clock.
    epoch: Instant,
    /// The wall clock at `epoch`, ms since the Unix epoch.
    wall_at_epoch_ms: u64,
    /// The peer transport (`None` only in tests that run the loop alone).
    pub transport: Option<crate::peer::Transport>,
}

impl NodeHandle {
    /// Proposes `command` and waits until it is applied.
    ///
    /// # Errors
    /// [`LoopError`] if there is no leader, the loop stopped or the proposal was lost.
    pub async fn propose(&self, command: Command) -> Result<Applied, LoopError> {
        self.propose_as(command, None).await
    }

    /// Proposes `command` on behalf of `auth` (etcd's request header user and auth
    /// revision) and waits until it is applied.
    ///
    /// # Errors
    /// As [`NodeHandle::propose`].
    pub async fn propose_as(
        &self,
        command: Command,
        auth: Option<AuthInfo>,
    ) -> Result<Applied, LoopError> {
        let (reply, wait) = oneshot::channel();
        self.inputs
            .send(Input::Propose {
                command,
                auth,
                reply,
            })
            .await
            .map_err(|_| LoopError::Stopped)?;
        wait.await.map_err(|_| LoopError::Stopped)?
    }

    /// Checks and proposes a membership change (see [`Input::ProposeConfChange`]) and
    /// waits until it is applied.
    ///
    /// # Errors
    /// As [`NodeHandle::propose`]; a refusal by `check` as [`Refused`] inside `Ok(Err)`.
    pub async fn propose_conf_change(
        &self,
        change: ConfChange,
        command: Command,
        auth: Option<AuthInfo>,
        check: ConfCheck,
    ) -> Result<Applied, LoopError> {
        let (reply, wait) = oneshot::channel();
        self.inputs
            .send(Input::ProposeConfChange {
                change,
                command,
                auth,
                check,
                reply,
            })
            .await
            .map_err(|_| LoopError::Stopped)?;
        wait.await.map_err(|_| LoopError::Stopped)?
    }

    /// Asks the loop to hand leadership to `to`.
    ///
    /// # Errors
    /// [`LoopError::Stopped`] if the loop stopped.
    pub async fn transfer_leader(&self, to: u64) -> Result<(), LoopError> {
        self.inputs
            .send(Input::TransferLeader { to })
            .await
            .map_err(|_| LoopError::Stopped)
    }

    /// Waits until a local read is linearizable (ReadIndex).
    ///
    /// # Errors
    /// [`LoopError`] if there is no leader or the loop stopped.
    pub async fn read_index(&self) -> Result<(), LoopError> {
        let (reply, wait) = oneshot::channel();
        self.inputs
            .send(Input::ReadIndex { reply })
            .await
            .map_err(|_| LoopError::Stopped)?;
        wait.await.map_err(|_| LoopError::Stopped)?
    }

    /// Hands a Raft message from a peer to the loop (waits while the loop's input queue
    /// is full: back-pressure on the peer's stream).
    ///
    /// # Errors
    /// [`LoopError::Stopped`] once the loop has stopped.
    pub async fn step(&self, message: oxetcd_spec::raft::Message) -> Result<(), LoopError> {
        self.inputs
            .send(Input::Step(message))
            .await
            .map_err(|_| LoopError::Stopped)
    }

    /// A fresh unique id (for leases granted with ID 0): positive as an `i64`.
    pub fn next_id(&self) -> u64 {
        self.ids.next() & (i64::MAX as u64)
    }

    /// This member's clock for `spec` (lease deadlines, the v2 TTLs an applied entry
    /// renders): the wall clock at start, ms since the Unix epoch, plus the monotonic
    /// time elapsed since, so it never goes back while the process runs and reads as
    /// the absolute times the v2 store keeps (etcd's v2 expirations are wall-clock
    /// times). Lease deadlines are not kept across restarts: a new leader re-arms them.
    pub fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.wall_at_epoch_ms.saturating_add(elapsed)
    }

    /// Whether a leader is known.
    pub fn has_leader(&self) -> bool {
        self.status.leader.load(Ordering::Relaxed) != 0
    }

    /// Whether this member is the leader.
    pub fn is_leader(&self) -> bool {
        self.status.leader.load(Ordering::Relaxed) == self.member_id
    }
}

/// etcd's id scheme (`pkg/idutil`): the member id's low bits, a millisecond timestamp
/// and a counter, so ids are unique across members and restarts.
#[derive(Debug)]
struct IdGenerator {
    next: AtomicU64,
}

impl IdGenerator {
    fn new(member_id: u64) -> IdGenerator {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(0));
        let prefix = (member_id & 0x7fff) << 48;
        IdGenerator {
            next: AtomicU64::new(prefix | ((now_ms & 0xff_ffff_ffff) << 8)),
        }
    }

    fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

/// Settings of the loop.
#[derive(Clone, Debug)]
pub struct LoopConfig {
    /// Tick period (`--heartbeat-interval`).
    pub tick: Duration,
    /// `--snapshot-count`.
    pub snapshot_count: u64,
    /// Campaign at once when this member is the only voter (etcd's
    /// `--initial-election-tick-advance` makes a lone member elect itself immediately).
    pub campaign_at_start: bool,
    /// The auth token provider, told about every applied auth command (simple tokens
    /// are registered and dropped at apply, on every member).
    pub tokens: Arc<crate::token::Tokens>,
    /// Election timeout in ticks (request timeouts are counted in these).
    pub election_ticks: u64,
}

/// Client requests unanswered after this many election timeouts fail with
/// [`LoopError::Timeout`] (etcd: 5 s plus two election timeouts).
pub const REQUEST_TIMEOUT_TICKS: u64 = 6;

/// Most inputs taken into one batch before the Ready is processed (bounds latency).
const INPUT_BATCH_MAX: usize = 1024;
/// Most expired leases revoked per tick (etcd: `leaseRevokeRate` is 1000/s).
const LEASE_REVOKES_PER_TICK: usize = 100;

/// etcd's `HealthInterval`: how long a peer's stream must have been up to count as
/// connected for a membership change.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// Linearizable reads waiting on one ReadIndex request.
type ReadGroup = Vec<oneshot::Sender<Result<(), LoopError>>>;

/// A proposal waiting for a leader: its request id, what to propose and its reply.
type Unled = (
    u64,
    UnledPayload,
    oneshot::Sender<Result<Applied, LoopError>>,
);

/// What a proposal waiting for a leader proposes.
enum UnledPayload {
    /// An encoded [`Proposal`].
    Normal(Vec<u8>),
    /// A checked conf change (its context filled in).
    Conf(ConfChange),
}

/// The loop's own state.
struct NodeLoop {
    node: Node<FjallRaftStorage>,
    handle: NodeHandle,
    config: LoopConfig,
    inputs: mpsc::Receiver<Input>,
    /// Proposals waiting for their entry, by request id, with the tick they were taken.
    waiting: BTreeMap<u64, (u64, oneshot::Sender<Result<Applied, LoopError>>)>,
    /// Linearizable reads taken in the current input batch: they share one ReadIndex.
    reads_batch: ReadGroup,
    /// ReadIndex requests Raft refused for now (leader not ready), retried on tick.
    reads_retry: Vec<ReadGroup>,
    /// ReadIndex requests not yet answered by Raft, by context id, with the tick they
    /// were made.
    reads_pending: BTreeMap<u64, (u64, ReadGroup)>,
    /// Ticks since start (request deadlines).
    ticks: u64,
    /// ReadIndex requests answered by Raft, waiting for the applied index.
    reads_confirmed: VecDeque<(LogIndex, ReadGroup)>,
    /// Leases whose revoke is in flight (not proposed twice).
    revoking: BTreeSet<LeaseId>,
    /// Applied index of the last log compaction.
    last_compaction: u64,
    /// The snapshot file being written off the loop, if any.
    snapshotting: Option<Snapshotting>,
    /// Proposals made while no leader was known, retried on tick.
    unled: Vec<Unled>,
    /// The thread that runs a Ready's fsync while the loop applies (see the module docs).
    syncer: Syncer,
    /// The applied state's backend (a handle on the one inside `handle.state`), whose
    /// writes are deferred while the syncer holds the journal.
    backend: FjallBackend,
}

/// A thread that syncs the data dir on request, so that the node loop can apply
/// entries that are already durable while a Ready's fsync runs. It ends with the loop
/// (its request channel closes).
struct Syncer {
    start: std::sync::mpsc::Sender<()>,
    done: std::sync::mpsc::Receiver<Result<Duration, String>>,
}

/// Syncs `data`; how long it took.
fn timed_sync(data: &crate::storage::DataDir) -> Result<Duration, String> {
    let started = Instant::now();
    data.sync()
        .map(|()| started.elapsed())
        .map_err(|error| error.to_string())
}

impl Syncer {
    fn spawn(data: crate::storage::DataDir) -> std::io::Result<Syncer> {
        let (start, starts) = std::sync::mpsc::channel::<()>();
        let (finished, done) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("oxetcd-fsync".to_owned())
            .spawn(move || {
                while starts.recv().is_ok() {
                    if finished.send(timed_sync(&data)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Syncer { start, done })
    }

    /// Starts a sync.
    fn begin(&self) -> Result<(), String> {
        self.start
            .send(())
            .map_err(|_| "the fsync thread has stopped".to_owned())
    }

    /// Waits for the sync started last; its duration.
    fn wait(&self) -> Result<Duration, String> {
        self.done
            .recv()
            .map_err(|_| "the fsync thread has stopped".to_owned())?
    }
}

/// A snapshot file being written by a blocking task.
struct Snapshotting {
    /// The applied index the file covers.
    index: LogIndex,
    /// The configuration at that index.
    conf: oxetcd_spec::raft::ConfState,
    /// The writer; yields the file name.
    task: tokio::task::JoinHandle<std::io::Result<String>>,
}

/// Waits for the snapshot being written, or forever when there is none.
async fn snapshot_written(
    snapshotting: &mut Option<Snapshotting>,
) -> Result<std::io::Result<String>, tokio::task::JoinError> {
    match snapshotting {
        Some(snapshotting) => (&mut snapshotting.task).await,
        None => std::future::pending().await,
    }
}

/// Starts the loop on a thread of its own (a single-threaded tokio runtime run through
/// `spawn_blocking`, so the fsyncs it waits on never stall the runtime serving the
/// API) and returns its handle and the task. The loop ends when the runtime that
/// started it shuts down.
pub fn start(
    node: Node<FjallRaftStorage>,
    state: AppState<FjallBackend>,
    member_id: u64,
    cluster_id: u64,
    config: LoopConfig,
    transport: Option<crate::peer::Transport>,
) -> (NodeHandle, tokio::task::JoinHandle<Result<(), String>>) {
    let node_storage_dir = node.storage().data_dir().clone();
    let (sender, inputs) = mpsc::channel(4096);
    let (events, _) = broadcast::channel(4096);
    let applied = state.applied_index();
    let handle = NodeHandle {
        inputs: sender,
        state: Arc::new(RwLock::new(state)),
        events,
        status: Arc::new(Status::default()),
        member_id,
        cluster_id,
        ids: Arc::new(IdGenerator::new(member_id)),
        epoch: Instant::now(),
        wall_at_epoch_ms: crate::v2::now_ms(),
        transport,
    };
    handle
        .status
        .applied_index
        .store(applied, Ordering::Relaxed);
    let backend = match handle.state.read() {
        Ok(state) => state.store().backend().clone(),
        Err(poisoned) => poisoned.into_inner().store().backend().clone(),
    };
    let loop_handle = handle.clone();
    let make_loop = move |syncer: Syncer| NodeLoop {
        last_compaction: node.first_index().0.saturating_sub(1),
        node,
        handle: loop_handle,
        config,
        inputs,
        waiting: BTreeMap::new(),
        reads_batch: Vec::new(),
        reads_retry: Vec::new(),
        reads_pending: BTreeMap::new(),
        ticks: 0,
        reads_confirmed: VecDeque::new(),
        revoking: BTreeSet::new(),
        snapshotting: None,
        unled: Vec::new(),
        syncer,
        backend,
    };
    // Held by a task of the calling runtime: dropped when that runtime shuts down, which
    // tells the loop's thread to end (the runtime's shutdown waits for it).
    let (alive, runtime_gone) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _alive = alive;
        std::future::pending::<()>().await;
    });
    let task = tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|error| format!("node loop runtime: {error}"))?;
        let syncer =
            Syncer::spawn(node_storage_dir).map_err(|error| format!("fsync thread: {error}"))?;
        runtime.block_on(make_loop(syncer).run(runtime_gone))
    });
    (handle, task)
}

impl NodeLoop {
    async fn run(mut self, mut runtime_gone: oneshot::Receiver<()>) -> Result<(), String> {
        let mut ticker = tokio::time::interval(self.config.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if self.config.campaign_at_start {
            // Raft does not campaign while committed conf changes are unapplied (a new
            // cluster's bootstrap entries): apply what is committed first.
            self.drain_ready()?;
            self.node.campaign();
        }
        loop {
            self.drain_ready()?;
            tokio::select! {
                _ = &mut runtime_gone => return Ok(()),
                _ = ticker.tick() => self.on_tick(),
                written = snapshot_written(&mut self.snapshotting) => {
                    self.finish_snapshot(written)?;
                }
                input = self.inputs.recv() => {
                    let Some(input) = input else { return Ok(()) };
                    self.on_input(input);
                    let mut taken = 1;
                    while taken < INPUT_BATCH_MAX {
                        match self.inputs.try_recv() {
                            Ok(input) => self.on_input(input),
                            Err(_) => break,
                        }
                        taken += 1;
                    }
                    let reads = std::mem::take(&mut self.reads_batch);
                    if !reads.is_empty() {
                        self.request_read_index(reads);
                    }
                }
            }
        }
    }

    fn on_tick(&mut self) {
        self.ticks += 1;
        self.node.tick();
        self.expire_requests();
        if self.node.role() == Role::Leader {
            self.revoke_expired_leases();
        }
        // ReadIndex requests refused earlier (leader not ready yet) are retried here.
        for reads in std::mem::take(&mut self.reads_retry) {
            self.request_read_index(reads);
        }
        // Requests whose client gave up are forgotten (a conf change Raft refused stays
        // waiting until then, as in etcd, where it times out).
        self.waiting.retain(|_, (_, reply)| !reply.is_closed());
        self.unled.retain(|(_, _, reply)| !reply.is_closed());
        for reads in &mut self.reads_retry {
            reads.retain(|reply| !reply.is_closed());
        }
        self.reads_retry.retain(|reads| !reads.is_empty());
        if self.has_leader() {
            for (request_id, payload, reply) in std::mem::take(&mut self.unled) {
                match payload {
                    UnledPayload::Normal(data) => self.propose_encoded(request_id, data, reply),
                    UnledPayload::Conf(change) => self.propose_checked(request_id, change, reply),
                }
            }
        }
    }

    /// One ReadIndex request for a group of reads (all the reads of one input batch).
    fn request_read_index(&mut self, reads: ReadGroup) {
        let id = self.handle.ids.next();
        match self.node.read_index(id.to_be_bytes().to_vec()) {
            Ok(()) => {
                self.reads_pending.insert(id, (self.ticks, reads));
            }
            // A leader that has not committed in its term yet, or no leader known (reads
            // wait for one, as with etcd): retried on the next tick.
            Err(_) => self.reads_retry.push(reads),
        }
    }

    fn has_leader(&self) -> bool {
        self.node.leader().is_some()
    }

    fn revoke_expired_leases(&mut self) {
        let now_ms = self.handle.now_ms();
        // Revoked as root when auth is on (etcd's `WithRoot`): a revoke needs write
        // access to the lease's keys.
        let (expired, auth) = match self.handle.state.read() {
            Ok(state) => (
                state.expired_leases(now_ms, LEASE_REVOKES_PER_TICK),
                state
                    .auth()
                    .is_enabled()
                    .then(|| AuthInfo::new(oxetcd_spec::auth::ROOT_USER, state.auth().revision())),
            ),
            Err(_) => return,
        };
        for id in expired {
            if !self.revoking.insert(id) {
                continue;
            }
            let proposal = Proposal {
                request_id: self.handle.ids.next(),
                auth: auth.clone(),
                command: Command::LeaseRevoke { id },
            };
            if self
                .node
                .propose(oxetcd_spec::apply::codec::encode(&proposal))
                .is_err()
            {
                self.revoking.remove(&id);
            }
        }
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Propose {
                command,
                auth,
                reply,
            } => {
                let request_id = self.handle.ids.next();
                let proposal = Proposal {
                    request_id,
                    auth,
                    command,
                };
                let data = oxetcd_spec::apply::codec::encode(&proposal);
                self.propose_encoded(request_id, data, reply);
            }
            Input::ReadIndex { reply } => self.reads_batch.push(reply),
            Input::Step(message) => self.node.step(message),
            Input::ProposeConfChange {
                change,
                command,
                auth,
                check,
                reply,
            } => self.propose_conf_change(change, command, auth, check, reply),
            Input::TransferLeader { to } => self.node.transfer_leader(NodeId(to)),
        }
    }

    /// Proposes an encoded [`Proposal`]; without a leader it waits for one.
    fn propose_encoded(
        &mut self,
        request_id: u64,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<Applied, LoopError>>,
    ) {
        if !self.has_leader() {
            self.unled
                .push((request_id, UnledPayload::Normal(data), reply));
            return;
        }
        match self.node.propose(data) {
            Ok(_) => {
                self.waiting.insert(request_id, (self.ticks, reply));
            }
            Err(_) => {
                self.handle
                    .status
                    .proposals_failed
                    .fetch_add(1, Ordering::Relaxed);
                let _ = reply.send(Err(LoopError::NoLeader));
            }
        }
    }

    /// This member and the peers whose stream has been up for etcd's `HealthInterval`
    /// (5 s), as the strict reconfiguration checks count them.
    fn active_members(&self) -> BTreeSet<u64> {
        let mut active = self
            .handle
            .transport
            .as_ref()
            .map(|transport| transport.connected_for(HEALTH_INTERVAL))
            .unwrap_or_default();
        active.insert(self.handle.member_id);
        active
    }

    fn propose_conf_change(
        &mut self,
        mut change: ConfChange,
        command: Command,
        auth: Option<AuthInfo>,
        check: ConfCheck,
        reply: oneshot::Sender<Result<Applied, LoopError>>,
    ) {
        let request_id = self.handle.ids.next();
        let verdict = match self.handle.state.read() {
            Ok(state) => {
                let is_leader = self.node.role() == Role::Leader;
                let mut matched = BTreeMap::new();
                let conf = self.node.conf_state();
                for id in conf.voters.iter().chain(conf.learners.iter()) {
                    if let Some(progress) = self.node.progress(*id) {
                        matched.insert(id.0, progress.matched.0);
                    }
                }
                (check.0)(&ConfView {
                    cluster: state.cluster(),
                    member_id: self.handle.member_id,
                    is_leader,
                    matched,
                    active: self.active_members(),
                })
            }
            Err(_) => Err(Refused::Loop(LoopError::Stopped)),
        };
        match verdict {
            Ok(()) => {}
            Err(Refused::Membership(error)) => {
                let _ = reply.send(Ok(Applied {
                    index: 0,
                    request_id,
                    result: Err(ApplyError::Membership(error)),
                    events: Vec::new(),
                    revision: 0,
                }));
                return;
            }
            Err(Refused::Loop(error)) => {
                let _ = reply.send(Err(error));
                return;
            }
        }
        change.context = oxetcd_spec::apply::codec::encode(&Proposal {
            request_id,
            auth,
            command,
        });
        self.propose_checked(request_id, change, reply);
    }

    /// Proposes a checked conf change; without a leader it waits for one.
    fn propose_checked(
        &mut self,
        request_id: u64,
        change: ConfChange,
        reply: oneshot::Sender<Result<Applied, LoopError>>,
    ) {
        if !self.has_leader() {
            self.unled
                .push((request_id, UnledPayload::Conf(change), reply));
            return;
        }
        match self.node.propose_conf_change(change) {
            // Refused by Raft (another change pending, or no voter would be left): the
            // client waits and times out, as with etcd, whose Raft turns such a change
            // into an empty entry.
            Ok(_)
            | Err(
                oxetcd_spec::raft::RaftError::ConfChangePending
                | oxetcd_spec::raft::RaftError::InvalidConfChange,
            ) => {
                self.waiting.insert(request_id, (self.ticks, reply));
            }
            Err(_) => {
                let _ = reply.send(Err(LoopError::NoLeader));
            }
        }
    }

    fn drain_ready(&mut self) -> Result<(), String> {
        while self.node.has_ready() {
            let ready = self
                .node
                .ready()
                .map_err(|error| format!("raft ready: {error}"))?;
            self.handle_ready(&ready)?;
            self.node
                .advance(ready.ack())
                .map_err(|error| format!("raft advance: {error}"))?;
        }
        self.maybe_compact_log()
    }

    fn handle_ready(&mut self, ready: &Ready) -> Result<(), String> {
        // A snapshot sent by the leader (this member fell behind its compacted log): its
        // file arrived before the message (see `crate::peer`); checked before anything
        // is persisted, so a member never records a snapshot it cannot install.
        if let Some(snapshot) = &ready.snapshot {
            self.check_snapshot_file(snapshot)?;
        }
        // Committed entries this member had made durable before this Ready (on a leader,
        // all of them): applied and answered while this Ready's fsync runs (see the
        // module docs); the others only once it is done.
        let stable = self.node.storage().last_index();
        let early = if ready.snapshot.is_some() {
            0
        } else {
            ready
                .committed_entries
                .iter()
                .take_while(|entry| entry.index <= stable)
                .count()
        };
        let (durable, rest) = ready.committed_entries.split_at(early);
        // Contract step 3: messages that need nothing durable.
        self.send(&ready.messages);
        // Step 4: persist, one fsync for the whole Ready.
        self.node
            .storage_mut()
            .persist_ready(ready)
            .map_err(|error| format!("persisting Raft state: {error}"))?;
        if let Some(soft) = &ready.soft_state {
            self.on_soft_state(soft.leader.map_or(0, |id| id.0), soft.role);
        }
        if !ready.must_sync {
            self.apply_committed(durable)?;
        } else if durable.is_empty() {
            let took = timed_sync(self.node.storage().data_dir())?;
            self.handle.status.record_fsync(took);
        } else {
            // The fsync holds fjall's journal: the applied state's writes wait in memory
            // until it is done, then go to fjall as one batch (`FjallBackend::defer`).
            self.syncer.begin()?;
            self.backend.defer();
            let applied = self.apply_committed(durable);
            let synced = self.syncer.wait();
            let flushed = self.backend.flush().map_err(|error| error.message);
            applied?;
            self.handle.status.record_fsync(synced?);
            flushed?;
        }
        // Step 5: messages that promise durable state, now that it is.
        self.send(&ready.messages_after_persist);
        // Step 6: apply the rest (the snapshot first: the Raft snapshot record is
        // durable, so a crash from here on installs it again at restart).
        if let Some(snapshot) = &ready.snapshot {
            self.install_snapshot(snapshot)?;
        }
        self.apply_committed(rest)?;
        for read_state in &ready.read_states {
            let Ok(bytes) = <[u8; 8]>::try_from(read_state.request_ctx.as_slice()) else {
                continue;
            };
            if let Some((_, reads)) = self.reads_pending.remove(&u64::from_be_bytes(bytes)) {
                self.reads_confirmed.push_back((read_state.index, reads));
            }
        }
        self.answer_confirmed_reads();
        let status = &self.handle.status;
        status.term.store(self.node.term().0, Ordering::Relaxed);
        status
            .raft_index
            .store(self.node.last_index().0, Ordering::Relaxed);
        status
            .commit_index
            .store(self.node.commit_index().0, Ordering::Relaxed);
        status
            .proposals_pending
            .store(self.waiting.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn on_soft_state(&mut self, leader: u64, role: Role) {
        let status = &self.handle.status;
        if status.leader.swap(leader, Ordering::Relaxed) != leader {
            status.leader_changes.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                "raft.node: {:x} elected leader {:x} at term {}",
                self.handle.member_id,
                leader,
                self.node.term().0
            );
        }
        let Ok(mut state) = self.handle.state.write() else {
            return;
        };
        if role == Role::Leader {
            // etcd extends lease deadlines by the election timeout on promotion.
            let extend_ms = u64::try_from(self.config.tick.as_millis()).unwrap_or(100) * 10;
            state.promote(self.handle.now_ms(), extend_ms);
        } else {
            state.demote();
            // Proposals appended by a deposed leader may still commit under the next
            // one: they keep waiting (as with etcd) until applied or their client's
            // time-out.
            self.revoking.clear();
        }
    }

    fn apply_committed(&mut self, committed: &[Entry]) -> Result<(), String> {
        if committed.is_empty() {
            return Ok(());
        }
        let now_ms = self.handle.now_ms();
        let mut state = self
            .handle
            .state
            .write()
            .map_err(|_| "state lock poisoned".to_owned())?;
        for entry in committed {
            let index = entry.index.0;
            // A conf change carries its membership command in its context (none: a
            // change made without one, applied as empty).
            let data = match &entry.payload {
                EntryPayload::Normal(data) => data,
                EntryPayload::ConfChange(change) if !change.context.is_empty() => &change.context,
                EntryPayload::Empty | EntryPayload::ConfChange(_) => {
                    state
                        .apply_empty(index)
                        .map_err(|error| error.to_string())?;
                    continue;
                }
            };
            let proposal = oxetcd_spec::apply::codec::decode(data)
                .map_err(|error| format!("committed entry {index} does not decode: {error}"))?;
            let Some(mut applied) = state
                .apply(index, &proposal, now_ms)
                .map_err(|error| error.to_string())?
            else {
                continue;
            };
            if matches!(entry.payload, EntryPayload::ConfChange(_))
                && matches!(applied.result, Err(ApplyError::Membership(_)))
            {
                // etcd's applyConfChange: a change that fails validation at apply (e.g.
                // proposed through a follower with a stale view) leaves Raft as it is.
                self.node.refuse_conf_change(entry.index);
            }
            crate::metrics::count_applied(&proposal.command, &applied.result);
            if let Command::LeaseRevoke { id } = &proposal.command {
                self.revoking.remove(id);
            }
            if let Command::Auth(command) = &proposal.command {
                self.config
                    .tokens
                    .on_applied(index, command, &applied.result);
            }
            if matches!(proposal.command, Command::Membership(_)) {
                self.sync_peers(state.cluster());
            }
            if !applied.events.is_empty() {
                // Sent under the write lock: a watcher that reads history under the read
                // lock and then subscribes sees every revision exactly once. Moved, not
                // copied: the requester's reply does not use the events.
                let _ = self.handle.events.send(AppliedEvents {
                    revision: applied.revision,
                    events: Arc::new(std::mem::take(&mut applied.events)),
                    restored: false,
                });
            }
            self.handle
                .status
                .proposals_committed
                .fetch_add(1, Ordering::Relaxed);
            if let Some((_, reply)) = self.waiting.remove(&applied.request_id) {
                let _ = reply.send(Ok(applied));
            }
        }
        self.handle
            .status
            .applied_index
            .store(state.applied_index(), Ordering::Relaxed);
        Ok(())
    }

    /// Refuses (stopping the member) a snapshot whose file is not here and whole.
    fn check_snapshot_file(&self, snapshot: &Snapshot) -> Result<(), String> {
        let index = snapshot.metadata.index.0;
        let name = crate::peer::snapshot_file_name(&snapshot.data).ok_or_else(|| {
            format!(
                "the leader sent a snapshot at index {index} that names no snapshot file (a \
                 leader restored with `oxetcd snapshot restore` has none until its first log \
                 compaction); this member stops rather than diverge"
            )
        })?;
        let path = self.node.storage().data_dir().snap_dir().join(name);
        crate::snapshot::verify_file(&path).map_err(|error| {
            format!(
                "the snapshot file {} for the leader's snapshot at index {index} is unusable: \
                 {error}",
                path.display()
            )
        })
    }

    /// Replaces the applied state with the leader's snapshot (contract step 6), then
    /// tells watchers to resynchronise and the transport about the snapshot's members.
    fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), String> {
        let index = snapshot.metadata.index.0;
        let snap_dir = self.node.storage().data_dir().snap_dir();
        let mut state = self
            .handle
            .state
            .write()
            .map_err(|_| "state lock poisoned".to_owned())?;
        crate::snapshot::install(&mut state, &snap_dir, &snapshot.data, index)?;
        // Sent under the write lock, as applied events are (see `apply_committed`).
        let _ = self.handle.events.send(AppliedEvents {
            revision: state.store().current_revision(),
            events: Arc::new(Vec::new()),
            restored: true,
        });
        self.sync_peers(state.cluster());
        drop(state);
        self.revoking.clear();
        self.last_compaction = index;
        self.handle
            .status
            .applied_index
            .store(index, Ordering::Relaxed);
        tracing::info!(
            "etcdserver: applied snapshot at index {index} (term {}, {})",
            snapshot.metadata.term.0,
            String::from_utf8_lossy(&snapshot.data)
        );
        Ok(())
    }

    /// Points the peer transport at the applied membership: every member at its peer
    /// URLs, removed members forgotten.
    fn sync_peers(&self, cluster: &Cluster) {
        let Some(transport) = &self.handle.transport else {
            return;
        };
        for member in cluster.members() {
            let urls: Vec<crate::config::url::Url> = member
                .peer_urls
                .iter()
                .filter_map(|url| crate::config::url::Url::parse(url).ok())
                .collect();
            transport.set_peer(member.id.0, urls);
        }
        for id in cluster.removed_ids() {
            transport.remove_peer(id.0);
        }
    }

    fn send(&self, messages: &[oxetcd_spec::raft::Message]) {
        let Some(transport) = &self.handle.transport else {
            return;
        };
        for message in messages {
            transport.send(message.clone());
        }
    }

    /// Fails the proposals and reads older than the request timeout.
    fn expire_requests(&mut self) {
        let limit = REQUEST_TIMEOUT_TICKS * self.config.election_ticks.max(1);
        let Some(oldest) = self.ticks.checked_sub(limit) else {
            return;
        };
        let expired: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, (taken, _))| *taken < oldest)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some((_, reply)) = self.waiting.remove(&id) {
                let _ = reply.send(Err(LoopError::Timeout));
            }
        }
        let expired: Vec<u64> = self
            .reads_pending
            .iter()
            .filter(|(_, (taken, _))| *taken < oldest)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some((_, reads)) = self.reads_pending.remove(&id) {
                for reply in reads {
                    let _ = reply.send(Err(LoopError::Timeout));
                }
            }
        }
    }

    fn answer_confirmed_reads(&mut self) {
        let applied = self.handle.status.applied_index.load(Ordering::Relaxed);
        while let Some((index, _)) = self.reads_confirmed.front() {
            if index.0 > applied {
                break;
            }
            if let Some((_, reads)) = self.reads_confirmed.pop_front() {
                for reply in reads {
                    let _ = reply.send(Ok(()));
                }
            }
        }
    }

    /// Every `--snapshot-count` applied entries: make the applied state durable, take
    /// a view of it and start writing the view to a snapshot file off the loop (at
    /// most one at a time; [`NodeLoop::finish_snapshot`] compacts the log).
    fn maybe_compact_log(&mut self) -> Result<(), String> {
        let applied = self.node.applied_index().0;
        if self.config.snapshot_count == 0
            || self.snapshotting.is_some()
            || applied < self.last_compaction + self.config.snapshot_count
        {
            return Ok(());
        }
        // The applied state up to `applied` is durable in fjall before the log that
        // could replay it is dropped.
        self.node
            .storage()
            .data_dir()
            .sync()
            .map_err(|error| error.to_string())?;
        // The view is exactly the state at `applied`: every write to it happens on
        // this loop, under the write lock.
        let view = self
            .handle
            .state
            .read()
            .map_err(|_| "state lock poisoned".to_owned())?
            .store()
            .backend()
            .view();
        let snap_dir = self.node.storage().data_dir().snap_dir();
        let task = tokio::task::spawn_blocking(move || {
            crate::snapshot::save_for_log_compaction(&view, &snap_dir, applied)
        });
        self.snapshotting = Some(Snapshotting {
            index: LogIndex(applied),
            conf: self.node.conf_state().clone(),
            task,
        });
        Ok(())
    }

    /// The snapshot file is durable (or failed): record the Raft snapshot naming it and
    /// compact the log up to the index it covers.
    fn finish_snapshot(
        &mut self,
        written: Result<std::io::Result<String>, tokio::task::JoinError>,
    ) -> Result<(), String> {
        let Some(Snapshotting { index, conf, .. }) = self.snapshotting.take() else {
            return Ok(());
        };
        let name = written
            .map_err(|error| format!("snapshot writer at {index}: {error}"))?
            .map_err(|error| format!("saving snapshot at {index}: {error}"))?;
        tracing::info!("etcdserver: saved snapshot at index {index} ({name})");
        let storage = self.node.storage_mut();
        match storage.create_snapshot(index, conf, name.into_bytes()) {
            Ok(()) => {}
            // A newer snapshot arrived from the leader meanwhile: nothing to compact.
            Err(oxetcd_spec::raft::StorageError::SnapshotOutOfDate) => return Ok(()),
            Err(error) => return Err(format!("log compaction at {index}: {error}")),
        }
        storage
            .compact(index)
            .map_err(|error| format!("log compaction at {index}: {error}"))?;
        self.last_compaction = index.0;
        tracing::info!("etcdserver: compacted raft log at {index}");
        Ok(())
    }
}
