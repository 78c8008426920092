//! Overlay networks on the Docker runtime, end to end: three `shoal daemon --runtime docker`s,
//! each in its own test host (`shoal_testkit::hosts`), sharing the machine's Docker Engine and
//! its images. Each image task runs in the namespace of its network sandbox (a pause container
//! on `--network none`, which the node's network layer wires and the task's container joins),
//! reaches tasks on other nodes by address over the overlay, and resolves service names
//! through the node's DNS server at 127.0.0.11. Sandboxes and namespaces go with the tasks.
//!
//! Cleanup, also when a test fails: the cluster's drop stops the daemons and removes every
//! container labelled with a node's data dir as owner (task containers and sandboxes alike)
//! and every mount under it (the task namespaces); the hosts' drop deletes the test hosts.
//!
// The tests wait on real processes and measure them in wall-clock time.
#![allow(clippy::disallowed_methods)]

mod common;
#[path = "common/cluster.rs"]
mod harness;
#[path = "common/overlay.rs"]
mod net;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use shoal_testkit::{Need, need};

use net::{
    MINUTE, addr_of, addr_on, curl_in, get_in, hostname_of, id_of, netns_of, tail, three_nodes_on,
    wait_running,
};

/// The label the Docker runtime puts on a task's network sandbox (shoal-docker's
/// `LABEL_SANDBOX_TASK_ID`).
const SANDBOX_LABEL: &str = "com.shoal.sandbox.task.id";
/// The label Swarm (and the Docker runtime) puts on a task's own container.
const TASK_LABEL: &str = "com.docker.swarm.task.id";

fn ready() -> bool {
    need(&[
        Need::Root,
        Need::Tool("docker"),
        Need::Tool("nsenter"),
        Need::Tool("busybox"),
        Need::DockerEngine,
        Need::TestImage,
    ])
}

/// The IDs and names of the machine's Docker containers (`docker ps -a`) carrying every label
/// of `labels` (`KEY` or `KEY=VALUE`).
fn engine_containers(labels: &[String]) -> Vec<String> {
    let mut cmd = Command::new("docker");
    cmd.args(["ps", "-a", "--format", "{{.ID}} {{.Names}}"]);
    for l in labels {
        cmd.arg("--filter").arg(format!("label={l}"));
    }
    let out = cmd.output().expect("docker ps");
    assert!(
        out.status.success(),
        "docker ps: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// `shoal-test/busybox` tasks on the Docker runtime, on an overlay across three nodes: each
/// has an address in the network's subnet and its hostname; a client's namespace reaches every
/// web task by address across nodes; inside a Docker task `/etc/resolv.conf` names only the
/// node's DNS server and `web` resolves to its virtual IP, balanced over every web task, and
/// `tasks.web` to each task's address. With the services gone, no sandbox container, task
/// container or task namespace is left on any node, and the network can go.
#[test]
fn docker_tasks_on_an_overlay_reach_each_other_across_nodes() {
    if !ready() {
        return;
    }
    // Hosts 1-3 run the nodes; host 4 is a client from outside the cluster.
    let (hosts, c) = three_nodes_on("ovd", "docker", 1);
    let m = c.n(1);
    m.docker_ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.78.0.0/24",
        "backend",
    ]);
    // A web server on each node, answering its own hostname (the task's, so each differs).
    m.docker_ok(&[
        "service",
        "create",
        "--no-resolve-image",
        "--detach",
        "--name",
        "web",
        "--mode",
        "global",
        "--network",
        "backend",
        "--publish",
        "published=8080,target=8080",
        "--stop-grace-period",
        "1s",
        "shoal-test/busybox",
        "sh",
        "-c",
        "mkdir -p /tmp/w && hostname > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w",
    ]);
    // A client on node1 that shows its resolver, then asks for `web` by name. (Debian's static
    // busybox `wget -T` crashes: no timeout flag.)
    m.docker_ok(&[
        "service", "create", "--no-resolve-image", "--detach", "--name", "client", "--network",
        "backend", "--constraint", "node.hostname==node1", "--stop-grace-period", "1s",
        "shoal-test/busybox", "sh", "-c",
        "cat /etc/resolv.conf; while true; do wget -q -O- http://web:8080/; nslookup tasks.web; sleep 0.5; done",
    ]);
    let webs = wait_running(&c, "web", 3);
    let client = wait_running(&c, "client", 1).remove(0);
    let nodes: BTreeSet<&str> = webs.iter().filter_map(|t| t["NodeID"].as_str()).collect();
    assert_eq!(nodes.len(), 3, "one web task on each node: {webs:?}");

    // Addresses come from the network's subnet, one per task.
    let web_addrs: Vec<String> = webs.iter().map(|t| addr_on(t, "backend")).collect();
    let mut addrs = web_addrs.clone();
    addrs.push(addr_of(&client));
    for a in &addrs {
        assert!(
            a.starts_with("10.78.0."),
            "{a} is outside the network's subnet 10.78.0.0/24"
        );
    }
    let distinct: BTreeSet<&String> = addrs.iter().collect();
    assert_eq!(
        distinct.len(),
        addrs.len(),
        "addresses given twice: {addrs:?}"
    );

    // Each task runs in its sandbox's namespace, which the node keeps for it; the sandbox is
    // a container of the node's own.
    for t in webs.iter().chain([&client]) {
        let ns = netns_of(&c, t);
        assert!(ns.exists(), "no namespace {} for task {t}", ns.display());
        let sandboxes = engine_containers(&[format!("{SANDBOX_LABEL}={}", id_of(t))]);
        assert_eq!(
            sandboxes.len(),
            1,
            "one network sandbox for task {}: {sandboxes:?}",
            id_of(t)
        );
    }

    // The client's namespace reaches every web task, on every node, by its overlay address,
    // and each answers with its own hostname.
    let from = netns_of(&c, &client);
    let mut answers = BTreeSet::new();
    for a in &web_addrs {
        let url = format!("{a}:8080");
        let got = harness::poll(
            &format!("the client's namespace reaching {url}"),
            MINUTE,
            || c.dump(),
            || curl_in(&from, &url),
        );
        answers.insert(got.trim().to_string());
    }
    let hostnames: BTreeSet<String> = webs.iter().map(hostname_of).collect();
    assert_eq!(
        answers, hostnames,
        "every web task answered with its own hostname"
    );

    // The routing mesh reaches Docker tasks too: every node's published port answers from
    // outside the cluster, spread over the tasks of every node.
    let outside = hosts.host(4).netns_path();
    for i in 1..=3 {
        let url = format!("{}:8080", hosts.host(i).addr);
        let mut seen = BTreeSet::new();
        harness::poll(
            &format!("{url} reaching every web task through the mesh"),
            MINUTE,
            || c.dump(),
            || {
                seen.insert(get_in(&outside, &url, "/")?);
                if seen == hostnames {
                    Ok(())
                } else {
                    Err(format!("reached {seen:?} of {hostnames:?}"))
                }
            },
        );
    }

    // Inside the Docker task: only the node's DNS server, and names that resolve to the
    // service (through its virtual IP, to every task) and to each task.
    harness::poll(
        "the client resolving web and reaching every web task by name",
        MINUTE,
        || c.dump(),
        || {
            let out = m.docker(&["service", "logs", "--raw", "client"]);
            let log = harness::output_text(&out);
            let servers: BTreeSet<&str> = log
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("nameserver"))
                .collect();
            if !servers.is_empty() && servers != BTreeSet::from(["nameserver 127.0.0.11"]) {
                panic!("the task's /etc/resolv.conf names other servers: {servers:?}\n{log}");
            }
            let missing: Vec<&String> = hostnames
                .iter()
                .chain(web_addrs.iter())
                .filter(|want| !log.contains(want.as_str()))
                .collect();
            if servers.is_empty() || !missing.is_empty() {
                return Err(format!(
                    "resolv.conf servers {servers:?}; missing {missing:?} in:\n{}",
                    tail(&log)
                ));
            }
            Ok(())
        },
    );

    // When the services go, so do their sandboxes, containers and namespaces, on every node.
    let tasks: Vec<String> = webs.iter().chain([&client]).map(id_of).collect();
    m.docker_ok(&["service", "rm", "web", "client"]);
    let data_dirs: Vec<PathBuf> = (1..=3).map(|i| c.n(i).data_dir().to_path_buf()).collect();
    harness::poll(
        "sandboxes, task containers and namespaces removed",
        MINUTE,
        || c.dump(),
        || {
            let mut left = Vec::new();
            for (i, dir) in data_dirs.iter().enumerate() {
                let owner = format!(
                    "{}={}",
                    shoal_testkit::reap::OWNER_LABEL,
                    shoal_testkit::reap::owner_of(dir)
                );
                for (label, what) in [(SANDBOX_LABEL, "sandbox"), (TASK_LABEL, "container")] {
                    left.extend(
                        engine_containers(&[owner.clone(), label.to_string()])
                            .into_iter()
                            .map(|c| format!("node{}: {what} {c}", i + 1)),
                    );
                }
                for e in std::fs::read_dir(dir.join("net/task"))
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    left.push(format!(
                        "node{}: namespace net/task/{}",
                        i + 1,
                        e.file_name().to_string_lossy()
                    ));
                }
            }
            for t in &tasks {
                left.extend(
                    engine_containers(&[format!("{SANDBOX_LABEL}={t}")])
                        .into_iter()
                        .map(|c| format!("sandbox of {t}: {c}")),
                );
            }
            if left.is_empty() {
                Ok(())
            } else {
                Err(left.join("\n"))
            }
        },
    );
    harness::poll(
        "the network removed",
        MINUTE,
        || c.dump(),
        || {
            let out = m.docker(&["network", "rm", "backend"]);
            if out.status.success() {
                Ok(())
            } else {
                Err(harness::output_text(&out))
            }
        },
    );
}
