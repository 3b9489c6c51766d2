//! Sequential models of etcd for the linearizability checker (porcupine-rs).
//!
//! [`KvModel`] is the store as one global revisioned key-value map with leases, as
//! etcd's robustness tests model it: every response's header revision, every key's
//! create/mod revision and version are predicted, so the whole history forms a single
//! partition. [`RegisterModel`] is a per-key register that still tracks each key's mod
//! revision; it lets a history of single-key Put/Get operations be split per key.
//!
//! Operations of unknown outcome are given an infinite return time, so the checker may
//! place them anywhere after their invocation (or at the very end, where they affect
//! nothing that was observed).

use std::collections::{BTreeMap, BTreeSet};

use porcupine_rs::{Model, Operation};

use super::history::{Cond, Kv, KvOp, KvResult, Request, Response};

/// One key's state in [`KvState`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyState {
    /// Current value.
    pub value: String,
    /// Revision of creation.
    pub create_rev: i64,
    /// Revision of the last modification.
    pub mod_rev: i64,
    /// Modifications since creation.
    pub version: i64,
    /// Attached lease (0: none).
    pub lease: i64,
}

/// The whole store: revision, keys, live leases.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KvState {
    /// The current (last written) revision.
    pub revision: i64,
    /// Live keys.
    pub keys: BTreeMap<String, KeyState>,
    /// Live leases.
    pub leases: BTreeSet<i64>,
    /// Stale-leader windows already closed (see [`ModelOp::StaleRevoke`]).
    pub closed_windows: BTreeSet<usize>,
}

/// An operation as the models see it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ModelOp {
    /// Sets the starting revision (first operation of every history).
    Init {
        /// The store's revision before the run.
        revision: i64,
    },
    /// A request and its response (`None`: unknown outcome).
    Do {
        /// The request.
        req: Request,
        /// The response, if known.
        resp: Option<Response>,
    },
    /// Known etcd deviation (etcd-io/etcd#15247): a resumed stale leader may revoke
    /// lease `id` while its window is open. Given an infinite return time, the checker
    /// may place it inside the window (the lease and its keys are dropped) or after the
    /// window's [`ModelOp::WindowEnd`] (no effect), so the revoke is optional.
    StaleRevoke {
        /// The lease.
        id: i64,
        /// The stale-leader window.
        window: usize,
    },
    /// Closes a stale-leader window (placed at its end time).
    WindowEnd {
        /// The window.
        window: usize,
    },
}

fn matches_range(k: &str, key: &str, prefix: bool) -> bool {
    if prefix { k.starts_with(key) } else { k == key }
}

impl KvState {
    fn cond_holds(&self, c: &Cond) -> bool {
        match c {
            Cond::Version(k, v) => self.keys.get(k).map_or(0, |s| s.version) == *v,
            Cond::ModRev(k, v) => self.keys.get(k).map_or(0, |s| s.mod_rev) == *v,
        }
    }

    /// Applies a transaction; returns the new state and the response etcd would give.
    pub fn txn(&self, conds: &[Cond], then: &[KvOp], els: &[KvOp]) -> (KvState, Response) {
        let succeeded = conds.iter().all(|c| self.cond_holds(c));
        let ops = if succeeded { then } else { els };
        for op in ops {
            if let KvOp::Put { lease: Some(l), .. } = op
                && *l != 0
                && !self.leases.contains(l)
            {
                return (self.clone(), Response::LeaseNotFound);
            }
        }
        let mut next = self.clone();
        let rev = self.revision + 1;
        let mut changed = false;
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                KvOp::Range { key, prefix } => {
                    let kvs = next
                        .keys
                        .iter()
                        .filter(|(k, _)| matches_range(k, key, *prefix))
                        .map(|(k, s)| Kv {
                            key: k.clone(),
                            value: s.value.clone(),
                            create_rev: s.create_rev,
                            mod_rev: s.mod_rev,
                            version: s.version,
                            lease: s.lease,
                        })
                        .collect();
                    results.push(KvResult::Range(kvs));
                }
                KvOp::Put { key, value, lease } => {
                    changed = true;
                    let lease = lease.unwrap_or(0);
                    let entry = next.keys.get(key).cloned();
                    let state = match entry {
                        Some(s) => KeyState {
                            value: value.clone(),
                            create_rev: s.create_rev,
                            mod_rev: rev,
                            version: s.version + 1,
                            lease,
                        },
                        None => KeyState {
                            value: value.clone(),
                            create_rev: rev,
                            mod_rev: rev,
                            version: 1,
                            lease,
                        },
                    };
                    next.keys.insert(key.clone(), state);
                    results.push(KvResult::Put);
                }
                KvOp::Delete { key, prefix } => {
                    let doomed: Vec<String> = next
                        .keys
                        .keys()
                        .filter(|k| matches_range(k, key, *prefix))
                        .cloned()
                        .collect();
                    for k in &doomed {
                        next.keys.remove(k);
                    }
                    if !doomed.is_empty() {
                        changed = true;
                    }
                    results.push(KvResult::Delete(doomed.len() as i64));
                }
            }
        }
        if changed {
            next.revision = rev;
        }
        let revision = next.revision;
        (
            next,
            Response::Txn {
                succeeded,
                revision,
                results,
            },
        )
    }

    /// Removes a lease and its keys (revoke or expiry). Returns whether it existed.
    fn drop_lease(&mut self, id: i64) -> bool {
        if !self.leases.remove(&id) {
            return false;
        }
        let before = self.keys.len();
        self.keys.retain(|_, s| s.lease != id);
        if self.keys.len() != before {
            self.revision += 1;
        }
        true
    }

    /// Applies `req`; returns `None` when `resp` cannot be the response from this state,
    /// otherwise the state after the request.
    pub fn step(&self, req: &Request, resp: Option<&Response>) -> Option<KvState> {
        match req {
            Request::Txn { conds, then, els } => {
                let (next, expected) = self.txn(conds, then, els);
                match resp {
                    None => Some(next),
                    Some(r) if *r == expected => Some(next),
                    Some(_) => None,
                }
            }
            Request::SerializableGet { key } => {
                // Checked as if linearizable (only when deliberately misused).
                let (next, expected) = self.txn(
                    &[],
                    &[KvOp::Range {
                        key: key.clone(),
                        prefix: false,
                    }],
                    &[],
                );
                match resp {
                    None => Some(next),
                    Some(r) if *r == expected => Some(next),
                    Some(_) => None,
                }
            }
            Request::LeaseGrant { id, .. } => {
                let exists = self.leases.contains(id);
                match resp {
                    Some(Response::LeaseOk) | None if !exists => {
                        let mut next = self.clone();
                        next.leases.insert(*id);
                        Some(next)
                    }
                    None => Some(self.clone()),
                    _ => None,
                }
            }
            Request::LeaseRevoke { id } | Request::LeaseExpire { id } => {
                let mut next = self.clone();
                let existed = next.drop_lease(*id);
                match (resp, existed) {
                    (None, _)
                    | (Some(Response::LeaseOk), true)
                    | (Some(Response::LeaseNotFound), false) => Some(next),
                    _ => None,
                }
            }
            Request::LeaseKeepAlive { id } => {
                let exists = self.leases.contains(id);
                match (resp, exists) {
                    (None, _)
                    | (Some(Response::LeaseOk), true)
                    | (Some(Response::LeaseNotFound), false) => Some(self.clone()),
                    _ => None,
                }
            }
        }
    }
}

/// The global revisioned KV model with leases.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvModel;

impl Model for KvModel {
    type State = KvState;
    type Op = ModelOp;
    type Metadata = usize;

    fn init() -> KvState {
        KvState::default()
    }

    fn step(state: &KvState, op: &ModelOp) -> (bool, KvState) {
        match op {
            ModelOp::Init { revision } => {
                let mut s = state.clone();
                s.revision = *revision;
                (true, s)
            }
            ModelOp::Do { req, resp } => match state.step(req, resp.as_ref()) {
                Some(next) => (true, next),
                None => (false, state.clone()),
            },
            ModelOp::StaleRevoke { id, window } => {
                let mut next = state.clone();
                if !state.closed_windows.contains(window) {
                    next.drop_lease(*id);
                }
                (true, next)
            }
            ModelOp::WindowEnd { window } => {
                let mut next = state.clone();
                next.closed_windows.insert(*window);
                (true, next)
            }
        }
    }

    fn describe_operation(op: &ModelOp) -> String {
        describe_model_op(op)
    }

    fn describe_state(state: &KvState) -> String {
        let keys: Vec<String> = state
            .keys
            .iter()
            .map(|(k, s)| {
                let lease = if s.lease != 0 {
                    format!(" lease {:x}", s.lease)
                } else {
                    String::new()
                };
                format!(
                    "{k}={} (mod {}, ver {}{lease})",
                    s.value, s.mod_rev, s.version
                )
            })
            .collect();
        format!(
            "rev {} {{{}}} leases {}",
            state.revision,
            keys.join(", "),
            state.leases.len()
        )
    }
}

fn describe_model_op(op: &ModelOp) -> String {
    match op {
        ModelOp::Init { revision } => format!("init(rev {revision})"),
        ModelOp::StaleRevoke { id, window } => {
            format!("stale leader may revoke({id:x}) in window {window}")
        }
        ModelOp::WindowEnd { window } => format!("stale-leader window {window} ends"),
        ModelOp::Do { req, resp } => format!(
            "{} -> {}",
            super::history::describe_request(req),
            resp.as_ref()
                .map_or_else(|| "unknown".to_owned(), super::history::describe_response)
        ),
    }
}

/// A per-key register: the value and the revision of the key's last write (`None`
/// when that write's outcome, hence its revision, was unknown).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RegisterState {
    /// Current value (`None`: absent).
    pub value: Option<String>,
    /// Revision of the last write, when known.
    pub mod_rev: Option<i64>,
}

/// Per-key register model for single-key Put/Get/Delete histories; partitions by key.
#[derive(Clone, Copy, Debug, Default)]
pub struct RegisterModel;

impl RegisterModel {
    fn key_of(op: &ModelOp) -> Option<String> {
        match op {
            ModelOp::Do { req, .. } => req.single_key().map(str::to_owned),
            _ => None,
        }
    }
}

impl Model for RegisterModel {
    type State = RegisterState;
    type Op = ModelOp;
    type Metadata = usize;

    fn partition_operations(history: &[Operation<Self>]) -> Vec<Vec<Operation<Self>>> {
        let mut parts: BTreeMap<Option<String>, Vec<Operation<Self>>> = BTreeMap::new();
        for op in history {
            parts
                .entry(Self::key_of(&op.op))
                .or_default()
                .push(op.clone());
        }
        parts.into_values().collect()
    }

    fn init() -> RegisterState {
        RegisterState::default()
    }

    fn step(state: &RegisterState, op: &ModelOp) -> (bool, RegisterState) {
        let reject = (false, state.clone());
        let ModelOp::Do { req, resp } = op else {
            return (true, state.clone());
        };
        let kvop = match req {
            Request::Txn { conds, then, els }
                if conds.is_empty() && els.is_empty() && then.len() == 1 =>
            {
                then[0].clone()
            }
            Request::SerializableGet { key } => KvOp::Range {
                key: key.clone(),
                prefix: false,
            },
            _ => return reject,
        };
        let (revision, result) = match resp {
            None => (None, None),
            Some(Response::Txn {
                revision,
                results,
                succeeded: true,
            }) if results.len() == 1 => (Some(*revision), Some(&results[0])),
            Some(_) => return reject,
        };
        let newer = |r: i64| state.mod_rev.is_none_or(|m| r > m);
        match (kvop, result) {
            (KvOp::Put { value, .. }, None) => (
                true,
                RegisterState {
                    value: Some(value),
                    mod_rev: None,
                },
            ),
            (KvOp::Put { value, .. }, Some(KvResult::Put)) => match revision {
                Some(r) if newer(r) => (
                    true,
                    RegisterState {
                        value: Some(value),
                        mod_rev: Some(r),
                    },
                ),
                _ => reject,
            },
            (KvOp::Delete { .. }, None) => (
                true,
                RegisterState {
                    value: None,
                    mod_rev: None,
                },
            ),
            (KvOp::Delete { .. }, Some(KvResult::Delete(n))) => {
                let existed = state.value.is_some();
                match (existed, *n, revision) {
                    (true, 1, Some(r)) if newer(r) => (
                        true,
                        RegisterState {
                            value: None,
                            mod_rev: Some(r),
                        },
                    ),
                    (false, 0, _) => (true, state.clone()),
                    _ => reject,
                }
            }
            (KvOp::Range { .. }, None) => (true, state.clone()),
            (KvOp::Range { .. }, Some(KvResult::Range(kvs))) => {
                match (kvs.as_slice(), &state.value) {
                    ([], None) => (true, state.clone()),
                    ([kv], Some(v))
                        if kv.value == *v && state.mod_rev.is_none_or(|m| m == kv.mod_rev) =>
                    {
                        (
                            true,
                            RegisterState {
                                value: Some(v.clone()),
                                mod_rev: Some(kv.mod_rev),
                            },
                        )
                    }
                    _ => reject,
                }
            }
            _ => reject,
        }
    }

    fn describe_operation(op: &ModelOp) -> String {
        describe_model_op(op)
    }

    fn describe_state(state: &RegisterState) -> String {
        match (&state.value, state.mod_rev) {
            (None, _) => "absent".to_owned(),
            (Some(v), Some(m)) => format!("{v} (mod {m})"),
            (Some(v), None) => format!("{v} (mod ?)"),
        }
    }
}
