//! Networks (docker's `convert.Networks` plus the deploy command's `overlay` default) and
//! service mounts (`convert.Volumes`): stack volumes are not created by a deploy, they appear as
//! mount options (labels, driver) that the daemon uses when it creates them on a node.

use std::collections::{BTreeMap, BTreeSet};

use bollard_stubs::models::{
    Ipam, IpamConfig, Mount, MountBindOptions, MountBindOptionsPropagationEnum, MountImageOptions,
    MountTmpfsOptions, MountType, MountVolumeOptions, MountVolumeOptionsDriverConfig,
    NetworkCreateRequest,
};

use super::{Namespace, StackNetwork, err, nonempty};
use crate::error::{Error, join};
use crate::model::{Project, Service, ServiceVolume};

/// The networks the services use (`default` for a service that names none), sorted by name.
pub(crate) fn networks(project: &Project, ns: Namespace<'_>) -> Vec<StackNetwork> {
    let mut used = BTreeSet::new();
    for svc in project.services.values() {
        match &svc.networks {
            Some(n) if !n.is_empty() => used.extend(n.keys().cloned()),
            _ => {
                used.insert("default".to_string());
            }
        }
    }
    let mut out = Vec::new();
    for key in used {
        let nw = project.networks.get(&key).cloned().unwrap_or_default();
        if nw.external {
            let name = nw.name.clone().unwrap_or_else(|| key.clone());
            out.push(StackNetwork {
                name: name.clone(),
                external: true,
                create: NetworkCreateRequest {
                    name,
                    ..Default::default()
                },
            });
            continue;
        }
        let name = nw.name.clone().unwrap_or_else(|| ns.scope(&key));
        let ipam = nw.ipam.as_ref().and_then(|ipam| {
            if ipam.driver.is_none() && ipam.config.is_empty() {
                return None;
            }
            let config: Vec<IpamConfig> = ipam
                .config
                .iter()
                .map(|p| IpamConfig {
                    // docker parses these as netip prefixes/addresses and sends nothing for
                    // one that does not parse.
                    subnet: p.subnet.clone().filter(|s| is_prefix(s)),
                    ip_range: p.ip_range.clone().filter(|s| is_prefix(s)),
                    gateway: p
                        .gateway
                        .clone()
                        .filter(|s| s.parse::<std::net::IpAddr>().is_ok()),
                    auxiliary_addresses: (!p.aux_addresses.is_empty())
                        .then(|| p.aux_addresses.clone().into_iter().collect()),
                })
                .collect();
            Some(Ipam {
                driver: Some(ipam.driver.clone().unwrap_or_default()),
                config: nonempty(config),
                options: None,
            })
        });
        out.push(StackNetwork {
            name: name.clone(),
            external: false,
            create: NetworkCreateRequest {
                name,
                // The deploy command's default when the file names no driver.
                driver: Some(
                    nw.driver
                        .clone()
                        .filter(|d| !d.is_empty())
                        .unwrap_or_else(|| "overlay".into()),
                ),
                scope: Some(String::new()),
                internal: Some(nw.internal),
                attachable: Some(nw.attachable),
                ingress: Some(false),
                config_only: Some(false),
                ipam,
                options: nw
                    .driver_opts
                    .as_ref()
                    .map(|o| o.clone().into_iter().collect()),
                labels: Some(ns.labels(&nw.labels)),
                ..Default::default()
            },
        });
    }
    out
}

/// Go's `netip.ParsePrefix`, closely enough: an address, `/`, a length that fits it.
fn is_prefix(s: &str) -> bool {
    let Some((addr, len)) = s.split_once('/') else {
        return false;
    };
    let Ok(addr) = addr.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    !len.starts_with('+') && len.parse::<u8>().is_ok_and(|l| l <= max)
}

pub(crate) fn mounts(
    project: &Project,
    ns: Namespace<'_>,
    name: &str,
    svc: &Service,
    errors: &mut Vec<Error>,
) -> Vec<Mount> {
    let key = join(&join("services", name), "volumes");
    let mut out = Vec::new();
    for v in &svc.volumes {
        match mount(project, ns, v) {
            Ok(m) => out.push(m),
            Err(e) => err(errors, &v.at, key.clone(), e),
        }
    }
    out
}

fn mount(project: &Project, ns: Namespace<'_>, v: &ServiceVolume) -> Result<Mount, String> {
    let mut m = Mount {
        target: nonempty(v.target.clone()),
        source: nonempty(v.source.clone()),
        read_only: v.read_only.then_some(true),
        consistency: v.consistency.clone().filter(|c| !c.is_empty()),
        ..Default::default()
    };
    let has_bind = v.bind_options || v.propagation.is_some();
    let has_volume = v.volume_options || v.nocopy || v.subpath.is_some();
    let has_tmpfs = v.tmpfs_size.is_some() || v.tmpfs_mode.is_some();
    let incompatible =
        |what: &str, kind: &str| format!("{what} options are incompatible with type {kind}");
    let bind_options = || MountBindOptions {
        propagation: v
            .propagation
            .as_deref()
            .filter(|p| !p.is_empty())
            .and_then(|p| p.parse::<MountBindOptionsPropagationEnum>().ok()),
        ..Default::default()
    };
    match v.kind.as_str() {
        "volume" | "" => {
            m.typ = Some(MountType::VOLUME);
            if has_tmpfs {
                return Err(incompatible("tmpfs", "volume"));
            }
            if has_bind {
                return Err(incompatible("bind", "volume"));
            }
            // An anonymous volume: no options at all.
            if v.source.is_empty() {
                return Ok(m);
            }
            let Some(stack_volume) = project.volumes.get(&v.source) else {
                return Err(format!("undefined volume {:?}", v.source));
            };
            m.source = Some(
                stack_volume
                    .name
                    .clone()
                    .unwrap_or_else(|| ns.scope(&v.source)),
            );
            let mut opts = MountVolumeOptions {
                no_copy: v.nocopy.then_some(true),
                subpath: v.subpath.clone().filter(|s| !s.is_empty()),
                ..Default::default()
            };
            if !stack_volume.external {
                opts.labels = Some(ns.labels(&stack_volume.labels));
                if stack_volume.driver.is_some() || stack_volume.driver_opts.is_some() {
                    opts.driver_config = Some(MountVolumeOptionsDriverConfig {
                        name: stack_volume.driver.clone().filter(|d| !d.is_empty()),
                        options: stack_volume
                            .driver_opts
                            .as_ref()
                            .filter(|o| !o.is_empty())
                            .map(|o| o.clone().into_iter().collect()),
                    });
                }
            }
            m.volume_options = Some(opts);
        }
        "bind" | "npipe" => {
            m.typ = Some(if v.kind == "bind" {
                MountType::BIND
            } else {
                MountType::NPIPE
            });
            if v.source.is_empty() {
                return Err(format!("invalid {} source, source cannot be empty", v.kind));
            }
            if has_volume {
                return Err(incompatible("volume", &v.kind));
            }
            if has_tmpfs {
                return Err(incompatible("tmpfs", &v.kind));
            }
            if has_bind {
                m.bind_options = Some(bind_options());
            }
        }
        "tmpfs" => {
            m.typ = Some(MountType::TMPFS);
            if !v.source.is_empty() {
                return Err("invalid tmpfs source, source must be empty".into());
            }
            if has_bind {
                return Err(incompatible("bind", "tmpfs"));
            }
            if has_volume {
                return Err(incompatible("volume", "tmpfs"));
            }
            if has_tmpfs {
                m.tmpfs_options = Some(MountTmpfsOptions {
                    size_bytes: v.tmpfs_size.filter(|s| *s != 0),
                    mode: v.tmpfs_mode.filter(|m| *m != 0).map(i64::from),
                    ..Default::default()
                });
            }
        }
        "image" => {
            m.typ = Some(MountType::IMAGE);
            if v.source.is_empty() {
                return Err("invalid image source, source cannot be empty".into());
            }
            if has_volume || has_bind || has_tmpfs {
                return Err("only image options are compatible with type image".into());
            }
            m.image_options = v.subpath.as_ref().map(|s| MountImageOptions {
                subpath: Some(s.clone()),
            });
        }
        "cluster" => return Err("cluster (CSI) volumes are not supported by shoal".into()),
        _ => return Err("volume type must be volume, bind, tmpfs, npipe, or cluster".into()),
    }
    Ok(m)
}

/// A `BTreeMap` to the wire's `HashMap`.
pub(crate) fn hash(m: &BTreeMap<String, String>) -> std::collections::HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}
