//! Image configs (`shoal_image::config::ConfigFile::parse`: oci-spec's `ImageConfiguration` plus
//! Docker's health check), from an archive or a registry, and what the runtime reads of them:
//! diff IDs, creation time and the run config.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_image::config::ConfigFile;

fuzz_target!(|data: &[u8]| {
    let Ok(c) = ConfigFile::parse(data, "config") else {
        return;
    };
    assert_eq!(
        c.diff_ids().len(),
        c.oci.rootfs().diff_ids().len(),
        "parse accepted a diff ID that diff_ids() drops"
    );
    let _ = c.created();
    let _ = c.image_config();
});
