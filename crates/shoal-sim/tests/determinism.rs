//! The same seed makes the same plan and the same run (the same trace of faults, client answers
//! and leader changes, the same report), and a fault-free run converges to the workload it
//! asked for.

#[test]
fn the_plan_is_a_function_of_the_seed() {
    assert!(
        shoal_sim::tokio_rng_pinned(),
        "built without --cfg tokio_unstable (a RUSTFLAGS in the environment replaces the \
         workspace's .cargo/config.toml): tokio's RNG is not seeded, so runs may differ; \
         add --cfg tokio_unstable to RUSTFLAGS"
    );
    let cfg = shoal_sim::Config::default();
    assert_eq!(
        shoal_sim::describe_plan(42, &cfg),
        shoal_sim::describe_plan(42, &cfg)
    );
    assert_ne!(
        shoal_sim::describe_plan(42, &cfg),
        shoal_sim::describe_plan(43, &cfg)
    );
    let (a, trace_a) = shoal_sim::run_traced(42, &cfg);
    let (b, trace_b) = shoal_sim::run_traced(42, &cfg);
    let a = a.unwrap_or_else(|v| panic!("{v}"));
    let b = b.unwrap_or_else(|v| panic!("{v}"));
    assert_eq!(a.plan_digest, b.plan_digest);
    // Paused time on one thread, seeded IDs, one-millisecond election windows: nothing is left
    // to chance, so the whole run repeats. If this fails, something reads real time, an
    // unseeded RNG or a hash order, or works off the runtime's thread; the crate docs list the
    // seams. The message shows where the two runs parted.
    assert!(
        a == b && trace_a == trace_b,
        "seed 42 ran differently twice:\n  first:  {a:?}\n  second: {b:?}\n{}",
        divergence(&trace_a, &trace_b)
    );
}

/// Where two traces part: the lines before, then each run's lines from there on.
fn divergence(a: &[String], b: &[String]) -> String {
    let at = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let from = at.saturating_sub(5);
    let mut out = format!(
        "the traces ({} and {} lines) part at line {}:\n",
        a.len(),
        b.len(),
        at + 1
    );
    for l in &a[from..at] {
        out += &format!("    {l}\n");
    }
    for (name, t) in [("first", a), ("second", b)] {
        out += &format!("  {name} run:\n");
        for l in t.iter().skip(at).take(8) {
            out += &format!("  > {l}\n");
        }
    }
    out
}

#[test]
fn a_fault_free_run_converges_with_its_workload_running() {
    let cfg = shoal_sim::Config {
        faults: false,
        ..Default::default()
    };
    for seed in 0..3 {
        let r = shoal_sim::run(seed, &cfg).unwrap_or_else(|v| panic!("{v}"));
        assert!(r.running_at_end > 0, "seed {seed}: nothing runs: {r:?}");
        assert_eq!(r.crashes + r.partitions, 0, "{r:?}");
        assert!(r.probes_acked > 0, "{r:?}");
    }
}
