//! Membership: IDs, validation and reconfiguration checks, pinned to etcd 3.4.23.

use oxetcd_spec::membership::{
    Cluster, ClusterId, ClusterVersion, Member, MemberId, MembershipError, cluster_id,
    decide_cluster_version, is_learner_ready, member_id,
};
use oxetcd_spec::v2;

fn urls(u: &[&str]) -> Vec<String> {
    u.iter().map(|s| (*s).to_string()).collect()
}

/// etcd 3.4.23 started as `--name default --initial-cluster default=http://127.0.0.1:23792`
/// (default token `etcd-cluster`) reported member 13458989633860879742 (bac7efc361f1457e)
/// and cluster 7801232528081817440; on peer port 23794, member 17064124208447892753 and
/// cluster 13094354242287368828 (`etcdctl member list -w json`, `GET /v2/members`).
#[test]
fn member_and_cluster_ids_match_etcd_for_single_node_clusters() {
    let m = member_id(&urls(&["http://127.0.0.1:23792"]), "etcd-cluster", None);
    assert_eq!(m, MemberId(13_458_989_633_860_879_742));
    assert_eq!(m.to_string(), "bac7efc361f1457e");
    assert_eq!(cluster_id(&[m]), ClusterId(7_801_232_528_081_817_440));

    let c = Cluster::initial(
        &[("default".to_string(), urls(&["http://127.0.0.1:23794"]))],
        "etcd-cluster",
    );
    assert_eq!(c.member_ids(), vec![MemberId(17_064_124_208_447_892_753)]);
    assert_eq!(c.id(), ClusterId(13_094_354_242_287_368_828));
}

#[test]
fn member_id_sorts_peer_urls_and_depends_on_token_and_time() {
    let a = member_id(&urls(&["http://b:2380", "http://a:2380"]), "t", None);
    let b = member_id(&urls(&["http://a:2380", "http://b:2380"]), "t", None);
    assert_eq!(a, b);
    assert_ne!(
        a,
        member_id(&urls(&["http://a:2380", "http://b:2380"]), "u", None)
    );
    assert_ne!(
        a,
        member_id(&urls(&["http://a:2380", "http://b:2380"]), "t", Some(1))
    );
    // The time is appended as decimal seconds: token "t1" without time equals token "t"
    // at time 1.
    assert_eq!(
        member_id(&urls(&["http://a"]), "t1", None),
        member_id(&urls(&["http://a"]), "t", Some(1))
    );
}

fn three_node() -> (Cluster, v2::Store) {
    let c = Cluster::initial(
        &[
            ("a".to_string(), urls(&["http://a:2380"])),
            ("b".to_string(), urls(&["http://b:2380"])),
            ("c".to_string(), urls(&["http://c:2380"])),
        ],
        "tok",
    );
    (c, v2::Store::new())
}

#[test]
fn add_rejects_existing_peer_url_and_second_learner() {
    let (mut c, mut s) = three_node();
    let dup = Member::new("", &urls(&["http://a:2380"]), "", Some(5), false);
    assert_eq!(c.validate_add(&dup), Err(MembershipError::PeerUrlExists));
    assert_eq!(
        MembershipError::PeerUrlExists.to_string(),
        "etcdserver: Peer URLs already exists"
    );
    let l1 = Member::new("", &urls(&["http://d:2380"]), "", Some(5), true);
    c.add_member(l1.clone(), &mut s, 0).expect("first learner");
    assert_eq!(
        c.add_member(l1.clone(), &mut s, 0),
        Err(MembershipError::IdExists)
    );
    assert_eq!(
        MembershipError::IdExists.to_string(),
        "etcdserver: member ID already exist"
    );
    let l2 = Member::new("", &urls(&["http://e:2380"]), "", Some(6), true);
    assert_eq!(c.validate_add(&l2), Err(MembershipError::TooManyLearners));
    assert_eq!(
        MembershipError::TooManyLearners.to_string(),
        "etcdserver: too many learner members in cluster"
    );
    // Raft attributes written to the v2 store exactly as etcd 3.4 stores them.
    let ev = s
        .get(
            &oxetcd_spec::membership::raft_attributes_key(l1.id),
            false,
            0,
        )
        .expect("stored");
    assert_eq!(
        ev.node.value.as_deref(),
        Some("{\"peerURLs\":[\"http://d:2380\"],\"isLearner\":true}")
    );
}

#[test]
fn promote_remove_update_follow_etcd_checks() {
    let (mut c, mut s) = three_node();
    let voter = c.member_ids()[0];
    assert_eq!(c.validate_promote(voter), Err(MembershipError::NotLearner));
    assert_eq!(
        MembershipError::NotLearner.to_string(),
        "etcdserver: can only promote a learner member"
    );
    assert_eq!(
        c.validate_promote(MemberId(1)),
        Err(MembershipError::NotFound)
    );
    assert_eq!(
        MembershipError::NotFound.to_string(),
        "etcdserver: member not found"
    );
    let other = c.member_ids()[1];
    let other_url = c.member(other).expect("member").peer_urls.clone();
    assert_eq!(
        c.validate_update(voter, &other_url),
        Err(MembershipError::PeerUrlExists)
    );
    let own_url = c.member(voter).expect("member").peer_urls.clone();
    assert_eq!(c.validate_update(voter, &own_url), Ok(()));
    let before = s.index();
    c.remove_member(voter, &mut s, 0).expect("remove");
    assert_eq!(
        s.index(),
        before + 1,
        "nothing under /0/members yet: only the removed record"
    );
    assert!(c.is_removed(voter));
    assert_eq!(
        c.remove_member(voter, &mut s, 0),
        Err(MembershipError::NotFound)
    );
    let again = Member {
        id: voter,
        ..Member::new("", &urls(&["http://z:2380"]), "", None, false)
    };
    assert_eq!(c.validate_add(&again), Err(MembershipError::NotFound));
}

#[test]
fn strict_reconfig_needs_started_quorum() {
    let (mut c, mut s) = three_node();
    // Nobody has published a name yet (names from --initial-cluster count as started
    // here because etcd fills them in from the flag).
    assert_eq!(c.may_add_member(false), Ok(()));
    let ids = c.member_ids();
    for id in &ids {
        c.update_attributes(*id, "", &[], &mut s, 0);
    }
    assert_eq!(
        c.may_add_member(false),
        Err(MembershipError::NotEnoughStarted)
    );
    assert_eq!(c.may_add_member(true), Ok(()));
    assert_eq!(
        c.may_remove_member(ids[0]),
        Err(MembershipError::NotEnoughStarted)
    );
    assert_eq!(
        MembershipError::NotEnoughStarted.to_string(),
        "etcdserver: re-configuration failed due to not enough started members"
    );
    c.update_attributes(ids[0], "a", &urls(&["http://a:2379"]), &mut s, 0);
    c.update_attributes(ids[1], "b", &[], &mut s, 0);
    assert_eq!(
        c.may_add_member(false),
        Err(MembershipError::NotEnoughStarted),
        "2 of 4"
    );
    c.update_attributes(ids[2], "c", &[], &mut s, 0);
    assert_eq!(c.may_add_member(false), Ok(()));
    assert_eq!(c.may_promote_member(), Ok(()));
    assert_eq!(
        c.member(ids[0]).expect("member").attributes_json(),
        "{\"name\":\"a\",\"clientURLs\":[\"http://a:2379\"]}"
    );
}

#[test]
fn one_started_member_may_grow_to_two() {
    let mut s = v2::Store::new();
    let mut c = Cluster::initial(&[("a".to_string(), urls(&["http://a:2380"]))], "t");
    let id = c.member_ids()[0];
    c.update_attributes(id, "a", &[], &mut s, 0);
    assert_eq!(c.may_add_member(false), Ok(()));
}

#[test]
fn learner_readiness_is_ninety_percent_of_leader_match() {
    assert!(is_learner_ready(90, 100));
    assert!(!is_learner_ready(89, 100));
    assert!(is_learner_ready(0, 0));
}

/// A fresh etcd 3.4 single-node cluster has v2 index 3 before the first user write (the
/// first `PUT /v2/keys/foo` got index 4): member added, attributes published, cluster
/// version set, each one store modification.
#[test]
fn bootstrap_writes_take_three_v2_indexes_like_etcd() {
    let mut s = v2::Store::new();
    let mut c = Cluster::default();
    let m = Member::new(
        "default",
        &urls(&["http://127.0.0.1:2380"]),
        "etcd-cluster",
        None,
        false,
    );
    let id = m.id;
    c.add_member(m, &mut s, 0).expect("add");
    c.update_attributes(id, "default", &urls(&["http://127.0.0.1:2379"]), &mut s, 0);
    let v = decide_cluster_version(&[Some(ClusterVersion {
        major: 3,
        minor: 4,
        patch: 23,
    })])
    .expect("decided");
    assert_eq!(v.to_string(), "3.4.0");
    c.set_version(v, &mut s, 0);
    assert_eq!(s.index(), 3);
    let ev = s
        .set(
            &v2::keys_path("/foo"),
            false,
            "bar",
            v2::TtlOptions::PERMANENT,
            0,
        )
        .expect("set")
        .trim_prefix(v2::KEYS_PREFIX);
    assert_eq!(
        ev.to_json(),
        r#"{"action":"set","node":{"key":"/foo","value":"bar","modifiedIndex":4,"createdIndex":4}}"#
    );
    assert_eq!(decide_cluster_version(&[Some(v), None]), None);
}

/// etcd 3.4.23 `etcdctl member add l1 --learner --peer-urls=http://127.0.0.1:23999`, run
/// at Unix second 1795291992, reported member f5493ebe663ad23b: run-time adds hash the
/// peer URLs with an EMPTY cluster token and the request time.
#[test]
fn runtime_member_add_id_uses_empty_token_and_request_second() {
    let urls = urls(&["http://127.0.0.1:23999"]);
    let m = Member::new("", &urls, "", Some(1_795_291_992), true);
    assert_eq!(m.id.to_string(), "f5493ebe663ad23b");
    assert_eq!(
        member_id(&urls, "", Some(1_795_291_992)),
        MemberId(0xf549_3ebe_663a_d23b)
    );
}

/// The same etcdctl session, in order: a second learner, a voter on a taken peer URL,
/// promoting the voter, promoting the unstarted learner, removing/updating an unknown
/// ID, updating to a taken URL, removing the learner twice.
#[test]
fn member_errors_follow_recorded_etcdctl_session() {
    let mut s = v2::Store::new();
    let mut c = Cluster::initial(
        &[("default".to_string(), urls(&["http://127.0.0.1:23798"]))],
        "etcd-cluster",
    );
    let voter = c.member_ids()[0];
    let l1 = Member::new(
        "",
        &urls(&["http://127.0.0.1:23999"]),
        "",
        Some(1_795_291_992),
        true,
    );
    let l1_id = l1.id;
    c.add_member(l1, &mut s, 0).expect("learner added");
    let l2 = Member::new(
        "",
        &urls(&["http://127.0.0.1:23998"]),
        "",
        Some(1_795_291_993),
        true,
    );
    assert_eq!(
        c.validate_add(&l2).map_err(|e| e.to_string()),
        Err("etcdserver: too many learner members in cluster".to_string())
    );
    let l3 = Member::new(
        "",
        &urls(&["http://127.0.0.1:23798"]),
        "",
        Some(1_795_291_993),
        false,
    );
    assert_eq!(c.validate_add(&l3), Err(MembershipError::PeerUrlExists));
    assert_eq!(c.validate_promote(voter), Err(MembershipError::NotLearner));
    assert!(
        !is_learner_ready(0, 10),
        "an unstarted learner is not in sync"
    );
    assert_eq!(
        MembershipError::LearnerNotReady.to_string(),
        "etcdserver: can only promote a learner member which is in sync with leader"
    );
    assert_eq!(
        c.validate_remove(MemberId(0x1234)),
        Err(MembershipError::NotFound)
    );
    assert_eq!(
        c.validate_update(MemberId(0x1234), &urls(&["http://x:1"])),
        Err(MembershipError::NotFound)
    );
    assert_eq!(
        c.validate_update(voter, &urls(&["http://127.0.0.1:23999"])),
        Err(MembershipError::PeerUrlExists)
    );
    c.remove_member(l1_id, &mut s, 0).expect("removed");
    assert_eq!(
        c.remove_member(l1_id, &mut s, 0),
        Err(MembershipError::NotFound)
    );
    let again = Member::new(
        "",
        &urls(&["http://127.0.0.1:23999"]),
        "",
        Some(1_795_291_993),
        true,
    );
    c.validate_add(&again).expect("the URL is free again");
    assert_eq!(
        c.id(),
        cluster_id(&[voter]),
        "the cluster ID does not change on add/remove"
    );
    c.check_invariants();
}

#[test]
fn membership_error_table_snapshot() {
    let all = [
        MembershipError::IdExists,
        MembershipError::PeerUrlExists,
        MembershipError::NotFound,
        MembershipError::NotLearner,
        MembershipError::LearnerNotReady,
        MembershipError::TooManyLearners,
        MembershipError::NotEnoughStarted,
        MembershipError::BadUrls,
    ];
    let table: Vec<String> = all
        .iter()
        .map(|e| format!("{} {e}", e.grpc_code()))
        .collect();
    insta::assert_snapshot!(table.join("\n"));
}

#[test]
fn attributes_keys_are_recognised_like_etcds_regexp() {
    use oxetcd_spec::membership::{attributes_key, member_id_from_attributes_key};
    let id = MemberId(0xbac7_efc3_61f1_457e);
    assert_eq!(attributes_key(id), "/0/members/bac7efc361f1457e/attributes");
    assert_eq!(member_id_from_attributes_key(&attributes_key(id)), Some(id));
    assert_eq!(
        member_id_from_attributes_key("/0/members/ABC/attributes"),
        Some(MemberId(0xabc))
    );
    assert_eq!(
        member_id_from_attributes_key("/0/members/bac7efc361f1457e/raftAttributes"),
        None
    );
    assert_eq!(
        member_id_from_attributes_key("/0/members/12345678901234567/attributes"),
        None
    );
    assert_eq!(
        member_id_from_attributes_key("/1/members/1/attributes"),
        None
    );
}
