//! Every recorded transcript replays without a difference against a fresh real etcd
//! 3.4.23; and a deliberately altered transcript reports exactly the altered steps.

mod etcd_support;

use oxetcd_conformance::runner::Runner;
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
    let rt = runtime();
    let _guard = rt.enter();
    let runner = Runner::new(&etcd.endpoint).expect("runner");
    let results = rt.block_on(async {
        let mut out = Vec::new();
        for mut l in all {
            out.push(runner.run(&l.name, &l.area, &mut l.transcript, false).await);
        }
        out
    });
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
