//! Watch behaviour the transcripts cannot pin down (timers, sizes) and the basic
//! metrics, against the real `oxetcd` binary: periodic progress notifications
//! (`--experimental-watch-progress-notify-interval`), fragmentation of responses over
//! `--max-request-bytes`, catch-up batching, and `/metrics` figures after writes.

#![allow(
    clippy::unwrap_used,
    reason = "integration test: a failed unwrap is a failed test"
)]

mod common;

use std::time::Duration;

use common::Server;
use oxetcd_api::etcdserverpb::kv_client::KvClient;
use oxetcd_api::etcdserverpb::watch_client::WatchClient;
use oxetcd_api::etcdserverpb::watch_request::RequestUnion;
use oxetcd_api::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest, WatchResponse};
use tokio::sync::mpsc;
use tonic::Streaming;

const RECV_TIMEOUT: Duration = Duration::from_secs(10);

struct Stream {
    requests: mpsc::Sender<WatchRequest>,
    responses: Streaming<WatchResponse>,
}

impl Stream {
    async fn open(server: &Server) -> Stream {
        let mut client = WatchClient::connect(format!("http://{}", server.endpoint()))
            .await
            .unwrap();
        let (requests, receiver) = mpsc::channel(16);
        let responses = client
            .watch(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await
            .unwrap()
            .into_inner();
        Stream {
            requests,
            responses,
        }
    }

    async fn create(&mut self, create: WatchCreateRequest) -> WatchResponse {
        self.requests
            .send(WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(create)),
            })
            .await
            .unwrap();
        let created = self.recv().await;
        assert!(created.created, "{created:?}");
        created
    }

    async fn recv(&mut self) -> WatchResponse {
        tokio::time::timeout(RECV_TIMEOUT, self.responses.message())
            .await
            .expect("a watch response in time")
            .unwrap()
            .expect("the stream is open")
    }
}

async fn put(server: &Server, key: &str, value: Vec<u8>) -> i64 {
    let mut client = KvClient::connect(format!("http://{}", server.endpoint()))
        .await
        .unwrap();
    let response = client
        .put(PutRequest {
            key: key.as_bytes().to_vec(),
            value,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    response.header.unwrap().revision
}

#[tokio::test]
async fn progress_notify_watchers_get_periodic_progress_until_events_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &["--experimental-watch-progress-notify-interval", "200ms"],
    );
    let revision = put(&server, "p/a", b"1".to_vec()).await;
    let mut stream = Stream::open(&server).await;
    let quiet = stream
        .create(WatchCreateRequest {
            key: b"q/".to_vec(),
            ..Default::default()
        })
        .await;
    assert_eq!(quiet.watch_id, 0);
    let notified = stream
        .create(WatchCreateRequest {
            key: b"p/a".to_vec(),
            progress_notify: true,
            ..Default::default()
        })
        .await;
    assert_eq!(notified.watch_id, 1);
    for _ in 0..2 {
        let progress = stream.recv().await;
        assert_eq!(progress.watch_id, 1, "{progress:?}");
        assert!(progress.events.is_empty());
        assert!(!progress.created && !progress.canceled);
        assert_eq!(progress.header.unwrap().revision, revision);
    }
    let next = put(&server, "p/a", b"2".to_vec()).await;
    // Progress responses may be in flight; the event comes, then progress at `next`.
    let mut saw_event = false;
    for _ in 0..10 {
        let response = stream.recv().await;
        assert_eq!(response.watch_id, 1, "{response:?}");
        let at = response.header.unwrap().revision;
        if !response.events.is_empty() {
            assert_eq!(at, next);
            saw_event = true;
        } else if saw_event {
            assert_eq!(at, next);
            return;
        }
    }
    panic!("no progress notification after the event (saw event: {saw_event})");
}

#[tokio::test]
async fn catch_up_comes_in_one_response_unless_fragmentation_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    // etcd splits at --max-request-bytes plus its 512 KiB gRPC overhead allowance.
    let server = Server::start_with(dir.path(), &["--max-request-bytes", "131072"]);
    let limit = 131_072 + 512 * 1024;
    let mut first = 0;
    for i in 0..10 {
        let revision = put(&server, &format!("f/{i}"), vec![b'x'; 100_000]).await;
        if i == 0 {
            first = revision;
        }
    }
    let mut stream = Stream::open(&server).await;
    stream
        .create(WatchCreateRequest {
            key: b"f/".to_vec(),
            range_end: b"f0".to_vec(),
            start_revision: first,
            ..Default::default()
        })
        .await;
    let whole = stream.recv().await;
    assert_eq!(whole.events.len(), 10);
    assert!(!whole.fragment);
    assert_eq!(whole.header.unwrap().revision, first + 9);

    stream
        .create(WatchCreateRequest {
            key: b"f/".to_vec(),
            range_end: b"f0".to_vec(),
            start_revision: first,
            fragment: true,
            ..Default::default()
        })
        .await;
    let mut events = Vec::new();
    let mut parts = 0;
    loop {
        let part = stream.recv().await;
        assert_eq!(part.watch_id, 1);
        assert!(prost::Message::encoded_len(&part) < limit, "part too large");
        // Packed as etcd packs: as many events as stay under the limit (6 of 100 KB).
        assert!(
            part.events.len() == 6 || !part.fragment,
            "{}",
            part.events.len()
        );
        parts += 1;
        events.extend(part.events);
        if !part.fragment {
            break;
        }
        assert!(parts < 20, "fragments do not end");
    }
    assert!(parts > 1, "a response over the limit is split");
    let revisions: Vec<i64> = events
        .iter()
        .map(|event| event.kv.as_ref().unwrap().mod_revision)
        .collect();
    assert_eq!(revisions, (first..first + 10).collect::<Vec<_>>());
}

#[tokio::test]
async fn duplicate_watch_id_is_refused_and_auto_ids_skip_explicit_ones() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut stream = Stream::open(&server).await;
    let explicit = stream
        .create(WatchCreateRequest {
            key: b"d/a".to_vec(),
            watch_id: 1,
            ..Default::default()
        })
        .await;
    assert_eq!(explicit.watch_id, 1);
    let duplicate = stream
        .create(WatchCreateRequest {
            key: b"d/b".to_vec(),
            watch_id: 1,
            ..Default::default()
        })
        .await;
    assert!(duplicate.canceled);
    assert_eq!(duplicate.watch_id, -1);
    assert_eq!(
        duplicate.cancel_reason,
        "mvcc: duplicate watch ID provided on the WatchStream"
    );
    let mut ids = Vec::new();
    for _ in 0..2 {
        let created = stream
            .create(WatchCreateRequest {
                key: b"d/c".to_vec(),
                ..Default::default()
            })
            .await;
        ids.push(created.watch_id);
    }
    assert_eq!(ids, [0, 2]);
}

fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} missing from:\n{body}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_report_leader_proposals_and_fsync_histogram() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    for i in 0..5 {
        put(&server, &format!("m/{i}"), b"v".to_vec()).await;
    }
    let (status, body) = server.http_get("/metrics");
    assert!(status.contains("200"), "{status}");
    assert_eq!(metric(&body, "etcd_server_has_leader"), 1.0);
    assert_eq!(metric(&body, "etcd_server_leader_changes_seen_total"), 1.0);
    let committed = metric(&body, "etcd_server_proposals_committed_total");
    let applied = metric(&body, "etcd_server_proposals_applied_total");
    assert!(committed >= 6.0, "{committed}");
    assert!(applied >= 6.0 && applied <= committed, "{applied}");
    assert_eq!(metric(&body, "etcd_server_proposals_pending"), 0.0);
    assert_eq!(metric(&body, "etcd_server_proposals_failed_total"), 0.0);
    assert!(metric(&body, "etcd_mvcc_db_total_size_in_bytes") > 0.0);
    assert!(body.contains("# TYPE etcd_disk_wal_fsync_duration_seconds histogram"));
    let count = metric(&body, "etcd_disk_wal_fsync_duration_seconds_count");
    assert!(count >= 5.0, "{count}");
    let buckets: Vec<f64> = body
        .lines()
        .filter_map(|line| {
            line.strip_prefix("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"")?
                .split_once("\"} ")
                .map(|(_, value)| value.parse().unwrap())
        })
        .collect();
    assert_eq!(buckets.len(), 15, "14 bounds and +Inf");
    assert!(buckets.windows(2).all(|pair| pair[0] <= pair[1]));
    assert_eq!(buckets.last().copied(), Some(count));
}
