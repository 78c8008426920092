//! Holding a port of a namespace: a socket bound to it, so that nothing else there can take it
//! while it is forwarded elsewhere (Docker binds a published port on the host the same way).
//!
//! The socket is made on a thread that entered the namespace, and stays in that namespace
//! when the thread is gone; the caller keeps it for as long as the port is held.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;

use crate::NetError;
use crate::nat::Proto;

/// A port held in a namespace; released when dropped.
#[derive(Debug)]
pub enum HeldPort {
    /// Listening, and never accepted from: connections to the port are translated before
    /// they could reach it.
    Tcp(TcpListener),
    Udp(UdpSocket),
}

impl HeldPort {
    /// The port held (the one the kernel picked, when asked for 0).
    pub fn port(&self) -> u16 {
        let addr = match self {
            HeldPort::Tcp(s) => s.local_addr(),
            HeldPort::Udp(s) => s.local_addr(),
        };
        addr.map(|a| a.port()).unwrap_or(0)
    }
}

/// Binds `port` (`0`: any free one) of `addr` (`0.0.0.0`: every address) in `netns`. The inner
/// error is the bind's own (`AddrInUse` when something has the port): the caller words it; the
/// outer one is the namespace's.
pub fn hold_port(
    netns: &Path,
    proto: Proto,
    addr: Ipv4Addr,
    port: u16,
) -> Result<std::io::Result<HeldPort>, NetError> {
    let path = netns.to_path_buf();
    let at = SocketAddr::from((addr, port));
    std::thread::spawn(move || -> std::io::Result<std::io::Result<HeldPort>> {
        let ns = std::fs::File::open(&path)?;
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
        Ok(match proto {
            Proto::Tcp => TcpListener::bind(at).map(HeldPort::Tcp),
            Proto::Udp => UdpSocket::bind(at).map(HeldPort::Udp),
        })
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("the binding thread panicked")))
    .map_err(|source| NetError::Netns {
        path: netns.to_path_buf(),
        source,
    })
}
