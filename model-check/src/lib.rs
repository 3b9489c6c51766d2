//! `oxetcd-model-check`: stateright models of an oxetcd cluster. The models drive
//! `oxetcd_spec::raft` verbatim over a lossy, duplicating, reordering network with
//! crash-restart; no Raft logic lives here, only the harness and the properties.
//!
//! - [`config`]: what a run explores (servers, clients, network, crashes, injected bug).
//! - [`model`]: the actors (servers executing `spec::raft::Node`, clients) and the model.
//! - [`properties`]: the checked properties and their table (property → Raft paper §).
//! - [`kv`]: the tiny replicated key-value map and its sequential specification.
//! - [`run`]: running the checker and reporting (used by the `oxetcd-model` binary).
//! - [`trace`]: step-by-step traces of one run, as text and as a Mermaid diagram.
//! - [`scenario`]: scripted prefixes (Figure 8) the search can start from.
//! - [`walk`]: seeded random walks that reach states beyond the exhaustive frontier.

pub mod config;
pub mod kv;
pub mod model;
pub mod properties;
pub mod run;
pub mod scenario;
pub mod trace;
pub mod walk;
