//! Scheduling and orchestration on a real 3-node cluster (one manager, two workers, each a
//! `shoal daemon` process), driven with the real `docker` CLI: drains that move tasks within the
//! update parallelism, global services following nodes, a failing rolling update rolled back,
//! and rebalancing after a node comes back.
// The tests wait on real processes and measure them in wall-clock time.
#![allow(clippy::disallowed_methods)]

mod common;
#[path = "common/cluster.rs"]
mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use harness::{Cluster, Role, output_text, poll};
use shoal_testkit::{Need, need};

/// Root (namespaces, cgroups) and the docker CLI, which drives the daemon.
fn ready() -> bool {
    need(&[Need::Root, Need::Tool("docker")])
}

const MINUTE: Duration = Duration::from_secs(60);

/// Running tasks of `service` per node number, as the manager sees them.
fn per_node(c: &Cluster, service: &str) -> BTreeMap<usize, usize> {
    let ids: BTreeMap<String, usize> = c.ids().into_iter().collect();
    let mut out = BTreeMap::new();
    for (_, node, _) in c.n(1).running_tasks(service).unwrap_or_default() {
        *out.entry(ids.get(&node).copied().unwrap_or(0)).or_insert(0) += 1;
    }
    out
}

/// `docker service create` through the manager (see [`common::create_args`]), of tasks that stop
/// quickly.
fn create(c: &Cluster, words: &str, rest: &[&str]) {
    let words = format!("--no-resolve-image --stop-grace-period 1s {words}");
    c.n(1).docker_ok(&common::create_args(&words, rest));
}

/// Polls until `done` holds for the placement of `service`, checking on every look that at least
/// `floor` tasks run; returns the fewest seen.
fn watch_moves(
    c: &Cluster,
    service: &str,
    floor: usize,
    what: &str,
    done: impl Fn(&BTreeMap<usize, usize>) -> bool,
) -> usize {
    let start = Instant::now();
    let mut fewest = usize::MAX;
    loop {
        let p = per_node(c, service);
        let running: usize = p.values().sum();
        fewest = fewest.min(running);
        assert!(
            running >= floor,
            "{what}: {running} tasks of {service} running, fewer than {floor}: {p:?}\n{}",
            c.dump()
        );
        if done(&p) {
            return fewest;
        }
        assert!(
            start.elapsed() < MINUTE,
            "{what}: not done after a minute: {p:?}\n{}",
            c.dump()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn drain_moves_tasks_within_the_update_parallelism_and_active_brings_them_back() {
    if !ready() {
        return;
    }
    let c = Cluster::form(1, 2, &[]);
    create(
        &c,
        "--name web --replicas 6 --update-parallelism 1 --update-order start-first",
        &["host", "sleep", "100000"],
    );
    c.wait_running(1, "web", 6, MINUTE);
    let p = per_node(&c, "web");
    assert_eq!(p.values().copied().collect::<Vec<_>>(), [2, 2, 2], "{p:?}");

    // Start-first, one at a time: all six serve throughout, node2 empties.
    c.n(1)
        .docker_ok(&["node", "update", "--availability", "drain", "node2"]);
    watch_moves(&c, "web", 6, "drain", |p| {
        !p.contains_key(&2) && p.values().sum::<usize>() == 6
    });
    let ps = c.n(1).docker_ok(&[
        "service",
        "ps",
        "--format",
        "{{.Node}} {{.DesiredState}} {{.CurrentState}}",
        "web",
    ]);
    assert!(
        ps.lines()
            .filter(|l| l.starts_with("node2 "))
            .all(|l| l.contains("Shutdown")),
        "{ps}"
    );

    // Active again: rebalancing gives node2 its share back, one move at a time, never short.
    c.n(1)
        .docker_ok(&["node", "update", "--availability", "active", "node2"]);
    watch_moves(&c, "web", 6, "rebalance after active", |p| {
        p.values().copied().collect::<Vec<_>>() == [2, 2, 2]
    });
}

#[test]
fn rebalance_after_a_node_returns_and_can_be_turned_off() {
    if !ready() {
        return;
    }
    let mut c = Cluster::form(1, 2, &[]);
    create(&c, "--name web --replicas 6 host sleep 100000", &[]);
    c.wait_running(1, "web", 6, MINUTE);

    // node3 goes away: its tasks run on the others.
    c.n_mut(3).stop();
    watch_moves(&c, "web", 0, "node3 lost", |p| {
        p.values().sum::<usize>() == 6 && !p.contains_key(&3)
    });
    // It comes back: the spread evens out again (stop-first moves are start-first here:
    // rebalancing never takes a task down before its replacement runs).
    c.n_mut(3).restart();
    let fewest = watch_moves(&c, "web", 6, "node3 back", |p| {
        p.values().copied().collect::<Vec<_>>() == [2, 2, 2]
    });
    assert_eq!(fewest, 6);

    // With rebalancing off, a returning node stays empty until new tasks come.
    let out = std::process::Command::new(common::SHOAL)
        .args(["-H", &c.n(1).host(), "swarm", "update", "--rebalance=false"])
        .output()
        .expect("run shoal");
    assert!(out.status.success(), "{}", output_text(&out));
    let labels = c
        .n(1)
        .docker_ok(&["info", "--format", "{{json .Swarm.Cluster.Spec.Labels}}"]);
    assert!(labels.contains("shoal.orchestration.rebalance"), "{labels}");
    // The docker CLI's own `swarm update` round-trips the setting.
    c.n(1)
        .docker_ok(&["swarm", "update", "--task-history-limit", "4"]);
    c.n_mut(3).stop();
    watch_moves(&c, "web", 0, "node3 lost again", |p| {
        p.values().sum::<usize>() == 6 && !p.contains_key(&3)
    });
    c.n_mut(3).restart();
    c.wait_nodes(
        &[(1, Role::Manager), (2, Role::Worker), (3, Role::Worker)],
        &[],
        MINUTE,
    );
    std::thread::sleep(Duration::from_secs(3));
    let p = per_node(&c, "web");
    assert!(!p.contains_key(&3), "rebalancing is off: {p:?}");
    assert_eq!(p.values().sum::<usize>(), 6);
}

#[test]
fn global_service_follows_joins_and_drains() {
    if !ready() {
        return;
    }
    let mut c = Cluster::form(1, 2, &[]);
    create(&c, "--name agent --mode global host sleep 100000", &[]);
    c.wait_running(1, "agent", 3, MINUTE);
    c.add_nodes(1);
    c.join(4, 1, Role::Worker);
    c.wait_running(1, "agent", 4, MINUTE);
    assert!(per_node(&c, "agent").contains_key(&4));
    c.n(1)
        .docker_ok(&["node", "update", "--availability", "drain", "node4"]);
    c.wait_running(1, "agent", 3, MINUTE);
    assert!(!per_node(&c, "agent").contains_key(&4));
    c.n(1)
        .docker_ok(&["node", "update", "--availability", "active", "node4"]);
    c.wait_running(1, "agent", 4, MINUTE);
}

#[test]
fn failing_rolling_update_rolls_back() {
    if !ready() {
        return;
    }
    let c = Cluster::form(1, 2, &[]);
    create(
        &c,
        concat!(
            "--name web --replicas 4 --update-parallelism 1 --update-failure-action rollback",
            " --update-monitor 3s --restart-condition none host sleep 100000"
        ),
        &[],
    );
    let before = c.wait_running(1, "web", 4, MINUTE);

    // The new command exits at once: the first new task fails, and the update rolls back.
    c.n(1)
        .docker_ok(&["service", "update", "--detach", "--args", "false", "web"]);
    let state = poll(
        "the update to roll back",
        MINUTE,
        || {
            format!(
                "{}\n{}\n{}",
                output_text(&c.n(1).docker(&["service", "ps", "--no-trunc", "web"])),
                output_text(&c.n(1).docker(&["service", "inspect", "web"])),
                c.dump()
            )
        },
        || {
            let s = c.n(1).docker_ok(&[
                "service",
                "inspect",
                "--format",
                "{{.UpdateStatus.State}}",
                "web",
            ]);
            match s.trim() {
                "rollback_completed" => Ok(s),
                other => Err(other.to_string()),
            }
        },
    );
    assert_eq!(state.trim(), "rollback_completed");
    let pretty = c.n(1).docker_ok(&["service", "inspect", "--pretty", "web"]);
    assert!(
        pretty.contains("rollback_completed") && pretty.contains("rollback completed"),
        "{pretty}"
    );
    let args = c.n(1).docker_ok(&[
        "service",
        "inspect",
        "--format",
        "{{json .Spec.TaskTemplate.ContainerSpec.Args}}",
        "web",
    ]);
    assert_eq!(args.trim(), r#"["sleep","100000"]"#);
    let after = c.wait_running(1, "web", 4, MINUTE);
    // Parallelism 1: only the first slot was tried; the other three never stopped.
    let kept = before.iter().filter(|t| after.contains(t)).count();
    assert!(kept >= 3, "before {before:?}, after {after:?}");
}

#[test]
fn replicated_job_runs_to_completion_within_max_concurrent() {
    if !ready() {
        return;
    }
    let c = Cluster::form(1, 2, &[]);
    create(
        &c,
        "--name batch --mode replicated-job --replicas 5 --max-concurrent 2 host sh -c",
        &["sleep 0.5"],
    );
    let mut most_running = 0;
    let listing = poll(
        "the job to complete",
        MINUTE,
        || c.dump(),
        || {
            most_running = most_running.max(c.n(1).running_tasks("batch")?.len());
            let ls = c
                .n(1)
                .docker_ok(&["service", "ls", "--format", "{{.Replicas}}"]);
            if ls.contains("5/5 completed") {
                Ok(ls)
            } else {
                Err(ls)
            }
        },
    );
    // As Swarm: once done, nothing is desired any more.
    assert!(listing.contains("0/0 (5/5 completed)"), "{listing}");
    assert!(most_running <= 2, "{most_running} ran at once");
    let ps = c.n(1).docker_ok(&[
        "service",
        "ps",
        "--format",
        "{{.DesiredState}} {{.CurrentState}}",
        "batch",
    ]);
    assert_eq!(
        ps.lines()
            .filter(|l| l.starts_with("Complete Complete"))
            .count(),
        5,
        "{ps}"
    );

    create(&c, "--name everywhere --mode global-job host true", &[]);
    poll(
        "the global job to complete on every node",
        MINUTE,
        || c.dump(),
        || {
            let ps = c.n(1).docker_ok(&[
                "service",
                "ps",
                "--format",
                "{{.Node}} {{.CurrentState}}",
                "everywhere",
            ]);
            let done = ps.lines().filter(|l| l.contains("Complete")).count();
            if done == 3 { Ok(()) } else { Err(ps) }
        },
    );
}
