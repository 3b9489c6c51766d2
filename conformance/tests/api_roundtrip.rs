//! oxetcd-api's field numbers agree with real etcd 3.4.23: data written by `etcdctl`
//! reads back through the generated types, and data written through the generated types
//! reads back through `etcdctl`.

mod etcd_support;

use oxetcd_api::etcdserverpb::kv_client::KvClient;
use oxetcd_api::etcdserverpb::lease_client::LeaseClient;
use oxetcd_api::etcdserverpb::{
    LeaseGrantRequest, LeaseTimeToLiveRequest, PutRequest, RangeRequest, range_request,
};
use std::process::Command;

fn etcdctl(endpoint: &str, args: &[&str]) -> String {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(endpoint)
        .args(args)
        .output()
        .expect("etcdctl runs (installed with the reference etcd)");
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn typed_messages_round_trip_with_etcdctl() {
    let etcd = etcd_support::RealEtcd::start();
    let ep = etcd.endpoint.clone();
    etcdctl(&ep, &["put", "/rt/a", "from-etcdctl"]);
    etcdctl(&ep, &["put", "/rt/b", "second"]);
    etcdctl(&ep, &["put", "/rt/a", "again"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let lease_id = rt.block_on(async {
        let mut kv = KvClient::connect(ep.clone()).await.expect("connect");
        let resp = kv
            .range(RangeRequest {
                key: b"/rt/".to_vec(),
                range_end: b"/rt0".to_vec(),
                sort_order: range_request::SortOrder::Descend as i32,
                sort_target: range_request::SortTarget::Key as i32,
                ..Default::default()
            })
            .await
            .expect("range")
            .into_inner();
        assert_eq!(resp.count, 2);
        let keys: Vec<&[u8]> = resp.kvs.iter().map(|kv| kv.key.as_slice()).collect();
        assert_eq!(keys, vec![b"/rt/b".as_slice(), b"/rt/a".as_slice()]);
        let a = &resp.kvs[1];
        assert_eq!(a.value, b"again");
        assert_eq!(a.version, 2);
        assert!(a.create_revision < a.mod_revision);
        assert_eq!(
            resp.header.as_ref().expect("header").revision,
            a.mod_revision
        );

        let mut lease = LeaseClient::connect(ep.clone()).await.expect("connect");
        let granted = lease
            .lease_grant(LeaseGrantRequest { ttl: 120, id: 0 })
            .await
            .expect("grant")
            .into_inner();
        assert_eq!(granted.ttl, 120);
        kv.put(PutRequest {
            key: b"/rt/typed".to_vec(),
            value: b"from-types".to_vec(),
            lease: granted.id,
            ..Default::default()
        })
        .await
        .expect("put");
        let ttl = lease
            .lease_time_to_live(LeaseTimeToLiveRequest {
                id: granted.id,
                keys: true,
            })
            .await
            .expect("ttl")
            .into_inner();
        assert_eq!(ttl.granted_ttl, 120);
        assert_eq!(ttl.keys, vec![b"/rt/typed".to_vec()]);
        granted.id
    });
    let json = etcdctl(&ep, &["get", "/rt/typed", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("etcdctl json");
    let kv = &v["kvs"][0];
    // etcdctl's JSON shows bytes as base64 ("/rt/typed", "from-types").
    assert_eq!(kv["key"], "L3J0L3R5cGVk");
    assert_eq!(kv["value"], "ZnJvbS10eXBlcw==");
    assert_eq!(kv["lease"].as_i64(), Some(lease_id));
}
