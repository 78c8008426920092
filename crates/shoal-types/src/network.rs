//! Overlay networks: what `network create -d overlay` asks for, and what the cluster gave it.

use std::collections::BTreeMap;

pub use shoal_ipam::NetworkAddrs;

use crate::{Id, Meta};

/// The only driver a swarm-scoped network has (Swarm's `overlay`).
pub const OVERLAY: &str = "overlay";
/// The network `swarm init` makes for the routing mesh.
pub const INGRESS: &str = "ingress";
/// `--opt encrypted`: traffic between nodes encrypted and authenticated.
pub const OPT_ENCRYPTED: &str = "encrypted";

/// One requested address block (`--subnet`, `--gateway`, `--ip-range`), as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IpamConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkSpec {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Always [`OVERLAY`] once validated.
    pub driver: String,
    #[serde(default)]
    pub driver_opts: BTreeMap<String, String>,
    /// What the user asked for; empty means "pick one from the address pools".
    #[serde(default)]
    pub ipam: Vec<IpamConfig>,
    #[serde(default)]
    pub ipam_options: BTreeMap<String, String>,
    /// Standalone containers may join it (`--attachable`).
    #[serde(default)]
    pub attachable: bool,
    /// No traffic leaves it for the outside (`--internal`).
    #[serde(default)]
    pub internal: bool,
    /// The routing mesh's network.
    #[serde(default)]
    pub ingress: bool,
}

impl NetworkSpec {
    pub fn encrypted(&self) -> bool {
        self.driver_opts.contains_key(OPT_ENCRYPTED)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Network {
    pub id: Id,
    pub meta: Meta,
    pub spec: NetworkSpec,
    /// The subnet, gateway and task range the cluster allocated.
    pub addrs: NetworkAddrs,
    /// The VXLAN network identifier, unique in the cluster; given by the store.
    #[serde(default)]
    pub vni: u32,
}

/// The first VXLAN ID the store gives out (Swarm starts at 4096 too, above the IDs people pick
/// for VLAN-mapped segments).
pub const FIRST_VNI: u32 = 4096;
