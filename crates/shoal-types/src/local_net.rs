//! Node-local networks: Docker's `bridge` networks (its default `bridge` and those made by
//! `docker network create`), which live on one node and are never replicated. What a
//! standalone container asks of them (its attachments, its published ports) and what it got
//! (its endpoints).
//!
//! These records are kept on the node's disk by its network layer, so their serde shape is a
//! format: fields are only ever added (with a default), and [`LOCAL_NET_FORMAT`] is bumped
//! when a reader of an older shape could misread a newer one.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use shoal_ipam::Ipv4Net;

use crate::Timestamp;
/// A port of the node forwarded to a container's (`-p`): the engine's type.
pub use crate::endpoint::PortBinding;

/// The version of the on-disk records of node-local networks.
pub const LOCAL_NET_FORMAT: u32 = 1;
/// The one driver of node-local networks.
pub const BRIDGE_DRIVER: &str = "bridge";
/// The predefined network a container without `--network` joins (Docker's `bridge`).
pub const DEFAULT_NETWORK: &str = "bridge";
/// `-o com.docker.network.bridge.name=NAME`: the bridge device's name on the node.
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";

fn bridge_driver() -> String {
    BRIDGE_DRIVER.to_string()
}

/// What `docker network create -d bridge` asks for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LocalNetworkSpec {
    pub name: String,
    #[serde(default = "bridge_driver")]
    pub driver: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Driver options (`-o`); [`OPT_BRIDGE_NAME`] is honoured.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Nothing leaves the network for the outside, nothing comes in (`--internal`).
    #[serde(default)]
    pub internal: bool,
    /// `--subnet`; picked by the node when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<Ipv4Net>,
    /// `--gateway`: the bridge's own address; the subnet's first host when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
}

impl Default for LocalNetworkSpec {
    fn default() -> Self {
        LocalNetworkSpec {
            name: String::new(),
            driver: bridge_driver(),
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
            internal: false,
            subnet: None,
            gateway: None,
        }
    }
}

/// A node-local network as made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LocalNetwork {
    /// 64 lowercase hex digits, as Docker's network IDs.
    pub id: String,
    pub name: String,
    #[serde(default = "bridge_driver")]
    pub driver: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub internal: bool,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// The bridge device in the node's namespace.
    pub bridge: String,
    pub created: Timestamp,
}

impl LocalNetwork {
    /// The predefined network: no names are served on it, as on Docker's.
    pub fn is_default(&self) -> bool {
        self.name == DEFAULT_NETWORK
    }
}

/// One container on one node-local network: what `docker inspect` shows under
/// `NetworkSettings.Networks`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LocalEndpoint {
    pub network_id: String,
    /// 64 lowercase hex digits (Docker's `EndpointID`).
    #[serde(default)]
    pub endpoint_id: String,
    /// The container's address with the network's prefix length.
    pub addr: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// `02:42:..`, lowercase, colon-separated.
    pub mac: String,
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// A task's wish to join a node-local network.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LocalAttachment {
    /// The network's ID.
    pub network: String,
    /// The names other containers of the network resolve to this one (container name,
    /// compose service, short ID); not served on the default network.
    #[serde(default)]
    pub aliases: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The persisted shape: a record written by this version must read back the same, and a
    /// record as written today must keep reading.
    #[test]
    fn records_keep_their_serde_shape() {
        let net = LocalNetwork {
            id: "ab".repeat(32),
            name: "app".into(),
            driver: BRIDGE_DRIVER.into(),
            labels: BTreeMap::from([("k".into(), "v".into())]),
            options: BTreeMap::new(),
            internal: false,
            subnet: "172.19.0.0/16".parse().expect("subnet"),
            gateway: Ipv4Addr::new(172, 19, 0, 1),
            bridge: "shlabababababab".into(),
            created: Timestamp(1_700_000_000_000_000_000),
        };
        let text = serde_json::to_string(&net).expect("json");
        assert_eq!(
            text,
            format!(
                r#"{{"id":"{}","name":"app","driver":"bridge","labels":{{"k":"v"}},"options":{{}},"internal":false,"subnet":"172.19.0.0/16","gateway":"172.19.0.1","bridge":"shlabababababab","created":1700000000000000000}}"#,
                "ab".repeat(32)
            )
        );
        assert_eq!(
            serde_json::from_str::<LocalNetwork>(&text).expect("back"),
            net
        );
        let e: LocalEndpoint = serde_json::from_str(
            r#"{"network_id":"n","addr":"172.19.0.2/16","gateway":"172.19.0.1","mac":"02:42:ac:13:00:02"}"#,
        )
        .expect("endpoint");
        assert!(e.aliases.is_empty() && e.endpoint_id.is_empty());
        let s: LocalNetworkSpec = serde_json::from_str(r#"{"name":"x"}"#).expect("spec");
        assert_eq!(s.driver, BRIDGE_DRIVER);
    }
}
