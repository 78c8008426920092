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
//! Two runs of a seed give the same [`Report`] and the same trace, in one process and across
//! processes, on a quiet machine or a loaded one (`tests/determinism.rs`, which on a difference
//! prints where the two traces part; [`run_traced`] gives a run's whole trace). What pins it:
//! - Time: one current-thread runtime with paused time, so the clock is tokio's virtual time;
//!   managers and agents read it through the `Clock` seam (`clock.rs`). Nothing on the sim's
//!   path reads the wall clock (clippy's `disallowed_methods`) or works on another thread: the
//!   store runs with its log synced inline (`LogStore::new_inline`, no group-commit thread) on
//!   an in-memory disk, and the process runs no thread but the one driving the runtime, so how
//!   busy the machine is cannot move a timer.
//! - tokio's own RNG, seeded from the seed (`Builder::rng_seed`, which needs
//!   `--cfg tokio_unstable`, set in the workspace's `.cargo/config.toml`; see
//!   [`tokio_rng_pinned`]). tokio draws from it to pick among ready `select!` branches and to
//!   spread a watch channel's waiters over its notifiers, which decides the order they wake in.
//!   Unseeded, that order differed per run: two client writes failing at the same virtual
//!   instant logged their answers in either order.
//! - Iteration order: maps whose order decides what is spawned, woken or written (the agent's
//!   task runners, the dispatcher's sessions, the sim's own tables) are `BTreeMap`s, not
//!   `HashMap`s, whose order differs per instance even within one process.
//! - Randomness in the logic: seeded ID generators for every manager; the behaviour of tasks
//!   from the plan's own seed; distinct one-millisecond-wide election timeouts per manager
//!   (openraft draws its timeouts from its own thread RNG; a window that narrow makes the draw
//!   a constant).
//!
//! Not pinned, and not able to change a run: key pairs and certificate serials come from the
//! system RNG (they are compared, never ordered), and the agents' state directories are
//! temporary directories with random names. A new source of nondeterminism shows up as a
//! failure of `tests/determinism.rs` naming the first trace line where the runs parted.

mod clock;
pub mod converge;
pub mod invariants;
mod net;
pub mod plan;
mod sim;

use std::time::Duration;

/// Whether this build can seed tokio's RNG (it needs `--cfg tokio_unstable`, which the
/// workspace's `.cargo/config.toml` sets; a `RUSTFLAGS` in the environment replaces it). Without
/// it a run is still a valid test of the cluster, but two runs of a seed may differ.
pub fn tokio_rng_pinned() -> bool {
    cfg!(tokio_unstable)
}

/// How many seeds `tests/seeds.rs` runs by default (every regression seed runs besides). Every
/// member's store seals each value it writes; shoal-store is built at opt-level 2 in test builds
/// (the workspace's `Cargo.toml` says why), which keeps that cheap enough for 200. Longer runs:
/// `SHOAL_SIM_SEEDS=10000 cargo nextest run -p shoal-sim --release -E 'test(seeds)'`.
pub const CI_SEEDS: u64 = 200;

/// The shape of a run. The defaults are what CI runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
    run_plan(seed, cfg, generate_plan(seed, cfg))
}

/// The plan a seed makes under a config.
pub fn generate_plan(seed: u64, cfg: &Config) -> plan::Plan {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    plan::generate(&mut rng, cfg)
}

/// A run kept for replay: the seed (for the IDs the run makes), the config and the plan itself,
/// so the case keeps doing what it did when it was found whatever the generator does later.
/// Stored as JSON under `tests/regressions/`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Case {
    pub seed: u64,
    pub config: Config,
    pub plan: plan::Plan,
}

/// Why a stored case cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("case {what}: not a stored simulation case: {source}")]
    Decode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("case {what}: {why}")]
    Invalid { what: String, why: String },
}

impl Case {
    /// The case a seed makes today under `config`.
    pub fn generate(seed: u64, config: &Config) -> Case {
        Case {
            seed,
            config: config.clone(),
            plan: generate_plan(seed, config),
        }
    }

    pub fn to_json(&self) -> String {
        // Plain data with string keys only: encoding cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a stored case; `what` names it in errors (its file).
    pub fn from_json(what: &str, json: &str) -> Result<Case, CaseError> {
        let case: Case = serde_json::from_str(json).map_err(|source| CaseError::Decode {
            what: what.to_string(),
            source,
        })?;
        case.plan
            .check(&case.config)
            .map_err(|why| CaseError::Invalid {
                what: what.to_string(),
                why,
            })?;
        Ok(case)
    }

    pub fn run(&self) -> Result<Report, Violation> {
        run_plan(self.seed, &self.config, self.plan.clone())
    }
}

/// Runs a given plan (a stored one, or the seed's own) to the end.
pub fn run_plan(seed: u64, cfg: &Config, plan: plan::Plan) -> Result<Report, Violation> {
    run_plan_traced(seed, cfg, plan).0
}

/// Runs one seed as [`run`] does, and also hands back the run's whole trace (what
/// `Report::trace_digest` digests): two runs that differ can be compared line by line.
pub fn run_traced(seed: u64, cfg: &Config) -> (Result<Report, Violation>, Vec<String>) {
    run_plan_traced(seed, cfg, generate_plan(seed, cfg))
}

/// [`run_plan`], with the run's whole trace.
pub fn run_plan_traced(
    seed: u64,
    cfg: &Config,
    plan: plan::Plan,
) -> (Result<Report, Violation>, Vec<String>) {
    let setup = |detail: String| Violation {
        seed,
        step: 0,
        invariant: "setup".into(),
        detail,
        trace_tail: Vec::new(),
    };
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_time().start_paused(true);
    // tokio draws from its runtime's RNG to pick among ready `select!` branches and to spread
    // a watch channel's waiters over its notifiers (which decides the order they wake in);
    // unseeded, that RNG differs per runtime, so two runs of one seed in one process would
    // interleave their tasks differently. Seeding it from the run's seed pins both.
    #[cfg(tokio_unstable)]
    builder.rng_seed(tokio::runtime::RngSeed::from_bytes(&seed.to_le_bytes()));
    let rt = builder
        .build()
        .map_err(|e| setup(format!("tokio runtime: {e}")));
    let rt = match rt {
        Ok(rt) => rt,
        Err(v) => return (Err(v), Vec::new()),
    };
    rt.block_on(async {
        if let Err(why) = plan.check(cfg) {
            return (Err(setup(why)), Vec::new());
        }
        let sim = match sim::Sim::new(seed, cfg, plan) {
            Ok(sim) => sim,
            Err(why) => return (Err(setup(why)), Vec::new()),
        };
        let trace = sim.trace_handle();
        let result = sim.run().await;
        let lines = std::mem::take(&mut *trace.lock().unwrap_or_else(|p| p.into_inner()));
        (result, lines)
    })
}

/// The plan a seed makes, one line per action (for reading a failing seed's story).
pub fn describe_plan(seed: u64, cfg: &Config) -> Vec<String> {
    generate_plan(seed, cfg).describe()
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
