//! Kubernetes protobuf request bodies (`shoal_kube::proto::decode`): any bytes as the body of a
//! request kubectl sends with `Content-Type: application/vnd.kubernetes.protobuf` (the magic
//! `k8s\0`, a `runtime.Unknown` envelope holding the kind and the object's message). A body
//! decodes to a JSON object naming its apiVersion and kind, or fails with an error; one without
//! the prefix fails as such; decoding is deterministic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_kube::proto::{self, ProtoError};

fuzz_target!(|data: &[u8]| {
    let first = proto::decode(data);
    match &first {
        Ok(value) => {
            assert!(
                data.starts_with(b"k8s\0"),
                "decoded without the prefix: {value}"
            );
            let Some(obj) = value.as_object() else {
                panic!("decoded to a non-object: {value}");
            };
            for key in ["apiVersion", "kind"] {
                assert!(
                    obj.get(key)
                        .and_then(|v| v.as_str())
                        .is_some_and(|s| !s.is_empty()),
                    "no {key} in {value}"
                );
            }
            serde_json::to_vec(value).unwrap_or_else(|e| panic!("{value} does not serialise: {e}"));
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            if !data.starts_with(b"k8s\0") {
                assert_eq!(*e, ProtoError::NoPrefix);
            }
        }
    }
    assert_eq!(proto::decode(data), first, "decoding twice differs");
});
