//! `POST /services/create` and `POST /services/{id}/update` bodies, through the handler's path:
//! JSON with Docker's case-insensitive keys (`body::parse_json`), the wire-to-model conversion
//! (`convert::service::spec_in`) and the manager's validation (`validate::check_service_spec`,
//! `check_service_update`). A spec that converts must come back unchanged from model to wire to
//! model, since every `docker service update` reads, edits and writes back a whole spec.
#![no_main]

use bollard_stubs::models as w;
use libfuzzer_sys::fuzz_target;
use shoal_api::body::parse_json;
use shoal_api::convert::service::{service_out, spec_in, spec_out};
use shoal_manager::validate::{check_service_spec, check_service_update};
use shoal_types::Service;

fuzz_target!(|data: &[u8]| {
    let Ok(wire) = parse_json::<w::ServiceSpec>(data) else {
        return;
    };
    let Ok(spec) = spec_in(wire) else {
        return;
    };
    let valid = check_service_spec(&spec).is_ok();
    assert_eq!(
        check_service_update(&spec, &spec).is_ok(),
        valid,
        "an update to the same spec is judged unlike a create"
    );
    let again = spec_in(spec_out(&spec)).expect("a spec the API accepted converts back in");
    assert_eq!(again, spec, "model -> wire -> model changed the spec");
    let service = Service {
        spec,
        previous_spec: Some(again),
        ..Default::default()
    };
    let shown = serde_json::to_vec(&service_out(&service, None)).expect("a service serializes");
    assert!(!shown.is_empty());
});
