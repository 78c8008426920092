//! `POST /services/create` and `POST /services/{id}/update` bodies, through the handler's path:
//! JSON with Docker's case-insensitive keys (`body::parse_json`), the wire-to-model conversion
//! (`convert::service::spec_in`) and the manager's validation (`validate::check_service_spec`,
//! `check_service_update`). A spec that converts must come back unchanged from model to wire to
//! model, since every `docker service update` reads, edits and writes back a whole spec; so must
//! the spec with Swarm's defaults filled in (`?insertDefaults=true`, what `docker service
//! inspect` reads). The warnings of a create or update and Docker's JSON spelling of a service
//! are worked out for every spec that converts.
#![no_main]

use bollard_stubs::models as w;
use libfuzzer_sys::fuzz_target;
use shoal_api::body::parse_json;
use shoal_api::convert::service::{service_out, spec_in, spec_out};
use shoal_api::convert::service_extras::warnings;
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
    let defaults = spec.with_defaults();
    assert_eq!(
        spec_in(spec_out(&defaults)).expect("the spec with defaults converts back in"),
        defaults,
        "model -> wire -> model changed the spec with defaults"
    );
    let _ = warnings(&spec);
    let service = Service {
        spec,
        previous_spec: Some(again),
        ..Default::default()
    };
    let shown = service_out(&service, None)
        .to_json()
        .expect("a service serializes");
    assert!(shown.get("Spec").is_some());
});
