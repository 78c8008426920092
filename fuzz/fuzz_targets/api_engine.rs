//! The engine endpoints' outside input: the `POST /containers/{id}/exec` body (`exec_config`,
//! the handler's own parser), the `filters` of `GET /containers/json` and `GET /events` with
//! the matchers the handlers apply, a signal name (`kill?signal=`), and `ps` output as `top`
//! filters it, the `POST /containers/create` body (then shown back by inspect), and a local
//! network's `POST /networks/create` body. The first byte picks which; the rest is the input.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use shoal_api::engine_wire::{
    CONTAINER_FILTERS, EVENT_FILTERS, container_create, container_matches, event_matches,
    exec_config, inspect_json, local_network_spec, parse_signal,
};
use shoal_api::filters::Filters;
use shoal_control::engine::{ContainerInfo, ContainerState, ContainerStatus, EngineEvent};
use shoal_fuzz::select;
use shoal_types::Timestamp;

fn container() -> ContainerInfo {
    ContainerInfo {
        id: "0123456789abcdef".repeat(4),
        name: "web.1.abc".into(),
        task_id: None,
        created: Timestamp(1),
        labels: [("app".to_string(), "web".to_string())].into(),
        spec: Default::default(),
        hostname: String::new(),
        state: ContainerState {
            status: ContainerStatus::Running,
            pid: 1,
            exit_code: 0,
            oom_killed: false,
            started_at: Timestamp(1),
            finished_at: Timestamp::ZERO,
            error: String::new(),
            health: None,
        },
        networks: Vec::new(),
        runtime: "native".into(),
        standalone: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((which, raw)) = select(data) else {
        return;
    };
    match which % 6 {
        4 => {
            if let Ok(create) = container_create(raw) {
                assert!(!create.spec.image.is_empty(), "a container without an image");
                let mut c = container();
                c.standalone = Some(shoal_control::engine::StandaloneInfo {
                    create,
                    restart_count: 0,
                    restarting: false,
                    published: Vec::new(),
                });
                let _ = inspect_json(&c);
            }
        }
        5 => {
            if let Ok(spec) = local_network_spec(raw) {
                assert_eq!(spec.driver, "bridge");
            }
        }
        0 => {
            if let Ok(c) = exec_config(raw) {
                assert!(!c.cmd.is_empty(), "an exec without a command was accepted");
            }
        }
        1 | 2 => {
            let Ok(text) = std::str::from_utf8(raw) else {
                return;
            };
            let text = Some(text.to_owned());
            if which % 6 == 1 {
                if let Ok(f) = Filters::parse(text.as_ref(), CONTAINER_FILTERS) {
                    let _ = container_matches(&container(), &f);
                }
            } else if let Ok(f) = Filters::parse(text.as_ref(), EVENT_FILTERS) {
                let e = EngineEvent {
                    typ: "container".into(),
                    action: "exec_start: sh -c true".into(),
                    id: "abc".into(),
                    attributes: BTreeMap::from([("name".to_string(), "web".to_string())]),
                    scope: "local".into(),
                    time: Timestamp(1),
                };
                let _ = event_matches(&e, &f);
            }
        }
        _ => {
            let Ok(text) = std::str::from_utf8(raw) else {
                return;
            };
            if let Ok(n) = parse_signal(text) {
                assert!((1..=64).contains(&n), "signal {n} out of range");
            }
        }
    }
});
