//! etcd 3.4's backend schema over oxetcd's applied state: what Maintenance.Snapshot
//! streams (a bbolt file, see [`super::bbolt`]), what Maintenance.Hash hashes, and how an
//! etcd snapshot file becomes oxetcd's buckets again.
//!
//! The buckets, in the order bbolt keeps them (by name):
//! - `alarm`: `etcdserverpb.AlarmMember` bytes -> empty, one per raised alarm.
//! - `auth`: `authEnabled` -> `[1]` while enabled, `[0]` after a disable (absent if auth
//!   was never enabled), `authRevision` -> u64 BE.
//! - `authRoles`: name -> `authpb.Role`; `authUsers`: name -> `authpb.User` (the bcrypt
//!   hash as `password`, `options` always present as etcdctl sends it).
//! - `cluster`: `clusterVersion` -> `major.minor.0`, once decided.
//! - `key`: oxetcd's MVCC history as it is stored (etcd's layout already).
//! - `lease`: oxetcd's lease records as stored (etcd's `leasepb.Lease`).
//! - `members`: member ID in hex -> etcd's member JSON (`id`, `peerURLs`, `isLearner`
//!   when true, `name`, `clientURLs`); `members_removed`: ID in hex -> `removed`.
//! - `meta`: `consistent_index` -> applied index u64 BE; `finishedCompactRev` and
//!   `scheduledCompactRev` -> the compacted revision as a revision key, once compacted.
//!
//! Not in etcd's schema, so not in the file: the v2 store (etcd 3.4's snapshot has none
//! either). Restoring keeps keys, revisions, leases, alarms and auth; the auth state is
//! rebuilt as a log of auth commands (roles, their permissions, users, their roles, the
//! file's `authRevision`, enable), so the auth revision goes on from the file's.

use std::io::{Read, Seek, SeekFrom, Write};

use oxetcd_api::authpb;
use oxetcd_api::etcdserverpb as pb;
use oxetcd_spec::alarm::{AlarmMember, AlarmType};
use oxetcd_spec::apply::{AppState, AuthCommand, Command, Proposal};
use oxetcd_spec::auth::{AuthStore, Permission, PermissionType};
use oxetcd_spec::membership::{Cluster, Member};
use oxetcd_spec::mvcc::{Bucket, Crc32c, FINISHED_COMPACT_KEY, KeyValue, Revision};
use prost::Message;
use sha2::{Digest, Sha256};

use super::bbolt::{self, BboltError};
use super::{Record, SnapshotError};
use crate::storage::backend::{BackendView, FjallBackend};

/// etcd's meta-bucket key of the applied index.
pub const CONSISTENT_INDEX: &[u8] = b"consistent_index";
/// etcd's meta-bucket key of the scheduled compaction.
pub const SCHEDULED_COMPACT: &[u8] = b"scheduledCompactRev";

/// The applied state as of one applied index, captured under the state lock: a
/// point-in-time view of the stored buckets and copies of the in-memory auth,
/// membership and alarm states.
#[derive(Debug)]
pub struct EtcdState {
    view: BackendView,
    applied_index: u64,
    revision: i64,
    auth: AuthStore,
    cluster: Cluster,
    alarms: Vec<AlarmMember>,
}

fn member_json(m: &Member) -> String {
    let raft = m.raft_attributes_json();
    let attributes = m.attributes_json();
    let mut out = format!("{{\"id\":{},", m.id.0);
    out.push_str(&raft[1..raft.len() - 1]);
    if attributes.len() > 2 {
        out.push(',');
        out.push_str(&attributes[1..attributes.len() - 1]);
    }
    out.push('}');
    out
}

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn sorted(mut pairs: Pairs) -> Pairs {
    pairs.sort();
    pairs
}

/// One bucket's start and pairs, for [`EtcdState::visit`].
fn emit(
    each: &mut impl FnMut(&[u8], Option<(&[u8], &[u8])>) -> std::io::Result<()>,
    name: &[u8],
    pairs: Pairs,
) -> std::io::Result<()> {
    each(name, None)?;
    for (k, v) in &pairs {
        each(name, Some((k, v)))?;
    }
    Ok(())
}

impl EtcdState {
    /// Captures `state` (call it with the state lock held, so nothing is applied
    /// between the storage view and the in-memory copies).
    #[must_use]
    pub fn capture(state: &AppState<FjallBackend>) -> EtcdState {
        EtcdState {
            view: state.store().backend().view(),
            applied_index: state.applied_index(),
            revision: state.store().current_revision(),
            auth: state.auth().clone(),
            cluster: state.cluster().clone(),
            alarms: state.alarms().get(AlarmType::None),
        }
    }

    /// The KV revision of the captured state.
    #[must_use]
    pub fn revision(&self) -> i64 {
        self.revision
    }

    fn auth_pairs(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        auth_pairs(&self.auth)
    }

    fn role_pairs(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let roles = self.auth.role_list().into_iter().filter_map(|name| {
            let role = self.auth.role(&name)?;
            let value = authpb::Role {
                name: name.clone().into_bytes(),
                key_permission: role
                    .permissions
                    .iter()
                    .map(|p| authpb::Permission {
                        perm_type: p.perm_type.number(),
                        key: p.key.clone(),
                        range_end: p.range_end.clone(),
                    })
                    .collect(),
            };
            Some((name.into_bytes(), value.encode_to_vec()))
        });
        sorted(roles.collect())
    }

    fn user_pairs(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let users = self.auth.user_list().into_iter().filter_map(|name| {
            let user = self.auth.user(&name)?;
            let value = authpb::User {
                name: name.clone().into_bytes(),
                password: user.password_hash.clone(),
                roles: user.roles.clone(),
                options: Some(authpb::UserAddOptions {
                    no_password: user.no_password,
                }),
            };
            Some((name.into_bytes(), value.encode_to_vec()))
        });
        sorted(users.collect())
    }

    /// Calls `each(bucket, None)` at the start of every bucket and `each(bucket,
    /// Some((key, value)))` for its pairs: buckets by name, pairs by key, as bbolt
    /// iterates them.
    ///
    /// # Errors
    /// Storage read errors, or `each`'s.
    pub fn visit(
        &self,
        mut each: impl FnMut(&[u8], Option<(&[u8], &[u8])>) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let alarms = self
            .alarms
            .iter()
            .map(|m| {
                let key = pb::AlarmMember {
                    member_id: m.member_id,
                    alarm: i32::from(m.alarm.code()),
                };
                (key.encode_to_vec(), Vec::new())
            })
            .collect();
        emit(&mut each, b"alarm", sorted(alarms))?;
        emit(&mut each, b"auth", self.auth_pairs())?;
        emit(&mut each, b"authRoles", self.role_pairs())?;
        emit(&mut each, b"authUsers", self.user_pairs())?;
        let version = self.cluster.version().map(|v| {
            (
                b"clusterVersion".to_vec(),
                format!("{}.{}.0", v.major, v.minor).into_bytes(),
            )
        });
        emit(&mut each, b"cluster", version.into_iter().collect())?;
        for (name, stored) in [(&b"key"[..], Bucket::Key), (b"lease", Bucket::Lease)] {
            each(name, None)?;
            self.view.visit(stored, |k, v| each(name, Some((k, v))))?;
        }
        let members = self
            .cluster
            .members()
            .map(|m| (m.id.to_string().into_bytes(), member_json(m).into_bytes()))
            .collect();
        emit(&mut each, b"members", sorted(members))?;
        let removed = self
            .cluster
            .removed_ids()
            .map(|id| (id.to_string().into_bytes(), b"removed".to_vec()))
            .collect();
        emit(&mut each, b"members_removed", sorted(removed))?;
        let mut meta = vec![(
            CONSISTENT_INDEX.to_vec(),
            self.applied_index.to_be_bytes().to_vec(),
        )];
        if let Some(compacted) = self.view.get(Bucket::Meta, FINISHED_COMPACT_KEY)? {
            meta.push((FINISHED_COMPACT_KEY.to_vec(), compacted.clone()));
            meta.push((SCHEDULED_COMPACT.to_vec(), compacted));
        }
        emit(&mut each, b"meta", sorted(meta))
    }

    /// etcd's Maintenance.Hash: CRC-32C over every bucket's name and its keys and
    /// values, leaving out `meta`'s `consistent_index`.
    ///
    /// # Errors
    /// Storage read errors.
    pub fn hash(&self) -> std::io::Result<u32> {
        let mut crc = Crc32c::new();
        self.visit(|bucket, pair| {
            match pair {
                None => crc.update(bucket),
                Some((k, _)) if bucket == b"meta" && k == CONSISTENT_INDEX => {}
                Some((k, v)) => {
                    crc.update(k);
                    crc.update(v);
                }
            }
            Ok(())
        })?;
        Ok(crc.finish())
    }

    /// Writes the snapshot file to `file` (empty, at its start): the bbolt database,
    /// then the SHA-256 of it; returns the file size.
    ///
    /// # Errors
    /// Read or write errors.
    pub fn write_snapshot<F: Read + Write + Seek>(&self, file: F) -> std::io::Result<u64> {
        let mut writer = bbolt::Writer::new(file)?;
        self.visit(|bucket, pair| match pair {
            None => writer.bucket(bucket),
            Some((k, v)) => writer.put(k, v),
        })?;
        let (mut file, size) = writer.finish()?;
        append_sha256(&mut file, size)
    }
}

/// Appends the SHA-256 of the first `size` bytes of `file` (etcd's snapshot trailer);
/// returns the new size.
///
/// # Errors
/// Read or write errors.
pub fn append_sha256<F: Read + Write + Seek>(file: &mut F, size: u64) -> std::io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut hash = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut left = size;
    while left > 0 {
        let want = usize::try_from(left.min(buffer.len() as u64)).unwrap_or(buffer.len());
        file.read_exact(&mut buffer[..want])?;
        hash.update(&buffer[..want]);
        left -= want as u64;
    }
    file.seek(SeekFrom::Start(size))?;
    file.write_all(&hash.finalize())?;
    file.flush()?;
    Ok(size + super::HASH_LEN as u64)
}

/// The key of the `seq`th auth-log record a restore writes: eight zero bytes and `seq`,
/// so the records replay in order and before every entry the restored member applies
/// (those are keyed by their index, from 2 on).
#[must_use]
pub fn restored_log_key(seq: u32) -> Vec<u8> {
    let mut key = vec![0u8; 8];
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// A logged auth command, as the applier stores one (`now_ms` 0).
fn logged(command: AuthCommand) -> Vec<u8> {
    let proposal = Proposal {
        request_id: 0,
        auth: None,
        command: Command::Auth(command),
    };
    let mut value = 0u64.to_be_bytes().to_vec();
    value.extend_from_slice(&oxetcd_spec::apply::codec::encode(&proposal));
    value
}

/// The `auth` bucket's records for `auth`, as etcd keeps them.
fn auth_pairs(auth: &AuthStore) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut pairs = Vec::new();
    if let Some(enabled) = auth.enabled_flag() {
        pairs.push((b"authEnabled".to_vec(), vec![u8::from(enabled)]));
    }
    pairs.push((
        b"authRevision".to_vec(),
        auth.revision().to_be_bytes().to_vec(),
    ));
    pairs
}

fn malformed(bucket: &str, key: &[u8], why: impl std::fmt::Display) -> BboltError {
    BboltError(format!(
        "bucket {bucket}, key {:?}: {why}",
        String::from_utf8_lossy(key)
    ))
}

/// oxetcd's records (for [`Bucket`]s) from an etcd snapshot's database: the `key`,
/// `lease` and compaction records as they are, alarms, and the auth state as a log of
/// auth commands. Membership and the cluster version are left out (a restore starts a
/// new cluster), as is the applied index (the restore sets its own).
///
/// # Errors
/// [`SnapshotError::Bbolt`] if the file or a record in it is malformed.
pub fn records_from_bbolt(db: &bbolt::Db<'_>) -> Result<Vec<Record>, SnapshotError> {
    let mut records: Vec<Record> = Vec::new();
    let mut users: Vec<authpb::User> = Vec::new();
    let mut roles: Vec<authpb::Role> = Vec::new();
    let mut auth_enabled = false;
    let mut auth_revision = 0;
    db.for_each(|bucket, pair| {
        let Some((k, v)) = pair else {
            return Ok(());
        };
        match bucket {
            b"key" => {
                Revision::from_key_bytes(k)
                    .ok_or_else(|| malformed("key", k, "not a revision key"))?;
                KeyValue::decode(v).map_err(|e| malformed("key", k, e))?;
                records.push((Bucket::Key, k.to_vec(), v.to_vec()));
            }
            b"lease" => {
                oxetcd_spec::lease::Lease::decode(v).map_err(|e| malformed("lease", k, e))?;
                records.push((Bucket::Lease, k.to_vec(), v.to_vec()));
            }
            b"meta" if k == FINISHED_COMPACT_KEY => {
                Revision::from_key_bytes(v)
                    .ok_or_else(|| malformed("meta", k, "not a revision"))?;
                records.push((Bucket::Meta, k.to_vec(), v.to_vec()));
            }
            b"alarm" => {
                let member = pb::AlarmMember::decode(k).map_err(|e| malformed("alarm", k, e))?;
                let alarm = u8::try_from(member.alarm)
                    .ok()
                    .and_then(AlarmType::from_code)
                    .ok_or_else(|| malformed("alarm", k, "unknown alarm type"))?;
                let member = AlarmMember {
                    member_id: member.member_id,
                    alarm,
                };
                records.push((Bucket::Meta, member.key(), Vec::new()));
            }
            b"auth" if k == b"authEnabled" => auth_enabled = v == [1],
            b"auth" if k == b"authRevision" => {
                let bytes: [u8; 8] = v
                    .try_into()
                    .map_err(|_| malformed("auth", k, "not a u64"))?;
                auth_revision = u64::from_be_bytes(bytes);
            }
            b"authUsers" => {
                users.push(authpb::User::decode(v).map_err(|e| malformed("authUsers", k, e))?);
            }
            b"authRoles" => {
                roles.push(authpb::Role::decode(v).map_err(|e| malformed("authRoles", k, e))?);
            }
            // Membership, the cluster version, the applied index and anything else
            // belong to the old cluster.
            _ => {}
        }
        Ok(())
    })
    .map_err(|e| SnapshotError::Bbolt(e.0))?;
    let commands = auth_commands(&users, &roles, auth_revision, auth_enabled)?;
    for (seq, command) in commands.into_iter().enumerate() {
        let seq =
            u32::try_from(seq).map_err(|_| SnapshotError::Bbolt("too many auth records".into()))?;
        records.push((Bucket::Auth, restored_log_key(seq), logged(command)));
    }
    Ok(records)
}

/// The auth commands that rebuild `users`, `roles`, the auth `revision` and the enabled
/// flag, checked by running them on a fresh auth store.
fn auth_commands(
    users: &[authpb::User],
    roles: &[authpb::Role],
    revision: u64,
    enabled: bool,
) -> Result<Vec<AuthCommand>, SnapshotError> {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let mut commands = Vec::new();
    let mut check = AuthStore::new();
    let refuse = |what: String, error: oxetcd_spec::auth::AuthError| {
        SnapshotError::Bbolt(format!("auth: {what}: {error}"))
    };
    for role in roles {
        let name = text(&role.name);
        check
            .role_add(&name)
            .map_err(|e| refuse(format!("role {name}"), e))?;
        commands.push(AuthCommand::RoleAdd { name: name.clone() });
        for p in &role.key_permission {
            let perm = Permission {
                perm_type: PermissionType::from_number(p.perm_type).ok_or_else(|| {
                    SnapshotError::Bbolt(format!(
                        "auth: role {name}: permission type {}",
                        p.perm_type
                    ))
                })?,
                key: p.key.clone(),
                range_end: p.range_end.clone(),
            };
            check
                .role_grant_permission(&name, perm.clone())
                .map_err(|e| refuse(format!("role {name}"), e))?;
            commands.push(AuthCommand::RoleGrantPermission {
                name: name.clone(),
                perm,
            });
        }
    }
    for user in users {
        let name = text(&user.name);
        let no_password = user.options.as_ref().is_some_and(|o| o.no_password);
        check
            .user_add(&name, user.password.clone(), no_password)
            .map_err(|e| refuse(format!("user {name}"), e))?;
        commands.push(AuthCommand::UserAdd {
            name: name.clone(),
            password_hash: user.password.clone(),
            no_password,
        });
        for role in &user.roles {
            check
                .user_grant_role(&name, role)
                .map_err(|e| refuse(format!("user {name}"), e))?;
            commands.push(AuthCommand::UserGrantRole {
                user: name.clone(),
                role: role.clone(),
            });
        }
    }
    if revision > check.revision() {
        check.restore_revision(revision);
        commands.push(AuthCommand::RestoreRevision { revision });
    }
    if enabled {
        check
            .auth_enable()
            .map_err(|e| refuse("enable".to_owned(), e))?;
        commands.push(AuthCommand::Enable);
    }
    Ok(commands)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETCD_SNAPSHOT: &[u8] = include_bytes!("testdata/etcd-3.4.23.db");

    /// The auth commands among converted records, in order.
    fn auth_commands(records: &[Record]) -> Vec<AuthCommand> {
        records
            .iter()
            .filter(|r| r.0 == Bucket::Auth)
            .map(|r| {
                match oxetcd_spec::apply::codec::decode(&r.2[8..])
                    .unwrap()
                    .command
                {
                    Command::Auth(c) => c,
                    other => panic!("{other:?}"),
                }
            })
            .collect()
    }

    #[test]
    fn an_etcd_snapshot_becomes_keys_leases_compaction_and_an_auth_log() {
        let body = super::super::verify(ETCD_SNAPSHOT, false).unwrap();
        let db = bbolt::Db::open(body).unwrap();
        let records = records_from_bbolt(&db).unwrap();
        let count = |bucket: Bucket| records.iter().filter(|r| r.0 == bucket).count();
        assert_eq!(count(Bucket::Key), 4);
        assert_eq!(count(Bucket::Lease), 1);
        assert_eq!(count(Bucket::Members), 0);
        let meta: Vec<&[u8]> = records
            .iter()
            .filter(|r| r.0 == Bucket::Meta)
            .map(|r| r.1.as_slice())
            .collect();
        assert_eq!(meta, [FINISHED_COMPACT_KEY]);
        // Role r1 with two permissions; users alice (role r1), bob, root.
        let commands = auth_commands(&records);
        assert_eq!(commands.len(), 7, "{commands:?}");
        assert!(matches!(&commands[0], AuthCommand::RoleAdd { name } if name == "r1"));
        assert!(matches!(
            &commands[5],
            AuthCommand::UserAdd { name, no_password: true, .. } if name == "bob"
        ));
        let keys: Vec<&Vec<u8>> = records
            .iter()
            .filter(|r| r.0 == Bucket::Auth)
            .map(|r| &r.1)
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert!(
            keys.iter()
                .all(|k| k.as_slice() < 2u64.to_be_bytes().as_slice())
        );
    }

    #[test]
    fn auth_enabled_is_written_as_etcd_writes_it_never_one_then_zero_after_disable() {
        let mut auth = AuthStore::new();
        let flag = |auth: &AuthStore| {
            auth_pairs(auth)
                .into_iter()
                .find(|(k, _)| k == b"authEnabled")
                .map(|(_, v)| v)
        };
        assert_eq!(flag(&auth), None);
        auth.role_add("root").unwrap();
        auth.user_add("root", b"x".to_vec(), false).unwrap();
        auth.user_grant_role("root", "root").unwrap();
        auth.auth_enable().unwrap();
        assert_eq!(flag(&auth), Some(vec![1]));
        auth.auth_disable();
        assert_eq!(flag(&auth), Some(vec![0]));
    }

    #[test]
    fn a_restored_auth_log_goes_on_from_the_files_auth_revision() {
        let body = super::super::verify(ETCD_SNAPSHOT, false).unwrap();
        let db = bbolt::Db::open(body).unwrap();
        let mut file_revision = 0;
        db.for_each(|bucket, pair| {
            if let (b"auth", Some((b"authRevision", v))) = (bucket, pair) {
                file_revision = u64::from_be_bytes(v.try_into().unwrap());
            }
            Ok(())
        })
        .unwrap();
        let commands = auth_commands(&records_from_bbolt(&db).unwrap());
        let mut replayed = AuthStore::new();
        for command in &commands {
            match command {
                AuthCommand::RoleAdd { name } => replayed.role_add(name).unwrap(),
                AuthCommand::RoleGrantPermission { name, perm } => {
                    replayed.role_grant_permission(name, perm.clone()).unwrap()
                }
                AuthCommand::UserAdd {
                    name,
                    password_hash,
                    no_password,
                } => replayed
                    .user_add(name, password_hash.clone(), *no_password)
                    .unwrap(),
                AuthCommand::UserGrantRole { user, role } => {
                    replayed.user_grant_role(user, role).unwrap();
                }
                AuthCommand::RestoreRevision { revision } => replayed.restore_revision(*revision),
                AuthCommand::Enable => replayed.auth_enable().unwrap(),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(file_revision > 1);
        assert_eq!(replayed.revision(), file_revision);
    }

    #[test]
    fn member_json_is_etcds() {
        let m = Member {
            id: oxetcd_spec::membership::MemberId(0x332e_ea9d_ab1d_db96),
            name: "e1".into(),
            peer_urls: vec!["http://127.0.0.1:50261".into()],
            client_urls: vec!["http://127.0.0.1:38985".into()],
            is_learner: false,
        };
        assert_eq!(
            member_json(&m),
            r#"{"id":3688143107764640662,"peerURLs":["http://127.0.0.1:50261"],"name":"e1","clientURLs":["http://127.0.0.1:38985"]}"#
        );
        let learner = Member {
            name: String::new(),
            client_urls: Vec::new(),
            is_learner: true,
            ..m
        };
        assert_eq!(
            member_json(&learner),
            r#"{"id":3688143107764640662,"peerURLs":["http://127.0.0.1:50261"],"isLearner":true}"#
        );
    }
}
