//! A task's root filesystem from an image: overlayfs where the kernel allows it, a merged copy
//! otherwise; both must show the same tree.

mod common;

use std::path::Path;

use common::*;
use shoal_image::LocalImageStore;
use shoal_image::rootfs::{self, Mode};
use shoal_runtime::image::ImageStore;

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
    // Whiteouts and mounts.
    if !need_root() {
        return;
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let _unmount = Unmount(dir.path().to_path_buf());
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

async fn load_image(
    store: &LocalImageStore,
    dir: &Path,
    layers: &[Vec<u8>],
    tag: &str,
) -> Vec<std::path::PathBuf> {
    let archive = write(dir, "img.tar", &save_archive(layers, &[tag], None));
    if let Err(e) = store.load(&archive).await {
        panic!("{e}");
    }
    match store.resolve(tag, false).await {
        Ok(i) => i.layers,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn empty_repeated_and_many_layers() {
    if !need_root() {
        return;
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let _unmount = Unmount(dir.path().to_path_buf());
    let store = match LocalImageStore::open(&dir.path().join("store"), Vec::new()) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let a = layer(&[("a", Kind::File, b"a1", "")]);
    let b = layer(&[("a", Kind::File, b"b", ""), ("b", Kind::File, b"b", "")]);
    let empty = layer(&[]);

    // Empty layers are left out of what resolve gives.
    let l = load_image(
        &store,
        dir.path(),
        &[a.clone(), empty.clone(), b.clone(), empty],
        "t/e:1",
    )
    .await;
    assert_eq!(l.len(), 2, "{l:?}");

    // A repeated non-empty layer: overlayfs cannot stack it, the copy can.
    let l = load_image(&store, dir.path(), &[a.clone(), b, a], "t/rep:1").await;
    assert_eq!(l.len(), 3);
    assert!(rootfs::prepare(&l, &dir.path().join("t-ov"), Mode::Overlay).is_err());
    let r = match rootfs::prepare(&l, &dir.path().join("t-rep"), Mode::Auto) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert!(!r.overlay);
    assert_eq!(
        std::fs::read_to_string(r.path.join("a")).ok().as_deref(),
        Some("a1")
    );
    assert!(r.path.join("b").is_file());
    let _ = rootfs::release(&dir.path().join("t-rep"));
    let _ = rootfs::release(&dir.path().join("t-ov"));

    // More layers than absolute paths fit in one page of mount options.
    let many: Vec<Vec<u8>> = (0..60)
        .map(|i| {
            let name = format!("f{i}");
            layer(&[(name.as_str(), Kind::File, name.as_bytes(), "")])
        })
        .collect();
    let l = load_image(&store, dir.path(), &many, "t/many:1").await;
    assert_eq!(l.len(), 60);
    let task = dir.path().join("t-many");
    let r = match rootfs::prepare(&l, &task, Mode::Overlay) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert!(r.overlay);
    for i in [0, 29, 59] {
        let f = format!("f{i}");
        assert_eq!(std::fs::read_to_string(r.path.join(&f)).ok(), Some(f));
    }
    if let Err(e) = rootfs::release(&task) {
        panic!("{e}");
    }
}
