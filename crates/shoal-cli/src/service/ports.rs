//! `--publish` (create) and `--publish-add`/`--publish-rm` (update): docker's two port syntaxes,
//! `8080:80[/udp]` (ranges allowed) and `published=8080,target=80,protocol=udp,mode=host`, and
//! its merge of published ports on update.

use bollard_stubs::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
};

use crate::error::{CliError, Result};

fn port_number(flag: &str, value: &str, what: &str, v: &str) -> Result<i64> {
    v.parse::<u16>().map(i64::from).map_err(|_| {
        CliError::invalid_flag(
            flag,
            value,
            format!("invalid {what} ({v}): value must be an integer"),
        )
    })
}

fn range(flag: &str, value: &str, what: &str, v: &str) -> Result<(i64, i64)> {
    match v.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (
                port_number(flag, value, what, a)?,
                port_number(flag, value, what, b)?,
            );
            if b < a {
                return Err(CliError::invalid_flag(
                    flag,
                    value,
                    format!("invalid {what} range: {v}"),
                ));
            }
            Ok((a, b))
        }
        None => {
            let p = port_number(flag, value, what, v)?;
            Ok((p, p))
        }
    }
}

/// Parses one `--publish` value into the port configs docker would send.
pub fn parse_publish(flag: &str, value: &str) -> Result<Vec<EndpointPortConfig>> {
    let bad = |why: String| CliError::invalid_flag(flag, value, why);
    let long = value.contains('=');
    if long {
        let mut p = EndpointPortConfig::default();
        for field in value.split(',') {
            let field = field.to_lowercase();
            let Some((k, v)) = field.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                return Err(bad(format!("invalid field: {field}")));
            };
            match k {
                "protocol" => {
                    p.protocol = Some(
                        protocol(v).ok_or_else(|| bad(format!("invalid protocol value '{v}'")))?,
                    )
                }
                "mode" => {
                    p.publish_mode = Some(match v {
                        "ingress" => EndpointPortConfigPublishModeEnum::INGRESS,
                        "host" => EndpointPortConfigPublishModeEnum::HOST,
                        _ => {
                            return Err(bad(format!(
                                "invalid publish mode value ({v}): must be either 'ingress' or 'host'"
                            )));
                        }
                    })
                }
                "target" => p.target_port = Some(port_number(flag, value, "target port", v)?),
                "published" => {
                    p.published_port = Some(port_number(flag, value, "published port", v)?)
                }
                _ => return Err(bad(format!("invalid field key: {k}"))),
            }
        }
        if p.target_port.unwrap_or(0) == 0 {
            return Err(bad("missing mandatory field 'target'".to_string()));
        }
        p.publish_mode
            .get_or_insert(EndpointPortConfigPublishModeEnum::INGRESS);
        p.protocol
            .get_or_insert(EndpointPortConfigProtocolEnum::TCP);
        return Ok(vec![p]);
    }
    let (spec, proto) = match value.split_once('/') {
        Some((s, p)) => (
            s,
            protocol(&p.to_lowercase()).ok_or_else(|| bad(format!("invalid proto: {p}")))?,
        ),
        None => (value, EndpointPortConfigProtocolEnum::TCP),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (published, target) = match parts.as_slice() {
        [target] => (None, *target),
        [published, target] => (Some(*published).filter(|p| !p.is_empty()), *target),
        _ => return Err(bad("hostip is not supported".to_string())),
    };
    let (t0, t1) = range(flag, value, "target port", target)?;
    let (p0, p1) = match published {
        Some(p) => range(flag, value, "published port", p)?,
        None => (0, 0),
    };
    let published_range = published.is_some() && p1 > p0;
    if published_range && p1 - p0 != t1 - t0 {
        return Err(bad("port ranges must be of equal length".to_string()));
    }
    Ok((0..=(t1 - t0))
        .map(|i| EndpointPortConfig {
            protocol: Some(proto),
            target_port: Some(t0 + i),
            published_port: Some(if published_range { p0 + i } else { p0 }),
            publish_mode: Some(EndpointPortConfigPublishModeEnum::INGRESS),
            name: None,
        })
        .collect())
}

fn protocol(v: &str) -> Option<EndpointPortConfigProtocolEnum> {
    match v {
        "tcp" => Some(EndpointPortConfigProtocolEnum::TCP),
        "udp" => Some(EndpointPortConfigProtocolEnum::UDP),
        "sctp" => Some(EndpointPortConfigProtocolEnum::SCTP),
        _ => None,
    }
}

fn key(p: &EndpointPortConfig) -> String {
    format!(
        "{}:{}/{}/{}",
        p.published_port.unwrap_or(0),
        p.target_port.unwrap_or(0),
        p.protocol.map(|x| x.to_string()).unwrap_or_default(),
        p.publish_mode.map(|x| x.to_string()).unwrap_or_default()
    )
}

/// docker's `updatePorts`: drop ports matching a removal (target, protocol, mode; an unset
/// protocol is tcp and an unset mode ingress), add new ones, sort by `published:target/proto/mode`.
pub fn update_ports(
    current: Vec<EndpointPortConfig>,
    add: &[EndpointPortConfig],
    remove: &[EndpointPortConfig],
) -> Vec<EndpointPortConfig> {
    let proto = |p: &EndpointPortConfig| p.protocol.unwrap_or(EndpointPortConfigProtocolEnum::TCP);
    let mode = |p: &EndpointPortConfig| {
        p.publish_mode
            .unwrap_or(EndpointPortConfigPublishModeEnum::INGRESS)
    };
    let mut seen = std::collections::HashSet::new();
    let mut ports: Vec<EndpointPortConfig> = current
        .into_iter()
        .filter(|p| seen.insert(key(p)))
        .collect();
    ports.retain(|p| {
        !remove
            .iter()
            .any(|r| proto(r) == proto(p) && r.target_port == p.target_port && mode(r) == mode(p))
    });
    for p in add {
        if seen.insert(key(p)) {
            ports.push(p.clone());
        }
    }
    ports.sort_by_key(key);
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(ports: &[EndpointPortConfig]) -> serde_json::Value {
        serde_json::to_value(ports).expect("serialisable")
    }

    #[test]
    fn short_syntax() {
        let p = parse_publish("publish", "8080:80").expect("valid");
        assert_eq!(
            json(&p),
            serde_json::json!([{"Protocol":"tcp","TargetPort":80,"PublishedPort":8080,"PublishMode":"ingress"}])
        );
        let p = parse_publish("publish", "53:53/udp").expect("valid");
        assert_eq!(p[0].protocol, Some(EndpointPortConfigProtocolEnum::UDP));
        let p = parse_publish("publish", "80").expect("valid");
        assert_eq!(p[0].published_port, Some(0));
        let p = parse_publish("publish", "8000-8001:80-81").expect("valid");
        assert_eq!(
            p.iter()
                .map(|x| (x.published_port, x.target_port))
                .collect::<Vec<_>>(),
            vec![(Some(8000), Some(80)), (Some(8001), Some(81))]
        );
        assert!(parse_publish("publish", "1.2.3.4:80:80").is_err());
        assert!(parse_publish("publish", "x:80").is_err());
        assert!(parse_publish("publish", "80/icmp").is_err());
    }

    #[test]
    fn long_syntax() {
        let p = parse_publish("publish", "published=8080,target=80,mode=host,protocol=udp")
            .expect("valid");
        assert_eq!(
            json(&p),
            serde_json::json!([{"Protocol":"udp","TargetPort":80,"PublishedPort":8080,"PublishMode":"host"}])
        );
        let err = parse_publish("publish", "published=8080")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                r#"invalid argument "published=8080" for "--publish" flag: missing mandatory field 'target'"#
            )
        );
        assert!(parse_publish("publish", "target=80,mode=bridge").is_err());
        assert!(parse_publish("publish", "target=80,color=red").is_err());
    }

    #[test]
    fn update_adds_removes_and_sorts() {
        let cur = [parse_publish("p", "8080:80"), parse_publish("p", "9090:90")]
            .into_iter()
            .flat_map(|r| r.expect("valid"))
            .collect();
        let add = parse_publish("p", "7070:70").expect("valid");
        let rm = parse_publish("p", "90").expect("valid");
        let out = update_ports(cur, &add, &rm);
        assert_eq!(
            out.iter()
                .map(|p| p.published_port.unwrap_or(0))
                .collect::<Vec<_>>(),
            vec![7070, 8080]
        );
    }
}
