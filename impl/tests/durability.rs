//! kill -9 under write load loses no acknowledged write: the real `oxetcd` is killed
//! repeatedly while concurrent clients write; after each restart every put that was
//! acknowledged must be readable, also while snapshot files are being written and the
//! log compacted behind them. Bounded in rounds, writers, puts and time.

#![allow(
    clippy::unwrap_used,
    reason = "integration test: a failed unwrap is a failed test"
)]

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use oxetcd_api::etcdserverpb::kv_client::KvClient;
use oxetcd_api::etcdserverpb::{PutRequest, RangeRequest};

const ROUNDS: usize = 3;
const WRITERS: usize = 8;
const PUTS_PER_WRITER_MAX: usize = 400;
const LOAD_BEFORE_KILL: Duration = Duration::from_millis(700);

async fn writer(
    endpoint: String,
    round: usize,
    writer: usize,
    acked: Arc<Mutex<BTreeSet<String>>>,
) {
    let Ok(mut client) = KvClient::connect(endpoint).await else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0..PUTS_PER_WRITER_MAX {
        if Instant::now() > deadline {
            return;
        }
        let key = format!("d/{round}/{writer}/{i:04}");
        let request = PutRequest {
            key: key.clone().into_bytes(),
            value: b"v".to_vec(),
            ..Default::default()
        };
        match tokio::time::timeout(Duration::from_secs(5), client.put(request)).await {
            Ok(Ok(_)) => {
                acked.lock().unwrap().insert(key);
            }
            // The server was killed (or timed out): nothing more is acknowledged.
            _ => return,
        }
    }
}

async fn stored_keys(endpoint: String) -> BTreeSet<String> {
    let mut client = KvClient::connect(endpoint)
        .await
        .expect("connect after restart");
    let response = client
        .range(RangeRequest {
            key: b"d/".to_vec(),
            range_end: b"d0".to_vec(),
            keys_only: true,
            ..Default::default()
        })
        .await
        .expect("range after restart")
        .into_inner();
    response
        .kvs
        .into_iter()
        .map(|kv| String::from_utf8(kv.key).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_under_write_load_loses_no_acknowledged_write() {
    kill_rounds(&[]).await;
}

/// With a small `--snapshot-count` the snapshot files are written off the node loop
/// while writes go on, and the log is compacted behind them: a kill at any point must
/// still lose nothing, and the restart must find the snapshot file the log relies on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_while_snapshots_are_written_loses_no_acknowledged_write() {
    kill_rounds(&["--snapshot-count", "50"]).await;
}

async fn kill_rounds(flags: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let client_port = common::free_port();
    let peer_port = common::free_port();
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    for round in 0..ROUNDS {
        let mut server = Server::start_on(dir.path(), client_port, peer_port, flags);
        let endpoint = format!("http://127.0.0.1:{client_port}");
        // Everything acknowledged in earlier rounds is still there after the restart.
        let stored = stored_keys(endpoint.clone()).await;
        let expected = acked.lock().unwrap().clone();
        let lost: Vec<&String> = expected.difference(&stored).collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} acknowledged keys lost, e.g. {:?}",
            lost.len(),
            lost.first()
        );
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| tokio::spawn(writer(endpoint.clone(), round, w, acked.clone())))
            .collect();
        tokio::time::sleep(LOAD_BEFORE_KILL).await;
        server.kill();
        for handle in writers {
            let _ = handle.await;
        }
    }
    let server = Server::start_on(dir.path(), client_port, peer_port, flags);
    let stored = stored_keys(format!("http://127.0.0.1:{}", server.client_port)).await;
    let expected = acked.lock().unwrap().clone();
    assert!(
        !expected.is_empty(),
        "the load must have acknowledged some writes"
    );
    println!(
        "{} writes acknowledged across {ROUNDS} kill -9 rounds",
        expected.len()
    );
    if !flags.is_empty() {
        let log = server.log();
        assert!(
            log.contains("recovered raft log: snapshot at index")
                && !log.contains("snapshot at index 0,"),
            "the log must have been compacted behind a snapshot file:\n{log}"
        );
    }
    let lost: Vec<&String> = expected.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged keys lost, e.g. {:?}",
        lost.len(),
        expected.len(),
        lost.first()
    );
}
