//! Authentication and authorisation (etcd 3.4 `auth/store.go`, `etcdserver/apply_auth.go`):
//! users, roles, key-range permissions, enable/disable, the auth revision and the
//! permission checks for every request kind.
//!
//! What it is: the replicated auth state and the pure decisions over it. Password hashes
//! are opaque bytes: the server hashes with bcrypt before proposing and verifies with
//! bcrypt against [`AuthStore::password_hash`]; tokens (simple or JWT) are the server's
//! bookkeeping and reach this module as an [`AuthInfo`] (user name plus the auth revision
//! the token was issued at).
//!
//! The auth revision starts at 1 (etcd commits revision 1 when it creates the auth
//! bucket) and every successful change bumps it, except `AuthEnable` (etcd 3.4 only
//! reloads the revision there) and the no-op re-grant of a role a user already has.
//!
//! etcd 3.4.23 vs later fixes (both verified against a real 3.4.23 through the JSON
//! gateway): a Txn nested inside a Txn is not permission-checked at all (alice wrote a
//! key she may not write through `success: [{request_txn: {success: [{request_put}]}}]`),
//! and a Put with `prev_kv` inside a Txn is checked for write only, so it returns the
//! previous value without read permission (the top-level Put with `prev_kv` is refused).
//! Later etcd releases check both. [`TxnAuthMode`] selects either behaviour;
//! [`TxnAuthMode::Etcd3_4_23`] is the reference.

mod error;
mod perm;

use std::collections::BTreeMap;

pub use error::{AuthError, GrpcCode};
pub use perm::{Permission, PermissionType, range_permitted};

/// The name of the root user.
pub const ROOT_USER: &str = "root";
/// The name of the root role (full access, admin rights).
pub const ROOT_ROLE: &str = "root";

/// A user (`authpb.User`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct User {
    /// The name (non-empty).
    pub name: String,
    /// The bcrypt hash, opaque here; empty for a no-password user.
    pub password_hash: Vec<u8>,
    /// Granted role names, sorted, no duplicates (a role may be `root` even if no role
    /// of that name exists, as in etcd).
    pub roles: Vec<String>,
    /// `UserAddOptions.no_password`: the user cannot authenticate with a password.
    pub no_password: bool,
}

/// A role (`authpb.Role`): its permissions in etcd's order (by key; a new permission
/// goes after existing ones with the same key).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Role {
    /// The name (non-empty).
    pub name: String,
    /// The key permissions.
    pub permissions: Vec<Permission>,
}

/// Who a request runs as: the user name from the token and the auth revision at which
/// the token was issued (etcd's `AuthInfo`). `AuthInfo::default()` is "no user".
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct AuthInfo {
    /// User name ("" when the request carried no token).
    pub username: String,
    /// The auth revision the token was issued at (0 when no token).
    pub revision: u64,
}

impl AuthInfo {
    /// A request made as `username` authorised at auth revision `revision`.
    pub fn new(username: impl Into<String>, revision: u64) -> Self {
        Self {
            username: username.into(),
            revision,
        }
    }
}

/// One operation of a Txn, reduced to what the permission check looks at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TxnOpCheck {
    /// A Range: read on `[key, range_end)`.
    Range {
        /// Key.
        key: Vec<u8>,
        /// Range end (empty: one key; `[0]`: from key).
        range_end: Vec<u8>,
    },
    /// A Put: write on `key` (and, with the later fix, read on `key` if `prev_kv`).
    Put {
        /// Key.
        key: Vec<u8>,
        /// `prev_kv`.
        prev_kv: bool,
    },
    /// A DeleteRange: write on the range, and read on it when `prev_kv`.
    DeleteRange {
        /// Key.
        key: Vec<u8>,
        /// Range end.
        range_end: Vec<u8>,
        /// `prev_kv`.
        prev_kv: bool,
    },
    /// A nested Txn (not checked by etcd 3.4.23).
    Txn(TxnCheck),
}

/// A Txn reduced to what the permission check looks at.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct TxnCheck {
    /// `(key, range_end)` of every Compare: each needs read permission.
    pub compares: Vec<(Vec<u8>, Vec<u8>)>,
    /// The success branch.
    pub success: Vec<TxnOpCheck>,
    /// The failure branch.
    pub failure: Vec<TxnOpCheck>,
}

/// Which permission rules to apply where etcd 3.4.23 has known gaps (nested Txns, Put
/// `prev_kv` inside a Txn, LeaseTimeToLive keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum TxnAuthMode {
    /// etcd 3.4.23: compares need read; Range read; Put write (no prev_kv check);
    /// DeleteRange read-if-prev_kv then write; nested Txns are NOT checked.
    #[default]
    Etcd3_4_23,
    /// Later etcd releases: as above, plus nested Txns are checked recursively and a Put
    /// with `prev_kv` also needs read.
    Fixed,
}

/// The auth state machine.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AuthStore {
    enabled: bool,
    /// Auth was enabled at some point (etcd then keeps an `authEnabled` record, `0`
    /// after a disable).
    ever_enabled: bool,
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
}

impl Default for AuthStore {
    fn default() -> Self {
        Self::new()
    }
}

impl AuthStore {
    /// A fresh auth store: disabled, no users or roles, revision 1.
    pub fn new() -> Self {
        Self {
            enabled: false,
            ever_enabled: false,
            revision: 1,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
        }
    }

    /// Whether authentication is enabled.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The auth revision.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The user named `name`, if any.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// The role named `name`, if any.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    fn commit_revision(&mut self) {
        self.revision += 1;
    }

    /// etcd's `authEnabled` record in its backend: absent until auth is first enabled,
    /// then `true` while enabled and `false` after a disable.
    pub fn enabled_flag(&self) -> Option<bool> {
        self.ever_enabled.then_some(self.enabled)
    }

    /// Raises the revision to `revision` (a restored snapshot's `authRevision`, which a
    /// replay of the restored users and roles would not reach); never lowers it.
    pub fn restore_revision(&mut self, revision: u64) {
        self.revision = self.revision.max(revision);
    }

    /// `AuthEnable`: a no-op when already enabled.
    ///
    /// # Errors
    /// `RootUserNotExist`, `RootRoleNotExist` (root user lacks the root role).
    pub fn auth_enable(&mut self) -> Result<(), AuthError> {
        if self.enabled {
            return Ok(());
        }
        let root = self
            .users
            .get(ROOT_USER)
            .ok_or(AuthError::RootUserNotExist)?;
        if !has_root_role(root) {
            return Err(AuthError::RootRoleNotExist);
        }
        self.enabled = true;
        self.ever_enabled = true;
        Ok(())
    }

    /// `AuthDisable`: a no-op when already disabled; otherwise bumps the revision.
    pub fn auth_disable(&mut self) {
        if self.enabled {
            self.enabled = false;
            self.commit_revision();
        }
    }

    /// `UserAdd` with an already computed (opaque) password hash.
    ///
    /// # Errors
    /// `UserEmpty`, `UserAlreadyExist`.
    pub fn user_add(
        &mut self,
        name: &str,
        password_hash: Vec<u8>,
        no_password: bool,
    ) -> Result<(), AuthError> {
        if name.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        if self.users.contains_key(name) {
            return Err(AuthError::UserAlreadyExist);
        }
        let password_hash = if no_password {
            Vec::new()
        } else {
            password_hash
        };
        self.users.insert(
            name.to_string(),
            User {
                name: name.to_string(),
                password_hash,
                roles: Vec::new(),
                no_password,
            },
        );
        self.commit_revision();
        Ok(())
    }

    /// `UserDelete`. The server also invalidates the user's tokens.
    ///
    /// # Errors
    /// `InvalidAuthMgmt` (root while enabled), `UserNotFound`.
    pub fn user_delete(&mut self, name: &str) -> Result<(), AuthError> {
        if self.enabled && name == ROOT_USER {
            return Err(AuthError::InvalidAuthMgmt);
        }
        self.users.remove(name).ok_or(AuthError::UserNotFound)?;
        self.commit_revision();
        Ok(())
    }

    /// `UserChangePassword` with a new opaque hash. The server invalidates tokens.
    ///
    /// # Errors
    /// `UserNotFound`.
    pub fn user_change_password(&mut self, name: &str, hash: Vec<u8>) -> Result<(), AuthError> {
        let user = self.users.get_mut(name).ok_or(AuthError::UserNotFound)?;
        user.password_hash = hash;
        self.commit_revision();
        Ok(())
    }

    /// `UserGrantRole`. The role `root` may be granted even if no such role exists;
    /// granting a role the user already has succeeds without any change.
    ///
    /// # Errors
    /// `UserNotFound`, `RoleNotFound`.
    pub fn user_grant_role(&mut self, name: &str, role: &str) -> Result<(), AuthError> {
        if !self.users.contains_key(name) {
            return Err(AuthError::UserNotFound);
        }
        if role != ROOT_ROLE && !self.roles.contains_key(role) {
            return Err(AuthError::RoleNotFound);
        }
        let user = self.users.get_mut(name).ok_or(AuthError::UserNotFound)?;
        match user.roles.binary_search_by(|r| r.as_str().cmp(role)) {
            Ok(_) => Ok(()),
            Err(at) => {
                user.roles.insert(at, role.to_string());
                self.commit_revision();
                Ok(())
            }
        }
    }

    /// `UserRevokeRole`.
    ///
    /// # Errors
    /// `InvalidAuthMgmt` (root from root while enabled), `UserNotFound`, `RoleNotGranted`.
    pub fn user_revoke_role(&mut self, name: &str, role: &str) -> Result<(), AuthError> {
        if self.enabled && name == ROOT_USER && role == ROOT_ROLE {
            return Err(AuthError::InvalidAuthMgmt);
        }
        let user = self.users.get_mut(name).ok_or(AuthError::UserNotFound)?;
        let before = user.roles.len();
        user.roles.retain(|r| r != role);
        if user.roles.len() == before {
            return Err(AuthError::RoleNotGranted);
        }
        self.commit_revision();
        Ok(())
    }

    /// `UserGet`: the user's roles, sorted.
    ///
    /// # Errors
    /// `UserNotFound`.
    pub fn user_get(&self, name: &str) -> Result<Vec<String>, AuthError> {
        self.users
            .get(name)
            .map(|u| u.roles.clone())
            .ok_or(AuthError::UserNotFound)
    }

    /// `UserList`: all user names, sorted by bytes.
    pub fn user_list(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    /// `RoleAdd`.
    ///
    /// # Errors
    /// `RoleEmpty`, `RoleAlreadyExist`.
    pub fn role_add(&mut self, name: &str) -> Result<(), AuthError> {
        if name.is_empty() {
            return Err(AuthError::RoleEmpty);
        }
        if self.roles.contains_key(name) {
            return Err(AuthError::RoleAlreadyExist);
        }
        self.roles.insert(
            name.to_string(),
            Role {
                name: name.to_string(),
                permissions: Vec::new(),
            },
        );
        self.commit_revision();
        Ok(())
    }

    /// `RoleDelete`: also revokes the role from every user that has it.
    ///
    /// # Errors
    /// `InvalidAuthMgmt` (root while enabled), `RoleNotFound`.
    pub fn role_delete(&mut self, name: &str) -> Result<(), AuthError> {
        if self.enabled && name == ROOT_ROLE {
            return Err(AuthError::InvalidAuthMgmt);
        }
        self.roles.remove(name).ok_or(AuthError::RoleNotFound)?;
        for user in self.users.values_mut() {
            user.roles.retain(|r| r != name);
        }
        self.commit_revision();
        Ok(())
    }

    /// `RoleGet`: the role's permissions in etcd's order.
    ///
    /// # Errors
    /// `RoleNotFound`.
    pub fn role_get(&self, name: &str) -> Result<Vec<Permission>, AuthError> {
        self.roles
            .get(name)
            .map(|r| r.permissions.clone())
            .ok_or(AuthError::RoleNotFound)
    }

    /// `RoleList`: all role names, sorted by bytes.
    pub fn role_list(&self) -> Vec<String> {
        self.roles.keys().cloned().collect()
    }

    /// `RoleGrantPermission`. etcd looks only at the FIRST permission whose key is >=
    /// the new key: if it has the same key and range end its type is replaced, otherwise
    /// the permission is added after those with a key <= its key. So re-granting a range
    /// whose key is shared with an earlier-listed permission adds a second entry (etcd
    /// 3.4.23 behaviour, kept).
    ///
    /// # Errors
    /// `RoleNotFound`.
    pub fn role_grant_permission(&mut self, name: &str, perm: Permission) -> Result<(), AuthError> {
        let role = self.roles.get_mut(name).ok_or(AuthError::RoleNotFound)?;
        let first_ge = role.permissions.partition_point(|p| p.key < perm.key);
        match role.permissions.get_mut(first_ge) {
            Some(p) if p.key == perm.key && p.range_end == perm.range_end => {
                p.perm_type = perm.perm_type;
            }
            _ => {
                let at = role.permissions.partition_point(|p| p.key <= perm.key);
                role.permissions.insert(at, perm);
            }
        }
        self.commit_revision();
        Ok(())
    }

    /// `RoleRevokePermission`: removes every permission with exactly this key and range
    /// end (any type).
    ///
    /// # Errors
    /// `RoleNotFound`, `PermissionNotGranted`.
    pub fn role_revoke_permission(
        &mut self,
        name: &str,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), AuthError> {
        let role = self.roles.get_mut(name).ok_or(AuthError::RoleNotFound)?;
        let before = role.permissions.len();
        role.permissions
            .retain(|p| p.key != key || p.range_end != range_end);
        if role.permissions.len() == before {
            return Err(AuthError::PermissionNotGranted);
        }
        self.commit_revision();
        Ok(())
    }

    /// The stored hash for the server's bcrypt check (etcd's `CheckPassword`), with the
    /// auth revision to put in the token.
    ///
    /// # Errors
    /// `AuthNotEnabled`; `AuthFailed` for an unknown or no-password user.
    pub fn password_hash(&self, name: &str) -> Result<(&[u8], u64), AuthError> {
        if !self.enabled {
            return Err(AuthError::AuthNotEnabled);
        }
        let user = self.users.get(name).ok_or(AuthError::AuthFailed)?;
        if user.no_password {
            return Err(AuthError::AuthFailed);
        }
        Ok((&user.password_hash, self.revision))
    }

    /// `Authenticate` as applied through the log (after the server checked the password):
    /// the auth revision the new token carries.
    ///
    /// # Errors
    /// `AuthNotEnabled`; `AuthFailed` for an unknown or no-password user.
    pub fn authenticate(&self, name: &str) -> Result<u64, AuthError> {
        self.password_hash(name).map(|(_, rev)| rev)
    }

    /// The merged permissions of all of a user's roles.
    fn user_permissions(&self, user: &User) -> Vec<Permission> {
        user.roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .flat_map(|r| r.permissions.iter().cloned())
            .collect()
    }

    /// `isOpPermitted`: everything is allowed while auth is disabled; otherwise the
    /// request needs a user, a current revision, an existing user, and either the root
    /// role or a granted range.
    fn is_op_permitted(
        &self,
        info: &AuthInfo,
        key: &[u8],
        range_end: &[u8],
        wanted: PermissionType,
    ) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        if info.revision == 0 {
            return Err(AuthError::UserEmpty);
        }
        if info.revision < self.revision {
            return Err(AuthError::AuthOldRevision);
        }
        let user = self
            .users
            .get(&info.username)
            .ok_or(AuthError::PermissionDenied)?;
        if has_root_role(user) {
            return Ok(());
        }
        if range_permitted(&self.user_permissions(user), key, range_end, wanted) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    /// `IsRangePermitted`: read access to `key` or `[key, range_end)`.
    ///
    /// # Errors
    /// `UserEmpty`, `AuthOldRevision`, `PermissionDenied`.
    pub fn is_range_permitted(
        &self,
        info: &AuthInfo,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), AuthError> {
        self.is_op_permitted(info, key, range_end, PermissionType::Read)
    }

    /// `IsPutPermitted`: write access to `key`. (A top-level Put with `prev_kv` also
    /// needs [`Self::is_range_permitted`] on the key, and one with a lease needs
    /// [`Self::is_lease_keys_put_permitted`]: the applier calls those too.)
    ///
    /// # Errors
    /// As [`Self::is_range_permitted`].
    pub fn is_put_permitted(&self, info: &AuthInfo, key: &[u8]) -> Result<(), AuthError> {
        self.is_op_permitted(info, key, &[], PermissionType::Write)
    }

    /// `IsDeleteRangePermitted`: write access to the range. (With `prev_kv` etcd also
    /// checks read access first.)
    ///
    /// # Errors
    /// As [`Self::is_range_permitted`].
    pub fn is_delete_range_permitted(
        &self,
        info: &AuthInfo,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), AuthError> {
        self.is_op_permitted(info, key, range_end, PermissionType::Write)
    }

    /// `checkLeasePuts`: write access to every key attached to a lease (for a Put that
    /// attaches the lease, and for LeaseRevoke).
    ///
    /// # Errors
    /// As [`Self::is_range_permitted`], for the first key refused.
    pub fn is_lease_keys_put_permitted<'a>(
        &self,
        info: &AuthInfo,
        keys: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), AuthError> {
        keys.into_iter()
            .try_for_each(|k| self.is_put_permitted(info, k))
    }

    /// LeaseTimeToLive with `keys = true`. etcd 3.4.23 checks nothing here: recorded
    /// against a real 3.4.23 with auth enabled, alice, and even a request without any
    /// token, got the names of keys she cannot read (CVE-2023-32082, fixed in later
    /// releases by requiring read permission on every attached key). With
    /// [`TxnAuthMode::Fixed`] this applies the later rule; with the 3.4.23 mode it always
    /// allows.
    ///
    /// # Errors
    /// With the later rule: as [`Self::is_range_permitted`], for the first key refused.
    pub fn is_lease_time_to_live_permitted<'a>(
        &self,
        info: &AuthInfo,
        keys: impl IntoIterator<Item = &'a [u8]>,
        mode: TxnAuthMode,
    ) -> Result<(), AuthError> {
        if mode == TxnAuthMode::Etcd3_4_23 {
            return Ok(());
        }
        keys.into_iter()
            .try_for_each(|k| self.is_range_permitted(info, k, &[]))
    }

    /// `IsAdminPermitted`: allowed while disabled; otherwise the user must exist and hold
    /// the root role. (No revision check, as in etcd.)
    ///
    /// # Errors
    /// `UserEmpty`, `UserNotFound`, `PermissionDenied`.
    pub fn is_admin_permitted(&self, info: &AuthInfo) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        if info.username.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        let user = self
            .users
            .get(&info.username)
            .ok_or(AuthError::UserNotFound)?;
        if has_root_role(user) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    /// The admin check for `UserGet`: a user may read their own entry (etcd 3.4
    /// `needAdminPermission` skips the check when the name is the caller's).
    ///
    /// # Errors
    /// As [`Self::is_admin_permitted`].
    pub fn is_user_get_permitted(&self, info: &AuthInfo, name: &str) -> Result<(), AuthError> {
        if self.enabled && !info.username.is_empty() && info.username == name {
            return Ok(());
        }
        self.is_admin_permitted(info)
    }

    /// The admin check for `RoleGet`: a user may read a role they hold.
    ///
    /// # Errors
    /// As [`Self::is_admin_permitted`].
    pub fn is_role_get_permitted(&self, info: &AuthInfo, role: &str) -> Result<(), AuthError> {
        if self.enabled && self.user_has_role(info, role) {
            return Ok(());
        }
        self.is_admin_permitted(info)
    }

    /// Whether the user in `info` has `role` (etcd's `UserHasRole`, used to let a user
    /// read their own roles without admin rights).
    pub fn user_has_role(&self, info: &AuthInfo, role: &str) -> bool {
        self.users
            .get(&info.username)
            .is_some_and(|u| u.roles.iter().any(|r| r == role))
    }

    /// `checkTxnAuth`: compares need read; then the success ops, then the failure ops,
    /// in order; the first refusal is returned. See [`TxnAuthMode`] for nested Txns.
    ///
    /// # Errors
    /// As [`Self::is_range_permitted`].
    pub fn is_txn_permitted(
        &self,
        info: &AuthInfo,
        txn: &TxnCheck,
        mode: TxnAuthMode,
    ) -> Result<(), AuthError> {
        for (key, range_end) in &txn.compares {
            self.is_range_permitted(info, key, range_end)?;
        }
        self.check_txn_ops(info, &txn.success, mode)?;
        self.check_txn_ops(info, &txn.failure, mode)
    }

    fn check_txn_ops(
        &self,
        info: &AuthInfo,
        ops: &[TxnOpCheck],
        mode: TxnAuthMode,
    ) -> Result<(), AuthError> {
        for op in ops {
            match op {
                TxnOpCheck::Range { key, range_end } => {
                    self.is_range_permitted(info, key, range_end)?;
                }
                TxnOpCheck::Put { key, prev_kv } => {
                    self.is_put_permitted(info, key)?;
                    if *prev_kv && mode == TxnAuthMode::Fixed {
                        self.is_range_permitted(info, key, &[])?;
                    }
                }
                TxnOpCheck::DeleteRange {
                    key,
                    range_end,
                    prev_kv,
                } => {
                    if *prev_kv {
                        self.is_range_permitted(info, key, range_end)?;
                    }
                    self.is_delete_range_permitted(info, key, range_end)?;
                }
                TxnOpCheck::Txn(nested) => {
                    if mode == TxnAuthMode::Fixed {
                        self.is_txn_permitted(info, nested, mode)?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl AuthStore {
    /// Asserts the invariants: revision >= 1; every user's roles sorted without
    /// duplicates; names match their keys; while enabled, `root` exists with the root
    /// role (the checks on delete/revoke keep it so).
    pub fn check_invariants(&self) {
        assert!(self.revision >= 1, "auth revision starts at 1");
        for (name, user) in &self.users {
            assert_eq!(*name, user.name, "user keyed by its name");
            assert!(
                user.roles.windows(2).all(|w| w[0] < w[1]),
                "roles sorted, unique"
            );
        }
        for (name, role) in &self.roles {
            assert_eq!(*name, role.name, "role keyed by its name");
        }
        if self.enabled {
            let root = self.users.get(ROOT_USER);
            assert!(
                root.is_some_and(has_root_role),
                "enabled auth keeps root with root role"
            );
        }
    }
}

/// Whether the user holds the root role.
pub fn has_root_role(user: &User) -> bool {
    user.roles
        .binary_search_by(|r| r.as_str().cmp(ROOT_ROLE))
        .is_ok()
}
