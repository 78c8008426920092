//! The parts of a container spec that runtimes honour beyond the command line: mounts, health
//! checks and kernel settings. Shaped like the Docker Engine API's `ContainerSpec` fields of the
//! same names, so the compat layer maps them one to one.

use std::collections::BTreeMap;
use std::time::Duration;

/// Docker's defaults for a health check field left unset by both the spec and the image.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_HEALTH_RETRIES: u64 = 3;

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A named volume local to the node, created on first use and kept across tasks.
    #[default]
    Volume,
    /// A path of the node.
    Bind,
    /// A memory-backed filesystem that lives as long as the task.
    Tmpfs,
}

impl MountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MountKind::Volume => "volume",
            MountKind::Bind => "bind",
            MountKind::Tmpfs => "tmpfs",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Mount {
    pub kind: MountKind,
    /// The volume name (empty: an anonymous volume, removed with the task) or the node path of
    /// a bind; empty for tmpfs.
    #[serde(default)]
    pub source: String,
    /// Where it appears in the container; absolute.
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
    /// Labels given to a volume this mount creates.
    #[serde(default)]
    pub volume_labels: BTreeMap<String, String>,
    /// Do not copy the image's files at `target` into a new volume.
    #[serde(default)]
    pub volume_nocopy: bool,
    /// tmpfs size in bytes; 0 means the kernel's default (half the memory).
    #[serde(default)]
    pub tmpfs_size: u64,
    /// tmpfs permission bits; 0 means 1777.
    #[serde(default)]
    pub tmpfs_mode: u32,
}

/// A task's health check. Fields left `None` come from the image's HEALTHCHECK, then Docker's
/// defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct HealthConfig {
    /// Docker's forms: `[]` inherit the image's, `["NONE"]` disable, `["CMD", argv...]`,
    /// `["CMD-SHELL", "command line"]` (run by `/bin/sh -c`).
    #[serde(default)]
    pub test: Vec<String>,
    #[serde(default)]
    pub interval: Option<Duration>,
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// Failures during this time after the start do not count (but a success ends it).
    #[serde(default)]
    pub start_period: Option<Duration>,
    /// Consecutive failures that make the task unhealthy.
    #[serde(default)]
    pub retries: Option<u64>,
}

impl HealthConfig {
    pub fn disabled(&self) -> bool {
        self.test.first().is_some_and(|t| t == "NONE")
    }

    /// `self` with every field it leaves unset taken from `image`'s check.
    pub fn over(&self, image: &HealthConfig) -> HealthConfig {
        HealthConfig {
            test: if self.test.is_empty() {
                image.test.clone()
            } else {
                self.test.clone()
            },
            interval: self.interval.or(image.interval),
            timeout: self.timeout.or(image.timeout),
            start_period: self.start_period.or(image.start_period),
            retries: self.retries.or(image.retries),
        }
    }

    /// The argv to run, or `None` when there is no check (no test, or `NONE`).
    pub fn argv(&self) -> Option<Vec<String>> {
        match self.test.split_first() {
            Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
            Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
                Some(vec!["/bin/sh".into(), "-c".into(), rest.join(" ")])
            }
            _ => None,
        }
    }

    pub fn effective_interval(&self) -> Duration {
        self.interval
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_HEALTH_INTERVAL)
    }

    pub fn effective_timeout(&self) -> Duration {
        self.timeout
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_HEALTH_TIMEOUT)
    }

    pub fn effective_retries(&self) -> u64 {
        self.retries
            .filter(|&r| r > 0)
            .unwrap_or(DEFAULT_HEALTH_RETRIES)
    }

    pub fn effective_start_period(&self) -> Duration {
        self.start_period.unwrap_or_default()
    }
}

/// Docker's `Privileges` of a service's container, shaped as Docker keeps them (Go's
/// `swarm.Privileges`): the nested objects only when given, their fields and `NoNewPrivileges`
/// plain values. Modes are Docker's words (`default`, `unconfined`, `custom`; `default`,
/// `disabled`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Privileges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_spec: Option<CredentialSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux_context: Option<SeLinuxContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<Seccomp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_armor: Option<AppArmor>,
    #[serde(default)]
    pub no_new_privileges: bool,
}

/// A Windows credential spec: one of the three sources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CredentialSpec {
    #[serde(default)]
    pub config: String,
    #[serde(default)]
    pub file: String,
    #[serde(default)]
    pub registry: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SeLinuxContext {
    #[serde(default)]
    pub disable: bool,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub level: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Seccomp {
    #[serde(default)]
    pub mode: String,
    /// The profile's JSON text, for mode `custom`.
    #[serde(default)]
    pub profile: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct AppArmor {
    #[serde(default)]
    pub mode: String,
}

impl Privileges {
    /// The settings that ask for something other than a container's defaults, by their Docker
    /// names (`NoNewPrivileges`, `Seccomp`...). Empty for what `docker stack deploy` sends with
    /// every service (an object of nulls and `false`).
    pub fn requested(&self) -> Vec<&'static str> {
        let set = |s: &str| !s.is_empty();
        let not_default = |s: &str| !s.is_empty() && s != "default";
        let mut out = Vec::new();
        if self
            .credential_spec
            .as_ref()
            .is_some_and(|c| set(&c.config) || set(&c.file) || set(&c.registry))
        {
            out.push("CredentialSpec");
        }
        if self.selinux_context.as_ref().is_some_and(|c| {
            c.disable || set(&c.user) || set(&c.role) || set(&c.kind) || set(&c.level)
        }) {
            out.push("SELinuxContext");
        }
        if self
            .seccomp
            .as_ref()
            .is_some_and(|c| not_default(&c.mode) || set(&c.profile))
        {
            out.push("Seccomp");
        }
        if self
            .app_armor
            .as_ref()
            .is_some_and(|c| not_default(&c.mode))
        {
            out.push("AppArmor");
        }
        if self.no_new_privileges {
            out.push("NoNewPrivileges");
        }
        out
    }
}

/// The resource limits a ulimit may set, as Docker names them (Linux's `RLIMIT_*` lower-cased,
/// without the prefix).
pub const ULIMIT_NAMES: &[&str] = &[
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Ulimit {
    /// As `ulimit` names them without the `RLIMIT_` prefix, lower case: `nofile`, `nproc`...
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_check_forms() {
        let cmd = HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            ..Default::default()
        };
        assert_eq!(cmd.argv(), Some(vec!["true".to_string()]));
        let shell = HealthConfig {
            test: vec!["CMD-SHELL".into(), "test -f /ok".into()],
            ..Default::default()
        };
        assert_eq!(
            shell.argv(),
            Some(vec!["/bin/sh".into(), "-c".into(), "test -f /ok".into()])
        );
        let none = HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        };
        assert!(none.disabled());
        assert_eq!(none.argv(), None);
        assert_eq!(HealthConfig::default().argv(), None);
    }

    #[test]
    fn privileges_that_ask_for_nothing_request_nothing() {
        // What `docker stack deploy` sends with every service.
        assert!(Privileges::default().requested().is_empty());
        let defaults = Privileges {
            seccomp: Some(Seccomp {
                mode: "default".into(),
                profile: String::new(),
            }),
            app_armor: Some(AppArmor {
                mode: "default".into(),
            }),
            selinux_context: Some(SeLinuxContext::default()),
            credential_spec: Some(CredentialSpec::default()),
            ..Default::default()
        };
        assert!(defaults.requested().is_empty());
        let all = Privileges {
            credential_spec: Some(CredentialSpec {
                file: "spec.json".into(),
                ..Default::default()
            }),
            selinux_context: Some(SeLinuxContext {
                level: "s0:c1".into(),
                ..Default::default()
            }),
            seccomp: Some(Seccomp {
                mode: "unconfined".into(),
                profile: String::new(),
            }),
            app_armor: Some(AppArmor {
                mode: "disabled".into(),
            }),
            no_new_privileges: true,
        };
        assert_eq!(
            all.requested(),
            [
                "CredentialSpec",
                "SELinuxContext",
                "Seccomp",
                "AppArmor",
                "NoNewPrivileges"
            ]
        );
    }

    #[test]
    fn spec_fields_win_over_the_image_and_defaults_fill_the_rest() {
        let image = HealthConfig {
            test: vec!["CMD".into(), "probe".into()],
            interval: Some(Duration::from_secs(5)),
            retries: Some(7),
            ..Default::default()
        };
        let spec = HealthConfig {
            interval: Some(Duration::from_secs(1)),
            ..Default::default()
        };
        let h = spec.over(&image);
        assert_eq!(h.argv(), Some(vec!["probe".to_string()]));
        assert_eq!(h.effective_interval(), Duration::from_secs(1));
        assert_eq!(h.effective_retries(), 7);
        assert_eq!(h.effective_timeout(), DEFAULT_HEALTH_TIMEOUT);
        assert_eq!(h.effective_start_period(), Duration::ZERO);
    }
}
