//! Image manifests and indexes (`shoal_image::config::Document::parse`, oci-spec's
//! `ImageManifest` and `ImageIndex`), as a registry serves them and an OCI layout's `index.json`
//! holds them, then what a pull does next: pick this platform's entry of an index and read every
//! descriptor's digest (`descriptor_digest`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_image::config::{Document, Parsed, descriptor_digest, pick_platform};

fuzz_target!(|data: &[u8]| {
    match Document::parse(data, "manifest") {
        Ok(Parsed::Manifest(m)) => {
            let _ = descriptor_digest(m.config(), "manifest config");
            for l in m.layers() {
                let _ = descriptor_digest(l, "manifest layer");
            }
        }
        Ok(Parsed::Index(index)) => {
            if let Ok(m) = pick_platform(index.manifests(), "index") {
                let _ = descriptor_digest(m, "index entry");
            }
        }
        Err(_) => {}
    }
});
