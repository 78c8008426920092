//! shoal as a real multi-node cluster: several `shoal daemon` processes on one machine (each its
//! own data dir, cgroup parent, hostname and port on 127.0.0.1), formed and driven with the real
//! `docker` CLI, crashed with `kill -9`, and probed over mutual TLS with the `shoal-rpc` and
//! `shoal-pki` crates. See `common/cluster.rs` for the harness.
//!
//! Here: forming clusters and changing roles. Crashes, quorum and recovery are in
//! `cluster/failover.rs`; mutual TLS, join tokens and certificates in `cluster/security.rs`.
// The tests wait on real processes and measure them in wall-clock time.
#![allow(clippy::disallowed_methods)]

mod common;
#[path = "common/cluster.rs"]
mod harness;

#[path = "cluster/failover.rs"]
mod failover;
#[path = "cluster/security.rs"]
mod security;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use harness::{Cluster, DockerClient, Role, output_text, poll};
use serde_json::Value;
use shoal_testkit::{Need, need};

use Role::{Manager as M, Worker as W};

/// Root (namespaces, cgroups) and the docker CLI, which drives the daemon.
fn ready() -> bool {
    need(&[Need::Root, Need::Tool("docker")])
}

const MINUTE: Duration = Duration::from_secs(60);

/// `docker service create` of `replicas` long-running host tasks that stop quickly.
fn create_service(c: &Cluster, via: usize, name: &str, replicas: usize) {
    let words = format!("--no-resolve-image --name {name} --replicas {replicas}");
    let rest = ["--stop-grace-period", "1s", "host", "sleep", "100000"];
    c.n(via).docker_ok(&common::create_args(&words, &rest));
}

/// Node number of every running task of `service`, as manager `via` sees them.
fn placement(c: &Cluster, via: usize, service: &str) -> BTreeMap<String, usize> {
    let ids: BTreeMap<String, usize> = c.ids().into_iter().collect();
    c.n(via)
        .running_tasks(service)
        .unwrap_or_default()
        .into_iter()
        .map(|(task, node, _)| (task, ids.get(&node).copied().unwrap_or(0)))
        .collect()
}

/// The running tasks of `service` are exactly `before` (same task IDs: nothing was restarted or
/// moved), as manager `via` sees them.
fn assert_same_tasks(c: &Cluster, via: usize, service: &str, before: &[(String, String, u64)]) {
    let now = c.n(via).running_tasks(service).unwrap_or_default();
    assert_eq!(now, before, "the tasks of {service} changed\n{}", c.dump());
}

fn service_labels(v: &Value) -> BTreeMap<String, String> {
    v["Spec"]["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until node `i` answers as a manager (`ControlAvailable`), or as a worker.
fn wait_control(c: &Cluster, i: usize, manager: bool) {
    poll(
        &format!(
            "node{i} to answer as a {}",
            if manager { "manager" } else { "worker" }
        ),
        MINUTE,
        || c.dump(),
        || {
            let s = c.n(i).swarm_info()?;
            if s["ControlAvailable"] == manager && s["LocalNodeState"] == "active" {
                Ok(())
            } else {
                Err(format!("{s}"))
            }
        },
    );
}

/// `service update --detach --label-add KEY=VAL` through `cli`: whether it was acknowledged.
fn label_update(cli: &DockerClient, service: &str, key: &str, val: &str) -> Result<(), String> {
    let out = cli.run(&[
        "service",
        "update",
        "--detach",
        "--label-add",
        &format!("{key}={val}"),
        service,
    ]);
    if out.status.success() {
        Ok(())
    } else {
        Err(output_text(&out))
    }
}

/// A node's credentials as its daemon saved them.
fn credentials(c: &Cluster, i: usize) -> shoal_pki::Credentials {
    let path = c.n(i).credentials_path();
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

#[test]
fn three_managers_two_workers_spread_and_survive_promote_demote_and_rm() {
    if !ready() {
        return;
    }
    let mut c = Cluster::form(3, 2, &[]);

    // What a user sees: one Leader, two Reachable managers, everyone Ready, from every manager.
    for m in 1..=3 {
        let ls = c.n(m).docker_ok(&[
            "node",
            "ls",
            "--format",
            "{{.Hostname}} {{.Status}} {{.ManagerStatus}}",
        ]);
        let mut rows: Vec<&str> = ls.lines().map(str::trim).collect();
        rows.sort();
        assert_eq!(rows.len(), 5, "node ls on node{m}:\n{ls}");
        assert_eq!(
            rows.iter().filter(|r| r.ends_with("Leader")).count(),
            1,
            "{ls}"
        );
        assert_eq!(
            rows.iter().filter(|r| r.ends_with("Reachable")).count(),
            2,
            "{ls}"
        );
        assert!(rows.iter().all(|r| r.contains(" Ready")), "{ls}");
        assert!(
            rows.iter()
                .filter(|r| r.starts_with("node4") || r.starts_with("node5"))
                .all(|r| r.ends_with("Ready")),
            "workers have no manager status:\n{ls}"
        );
    }

    // A replicated service, created through a follower, spreads over all five nodes.
    let leader = c.wait_leader(MINUTE);
    let follower = (1..=3).find(|m| *m != leader).unwrap_or(2);
    create_service(&c, follower, "web", 5);
    let tasks = c.wait_running(leader, "web", 5, MINUTE);
    let spread: BTreeSet<usize> = placement(&c, leader, "web").into_values().collect();
    assert_eq!(
        spread,
        (1..=5).collect(),
        "5 replicas on 5 nodes should take one node each\n{}",
        c.dump()
    );

    // Promote a worker: it becomes a reachable Raft member, answers as a manager, and no task
    // moves or restarts.
    let out = c.n(1).docker_ok(&["node", "promote", "node4"]);
    assert!(out.contains("promoted to a manager"), "{out}");
    c.wait_nodes(&[(1, M), (2, M), (3, M), (4, M), (5, W)], &[], MINUTE);
    wait_control(&c, 4, true);
    assert_same_tasks(&c, 4, "web", &tasks);

    // Demote a manager: it leaves the Raft group, answers as a worker, its task stays.
    let out = c.n(4).docker_ok(&["node", "demote", "node2"]);
    assert!(out.contains("demoted in the swarm"), "{out}");
    c.wait_nodes(&[(1, M), (2, W), (3, M), (4, M), (5, W)], &[], MINUTE);
    wait_control(&c, 2, false);
    assert_same_tasks(&c, 1, "web", &tasks);
    let out = c.n(2).docker(&["service", "ls"]);
    assert!(
        !out.status.success() && output_text(&out).contains("not a swarm manager"),
        "a demoted node must refuse manager calls: {}",
        output_text(&out)
    );

    // Demote the leader itself: it steps down, another manager leads, nothing moves.
    let leader = c.wait_leader(MINUTE);
    let rest: Vec<usize> = [1, 3, 4].into_iter().filter(|m| *m != leader).collect();
    c.n(rest[0])
        .docker_ok(&["node", "demote", &format!("node{leader}")]);
    let mut roles = vec![(2, W), (5, W), (leader, W), (rest[0], M), (rest[1], M)];
    roles.sort_by_key(|r| r.0);
    let new_leader = c.wait_nodes(&roles, &[], MINUTE);
    assert_ne!(new_leader, leader);
    wait_control(&c, leader, false);
    assert_same_tasks(&c, new_leader, "web", &tasks);

    // Stop a worker; once it is Down, `node rm` takes it out and its task runs elsewhere.
    let node5 = c.n(5).node_id();
    c.n_mut(5).stop();
    c.wait_nodes(&roles, &[5], Duration::from_secs(30));
    let out = c.n(new_leader).docker_ok(&["node", "rm", "node5"]);
    assert!(out.contains("node5"), "{out}");
    roles.retain(|r| r.0 != 5);
    c.wait_nodes(&roles, &[], MINUTE);
    let after = c.wait_running(new_leader, "web", 5, MINUTE);
    assert!(
        after.iter().all(|(_, node, _)| *node != node5),
        "a task still runs on the removed node: {after:?}"
    );
    let kept: Vec<_> = tasks.iter().filter(|t| t.1 != node5).cloned().collect();
    assert!(
        kept.iter().all(|t| after.contains(t)),
        "tasks on the other nodes must be untouched: before {tasks:?}, after {after:?}"
    );
}

#[test]
fn five_managers_two_workers_form_and_serve() {
    if !ready() {
        return;
    }
    let c = Cluster::form(5, 2, &[]);
    let leader = c.wait_leader(MINUTE);
    // Writes through every manager (followers forward to the leader), reads from every manager.
    for m in 1..=5 {
        create_service(&c, m, &format!("svc{m}"), if m == 1 { 7 } else { 1 });
    }
    let tasks = c.wait_running(leader, "svc1", 7, MINUTE);
    let spread: BTreeSet<usize> = placement(&c, leader, "svc1").into_values().collect();
    assert_eq!(spread.len(), 7, "7 replicas over 7 nodes: {tasks:?}");
    for m in 1..=5 {
        poll(
            &format!("node{m} to list every service"),
            MINUTE,
            || c.dump(),
            || {
                let names: BTreeSet<String> = c
                    .n(m)
                    .services()?
                    .iter()
                    .filter_map(|s| s["Spec"]["Name"].as_str().map(str::to_string))
                    .collect();
                let want: BTreeSet<String> = (1..=5).map(|i| format!("svc{i}")).collect();
                if names == want {
                    Ok(())
                } else {
                    Err(format!("{names:?}"))
                }
            },
        );
        for s in 2..=5 {
            c.wait_running(m, &format!("svc{s}"), 1, MINUTE);
        }
    }
    // Workers refuse manager calls, and say why.
    for w in 6..=7 {
        let out = c.n(w).docker(&["node", "ls"]);
        assert!(
            !out.status.success() && output_text(&out).contains("not a swarm manager"),
            "{}",
            output_text(&out)
        );
    }
}

#[test]
fn docker_cli_drives_join_promote_demote_leave_and_rm() {
    if !ready() {
        return;
    }
    let c = Cluster::start(3);
    let n1 = c.n(1);
    let out = n1.docker_ok(&[
        "swarm",
        "init",
        "--listen-addr",
        &n1.addr,
        "--advertise-addr",
        &n1.addr,
    ]);
    assert!(out.contains("Swarm initialized: current node"), "{out}");
    // `join-token` prints the command a user pastes; it names this manager's address.
    let out = n1.docker_ok(&["swarm", "join-token", "worker"]);
    assert!(
        out.contains("To add a worker to this swarm, run the following command:"),
        "{out}"
    );
    let cmd = out
        .lines()
        .find(|l| l.trim_start().starts_with("docker swarm join"))
        .unwrap_or_else(|| panic!("no join command in {out}"));
    let words: Vec<&str> = cmd.split_whitespace().collect();
    assert_eq!(words.last(), Some(&n1.addr.as_str()), "{cmd}");
    let token = words
        .iter()
        .position(|w| *w == "--token")
        .and_then(|p| words.get(p + 1))
        .unwrap_or_else(|| panic!("no token in {cmd}"));
    // Paste it, with this node's own addresses.
    let n2 = c.n(2);
    let out = n2.docker_ok(&[
        "swarm",
        "join",
        "--token",
        token,
        "--listen-addr",
        &n2.addr,
        "--advertise-addr",
        &n2.addr,
        &n1.addr,
    ]);
    assert_eq!(out.trim(), "This node joined a swarm as a worker.");
    let manager_token = n1.docker_ok(&["swarm", "join-token", "-q", "manager"]);
    let n3 = c.n(3);
    let out = n3.docker_ok(&[
        "swarm",
        "join",
        "--token",
        manager_token.trim(),
        "--listen-addr",
        &n3.addr,
        "--advertise-addr",
        &n3.addr,
        &n1.addr,
    ]);
    assert_eq!(out.trim(), "This node joined a swarm as a manager.");
    c.wait_formed(&[(1, M), (2, W), (3, M)]);

    let info = |i: usize| {
        c.n(i)
            .docker_ok(&[
                "info",
                "--format",
                "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
            ])
            .trim()
            .to_string()
    };
    assert_eq!(info(2), "active false");
    assert_eq!(info(3), "active true");

    // Promote from the other manager; the new manager answers `node ls` itself.
    let out = n3.docker_ok(&["node", "promote", "node2"]);
    assert_eq!(out.trim(), "Node node2 promoted to a manager in the swarm.");
    c.wait_formed(&[(1, M), (2, M), (3, M)]);
    poll(
        "node2 to answer as a manager",
        MINUTE,
        || c.dump(),
        || {
            let r = n2.docker_ok(&[
                "node",
                "inspect",
                "--format",
                "{{.ManagerStatus.Reachability}}",
                "self",
            ]);
            if r.trim() == "reachable" {
                Ok(())
            } else {
                Err(r)
            }
        },
    );
    let ls = n2.docker_ok(&["node", "ls"]);
    let header = ls.lines().next().unwrap_or_default();
    for col in common::NODE_LS_COLUMNS {
        assert!(header.contains(col), "{ls}");
    }
    assert!(
        ls.lines().any(|l| l.contains(" * ") && l.contains("node2")),
        "self is starred: {ls}"
    );

    // Demote it again, then it leaves; once Down it is removed.
    let out = n1.docker_ok(&["node", "demote", "node2"]);
    assert_eq!(out.trim(), "Manager node2 demoted in the swarm.");
    c.wait_formed(&[(1, M), (2, W), (3, M)]);
    poll(
        "node2 to answer as a worker",
        MINUTE,
        || c.dump(),
        || {
            let s = info(2);
            if s == "active false" { Ok(()) } else { Err(s) }
        },
    );
    // A node that is still up is not removed without --force.
    let out = n1.docker(&["node", "rm", "node2"]);
    assert!(
        !out.status.success() && output_text(&out).contains("is not down and can't be removed"),
        "node rm of a live node: {}",
        output_text(&out)
    );
    let out = n2.docker_ok(&["swarm", "leave"]);
    assert_eq!(out.trim(), "Node left the swarm.");
    assert_eq!(info(2), "inactive false");
    c.wait_nodes(&[(1, M), (2, W), (3, M)], &[2], MINUTE);
    let out = n1.docker_ok(&["node", "rm", "node2"]);
    assert_eq!(out.trim(), "node2");
    c.wait_formed(&[(1, M), (3, M)]);
}
