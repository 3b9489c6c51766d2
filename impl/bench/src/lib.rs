//! `oxetcd-bench`: a load generator for etcd-compatible endpoints modelled on etcd's
//! `benchmark` tool (`put`, `range`, `txn-put`, `watch-latency`), and `compare`, which
//! runs the target workloads against a real etcd 3.4.23 and oxetcd side by side.

pub mod cli;
pub mod compare;
pub mod floor;
pub mod grpc;
pub mod server;
pub mod stats;
pub mod workload;
