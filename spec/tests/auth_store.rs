//! The auth store against etcd 3.4.23 behaviour recorded with `etcdctl` (API v3) on a
//! fresh single-node etcd: error texts, the root user/role preconditions, the
//! permission checks alice met, and the Txn checks (including where 3.4.23 differs from
//! later fixes).

use oxetcd_spec::auth::{
    AuthError, AuthInfo, AuthStore, GrpcCode, Permission, PermissionType, TxnAuthMode, TxnCheck,
    TxnOpCheck,
};

fn perm(t: PermissionType, key: &str, end: &[u8]) -> Permission {
    Permission {
        perm_type: t,
        key: key.as_bytes().to_vec(),
        range_end: end.to_vec(),
    }
}

/// Recorded with etcdctl 3.4.23 while auth was disabled, in this order.
#[test]
fn management_errors_match_etcdctl_session() {
    let mut a = AuthStore::new();
    let text = |r: Result<(), AuthError>| r.map_err(|e| e.to_string());
    assert_eq!(
        text(a.auth_enable()),
        Err("etcdserver: root user does not exist".into())
    );
    assert_eq!(
        a.user_get("nobody").map_err(|e| e.to_string()),
        Err("etcdserver: user name not found".into())
    );
    assert_eq!(text(a.role_add("r1")), Ok(()));
    assert_eq!(
        text(a.role_add("r1")),
        Err("etcdserver: role name already exists".into())
    );
    assert_eq!(
        a.role_get("nobody").map_err(|e| e.to_string()),
        Err("etcdserver: role name not found".into())
    );
    assert_eq!(
        text(a.role_add("")),
        Err("etcdserver: role name is empty".into())
    );
    assert_eq!(
        text(a.user_add("", b"h".to_vec(), false)),
        Err("etcdserver: user name is empty".into())
    );
    a.role_grant_permission("r1", perm(PermissionType::ReadWrite, "a", b"z"))
        .expect("grant");
    a.role_grant_permission("r1", perm(PermissionType::Read, "p/", b"p0"))
        .expect("grant");
    a.role_grant_permission("r1", perm(PermissionType::Write, "f", &[0]))
        .expect("grant");
    assert_eq!(
        text(a.role_grant_permission("nobody", perm(PermissionType::Read, "x", b""))),
        Err("etcdserver: role name not found".into())
    );
    assert_eq!(
        text(a.role_revoke_permission("r1", b"nokey", b"")),
        Err("etcdserver: permission is not granted to the role".into())
    );
    assert_eq!(
        text(a.role_revoke_permission("r1", b"a", b"")),
        Err("etcdserver: permission is not granted to the role".into()),
        "revocation needs the exact key and range end"
    );
    a.user_add("alice", b"$2a$10$opaque".to_vec(), false)
        .expect("add");
    assert_eq!(
        text(a.user_add("alice", Vec::new(), false)),
        Err("etcdserver: user name already exists".into())
    );
    assert_eq!(
        text(a.user_revoke_role("alice", "r1")),
        Err("etcdserver: role is not granted to the user".into())
    );
    assert_eq!(
        text(a.user_grant_role("alice", "nobody")),
        Err("etcdserver: role name not found".into())
    );
    assert_eq!(
        text(a.user_grant_role("nobody", "r1")),
        Err("etcdserver: user name not found".into())
    );
    assert_eq!(text(a.user_grant_role("alice", "r1")), Ok(()));
    let rev = a.revision();
    assert_eq!(
        text(a.user_grant_role("alice", "r1")),
        Ok(()),
        "re-grant succeeds"
    );
    assert_eq!(a.revision(), rev, "and changes nothing");
    assert_eq!(a.user_get("alice"), Ok(vec!["r1".to_string()]));
    assert_eq!(
        text(a.user_change_password("nobody", Vec::new())),
        Err("etcdserver: user name not found".into())
    );
    assert_eq!(
        text(a.user_delete("nobody")),
        Err("etcdserver: user name not found".into())
    );
    assert_eq!(
        text(a.role_delete("nobody")),
        Err("etcdserver: role name not found".into())
    );
    // root without the root role, then with it (granting "root" needs no such role).
    a.user_add("root", b"h".to_vec(), false).expect("root");
    assert_eq!(
        text(a.auth_enable()),
        Err("etcdserver: root user does not have root role".into())
    );
    a.user_grant_role("root", "root")
        .expect("root role may be granted without existing");
    assert_eq!(text(a.auth_enable()), Ok(()));
    assert!(a.is_enabled());
    // Root may not be dismantled while enabled.
    assert_eq!(
        text(a.user_delete("root")),
        Err("etcdserver: invalid auth management".into())
    );
    assert_eq!(
        text(a.user_revoke_role("root", "root")),
        Err("etcdserver: invalid auth management".into())
    );
    a.role_add("root").expect("role root");
    assert_eq!(
        text(a.role_delete("root")),
        Err("etcdserver: invalid auth management".into())
    );
    assert_eq!(a.user_list(), vec!["alice".to_string(), "root".to_string()]);
    assert_eq!(a.role_list(), vec!["r1".to_string(), "root".to_string()]);
    a.check_invariants();
}

/// etcdctl 3.4.23 after `auth disable`: deleting the root role also revoked it from
/// root (`user get root` showed no roles).
#[test]
fn deleting_a_role_revokes_it_from_users_when_disabled() {
    let mut a = AuthStore::new();
    a.user_add("root", Vec::new(), false).expect("root");
    a.role_add("root").expect("role");
    a.user_grant_role("root", "root").expect("grant");
    a.auth_enable().expect("enable");
    a.auth_disable();
    a.role_delete("root").expect("allowed while disabled");
    assert_eq!(a.user_get("root"), Ok(Vec::new()));
    assert_eq!(a.auth_enable(), Err(AuthError::RootRoleNotExist));
}

fn alice_store() -> (AuthStore, AuthInfo) {
    let mut a = AuthStore::new();
    a.role_add("r1").expect("role");
    a.role_grant_permission("r1", perm(PermissionType::ReadWrite, "a", b"z"))
        .expect("g");
    a.role_grant_permission("r1", perm(PermissionType::Read, "p/", b"p0"))
        .expect("g");
    a.role_grant_permission("r1", perm(PermissionType::Write, "f", &[0]))
        .expect("g");
    a.user_add("alice", Vec::new(), false).expect("alice");
    a.user_grant_role("alice", "r1").expect("g");
    a.user_add("root", Vec::new(), false).expect("root");
    a.user_grant_role("root", "root").expect("g");
    a.auth_enable().expect("enable");
    let info = AuthInfo::new("alice", a.revision());
    (a, info)
}

/// etcdctl 3.4.23 as alice with [a,z) readwrite, [p/,p0) read, [f,∞) write:
/// `get a` ok, `get zz` denied, `put zz` ok (from-key write), `get a c` ok,
/// `get a zz` denied, `user list` denied; no token: "user name is empty".
#[test]
fn permission_checks_match_what_alice_met() {
    let (a, alice) = alice_store();
    assert_eq!(a.is_range_permitted(&alice, b"a", b""), Ok(()));
    assert_eq!(
        a.is_range_permitted(&alice, b"zz", b""),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(a.is_put_permitted(&alice, b"zz"), Ok(()));
    assert_eq!(a.is_range_permitted(&alice, b"a", b"c"), Ok(()));
    assert_eq!(
        a.is_range_permitted(&alice, b"a", b"zz"),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(
        a.is_range_permitted(&alice, b"p", b"q"),
        Ok(()),
        "inside [a,z)"
    );
    assert_eq!(a.is_delete_range_permitted(&alice, b"a", b"b"), Ok(()));
    assert_eq!(a.is_delete_range_permitted(&alice, b"f", &[0]), Ok(()));
    assert_eq!(
        a.is_range_permitted(&alice, b"f", &[0]),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(
        a.is_admin_permitted(&alice),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(a.is_user_get_permitted(&alice, "alice"), Ok(()), "own user");
    assert_eq!(a.is_role_get_permitted(&alice, "r1"), Ok(()), "own role");
    assert_eq!(
        a.is_role_get_permitted(&alice, "root"),
        Err(AuthError::PermissionDenied)
    );
    let nobody = AuthInfo::default();
    assert_eq!(
        a.is_range_permitted(&nobody, b"a", b""),
        Err(AuthError::UserEmpty)
    );
    assert_eq!(a.is_admin_permitted(&nobody), Err(AuthError::UserEmpty));
    let root = AuthInfo::new("root", a.revision());
    assert_eq!(a.is_range_permitted(&root, b"\0", &[0]), Ok(()));
    assert_eq!(a.is_admin_permitted(&root), Ok(()));
    assert_eq!(
        AuthError::PermissionDenied.grpc_code(),
        GrpcCode::PermissionDenied
    );
    assert_eq!(AuthError::UserEmpty.grpc_code(), GrpcCode::InvalidArgument);
    assert_eq!(AuthError::RootUserNotExist.grpc_code().code(), 9);
}

#[test]
fn stale_token_revision_is_refused_and_disabled_auth_allows_everything() {
    let (mut a, alice) = alice_store();
    a.role_add("r2").expect("bump");
    assert_eq!(
        a.is_range_permitted(&alice, b"a", b""),
        Err(AuthError::AuthOldRevision)
    );
    assert_eq!(
        AuthError::AuthOldRevision.to_string(),
        "etcdserver: revision of auth store is old"
    );
    a.auth_disable();
    assert_eq!(
        a.is_range_permitted(&AuthInfo::default(), b"zz", b""),
        Ok(())
    );
    assert_eq!(a.authenticate("alice"), Err(AuthError::AuthNotEnabled));
}

/// etcdctl 3.4.23: granting read then write on key `a`, then read then write on [a,c),
/// left write `a`, read [a,c) and write [a,c): a re-grant replaces the type only when
/// the FIRST permission with that key has the same range end.
#[test]
fn regrant_updates_type_only_for_first_same_key_permission() {
    let mut a = AuthStore::new();
    a.role_add("r").expect("role");
    for (t, end) in [
        (PermissionType::Read, &b""[..]),
        (PermissionType::Write, b""),
        (PermissionType::Read, b"c"),
        (PermissionType::Write, b"c"),
    ] {
        a.role_grant_permission("r", perm(t, "a", end))
            .expect("grant");
    }
    assert_eq!(
        a.role_get("r").expect("role"),
        vec![
            perm(PermissionType::Write, "a", b""),
            perm(PermissionType::Read, "a", b"c"),
            perm(PermissionType::Write, "a", b"c"),
        ]
    );
    a.role_revoke_permission("r", b"a", b"c")
        .expect("revoke removes both");
    assert_eq!(a.role_get("r").expect("role").len(), 1);
}

fn nested_txn() -> TxnCheck {
    TxnCheck {
        compares: vec![(b"a".to_vec(), Vec::new())],
        success: vec![TxnOpCheck::Txn(TxnCheck {
            compares: Vec::new(),
            success: vec![TxnOpCheck::Put {
                key: b"0secret".to_vec(),
                prev_kv: false,
            }],
            failure: Vec::new(),
        })],
        failure: Vec::new(),
    }
}

/// alice cannot write "0secret" (before both [a,z) and [f,∞)).
/// etcd 3.4.23 `checkTxnAuth` has no case for a nested Txn, so its ops go unchecked:
/// recorded through the JSON gateway, alice's top-level and Txn puts of "0secret" were
/// denied but the nested-Txn put succeeded; her Txn put of "zz" (write-only for her) with
/// prev_kv returned the previous value while the top-level put with prev_kv was denied.
/// Later etcd releases check both.
#[test]
fn nested_txn_is_unchecked_in_3_4_23_and_checked_when_fixed() {
    let (a, alice) = alice_store();
    let txn = nested_txn();
    assert_eq!(
        a.is_txn_permitted(&alice, &txn, TxnAuthMode::Etcd3_4_23),
        Ok(())
    );
    assert_eq!(
        a.is_txn_permitted(&alice, &txn, TxnAuthMode::Fixed),
        Err(AuthError::PermissionDenied)
    );
    let compare_denied = TxnCheck {
        compares: vec![(b"zz".to_vec(), Vec::new())],
        ..TxnCheck::default()
    };
    assert_eq!(
        a.is_txn_permitted(&alice, &compare_denied, TxnAuthMode::Etcd3_4_23),
        Err(AuthError::PermissionDenied)
    );
    // [zz, zzz) is writable (from-key write on f) but not readable: a delete with
    // prev_kv needs both.
    let delete = |prev_kv| TxnCheck {
        failure: vec![TxnOpCheck::DeleteRange {
            key: b"zz".to_vec(),
            range_end: b"zzz".to_vec(),
            prev_kv,
        }],
        ..TxnCheck::default()
    };
    assert_eq!(
        a.is_txn_permitted(&alice, &delete(true), TxnAuthMode::Etcd3_4_23),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(
        a.is_txn_permitted(&alice, &delete(false), TxnAuthMode::Etcd3_4_23),
        Ok(())
    );
    // A Put with prev_kv inside a Txn: 3.4.23 checks only write.
    let put = TxnCheck {
        success: vec![TxnOpCheck::Put {
            key: b"zz".to_vec(),
            prev_kv: true,
        }],
        ..TxnCheck::default()
    };
    assert_eq!(
        a.is_txn_permitted(&alice, &put, TxnAuthMode::Etcd3_4_23),
        Ok(())
    );
    assert_eq!(
        a.is_txn_permitted(&alice, &put, TxnAuthMode::Fixed),
        Err(AuthError::PermissionDenied)
    );
}

#[test]
fn auth_revision_snapshot() {
    let mut a = AuthStore::new();
    let mut log = vec![format!("start rev={}", a.revision())];
    let mut step = |name: &str, r: Result<(), AuthError>, a: &AuthStore| {
        log.push(format!(
            "{name}: {} rev={}",
            r.map_or_else(|e| e.to_string(), |()| "ok".to_string()),
            a.revision()
        ));
    };
    let r = a.user_add("root", Vec::new(), false);
    step("user add root", r, &a);
    let r = a.role_add("root");
    step("role add root", r, &a);
    let r = a.user_grant_role("root", "root");
    step("grant root", r, &a);
    let r = a.user_grant_role("root", "root");
    step("grant root again", r, &a);
    let r = a.auth_enable();
    step("auth enable", r, &a);
    let r = a.auth_enable();
    step("auth enable again", r, &a);
    let r = a.role_add("r");
    step("role add r", r, &a);
    let r = a.role_grant_permission("r", perm(PermissionType::Read, "k", b""));
    step("grant perm", r, &a);
    let r = a.role_revoke_permission("r", b"k", b"");
    step("revoke perm", r, &a);
    let r = a.role_revoke_permission("r", b"k", b"");
    step("revoke perm again", r, &a);
    let r = a.user_change_password("root", b"new".to_vec());
    step("passwd root", r, &a);
    a.auth_disable();
    step("auth disable", Ok(()), &a);
    a.auth_disable();
    step("auth disable again", Ok(()), &a);
    let r = a.role_delete("root");
    step("role delete root", r, &a);
    let r = a.user_delete("root");
    step("user delete root", r, &a);
    insta::assert_snapshot!(log.join("\n"));
}

/// Recorded from etcd 3.4.23 with `--auth-token jwt` (the token's `revision` claim):
/// user add root, role add root, grant root → 4; auth enable → still 4; role add → 5;
/// auth disable → 6; auth enable → 6; granting root to root again → 6.
#[test]
fn auth_revision_follows_etcd_jwt_claims() {
    let mut a = AuthStore::new();
    a.user_add("root", b"h".to_vec(), false).expect("add");
    a.role_add("root").expect("role");
    a.user_grant_role("root", "root").expect("grant");
    a.auth_enable().expect("enable");
    assert_eq!(a.authenticate("root"), Ok(4));
    a.role_add("r").expect("role");
    assert_eq!(a.authenticate("root"), Ok(5));
    a.auth_disable();
    a.auth_enable().expect("enable");
    assert_eq!(a.authenticate("root"), Ok(6));
    a.user_grant_role("root", "root").expect("re-grant");
    assert_eq!(a.authenticate("root"), Ok(6));
    assert_eq!(a.password_hash("root"), Ok((&b"h"[..], 6)));
    a.user_add("np", b"ignored".to_vec(), true)
        .expect("no-password user");
    assert_eq!(a.authenticate("np"), Err(AuthError::AuthFailed));
    assert_eq!(a.authenticate("ghost"), Err(AuthError::AuthFailed));
}

/// Recorded against etcd 3.4.23 with auth enabled: root put "0hidden" with a lease;
/// alice (who cannot read it) and a token-less request both got the key name from
/// LeaseTimeToLive(keys=true); alice's LeaseRevoke was denied (write on attached keys).
#[test]
fn lease_time_to_live_keys_unchecked_in_3_4_23_revoke_checked() {
    let (a, alice) = alice_store();
    let keys: [&[u8]; 1] = [b"0hidden"];
    assert_eq!(
        a.is_lease_time_to_live_permitted(&alice, keys, TxnAuthMode::Etcd3_4_23),
        Ok(())
    );
    assert_eq!(
        a.is_lease_time_to_live_permitted(&AuthInfo::default(), keys, TxnAuthMode::Etcd3_4_23),
        Ok(())
    );
    assert_eq!(
        a.is_lease_time_to_live_permitted(&alice, keys, TxnAuthMode::Fixed),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(
        a.is_lease_keys_put_permitted(&alice, keys),
        Err(AuthError::PermissionDenied)
    );
}

#[test]
fn the_enabled_flag_is_recorded_from_the_first_enable_and_kept_as_false_after_disable() {
    let mut a = AuthStore::new();
    assert_eq!(
        a.enabled_flag(),
        None,
        "a fresh store has no authEnabled record"
    );
    a.role_add("root").unwrap();
    a.user_add("root", b"h".to_vec(), false).unwrap();
    a.user_grant_role("root", "root").unwrap();
    a.auth_enable().unwrap();
    assert_eq!(a.enabled_flag(), Some(true));
    a.auth_disable();
    assert_eq!(a.enabled_flag(), Some(false));
}

#[test]
fn a_restored_revision_raises_but_never_lowers_the_auth_revision() {
    let mut a = AuthStore::new();
    a.role_add("r").unwrap();
    assert_eq!(a.revision(), 2);
    a.restore_revision(7);
    assert_eq!(a.revision(), 7);
    a.restore_revision(3);
    assert_eq!(a.revision(), 7);
    a.role_add("s").unwrap();
    assert_eq!(a.revision(), 8);
}
