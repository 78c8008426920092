//! Image references (`shoal_types::image_ref::ImageRef::parse`, the one parser every crate uses,
//! on oci-spec's `Reference`), as `service create`, `image pull` and the tags of a loaded archive
//! carry them. A parsed reference prints as a reference that parses back to itself (with the
//! implied `latest` now written), and its familiar (Docker-style short) form parses back to it
//! exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_types::image_ref::{ImageRef, familiar};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let short = familiar(text);
    let Ok(r) = ImageRef::parse(text) else {
        assert_eq!(short, text, "an unparsable reference is kept as it is");
        return;
    };
    let printed = r.to_string();
    let again = ImageRef::parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} prints as {printed:?}, which does not parse: {e}"));
    assert_eq!(
        again,
        r.clone().with_default_tag(),
        "{printed:?} parses to another reference"
    );
    let back = ImageRef::parse(&short)
        .unwrap_or_else(|e| panic!("{text:?} is shown as {short:?}, which does not parse: {e}"));
    assert_eq!(back, r, "the familiar form {short:?} names another image");
    let _ = (
        r.familiar_name(),
        r.tagged(),
        r.digested(),
        r.manifest_ref(),
        r.is_host(),
        r.clone().without_digest().familiar(),
    );
});
