//! End-to-end: `etcdctl lock` and `etcdctl elect` (3.4.23) against the real `oxetcd`
//! binary, and the Lock and Election gRPC services under contention.

#![allow(
    clippy::unwrap_used,
    reason = "integration test: a failed unwrap is a failed test"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Server, etcdctl_path};
use oxetcd_api::etcdserverpb as pb;
use oxetcd_api::{v3electionpb, v3lockpb};

/// A long-running etcdctl whose stdout lines arrive on a channel; interrupted and reaped
/// on drop.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(server: &Server, args: &[&str]) -> Running {
        let mut child = Command::new(etcdctl_path())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", server.endpoint()))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    /// The next non-empty line (bounded wait).
    fn line(&self) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(20))
                .expect("etcdctl printed nothing in time");
            if !line.is_empty() {
                return line;
            }
        }
    }

    /// SIGINT, as ^C in a terminal: etcdctl releases its lock or resigns.
    fn interrupt(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        for _ in 0..200 {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

    let mut holder = Running::start(&server, &["lock", "mutex1"]);
    let key = holder.line();
    assert!(key.starts_with("mutex1/"), "{key}");
    let mut waiter = Running::start(&server, &["lock", "mutex1", "--", "echo", "second"]);
    // The second locker's key is queued behind the holder's.
    let queued = server.ok(&["get", "--prefix", "mutex1/", "--keys-only"]);
    assert!(queued.contains(&key), "{queued}");
    assert!(
        waiter.child.try_wait().unwrap().is_none(),
        "the second locker ran while the lock was held"
    );
    holder.interrupt();
    assert_eq!(waiter.line(), "second");
    waiter.interrupt();
}

#[test]
fn elect_campaigns_and_listen_observes_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut first = Running::start(&server, &["elect", "myelection", "p1"]);
    let leader_key = first.line();
    assert!(leader_key.starts_with("myelection/"), "{leader_key}");
    assert_eq!(first.line(), "p1");
    let observer = Running::start(&server, &["elect", "-l", "myelection"]);
    assert_eq!(observer.line(), leader_key);
    assert_eq!(observer.line(), "p1");
    let second = Running::start(&server, &["elect", "myelection", "p2"]);
    first.interrupt();
    let next_key = second.line();
    assert_ne!(next_key, leader_key);
    assert_eq!(second.line(), "p2");
    assert_eq!(observer.line(), next_key);
    assert_eq!(observer.line(), "p2");
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
