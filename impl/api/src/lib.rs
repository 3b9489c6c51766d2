//! `oxetcd-api`: etcd's v3 wire format (packages `etcdserverpb`, `mvccpb`, `authpb`,
//! `v3lockpb`, `v3electionpb`) as prost/tonic types, plus the encoded file descriptor set
//! for dynamic (reflection-based) use by black-box tools.
