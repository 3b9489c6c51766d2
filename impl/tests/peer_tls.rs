//! Peer TLS end to end: 3-member clusters of real `oxetcd` processes whose peer URLs are
//! `https://`, with certificates from a CA generated at test time (and client certificate
//! auth) or from `--peer-auto-tls`; a member whose certificate another CA signed is not
//! admitted, and a member allowing another CommonName neither admits nor dials the others.

#![allow(
    clippy::unwrap_used,
    reason = "integration test: the shared harness unwraps, a failed unwrap is a failed test"
)]

mod common;

use std::process::Command;

use common::cluster::{Member, cluster_with, start_new, wait_leader, wait_local_value};
use common::pki::Pki;

/// `--peer-*` flags for certificates `pki` signed, with client certificate auth.
fn peer_flags(pki: &Pki) -> Vec<String> {
    vec![
        "--peer-cert-file".into(),
        pki.path("server.pem"),
        "--peer-key-file".into(),
        pki.path("server.key"),
        "--peer-trusted-ca-file".into(),
        pki.path("ca.pem"),
        "--peer-client-cert-auth".into(),
    ]
}

/// A write through a follower is read, linearizably, on every member of `members`.
fn write_is_read_everywhere(members: &[Member], leader: usize, key: &str) {
    let follower = (leader + 1) % members.len();
    assert_eq!(members[follower].ok(&["put", key, "over-tls"]).trim(), "OK");
    for member in members {
        assert_eq!(
            member.ok(&["get", key, "--print-value-only"]).trim(),
            "over-tls",
            "linearizable read on {}",
            member.name
        );
    }
}

/// curl on the peer port of `member`: (success, body).
fn curl_peer(member: &Member, scheme: &str, tls: &[String]) -> (bool, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .args(tls)
        .arg(format!("{scheme}://127.0.0.1:{}/version", member.peer_port))
        .output()
        .expect("run curl");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn members_with_https_peer_urls_and_ca_signed_certificates_elect_and_replicate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), &[]);
    let (mut members, initial_cluster) = cluster_with(dir.path(), "https");
    for member in &mut members {
        member.extra = peer_flags(&pki);
    }
    let leader = start_new(&mut members, &initial_cluster);
    write_is_read_everywhere(&members, leader, "peer-tls");
    let log = members[0].log();
    assert!(
        log.contains(&format!(
            "embed: peerTLS: cert = {}, key = {}, trusted-ca = {}, client-cert-auth = true",
            pki.path("server.pem"),
            pki.path("server.key"),
            pki.path("ca.pem")
        )),
        "{log}"
    );

    // The peer port's HTTP is served over TLS only, to clients with a certificate.
    let (plain, _) = curl_peer(&members[0], "http", &[]);
    assert!(!plain, "plain HTTP answered on an https:// peer port");
    let (anonymous, _) = curl_peer(&members[0], "https", &pki.curl_flags(None));
    assert!(!anonymous, "a client without a certificate was served");
    let (ok, body) = curl_peer(&members[0], "https", &pki.curl_flags(Some("server")));
    assert!(ok && body.contains("\"etcdserver\""), "{body}");
    let log = members[0].log();
    assert!(
        log.contains("embed: rejected connection from \"127.0.0.1:")
            && log.contains("tls: first record does not look like a TLS handshake"),
        "{log}"
    );
}

#[test]
fn members_with_peer_auto_tls_elect_and_replicate() {
    let dir = tempfile::tempdir().unwrap();
    let (mut members, initial_cluster) = cluster_with(dir.path(), "https");
    for member in &mut members {
        member.extra = vec!["--peer-auto-tls".into()];
    }
    let leader = start_new(&mut members, &initial_cluster);
    write_is_read_everywhere(&members, leader, "auto-tls");
    for member in &members {
        let fixtures = member.dir.join("data/fixtures/peer");
        let cert = std::fs::read_to_string(fixtures.join("cert.pem")).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        assert!(fixtures.join("key.pem").is_file());
    }
}

#[test]
fn a_member_with_a_certificate_from_another_ca_is_not_admitted() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), &[]);
    let other_dir = dir.path().join("other-ca");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other = Pki::new(&other_dir, &[]);
    let (mut members, initial_cluster) = cluster_with(dir.path(), "https");
    members[0].extra = peer_flags(&pki);
    members[1].extra = peer_flags(&pki);
    members[2].extra = peer_flags(&other);
    for member in &mut members {
        member.start(&initial_cluster, "new");
    }
    for member in &members {
        member.wait_ready();
    }

    // The two members that trust each other elect a leader and replicate.
    let leader = wait_leader(&members, &[0, 1]);
    let follower = 1 - leader;
    assert_eq!(members[follower].ok(&["put", "k", "v"]).trim(), "OK");
    assert_eq!(
        members[leader]
            .ok(&["get", "k", "--print-value-only"])
            .trim(),
        "v"
    );
    wait_local_value(&members[follower], "k", "v");

    // The third never joins them: it knows no leader and has not got the write.
    // (etcdctl's JSON leaves a zero leader out.)
    let outsider_leader = members[2].status().map_or(0, |(_, leader)| leader);
    assert_eq!(outsider_leader, 0, "log:\n{}", members[2].log());
    let local = members[2].ok(&["get", "k", "--print-value-only", "--consistency=s"]);
    assert_eq!(local.trim(), "");
    // Both sides say why.
    let outsider = members[2].log();
    assert!(
        outsider.contains("TLS handshake failed: invalid peer certificate"),
        "{outsider}"
    );
    let admitted = members[leader].log();
    assert!(
        admitted.contains("embed: rejected connection from \"127.0.0.1:"),
        "{admitted}"
    );
}

/// `--peer-cert-allowed-cn` is checked on both sides, as etcd checks it: a member whose
/// allowed CommonName the others' certificates do not show refuses their connections
/// and does not dial them either (their server certificate fails the same check).
#[test]
fn a_member_allowing_another_cn_neither_admits_nor_dials_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), &[]);
    let (mut members, initial_cluster) = cluster_with(dir.path(), "https");
    for member in &mut members {
        member.extra = peer_flags(&pki);
    }
    members[2]
        .extra
        .extend(["--peer-cert-allowed-cn".to_owned(), "another".to_owned()]);
    for member in &mut members {
        member.start(&initial_cluster, "new");
    }
    for member in &members {
        member.wait_ready();
    }
    let leader = wait_leader(&members, &[0, 1]);
    assert_eq!(members[1 - leader].ok(&["put", "k", "v"]).trim(), "OK");
    wait_local_value(&members[1 - leader], "k", "v");

    // The outsider's dials fail on the others' certificate (CN "server"), with etcd's
    // text; no stream of its own ever comes up.
    let deadline = std::time::Instant::now() + common::cluster::WAIT;
    let dial_refused = |log: &str| {
        log.lines().any(|line| {
            line.contains("failed to dial")
                && line.contains("client certificate authentication failed")
        })
    };
    while !dial_refused(&members[2].log()) {
        assert!(std::time::Instant::now() < deadline, "{}", members[2].log());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let outsider = members[2].log();
    assert!(
        !outsider.contains("established a TCP streaming connection"),
        "{outsider}"
    );
    let outsider_leader = members[2].status().map_or(0, |(_, leader)| leader);
    assert_eq!(outsider_leader, 0, "{outsider}");
}
