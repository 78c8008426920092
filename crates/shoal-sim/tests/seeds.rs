//! A range of seeds, each a whole-cluster run with faults. CI runs the default range; a longer
//! run is `SHOAL_SIM_SEEDS=10000 cargo nextest run -p shoal-sim --release -E 'test(seeds)'`,
//! and `SHOAL_SIM_SEED` moves the start.

use std::time::Instant;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}")),
        Err(_) => default,
    }
}

fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Nextest runs each test in its own process, so the range is split in shards that run in
/// parallel on every core.
const SHARDS: u64 = 4;

fn shard(k: u64) {
    init_logs();
    let first = env_u64("SHOAL_SIM_SEED", 0);
    let count = env_u64("SHOAL_SIM_SEEDS", shoal_sim::CI_SEEDS);
    let cfg = shoal_sim::Config::default();
    let mut failures = Vec::new();
    for seed in (first..first + count).filter(|s| s % SHARDS == k) {
        // Wall time, only to print how long a seed took.
        #[allow(clippy::disallowed_methods)]
        let t = Instant::now();
        match shoal_sim::run(seed, &cfg) {
            Ok(r) => eprintln!(
                "seed {seed}: ok in {:.2?} ({:?} simulated, converged {:?} after the heal, {} leader changes, {} crashes, {} partitions, {} writes ok / {} failed, {} probes acked)",
                t.elapsed(),
                r.sim_time,
                r.converged_after,
                r.leader_changes,
                r.crashes,
                r.partitions,
                r.writes_ok,
                r.writes_failed,
                r.probes_acked
            ),
            Err(v) => {
                eprintln!("{v}");
                failures.push(v.seed);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "failing seeds: {failures:?} (each printed above with its replay command; keep them in tests/regressions.rs once fixed)\n\
         a longer run: SHOAL_SIM_SEEDS=10000 cargo nextest run -p shoal-sim --release -E 'test(seeds)'"
    );
}

#[test]
fn seeds_shard_0() {
    shard(0);
}

#[test]
fn seeds_shard_1() {
    shard(1);
}

#[test]
fn seeds_shard_2() {
    shard(2);
}

#[test]
fn seeds_shard_3() {
    shard(3);
}
