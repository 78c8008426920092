//! Placement throughput benchmark: prints placements per second; it is never a timed test.
//!
//! `cargo bench -p shoal --bench scheduler` (`-- --reps N` for the best of N runs, default 5)
//!
//! Each scenario places a batch onto a cluster where 90% of the nodes pass three constraints
//! (`node.role==worker`, `node.platform.os==linux`, `node.labels.disk!=hdd`), with a
//! `spread=node.labels.zone` preference over 10 zones and a CPU/memory reservation per task. The
//! figure is the best of N runs of `schedule` alone; building the view is timed separately.
//!
//! It prints the two headline figures (100k tasks onto 1,000 nodes; 10k onto 100), variants
//! (many services, tasks already running, generic resource reservations), and a growth table of
//! placements per second over node and task counts.

use std::hint::black_box;
use std::time::{Duration, Instant};

use shoal_scheduler::{ClusterView, schedule};
use shoal_types::service::SpreadPreference;
use shoal_types::{
    GenericResource, Id, Node, NodeRole, NodeState, Resources, Task, TaskSpec, TaskState,
};

const CPU: i64 = 1_000_000_000;
const GIB: i64 = 1 << 30;

struct Scenario {
    name: &'static str,
    nodes: usize,
    tasks: usize,
    services: usize,
    /// Tasks already running per node before the batch (they count against the nodes).
    running_per_node: usize,
    generic: Generic,
}

/// What generic resources nodes advertise and each task reserves.
#[derive(Clone, Copy, PartialEq)]
enum Generic {
    None,
    /// Every node advertises this many named GPUs; each task reserves one, so each placement
    /// picks a specific unit.
    NamedGpus(usize),
    /// Every node advertises this many `ssd` units; each task reserves one.
    DiscreteSsd(i64),
}

const fn scenario(name: &'static str, nodes: usize, tasks: usize, services: usize) -> Scenario {
    Scenario {
        name,
        nodes,
        tasks,
        services,
        running_per_node: 0,
        generic: Generic::None,
    }
}

/// The figures the issue asks for, first.
const HEADLINE: [Scenario; 2] = [
    scenario("100k tasks / 1000 nodes, 1 service", 1_000, 100_000, 1),
    scenario("10k tasks / 100 nodes, 1 service", 100, 10_000, 1),
];

const VARIANTS: [Scenario; 7] = [
    scenario("100k tasks / 1000 nodes, 100 services", 1_000, 100_000, 100),
    Scenario {
        running_per_node: 20,
        ..scenario(
            "100k tasks / 1000 nodes, 100 services, 20k running",
            1_000,
            100_000,
            100,
        )
    },
    // Worst case for per-group work: every task its own service.
    scenario(
        "100k tasks / 1000 nodes, 100k services",
        1_000,
        100_000,
        100_000,
    ),
    Scenario {
        generic: Generic::NamedGpus(128),
        ..scenario(
            "100k tasks / 1000 nodes, gpu=1 of 128 named",
            1_000,
            100_000,
            1,
        )
    },
    Scenario {
        generic: Generic::NamedGpus(144),
        running_per_node: 20,
        ..scenario(
            "100k tasks / 1000 nodes, gpu=1 of 144, 20k running",
            1_000,
            100_000,
            100,
        )
    },
    Scenario {
        generic: Generic::DiscreteSsd(1_000),
        ..scenario(
            "100k tasks / 1000 nodes, ssd=1 of 1000 discrete",
            1_000,
            100_000,
            1,
        )
    },
    Scenario {
        generic: Generic::NamedGpus(128),
        ..scenario("10k tasks / 100 nodes, gpu=1 of 128 named", 100, 10_000, 1)
    },
];

const GROWTH_NODES: [usize; 4] = [100, 300, 1_000, 3_000];
const GROWTH_TASKS: [usize; 3] = [10_000, 30_000, 100_000];

fn nodes(n: usize, generic: Generic) -> Vec<Node> {
    (0..n)
        .map(|i| {
            let mut node = Node {
                id: Id::from_raw(format!("node{i:05}")),
                ..Node::default()
            };
            node.status.state = NodeState::Ready;
            node.description.hostname = format!("host{i}");
            node.description.platform.os = "linux".into();
            node.description.platform.arch = "x86_64".into();
            node.description.resources = Resources {
                nano_cpus: 64 * CPU,
                memory_bytes: 256 * GIB,
            };
            node.description.generic_resources = match generic {
                Generic::None => Vec::new(),
                Generic::NamedGpus(k) => (0..k)
                    .map(|g| GenericResource::named("gpu", format!("GPU-{i}-{g}")))
                    .collect(),
                Generic::DiscreteSsd(k) => vec![GenericResource::discrete("ssd", k)],
            };
            // One node in ten is a manager, spread over the zones; the role constraint rejects it.
            node.spec.role = if i % 10 == (i / 10) % 10 {
                NodeRole::Manager
            } else {
                NodeRole::Worker
            };
            node.spec
                .labels
                .insert("zone".into(), format!("zone{}", i % 10));
            node.spec.labels.insert(
                "disk".into(),
                if i % 2 == 0 { "ssd" } else { "nvme" }.into(),
            );
            node
        })
        .collect()
}

fn spec(generic: Generic) -> TaskSpec {
    let mut s = TaskSpec::default();
    s.placement.constraints = vec![
        "node.role==worker".into(),
        "node.platform.os==linux".into(),
        "node.labels.disk!=hdd".into(),
    ];
    s.placement.preferences = vec![SpreadPreference {
        spread: "node.labels.zone".into(),
    }];
    s.resources.reservations = Resources {
        nano_cpus: CPU / 10,
        memory_bytes: GIB / 4,
    };
    s.resources.generic_reservations = match generic {
        Generic::None => Vec::new(),
        Generic::NamedGpus(_) => vec![GenericResource::discrete("gpu", 1)],
        Generic::DiscreteSsd(_) => vec![GenericResource::discrete("ssd", 1)],
    };
    s
}

fn task(i: usize, service: usize, spec: &TaskSpec) -> Task {
    let mut t = Task {
        id: Id::from_raw(format!("task{i:07}")),
        service_id: Id::from_raw(format!("svc{service:04}")),
        service_name: format!("svc{service}"),
        spec: spec.clone(),
        desired_state: TaskState::Running,
        ..Task::default()
    };
    t.status.state = TaskState::Pending;
    t
}

/// Wall-clock timing is what a benchmark measures; logic crates never read the clock.
#[allow(clippy::disallowed_methods)]
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

/// Best times of `reps` runs: (placed, schedule, view build).
fn measure(s: &Scenario, reps: usize) -> (usize, Duration, Duration) {
    let nodes = nodes(s.nodes, s.generic);
    let spec = spec(s.generic);
    let per_service = s.tasks.div_ceil(s.services);
    let pending: Vec<Task> = (0..s.tasks)
        .map(|i| task(i, i / per_service, &spec))
        .collect();
    let mut running = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for k in 0..s.running_per_node {
            let mut t = task(
                s.tasks + n * s.running_per_node + k,
                (n + k) % s.services,
                &spec,
            );
            t.node_id = Some(node.id.clone());
            t.status.state = TaskState::Running;
            if let Generic::NamedGpus(_) = s.generic {
                t.assigned_generic_resources =
                    vec![GenericResource::named("gpu", format!("GPU-{n}-{k}"))];
            }
            running.push(t);
        }
    }
    let refs: Vec<&Task> = pending.iter().collect();

    let mut best_view = Duration::MAX;
    let mut best = Duration::MAX;
    let mut placed = 0;
    for _ in 0..reps.max(1) {
        let (mut view, build) = timed(|| ClusterView::new(&nodes, &running));
        let (plan, took) = timed(|| schedule(&mut view, black_box(&refs)));
        placed = plan.assignments.len();
        best_view = best_view.min(build);
        best = best.min(took);
        black_box(plan);
    }
    (placed, best, best_view)
}

fn run(s: &Scenario, reps: usize) {
    let (placed, best, best_view) = measure(s, reps);
    let rate = placed as f64 / best.as_secs_f64();
    println!(
        "{:<56} placed {placed:>6}/{:<6} schedule {:>8.2} ms  {:>10.0} placements/s   view build {:>6.2} ms",
        s.name,
        s.tasks,
        best.as_secs_f64() * 1e3,
        rate,
        best_view.as_secs_f64() * 1e3,
    );
}

/// Placements per second for every (nodes, tasks) pair, one service, no generic resources.
fn growth(reps: usize) {
    print!("{:>12}", "nodes\\tasks");
    for t in GROWTH_TASKS {
        print!("{:>14}", t);
    }
    println!();
    for n in GROWTH_NODES {
        print!("{n:>12}");
        for t in GROWTH_TASKS {
            let (placed, best, _) = measure(&scenario("", n, t, 1), reps);
            print!("{:>14.0}", placed as f64 / best.as_secs_f64());
        }
        println!();
    }
}

fn main() {
    // `cargo bench` adds its own `--bench` flag: read only ours.
    let args: Vec<String> = std::env::args().collect();
    let reps = args
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| args.get(i + 1))
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    println!(
        "shoal-scheduler placement throughput (best of {reps}; every task: 3 constraints, \
         spread=node.labels.zone over 10 zones, CPU+memory reservation)"
    );
    println!("\n== Headline (goal >= 20,000 placements/s)");
    for s in &HEADLINE {
        run(s, reps);
    }
    println!("\n== Variants");
    for s in &VARIANTS {
        run(s, reps);
    }
    println!("\n== Growth: placements/s by nodes (rows) and tasks per batch (columns), 1 service");
    growth(reps);
}
