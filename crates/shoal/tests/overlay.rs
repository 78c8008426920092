//! Overlay networks on a real multi-node cluster: three `shoal daemon`s, each in its own
//! network namespace (`shoal_testkit::hosts`: hosts on an underlay bridge, 192.0.2.0/24),
//! formed with the real `docker` CLI. Tasks on an overlay get their own namespace and address
//! and reach each other across nodes over VXLAN that the daemons program from the replicated
//! state; addresses, namespaces and overlays go when the tasks do.
// The tests wait on real processes and measure them in wall-clock time.
#![allow(clippy::disallowed_methods)]

mod common;
#[path = "common/cluster.rs"]
mod harness;
#[path = "common/overlay.rs"]
mod net;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::Cluster;
use serde_json::Value;
use shoal_testkit::hosts::Hosts;
use shoal_testkit::{Need, need};

use net::{
    MINUTE, addr_of, addr_on, create_client, curl_in, get_in, netns_of, running_tasks, tail,
    three_nodes_on, wait_running,
};

fn ready() -> bool {
    need(&[
        Need::Root,
        Need::Tool("docker"),
        Need::Tool("nsenter"),
        Need::Tool("busybox"),
    ])
}

/// Three native nodes in three test hosts: node1 a manager, the others workers.
fn three_nodes(test: &str) -> (Hosts, Cluster) {
    three_nodes_on(test, "native", 0)
}

/// `web`: a global service of host tasks on `backend`, each serving its own hostname (the
/// task's, so each differs) on port 8080 from its own dir under the `WWW=` dir in `www`
/// (host tasks share the machine's filesystem).
fn create_web(m: &harness::Node, www: &str) {
    m.docker_ok(&[
        "service", "create", "--no-resolve-image", "--detach", "--name", "web", "--mode",
        "global", "--network", "backend", "--stop-grace-period", "1s", "--env", www, "host",
        "sh", "-c",
        "d=$WWW/$(hostname) && mkdir -p $d && hostname > $d/index.html && exec busybox httpd -f -p 8080 -h $d",
    ]);
}

#[test]
fn tasks_on_an_overlay_reach_each_other_across_nodes() {
    if !ready() {
        return;
    }
    let (hosts, c) = three_nodes("ovl");
    let m = c.n(1);
    m.docker_ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.77.0.0/24",
        "backend",
    ]);
    // A web server on each node (its answer is its hostname: the task's, so each differs),
    // and a client on node 1.
    // Host tasks share the machine's filesystem: each serves from its own dir under this one.
    let site = tempfile::tempdir().expect("site dir");
    let www = format!("WWW={}", site.path().display());
    create_web(m, &www);
    create_client(m, "backend");
    let webs = wait_running(&c, "web", 3);
    let client = harness::poll(
        "the client running",
        MINUTE,
        || c.dump(),
        || {
            running_tasks(&c, "client")
                .pop()
                .ok_or_else(|| "not yet".to_string())
        },
    );
    // Addresses come from the network's subnet, one per task, shown as Docker shows them.
    let mut addrs: Vec<String> = webs.iter().map(addr_of).collect();
    addrs.push(addr_of(&client));
    for a in &addrs {
        assert!(
            a.starts_with("10.77.0."),
            "{a} is outside the network's subnet"
        );
    }
    let distinct: std::collections::BTreeSet<&String> = addrs.iter().collect();
    assert_eq!(
        distinct.len(),
        addrs.len(),
        "addresses given twice: {addrs:?}"
    );
    assert_eq!(
        client["NetworksAttachments"][0]["Network"]["Spec"]["Name"], "backend",
        "the attachment names its network"
    );

    // The client reaches every web task, on every node, by its overlay address.
    let from = netns_of(&c, &client);
    let mut answers = std::collections::BTreeSet::new();
    for w in &webs {
        let url = format!("{}:8080", addr_of(w));
        let got = harness::poll(
            &format!("the client reaching {url}"),
            MINUTE,
            || c.dump(),
            || curl_in(&from, &url),
        );
        answers.insert(got.trim().to_string());
    }
    assert_eq!(answers.len(), 3, "three tasks answered: {answers:?}");
    // The node itself is not on the overlay: only tasks are.
    let node_ns = hosts.host(1).netns_path();
    assert!(
        curl_in(&node_ns, &format!("{}:8080", addr_of(&webs[0]))).is_err(),
        "the node reached a task address directly"
    );

    // The network is in use: removing it is refused, naming the services.
    let refused = m.docker(&["network", "rm", "backend"]);
    let said = harness::output_text(&refused);
    assert!(
        !refused.status.success() && said.contains("in use"),
        "{said}"
    );

    // When the services go, so do their namespaces, the overlay on every node, and the
    // network can go.
    m.docker_ok(&["service", "rm", "web", "client"]);
    let data_dirs: Vec<PathBuf> = (1..=3).map(|i| c.n(i).data_dir().to_path_buf()).collect();
    harness::poll(
        "namespaces and overlays removed",
        MINUTE,
        || c.dump(),
        || {
            let mut left = Vec::new();
            for (i, dir) in data_dirs.iter().enumerate() {
                for d in ["net/task", "net/overlay"] {
                    for e in std::fs::read_dir(dir.join(d))
                        .into_iter()
                        .flatten()
                        .flatten()
                    {
                        left.push(format!(
                            "node{}:{d}/{}",
                            i + 1,
                            e.file_name().to_string_lossy()
                        ));
                    }
                }
            }
            if left.is_empty() {
                Ok(())
            } else {
                Err(left.join(" "))
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
    drop(c);
    drop(hosts);
}

/// The image tasks' side: `shoal-test/busybox` tasks on the native runtime get the cluster's
/// DNS server (127.0.0.11, in their /etc/resolv.conf) and reach a service by name through its
/// virtual IP, balanced over its tasks on every node; `tasks.NAME` and a `dnsrr` service answer
/// every task address. What the client sees is read from its own log.
#[test]
fn services_find_each_other_by_name_and_virtual_ip() {
    if !ready() || !need(&[Need::TestImage]) {
        return;
    }
    let (hosts, c) = three_nodes("dns");
    for i in 1..=3 {
        c.n(i)
            .docker_ok(&["image", "load", "-i", "/var/tmp/shoal-images/busybox.tar"]);
    }
    let m = c.n(1);
    m.docker_ok(&["network", "create", "-d", "overlay", "backend"]);
    let site = tempfile::tempdir().expect("site dir");
    let www = format!("WWW={}", site.path().display());
    create_web(m, &www);
    m.docker_ok(&[
        "service",
        "create",
        "--no-resolve-image",
        "--detach",
        "--name",
        "rr",
        "--replicas",
        "2",
        "--endpoint-mode",
        "dnsrr",
        "--network",
        "backend",
        "--stop-grace-period",
        "1s",
        "host",
        "sleep",
        "100000",
    ]);
    m.docker_ok(&[
        "service", "create", "--no-resolve-image", "--detach", "--name", "client", "--network",
        "backend", "--constraint", "node.hostname==node1", "--stop-grace-period", "1s",
        "shoal-test/busybox", "sh", "-c",
        "cat /etc/resolv.conf; while true; do wget -q -O - http://web:8080/; nslookup tasks.web; nslookup rr; sleep 0.2; done",
    ]);
    let webs = wait_running(&c, "web", 3);
    let rrs = wait_running(&c, "rr", 2);
    let hostnames: Vec<String> = webs
        .iter()
        .map(|t| t["ID"].as_str().expect("id").chars().take(12).collect())
        .collect();
    let web_addrs: Vec<String> = webs.iter().map(addr_of).collect();
    let rr_addrs: Vec<String> = rrs.iter().map(addr_of).collect();
    harness::poll(
        "the client reaching every web task through the VIP, and every name answering",
        MINUTE,
        || c.dump(),
        || {
            let out = m.docker(&["service", "logs", "--raw", "client"]);
            let log = harness::output_text(&out);
            let missing: Vec<&String> = hostnames
                .iter()
                .chain(web_addrs.iter())
                .chain(rr_addrs.iter())
                .filter(|want| !log.contains(want.as_str()))
                .collect();
            if log.contains("nameserver 127.0.0.11") && missing.is_empty() {
                Ok(())
            } else {
                Err(format!("missing {missing:?} in:\n{}", tail(&log)))
            }
        },
    );
    drop(c);
    drop(hosts);
}

/// The real `docker` CLI end to end on one node (in a test host of its own): `--network` and
/// `--publish` on create, `--network-add/-rm` and `--publish-rm` on update, what `inspect`
/// shows (virtual IPs, published ports, each task's attachments), a published port another
/// service has and a network in use refused with what is wrong.
#[test]
fn docker_cli_networks_and_ports_on_services() {
    if !ready() {
        return;
    }
    let hosts = Hosts::new("cli", 1).expect("test host");
    let c = Cluster::start_on(&hosts, 1, &["--runtime", "native"]);
    c.init(1, &[]);
    let m = c.n(1);
    m.docker_ok(&["network", "create", "-d", "overlay", "backend"]);
    m.docker_ok(&["network", "create", "-d", "overlay", "front"]);
    m.docker_ok(&[
        "service",
        "create",
        "--no-resolve-image",
        "--detach",
        "--name",
        "web",
        "--network",
        "name=backend,alias=www",
        "--publish",
        "8080:80",
        "--publish",
        "published=5353,target=53,protocol=udp",
        "--stop-grace-period",
        "1s",
        "host",
        "sleep",
        "100000",
    ]);
    let inspect = |what: &str| -> Value {
        let out = m.docker_ok(&["service", "inspect", "web"]);
        let v: Value = serde_json::from_str(&out).expect("inspect json");
        v[0][what].clone()
    };
    let endpoint = inspect("Endpoint");
    let ports: Vec<(i64, String, String)> = endpoint["Ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["PublishedPort"].as_i64().expect("port"),
                p["Protocol"].as_str().expect("protocol").to_string(),
                p["PublishMode"].as_str().expect("mode").to_string(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            (8080, "tcp".into(), "ingress".into()),
            (5353, "udp".into(), "ingress".into())
        ]
    );
    // A virtual IP on the ingress network (the mesh) and on backend.
    assert_eq!(
        endpoint["VirtualIPs"].as_array().map(Vec::len),
        Some(2),
        "{endpoint}"
    );
    let task = harness::poll(
        "web running",
        MINUTE,
        || c.dump(),
        || {
            running_tasks(&c, "web")
                .pop()
                .ok_or_else(|| "not yet".to_string())
        },
    );
    let nets = |t: &Value| -> Vec<String> {
        t["NetworksAttachments"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|n| {
                        n["Network"]["Spec"]["Name"]
                            .as_str()
                            .unwrap_or("?")
                            .to_string()
                    })
                    .collect::<std::collections::BTreeSet<String>>()
                    .into_iter()
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(nets(&task), ["backend", "ingress"]);
    assert_eq!(
        inspect("Spec")["TaskTemplate"]["Networks"][0]["Aliases"][0],
        "www",
        "the alias is kept"
    );

    // Another service cannot publish the same port; a network in use cannot go.
    let taken = m.docker(&[
        "service",
        "create",
        "--no-resolve-image",
        "--detach",
        "--name",
        "other",
        "--publish",
        "8080:81",
        "host",
        "sleep",
        "1",
    ]);
    let said = harness::output_text(&taken);
    assert!(
        !taken.status.success()
            && said.contains("port 8080/tcp is already published by service \"web\""),
        "{said}"
    );
    let in_use = m.docker(&["network", "rm", "backend"]);
    let said = harness::output_text(&in_use);
    assert!(
        !in_use.status.success() && said.contains("in use by service(s) [\"web\"]"),
        "{said}"
    );
    let unknown = m.docker(&["service", "update", "--network-add", "nope", "web"]);
    assert!(!unknown.status.success(), "an unknown network was accepted");

    // Joining another network rolls the task onto all three; leaving one and unpublishing
    // roll it again (docker names a port to unpublish by its target), and the mesh's
    // virtual IP goes with the last published port.
    m.docker_ok(&[
        "service",
        "update",
        "--detach",
        "--network-add",
        "front",
        "web",
    ]);
    harness::poll(
        "web on three networks",
        MINUTE,
        || c.dump(),
        || {
            let t = running_tasks(&c, "web");
            match t.first().map(nets) {
                Some(n) if t.len() == 1 && n == ["backend", "front", "ingress"] => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    );
    m.docker_ok(&[
        "service",
        "update",
        "--detach",
        "--network-rm",
        "backend",
        "--publish-rm",
        "80",
        "--publish-rm",
        "53/udp",
        "web",
    ]);
    harness::poll(
        "web on front only",
        MINUTE,
        || c.dump(),
        || {
            let t = running_tasks(&c, "web");
            match t.first().map(nets) {
                Some(n) if t.len() == 1 && n == ["front"] => Ok(()),
                other => Err(format!(
                    "{other:?}; endpoint spec: {}",
                    inspect("Spec")["EndpointSpec"]
                )),
            }
        },
    );
    let endpoint = inspect("Endpoint");
    assert!(endpoint["Ports"].is_null(), "{endpoint}");
    assert_eq!(
        endpoint["VirtualIPs"].as_array().map(Vec::len),
        Some(1),
        "{endpoint}"
    );
    // backend is free once no task holds an address on it any more.
    harness::poll(
        "backend removable",
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
    drop(c);
    drop(hosts);
}

/// `web`, answering what it sees of each client: a global service of host tasks whose
/// `/cgi-bin/who` prints the task's hostname and the client's address (`REMOTE_ADDR`), and
/// whose UDP port 5353 answers each datagram with the same (socat's `SOCAT_PEERADDR`).
fn create_who(m: &harness::Node, www: &str, publish: &[&str]) {
    let mut args = vec![
        "service",
        "create",
        "--no-resolve-image",
        "--detach",
        "--name",
        "web",
        "--mode",
        "global",
        "--stop-grace-period",
        "1s",
        "--env",
        www,
    ];
    for p in publish {
        args.extend(["--publish", p]);
    }
    args.extend([
        "host",
        "sh",
        "-c",
        concat!(
            "d=$WWW/$(hostname) && mkdir -p $d/cgi-bin && ",
            "printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $(hostname) $REMOTE_ADDR\\n' > $d/cgi-bin/who && ",
            "chmod +x $d/cgi-bin/who && ",
            "(socat UDP-RECVFROM:5353,fork SYSTEM:'echo $(hostname) $SOCAT_PEERADDR' &) && ",
            "exec busybox httpd -f -p 8080 -h $d",
        ),
    ]);
    m.docker_ok(&args);
}

/// The task and the client address in a `who` answer; busybox httpd listens on IPv6 too, so
/// its `REMOTE_ADDR` may be an IPv4-mapped `[::ffff:A.B.C.D]`.
fn who_and_from(answer: &str) -> (&str, &str) {
    let (who, from) = answer.split_once(' ').unwrap_or((answer, ""));
    let from = from.trim_start_matches('[').trim_end_matches(']');
    (who, from.strip_prefix("::ffff:").unwrap_or(from))
}

/// One datagram to `addr` from the namespace `netns`; the answer.
fn udp_in(netns: &Path, addr: &str) -> Result<String, String> {
    let at: std::net::SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let shown = format!("UDP to {addr} from {}", netns.display());
    shoal_testkit::hosts::in_netns(netns, move || -> Result<String, String> {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        s.send_to(b"who\n", at).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 512];
        let (n, _) = s.recv_from(&mut buf).map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
    })
    .map_err(|e| format!("{shown}: {e}"))?
    .map_err(|e| format!("{shown}: {e}"))
}

/// The routing mesh: a port published in ingress mode answers on every node and reaches the
/// tasks on all of them; one in host mode answers where a task runs, from that task; UDP as
/// well as TCP. Every task sees the client's own address, never a node's (moby#25526). Tasks
/// reach outside the cluster through their node's gateway network.
#[test]
fn published_ports_answer_on_every_node_with_the_clients_address() {
    if !ready() || !need(&[Need::Tool("socat")]) {
        return;
    }
    let (hosts, c) = three_nodes_on("mesh", "native", 1);
    let m = c.n(1);
    let client = hosts.host(4);
    let client_ns = client.netns_path();
    let client_addr = client.addr.to_string();
    let site = tempfile::tempdir().expect("site dir");
    let www = format!("WWW={}", site.path().display());
    create_who(
        m,
        &www,
        &[
            "published=8080,target=8080",
            "published=5353,target=5353,protocol=udp",
            "published=9090,target=8080,mode=host",
        ],
    );
    let webs = wait_running(&c, "web", 3);
    let hostname_on = |node: &str| -> String {
        let t = webs
            .iter()
            .find(|t| t["NodeID"] == node)
            .unwrap_or_else(|| panic!("no task on {node}"));
        t["ID"].as_str().expect("id").chars().take(12).collect()
    };
    let all: std::collections::BTreeSet<String> = webs
        .iter()
        .map(|t| t["ID"].as_str().expect("id").chars().take(12).collect())
        .collect();
    for (node_id, i) in c.ids() {
        let node_addr = hosts.host(i).addr;
        // Ingress mode: every node answers, and spreads the connections over every task.
        let url = format!("{node_addr}:8080");
        harness::poll(
            &format!("{url} answering through the mesh"),
            MINUTE,
            || c.dump(),
            || get_in(&client_ns, &url, "/cgi-bin/who"),
        );
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..40 {
            let got = get_in(&client_ns, &url, "/cgi-bin/who").expect("through the mesh");
            let (who, from) = who_and_from(&got);
            assert_eq!(
                from, client_addr,
                "the task saw {from}, not the client's own address, through {url}"
            );
            seen.insert(who.to_string());
        }
        assert_eq!(seen, all, "{url} reached these tasks only");
        // Host mode: the task on this node answers, from this node only.
        let url = format!("{node_addr}:9090");
        let got = harness::poll(
            &format!("{url} answering in host mode"),
            MINUTE,
            || c.dump(),
            || get_in(&client_ns, &url, "/cgi-bin/who"),
        );
        assert_eq!(
            who_and_from(&got),
            (hostname_on(&node_id).as_str(), client_addr.as_str()),
            "{url} in host mode"
        );
        // UDP through the mesh.
        let at = format!("{node_addr}:5353");
        let got = harness::poll(
            &format!("{at}/udp answering through the mesh"),
            MINUTE,
            || c.dump(),
            || udp_in(&client_ns, &at),
        );
        let (who, from) = who_and_from(&got);
        assert!(all.contains(who), "{at}/udp answered {got}");
        assert_eq!(
            from, client_addr,
            "the task saw {from}, not the client's own address, through {at}/udp"
        );
    }
    // The way out: a task reaches a host outside the cluster through its node, which
    // masquerades it.
    let listener = shoal_testkit::hosts::in_netns(&client_ns, || {
        std::net::TcpListener::bind("0.0.0.0:7070").expect("listen on the client host")
    })
    .expect("in the client host");
    let task = &webs[0];
    let task_ns = netns_of(&c, task);
    let out_to = format!("{client_addr}:7070").parse().expect("addr");
    shoal_testkit::hosts::in_netns(&task_ns, move || {
        TcpStream::connect_timeout(&out_to, Duration::from_secs(3))
    })
    .expect("in the task")
    .expect("the task reaching outside");
    let (_, peer) = listener.accept().expect("the task's connection");
    let (_, node_of_task) = c
        .ids()
        .into_iter()
        .find(|(id, _)| *id == task["NodeID"])
        .expect("a node");
    assert_eq!(
        peer.ip(),
        std::net::IpAddr::V4(hosts.host(node_of_task).addr),
        "the task's way out goes through its own node"
    );

    // With the service gone, no node answers and the ingress overlay goes everywhere.
    m.docker_ok(&["service", "rm", "web"]);
    let data_dirs: Vec<PathBuf> = (1..=3).map(|i| c.n(i).data_dir().to_path_buf()).collect();
    harness::poll(
        "the ingress overlay removed from every node",
        MINUTE,
        || c.dump(),
        || {
            let left: Vec<String> = data_dirs
                .iter()
                .flat_map(|d| {
                    std::fs::read_dir(d.join("net/overlay"))
                        .into_iter()
                        .flatten()
                        .flatten()
                })
                .map(|e| e.path().display().to_string())
                .collect();
            if left.is_empty() {
                Ok(())
            } else {
                Err(left.join(" "))
            }
        },
    );
    assert!(
        get_in(
            &client_ns,
            &format!("{}:8080", hosts.host(1).addr),
            "/cgi-bin/who"
        )
        .is_err(),
        "a port still answered with its service gone"
    );
    drop(c);
    drop(hosts);
}

/// A packet capture on the underlay, stopped (and its file kept) on drop.
struct Capture {
    child: std::process::Child,
    file: PathBuf,
}

impl Capture {
    /// Captures UDP on `iface` in the namespace `netns` into a file in `dir`.
    fn start(netns: &str, iface: &str, dir: &Path, name: &str) -> Capture {
        let file = dir.join(name);
        let child = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                netns,
                "tcpdump",
                "--immediate-mode",
                "-U",
                "-s",
                "0",
                "-i",
                iface,
                "-w",
            ])
            .arg(&file)
            .arg("udp")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tcpdump");
        // tcpdump writes the file's header once it listens.
        harness::poll(
            "tcpdump listening",
            MINUTE,
            String::new,
            || match std::fs::metadata(&file) {
                Ok(m) if m.len() > 0 => Ok(()),
                _ => Err("no capture file yet".to_string()),
            },
        );
        Capture { child, file }
    }

    /// Stops the capture; the captured bytes.
    fn finish(mut self) -> Vec<u8> {
        // Asked to stop, tcpdump writes out what it holds.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let _ = self.child.wait();
        std::fs::read(&self.file).expect("capture file")
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `--opt encrypted`: between nodes, an encrypted overlay's traffic is WireGuard (UDP 51820)
/// and a capture on the underlay never shows its payload, while the same page fetched over a
/// plain overlay shows in the clear; services still reach each other on it.
#[test]
fn an_encrypted_overlay_carries_no_plaintext_between_nodes() {
    if !ready() || !need(&[Need::Tool("tcpdump")]) {
        return;
    }
    let (hosts, c) = three_nodes("enc");
    let m = c.n(1);
    for (name, subnet, encrypted) in [
        ("plain", "10.79.0.0/24", false),
        ("secure", "10.79.1.0/24", true),
    ] {
        let mut args = vec!["network", "create", "-d", "overlay", "--subnet", subnet];
        if encrypted {
            args.extend(["--opt", "encrypted"]);
        }
        args.push(name);
        m.docker_ok(&args);
    }
    let inspect = m.docker_ok(&[
        "network",
        "inspect",
        "secure",
        "--format",
        "{{json .Options}}",
    ]);
    assert!(inspect.contains("encrypted"), "{inspect}");
    let site = tempfile::tempdir().expect("site dir");
    m.docker_ok(&[
        "service", "create", "--no-resolve-image", "--detach", "--name", "web", "--mode",
        "global", "--network", "plain", "--network", "secure", "--stop-grace-period", "1s",
        "--env", &format!("WWW={}", site.path().display()), "host", "sh", "-c",
        "d=$WWW/$(hostname) && mkdir -p $d && hostname > $d/index.html && exec busybox httpd -f -p 8080 -h $d",
    ]);
    let webs = wait_running(&c, "web", 3);
    // node1's task is the client; node2's the server.
    let on = |i: usize| {
        let (id, _) = c.ids().into_iter().find(|(_, n)| *n == i).expect("node");
        webs.iter()
            .find(|t| t["NodeID"] == id.as_str())
            .expect("a task on the node")
            .clone()
    };
    let (client, server) = (on(1), on(2));
    let marker: String = server["ID"]
        .as_str()
        .expect("id")
        .chars()
        .take(12)
        .collect();
    let from = netns_of(&c, &client);
    let captures = tempfile::tempdir().expect("capture dir");
    for (network, encrypted) in [("plain", false), ("secure", true)] {
        let url = format!("{}:8080", addr_on(&server, network));
        let cap = Capture::start(&hosts.bridge_netns, "h2", captures.path(), network);
        for _ in 0..5 {
            let got = harness::poll(
                &format!("the client reaching {url} over {network}"),
                MINUTE,
                || c.dump(),
                || curl_in(&from, &url),
            );
            assert_eq!(got.trim(), marker, "{network}");
        }
        let seen = cap.finish();
        let summary = std::process::Command::new("tcpdump")
            .args(["-n", "-r"])
            .arg(captures.path().join(network))
            .output()
            .expect("tcpdump -r");
        let summary = String::from_utf8_lossy(&summary.stdout).to_string();
        if encrypted {
            assert!(
                !contains(&seen, marker.as_bytes()),
                "the page crossed the underlay in the clear over the encrypted overlay"
            );
            assert!(
                summary.contains(".51820"),
                "no WireGuard traffic on the underlay:\n{summary}"
            );
            assert!(
                !summary.contains(".4789"),
                "VXLAN crossed the underlay outside the tunnel:\n{summary}"
            );
        } else {
            // The capture sees payloads: the plain overlay's page is there to read.
            assert!(
                contains(&seen, marker.as_bytes()),
                "the capture did not see the plain overlay's page:\n{summary}"
            );
        }
    }
    m.docker_ok(&["service", "rm", "web"]);
    drop(c);
    drop(hosts);
}
