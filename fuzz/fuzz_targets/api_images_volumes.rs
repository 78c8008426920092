//! What clients send to the image and volume endpoints, through the checks the handlers call
//! (`shoal_api::convert::image`, `convert::volume`). The first byte picks the input:
//! 0 an image name from a path (`check_image_name`); 1 `docker tag`'s `repo`, a newline, then
//! its `tag` (`tag_target`); 2 `docker save`'s query, one `key=value` per line (`save_names`);
//! 3 `GET /volumes`' filters (`VolumeFilters`); 4 `POST /volumes/prune`'s filters, for API
//! 1.41 and 1.50 (`volume_prune`); 5 a `POST /volumes/create` body (`volume_create`).
#![no_main]

use std::collections::BTreeMap;

use bollard_stubs::models::VolumeCreateRequest;
use libfuzzer_sys::fuzz_target;
use shoal_api::body::parse_json;
use shoal_api::convert::image::{check_image_name, save_names, tag_target};
use shoal_api::convert::volume::{VolumeFilters, volume_create, volume_json, volume_prune};
use shoal_fuzz::select;
use shoal_runtime::VolumeInfo;
use shoal_runtime::catalog::ANONYMOUS_VOLUME_LABEL;
use shoal_types::image_ref::ImageRef;
use shoal_types::{Id, Timestamp};

fn volumes() -> Vec<VolumeInfo> {
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    vec![
        VolumeInfo {
            name: "proj_web".into(),
            mountpoint: "/v/proj_web/_data".into(),
            labels: labels(&[("com.docker.compose.project", "proj"), ("a", "")]),
            options: BTreeMap::new(),
            created_at: Timestamp::ZERO,
            in_use_by: vec![Id::from_raw("t1")],
        },
        VolumeInfo {
            name: "0123456789abcdef".repeat(4),
            mountpoint: String::new(),
            labels: labels(&[(ANONYMOUS_VOLUME_LABEL, "")]),
            options: labels(&[("type", "tmpfs")]),
            created_at: Timestamp(i64::MIN),
            in_use_by: Vec::new(),
        },
    ]
}

fuzz_target!(|data: &[u8]| {
    let Some((which, raw)) = select(data) else {
        return;
    };
    match which % 6 {
        0..=2 => {
            // Paths and query values reach the handlers as decoded UTF-8 strings.
            let Ok(text) = std::str::from_utf8(raw) else {
                return;
            };
            match which % 6 {
                0 => {
                    let hexish = text
                        .strip_prefix("sha256:")
                        .unwrap_or(text)
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                    if check_image_name(text).is_ok() && !hexish {
                        assert!(ImageRef::parse(text).is_ok(), "{text:?} passed unparsed");
                    }
                }
                1 => {
                    let (repo, tag) = text.split_once('\n').unwrap_or((text, ""));
                    if let Ok(t) = tag_target(repo, tag) {
                        let r = ImageRef::parse(&t)
                            .unwrap_or_else(|e| panic!("{t:?} from {repo:?} {tag:?}: {e}"));
                        assert!(r.digest().is_none(), "{t:?} pins a digest");
                        let want = if tag.is_empty() { "latest" } else { tag };
                        assert_eq!(r.tag(), Some(want), "{t:?} lost the tag");
                    }
                }
                _ => {
                    let pairs: Vec<(String, String)> = text
                        .lines()
                        .map(|l| {
                            let (k, v) = l.split_once('=').unwrap_or((l, ""));
                            (k.to_string(), v.to_string())
                        })
                        .collect();
                    if let Ok(names) = save_names(&pairs) {
                        assert!(!names.is_empty());
                        assert!(names.iter().all(|n| check_image_name(n).is_ok()));
                    }
                }
            }
        }
        3 | 4 => {
            let Ok(text) = std::str::from_utf8(raw) else {
                return;
            };
            let raw = Some(text.to_string());
            if which % 6 == 3 {
                if let Ok(f) = VolumeFilters::parse(raw.as_ref()) {
                    for v in volumes() {
                        let _ = f.matches(&v);
                        let _ = volume_json(&v);
                    }
                }
            } else {
                for version in [(1, 41), (1, 50)] {
                    if let Ok(p) = volume_prune(raw.as_ref(), version) {
                        assert!(p.all || version >= (1, 42), "an old client prunes everything");
                        assert!(p.labels.len() + p.not_labels.len() <= text.len());
                        for v in volumes() {
                            let _ = p.selects(&v);
                        }
                    }
                }
            }
        }
        _ => {
            let Ok(body) = parse_json::<VolumeCreateRequest>(raw) else {
                return;
            };
            let named = body.name.clone().filter(|n| !n.is_empty());
            if let Ok(spec) = volume_create(body, || "f".repeat(64)) {
                match named {
                    Some(n) => assert_eq!(spec.name, n),
                    None => {
                        assert_eq!(spec.name, "f".repeat(64));
                        assert!(spec.labels.contains_key(ANONYMOUS_VOLUME_LABEL));
                    }
                }
            }
        }
    }
});
