//! `oxetcd-api`: etcd's v3 wire format (packages `etcdserverpb`, `mvccpb`, `authpb`,
//! `v3lockpb`, `v3electionpb`, and gRPC's `grpc.health.v1`) as prost/tonic types, plus the encoded file descriptor set
//! for dynamic (reflection-based) use by black-box tools.
//!
//! The `.proto` sources live in `impl/api/proto/` and are compiled by `build.rs` with
//! protox (no protoc needed). gRPC method paths are etcd's own, e.g.
//! `/etcdserverpb.KV/Range`, `/v3lockpb.Lock/Lock`, `/v3electionpb.Election/Campaign`.

#![allow(
    missing_docs,
    clippy::all,
    clippy::unwrap_used,
    missing_debug_implementations
)]

/// MVCC records and watch events (`mvccpb`).
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// Users, roles and permissions (`authpb`).
pub mod authpb {
    tonic::include_proto!("authpb");
}

/// The client services KV, Watch, Lease, Cluster, Maintenance and Auth (`etcdserverpb`).
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// The distributed lock service (`v3lockpb`).
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

/// The leader election service (`v3electionpb`).
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}

/// The gRPC health checking protocol (`grpc.health.v1`), served beside etcd's services.
pub mod grpc_health_v1 {
    tonic::include_proto!("grpc.health.v1");
}

/// Encoded `google.protobuf.FileDescriptorSet` of every file above, for prost-reflect.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/oxetcd_descriptor.bin"));
