//! The descriptor set and generated code expose etcd's exact gRPC method paths and
//! field numbers.

use prost::Message;
use prost_reflect::DescriptorPool;

fn pool() -> DescriptorPool {
    DescriptorPool::decode(oxetcd_api::FILE_DESCRIPTOR_SET).expect("descriptor set decodes")
}

fn method_paths(pool: &DescriptorPool) -> Vec<String> {
    pool.services()
        .flat_map(|s| {
            s.methods()
                .map(|m| format!("/{}/{}", s.full_name(), m.name()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn method_paths_match_etcd() {
    let paths = method_paths(&pool());
    for expected in [
        "/etcdserverpb.KV/Range",
        "/etcdserverpb.KV/Txn",
        "/etcdserverpb.KV/Compact",
        "/etcdserverpb.Watch/Watch",
        "/etcdserverpb.Lease/LeaseKeepAlive",
        "/etcdserverpb.Lease/LeaseLeases",
        "/etcdserverpb.Cluster/MemberList",
        "/etcdserverpb.Maintenance/HashKV",
        "/etcdserverpb.Auth/RoleGrantPermission",
        "/v3lockpb.Lock/Lock",
        "/v3lockpb.Lock/Unlock",
        "/v3electionpb.Election/Campaign",
        "/v3electionpb.Election/Observe",
    ] {
        assert!(paths.iter().any(|p| p == expected), "missing {expected}");
    }
}

#[test]
fn streaming_methods_are_streaming() {
    let pool = pool();
    let watch = pool
        .get_service_by_name("etcdserverpb.Watch")
        .expect("Watch service");
    let m = watch.methods().next().expect("Watch method");
    assert!(m.is_client_streaming() && m.is_server_streaming());
    let election = pool
        .get_service_by_name("v3electionpb.Election")
        .expect("Election service");
    let observe = election
        .methods()
        .find(|m| m.name() == "Observe")
        .expect("Observe");
    assert!(!observe.is_client_streaming() && observe.is_server_streaming());
}

#[test]
fn put_request_encodes_with_etcd_field_numbers() {
    let req = oxetcd_api::etcdserverpb::PutRequest {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        lease: 1,
        prev_kv: true,
        ignore_value: false,
        ignore_lease: false,
    };
    // key=1 (bytes), value=2 (bytes), lease=3 (varint), prev_kv=4 (varint).
    assert_eq!(
        req.encode_to_vec(),
        vec![0x0a, 1, b'k', 0x12, 1, b'v', 0x18, 1, 0x20, 1]
    );
}

#[test]
fn compare_range_end_is_field_64() {
    let pool = pool();
    let compare = pool
        .get_message_by_name("etcdserverpb.Compare")
        .expect("Compare");
    assert_eq!(
        compare
            .get_field_by_name("range_end")
            .expect("range_end")
            .number(),
        64
    );
    let watch = pool
        .get_message_by_name("etcdserverpb.WatchResponse")
        .expect("WatchResponse");
    assert_eq!(
        watch.get_field_by_name("events").expect("events").number(),
        11
    );
}
