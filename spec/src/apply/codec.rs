//! The byte form of a [`Proposal`]: what a Raft log entry stores. Data written by this
//! version must stay readable by every later version, so the layout below is frozen for
//! format version 1; a later change gets a new version byte and keeps decoding 1.
//!
//! ```text
//! proposal   = version:u8(=1) request_id:u64 auth:option<auth_info> command
//! auth_info  = username:string auth_revision:u64
//! command    = tag:u8 body
//!   1 Range        key:bytes range_end:bytes limit:i64 revision:i64 sort_order:u8
//!                  sort_target:u8 serializable:bool keys_only:bool count_only:bool
//!                  min_mod:i64 max_mod:i64 min_create:i64 max_create:i64
//!   2 Put          key:bytes value:bytes lease:i64 prev_kv:bool ignore_value:bool
//!                  ignore_lease:bool
//!   3 DeleteRange  key:bytes range_end:bytes prev_kv:bool
//!   4 Txn          txn
//!   5 Compaction   revision:i64 physical:bool
//!   6 LeaseGrant   id:i64 ttl_secs:i64
//!   7 LeaseRevoke  id:i64
//!   8 Alarm        action:u8 member_id:u64 alarm:u8
//!                  (action: 0 GET 1 ACTIVATE 2 DEACTIVATE; alarm: 0 NONE 1 NOSPACE
//!                  2 CORRUPT, etcd's numbers)
//!   16 Auth        auth_tag:u8 then
//!                    1 Enable | 2 Disable | 3 Authenticate name:string token:string
//!                    | 4 UserAdd name:string hash:bytes no_password:bool
//!                    | 5 UserDelete name:string | 6 UserChangePassword name:string hash:bytes
//!                    | 7 UserGrantRole user:string role:string
//!                    | 8 UserRevokeRole user:string role:string | 9 UserGet name:string
//!                    | 10 UserList | 11 RoleAdd name:string | 12 RoleGet name:string
//!                    | 13 RoleList | 14 RoleDelete name:string
//!                    | 15 RoleGrantPermission name:string perm_type:u8 key:bytes end:bytes
//!                    | 16 RoleRevokePermission name:string key:bytes end:bytes
//!                    | 17 RestoreRevision revision:u64
//!                  (perm_type: 0 READ 1 WRITE 2 READWRITE, etcd's numbers)
//!   32 V2          v2_tag:u8 then
//!                    1 Put path:string value:string dir:bool prev_exist:option<bool>
//!                      prev_value:string prev_index:u64 ttl
//!                    | 2 Post path:string value:string dir:bool ttl
//!                    | 3 Delete path:string dir:bool recursive:bool prev_value:string
//!                      prev_index:u64
//!                    | 4 QGet path:string recursive:bool sorted:bool
//!                    | 5 Sync time_ms:u64
//!                  ttl = expire_at_ms:option<u64> refresh:bool
//!   48 Membership  member_tag:u8 then
//!                    1 Add id:u64 name:string peer_urls:list<string>
//!                      client_urls:list<string> is_learner:bool
//!                    | 2 Remove id:u64 | 3 UpdatePeerUrls id:u64 peer_urls:list<string>
//!                    | 4 Promote id:u64
//!                    | 5 Attributes id:u64 name:string client_urls:list<string>
//!                    | 6 ClusterVersion major:u64 minor:u64 patch:u64
//!   (17-31, 33-47 and 49-63 stay free for later auth, v2 and membership commands)
//! txn        = compares:list<compare> success:list<op> failure:list<op>
//! compare    = result:u8 target:u8 operand key:bytes range_end:bytes
//!              result: 0 EQUAL 1 GREATER 2 LESS 3 NOT_EQUAL (etcd's numbers)
//!              target: 0 VERSION 1 CREATE 2 MOD 3 VALUE 4 LEASE; operand is bytes
//!              for VALUE, i64 otherwise
//! op         = 1 range-body | 2 put-body | 3 delete-body | 4 txn   (tag:u8 first)
//! sort_order = 0 NONE 1 ASCEND 2 DESCEND;  sort_target = 0 KEY 1 VERSION 2 CREATE
//!              3 MOD 4 VALUE (etcd's numbers)
//! u8 = one byte; u64/i64 = 8 bytes big-endian; bool = one byte 0 or 1;
//! bytes = u32 BE length then the bytes; string = bytes holding UTF-8;
//! option<x> = 0 | 1 x;  list<x> = u32 BE count then the items
//! ```
//!
//! Decoding validates everything (tags, booleans, UTF-8, lengths, nesting depth at most
//! [`MAX_TXN_DEPTH`], no trailing bytes) and returns an error, never panics.

use super::{AuthCommand, AuthInfo, Command, MemberChange, Proposal};
use crate::alarm::{AlarmAction, AlarmRequest, AlarmType};
use crate::auth::{Permission, PermissionType};
use crate::lease::LeaseId;
use crate::membership::{ClusterVersion, Member, MemberId};
use crate::mvcc::{
    CompactionRequest, Compare, CompareResult, CompareTarget, DeleteRangeRequest, PutRequest,
    RangeRequest, RequestOp, SortOrder, SortTarget, TxnRequest,
};
use crate::v2::{Request as V2Request, TtlOptions};

/// The format version this code writes.
pub const FORMAT_VERSION: u8 = 1;

/// Deepest txn nesting accepted when decoding (etcd accepts any depth within its op
/// limit; 64 levels is far beyond any real request and keeps decoding stack-bounded).
pub const MAX_TXN_DEPTH: usize = 64;

/// Why bytes are not a valid proposal.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum CodecError {
    /// The input is empty or was written by an unknown format version.
    #[error("unsupported format version {0:?}")]
    UnsupportedVersion(Option<u8>),
    /// The input ended early.
    #[error("truncated input")]
    Truncated,
    /// A tag that this format does not define.
    #[error("unknown {what} tag {tag}")]
    UnknownTag {
        /// What the tag selects.
        what: &'static str,
        /// The tag.
        tag: u8,
    },
    /// A boolean byte other than 0 or 1.
    #[error("invalid boolean byte {0}")]
    InvalidBool(u8),
    /// A string that is not UTF-8.
    #[error("invalid UTF-8 in string")]
    InvalidUtf8,
    /// Txns nested deeper than [`MAX_TXN_DEPTH`].
    #[error("txn nested too deep")]
    TooDeep,
    /// Bytes left over after the proposal.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
}

/// Encodes `p` in the current format.
#[must_use]
pub fn encode(p: &Proposal) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(64));
    w.u8(FORMAT_VERSION);
    w.u64(p.request_id);
    match &p.auth {
        None => w.u8(0),
        Some(a) => {
            w.u8(1);
            w.bytes(a.username.as_bytes());
            w.u64(a.revision);
        }
    }
    w.command(&p.command);
    w.0
}

/// Decodes bytes written by [`encode`] (any supported format version).
///
/// # Errors
/// [`CodecError`] for anything malformed.
pub fn decode(bytes: &[u8]) -> Result<Proposal, CodecError> {
    let mut r = Reader { bytes, pos: 0 };
    match r.u8() {
        Ok(FORMAT_VERSION) => {}
        Ok(v) => return Err(CodecError::UnsupportedVersion(Some(v))),
        Err(_) => return Err(CodecError::UnsupportedVersion(None)),
    }
    let request_id = r.u64()?;
    let auth = match r.u8()? {
        0 => None,
        1 => Some(AuthInfo {
            username: r.string()?,
            revision: r.u64()?,
        }),
        tag => {
            return Err(CodecError::UnknownTag {
                what: "auth option",
                tag,
            });
        }
    };
    let command = r.command()?;
    let left = bytes.len() - r.pos;
    if left != 0 {
        return Err(CodecError::TrailingBytes(left));
    }
    Ok(Proposal {
        request_id,
        auth,
        command,
    })
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bool(&mut self, v: bool) {
        self.0.push(u8::from(v));
    }
    fn len(&mut self, n: usize) {
        let n = u32::try_from(n).expect("a proposal field is far below 4 GiB");
        self.0.extend_from_slice(&n.to_be_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.len(v.len());
        self.0.extend_from_slice(v);
    }

    fn command(&mut self, c: &Command) {
        match c {
            Command::Range(r) => {
                self.u8(1);
                self.range(r);
            }
            Command::Put(r) => {
                self.u8(2);
                self.put(r);
            }
            Command::DeleteRange(r) => {
                self.u8(3);
                self.delete(r);
            }
            Command::Txn(t) => {
                self.u8(4);
                self.txn(t);
            }
            Command::Compaction(c) => {
                self.u8(5);
                self.i64(c.revision);
                self.bool(c.physical);
            }
            Command::LeaseGrant { id, ttl_secs } => {
                self.u8(6);
                self.i64(id.0);
                self.i64(*ttl_secs);
            }
            Command::LeaseRevoke { id } => {
                self.u8(7);
                self.i64(id.0);
            }
            Command::Auth(a) => {
                self.u8(16);
                self.auth(a);
            }
            Command::V2(r) => {
                self.u8(32);
                self.v2(r);
            }
            Command::Membership(c) => {
                self.u8(48);
                self.membership(c);
            }
            Command::Alarm(a) => {
                self.u8(8);
                self.u8(match a.action {
                    AlarmAction::Get => 0,
                    AlarmAction::Activate => 1,
                    AlarmAction::Deactivate => 2,
                });
                self.u64(a.member_id);
                self.u8(a.alarm.code());
            }
        }
    }

    fn strings(&mut self, v: &[String]) {
        self.len(v.len());
        for x in v {
            self.string(x);
        }
    }

    fn membership(&mut self, c: &MemberChange) {
        match c {
            MemberChange::Add(m) => {
                self.u8(1);
                self.u64(m.id.0);
                self.string(&m.name);
                self.strings(&m.peer_urls);
                self.strings(&m.client_urls);
                self.bool(m.is_learner);
            }
            MemberChange::Remove(id) => {
                self.u8(2);
                self.u64(id.0);
            }
            MemberChange::UpdatePeerUrls { id, peer_urls } => {
                self.u8(3);
                self.u64(id.0);
                self.strings(peer_urls);
            }
            MemberChange::Promote(id) => {
                self.u8(4);
                self.u64(id.0);
            }
            MemberChange::Attributes {
                id,
                name,
                client_urls,
            } => {
                self.u8(5);
                self.u64(id.0);
                self.string(name);
                self.strings(client_urls);
            }
            MemberChange::ClusterVersion(v) => {
                self.u8(6);
                self.u64(v.major);
                self.u64(v.minor);
                self.u64(v.patch);
            }
        }
    }

    fn string(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }

    fn auth(&mut self, a: &AuthCommand) {
        match a {
            AuthCommand::Enable => self.u8(1),
            AuthCommand::Disable => self.u8(2),
            AuthCommand::Authenticate { name, simple_token } => {
                self.u8(3);
                self.string(name);
                self.string(simple_token);
            }
            AuthCommand::UserAdd {
                name,
                password_hash,
                no_password,
            } => {
                self.u8(4);
                self.string(name);
                self.bytes(password_hash);
                self.bool(*no_password);
            }
            AuthCommand::UserDelete { name } => {
                self.u8(5);
                self.string(name);
            }
            AuthCommand::UserChangePassword {
                name,
                password_hash,
            } => {
                self.u8(6);
                self.string(name);
                self.bytes(password_hash);
            }
            AuthCommand::UserGrantRole { user, role } => {
                self.u8(7);
                self.string(user);
                self.string(role);
            }
            AuthCommand::UserRevokeRole { name, role } => {
                self.u8(8);
                self.string(name);
                self.string(role);
            }
            AuthCommand::UserGet { name } => {
                self.u8(9);
                self.string(name);
            }
            AuthCommand::UserList => self.u8(10),
            AuthCommand::RoleAdd { name } => {
                self.u8(11);
                self.string(name);
            }
            AuthCommand::RoleGet { role } => {
                self.u8(12);
                self.string(role);
            }
            AuthCommand::RoleList => self.u8(13),
            AuthCommand::RoleDelete { role } => {
                self.u8(14);
                self.string(role);
            }
            AuthCommand::RoleGrantPermission { name, perm } => {
                self.u8(15);
                self.string(name);
                self.u8(match perm.perm_type {
                    PermissionType::Read => 0,
                    PermissionType::Write => 1,
                    PermissionType::ReadWrite => 2,
                });
                self.bytes(&perm.key);
                self.bytes(&perm.range_end);
            }
            AuthCommand::RoleRevokePermission {
                role,
                key,
                range_end,
            } => {
                self.u8(16);
                self.string(role);
                self.bytes(key);
                self.bytes(range_end);
            }
            AuthCommand::RestoreRevision { revision } => {
                self.u8(17);
                self.u64(*revision);
            }
        }
    }

    fn ttl(&mut self, t: &TtlOptions) {
        match t.expire_at_ms {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
        }
        self.bool(t.refresh);
    }

    fn v2(&mut self, r: &V2Request) {
        match r {
            V2Request::Put {
                path,
                value,
                dir,
                prev_exist,
                prev_value,
                prev_index,
                ttl,
            } => {
                self.u8(1);
                self.string(path);
                self.string(value);
                self.bool(*dir);
                match prev_exist {
                    None => self.u8(0),
                    Some(b) => {
                        self.u8(1);
                        self.bool(*b);
                    }
                }
                self.string(prev_value);
                self.u64(*prev_index);
                self.ttl(ttl);
            }
            V2Request::Post {
                path,
                value,
                dir,
                ttl,
            } => {
                self.u8(2);
                self.string(path);
                self.string(value);
                self.bool(*dir);
                self.ttl(ttl);
            }
            V2Request::Delete {
                path,
                dir,
                recursive,
                prev_value,
                prev_index,
            } => {
                self.u8(3);
                self.string(path);
                self.bool(*dir);
                self.bool(*recursive);
                self.string(prev_value);
                self.u64(*prev_index);
            }
            V2Request::QGet {
                path,
                recursive,
                sorted,
            } => {
                self.u8(4);
                self.string(path);
                self.bool(*recursive);
                self.bool(*sorted);
            }
            V2Request::Sync { time_ms } => {
                self.u8(5);
                self.u64(*time_ms);
            }
        }
    }

    fn range(&mut self, r: &RangeRequest) {
        self.bytes(&r.key);
        self.bytes(&r.range_end);
        self.i64(r.limit);
        self.i64(r.revision);
        self.u8(match r.sort_order {
            SortOrder::None => 0,
            SortOrder::Ascend => 1,
            SortOrder::Descend => 2,
        });
        self.u8(match r.sort_target {
            SortTarget::Key => 0,
            SortTarget::Version => 1,
            SortTarget::Create => 2,
            SortTarget::Mod => 3,
            SortTarget::Value => 4,
        });
        self.bool(r.serializable);
        self.bool(r.keys_only);
        self.bool(r.count_only);
        self.i64(r.min_mod_revision);
        self.i64(r.max_mod_revision);
        self.i64(r.min_create_revision);
        self.i64(r.max_create_revision);
    }

    fn put(&mut self, r: &PutRequest) {
        self.bytes(&r.key);
        self.bytes(&r.value);
        self.i64(r.lease.0);
        self.bool(r.prev_kv);
        self.bool(r.ignore_value);
        self.bool(r.ignore_lease);
    }

    fn delete(&mut self, r: &DeleteRangeRequest) {
        self.bytes(&r.key);
        self.bytes(&r.range_end);
        self.bool(r.prev_kv);
    }

    fn txn(&mut self, t: &TxnRequest) {
        self.len(t.compare.len());
        for c in &t.compare {
            self.u8(match c.result {
                CompareResult::Equal => 0,
                CompareResult::Greater => 1,
                CompareResult::Less => 2,
                CompareResult::NotEqual => 3,
            });
            match &c.target {
                CompareTarget::Version(v) => {
                    self.u8(0);
                    self.i64(*v);
                }
                CompareTarget::Create(v) => {
                    self.u8(1);
                    self.i64(*v);
                }
                CompareTarget::Mod(v) => {
                    self.u8(2);
                    self.i64(*v);
                }
                CompareTarget::Value(v) => {
                    self.u8(3);
                    self.bytes(v);
                }
                CompareTarget::Lease(v) => {
                    self.u8(4);
                    self.i64(v.0);
                }
            }
            self.bytes(&c.key);
            self.bytes(&c.range_end);
        }
        for ops in [&t.success, &t.failure] {
            self.len(ops.len());
            for op in ops {
                match op {
                    RequestOp::Range(r) => {
                        self.u8(1);
                        self.range(r);
                    }
                    RequestOp::Put(r) => {
                        self.u8(2);
                        self.put(r);
                    }
                    RequestOp::DeleteRange(r) => {
                        self.u8(3);
                        self.delete(r);
                    }
                    RequestOp::Txn(n) => {
                        self.u8(4);
                        self.txn(n);
                    }
                }
            }
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CodecError> {
        let end = self.pos.checked_add(n).ok_or(CodecError::Truncated)?;
        let s = self.bytes.get(self.pos..end).ok_or(CodecError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    fn array8(&mut self) -> Result<[u8; 8], CodecError> {
        self.take(8)?.try_into().map_err(|_| CodecError::Truncated)
    }
    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.array8()?))
    }
    fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(i64::from_be_bytes(self.array8()?))
    }
    fn bool(&mut self) -> Result<bool, CodecError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(CodecError::InvalidBool(b)),
        }
    }
    fn len(&mut self) -> Result<usize, CodecError> {
        let b: [u8; 4] = self
            .take(4)?
            .try_into()
            .map_err(|_| CodecError::Truncated)?;
        let n = usize::try_from(u32::from_be_bytes(b)).map_err(|_| CodecError::Truncated)?;
        // Every item takes at least one byte: a larger count cannot be satisfied, and
        // rejecting it here keeps a hostile count from reserving memory.
        if n > self.bytes.len() - self.pos {
            return Err(CodecError::Truncated);
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<Vec<u8>, CodecError> {
        let n = self.len()?;
        Ok(self.take(n)?.to_vec())
    }
    fn string(&mut self) -> Result<String, CodecError> {
        String::from_utf8(self.bytes()?).map_err(|_| CodecError::InvalidUtf8)
    }

    fn command(&mut self) -> Result<Command, CodecError> {
        Ok(match self.u8()? {
            1 => Command::Range(self.range()?),
            2 => Command::Put(self.put()?),
            3 => Command::DeleteRange(self.delete()?),
            4 => Command::Txn(self.txn(0)?),
            5 => Command::Compaction(CompactionRequest {
                revision: self.i64()?,
                physical: self.bool()?,
            }),
            6 => Command::LeaseGrant {
                id: LeaseId(self.i64()?),
                ttl_secs: self.i64()?,
            },
            7 => Command::LeaseRevoke {
                id: LeaseId(self.i64()?),
            },
            16 => Command::Auth(self.auth()?),
            32 => Command::V2(self.v2()?),
            48 => Command::Membership(self.membership()?),
            8 => Command::Alarm(self.alarm()?),
            tag => {
                return Err(CodecError::UnknownTag {
                    what: "command",
                    tag,
                });
            }
        })
    }

    fn alarm(&mut self) -> Result<AlarmRequest, CodecError> {
        let action = match self.u8()? {
            0 => AlarmAction::Get,
            1 => AlarmAction::Activate,
            2 => AlarmAction::Deactivate,
            tag => {
                return Err(CodecError::UnknownTag {
                    what: "alarm action",
                    tag,
                });
            }
        };
        let member_id = self.u64()?;
        let tag = self.u8()?;
        let alarm = AlarmType::from_code(tag).ok_or(CodecError::UnknownTag {
            what: "alarm type",
            tag,
        })?;
        Ok(AlarmRequest {
            action,
            member_id,
            alarm,
        })
    }

    fn auth(&mut self) -> Result<AuthCommand, CodecError> {
        Ok(match self.u8()? {
            1 => AuthCommand::Enable,
            2 => AuthCommand::Disable,
            3 => AuthCommand::Authenticate {
                name: self.string()?,
                simple_token: self.string()?,
            },
            4 => AuthCommand::UserAdd {
                name: self.string()?,
                password_hash: self.bytes()?,
                no_password: self.bool()?,
            },
            5 => AuthCommand::UserDelete {
                name: self.string()?,
            },
            6 => AuthCommand::UserChangePassword {
                name: self.string()?,
                password_hash: self.bytes()?,
            },
            7 => AuthCommand::UserGrantRole {
                user: self.string()?,
                role: self.string()?,
            },
            8 => AuthCommand::UserRevokeRole {
                name: self.string()?,
                role: self.string()?,
            },
            9 => AuthCommand::UserGet {
                name: self.string()?,
            },
            10 => AuthCommand::UserList,
            11 => AuthCommand::RoleAdd {
                name: self.string()?,
            },
            12 => AuthCommand::RoleGet {
                role: self.string()?,
            },
            13 => AuthCommand::RoleList,
            14 => AuthCommand::RoleDelete {
                role: self.string()?,
            },
            15 => {
                let name = self.string()?;
                let perm_type = match self.u8()? {
                    0 => PermissionType::Read,
                    1 => PermissionType::Write,
                    2 => PermissionType::ReadWrite,
                    tag => {
                        return Err(CodecError::UnknownTag {
                            what: "permission type",
                            tag,
                        });
                    }
                };
                AuthCommand::RoleGrantPermission {
                    name,
                    perm: Permission {
                        perm_type,
                        key: self.bytes()?,
                        range_end: self.bytes()?,
                    },
                }
            }
            16 => AuthCommand::RoleRevokePermission {
                role: self.string()?,
                key: self.bytes()?,
                range_end: self.bytes()?,
            },
            17 => AuthCommand::RestoreRevision {
                revision: self.u64()?,
            },
            tag => {
                return Err(CodecError::UnknownTag {
                    what: "auth command",
                    tag,
                });
            }
        })
    }

    fn strings(&mut self) -> Result<Vec<String>, CodecError> {
        let n = self.len()?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.string()?);
        }
        Ok(v)
    }

    fn membership(&mut self) -> Result<MemberChange, CodecError> {
        Ok(match self.u8()? {
            1 => MemberChange::Add(Member {
                id: MemberId(self.u64()?),
                name: self.string()?,
                peer_urls: self.strings()?,
                client_urls: self.strings()?,
                is_learner: self.bool()?,
            }),
            2 => MemberChange::Remove(MemberId(self.u64()?)),
            3 => MemberChange::UpdatePeerUrls {
                id: MemberId(self.u64()?),
                peer_urls: self.strings()?,
            },
            4 => MemberChange::Promote(MemberId(self.u64()?)),
            5 => MemberChange::Attributes {
                id: MemberId(self.u64()?),
                name: self.string()?,
                client_urls: self.strings()?,
            },
            6 => MemberChange::ClusterVersion(ClusterVersion {
                major: self.u64()?,
                minor: self.u64()?,
                patch: self.u64()?,
            }),
            tag => {
                return Err(CodecError::UnknownTag {
                    what: "membership change",
                    tag,
                });
            }
        })
    }

    fn ttl(&mut self) -> Result<TtlOptions, CodecError> {
        let expire_at_ms = match self.u8()? {
            0 => None,
            1 => Some(self.u64()?),
            tag => {
                return Err(CodecError::UnknownTag {
                    what: "ttl option",
                    tag,
                });
            }
        };
        Ok(TtlOptions {
            expire_at_ms,
            refresh: self.bool()?,
        })
    }

    fn v2(&mut self) -> Result<V2Request, CodecError> {
        Ok(match self.u8()? {
            1 => V2Request::Put {
                path: self.string()?,
                value: self.string()?,
                dir: self.bool()?,
                prev_exist: match self.u8()? {
                    0 => None,
                    1 => Some(self.bool()?),
                    tag => {
                        return Err(CodecError::UnknownTag {
                            what: "prev_exist option",
                            tag,
                        });
                    }
                },
                prev_value: self.string()?,
                prev_index: self.u64()?,
                ttl: self.ttl()?,
            },
            2 => V2Request::Post {
                path: self.string()?,
                value: self.string()?,
                dir: self.bool()?,
                ttl: self.ttl()?,
            },
            3 => V2Request::Delete {
                path: self.string()?,
                dir: self.bool()?,
                recursive: self.bool()?,
                prev_value: self.string()?,
                prev_index: self.u64()?,
            },
            4 => V2Request::QGet {
                path: self.string()?,
                recursive: self.bool()?,
                sorted: self.bool()?,
            },
            5 => V2Request::Sync {
                time_ms: self.u64()?,
            },
            tag => {
                return Err(CodecError::UnknownTag {
                    what: "v2 request",
                    tag,
                });
            }
        })
    }

    fn range(&mut self) -> Result<RangeRequest, CodecError> {
        Ok(RangeRequest {
            key: self.bytes()?,
            range_end: self.bytes()?,
            limit: self.i64()?,
            revision: self.i64()?,
            sort_order: match self.u8()? {
                0 => SortOrder::None,
                1 => SortOrder::Ascend,
                2 => SortOrder::Descend,
                tag => {
                    return Err(CodecError::UnknownTag {
                        what: "sort order",
                        tag,
                    });
                }
            },
            sort_target: match self.u8()? {
                0 => SortTarget::Key,
                1 => SortTarget::Version,
                2 => SortTarget::Create,
                3 => SortTarget::Mod,
                4 => SortTarget::Value,
                tag => {
                    return Err(CodecError::UnknownTag {
                        what: "sort target",
                        tag,
                    });
                }
            },
            serializable: self.bool()?,
            keys_only: self.bool()?,
            count_only: self.bool()?,
            min_mod_revision: self.i64()?,
            max_mod_revision: self.i64()?,
            min_create_revision: self.i64()?,
            max_create_revision: self.i64()?,
        })
    }

    fn put(&mut self) -> Result<PutRequest, CodecError> {
        Ok(PutRequest {
            key: self.bytes()?,
            value: self.bytes()?,
            lease: LeaseId(self.i64()?),
            prev_kv: self.bool()?,
            ignore_value: self.bool()?,
            ignore_lease: self.bool()?,
        })
    }

    fn delete(&mut self) -> Result<DeleteRangeRequest, CodecError> {
        Ok(DeleteRangeRequest {
            key: self.bytes()?,
            range_end: self.bytes()?,
            prev_kv: self.bool()?,
        })
    }

    fn compare(&mut self) -> Result<Compare, CodecError> {
        let result = match self.u8()? {
            0 => CompareResult::Equal,
            1 => CompareResult::Greater,
            2 => CompareResult::Less,
            3 => CompareResult::NotEqual,
            tag => {
                return Err(CodecError::UnknownTag {
                    what: "compare result",
                    tag,
                });
            }
        };
        let target = match self.u8()? {
            0 => CompareTarget::Version(self.i64()?),
            1 => CompareTarget::Create(self.i64()?),
            2 => CompareTarget::Mod(self.i64()?),
            3 => CompareTarget::Value(self.bytes()?),
            4 => CompareTarget::Lease(LeaseId(self.i64()?)),
            tag => {
                return Err(CodecError::UnknownTag {
                    what: "compare target",
                    tag,
                });
            }
        };
        Ok(Compare {
            result,
            target,
            key: self.bytes()?,
            range_end: self.bytes()?,
        })
    }

    fn ops(&mut self, depth: usize) -> Result<Vec<RequestOp>, CodecError> {
        let n = self.len()?;
        let mut ops = Vec::with_capacity(n);
        for _ in 0..n {
            ops.push(match self.u8()? {
                1 => RequestOp::Range(self.range()?),
                2 => RequestOp::Put(self.put()?),
                3 => RequestOp::DeleteRange(self.delete()?),
                4 => RequestOp::Txn(self.txn(depth + 1)?),
                tag => {
                    return Err(CodecError::UnknownTag {
                        what: "txn op",
                        tag,
                    });
                }
            });
        }
        Ok(ops)
    }

    fn txn(&mut self, depth: usize) -> Result<TxnRequest, CodecError> {
        if depth > MAX_TXN_DEPTH {
            return Err(CodecError::TooDeep);
        }
        let n = self.len()?;
        let mut compare = Vec::with_capacity(n);
        for _ in 0..n {
            compare.push(self.compare()?);
        }
        Ok(TxnRequest {
            compare,
            success: self.ops(depth)?,
            failure: self.ops(depth)?,
        })
    }
}
