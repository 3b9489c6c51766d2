//! End-to-end: the Rust `etcd-client` crate (0.21), unchanged, against the real server.
//! Each test runs one scenario of the calls a user makes (KV, txn, watch, lease, lock,
//! election, cluster, maintenance, auth) against a fresh oxetcd and, at the same time, a
//! fresh reference etcd 3.4.23 started with the same flags; the scenario records one line
//! per observation (values, revisions, gRPC error codes and texts; ids of leases and
//! members and the ports replaced by stable names) and the two transcripts must be equal
//! line for line.
//!
//! The oxetcd run is this package's `oxetcd-under-test`, built from impl/src/main.rs
//! (`OXETCD_BIN` runs another build). The reference etcd is installed by `sh
//! conformance/ensure-etcd.sh` (`make etcd-reference`), which also installs the `protoc`
//! that etcd-client's build script needs.

#![allow(
    clippy::unwrap_used,
    reason = "integration test: the shared harness unwraps, a failed unwrap is a failed test"
)]

#[path = "../../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use etcd_client::{
    AlarmAction, AlarmType, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, Error,
    EventType, GetOptions, LeaseGrantOptions, LeaseTimeToLiveOptions, LockOptions,
    MemberAddOptions, Permission, PutOptions, ResignOptions, SortOrder, SortTarget, Txn, TxnOp,
    TxnOpResponse, WatchFilterType, WatchOptions,
};
use tokio::time::timeout;

/// Bound on one whole scenario against one server.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(90);
/// Bound on waiting for one streamed message (a watch event, a lock held elsewhere).
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(15);

/// What a scenario observed, with run-dependent values replaced by stable names.
#[derive(Debug)]
struct Transcript {
    endpoint: String,
    client_port: u16,
    peer_port: u16,
    lines: Vec<String>,
    names: BTreeMap<(&'static str, String), String>,
}

impl Transcript {
    fn new(server: &common::Server) -> Transcript {
        Transcript {
            endpoint: format!("http://127.0.0.1:{}", server.client_port),
            client_port: server.client_port,
            peer_port: server.peer_port,
            lines: Vec::new(),
            names: BTreeMap::new(),
        }
    }

    /// Records one observation, with the server's ports named.
    fn show(&mut self, label: &str, value: impl std::fmt::Debug) {
        let line = format!("{label}: {value:?}")
            .replace(&format!(":{}", self.client_port), ":CLIENT_PORT")
            .replace(&format!(":{}", self.peer_port), ":PEER_PORT");
        self.lines.push(line);
    }

    /// A stable name for a run-dependent id: `kind#1` for the first one seen, and so on.
    fn name(&mut self, kind: &'static str, id: impl ToString) -> String {
        let count = self.names.keys().filter(|(k, _)| *k == kind).count();
        self.names
            .entry((kind, id.to_string()))
            .or_insert_with(|| format!("{kind}#{}", count + 1))
            .clone()
    }

    /// A key `prefix/<lease id in hex>` (locks and elections) with the lease named.
    fn owner_key(&mut self, key: &[u8]) -> String {
        let key = String::from_utf8_lossy(key);
        match key.rsplit_once('/') {
            Some((prefix, hex)) => match i64::from_str_radix(hex, 16) {
                Ok(lease) => format!("{prefix}/<{}>", self.name("lease", lease)),
                Err(_) => key.into_owned(),
            },
            None => key.into_owned(),
        }
    }

    async fn connect(&self) -> Client {
        connect(&self.endpoint, None).await
    }
}

async fn connect(endpoint: &str, options: Option<ConnectOptions>) -> Client {
    let options = options
        .unwrap_or_default()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(10));
    Client::connect([endpoint], Some(options)).await.unwrap()
}

/// The next message of a stream (a watch, lease keep-alives), waiting
/// [`MESSAGE_TIMEOUT`] at most.
async fn next<T>(message: impl Future<Output = Result<Option<T>, Error>>) -> T {
    timeout(MESSAGE_TIMEOUT, message)
        .await
        .expect("no message in time")
        .unwrap()
        .expect("the stream ended")
}

/// A gRPC error as its code and message (what a program branches on).
fn error(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Ok(value) => format!("unexpected success: {value:?}"),
        Err(Error::GRpcStatus(status)) => format!("{:?}: {}", status.code(), status.message()),
        Err(other) => other.to_string(),
    }
}

/// `key=value` of each pair.
fn pairs(kvs: &[etcd_client::KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| {
            format!(
                "{}={}",
                String::from_utf8_lossy(kv.key()),
                String::from_utf8_lossy(kv.value())
            )
        })
        .collect()
}

/// Runs `scenario` against a fresh oxetcd and a fresh etcd at the same time and asserts
/// that both transcripts are the same.
fn same_as_etcd<S, F>(flags: &[&str], scenario: S)
where
    S: Fn(Transcript) -> F,
    F: Future<Output = Transcript> + Send + 'static,
{
    let (oxetcd_dir, etcd_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let oxetcd = common::Server::start_with(oxetcd_dir.path(), flags);
    let etcd = common::Server::start_etcd(etcd_dir.path(), flags);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (got, want) = runtime.block_on(async {
        let got = tokio::spawn(timeout(
            SCENARIO_TIMEOUT,
            scenario(Transcript::new(&oxetcd)),
        ));
        let want = tokio::spawn(timeout(SCENARIO_TIMEOUT, scenario(Transcript::new(&etcd))));
        (got.await, want.await)
    });
    type Outcome = Result<Result<Transcript, tokio::time::error::Elapsed>, tokio::task::JoinError>;
    let lines = |result: Outcome, server: &common::Server, name: &str| match result {
        Ok(Ok(Transcript { lines, .. })) => lines,
        Ok(Err(_)) => panic!(
            "the scenario did not finish against {name} within {SCENARIO_TIMEOUT:?}; log:\n{}",
            server.log()
        ),
        Err(error) => panic!(
            "the scenario failed against {name}: {error}; log:\n{}",
            server.log()
        ),
    };
    let want = lines(want, &etcd, "etcd");
    let got = lines(got, &oxetcd, "oxetcd");
    for (n, (got, want)) in got.iter().zip(&want).enumerate() {
        assert_eq!(got, want, "line {} differs from etcd's", n + 1);
    }
    assert_eq!(
        got.len(),
        want.len(),
        "oxetcd's transcript:\n{}\netcd's:\n{}",
        got.join("\n"),
        want.join("\n")
    );
}

#[test]
fn put_get_delete_and_txn_see_what_they_see_against_etcd() {
    same_as_etcd(&[], |mut t| async move {
        let mut client = t.connect().await;
        let put = client.put("foo", "bar", None).await.unwrap();
        t.show("put revision", put.header().unwrap().revision());
        let get = client.get("foo", None).await.unwrap();
        let kv = &get.kvs()[0];
        t.show(
            "get foo",
            (
                pairs(get.kvs()),
                kv.create_revision(),
                kv.mod_revision(),
                kv.version(),
                kv.lease(),
                get.count(),
                get.more(),
            ),
        );
        let put = client
            .put("foo", "baz", Some(PutOptions::new().with_prev_key()))
            .await
            .unwrap();
        t.show("put prev_kv", put.prev_key().map(|kv| kv.value().to_vec()));
        t.show(
            "get missing",
            client.get("missing", None).await.unwrap().kvs().len(),
        );
        for (key, value) in [("web3", "c"), ("web1", "a"), ("web2", "b"), ("webz", "z")] {
            client.put(key, value, None).await.unwrap();
        }
        let limited = client
            .get("web", Some(GetOptions::new().with_prefix().with_limit(2)))
            .await
            .unwrap();
        t.show(
            "prefix web limit 2",
            (pairs(limited.kvs()), limited.count(), limited.more()),
        );
        let sorted = client
            .get(
                "web",
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_sort(SortTarget::Value, SortOrder::Descend),
                ),
            )
            .await
            .unwrap();
        t.show("prefix web by value descending", pairs(sorted.kvs()));
        let range = client
            .get("web1", Some(GetOptions::new().with_range("web3")))
            .await
            .unwrap();
        t.show("range web1..web3", pairs(range.kvs()));
        let keys = client
            .get(
                "web",
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await
            .unwrap();
        t.show("keys only", pairs(keys.kvs()));
        let count = client
            .get(
                "",
                Some(GetOptions::new().with_all_keys().with_count_only()),
            )
            .await
            .unwrap();
        t.show("count all", (count.count(), count.kvs().len()));
        let old = client
            .get("foo", Some(GetOptions::new().with_revision(2)))
            .await
            .unwrap();
        t.show("foo at revision 2", pairs(old.kvs()));
        let deleted = client.delete("foo", None).await.unwrap();
        t.show(
            "delete foo",
            (deleted.deleted(), deleted.header().unwrap().revision()),
        );
        t.show(
            "delete foo again",
            client.delete("foo", None).await.unwrap().deleted(),
        );
        let deleted = client
            .delete(
                "web",
                Some(DeleteOptions::new().with_prefix().with_prev_key()),
            )
            .await
            .unwrap();
        t.show(
            "delete prefix web",
            (deleted.deleted(), pairs(deleted.prev_kvs())),
        );

        // Compare-and-swap.
        client.put("cas", "1", None).await.unwrap();
        for attempt in ["first", "second"] {
            let txn = Txn::new()
                .when([Compare::value("cas", CompareOp::Equal, "1")])
                .and_then([TxnOp::put("cas", "2", None)])
                .or_else([TxnOp::get("cas", None)]);
            let response = client.txn(txn).await.unwrap();
            let ops: Vec<String> = response
                .op_responses()
                .iter()
                .map(|op| match op {
                    TxnOpResponse::Put(put) => {
                        format!("put at {}", put.header().unwrap().revision())
                    }
                    TxnOpResponse::Get(get) => format!("get {:?}", pairs(get.kvs())),
                    TxnOpResponse::Delete(delete) => format!("delete {}", delete.deleted()),
                    TxnOpResponse::Txn(txn) => format!("txn {}", txn.succeeded()),
                })
                .collect();
            t.show(&format!("cas {attempt}"), (response.succeeded(), ops));
        }
        let txn = Txn::new()
            .when([
                Compare::version("cas", CompareOp::Equal, 2),
                Compare::create_revision("cas", CompareOp::Less, 100),
                Compare::mod_revision("nothing", CompareOp::Equal, 0),
            ])
            .and_then([TxnOp::delete("cas", None), TxnOp::put("after", "cas", None)]);
        let response = client.txn(txn).await.unwrap();
        t.show(
            "txn on version and revisions",
            (response.succeeded(), response.header().unwrap().revision()),
        );
        let nested = Txn::new()
            .when([Compare::value("after", CompareOp::Equal, "cas")])
            .and_then([TxnOp::txn(
                Txn::new()
                    .when([Compare::version("cas", CompareOp::Equal, 0)])
                    .and_then([TxnOp::get("after", None)]),
            )]);
        let response = client.txn(nested).await.unwrap();
        let inner: Vec<String> = response
            .op_responses()
            .iter()
            .map(|op| match op {
                TxnOpResponse::Txn(txn) => format!(
                    "txn {} with {} responses",
                    txn.succeeded(),
                    txn.op_responses().len()
                ),
                _ => "not a txn".to_owned(),
            })
            .collect();
        t.show("nested txn", (response.succeeded(), inner));
        let from = client
            .get(
                "a",
                Some(GetOptions::new().with_from_key().with_keys_only()),
            )
            .await
            .unwrap();
        t.show("from key a", pairs(from.kvs()));
        let filtered = client
            .get(
                "",
                Some(
                    GetOptions::new()
                        .with_all_keys()
                        .with_min_mod_revision(11)
                        .with_max_create_revision(11),
                ),
            )
            .await
            .unwrap();
        t.show(
            "mod revision >= 11, create revision <= 11",
            (pairs(filtered.kvs()), filtered.count()),
        );
        t.show(
            "duplicate key in txn",
            error(
                client
                    .txn(
                        Txn::new()
                            .and_then([TxnOp::put("dup", "1", None), TxnOp::put("dup", "2", None)]),
                    )
                    .await,
            ),
        );
        t.show(
            "put ignoring the value of a missing key",
            error(
                client
                    .put("absent", "", Some(PutOptions::new().with_ignore_value()))
                    .await,
            ),
        );
        let unleased = Txn::new().when([Compare::lease("after", CompareOp::Equal, 0)]);
        t.show(
            "compare on the lease",
            client.txn(unleased).await.unwrap().succeeded(),
        );
        t.show(
            "put with a missing lease",
            error(
                client
                    .put("orphan", "v", Some(PutOptions::new().with_lease(0x1234)))
                    .await,
            ),
        );
        client.compact(5, None).await.unwrap();
        t.show(
            "get compacted revision",
            error(
                client
                    .get("foo", Some(GetOptions::new().with_revision(3)))
                    .await,
            ),
        );
        t
    });
}

#[test]
fn watches_receive_what_they_receive_from_etcd() {
    same_as_etcd(&[], |mut t| async move {
        let mut client = t.connect().await;
        client.put("stock0", "5", None).await.unwrap();
        let mut watch = client
            .watch(
                "stock",
                Some(WatchOptions::new().with_prefix().with_prev_key()),
            )
            .await
            .unwrap();
        let created = next(watch.message()).await;
        t.show(
            "created",
            (
                created.created(),
                created.watch_id(),
                created.events().len(),
            ),
        );
        client.put("stock1", "10", None).await.unwrap();
        client.put("stock1", "11", None).await.unwrap();
        client.put("other", "x", None).await.unwrap();
        client.delete("stock1", None).await.unwrap();
        let mut events = Vec::new();
        while events.len() < 3 {
            let response = next(watch.message()).await;
            for event in response.events() {
                let kv = event.kv().unwrap();
                events.push(format!(
                    "{:?} {}={} rev {} prev {:?}",
                    event.event_type(),
                    String::from_utf8_lossy(kv.key()),
                    String::from_utf8_lossy(kv.value()),
                    kv.mod_revision(),
                    event
                        .prev_kv()
                        .map(|prev| String::from_utf8_lossy(prev.value()).into_owned()),
                ));
            }
        }
        t.show("events", &events);
        let watch_id = created.watch_id();
        watch.cancel(watch_id).await.unwrap();
        let canceled = next(watch.message()).await;
        t.show("canceled", (canceled.canceled(), canceled.watch_id()));

        // A second watcher on the same stream, without puts; then a progress request.
        watch
            .watch(
                "stock",
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_filters([WatchFilterType::NoPut]),
                ),
            )
            .await
            .unwrap();
        let created = next(watch.message()).await;
        t.show("second watcher", (created.created(), created.watch_id()));
        client.put("stock3", "1", None).await.unwrap();
        let deleted = client.delete("stock3", None).await.unwrap();
        let response = next(watch.message()).await;
        t.show(
            "no puts",
            response
                .events()
                .iter()
                .map(|e| format!("{:?} {}", e.event_type(), e.kv().unwrap().mod_revision()))
                .collect::<Vec<_>>(),
        );
        watch.request_progress().await.unwrap();
        let progress = next(watch.message()).await;
        t.show(
            "progress",
            (
                progress.watch_id(),
                progress.events().len(),
                progress.header().unwrap().revision() == deleted.header().unwrap().revision(),
            ),
        );

        // From an old revision: the history replays.
        let mut history = client
            .watch("stock1", Some(WatchOptions::new().with_start_revision(2)))
            .await
            .unwrap();
        let mut replayed = Vec::new();
        while replayed.len() < 3 {
            let response = next(history.message()).await;
            for event in response.events() {
                let kv = event.kv().unwrap();
                replayed.push(format!(
                    "{} {}",
                    if event.event_type() == EventType::Put {
                        "put"
                    } else {
                        "delete"
                    },
                    kv.mod_revision()
                ));
            }
        }
        t.show("history from revision 2", replayed);

        // From a compacted revision: created, then canceled with the compact revision.
        let revision = client
            .put("stock2", "1", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        client.compact(revision, None).await.unwrap();
        let mut compacted = client
            .watch("stock1", Some(WatchOptions::new().with_start_revision(2)))
            .await
            .unwrap();
        let mut responses = Vec::new();
        while !responses.iter().any(|(_, canceled, _, _, _)| *canceled) && responses.len() < 3 {
            let response = next(compacted.message()).await;
            responses.push((
                response.created(),
                response.canceled(),
                response.compact_revision() == revision,
                response.cancel_reason().to_owned(),
                response.events().len(),
            ));
        }
        t.show("watch from a compacted revision", responses);
        t
    });
}

#[test]
fn leases_grant_keep_alive_expire_and_revoke_as_in_etcd() {
    same_as_etcd(&[], |mut t| async move {
        let mut client = t.connect().await;
        let lease = client.lease_grant(60, None).await.unwrap();
        let id = lease.id();
        let name = t.name("lease", id);
        t.show("grant", (&name, lease.ttl()));
        client
            .put("held", "v", Some(PutOptions::new().with_lease(id)))
            .await
            .unwrap();
        let get = client.get("held", None).await.unwrap();
        let attached = t.name("lease", get.kvs()[0].lease());
        t.show("key's lease", attached);
        // Opening the stream sends one keep-alive (and reads its answer); the keeper sends
        // the next.
        let (mut keeper, mut responses) = client.lease_keep_alive(id).await.unwrap();
        keeper.keep_alive().await.unwrap();
        let kept = next(responses.message()).await;
        let kept_name = t.name("lease", kept.id());
        t.show("keep-alive", (kept_name, kept.ttl()));
        let ttl = client
            .lease_time_to_live(id, Some(LeaseTimeToLiveOptions::new().with_keys()))
            .await
            .unwrap();
        t.show(
            "time-to-live",
            (
                ttl.granted_ttl(),
                0 < ttl.ttl() && ttl.ttl() <= 60,
                ttl.keys()
                    .iter()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .collect::<Vec<_>>(),
            ),
        );
        let ids: Vec<i64> = client
            .leases()
            .await
            .unwrap()
            .leases()
            .iter()
            .map(|lease| lease.id())
            .collect();
        let mut listed: Vec<String> = ids.into_iter().map(|id| t.name("lease", id)).collect();
        listed.sort();
        t.show("leases", listed);
        client.lease_revoke(id).await.unwrap();
        t.show(
            "held after revoke",
            client.get("held", None).await.unwrap().kvs().len(),
        );
        let after = client.lease_time_to_live(id, None).await.unwrap();
        t.show(
            "time-to-live after revoke",
            (after.ttl(), after.granted_ttl()),
        );
        t.show("revoke again", error(client.lease_revoke(id).await));
        t.show(
            "keep-alive stream for a revoked lease",
            error(client.lease_keep_alive(id).await.map(|_| ())),
        );
        t.show("keep-alive of a revoked lease", {
            keeper.keep_alive().await.unwrap();
            let response = next(responses.message()).await;
            response.ttl()
        });

        // A lease id chosen by the client, granted twice.
        let chosen = client
            .lease_grant(30, Some(LeaseGrantOptions::new().with_id(0x1234)))
            .await
            .unwrap();
        t.show("grant with an id", (chosen.id(), chosen.ttl()));
        t.show(
            "grant the same id again",
            error(
                client
                    .lease_grant(30, Some(LeaseGrantOptions::new().with_id(0x1234)))
                    .await,
            ),
        );
        client.lease_revoke(0x1234).await.unwrap();

        // A short lease nobody keeps alive expires and takes its key with it.
        let short = client.lease_grant(2, None).await.unwrap();
        let short_name = t.name("lease", short.id());
        t.show("short grant", (short_name, short.ttl()));
        client
            .put(
                "fleeting",
                "v",
                Some(PutOptions::new().with_lease(short.id())),
            )
            .await
            .unwrap();
        let mut watch = client.watch("fleeting", None).await.unwrap();
        next(watch.message()).await; // created
        let expired = next(watch.message()).await;
        t.show(
            "on expiry",
            expired
                .events()
                .iter()
                .map(|e| {
                    format!(
                        "{:?} {}",
                        e.event_type(),
                        String::from_utf8_lossy(e.kv().unwrap().key())
                    )
                })
                .collect::<Vec<_>>(),
        );
        t.show(
            "fleeting after expiry",
            client.get("fleeting", None).await.unwrap().kvs().len(),
        );
        t.show(
            "time-to-live after expiry",
            client
                .lease_time_to_live(short.id(), None)
                .await
                .unwrap()
                .ttl(),
        );
        t
    });
}

#[test]
fn locks_and_elections_behave_as_in_etcd() {
    same_as_etcd(&[], |mut t| async move {
        let mut client = t.connect().await;
        let first = client.lease_grant(30, None).await.unwrap().id();
        let second = client.lease_grant(30, None).await.unwrap().id();
        t.name("lease", first);
        t.name("lease", second);
        let held = client
            .lock("mylock", Some(LockOptions::new().with_lease(first)))
            .await
            .unwrap();
        let key = t.owner_key(held.key());
        t.show("lock", key);
        let holder = client.get(held.key(), None).await.unwrap();
        let holder_lease = t.name("lease", holder.kvs()[0].lease());
        t.show("lock key's lease", holder_lease);
        let mut waiter_client = client.clone();
        let waiter = tokio::spawn(async move {
            waiter_client
                .lock("mylock", Some(LockOptions::new().with_lease(second)))
                .await
        });
        client.unlock(held.key()).await.unwrap();
        let second_held = timeout(MESSAGE_TIMEOUT, waiter)
            .await
            .expect("the second locker never got the lock")
            .unwrap()
            .unwrap();
        let next_key = t.owner_key(second_held.key());
        t.show("second lock", next_key);
        t.show(
            "first key after unlock",
            client.get(held.key(), None).await.unwrap().kvs().len(),
        );
        client.unlock(second_held.key()).await.unwrap();

        // Elections.
        let campaign = client.campaign("myelection", "v1", first).await.unwrap();
        let leader = campaign.leader().unwrap().clone();
        let leader_key = t.owner_key(leader.key());
        t.show(
            "campaign",
            (
                String::from_utf8_lossy(leader.name()).into_owned(),
                leader_key,
                leader.lease() == first,
            ),
        );
        let mut observer = client.observe("myelection").await.unwrap();
        let observed = next(observer.message()).await;
        t.show(
            "observed",
            observed
                .kv()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
        );
        let now = client.leader("myelection").await.unwrap();
        let kv = now.kv().unwrap();
        let key = t.owner_key(kv.key());
        t.show(
            "leader",
            (key, String::from_utf8_lossy(kv.value()).into_owned()),
        );
        client
            .proclaim(
                "v2",
                Some(etcd_client::ProclaimOptions::new().with_leader(leader.clone())),
            )
            .await
            .unwrap();
        let now = client.leader("myelection").await.unwrap();
        t.show(
            "leader after proclaim",
            now.kv().map(|kv| kv.value().to_vec()),
        );
        let observed = next(observer.message()).await;
        t.show(
            "observed after proclaim",
            observed
                .kv()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
        );
        client
            .resign(Some(ResignOptions::new().with_leader(leader)))
            .await
            .unwrap();
        t.show(
            "leader after resign",
            error(client.leader("myelection").await),
        );

        // A lock taken without a lease.
        let unleased = client.lock("free", None).await.unwrap();
        let key = t.owner_key(unleased.key());
        let holder = client.get(unleased.key(), None).await.unwrap();
        let lease = holder.kvs().first().map_or(0, |kv| kv.lease());
        let granted = if lease == 0 {
            0
        } else {
            client
                .lease_time_to_live(lease, None)
                .await
                .unwrap()
                .granted_ttl()
        };
        t.show("lock without a lease", (key, lease != 0, granted));
        client.unlock(unleased.key()).await.unwrap();
        t
    });
}

#[test]
fn member_list_and_status_report_what_etcd_reports() {
    same_as_etcd(&[], |mut t| async move {
        let mut client = t.connect().await;
        let list = client.member_list().await.unwrap();
        let header = list.header().unwrap();
        let member_id = header.member_id();
        let cluster_id = header.cluster_id();
        let members: Vec<_> = list
            .members()
            .iter()
            .map(|m| {
                (
                    m.id() == member_id,
                    m.name().to_owned(),
                    m.peer_urls().to_vec(),
                    m.client_urls().to_vec(),
                    m.is_learner(),
                )
            })
            .collect();
        t.show("members", members);
        let status = client.status().await.unwrap();
        let status_header = status.header().unwrap();
        t.show(
            "status",
            (
                status.version(),
                status.leader() == member_id,
                status_header.member_id() == member_id,
                status_header.cluster_id() == cluster_id,
                status.db_size() > 0,
                status.raft_index() >= status.raft_applied_index(),
                status.is_learner(),
                status.errors().to_vec(),
            ),
        );
        // A fresh member serves at term 2 (its bootstrap entries are at term 1).
        t.show("raft term", (status.raft_term(), status_header.raft_term()));
        let alarms = client
            .alarm(AlarmAction::Get, AlarmType::None, None)
            .await
            .unwrap();
        t.show("alarms", alarms.alarms().len());
        t.name("member", member_id);
        let added = client
            .member_add(
                ["http://127.0.0.1:1"],
                Some(MemberAddOptions::new().with_is_learner()),
            )
            .await
            .unwrap();
        let learner = added.member().unwrap().clone();
        let learner_name = t.name("member", learner.id());
        let mut listed: Vec<String> = added
            .member_list()
            .iter()
            .map(|m| t.name("member", m.id()))
            .collect();
        listed.sort();
        t.show(
            "add a learner",
            (
                learner_name,
                learner.name().to_owned(),
                learner.peer_urls().to_vec(),
                learner.is_learner(),
                listed,
            ),
        );
        t.show(
            "promote the learner",
            error(client.member_promote(learner.id()).await),
        );
        let removed = client.member_remove(learner.id()).await.unwrap();
        t.show("remove the learner", removed.members().len());
        t.show(
            "remove it again",
            error(client.member_remove(learner.id()).await),
        );
        let hash = client.hash_kv(0).await.unwrap();
        t.show("hash_kv", (hash.hash(), hash.compact_version()));
        t.show("defragment", client.defragment().await.is_ok());
        let mut snapshot = client.snapshot().await.unwrap();
        let (mut chunks, mut bytes, mut remaining) = (0, 0, None);
        while chunks < 10_000 {
            let Some(chunk) = timeout(MESSAGE_TIMEOUT, snapshot.message())
                .await
                .expect("no snapshot chunk in time")
                .unwrap()
            else {
                break;
            };
            chunks += 1;
            bytes += chunk.blob().len();
            remaining = Some(chunk.remaining_bytes());
        }
        t.show(
            "snapshot streamed to its end",
            (chunks > 0, bytes > 0, remaining),
        );
        t
    });
}

#[test]
fn auth_users_authenticate_and_are_checked_as_in_etcd() {
    same_as_etcd(&[], |mut t| async move {
        let mut client = t.connect().await;
        client.user_add("root", "rootpw", None).await.unwrap();
        client.user_grant_role("root", "root").await.unwrap();
        client.user_add("alice", "alicepw", None).await.unwrap();
        client.role_add("app").await.unwrap();
        client
            .role_grant_permission("app", Permission::read_write("app/").with_prefix())
            .await
            .unwrap();
        client.user_grant_role("alice", "app").await.unwrap();
        let users = client.user_list().await.unwrap();
        t.show("users", users.users().to_vec());
        let role = client.role_get("app").await.unwrap();
        t.show(
            "role app",
            role.permissions()
                .iter()
                .map(|p| {
                    (
                        p.get_type(),
                        String::from_utf8_lossy(p.key()).into_owned(),
                        String::from_utf8_lossy(p.range_end()).into_owned(),
                    )
                })
                .collect::<Vec<_>>(),
        );
        t.show(
            "alice's roles",
            client.user_get("alice").await.unwrap().roles().to_vec(),
        );
        t.show("get a missing role", error(client.role_get("nobody").await));
        client.auth_enable().await.unwrap();

        t.show(
            "put without a user",
            error(client.put("app/x", "1", None).await),
        );
        let mut auth = client.auth_client();
        t.show(
            "authenticate with a wrong password",
            error(
                auth.authenticate("alice".to_owned(), "nope".to_owned())
                    .await,
            ),
        );
        let token = auth
            .authenticate("alice".to_owned(), "alicepw".to_owned())
            .await
            .unwrap();
        t.show("token issued", !token.token().is_empty());

        let mut alice = connect(
            &t.endpoint,
            Some(ConnectOptions::new().with_user("alice", "alicepw")),
        )
        .await;
        let put = alice.put("app/x", "1", None).await;
        t.show(
            "alice puts app/x",
            put.map(|p| p.header().unwrap().revision())
                .map_err(|e| e.to_string()),
        );
        t.show(
            "alice reads app/",
            pairs(
                alice
                    .get("app/", Some(GetOptions::new().with_prefix()))
                    .await
                    .unwrap()
                    .kvs(),
            ),
        );
        t.show(
            "alice puts other",
            error(alice.put("other", "1", None).await),
        );
        t.show("alice lists users", error(alice.user_list().await));

        let mut root = connect(
            &t.endpoint,
            Some(ConnectOptions::new().with_user("root", "rootpw")),
        )
        .await;
        root.put("other", "1", None).await.unwrap();
        root.user_revoke_role("alice", "app").await.unwrap();
        t.show(
            "alice reads app/x after her role is revoked",
            error(alice.get("app/x", None).await),
        );
        root.user_change_password("alice", "newpw").await.unwrap();
        t.show(
            "connect with alice's old password",
            error(
                Client::connect(
                    [&t.endpoint],
                    Some(ConnectOptions::new().with_user("alice", "alicepw")),
                )
                .await
                .map(|_| ()),
            ),
        );
        root.auth_disable().await.unwrap();
        t.show(
            "get without a user after auth disable",
            pairs(client.get("other", None).await.unwrap().kvs()),
        );
        t
    });
}
