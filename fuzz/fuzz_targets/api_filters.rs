//! The `filters` query parameter of `GET /services`, `/nodes` and `/tasks`, through the same
//! parsers the handlers call (`Filters::for_services`, `for_nodes`, `for_tasks`), then the
//! matching helpers the handlers use. The first byte picks the endpoint; the rest is the decoded
//! query value.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use shoal_api::filters::{self, Filters};
use shoal_fuzz::select;

fuzz_target!(|data: &[u8]| {
    let Some((which, raw)) = select(data) else {
        return;
    };
    // Query values reach the handler as decoded UTF-8 strings.
    let Ok(raw) = std::str::from_utf8(raw) else {
        return;
    };
    let raw = Some(raw.to_owned());
    let (parsed, allowed) = match which % 3 {
        0 => (Filters::for_services(raw.as_ref()), filters::SERVICES),
        1 => (Filters::for_nodes(raw.as_ref()), filters::NODES),
        _ => (
            Filters::for_tasks(raw.as_ref()).map(|(f, desired)| {
                assert!(desired.len() <= f.get("desired-state").len());
                f
            }),
            filters::TASKS,
        ),
    };
    let Ok(f) = parsed else {
        return;
    };
    let raw = raw.unwrap_or_default();
    let labels: BTreeMap<String, String> = [("a", "1"), ("com.example.team", "web"), ("", "")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for name in allowed {
        let _ = f.any(name, |v| v.starts_with("web"));
        let _ = f.labels(name, &labels);
        assert!(
            f.get(name).len() <= raw.len(),
            "more values than the input could hold"
        );
    }
});
