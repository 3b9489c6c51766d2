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

use crate::lease::{Lease, LeaseError, LeaseId, Lessor, TimeToLive};
use crate::mvcc::{
    Backend, BackendError, Bucket, CompactionRequest, CompactionResponse, DeleteRangeRequest,
    DeleteRangeResponse, Event, HashKv, MemBackend, MvccError, OpenError, PutRequest, PutResponse,
    RangeRequest, RangeResponse, Store, TxnRequest, TxnResponse, WriteBatch,
};

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
    /// each expired lease as well, exactly as etcd does.
    LeaseRevoke {
        /// The lease's ID.
        id: LeaseId,
    },
}

/// Who sent a request, for permission checks at apply time (etcd's `RequestHeader`
/// `username` and `auth_revision`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct AuthInfo {
    /// The authenticated user name.
    pub username: String,
    /// The auth revision the token was checked against.
    pub auth_revision: u64,
}

/// What the server proposes to Raft: a [`Command`] with the request ID the proposer
/// uses to find the waiting client, and the sender's identity when auth is on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Proposal {
    /// Unique per proposer; echoed in [`Applied::request_id`].
    pub request_id: u64,
    /// The authenticated sender, if any.
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
}

/// Why a command had no effect, with etcd's texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// A KV error.
    #[error(transparent)]
    Mvcc(#[from] MvccError),
    /// A lease error.
    #[error(transparent)]
    Lease(#[from] LeaseError),
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
}

impl Default for AppConfig {
    /// etcd's defaults: heartbeat 100 ms, election 1000 ms, so a 2 s minimum TTL.
    fn default() -> Self {
        Self {
            min_lease_ttl_secs: crate::lease::min_lease_ttl_secs(100, 1000),
        }
    }
}

/// The replicated application state: MVCC store, leases and the applied index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AppState<B = MemBackend> {
    store: Store<B>,
    lessor: Lessor,
    applied_index: u64,
}

impl<B: Backend> AppState<B> {
    /// A fresh state (revision 1, no leases, nothing applied) over an empty `backend`.
    #[must_use]
    pub fn new(backend: B, config: AppConfig) -> Self {
        Self {
            store: Store::new(backend),
            lessor: Lessor::new(config.min_lease_ttl_secs),
            applied_index: 0,
        }
    }

    /// Rebuilds the state from `backend` after a restart: the KV index, the leases
    /// (clocks stopped until [`AppState::promote`]) and the applied index.
    ///
    /// # Errors
    /// [`OpenError`] if the backend fails or holds malformed entries.
    pub fn open(backend: B, config: AppConfig) -> Result<Self, OpenError> {
        let store = Store::open(backend)?;
        let mut lessor = Lessor::new(config.min_lease_ttl_secs);
        let mut leases = Vec::new();
        for (k, v) in store.backend().scan(Bucket::Lease, &[])? {
            let l = Lease::decode(&v).map_err(|e| OpenError::Corrupt {
                bucket: Bucket::Lease,
                key: k.clone(),
                reason: e.to_string(),
            })?;
            leases.push(l);
        }
        lessor.restore(leases);
        let applied_index = match store.backend().get(Bucket::Meta, CONSISTENT_INDEX_KEY)? {
            None => 0,
            Some(v) => {
                u64::from_be_bytes(v.as_slice().try_into().map_err(|_| OpenError::Corrupt {
                    bucket: Bucket::Meta,
                    key: CONSISTENT_INDEX_KEY.to_vec(),
                    reason: "not 8 bytes".to_owned(),
                })?)
            }
        };
        Ok(Self {
            store,
            lessor,
            applied_index,
        })
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

    /// Applies the committed entry at `index`. `now_ms` is this member's clock, used
    /// only to start lease clocks on the leader. Returns `Ok(None)` without any effect
    /// if `index <= applied_index()`.
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
        let result = self.execute(&proposal.command, now_ms, &mut extra);
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

    fn execute(
        &mut self,
        command: &Command,
        now_ms: u64,
        batch: &mut WriteBatch,
    ) -> Result<Response, ApplyError> {
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

/// The `lease`-bucket key of a lease: its ID as 8 bytes big-endian (etcd's layout).
#[must_use]
pub fn lease_key(id: LeaseId) -> Vec<u8> {
    id.0.to_be_bytes().to_vec()
}
