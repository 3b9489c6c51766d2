//! End-to-end: the commands the etcd tutorials in the project's seed material show a user
//! typing, replayed with the real `etcdctl` 3.4.23 against the real `oxetcd` binary (one
//! fresh member, `--enable-v2`). `seeds_session.yaml` holds the steps and what etcd 3.4.23
//! printed for each (stdout, stderr, exit status).
//!
//! Outputs are compared after [`normalize`], which rewrites only what differs from run to
//! run of etcd itself: ports, member/cluster/lease ids (hex and decimal), timestamps,
//! durations, client uuids and the column widths of tables (they follow the id's length).
//! A step's `mask` regexes hide what else it prints that differs between two correct
//! servers: the database size (oxetcd's storage is not bbolt), the raft term and index
//! (oxetcd's raft log holds fewer internal entries; see below) and v2 store indexes
//! (etcd's v2 store starts at index 3). The JSON header's `raft_term` is normalised too:
//! a fresh etcd serves at term 2 (its bootstrap entries are at term 1, its first election
//! makes term 2), oxetcd at term 1.
//!
//! Re-record against etcd 3.4.23 (`/usr/bin/etcd`, started by the test itself):
//! `SEEDS_RECORD=1 cargo test -p oxetcd --test seeds`.

#![allow(
    clippy::unwrap_used,
    reason = "integration test: the shared harness unwraps, a failed unwrap is a failed test"
)]

mod common;

use std::path::Path;

use common::session::{Session, Step};
use regex::Regex;

/// Rewrites what varies between two runs of etcd itself (see the module docs).
fn normalize(text: &str, masks: &[String]) -> String {
    let rules: [(&str, &str); 11] = [
        (r"127\.0\.0\.1:\d+", "127.0.0.1:<port>"),
        (r#""ts":("[^"]*"|[0-9.e+]+)"#, r#""ts":<ts>"#),
        (r"client-[0-9a-f-]{36}", "client-<uuid>"),
        (r"\b[0-9a-f]{10,16}\b", "<id>"),
        (r#""(cluster_id|member_id)":\d+"#, r#""$1":<id>"#),
        (r#""raft_term":\d+"#, r#""raft_term":<term>"#),
        (r"took = [0-9.]+[nµm]?s", "took = <duration>"),
        (r#""took":[0-9.e-]+"#, r#""took":<duration>"#),
        (r"\| [0-9.]+[nµm]?s \|", "| <duration> |"),
        (r"-{2,}", "--"),
        (r" {2,}", " "),
    ];
    let rules: Vec<(Regex, &str, bool)> = rules
        .iter()
        .map(|(pattern, replacement)| {
            // Column padding is only collapsed in tables.
            let table_only = *pattern == r"-{2,}" || *pattern == r" {2,}";
            (Regex::new(pattern).unwrap(), *replacement, table_only)
        })
        .collect();
    let masks: Vec<Regex> = masks.iter().map(|m| Regex::new(m).unwrap()).collect();
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let mut line = line.to_owned();
        let table = line.starts_with('+') || line.starts_with('|');
        for (pattern, replacement, table_only) in &rules {
            if *table_only && !table {
                continue;
            }
            line = pattern.replace_all(&line, *replacement).into_owned();
        }
        for mask in &masks {
            line = mask.replace_all(&line, "<*>").into_owned();
        }
        out.push_str(&line);
    }
    out
}

#[test]
fn the_tutorials_commands_print_what_etcd_prints() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/seeds_session.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut steps: Vec<Step> = serde_yaml::from_str(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let normalized = |step: &Step, _: u64, stdout: &str, stderr: &str| {
        (normalize(stdout, &step.mask), normalize(stderr, &step.mask))
    };
    if std::env::var_os("SEEDS_RECORD").is_some() {
        let etcd = common::Server::start_etcd(dir.path(), &["--enable-v2"]);
        Session::new(&etcd.endpoint(), 3).run(&mut steps, true, &normalized);
        let header: String = text
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&path, header + &serde_yaml::to_string(&steps).unwrap()).unwrap();
        return;
    }
    let server = common::Server::start_with(dir.path(), &["--enable-v2"]);
    Session::new(&server.endpoint(), 3).run(&mut steps, false, &normalized);
}
