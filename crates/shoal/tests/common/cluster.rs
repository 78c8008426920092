//! Multi-node harness: N real `shoal daemon` processes on one machine, each with its own data
//! dir, cgroup parent, `--hostname` (node1, node2...) and cluster port on 127.0.0.1, formed into a
//! swarm with the real `docker` CLI. Everything started is torn down when the [`Cluster`] drops,
//! also when a test panics: daemons get SIGTERM (all at once), then whatever a killed daemon
//! left (its task shims and their processes) is killed, and the cgroup parents are removed.
//!
//! Waits poll with a deadline and, on timeout, panic with the last observation and a dump of the
//! cluster (`node ls` from a manager and the tail of every daemon's log).
//!
//! Included with `#[path]` by `tests/cluster.rs` and `benches/cluster.rs`, next to `mod.rs`;
//! one node is `cluster_node.rs`.
#![allow(dead_code)]
// The harness waits on real processes, in wall-clock time; no logic under test reads it.
#![allow(clippy::disallowed_methods)]

use std::process::Output;
use std::time::Duration;

#[path = "cluster_node.rs"]
mod node;
// Each includer (the tests, the bench) uses its own part of the harness.
#[allow(unused_imports)]
pub use node::{DockerClient, Node, output_text, run_with_timeout};

// The one poll loop, shared with the single-daemon harness.
pub use crate::common::poll;
/// The role a node joins with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Manager,
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Manager => "manager",
            Role::Worker => "worker",
        }
    }
}

/// Several nodes, `node1`..`nodeN`, addressed by their number (1-based, as their names).
pub struct Cluster {
    pub nodes: Vec<Node>,
}

impl Cluster {
    /// Starts `n` daemons (not yet in a swarm) and waits for their APIs.
    pub fn start(n: usize) -> Cluster {
        let mut c = Cluster { nodes: Vec::new() };
        c.add_nodes(n);
        c
    }

    /// Starts one daemon in each of `hosts`' hosts (node1 in host 1...), with `flags`, and
    /// waits for their APIs.
    pub fn start_on(hosts: &shoal_testkit::hosts::Hosts, n: usize, flags: &[&str]) -> Cluster {
        let mut c = Cluster { nodes: Vec::new() };
        for i in 1..=n {
            c.nodes
                .push(Node::launch_on(&format!("node{i}"), hosts.host(i), flags));
        }
        for node in &c.nodes {
            node.wait_api();
        }
        c
    }

    /// Starts `n` more daemons, numbered after the existing ones; returns their numbers.
    pub fn add_nodes(&mut self, n: usize) -> Vec<usize> {
        let first = self.nodes.len() + 1;
        for i in first..first + n {
            self.nodes.push(Node::launch(&format!("node{i}")));
        }
        for node in &self.nodes[first - 1..] {
            node.wait_api();
        }
        (first..first + n).collect()
    }

    pub fn n(&self, i: usize) -> &Node {
        &self.nodes[i - 1]
    }

    pub fn n_mut(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i - 1]
    }

    /// Node numbers whose daemon runs.
    pub fn running(&self) -> Vec<usize> {
        (1..=self.nodes.len())
            .filter(|i| self.n(*i).is_running())
            .collect()
    }

    /// The number of the node whose hostname is `name`.
    pub fn index_of(&self, hostname: &str) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.name == hostname)
            .map(|i| i + 1)
    }

    /// `swarm init` on node `i` with the docker CLI, listening and advertising on its own port.
    pub fn init(&self, i: usize, extra: &[&str]) {
        let n = self.n(i);
        let mut args = vec![
            "swarm",
            "init",
            "--listen-addr",
            &n.addr,
            "--advertise-addr",
            &n.addr,
        ];
        args.extend_from_slice(extra);
        let out = n.docker_ok(&args);
        assert!(
            out.contains("Swarm initialized"),
            "unexpected `swarm init` output: {out}"
        );
    }

    /// The current join token for `role`, asked of manager `via`.
    pub fn token(&self, via: usize, role: Role) -> String {
        self.n(via)
            .docker_ok(&["swarm", "join-token", "-q", role.as_str()])
            .trim()
            .to_string()
    }

    /// `docker swarm join` of node `i` through manager `via` with `token`; the CLI's output.
    pub fn join_with(&self, i: usize, via: usize, token: &str) -> Output {
        let n = self.n(i);
        n.docker(&[
            "swarm",
            "join",
            "--token",
            token,
            "--listen-addr",
            &n.addr,
            "--advertise-addr",
            &n.addr,
            &self.n(via).addr,
        ])
    }

    /// Joins node `i` as `role` through manager `via`, requiring docker's confirmation.
    pub fn join(&self, i: usize, via: usize, role: Role) {
        let token = self.token(via, role);
        let out = self.join_with(i, via, &token);
        let said = output_text(&out);
        assert!(
            out.status.success()
                && said.contains(&format!("joined a swarm as a {}", role.as_str())),
            "node{i} joining as a {} through node{via} failed: {said}\n{}",
            role.as_str(),
            self.dump()
        );
    }

    /// Starts `managers + workers` daemons; node1 inits, nodes 2..=managers join as managers and
    /// the rest as workers; waits until the swarm has formed.
    pub fn form(managers: usize, workers: usize, init_flags: &[&str]) -> Cluster {
        let c = Cluster::start(managers + workers);
        c.init(1, init_flags);
        for i in 2..=managers {
            c.join(i, 1, Role::Manager);
        }
        for i in managers + 1..=managers + workers {
            c.join(i, 1, Role::Worker);
        }
        let want: Vec<(usize, Role)> = (1..=managers + workers)
            .map(|i| {
                (
                    i,
                    if i <= managers {
                        Role::Manager
                    } else {
                        Role::Worker
                    },
                )
            })
            .collect();
        c.wait_formed(&want);
        c
    }

    /// Managers (by number) that run and answer as managers.
    pub fn live_managers(&self) -> Vec<usize> {
        self.running()
            .into_iter()
            .filter(|i| {
                self.n(*i)
                    .swarm_info()
                    .is_ok_and(|s| s["ControlAvailable"] == true)
            })
            .collect()
    }

    /// `node ls` from manager `via` as (hostname, state, role, manager status: Leader,
    /// Reachable, Unreachable or "").
    pub fn node_table(&self, via: usize) -> Result<Vec<(String, String, String, String)>, String> {
        let nodes = self.n(via).nodes()?;
        let mut rows: Vec<_> = nodes
            .iter()
            .map(|n| {
                let ms = &n["ManagerStatus"];
                let status = if ms.is_null() {
                    String::new()
                } else if ms["Leader"] == true {
                    "Leader".to_string()
                } else if ms["Reachability"] == "reachable" {
                    "Reachable".to_string()
                } else {
                    "Unreachable".to_string()
                };
                (
                    n["Description"]["Hostname"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    n["Status"]["State"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    n["Spec"]["Role"].as_str().unwrap_or_default().to_string(),
                    status,
                )
            })
            .collect();
        rows.sort();
        Ok(rows)
    }

    /// Waits until every running manager's `node ls` shows exactly `want` (nodes by number and
    /// role), all Ready, managers Reachable with one Leader that all agree on. Returns the
    /// leader's number.
    pub fn wait_formed(&self, want: &[(usize, Role)]) -> usize {
        self.wait_nodes(want, &[], Duration::from_secs(60))
    }

    /// As [`wait_formed`](Self::wait_formed), with `down` nodes listed as Down (managers among
    /// them Unreachable).
    pub fn wait_nodes(&self, want: &[(usize, Role)], down: &[usize], limit: Duration) -> usize {
        let expected: Vec<(String, String, String, bool)> = want
            .iter()
            .map(|(i, r)| {
                let is_down = down.contains(i);
                (
                    self.n(*i).name.clone(),
                    if is_down { "down" } else { "ready" }.to_string(),
                    r.as_str().to_string(),
                    is_down,
                )
            })
            .collect();
        let managers: Vec<usize> = want
            .iter()
            .filter(|(i, r)| *r == Role::Manager && !down.contains(i))
            .map(|(i, _)| *i)
            .collect();
        poll(
            &format!("the swarm to show {want:?} (down: {down:?})"),
            limit,
            || self.dump(),
            || {
                let mut leaders = Vec::new();
                for m in &managers {
                    let rows = self.node_table(*m)?;
                    let mut seen = Vec::new();
                    let mut leader = None;
                    for (host, state, role, ms) in &rows {
                        seen.push((host.clone(), state.clone(), role.clone()));
                        if ms == "Leader" {
                            leader = Some(host.clone());
                        }
                    }
                    let mut exp: Vec<_> = expected
                        .iter()
                        .map(|(h, s, r, _)| (h.clone(), s.clone(), r.clone()))
                        .collect();
                    exp.sort();
                    if seen != exp {
                        return Err(format!("node{m} sees {rows:?}"));
                    }
                    for (host, _, role, ms) in &rows {
                        let is_down = expected.iter().any(|(h, _, _, d)| h == host && *d);
                        let ok = match (role.as_str(), is_down) {
                            ("manager", false) => ms == "Leader" || ms == "Reachable",
                            ("manager", true) => ms == "Unreachable",
                            _ => ms.is_empty(),
                        };
                        if !ok {
                            return Err(format!("node{m} sees {host} as {ms:?}: {rows:?}"));
                        }
                    }
                    leaders
                        .push(leader.ok_or_else(|| format!("node{m} sees no leader: {rows:?}"))?);
                }
                leaders.dedup();
                if leaders.len() != 1 {
                    return Err(format!("managers disagree on the leader: {leaders:?}"));
                }
                self.index_of(&leaders[0])
                    .ok_or_else(|| format!("unknown leader {}", leaders[0]))
            },
        )
    }

    /// The leader's number as running managers agree on it, once they do (and it runs).
    pub fn wait_leader(&self, limit: Duration) -> usize {
        poll(
            "the running managers to agree on a leader",
            limit,
            || self.dump(),
            || self.leader_now(),
        )
    }

    fn leader_now(&self) -> Result<usize, String> {
        let mut leaders = Vec::new();
        for m in self.live_managers() {
            let rows = self.node_table(m)?;
            let l = rows
                .iter()
                .find(|r| r.3 == "Leader")
                .map(|r| r.0.clone())
                .ok_or_else(|| format!("node{m} sees no leader: {rows:?}"))?;
            leaders.push(l);
        }
        leaders.dedup();
        match leaders.as_slice() {
            [l] => match self.index_of(l) {
                // Survivors name a killed leader until they notice it is gone.
                Some(i) if self.n(i).is_running() => Ok(i),
                _ => Err(format!(
                    "the managers still follow {l}, which is not running"
                )),
            },
            other => Err(format!("leaders seen: {other:?}")),
        }
    }

    /// Waits until `service` has `n` running tasks as manager `via` sees them; returns them.
    pub fn wait_running(
        &self,
        via: usize,
        service: &str,
        n: usize,
        limit: Duration,
    ) -> Vec<(String, String, u64)> {
        poll(
            &format!("{n} running tasks of {service} (seen from node{via})"),
            limit,
            || {
                format!(
                    "{}\n{}",
                    output_text(&self.n(via).docker(&["service", "ps", service])),
                    self.dump()
                )
            },
            || {
                let r = self.n(via).running_tasks(service)?;
                if r.len() == n {
                    Ok(r)
                } else {
                    Err(format!("{r:?}"))
                }
            },
        )
    }

    /// Node numbers by node ID, for the nodes in the swarm.
    pub fn ids(&self) -> Vec<(String, usize)> {
        self.running()
            .into_iter()
            .map(|i| (self.n(i).node_id(), i))
            .filter(|(id, _)| !id.is_empty())
            .collect()
    }

    /// What the swarm looks like now: `node ls` and `service ls` from a running manager, and
    /// the tail of every daemon's log.
    pub fn dump(&self) -> String {
        let mut s = String::from("=== cluster state ===\n");
        if let Some(m) = self.live_managers().first() {
            let n = self.n(*m);
            s += &format!(
                "--- docker node ls (from {}) ---\n{}\n--- docker service ls ---\n{}\n",
                n.name,
                output_text(&n.docker(&["node", "ls"])),
                output_text(&n.docker(&["service", "ls"]))
            );
        } else {
            s += "(no manager answers)\n";
        }
        for n in &self.nodes {
            s += &format!(
                "--- {} ({}, {}) log tail ---\n{}\n",
                n.name,
                n.addr,
                if n.is_running() { "running" } else { "stopped" },
                n.log_tail(25)
            );
        }
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Stop every daemon at once: each stops its tasks, which may take their grace period.
        for n in &self.nodes {
            n.term();
        }
        for n in &mut self.nodes {
            n.wait_exit(Duration::from_secs(60));
        }
        // Node's own Drop then kills leftovers and removes its cgroups.
    }
}
