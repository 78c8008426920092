//! Overlay networks through the control API: a spec is checked, given its addresses from the
//! cluster's pools (`shoal-ipam`, from the view the manager holds), and written as one op that
//! the state machine checks again (name and subnet), so two managers allocating from the same
//! view cannot both win.

use std::collections::BTreeSet;
use std::sync::Arc;

use shoal_ipam::{AddrPools, IpamError, Request, allocate_network};
use shoal_store::{Op, State};
use shoal_types::network::{INGRESS, OPT_ENCRYPTED, OVERLAY};
use shoal_types::service::{EndpointMode, PublishMode, ServiceSpec};
use shoal_types::{Id, Network, NetworkSpec};

use crate::control::{Control, unique_prefix};
use crate::error::ControlError;

/// Docker's rule for network names.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Published ports as Swarm takes them: a target port, no published port twice, and none
/// through the mesh for a service without a virtual IP.
fn check_ports(spec: &ServiceSpec) -> Result<(), ControlError> {
    let mut published = BTreeSet::new();
    for (i, p) in spec.endpoint.ports.iter().enumerate() {
        if p.target_port == 0 {
            return Err(ControlError::invalid(
                format!("EndpointSpec.Ports[{i}].TargetPort"),
                "a target port between 1 and 65535 is required",
            ));
        }
        if p.published_port != 0 && !published.insert((p.protocol, p.published_port)) {
            return Err(ControlError::invalid(
                format!("EndpointSpec.Ports[{i}].PublishedPort"),
                format!(
                    "port {}/{} is published twice",
                    p.published_port,
                    p.protocol.as_str()
                ),
            ));
        }
        if p.publish_mode == PublishMode::Host && p.published_port == 0 {
            return Err(ControlError::invalid(
                format!("EndpointSpec.Ports[{i}].PublishedPort"),
                "a port published in host mode needs its number",
            ));
        }
        if p.publish_mode == PublishMode::Ingress && spec.endpoint.mode == EndpointMode::Dnsrr {
            return Err(ControlError::invalid(
                format!("EndpointSpec.Ports[{i}]"),
                "EndpointMode dnsrr cannot publish ports through the routing mesh (mode=ingress); use mode=host",
            ));
        }
    }
    Ok(())
}

/// Checks a spec as `network create` sends it and fills in what is implied (the driver).
pub fn check_network_spec(spec: &mut NetworkSpec) -> Result<(), ControlError> {
    if !valid_name(&spec.name) {
        return Err(ControlError::invalid(
            "Name",
            format!(
                "{:?} is not a valid network name: it must start with a letter or digit, then letters, digits, '_', '.' or '-'",
                spec.name
            ),
        ));
    }
    match spec.driver.as_str() {
        "" | OVERLAY => spec.driver = OVERLAY.into(),
        other => {
            return Err(ControlError::invalid(
                "Driver",
                format!(
                    "{other:?} cannot make a swarm network: only the {OVERLAY:?} driver spans the cluster's nodes"
                ),
            ));
        }
    }
    if let Some(v) = spec.driver_opts.get(OPT_ENCRYPTED)
        && !matches!(v.as_str(), "" | "true")
    {
        // Never a silent plaintext network: a value that might mean "no" is refused.
        return Err(ControlError::invalid(
            format!("Options.{OPT_ENCRYPTED}"),
            format!("{v:?}: expected no value (`--opt encrypted`) or \"true\""),
        ));
    }
    if spec.ipam.len() > 1 {
        return Err(ControlError::invalid(
            "IPAM.Config",
            format!(
                "{} address blocks given; an overlay network takes one IPv4 subnet",
                spec.ipam.len()
            ),
        ));
    }
    if spec.name == INGRESS && !spec.ingress {
        return Err(ControlError::invalid(
            "Name",
            format!("{INGRESS:?} is the routing mesh's network; create it with --ingress"),
        ));
    }
    Ok(())
}

fn from_ipam(e: IpamError) -> ControlError {
    match e {
        IpamError::Invalid { field, value, why } => {
            let field = match field {
                "subnet" => "IPAM.Config.Subnet",
                "gateway" => "IPAM.Config.Gateway",
                "ip-range" => "IPAM.Config.IPRange",
                other => other,
            };
            ControlError::invalid(field, format!("{value:?}: {why}"))
        }
        IpamError::Overlaps { .. } => ControlError::Conflict(e.to_string()),
        IpamError::PoolsExhausted { .. } | IpamError::AddressesExhausted { .. } => {
            ControlError::FailedPrecondition(e.to_string())
        }
    }
}

impl Control {
    /// By full ID, then name, then unambiguous ID prefix, as Docker resolves networks.
    pub fn find_network(view: &State, key: &str) -> Result<Arc<Network>, ControlError> {
        if let Some(n) = view.network(&Id::from_raw(key)) {
            return Ok(n.clone());
        }
        if let Some(n) = view.network_by_name(key) {
            return Ok(n.clone());
        }
        unique_prefix(
            "network",
            key,
            view.networks()
                .filter(|n| n.id.as_str().starts_with(key))
                .cloned(),
        )
    }

    /// Creates an overlay network with a subnet from the cluster's address pools, or the one
    /// asked for if it is well formed and free.
    pub async fn create_network(
        &self,
        mut spec: NetworkSpec,
    ) -> Result<Arc<Network>, ControlError> {
        check_network_spec(&mut spec)?;
        let view = self.view();
        if view.network_by_name(&spec.name).is_some() {
            return Err(ControlError::Conflict(format!(
                "network with name {} already exists",
                spec.name
            )));
        }
        if spec.ingress
            && let Some(other) = view.networks().find(|n| n.spec.ingress)
        {
            return Err(ControlError::Conflict(format!(
                "an ingress network already exists: {}",
                other.spec.name
            )));
        }
        let asked = spec.ipam.first().cloned().unwrap_or_default();
        let taken: Vec<(&str, ipnet::Ipv4Net)> = view
            .networks()
            .map(|n| (n.spec.name.as_str(), n.addrs.subnet))
            .collect();
        let addrs = allocate_network(
            &Request {
                subnet: asked.subnet.as_deref(),
                gateway: asked.gateway.as_deref(),
                ip_range: asked.ip_range.as_deref(),
            },
            &self.addr_pools(&view),
            &taken,
        )
        .map_err(from_ipam)?;
        let network = Network {
            id: self.next_id(),
            meta: Default::default(),
            spec,
            addrs,
            // The store gives it one.
            vni: 0,
        };
        let id = network.id.clone();
        self.write(vec![Op::CreateNetwork(network)]).await?;
        self.view()
            .network(&id)
            .cloned()
            .ok_or_else(|| ControlError::Internal("created network vanished".into()))
    }

    /// Turns the networks a service names (by name, ID or ID prefix) into IDs, and checks its
    /// published ports; refuses an unknown network, one named twice, the ingress network
    /// (joined through `--publish`, as in Swarm), and ports the mesh cannot serve.
    pub fn resolve_service_networks(
        view: &State,
        spec: &mut ServiceSpec,
    ) -> Result<(), ControlError> {
        let mut seen = BTreeSet::new();
        for (i, c) in spec.task.networks.iter_mut().enumerate() {
            let field = format!("TaskTemplate.Networks[{i}].Target");
            let n = Self::find_network(view, &c.target).map_err(|e| match e {
                ControlError::NotFound { .. } => {
                    ControlError::invalid(&field, format!("network {} not found", c.target))
                }
                e => ControlError::invalid(&field, e.to_string()),
            })?;
            if n.spec.ingress {
                return Err(ControlError::invalid(
                    field,
                    format!(
                        "service cannot be explicitly attached to the ingress network {:?}; publish a port instead",
                        n.spec.name
                    ),
                ));
            }
            if !seen.insert(n.id.clone()) {
                return Err(ControlError::invalid(
                    field,
                    format!("network {} is named twice", n.spec.name),
                ));
            }
            c.target = n.id.to_string();
            for (j, a) in c.aliases.iter().enumerate() {
                if !valid_name(a) {
                    return Err(ControlError::invalid(
                        format!("TaskTemplate.Networks[{i}].Aliases[{j}]"),
                        format!("{a:?} is not a valid alias"),
                    ));
                }
            }
        }
        check_ports(spec)?;
        if spec
            .endpoint
            .ports
            .iter()
            .any(|p| p.publish_mode == PublishMode::Ingress)
            && !view.networks().any(|n| n.spec.ingress)
        {
            return Err(ControlError::FailedPrecondition(
                "the swarm has no ingress network, so no port can be published through the routing mesh (mode=ingress); use mode=host".into(),
            ));
        }
        Ok(())
    }

    pub async fn remove_network(&self, key: &str) -> Result<(), ControlError> {
        let cur = Self::find_network(&self.view(), key)?;
        self.write(vec![Op::DeleteNetwork { id: cur.id.clone() }])
            .await
            .map(|_| ())
    }

    /// The pools new networks' subnets come from, as `swarm init` set them (checked there; a
    /// cluster that somehow holds bad ones falls back to Swarm's default rather than refusing
    /// every network).
    fn addr_pools(&self, view: &State) -> AddrPools {
        view.cluster()
            .and_then(|c| c.network.pools().ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> NetworkSpec {
        NetworkSpec {
            name: name.into(),
            ..Default::default()
        }
    }

    fn field_of(mut s: NetworkSpec) -> String {
        match check_network_spec(&mut s) {
            Err(ControlError::InvalidArgument { field, .. }) => field,
            other => panic!("expected a refusal naming a field, got {other:?}"),
        }
    }

    #[test]
    fn specs_are_checked_naming_the_field() {
        let mut ok = spec("back-end_1.x");
        check_network_spec(&mut ok).expect("valid");
        assert_eq!(ok.driver, OVERLAY);
        assert_eq!(field_of(spec("")), "Name");
        assert_eq!(field_of(spec("-x")), "Name");
        assert_eq!(field_of(spec("a b")), "Name");
        assert_eq!(field_of(spec(INGRESS)), "Name");
        let mut bridge = spec("b");
        bridge.driver = "bridge".into();
        assert_eq!(field_of(bridge), "Driver");
        let mut enc = spec("e");
        enc.driver_opts.insert(OPT_ENCRYPTED.into(), String::new());
        check_network_spec(&mut enc).expect("encrypted");
        enc.driver_opts.insert(OPT_ENCRYPTED.into(), "false".into());
        assert_eq!(field_of(enc), "Options.encrypted");
        let mut two = spec("t");
        two.ipam = vec![Default::default(), Default::default()];
        assert_eq!(field_of(two), "IPAM.Config");
    }

    #[test]
    fn address_errors_keep_their_words_under_the_api_s_field_names() {
        let e = from_ipam(IpamError::Invalid {
            field: "gateway",
            value: "10.3.0.1".into(),
            why: "outside the subnet 10.2.0.0/24".into(),
        });
        assert_eq!(
            e.to_string(),
            "IPAM.Config.Gateway: \"10.3.0.1\": outside the subnet 10.2.0.0/24"
        );
    }
}
