//! `POST /secrets/create` and `/configs/create` bodies, and the secret and config references of
//! a service spec (with shoal's `Version` pins): JSON as the handlers read it, then
//! `convert::payload`. A spec that converts must show what was asked when it is written back out
//! (data only for a config, never for a secret), and references must round-trip, pins and all.
#![no_main]

use bollard_stubs::models as w;
use libfuzzer_sys::fuzz_target;
use shoal_api::body::parse_json;
use shoal_api::convert::payload::{config_in, payload_out, pins_in, secret_in, service_pins_out};
use shoal_api::convert::service::{spec_in, spec_out};
use shoal_types::payload::{Payload, PayloadKind, PayloadVersion};

fuzz_target!(|data: &[u8]| {
    if let Ok(wire) = parse_json::<w::SecretSpec>(data)
        && let Ok(p) = secret_in(wire)
    {
        let shown = payload_out(&payload(
            PayloadKind::Secret,
            p.spec.clone(),
            p.data.clone(),
        ));
        assert_eq!(shown["Spec"]["Name"], p.spec.name.as_str());
        assert!(shown["Spec"].get("Data").is_none(), "a secret's data shown");
    }
    if let Ok(wire) = parse_json::<w::ConfigSpec>(data)
        && let Ok(p) = config_in(wire)
    {
        let shown = payload_out(&payload(
            PayloadKind::Config,
            p.spec.clone(),
            p.data.clone(),
        ));
        let back = config_in(w::ConfigSpec {
            name: Some(p.spec.name.clone()),
            data: shown["Spec"]["Data"].as_str().map(String::from),
            ..Default::default()
        })
        .expect("what inspect shows converts back in");
        assert_eq!(back.data, p.data);
    }
    if let Ok(wire) = parse_json::<w::ServiceSpec>(data)
        && let Ok(mut spec) = spec_in(wire)
        && pins_in(data, &mut spec, None).is_ok()
    {
        let mut shown = serde_json::json!({ "Spec": spec_out(&spec) });
        service_pins_out(&mut shown, &spec, None);
        let text = serde_json::to_vec(&shown["Spec"]).expect("serialise");
        let mut back = spec_in(parse_json::<w::ServiceSpec>(&text).expect("reads back"))
            .expect("what inspect shows converts back in");
        pins_in(&text, &mut back, None).expect("pins read back");
        assert_eq!(back.task.container.secrets, spec.task.container.secrets);
        assert_eq!(back.task.container.configs, spec.task.container.configs);
    }
});

fn payload(
    kind: PayloadKind,
    spec: shoal_types::PayloadSpec,
    data: shoal_types::payload::Bytes,
) -> Payload {
    Payload {
        id: shoal_types::Id::from_raw("p1"),
        meta: Default::default(),
        kind,
        spec,
        versions: vec![PayloadVersion {
            version: 1,
            data,
            created_at: Default::default(),
        }],
    }
}
