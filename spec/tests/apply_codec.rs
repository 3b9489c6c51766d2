//! The log-entry codec (`spec::apply::codec`): every proposal survives a round trip, the
//! format version 1 layout is pinned byte for byte (a data dir written today must stay
//! readable), and malformed bytes give an error, never a panic.

use oxetcd_spec::alarm::{AlarmAction, AlarmRequest, AlarmType};
use oxetcd_spec::apply::codec::{self, CodecError, FORMAT_VERSION, MAX_TXN_DEPTH};
use oxetcd_spec::apply::{AuthCommand, AuthInfo, Command, MemberChange, Proposal};
use oxetcd_spec::auth::{Permission, PermissionType};
use oxetcd_spec::lease::LeaseId;
use oxetcd_spec::membership::{ClusterVersion, Member, MemberId};
use oxetcd_spec::mvcc::{
    CompactionRequest, Compare, CompareResult, CompareTarget, DeleteRangeRequest, PutRequest,
    RangeRequest, RequestOp, SortOrder, SortTarget, TxnRequest,
};
use oxetcd_spec::v2::{Request as V2Request, TtlOptions};
use quickcheck::{Arbitrary, Gen, QuickCheck};

fn bytes(g: &mut Gen) -> Vec<u8> {
    let n = usize::arbitrary(g) % 4;
    (0..n).map(|_| u8::arbitrary(g)).collect()
}

fn range(g: &mut Gen) -> RangeRequest {
    RangeRequest {
        key: bytes(g),
        range_end: bytes(g),
        limit: i64::arbitrary(g),
        revision: i64::arbitrary(g),
        sort_order: *g
            .choose(&[SortOrder::None, SortOrder::Ascend, SortOrder::Descend])
            .expect("non-empty"),
        sort_target: *g
            .choose(&[
                SortTarget::Key,
                SortTarget::Version,
                SortTarget::Create,
                SortTarget::Mod,
                SortTarget::Value,
            ])
            .expect("non-empty"),
        serializable: bool::arbitrary(g),
        keys_only: bool::arbitrary(g),
        count_only: bool::arbitrary(g),
        min_mod_revision: i64::arbitrary(g),
        max_mod_revision: i64::arbitrary(g),
        min_create_revision: i64::arbitrary(g),
        max_create_revision: i64::arbitrary(g),
    }
}

fn put(g: &mut Gen) -> PutRequest {
    PutRequest {
        key: bytes(g),
        value: bytes(g),
        lease: LeaseId(i64::arbitrary(g)),
        prev_kv: bool::arbitrary(g),
        ignore_value: bool::arbitrary(g),
        ignore_lease: bool::arbitrary(g),
    }
}

fn delete(g: &mut Gen) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: bytes(g),
        range_end: bytes(g),
        prev_kv: bool::arbitrary(g),
    }
}

fn txn(g: &mut Gen, depth: usize) -> TxnRequest {
    let compare = (0..usize::arbitrary(g) % 3)
        .map(|_| Compare {
            result: *g
                .choose(&[
                    CompareResult::Equal,
                    CompareResult::Greater,
                    CompareResult::Less,
                    CompareResult::NotEqual,
                ])
                .expect("non-empty"),
            target: match u8::arbitrary(g) % 5 {
                0 => CompareTarget::Version(i64::arbitrary(g)),
                1 => CompareTarget::Create(i64::arbitrary(g)),
                2 => CompareTarget::Mod(i64::arbitrary(g)),
                3 => CompareTarget::Value(bytes(g)),
                _ => CompareTarget::Lease(LeaseId(i64::arbitrary(g))),
            },
            key: bytes(g),
            range_end: bytes(g),
        })
        .collect();
    let ops = |g: &mut Gen| -> Vec<RequestOp> {
        (0..usize::arbitrary(g) % 3)
            .map(|_| match u8::arbitrary(g) % if depth < 3 { 4 } else { 3 } {
                0 => RequestOp::Range(range(g)),
                1 => RequestOp::Put(put(g)),
                2 => RequestOp::DeleteRange(delete(g)),
                _ => RequestOp::Txn(txn(g, depth + 1)),
            })
            .collect()
    };
    let success = ops(g);
    let failure = ops(g);
    TxnRequest {
        compare,
        success,
        failure,
    }
}

fn auth_command(g: &mut Gen) -> AuthCommand {
    let name = String::arbitrary(g);
    let other = String::arbitrary(g);
    match u8::arbitrary(g) % 17 {
        0 => AuthCommand::Enable,
        1 => AuthCommand::Disable,
        2 => AuthCommand::Authenticate {
            name,
            simple_token: other,
        },
        3 => AuthCommand::UserAdd {
            name,
            password_hash: bytes(g),
            no_password: bool::arbitrary(g),
        },
        4 => AuthCommand::UserDelete { name },
        5 => AuthCommand::UserChangePassword {
            name,
            password_hash: bytes(g),
        },
        6 => AuthCommand::UserGrantRole {
            user: name,
            role: other,
        },
        7 => AuthCommand::UserRevokeRole { name, role: other },
        8 => AuthCommand::UserGet { name },
        9 => AuthCommand::UserList,
        10 => AuthCommand::RoleAdd { name },
        11 => AuthCommand::RoleGet { role: name },
        12 => AuthCommand::RoleList,
        13 => AuthCommand::RoleDelete { role: name },
        14 => AuthCommand::RoleGrantPermission {
            name,
            perm: Permission {
                perm_type: *g
                    .choose(&[
                        PermissionType::Read,
                        PermissionType::Write,
                        PermissionType::ReadWrite,
                    ])
                    .expect("non-empty"),
                key: bytes(g),
                range_end: bytes(g),
            },
        },
        15 => AuthCommand::RoleRevokePermission {
            role: name,
            key: bytes(g),
            range_end: bytes(g),
        },
        _ => AuthCommand::RestoreRevision {
            revision: u64::arbitrary(g),
        },
    }
}

fn member_change(g: &mut Gen) -> MemberChange {
    let id = MemberId(u64::arbitrary(g));
    match u8::arbitrary(g) % 6 {
        0 => MemberChange::Add(Member {
            id,
            name: String::arbitrary(g),
            peer_urls: Vec::<String>::arbitrary(g),
            client_urls: Vec::<String>::arbitrary(g),
            is_learner: bool::arbitrary(g),
        }),
        1 => MemberChange::Remove(id),
        2 => MemberChange::UpdatePeerUrls {
            id,
            peer_urls: Vec::<String>::arbitrary(g),
        },
        3 => MemberChange::Promote(id),
        4 => MemberChange::Attributes {
            id,
            name: String::arbitrary(g),
            client_urls: Vec::<String>::arbitrary(g),
        },
        _ => MemberChange::ClusterVersion(ClusterVersion {
            major: u64::arbitrary(g),
            minor: u64::arbitrary(g),
            patch: u64::arbitrary(g),
        }),
    }
}

fn v2_request(g: &mut Gen) -> V2Request {
    let ttl = TtlOptions {
        expire_at_ms: Option::<u64>::arbitrary(g),
        refresh: bool::arbitrary(g),
    };
    match u8::arbitrary(g) % 5 {
        0 => V2Request::Put {
            path: String::arbitrary(g),
            value: String::arbitrary(g),
            dir: bool::arbitrary(g),
            prev_exist: Option::<bool>::arbitrary(g),
            prev_value: String::arbitrary(g),
            prev_index: u64::arbitrary(g),
            ttl,
        },
        1 => V2Request::Post {
            path: String::arbitrary(g),
            value: String::arbitrary(g),
            dir: bool::arbitrary(g),
            ttl,
        },
        2 => V2Request::Delete {
            path: String::arbitrary(g),
            dir: bool::arbitrary(g),
            recursive: bool::arbitrary(g),
            prev_value: String::arbitrary(g),
            prev_index: u64::arbitrary(g),
        },
        3 => V2Request::QGet {
            path: String::arbitrary(g),
            recursive: bool::arbitrary(g),
            sorted: bool::arbitrary(g),
        },
        _ => V2Request::Sync {
            time_ms: u64::arbitrary(g),
        },
    }
}

#[derive(Clone, Debug)]
struct P(Proposal);

impl Arbitrary for P {
    fn arbitrary(g: &mut Gen) -> Self {
        let command = match u8::arbitrary(g) % 11 {
            0 => Command::Range(range(g)),
            1 => Command::Put(put(g)),
            2 => Command::DeleteRange(delete(g)),
            3 => Command::Txn(txn(g, 0)),
            4 => Command::Compaction(CompactionRequest {
                revision: i64::arbitrary(g),
                physical: bool::arbitrary(g),
            }),
            5 => Command::LeaseGrant {
                id: LeaseId(i64::arbitrary(g)),
                ttl_secs: i64::arbitrary(g),
            },
            6 => Command::LeaseRevoke {
                id: LeaseId(i64::arbitrary(g)),
            },
            7 => Command::Auth(auth_command(g)),
            8 => Command::V2(v2_request(g)),
            9 => Command::Alarm(AlarmRequest {
                action: *g
                    .choose(&[
                        AlarmAction::Get,
                        AlarmAction::Activate,
                        AlarmAction::Deactivate,
                    ])
                    .unwrap_or(&AlarmAction::Get),
                member_id: u64::arbitrary(g),
                alarm: *g
                    .choose(&[AlarmType::None, AlarmType::NoSpace, AlarmType::Corrupt])
                    .unwrap_or(&AlarmType::None),
            }),
            _ => Command::Membership(member_change(g)),
        };
        let auth = bool::arbitrary(g).then(|| AuthInfo {
            username: String::arbitrary(g),
            revision: u64::arbitrary(g),
        });
        P(Proposal {
            request_id: u64::arbitrary(g),
            auth,
            command,
        })
    }
}

#[test]
fn every_proposal_round_trips_through_the_codec() {
    fn prop(p: P) -> bool {
        codec::decode(&codec::encode(&p.0)) == Ok(p.0)
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(P) -> bool);
}

#[test]
fn random_bytes_give_an_error_not_a_panic() {
    fn prop(bytes: Vec<u8>) -> bool {
        let _ = codec::decode(&bytes);
        let mut versioned = vec![FORMAT_VERSION];
        versioned.extend_from_slice(&bytes);
        // Either a valid proposal that re-encodes to the same bytes, or an error.
        match codec::decode(&versioned) {
            Ok(p) => codec::encode(&p) == versioned,
            Err(_) => true,
        }
    }
    QuickCheck::new()
        .tests(3000)
        .quickcheck(prop as fn(Vec<u8>) -> bool);
}

#[test]
fn corrupted_and_truncated_encodings_give_an_error_not_a_panic() {
    fn prop(p: P, at: usize, xor: u8) -> bool {
        let good = codec::encode(&p.0);
        let cut = at % good.len();
        let truncated_fails = codec::decode(&good[..cut]).is_err();
        let mut flipped = good.clone();
        flipped[cut] ^= xor;
        // A flip may produce another valid proposal; it must then re-encode exactly.
        let flip_ok = match codec::decode(&flipped) {
            Ok(q) => codec::encode(&q) == flipped,
            Err(_) => true,
        };
        let mut longer = good;
        longer.push(0);
        truncated_fails && flip_ok && codec::decode(&longer) == Err(CodecError::TrailingBytes(1))
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(P, usize, u8) -> bool);
}

#[test]
fn format_version_1_bytes_are_pinned() {
    // Changing these bytes breaks existing data dirs: add a new format version instead.
    let p = Proposal {
        request_id: 0x0102,
        auth: Some(AuthInfo {
            username: "u".into(),
            revision: 3,
        }),
        command: Command::Put(PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            lease: LeaseId(5),
            prev_kv: true,
            ignore_value: false,
            ignore_lease: false,
        }),
    };
    let want: Vec<u8> = [
        &[1u8][..],                // format version
        &[0, 0, 0, 0, 0, 0, 1, 2], // request id
        &[1, 0, 0, 0, 1, b'u'],    // auth: some, username
        &[0, 0, 0, 0, 0, 0, 0, 3], // auth revision
        &[2],                      // Put
        &[0, 0, 0, 1, b'k', 0, 0, 0, 1, b'v'],
        &[0, 0, 0, 0, 0, 0, 0, 5], // lease
        &[1, 0, 0],                // prev_kv, ignore_value, ignore_lease
    ]
    .concat();
    assert_eq!(codec::encode(&p), want);
    assert_eq!(codec::decode(&want), Ok(p));
}

#[test]
fn unknown_versions_tags_and_deep_nesting_are_rejected() {
    assert_eq!(
        codec::decode(&[]),
        Err(CodecError::UnsupportedVersion(None))
    );
    assert_eq!(
        codec::decode(&[2]),
        Err(CodecError::UnsupportedVersion(Some(2)))
    );
    let mut unknown = vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    unknown.push(99);
    assert_eq!(
        codec::decode(&unknown),
        Err(CodecError::UnknownTag {
            what: "command",
            tag: 99
        })
    );
    let mut t = TxnRequest::default();
    for _ in 0..=MAX_TXN_DEPTH + 1 {
        t = TxnRequest {
            success: vec![RequestOp::Txn(t)],
            ..TxnRequest::default()
        };
    }
    let deep = codec::encode(&Proposal {
        request_id: 1,
        auth: None,
        command: Command::Txn(t),
    });
    assert_eq!(codec::decode(&deep), Err(CodecError::TooDeep));
}
