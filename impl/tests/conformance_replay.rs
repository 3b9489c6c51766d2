//! The conformance suite (`conformance/transcripts`, recorded from etcd 3.4.23) replayed
//! against a fresh `oxetcd`; transcripts that declare `server_flags` run on an `oxetcd`
//! launched with those flags. Transcripts listed in `conformance_known_differences.txt`
//! are known to differ (each entry says why); every other transcript must match, and a
//! listed transcript that starts to pass must be removed from the list, so the list only
//! shrinks.

#![allow(
    clippy::unwrap_used,
    reason = "integration test: the shared harness unwraps, a failed unwrap is a failed test"
)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use oxetcd_conformance::launch::Launcher;
use oxetcd_conformance::suite::Suite;
use oxetcd_conformance::transcript;

fn known_differences() -> BTreeMap<String, String> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance_known_differences.txt");
    let text = std::fs::read_to_string(&path).expect("known differences list is readable");
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, reason) = line
                .split_once(char::is_whitespace)
                .unwrap_or_else(|| panic!("entry without a reason: {line}"));
            (name.to_owned(), reason.trim().to_owned())
        })
        .collect()
}

#[test]
fn conformance_replay_against_oxetcd_matches_except_known_differences() {
    let known = known_differences();
    let dir = tempfile::tempdir().expect("temp dir");
    let server = common::Server::start_with(dir.path(), &["--enable-v2"]);
    let endpoint = format!("http://{}", server.endpoint());

    let transcripts_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance/transcripts");
    let all = transcript::load_all(&transcripts_dir, None).expect("load transcripts");
    assert!(
        all.len() >= 60,
        "expected the full suite, found {}",
        all.len()
    );
    for name in known.keys() {
        assert!(
            all.iter().any(|l| &l.name == name),
            "known-differences entry {name} names no transcript"
        );
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let _guard = runtime.enter();
    let launcher = Launcher::new(env!("CARGO_BIN_EXE_oxetcd"), &transcripts_dir);
    let mut suite = Suite::new(Some(&endpoint), Some(launcher)).expect("suite");
    let mut all = all;
    let results = runtime.block_on(suite.run_all(&mut all, false, |_| {}));
    assert!(
        results.iter().all(|r| r.skipped.is_none()),
        "with a launcher no transcript is skipped"
    );

    let report = oxetcd_conformance::report::text(&results, false);
    let regressions: Vec<&str> = results
        .iter()
        .filter(|r| !r.ok() && !known.contains_key(&r.name))
        .map(|r| r.name.as_str())
        .collect();
    let now_passing: Vec<&str> = results
        .iter()
        .filter(|r| r.ok() && known.contains_key(&r.name))
        .map(|r| r.name.as_str())
        .collect();
    let passed = results.iter().filter(|r| r.ok()).count();
    eprintln!(
        "oxetcd conformance: {passed} of {} transcripts pass",
        results.len()
    );
    assert!(
        regressions.is_empty(),
        "transcripts that must pass differ: {regressions:?}\n{report}"
    );
    assert!(
        now_passing.is_empty(),
        "these now pass: remove them from conformance_known_differences.txt: {now_passing:?}"
    );
}
