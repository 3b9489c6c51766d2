//! v2 store behaviours that need explicit time or live watchers, pinned to etcd 3.4.23:
//! TTLs and their rendering, expiry through SYNC ("expire" events), refresh, and which
//! live events a waiting watcher receives (hidden keys, deleted directories).

use oxetcd_spec::v2::{
    Action, Applied, Event, KEYS_PREFIX, Request, Store, TtlOptions, V2ErrorCode, WatchStart,
    Watcher, keys_path, ttl_seconds,
};

/// 2026-11-21T19:33:20Z.
const T0: u64 = 1_795_289_600_000;

fn ttl(seconds: u64, now_ms: u64) -> TtlOptions {
    TtlOptions {
        expire_at_ms: Some(now_ms + seconds * 1000),
        refresh: false,
    }
}

fn user(ev: &Event) -> String {
    ev.clone().trim_prefix(KEYS_PREFIX).to_json()
}

fn waiter(store: &Store, key: &str, recursive: bool) -> Watcher {
    match store
        .watch(&keys_path(key), recursive, false, 0)
        .expect("watch")
    {
        WatchStart::Wait(w) => w,
        WatchStart::Event(ev) => panic!("unexpected history answer {ev:?}"),
    }
}

#[test]
fn ttl_is_rendered_as_etcd_ceiling_seconds_with_rfc3339_expiration() {
    let mut s = Store::new();
    let ev = s
        .set(&keys_path("/t"), false, "a", ttl(5, T0), T0)
        .expect("set");
    assert_eq!(
        user(&ev),
        r#"{"action":"set","node":{"key":"/t","value":"a","expiration":"2026-11-21T19:33:25Z","ttl":5,"modifiedIndex":1,"createdIndex":1}}"#
    );
    let got = s.get(&keys_path("/t"), false, T0 + 1_500).expect("get");
    assert_eq!(got.node.ttl_s, 4, "ceil(3.5 s)");
    assert_eq!(ttl_seconds(T0 + 5_000, T0 + 5_000), 0);
    assert_eq!(
        ttl_seconds(T0 + 5_000, T0 + 6_500),
        -1,
        "Go truncates toward zero"
    );
    assert_eq!(ttl_seconds(T0 + 5_000, T0 + 4_999), 1);
}

/// etcd 3.4.23: `PUT /t value=a ttl=5`, then after expiry a recursive watch from that
/// index answered `{"action":"expire","node":{"key":"/t","modifiedIndex":20,
/// "createdIndex":19},"prevNode":{"key":"/t","value":"a","expiration":"...",
/// "modifiedIndex":19,"createdIndex":19}}` (no ttl: it is 0 at expiry).
#[test]
fn sync_expires_due_nodes_with_expire_events() {
    let mut s = Store::new();
    s.set(&keys_path("/t"), false, "a", ttl(5, T0), T0)
        .expect("set");
    s.set(&keys_path("/p"), false, "p", TtlOptions::PERMANENT, T0)
        .expect("set");
    let early = s
        .apply(
            &Request::Sync {
                time_ms: T0 + 4_999,
            },
            T0 + 4_999,
        )
        .expect("sync");
    assert_eq!(early, Applied::Expired(Vec::new()));
    let Applied::Expired(events) = s
        .apply(
            &Request::Sync {
                time_ms: T0 + 5_000,
            },
            T0 + 5_000,
        )
        .expect("sync")
    else {
        panic!("SYNC answers with expired events");
    };
    let bodies: Vec<String> = events.iter().map(user).collect();
    assert_eq!(
        bodies,
        vec![
            r#"{"action":"expire","node":{"key":"/t","modifiedIndex":3,"createdIndex":1},"prevNode":{"key":"/t","value":"a","expiration":"2026-11-21T19:33:25Z","modifiedIndex":1,"createdIndex":1}}"#
        ]
    );
    assert_eq!(
        s.get(&keys_path("/t"), false, T0 + 5_000)
            .map_err(|e| e.code),
        Err(V2ErrorCode::KeyNotFound)
    );
    assert_eq!(s.index(), 3);
    s.check_invariants();
}

#[test]
fn expiring_directory_removes_subtree_and_notifies_watchers_inside_it() {
    let mut s = Store::new();
    s.set(&keys_path("/d"), true, "", ttl(10, T0), T0)
        .expect("dir");
    s.set(&keys_path("/d/a/b"), false, "1", ttl(60, T0), T0)
        .expect("child");
    let inner = waiter(&s, "/d/a/b", false);
    let parent = waiter(&s, "/", true);
    let unrelated = waiter(&s, "/other", false);
    let Applied::Expired(events) = s
        .apply(
            &Request::Sync {
                time_ms: T0 + 10_000,
            },
            T0 + 10_000,
        )
        .expect("sync")
    else {
        panic!("SYNC answers with expired events");
    };
    assert_eq!(events.len(), 1, "the child goes with its directory");
    let ev = &events[0];
    assert_eq!(ev.action, Action::Expire);
    assert!(ev.node.dir);
    assert!(inner.matches(ev), "a watcher on a removed node is notified");
    assert!(parent.matches(ev));
    assert!(!unrelated.matches(ev));
    assert_eq!(s.next_expiration_ms(), None, "the child's TTL went with it");
    s.check_invariants();
}

/// etcd 3.4.23: `PUT /r ttl=50 refresh=true prevExist=true` answered "update" with the old
/// value and the new TTL; without prevExist it answered "set" with a new createdIndex.
/// Refreshes take an index but are never delivered to watchers.
#[test]
fn refresh_keeps_value_changes_ttl_and_is_not_watched() {
    let mut s = Store::new();
    s.set(&keys_path("/r"), false, "x", ttl(100, T0), T0)
        .expect("set");
    let w = waiter(&s, "/r", false);
    let refresh = TtlOptions {
        expire_at_ms: Some(T0 + 50_000),
        refresh: true,
    };
    let up = s
        .apply(
            &Request::Put {
                path: keys_path("/r"),
                value: String::new(),
                dir: false,
                prev_exist: Some(true),
                prev_value: String::new(),
                prev_index: 0,
                ttl: refresh,
            },
            T0,
        )
        .expect("refresh");
    let Applied::Event(up) = up else {
        panic!("event")
    };
    assert_eq!(
        user(&up),
        r#"{"action":"update","node":{"key":"/r","value":"x","expiration":"2026-11-21T19:34:10Z","ttl":50,"modifiedIndex":2,"createdIndex":1},"prevNode":{"key":"/r","value":"x","expiration":"2026-11-21T19:35:00Z","ttl":100,"modifiedIndex":1,"createdIndex":1}}"#
    );
    assert!(up.refresh);
    assert!(!w.matches(&up), "refresh events are not delivered");
    let set = s
        .set(&keys_path("/r"), false, "", refresh, T0)
        .expect("refresh via set");
    assert_eq!(set.action, Action::Set);
    assert_eq!(set.node.value.as_deref(), Some("x"));
    assert_eq!(set.node.created_index, 3, "Set replaces the node");
    // History scans skip refresh events: nothing to answer from index 2 on.
    assert!(matches!(
        s.watch(&keys_path("/r"), false, false, 2).expect("watch"),
        WatchStart::Wait(_)
    ));
    let missing = s
        .set(&keys_path("/nope/x"), false, "", refresh, T0)
        .expect_err("missing");
    assert_eq!(missing.code, V2ErrorCode::KeyNotFound);
    assert_eq!(
        missing.cause, "/1/nope",
        "etcd reports the first missing element"
    );
    // A plain write drops the TTL.
    let plain = s
        .set(&keys_path("/r"), false, "y", TtlOptions::PERMANENT, T0)
        .expect("set");
    assert_eq!(plain.node.expiration_ms, None);
    assert_eq!(s.next_expiration_ms(), None);
    s.check_invariants();
}

/// Recorded from etcd 3.4.23 with watches waiting while writes happened:
/// a recursive watch on /hw skipped `/hw/_x` and got `/hw/y`; a watch on `/dd/child` got
/// the recursive delete of `/dd`; a watch on the never-existing `/nd2/missing` got nothing
/// when `/nd2` was deleted; a non-recursive watch on `/e` ignored `/e/f`; a recursive
/// watch on `/` skipped the hidden `/hw/_x` and got `/e/f`; a watch on `/hw/_x` itself
/// got it.
#[test]
fn live_watchers_match_etcd_hidden_and_deleted_directory_rules() {
    let mut s = Store::new();
    for k in ["/dd/child", "/nd2/other", "/hw/z"] {
        s.set(&keys_path(k), false, "1", TtlOptions::PERMANENT, T0)
            .expect("seed");
    }
    let w1 = waiter(&s, "/hw", true);
    let w2 = waiter(&s, "/dd/child", false);
    let w3 = waiter(&s, "/nd2/missing", false);
    let w4 = waiter(&s, "/e", false);
    let w5 = waiter(&s, "/", true);
    let w6 = waiter(&s, "/hw/_x", false);
    let hidden = s
        .set(&keys_path("/hw/_x"), false, "h", TtlOptions::PERMANENT, T0)
        .expect("h");
    let ef = s
        .set(&keys_path("/e/f"), false, "1", TtlOptions::PERMANENT, T0)
        .expect("ef");
    let dd = s.delete(&keys_path("/dd"), false, true, T0).expect("dd");
    let nd2 = s.delete(&keys_path("/nd2"), false, true, T0).expect("nd2");
    let y = s
        .set(&keys_path("/hw/y"), false, "1", TtlOptions::PERMANENT, T0)
        .expect("y");
    let events = [&hidden, &ef, &dd, &nd2, &y];
    let first = |w: &Watcher| {
        events
            .iter()
            .find(|e| w.matches(e))
            .map(|e| e.node.key.clone())
    };
    assert_eq!(first(&w1), Some("/1/hw/y".to_string()));
    assert_eq!(first(&w2), Some("/1/dd".to_string()));
    assert_eq!(first(&w3), None);
    assert_eq!(first(&w4), None);
    assert_eq!(first(&w5), Some("/1/e/f".to_string()));
    assert_eq!(first(&w6), Some("/1/hw/_x".to_string()));
}

#[test]
fn events_and_errors_snapshot() {
    let mut s = Store::new();
    let mut lines = Vec::new();
    let mut log = |r: Result<Event, oxetcd_spec::v2::V2Error>| {
        lines.push(match r {
            Ok(ev) => format!("{} {}", ev.etcd_index, user(&ev)),
            Err(e) => format!(
                "{} {}",
                e.code.http_status(),
                e.trim_cause_prefix(KEYS_PREFIX).to_json()
            ),
        });
    };
    log(s.create(
        &keys_path("/q"),
        false,
        "a",
        true,
        TtlOptions::PERMANENT,
        T0,
    ));
    log(s.create(&keys_path("/q"), true, "", true, ttl(30, T0), T0));
    log(s.update(&keys_path("/q"), "v", TtlOptions::PERMANENT, T0));
    log(s.update(&keys_path("/q"), "", ttl(7, T0), T0 + 250));
    log(s.compare_and_swap(
        &keys_path("/q/00000000000000000001"),
        "a",
        1,
        "b",
        ttl(3, T0),
        T0,
    ));
    log(s.compare_and_delete(&keys_path("/q/00000000000000000001"), "b", 2, T0));
    log(s.compare_and_delete(&keys_path("/"), "x", 0, T0));
    log(s.get(&keys_path("/q"), true, T0 + 29_001));
    log(s.delete(&keys_path("/q"), true, false, T0));
    log(s.set(
        &keys_path("/x"),
        false,
        "<&>\"\n",
        TtlOptions::PERMANENT,
        T0,
    ));
    insta::assert_snapshot!(lines.join("\n"));
}

/// Every v2 error code with etcd's message and HTTP status, as a sample error body.
#[test]
fn v2_error_table_snapshot() {
    let table: Vec<String> = V2ErrorCode::ALL
        .iter()
        .map(|c| {
            assert_eq!(V2ErrorCode::from_code(c.code()), Some(*c));
            format!(
                "{} {}",
                c.http_status(),
                oxetcd_spec::v2::V2Error::new(*c, "", 7).to_json()
            )
        })
        .collect();
    insta::assert_snapshot!(table.join("\n"));
}

/// etcd 3.4.23: `PUT /w value=1 noValueOnSuccess=true` answered `{"action":"set"}` (201)
/// and with `prevValue=1` `{"action":"compareAndSwap"}`; deletes keep their nodes.
#[test]
fn no_value_on_success_drops_nodes_of_writes_only() {
    let mut s = Store::new();
    let set = s
        .set(&keys_path("/w"), false, "1", TtlOptions::PERMANENT, T0)
        .expect("set");
    assert_eq!(set.to_json_no_value(), r#"{"action":"set"}"#);
    let cas = s
        .compare_and_swap(&keys_path("/w"), "1", 0, "2", TtlOptions::PERMANENT, T0)
        .expect("cas");
    assert_eq!(cas.to_json_no_value(), r#"{"action":"compareAndSwap"}"#);
    let del = s
        .delete(&keys_path("/w"), false, false, T0)
        .expect("delete");
    assert_eq!(del.to_json_no_value(), del.to_json());
}
