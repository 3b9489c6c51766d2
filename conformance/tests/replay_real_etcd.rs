//! Every recorded transcript replays without a difference against a fresh real etcd
//! 3.4.23 (those declaring `server_flags` on an etcd launched with them); and a
//! deliberately altered transcript reports exactly the altered steps.

mod etcd_support;

use oxetcd_conformance::launch::Launcher;
use oxetcd_conformance::runner::Runner;
use oxetcd_conformance::suite::Suite;
use oxetcd_conformance::transcript;
use serde_json::Value;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
fn every_transcript_matches_real_etcd() {
    let etcd = etcd_support::RealEtcd::start();
    let all =
        transcript::load_all(&etcd_support::transcripts_dir(), None).expect("load transcripts");
    assert!(
        all.len() >= 60,
        "expected at least 60 transcripts, found {}",
        all.len()
    );
    let steps: usize = all.iter().map(|l| l.transcript.steps.len()).sum();
    assert!(steps >= 400, "expected at least 400 steps, found {steps}");
    let flagged = all
        .iter()
        .filter(|l| !l.transcript.server_flags.is_empty())
        .count();
    assert!(
        flagged >= 5,
        "expected the transcripts that need server flags, found {flagged}"
    );
    let rt = runtime();
    let _guard = rt.enter();
    let launcher = Launcher::new("etcd", &etcd_support::transcripts_dir());
    let mut suite = Suite::new(Some(&etcd.endpoint), Some(launcher)).expect("suite");
    let mut all = all;
    let results = rt.block_on(suite.run_all(&mut all, false, |_| {}));
    assert!(
        results.iter().all(|r| r.skipped.is_none()),
        "with a launcher nothing is skipped"
    );
    let report = oxetcd_conformance::report::text(&results, false);
    assert!(
        results.iter().all(|r| r.ok()),
        "replay against real etcd 3.4.23 differs:\n{report}"
    );
    let deviations: usize = results.iter().map(|r| r.deviations.len()).sum();
    assert_eq!(
        deviations, 4,
        "etcd 3.4.23 should show exactly the four documented deviation steps\n{report}"
    );
}

fn set_path(v: &mut Value, path: &[&str], new: Value) {
    let mut cur = v;
    for p in path {
        cur = match p.parse::<usize>() {
            Ok(i) => &mut cur[i],
            Err(_) => &mut cur[*p],
        };
    }
    assert!(
        !cur.is_null(),
        "path {path:?} does not exist in the transcript"
    );
    *cur = new;
}

#[test]
fn flagged_transcripts_are_skipped_on_a_plain_endpoint_and_say_why() {
    let etcd = etcd_support::RealEtcd::start();
    let mut all = transcript::load_all(
        &etcd_support::transcripts_dir(),
        Some("{watch/fragment,auth/auth_status}"),
    )
    .expect("load transcripts");
    assert_eq!(all.len(), 2);
    let rt = runtime();
    let _guard = rt.enter();
    let mut suite = Suite::new(Some(&etcd.endpoint), None).expect("suite");
    let results = rt.block_on(suite.run_all(&mut all, false, |_| {}));
    let plain = &results[0];
    assert_eq!(plain.name, "auth/auth_status");
    assert!(plain.ok() && plain.skipped.is_none() && plain.passed == plain.steps);
    let flagged = &results[1];
    assert_eq!(flagged.name, "watch/fragment");
    assert_eq!(flagged.passed + flagged.failed, 0);
    let why = flagged.skipped.as_deref().expect("skipped");
    assert!(
        why.contains("needs flags --max-request-bytes=131072"),
        "{why}"
    );
    let report = oxetcd_conformance::report::text(&results, false);
    assert!(report.contains("watch/fragment: needs flags"), "{report}");
    assert!(
        report.trim_end().ends_with("1 passed, 0 failed, 1 skipped"),
        "{report}"
    );
}

#[test]
fn a_server_that_rejects_the_flags_fails_the_transcript_with_its_exit_status() {
    let mut all = transcript::load_all(&etcd_support::transcripts_dir(), Some("watch/fragment"))
        .expect("load transcripts");
    // `false` accepts any arguments and exits 1 at once: the launch must fail, not hang.
    let launcher = Launcher::new("false", &etcd_support::transcripts_dir());
    let rt = runtime();
    let _guard = rt.enter();
    let mut suite = Suite::new(None, Some(launcher)).expect("suite");
    let results = rt.block_on(suite.run_all(&mut all, false, |_| {}));
    let r = &results[0];
    assert!(!r.ok());
    assert_eq!(r.failed, r.steps);
    let f = r.first_failure.as_ref().expect("failure");
    assert!(f.got.contains("exited with exit status: 1"), "{}", f.got);
}

#[test]
fn altered_transcript_reports_exactly_the_changes() {
    let etcd = etcd_support::RealEtcd::start();
    let path = etcd_support::transcripts_dir().join("kv/put_range_basic.yaml");
    let mut t = transcript::load(&path).expect("load");
    // Step 4 (index 3): the Range answer's value "3" becomes "4".
    let resp = t.steps[3]
        .expect
        .response
        .as_mut()
        .expect("step 4 has a response");
    set_path(resp, &["kvs", "0", "value"], Value::String("4".into()));
    // Step 8 (index 7): the empty-key error code InvalidArgument becomes NotFound.
    let err = t.steps[7]
        .expect
        .error
        .as_mut()
        .expect("step 8 is an error");
    assert_eq!(err.code, "InvalidArgument");
    err.code = "NotFound".into();

    let rt = runtime();
    let _guard = rt.enter();
    let runner = Runner::new(&etcd.endpoint).expect("runner");
    let r = rt.block_on(runner.run("kv/put_range_basic", "kv", &mut t, false));
    assert_eq!(r.failed, 2, "exactly the two altered steps fail: {r:?}");
    assert_eq!(r.passed, r.steps - 2);
    let steps: Vec<usize> = r.failures.iter().map(|f| f.step).collect();
    assert_eq!(steps, vec![4, 8]);
    assert_eq!(r.first_failure.as_ref().map(|f| f.step), Some(4));
    let value = &r.failures[0].diffs;
    assert_eq!(value.len(), 1, "{value:?}");
    assert_eq!(value[0].path, ".kvs[0].value");
    assert_eq!(value[0].expected, "\"4\"");
    assert_eq!(value[0].got, "\"3\"");
    let code = &r.failures[1].diffs;
    assert_eq!(code.len(), 1, "{code:?}");
    assert_eq!(code[0].path, "error.code");
    assert_eq!(code[0].expected, "NotFound");
    assert_eq!(code[0].got, "InvalidArgument");
}
