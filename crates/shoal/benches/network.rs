//! Network figures, printed, never asserted. Three `shoal daemon`s (native runtime), each in a
//! test host of its own on an underlay bridge (`shoal_testkit::hosts`, 192.0.2.0/24), and a
//! fourth host, the client, that runs no daemon; formed with the real `docker` CLI (see
//! `tests/common/overlay.rs`). All of it on this one machine, so every figure shares its CPUs
//! with the load generator and the other nodes.
//! - The routing mesh vs straight to a task: `wrk` requests/s and p50/p99 latency against a
//!   small page that busybox httpd serves from `host` tasks (one per node): through the mesh
//!   (node1's ingress port, spread over the three tasks) and straight to node1's task (a
//!   host-mode port), both from the client host; and, from node1's task namespace, straight to
//!   node2's task's overlay address. The ratios of the mesh to each.
//! - TCP throughput between a task on node1 and one on node2 over a plain and over an
//!   encrypted (`--opt encrypted`) overlay: one stream each, Mbit/s and the ratio.
//! - How long a dead task stays behind a service's virtual IP: the table `ip shoal-lb` in a
//!   client task's namespace, read every 5 ms, from `kill -9` of a task's process (and from its
//!   health check starting to fail) until the task's address is gone from it. Each run and the
//!   median.
//!
//! DNS answers/s is `cargo bench -p shoal-dns --bench answers`.
//!
//! Run as root: `cargo bench -p shoal --bench network` (`-- --seconds S` for each wrk and
//! stream run, default 10; `--runs N` task deaths per kind, default 5; `--only
//! mesh|encrypted|vip` for one figure). Needs wrk, nft, nsenter, busybox and the docker CLI;
//! skips with the reason when one is missing. Everything it makes (hosts, daemons, tasks and
//! their namespaces, temp dirs) goes when it ends, also when a figure fails (the harness's
//! drops).

#![allow(clippy::disallowed_methods)] // measures wall-clock time of real processes

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/cluster.rs"]
mod harness;
#[path = "../tests/common/overlay.rs"]
mod net;
mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::Cluster;
use net::{MINUTE, addr_of, create_client, get_in, netns_of, three_nodes_on, wait_running};
use serde_json::Value;
use shoal_testkit::hosts::{Hosts, in_netns, processes_in_netns};
use util::arg;

/// wrk's load: two threads, 32 connections.
const WRK_THREADS: &str = "-t2";
const WRK_CONNECTIONS: &str = "-c32";
/// The page the tasks serve.
const PAGE: &str = "hello";
/// How often the VIP table is read.
const VIP_POLL: Duration = Duration::from_millis(5);
/// Replacements wait this long, so a dead task's address cannot come back (on a new task)
/// before it was seen gone.
const RESTART_DELAY: &str = "10s";
/// How long a dead task may stay in the table before the run counts as not measured (under
/// [`RESTART_DELAY`]).
const VIP_LIMIT: Duration = Duration::from_secs(9);
/// The failing health check's cadence: it is found unhealthy within one interval.
const HEALTH_INTERVAL: &str = "200ms";
const HEALTH_RETRIES: &str = "1";

/// What the bench needs that this machine lacks, if anything.
fn missing() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (namespaces, cgroups, nftables)".into());
    }
    let tools: Vec<&str> = ["docker", "wrk", "nft", "nsenter", "busybox", "ip"]
        .into_iter()
        .filter(|t| shoal_testkit::need::find_tool(t).is_none())
        .collect();
    if tools.is_empty() {
        None
    } else {
        Some(format!("needs {} on PATH", tools.join(", ")))
    }
}

/// The running task of `tasks` placed on node `i`.
fn task_on(c: &Cluster, tasks: &[Value], i: usize) -> Value {
    let (id, _) = c
        .ids()
        .into_iter()
        .find(|(_, n)| *n == i)
        .unwrap_or_else(|| panic!("node{i} has no node ID"));
    tasks
        .iter()
        .find(|t| t["NodeID"] == id.as_str())
        .unwrap_or_else(|| panic!("no task on node{i}: {tasks:?}"))
        .clone()
}

/// The task's address on `network`, without the prefix length.
fn addr_on(task: &Value, network: &str) -> String {
    let a = task["NetworksAttachments"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["Network"]["Spec"]["Name"] == network)
        .and_then(|a| a["Addresses"][0].as_str())
        .unwrap_or_else(|| panic!("a task with no address on {network}: {task}"));
    a.split('/').next().unwrap_or(a).to_string()
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

// ---- 1. The routing mesh vs straight to a task -------------------------------------------

/// What one wrk run reported.
struct Wrk {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// "N requests in Ts, B read".
    summary: String,
    /// Socket errors and non-2xx answers, when wrk saw any.
    errors: Vec<String>,
}

/// One of wrk's times ("512.00us", "1.23ms", "2.00s", "1.00m") in milliseconds.
fn wrk_ms(s: &str) -> Option<f64> {
    let (num, scale) = [("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60_000.0)]
        .into_iter()
        .find_map(|(unit, scale)| s.strip_suffix(unit).map(|n| (n, scale)))?;
    num.parse::<f64>().ok().map(|n| n * scale)
}

fn parse_wrk(out: &str) -> Result<Wrk, String> {
    let mut w = Wrk {
        rps: f64::NAN,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        summary: String::new(),
        errors: Vec::new(),
    };
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", n] => w.rps = n.parse().unwrap_or(f64::NAN),
            ["50%", t] => w.p50_ms = wrk_ms(t).unwrap_or(f64::NAN),
            ["99%", t] => w.p99_ms = wrk_ms(t).unwrap_or(f64::NAN),
            [_, "requests", "in", ..] => w.summary = line.to_string(),
            _ if line.starts_with("Socket errors") || line.starts_with("Non-2xx") => {
                w.errors.push(line.to_string());
            }
            _ => {}
        }
    }
    if w.rps.is_nan() || w.p50_ms.is_nan() || w.p99_ms.is_nan() {
        return Err(format!("could not read wrk's output:\n{out}"));
    }
    Ok(w)
}

/// `wrk --latency` against `url` from inside the namespace `netns`.
fn wrk_in(netns: &Path, url: &str, seconds: u64) -> Wrk {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["--", "wrk", WRK_THREADS, WRK_CONNECTIONS])
        .arg(format!("-d{seconds}s"))
        .args(["--latency", url])
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "wrk {url} from {}: {}\n{text}",
        netns.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    parse_wrk(&text).unwrap_or_else(|e| panic!("{e}"))
}

fn mesh(hosts: &Hosts, c: &Cluster, seconds: u64) {
    let m = c.n(1);
    m.docker_ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.81.0.0/24",
        "pages",
    ]);
    let site = tempfile::tempdir().expect("site dir");
    let www = format!("WWW={}", site.path().display());
    let serve = format!(
        "d=$WWW/$(hostname) && mkdir -p $d && echo {PAGE} > $d/index.html && exec busybox httpd -f -p 8080 -h $d"
    );
    m.docker_ok(&[
        "service",
        "create",
        "--no-resolve-image",
        "--detach",
        "--name",
        "page",
        "--mode",
        "global",
        "--network",
        "pages",
        "--publish",
        "published=8080,target=8080",
        "--publish",
        "published=9090,target=8080,mode=host",
        "--stop-grace-period",
        "1s",
        "--env",
        &www,
        "host",
        "sh",
        "-c",
        &serve,
    ]);
    let tasks = wait_running(c, "page", 3);
    let (on1, on2) = (task_on(c, &tasks, 1), task_on(c, &tasks, 2));
    let client = hosts.host(4).netns_path();
    let node1 = hosts.host(1).addr;
    let runs: [(&str, PathBuf, String); 3] = [
        (
            "mesh: client host -> node1:8080 (ingress mode, spread over the 3 tasks)",
            client.clone(),
            format!("{node1}:8080"),
        ),
        (
            "host-mode: client host -> node1:9090 (node1's own task)",
            client,
            format!("{node1}:9090"),
        ),
        (
            "overlay: node1's task -> node2's task's overlay address:8080",
            netns_of(c, &on1),
            format!("{}:8080", addr_on(&on2, "pages")),
        ),
    ];
    for (what, ns, addr) in &runs {
        harness::poll(
            &format!("{addr} answering ({what})"),
            MINUTE,
            || c.dump(),
            || match get_in(ns, addr, "/") {
                Ok(body) if body == PAGE => Ok(()),
                Ok(other) => Err(format!("answered {other:?}")),
                Err(e) => Err(e),
            },
        );
    }
    println!(
        "1. routing mesh vs straight to a task: wrk {WRK_THREADS} {WRK_CONNECTIONS} -d{seconds}s --latency, GET of a {}-byte page from busybox httpd in host tasks (it closes each connection: one TCP connection per request)",
        PAGE.len() + 1
    );
    let mut got = Vec::new();
    for (what, ns, addr) in &runs {
        let w = wrk_in(ns, &format!("http://{addr}/"), seconds);
        println!(
            "   {what}: {:.0} requests/s, latency p50 {:.2} ms, p99 {:.2} ms ({}{}{})",
            w.rps,
            w.p50_ms,
            w.p99_ms,
            w.summary,
            if w.errors.is_empty() { "" } else { "; " },
            w.errors.join("; ")
        );
        got.push(w);
    }
    for (i, name) in [(1, "host-mode"), (2, "overlay")] {
        println!(
            "   mesh / {name}: {:.2}x the requests/s, {:.2}x the p50 latency, {:.2}x the p99",
            got[0].rps / got[i].rps,
            got[0].p50_ms / got[i].p50_ms,
            got[0].p99_ms / got[i].p99_ms
        );
    }
}

// ---- 2. Plain vs encrypted overlay ---------------------------------------------------------

/// One TCP stream of `seconds` from the namespace `from` to a listener on `port` in the
/// namespace `to`, at `to_addr`: bytes received and the time from accept to the end.
fn stream(
    from: &Path,
    to: &Path,
    to_addr: Ipv4Addr,
    port: u16,
    seconds: u64,
) -> Result<(u64, Duration), String> {
    let listener = in_netns(to, move || TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))?
        .map_err(|e| format!("listening on {port} in {}: {e}", to.display()))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    // The socket lives in `to`'s namespace; accepting on it works from any thread.
    let receiver = std::thread::spawn(move || -> Result<(u64, Duration), String> {
        let deadline = Instant::now() + MINUTE + Duration::from_secs(10);
        let mut s = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(format!("accepting: {e}")),
            }
        };
        s.set_nonblocking(false).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let start = Instant::now();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) => return Ok((total, start.elapsed())),
                Ok(n) => total += n as u64,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("receiving after {total} bytes: {e}")),
            }
        }
    });
    let at = SocketAddr::from((to_addr, port));
    let sent = in_netns(from, move || -> Result<(), String> {
        // The path may need a moment (an encrypted overlay's tunnel handshake).
        let deadline = Instant::now() + MINUTE;
        let mut s = loop {
            match TcpStream::connect_timeout(&at, Duration::from_secs(3)) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => return Err(format!("connecting: {e}")),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let buf = vec![0xa5u8; 128 * 1024];
        let end = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < end {
            s.write_all(&buf).map_err(|e| format!("sending: {e}"))?;
        }
        s.shutdown(std::net::Shutdown::Write)
            .map_err(|e| e.to_string())
    });
    let received = receiver
        .join()
        .map_err(|_| "the receiver panicked".to_string())?;
    sent.and_then(|r| r)
        .map_err(|e| format!("to {at} from {}: {e}", from.display()))?;
    received
}

fn encrypted(c: &Cluster, seconds: u64) {
    let m = c.n(1);
    m.docker_ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.82.0.0/24",
        "plain",
    ]);
    m.docker_ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.82.1.0/24",
        "--opt",
        "encrypted",
        "secure",
    ]);
    m.docker_ok(&[
        "service",
        "create",
        "--no-resolve-image",
        "--detach",
        "--name",
        "stream",
        "--mode",
        "global",
        "--network",
        "plain",
        "--network",
        "secure",
        "--stop-grace-period",
        "1s",
        "host",
        "sleep",
        "100000",
    ]);
    let tasks = wait_running(c, "stream", 3);
    let (on1, on2) = (task_on(c, &tasks, 1), task_on(c, &tasks, 2));
    let (from, to) = (netns_of(c, &on1), netns_of(c, &on2));
    println!(
        "2. TCP throughput, one stream for {seconds} s from a task on node1 to a task on node2 (128 KiB writes, measured at the receiver)"
    );
    let mut mbits = Vec::new();
    for (network, port) in [("plain", 5001), ("secure", 5002)] {
        let addr: Ipv4Addr = addr_on(&on2, network).parse().expect("an IPv4 address");
        let (bytes, took) = stream(&from, &to, addr, port, seconds)
            .unwrap_or_else(|e| panic!("the stream over {network}: {e}"));
        let rate = bytes as f64 * 8.0 / took.as_secs_f64() / 1e6;
        println!(
            "   {network:<6} overlay{}: {rate:.0} Mbit/s ({:.1} MB in {:.2} s)",
            if network == "secure" {
                " (--opt encrypted: VXLAN inside userspace WireGuard)"
            } else {
                " (VXLAN)"
            },
            bytes as f64 / 1e6,
            took.as_secs_f64()
        );
        mbits.push(rate);
    }
    println!(
        "   encrypted / plain: {:.2}x the throughput",
        mbits[1] / mbits[0]
    );
}

// ---- 3. A dead task's removal from the VIP -------------------------------------------------

/// Whether `addr` is one of the addresses in an `nft list table` listing.
fn lists(table: &str, addr: &str) -> bool {
    table
        .split(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
        .any(|t| t == addr)
}

/// `nft list table ip shoal-lb`, run by the calling thread (its namespace).
fn vip_table() -> Result<String, String> {
    let out = Command::new("nft")
        .args(["list", "table", "ip", "shoal-lb"])
        .output()
        .map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// How a task is made to die.
enum Death {
    /// `kill -9` of its process.
    Kill,
    /// Its health check starts failing: a file named after the task appears in this dir.
    Unhealthy(PathBuf),
}

/// One death of node `node`'s task of `service`, timed from the cause to its address gone from
/// the VIP table in the namespace `client`; with the mean time of one table read.
fn vip_removal(
    c: &Cluster,
    client: &Path,
    service: &str,
    node: usize,
    death: &Death,
) -> Result<(Duration, Duration), String> {
    let tasks = wait_running(c, service, 3);
    let victim = task_on(c, &tasks, node);
    let addr = addr_of(&victim);
    harness::poll(
        &format!("{service}'s task {addr} in the client's VIP table"),
        MINUTE,
        || c.dump(),
        || {
            let t = in_netns(client, vip_table)??;
            if lists(&t, &addr) { Ok(()) } else { Err(t) }
        },
    );
    let cause: Box<dyn FnOnce() -> Result<(), String> + Send> = match death {
        Death::Kill => {
            let pid = victim["Status"]["ContainerStatus"]["PID"]
                .as_i64()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("no PID for {victim}"))? as i32;
            let in_ns = processes_in_netns(&netns_of(c, &victim));
            if !in_ns.contains(&pid) {
                return Err(format!(
                    "PID {pid} is not in the task's namespace (which holds {in_ns:?})"
                ));
            }
            Box::new(move || {
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .map_err(|e| format!("kill -9 {pid}: {e}"))
            })
        }
        Death::Unhealthy(dir) => {
            let flag = dir.join(net::hostname_of(&victim));
            Box::new(move || std::fs::write(&flag, b"").map_err(|e| e.to_string()))
        }
    };
    in_netns(client, move || -> Result<(Duration, Duration), String> {
        let start = Instant::now();
        cause()?;
        let (mut reads, mut reading) = (0u32, Duration::ZERO);
        loop {
            let before = Instant::now();
            let table = vip_table();
            reading += before.elapsed();
            reads += 1;
            let last = match table {
                Ok(t) if !lists(&t, &addr) => return Ok((start.elapsed(), reading / reads)),
                Ok(t) | Err(t) => t,
            };
            if start.elapsed() > VIP_LIMIT {
                return Err(format!(
                    "{addr} still listed {VIP_LIMIT:?} after its death:\n{last}"
                ));
            }
            std::thread::sleep(VIP_POLL);
        }
    })?
}

fn vip(c: &Cluster, runs: usize) {
    let m = c.n(1);
    m.docker_ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.83.0.0/24",
        "backend",
    ]);
    let flags = tempfile::tempdir().expect("flag dir");
    // `host` tasks see the machine's files; the check runs in the task's UTS namespace, so
    // `$(hostname)` is the task's own.
    let check = format!("test ! -f {}/$(hostname)", flags.path().display());
    // `web`'s process is `sleep` itself, so its PID is the one to kill. `sick`'s exits as soon
    // as it is told to stop, so its removal does not wait out a stop grace period.
    for (name, extra, command) in [
        ("web", vec![], vec!["sleep", "100000"]),
        (
            "sick",
            vec![
                "--health-cmd",
                check.as_str(),
                "--health-interval",
                HEALTH_INTERVAL,
                "--health-retries",
                HEALTH_RETRIES,
            ],
            vec!["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"],
        ),
    ] {
        let mut args = vec![
            "service",
            "create",
            "--no-resolve-image",
            "--detach",
            "--name",
            name,
            "--replicas",
            "3",
            "--replicas-max-per-node",
            "1",
            "--network",
            "backend",
            "--restart-delay",
            RESTART_DELAY,
            "--stop-grace-period",
            "1s",
        ];
        args.extend(extra);
        args.push("host");
        args.extend(command);
        m.docker_ok(&args);
    }
    create_client(m, "backend");
    let client = netns_of(c, &wait_running(c, "client", 1)[0]);
    println!(
        "3. from a task's death to its address gone from the VIP (the client task on node1 reads `nft list table ip shoal-lb` in its namespace, then waits {VIP_POLL:?}); each run kills the task on the node named"
    );
    for (service, death, what) in [
        (
            "web",
            Death::Kill,
            "kill -9 of the task's process".to_string(),
        ),
        (
            "sick",
            Death::Unhealthy(flags.path().to_path_buf()),
            format!(
                "its health check starts failing (--health-interval {HEALTH_INTERVAL} --health-retries {HEALTH_RETRIES}; included: up to {HEALTH_INTERVAL} until the check fails, up to 1 s until the node's agent reads it (it polls a healthy task's health every second), and the task's stop (it exits on SIGTERM at once))"
            ),
        ),
    ] {
        let mut took = Vec::new();
        let mut read = Vec::new();
        let mut shown = Vec::new();
        for r in 0..runs {
            let node = [2, 3, 1][r % 3];
            match vip_removal(c, &client, service, node, &death) {
                Ok((t, per_read)) => {
                    let ms = t.as_secs_f64() * 1e3;
                    shown.push(format!("node{node} {ms:.0} ms"));
                    took.push(ms);
                    read.push(per_read.as_secs_f64() * 1e3);
                }
                Err(e) => {
                    eprintln!("network bench: {service} run {}: {e}", r + 1);
                    shown.push(format!("node{node} not measured"));
                }
            }
        }
        println!("   {what}:");
        println!(
            "     {}; median {:.0} ms over {} runs (one table read took {:.1} ms on average, so each time is late by up to {:.1} ms)",
            shown.join(", "),
            median(&took),
            took.len(),
            median(&read),
            median(&read) + VIP_POLL.as_secs_f64() * 1e3
        );
    }
}

fn main() {
    if let Some(why) = missing() {
        eprintln!("network bench: {why}; skipped");
        return;
    }
    let seconds: u64 = arg("--seconds", 10);
    let runs: usize = arg("--runs", 5);
    let only: String = arg("--only", String::new());
    // Every node, task and load generator shares this machine: say how busy it was.
    println!(
        "network bench: 3 nodes and the client host on one machine of {} CPUs, load average {} at the start",
        std::thread::available_parallelism().map_or(0, usize::from),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (hosts, c) = three_nodes_on("netbench", "native", 1);
    let mut failed = Vec::new();
    let figures: [(&str, &[&str]); 3] = [
        ("mesh", &["page"]),
        ("encrypted", &["stream"]),
        ("vip", &["web", "sick", "client"]),
    ];
    for (figure, services) in figures {
        if !only.is_empty() && only != figure {
            continue;
        }
        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match figure {
            "mesh" => mesh(&hosts, &c, seconds),
            "encrypted" => encrypted(&c, seconds),
            _ => vip(&c, runs),
        }));
        if done.is_err() {
            failed.push(figure);
        }
        // The next figure runs without this one's tasks (all of it goes with the cluster).
        for s in services {
            let _ = c.n(1).docker(&["service", "rm", s]);
        }
    }
    println!("DNS answers/s: see `cargo bench -p shoal-dns --bench answers`");
    if !failed.is_empty() {
        println!("not measured (see the errors above): {}", failed.join(", "));
    }
    drop(c);
    drop(hosts);
}
