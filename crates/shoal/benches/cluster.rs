//! Cluster figures, printed, never asserted (real daemons on loopback, see
//! `tests/common/cluster.rs`):
//! - leader failover: from `kill -9` of the Raft leader to the first write a survivor accepts
//!   (median of `--runs`, default 10; goal <= 1.5 s);
//! - worker loss: from `kill -9` of a worker (its daemon, shims and tasks) to its tasks running
//!   elsewhere (goal <= 5 s);
//! - replicated durable writes per second through the Engine API (service creates, each one Raft
//!   entry committed on a majority and fsynced) on 3 managers, with 1 and 64 concurrent clients
//!   spread over the managers.
//! - the cost of encryption at rest (`--only at-rest`): the same durable writes/s with the Raft
//!   store encrypted (the default) and without, and their ratio. The unencrypted run needs a
//!   benchmark build: `cargo bench -p shoal --bench cluster --features bench-plaintext-store --
//!   --only at-rest` (this bench runs itself again with `SHOAL_BENCH_PLAINTEXT_STORE=1`, which
//!   its daemons inherit and only such a build obeys);
//! - autolock (`--only unlock`): from `POST /swarm/unlock` on a restarted, locked manager to its
//!   first answer to `GET /swarm` (median of `--runs`).
//!
//! Run as root: `cargo bench -p shoal --bench cluster` (`-- --runs N --seconds S` to change the
//! number of failovers and the length of each throughput run, `--only
//! failover|worker|writes|at-rest|unlock` for one figure; `SHOAL_KEEP_LOGS=DIR` keeps the
//! daemons' logs).

#![allow(clippy::disallowed_methods)] // measures wall-clock time of real processes

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/cluster.rs"]
mod harness;
mod util;

use util::arg;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use harness::{Cluster, Node, poll};

fn stats(mut v: Vec<f64>) -> String {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return "no samples".into();
    }
    format!(
        "median {:.3} s (min {:.3}, max {:.3}, n={})",
        v[v.len() / 2],
        v[0],
        v[v.len() - 1],
        v.len()
    )
}

/// A service with no tasks: writes to it cost only the replicated store.
fn create_empty_service(n: &Node, name: &str) -> Result<(), String> {
    let body = format!(
        r#"{{"Name":"{name}","TaskTemplate":{{"ContainerSpec":{{"Image":"host","Args":["true"]}}}},"Mode":{{"Replicated":{{"Replicas":0}}}}}}"#
    );
    match n.api("POST", "/v1.50/services/create", Some(body.as_bytes())) {
        (201, _) => Ok(()),
        (s, v) => Err(format!("{s} {v}")),
    }
}

/// One labelled update of `service` through node `n` (read its version, write the new spec).
fn label_write(n: &Node, service: &str, i: u64) -> Result<(), String> {
    let mut v = n.service(service)?;
    let version = v["Version"]["Index"].as_u64().unwrap_or(0);
    v["Spec"]["Labels"] = serde_json::json!({ "i": i.to_string() });
    let body = serde_json::to_vec(&v["Spec"]).map_err(|e| e.to_string())?;
    match n.api(
        "POST",
        &format!("/v1.50/services/{service}/update?version={version}"),
        Some(&body),
    ) {
        (200, _) => Ok(()),
        (s, v) => Err(format!("{s} {v}")),
    }
}

fn leader_failover(runs: usize) {
    let mut c = Cluster::form(3, 0, &[]);
    create_empty_service(c.n(1), "f").expect("service");
    let mut samples = Vec::new();
    let mut i = 0;
    for run in 0..runs {
        let leader = c.wait_formed(&[
            (1, harness::Role::Manager),
            (2, harness::Role::Manager),
            (3, harness::Role::Manager),
        ]);
        let survivors: Vec<usize> = (1..=3).filter(|m| *m != leader).collect();
        let killed_at = Instant::now();
        c.n_mut(leader).kill9();
        let took = poll(
            "a survivor to accept a write",
            Duration::from_secs(60),
            || c.dump(),
            || {
                i += 1;
                let via = survivors[(i as usize) % survivors.len()];
                label_write(c.n(via), "f", i).map(|()| killed_at.elapsed())
            },
        );
        eprintln!(
            "  failover {}: node{leader} killed, write accepted after {:.3} s",
            run + 1,
            took.as_secs_f64()
        );
        samples.push(took.as_secs_f64());
        c.n_mut(leader).restart();
        // Steady state before the next kill: every manager has applied the last write.
        poll(
            "the restarted manager to catch up",
            Duration::from_secs(60),
            || c.dump(),
            || {
                let versions: Vec<u64> = (1..=3)
                    .map(|m| {
                        c.n(m)
                            .service("f")
                            .map_or(0, |v| v["Version"]["Index"].as_u64().unwrap_or(0))
                    })
                    .collect();
                if versions.iter().all(|v| *v == versions[0] && *v > 0) {
                    Ok(())
                } else {
                    Err(format!("{versions:?}"))
                }
            },
        );
    }
    println!(
        "leader failover (kill -9 of the leader -> first accepted write, 3 managers): {}  [goal <= 1.5 s]",
        stats(samples)
    );
}

fn worker_loss(runs: usize) {
    let mut c = Cluster::form(1, 3, &[]);
    let body = r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"host","Args":["sleep","100000"],"StopGracePeriod":1000000000}},"Mode":{"Replicated":{"Replicas":3}}}"#;
    let (s, v) = c
        .n(1)
        .api("POST", "/v1.50/services/create", Some(body.as_bytes()));
    assert_eq!(s, 201, "{v}");
    let mut samples = Vec::new();
    for run in 0..runs {
        c.wait_running(1, "w", 3, Duration::from_secs(60));
        let ids: std::collections::BTreeMap<String, usize> = c.ids().into_iter().collect();
        let tasks = c.n(1).running_tasks("w").unwrap_or_default();
        let victim = tasks
            .iter()
            .filter_map(|t| ids.get(&t.1).copied())
            .find(|n| *n != 1)
            .expect("a worker with a task");
        let victim_id = c.n(victim).node_id();
        let killed_at = Instant::now();
        c.n_mut(victim).kill9_machine();
        let took = poll(
            "the lost tasks to run elsewhere",
            Duration::from_secs(60),
            || c.dump(),
            || {
                let r = c.n(1).running_tasks("w")?;
                if r.len() == 3 && r.iter().all(|t| t.1 != victim_id) {
                    Ok(killed_at.elapsed())
                } else {
                    Err(format!("{r:?}"))
                }
            },
        );
        eprintln!(
            "  worker loss {}: node{victim} killed, its tasks ran elsewhere after {:.3} s",
            run + 1,
            took.as_secs_f64()
        );
        samples.push(took.as_secs_f64());
        c.n_mut(victim).restart();
        c.wait_formed(&[
            (1, harness::Role::Manager),
            (2, harness::Role::Worker),
            (3, harness::Role::Worker),
            (4, harness::Role::Worker),
        ]);
    }
    println!(
        "worker loss (kill -9 of a worker -> its tasks running elsewhere): {}  [goal <= 5 s]",
        stats(samples)
    );
}

/// Durable writes per second with `clients` clients; prints the figure, returns writes/s.
fn throughput(c: &Cluster, clients: usize, seconds: u64, round: usize) -> f64 {
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for k in 0..clients {
            let (stop, done, failed) = (&stop, &done, &failed);
            let node = c.n(1 + k % 3);
            scope.spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    match create_empty_service(node, &format!("t{round}-{k}-{i}")) {
                        Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    i += 1;
                }
            });
        }
        std::thread::sleep(Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    let secs = start.elapsed().as_secs_f64();
    let rate = done.load(Ordering::Relaxed) as f64 / secs;
    println!(
        "durable writes (service creates through the API, 3 managers, clients spread over them), {clients:>2} client(s): {:.0} writes/s ({} in {secs:.1} s, {} failed)",
        done.load(Ordering::Relaxed) as f64 / secs,
        done.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    rate
}

/// The child run of `--only at-rest`: writes/s on a fresh cluster, as `RATE clients writes/s`
/// lines for the parent, and whether the daemons really kept their store in plaintext.
fn writes_rates(seconds: u64) -> Vec<(usize, f64)> {
    let c = Cluster::form(3, 0, &[]);
    let rates = [1, 64]
        .into_iter()
        .enumerate()
        .map(|(round, clients)| (clients, throughput(&c, clients, seconds, round)))
        .collect();
    let plaintext = c.n(1).log_text().contains("NOT encrypted at rest");
    println!("PLAINTEXT {plaintext}");
    rates
}

fn at_rest(seconds: u64) {
    let encrypted = writes_rates(seconds);
    let exe = std::env::current_exe().expect("this bench's path");
    let out = std::process::Command::new(exe)
        .args(["--only", "writes-child", "--seconds", &seconds.to_string()])
        .env("SHOAL_BENCH_PLAINTEXT_STORE", "1")
        .output()
        .expect("run the unencrypted half");
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.contains("PLAINTEXT true") {
        println!(
            "cost of encryption at rest: no unencrypted baseline (build with `--features bench-plaintext-store`); encrypted: {encrypted:?}"
        );
        return;
    }
    for (clients, enc) in encrypted {
        let plain = text
            .lines()
            .filter_map(|l| l.strip_prefix("RATE "))
            .filter_map(|l| l.split_once(' '))
            .find(|(c, _)| c.parse::<usize>().ok() == Some(clients))
            .and_then(|(_, r)| r.parse::<f64>().ok())
            .unwrap_or(0.0);
        println!(
            "encryption at rest, {clients:>2} client(s): {enc:.0} writes/s encrypted, {plain:.0} writes/s unencrypted, ratio {:.3}",
            if plain > 0.0 { enc / plain } else { 0.0 }
        );
    }
}

/// From `swarm unlock` on a restarted, locked manager to its first `GET /swarm` answer.
fn unlock_to_serving(runs: usize) {
    let mut c = Cluster::form(1, 0, &["--autolock"]);
    let key: String = c
        .n(1)
        .get("/swarm/unlockkey")
        .ok()
        .and_then(|v| v["UnlockKey"].as_str().map(str::to_string))
        .expect("the unlock key");
    create_empty_service(c.n(1), "u").expect("service");
    let body = serde_json::json!({ "UnlockKey": key }).to_string();
    let mut samples = Vec::new();
    for run in 0..runs {
        c.n_mut(1).stop();
        c.n_mut(1).restart();
        let start = Instant::now();
        match c
            .n(1)
            .api("POST", "/v1.50/swarm/unlock", Some(body.as_bytes()))
        {
            (200, _) => {}
            (s, v) => panic!("unlock: {s} {v}"),
        }
        let took = poll(
            "the unlocked manager to serve",
            Duration::from_secs(30),
            || c.dump(),
            || match c.n(1).api("GET", "/v1.50/swarm", None) {
                (200, _) => Ok(start.elapsed()),
                (s, v) => Err(format!("{s} {v}")),
            },
        );
        eprintln!(
            "  unlock {}: serving after {:.3} s",
            run + 1,
            took.as_secs_f64()
        );
        samples.push(took.as_secs_f64());
    }
    println!(
        "autolock (swarm unlock -> the manager serves): {}",
        stats(samples)
    );
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("cluster bench: needs root (namespaces and cgroups); skipped");
        return;
    }
    let runs: usize = arg("--runs", 10);
    let seconds: u64 = arg("--seconds", 10);
    let only: String = arg("--only", String::new());
    let run = |what: &str| only.is_empty() || only == what;
    if run("failover") {
        leader_failover(runs);
    }
    if run("worker") {
        worker_loss(runs.div_ceil(2));
    }
    if run("writes") {
        let c = Cluster::form(3, 0, &[]);
        for (round, clients) in [1, 64].into_iter().enumerate() {
            throughput(&c, clients, seconds, round);
        }
    }
    if only == "at-rest" {
        at_rest(seconds);
    }
    if only == "writes-child" {
        for (clients, rate) in writes_rates(seconds) {
            println!("RATE {clients} {rate}");
        }
    }
    if run("unlock") {
        unlock_to_serving(runs);
    }
}
