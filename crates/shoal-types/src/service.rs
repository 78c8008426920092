//! Services: the desired state an operator declares, and the task template each task copies.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::container::{HealthConfig, Mount, Ulimit};
use crate::dns::DnsConfig;
use crate::node::Resources;
use crate::{Id, Meta, Timestamp};

/// Swarm's default pause between a task's end and its replacement.
pub const DEFAULT_RESTART_DELAY: Duration = Duration::from_secs(5);
/// Swarm's default grace between the stop signal and SIGKILL.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceMode {
    Replicated {
        replicas: u64,
    },
    Global,
    ReplicatedJob {
        max_concurrent: u64,
        total_completions: u64,
    },
    GlobalJob,
}

impl Default for ServiceMode {
    fn default() -> Self {
        ServiceMode::Replicated { replicas: 1 }
    }
}

impl ServiceMode {
    pub fn name(&self) -> &'static str {
        match self {
            ServiceMode::Replicated { .. } => "replicated",
            ServiceMode::Global => "global",
            ServiceMode::ReplicatedJob { .. } => "replicated job",
            ServiceMode::GlobalJob => "global job",
        }
    }

    pub fn is_job(&self) -> bool {
        matches!(
            self,
            ServiceMode::ReplicatedJob { .. } | ServiceMode::GlobalJob
        )
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    #[default]
    Pause,
    Continue,
    Rollback,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    #[default]
    StopFirst,
    StartFirst,
}

/// How a spec change rolls across tasks (also used for rollbacks).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UpdateConfig {
    /// Tasks replaced at once; 0 means all at once.
    pub parallelism: u64,
    pub delay: Duration,
    pub failure_action: FailureAction,
    /// How long a new task is watched for failure after it starts.
    pub monitor: Duration,
    pub max_failure_ratio: f64,
    pub order: UpdateOrder,
}

/// Equal when every field is, the ratio bit for bit: so that `Eq` holds (a NaN equals
/// itself), which lets `Arc<Service>` compare by pointer first, and a diff of two states skip
/// what they share without comparing it field by field.
impl PartialEq for UpdateConfig {
    fn eq(&self, other: &Self) -> bool {
        let UpdateConfig {
            parallelism,
            delay,
            failure_action,
            monitor,
            max_failure_ratio,
            order,
        } = self;
        *parallelism == other.parallelism
            && *delay == other.delay
            && *failure_action == other.failure_action
            && *monitor == other.monitor
            && max_failure_ratio.to_bits() == other.max_failure_ratio.to_bits()
            && *order == other.order
    }
}

impl Eq for UpdateConfig {}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            parallelism: 1,
            delay: Duration::ZERO,
            failure_action: FailureAction::Pause,
            monitor: Duration::from_secs(5),
            max_failure_ratio: 0.0,
            order: UpdateOrder::StopFirst,
        }
    }
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum RestartCondition {
    None,
    OnFailure,
    #[default]
    Any,
}

impl RestartCondition {
    pub fn as_str(self) -> &'static str {
        match self {
            RestartCondition::None => "none",
            RestartCondition::OnFailure => "on-failure",
            RestartCondition::Any => "any",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(RestartCondition::None),
            "on-failure" => Some(RestartCondition::OnFailure),
            "any" => Some(RestartCondition::Any),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct RestartPolicy {
    #[serde(default)]
    pub condition: RestartCondition,
    /// `None` means Swarm's default of 5 s.
    #[serde(default)]
    pub delay: Option<Duration>,
    /// Restarts allowed within `window`; 0 means unlimited.
    #[serde(default)]
    pub max_attempts: u64,
    /// Span over which `max_attempts` is counted; zero means since the service began.
    #[serde(default)]
    pub window: Duration,
}

impl RestartPolicy {
    pub fn effective_delay(&self) -> Duration {
        self.delay.unwrap_or(DEFAULT_RESTART_DELAY)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ResourceRequirements {
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub reservations: Resources,
    /// Counts of generic resources each task reserves (only `Discrete`; the API refuses named
    /// ones); on the wire, `Reservations.GenericResources`. Beside `reservations` for the reason
    /// given on `NodeDescription::generic_resources`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generic_reservations: Vec<crate::GenericResource>,
}

/// What each task may use at most; 0 in a field means no limit. Its own type rather than a
/// node's [`Resources`] because a limit can name what nothing reserves or schedules by (the
/// process count), as Docker's `Limit` beside its `Resources` on the wire. The field names of
/// CPU and memory are those of [`Resources`], so specs stored before `pids` load unchanged.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Limits {
    #[serde(default)]
    pub nano_cpus: i64,
    #[serde(default)]
    pub memory_bytes: i64,
    /// Processes and threads the task may have at once (its cgroup's `pids.max`, Docker's
    /// `PidsLimit`); on the wire, `Limits.Pids`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pids: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl Limits {
    /// No limit at all.
    pub fn is_zero(&self) -> bool {
        self.nano_cpus == 0 && self.memory_bytes == 0 && self.pids == 0
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SpreadPreference {
    /// The node attribute to spread over, e.g. `node.labels.zone`.
    pub spread: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Placement {
    /// Expressions such as `node.role==manager` or `node.labels.zone!=east`.
    #[serde(default)]
    pub constraints: Vec<String>,
    #[serde(default)]
    pub preferences: Vec<SpreadPreference>,
    /// At most this many tasks of the service per node; 0 means no limit.
    #[serde(default)]
    pub max_replicas: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ContainerSpec {
    /// The image reference; the reserved name `host` runs on the node's own filesystem.
    pub image: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Replaces the image's entrypoint when non-empty.
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub hostname: String,
    /// `KEY=VALUE` entries, in order.
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub dir: String,
    /// `user`, `uid`, `user:group` or `uid:gid`.
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub open_stdin: bool,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub stop_signal: String,
    #[serde(default)]
    pub stop_grace_period: Option<Duration>,
    #[serde(default)]
    pub init: Option<bool>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// `None`: the image's HEALTHCHECK, if any.
    #[serde(default)]
    pub healthcheck: Option<HealthConfig>,
    /// Capability names as Docker takes them (`NET_ADMIN` or `CAP_NET_ADMIN`, `ALL`).
    #[serde(default)]
    pub cap_add: Vec<String>,
    #[serde(default)]
    pub cap_drop: Vec<String>,
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    #[serde(default)]
    pub ulimits: Vec<Ulimit>,
    /// `--dns`, `--dns-search`, `--dns-option`: the task's resolver. `None` (the API stores an
    /// empty one as `None`): the node's, or for a task with networks the embedded server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_config: Option<DnsConfig>,
    /// `--host`: extra `/etc/hosts` entries in Docker's form, `IP_address canonical_hostname
    /// [aliases...]`, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Secrets given to the task as files (under `/run/secrets` unless absolute).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<crate::payload::FileRef>,
    /// Configs given to the task as files (under `/` unless absolute).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<crate::payload::FileRef>,
}

impl ContainerSpec {
    /// The full argv: command (or the image's entrypoint, none for `host`) then args.
    pub fn argv(&self) -> Vec<String> {
        self.command
            .iter()
            .chain(self.args.iter())
            .cloned()
            .collect()
    }

    pub fn effective_stop_grace(&self) -> Duration {
        self.stop_grace_period.unwrap_or(DEFAULT_STOP_GRACE)
    }
}

/// What every task of a service runs. A task copies its service's template when it is created, so
/// comparing the two tells whether the task is up to date.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TaskSpec {
    pub container: ContainerSpec,
    #[serde(default)]
    pub resources: ResourceRequirements,
    #[serde(default)]
    pub restart: RestartPolicy,
    #[serde(default)]
    pub placement: Placement,
    /// Bumped by `service update --force` so that every task becomes out of date.
    #[serde(default)]
    pub force_update: u64,
    /// Runtime driver to use; empty lets the node pick its default.
    #[serde(default)]
    pub runtime: String,
    /// The overlay networks every task joins (`--network`), in order; a change rolls the tasks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkAttachmentConfig>,
}

/// One network a service's tasks join: `--network name=web,alias=www,driver-opt=k=v`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct NetworkAttachmentConfig {
    /// The network's ID (a name or ID prefix is resolved when the service is written).
    pub target: String,
    /// Extra names the service answers to on this network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
}

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

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceSpec {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub task: TaskSpec,
    #[serde(default)]
    pub mode: ServiceMode,
    #[serde(default)]
    pub update: Option<UpdateConfig>,
    #[serde(default)]
    pub rollback: Option<UpdateConfig>,
    #[serde(default)]
    pub endpoint: EndpointSpec,
}

impl ServiceSpec {
    pub fn update_config(&self) -> UpdateConfig {
        self.update.clone().unwrap_or_default()
    }

    pub fn rollback_config(&self) -> UpdateConfig {
        self.rollback.clone().unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    Updating,
    Paused,
    Completed,
    RollbackStarted,
    RollbackPaused,
    RollbackCompleted,
}

impl UpdateState {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateState::Updating => "updating",
            UpdateState::Paused => "paused",
            UpdateState::Completed => "completed",
            UpdateState::RollbackStarted => "rollback_started",
            UpdateState::RollbackPaused => "rollback_paused",
            UpdateState::RollbackCompleted => "rollback_completed",
        }
    }

    pub fn is_rollback(self) -> bool {
        matches!(
            self,
            UpdateState::RollbackStarted
                | UpdateState::RollbackPaused
                | UpdateState::RollbackCompleted
        )
    }

    pub fn in_progress(self) -> bool {
        matches!(self, UpdateState::Updating | UpdateState::RollbackStarted)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpdateStatus {
    pub state: UpdateState,
    pub started_at: Timestamp,
    #[serde(default)]
    pub completed_at: Timestamp,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Service {
    pub id: Id,
    pub meta: Meta,
    pub spec: ServiceSpec,
    /// The spec before the last update: what `service rollback` returns to.
    #[serde(default)]
    pub previous_spec: Option<ServiceSpec>,
    #[serde(default)]
    pub update_status: Option<UpdateStatus>,
    #[serde(default)]
    pub endpoint: Endpoint,
}

impl Service {
    /// The update settings in force: the rollback settings while a rollback runs.
    pub fn active_update_config(&self) -> UpdateConfig {
        match &self.update_status {
            Some(s) if s.state.is_rollback() => self.spec.rollback_config(),
            _ => self.spec.update_config(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_stored_before_pids_still_load() {
        let old = r#"{"limits":{"nano_cpus":5,"memory_bytes":7},"reservations":{"nano_cpus":1,"memory_bytes":2}}"#;
        let r: ResourceRequirements = serde_json::from_str(old).expect("old requirements");
        assert_eq!(
            r.limits,
            Limits {
                nano_cpus: 5,
                memory_bytes: 7,
                pids: 0
            }
        );
        // An unlimited count is not written, so what older code stored and reads is unchanged.
        assert_eq!(
            serde_json::to_value(r.limits).expect("json"),
            serde_json::json!({"nano_cpus": 5, "memory_bytes": 7})
        );
        let with = Limits {
            pids: 20,
            ..r.limits
        };
        let back: Limits =
            serde_json::from_value(serde_json::to_value(with).expect("json")).expect("back");
        assert_eq!(back, with);
        assert!(!with.is_zero() && Limits::default().is_zero());
    }
}
