//! `oxetcd-conformance`: holds any etcd endpoint to recorded etcd 3.4.23 behaviour
//! (transcript record and replay) and checks concurrent histories for linearizability
//! under injected faults. Black-box: it talks only to client URLs, never to server code.

pub mod deviations;
pub mod grpc;
pub mod launch;
pub mod ports;
pub mod report;
pub mod runner;
pub mod suite;
pub mod summary;
pub mod transcript;
pub mod value;

pub mod jepsen;
