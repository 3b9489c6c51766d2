//! Scripted scenarios through `spec::apply::AppState::apply`, responses and errors
//! pinned with insta snapshots. Every expectation was checked against a real etcd
//! 3.4.23 (`etcdctl -w json` and the `/v3` JSON gateway) with the same requests; each
//! step's comment names the behaviour.

use oxetcd_spec::apply::{AppConfig, AppState, Applied, Command, Proposal, Response};
use oxetcd_spec::lease::{LeaseError, LeaseId};
use oxetcd_spec::mvcc::{
    Bucket, CompactionRequest, Compare, CompareResult, CompareTarget, DeleteRangeRequest, Event,
    EventKind, KeyValue, MemBackend, PutRequest, RangeRequest, RequestOp, ResponseOp, SortOrder,
    SortTarget, TxnRequest,
};

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn kv(k: &KeyValue) -> String {
    format!(
        "{}={} c{} m{} v{} l{}",
        s(&k.key),
        s(&k.value),
        k.create_revision,
        k.mod_revision,
        k.version,
        k.lease.0
    )
}

fn kvs(v: &[KeyValue]) -> String {
    v.iter().map(kv).collect::<Vec<_>>().join(", ")
}

fn op(r: &ResponseOp) -> String {
    match r {
        ResponseOp::Range(r) => format!(
            "range rev={} count={} more={} [{}]",
            r.revision,
            r.count,
            r.more,
            kvs(&r.kvs)
        ),
        ResponseOp::Put(p) => format!(
            "put rev={} prev=[{}]",
            p.revision,
            p.prev_kv.as_ref().map(kv).unwrap_or_default()
        ),
        ResponseOp::DeleteRange(d) => format!(
            "delete rev={} deleted={} prev=[{}]",
            d.revision,
            d.deleted,
            kvs(&d.prev_kvs)
        ),
        ResponseOp::Txn(t) => {
            let inner: Vec<String> = t.responses.iter().map(op).collect();
            format!(
                "txn rev={} succeeded={} {{{}}}",
                t.revision,
                t.succeeded,
                inner.join("; ")
            )
        }
    }
}

fn event(e: &Event) -> String {
    let kind = match e.kind {
        EventKind::Put => "PUT",
        EventKind::Delete => "DELETE",
    };
    format!(
        "{kind} {} prev=[{}]",
        kv(&e.kv),
        e.prev_kv.as_ref().map(kv).unwrap_or_default()
    )
}

fn show(a: &Applied) -> String {
    let body = match &a.result {
        Err(e) => format!("error: {e}"),
        Ok(Response::Range(r)) => op(&ResponseOp::Range(r.clone())),
        Ok(Response::Put(r)) => op(&ResponseOp::Put(r.clone())),
        Ok(Response::DeleteRange(r)) => op(&ResponseOp::DeleteRange(r.clone())),
        Ok(Response::Txn(r)) => op(&ResponseOp::Txn(r.clone())),
        Ok(Response::Compaction(r)) => format!("compaction rev={}", r.revision),
        Ok(Response::LeaseGrant(r)) => {
            format!(
                "lease grant rev={} id={} ttl={}",
                r.revision, r.id.0, r.ttl_secs
            )
        }
        Ok(Response::LeaseRevoke(r)) => format!("lease revoke rev={}", r.revision),
        Ok(other) => format!("{other:?}"),
    };
    let mut out = format!("#{} {body}", a.index);
    for e in &a.events {
        out.push_str("\n    ");
        out.push_str(&event(e));
    }
    out
}

struct Script {
    app: AppState,
    index: u64,
    now_ms: u64,
    out: Vec<String>,
}

impl Script {
    fn new() -> Self {
        let mut app = AppState::new(MemBackend::new(), AppConfig::default());
        app.promote(0, 1000);
        Self {
            app,
            index: 0,
            now_ms: 0,
            out: Vec::new(),
        }
    }

    fn run(&mut self, why: &str, command: Command) -> Applied {
        self.index += 1;
        let p = Proposal {
            request_id: self.index,
            auth: None,
            command,
        };
        let a = self
            .app
            .apply(self.index, &p, self.now_ms)
            .expect("memory backend never fails")
            .expect("a new index is applied");
        if !why.is_empty() {
            self.out.push(format!("# {why}"));
        }
        self.out.push(show(&a));
        a
    }
}

fn put(k: &str, v: &str) -> PutRequest {
    PutRequest {
        key: k.into(),
        value: v.into(),
        ..PutRequest::default()
    }
}

fn range(k: &str, end: &str) -> RangeRequest {
    RangeRequest {
        key: k.into(),
        range_end: end.into(),
        ..RangeRequest::default()
    }
}

fn cmp(k: &str, result: CompareResult, target: CompareTarget) -> Compare {
    Compare {
        result,
        target,
        key: k.into(),
        range_end: Vec::new(),
    }
}

#[test]
fn kv_requests_answer_like_etcd_3_4_23() {
    let mut t = Script::new();
    t.run(
        "first write of a fresh store gets revision 2",
        Command::Put(put("a", "1")),
    );
    t.run(
        "prev_kv returns the old value; version counts puts",
        Command::Put(PutRequest {
            prev_kv: true,
            ..put("a", "2")
        }),
    );
    t.run(
        "ignore_value keeps the value, bumps version",
        Command::Put(PutRequest {
            ignore_value: true,
            ..put("a", "")
        }),
    );
    t.run(
        "ignore_value with a value: etcdserver: value is provided",
        Command::Put(PutRequest {
            ignore_value: true,
            ..put("a", "x")
        }),
    );
    t.run(
        "ignore_lease with a lease: etcdserver: lease is provided",
        Command::Put(PutRequest {
            ignore_lease: true,
            lease: LeaseId(5),
            ..put("a", "")
        }),
    );
    t.run(
        "ignore_lease on a missing key: etcdserver: key not found",
        Command::Put(PutRequest {
            ignore_lease: true,
            ..put("none", "")
        }),
    );
    t.run(
        "unknown lease: etcdserver: requested lease not found",
        Command::Put(PutRequest {
            lease: LeaseId(12345),
            ..put("z", "1")
        }),
    );
    t.run("", Command::Put(put("b", "3")));
    t.run("", Command::Put(put("c", "0")));
    t.run(
        "sort by MOD with no order sorts ascending; limit sets more; count ignores limit",
        Command::Range(RangeRequest {
            sort_target: SortTarget::Mod,
            limit: 1,
            ..range("\0", "\0")
        }),
    );
    t.run(
        "descending by value; keys_only drops values",
        Command::Range(RangeRequest {
            sort_order: SortOrder::Descend,
            sort_target: SortTarget::Value,
            keys_only: true,
            ..range("a", "d")
        }),
    );
    t.run(
        "count ignores the min/max revision filters",
        Command::Range(RangeRequest {
            min_mod_revision: 6,
            ..range("a", "\0")
        }),
    );
    t.run(
        "count_only returns no kvs",
        Command::Range(RangeRequest {
            count_only: true,
            ..range("a", "\0")
        }),
    );
    t.run(
        "historic read at revision 3",
        Command::Range(RangeRequest {
            revision: 3,
            ..range("a", "")
        }),
    );
    t.run(
        "future revision",
        Command::Range(RangeRequest {
            revision: 99,
            ..range("a", "")
        }),
    );
    t.run(
        "delete with prev_kv; one revision for the whole range",
        Command::DeleteRange(DeleteRangeRequest {
            key: "b".into(),
            range_end: "\0".into(),
            prev_kv: true,
        }),
    );
    t.run(
        "deleting nothing creates no revision",
        Command::DeleteRange(DeleteRangeRequest {
            key: "b".into(),
            range_end: Vec::new(),
            prev_kv: false,
        }),
    );
    t.run(
        "put after delete: new generation, version 1",
        Command::Put(put("b", "4")),
    );
    t.run(
        "compaction answers with the current revision",
        Command::Compaction(CompactionRequest {
            revision: 5,
            physical: false,
        }),
    );
    t.run(
        "compacting again at or below: compacted",
        Command::Compaction(CompactionRequest {
            revision: 5,
            physical: false,
        }),
    );
    t.run(
        "compacting in the future",
        Command::Compaction(CompactionRequest {
            revision: 50,
            physical: false,
        }),
    );
    t.run(
        "reading below the compaction",
        Command::Range(RangeRequest {
            revision: 4,
            ..range("a", "")
        }),
    );
    t.run(
        "reading at the compaction",
        Command::Range(RangeRequest {
            revision: 5,
            ..range("a", "")
        }),
    );
    insta::assert_snapshot!(t.out.join("\n"));
}

#[test]
fn txns_answer_like_etcd_3_4_23() {
    let mut t = Script::new();
    t.run("", Command::Put(put("x", "1")));
    t.run(
        "ops in a txn share one revision; reads see earlier writes; a delete of nothing \
         after a write reports the txn's revision",
        Command::Txn(TxnRequest {
            compare: vec![],
            success: vec![
                RequestOp::Put(put("y", "1")),
                RequestOp::Range(range("y", "")),
                RequestOp::DeleteRange(DeleteRangeRequest {
                    key: "nothing".into(),
                    ..Default::default()
                }),
            ],
            failure: vec![],
        }),
    );
    t.run(
        "nested compares are evaluated before any op; nested headers are empty (0)",
        Command::Txn(TxnRequest {
            compare: vec![],
            success: vec![
                RequestOp::Put(put("x", "2")),
                RequestOp::Txn(TxnRequest {
                    compare: vec![cmp("x", CompareResult::Equal, CompareTarget::Version(1))],
                    success: vec![RequestOp::Put(put("n", "then"))],
                    failure: vec![RequestOp::Put(put("n", "else"))],
                }),
            ],
            failure: vec![],
        }),
    );
    t.run(
        "value compare on a missing key fails; failure branch runs",
        Command::Txn(TxnRequest {
            compare: vec![cmp(
                "missing",
                CompareResult::NotEqual,
                CompareTarget::Value(b"q".to_vec()),
            )],
            success: vec![RequestOp::Put(put("s", "1"))],
            failure: vec![RequestOp::Range(range("x", ""))],
        }),
    );
    t.run(
        "version compare on a missing key compares with 0; read-only txn keeps the revision",
        Command::Txn(TxnRequest {
            compare: vec![cmp(
                "missing",
                CompareResult::Equal,
                CompareTarget::Version(0),
            )],
            success: vec![RequestOp::Range(range("\0", "\0"))],
            failure: vec![],
        }),
    );
    t.run(
        "range compare: every key in [n, z) must hold",
        Command::Txn(TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Greater,
                target: CompareTarget::Mod(2),
                key: "n".into(),
                range_end: "z".into(),
            }],
            success: vec![],
            failure: vec![],
        }),
    );
    t.run(
        "two puts of one key: duplicate key",
        Command::Txn(TxnRequest {
            compare: vec![],
            success: vec![RequestOp::Put(put("q", "1")), RequestOp::Put(put("q", "2"))],
            failure: vec![],
        }),
    );
    t.run(
        "a nested put and an outer put of one key: duplicate key",
        Command::Txn(TxnRequest {
            compare: vec![],
            success: vec![
                RequestOp::Txn(TxnRequest {
                    success: vec![RequestOp::Put(put("q", "1"))],
                    ..Default::default()
                }),
                RequestOp::Put(PutRequest {
                    ignore_value: true,
                    ..put("q", "")
                }),
            ],
            failure: vec![],
        }),
    );
    t.run(
        "then and else of one nested txn may put the same key",
        Command::Txn(TxnRequest {
            compare: vec![],
            success: vec![RequestOp::Txn(TxnRequest {
                compare: vec![],
                success: vec![RequestOp::Put(put("w", "then"))],
                failure: vec![RequestOp::Put(put("w", "else"))],
            })],
            failure: vec![],
        }),
    );
    t.run(
        "a put under a ranged delete: duplicate key",
        Command::Txn(TxnRequest {
            compare: vec![],
            success: vec![
                RequestOp::DeleteRange(DeleteRangeRequest {
                    key: "a".into(),
                    range_end: "c".into(),
                    prev_kv: false,
                }),
                RequestOp::Put(put("b", "1")),
            ],
            failure: vec![],
        }),
    );
    t.run(
        "a from-key delete does not conflict with puts (etcd's interval quirk); its prev_kvs \
         see the txn's own put",
        Command::Txn(TxnRequest {
            compare: vec![],
            success: vec![
                RequestOp::Put(put("z", "2")),
                RequestOp::DeleteRange(DeleteRangeRequest {
                    key: "z".into(),
                    range_end: "\0".into(),
                    prev_kv: true,
                }),
            ],
            failure: vec![],
        }),
    );
    t.run(
        "ignore_value on a key the same txn creates: key not found (checked before the ops)",
        Command::Txn(TxnRequest {
            compare: vec![],
            success: vec![
                RequestOp::Put(put("fresh", "1")),
                RequestOp::Txn(TxnRequest {
                    success: vec![RequestOp::Put(PutRequest {
                        ignore_value: true,
                        ..put("other", "")
                    })],
                    ..Default::default()
                }),
            ],
            failure: vec![],
        }),
    );
    t.run(
        "a range in the branch taken with a future revision",
        Command::Txn(TxnRequest {
            compare: vec![],
            success: vec![RequestOp::Range(RangeRequest {
                revision: 100,
                ..range("x", "")
            })],
            failure: vec![],
        }),
    );
    insta::assert_snapshot!(t.out.join("\n"));
}

#[test]
fn leases_answer_like_etcd_3_4_23() {
    let mut t = Script::new();
    t.run(
        "TTL below the minimum is raised to 2 s",
        Command::LeaseGrant {
            id: LeaseId(7),
            ttl_secs: 1,
        },
    );
    t.run(
        "same ID again",
        Command::LeaseGrant {
            id: LeaseId(7),
            ttl_secs: 10,
        },
    );
    t.run(
        "too large TTL",
        Command::LeaseGrant {
            id: LeaseId(8),
            ttl_secs: 9_000_000_001,
        },
    );
    t.run(
        "",
        Command::LeaseGrant {
            id: LeaseId(8),
            ttl_secs: 60,
        },
    );
    t.run(
        "",
        Command::Put(PutRequest {
            lease: LeaseId(7),
            ..put("k1", "v")
        }),
    );
    t.run(
        "",
        Command::Put(PutRequest {
            lease: LeaseId(7),
            ..put("k2", "v")
        }),
    );
    t.run(
        "",
        Command::Put(PutRequest {
            lease: LeaseId(7),
            ..put("k3", "v")
        }),
    );
    t.run(
        "putting a key with another lease moves it to that lease",
        Command::Put(PutRequest {
            lease: LeaseId(8),
            ..put("k3", "v")
        }),
    );
    t.run(
        "ignore_lease keeps the lease",
        Command::Put(PutRequest {
            ignore_lease: true,
            ..put("k2", "w")
        }),
    );
    let ttl = t.app.lease_time_to_live(LeaseId(7), 500, true);
    t.out
        .push("# time-to-live from the leader's clock, with the attached keys".into());
    t.out.push(format!(
        "time-to-live 7 at 0.5 s: ttl={} granted={} keys={:?}",
        ttl.ttl_secs,
        ttl.granted_ttl_secs,
        ttl.keys.iter().map(|k| s(k)).collect::<Vec<_>>()
    ));
    let missing = t.app.lease_time_to_live(LeaseId(99), 500, true);
    t.out.push(format!(
        "time-to-live of an unknown lease: ttl={}",
        missing.ttl_secs
    ));
    t.out.push(format!(
        "expired at 2 s: {:?}",
        t.app.expired_leases(2000, 500)
    ));
    t.out.push(format!(
        "keep-alive 8 at 2 s: {:?}",
        t.app.lease_renew(LeaseId(8), 2000)
    ));
    t.out.push(format!(
        "keep-alive 7 at 2 s (expired): {:?}",
        t.app.lease_renew(LeaseId(7), 2000)
    ));
    t.run(
        "revoke deletes the lease's keys in one revision, in key order",
        Command::LeaseRevoke { id: LeaseId(7) },
    );
    t.run("revoking again", Command::LeaseRevoke { id: LeaseId(7) });
    t.run(
        "revoking a lease without keys makes no revision",
        Command::LeaseGrant {
            id: LeaseId(9),
            ttl_secs: 5,
        },
    );
    t.run("", Command::LeaseRevoke { id: LeaseId(9) });
    t.out.push(format!(
        "leases: {:?}",
        t.app
            .lease_list()
            .iter()
            .map(|l| (l.id.0, l.ttl_secs))
            .collect::<Vec<_>>()
    ));
    insta::assert_snapshot!(t.out.join("\n"));
}

#[test]
fn an_index_at_or_below_the_applied_index_has_no_effect() {
    let mut app = AppState::new(MemBackend::new(), AppConfig::default());
    let p = |k: &str| Proposal {
        request_id: 1,
        auth: None,
        command: Command::Put(put(k, "v")),
    };
    assert!(app.apply(5, &p("a"), 0).expect("apply").is_some());
    assert_eq!(app.applied_index(), 5);
    assert_eq!(app.apply(5, &p("b"), 0), Ok(None));
    assert_eq!(app.apply(3, &p("c"), 0), Ok(None));
    assert_eq!(app.store().current_revision(), 2);
    app.apply_empty(6).expect("empty entry");
    assert_eq!(app.applied_index(), 6);
    let a = app.apply(7, &p("b"), 0).expect("apply").expect("new index");
    assert_eq!(a.revision, 3);
}

#[test]
fn restart_rebuilds_keys_leases_and_applied_index_from_the_backend() {
    let mut t = Script::new();
    t.run(
        "",
        Command::LeaseGrant {
            id: LeaseId(7),
            ttl_secs: 30,
        },
    );
    t.run(
        "",
        Command::Put(PutRequest {
            lease: LeaseId(7),
            ..put("k", "v")
        }),
    );
    t.run("", Command::Put(put("j", "1")));
    t.run(
        "",
        Command::DeleteRange(DeleteRangeRequest {
            key: "j".into(),
            ..Default::default()
        }),
    );
    t.run(
        "",
        Command::Compaction(CompactionRequest {
            revision: 3,
            physical: true,
        }),
    );
    let backend = t.app.store().backend().clone();
    assert!(!backend.is_empty(Bucket::Lease));
    let mut back = AppState::open(backend, AppConfig::default()).expect("reopen");
    assert_eq!(back.applied_index(), t.app.applied_index());
    assert_eq!(
        back.store().current_revision(),
        t.app.store().current_revision()
    );
    assert_eq!(back.store().compact_revision(), 3);
    assert_eq!(back.hash_kv(0), t.app.hash_kv(0));
    assert_eq!(back.store().keys_of_lease(LeaseId(7)), vec![b"k".to_vec()]);
    // The restarted member is not leader yet: its lease clocks are stopped.
    assert!(back.expired_leases(u64::MAX, 10).is_empty());
    assert_eq!(back.lease_renew(LeaseId(7), 0), Err(LeaseError::NotPrimary));
    // Replaying an already-applied entry is a no-op; the next one applies.
    let revoke = Proposal {
        request_id: 9,
        auth: None,
        command: Command::LeaseRevoke { id: LeaseId(7) },
    };
    assert_eq!(back.apply(t.index, &revoke, 0), Ok(None));
    let a = back
        .apply(t.index + 1, &revoke, 0)
        .expect("apply")
        .expect("new index");
    assert_eq!(a.events.len(), 1);
    assert!(back.range(&range("k", "")).expect("range").kvs.is_empty());
}

fn as_user(name: &str, revision: u64) -> Option<oxetcd_spec::apply::AuthInfo> {
    Some(oxetcd_spec::apply::AuthInfo::new(name, revision))
}

fn auth(c: oxetcd_spec::apply::AuthCommand) -> Command {
    Command::Auth(c)
}

#[test]
fn auth_is_checked_where_etcd_3_4_23_checks_it_and_survives_restart() {
    use oxetcd_spec::apply::{AuthCommand as A, AuthResponse};
    use oxetcd_spec::auth::{Permission, PermissionType};
    let mut t = Script::new();
    let run_as =
        |t: &mut Script, why: &str, who: Option<oxetcd_spec::apply::AuthInfo>, c: Command| {
            t.index += 1;
            let p = Proposal {
                request_id: t.index,
                auth: who,
                command: c,
            };
            let a = t
                .app
                .apply(t.index, &p, 0)
                .expect("apply")
                .expect("new index");
            if !why.is_empty() {
                t.out.push(format!("# {why}"));
            }
            t.out.push(show(&a));
            a
        };
    run_as(
        &mut t,
        "enabling without a root user",
        None,
        auth(A::Enable),
    );
    run_as(
        &mut t,
        "",
        None,
        auth(A::UserAdd {
            name: "root".into(),
            password_hash: b"h".to_vec(),
            no_password: false,
        }),
    );
    run_as(
        &mut t,
        "",
        None,
        auth(A::UserGrantRole {
            user: "root".into(),
            role: "root".into(),
        }),
    );
    run_as(
        &mut t,
        "",
        None,
        auth(A::UserAdd {
            name: "alice".into(),
            password_hash: b"h".to_vec(),
            no_password: false,
        }),
    );
    run_as(&mut t, "", None, auth(A::RoleAdd { name: "ab".into() }));
    run_as(
        &mut t,
        "",
        None,
        auth(A::RoleGrantPermission {
            name: "ab".into(),
            perm: Permission {
                perm_type: PermissionType::ReadWrite,
                key: b"a".to_vec(),
                range_end: b"b".to_vec(),
            },
        }),
    );
    run_as(
        &mut t,
        "",
        None,
        auth(A::UserGrantRole {
            user: "alice".into(),
            role: "ab".into(),
        }),
    );
    run_as(&mut t, "", None, auth(A::Enable));
    let rev = t.app.auth().revision();
    t.out.push(format!("auth revision after enable: {rev}"));
    run_as(
        &mut t,
        "a put without a user",
        None,
        Command::Put(put("a1", "v")),
    );
    run_as(
        &mut t,
        "a put inside alice's range",
        as_user("alice", rev),
        Command::Put(put("a1", "v")),
    );
    run_as(
        &mut t,
        "a put outside it",
        as_user("alice", rev),
        Command::Put(put("z", "v")),
    );
    run_as(
        &mut t,
        "a txn reading outside it",
        as_user("alice", rev),
        Command::Txn(TxnRequest {
            compare: vec![cmp("z", CompareResult::Equal, CompareTarget::Version(0))],
            success: vec![],
            failure: vec![],
        }),
    );
    run_as(
        &mut t,
        "alice may not list users (admin only)",
        as_user("alice", rev),
        auth(A::UserList),
    );
    run_as(
        &mut t,
        "but may read her own user",
        as_user("alice", rev),
        auth(A::UserGet {
            name: "alice".into(),
        }),
    );
    run_as(&mut t, "root may", as_user("root", rev), auth(A::UserList));
    run_as(
        &mut t,
        "admin checks ignore the token's auth revision (etcd 3.4); this change bumps it",
        as_user("root", rev),
        auth(A::RoleAdd { name: "x".into() }),
    );
    let stale = run_as(
        &mut t,
        "so a KV request with alice's older token is refused",
        as_user("alice", rev),
        Command::Put(put("a2", "v")),
    );
    assert!(stale.result.is_err());
    let a = run_as(
        &mut t,
        "",
        None,
        auth(A::Authenticate {
            name: "alice".into(),
            simple_token: "tok".into(),
        }),
    );
    assert!(matches!(
        a.result,
        Ok(Response::Auth(AuthResponse::Authenticated { .. }))
    ));
    insta::assert_snapshot!(t.out.join("\n"));

    let reopened =
        AppState::open(t.app.store().backend().clone(), AppConfig::default()).expect("reopen");
    assert_eq!(reopened.auth(), t.app.auth());
    assert_eq!(reopened.v2(), t.app.v2());
}

#[test]
fn v2_requests_go_through_the_applier_and_survive_restart() {
    use oxetcd_spec::v2::{Applied as V2Applied, Request, TtlOptions, keys_path};
    let mut t = Script::new();
    let set = Command::V2(Request::Put {
        path: keys_path("/foo"),
        value: "bar".into(),
        dir: false,
        prev_exist: None,
        prev_value: String::new(),
        prev_index: 0,
        ttl: TtlOptions::PERMANENT,
    });
    let a = t.run("", set);
    assert!(matches!(a.result, Ok(Response::V2(V2Applied::Event(_)))));
    let a = t.run(
        "",
        Command::V2(Request::QGet {
            path: keys_path("/nothing"),
            recursive: false,
            sorted: false,
        }),
    );
    assert_eq!(
        a.result.map_err(|e| e.to_string()),
        Err("Key not found (/1/nothing)".into())
    );
    let reopened =
        AppState::open(t.app.store().backend().clone(), AppConfig::default()).expect("reopen");
    assert_eq!(reopened.v2(), t.app.v2());
    assert_eq!(reopened.v2().index(), 1);
    // v2 writes do not touch the v3 store.
    assert_eq!(reopened.store().current_revision(), 1);
}

#[test]
fn membership_changes_record_etcds_v2_entries_and_survive_restart() {
    use oxetcd_spec::apply::MemberChange;
    use oxetcd_spec::membership::{ClusterVersion, Member};
    let mut t = Script::new();
    let m1 = Member::new(
        "n1",
        &["http://127.0.0.1:1".to_string()],
        "tok",
        None,
        false,
    );
    let m2 = Member::new(
        "",
        &["http://127.0.0.1:2".to_string()],
        "",
        Some(1_700_000_000),
        true,
    );
    t.run("", Command::Membership(MemberChange::Add(m1.clone())));
    t.run("", Command::Membership(MemberChange::Add(m2.clone())));
    let dup = t.run(
        "adding the same member again",
        Command::Membership(MemberChange::Add(m1.clone())),
    );
    assert_eq!(
        dup.result.map_err(|e| e.to_string()),
        Err("etcdserver: member ID already exist".into())
    );
    t.run(
        "",
        Command::Membership(MemberChange::Attributes {
            id: m1.id,
            name: "n1".into(),
            client_urls: vec!["http://127.0.0.1:3".into()],
        }),
    );
    t.run(
        "",
        Command::Membership(MemberChange::ClusterVersion(ClusterVersion {
            major: 3,
            minor: 4,
            patch: 0,
        })),
    );
    t.run("", Command::Membership(MemberChange::Remove(m2.id)));
    assert_eq!(t.app.cluster().member_ids(), vec![m1.id]);
    assert!(t.app.cluster().is_removed(m2.id));
    // add, add, attributes, version, remove (two indexes) = 6 v2 indexes
    assert_eq!(t.app.v2().index(), 6);
    let reopened =
        AppState::open(t.app.store().backend().clone(), AppConfig::default()).expect("reopen");
    assert_eq!(reopened.cluster(), t.app.cluster());
    assert_eq!(reopened.v2(), t.app.v2());
}
