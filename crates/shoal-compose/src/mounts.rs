//! A service's `ports` and `volumes`, short and long syntax: short entries parsed as docker
//! parses them ([`crate::short`]), long ones read key by key; bind sources get docker's `~`
//! expansion and are made absolute against the working directory.

use crate::error::{index, join};
use crate::load::Ctx;
use crate::model::{Port, ServiceVolume};
use crate::short;
use crate::syntax;
use crate::yaml::{Kind, Node};

/// Every TCP and UDP port.
const MAX_PORTS: usize = 2 * 65_536;

pub(crate) fn ports(cx: &mut Ctx<'_>, v: &Node, k: &str) -> Vec<Port> {
    let Some(items) = cx.diag.seq(v, k) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ik = index(k, i);
        if let Kind::Map(entries) = &item.kind {
            let mut p = Port::default();
            let mut has_target = false;
            for e in entries {
                let ek = join(&ik, &e.key);
                let d = &mut cx.diag;
                match e.key.as_str() {
                    "mode" => {
                        p.mode = d.string(&e.value, &ek);
                        crate::deploy::one_of(d, &e.value, &ek, &p.mode, &["ingress", "host"]);
                    }
                    "protocol" => {
                        p.protocol = d.string(&e.value, &ek);
                        let allowed = ["tcp", "udp", "sctp"];
                        crate::deploy::one_of(d, &e.value, &ek, &p.protocol, &allowed);
                    }
                    "target" => {
                        has_target = true;
                        p.target = port_number(cx, &e.value, &ek);
                    }
                    "published" => p.published = port_number(cx, &e.value, &ek),
                    _ => d.unknown(e, &ik),
                }
            }
            if !has_target {
                cx.diag.err(item.pos, &ik, "target is required");
            }
            out.push(p);
            continue;
        }
        let Some(spec) = cx.diag.text(item, &ik) else {
            continue;
        };
        match short::parse_port(&spec) {
            Ok((ports, warning)) => {
                if let Some(w) = warning {
                    cx.diag.warn(w);
                }
                out.extend(ports);
                // Ranges multiply; a service cannot use more than every port of both protocols.
                if out.len() > MAX_PORTS {
                    cx.diag
                        .err(item.pos, &ik, format!("more than {MAX_PORTS} ports"));
                    break;
                }
            }
            Err(e) => cx.diag.err(item.pos, &ik, e),
        }
    }
    out
}

fn port_number(cx: &mut Ctx<'_>, v: &Node, k: &str) -> u32 {
    match cx.diag.int(v, k) {
        Some(n) if (0..=65535).contains(&n) => n as u32,
        Some(n) => {
            cx.diag
                .err(v.pos, k, format!("expected a port (0-65535), got {n}"));
            0
        }
        None => 0,
    }
}

pub(crate) fn volumes(cx: &mut Ctx<'_>, v: &Node, k: &str) -> Vec<ServiceVolume> {
    let Some(items) = cx.diag.seq(v, k) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ik = index(k, i);
        let mut vol = if let Kind::Map(_) = item.kind {
            long_volume(cx, item, &ik)
        } else {
            let Some(spec) = cx.diag.string(item, &ik) else {
                continue;
            };
            match short::parse_volume(&spec) {
                Ok(v) => v,
                Err(e) => {
                    cx.diag.err(item.pos, &ik, e);
                    continue;
                }
            }
        };
        vol.at = cx.diag.loc(item.pos);
        if vol.kind == "bind" {
            if vol.source.is_empty() {
                cx.diag.err(
                    item.pos,
                    &ik,
                    "invalid mount config for type \"bind\": field Source must not be empty",
                );
                continue;
            }
            // docker's expandUser: a leading `~` is $HOME, whatever follows it.
            if vol.source.starts_with('~') {
                match (cx.lookup)("HOME") {
                    Some(home) => vol.source = vol.source.replacen('~', &home, 1),
                    None => cx.diag.warn(format!(
                        "{ik}: cannot expand '~', because the environment lacks HOME"
                    )),
                }
            }
            vol.source = syntax::abs_path(&cx.working_dir, &vol.source);
        }
        out.push(vol);
    }
    out
}

fn long_volume(cx: &mut Ctx<'_>, item: &Node, ik: &str) -> ServiceVolume {
    let mut vol = ServiceVolume::default();
    let mut has_type = false;
    let Some(entries) = cx.diag.mapping(item, ik) else {
        return vol;
    };
    for e in entries {
        let ek = join(ik, &e.key);
        let val = &e.value;
        match e.key.as_str() {
            "type" => {
                has_type = true;
                vol.kind = cx.diag.string(val, &ek).unwrap_or_default();
            }
            "source" => vol.source = cx.diag.string(val, &ek).unwrap_or_default(),
            "target" => vol.target = cx.diag.string(val, &ek).unwrap_or_default(),
            "read_only" => vol.read_only = cx.diag.boolean(val, &ek).unwrap_or(false),
            "consistency" => vol.consistency = cx.diag.string(val, &ek),
            "bind" => {
                vol.bind_options = true;
                for b in cx.diag.mapping_or_null(val, &ek).unwrap_or_default() {
                    let bk = join(&ek, &b.key);
                    match b.key.as_str() {
                        "propagation" => vol.propagation = cx.diag.string(&b.value, &bk),
                        // The Compose Specification's; Swarm always needs the path to exist.
                        "create_host_path" => {
                            cx.diag.boolean(&b.value, &bk);
                        }
                        _ => cx.diag.unknown(b, &ek),
                    }
                }
            }
            "volume" => {
                vol.volume_options = true;
                for b in cx.diag.mapping_or_null(val, &ek).unwrap_or_default() {
                    let bk = join(&ek, &b.key);
                    match b.key.as_str() {
                        "nocopy" => vol.nocopy = cx.diag.boolean(&b.value, &bk).unwrap_or(false),
                        "subpath" => vol.subpath = cx.diag.string(&b.value, &bk),
                        _ => cx.diag.unknown(b, &ek),
                    }
                }
            }
            "tmpfs" => {
                for b in cx.diag.mapping_or_null(val, &ek).unwrap_or_default() {
                    let bk = join(&ek, &b.key);
                    match b.key.as_str() {
                        "size" => vol.tmpfs_size = cx.diag.bytes(&b.value, &bk),
                        "mode" => {
                            vol.tmpfs_mode = cx
                                .diag
                                .uint(&b.value, &bk)
                                .and_then(|m| u32::try_from(m).ok())
                        }
                        _ => cx.diag.unknown(b, &ek),
                    }
                }
                // docker sends TmpfsOptions only when the mapping says something.
                vol.tmpfs_size = vol.tmpfs_size.or(Some(0));
            }
            _ => cx.diag.unknown(e, ik),
        }
    }
    if !has_type {
        cx.diag.err(item.pos, ik, "type is required");
    }
    vol
}
