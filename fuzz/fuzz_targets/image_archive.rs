//! `image load` archives (`shoal_image::archive::load`): a `docker save` archive or an OCI
//! layout, plain or gzip'd, loaded into a fresh image store. Nothing beside the store may
//! appear or change, and the store's index stays readable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_fuzz::Sandbox;
use shoal_image::archive::load;
use shoal_image::store::Store;

fuzz_target!(|data: &[u8]| {
    let archive = tempfile::NamedTempFile::new().expect("a temp file for the archive");
    std::fs::write(archive.path(), data).expect("writing the archive");
    let sb = Sandbox::new();
    let store = Store::open(&sb.dest).expect("a fresh store opens");
    let _ = load(&store, archive.path());
    sb.assert_nothing_outside();
    store.list().expect("the store's index stays readable");
});
