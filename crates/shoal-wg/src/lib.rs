//! Encrypted node-to-node transport for overlay networks (`network create -d overlay --opt
//! encrypted`): an embedded userspace WireGuard.
//!
//! The kernels shoal runs on may lack IPsec ESP algorithms, kernel WireGuard and loadable
//! modules, but have TUN. So each node runs a [`Tunnel`]: a TUN device (`shwg0`) in the node's
//! network namespace whose peers are the other nodes, with WireGuard's protocol from boringtun's
//! `noise` module. Every node's tunnel address is derived from its underlay IPv4 address
//! ([`inner_addr`]); the overlay's VXLAN devices use those addresses as their local and remote
//! endpoints, so their UDP travels inside the tunnel and the underlay only ever sees WireGuard
//! UDP on the listen port.
//!
//! Modules: `keys` (static keys), `config` (what a tunnel starts with, and its checks), `peers`
//! (the peer set and its sessions, key changes without a gap), `datapath` (what happens to each
//! packet, free of I/O so it is tested in memory) and `tunnel` (device, socket, threads). `mem`
//! holds nodes in memory for the tests; with the `fuzzing` feature (off by default) a hidden
//! `fuzzing` module drives the receive path on them for the fuzz target `wg_datagram` (not API).
//!
//! For the integration: VXLAN between tunnel addresses is VXLAN over IPv6, 70 bytes more (IPv6
//! 40, UDP 8, VXLAN 8, inner Ethernet 14), so an encrypted overlay's MTU is the underlay's less
//! [`WG_OVERHEAD`] less 70 (1350 on a 1500-byte underlay).
//!
//! Concurrency: a [`Tunnel`] runs three threads of its own (TUN → network, network → TUN,
//! timers); its methods take `&self` and may be called from any thread. The TUN device and the
//! UDP socket are made on a short-lived thread that has entered the target namespace; the
//! calling threads never change namespace.

mod config;
mod datapath;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod keys;
#[cfg(any(test, feature = "fuzzing"))]
mod mem;
mod peers;
mod setup;
mod tunnel;
mod workers;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::path::PathBuf;

pub use config::{Peer, TunnelConfig};
pub use keys::{KeyError, Keypair, PrivateKey, PublicKey};
pub use tunnel::{PeerStats, Tunnel, TunnelStats};

/// The tunnel addresses' prefix: the ULA `fd53:686f:616c::/48` (its global ID is "Shoal" in
/// ASCII) with subnet 1, and the node's IPv4 underlay address in the last 32 bits.
pub const INNER_PREFIX: Ipv6Addr = Ipv6Addr::new(0xfd53, 0x686f, 0x616c, 1, 0, 0, 0, 0);
/// The prefix length of [`INNER_PREFIX`]: 128 - 32, so the IPv4 address fits whole.
pub const INNER_PREFIX_LEN: u8 = 96;

/// What WireGuard adds to a packet, at most: outer IPv6 header (40) + UDP (8) + WireGuard
/// data header (16) + Poly1305 tag (16). Over an IPv4 underlay the exact figure is 60, but we
/// take the 80 that `wg-quick` takes: it still fits if an underlay ever carries IPv6, and it
/// leaves room for the padding to 16 bytes the protocol allows (boringtun does not pad today;
/// other implementations do). The inner MTU is the underlay's less this.
pub const WG_OVERHEAD: u32 = 80;

/// The smallest inner MTU: the kernel refuses IPv6 on a device below 1280 bytes.
pub const MIN_INNER_MTU: u32 = 1280;

/// The tunnel address of the node whose underlay address is `underlay`:
/// `fd53:686f:616c:1::a.b.c.d`. The map is one-to-one, so two nodes never share one.
pub fn inner_addr(underlay: Ipv4Addr) -> Ipv6Addr {
    let [a, b, c, d] = underlay.octets();
    let p = INNER_PREFIX.segments();
    Ipv6Addr::new(
        p[0],
        p[1],
        p[2],
        p[3],
        0,
        0,
        u16::from_be_bytes([a, b]),
        u16::from_be_bytes([c, d]),
    )
}

/// The underlay address `inner` was derived from, if it is a tunnel address at all.
pub fn underlay_of(inner: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = inner.octets();
    let prefix = INNER_PREFIX.octets();
    if o[..12] != prefix[..12] {
        return None;
    }
    Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
}

/// The inner MTU for an underlay MTU: the underlay's less [`WG_OVERHEAD`].
pub fn inner_mtu(underlay_mtu: u32) -> u32 {
    underlay_mtu.saturating_sub(WG_OVERHEAD)
}

#[derive(Debug, thiserror::Error)]
pub enum WgError {
    /// An argument the caller can correct: `field` names it (`peers[2].inner`).
    #[error("{field}: {why}")]
    InvalidArgument { field: String, why: String },
    #[error("entering the network namespace {}", path.display())]
    Netns {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The TUN device could not be made or configured; `what` says which step failed.
    #[error("TUN device {device} in {}: {what}", netns.display())]
    Device {
        device: String,
        netns: PathBuf,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("UDP socket on {addr} in {}", netns.display())]
    Socket {
        addr: SocketAddrV4,
        netns: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Starting one of the tunnel's threads failed.
    #[error("starting the tunnel thread {name}")]
    Thread {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl WgError {
    pub(crate) fn invalid(field: impl Into<String>, why: impl Into<String>) -> WgError {
        WgError::InvalidArgument {
            field: field.into(),
            why: why.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_addresses_embed_the_underlay_address() {
        let a = inner_addr(Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(
            a,
            "fd53:686f:616c:1::c000:201"
                .parse::<Ipv6Addr>()
                .expect("literal")
        );
        assert_eq!(a.to_string(), "fd53:686f:616c:1::c000:201");
        assert_eq!(underlay_of(a), Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(underlay_of("fd00::1".parse().expect("literal")), None);
        // One-to-one: neighbours, and addresses differing only in one byte, do not collide.
        let mut seen = std::collections::HashSet::new();
        for x in 0..=255u8 {
            for y in [0u8, 1, 128, 255] {
                assert!(seen.insert(inner_addr(Ipv4Addr::new(10, y, x, y))));
                assert!(seen.insert(inner_addr(Ipv4Addr::new(y, x, 0, 7))));
            }
        }
    }

    #[test]
    fn inner_mtu_leaves_room_for_wireguard() {
        assert_eq!(inner_mtu(1500), 1420);
        assert_eq!(inner_mtu(9000), 8920);
        assert_eq!(inner_mtu(50), 0);
    }
}
