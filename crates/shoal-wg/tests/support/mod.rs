//! Two namespaces joined by a veth pair (`eth0` in each, 192.0.2.1/24 and 192.0.2.2/24), for
//! the tunnel tests and the throughput bench. Both namespaces go on Drop, with any process the
//! test left in them, whether the test passed or not.
//!
//! Names are `shoal-test-<run>-net-wgt-a-<pid>-<tag>` (and `-b-`): the test kit's prefix lets
//! `tests/run` find what a crashed run left.

#![allow(dead_code)] // each test target uses part of it

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rand::SeedableRng;
use shoal_wg::{Keypair, Peer, Tunnel, TunnelConfig};

pub const PORT: u16 = 51820;
pub const DEVICE: &str = "shwg0";

pub struct Pair {
    names: Vec<String>,
}

pub fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Pair {
    pub fn new(tag: &str) -> Pair {
        let pid = std::process::id();
        let mut pair = Pair { names: Vec::new() };
        for side in ["a", "b"] {
            let name = shoal_testkit::scoped_name("net", &format!("wgt-{side}-{pid}-{tag}"));
            ip(&["netns", "add", &name]).expect("ip netns add");
            // Recorded before anything else can fail, so Drop removes it.
            pair.names.push(name);
        }
        let (a, b) = (pair.names[0].clone(), pair.names[1].clone());
        ip(&[
            "-n", &a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &b,
        ])
        .expect("veth pair");
        for (i, ns) in [&a, &b].into_iter().enumerate() {
            let cidr = format!("{}/24", pair.underlay(i));
            ip(&["-n", ns, "addr", "add", &cidr, "dev", "eth0"]).expect("address");
            ip(&["-n", ns, "link", "set", "eth0", "up"]).expect("eth0 up");
            ip(&["-n", ns, "link", "set", "lo", "up"]).expect("lo up");
        }
        pair
    }

    /// `/run/netns/<name>` of side `i` (0 = a, 1 = b).
    pub fn path(&self, i: usize) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.names[i])
    }

    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    pub fn underlay(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, 1 + i as u8)
    }

    pub fn listen(&self, i: usize) -> SocketAddrV4 {
        SocketAddrV4::new(self.underlay(i), PORT)
    }

    /// A config for side `i` whose one peer is the other side with `peer_key`.
    pub fn config(
        &self,
        i: usize,
        me: &Keypair,
        peer_key: shoal_wg::PublicKey,
        psk: Option<[u8; 32]>,
    ) -> TunnelConfig {
        TunnelConfig {
            device: DEVICE.into(),
            private_key: me.private.clone(),
            listen: self.listen(i),
            underlay_mtu: 1500,
            preshared_key: psk,
            peers: vec![Peer::new(peer_key, self.listen(1 - i))],
        }
    }

    /// A tunnel in each namespace, each the other's peer.
    pub fn tunnels(&self, psk: Option<[u8; 32]>) -> (Tunnel, Tunnel, Keypair, Keypair) {
        let mut rng = rand::rngs::StdRng::from_os_rng();
        let (ka, kb) = (Keypair::generate(&mut rng), Keypair::generate(&mut rng));
        let a =
            Tunnel::start(&self.path(0), self.config(0, &ka, kb.public, psk)).expect("tunnel a");
        let b =
            Tunnel::start(&self.path(1), self.config(1, &kb, ka.public, psk)).expect("tunnel b");
        (a, b, ka, kb)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for name in &self.names {
            shoal_testkit::hosts::kill_processes_in_netns(&PathBuf::from("/run/netns").join(name));
            let _ = ip(&["netns", "delete", name]);
        }
    }
}

/// Runs `f` on a thread inside the namespace at `path`: sockets it opens live there.
pub fn inside<T: Send + 'static>(path: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    shoal_testkit::hosts::in_netns(path, f).expect("enter the namespace")
}

/// A TCP listener at `addr` inside `ns`.
pub fn listen_tcp(ns: &Path, addr: SocketAddr) -> TcpListener {
    inside(ns, move || TcpListener::bind(addr)).expect("bind in the namespace")
}

/// A connection from inside `ns` to `addr`.
pub fn connect_tcp(ns: &Path, addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    inside(ns, move || TcpStream::connect_timeout(&addr, timeout))
}

/// Sends `payload` from `client_ns` to an echo server at `addr` in `server_ns` and returns
/// what came back.
pub fn tcp_echo(
    server_ns: &Path,
    client_ns: &Path,
    addr: SocketAddr,
    payload: &[u8],
) -> Result<Vec<u8>, String> {
    let listener = listen_tcp(server_ns, addr);
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut c, _) = listener.accept()?;
        c.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut got = Vec::new();
        c.read_to_end(&mut got)?;
        c.write_all(&got)?;
        Ok(())
    });
    let mut c = connect_tcp(client_ns, addr, Duration::from_secs(5))
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    c.write_all(payload).map_err(|e| format!("writing: {e}"))?;
    c.shutdown(std::net::Shutdown::Write)
        .map_err(|e| e.to_string())?;
    let mut back = Vec::new();
    c.read_to_end(&mut back)
        .map_err(|e| format!("reading the echo: {e}"))?;
    match server.join() {
        Ok(Ok(())) => Ok(back),
        Ok(Err(e)) => Err(format!("echo server: {e}")),
        Err(_) => Err("echo server panicked".into()),
    }
}
