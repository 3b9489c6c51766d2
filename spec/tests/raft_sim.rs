//! Seeded fault simulation of whole clusters: random ticks, deliveries in random order,
//! drops, duplicates, partitions, crash-restart (including crashes between taking a Ready
//! and persisting it) and log compaction. After every step the Raft safety properties hold;
//! once the network heals a leader is elected and a proposal is applied everywhere.
//!
//! Replay a failing seed: `RAFT_SIM_SEED=<seed> cargo test -p oxetcd-spec --test raft_sim
//! replay_seed_from_env -- --nocapture` (nodes, faults and bugs derive from the seed).

use oxetcd_spec::raft::InjectedBugs;
use oxetcd_spec::raft::sim::{Cluster, SimConfig};
use quickcheck::{QuickCheck, TestResult};

const CHAOS_STEPS: u32 = 2_000;

fn sim_config(seed: u64) -> SimConfig {
    let mut cfg = SimConfig::new(3 + seed % 3, seed);
    cfg.drop_per_mille = [0, 50, 150][(seed / 3 % 3) as usize];
    cfg.duplicate_per_mille = [0, 30][(seed / 9 % 2) as usize];
    cfg.pre_vote = (seed / 18).is_multiple_of(2);
    cfg.check_quorum = !(seed / 36).is_multiple_of(3);
    cfg.membership_changes = (seed / 108).is_multiple_of(2);
    cfg
}

fn run(seed: u64, bugs: InjectedBugs) -> Result<(), String> {
    let mut cfg = sim_config(seed);
    cfg.bugs = bugs;
    let mut cluster = Cluster::new(cfg);
    cluster.run_chaos(CHAOS_STEPS)?;
    cluster.heal_and_check_progress()
}

fn check_seed(seed: u64) -> TestResult {
    match run(seed, InjectedBugs::default()) {
        Ok(()) => TestResult::passed(),
        Err(e) => TestResult::error(format!(
            "seed {seed} failed: {e}\nreplay: RAFT_SIM_SEED={seed} cargo test -p oxetcd-spec --test raft_sim replay_seed_from_env"
        )),
    }
}

#[test]
fn random_faults_never_break_safety_and_healing_restores_progress() {
    QuickCheck::new()
        .tests(20)
        .quickcheck(check_seed as fn(u64) -> TestResult);
}

#[test]
fn fixed_seeds_cover_every_cluster_size_and_fault_mix() {
    for seed in (0..54).chain(108..120) {
        if let Err(e) = run(seed, InjectedBugs::default()) {
            panic!("seed {seed}: {e}");
        }
    }
}

#[test]
fn replay_seed_from_env() {
    let Ok(seed) = std::env::var("RAFT_SIM_SEED") else {
        return;
    };
    let seed: u64 = seed.parse().expect("RAFT_SIM_SEED is a u64");
    let mut cfg = sim_config(seed);
    cfg.bugs = InjectedBugs::default();
    let mut cluster = Cluster::new(cfg);
    cluster.record = true;
    let result = cluster
        .run_chaos(CHAOS_STEPS)
        .and_then(|()| cluster.heal_and_check_progress());
    for line in cluster.transcript.iter().rev().take(200).rev() {
        println!("{line}");
    }
    let count = |needle: &str| {
        cluster
            .transcript
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    };
    println!(
        "summary: {} lines, {} leaders, {} snapshots, {} conf changes proposed, {} applied, {} crashes",
        cluster.transcript.len(),
        count("soft: Leader"),
        count("Snap term"),
        count("propose conf change"),
        count("add-learner") + count("add-node") + count("remove-node"),
        count("crash"),
    );
    result.expect("seed passes");
}

#[test]
fn same_seed_replays_bit_for_bit() {
    let mut a = Cluster::new(sim_config(5));
    let mut b = Cluster::new(sim_config(5));
    a.record = true;
    b.record = true;
    a.run_chaos(500).expect("safe");
    b.run_chaos(500).expect("safe");
    assert_eq!(a.transcript, b.transcript);
    assert_eq!(a, b);
    assert!(a.transcript.len() > 100, "the run did something");
}

/// The first seed in `0..limit` whose run finds a violation with `bugs` switched on.
fn first_failing_seed(bugs: InjectedBugs, limit: u64) -> Option<(u64, String)> {
    (0..limit).find_map(|seed| run(seed, bugs).err().map(|e| (seed, e)))
}

#[test]
fn simulation_catches_double_voting() {
    let bugs = InjectedBugs {
        grant_two_votes_in_one_term: true,
        ..InjectedBugs::default()
    };
    let found = first_failing_seed(bugs, 100);
    assert!(found.is_some(), "double voting went unnoticed");
    println!("{found:?}");
}
