//! The cluster object: swarm-wide settings, one per cluster.

use std::time::Duration;

use crate::{Id, Meta};

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
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            name: "default".into(),
            labels: Default::default(),
            task_history_limit: DEFAULT_TASK_HISTORY_LIMIT,
            heartbeat_period: Duration::from_secs(5),
            node_cert_expiry: Duration::from_secs(90 * 24 * 3600),
            snapshot_interval: 10_000,
            keep_old_snapshots: 0,
            log_entries_for_slow_followers: 500,
            election_tick: 10,
            heartbeat_tick: 1,
            autolock: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JoinTokens {
    pub worker: String,
    pub manager: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cluster {
    pub id: Id,
    pub meta: Meta,
    pub spec: ClusterSpec,
    #[serde(default)]
    pub join_tokens: JoinTokens,
}
