//! End-to-end: `etcdctl lock` and `etcdctl elect` (3.4.23) against the real `oxetcd`
//! binary, and the Lock and Election gRPC services under contention.

#![allow(
    clippy::unwrap_used,
    reason = "integration test: a failed unwrap is a failed test"
)]

mod common;

use std::time::Duration;

use common::{Background, Etcdctl, Server};
use oxetcd_api::etcdserverpb as pb;
use oxetcd_api::{v3electionpb, v3lockpb};

/// A long-running etcdctl (its lines read with [`line`]); killed and reaped on drop.
fn running(server: &Server, args: &[&str]) -> Background {
    Etcdctl::v3(&server.endpoint()).spawn(args)
}

/// The next non-empty line (bounded wait).
fn line(running: &Background) -> String {
    loop {
        let line = running
            .line(Duration::from_secs(20))
            .expect("etcdctl printed nothing in time");
        if !line.is_empty() {
            return line;
        }
    }
}

#[test]
fn lock_runs_a_command_and_a_second_locker_waits_for_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    assert!(
        server
            .ok(&["lock", "mylock", "--", "echo", "held"])
            .contains("held\n")
    );

    let mut holder = running(&server, &["lock", "mutex1"]);
    let key = line(&holder);
    assert!(key.starts_with("mutex1/"), "{key}");
    let mut waiter = running(&server, &["lock", "mutex1", "--", "echo", "second"]);
    // The second locker's key is queued behind the holder's.
    let queued = server.ok(&["get", "--prefix", "mutex1/", "--keys-only"]);
    assert!(queued.contains(&key), "{queued}");
    assert!(
        waiter.is_running(),
        "the second locker ran while the lock was held"
    );
    holder.stop(true);
    assert_eq!(line(&waiter), "second");
    waiter.stop(true);
}

#[test]
fn elect_campaigns_and_listen_observes_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut first = running(&server, &["elect", "myelection", "p1"]);
    let leader_key = line(&first);
    assert!(leader_key.starts_with("myelection/"), "{leader_key}");
    assert_eq!(line(&first), "p1");
    let observer = running(&server, &["elect", "-l", "myelection"]);
    assert_eq!(line(&observer), leader_key);
    assert_eq!(line(&observer), "p1");
    let second = running(&server, &["elect", "myelection", "p2"]);
    first.stop(true);
    let next_key = line(&second);
    assert_ne!(next_key, leader_key);
    assert_eq!(line(&second), "p2");
    assert_eq!(line(&observer), next_key);
    assert_eq!(line(&observer), "p2");
}

async fn grant(channel: &tonic::transport::Channel) -> i64 {
    let mut lease = pb::lease_client::LeaseClient::new(channel.clone());
    lease
        .lease_grant(pb::LeaseGrantRequest { ttl: 60, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id
}

#[test]
fn lock_service_queues_a_second_holder_until_unlock() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!(
            "http://127.0.0.1:{}",
            server.client_port
        ))
        .unwrap()
        .connect()
        .await
        .unwrap();
        let (a, b) = (grant(&channel).await, grant(&channel).await);
        let mut lock = v3lockpb::lock_client::LockClient::new(channel.clone());
        let first = lock
            .lock(v3lockpb::LockRequest {
                name: b"svc".to_vec(),
                lease: a,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first.key, format!("svc/{a:x}").into_bytes());
        let mut second_client = lock.clone();
        let second = tokio::spawn(async move {
            second_client
                .lock(v3lockpb::LockRequest {
                    name: b"svc".to_vec(),
                    lease: b,
                })
                .await
                .map(tonic::Response::into_inner)
        });
        // The second Lock stays queued while the first holds the lock.
        let mut election = v3electionpb::election_client::ElectionClient::new(channel.clone());
        let owner = election
            .leader(v3electionpb::LeaderRequest {
                name: b"svc".to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(owner.kv.unwrap().key, first.key);
        assert!(!second.is_finished(), "second Lock returned while held");
        let unlocked = lock
            .unlock(v3lockpb::UnlockRequest {
                key: first.key.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let second = tokio::time::timeout(Duration::from_secs(20), second)
            .await
            .expect("second Lock returned in time")
            .unwrap()
            .unwrap();
        assert_eq!(second.key, format!("svc/{b:x}").into_bytes());
        assert!(
            second.header.unwrap().revision >= unlocked.header.unwrap().revision,
            "the second holder's header is from after the unlock"
        );
    });
}
