//! Layer archives (plain or gzip'd tar) through the hardened unpacker
//! (`shoal_image::unpack::unpack_layer`) into a fresh directory. Whatever the archive holds,
//! nothing beside that directory may appear or change, and a layer that unpacks reports the
//! digest of its uncompressed bytes as its diff ID.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use shoal_fuzz::Sandbox;
use shoal_image::digest::Digest;
use shoal_image::unpack::{decompressed, unpack_layer};

fuzz_target!(|data: &[u8]| {
    let sb = Sandbox::new();
    let result = unpack_layer(data, &sb.dest, "layer");
    sb.assert_nothing_outside();
    if let Ok(u) = result {
        let mut plain = Vec::new();
        decompressed(data)
            .expect("reading from memory")
            .expect("a layer that unpacked has a known compression")
            .read_to_end(&mut plain)
            .expect("a layer that unpacked decompresses");
        assert_eq!(
            u.diff_id,
            Digest::of(&plain),
            "the diff ID is not the tar's digest"
        );
    }
});
