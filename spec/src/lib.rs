//! `oxetcd-spec`: the pure state machines of oxetcd.
//!
//! Everything that decides what the cluster does lives here, once: Raft ([`raft`]),
//! the revisioned key-value store ([`mvcc`]), leases ([`lease`]), authentication and
//! authorisation ([`auth`]), the v2 tree store ([`v2`]), cluster membership
//! ([`membership`]), member alarms ([`alarm`]) and the applier ([`apply`]) that turns one committed log entry into
//! one response. The production server (`impl/`) and the stateright models
//! (`model-check/`) both drive these types verbatim.
//!
//! What this crate is not: it does no I/O, reads no clock, starts no thread, awaits no
//! future and draws no OS randomness. Time enters as `tick()` calls and explicit `now_ms`
//! arguments; randomness comes from a seeded generator held in the state; collections
//! are ordered (`BTreeMap`, `VecDeque`) so iteration never depends on a hash seed. Same
//! inputs in the same order give the same outputs, bit for bit. `tests/purity.rs`
//! enforces this.
#![deny(missing_docs)]

pub mod alarm;
pub mod apply;
pub mod auth;
pub mod lease;
pub mod membership;
pub mod mvcc;
pub mod raft;
pub mod v2;
