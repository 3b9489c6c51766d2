//! The v2 tree store (etcd 3.4 `etcdserver/api/v2store` and `applierV2store`): keys and
//! directories, TTLs with expiry through the log, compare-and-swap/delete, in-order keys,
//! hidden keys, the 1000-event history, watch matching and every v2 error code.
//!
//! What it is: the state machine behind `/v2/keys`, deterministic and clock-free. Time
//! enters as explicit `now_ms` (to render remaining TTLs) and as absolute expiration
//! times computed by the server when it receives a request (etcd's HTTP handler does
//! `now + ttl` before proposing). Expiry happens only when the leader proposes a SYNC
//! ([`Request::Sync`]) carrying its clock; applying it removes what has expired by then
//! and produces "expire" events.
//!
//! What it is not: the HTTP transport. The pure part of etcd's request parsing (form
//! validation with its 2xx errors, the mapping to store requests) is
//! [`parse_key_request`]; bodies are rendered by [`Event::to_json`] /
//! [`V2Error::to_json`] (etcd's `json.Encoder` adds a trailing newline: the server
//! appends `\n`). Watch channels are the server's; [`Store::watch`] and
//! [`Watcher::matches`] decide what they deliver.
//!
//! Paths: like etcd, the store has two read-only namespaces, `/0` (cluster: members and
//! version, written by the applier for membership changes) and `/1` (the keys API). The
//! server maps `/v2/keys/foo` to [`keys_path`]`("/foo") == "/1/foo"` and trims `/1` from
//! answers ([`Event::trim_prefix`], [`V2Error::trim_cause_prefix`]), exactly as etcd's
//! v2http does; this is why `GET /v2/keys/` shows a node without key and why writing
//! `/` is "Root is read only" with cause "/". Every modification of either namespace
//! takes one store index and one history slot, so a fresh single-node etcd 3.4 has
//! index 3 (member added, member attributes published, cluster version set) before the
//! first user write.
//!
//! Unsorted listings: etcd lists children in Go map order (random) unless `sorted=true`;
//! this store always lists in name order, one of the orders etcd may produce.

mod error;
mod event;
mod history;
mod http;
pub mod json;
mod path;
mod store;

pub use error::{V2Error, V2ErrorCode};
pub use event::{Action, Event, NodeView, ttl_seconds};
pub use history::{EventHistory, HISTORY_CAPACITY, WatchStart, Watcher};
pub use http::{KeyRequest, ParsedKeyRequest, parse_key_request};
pub use path::clean as clean_path;
pub use store::{CLUSTER_PREFIX, KEYS_PREFIX, MIN_EXPIRE_MS, Store, TtlOptions, keys_path};

/// A v2 request as it goes through the log (etcd's `RequestV2` for the methods the
/// applier handles), with store paths.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Request {
    /// PUT. Dispatch as etcd's `applierV2store.PUT`: `prev_exist == Some(true)` is
    /// Update (or CompareAndSwap when prevValue/prevIndex are given), `Some(false)` is
    /// Create, otherwise prevValue/prevIndex make it CompareAndSwap, else Set.
    ///
    /// etcd 3.4 also intercepts PUTs of `/0/members/<id>/attributes` and `/0/version`
    /// here to update the cluster; that is the applier's job (it owns the membership).
    Put {
        /// Store path.
        path: String,
        /// The new value (`value=` form field).
        value: String,
        /// `dir=true`.
        dir: bool,
        /// `prevExist=` when given.
        prev_exist: Option<bool>,
        /// `prevValue=` ("" when not given).
        prev_value: String,
        /// `prevIndex=` (0 when not given).
        prev_index: u64,
        /// Expiration and refresh.
        ttl: TtlOptions,
    },
    /// POST: Create with a unique in-order name under `path`.
    Post {
        /// Store path of the parent directory.
        path: String,
        /// The value.
        value: String,
        /// `dir=true`: create a directory.
        dir: bool,
        /// Expiration (refresh is ignored by Create).
        ttl: TtlOptions,
    },
    /// DELETE: CompareAndDelete when prevValue/prevIndex are given, else Delete.
    Delete {
        /// Store path.
        path: String,
        /// `dir=true`.
        dir: bool,
        /// `recursive=true`.
        recursive: bool,
        /// `prevValue=` ("" when not given).
        prev_value: String,
        /// `prevIndex=` (0 when not given).
        prev_index: u64,
    },
    /// A quorum GET (`quorum=true`), answered through the log.
    QGet {
        /// Store path.
        path: String,
        /// `recursive=true`.
        recursive: bool,
        /// `sorted=true` (listings are always sorted here; see the module docs).
        sorted: bool,
    },
    /// The leader's periodic SYNC: expire every node whose TTL ran out by `time_ms`.
    Sync {
        /// The leader's clock when it proposed the SYNC, ms since the Unix epoch.
        time_ms: u64,
    },
}

/// The outcome of applying a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Applied {
    /// The event answering a PUT, POST, DELETE or QGET.
    Event(Box<Event>),
    /// The "expire" events a SYNC produced (possibly none); nobody waits for them
    /// except watchers.
    Expired(Vec<Event>),
}

impl Store {
    /// Applies one committed v2 request exactly as etcd's `applierV2store` does.
    /// `now_ms` is the applying member's clock, used only to render remaining TTLs.
    ///
    /// # Errors
    /// The store's v2 errors (codes 100-108, 401 never: watches do not go through here).
    pub fn apply(&mut self, request: &Request, now_ms: u64) -> Result<Applied, V2Error> {
        let event = match request {
            Request::Put {
                path,
                value,
                dir,
                prev_exist,
                prev_value,
                prev_index,
                ttl,
            } => {
                let compare = *prev_index > 0 || !prev_value.is_empty();
                match prev_exist {
                    Some(true) if compare => {
                        self.compare_and_swap(path, prev_value, *prev_index, value, *ttl, now_ms)
                    }
                    Some(true) => self.update(path, value, *ttl, now_ms),
                    Some(false) => self.create(path, *dir, value, false, *ttl, now_ms),
                    None if compare => {
                        self.compare_and_swap(path, prev_value, *prev_index, value, *ttl, now_ms)
                    }
                    None => self.set(path, *dir, value, *ttl, now_ms),
                }
            }
            Request::Post {
                path,
                value,
                dir,
                ttl,
            } => self.create(path, *dir, value, true, *ttl, now_ms),
            Request::Delete {
                path,
                dir,
                recursive,
                prev_value,
                prev_index,
            } => {
                if *prev_index > 0 || !prev_value.is_empty() {
                    self.compare_and_delete(path, prev_value, *prev_index, now_ms)
                } else {
                    self.delete(path, *dir, *recursive, now_ms)
                }
            }
            Request::QGet {
                path, recursive, ..
            } => self.get(path, *recursive, now_ms),
            Request::Sync { time_ms } => {
                return Ok(Applied::Expired(self.delete_expired_keys(*time_ms)));
            }
        };
        let applied = event.map(|e| Applied::Event(Box::new(e)));
        debug_assert!({
            self.check_invariants();
            true
        });
        applied
    }
}
