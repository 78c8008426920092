//! shoal-sim: a whole shoal cluster in one process, driven by one seed.
//!
//! [`run`] builds `managers` manager nodes (each a real [`shoal_store::Store`] on openraft and
//! redb, with the manager's loops and dispatcher, and an agent) and `workers` worker nodes (an
//! agent each), all on an in-memory network, a clock derived from tokio's virtual time and the
//! fake runtime driver. The seed decides a plan (see `plan`): services created, scaled, updated,
//! nodes drained and paused, probe writes whose acknowledgement is recorded; and faults: node
//! crashes (daemon only, or the whole machine with its runtime), leader kills, partitions between
//! pairs of nodes and whole-node isolation, slow links, tasks exiting non-zero. After every step
//! every invariant in [`invariants`] is checked. Then every fault is healed and the cluster must
//! converge within `Config::converge_within` and stay converged for `Config::stable_for`.
//!
//! A failure is a [`Violation`] naming the invariant, the step and the seed, with the last lines
//! of the run's trace and the command that replays it.
//!
//! # Running
//! - CI: `cargo nextest run -p shoal-sim` runs the regression seeds and a range of seeds
//!   (`tests/seeds.rs`, [`CI_SEEDS`] by default).
//! - A longer run is one command:
//!   `SHOAL_SIM_SEEDS=10000 cargo nextest run -p shoal-sim --release -E 'test(seeds)'`;
//!   `SHOAL_SIM_SEED=<first>` moves the range. `RUST_LOG=debug` shows the cluster's own logs.
//! - Replay one seed: `SHOAL_SIM_SEED=<seed> SHOAL_SIM_SEEDS=1 cargo nextest run -p shoal-sim -E 'test(seeds)'`.
//!
//! # Determinism
//! The plan is a pure function of the seed and the config (its digest is in the [`Report`]).
//! The run uses one current-thread runtime with paused time (so the clock is tokio's virtual
//! time, the same on every run), seeded ID generators for every manager, an in-memory disk
//! instead of files, and distinct one-millisecond-wide election timeouts per manager (openraft
//! draws its timeouts from its own thread RNG; a window that narrow makes the draw a constant).
//! Two runs of a seed give the same [`Report`], trace digest included, in one process and
//! across processes (`tests/determinism.rs`). What is not pinned by construction: tokio's
//! `select!` picks among ready branches with its own RNG, and `HashMap` iteration in the stages
//! uses per-process keys; neither has been seen to change a run's trace, but a seed whose
//! replay differs should be read with that in mind.

mod clock;
pub mod converge;
pub mod invariants;
mod net;
pub mod plan;
mod sim;

use std::time::Duration;

/// How many seeds `tests/seeds.rs` runs by default.
pub const CI_SEEDS: u64 = 200;

/// The shape of a run. The defaults are what CI runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub managers: usize,
    pub workers: usize,
    /// Steps during which the plan injects requests and faults.
    pub fault_steps: u32,
    /// Simulated time per step; invariants are checked after each.
    pub step: Duration,
    /// Whether to inject faults at all (a fault-free run checks the happy path).
    pub faults: bool,
    /// The chance per step of each kind of fault.
    pub fault_rate: f64,
    pub max_services: usize,
    /// After the heal, the cluster must converge within this much simulated time...
    pub converge_within: Duration,
    /// ... and then stay converged this long.
    pub stable_for: Duration,
    /// Raft log entries between snapshots (small, so snapshots and their installs happen).
    pub snapshot_interval: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            managers: 3,
            workers: 3,
            fault_steps: 100,
            step: Duration::from_millis(500),
            faults: true,
            fault_rate: 0.06,
            max_services: 5,
            converge_within: Duration::from_secs(120),
            stable_for: Duration::from_secs(10),
            snapshot_interval: 200,
        }
    }
}

/// What a passing run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub seed: u64,
    pub steps: u64,
    pub sim_time: Duration,
    /// From the heal to convergence.
    pub converged_after: Duration,
    pub leader_changes: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub writes_ok: u64,
    pub writes_failed: u64,
    pub probes_acked: u64,
    /// The most tasks any manager's store held at once.
    pub tasks_seen: u64,
    /// Processes the runtimes ran at the end (all of them wanted, by convergence).
    pub running_at_end: u64,
    /// Digest of the plan: equal for equal (seed, config).
    pub plan_digest: u64,
    /// Digest of the run's trace (faults applied, client answers, leader changes).
    pub trace_digest: u64,
}

/// An invariant that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub seed: u64,
    pub step: u64,
    pub invariant: String,
    pub detail: String,
    /// The last lines of the run's trace.
    pub trace_tail: Vec<String>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "seed {} step {}: invariant \"{}\" violated: {}",
            self.seed, self.step, self.invariant, self.detail
        )?;
        writeln!(
            f,
            "replay: SHOAL_SIM_SEED={} SHOAL_SIM_SEEDS=1 cargo nextest run -p shoal-sim -E 'test(seeds)' --no-capture",
            self.seed
        )?;
        writeln!(f, "last trace lines:")?;
        for l in &self.trace_tail {
            writeln!(f, "  {l}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violation {}

/// Runs one seed to the end: the plan, the heal, convergence.
pub fn run(seed: u64, cfg: &Config) -> Result<Report, Violation> {
    let setup = |detail: String| Violation {
        seed,
        step: 0,
        invariant: "setup".into(),
        detail,
        trace_tail: Vec::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| setup(format!("tokio runtime: {e}")))?;
    rt.block_on(async {
        let sim = sim::Sim::new(seed, cfg).map_err(setup)?;
        sim.run().await
    })
}

/// The plan a seed makes, one line per action (for reading a failing seed's story).
pub fn describe_plan(seed: u64, cfg: &Config) -> Vec<String> {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    plan::generate(&mut rng, cfg).describe()
}

/// A stable digest of lines (FNV-1a: the same in every process and on every platform).
pub(crate) fn digest<S: AsRef<str>>(lines: &[S]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for l in lines {
        for b in l.as_ref().bytes().chain([b'\n']) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}
