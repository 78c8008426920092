//! The harness of `tests/local_networks.rs`: a node (an `ip netns` host on an underlay,
//! `shoal_testkit::hosts`) whose `NetAgent` works in the host's namespace, in front of the fake
//! runtime; servers (`socat`) run inside tasks' namespaces; clients and DNS queries from
//! sockets opened inside a namespace.
//!
//! Everything goes on Drop, passed or failed: the processes started, the namespaces the agent
//! made under its temp dir (tasks, overlays), then the hosts, which take their bridges, nftables
//! tables and iptables rules with them.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use shoal_netagent::{NetAgent, NetAgentConfig};
use shoal_runtime::fake::{FakeDriver, FakeNode};
use shoal_runtime::{RuntimeDriver, TaskRun};
use shoal_testkit::hosts::{Hosts, in_netns, kill_processes_in_netns};
use shoal_testkit::need::find_tool;
use shoal_testkit::{Need, need};
use shoal_types::local_net::{LocalAttachment, PortBinding};
use shoal_types::service::ContainerSpec;
use shoal_types::{Id, IdGen};

pub fn needs() -> bool {
    need(&[
        Need::Root,
        Need::Probed {
            key: "nft",
            present: find_tool("nft").is_some(),
            what: "`nft` on PATH".into(),
            fix: "apt-get install nftables".into(),
        },
        Need::Tool("iptables"),
        Need::Tool("socat"),
        Need::Tool("nsenter"),
        Need::Tool("ip"),
    ])
}

/// One node and its network agent, on `hosts` hosts (the node is host 1).
pub struct Node {
    pub procs: Vec<Child>,
    pub agent: Option<Arc<NetAgent>>,
    pub driver: Option<Arc<dyn RuntimeDriver>>,
    pub fake: FakeNode,
    pub dir: tempfile::TempDir,
    pub hosts: Hosts,
}

impl Node {
    pub fn new(test: &str, hosts: usize) -> Node {
        let mut node = Node {
            procs: Vec::new(),
            agent: None,
            driver: None,
            fake: FakeNode::new(),
            dir: tempfile::Builder::new()
                .prefix("shoal-localnet-")
                .tempdir()
                .expect("tempdir"),
            hosts: Hosts::new(test, hosts).expect("hosts"),
        };
        node.start_agent();
        node
    }

    /// A new agent (and driver) on the same directory and runtime, as a restarted daemon.
    pub fn start_agent(&mut self) {
        let agent = NetAgent::with_config(NetAgentConfig {
            dir: self.dir.path().to_path_buf(),
            node_netns: Some(self.netns()),
            clock: Arc::new(shoal_types::clock::SystemClock),
            ids: IdGen::from_os(),
        });
        self.driver = Some(agent.wrap(Arc::new(FakeDriver::on(&self.fake))));
        self.agent = Some(agent);
    }

    pub fn agent(&self) -> &NetAgent {
        self.agent.as_deref().expect("an agent")
    }

    pub fn driver(&self) -> &dyn RuntimeDriver {
        self.driver.as_deref().expect("a driver")
    }

    /// The node's namespace.
    pub fn netns(&self) -> PathBuf {
        self.hosts.host(1).netns_path()
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.hosts.host(1).addr
    }

    pub fn task_netns(&self, task: &str) -> PathBuf {
        self.dir.path().join("task").join(task)
    }

    /// A TCP server in the task that greets each connection with `"<name> <peer address>"`.
    pub fn serve(&mut self, task: &str, port: u16, name: &str) {
        let netns = self.task_netns(task);
        self.serve_in(&netns, port, name);
    }

    pub fn serve_in(&mut self, netns: &Path, port: u16, name: &str) {
        let listen = format!("TCP-LISTEN:{port},fork,reuseaddr");
        let reply = format!("SYSTEM:echo {name} $SOCAT_PEERADDR; exec cat");
        let child = nsenter(netns, &["socat", &listen, &reply])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start socat");
        self.procs.push(child);
        let at = SocketAddr::from(([127, 0, 0, 1], port));
        let mut last = None;
        for _ in 0..100 {
            match greeting(netns, at, Duration::from_secs(1)) {
                Ok(_) => return,
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{name}: nothing listens on port {port} in {}: {last:?}",
            netns.display()
        );
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for c in &mut self.procs {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.driver = None;
        self.agent = None;
        for sub in ["task", "overlay"] {
            let Ok(entries) = std::fs::read_dir(self.dir.path().join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                kill_processes_in_netns(&e.path());
                let _ = shoal_net::delete_netns(&e.path());
            }
        }
    }
}

pub fn nsenter(netns: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={}", netns.display()))
        .arg("--")
        .args(args);
    c
}

/// What a command run in `netns` printed, whatever its exit status.
pub fn output(netns: &Path, args: &[&str]) -> String {
    let out = nsenter(netns, args).output().expect("run nsenter");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Connects from `netns` to `to` and reads the server's first line.
pub fn greeting(netns: &Path, to: SocketAddr, timeout: Duration) -> std::io::Result<String> {
    in_netns(netns, move || {
        let s = TcpStream::connect_timeout(&to, timeout)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line)?;
        Ok(line.trim().to_owned())
    })
    .expect("enter the namespace")
}

/// The A records the DNS server at 127.0.0.11 in `netns` gives for `name`; empty for any
/// answer but NOERROR, or none.
pub fn resolve(netns: &Path, name: &str) -> Vec<Ipv4Addr> {
    let query = dns_query(name);
    in_netns(netns, move || -> std::io::Result<Vec<Ipv4Addr>> {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
        let mut buf = [0u8; 1500];
        for _ in 0..6 {
            s.send_to(&query, "127.0.0.11:53")?;
            if let Ok(n) = s.recv(&mut buf) {
                return Ok(a_records(&buf[..n]));
            }
        }
        Err(std::io::Error::other("no answer from 127.0.0.11"))
    })
    .expect("enter the namespace")
    .unwrap_or_else(|e| panic!("resolving {name} in {}: {e}", netns.display()))
}

fn dns_query(name: &str) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

fn a_records(p: &[u8]) -> Vec<Ipv4Addr> {
    let get = |i: usize| p.get(i).copied().unwrap_or(0) as usize;
    if p.len() < 12 || p[3] & 0x0f != 0 {
        return Vec::new();
    }
    let answers = get(6) << 8 | get(7);
    let mut i = 12;
    // The question's name, then its type and class.
    while get(i) != 0 {
        i += 1 + get(i);
    }
    i += 5;
    let mut out = Vec::new();
    for _ in 0..answers {
        // A compressed name (a pointer) or labels.
        if get(i) & 0xc0 == 0xc0 {
            i += 2;
        } else {
            while get(i) != 0 {
                i += 1 + get(i);
            }
            i += 1;
        }
        let kind = get(i) << 8 | get(i + 1);
        let len = get(i + 8) << 8 | get(i + 9);
        i += 10;
        if kind == 1 && len == 4 && i + 4 <= p.len() {
            out.push(Ipv4Addr::new(p[i], p[i + 1], p[i + 2], p[i + 3]));
        }
        i += len;
    }
    out.sort();
    out
}

/// A standalone container's task on `nets` (network, aliases), publishing `publish`.
pub fn run(id: &str, nets: &[(&str, &[&str])], publish: Vec<PortBinding>) -> TaskRun {
    TaskRun {
        task_id: Id::from_raw(id),
        task_name: format!("{id}.{id}"),
        service_id: Id::default(),
        service_name: String::new(),
        node_id: Id::default(),
        slot: 0,
        container: ContainerSpec {
            image: "busybox".into(),
            command: vec!["sleep".into(), "1000".into()],
            ..Default::default()
        },
        resources: Default::default(),
        hostname: id.into(),
        networks: Vec::new(),
        netns: None,
        files: Vec::new(),
        local_networks: nets
            .iter()
            .map(|(n, aliases)| LocalAttachment {
                network: n.to_string(),
                aliases: aliases.iter().map(|a| a.to_string()).collect(),
            })
            .collect(),
        publish,
    }
}

pub fn tcp(host_port: u16, container_port: u16) -> PortBinding {
    PortBinding {
        host_ip: None,
        host_port,
        container_port,
        protocol: shoal_types::service::Protocol::Tcp,
    }
}

/// Whether a connection from `netns` to `to` fails (within 1 s).
pub fn unreachable(netns: &Path, to: SocketAddr) -> bool {
    greeting(netns, to, Duration::from_secs(1)).is_err()
}
