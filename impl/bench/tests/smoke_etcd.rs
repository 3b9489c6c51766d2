//! One tiny run of every workload against a real etcd 3.4.23 started on free ports.

use std::path::Path;
use std::process::{Command, Stdio};

use oxetcd_api::etcdserverpb::kv_client::KvClient;
use oxetcd_api::etcdserverpb::{RangeRequest, RangeResponse};
use oxetcd_bench::server::Member;
use oxetcd_bench::workload::{
    ClosedLoop, KeyShape, Op, WatchLatency, connect, dial, run_closed_loop, run_watch_latency,
};

fn require_etcd() {
    let found = Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "the reference `etcd` (3.4.23) is not on PATH: run `sh conformance/ensure-etcd.sh` \
         first; this test does not skip"
    );
}

#[test]
fn tiny_put_range_txn_and_watch_workloads_run_against_real_etcd() {
    require_etcd();
    let root = tempfile::tempdir().expect("temp root");
    let member = Member::start("etcd", Path::new("etcd"), root.path()).expect("start etcd");
    let (pid, data_dir) = (member.pid().expect("running"), member.data_dir());
    let url = member.client_url.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let channels = connect(std::slice::from_ref(&url), 2)
            .await
            .expect("connect");
        let conns = dial(std::slice::from_ref(&url), 2).await.expect("dial");
        let shape = KeyShape {
            key_size: 8,
            val_size: 16,
            key_space_size: 50,
            sequential: true,
        };
        let put = ClosedLoop {
            op: Op::Put(shape.clone()),
            clients: 4,
            total: 200,
            progress: None,
        };
        let r = run_closed_loop(&conns, &put).await;
        assert_eq!(
            (r.latencies_ns.len(), r.errors),
            (200, 0),
            "{:?}",
            r.first_error
        );
        let all = KvClient::new(channels[0].clone())
            .range(RangeRequest {
                key: vec![0],
                range_end: vec![0],
                count_only: true,
                ..RangeRequest::default()
            })
            .await
            .expect("count keys")
            .into_inner();
        assert_eq!(all.count, 50, "sequential puts over a key space of 50");

        for serializable in [false, true] {
            let range = ClosedLoop {
                op: Op::Range {
                    key: vec![0; 8],
                    range_end: Vec::new(),
                    serializable,
                },
                clients: 3,
                total: 60,
                progress: None,
            };
            let r = run_closed_loop(&conns, &range).await;
            assert_eq!(
                (r.latencies_ns.len(), r.errors),
                (60, 0),
                "{:?}",
                r.first_error
            );
            let s = r.summary();
            assert!(s.requests_per_sec > 0.0);
            assert!(s.percentile(50.0) <= s.percentile(99.9));
        }

        let txn = ClosedLoop {
            op: Op::TxnPut { shape, ops: 3 },
            clients: 2,
            total: 20,
            progress: None,
        };
        let r = run_closed_loop(&conns, &txn).await;
        assert_eq!(
            (r.latencies_ns.len(), r.errors),
            (20, 0),
            "{:?}",
            r.first_error
        );

        // The lean client reads etcd's answers and its errors as tonic would.
        let one: RangeResponse = conns[0]
            .unary(
                "/etcdserverpb.KV/Range",
                &RangeRequest {
                    key: vec![0; 8],
                    ..RangeRequest::default()
                },
            )
            .await
            .expect("range one key");
        assert_eq!(one.kvs.len(), 1);
        let future = conns[1]
            .unary::<_, RangeResponse>(
                "/etcdserverpb.KV/Range",
                &RangeRequest {
                    key: vec![0; 8],
                    revision: 1 << 40,
                    ..RangeRequest::default()
                },
            )
            .await
            .expect_err("a future revision is refused");
        assert_eq!(future.code(), tonic::Code::OutOfRange);
        assert_eq!(
            future.message(),
            "etcdserver: mvcc: required revision is a future revision"
        );

        let watch = WatchLatency {
            streams: 2,
            watchers_per_stream: 2,
            put_total: 5,
            put_rate: 0,
            key_size: 16,
            val_size: 8,
        };
        let r = run_watch_latency(&channels, &watch)
            .await
            .expect("watch run");
        assert_eq!(
            (r.latencies_ns.len(), r.errors),
            (20, 0),
            "{:?}",
            r.first_error
        );
    });
    assert!(member.rss_bytes().expect("rss") > 0);
    drop(runtime);
    drop(member);
    assert!(!data_dir.exists(), "data dir removed with the member");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "etcd process {pid} was reaped"
    );
}
