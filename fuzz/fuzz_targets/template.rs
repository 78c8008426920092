//! Service templates (`shoal_types::template`): a hostname or mount template
//! (`parse_named`), an environment entry (`parse_env`), and a whole container spec
//! (`expand_container`), each expanded against a task's context; a template without actions
//! expands alike in every context. The first byte picks which.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_fuzz::select;
use shoal_types::container::Mount;
use shoal_types::service::ContainerSpec;
use shoal_types::template::{Context, expand_container, parse_env, parse_named};

fn context() -> Context {
    Context {
        service_id: "9b4r8k1y5q2w7e3t6u0i4o8p2".into(),
        service_name: "web".into(),
        service_labels: [("tier".to_owned(), "front".to_owned())].into(),
        node_id: "3n5m7b9v1c3x5z7l9k1j3h5g7".into(),
        node_hostname: "node-1".into(),
        node_os: "linux".into(),
        node_arch: "x86_64".into(),
        task_id: "1a2s3d4f5g6h7j8k9l0z1x2c3".into(),
        task_name: "web.1.1a2s3d4f5g6h7j8k9l0z1x2c3".into(),
        task_slot: "1".into(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = select(data) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let ctx = context();
    match which % 3 {
        0 => {
            if let Ok(t) = parse_named("Hostname", text) {
                let out = t.expand(&ctx);
                if t.is_plain() {
                    let elsewhere = t.expand(&Context::default());
                    assert_eq!(out, elsewhere, "a plain template depends on its context");
                }
            }
        }
        1 => {
            if let Ok(e) = parse_env("Env[0]", text) {
                let _ = e.expand(&ctx);
            }
        }
        _ => {
            let spec = ContainerSpec {
                hostname: text.into(),
                env: text.lines().map(str::to_owned).collect(),
                mounts: vec![Mount {
                    source: text.into(),
                    target: text.into(),
                    ..Default::default()
                }],
                ..Default::default()
            };
            let _ = expand_container(&spec, &ctx);
        }
    }
});
