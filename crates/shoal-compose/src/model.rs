//! The typed project: what the files say once merged, interpolated and validated, in the shape of
//! docker's `cli/compose/types` (values already normalized the way docker's loader normalizes
//! them: commands split, environment resolved with env files, short syntaxes expanded, relative
//! paths made absolute, durations in nanoseconds, sizes in bytes). Places that a later step can
//! reject (references to networks, volumes, secrets, configs, services) keep their [`Location`].

use std::collections::BTreeMap;

use crate::error::Location;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Project {
    /// The `version` of the files, when they give one (`3.x`); none for the Compose Spec.
    pub version: Option<String>,
    pub services: BTreeMap<String, Service>,
    pub networks: BTreeMap<String, Network>,
    pub volumes: BTreeMap<String, Volume>,
    pub secrets: BTreeMap<String, FileObject>,
    pub configs: BTreeMap<String, FileObject>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Service {
    pub name: String,
    /// Where the service's key is (in the first file that defines it).
    pub at: Location,
    pub image: Option<String>,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    /// Resolved: env files then `environment`, `KEY` alone taken from the environment when set
    /// there (a value of `None` is sent as the bare `KEY`, as docker does).
    pub environment: BTreeMap<String, Option<String>>,
    pub env_file: Vec<String>,
    pub ports: Vec<Port>,
    pub volumes: Vec<ServiceVolume>,
    /// `None` when the service names no network: it joins `default`.
    pub networks: Option<BTreeMap<String, ServiceNetwork>>,
    pub secrets: Vec<FileRef>,
    pub configs: Vec<FileRef>,
    pub healthcheck: Option<Healthcheck>,
    pub labels: BTreeMap<String, String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub hostname: Option<String>,
    pub init: Option<bool>,
    pub read_only: bool,
    pub tty: bool,
    pub stdin_open: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub sysctls: Option<BTreeMap<String, String>>,
    pub ulimits: BTreeMap<String, Ulimit>,
    pub stop_signal: Option<String>,
    /// Nanoseconds.
    pub stop_grace_period: Option<i64>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    /// `host:ip`, docker's internal form (converted to `ip host` for the spec).
    pub extra_hosts: Vec<String>,
    pub logging: Option<Logging>,
    pub isolation: Option<String>,
    pub oom_score_adj: Option<i64>,
    pub credential_spec: Option<CredentialSpec>,
    /// The legacy `restart:`, used when `deploy.restart_policy` is not set (docker warns that it
    /// ignores it, and then uses it anyway).
    pub restart: Option<String>,
    pub deploy: Deploy,
    pub depends_on: Vec<DependsOn>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Port {
    /// `ingress` or `host`; none lets the daemon choose (ingress).
    pub mode: Option<String>,
    pub target: u32,
    /// 0 when not published on a fixed port.
    pub published: u32,
    pub protocol: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceVolume {
    /// `volume`, `bind`, `tmpfs`, `npipe` or `image`.
    pub kind: String,
    /// A volume name, an absolute host path (binds), an image, or empty.
    pub source: String,
    pub target: String,
    pub read_only: bool,
    pub consistency: Option<String>,
    /// `Some("")` for a long-syntax `bind: {}` (docker sends empty bind options then).
    pub propagation: Option<String>,
    /// Whether a long-syntax `bind:` mapping was given.
    pub bind_options: bool,
    pub nocopy: bool,
    pub subpath: Option<String>,
    /// Whether a long-syntax `volume:` mapping was given.
    pub volume_options: bool,
    /// Some when a long-syntax `tmpfs:` mapping was given (`Some(0)`: without a size), which
    /// docker sends as (possibly empty) tmpfs options.
    pub tmpfs_size: Option<i64>,
    pub tmpfs_mode: Option<u32>,
    pub at: Location,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceNetwork {
    pub aliases: Vec<String>,
    pub driver_opts: Option<BTreeMap<String, String>>,
    pub ipv4_address: Option<String>,
    pub ipv6_address: Option<String>,
    pub at: Location,
}

/// A service's use of a secret or config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileRef {
    pub source: String,
    pub target: Option<String>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub mode: Option<u32>,
    pub at: Location,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Healthcheck {
    /// As written: a string becomes `["CMD-SHELL", s]`; lists are kept (`NONE`, `CMD`, ...).
    pub test: Option<Vec<String>>,
    pub interval: Option<i64>,
    pub timeout: Option<i64>,
    pub start_period: Option<i64>,
    pub start_interval: Option<i64>,
    pub retries: Option<u64>,
    pub disable: bool,
}

impl Healthcheck {
    /// Whether this turns health checking off (`disable: true` or `test: [NONE]`).
    pub fn disables(&self) -> bool {
        self.disable
            || self
                .test
                .as_ref()
                .is_some_and(|t| t.first().map(String::as_str) == Some("NONE"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ulimit {
    Single(i64),
    SoftHard { soft: i64, hard: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Logging {
    pub driver: Option<String>,
    pub options: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CredentialSpec {
    pub config: Option<String>,
    pub file: Option<String>,
    pub registry: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Deploy {
    pub mode: Option<String>,
    pub replicas: Option<u64>,
    pub labels: BTreeMap<String, String>,
    pub update_config: Option<UpdateConfig>,
    pub rollback_config: Option<UpdateConfig>,
    pub resources: Resources,
    pub restart_policy: Option<RestartPolicy>,
    pub placement: Placement,
    pub endpoint_mode: Option<String>,
    /// Where `deploy` (or the service, without one) is, for errors about the mode.
    pub at: Location,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct UpdateConfig {
    pub parallelism: Option<u64>,
    pub delay: Option<i64>,
    pub failure_action: Option<String>,
    pub monitor: Option<i64>,
    pub max_failure_ratio: Option<f64>,
    pub order: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resources {
    pub limits: Option<Limits>,
    pub reservations: Option<Reservations>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Limits {
    /// As written (`"0.5"`); parsed into nano-CPUs at conversion, like docker.
    pub cpus: Option<String>,
    pub memory: Option<i64>,
    pub pids: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reservations {
    pub cpus: Option<String>,
    pub memory: Option<i64>,
    /// `discrete_resource_spec` kinds and values, in file order.
    pub generic_resources: Vec<(String, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RestartPolicy {
    pub condition: Option<String>,
    pub delay: Option<i64>,
    pub max_attempts: Option<u64>,
    pub window: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Placement {
    pub constraints: Vec<String>,
    pub preferences: Vec<String>,
    pub max_replicas_per_node: Option<u64>,
}

/// One `depends_on` entry (the Compose Specification's; docker's stack ignores them, shoal keeps
/// them as start order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependsOn {
    pub service: String,
    pub condition: shoal_types::stack::Condition,
    pub restart: bool,
    pub required: bool,
    pub at: Location,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Network {
    /// The name to create or look up, when not `<stack>_<key>`.
    pub name: Option<String>,
    pub driver: Option<String>,
    pub driver_opts: Option<BTreeMap<String, String>>,
    pub ipam: Option<Ipam>,
    pub external: bool,
    pub internal: bool,
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
    pub at: Location,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ipam {
    pub driver: Option<String>,
    pub config: Vec<IpamPool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpamPool {
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    pub aux_addresses: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Volume {
    pub name: Option<String>,
    pub driver: Option<String>,
    pub driver_opts: Option<BTreeMap<String, String>>,
    pub external: bool,
    pub labels: BTreeMap<String, String>,
    pub at: Location,
}

/// A top-level secret or config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileObject {
    pub name: Option<String>,
    /// Absolute (resolved against the working directory).
    pub file: Option<String>,
    /// The Compose Specification's `environment:` source: the variable whose value is the data.
    pub environment: Option<String>,
    pub external: bool,
    pub labels: BTreeMap<String, String>,
    pub driver: Option<String>,
    pub driver_opts: Option<BTreeMap<String, String>>,
    pub template_driver: Option<String>,
    pub at: Location,
}
