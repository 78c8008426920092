//! The Kubernetes API's `labelSelector` and `fieldSelector` query parameters
//! (`shoal_kube::selector`): the same text goes to both parsers, as a decoded query value. A
//! parsed selector is matched against fixed labels / fields, prints as a selector that parses
//! back to itself and matches alike, and keeps only keys and values that pass Kubernetes' label
//! checks (label selectors).
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use shoal_kube::selector::{
    FieldOperator, FieldSelector, LabelSelector, label_key_errors, label_value_errors,
};

const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "status.phase",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    let labels: BTreeMap<String, String> = [
        ("app", "web"),
        ("tier", "front"),
        ("replicas", "3"),
        ("empty", ""),
        ("app.kubernetes.io/name", "web"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    match LabelSelector::parse(text) {
        Ok(sel) => {
            let matched = sel.matches(&labels);
            let _ = sel.matches(&BTreeMap::new());
            assert_eq!(sel.is_empty(), sel.requirements().is_empty());
            for r in sel.requirements() {
                assert!(label_key_errors(r.key()).is_empty(), "{r:?} has a bad key");
                for v in r.values() {
                    assert!(label_value_errors(v).is_empty(), "{r:?} has a bad value");
                }
            }
            let printed = sel.to_string();
            let again = LabelSelector::parse(&printed)
                .unwrap_or_else(|e| panic!("{sel:?} prints as {printed:?}, which fails: {e}"));
            assert_eq!(again, sel, "{printed:?} parses to another selector");
            assert_eq!(again.matches(&labels), matched);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }

    let fields: BTreeMap<&str, &str> = [
        ("metadata.name", "web-0"),
        ("metadata.namespace", "default"),
        ("status.phase", "Running"),
    ]
    .into_iter()
    .collect();
    let value_of = |path: &str| fields.get(path).map(|v| (*v).to_owned());
    match FieldSelector::parse(text) {
        Ok(sel) => {
            let matched = sel.matches(value_of);
            let supported = sel.check(POD_FIELDS).is_ok();
            for r in sel.requirements() {
                assert!(!(r.key().is_empty() && r.value().is_empty()));
                if r.operator() != FieldOperator::NotEquals {
                    assert!(sel.exact(r.key()).is_some());
                }
            }
            let printed = sel.to_string();
            let again = FieldSelector::parse(&printed)
                .unwrap_or_else(|e| panic!("{sel:?} prints as {printed:?}, which fails: {e}"));
            assert_eq!(again, sel, "{printed:?} parses to another selector");
            assert_eq!(again.matches(value_of), matched);
            assert_eq!(again.check(POD_FIELDS).is_ok(), supported);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
