//! A task's root filesystem from an image: overlayfs where the kernel allows it, a merged copy
//! otherwise; both must show the same tree.

mod common;

use std::path::Path;

use common::*;
use shoal_agent::image::ImageStore;
use shoal_image::LocalImageStore;
use shoal_image::rootfs::{self, Mode};

fn check_view(root: &Path) {
    let read = |p: &str| std::fs::read_to_string(root.join(p)).ok();
    assert_eq!(read("base").as_deref(), Some("base"));
    assert_eq!(read("a/kept").as_deref(), Some("k"));
    assert!(
        root.join("a/gone").symlink_metadata().is_err(),
        "a whiteout hides a/gone"
    );
    assert!(
        root.join("b/old").symlink_metadata().is_err(),
        "an opaque b hides b/old"
    );
    assert_eq!(read("b/new").as_deref(), Some("n"));
    assert_eq!(read("over").as_deref(), Some("upper"));
    assert!(
        root.join("link")
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
    );
}

#[tokio::test]
async fn overlay_and_copy_show_the_same_merged_tree() {
    if !is_root() {
        eprintln!("skipping: whiteouts and mounts need root");
        return;
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let store = match LocalImageStore::open(&dir.path().join("store"), Vec::new()) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let lower = layer(&[
        ("base", Kind::File, b"base", ""),
        ("over", Kind::File, b"lower", ""),
        ("a/gone", Kind::File, b"g", ""),
        ("a/kept", Kind::File, b"k", ""),
        ("b/old", Kind::File, b"o", ""),
    ]);
    let upper = layer(&[
        ("over", Kind::File, b"upper", ""),
        ("a/.wh.gone", Kind::File, b"", ""),
        ("b/.wh..wh..opq", Kind::File, b"", ""),
        ("b/new", Kind::File, b"n", ""),
        ("link", Kind::Symlink, b"", "/etc/passwd"),
    ]);
    let archive = write(
        dir.path(),
        "a.tar",
        &save_archive(&[lower, upper], &["t/r:1"], None),
    );
    if let Err(e) = store.load(&archive).await {
        panic!("{e}");
    }
    let img = match store.resolve("t/r:1", false).await {
        Ok(i) => i,
        Err(e) => panic!("{e}"),
    };

    let copy_dir = dir.path().join("task-copy");
    let copy = match rootfs::prepare(&img.layers, &copy_dir, Mode::Copy) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert!(!copy.overlay);
    check_view(&copy.path);
    if let Err(e) = rootfs::release(&copy_dir) {
        panic!("{e}");
    }
    assert!(!copy_dir.exists());

    let ov_dir = dir.path().join("task-overlay");
    let ov = match rootfs::prepare(&img.layers, &ov_dir, Mode::Auto) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    check_view(&ov.path);
    // A task's writes stay its own.
    if let Err(e) = std::fs::write(ov.path.join("over"), "task") {
        panic!("{e}");
    }
    for l in &img.layers {
        assert_ne!(
            std::fs::read_to_string(l.join("over")).ok().as_deref(),
            Some("task")
        );
    }
    if let Err(e) = rootfs::release(&ov_dir) {
        panic!("{e}");
    }
    assert!(!ov_dir.exists());
    assert!(img.layers.iter().all(|l| l.exists()));
    if !ov.overlay {
        eprintln!("note: overlayfs was refused here; only the copy was checked");
    }
}
