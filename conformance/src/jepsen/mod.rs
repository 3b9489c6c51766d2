//! Jepsen-style testing of any etcd endpoint: concurrent client workloads record a
//! history (invocation and completion times, unknown outcomes), faults are injected on
//! a locally launched cluster on a seeded schedule, and the history is checked for
//! linearizability (porcupine-rs against the sequential models in [`model`]), stale or
//! future serializable reads, lost acknowledged writes and watch anomalies.

pub mod check;
pub mod history;
pub mod model;
pub mod watch;
