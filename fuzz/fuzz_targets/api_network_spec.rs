//! `POST /networks/create` bodies: JSON as the handler reads it, `convert::network::spec_in`,
//! the manager's `networks::check_network_spec`, then addresses from `shoal_ipam` as the
//! manager allocates them. A network that is created must show, in its inspect output, what was
//! asked (name, driver, options, labels, flags) and the addresses it was given, and that output
//! must convert back in.
#![no_main]

use bollard_stubs::models as w;
use libfuzzer_sys::fuzz_target;
use shoal_api::body::parse_json;
use shoal_api::convert::network::{network_out, spec_in};
use shoal_ipam::{AddrPools, Request, allocate_network};
use shoal_manager::networks::check_network_spec;
use shoal_types::Network;

fuzz_target!(|data: &[u8]| {
    let Ok(wire) = parse_json::<w::NetworkCreateRequest>(data) else {
        return;
    };
    let Ok(mut spec) = spec_in(wire) else {
        return;
    };
    if check_network_spec(&mut spec).is_err() {
        return;
    }
    let asked = spec.ipam.first().cloned().unwrap_or_default();
    let Ok(addrs) = allocate_network(
        &Request {
            subnet: asked.subnet.as_deref(),
            gateway: asked.gateway.as_deref(),
            ip_range: asked.ip_range.as_deref(),
        },
        &AddrPools::default(),
        &[],
    ) else {
        return;
    };
    let net = Network {
        id: shoal_types::Id::from_raw("n1"),
        meta: Default::default(),
        spec: spec.clone(),
        addrs,
        vni: shoal_types::network::FIRST_VNI,
    };
    let shown = network_out(&net);
    let config = shown
        .ipam
        .as_ref()
        .and_then(|i| i.config.as_ref())
        .and_then(|c| c.first())
        .expect("a network shows its addresses");
    assert_eq!(config.subnet, Some(addrs.subnet.to_string()));
    assert_eq!(config.gateway, Some(addrs.gateway.to_string()));
    let back = spec_in(w::NetworkCreateRequest {
        name: shown.name.clone().unwrap_or_default(),
        driver: shown.driver.clone(),
        internal: shown.internal,
        attachable: shown.attachable,
        ingress: shown.ingress,
        ipam: shown.ipam.clone(),
        options: shown.options.clone(),
        labels: shown.labels.clone(),
        ..Default::default()
    })
    .expect("what inspect shows converts back in");
    assert_eq!(
        (&back.name, &back.driver, &back.driver_opts, &back.labels),
        (&spec.name, &spec.driver, &spec.driver_opts, &spec.labels)
    );
    assert_eq!(
        (back.attachable, back.internal, back.ingress),
        (spec.attachable, spec.internal, spec.ingress)
    );
});
