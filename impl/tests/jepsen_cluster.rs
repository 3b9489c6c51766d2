//! End-to-end: a short seeded Jepsen run (the conformance crate's harness) against a
//! launched 3-member oxetcd cluster whose members are SIGKILLed and restarted on the
//! seed's schedule while four clients read, write and compare-and-set a few keys. The
//! history must be linearizable, with no acknowledged write lost and the cluster
//! healthy again at the end.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::time::Duration;

use oxetcd_conformance::jepsen::{Config, Nemesis, Workload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_killed_and_restarted_keep_a_linearizable_history() {
    // `OXETCD_BIN` runs a given build (a shared target dir may hold another's).
    let bin = std::env::var("OXETCD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_oxetcd").into());
    let mut cfg = Config::launched(&bin, Workload::Register, Nemesis::Kill);
    cfg.duration = Duration::from_secs(12);
    cfg.seed = 1000;
    cfg.check_timeout = Duration::from_secs(60);
    let report = oxetcd_conformance::jepsen::run::run(&cfg)
        .await
        .expect("the run completes");
    println!("{}", report.render());
    assert!(!report.faults.is_empty(), "no member was killed");
    assert!(
        report.ok > 30,
        "too few operations succeeded: {}",
        report.ok
    );
    assert!(report.passed(), "violation:\n{}", report.render());
}
