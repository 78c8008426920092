//! Container flags beyond the command line, parsed as docker parses them: `--mount` (the CSV
//! syntax), the `--health-*` flags, `--cap-add`/`--cap-drop`, `--sysctl` and `--ulimit`. Each
//! error names the flag and the bad part of its value.

use std::collections::HashMap;

use bollard_stubs::models::{
    HealthConfig, Mount, MountTmpfsOptions, MountType, MountVolumeOptions, ResourcesUlimits,
    TaskSpecContainerSpec,
};

use super::update::UpdateArgs;

use crate::error::{CliError, Result};
use crate::units::{parse_duration_flag, parse_mem_bytes};

/// The `--health-*` flags of `service create` and `update`.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct HealthFlags {
    /// Command to run to check health
    #[arg(long, value_name = "string")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long, value_name = "duration")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long, value_name = "duration")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long, value_name = "int", allow_negative_numbers = true)]
    pub health_retries: Option<String>,
    /// Start period for the container to initialize before counting retries towards unstable (ms|s|m|h)
    #[arg(long, value_name = "duration")]
    pub health_start_period: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long)]
    pub no_healthcheck: bool,
}

impl HealthFlags {
    pub fn any(&self) -> bool {
        self.no_healthcheck
            || self.health_cmd.is_some()
            || self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_retries.is_some()
            || self.health_start_period.is_some()
    }

    /// The health check with these flags applied over `current` (docker's
    /// `updateHealthcheck`; `current` is `None` at create).
    pub fn apply(&self, current: Option<HealthConfig>) -> Result<Option<HealthConfig>> {
        if !self.any() {
            return Ok(current);
        }
        let timing = self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_retries.is_some()
            || self.health_start_period.is_some();
        if self.no_healthcheck {
            if self.health_cmd.is_some() || timing {
                return Err(CliError::Usage(
                    "--no-healthcheck conflicts with --health-* options".into(),
                ));
            }
            return Ok(Some(HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            }));
        }
        let mut h = current.unwrap_or_default();
        // A disabled check being given new settings is a new check.
        if h.test
            .as_ref()
            .is_some_and(|t| t.first().is_some_and(|k| k == "NONE"))
        {
            h.test = None;
        }
        if let Some(cmd) = &self.health_cmd {
            h.test = (!cmd.is_empty()).then(|| vec!["CMD-SHELL".to_string(), cmd.clone()]);
        }
        let duration = |name: &str, v: &Option<String>| -> Result<Option<i64>> {
            v.as_ref()
                .map(|s| parse_duration_flag(s).map_err(|why| CliError::invalid_flag(name, s, why)))
                .transpose()
        };
        if let Some(d) = duration("health-interval", &self.health_interval)? {
            h.interval = Some(d);
        }
        if let Some(d) = duration("health-timeout", &self.health_timeout)? {
            h.timeout = Some(d);
        }
        if let Some(d) = duration("health-start-period", &self.health_start_period)? {
            h.start_period = Some(d);
        }
        if let Some(r) = &self.health_retries {
            h.retries = Some(r.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                CliError::invalid_flag("health-retries", r, "expected a number >= 0")
            })?);
        }
        Ok(Some(h))
    }
}

/// Splits a CSV line as Go's `encoding/csv` reads docker's `--mount` values: fields separated
/// by commas, a field in double quotes may hold commas, `""` inside quotes is a quote.
/// (`--secret` and `--config` are read the same way.)
pub(crate) fn csv_fields(flag: &str, value: &str) -> Result<Vec<String>> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = value.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' if quoted => quoted = false,
            '"' if at_start => quoted = true,
            ',' if !quoted => {
                fields.push(std::mem::take(&mut cur));
                at_start = true;
                continue;
            }
            c => cur.push(c),
        }
        at_start = false;
    }
    if quoted {
        return Err(CliError::invalid_flag(flag, value, "a quote is not closed"));
    }
    fields.push(cur);
    Ok(fields)
}

fn parse_bool(flag: &str, value: &str, key: &str, v: Option<&str>) -> Result<bool> {
    match v.map(str::to_ascii_lowercase).as_deref() {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(other) => Err(CliError::invalid_flag(
            flag,
            value,
            format!("invalid value for {key}: {other:?} (expected true or false)"),
        )),
    }
}

/// docker's `MountOpt.Set`: `type=volume,source=data,target=/data,readonly,...`.
pub fn parse_mount(flag: &str, value: &str) -> Result<Mount> {
    let bad = |why: String| CliError::invalid_flag(flag, value, why);
    let mut m = Mount {
        typ: Some(MountType::VOLUME),
        ..Default::default()
    };
    let mut volume = MountVolumeOptions::default();
    let mut tmpfs = MountTmpfsOptions::default();
    let mut labels = HashMap::new();
    for field in csv_fields(flag, value)? {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v)),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let need =
            || val.ok_or_else(|| bad(format!("invalid field '{field}' must be a key=value pair")));
        match key.as_str() {
            "readonly" | "ro" => m.read_only = Some(parse_bool(flag, value, &key, val)?),
            "volume-nocopy" => volume.no_copy = Some(parse_bool(flag, value, &key, val)?),
            "type" => {
                m.typ = Some(match need()?.to_ascii_lowercase().as_str() {
                    "volume" => MountType::VOLUME,
                    "bind" => MountType::BIND,
                    "tmpfs" => MountType::TMPFS,
                    other => {
                        return Err(bad(format!(
                            "mount type {other:?} is not supported (volume, bind or tmpfs)"
                        )));
                    }
                })
            }
            "source" | "src" => m.source = Some(need()?.to_string()),
            "target" | "dst" | "destination" => m.target = Some(need()?.to_string()),
            "volume-label" => {
                let v = need()?;
                let (k, lv) = v.split_once('=').unwrap_or((v, ""));
                labels.insert(k.to_string(), lv.to_string());
            }
            "volume-driver" if need()? != "local" => {
                return Err(bad("only the local volume driver is supported".into()));
            }
            "volume-driver" => {}
            "tmpfs-size" => {
                let v = need()?;
                tmpfs.size_bytes =
                    Some(parse_mem_bytes(v).map_err(|why| bad(format!("tmpfs-size: {why}")))?);
            }
            "tmpfs-mode" => {
                let v = need()?;
                tmpfs.mode = Some(
                    i64::from_str_radix(v.trim_start_matches("0o"), 8)
                        .map_err(|_| bad(format!("tmpfs-mode: {v:?} is not an octal mode")))?,
                );
            }
            "bind-propagation" if need()? == "rprivate" => {}
            "bind-propagation" | "bind-nonrecursive" | "volume-opt" | "volume-subpath" => {
                return Err(bad(format!("{key} is not supported by shoal yet")));
            }
            "consistency" => {}
            _ => return Err(bad(format!("unexpected key '{key}' in '{field}'"))),
        }
    }
    if m.target.as_deref().is_none_or(str::is_empty) {
        return Err(bad("target is required".into()));
    }
    if !labels.is_empty() {
        volume.labels = Some(labels);
    }
    match m.typ {
        Some(MountType::VOLUME) => {
            if volume != MountVolumeOptions::default() {
                m.volume_options = Some(volume);
            }
            if tmpfs != MountTmpfsOptions::default() {
                return Err(bad("tmpfs options are only for type=tmpfs".into()));
            }
        }
        Some(MountType::TMPFS) => {
            if m.source.is_some() {
                return Err(bad("source is not allowed for tmpfs mounts".into()));
            }
            if tmpfs != MountTmpfsOptions::default() {
                m.tmpfs_options = Some(tmpfs);
            }
        }
        _ => {
            if m.source.as_deref().is_none_or(str::is_empty) {
                return Err(bad("source is required when specifying bind mounts".into()));
            }
            if volume != MountVolumeOptions::default() || tmpfs != MountTmpfsOptions::default() {
                return Err(bad(
                    "volume and tmpfs options are not for bind mounts".into()
                ));
            }
        }
    }
    Ok(m)
}

/// docker's `--ulimit nofile=1024:2048` (one number sets both).
pub fn parse_ulimit(flag: &str, value: &str) -> Result<ResourcesUlimits> {
    let bad = |why: &str| CliError::invalid_flag(flag, value, why.to_string());
    let (name, limits) = value
        .split_once('=')
        .ok_or_else(|| bad("expected NAME=SOFT[:HARD]"))?;
    let num = |s: &str| s.parse::<i64>().map_err(|_| bad("limits must be numbers"));
    let (soft, hard) = match limits.split_once(':') {
        Some((s, h)) => (num(s)?, num(h)?),
        None => {
            let n = num(limits)?;
            (n, n)
        }
    };
    Ok(ResourcesUlimits {
        name: Some(name.to_string()),
        soft: Some(soft),
        hard: Some(hard),
    })
}

/// A capability as docker sends it: upper case with the `CAP_` prefix, or `ALL`.
pub fn cap_name(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    if up == "ALL" || up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// `--sysctl KEY=VALUE`.
pub fn parse_sysctl(flag: &str, value: &str) -> Result<(String, String)> {
    match value.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(CliError::invalid_flag(flag, value, "expected KEY=VALUE")),
    }
}

/// docker's `updateMounts`, `updateCapabilities`, `updateSysctls`, `updateUlimits` and
/// `updateHealthcheck`: removals first, then additions replacing what they name.
pub fn update_extras(cs: &mut TaskSpecContainerSpec, a: &UpdateArgs) -> Result<()> {
    if !a.mount_rm.is_empty() || !a.mount_add.is_empty() {
        let added = a
            .mount_add
            .iter()
            .map(|m| parse_mount("mount-add", m))
            .collect::<Result<Vec<_>>>()?;
        let mounts = cs.mounts.get_or_insert_with(Vec::new);
        mounts.retain(|m| {
            let t = m.target.as_deref().unwrap_or("");
            !a.mount_rm.iter().any(|r| r == t)
                && !added.iter().any(|n| n.target.as_deref() == Some(t))
        });
        mounts.extend(added);
    }
    // As docker: a capability added is no longer dropped and the other way round.
    let norm = cap_name;
    if !a.cap_add.is_empty() || !a.cap_drop.is_empty() {
        let add: Vec<String> = a.cap_add.iter().map(|c| norm(c)).collect();
        let drop: Vec<String> = a.cap_drop.iter().map(|c| norm(c)).collect();
        let adds = cs.capability_add.get_or_insert_with(Vec::new);
        adds.retain(|c| !drop.contains(&norm(c)));
        for c in &add {
            if !adds.iter().any(|x| norm(x) == *c) {
                adds.push(c.clone());
            }
        }
        let drops = cs.capability_drop.get_or_insert_with(Vec::new);
        drops.retain(|c| !add.contains(&norm(c)));
        for c in &drop {
            if !drops.iter().any(|x| norm(x) == *c) {
                drops.push(c.clone());
            }
        }
    }
    if !a.sysctl_rm.is_empty() || !a.sysctl_add.is_empty() {
        let sysctls = cs.sysctls.get_or_insert_with(HashMap::new);
        for k in &a.sysctl_rm {
            sysctls.remove(k.split('=').next().unwrap_or(k));
        }
        for v in &a.sysctl_add {
            let (k, v) = parse_sysctl("sysctl-add", v)?;
            sysctls.insert(k, v);
        }
    }
    if !a.ulimit_rm.is_empty() || !a.ulimit_add.is_empty() {
        let added = a
            .ulimit_add
            .iter()
            .map(|u| parse_ulimit("ulimit-add", u))
            .collect::<Result<Vec<_>>>()?;
        let ulimits = cs.ulimits.get_or_insert_with(Vec::new);
        ulimits.retain(|u| {
            let n = u.name.as_deref().unwrap_or("");
            !a.ulimit_rm.iter().any(|r| r == n)
                && !added.iter().any(|x| x.name.as_deref() == Some(n))
        });
        ulimits.extend(added);
    }
    cs.health_check = a.flags.health.apply(cs.health_check.take())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_parse_as_docker_does() {
        let m = parse_mount("mount", "type=volume,source=data,target=/data,readonly").expect("ok");
        assert_eq!(
            (m.typ, m.source.as_deref(), m.target.as_deref(), m.read_only),
            (
                Some(MountType::VOLUME),
                Some("data"),
                Some("/data"),
                Some(true)
            )
        );
        let m = parse_mount("mount", "src=v,dst=/v,volume-label=a=b,volume-nocopy").expect("ok");
        let v = m.volume_options.expect("volume options");
        assert_eq!(v.no_copy, Some(true));
        assert_eq!(
            v.labels.and_then(|l| l.get("a").cloned()).as_deref(),
            Some("b")
        );
        let m = parse_mount(
            "mount",
            "type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770",
        )
        .expect("ok");
        let t = m.tmpfs_options.expect("tmpfs options");
        assert_eq!((t.size_bytes, t.mode), (Some(1 << 20), Some(0o1770)));
        let m = parse_mount("mount", "type=bind,\"source=/a,b\",target=/b,ro=false").expect("ok");
        assert_eq!(
            (m.source.as_deref(), m.read_only),
            (Some("/a,b"), Some(false))
        );
    }

    #[test]
    fn bad_mounts_say_what_is_wrong() {
        let err = |v: &str| parse_mount("mount", v).expect_err("refused").to_string();
        assert!(err("type=volume,source=data").contains("target is required"));
        assert!(err("type=bind,target=/x").contains("source is required"));
        assert!(err("type=nfs,target=/x").contains("\"nfs\""));
        assert!(err("target=/x,color=red").contains("unexpected key 'color'"));
        assert!(err("type=tmpfs,source=x,target=/t").contains("source is not allowed"));
        assert!(err("target=/x,tmpfs-size=lots").contains("tmpfs-size"));
        assert!(err("target=/x,readonly=maybe").contains("readonly"));
        assert!(err("target").contains("key=value"));
    }

    #[test]
    fn health_flags_apply_over_the_current_check() {
        let f = HealthFlags {
            health_cmd: Some("test -f /ok".into()),
            health_interval: Some("1s".into()),
            health_retries: Some("2".into()),
            ..Default::default()
        };
        let h = f.apply(None).expect("ok").expect("a check");
        assert_eq!(h.test, Some(vec!["CMD-SHELL".into(), "test -f /ok".into()]));
        assert_eq!((h.interval, h.retries), (Some(1_000_000_000), Some(2)));
        // An update that only changes the interval keeps the command.
        let later = HealthFlags {
            health_interval: Some("5s".into()),
            ..Default::default()
        };
        let h2 = later.apply(Some(h)).expect("ok").expect("a check");
        assert_eq!(
            h2.test,
            Some(vec!["CMD-SHELL".into(), "test -f /ok".into()])
        );
        assert_eq!(h2.interval, Some(5_000_000_000));
        let off = HealthFlags {
            no_healthcheck: true,
            ..Default::default()
        };
        assert_eq!(
            off.apply(Some(h2)).expect("ok").and_then(|h| h.test),
            Some(vec!["NONE".to_string()])
        );
        let both = HealthFlags {
            no_healthcheck: true,
            health_cmd: Some("x".into()),
            ..Default::default()
        };
        assert!(both.apply(None).is_err());
        let bad = HealthFlags {
            health_retries: Some("-1".into()),
            ..Default::default()
        };
        assert!(
            bad.apply(None)
                .expect_err("refused")
                .to_string()
                .contains("health-retries")
        );
    }

    #[test]
    fn ulimits_and_sysctls() {
        let u = parse_ulimit("ulimit", "nofile=1024:2048").expect("ok");
        assert_eq!((u.soft, u.hard), (Some(1024), Some(2048)));
        let u = parse_ulimit("ulimit", "core=-1").expect("ok");
        assert_eq!((u.soft, u.hard), (Some(-1), Some(-1)));
        assert!(parse_ulimit("ulimit", "nofile").is_err());
        assert!(parse_ulimit("ulimit", "nofile=a:b").is_err());
        assert_eq!(
            parse_sysctl("sysctl", "net.core.somaxconn=1024").expect("ok"),
            ("net.core.somaxconn".into(), "1024".into())
        );
        assert!(parse_sysctl("sysctl", "=1").is_err());
    }
}
