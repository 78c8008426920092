//! The harness of `tests/nat.rs`: namespaces and processes that go on Drop, commands run in a
//! namespace, `socat` servers that name themselves and the peer they saw, and clients that
//! connect from inside a namespace. Polls count their tries: no clock.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ipnet::Ipv4Net;
use shoal_net::{Attachment, attach, bridge_name, create_netns, delete_netns, mac_for};
use shoal_testkit::hosts::{in_netns, kill_processes_in_netns};
use shoal_testkit::need::find_tool;
use shoal_testkit::{Need, need};

pub fn needs(extra: &[Need]) -> bool {
    let mut all = vec![
        Need::Root,
        Need::Probed {
            key: "nft",
            present: find_tool("nft").is_some(),
            what: "`nft` on PATH".into(),
            fix: "apt-get install nftables".into(),
        },
        Need::Tool("socat"),
        Need::Tool("nsenter"),
        Need::Tool("ip"),
    ];
    all.extend_from_slice(extra);
    need(&all)
}

/// Namespaces made by `create_netns` in a temp dir; on Drop, the processes inside are killed
/// and the namespaces released.
pub struct Namespaces {
    dir: tempfile::TempDir,
    names: Vec<&'static str>,
}

impl Namespaces {
    pub fn new(names: &[&'static str]) -> Namespaces {
        let made = Namespaces {
            dir: tempfile::Builder::new()
                .prefix("shoal-nat-")
                .tempdir()
                .expect("tempdir"),
            names: names.to_vec(),
        };
        for n in names {
            create_netns(&made.path(n)).expect("create_netns");
        }
        made
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.names {
            let path = self.path(n);
            kill_processes_in_netns(&path);
            let _ = delete_netns(&path);
        }
    }
}

/// Processes the test started; killed and reaped on Drop.
#[derive(Default)]
pub struct Procs(pub Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
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

/// Runs a command in `netns` and returns its stdout, whatever its exit status.
pub fn output(netns: &Path, args: &[&str]) -> String {
    let out = nsenter(netns, args).output().expect("run nsenter");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn sh(netns: &Path, args: &[&str]) {
    let out = nsenter(netns, args).output().expect("run nsenter");
    assert!(
        out.status.success(),
        "{} in {}: {}",
        args.join(" "),
        netns.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A sysctl of the namespace: /proc/sys/net shows the namespace of the thread that opens it.
pub fn net_sysctl(netns: &Path, name: &str) -> String {
    let file = format!("/proc/sys/net/{name}");
    in_netns(netns, move || std::fs::read_to_string(&file))
        .expect("enter the namespace")
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .trim()
        .to_owned()
}

pub fn forwarding_on(netns: &Path) {
    in_netns(netns, || {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
    })
    .expect("enter the namespace")
    .expect("turn forwarding on");
}

/// A bridge named after `vni`, so that `attach` plugs namespaces into it.
pub fn bridge(netns: &Path, vni: u32, addr: Option<&str>) {
    let br = bridge_name(vni);
    sh(netns, &["ip", "link", "add", &br, "type", "bridge"]);
    if let Some(a) = addr {
        sh(netns, &["ip", "addr", "add", a, "dev", &br]);
    }
    sh(netns, &["ip", "link", "set", &br, "up"]);
}

/// Plugs `netns` into the bridge of `vni` in `bridge_ns` as `name` with `cidr`; its MAC.
pub fn plug(
    bridge_ns: &Path,
    vni: u32,
    netns: &Path,
    cidr: &str,
    name: &str,
    host: &str,
) -> [u8; 6] {
    let addr: Ipv4Net = cidr.parse().expect("cidr");
    let mac = mac_for(addr.addr());
    let a = Attachment {
        addr,
        mac,
        name: name.into(),
        host_name: host.into(),
    };
    attach(bridge_ns, vni, netns, &a).expect("attach");
    mac
}

/// A TCP server in `netns` that greets each connection with `"<name> <peer address>"`, then
/// echoes what it gets.
pub fn serve_tcp(procs: &mut Procs, netns: &Path, port: u16, name: &str) {
    let listen = format!("TCP-LISTEN:{port},fork,reuseaddr");
    let reply = format!("SYSTEM:echo {name} $SOCAT_PEERADDR; exec cat");
    spawn(procs, netns, &["socat", &listen, &reply]);
    let at = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..100 {
        if greeting(netns, at).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{name}: nothing listens on port {port} in {}",
        netns.display()
    );
}

/// A UDP server in `netns` that answers each datagram with `"<name> <peer address>"`.
pub fn serve_udp(procs: &mut Procs, netns: &Path, port: u16, name: &str) {
    let listen = format!("UDP-RECVFROM:{port},fork");
    let reply = format!("SYSTEM:echo {name} $SOCAT_PEERADDR");
    spawn(procs, netns, &["socat", &listen, &reply]);
    let at = SocketAddr::from(([127, 0, 0, 1], port));
    let mut last = None;
    for _ in 0..100 {
        match ask_udp(netns, at) {
            Ok(_) => return,
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{name}: no answer on UDP port {port}: {last:?}");
}

pub fn spawn(procs: &mut Procs, netns: &Path, args: &[&str]) {
    let child = nsenter(netns, args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start socat");
    procs.0.push(child);
}

/// Connects from `netns` to `to` (within `timeout`) and reads the server's first line.
pub fn greeting_within(netns: &Path, to: SocketAddr, timeout: Duration) -> std::io::Result<String> {
    in_netns(netns, move || {
        let s = TcpStream::connect_timeout(&to, timeout)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line)?;
        Ok(line.trim().to_owned())
    })
    .expect("enter the namespace")
}

pub fn greeting(netns: &Path, to: SocketAddr) -> std::io::Result<String> {
    greeting_within(netns, to, Duration::from_secs(5))
}

/// How many of `n` connections from `netns` to `to` landed on each server, and the peer
/// addresses the servers saw.
pub fn spread(netns: &Path, to: SocketAddr, n: usize) -> (BTreeMap<String, usize>, Vec<String>) {
    let mut landed = BTreeMap::new();
    let mut peers = Vec::new();
    for i in 0..n {
        let line = greeting(netns, to).unwrap_or_else(|e| panic!("connection {i} to {to}: {e}"));
        let (name, peer) = line.split_once(' ').unwrap_or((&line, ""));
        *landed.entry(name.to_owned()).or_insert(0) += 1;
        peers.push(peer.to_owned());
    }
    peers.sort();
    peers.dedup();
    (landed, peers)
}

/// Sends a datagram from `netns` to `to` and returns the answer; a few tries, as UDP may lose
/// the first to ARP.
pub fn ask_udp(netns: &Path, to: SocketAddr) -> std::io::Result<String> {
    in_netns(netns, move || {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect(to)?;
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
        let mut buf = [0u8; 256];
        let mut last = std::io::Error::other("no try");
        for _ in 0..10 {
            s.send(b"hello\n")?;
            match s.recv(&mut buf) {
                Ok(n) => return Ok(String::from_utf8_lossy(&buf[..n]).trim().to_owned()),
                Err(e) => last = e,
            }
        }
        Err(last)
    })
    .expect("enter the namespace")
}

pub fn tables(netns: &Path) -> String {
    output(netns, &["nft", "list", "tables"])
}

/// An open connection through a VIP, and the backend it landed on.
pub struct Held {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    pub backend: String,
}

impl Held {
    pub fn open(netns: &Path, to: SocketAddr) -> Held {
        let stream = in_netns(netns, move || {
            TcpStream::connect_timeout(&to, Duration::from_secs(5))
        })
        .expect("enter")
        .expect("connect through the VIP");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut line = String::new();
        reader.read_line(&mut line).expect("greeting");
        let backend = line.split(' ').next().unwrap_or_default().to_owned();
        Held {
            stream,
            reader,
            backend,
        }
    }

    /// Whether the connection still carries data both ways.
    pub fn echoes(&mut self, word: &str) -> bool {
        if self
            .stream
            .write_all(format!("{word}\n").as_bytes())
            .is_err()
        {
            return false;
        }
        let mut line = String::new();
        self.reader.read_line(&mut line).is_ok() && line.trim() == word
    }
}

/// Sets `netns` up as dockerd leaves a host: FORWARD policy DROP, `DOCKER-USER` jumped to first.
pub fn as_dockerd_leaves_it(netns: &Path) {
    sh(netns, &["iptables", "-w", "-N", "DOCKER-USER"]);
    sh(
        netns,
        &["iptables", "-w", "-A", "DOCKER-USER", "-j", "RETURN"],
    );
    sh(
        netns,
        &["iptables", "-w", "-A", "FORWARD", "-j", "DOCKER-USER"],
    );
    sh(netns, &["iptables", "-w", "-P", "FORWARD", "DROP"]);
}

pub fn rules_naming(netns: &Path, chain: &str, bridge: &str) -> Vec<String> {
    output(netns, &["iptables", "-w", "-S", chain])
        .lines()
        .filter(|l| l.contains(bridge))
        .map(str::to_owned)
        .collect()
}
