//! A node's local bridge networks in its firewall (Docker's `bridge` networks): their traffic
//! masqueraded on its way out, isolated from one another, and the ports published to their
//! containers, all in the one table [`BRIDGES_TABLE`], replaced whole by each call.

use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;

use super::rules::local::bridges_batch;
use super::{LOCALNET_TABLE, Proto, enable_route_localnet, nft_apply, remove_table_batch};
use crate::NetError;

/// The table of the node's local bridge networks.
pub const BRIDGES_TABLE: &str = "shoal-bridges";

/// One local bridge network as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeNet {
    /// The bridge device in the node's namespace.
    pub bridge: String,
    pub subnet: Ipv4Net,
    /// Nothing in or out but between its own containers; not masqueraded.
    pub internal: bool,
}

/// A node port forwarded to a container on a local bridge network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgePort {
    pub proto: Proto,
    /// Only connections to this address of the node; to any of its addresses when absent.
    pub host_ip: Option<Ipv4Addr>,
    pub port: u16,
    /// The container's address and port.
    pub to: (Ipv4Addr, u16),
}

/// Programs the node's local bridge networks in `netns`, replacing what was there:
/// - traffic from each non-internal network's subnet leaving by another interface is
///   masqueraded; an internal network's bridge neither forwards out nor in;
/// - nothing is routed between two of `nets` or between one of them and one of `others` (such
///   as the node's gateway bridge), both ways (Docker's isolation), except through a
///   published port;
/// - each of `ports` arriving at the node (at `host_ip`, or at any local address when it has
///   none), or sent to it from the node itself, goes to its container, which sees the client's
///   address; a connection from the node's loopback, or from the port's own network, is
///   masqueraded, so the replies come back through the node to be translated.
///
/// With ports, the namespace also gets `route_localnet` and its guard ([`LOCALNET_TABLE`]),
/// as [`super::program_published`] does. Forwarding must be enabled separately
/// ([`crate::enable_forwarding`]), and a FORWARD policy of DROP in iptables overruled
/// ([`super::ensure_iptables_forward_accept`]).
pub fn program_bridges(
    netns: &Path,
    nets: &[BridgeNet],
    others: &[String],
    ports: &[BridgePort],
) -> Result<(), NetError> {
    let batch = bridges_batch(nets, others, ports)?;
    nft_apply(
        netns,
        &format!(
            "replacing table ip {BRIDGES_TABLE} for {} bridge networks and {} published ports",
            nets.len(),
            ports.len()
        ),
        batch,
    )?;
    if ports.is_empty() {
        return Ok(());
    }
    // Only once the guard is in place.
    enable_route_localnet(netns).map_err(|e| match e {
        NetError::Netns { path, source } => NetError::Netns {
            path,
            source: std::io::Error::new(
                source.kind(),
                format!("{source} (guarded by table ip {LOCALNET_TABLE})"),
            ),
        },
        e => e,
    })
}

/// Removes [`BRIDGES_TABLE`]; absent is fine. `route_localnet` and its guard stay, as other
/// published tables may rely on them.
pub fn remove_bridges(netns: &Path) -> Result<(), NetError> {
    nft_apply(
        netns,
        &format!("removing table ip {BRIDGES_TABLE}"),
        remove_table_batch(BRIDGES_TABLE),
    )
}
