//! Hosts for multi-node tests: each an `ip netns` namespace with one interface, `eth0`, on an
//! underlay bridge that lives in a namespace of its own (never the machine's), with addresses
//! from the documentation range 192.0.2.0/24.
//!
//! Everything is made inside the test's namespaces (a veth pair is created in the host's
//! namespace with its peer sent straight to the bridge's), so nothing touches the machine's own
//! network. Dropping [`Hosts`] kills every process still inside one of its namespaces and
//! deletes the namespaces, which takes their interfaces with them; that also runs when a test
//! fails. Names are `shoal-test-<run>-…` ([`crate::scoped_name`]), so `tests/run` finds any a
//! crashed run left.
//!
//! Commands run in a host through `nsenter --net`, not `ip netns exec`: the latter also mounts a
//! fresh `/sys`, where a daemon would find no cgroups.

use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;

/// One simulated machine.
#[derive(Debug)]
pub struct Host {
    /// The namespace's name (`ip netns list`).
    pub netns: String,
    /// Its address on the underlay.
    pub addr: Ipv4Addr,
}

impl Host {
    /// `/run/netns/<name>`: what `nsenter --net=` and `setns` take.
    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.netns)
    }

    /// `program` run inside this host's network namespace, with the machine's mounts.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.netns_path().display()))
            .arg("--")
            .arg(program);
        c
    }

    /// Runs `f` on a thread that has entered this host's network namespace: sockets it opens
    /// live there.
    pub fn in_netns<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        in_netns(&self.netns_path(), f)
    }
}

/// Runs `f` on a thread that has entered the network namespace at `path` (`/run/netns/NAME`,
/// `/proc/PID/ns/net` or any bind mount of one): sockets it opens live there.
pub fn in_netns<T: Send + 'static>(
    path: &std::path::Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("setns {}: {e}", path.display()))?;
        Ok(f())
    })
    .join()
    .map_err(|_| "the thread in the namespace panicked".to_string())?
}

/// Hosts on one underlay bridge; all of it removed on drop.
#[derive(Debug)]
pub struct Hosts {
    /// The namespace holding the bridge `br0`.
    pub bridge_netns: String,
    pub hosts: Vec<Host>,
}

/// The underlay's prefix length: 192.0.2.0/24.
pub const UNDERLAY_PREFIX: u8 = 24;

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Hosts {
    /// `n` hosts (at most 200) named after `test`, host `i` (from 1) at 192.0.2.(10 + i).
    pub fn new(test: &str, n: usize) -> Result<Hosts, String> {
        if n > 200 {
            return Err(format!("{n} hosts do not fit in 192.0.2.0/24 from .11"));
        }
        let mut hosts = Hosts {
            bridge_netns: crate::scoped_name("net", &format!("{test}-{}-br", std::process::id())),
            hosts: Vec::new(),
        };
        // On error, the Drop of what was made so far removes it.
        ip(&["netns", "add", &hosts.bridge_netns])?;
        let br = hosts.bridge_netns.clone();
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        for i in 1..=n {
            let host = Host {
                netns: crate::scoped_name("net", &format!("{test}-{}-h{i}", std::process::id())),
                addr: Ipv4Addr::new(192, 0, 2, 10 + i as u8),
            };
            ip(&["netns", "add", &host.netns])?;
            let ns = host.netns.clone();
            hosts.hosts.push(host);
            let peer = format!("h{i}");
            ip(&[
                "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &peer, "netns",
                &br,
            ])?;
            ip(&["-n", &br, "link", "set", &peer, "master", "br0"])?;
            ip(&["-n", &br, "link", "set", &peer, "up"])?;
            let cidr = format!("192.0.2.{}/{UNDERLAY_PREFIX}", 10 + i);
            ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(hosts)
    }

    /// Host `i`, counted from 1.
    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i - 1]
    }

    fn all_netns(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.bridge_netns.as_str())
            .chain(self.hosts.iter().map(|h| h.netns.as_str()))
    }
}

/// The processes whose network namespace is the one at `path`.
pub fn processes_in_netns(path: &std::path::Path) -> Vec<i32> {
    let Ok(target) = std::fs::metadata(path).map(|m| (m.dev(), m.ino())) else {
        return Vec::new();
    };
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| *p != me)
        .filter(|p| {
            std::fs::metadata(format!("/proc/{p}/ns/net"))
                .is_ok_and(|m| (m.dev(), m.ino()) == target)
        })
        .collect()
}

/// SIGKILLs every process in the network namespace at `path` until none is left (5 s at most),
/// so the namespace can go.
pub fn kill_processes_in_netns(path: &std::path::Path) {
    for _ in 0..50 {
        let pids = processes_in_netns(path);
        if pids.is_empty() {
            return;
        }
        for p in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let names: Vec<String> = self.all_netns().map(str::to_owned).collect();
        for name in &names {
            kill_processes_in_netns(&PathBuf::from("/run/netns").join(name));
            let _ = ip(&["netns", "delete", name]);
        }
    }
}
