//! The container spec's mounts, health check, kernel settings and name resolution (`DNSConfig`,
//! `Hosts`: their entries are checked by the manager), between the wire and the model.
//! Durations are nanoseconds on the wire; 0 there means "unset" for the health check, as
//! Docker reads it.

use std::collections::HashMap;
use std::time::Duration;

use bollard_stubs::models as w;
use shoal_types::container::{HealthConfig, Mount, MountKind, Ulimit};
use shoal_types::dns::DnsConfig;

use super::{duration, nanos};
use crate::error::ApiError;

pub fn mounts_in(field: &str, mounts: Option<Vec<w::Mount>>) -> Result<Vec<Mount>, ApiError> {
    let mut out = Vec::new();
    for (i, m) in mounts.unwrap_or_default().into_iter().enumerate() {
        let f = |name: &str| format!("{field}[{i}].{name}");
        let kind = match m.typ {
            None | Some(w::MountType::VOLUME) => MountKind::Volume,
            Some(w::MountType::BIND) => MountKind::Bind,
            Some(w::MountType::TMPFS) => MountKind::Tmpfs,
            Some(other) => {
                return Err(ApiError::invalid(
                    &f("Type"),
                    format!("{other:?} mounts are not supported; use volume, bind or tmpfs"),
                ));
            }
        };
        if m.bind_options.as_ref().is_some_and(|b| {
            b.propagation.is_some_and(|p| {
                !matches!(
                    p,
                    w::MountBindOptionsPropagationEnum::EMPTY
                        | w::MountBindOptionsPropagationEnum::RPRIVATE
                )
            }) || b.non_recursive == Some(true)
        }) {
            return Err(ApiError::invalid(
                &f("BindOptions"),
                "only the default (rprivate, recursive) bind is supported",
            ));
        }
        let vol = m.volume_options.unwrap_or_default();
        if vol
            .driver_config
            .as_ref()
            .and_then(|d| d.name.as_deref())
            .is_some_and(|n| !n.is_empty() && n != "local")
        {
            return Err(ApiError::invalid(
                &f("VolumeOptions.DriverConfig.Name"),
                "only the local volume driver is supported",
            ));
        }
        if vol.subpath.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::invalid(
                &f("VolumeOptions.Subpath"),
                "is not supported by shoal yet",
            ));
        }
        let tmpfs = m.tmpfs_options.unwrap_or_default();
        let size = tmpfs.size_bytes.unwrap_or(0);
        let mode = tmpfs.mode.unwrap_or(0);
        out.push(Mount {
            kind,
            source: m.source.unwrap_or_default(),
            target: m.target.unwrap_or_default(),
            read_only: m.read_only.unwrap_or(false),
            volume_labels: vol.labels.unwrap_or_default().into_iter().collect(),
            volume_nocopy: vol.no_copy.unwrap_or(false),
            tmpfs_size: u64::try_from(size).map_err(|_| {
                ApiError::invalid(
                    &f("TmpfsOptions.SizeBytes"),
                    format!("must be 0 or more, got {size}"),
                )
            })?,
            tmpfs_mode: u32::try_from(mode)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| {
                    ApiError::invalid(
                        &f("TmpfsOptions.Mode"),
                        format!("must be permission bits (0 to 0o7777), got {mode}"),
                    )
                })?,
        });
    }
    Ok(out)
}

pub fn mounts_out(mounts: &[Mount]) -> Option<Vec<w::Mount>> {
    if mounts.is_empty() {
        return None;
    }
    Some(
        mounts
            .iter()
            .map(|m| w::Mount {
                typ: Some(match m.kind {
                    MountKind::Volume => w::MountType::VOLUME,
                    MountKind::Bind => w::MountType::BIND,
                    MountKind::Tmpfs => w::MountType::TMPFS,
                }),
                source: (!m.source.is_empty()).then(|| m.source.clone()),
                target: Some(m.target.clone()),
                read_only: m.read_only.then_some(true),
                volume_options: (m.kind == MountKind::Volume
                    && (m.volume_nocopy || !m.volume_labels.is_empty()))
                .then(|| w::MountVolumeOptions {
                    no_copy: m.volume_nocopy.then_some(true),
                    labels: (!m.volume_labels.is_empty()).then(|| {
                        m.volume_labels
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    }),
                    ..Default::default()
                }),
                tmpfs_options: (m.kind == MountKind::Tmpfs
                    && (m.tmpfs_size != 0 || m.tmpfs_mode != 0))
                    .then(|| w::MountTmpfsOptions {
                        size_bytes: (m.tmpfs_size != 0)
                            .then(|| i64::try_from(m.tmpfs_size).unwrap_or(i64::MAX)),
                        mode: (m.tmpfs_mode != 0).then_some(i64::from(m.tmpfs_mode)),
                        ..Default::default()
                    }),
                ..Default::default()
            })
            .collect(),
    )
}

/// A wire duration where 0 means unset.
fn unset_zero(field: &str, n: Option<i64>) -> Result<Option<Duration>, ApiError> {
    match n {
        None | Some(0) => Ok(None),
        Some(n) => duration(field, n).map(Some),
    }
}

pub fn health_in(
    field: &str,
    h: Option<w::HealthConfig>,
) -> Result<Option<HealthConfig>, ApiError> {
    let Some(h) = h else {
        return Ok(None);
    };
    let f = |name: &str| format!("{field}.{name}");
    if h.start_interval.is_some_and(|n| n != 0) {
        return Err(ApiError::invalid(
            &f("StartInterval"),
            "is not supported by shoal yet",
        ));
    }
    let retries = match h.retries {
        None | Some(0) => None,
        Some(n) => Some(u64::try_from(n).map_err(|_| {
            ApiError::invalid(&f("Retries"), format!("must be 0 or more, got {n}"))
        })?),
    };
    let out = HealthConfig {
        test: h.test.unwrap_or_default(),
        interval: unset_zero(&f("Interval"), h.interval)?,
        timeout: unset_zero(&f("Timeout"), h.timeout)?,
        start_period: unset_zero(&f("StartPeriod"), h.start_period)?,
        retries,
    };
    Ok((out != HealthConfig::default()).then_some(out))
}

pub fn health_out(h: Option<&HealthConfig>) -> Option<w::HealthConfig> {
    h.map(|h| w::HealthConfig {
        test: (!h.test.is_empty()).then(|| h.test.clone()),
        interval: h.interval.map(nanos),
        timeout: h.timeout.map(nanos),
        start_period: h.start_period.map(nanos),
        retries: h.retries.map(|r| i64::try_from(r).unwrap_or(i64::MAX)),
        start_interval: None,
    })
}

pub fn ulimits_in(
    field: &str,
    u: Option<Vec<w::ResourcesUlimits>>,
) -> Result<Vec<Ulimit>, ApiError> {
    u.unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, u)| {
            let name = u.name.unwrap_or_default();
            if name.is_empty() {
                return Err(ApiError::invalid(
                    &format!("{field}[{i}].Name"),
                    "a ulimit needs a name",
                ));
            }
            Ok(Ulimit {
                name,
                soft: u.soft.unwrap_or(0),
                hard: u.hard.unwrap_or(0),
            })
        })
        .collect()
}

pub fn ulimits_out(u: &[Ulimit]) -> Option<Vec<w::ResourcesUlimits>> {
    (!u.is_empty()).then(|| {
        u.iter()
            .map(|u| w::ResourcesUlimits {
                name: Some(u.name.clone()),
                soft: Some(u.soft),
                hard: Some(u.hard),
            })
            .collect()
    })
}

pub fn map_out(m: &std::collections::BTreeMap<String, String>) -> Option<HashMap<String, String>> {
    (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// The docker CLI sends an empty `DNSConfig` with every service: that, like none, is the node's
/// resolver, stored as `None`.
pub fn dns_in(d: Option<w::TaskSpecContainerSpecDnsConfig>) -> Option<DnsConfig> {
    let d = d?;
    let c = DnsConfig {
        nameservers: d.nameservers.unwrap_or_default(),
        search: d.search.unwrap_or_default(),
        options: d.options.unwrap_or_default(),
    };
    (!c.is_empty()).then_some(c)
}

pub fn dns_out(d: &DnsConfig) -> Option<w::TaskSpecContainerSpecDnsConfig> {
    let list = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    (!d.is_empty()).then(|| w::TaskSpecContainerSpecDnsConfig {
        nameservers: list(&d.nameservers),
        search: list(&d.search),
        options: list(&d.options),
    })
}
