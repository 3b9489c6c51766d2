//! `oxetcd`: the production server. Configuration (etcd's flags and `ETCD_*` variables),
//! storage on fjall, the peer transport, the node loop that drives `oxetcd_spec`, and the
//! client APIs (v3 gRPC, v3 JSON gateway, v2 keys API, health, metrics).
//!
//! This crate holds no consensus, MVCC, lease, auth or v2-store logic: all of that is in
//! `oxetcd_spec`, which this crate drives verbatim.

pub mod authority;
pub mod compactor;
pub mod config;
pub mod corruption;
pub mod errors;
pub mod gateway;
pub mod grpc_metrics;
pub mod http;
pub mod join;
pub mod logging;
pub mod metrics;
pub mod node_loop;
pub mod peer;
pub mod server;
pub mod snapshot;
pub mod storage;
pub mod tls;
pub mod token;
pub mod v2;
pub mod v3;
pub mod version;
