//! `oxetcd-model-check`: stateright models of an oxetcd cluster. The models drive
//! `oxetcd_spec::raft` verbatim over a lossy, duplicating, reordering network with
//! crash-restart; no Raft logic lives here, only the harness and the properties.
//!
//! - [`config`]: what a run explores (servers, clients, network, crashes, injected bug).
//! - [`kv`]: the tiny replicated key-value map and its sequential specification.

pub mod config;
pub mod kv;
