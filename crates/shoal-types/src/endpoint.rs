//! A service's endpoint: how its tasks are reached (a virtual IP or DNS round robin) and the
//! ports it publishes, as the spec asks for them and as the cluster gave them.

use crate::Id;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointMode {
    #[default]
    Vip,
    Dnsrr,
}

impl EndpointMode {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointMode::Vip => "vip",
            EndpointMode::Dnsrr => "dnsrr",
        }
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            _ => None,
        }
    }
}

/// `ingress`: every node answers on the port (the routing mesh); `host`: only nodes that run a
/// task, straight to it.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PublishMode {
    #[default]
    Ingress,
    Host,
}

impl PublishMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PublishMode::Ingress => "ingress",
            PublishMode::Host => "host",
        }
    }
}

/// One published port: `--publish published=8080,target=80,protocol=tcp,mode=ingress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PortConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default)]
    pub protocol: Protocol,
    pub target_port: u16,
    /// 0 asks the cluster for one (ingress mode: from 30000-32767, as Swarm does).
    #[serde(default)]
    pub published_port: u16,
    #[serde(default)]
    pub publish_mode: PublishMode,
}

/// The first and last port the cluster hands out for `--publish TARGET` without a published one.
pub const DYNAMIC_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EndpointSpec {
    #[serde(default)]
    pub mode: EndpointMode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortConfig>,
}

/// A service's address on one network: its virtual IP, balanced over its tasks there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VirtualIp {
    pub network: Id,
    pub addr: shoal_ipam::Ipv4Net,
}

/// What the cluster gave a service's endpoint: the ports as published (dynamic ones filled in)
/// and a virtual IP on each network (endpoint mode `vip`). Kept by the store, never written by
/// a client: the store allocates and releases them as the spec changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_ips: Vec<VirtualIp>,
}

/// A port of a standalone container published on its node (`docker run -p`), as Docker's
/// `HostConfig.PortBindings` gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PortBinding {
    /// The node address it listens on; `None`: every address.
    #[serde(default)]
    pub host_ip: Option<std::net::Ipv4Addr>,
    /// 0: a free port the node picks.
    #[serde(default)]
    pub host_port: u16,
    pub container_port: u16,
    #[serde(default)]
    pub protocol: Protocol,
}
