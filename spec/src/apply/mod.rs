//! The applier: one committed command in, one response out. The only entry point for
//! committed entries, called identically by the server and the models.
//!
//! What it is: [`AppState`], holding the MVCC [`Store`] and the [`Lessor`], with one
//! entry point, [`AppState::apply`], that takes a committed log entry's [`Proposal`] and
//! returns an [`Applied`]: the response (or etcd's error) and the watch events the entry
//! produced. It is idempotent by log index: an index at or below
//! [`AppState::applied_index`] is skipped, so replay after a restart is safe. Every apply
//! writes its state changes and the applied index as one backend batch (see
//! [`Backend`]'s correctness rules), so a restart resumes exactly after the last
//! applied entry.
//!
//! What goes through the log is [`Proposal`] (a request ID for the waiting client, the
//! authenticated user, and a [`Command`]); its byte form is [`codec`], versioned and
//! stable. Reads that etcd serves without the log (serializable ranges, lease
//! time-to-live and keep-alive on the leader, hash) are methods here too, so the server
//! never reaches around the applier.
//!
//! etcd 3.4 behaviour followed: `etcdserver/apply.go` (`applierV3backend`), the lessor
//! and `etcdserver/v3_server.go` for the leader-local lease calls.

pub mod codec;

use crate::alarm::{AlarmAction, AlarmError, AlarmMember, AlarmRequest, Alarms, Guarded};
pub use crate::auth::AuthInfo;
use crate::auth::{AuthError, AuthStore, Permission, TxnAuthMode, TxnCheck, TxnOpCheck};
use crate::lease::{Lease, LeaseError, LeaseId, Lessor, TimeToLive};
use crate::membership::{Cluster, ClusterVersion, Member, MemberId, MembershipError};
use crate::mvcc::{
    Backend, BackendError, Bucket, CompactionRequest, CompactionResponse, DeleteRangeRequest,
    DeleteRangeResponse, Event, HashKv, MemBackend, MvccError, OpenError, PutRequest, PutResponse,
    RangeRequest, RangeResponse, RequestOp, Store, TxnRequest, TxnResponse, WriteBatch, validate,
};
use crate::v2;

/// Meta-bucket key of the last applied Raft index (etcd's name), u64 big-endian.
pub const CONSISTENT_INDEX_KEY: &[u8] = b"consistent_index";

/// A state-machine command: what one Raft log entry asks for.
///
/// New variants are added for the auth, v2 and membership commands as those modules
/// land; existing variants and their codec tags never change meaning.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Command {
    /// A range through the log (a linearizable read done the simple way).
    Range(RangeRequest),
    /// A put.
    Put(PutRequest),
    /// A delete-range.
    DeleteRange(DeleteRangeRequest),
    /// A txn.
    Txn(TxnRequest),
    /// A compaction.
    Compaction(CompactionRequest),
    /// Grant a lease. The proposer picks the ID (etcd: a member-unique generator when
    /// the client sent 0); ID 0 here is rejected as etcd's lessor does.
    LeaseGrant {
        /// The lease's ID.
        id: LeaseId,
        /// Requested TTL in seconds (raised to the minimum).
        ttl_secs: i64,
    },
    /// Revoke a lease and delete its keys in one revision. The leader proposes this for
    /// each expired lease as well, exactly as etcd does, as the root user when auth is
    /// enabled (etcd's `WithRoot`), since revoking checks write access to the keys.
    LeaseRevoke {
        /// The lease's ID.
        id: LeaseId,
    },
    /// An auth request (etcd's `Auth*` internal requests).
    Auth(AuthCommand),
    /// A v2 keys-API request.
    V2(v2::Request),
    /// A membership change or cluster-wide attribute. Member add/remove/update/promote
    /// ride in the context of a Raft configuration-change entry: the server applies
    /// them with [`AppState::apply`] at that entry's index, after Raft took the change.
    Membership(MemberChange),
    /// Raise, clear or list alarms (etcd's `AlarmRequest`).
    Alarm(AlarmRequest),
}

impl Command {
    /// What the command is, as far as alarms and the quota care (see
    /// [`crate::alarm::Alarms::check`] and [`crate::alarm::quota_cost`]).
    #[must_use]
    pub fn guarded(&self) -> Guarded<'_> {
        match self {
            Command::Put(p) => Guarded::Put(p),
            Command::Txn(t) => Guarded::Txn(t),
            Command::Range(_) | Command::DeleteRange(_) => Guarded::ReadOrDelete,
            Command::LeaseGrant { .. } => Guarded::LeaseGrant,
            _ => Guarded::Other,
        }
    }
}

/// Membership changes as etcd 3.4 applies them (`applyConfChange`, and the v2 PUTs of
/// `/0/members/<id>/attributes` and `/0/version` it intercepts), each also recording
/// etcd's v2-store entries under `/0`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MemberChange {
    /// `ConfChangeAddNode` / `ConfChangeAddLearnerNode`.
    Add(Member),
    /// `ConfChangeRemoveNode`.
    Remove(MemberId),
    /// `ConfChangeUpdateNode`: new peer URLs.
    UpdatePeerUrls {
        /// The member.
        id: MemberId,
        /// Its new peer URLs.
        peer_urls: Vec<String>,
    },
    /// Promote a learner (`ConfChangeAddNode` of a learner).
    Promote(MemberId),
    /// A member published its name and client URLs.
    Attributes {
        /// The member.
        id: MemberId,
        /// Its name.
        name: String,
        /// Its client URLs.
        client_urls: Vec<String>,
    },
    /// The leader set the cluster version.
    ClusterVersion(ClusterVersion),
}

/// The auth requests that go through the log (etcd 3.4 `InternalRaftRequest` auth
/// fields). Passwords arrive already hashed (the server runs bcrypt before proposing);
/// `Authenticate` arrives after the server checked the password.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AuthCommand {
    /// `AuthEnable`.
    Enable,
    /// `AuthDisable`.
    Disable,
    /// `Authenticate`: the token the server generated for the new session.
    Authenticate {
        /// User name.
        name: String,
        /// The simple token to hand out (opaque here).
        simple_token: String,
    },
    /// `UserAdd`.
    UserAdd {
        /// User name.
        name: String,
        /// bcrypt hash (opaque).
        password_hash: Vec<u8>,
        /// `options.no_password`.
        no_password: bool,
    },
    /// `UserDelete`.
    UserDelete {
        /// User name.
        name: String,
    },
    /// `UserChangePassword`.
    UserChangePassword {
        /// User name.
        name: String,
        /// bcrypt hash (opaque).
        password_hash: Vec<u8>,
    },
    /// `UserGrantRole`.
    UserGrantRole {
        /// User name.
        user: String,
        /// Role name.
        role: String,
    },
    /// `UserRevokeRole`.
    UserRevokeRole {
        /// User name.
        name: String,
        /// Role name.
        role: String,
    },
    /// `UserGet`.
    UserGet {
        /// User name.
        name: String,
    },
    /// `UserList`.
    UserList,
    /// `RoleAdd`.
    RoleAdd {
        /// Role name.
        name: String,
    },
    /// `RoleGet`.
    RoleGet {
        /// Role name.
        role: String,
    },
    /// `RoleList`.
    RoleList,
    /// `RoleDelete`.
    RoleDelete {
        /// Role name.
        role: String,
    },
    /// `RoleGrantPermission`.
    RoleGrantPermission {
        /// Role name.
        name: String,
        /// The permission.
        perm: Permission,
    },
    /// `RoleRevokePermission`.
    RoleRevokePermission {
        /// Role name.
        role: String,
        /// Permission key.
        key: Vec<u8>,
        /// Permission range end.
        range_end: Vec<u8>,
    },
    /// Raise the auth revision to a restored snapshot's `authRevision` (only in the
    /// auth log a snapshot restore writes; no etcd request maps to it).
    RestoreRevision {
        /// The snapshot's `authRevision`.
        revision: u64,
    },
}

impl AuthCommand {
    /// etcd's `needAdminPermission`: every auth request except `Authenticate`,
    /// `UserGet` (own user) and `RoleGet` (own role), which are checked separately.
    fn needs_admin(&self) -> bool {
        !matches!(
            self,
            AuthCommand::Authenticate { .. }
                | AuthCommand::UserGet { .. }
                | AuthCommand::RoleGet { .. }
        )
    }
}

/// The result of an auth request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AuthResponse {
    /// A change was made (or was a no-op); nothing to return.
    Done,
    /// `Authenticate`: the token and the auth revision it was issued at.
    Authenticated {
        /// The token from the command.
        token: String,
        /// The auth revision.
        auth_revision: u64,
    },
    /// `UserGet`: the user's roles; `RoleList`: the role names; `UserList`: the user
    /// names.
    Names(Vec<String>),
    /// `RoleGet`: the role's permissions.
    Permissions(Vec<Permission>),
}

/// What the server proposes to Raft: a [`Command`] with the request ID the proposer
/// uses to find the waiting client, and the sender's identity when auth is on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Proposal {
    /// Unique per proposer; echoed in [`Applied::request_id`].
    pub request_id: u64,
    /// The authenticated sender (etcd's header `username`/`auth_revision`), if the
    /// request carried a token. `None` is "no user".
    pub auth: Option<AuthInfo>,
    /// The command.
    pub command: Command,
}

/// etcd's `LeaseGrantResponse`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseGrantResponse {
    /// Header revision: the current KV revision.
    pub revision: i64,
    /// The granted lease's ID.
    pub id: LeaseId,
    /// The granted TTL (after raising to the minimum).
    pub ttl_secs: i64,
}

/// etcd's `LeaseRevokeResponse`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseRevokeResponse {
    /// Header revision: the revision of the key deletions, or the unchanged current
    /// revision if the lease had no keys.
    pub revision: i64,
}

/// The successful result of a command.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Response {
    /// For [`Command::Range`].
    Range(RangeResponse),
    /// For [`Command::Put`].
    Put(PutResponse),
    /// For [`Command::DeleteRange`].
    DeleteRange(DeleteRangeResponse),
    /// For [`Command::Txn`].
    Txn(TxnResponse),
    /// For [`Command::Compaction`].
    Compaction(CompactionResponse),
    /// For [`Command::LeaseGrant`].
    LeaseGrant(LeaseGrantResponse),
    /// For [`Command::LeaseRevoke`].
    LeaseRevoke(LeaseRevokeResponse),
    /// For [`Command::Auth`].
    Auth(AuthResponse),
    /// For [`Command::V2`].
    V2(v2::Applied),
    /// For [`Command::Membership`]: the change was made (read the result from
    /// [`AppState::cluster`]).
    MembershipChanged,
    /// For [`Command::Alarm`]: the alarms listed, raised or cleared.
    Alarm(Vec<AlarmMember>),
}

/// Why a command had no effect, with etcd's texts.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// A KV error.
    #[error(transparent)]
    Mvcc(#[from] MvccError),
    /// A lease error.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// An auth error (permission denied, old auth revision, auth management errors).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A v2 store error.
    #[error(transparent)]
    V2(#[from] v2::V2Error),
    /// A membership error.
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// A raised alarm refuses the request.
    #[error(transparent)]
    Alarm(#[from] AlarmError),
}

/// The outcome of applying one log entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Applied {
    /// The log index applied.
    pub index: u64,
    /// The proposal's request ID.
    pub request_id: u64,
    /// The response, or the error etcd would return.
    pub result: Result<Response, ApplyError>,
    /// The watch events of the revision this entry created (empty if none), in sub
    /// revision order, each with `prev_kv` where readable.
    pub events: Vec<Event>,
    /// The store's current revision after the entry.
    pub revision: i64,
}

/// Configuration of the application state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AppConfig {
    /// Leases are granted at least this TTL (see [`crate::lease::min_lease_ttl_secs`]).
    pub min_lease_ttl_secs: i64,
    /// Which txn permission rules apply (etcd 3.4.23's by default).
    pub txn_auth_mode: TxnAuthMode,
}

impl Default for AppConfig {
    /// etcd's defaults: heartbeat 100 ms, election 1000 ms, so a 2 s minimum TTL.
    fn default() -> Self {
        Self {
            min_lease_ttl_secs: crate::lease::min_lease_ttl_secs(100, 1000),
            txn_auth_mode: TxnAuthMode::default(),
        }
    }
}

/// The replicated application state: MVCC store, leases, auth, the v2 store and the
/// applied index.
///
/// Persistence: the MVCC history, leases and applied index live in the backend in
/// etcd's layouts (see [`crate::mvcc::Backend`]). The auth and v2 states are persisted
/// as the log of the auth commands (bucket [`Bucket::Auth`]) and of the v2 and
/// membership commands (bucket [`Bucket::V2`]; membership changes write v2 records, so
/// the two share one log) that were applied: 8-byte BE index -> 8-byte BE `now_ms` +
/// [`codec`] bytes of the proposal. [`AppState::open`] replays them; these states are
/// deterministic functions of that log.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AppState<B = MemBackend> {
    store: Store<B>,
    lessor: Lessor,
    auth: AuthStore,
    v2: v2::Store,
    cluster: Cluster,
    alarms: Alarms,
    config: AppConfig,
    applied_index: u64,
}

impl<B: Backend> AppState<B> {
    /// A fresh state (revision 1, no leases, nothing applied) over an empty `backend`.
    #[must_use]
    pub fn new(backend: B, config: AppConfig) -> Self {
        Self {
            store: Store::new(backend),
            lessor: Lessor::new(config.min_lease_ttl_secs),
            auth: AuthStore::new(),
            v2: v2::Store::new(),
            cluster: Cluster::default(),
            alarms: Alarms::default(),
            config,
            applied_index: 0,
        }
    }

    /// Rebuilds the state from `backend` after a restart: the KV index, the leases
    /// (clocks stopped until [`AppState::promote`]), the auth and v2 states (by replaying
    /// their command logs) and the applied index.
    ///
    /// # Errors
    /// [`OpenError`] if the backend fails or holds malformed entries.
    pub fn open(backend: B, config: AppConfig) -> Result<Self, OpenError> {
        let store = Store::open(backend)?;
        let mut leases = Vec::new();
        for (k, v) in store.backend().scan(Bucket::Lease, &[])? {
            let l = Lease::decode(&v).map_err(|e| corrupt(Bucket::Lease, &k, &e.to_string()))?;
            leases.push(l);
        }
        let applied_index = match store.backend().get(Bucket::Meta, CONSISTENT_INDEX_KEY)? {
            None => 0,
            Some(v) => u64::from_be_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| corrupt(Bucket::Meta, CONSISTENT_INDEX_KEY, "not 8 bytes"))?,
            ),
        };
        let mut alarms = Vec::new();
        for (k, _) in store
            .backend()
            .scan(Bucket::Meta, crate::alarm::ALARM_KEY_PREFIX)?
        {
            if !k.starts_with(crate::alarm::ALARM_KEY_PREFIX) {
                break;
            }
            alarms.push(
                AlarmMember::from_key(&k)
                    .ok_or_else(|| corrupt(Bucket::Meta, &k, "not an alarm key"))?,
            );
        }
        let mut state = Self {
            store,
            lessor: Lessor::new(config.min_lease_ttl_secs),
            auth: AuthStore::new(),
            v2: v2::Store::new(),
            cluster: Cluster::default(),
            alarms: Alarms::from_members(alarms),
            config,
            applied_index,
        };
        state.lessor.restore(leases);
        for bucket in [Bucket::Auth, Bucket::V2] {
            for (k, v) in state.store.backend().scan(bucket, &[])? {
                let (now_ms, proposal) = decode_logged(&v)
                    .ok_or_else(|| corrupt(bucket, &k, "not a logged proposal"))?;
                let info = proposal.auth.clone().unwrap_or_default();
                // The result was returned when the entry was first applied; replay only
                // rebuilds the state.
                let _ = match &proposal.command {
                    Command::Auth(c) => state.execute_auth(c, &info).map(|_| ()),
                    Command::V2(r) => state
                        .v2
                        .apply(r, now_ms)
                        .map(|_| ())
                        .map_err(ApplyError::from),
                    Command::Membership(c) => state.execute_membership(c, now_ms),
                    _ => return Err(corrupt(bucket, &k, "not an auth or v2 command")),
                };
            }
        }
        Ok(state)
    }

    /// Installs a snapshot of the applied state (a member behind the leader's compacted
    /// log): replaces the content of every bucket with `pairs` (bucket, key, value: every
    /// stored pair of the snapshot's state, its applied index included) in one
    /// [`Backend::write`] (atomic: a crash leaves the old state or the new one), then
    /// rebuilds the state from the backend as [`AppState::open`] does, keeping this
    /// state's configuration and cluster ID. Lease clocks stop (the leader re-arms them
    /// with [`AppState::promote`]). Watchers must resynchronise from the new history.
    ///
    /// # Errors
    /// [`OpenError`] if the backend fails or the pairs are malformed; the state must then
    /// not be used (the caller stops).
    pub fn install_snapshot(
        &mut self,
        pairs: impl IntoIterator<Item = (Bucket, Vec<u8>, Vec<u8>)>,
    ) -> Result<(), OpenError>
    where
        B: Clone,
    {
        let mut batch = WriteBatch::default();
        for bucket in Bucket::ALL {
            for (key, _) in self.store.backend().scan(bucket, &[])? {
                batch.delete(bucket, key);
            }
        }
        for (bucket, key, value) in pairs {
            batch.put(bucket, key, value);
        }
        let mut backend = self.store.backend().clone();
        backend.write(batch)?;
        let cluster_id = self.cluster.id();
        *self = Self::open(backend, self.config)?;
        self.cluster.set_id(cluster_id);
        Ok(())
    }

    /// The last applied log index (etcd's consistent index).
    #[must_use]
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// The MVCC store, for reads.
    #[must_use]
    pub fn store(&self) -> &Store<B> {
        &self.store
    }

    /// The lease table, for reads.
    #[must_use]
    pub fn lessor(&self) -> &Lessor {
        &self.lessor
    }

    /// The auth state, for the server's token checks and for permission checks of
    /// requests it serves without the log (serializable ranges, watches).
    #[must_use]
    pub fn auth(&self) -> &AuthStore {
        &self.auth
    }

    /// The cluster membership.
    #[must_use]
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Sets the cluster ID (known from configuration or learned when joining; not
    /// replicated through the log, as in etcd).
    pub fn set_cluster_id(&mut self, id: crate::membership::ClusterId) {
        self.cluster.set_id(id);
    }

    /// The v2 store, for reads and watches that do not go through the log.
    #[must_use]
    pub fn v2(&self) -> &v2::Store {
        &self.v2
    }

    /// The raised alarms.
    #[must_use]
    pub fn alarms(&self) -> &Alarms {
        &self.alarms
    }

    /// Applies the committed entry at `index`. `now_ms` is this member's clock, used
    /// only to start lease clocks on the leader and to render v2 TTLs. Returns
    /// `Ok(None)` without any effect if `index <= applied_index()`.
    ///
    /// # Errors
    /// [`BackendError`] if the batch could not be written: fatal for the server.
    pub fn apply(
        &mut self,
        index: u64,
        proposal: &Proposal,
        now_ms: u64,
    ) -> Result<Option<Applied>, BackendError> {
        if index <= self.applied_index {
            return Ok(None);
        }
        let mut extra = WriteBatch::default();
        let info = proposal.auth.clone().unwrap_or_default();
        let result = self.execute(&proposal.command, &info, now_ms, &mut extra);
        let log_bucket = match proposal.command {
            Command::Auth(_) => Some(Bucket::Auth),
            Command::V2(_) | Command::Membership(_) => Some(Bucket::V2),
            _ => None,
        };
        if let Some(bucket) = log_bucket {
            let mut v = now_ms.to_be_bytes().to_vec();
            v.extend_from_slice(&codec::encode(proposal));
            extra.put(bucket, index.to_be_bytes().to_vec(), v);
        }
        self.finish(index, extra)?;
        Ok(Some(Applied {
            index,
            request_id: proposal.request_id,
            result,
            events: self.store.take_events(),
            revision: self.store.current_revision(),
        }))
    }

    /// Records an entry with no command (Raft's empty entries, configuration-change
    /// entries handled elsewhere) as applied. No effect if already applied.
    ///
    /// # Errors
    /// [`BackendError`]: fatal.
    pub fn apply_empty(&mut self, index: u64) -> Result<(), BackendError> {
        if index <= self.applied_index {
            return Ok(());
        }
        self.finish(index, WriteBatch::default())
    }

    fn finish(&mut self, index: u64, mut extra: WriteBatch) -> Result<(), BackendError> {
        extra.put(
            Bucket::Meta,
            CONSISTENT_INDEX_KEY.to_vec(),
            index.to_be_bytes().to_vec(),
        );
        self.store.commit(extra)?;
        self.applied_index = index;
        Ok(())
    }

    /// etcd's `checkLeasePuts`: write access to every key attached to `id`.
    fn check_lease_puts(&self, info: &AuthInfo, id: LeaseId) -> Result<(), AuthError> {
        let keys = self.store.keys_of_lease(id);
        self.auth
            .is_lease_keys_put_permitted(info, keys.iter().map(Vec::as_slice))
    }

    /// The permission checks of etcd 3.4's `authApplierV3` for KV and lease commands,
    /// after the request checks etcd makes before proposing.
    fn check_kv_auth(&self, command: &Command, info: &AuthInfo) -> Result<(), ApplyError> {
        match command {
            Command::Range(r) => {
                validate::check_range(r)?;
                self.auth.is_range_permitted(info, &r.key, &r.range_end)?;
            }
            Command::Put(r) => {
                validate::check_put(r)?;
                self.auth.is_put_permitted(info, &r.key)?;
                self.check_lease_puts(info, r.lease)?;
                if r.prev_kv {
                    self.auth.is_range_permitted(info, &r.key, &[])?;
                }
            }
            Command::DeleteRange(r) => {
                validate::check_delete(r)?;
                self.auth
                    .is_delete_range_permitted(info, &r.key, &r.range_end)?;
                if r.prev_kv {
                    self.auth.is_range_permitted(info, &r.key, &r.range_end)?;
                }
            }
            Command::Txn(t) => {
                validate::check_txn(t)?;
                self.auth
                    .is_txn_permitted(info, &txn_check(t), self.config.txn_auth_mode)?;
            }
            Command::LeaseRevoke { id } => self.check_lease_puts(info, *id)?,
            Command::Compaction(_)
            | Command::LeaseGrant { .. }
            | Command::Auth(_)
            | Command::V2(_)
            | Command::Membership(_)
            | Command::Alarm(_) => {}
        }
        Ok(())
    }

    fn execute(
        &mut self,
        command: &Command,
        info: &AuthInfo,
        now_ms: u64,
        batch: &mut WriteBatch,
    ) -> Result<Response, ApplyError> {
        // etcd's capped and corrupt appliers wrap the auth applier: alarms first.
        self.alarms.check(command.guarded())?;
        self.check_kv_auth(command, info)?;
        Ok(match command {
            Command::Range(r) => Response::Range(self.store.range(r)?),
            Command::Put(r) => Response::Put(self.store.put(r, &self.lessor)?),
            Command::DeleteRange(r) => Response::DeleteRange(self.store.delete_range(r)?),
            Command::Txn(r) => Response::Txn(self.store.txn(r, &self.lessor)?),
            Command::Compaction(r) => Response::Compaction(self.store.compact(r.revision)?),
            Command::LeaseGrant { id, ttl_secs } => {
                let l = self.lessor.grant(*id, *ttl_secs, now_ms)?;
                batch.put(Bucket::Lease, lease_key(l.id), l.encode());
                Response::LeaseGrant(LeaseGrantResponse {
                    revision: self.store.current_revision(),
                    id: l.id,
                    ttl_secs: l.ttl_secs,
                })
            }
            Command::LeaseRevoke { id } => {
                let l = self.lessor.revoke(*id)?;
                let keys = self.store.keys_of_lease(l.id);
                let revision = self.store.delete_keys(&keys);
                batch.delete(Bucket::Lease, lease_key(l.id));
                Response::LeaseRevoke(LeaseRevokeResponse { revision })
            }
            Command::Auth(c) => Response::Auth(self.execute_auth(c, info)?),
            Command::V2(r) => Response::V2(self.v2.apply(r, now_ms)?),
            Command::Membership(c) => {
                self.execute_membership(c, now_ms)?;
                Response::MembershipChanged
            }
            Command::Alarm(r) => Response::Alarm(self.execute_alarm(*r, batch)),
        })
    }

    /// etcd's `applierV3backend.Alarm`.
    fn execute_alarm(&mut self, r: AlarmRequest, batch: &mut WriteBatch) -> Vec<AlarmMember> {
        let member = AlarmMember {
            member_id: r.member_id,
            alarm: r.alarm,
        };
        match r.action {
            AlarmAction::Get => self.alarms.get(r.alarm),
            AlarmAction::Activate => {
                let (raised, added) = self.alarms.activate(member);
                if added {
                    batch.put(Bucket::Meta, member.key(), Vec::new());
                }
                raised.into_iter().collect()
            }
            AlarmAction::Deactivate => {
                let cleared = self.alarms.deactivate(member);
                if cleared.is_some() {
                    batch.delete(Bucket::Meta, member.key());
                }
                cleared.into_iter().collect()
            }
        }
    }

    fn execute_membership(&mut self, c: &MemberChange, now_ms: u64) -> Result<(), ApplyError> {
        let (cluster, store) = (&mut self.cluster, &mut self.v2);
        match c {
            MemberChange::Add(m) => cluster.add_member(m.clone(), store, now_ms)?,
            MemberChange::Remove(id) => cluster.remove_member(*id, store, now_ms)?,
            MemberChange::UpdatePeerUrls { id, peer_urls } => {
                cluster.update_peer_urls(*id, peer_urls, store, now_ms)?;
            }
            MemberChange::Promote(id) => cluster.promote_member(*id, store, now_ms)?,
            MemberChange::Attributes {
                id,
                name,
                client_urls,
            } => cluster.update_attributes(*id, name, client_urls, store, now_ms),
            MemberChange::ClusterVersion(v) => cluster.set_version(*v, store, now_ms),
        }
        Ok(())
    }

    /// An auth request as etcd 3.4 applies it: the admin check (`needAdminPermission`,
    /// with the own-user and own-role exceptions), then the auth store's operation.
    fn execute_auth(
        &mut self,
        c: &AuthCommand,
        info: &AuthInfo,
    ) -> Result<AuthResponse, ApplyError> {
        match c {
            AuthCommand::UserGet { name } => self.auth.is_user_get_permitted(info, name)?,
            AuthCommand::RoleGet { role } => self.auth.is_role_get_permitted(info, role)?,
            _ if c.needs_admin() => self.auth.is_admin_permitted(info)?,
            _ => {}
        }
        let a = &mut self.auth;
        Ok(match c {
            AuthCommand::Enable => a.auth_enable().map(|()| AuthResponse::Done)?,
            AuthCommand::Disable => {
                a.auth_disable();
                AuthResponse::Done
            }
            AuthCommand::Authenticate { name, simple_token } => {
                let auth_revision = a.authenticate(name)?;
                AuthResponse::Authenticated {
                    token: simple_token.clone(),
                    auth_revision,
                }
            }
            AuthCommand::UserAdd {
                name,
                password_hash,
                no_password,
            } => {
                a.user_add(name, password_hash.clone(), *no_password)?;
                AuthResponse::Done
            }
            AuthCommand::UserDelete { name } => a.user_delete(name).map(|()| AuthResponse::Done)?,
            AuthCommand::UserChangePassword {
                name,
                password_hash,
            } => a
                .user_change_password(name, password_hash.clone())
                .map(|()| AuthResponse::Done)?,
            AuthCommand::UserGrantRole { user, role } => {
                a.user_grant_role(user, role).map(|()| AuthResponse::Done)?
            }
            AuthCommand::UserRevokeRole { name, role } => a
                .user_revoke_role(name, role)
                .map(|()| AuthResponse::Done)?,
            AuthCommand::UserGet { name } => AuthResponse::Names(a.user_get(name)?),
            AuthCommand::UserList => AuthResponse::Names(a.user_list()),
            AuthCommand::RoleAdd { name } => a.role_add(name).map(|()| AuthResponse::Done)?,
            AuthCommand::RoleGet { role } => AuthResponse::Permissions(a.role_get(role)?),
            AuthCommand::RoleList => AuthResponse::Names(a.role_list()),
            AuthCommand::RoleDelete { role } => a.role_delete(role).map(|()| AuthResponse::Done)?,
            AuthCommand::RoleGrantPermission { name, perm } => a
                .role_grant_permission(name, perm.clone())
                .map(|()| AuthResponse::Done)?,
            AuthCommand::RoleRevokePermission {
                role,
                key,
                range_end,
            } => a
                .role_revoke_permission(role, key, range_end)
                .map(|()| AuthResponse::Done)?,
            AuthCommand::RestoreRevision { revision } => {
                a.restore_revision(*revision);
                AuthResponse::Done
            }
        })
    }

    // ---- reads and leader-local lease calls (not through the log) -----------------

    /// A serializable range on this member's state.
    ///
    /// # Errors
    /// As [`Store::range`].
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        self.store.range(req)
    }

    /// etcd's `HashKV` on this member's state; see [`Store::hash_kv`].
    ///
    /// # Errors
    /// As [`Store::hash_kv`].
    pub fn hash_kv(&self, rev: i64) -> Result<HashKv, MvccError> {
        self.store.hash_kv(rev)
    }

    /// Events for a new watcher; see [`Store::events_since`].
    ///
    /// # Errors
    /// As [`Store::events_since`].
    pub fn events_since(
        &self,
        start_rev: i64,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<Vec<Event>, MvccError> {
        self.store.events_since(start_rev, key, range_end)
    }

    /// This member became leader: start every lease clock (see [`Lessor::promote`]).
    pub fn promote(&mut self, now_ms: u64, extend_ms: u64) {
        self.lessor.promote(now_ms, extend_ms);
    }

    /// This member stopped being leader: stop every lease clock.
    pub fn demote(&mut self) {
        self.lessor.demote();
    }

    /// Keep-alive on the leader; see [`Lessor::renew`].
    ///
    /// # Errors
    /// As [`Lessor::renew`].
    pub fn lease_renew(&mut self, id: LeaseId, now_ms: u64) -> Result<i64, LeaseError> {
        self.lessor.renew(id, now_ms)
    }

    /// Time-to-live on the leader, with the attached keys if `with_keys`.
    #[must_use]
    pub fn lease_time_to_live(&self, id: LeaseId, now_ms: u64, with_keys: bool) -> TimeToLive {
        let keys = if with_keys {
            self.store.keys_of_lease(id)
        } else {
            Vec::new()
        };
        self.lessor.time_to_live(id, now_ms, keys)
    }

    /// All leases (etcd `LeaseLeases`).
    #[must_use]
    pub fn lease_list(&self) -> Vec<Lease> {
        self.lessor.leases()
    }

    /// Leases the leader should revoke now (propose [`Command::LeaseRevoke`] for each).
    #[must_use]
    pub fn expired_leases(&self, now_ms: u64, limit: usize) -> Vec<LeaseId> {
        self.lessor.expired_leases(now_ms, limit)
    }
}

fn corrupt(bucket: Bucket, key: &[u8], reason: &str) -> OpenError {
    OpenError::Corrupt {
        bucket,
        key: key.to_vec(),
        reason: reason.to_owned(),
    }
}

/// Splits a logged auth/v2 entry into its `now_ms` and proposal.
fn decode_logged(v: &[u8]) -> Option<(u64, Proposal)> {
    let (now, rest) = v.split_at_checked(8)?;
    let now_ms = u64::from_be_bytes(now.try_into().ok()?);
    Some((now_ms, codec::decode(rest).ok()?))
}

/// A txn reduced to what the permission check looks at.
fn txn_check(t: &TxnRequest) -> TxnCheck {
    let ops = |ops: &[RequestOp]| -> Vec<TxnOpCheck> {
        ops.iter()
            .map(|op| match op {
                RequestOp::Range(r) => TxnOpCheck::Range {
                    key: r.key.clone(),
                    range_end: r.range_end.clone(),
                },
                RequestOp::Put(p) => TxnOpCheck::Put {
                    key: p.key.clone(),
                    prev_kv: p.prev_kv,
                },
                RequestOp::DeleteRange(d) => TxnOpCheck::DeleteRange {
                    key: d.key.clone(),
                    range_end: d.range_end.clone(),
                    prev_kv: d.prev_kv,
                },
                RequestOp::Txn(n) => TxnOpCheck::Txn(txn_check(n)),
            })
            .collect()
    };
    TxnCheck {
        compares: t
            .compare
            .iter()
            .map(|c| (c.key.clone(), c.range_end.clone()))
            .collect(),
        success: ops(&t.success),
        failure: ops(&t.failure),
    }
}

/// The `lease`-bucket key of a lease: its ID as 8 bytes big-endian (etcd's layout).
#[must_use]
pub fn lease_key(id: LeaseId) -> Vec<u8> {
    id.0.to_be_bytes().to_vec()
}
