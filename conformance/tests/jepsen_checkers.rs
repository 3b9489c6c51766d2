//! The Jepsen checkers on hand-built histories: for each model a linearizable and a
//! non-linearizable history, unknown outcomes, lease expiry, serializable reads, lost
//! writes, and watch gaps, duplicates, reorders and disagreements.

use std::time::Duration;

use oxetcd_conformance::jepsen::Nemesis;
use oxetcd_conformance::jepsen::check::{
    LinOptions, ModelKind, STALE_LEADER_LEASES, Verdict, check_linearizable, deleted_leases,
    lost_writes, serializable_anomalies, settle_unknown_writes,
};
use oxetcd_conformance::jepsen::history::{
    Cond, History, Kv, KvOp, KvResult, Op, PausedLeader, Request, Response, WatchEvent, WatchStream,
};
use oxetcd_conformance::jepsen::watch::check_watches;

const MS: i64 = 1_000_000;

fn op(client: u32, call: i64, ret: i64, req: Request, resp: Response) -> Op {
    Op {
        client,
        call: call * MS,
        ret: Some(ret * MS),
        req,
        resp: Some(resp),
        failed: false,
    }
}

fn unknown(client: u32, call: i64, req: Request) -> Op {
    Op {
        client,
        call: call * MS,
        ret: None,
        req,
        resp: None,
        failed: false,
    }
}

fn put_ok(rev: i64) -> Response {
    Response::Txn {
        succeeded: true,
        revision: rev,
        results: vec![KvResult::Put],
    }
}

fn kv(key: &str, value: &str, create: i64, modr: i64, version: i64) -> Kv {
    Kv {
        key: key.into(),
        value: value.into(),
        create_rev: create,
        mod_rev: modr,
        version,
        lease: 0,
    }
}

fn got(rev: i64, kvs: Vec<Kv>) -> Response {
    Response::Txn {
        succeeded: true,
        revision: rev,
        results: vec![KvResult::Range(kvs)],
    }
}

fn opts(model: ModelKind) -> LinOptions {
    LinOptions {
        model,
        initial_revision: 1,
        timeout: Duration::from_secs(20),
        serializable_as_linearizable: false,
        html_dir: None,
        paused_leaders: vec![],
        deleted_leases: None,
    }
}

#[test]
fn register_history_with_overlapping_read_is_linearizable() {
    let h = vec![
        op(0, 0, 10, Request::put("x", "a", None), put_ok(2)),
        op(
            1,
            5,
            15,
            Request::get("x"),
            got(2, vec![kv("x", "a", 2, 2, 1)]),
        ),
        op(
            1,
            20,
            30,
            Request::get("x"),
            got(3, vec![kv("x", "b", 2, 3, 2)]),
        ),
        op(0, 12, 25, Request::put("x", "b", None), put_ok(3)),
        op(2, 0, 5, Request::get("y"), got(1, vec![])),
    ];
    let r = check_linearizable(&h, &opts(ModelKind::Register));
    assert_eq!(r.verdict, Verdict::Linearizable);
    assert_eq!(r.partitions, 2);
}

#[test]
fn register_stale_read_is_a_violation_with_an_excerpt_and_html() {
    let dir = tempfile::tempdir().expect("temp dir");
    let h = vec![
        op(0, 0, 10, Request::put("x", "a", None), put_ok(2)),
        op(0, 20, 30, Request::put("x", "b", None), put_ok(3)),
        op(2, 21, 22, Request::get("y"), got(3, vec![])),
        op(
            1,
            40,
            50,
            Request::get("x"),
            got(2, vec![kv("x", "a", 2, 2, 1)]),
        ),
        op(
            1,
            60,
            70,
            Request::get("x"),
            got(3, vec![kv("x", "b", 2, 3, 2)]),
        ),
    ];
    let mut o = opts(ModelKind::Register);
    o.html_dir = Some(dir.path().to_path_buf());
    let r = check_linearizable(&h, &o);
    assert_eq!(r.verdict, Verdict::Violation);
    assert!(
        r.excerpt
            .iter()
            .any(|l| l.contains("get(x) -> rev 2 [x=a@2]")),
        "{:?}",
        r.excerpt
    );
    assert!(
        !r.excerpt.iter().any(|l| l.contains("x=b@3]")),
        "later read kept: {:?}",
        r.excerpt
    );
    let html = std::fs::read_to_string(r.html.expect("html written")).expect("read html");
    assert!(
        html.contains("<html") || html.contains("<!DOCTYPE"),
        "not html"
    );
}

#[test]
fn register_unknown_write_may_take_effect_later() {
    let h = vec![
        unknown(0, 0, Request::put("x", "a", None)),
        op(1, 100, 110, Request::get("x"), got(1, vec![])),
        op(
            1,
            200,
            210,
            Request::get("x"),
            got(2, vec![kv("x", "a", 2, 2, 1)]),
        ),
    ];
    assert_eq!(
        check_linearizable(&h, &opts(ModelKind::Register)).verdict,
        Verdict::Linearizable
    );
    // ...but not before it was invoked.
    let h = vec![
        op(
            1,
            0,
            10,
            Request::get("x"),
            got(2, vec![kv("x", "a", 2, 2, 1)]),
        ),
        unknown(0, 20, Request::put("x", "a", None)),
    ];
    assert_eq!(
        check_linearizable(&h, &opts(ModelKind::Register)).verdict,
        Verdict::Violation
    );
}

#[test]
fn register_mod_revisions_must_grow() {
    let h = vec![
        op(0, 0, 10, Request::put("x", "a", None), put_ok(5)),
        op(0, 20, 30, Request::put("x", "b", None), put_ok(4)),
    ];
    assert_eq!(
        check_linearizable(&h, &opts(ModelKind::Register)).verdict,
        Verdict::Violation
    );
}

fn cas(key: &str, version: i64, value: &str) -> Request {
    Request::Txn {
        conds: vec![Cond::Version(key.into(), version)],
        then: vec![KvOp::Put {
            key: key.into(),
            value: value.into(),
            lease: None,
        }],
        els: vec![KvOp::Range {
            key: key.into(),
            prefix: false,
        }],
    }
}

#[test]
fn kv_txn_history_is_linearizable() {
    let range = Request::Txn {
        conds: vec![],
        then: vec![KvOp::Range {
            key: "k/".into(),
            prefix: true,
        }],
        els: vec![],
    };
    let del = Request::Txn {
        conds: vec![],
        then: vec![KvOp::Delete {
            key: "k/".into(),
            prefix: true,
        }],
        els: vec![],
    };
    let h = vec![
        op(0, 0, 10, Request::put("k/a", "1", None), put_ok(2)),
        op(1, 20, 30, cas("k/a", 1, "2"), put_ok(3)),
        op(
            2,
            21,
            31,
            cas("k/a", 1, "3"),
            Response::Txn {
                succeeded: false,
                revision: 3,
                results: vec![KvResult::Range(vec![kv("k/a", "2", 2, 3, 2)])],
            },
        ),
        op(0, 40, 50, Request::put("k/b", "4", None), put_ok(4)),
        op(
            1,
            60,
            70,
            range,
            got(4, vec![kv("k/a", "2", 2, 3, 2), kv("k/b", "4", 4, 4, 1)]),
        ),
        op(
            2,
            80,
            90,
            del,
            Response::Txn {
                succeeded: true,
                revision: 5,
                results: vec![KvResult::Delete(2)],
            },
        ),
        op(0, 100, 110, Request::get("k/a"), got(5, vec![])),
    ];
    assert_eq!(
        check_linearizable(&h, &opts(ModelKind::Kv)).verdict,
        Verdict::Linearizable
    );
}

#[test]
fn kv_two_successful_compare_and_sets_are_a_violation() {
    let h = vec![
        op(0, 0, 10, Request::put("k/a", "1", None), put_ok(2)),
        op(1, 20, 30, cas("k/a", 1, "2"), put_ok(3)),
        op(2, 21, 31, cas("k/a", 1, "3"), put_ok(4)),
    ];
    assert_eq!(
        check_linearizable(&h, &opts(ModelKind::Kv)).verdict,
        Verdict::Violation
    );
}

#[test]
fn kv_skipped_revision_is_a_violation() {
    let h = vec![
        op(0, 0, 10, Request::put("k/a", "1", None), put_ok(2)),
        op(0, 20, 30, Request::put("k/b", "2", None), put_ok(4)),
    ];
    assert_eq!(
        check_linearizable(&h, &opts(ModelKind::Kv)).verdict,
        Verdict::Violation
    );
    // An unknown write in between explains the skipped revision.
    let mut h = h;
    h.push(unknown(1, 5, Request::put("k/c", "3", None)));
    assert_eq!(
        check_linearizable(&h, &opts(ModelKind::Kv)).verdict,
        Verdict::Linearizable
    );
}

fn lease_put(key: &str, value: &str, lease: i64) -> Request {
    Request::put(key, value, Some(lease))
}

fn leased(key: &str, value: &str, rev: i64, lease: i64) -> Kv {
    Kv {
        lease,
        ..kv(key, value, rev, rev, 1)
    }
}

#[test]
fn lease_revoke_deletes_its_keys() {
    let base = vec![
        op(
            0,
            0,
            10,
            Request::LeaseGrant { id: 7, ttl: 60 },
            Response::LeaseOk,
        ),
        op(0, 20, 30, lease_put("k/a", "1", 7), put_ok(2)),
        op(
            1,
            40,
            50,
            Request::get("k/a"),
            got(2, vec![leased("k/a", "1", 2, 7)]),
        ),
        op(0, 60, 70, Request::LeaseRevoke { id: 7 }, Response::LeaseOk),
        op(
            1,
            100,
            110,
            Request::LeaseKeepAlive { id: 7 },
            Response::LeaseNotFound,
        ),
    ];
    let mut ok = base.clone();
    ok.push(op(1, 80, 90, Request::get("k/a"), got(3, vec![])));
    assert_eq!(
        check_linearizable(&ok, &opts(ModelKind::Kv)).verdict,
        Verdict::Linearizable
    );
    let mut bad = base;
    bad.push(op(
        1,
        80,
        90,
        Request::get("k/a"),
        got(2, vec![leased("k/a", "1", 2, 7)]),
    ));
    assert_eq!(
        check_linearizable(&bad, &opts(ModelKind::Kv)).verdict,
        Verdict::Violation
    );
}

#[test]
fn lease_expiry_is_allowed_only_after_its_ttl() {
    let base = vec![
        op(
            0,
            0,
            10,
            Request::LeaseGrant { id: 9, ttl: 2 },
            Response::LeaseOk,
        ),
        op(0, 20, 30, lease_put("k/a", "1", 9), put_ok(2)),
    ];
    let mut late = base.clone();
    late.push(op(1, 5_000, 5_010, Request::get("k/a"), got(3, vec![])));
    assert_eq!(
        check_linearizable(&late, &opts(ModelKind::Kv)).verdict,
        Verdict::Linearizable
    );
    let mut early = base;
    early.push(op(1, 500, 510, Request::get("k/a"), got(3, vec![])));
    assert_eq!(
        check_linearizable(&early, &opts(ModelKind::Kv)).verdict,
        Verdict::Violation
    );
}

fn keep_alive(client: u32, call: i64, resp: Response) -> Op {
    op(
        client,
        call,
        call + 10,
        Request::LeaseKeepAlive { id: 9 },
        resp,
    )
}

/// Lease 9 (TTL 2 s) with a key, kept alive every 0.9 s; the leader is paused from
/// 2.0 s to 5.0 s, and the keep-alives go on through the new leader.
fn kept_alive_lease(until_ms: i64) -> Vec<Op> {
    let mut h = vec![
        op(
            0,
            0,
            10,
            Request::LeaseGrant { id: 9, ttl: 2 },
            Response::LeaseOk,
        ),
        op(0, 20, 30, lease_put("k/a", "1", 9), put_ok(2)),
        op(1, 40, 50, Request::put("k/b", "x", None), put_ok(3)),
    ];
    let mut t = 900;
    while t <= until_ms {
        h.push(keep_alive(0, t, Response::LeaseOk));
        t += 900;
    }
    h
}

fn paused_leader() -> PausedLeader {
    PausedLeader {
        member: "n0".into(),
        paused: 2_000 * MS,
        resumed: 5_000 * MS,
    }
}

fn opts_with_pause() -> LinOptions {
    LinOptions {
        paused_leaders: vec![paused_leader()],
        ..opts(ModelKind::Kv)
    }
}

#[test]
fn lease_revoked_by_a_resumed_stale_leader_is_a_known_etcd_deviation() {
    // The lease is kept alive (last at 4.5 s, so it lives until 6.5 s at least), yet its
    // key is gone at 5.3 s, right after the paused leader resumed: the stale leader's
    // lessor revoked it (etcd-io/etcd#15247).
    let mut h = kept_alive_lease(4_500);
    h.push(op(1, 5_300, 5_310, Request::get("k/a"), got(4, vec![])));
    h.push(keep_alive(0, 5_400, Response::LeaseNotFound));
    let strict = check_linearizable(&h, &opts(ModelKind::Kv));
    assert_eq!(strict.verdict, Verdict::Violation);
    assert!(strict.deviations.is_empty());

    let r = check_linearizable(&h, &opts_with_pause());
    assert_eq!(r.verdict, Verdict::KnownDeviation, "{:?}", r.excerpt);
    assert_eq!(r.deviations.len(), 1, "{:?}", r.deviations);
    assert!(r.deviations[0].starts_with(STALE_LEADER_LEASES));
    assert!(
        r.deviations[0].contains("lease 9 revoked early by n0"),
        "{}",
        r.deviations[0]
    );
}

#[test]
fn keep_alive_acknowledged_by_a_resumed_stale_leader_is_a_known_etcd_deviation() {
    // The last keep-alive before the pause is at 1.8 s; one sent during the pause waits
    // for the paused leader and is acknowledged by its stale lessor as it resumes. The
    // new leader never saw it and lets the lease expire at 6.0 s.
    let mut h = kept_alive_lease(1_800);
    h.push(op(
        0,
        4_600,
        5_010,
        Request::LeaseKeepAlive { id: 9 },
        Response::LeaseOk,
    ));
    h.push(op(1, 6_000, 6_010, Request::get("k/a"), got(4, vec![])));
    assert_eq!(
        check_linearizable(&h, &opts(ModelKind::Kv)).verdict,
        Verdict::Violation
    );
    let r = check_linearizable(&h, &opts_with_pause());
    assert_eq!(r.verdict, Verdict::KnownDeviation);
    assert_eq!(r.deviations.len(), 1, "{:?}", r.deviations);
    assert!(
        r.deviations[0].contains("keep-alive of lease 9 acknowledged by n0's stale lessor"),
        "{}",
        r.deviations[0]
    );
}

#[test]
fn leases_whose_keys_the_store_deleted_are_found_by_value() {
    let h = vec![
        op(0, 0, 10, lease_put("k/a", "1", 9), put_ok(2)),
        op(0, 20, 30, lease_put("k/b", "2", 8), put_ok(3)),
        op(0, 40, 50, Request::put("k/b", "3", None), put_ok(4)),
        op(0, 60, 70, Request::put("k/c", "4", None), put_ok(5)),
    ];
    // k/a (lease 9) deleted; k/b deleted after a put without a lease; k/c deleted.
    let log = log_of(&[
        (2, "k/a", Some("1")),
        (3, "k/b", Some("2")),
        (4, "k/b", Some("3")),
        (5, "k/c", Some("4")),
        (6, "k/a", None),
        (7, "k/b", None),
        (7, "k/c", None),
    ]);
    assert_eq!(
        deleted_leases(&h, &log).into_iter().collect::<Vec<_>>(),
        vec![9]
    );
    // With the store's history saying lease 9's key was never deleted, an early loss
    // of lease 9 is not put down to the stale leader.
    let mut early = kept_alive_lease(4_500);
    early.push(op(1, 5_300, 5_310, Request::get("k/a"), got(4, vec![])));
    let o = LinOptions {
        deleted_leases: Some(std::collections::BTreeSet::new()),
        ..opts_with_pause()
    };
    assert_eq!(check_linearizable(&early, &o).verdict, Verdict::Violation);
}

#[test]
fn early_lease_loss_outside_a_stale_leader_window_is_still_a_violation() {
    let pause = opts_with_pause();
    // The same early revoke with no leader paused.
    let mut no_pause = kept_alive_lease(4_500);
    no_pause.push(op(1, 5_300, 5_310, Request::get("k/a"), got(4, vec![])));
    assert_eq!(
        check_linearizable(&no_pause, &opts(ModelKind::Kv)).verdict,
        Verdict::Violation
    );
    // Kept alive through the new leader long after the resume (last at 9.9 s), and
    // gone at 10.5 s: the window (until 8.0 s) is long closed.
    let mut late = kept_alive_lease(9_900);
    late.push(op(1, 10_500, 10_510, Request::get("k/a"), got(4, vec![])));
    let r = check_linearizable(&late, &pause);
    assert_eq!(r.verdict, Verdict::Violation, "{:?}", r.deviations);
    assert!(r.deviations.is_empty());
    // Inside the window, but a stale read of a key with no lease: not a lease matter.
    let mut stale = kept_alive_lease(4_500);
    stale.push(op(1, 5_300, 5_310, Request::get("k/b"), got(3, vec![])));
    assert_eq!(
        check_linearizable(&stale, &pause).verdict,
        Verdict::Violation
    );
    // A lease granted after the pause began was never known to the paused leader.
    let mut h = vec![
        op(
            0,
            2_500,
            2_510,
            Request::LeaseGrant { id: 9, ttl: 2 },
            Response::LeaseOk,
        ),
        op(0, 2_520, 2_530, lease_put("k/a", "1", 9), put_ok(2)),
        keep_alive(0, 3_500, Response::LeaseOk),
        keep_alive(0, 4_400, Response::LeaseOk),
    ];
    h.push(op(1, 5_300, 5_310, Request::get("k/a"), got(3, vec![])));
    assert_eq!(check_linearizable(&h, &pause).verdict, Verdict::Violation);
}

#[test]
fn serializable_reads_are_not_linearizable_unless_checked_as_such() {
    let h = vec![
        op(0, 0, 10, Request::put("x", "a", None), put_ok(2)),
        op(0, 20, 30, Request::put("x", "b", None), put_ok(3)),
        op(
            1,
            40,
            50,
            Request::SerializableGet { key: "x".into() },
            got(2, vec![kv("x", "a", 2, 2, 1)]),
        ),
    ];
    assert_eq!(
        check_linearizable(&h, &opts(ModelKind::Register)).verdict,
        Verdict::Linearizable
    );
    let mut o = opts(ModelKind::Register);
    o.serializable_as_linearizable = true;
    assert_eq!(check_linearizable(&h, &o).verdict, Verdict::Violation);
}

fn log_of(events: &[(i64, &str, Option<&str>)]) -> Vec<WatchEvent> {
    events
        .iter()
        .map(|(r, k, v)| WatchEvent {
            revision: *r,
            key: (*k).into(),
            value: v.map(str::to_owned),
        })
        .collect()
}

#[test]
fn serializable_checks_find_future_inconsistent_and_backward_reads() {
    let sget = |c: u32, call: i64, rev: i64, kvs: Vec<Kv>| {
        op(
            c,
            call,
            call + 5,
            Request::SerializableGet { key: "x".into() },
            got(rev, kvs),
        )
    };
    let writes = vec![
        op(0, 0, 10, Request::put("x", "a", None), put_ok(2)),
        op(0, 20, 30, Request::put("x", "b", None), put_ok(3)),
    ];
    let log = log_of(&[(2, "x", Some("a")), (3, "x", Some("b"))]);
    let mut good = History {
        ops: writes.clone(),
        log: log.clone(),
        ..History::default()
    };
    good.ops.push(sget(1, 25, 2, vec![kv("x", "a", 2, 2, 1)]));
    good.ops.push(sget(1, 40, 3, vec![kv("x", "b", 2, 3, 2)]));
    assert!(
        serializable_anomalies(&good).is_empty(),
        "{:?}",
        serializable_anomalies(&good)
    );

    let mut future = History {
        ops: writes.clone(),
        log: log.clone(),
        ..History::default()
    };
    future.ops.push(sget(1, 5, 3, vec![kv("x", "b", 2, 3, 2)]));
    assert!(
        serializable_anomalies(&future)
            .iter()
            .any(|a| a.contains("future"))
    );

    let mut inconsistent = History {
        ops: writes.clone(),
        log: log.clone(),
        ..History::default()
    };
    inconsistent
        .ops
        .push(sget(1, 40, 3, vec![kv("x", "a", 2, 2, 1)]));
    assert!(
        serializable_anomalies(&inconsistent)
            .iter()
            .any(|a| a.contains("value at rev 3 is b"))
    );

    let mut backward = History {
        ops: writes,
        log,
        ..History::default()
    };
    backward
        .ops
        .push(sget(1, 40, 3, vec![kv("x", "b", 2, 3, 2)]));
    backward
        .ops
        .push(sget(1, 50, 2, vec![kv("x", "a", 2, 2, 1)]));
    assert!(
        serializable_anomalies(&backward)
            .iter()
            .any(|a| a.contains("not monotonic"))
    );
}

#[test]
fn acknowledged_put_missing_from_the_store_is_a_lost_write() {
    let ops = vec![
        op(0, 0, 10, Request::put("x", "a", None), put_ok(2)),
        op(0, 20, 30, Request::put("x", "b", None), put_ok(3)),
        unknown(1, 20, Request::put("x", "c", None)),
    ];
    let full = History {
        ops: ops.clone(),
        log: log_of(&[(2, "x", Some("a")), (3, "x", Some("b"))]),
        ..History::default()
    };
    assert!(lost_writes(&full).is_empty());
    let missing = History {
        ops,
        log: log_of(&[(2, "x", Some("a"))]),
        ..History::default()
    };
    let lost = lost_writes(&missing);
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert!(lost[0].contains("put(x=b)"));
}

fn stream(events: &[(i64, &str, Option<&str>)]) -> WatchStream {
    WatchStream {
        watcher: 0,
        prefix: "k/".into(),
        start_revision: 2,
        events: log_of(events),
    }
}

#[test]
fn watch_checker_accepts_a_faithful_stream_and_flags_each_anomaly() {
    let log = log_of(&[
        (2, "k/a", Some("1")),
        (3, "k/b", Some("2")),
        (4, "k/a", None),
        (5, "k/b", Some("3")),
    ]);
    let good = check_watches(
        &[stream(&[
            (2, "k/a", Some("1")),
            (3, "k/b", Some("2")),
            (4, "k/a", None),
        ])],
        &log,
    );
    assert_eq!(good.anomalies(), 0, "{:?}", good.details);
    assert_eq!(good.unfinished, 1);

    let gap = check_watches(&[stream(&[(2, "k/a", Some("1")), (4, "k/a", None)])], &log);
    assert_eq!(gap.gaps, 1, "{:?}", gap.details);

    let dup = check_watches(
        &[stream(&[
            (2, "k/a", Some("1")),
            (3, "k/b", Some("2")),
            (3, "k/b", Some("2")),
        ])],
        &log,
    );
    assert_eq!(dup.duplicates, 1, "{:?}", dup.details);

    let reorder = check_watches(
        &[stream(&[(3, "k/b", Some("2")), (2, "k/a", Some("1"))])],
        &log,
    );
    assert_eq!(reorder.reorders, 1, "{:?}", reorder.details);

    let wrong = check_watches(&[stream(&[(2, "k/a", Some("9"))])], &log);
    assert_eq!(wrong.disagreements, 1, "{:?}", wrong.details);
}

#[test]
fn unknown_writes_are_settled_by_the_store_history() {
    let h = vec![
        unknown(0, 0, Request::put("k/a", "1", None)),
        unknown(1, 0, Request::put("k/b", "2", None)),
        op(2, 50, 60, Request::put("k/c", "3", None), put_ok(3)),
    ];
    let log = log_of(&[(2, "k/a", Some("1")), (3, "k/c", Some("3"))]);
    let settled = settle_unknown_writes(&h, &log);
    assert_eq!(
        settled.len(),
        2,
        "the write that never happened stays: {settled:?}"
    );
    assert_eq!(settled[0].resp, Some(put_ok(2)));
    assert_eq!(settled[0].ret, None);
    assert_eq!(
        check_linearizable(&settled, &opts(ModelKind::Kv)).verdict,
        Verdict::Linearizable
    );
    // Settled at revision 2, the write cannot also explain a later revision.
    let mut bad = settled;
    bad.push(op(2, 70, 80, Request::put("k/d", "4", None), put_ok(5)));
    assert_eq!(
        check_linearizable(&bad, &opts(ModelKind::Kv)).verdict,
        Verdict::Violation
    );
}

#[test]
fn the_fault_schedule_is_a_function_of_the_seed() {
    use oxetcd_conformance::jepsen::run::schedule;
    let d = Duration::from_secs(30);
    let a = schedule(Nemesis::Mixed, 3, d, 42);
    assert!(a.len() >= 3, "too few faults in 30 s: {a:?}");
    assert_eq!(a, schedule(Nemesis::Mixed, 3, d, 42));
    assert_ne!(a, schedule(Nemesis::Mixed, 3, d, 43));
    assert!(a.iter().all(|f| f.at + f.length <= d && f.target < 3));
    for pair in a.windows(2) {
        assert!(
            pair[0].at + pair[0].length < pair[1].at,
            "faults overlap: {pair:?}"
        );
    }
    assert!(schedule(Nemesis::None, 3, d, 42).is_empty());
    assert!(
        schedule(Nemesis::Kill, 3, d, 42)
            .iter()
            .all(|f| f.kind == Nemesis::Kill)
    );
}
