//! What a node remembers about the swarm it is in, in `<data-dir>/swarm/identity.json`.

use std::path::Path;

use shoal_types::Id;
use shoal_types::node::NodeRole;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub node_id: Id,
    pub cluster_id: Id,
    pub role: NodeRole,
    /// The Raft member ID, for managers.
    #[serde(default)]
    pub raft_id: Option<u64>,
    /// How other nodes reach this one (`ip:port`).
    pub advertise_addr: String,
    pub listen_addr: String,
    /// Manager endpoints last known, to find the cluster again after a restart.
    #[serde(default)]
    pub managers: Vec<String>,
    /// Digest of the root that issued this node's certificate.
    #[serde(default)]
    pub issuer_digest: String,
    /// When this node's certificate was issued; renewal is due two thirds into its life.
    #[serde(default)]
    pub cert_issued_at: shoal_types::Timestamp,
}

impl Identity {
    pub fn load(path: &Path) -> Result<Option<Identity>, String> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| format!("{} is unreadable: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, bytes)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}
