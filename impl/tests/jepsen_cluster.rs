//! End-to-end: short seeded Jepsen runs (the conformance crate's harness) against a
//! launched 3-member oxetcd cluster while four clients read, write and compare-and-set a
//! few keys. One run isolates members from their peers (the partition proxy cuts both
//! directions), the other kills, restarts and pauses them on the seed's schedule. Each
//! history must be linearizable, with no acknowledged write lost.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::time::Duration;

use oxetcd_conformance::jepsen::{Config, Nemesis, Workload};

/// Runs `nemesis` for 12 s with `seed` and checks the report.
async fn run(nemesis: Nemesis, seed: u64) -> oxetcd_conformance::jepsen::RunReport {
    // `OXETCD_BIN` runs a given build (a shared target dir may hold another's).
    let bin = std::env::var("OXETCD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_oxetcd").into());
    let mut cfg = Config::launched(&bin, Workload::Register, nemesis);
    cfg.duration = Duration::from_secs(12);
    cfg.seed = seed;
    cfg.check_timeout = Duration::from_secs(60);
    let report = oxetcd_conformance::jepsen::run::run(&cfg)
        .await
        .expect("the run completes");
    println!("{}", report.render());
    assert!(!report.faults.is_empty(), "no fault was injected");
    assert!(
        report.ok > 30,
        "too few operations succeeded: {}",
        report.ok
    );
    assert!(report.passed(), "violation:\n{}", report.render());
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_members_keep_a_linearizable_history() {
    // Seed 1001 isolates n2, then n0.
    let report = run(Nemesis::Partition, 1001).await;
    assert!(
        report.faults.iter().all(|f| f.starts_with("Partition n")),
        "{:?}",
        report.faults
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_killed_restarted_and_paused_keep_a_linearizable_history() {
    // Seed 1001 restarts n1, kills n0, pauses n1.
    let report = run(Nemesis::Mixed, 1001).await;
    assert!(
        report.faults.iter().any(|f| f.starts_with("Kill n")),
        "{:?}",
        report.faults
    );
}
