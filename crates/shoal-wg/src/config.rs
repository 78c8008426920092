//! What a tunnel is started with, and the checks that name the field at fault.

use std::collections::HashSet;
use std::fmt;
use std::net::{Ipv6Addr, SocketAddrV4};

use crate::keys::{PrivateKey, PublicKey};
use crate::{MIN_INNER_MTU, WG_OVERHEAD, WgError, inner_addr, inner_mtu, underlay_of};

/// Another node, as this node's tunnel knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    pub public_key: PublicKey,
    /// Its tunnel's UDP address on the underlay.
    pub endpoint: SocketAddrV4,
    /// Its tunnel address: the only source address accepted from it, and the destination that
    /// selects it (cryptokey routing).
    pub inner: Ipv6Addr,
}

impl Peer {
    /// A peer whose tunnel address follows the rule ([`inner_addr`] of its endpoint's address).
    pub fn new(public_key: PublicKey, endpoint: SocketAddrV4) -> Peer {
        Peer {
            public_key,
            endpoint,
            inner: inner_addr(*endpoint.ip()),
        }
    }
}

#[derive(Clone)]
pub struct TunnelConfig {
    /// The TUN device's name (at most 15 bytes), e.g. `shwg0`.
    pub device: String,
    pub private_key: PrivateKey,
    /// The node's underlay address and the WireGuard port (51820 by convention; 0 lets the
    /// kernel choose, see [`crate::Tunnel::listen_addr`]). The node's tunnel address is
    /// [`inner_addr`] of this address.
    pub listen: SocketAddrV4,
    /// The MTU of the underlay interface; the device's is this less [`WG_OVERHEAD`].
    pub underlay_mtu: u32,
    /// Mixed into every handshake (WireGuard's PSK): the cluster-wide key the managers rotate.
    pub preshared_key: Option<[u8; 32]>,
    pub peers: Vec<Peer>,
}

impl fmt::Debug for TunnelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunnelConfig")
            .field("device", &self.device)
            .field("private_key", &self.private_key)
            .field("listen", &self.listen)
            .field("underlay_mtu", &self.underlay_mtu)
            .field(
                "preshared_key",
                &self.preshared_key.map(|_| "<secret>").unwrap_or("none"),
            )
            .field("peers", &self.peers)
            .finish()
    }
}

impl TunnelConfig {
    /// This node's tunnel address.
    pub fn inner(&self) -> Ipv6Addr {
        inner_addr(*self.listen.ip())
    }

    /// The device's MTU.
    pub fn mtu(&self) -> u32 {
        inner_mtu(self.underlay_mtu)
    }

    pub(crate) fn validate(&self) -> Result<(), WgError> {
        validate_device_name(&self.device)?;
        let ip = self.listen.ip();
        if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
            return Err(WgError::invalid(
                "listen",
                format!(
                    "{ip} is not a node's underlay address (the tunnel address is derived from it)"
                ),
            ));
        }
        if self.mtu() < MIN_INNER_MTU || self.underlay_mtu > 65535 {
            return Err(WgError::invalid(
                "underlay_mtu",
                format!(
                    "expected {} to 65535 (the tunnel needs {WG_OVERHEAD} bytes and IPv6 needs \
                     {MIN_INNER_MTU} inside), got {}",
                    MIN_INNER_MTU + WG_OVERHEAD,
                    self.underlay_mtu
                ),
            ));
        }
        validate_peers(&self.private_key.public_key(), self.inner(), &self.peers)
    }
}

/// A Linux interface name: 1 to 15 bytes, printable, no `/`, `:` or whitespace.
fn validate_device_name(name: &str) -> Result<(), WgError> {
    let why = if name.is_empty() {
        "must not be empty"
    } else if name.len() > 15 {
        "at most 15 bytes"
    } else if name == "." || name == ".." {
        "not a usable interface name"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
    {
        "only printable ASCII without '/' or ':'"
    } else {
        return Ok(());
    };
    Err(WgError::invalid("device", format!("{name:?}: {why}")))
}

/// One entry per node: no key or tunnel address twice, none of them ours, every tunnel address
/// inside the prefix the device routes, and an endpoint to send to.
pub(crate) fn validate_peers(
    own_key: &PublicKey,
    own_inner: Ipv6Addr,
    peers: &[Peer],
) -> Result<(), WgError> {
    if peers.len() > crate::peers::MAX_PEERS {
        return Err(WgError::invalid(
            "peers",
            format!(
                "at most {} peers, got {}",
                crate::peers::MAX_PEERS,
                peers.len()
            ),
        ));
    }
    let mut keys = HashSet::new();
    let mut inners = HashSet::new();
    for (i, p) in peers.iter().enumerate() {
        let field = |f: &str| format!("peers[{i}].{f}");
        if p.public_key == *own_key {
            return Err(WgError::invalid(
                field("public_key"),
                "this node's own public key",
            ));
        }
        if !keys.insert(p.public_key) {
            return Err(WgError::invalid(
                field("public_key"),
                format!("{} is given to two peers", p.public_key),
            ));
        }
        if underlay_of(p.inner).is_none() {
            return Err(WgError::invalid(
                field("inner"),
                format!(
                    "{} is outside the tunnel prefix {}/{}",
                    p.inner,
                    crate::INNER_PREFIX,
                    crate::INNER_PREFIX_LEN
                ),
            ));
        }
        if p.inner == own_inner {
            return Err(WgError::invalid(
                field("inner"),
                format!("{} is this node's own tunnel address", p.inner),
            ));
        }
        if !inners.insert(p.inner) {
            return Err(WgError::invalid(
                field("inner"),
                format!("{} is given to two peers", p.inner),
            ));
        }
        let ip = p.endpoint.ip();
        if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() || p.endpoint.port() == 0 {
            return Err(WgError::invalid(
                field("endpoint"),
                format!("{} is not a node's address and port", p.endpoint),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key(b: u8) -> PrivateKey {
        PrivateKey::from_bytes([b; 32])
    }

    fn config() -> TunnelConfig {
        TunnelConfig {
            device: "shwg0".into(),
            private_key: key(1),
            listen: SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 51820),
            underlay_mtu: 1500,
            preshared_key: Some([9; 32]),
            peers: vec![Peer::new(
                key(2).public_key(),
                SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 51820),
            )],
        }
    }

    fn why(c: &TunnelConfig) -> String {
        c.validate().expect_err("invalid").to_string()
    }

    #[test]
    fn a_good_config_passes_and_hides_its_secrets() {
        let c = config();
        c.validate().expect("valid");
        assert_eq!(c.mtu(), 1420);
        let shown = format!("{c:?}");
        assert!(shown.contains("<secret>"), "{shown}");
        assert!(!shown.contains("[9, 9"), "{shown}");
    }

    #[test]
    fn each_mistake_names_its_field() {
        let mut c = config();
        c.device = "a-very-long-device-name".into();
        assert!(why(&c).starts_with("device: "), "{}", why(&c));
        let mut c = config();
        c.device = "sh/wg".into();
        assert!(why(&c).starts_with("device: "));
        let mut c = config();
        c.listen = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 51820);
        assert!(why(&c).starts_with("listen: "));
        let mut c = config();
        c.underlay_mtu = 1300;
        assert!(
            why(&c).starts_with("underlay_mtu: expected 1360 to 65535"),
            "{}",
            why(&c)
        );
        let mut c = config();
        c.peers.push(c.peers[0]);
        assert!(why(&c).starts_with("peers[1].public_key: "), "{}", why(&c));
        let mut c = config();
        let mut p = c.peers[0];
        p.public_key = key(3).public_key();
        c.peers.push(p);
        assert!(why(&c).starts_with("peers[1].inner: "), "{}", why(&c));
        let mut c = config();
        c.peers[0].public_key = c.private_key.public_key();
        assert!(why(&c).contains("own public key"));
        let mut c = config();
        c.peers[0].inner = "fd00::1".parse().expect("literal");
        assert!(why(&c).contains("outside the tunnel prefix"), "{}", why(&c));
        let mut c = config();
        c.peers[0].inner = c.inner();
        assert!(why(&c).contains("own tunnel address"));
        let mut c = config();
        c.peers[0].endpoint.set_port(0);
        assert!(why(&c).starts_with("peers[0].endpoint: "));
    }
}
