//! Services: the desired state an operator declares, and the task template each task copies.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::container::{HealthConfig, Mount, Ulimit};
// The endpoint types were born here; every user still names them through this module.
use crate::dns::DnsConfig;
pub use crate::endpoint::{
    DYNAMIC_PORTS, Endpoint, EndpointMode, EndpointSpec, PortConfig, Protocol, PublishMode,
    VirtualIp,
};
use crate::node::Resources;
use crate::{Id, Meta, Timestamp};

/// Swarm's default pause between a task's end and its replacement.
pub const DEFAULT_RESTART_DELAY: Duration = Duration::from_secs(5);
/// Swarm's default grace between the stop signal and SIGKILL.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);
/// Swarm's default time a rolling update (or rollback) watches a new task for failure.
pub const DEFAULT_UPDATE_MONITOR: Duration = Duration::from_secs(5);

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
    /// How long a new task is watched for failure after it starts; `None` (the API stores a 0
    /// as `None`, as Swarm does) means Swarm's default, [`DEFAULT_UPDATE_MONITOR`].
    #[serde(default)]
    pub monitor: Option<Duration>,
    pub max_failure_ratio: f64,
    pub order: UpdateOrder,
}

impl UpdateConfig {
    pub fn effective_monitor(&self) -> Duration {
        self.monitor.unwrap_or(DEFAULT_UPDATE_MONITOR)
    }
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
            monitor: Some(DEFAULT_UPDATE_MONITOR),
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
    /// Span over which `max_attempts` is counted; `None` or zero means since the service began.
    /// An option so that the API shows a window only when the client gave one.
    #[serde(default)]
    pub window: Option<Duration>,
}

impl RestartPolicy {
    pub fn effective_delay(&self) -> Duration {
        self.delay.unwrap_or(DEFAULT_RESTART_DELAY)
    }

    pub fn effective_window(&self) -> Duration {
        self.window.unwrap_or_default()
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
    /// The platforms the tasks can run on (Docker's `Placement.Platforms`): a node qualifies when
    /// its own platform matches one of them. Empty: any node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<crate::node::Platform>,
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
    /// `--dns`, `--dns-search`, `--dns-option`: the task's resolver. `None` or an empty one (the
    /// docker CLI sends one with every service, and the API keeps it to show it as sent): the
    /// node's, or for a task with networks the embedded server's.
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
    /// Docker's `Privileges`, kept and shown as the client sent them. No runtime applies them
    /// yet; the API says so in its warnings when a spec asks for any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileges: Option<crate::container::Privileges>,
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
    /// `--log-driver`/`--log-opt`: kept and shown as sent. shoal captures each task's output
    /// itself (`service logs`), so no driver is used; the API says so in its warnings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<LogDriver>,
    /// Which optional parts of the template the client left out.
    #[serde(default, skip_serializing_if = "Omitted::is_none")]
    pub omitted: Omitted,
}

/// The optional objects of Docker's task template that the client left out. Swarm keeps a spec
/// as it was written and shows it so; shoal keeps the values in their fields (an absent object
/// holds its defaults, so every stage treats it as an empty one) and records here only what the
/// API leaves out when it shows the spec. As in Swarm, giving an object that was absent (even an
/// empty one) is a change of the spec. All `false`, what specs stored before this existed load
/// as, shows every object.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Omitted {
    /// `Resources`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub resources: bool,
    /// `Resources.Limits`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub limits: bool,
    /// `Resources.Reservations`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reservations: bool,
    /// `RestartPolicy`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub restart: bool,
    /// `Placement`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub placement: bool,
}

impl Omitted {
    /// Nothing left out.
    pub fn is_none(&self) -> bool {
        *self == Omitted::default()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A Docker log driver and its options, as `--log-driver` and `--log-opt` give them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct LogDriver {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
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
    /// The client gave no `EndpointSpec`: the API shows none (`endpoint` holds the defaults).
    #[serde(default, skip_serializing_if = "is_false")]
    pub endpoint_omitted: bool,
    /// What a workload written through the Kubernetes API holds beyond a service's fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube: Option<KubeWorkload>,
}

/// The parts of a Kubernetes workload (a Deployment, a DaemonSet) that a service has no field
/// for: kept so the Kubernetes API shows the object as it was written (kubectl's three-way
/// apply reads its annotations back), and carried over when the Docker API updates the
/// service. Stages never read it: everything that changes what runs is in the service's own
/// fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KubeWorkload {
    /// `metadata.annotations`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `spec.template.metadata.annotations`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
    /// `spec.selector`, as JSON.
    #[serde(default)]
    pub selector: String,
    /// The name of the pod's container.
    #[serde(default)]
    pub container: String,
    /// The workload's and its container's fields kept as written (JSON objects): `spec`
    /// fields such as `revisionHistoryLimit`, and container fields such as `ports`.
    #[serde(default)]
    pub spec_extra: String,
    #[serde(default)]
    pub container_extra: String,
}

impl ServiceSpec {
    pub fn update_config(&self) -> UpdateConfig {
        self.update.clone().unwrap_or_default()
    }

    pub fn rollback_config(&self) -> UpdateConfig {
        self.rollback.clone().unwrap_or_default()
    }

    /// The spec with Swarm's defaults written into what the client left out, as
    /// `GET /services/{id}?insertDefaults=true` shows it (swarmkit's `InterpolateService`, which
    /// `docker service inspect` asks for): the stop grace period, an empty DNS config, an empty
    /// resources object and placement, the restart policy (condition `any`, a 5 s delay) or its
    /// delay, and the update and rollback configs (parallelism 1, pause, a 5 s monitor,
    /// stop-first) or their monitor. What the stages do is the same either way: these are the
    /// values they use for what is absent.
    pub fn with_defaults(&self) -> ServiceSpec {
        let mut s = self.clone();
        let c = &mut s.task.container;
        c.stop_grace_period.get_or_insert(DEFAULT_STOP_GRACE);
        c.dns_config.get_or_insert_with(DnsConfig::default);
        let t = &mut s.task;
        // Swarm's default resources object holds neither limits nor reservations.
        t.omitted.resources = false;
        t.omitted.placement = false;
        t.omitted.restart = false;
        t.restart.delay.get_or_insert(DEFAULT_RESTART_DELAY);
        for u in [&mut s.update, &mut s.rollback] {
            u.get_or_insert_with(UpdateConfig::default)
                .monitor
                .get_or_insert(DEFAULT_UPDATE_MONITOR);
        }
        s
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
#[path = "service_tests.rs"]
mod tests;
