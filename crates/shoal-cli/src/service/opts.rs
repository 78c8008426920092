//! The flags `service create` and `service update` share (docker's `addServiceFlags`), and their
//! parsing into typed values. Every flag is optional so "given" and "left alone" stay distinct:
//! docker applies a flag only when it was given (`flags.Changed`).

use bollard_stubs::models::{
    TaskSpecPlacementPreferences, TaskSpecPlacementSpread, TaskSpecRestartPolicyConditionEnum,
};

use crate::error::{CliError, Result};
use crate::units::{
    parse_duration_flag, parse_mem_bytes, parse_nano_cpus, parse_ratio, parse_uint,
};

#[derive(Debug, Default, clap::Args)]
pub struct ServiceFlags {
    /// Exit immediately instead of waiting for the service to converge
    #[arg(short, long)]
    pub detach: bool,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Container hostname
    #[arg(long)]
    pub hostname: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long, value_name = "command")]
    pub entrypoint: Option<String>,
    /// Number of tasks
    #[arg(long, value_name = "uint", allow_negative_numbers = true)]
    pub replicas: Option<String>,
    /// Number of job tasks to run concurrently (default equal to --replicas)
    #[arg(long, value_name = "uint", allow_negative_numbers = true)]
    pub max_concurrent: Option<String>,
    /// Maximum number of tasks per node (default 0 = unlimited)
    #[arg(long, value_name = "uint", allow_negative_numbers = true)]
    pub replicas_max_per_node: Option<String>,
    /// Limit CPUs
    #[arg(long, value_name = "decimal", allow_negative_numbers = true)]
    pub limit_cpu: Option<String>,
    /// Limit Memory
    #[arg(long, value_name = "bytes", allow_negative_numbers = true)]
    pub limit_memory: Option<String>,
    /// Limit maximum number of processes (default 0 = unlimited)
    #[arg(long, value_name = "int", allow_negative_numbers = true)]
    pub limit_pids: Option<String>,
    /// Reserve CPUs
    #[arg(long, value_name = "decimal", allow_negative_numbers = true)]
    pub reserve_cpu: Option<String>,
    /// Reserve Memory
    #[arg(long, value_name = "bytes", allow_negative_numbers = true)]
    pub reserve_memory: Option<String>,
    /// Restart when condition is met ("none", "on-failure", "any") (default "any")
    #[arg(long, value_name = "string")]
    pub restart_condition: Option<String>,
    /// Delay between restart attempts (ns|us|ms|s|m|h) (default 5s)
    #[arg(long, value_name = "duration")]
    pub restart_delay: Option<String>,
    /// Maximum number of restarts before giving up
    #[arg(long, value_name = "uint", allow_negative_numbers = true)]
    pub restart_max_attempts: Option<String>,
    /// Window used to evaluate the restart policy (ns|us|ms|s|m|h)
    #[arg(long, value_name = "duration")]
    pub restart_window: Option<String>,
    /// Time to wait before force killing a container (ns|us|ms|s|m|h) (default 10s)
    #[arg(long, value_name = "duration")]
    pub stop_grace_period: Option<String>,
    /// Signal to stop the container
    #[arg(long, value_name = "string")]
    pub stop_signal: Option<String>,
    /// Maximum number of tasks updated simultaneously (0 to update all at once)
    #[arg(long, value_name = "uint", allow_negative_numbers = true)]
    pub update_parallelism: Option<String>,
    /// Delay between updates (ns|us|ms|s|m|h) (default 0s)
    #[arg(long, value_name = "duration")]
    pub update_delay: Option<String>,
    /// Duration after each task update to monitor for failure (ns|us|ms|s|m|h) (default 5s)
    #[arg(long, value_name = "duration")]
    pub update_monitor: Option<String>,
    /// Action on update failure ("pause", "continue", "rollback") (default "pause")
    #[arg(long, value_name = "string")]
    pub update_failure_action: Option<String>,
    /// Failure rate to tolerate during an update (default 0)
    #[arg(long, value_name = "float", allow_negative_numbers = true)]
    pub update_max_failure_ratio: Option<String>,
    /// Update order ("start-first", "stop-first") (default "stop-first")
    #[arg(long, value_name = "string")]
    pub update_order: Option<String>,
    /// Maximum number of tasks rolled back simultaneously (0 to roll back all at once)
    #[arg(long, value_name = "uint", allow_negative_numbers = true)]
    pub rollback_parallelism: Option<String>,
    /// Delay between task rollbacks (ns|us|ms|s|m|h) (default 0s)
    #[arg(long, value_name = "duration")]
    pub rollback_delay: Option<String>,
    /// Duration after each task rollback to monitor for failure (ns|us|ms|s|m|h) (default 5s)
    #[arg(long, value_name = "duration")]
    pub rollback_monitor: Option<String>,
    /// Action on rollback failure ("pause", "continue") (default "pause")
    #[arg(long, value_name = "string")]
    pub rollback_failure_action: Option<String>,
    /// Failure rate to tolerate during a rollback (default 0)
    #[arg(long, value_name = "float", allow_negative_numbers = true)]
    pub rollback_max_failure_ratio: Option<String>,
    /// Rollback order ("start-first", "stop-first") (default "stop-first")
    #[arg(long, value_name = "string")]
    pub rollback_order: Option<String>,
    /// Endpoint mode (vip or dnsrr) (default "vip")
    #[arg(long, value_name = "string")]
    pub endpoint_mode: Option<String>,
    /// Use an init inside each service container to forward signals and reap processes
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    pub init: Option<bool>,
    /// Allocate a pseudo-TTY
    #[arg(short, long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    pub tty: Option<bool>,
    /// Mount the container's root filesystem as read only
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    pub read_only: Option<bool>,
    /// Do not query the registry to resolve image digest and supported platforms
    #[arg(long)]
    pub no_resolve_image: bool,
    #[command(flatten)]
    pub health: super::container::HealthFlags,
}

/// Update or rollback settings given on the command line (each None when not given).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct UpdatePolicyFlags {
    pub parallelism: Option<i64>,
    pub delay: Option<i64>,
    pub monitor: Option<i64>,
    pub failure_action: Option<String>,
    pub max_failure_ratio: Option<f64>,
    pub order: Option<String>,
}

impl UpdatePolicyFlags {
    pub fn any(&self) -> bool {
        *self != UpdatePolicyFlags::default()
    }
}

/// The shared flags, parsed; None when the flag was not given.
#[derive(Debug, Default)]
pub struct Parsed {
    pub replicas: Option<i64>,
    pub max_concurrent: Option<i64>,
    pub max_replicas: Option<i64>,
    pub limit_cpu: Option<i64>,
    pub limit_memory: Option<i64>,
    pub limit_pids: Option<i64>,
    pub reserve_cpu: Option<i64>,
    pub reserve_memory: Option<i64>,
    pub restart_condition: Option<TaskSpecRestartPolicyConditionEnum>,
    pub restart_delay: Option<i64>,
    pub restart_max_attempts: Option<i64>,
    pub restart_window: Option<i64>,
    pub stop_grace_period: Option<i64>,
    pub entrypoint: Option<Vec<String>>,
    pub update: UpdatePolicyFlags,
    pub rollback: UpdatePolicyFlags,
}

impl Parsed {
    pub fn restart_given(&self) -> bool {
        self.restart_condition.is_some()
            || self.restart_delay.is_some()
            || self.restart_max_attempts.is_some()
            || self.restart_window.is_some()
    }
}

fn flag<T>(
    name: &str,
    value: &Option<String>,
    parse: impl Fn(&str) -> std::result::Result<T, String>,
) -> Result<Option<T>> {
    match value {
        None => Ok(None),
        Some(v) => parse(v)
            .map(Some)
            .map_err(|why| CliError::invalid_flag(name, v, why)),
    }
}

fn uint(v: &str) -> std::result::Result<i64, String> {
    parse_uint(v).and_then(|n| i64::try_from(n).map_err(|_| "value out of range".to_string()))
}

fn one_of<'a>(allowed: &'a [&'a str]) -> impl Fn(&str) -> std::result::Result<String, String> + 'a {
    move |v: &str| {
        if allowed.contains(&v) {
            Ok(v.to_string())
        } else {
            let quoted: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
            Err(format!("expected one of {}", quoted.join(", ")))
        }
    }
}

pub fn parse(f: &ServiceFlags) -> Result<Parsed> {
    let restart_condition = flag("restart-condition", &f.restart_condition, |v| match v {
        "none" => Ok(TaskSpecRestartPolicyConditionEnum::NONE),
        "on-failure" => Ok(TaskSpecRestartPolicyConditionEnum::ON_FAILURE),
        "any" => Ok(TaskSpecRestartPolicyConditionEnum::ANY),
        _ => Err("expected one of \"none\", \"on-failure\", \"any\"".to_string()),
    })?;
    let orders = ["start-first", "stop-first"];
    Ok(Parsed {
        replicas: flag("replicas", &f.replicas, uint)?,
        max_concurrent: flag("max-concurrent", &f.max_concurrent, uint)?,
        max_replicas: flag("replicas-max-per-node", &f.replicas_max_per_node, uint)?,
        limit_cpu: flag("limit-cpu", &f.limit_cpu, parse_nano_cpus)?,
        limit_memory: flag("limit-memory", &f.limit_memory, parse_mem_bytes)?,
        limit_pids: flag("limit-pids", &f.limit_pids, uint)?,
        reserve_cpu: flag("reserve-cpu", &f.reserve_cpu, parse_nano_cpus)?,
        reserve_memory: flag("reserve-memory", &f.reserve_memory, parse_mem_bytes)?,
        restart_condition,
        restart_delay: flag("restart-delay", &f.restart_delay, parse_duration_flag)?,
        restart_max_attempts: flag("restart-max-attempts", &f.restart_max_attempts, uint)?,
        restart_window: flag("restart-window", &f.restart_window, parse_duration_flag)?,
        stop_grace_period: flag(
            "stop-grace-period",
            &f.stop_grace_period,
            parse_duration_flag,
        )?,
        entrypoint: flag("entrypoint", &f.entrypoint, shell_words)?,
        update: UpdatePolicyFlags {
            parallelism: flag("update-parallelism", &f.update_parallelism, uint)?,
            delay: flag("update-delay", &f.update_delay, parse_duration_flag)?,
            monitor: flag("update-monitor", &f.update_monitor, parse_duration_flag)?,
            failure_action: flag(
                "update-failure-action",
                &f.update_failure_action,
                one_of(&["pause", "continue", "rollback"]),
            )?,
            max_failure_ratio: flag(
                "update-max-failure-ratio",
                &f.update_max_failure_ratio,
                parse_ratio,
            )?,
            order: flag("update-order", &f.update_order, one_of(&orders))?,
        },
        rollback: UpdatePolicyFlags {
            parallelism: flag("rollback-parallelism", &f.rollback_parallelism, uint)?,
            delay: flag("rollback-delay", &f.rollback_delay, parse_duration_flag)?,
            monitor: flag("rollback-monitor", &f.rollback_monitor, parse_duration_flag)?,
            failure_action: flag(
                "rollback-failure-action",
                &f.rollback_failure_action,
                one_of(&["pause", "continue"]),
            )?,
            max_failure_ratio: flag(
                "rollback-max-failure-ratio",
                &f.rollback_max_failure_ratio,
                parse_ratio,
            )?,
            order: flag("rollback-order", &f.rollback_order, one_of(&orders))?,
        },
    })
}

/// Shell-like word splitting for `--entrypoint` and `--args` (google/shlex rules: quotes and
/// backslashes, no expansion).
pub fn shell_words(s: &str) -> std::result::Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(n) => cur.push(n),
                    None => return Err("EOF found after escape character".to_string()),
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(n) => cur.push(n),
                        None => return Err("EOF found when expecting closing quote".to_string()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(n @ ('"' | '\\' | '$' | '`')) => cur.push(n),
                            Some(n) => {
                                cur.push('\\');
                                cur.push(n);
                            }
                            None => return Err("EOF found after escape character".to_string()),
                        },
                        Some(n) => cur.push(n),
                        None => return Err("EOF found when expecting closing quote".to_string()),
                    }
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// docker's `ValidateEnv`: `KEY=VALUE` as is; a bare `KEY` takes its value from our environment
/// when set there.
pub fn expand_env(value: &str) -> Result<String> {
    let (key, has_value) = match value.split_once('=') {
        Some((k, _)) => (k, true),
        None => (value, false),
    };
    if key.is_empty() {
        return Err(CliError::invalid_flag(
            "env",
            value,
            format!("invalid environment variable: {value}"),
        ));
    }
    if has_value {
        return Ok(value.to_string());
    }
    Ok(match std::env::var(key) {
        Ok(v) => format!("{key}={v}"),
        Err(_) => value.to_string(),
    })
}

/// `key=value` (or a bare `key`) into a map entry; docker's `ValidateLabel` refuses empty keys.
pub fn label_pair(flag: &str, value: &str) -> Result<(String, String)> {
    let (k, v) = value.split_once('=').unwrap_or((value, ""));
    if k.trim().is_empty() {
        return Err(CliError::invalid_flag(
            flag,
            value,
            format!("invalid label '{value}': empty name"),
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

/// `spread=<descriptor>`, the only placement preference swarm knows.
pub fn placement_pref(flag: &str, value: &str) -> Result<TaskSpecPlacementPreferences> {
    match value.split_once('=') {
        Some(("spread", arg)) => Ok(TaskSpecPlacementPreferences {
            spread: Some(TaskSpecPlacementSpread {
                spread_descriptor: Some(arg.to_string()),
            }),
        }),
        Some((strategy, _)) if !strategy.is_empty() => Err(CliError::invalid_flag(
            flag,
            value,
            format!("unsupported placement preference {strategy} (only spread is supported)"),
        )),
        _ => Err(CliError::invalid_flag(
            flag,
            value,
            "placement preference must be of the format \"<strategy>=<arg>\"",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_the_flag() {
        let f = ServiceFlags {
            replicas: Some("-1".into()),
            ..Default::default()
        };
        let err = parse(&f).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(r#"invalid argument "-1" for "--replicas" flag: expected a number >= 0"#)
        );
        for (f, expected) in [
            (
                ServiceFlags {
                    limit_memory: Some("12q".into()),
                    ..Default::default()
                },
                r#"invalid argument "12q" for "--limit-memory" flag: invalid suffix: 'q'"#,
            ),
            (
                ServiceFlags {
                    limit_cpu: Some("abc".into()),
                    ..Default::default()
                },
                r#"invalid argument "abc" for "--limit-cpu" flag: failed to parse abc as a rational number"#,
            ),
            (
                ServiceFlags {
                    restart_delay: Some("5".into()),
                    ..Default::default()
                },
                r#"invalid argument "5" for "--restart-delay" flag: time: missing unit in duration "5""#,
            ),
            (
                ServiceFlags {
                    update_order: Some("random".into()),
                    ..Default::default()
                },
                r#"invalid argument "random" for "--update-order" flag: expected one of "start-first", "stop-first""#,
            ),
            (
                ServiceFlags {
                    rollback_failure_action: Some("rollback".into()),
                    ..Default::default()
                },
                r#"invalid argument "rollback" for "--rollback-failure-action" flag: expected one of "pause", "continue""#,
            ),
            (
                ServiceFlags {
                    restart_condition: Some("always".into()),
                    ..Default::default()
                },
                r#"invalid argument "always" for "--restart-condition" flag: expected one of "none", "on-failure", "any""#,
            ),
        ] {
            let err = parse(&f).err();
            assert_eq!(err.as_ref().map(|e| e.exit_code()), Some(2));
            assert_eq!(err.map(|e| e.to_string()).as_deref(), Some(expected));
        }
    }

    #[test]
    fn shell_words_like_shlex() {
        assert_eq!(
            shell_words("/bin/busybox sleep"),
            Ok(vec!["/bin/busybox".into(), "sleep".into()])
        );
        assert_eq!(
            shell_words(r#"sh -c 'echo "hi there"' "a\"b" c\ d"#),
            Ok(vec![
                "sh".into(),
                "-c".into(),
                "echo \"hi there\"".into(),
                "a\"b".into(),
                "c d".into()
            ])
        );
        assert_eq!(shell_words("  "), Ok(vec![]));
        assert!(shell_words("'open").is_err());
    }

    #[test]
    fn env_labels_and_prefs() {
        assert_eq!(expand_env("A=1").ok().as_deref(), Some("A=1"));
        assert_eq!(
            expand_env("SHOAL_CLI_SURELY_UNSET_VAR").ok().as_deref(),
            Some("SHOAL_CLI_SURELY_UNSET_VAR")
        );
        assert!(expand_env("=x").is_err());
        assert_eq!(label_pair("label", "c").ok(), Some(("c".into(), "".into())));
        assert!(label_pair("label", "=v").is_err());
        assert!(placement_pref("placement-pref", "spread=node.labels.zone").is_ok());
        assert_eq!(
            placement_pref("placement-pref", "pack=x")
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some(
                r#"invalid argument "pack=x" for "--placement-pref" flag: unsupported placement preference pack (only spread is supported)"#
            )
        );
    }
}
