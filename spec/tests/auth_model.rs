//! Property test: random auth management sequences (tiny name space: root, a, b) keep
//! the auth store's invariants, and the auth revision moves exactly as etcd 3.4.23's
//! does: +1 per successful change, except AuthEnable and re-granting a role the user
//! already has (both verified against etcd's JWT revision claim), and never on errors.
//! A naive model of users' roles and roles' permissions must agree after every step.

use std::collections::{BTreeMap, BTreeSet};

use oxetcd_spec::auth::{AuthError, AuthStore, Permission, PermissionType};
use quickcheck::{Arbitrary, Gen, QuickCheck};

#[derive(Clone, Debug)]
enum Op {
    Enable,
    Disable,
    UserAdd(String),
    UserDelete(String),
    Passwd(String),
    Grant(String, String),
    Revoke(String, String),
    RoleAdd(String),
    RoleDelete(String),
    GrantPerm(String, String, String),
    RevokePerm(String, String, String),
}

fn name(g: &mut Gen) -> String {
    (*g.choose(&["root", "a", "b", ""]).expect("names")).to_string()
}

fn key(g: &mut Gen) -> String {
    (*g.choose(&["k", "m", ""]).expect("keys")).to_string()
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 11 {
            0 => Op::Enable,
            1 => Op::Disable,
            2 => Op::UserAdd(name(g)),
            3 => Op::UserDelete(name(g)),
            4 => Op::Passwd(name(g)),
            5 => Op::Grant(name(g), name(g)),
            6 => Op::Revoke(name(g), name(g)),
            7 => Op::RoleAdd(name(g)),
            8 => Op::RoleDelete(name(g)),
            9 => Op::GrantPerm(name(g), key(g), key(g)),
            _ => Op::RevokePerm(name(g), key(g), key(g)),
        }
    }
}

/// The dumb twin: users to role sets, roles to (key, end) permission sets, enabled.
#[derive(Default)]
struct Model {
    enabled: bool,
    users: BTreeMap<String, BTreeSet<String>>,
    roles: BTreeMap<String, BTreeSet<(String, String)>>,
}

impl Model {
    /// Applies `op`; returns whether the revision must move, or the error etcd gives.
    fn apply(&mut self, op: &Op) -> Result<bool, AuthError> {
        let root_ok = |m: &Model| m.users.get("root").is_some_and(|r| r.contains("root"));
        match op {
            Op::Enable => {
                if !self.enabled {
                    if !self.users.contains_key("root") {
                        return Err(AuthError::RootUserNotExist);
                    }
                    if !root_ok(self) {
                        return Err(AuthError::RootRoleNotExist);
                    }
                    self.enabled = true;
                }
                Ok(false)
            }
            Op::Disable => Ok(std::mem::replace(&mut self.enabled, false)),
            Op::UserAdd(u) if u.is_empty() => Err(AuthError::UserEmpty),
            Op::UserAdd(u) if self.users.contains_key(u) => Err(AuthError::UserAlreadyExist),
            Op::UserAdd(u) => {
                self.users.insert(u.clone(), BTreeSet::new());
                Ok(true)
            }
            Op::UserDelete(u) if self.enabled && u == "root" => Err(AuthError::InvalidAuthMgmt),
            Op::UserDelete(u) => self
                .users
                .remove(u)
                .map(|_| true)
                .ok_or(AuthError::UserNotFound),
            Op::Passwd(u) => self
                .users
                .get(u)
                .map(|_| true)
                .ok_or(AuthError::UserNotFound),
            Op::Grant(u, r) => {
                if !self.users.contains_key(u) {
                    return Err(AuthError::UserNotFound);
                }
                if r != "root" && !self.roles.contains_key(r) {
                    return Err(AuthError::RoleNotFound);
                }
                Ok(self.users.get_mut(u).expect("checked").insert(r.clone()))
            }
            Op::Revoke(u, r) if self.enabled && u == "root" && r == "root" => {
                Err(AuthError::InvalidAuthMgmt)
            }
            Op::Revoke(u, r) => {
                let roles = self.users.get_mut(u).ok_or(AuthError::UserNotFound)?;
                if roles.remove(r) {
                    Ok(true)
                } else {
                    Err(AuthError::RoleNotGranted)
                }
            }
            Op::RoleAdd(r) if r.is_empty() => Err(AuthError::RoleEmpty),
            Op::RoleAdd(r) if self.roles.contains_key(r) => Err(AuthError::RoleAlreadyExist),
            Op::RoleAdd(r) => {
                self.roles.insert(r.clone(), BTreeSet::new());
                Ok(true)
            }
            Op::RoleDelete(r) if self.enabled && r == "root" => Err(AuthError::InvalidAuthMgmt),
            Op::RoleDelete(r) => {
                self.roles.remove(r).ok_or(AuthError::RoleNotFound)?;
                for roles in self.users.values_mut() {
                    roles.remove(r);
                }
                Ok(true)
            }
            Op::GrantPerm(r, k, e) => {
                let perms = self.roles.get_mut(r).ok_or(AuthError::RoleNotFound)?;
                perms.insert((k.clone(), e.clone()));
                Ok(true)
            }
            Op::RevokePerm(r, k, e) => {
                let perms = self.roles.get_mut(r).ok_or(AuthError::RoleNotFound)?;
                if perms.remove(&(k.clone(), e.clone())) {
                    Ok(true)
                } else {
                    Err(AuthError::PermissionNotGranted)
                }
            }
        }
    }
}

fn apply(a: &mut AuthStore, op: &Op) -> Result<(), AuthError> {
    match op {
        Op::Enable => a.auth_enable(),
        Op::Disable => {
            a.auth_disable();
            Ok(())
        }
        Op::UserAdd(u) => a.user_add(u, b"hash".to_vec(), false),
        Op::UserDelete(u) => a.user_delete(u),
        Op::Passwd(u) => a.user_change_password(u, b"new".to_vec()),
        Op::Grant(u, r) => a.user_grant_role(u, r),
        Op::Revoke(u, r) => a.user_revoke_role(u, r),
        Op::RoleAdd(r) => a.role_add(r),
        Op::RoleDelete(r) => a.role_delete(r),
        Op::GrantPerm(r, k, e) => a.role_grant_permission(
            r,
            Permission {
                perm_type: PermissionType::Read,
                key: k.as_bytes().to_vec(),
                range_end: e.as_bytes().to_vec(),
            },
        ),
        Op::RevokePerm(r, k, e) => a.role_revoke_permission(r, k.as_bytes(), e.as_bytes()),
    }
}

fn prop(ops: Vec<Op>) -> bool {
    let mut a = AuthStore::new();
    let mut m = Model::default();
    for op in &ops {
        let before = a.revision();
        let got = apply(&mut a, op);
        let want = m.apply(op);
        a.check_invariants();
        let bumped = a.revision() - before;
        let ok = match want {
            Ok(bump) => got.is_ok() && bumped == u64::from(bump),
            Err(e) => got == Err(e) && bumped == 0,
        };
        if !ok || a.is_enabled() != m.enabled {
            eprintln!("{op:?}: store {got:?} (+{bumped}), model {want:?}");
            return false;
        }
        for (u, roles) in &m.users {
            let got: BTreeSet<String> = a.user_get(u).expect("user").into_iter().collect();
            if got != *roles {
                return false;
            }
        }
        if a.user_list().len() != m.users.len() || a.role_list().len() != m.roles.len() {
            return false;
        }
        for (r, perms) in &m.roles {
            let got: BTreeSet<(String, String)> = a
                .role_get(r)
                .expect("role")
                .into_iter()
                .map(|p| {
                    (
                        String::from_utf8(p.key).expect("utf-8"),
                        String::from_utf8(p.range_end).expect("utf-8"),
                    )
                })
                .collect();
            if got != *perms {
                return false;
            }
        }
    }
    true
}

#[test]
fn auth_management_agrees_with_naive_model_and_revision_rules() {
    QuickCheck::new()
        .tests(500)
        .max_tests(1000)
        .quickcheck(prop as fn(Vec<Op>) -> bool);
}
