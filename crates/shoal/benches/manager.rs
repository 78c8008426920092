//! What a write costs the manager, printed, never asserted: service creates through [`Control`]
//! on one durable (temp-dir, fsynced) store with the manager's loops running, on a cluster that
//! already holds 0 and 40,000 services (one replica each, placed on three nodes), with 1 and 64
//! concurrent writers. Each run prints writes/s, the process CPU per write, and how many keys
//! the orchestrator and scheduler loops reconciled per write.
//!
//! `cargo bench -p shoal --bench manager` (`-- --stored 0,40000 --writes 400` to change
//! the stored counts and the writes per run).

#![allow(clippy::disallowed_methods)] // measures wall-clock time

use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_manager::{Control, Manager, testing};
use shoal_store::{Op, Proposal};
use shoal_types::clock::SystemClock;
use shoal_types::service::{Service, ServiceSpec};
use shoal_types::task::TaskState;
use shoal_types::{Clock, IdGen, Node};

mod util;
use util::arg;

fn spec(name: String) -> ServiceSpec {
    testing::replicated(name, "busybox:latest", 1)
}

fn node(i: usize) -> Node {
    let mut node = testing::ready_node(format!("bench-node-{i}"), 64_000_000_000, 256 << 30);
    node.description.hostname = format!("bench{i}");
    node
}

/// Seconds of CPU this process has used (user + system, all threads).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name and state.
    (ticks(11) + ticks(12)) / 100.0
}

/// Waits until every stored service has its task placed and the loops have gone quiet: a
/// placement requeues its service for the rebalancer, so the loops go on working for a while
/// after the last task is placed, and that work must not be counted against the next run.
async fn settle(manager: &Manager, services: usize) {
    let store = &manager.store;
    let stats = manager.stats();
    let deadline = Instant::now() + Duration::from_secs(1800);
    let mut last = None;
    loop {
        let view = store.view();
        let placed = view
            .tasks()
            .filter(|t| t.status.state == TaskState::Assigned)
            .count();
        let work = (stats.orchestrator.keys(), stats.scheduler.keys());
        if placed >= services && last == Some(work) {
            return;
        }
        last = Some(work);
        if Instant::now() > deadline {
            eprintln!("gave up waiting: {placed} of {services} tasks placed");
            return;
        }
        // Quiet for a whole second: requeued keys come due within one.
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
}

struct Figures {
    writes_per_sec: f64,
    cpu_ms_per_write: f64,
    orchestrator_keys: f64,
    scheduler_keys: f64,
}

async fn run(
    manager: &Manager,
    control: &Arc<Control>,
    clients: usize,
    writes: usize,
    tag: &str,
) -> Figures {
    let stats = manager.stats().clone();
    let (o0, s0) = (stats.orchestrator.keys(), stats.scheduler.keys());
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let per = writes.div_ceil(clients);
    for c in 0..clients {
        let control = control.clone();
        let tag = tag.to_string();
        set.spawn(async move {
            for i in 0..per {
                if let Err(e) = control.create_service(spec(format!("{tag}-{c}-{i}"))).await {
                    eprintln!("create failed: {e}");
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
    let elapsed = t0.elapsed().as_secs_f64();
    // The loops' work for these writes: let them finish before reading the counters and CPU.
    settle(manager, manager.store.view().services().count()).await;
    let cpu = cpu_seconds() - cpu0;
    let total = (per * clients) as f64;
    Figures {
        writes_per_sec: total / elapsed,
        cpu_ms_per_write: cpu * 1000.0 / total,
        orchestrator_keys: (stats.orchestrator.keys() - o0) as f64 / total,
        scheduler_keys: (stats.scheduler.keys() - s0) as f64 / total,
    }
}

async fn bench(stored: usize, writes: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = testing::leading_store(dir.path()).await;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // Heartbeats an hour apart: these nodes have no agents, and must not be marked down.
    let cluster = testing::agentless_cluster("bench-cluster");
    let mut ops = vec![Op::PutCluster {
        cluster,
        expect_version: None,
    }];
    ops.extend((0..3).map(|i| Op::CreateNode(node(i))));
    testing::seed(&store, clock.now(), ops).await;
    let manager = Manager::start(store.clone(), clock.clone(), IdGen::seeded(7));
    let control = Arc::new(manager.control.clone());

    let t0 = Instant::now();
    let mut ids = IdGen::seeded(11);
    for chunk in 0..stored.div_ceil(500) {
        let ops = (chunk * 500..((chunk + 1) * 500).min(stored))
            .map(|i| {
                Op::CreateService(Service {
                    id: ids.next_id(),
                    spec: spec(format!("stored-{i}")),
                    ..Default::default()
                })
            })
            .collect();
        store
            .propose(Proposal::atomic(clock.now(), ops))
            .await
            .expect("preload");
    }
    settle(&manager, stored).await;
    if stored > 0 {
        println!(
            "stored {stored} services, their tasks placed, in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
    }

    for clients in [1, 64] {
        let f = run(
            &manager,
            &control,
            clients,
            writes,
            &format!("w{stored}-{clients}"),
        )
        .await;
        println!(
            "stored {stored:>6} | clients {clients:>2} | {:>7.1} writes/s | {:>6.2} ms CPU/write | keys/write: orchestrator {:>7.1}, scheduler {:>7.1}",
            f.writes_per_sec, f.cpu_ms_per_write, f.orchestrator_keys, f.scheduler_keys
        );
    }
    manager.stop().await;
}

fn main() {
    let stored: Vec<usize> = arg("--stored", "0,40000".to_string())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let writes: usize = arg("--writes", 400);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "service creates through Control, one durable store, 3 nodes, 1 replica per service, {writes} writes per run"
    );
    for n in stored {
        rt.block_on(bench(n, writes));
    }
}
