//! The short syntaxes of `ports` and `volumes` entries, parsed as docker parses them
//! (`go-connections/nat.ParsePortSpec` with `swarmopts.ConvertPortToPortConfig`, and
//! docker/cli's `internal/volumespec.Parse`).

use std::net::IpAddr;

use crate::model::{Port, ServiceVolume};

/// The ports of one short-syntax entry (`[ip:][published:]target[/proto]`, ranges allowed), and
/// the warning docker logs when a host IP is given (swarm ignores it: ports listen everywhere).
///
/// As in docker: `8000-8002:80-82` is three ports; `8000-8002:80` publishes target 80 on each of
/// the three published ports; a target range without published ports is one port each with
/// published 0 (the daemon picks); the entries come out ordered by their `port/proto` text
/// (so `100/tcp` before `80/tcp`), which only matters before the endpoint sorts them.
pub(crate) fn parse_port(raw: &str) -> Result<(Vec<Port>, Option<String>), String> {
    let parts: Vec<&str> = raw.split(':').collect();
    let n = parts.len();
    let (ip, host, container) = match n {
        1 => (String::new(), "", parts[0]),
        2 => (String::new(), parts[0], parts[1]),
        _ => (parts[..n - 2].join(":"), parts[n - 2], parts[n - 1]),
    };
    let (container, proto) = match container.split_once('/') {
        Some((p, proto)) => (p, proto),
        None => (container, ""),
    };
    if container.is_empty() {
        return Err(format!("no port specified: {raw}<empty>"));
    }
    let proto = if proto.is_empty() {
        "tcp".to_string()
    } else {
        proto.to_lowercase()
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let mut ip = ip;
    if ip.starts_with('[') {
        match ip.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            Some(inner) => ip = inner.to_string(),
            None => return Err(format!("invalid IP address {ip}")),
        }
    }
    let parsed_ip = if ip.is_empty() {
        None
    } else {
        Some(
            ip.parse::<IpAddr>()
                .map_err(|_| format!("invalid IP address: {ip}"))?,
        )
    };
    let (start, end) =
        port_range(container).map_err(|_| format!("invalid containerPort: {container}"))?;
    let host_range = if host.is_empty() {
        None
    } else {
        let (hs, he) = port_range(host).map_err(|_| format!("invalid hostPort: {host}"))?;
        if end - start != he - hs && end != start {
            return Err(format!(
                "invalid ranges specified for container and host Ports: {container} and {host}"
            ));
        }
        Some((hs, he))
    };
    let mut keyed: Vec<(String, Vec<Port>)> = Vec::new();
    let mut warning = None;
    for i in 0..=(end - start) {
        let target = start + i;
        let (published, host_port): (Vec<u32>, String) = match host_range {
            None => (vec![0], String::new()),
            // A single target with a published range: every published port maps to it.
            Some((hs, he)) if start == end && hs != he => {
                ((hs..=he).collect(), format!("{hs}-{he}"))
            }
            Some((hs, _)) => (vec![hs + i], (hs + i).to_string()),
        };
        if let Some(addr) = parsed_ip
            && !addr.is_unspecified()
            && warning.is_none()
        {
            let host_ip = if addr.is_ipv6() {
                format!("[{ip}]")
            } else {
                ip.clone()
            };
            warning = Some(format!(
                "ignoring IP-address ({host_ip}:{host_port}:{target}/{proto}) service will listen on '0.0.0.0'"
            ));
        }
        let ports = published
            .into_iter()
            .map(|p| Port {
                mode: Some("ingress".into()),
                target,
                published: p,
                protocol: Some(proto.clone()),
            })
            .collect();
        keyed.push((format!("{target}/{proto}"), ports));
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((keyed.into_iter().flat_map(|(_, p)| p).collect(), warning))
}

fn port_range(s: &str) -> Result<(u32, u32), ()> {
    match s.split_once('-') {
        None => port_number(s).map(|a| (a, a)),
        Some((a, b)) => {
            let start = port_number(a)?;
            if a == b {
                return Ok((start, start));
            }
            let end = port_number(b)?;
            if end < start {
                return Err(());
            }
            Ok((start, end))
        }
    }
}

fn port_number(s: &str) -> Result<u32, ()> {
    let v: i64 = s.parse().map_err(|_| ())?;
    if !(0..=65535).contains(&v) {
        return Err(());
    }
    Ok(v as u32)
}

const PROPAGATIONS: [&str; 6] = [
    "rprivate", "private", "rshared", "shared", "rslave", "slave",
];

/// A short-syntax volume: `target`, `source:target` or `source:target:options` where the source
/// is a bind when it starts with `.`, `/` or `~` and a named volume otherwise; options are
/// `ro`, `rw`, `nocopy` and bind propagations (others, like SELinux's `z`, are ignored, as in
/// docker). One- and two-character specs are always a target. Windows drive letters (`c:`) are
/// kept together like docker does.
pub(crate) fn parse_volume(spec: &str) -> Result<ServiceVolume, String> {
    let mut v = ServiceVolume::default();
    match spec.chars().count() {
        0 => return Err("invalid empty volume spec".into()),
        1 | 2 => {
            v.kind = "volume".into();
            v.target = spec.to_string();
            return Ok(v);
        }
        _ => {}
    }
    let (mut source, mut target) = (String::new(), String::new());
    let mut buf = String::new();
    let chars: Vec<char> = spec.chars().chain(std::iter::once('\0')).collect();
    for c in chars {
        let drive = c == ':' && buf.chars().count() == 1 && buf.chars().all(char::is_alphabetic);
        if drive {
            buf.push(c);
            continue;
        }
        if c != ':' && c != '\0' {
            buf.push(c);
            continue;
        }
        if buf.is_empty() {
            return Err(format!(
                "invalid spec: {spec}: empty section between colons"
            ));
        }
        if source.is_empty() && c == '\0' {
            target = std::mem::take(&mut buf);
        } else if source.is_empty() {
            source = std::mem::take(&mut buf);
        } else if target.is_empty() {
            target = std::mem::take(&mut buf);
        } else if c == ':' {
            return Err(format!("invalid spec: {spec}: too many colons"));
        } else {
            for opt in buf.split(',') {
                match opt {
                    "ro" => v.read_only = true,
                    "rw" => v.read_only = false,
                    "nocopy" => v.nocopy = true,
                    p if PROPAGATIONS.contains(&p) => v.propagation = Some(p.to_string()),
                    _ => {}
                }
            }
            buf.clear();
        }
    }
    v.kind = if !source.is_empty() && is_file_path(&source) {
        "bind"
    } else {
        "volume"
    }
    .into();
    v.source = source;
    v.target = target;
    Ok(v)
}

fn is_file_path(source: &str) -> bool {
    if source.starts_with(['.', '/', '~']) || source.starts_with("\\\\") {
        return true;
    }
    let mut cs = source.chars();
    matches!((cs.next(), cs.next()), (Some(a), Some(':')) if a.is_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(s: &str) -> Vec<(u32, u32, String)> {
        parse_port(s)
            .expect("ok")
            .0
            .into_iter()
            .map(|p| (p.published, p.target, p.protocol.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn port_forms() {
        assert_eq!(ports("80"), [(0, 80, "tcp".into())]);
        assert_eq!(ports("8080:80"), [(8080, 80, "tcp".into())]);
        assert_eq!(ports("53:53/UDP"), [(53, 53, "udp".into())]);
        assert_eq!(
            ports("8000-8002:80-82"),
            [
                (8000, 80, "tcp".into()),
                (8001, 81, "tcp".into()),
                (8002, 82, "tcp".into())
            ]
        );
        assert_eq!(
            ports("8000-8001:80"),
            [(8000, 80, "tcp".into()), (8001, 80, "tcp".into())]
        );
        assert_eq!(
            ports("99-100"),
            [(0, 100, "tcp".into()), (0, 99, "tcp".into())]
        );
        let (p, w) = parse_port("127.0.0.1:8000:80").expect("ok");
        assert_eq!(p[0].published, 8000);
        assert_eq!(
            w.expect("ok"),
            "ignoring IP-address (127.0.0.1:8000:80/tcp) service will listen on '0.0.0.0'"
        );
        assert!(parse_port("0.0.0.0:8000:80").expect("ok").1.is_none());
        assert_eq!(ports("[::1]:9000:90"), [(9000, 90, "tcp".into())]);
        assert_eq!(
            parse_port("80/icmp").expect_err("an error"),
            "invalid proto: icmp"
        );
        assert_eq!(
            parse_port("8000-8001:80-83").expect_err("an error"),
            "invalid ranges specified for container and host Ports: 80-83 and 8000-8001"
        );
        assert_eq!(
            parse_port("x:80").expect_err("an error"),
            "invalid hostPort: x"
        );
        assert_eq!(
            parse_port("70000").expect_err("an error"),
            "invalid containerPort: 70000"
        );
        assert_eq!(
            parse_port("1.2.3:80:80").expect_err("an error"),
            "invalid IP address: 1.2.3"
        );
        assert_eq!(
            parse_port("80:").expect_err("an error"),
            "no port specified: 80:<empty>"
        );
    }

    #[test]
    fn volume_forms() {
        let v = parse_volume("data:/var/lib/data:ro,nocopy").expect("ok");
        assert_eq!(
            (v.kind.as_str(), v.source.as_str(), v.target.as_str()),
            ("volume", "data", "/var/lib/data")
        );
        assert!(v.read_only && v.nocopy);
        let v = parse_volume("./conf:/etc/conf:rshared").expect("ok");
        assert_eq!(
            (v.kind.as_str(), v.propagation.as_deref()),
            ("bind", Some("rshared"))
        );
        let v = parse_volume("/data").expect("ok");
        assert_eq!((v.kind.as_str(), v.source.as_str()), ("volume", ""));
        assert_eq!(parse_volume("/d").expect("ok").target, "/d");
        assert!(
            parse_volume("ab::c")
                .expect_err("an error")
                .contains("empty section")
        );
        // A one-letter source is a Windows drive to docker: `a:` then the target.
        assert_eq!(parse_volume("a::b").expect("ok").source, "a:");
        assert!(
            parse_volume("ab:cd:ro:gh")
                .expect_err("an error")
                .contains("too many colons")
        );
        assert!(parse_volume("").is_err());
        let v = parse_volume("~/x:/x:z").expect("ok");
        assert_eq!((v.kind.as_str(), v.read_only), ("bind", false));
    }
}
