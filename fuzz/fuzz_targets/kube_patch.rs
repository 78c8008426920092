//! Kubernetes strategic merge patches (`shoal_kube::smp::apply`): the first line is the original
//! object, the rest the patch, both JSON, applied as several kinds (each with its own merge
//! strategies). An empty patch leaves an object as it is; a result is an object, and when the
//! original holds no `$`-key, neither does the result (directives never leak into objects).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use shoal_kube::smp::{Kind, apply};

const KINDS: &[Kind] = &[
    Kind::Deployment,
    Kind::Pod,
    Kind::CronJob,
    Kind::Node,
    Kind::Namespace,
    Kind::Service,
    Kind::Other,
];

fn has_dollar_key(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k.starts_with('$') || has_dollar_key(v)),
        Value::Array(a) => a.iter().any(has_dollar_key),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let (first, rest) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(original) = serde_json::from_slice::<Value>(first) else {
        return;
    };
    let Ok(patch) = serde_json::from_slice::<Value>(rest) else {
        return;
    };
    let clean = !has_dollar_key(&original);
    for &kind in KINDS {
        match apply(kind, &original, &patch) {
            Ok(v) => {
                assert!(v.is_object(), "{kind:?}: {v}");
                assert!(
                    !clean || !has_dollar_key(&v),
                    "{kind:?}: a directive leaked: {v}"
                );
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        if original.is_object() {
            assert_eq!(apply(kind, &original, &json!({})).as_ref(), Ok(&original));
        }
    }
});
