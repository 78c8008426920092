//! Overlay networking over the life of tasks and daemons, on three native nodes in test hosts:
//! a task that dies or fails its health check leaves its service's virtual IP, while a long
//! idle connection to a healthy task survives the service scaling up and down; a daemon
//! stopped with `--live-restore` leaves its tasks' networking working, and one killed with
//! `-9` repairs what was broken while it was down when it comes back.
// The tests wait on real processes and measure them in wall-clock time.
#![allow(clippy::disallowed_methods)]

mod common;
#[path = "common/cluster.rs"]
mod harness;
#[path = "common/overlay.rs"]
mod net;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use harness::{Cluster, Role};
use serde_json::Value;
use shoal_testkit::hosts::Hosts;
use shoal_testkit::{Need, need};

use net::{
    MINUTE, addr_of, create_client, curl_in, hostname_of, netns_of, running_tasks, wait_running,
};

fn ready() -> bool {
    need(&[
        Need::Root,
        Need::Tool("docker"),
        Need::Tool("nsenter"),
        Need::Tool("busybox"),
        Need::Tool("socat"),
        Need::Tool("nft"),
    ])
}

/// The service's virtual IP on its first network.
fn vip_of(m: &harness::Node, service: &str) -> String {
    let out = m.docker_ok(&["service", "inspect", service]);
    let v: Value = serde_json::from_str(&out).expect("inspect json");
    let a = v[0]["Endpoint"]["VirtualIPs"][0]["Addr"]
        .as_str()
        .unwrap_or_else(|| panic!("{service} has no virtual IP: {out}"));
    a.split('/').next().unwrap_or(a).to_string()
}

/// What the namespace's VIP table (`ip shoal-lb`) holds, as `nft` prints it.
fn vip_table(netns: &Path) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["nft", "list", "table", "ip", "shoal-lb"])
        .output()
        .expect("nft");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Whether `addr` is a backend in the VIP table `table` (an address followed by a
/// delimiter, so 10.0.0.2 does not match 10.0.0.23).
fn lists(table: &str, addr: &str) -> bool {
    table
        .match_indices(addr)
        .any(|(i, _)| !table[i + addr.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

/// An echo connection through the VIP: its first line is the task's hostname, then it
/// echoes.
struct Echo {
    reader: BufReader<TcpStream>,
    task: String,
}

impl Echo {
    fn open(netns: &Path, at: &str) -> Result<Echo, String> {
        let at: std::net::SocketAddr = at.parse().map_err(|e| format!("{at}: {e}"))?;
        let stream = shoal_testkit::hosts::in_netns(netns, move || {
            TcpStream::connect_timeout(&at, Duration::from_secs(3))
        })?
        .map_err(|e| format!("connecting to {at}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream);
        let mut task = String::new();
        reader
            .read_line(&mut task)
            .map_err(|e| format!("reading the task's name: {e}"))?;
        Ok(Echo {
            reader,
            task: task.trim().to_string(),
        })
    }

    /// Sends `line` and reads it back.
    fn echo(&mut self, line: &str) -> Result<(), String> {
        self.reader
            .get_mut()
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| format!("sending: {e}"))?;
        let mut back = String::new();
        self.reader
            .read_line(&mut back)
            .map_err(|e| format!("reading back: {e}"))?;
        if back.trim() == line {
            Ok(())
        } else {
            Err(format!("sent {line:?}, got {back:?}"))
        }
    }
}

/// A task killed, and one failing its health check, each leave the service's virtual IP on
/// every node (a connection through it never reaches them again), while an idle connection
/// made before to another task goes on working through scaling up and down.
#[test]
fn dead_and_unhealthy_tasks_leave_the_vip_and_idle_connections_survive_scaling() {
    if !ready() {
        return;
    }
    let hosts = Hosts::new("life", 3).expect("test hosts");
    let c = net_cluster(&hosts, &[]);
    let m = c.n(1);
    m.docker_ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.80.0.0/24",
        "backend",
    ]);
    let sick = tempfile::tempdir().expect("sick dir");
    let health = format!("test ! -e {}/$(hostname)", sick.path().display());
    m.docker_ok(&[
        "service",
        "create",
        "--no-resolve-image",
        "--detach",
        "--name",
        "echo",
        "--replicas",
        "3",
        "--network",
        "backend",
        "--stop-grace-period",
        "1s",
        "--health-cmd",
        &health,
        "--health-interval",
        "200ms",
        "--health-retries",
        "1",
        "--health-start-period",
        "0s",
        "host",
        "socat",
        "TCP-LISTEN:7000,fork,reuseaddr",
        "SYSTEM:'hostname; exec cat'",
    ]);
    create_client(m, "backend");
    let echoes = wait_running(&c, "echo", 3);
    let client = wait_running(&c, "client", 1).remove(0);
    let from = netns_of(&c, &client);
    let vip = vip_of(m, "echo");
    let at = format!("{vip}:7000");

    // Balanced over the three tasks.
    let names: std::collections::BTreeSet<String> = echoes.iter().map(hostname_of).collect();
    harness::poll(
        "connections through the VIP reaching every task",
        MINUTE,
        || c.dump(),
        || {
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..40 {
                seen.insert(Echo::open(&from, &at)?.task);
            }
            if seen == names {
                Ok(())
            } else {
                Err(format!("reached {seen:?} of {names:?}"))
            }
        },
    );

    // An idle connection to one task survives the service growing and shrinking around it.
    let mut idle = Echo::open(&from, &at).expect("a connection through the VIP");
    idle.echo("before").expect("echo");
    m.docker_ok(&["service", "scale", "--detach", "echo=6"]);
    wait_running(&c, "echo", 6);
    harness::poll(
        "the client's VIP table listing six tasks",
        MINUTE,
        || vip_table(&from),
        || {
            let t = vip_table(&from);
            let listed = running_tasks(&c, "echo")
                .iter()
                .filter(|e| lists(&t, &addr_of(e)))
                .count();
            if listed == 6 {
                Ok(())
            } else {
                Err(format!("{listed} listed"))
            }
        },
    );
    idle.echo("after scaling up")
        .expect("the idle connection after scaling up");
    m.docker_ok(&["service", "scale", "--detach", "echo=3"]);
    wait_running(&c, "echo", 3);
    let kept = running_tasks(&c, "echo");
    assert!(
        kept.iter().any(|t| hostname_of(t) == idle.task),
        "scaling down removed the idle connection's task {}",
        idle.task
    );
    idle.echo("after scaling down")
        .expect("the idle connection after scaling down");

    // A task killed leaves the VIP, everywhere it is programmed.
    let others: Vec<&Value> = kept
        .iter()
        .filter(|t| hostname_of(t) != idle.task)
        .collect();
    let (killed, unhealthy) = (others[0], others[1]);
    let killed_addr = addr_of(killed);
    assert!(
        lists(&vip_table(&from), &killed_addr),
        "{killed_addr} not in the VIP table"
    );
    for pid in shoal_testkit::hosts::processes_in_netns(&netns_of(&c, killed)) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    harness::poll(
        "the killed task out of the client's VIP table",
        MINUTE,
        || vip_table(&from),
        || {
            if lists(&vip_table(&from), &killed_addr) {
                Err("still listed".into())
            } else {
                Ok(())
            }
        },
    );

    // A task failing its health check leaves it too.
    let unhealthy_addr = addr_of(unhealthy);
    std::fs::write(sick.path().join(hostname_of(unhealthy)), "").expect("make it sick");
    harness::poll(
        "the unhealthy task out of the client's VIP table",
        MINUTE,
        || vip_table(&from),
        || {
            if lists(&vip_table(&from), &unhealthy_addr) {
                Err("still listed".into())
            } else {
                Ok(())
            }
        },
    );
    // Connections through the VIP reach neither while they are out.
    let gone = [hostname_of(killed), hostname_of(unhealthy)];
    for _ in 0..20 {
        let e = Echo::open(&from, &at).expect("through the VIP");
        assert!(
            !gone.contains(&e.task),
            "reached {} after it left the VIP",
            e.task
        );
    }
    idle.echo("at the end")
        .expect("the idle connection at the end");
    drop(c);
    drop(hosts);
}

/// Three native nodes in `hosts` with `flags` besides: node1 a manager, the others workers.
fn net_cluster(hosts: &Hosts, flags: &[&str]) -> Cluster {
    let mut all = vec!["--runtime", "native"];
    all.extend(flags);
    let c = Cluster::start_on(hosts, 3, &all);
    c.init(1, &[]);
    c.join(2, 1, Role::Worker);
    c.join(3, 1, Role::Worker);
    c.wait_formed(&[(1, Role::Manager), (2, Role::Worker), (3, Role::Worker)]);
    c
}

/// Resolves `name` with the DNS server the node serves inside `netns`.
fn lookup_in(netns: &Path, name: &str) -> Result<String, String> {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["busybox", "nslookup", name, "127.0.0.11"])
        .output()
        .map_err(|e| format!("nslookup: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// `--live-restore`: with node2's daemon stopped, its task still serves across nodes and
/// reaches the others by address and VIP; back, it serves names again. Then node2's daemon
/// is killed with `-9`, its overlay's neighbour entries and its task's VIP table are broken
/// while it is down, and the restarted daemon repairs both.
#[test]
fn task_networking_outlives_its_daemon_and_a_crash_is_repaired() {
    if !ready() {
        return;
    }
    let hosts = Hosts::new("keep", 3).expect("test hosts");
    let mut c = net_cluster(&hosts, &["--live-restore"]);
    let m = c.n(1);
    m.docker_ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.81.0.0/24",
        "backend",
    ]);
    let site = tempfile::tempdir().expect("site dir");
    m.docker_ok(&[
        "service", "create", "--no-resolve-image", "--detach", "--name", "web", "--mode",
        "global", "--network", "backend", "--stop-grace-period", "1s", "--env",
        &format!("WWW={}", site.path().display()), "host", "sh", "-c",
        "d=$WWW/$(hostname) && mkdir -p $d && hostname > $d/index.html && exec busybox httpd -f -p 8080 -h $d",
    ]);
    wait_running(&c, "web", 3);
    let vip = vip_of(m, "web");
    // Node IDs by number, known while a daemon is down too.
    let nodes = c.ids();
    let netns_of = |c: &Cluster, task: &Value| {
        let (_, i) = nodes
            .iter()
            .find(|(id, _)| task["NodeID"] == id.as_str())
            .expect("a node of the cluster");
        c.n(*i)
            .data_dir()
            .join("net/task")
            .join(task["ID"].as_str().expect("id"))
    };
    // node1's and node2's web tasks, as they are now.
    let pair = |c: &Cluster| -> (Value, Value) {
        let now = wait_running(c, "web", 3);
        let on = |i: usize| -> Value {
            let (id, _) = nodes.iter().find(|(_, n)| *n == i).expect("node");
            now.iter()
                .find(|t| t["NodeID"] == id.as_str())
                .expect("a task there")
                .clone()
        };
        (on(1), on(2))
    };
    let works = |c: &Cluster, (w1, w2): &(Value, Value), what: &str| {
        let (ns1, ns2) = (netns_of(c, w1), netns_of(c, w2));
        for (from, to, says) in [
            (&ns1, format!("{}:8080", addr_of(w2)), hostname_of(w2)),
            (&ns2, format!("{}:8080", addr_of(w1)), hostname_of(w1)),
        ] {
            let got = harness::poll(
                &format!("{to} answering {what}"),
                MINUTE,
                || c.dump(),
                || curl_in(from, &to),
            );
            assert_eq!(got.trim(), says, "{what}");
        }
        harness::poll(
            &format!("node2's task reaching the VIP {what}"),
            MINUTE,
            || c.dump(),
            || curl_in(&ns2, &format!("{vip}:8080")),
        );
    };
    // Names are the daemon's to answer: checked while it runs.
    let names = |c: &Cluster, w2: &Value, what: &str| {
        let ns2 = netns_of(c, w2);
        harness::poll(
            &format!("node2's task answered names {what}"),
            MINUTE,
            || c.dump(),
            || lookup_in(&ns2, "web").and_then(|t| if t.contains(&vip) { Ok(()) } else { Err(t) }),
        );
    };
    let first = pair(&c);
    works(&c, &first, "at first");
    names(&c, &first.1, "at first");
    let (w1, w2) = first.clone();
    let ns2 = netns_of(&c, &w2);

    // Stopped with --live-restore: the task and its networking stay.
    c.n_mut(2).stop();
    works(&c, &first, "with node2's daemon stopped");
    c.n_mut(2).restart();
    let again = wait_running(&c, "web", 3);
    assert!(
        again.iter().any(|t| t["ID"] == w2["ID"]),
        "node2's task was replaced, not kept"
    );
    let back = pair(&c);
    works(&c, &back, "after node2's daemon came back");
    names(&c, &back.1, "after node2's daemon came back");

    // Killed, and broken while down: the overlay forgets node1's task, the task its VIPs.
    c.n_mut(2).kill9();
    let overlays = c.n(2).data_dir().join("net/overlay");
    let sandbox = std::fs::read_dir(&overlays)
        .expect("node2's overlays")
        .flatten()
        .next()
        .expect("an overlay on node2")
        .path();
    let vni = sandbox
        .file_name()
        .and_then(|n| n.to_str())
        .expect("vni")
        .to_string();
    for (ns, args) in [
        (
            &sandbox,
            vec![
                "ip",
                "neigh",
                "flush",
                "dev",
                &format!("shvx{vni}"),
                "nud",
                "permanent",
            ],
        ),
        (&ns2, vec!["nft", "delete", "table", "ip", "shoal-lb"]),
        // What the task had learnt from the overlay goes too.
        (&ns2, vec!["ip", "neigh", "flush", "all"]),
    ] {
        let broke = Command::new("nsenter")
            .arg(format!("--net={}", ns.display()))
            .args(&args)
            .status()
            .expect("nsenter");
        assert!(broke.success(), "{args:?}");
    }
    // Broken indeed: node2's task no longer reaches node1's. (Quickly: a node down for long
    // has its tasks replaced, which would repair nothing.)
    let to: std::net::SocketAddr = format!("{}:8080", addr_of(&w1)).parse().expect("addr");
    let reached = shoal_testkit::hosts::in_netns(&ns2, move || {
        TcpStream::connect_timeout(&to, Duration::from_millis(300)).is_ok()
    })
    .expect("in node2's task");
    assert!(!reached, "the overlay was not broken");
    c.n_mut(2).restart();
    works(
        &c,
        &pair(&c),
        "after node2's daemon was killed and came back",
    );
    drop(c);
    drop(hosts);
}
