//! Networks: `network create`'s body in, `network inspect`'s answer out.

use bollard_stubs::models as w;
use shoal_types::network::{IpamConfig, Network, NetworkSpec};

use super::{labels_in, labels_out, time};
use crate::error::ApiError;

pub fn spec_in(r: w::NetworkCreateRequest) -> Result<NetworkSpec, ApiError> {
    if r.enable_ipv6 == Some(true) {
        return Err(ApiError::invalid(
            "EnableIPv6",
            "IPv6 overlay networks are not supported",
        ));
    }
    if r.enable_ipv4 == Some(false) {
        return Err(ApiError::invalid(
            "EnableIPv4",
            "an overlay network carries IPv4; it cannot be turned off",
        ));
    }
    if r.config_only == Some(true) || r.config_from.is_some() {
        return Err(ApiError::invalid(
            "ConfigOnly",
            "configuration-only networks are not supported",
        ));
    }
    if let Some(scope) = r
        .scope
        .as_deref()
        .filter(|s| !s.is_empty() && *s != "swarm")
    {
        return Err(ApiError::invalid(
            "Scope",
            format!("{scope:?}: a network made through a swarm manager has the scope \"swarm\""),
        ));
    }
    let ipam = r.ipam.unwrap_or_default();
    if let Some(d) = ipam
        .driver
        .as_deref()
        .filter(|d| !d.is_empty() && *d != "default")
    {
        return Err(ApiError::invalid(
            "IPAM.Driver",
            format!("{d:?}: only the \"default\" address manager is available"),
        ));
    }
    let mut configs = Vec::new();
    for (i, c) in ipam.config.unwrap_or_default().into_iter().enumerate() {
        if c.auxiliary_addresses
            .as_ref()
            .is_some_and(|a| !a.is_empty())
        {
            return Err(ApiError::invalid(
                &format!("IPAM.Config[{i}].AuxiliaryAddresses"),
                "auxiliary addresses are not supported",
            ));
        }
        let opt = |s: Option<String>| s.filter(|s| !s.is_empty());
        configs.push(IpamConfig {
            subnet: opt(c.subnet),
            gateway: opt(c.gateway),
            ip_range: opt(c.ip_range),
        });
    }
    Ok(NetworkSpec {
        name: r.name,
        labels: labels_in(r.labels),
        driver: r.driver.unwrap_or_default(),
        driver_opts: labels_in(r.options),
        ipam: configs,
        ipam_options: labels_in(ipam.options),
        attachable: r.attachable.unwrap_or(false),
        internal: r.internal.unwrap_or(false),
        ingress: r.ingress.unwrap_or(false),
    })
}

/// As `GET /networks/{id}` answers: what was asked and what was allocated (the allocated
/// subnet and gateway in `IPAM.Config`, as Docker shows them).
pub fn network_out(n: &Network) -> w::Network {
    let s = &n.spec;
    let range = (n.addrs.range != n.addrs.subnet).then(|| n.addrs.range.to_string());
    w::Network {
        name: Some(s.name.clone()),
        id: Some(n.id.to_string()),
        created: time(n.meta.created_at),
        scope: Some("swarm".into()),
        driver: Some(s.driver.clone()),
        enable_ipv4: Some(true),
        enable_ipv6: Some(false),
        ipam: Some(w::Ipam {
            driver: Some("default".into()),
            config: Some(vec![w::IpamConfig {
                subnet: Some(n.addrs.subnet.to_string()),
                ip_range: range,
                gateway: Some(n.addrs.gateway.to_string()),
                auxiliary_addresses: None,
            }]),
            options: labels_out(&s.ipam_options),
        }),
        internal: Some(s.internal),
        attachable: Some(s.attachable),
        ingress: Some(s.ingress),
        config_from: Some(w::ConfigReference {
            network: Some(String::new()),
        }),
        config_only: Some(false),
        options: labels_out(&s.driver_opts),
        labels: labels_out(&s.labels),
        peers: None,
    }
}

/// `docker network create [-d bridge]`'s body as a local network's spec; what a local network
/// cannot be is refused by name.
pub fn local_spec_in(
    r: w::NetworkCreateRequest,
) -> Result<shoal_types::local_net::LocalNetworkSpec, ApiError> {
    if r.enable_ipv6 == Some(true) {
        return Err(ApiError::invalid(
            "EnableIPv6",
            "IPv6 bridge networks are not supported",
        ));
    }
    if r.attachable == Some(true) {
        // compose 1.29 sends it for every network it makes; it means nothing locally.
    }
    if let Some(scope) = r
        .scope
        .as_deref()
        .filter(|s| !s.is_empty() && *s != "local")
    {
        return Err(ApiError::invalid(
            "Scope",
            format!("{scope:?}: a bridge network is local to its node"),
        ));
    }
    let ipam = r.ipam.unwrap_or_default();
    let configs = ipam.config.unwrap_or_default();
    if configs.len() > 1 {
        return Err(ApiError::invalid(
            "IPAM.Config",
            "a bridge network takes one subnet",
        ));
    }
    let (mut subnet, mut gateway) = (None, None);
    if let Some(c) = configs.into_iter().next() {
        if let Some(s) = c.subnet.filter(|s| !s.is_empty()) {
            subnet = Some(
                s.parse()
                    .map_err(|e| ApiError::invalid("IPAM.Config.Subnet", format!("{s:?}: {e}")))?,
            );
        }
        if let Some(g) = c.gateway.filter(|g| !g.is_empty()) {
            gateway = Some(g.parse().map_err(|_| {
                ApiError::invalid("IPAM.Config.Gateway", format!("{g:?}: not an IPv4 address"))
            })?);
        }
    }
    Ok(shoal_types::local_net::LocalNetworkSpec {
        name: r.name,
        driver: shoal_types::local_net::BRIDGE_DRIVER.into(),
        labels: labels_in(r.labels),
        options: r.options.unwrap_or_default().into_iter().collect(),
        internal: r.internal.unwrap_or(false),
        subnet,
        gateway,
    })
}
