//! Placement throughput benchmark: prints placements per second; it is never a timed test.
//!
//! `cargo run --release -p shoal-scheduler --bin sched_bench [repetitions]`
//!
//! Each scenario places a batch onto a cluster where 90% of the nodes pass three constraints
//! (`node.role==worker`, `node.platform.os==linux`, `node.labels.disk!=hdd`), with a
//! `spread=node.labels.zone` preference over 10 zones and a CPU/memory reservation per task. The
//! figure is the best of N runs of `schedule` alone; building the view is timed separately.

use std::hint::black_box;
use std::time::{Duration, Instant};

use shoal_scheduler::{ClusterView, schedule};
use shoal_types::service::SpreadPreference;
use shoal_types::{Id, Node, NodeRole, NodeState, Resources, Task, TaskSpec, TaskState};

const CPU: i64 = 1_000_000_000;
const GIB: i64 = 1 << 30;

struct Scenario {
    name: &'static str,
    nodes: usize,
    tasks: usize,
    services: usize,
    /// Tasks already running per node before the batch (they count against the nodes).
    running_per_node: usize,
}

const SCENARIOS: [Scenario; 5] = [
    Scenario {
        name: "10k tasks / 100 nodes, 1 service",
        nodes: 100,
        tasks: 10_000,
        services: 1,
        running_per_node: 0,
    },
    Scenario {
        name: "100k tasks / 1000 nodes, 1 service",
        nodes: 1_000,
        tasks: 100_000,
        services: 1,
        running_per_node: 0,
    },
    Scenario {
        name: "100k tasks / 1000 nodes, 100 services",
        nodes: 1_000,
        tasks: 100_000,
        services: 100,
        running_per_node: 0,
    },
    Scenario {
        name: "100k tasks / 1000 nodes, 100 services, 20k running",
        nodes: 1_000,
        tasks: 100_000,
        services: 100,
        running_per_node: 20,
    },
    // Worst case for per-group work: every task its own service.
    Scenario {
        name: "100k tasks / 1000 nodes, 100k services",
        nodes: 1_000,
        tasks: 100_000,
        services: 100_000,
        running_per_node: 0,
    },
];

fn nodes(n: usize) -> Vec<Node> {
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

fn spec() -> TaskSpec {
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

fn run(s: &Scenario, reps: usize) {
    let nodes = nodes(s.nodes);
    let spec = spec();
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
    let rate = placed as f64 / best.as_secs_f64();
    println!(
        "{:<52} placed {placed:>6}/{:<6} schedule {:>8.2} ms  {:>10.0} placements/s   view build {:>6.2} ms",
        s.name,
        s.tasks,
        best.as_secs_f64() * 1e3,
        rate,
        best_view.as_secs_f64() * 1e3,
    );
}

fn main() {
    let reps = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    println!(
        "shoal-scheduler placement throughput (best of {reps}; 3 constraints, spread over 10 zones)"
    );
    for s in &SCENARIOS {
        run(s, reps);
    }
}
