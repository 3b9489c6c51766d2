//! Jepsen runs against real etcd 3.4.23: a healthy cluster under faults shows no
//! violation; clusters that are wrong on purpose are caught (stale reads from a
//! partitioned member checked as linearizable; a proxy that drops acknowledged puts).

use std::time::Duration;

use oxetcd_conformance::jepsen::check::Verdict;
use oxetcd_conformance::jepsen::{Config, Nemesis, RunReport, Workload};

fn etcd() -> String {
    let ok = std::process::Command::new("etcd")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "the reference etcd is not installed: run `sh conformance/ensure-etcd.sh` (make test does)"
    );
    "etcd".to_owned()
}

async fn run(cfg: Config) -> RunReport {
    let report = oxetcd_conformance::jepsen::run::run(&cfg)
        .await
        .expect("run completes");
    println!(
        "{:?} / {:?}\n{}",
        cfg.workload,
        cfg.nemesis,
        report.render()
    );
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_under_mixed_faults_with_watchers_shows_no_violation() {
    let mut cfg = Config::launched(&etcd(), Workload::Watch, Nemesis::Mixed);
    cfg.duration = Duration::from_secs(12);
    cfg.seed = 7;
    let r = run(cfg).await;
    assert!(!r.faults.is_empty(), "no fault was injected");
    assert!(r.ok > 50, "too few operations succeeded: {}", r.ok);
    assert!(
        r.watch.as_ref().is_some_and(|w| w.events > 0),
        "watchers saw nothing"
    );
    assert!(r.passed(), "violation on real etcd:\n{}", r.render());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_leases_under_kill_and_restart_show_no_violation() {
    let mut cfg = Config::launched(&etcd(), Workload::Lease, Nemesis::Kill);
    cfg.duration = Duration::from_secs(8);
    cfg.clients = 3;
    cfg.seed = 3;
    let r = run(cfg).await;
    assert!(!r.faults.is_empty(), "no fault was injected");
    assert!(r.ok > 30, "too few operations succeeded: {}", r.ok);
    assert!(r.passed(), "violation on real etcd:\n{}", r.render());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serializable_reads_from_a_partitioned_member_are_flagged_when_checked_as_linearizable() {
    let mut cfg = Config::launched(&etcd(), Workload::Register, Nemesis::Partition);
    cfg.duration = Duration::from_secs(10);
    // Three clients per member and a short request timeout, so the clients of the
    // isolated member spend little time blocked in writes and read often.
    cfg.clients = 9;
    cfg.op_timeout = Duration::from_millis(300);
    cfg.seed = 11;
    cfg.serializable_as_linearizable = true;
    let dir = tempfile::tempdir().expect("temp dir");
    cfg.out_dir = Some(dir.path().to_path_buf());
    let r = run(cfg).await;
    assert!(!r.faults.is_empty(), "no partition was injected");
    assert_eq!(
        r.lin.verdict,
        Verdict::Violation,
        "stale reads were not caught:\n{}",
        r.render()
    );
    assert!(!r.lin.excerpt.is_empty(), "no excerpt");
    assert!(
        r.lin.html.as_ref().is_some_and(|p| p.exists()),
        "no visualisation"
    );
    assert!(
        r.lost.is_empty(),
        "etcd itself lost writes:\n{}",
        r.render()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_acknowledges_puts_without_forwarding_them_is_caught_as_lost_writes() {
    let mut cfg = Config::launched(&etcd(), Workload::Register, Nemesis::None);
    cfg.nodes = 1;
    cfg.clients = 2;
    cfg.duration = Duration::from_secs(4);
    cfg.lie_every = Some(10);
    let r = run(cfg).await;
    assert!(
        !r.lost.is_empty(),
        "dropped puts were not reported lost:\n{}",
        r.render()
    );
    assert!(!r.passed());
}
