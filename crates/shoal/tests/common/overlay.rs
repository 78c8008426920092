//! What the overlay tests (`overlay.rs` on the native runtime, `overlay_docker.rs` on the
//! Docker one) share: three nodes in test hosts, reading their tasks, and requests made from
//! inside a namespace as a task would make them.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use shoal_testkit::hosts::Hosts;

use crate::harness::{self, Cluster, Role};

pub const MINUTE: Duration = Duration::from_secs(60);

/// Three nodes running `runtime`, and `clients` more hosts on the underlay that run no
/// daemon (hosts 4...): node1 a manager, the others workers.
pub fn three_nodes_on(test: &str, runtime: &str, clients: usize) -> (Hosts, Cluster) {
    let hosts = Hosts::new(test, 3 + clients).expect("test hosts");
    let c = Cluster::start_on(&hosts, 3, &["--runtime", runtime]);
    c.init(1, &[]);
    c.join(2, 1, Role::Worker);
    c.join(3, 1, Role::Worker);
    c.wait_formed(&[(1, Role::Manager), (2, Role::Worker), (3, Role::Worker)]);
    (hosts, c)
}

/// `docker inspect` of every task of `service` that runs, as JSON.
pub fn running_tasks(c: &Cluster, service: &str) -> Vec<Value> {
    let ids = c.n(1).docker_ok(&[
        "service",
        "ps",
        "-q",
        "--filter",
        "desired-state=running",
        service,
    ]);
    ids.split_whitespace()
        .map(|id| {
            let out = c.n(1).docker_ok(&["inspect", "--type", "task", id]);
            let v: Value = serde_json::from_str(&out).expect("inspect json");
            v[0].clone()
        })
        .filter(|t| t["Status"]["State"] == "running")
        .collect()
}

/// The task's address on its first network, without the prefix length.
pub fn addr_of(task: &Value) -> String {
    let a = task["NetworksAttachments"][0]["Addresses"][0]
        .as_str()
        .unwrap_or_else(|| panic!("a task with no address: {task}"));
    a.split('/').next().unwrap_or(a).to_string()
}

/// The namespace the node running `task` made for it.
pub fn netns_of(c: &Cluster, task: &Value) -> PathBuf {
    let node = task["NodeID"].as_str().expect("placed");
    let (_, i) = c
        .ids()
        .into_iter()
        .find(|(id, _)| id == node)
        .expect("a node of the cluster");
    c.n(i)
        .data_dir()
        .join("net/task")
        .join(task["ID"].as_str().expect("id"))
}

/// Waits for `n` running tasks of `service`; their `docker inspect`.
pub fn wait_running(c: &Cluster, service: &str, n: usize) -> Vec<Value> {
    harness::poll(
        &format!("{n} {service} tasks running"),
        MINUTE,
        || c.dump(),
        || {
            let t = running_tasks(c, service);
            if t.len() == n {
                Ok(t)
            } else {
                Err(format!("{} running", t.len()))
            }
        },
    )
}

pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// An HTTP GET of `path` at `addr` (`ip:port`) made from inside the namespace `netns`, as a
/// task there would; the body, trimmed.
pub fn get_in(netns: &Path, addr: &str, path: &str) -> Result<String, String> {
    let at: std::net::SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let (shown, req) = (
        format!("GET http://{addr}{path} from {}", netns.display()),
        format!("GET {path} HTTP/1.0\r\n\r\n"),
    );
    shoal_testkit::hosts::in_netns(netns, move || -> Result<String, String> {
        let mut s =
            TcpStream::connect_timeout(&at, Duration::from_secs(3)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .map_err(|e| e.to_string())?;
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        let mut got = String::new();
        s.read_to_string(&mut got).map_err(|e| e.to_string())?;
        // A CGI script's own header lines may end in a bare LF.
        match got.replace("\r\n", "\n").split_once("\n\n") {
            Some((head, body)) if head.split_whitespace().nth(1) == Some("200") => {
                Ok(body.trim().to_string())
            }
            _ => Err(format!("unexpected answer: {got}")),
        }
    })
    .map_err(|e| format!("{shown}: {e}"))?
    .map_err(|e| format!("{shown}: {e}"))
}

/// A GET of `/` at `addr` from inside `netns`.
pub fn curl_in(netns: &Path, addr: &str) -> Result<String, String> {
    get_in(netns, addr, "/")
}

/// The task's ID.
pub fn id_of(task: &Value) -> String {
    task["ID"].as_str().expect("a task ID").to_string()
}

/// The task's hostname: its short ID, as the agent names it.
pub fn hostname_of(task: &Value) -> String {
    id_of(task).chars().take(12).collect()
}

/// The task's address on `network`, without the prefix length.
pub fn addr_on(task: &Value, network: &str) -> String {
    let a = task["NetworksAttachments"]
        .as_array()
        .expect("attachments")
        .iter()
        .find(|a| a["Network"]["Spec"]["Name"] == network)
        .unwrap_or_else(|| panic!("not on {network}: {task}"))["Addresses"][0]
        .as_str()
        .expect("an address")
        .to_string();
    a.split('/').next().unwrap_or(&a).to_string()
}

/// `client` on `network`: a host task on node1 that sleeps, whose namespace tests and
/// benchmarks make requests from.
pub fn create_client(m: &harness::Node, network: &str) {
    m.docker_ok(&[
        "service",
        "create",
        "--no-resolve-image",
        "--detach",
        "--name",
        "client",
        "--network",
        network,
        "--constraint",
        "node.hostname==node1",
        "--stop-grace-period",
        "1s",
        "host",
        "sleep",
        "100000",
    ]);
}
