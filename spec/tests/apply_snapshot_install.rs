//! `AppState::install_snapshot`: a member that fell behind the leader's compacted log
//! takes the leader's whole applied state (KV history, leases, auth, v2 store,
//! membership, applied index) and then applies the entries after it exactly as the
//! leader did.

use oxetcd_spec::apply::{AppConfig, AppState, AuthCommand, Command, MemberChange, Proposal};
use oxetcd_spec::lease::LeaseId;
use oxetcd_spec::membership::{ClusterId, Member};
use oxetcd_spec::mvcc::{Backend, Bucket, MemBackend, PutRequest, RangeRequest};
use oxetcd_spec::v2::{Request, TtlOptions, keys_path};

fn put(key: &str, value: &str, lease: i64) -> Command {
    Command::Put(PutRequest {
        key: key.into(),
        value: value.into(),
        lease: LeaseId(lease),
        ..PutRequest::default()
    })
}

/// Applies `commands` at the indexes after `state`'s applied index.
fn apply_all(state: &mut AppState, commands: &[Command]) -> Vec<String> {
    commands
        .iter()
        .map(|command| {
            let index = state.applied_index() + 1;
            let proposal = Proposal {
                request_id: index,
                auth: None,
                command: command.clone(),
            };
            let applied = state
                .apply(index, &proposal, 1_000)
                .expect("memory backend")
                .expect("new index");
            format!("{:?} rev={}", applied.result, applied.revision)
        })
        .collect()
}

/// Every stored pair of `state`, as a snapshot file carries them.
fn pairs(state: &AppState) -> Vec<(Bucket, Vec<u8>, Vec<u8>)> {
    Bucket::ALL
        .iter()
        .flat_map(|bucket| {
            state
                .store()
                .backend()
                .scan(*bucket, &[])
                .expect("memory backend")
                .into_iter()
                .map(|(key, value)| (*bucket, key, value))
        })
        .collect()
}

fn all_keys(state: &AppState) -> Vec<(Vec<u8>, Vec<u8>, i64)> {
    let response = state
        .range(&RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..RangeRequest::default()
        })
        .expect("range");
    response
        .kvs
        .into_iter()
        .map(|kv| (kv.key, kv.value, kv.mod_revision))
        .collect()
}

/// A leader's state with something in every part of the applied state.
fn leader_state() -> AppState {
    let mut leader = AppState::new(MemBackend::new(), AppConfig::default());
    leader.promote(0, 1_000);
    let member = Member::new("m1", &["http://127.0.0.1:1".to_owned()], "t", None, false);
    apply_all(
        &mut leader,
        &[
            Command::Membership(MemberChange::Add(member)),
            Command::LeaseGrant {
                id: LeaseId(7),
                ttl_secs: 60,
            },
            put("a", "1", 0),
            put("b", "2", 7),
            put("a", "3", 0),
            Command::Auth(AuthCommand::UserAdd {
                name: "alice".into(),
                password_hash: b"hash".to_vec(),
                no_password: false,
            }),
            Command::V2(Request::Put {
                path: keys_path("/v2key"),
                value: "v2value".into(),
                dir: false,
                prev_exist: None,
                prev_value: String::new(),
                prev_index: 0,
                ttl: TtlOptions::PERMANENT,
            }),
        ],
    );
    leader
}

#[test]
fn an_installed_snapshot_replaces_every_part_of_the_state() {
    let leader = leader_state();
    // A follower that applied something else meanwhile (a key the leader never had).
    let mut follower = AppState::new(MemBackend::new(), AppConfig::default());
    follower.set_cluster_id(ClusterId(42));
    apply_all(&mut follower, &[put("stale", "x", 0), put("a", "old", 0)]);

    follower.install_snapshot(pairs(&leader)).expect("install");

    let reopened = AppState::open(leader.store().backend().clone(), AppConfig::default())
        .expect("reopen leader");
    assert_eq!(follower.applied_index(), leader.applied_index());
    assert_eq!(all_keys(&follower), all_keys(&leader));
    assert!(
        !all_keys(&follower)
            .iter()
            .any(|(key, _, _)| key == b"stale")
    );
    assert_eq!(
        follower.store().current_revision(),
        leader.store().current_revision()
    );
    assert_eq!(follower.lessor(), reopened.lessor());
    assert_eq!(follower.lease_list(), reopened.lease_list());
    assert_eq!(follower.lease_list().len(), 1);
    assert_eq!(follower.auth(), reopened.auth());
    assert!(follower.auth().user("alice").is_some());
    assert_eq!(follower.v2(), reopened.v2());
    assert_eq!(follower.cluster().members().count(), 1);
    // The cluster ID is not replicated: the follower keeps its own.
    assert_eq!(follower.cluster().id(), ClusterId(42));
    // Nothing of the follower's own past is left in the backend.
    for bucket in Bucket::ALL {
        assert_eq!(
            follower.store().backend().scan(bucket, &[]).expect("scan"),
            leader.store().backend().scan(bucket, &[]).expect("scan"),
            "bucket {bucket:?}"
        );
    }
}

#[test]
fn entries_after_an_installed_snapshot_apply_as_on_the_leader() {
    let mut leader = leader_state();
    let mut follower = AppState::new(MemBackend::new(), AppConfig::default());
    follower.install_snapshot(pairs(&leader)).expect("install");
    follower.promote(0, 1_000);
    let next = [
        put("c", "4", 7),
        Command::LeaseRevoke { id: LeaseId(7) },
        put("a", "5", 0),
    ];
    assert_eq!(
        apply_all(&mut follower, &next),
        apply_all(&mut leader, &next)
    );
    assert_eq!(all_keys(&follower), all_keys(&leader));
    assert_eq!(follower.applied_index(), leader.applied_index());
}

#[test]
fn an_already_applied_index_is_skipped_after_install() {
    let leader = leader_state();
    let mut follower = AppState::new(MemBackend::new(), AppConfig::default());
    follower.install_snapshot(pairs(&leader)).expect("install");
    let proposal = Proposal {
        request_id: 1,
        auth: None,
        command: put("late", "x", 0),
    };
    let index = leader.applied_index();
    assert!(
        follower
            .apply(index, &proposal, 0)
            .expect("memory backend")
            .is_none(),
        "entry {index} is covered by the snapshot"
    );
}
