//! The cluster object: swarm-wide settings, one per cluster.

use std::time::Duration;

use crate::{Id, Meta};

/// The cluster label that turns rebalancing off (`false`; absent means on). Docker's ClusterSpec
/// has no field for it and the docker CLI drops fields it does not know when it sends the spec
/// back on `swarm update`; a label survives that round trip.
pub const REBALANCE_LABEL: &str = "shoal.orchestration.rebalance";

/// How many terminated tasks to keep per slot (Swarm's default is 5).
pub const DEFAULT_TASK_HISTORY_LIMIT: i64 = 5;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterSpec {
    pub name: String,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Terminated tasks kept per slot; negative keeps all, as Swarm's TaskHistoryRetentionLimit.
    pub task_history_limit: i64,
    pub heartbeat_period: Duration,
    pub node_cert_expiry: Duration,
    pub snapshot_interval: u64,
    pub keep_old_snapshots: u64,
    pub log_entries_for_slow_followers: u64,
    pub election_tick: u32,
    pub heartbeat_tick: u32,
    pub autolock: bool,
    /// Bumped to ask for a new root CA (`swarm ca --rotate`, Docker's CAConfig.ForceRotate).
    #[serde(default)]
    pub ca_force_rotate: u64,
    /// Move running tasks of replicated services toward an even spread when a node joins or
    /// comes back (shoal's own; Swarm never moves running tasks).
    #[serde(default = "default_true")]
    pub rebalance: bool,
}

fn default_true() -> bool {
    true
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            name: "default".into(),
            labels: Default::default(),
            task_history_limit: DEFAULT_TASK_HISTORY_LIMIT,
            // Short heartbeats make a lost node's tasks move within seconds (Swarm: 5 s, then
            // ~20 s until they move); agents are cheap to hear from.
            heartbeat_period: Duration::from_secs(1),
            node_cert_expiry: Duration::from_secs(90 * 24 * 3600),
            snapshot_interval: 10_000,
            keep_old_snapshots: 0,
            log_entries_for_slow_followers: 500,
            election_tick: 10,
            heartbeat_tick: 1,
            autolock: false,
            ca_force_rotate: 0,
            rebalance: true,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JoinTokens {
    pub worker: String,
    pub manager: String,
}

/// The cluster's root certificate authority. The key lives in the replicated store so that any
/// manager can sign node certificates.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RootCa {
    pub cert_pem: String,
    pub key_pem: String,
    /// What join tokens carry to prove which CA a manager answers for.
    pub digest: String,
}

/// A root CA rotation in progress: nodes trust both roots and are reissued certificates under
/// the new one (with `cross_signed`, the new root signed by the old, so peers that still trust
/// only the old root accept them); it completes when every node holds a new certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RootRotation {
    pub next: RootCa,
    pub cross_signed_pem: String,
}

#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cluster {
    pub id: Id,
    pub meta: Meta,
    pub spec: ClusterSpec,
    #[serde(default)]
    pub join_tokens: JoinTokens,
    #[serde(default)]
    pub root_ca: RootCa,
    #[serde(default)]
    pub root_rotation: Option<RootRotation>,
    /// Nodes removed from the cluster: their certificates are refused until they expire.
    #[serde(default)]
    pub removed_nodes: std::collections::BTreeSet<Id>,
    /// Where overlay networks get their subnets and which port carries them; set once, by
    /// `swarm init`.
    #[serde(default)]
    pub network: NetworkSettings,
    /// The key every node's tunnel mixes into its handshakes with the others (WireGuard's
    /// preshared key) on encrypted overlays: made by the leading manager, replaced every
    /// [`TUNNEL_KEY_ROTATION`], and handed only to nodes on an encrypted overlay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_key: Option<TunnelKey>,
    /// While `spec.autolock` is on: the key (`SWMKEY-1-...`) every manager seals its keys at
    /// rest under, so a restarted manager opens nothing until given it. Replicated (and so
    /// encrypted at rest like every value) so each manager learns it; never in `GET /swarm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unlock_key: Option<String>,
}

#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TunnelKey {
    /// 32 random bytes, in hex.
    pub key: String,
    /// When it was made.
    pub since: crate::Timestamp,
}

/// How long a tunnel key serves before the managers replace it (Swarm rotates its overlay
/// encryption keys every 12 hours too).
pub const TUNNEL_KEY_ROTATION: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// `swarm init --default-addr-pool --default-addr-pool-mask-length --data-path-port`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkSettings {
    /// CIDRs new networks' subnets are carved from.
    pub default_addr_pool: Vec<String>,
    /// The prefix length of each carved subnet.
    pub subnet_size: u8,
    /// The UDP port VXLAN traffic between nodes uses.
    pub data_path_port: u16,
}

/// Swarm's defaults: 10.0.0.0/8 in /24s, VXLAN on 4789.
impl Default for NetworkSettings {
    fn default() -> Self {
        NetworkSettings {
            default_addr_pool: vec![shoal_ipam::DEFAULT_POOL.into()],
            subnet_size: shoal_ipam::DEFAULT_MASK_LEN,
            data_path_port: DEFAULT_DATA_PATH_PORT,
        }
    }
}

/// VXLAN's IANA port, Swarm's default data path port.
pub const DEFAULT_DATA_PATH_PORT: u16 = 4789;
/// The data path ports `swarm init` accepts, as Docker does.
pub const DATA_PATH_PORTS: std::ops::RangeInclusive<u16> = 1024..=49151;

impl NetworkSettings {
    /// The pools, checked (`shoal_ipam::AddrPools::new`).
    pub fn pools(&self) -> Result<shoal_ipam::AddrPools, shoal_ipam::IpamError> {
        let pools: Vec<&str> = self.default_addr_pool.iter().map(String::as_str).collect();
        shoal_ipam::AddrPools::new(&pools, self.subnet_size)
    }
}

impl Cluster {
    /// The roots every node must trust now (two during a rotation).
    pub fn trust(&self) -> Vec<String> {
        let mut t = vec![self.root_ca.cert_pem.clone()];
        if let Some(r) = &self.root_rotation {
            t.push(r.next.cert_pem.clone());
        }
        t
    }
}

// The cluster object carries keys (the root CA's, the tunnel key, the unlock key): its `Debug`
// shows that they are there, never what they are, so no log line can carry one.
const REDACTED: &str = "<redacted>";

impl std::fmt::Debug for RootCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootCa")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &REDACTED)
            .field("digest", &self.digest)
            .finish()
    }
}

impl std::fmt::Debug for TunnelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelKey")
            .field("key", &REDACTED)
            .field("since", &self.since)
            .finish()
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("id", &self.id)
            .field("meta", &self.meta)
            .field("spec", &self.spec)
            .field("join_tokens", &self.join_tokens)
            .field("root_ca", &self.root_ca)
            .field("root_rotation", &self.root_rotation)
            .field("removed_nodes", &self.removed_nodes)
            .field("network", &self.network)
            .field("tunnel_key", &self.tunnel_key)
            .field("unlock_key", &self.unlock_key.as_ref().map(|_| REDACTED))
            .finish()
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn keys_never_show_in_debug() {
        let c = Cluster {
            root_ca: RootCa {
                key_pem: "PRIVATE-CA-KEY".into(),
                ..Default::default()
            },
            tunnel_key: Some(TunnelKey {
                key: "TUNNEL-KEY".into(),
                since: crate::Timestamp(0),
            }),
            unlock_key: Some("SWMKEY-1-SECRET".into()),
            ..Default::default()
        };
        let shown = format!("{c:?}");
        for key in ["PRIVATE-CA-KEY", "TUNNEL-KEY", "SWMKEY-1-SECRET"] {
            assert!(!shown.contains(key), "{shown}");
        }
    }
}
