//! End-to-end: the corruption checks of a 3-member cluster started with
//! `--experimental-initial-corrupt-check` and `--experimental-corrupt-check-time`. The
//! members answer `/members/hashkv` on their peer ports with the hash etcdctl's
//! `endpoint hashkv` gives; the leader's periodic check and a restarted member's initial
//! check ask the peers over those ports (a stopped peer shows in etcd's "hash-kv error"
//! line), pass on consistent data and raise no CORRUPT alarm. A fake third member that
//! answers another hash gets the CORRUPT alarm raised (for member 0, as etcd 3.4.23
//! raises it) and the cluster refuses writes.

#![allow(clippy::unwrap_used, reason = "test code")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::cluster::{Member, WAIT, cluster, start_new, wait_leader, wait_local_value, wait_log};

/// `GET /members/hashkv` on `member`'s peer port with a JSON body, as a peer asks it;
/// (status line and headers, body).
fn peer_hashkv(member: &Member, body: &str) -> (String, String) {
    let addr = format!("127.0.0.1:{}", member.peer_port);
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /members/hashkv HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_default();
    (head.to_owned(), body.to_owned())
}

#[test]
fn the_corruption_checks_ask_every_peer_and_pass_on_consistent_data() {
    let dir = tempfile::tempdir().unwrap();
    let (mut members, initial_cluster) = cluster(dir.path());
    for member in &mut members {
        member.extra = [
            "--experimental-initial-corrupt-check",
            "--experimental-corrupt-check-time",
            "1s",
        ]
        .map(String::from)
        .to_vec();
    }
    let leader = start_new(&mut members, &initial_cluster);
    for member in &members {
        wait_log(member, "enabled corruption checking with 1s interval");
        // A fresh data dir has nothing to compare yet: etcd skips the initial check.
        assert!(
            !member.log().contains("starting initial corruption check"),
            "{}",
            member.log()
        );
    }
    for i in 0..5 {
        members[leader].ok(&["put", &format!("key{i}"), &format!("value{i}")]);
    }
    for member in &members {
        wait_local_value(member, "key4", "value4");
    }

    // Every member's peer port answers the same hash, the one Maintenance.HashKV gives.
    let revision = 6;
    let mut answers = Vec::new();
    for member in &members {
        let (head, body) = peer_hashkv(member, &format!("{{\"revision\":{revision}}}"));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{head}"
        );
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["header"]["revision"], revision, "{body}");
        assert_eq!(json["compact_revision"], -1, "{body}");
        let hashkv = member.ok(&["endpoint", "hashkv"]);
        assert_eq!(
            hashkv.trim(),
            format!("{}, {}", member.endpoint(), json["hash"]),
            "{body}"
        );
        answers.push(json["hash"].clone());
        let (head, body) = peer_hashkv(member, &format!("{{\"revision\":{}}}", revision + 100));
        assert!(head.starts_with("HTTP/1.1 400"), "{head}");
        assert_eq!(body, "mvcc: required revision is a future revision\n");
    }
    assert!(
        answers.iter().all(|hash| *hash == answers[0]),
        "{answers:?}"
    );

    // The leader's periodic check asks each peer: a stopped one is reported by URL.
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let (restarted, stopped) = (followers[0], followers[1]);
    let stopped_url = format!("http://127.0.0.1:{}", members[stopped].peer_port);
    members[stopped].kill();
    let unreachable = "hash-kv error";
    let on_stopped = format!("on peer \"{stopped_url}\" with revision");
    let deadline = Instant::now() + WAIT;
    while !members[leader]
        .log()
        .lines()
        .any(|line| line.contains(unreachable) && line.contains(&on_stopped))
    {
        assert!(
            Instant::now() < deadline,
            "the leader never asked {stopped_url}; log:\n{}",
            members[leader].log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_log(&members[leader], "finished peer corruption check");

    // A restarted member runs the initial check against the peers: the live leader
    // answers the same hash, the stopped member is reported and skipped.
    members[restarted].kill();
    members[restarted].start(&initial_cluster, "new");
    members[restarted].wait_ready();
    let log = members[restarted].log();
    assert!(
        log.contains("starting initial corruption check with timeout 7s..."),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|line| line.contains(unreachable) && line.contains(&on_stopped)),
        "{log}"
    );
    assert!(
        log.contains("succeeded on initial corruption checking: no corruption"),
        "{log}"
    );

    // The whole cluster back: the checks go on and raise no alarm.
    members[stopped].start(&initial_cluster, "new");
    members[stopped].wait_ready();
    let all: Vec<usize> = (0..3).collect();
    let leader = wait_leader(&members, &all);
    members[leader].ok(&["put", "after", "restart"]);
    let checks = members[leader]
        .log()
        .matches("finished peer corruption check")
        .count();
    let deadline = Instant::now() + WAIT;
    while members[leader]
        .log()
        .matches("finished peer corruption check")
        .count()
        < checks + 2
    {
        assert!(Instant::now() < deadline, "{}", members[leader].log());
        std::thread::sleep(Duration::from_millis(100));
    }
    for member in &members {
        assert_eq!(member.ok(&["alarm", "list"]).trim(), "", "{}", member.log());
        let log = member.log();
        assert!(!log.contains("from member"), "{log}");
        assert!(!log.contains("mismatched hashes"), "{log}");
    }
}

/// A fake third member: its peer port answers every `/members/hashkv` with `hash` at the
/// revision asked (and closes every other connection, Raft streams included). Runs
/// until the test process ends.
fn fake_member(port: u16, hash: u32) {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                stream
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .unwrap();
                let mut request = Vec::new();
                let mut buffer = [0_u8; 1024];
                for _ in 0..16 {
                    let Ok(read) = stream.read(&mut buffer) else {
                        return;
                    };
                    if read == 0 {
                        return;
                    }
                    request.extend_from_slice(&buffer[..read]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        continue;
                    };
                    if !head.starts_with("GET /members/hashkv ") {
                        return;
                    }
                    let Ok(asked) = serde_json::from_str::<serde_json::Value>(body) else {
                        continue;
                    };
                    let revision = asked["revision"].as_i64().unwrap_or(0);
                    let answer = format!(
                        r#"{{"header":{{"revision":{revision}}},"hash":{hash},"compact_revision":-1}}"#
                    );
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                    return;
                }
            });
        }
    });
}

#[test]
fn a_peer_answering_another_hash_raises_the_corrupt_alarm_as_etcd_does() {
    let dir = tempfile::tempdir().unwrap();
    let (mut members, initial_cluster) = cluster(dir.path());
    // The third member is a fake whose hash never matches (no real hash is 12345 here).
    fake_member(members[2].peer_port, 12345);
    for member in &mut members[..2] {
        member.extra = ["--experimental-corrupt-check-time", "1s"]
            .map(String::from)
            .to_vec();
        member.start(&initial_cluster, "new");
    }
    for member in &members[..2] {
        member.wait_ready();
    }
    let leader = wait_leader(&members, &[0, 1]);
    // The first check may come before this put and refuse it already: either way is
    // fine, the alarm is what is checked.
    let _ = members[leader].etcdctl(&["put", "k", "v"]);

    // etcd raises one alarm for member 0 (the answer's header names none), and the
    // cluster then refuses writes.
    let deadline = Instant::now() + WAIT;
    loop {
        let alarms = members[leader].ok(&["alarm", "list"]);
        if alarms.contains("CORRUPT") {
            assert_eq!(alarms.trim(), "alarm:CORRUPT", "{alarms}");
            break;
        }
        assert!(Instant::now() < deadline, "{}", members[leader].log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = members[leader].log();
    assert!(
        log.contains("expected hash")
            && log
                .lines()
                .any(|line| line.contains("hash 12345 at revision")),
        "{log}"
    );
    assert!(log.contains("alarm CORRUPT raised by peer 0"), "{log}");
    let refused = members[1 - leader].etcdctl(&["put", "k", "w"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("etcdserver: corrupt cluster"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
