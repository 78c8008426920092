//! Loading archives into the store: the real busybox `docker save` archive, an OCI layout
//! made from it, and hand-built hostile or broken archives that must be refused without
//! writing anything outside the store.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

use common::*;
use shoal_image::LocalImageStore;
use shoal_runtime::RuntimeError;
use shoal_runtime::image::ImageStore;
use shoal_types::error::chain;

struct Env {
    dir: tempfile::TempDir,
    store: LocalImageStore,
}

impl Env {
    fn new() -> Env {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("tempdir: {e}"),
        };
        let store = match LocalImageStore::open(&dir.path().join("store"), Vec::new()) {
            Ok(s) => s,
            Err(e) => panic!("open: {e}"),
        };
        Env { dir, store }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn archive(&self, name: &str, bytes: &[u8]) -> PathBuf {
        write(self.dir.path(), name, bytes)
    }

    async fn load(&self, bytes: &[u8]) -> Result<Vec<String>, RuntimeError> {
        let p = self.archive("in.tar", bytes);
        self.store.load(&p).await
    }

    async fn load_ok(&self, bytes: &[u8]) -> Vec<String> {
        match self.load(bytes).await {
            Ok(v) => v,
            Err(e) => panic!("load: {e}"),
        }
    }

    async fn refused(&self, bytes: &[u8], needle: &str) {
        match self.load(bytes).await {
            Ok(v) => panic!("loaded {v:?}; expected a refusal mentioning {needle:?}"),
            Err(e @ (RuntimeError::InvalidImage(_) | RuntimeError::Corrupt { .. })) => {
                let why = chain(&e);
                assert!(why.contains(needle), "{why:?} does not mention {needle:?}")
            }
            Err(e) => panic!("expected InvalidImage mentioning {needle:?}, got {e:?}"),
        }
        self.assert_nothing_kept().await;
    }

    /// Nothing visible, no layer left, no work file left.
    async fn assert_nothing_kept(&self) {
        match self.store.list().await {
            Ok(l) => assert!(l.is_empty(), "images after a refused load: {l:?}"),
            Err(e) => panic!("list: {e}"),
        }
        for d in ["store/layers", "store/tmp"] {
            let left: Vec<_> = std::fs::read_dir(self.path(d))
                .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                .unwrap_or_default();
            assert!(left.is_empty(), "{d} after a refused load: {left:?}");
        }
    }

    async fn resolve(&self, r: &str) -> shoal_runtime::image::ResolvedImage {
        match self.store.resolve(r, false).await {
            Ok(i) => i,
            Err(e) => panic!("resolve {r}: {e}"),
        }
    }
}

fn find_in_layers(layers: &[PathBuf], rel: &str) -> Option<PathBuf> {
    layers
        .iter()
        .rev()
        .map(|l| l.join(rel))
        .find(|p| p.symlink_metadata().is_ok())
}

#[tokio::test]
async fn loads_the_busybox_docker_save_archive() {
    let Some(bytes) = busybox_archive() else {
        return;
    };
    let env = Env::new();
    let tags = env.load_ok(&bytes).await;
    assert_eq!(tags, vec!["shoal-test/busybox:latest".to_string()]);

    let img = env.resolve("shoal-test/busybox").await;
    assert!(img.id.starts_with("sha256:"), "{}", img.id);
    assert_eq!(img.layers.len(), 4);
    let busybox = find_in_layers(&img.layers, "bin/busybox");
    let Some(busybox) = busybox else {
        panic!("no bin/busybox in {:?}", img.layers)
    };
    let m = match busybox.metadata() {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    assert!(m.len() > 100_000 && m.mode() & 0o111 != 0, "{m:?}");
    let sh = find_in_layers(&img.layers, "bin/sh");
    assert!(
        sh.is_some_and(|p| p
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())),
        "bin/sh is a symlink"
    );
    assert_eq!(img.config.cmd, vec!["/bin/sh".to_string()]);
    assert!(
        img.config.env.contains(&"PATH=/bin".to_string()),
        "{:?}",
        img.config.env
    );
    let index = find_in_layers(&img.layers, "var/www/index.html");
    assert!(
        index.is_some_and(|p| std::fs::read_to_string(p).is_ok_and(|s| s == "hello from shoal\n"))
    );

    // The same image by its full name, its ID and an ID prefix.
    let full = env.resolve("docker.io/shoal-test/busybox:latest").await;
    assert_eq!(full.id, img.id);
    let hex = img.id.trim_start_matches("sha256:");
    assert_eq!(env.resolve(&hex[..12]).await.id, img.id);
    assert_eq!(env.resolve(&img.id).await.id, img.id);
    match env.store.resolve("shoal-test/busybox:nope", false).await {
        Err(RuntimeError::ImageNotFound(_)) => {}
        other => panic!("expected ImageNotFound, got {other:?}"),
    }

    let list = match env.store.list().await {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, img.id);
    assert_eq!(
        list[0].repo_tags,
        vec!["shoal-test/busybox:latest".to_string()]
    );
    assert!(list[0].size > 1_000_000, "{}", list[0].size);
    assert!(!list[0].created.is_zero());

    // Loading again changes nothing and unpacks nothing new.
    assert_eq!(env.load_ok(&bytes).await, tags);
    assert_eq!(env.resolve("shoal-test/busybox").await, img);
}

#[tokio::test]
async fn loads_an_oci_layout_without_manifest_json_gzip_too() {
    let Some(save) = busybox_archive() else {
        return;
    };
    let env = Env::new();
    let oci = oci_from_save(&save, "docker.io/shoal-test/oci:1", true, false, false);
    let tags = env.load_ok(&gzip(&oci)).await;
    assert_eq!(tags, vec!["shoal-test/oci:1".to_string()]);
    let img = env.resolve("shoal-test/oci:1").await;
    assert!(find_in_layers(&img.layers, "bin/busybox").is_some());
    assert_eq!(img.config.cmd, vec!["/bin/sh".to_string()]);

    // The docker save archive is the same image: same ID, layers shared.
    env.load_ok(&save).await;
    let saved = env.resolve("shoal-test/busybox").await;
    assert_eq!(saved.id, img.id);
    assert_eq!(saved.layers, img.layers);
}

#[tokio::test]
async fn oci_layer_digest_mismatch_is_refused() {
    let Some(save) = busybox_archive() else {
        return;
    };
    let env = Env::new();
    let oci = oci_from_save(&save, "docker.io/shoal-test/oci:1", false, true, false);
    env.refused(&oci, "digest mismatch").await;
}

#[tokio::test]
async fn loads_a_docker_25_archive_by_its_manifest_json() {
    let Some(save) = busybox_archive() else {
        return;
    };
    let env = Env::new();
    let both = oci_from_save(&save, "docker.io/shoal-test/both:2", true, false, true);
    assert_eq!(
        env.load_ok(&both).await,
        vec!["shoal-test/both:2".to_string()]
    );
    let img = env.resolve("shoal-test/both:2").await;
    assert!(find_in_layers(&img.layers, "bin/busybox").is_some());
    // manifest.json's blob paths are digests too, and are checked.
    let env = Env::new();
    let bad = oci_from_save(&save, "docker.io/shoal-test/both:2", true, true, true);
    env.refused(&bad, "mismatch").await;
}

#[tokio::test]
async fn diff_id_mismatch_is_refused() {
    let env = Env::new();
    let l = layer(&[("hello", Kind::File, b"hi", "")]);
    let wrong = vec![sha256(b"something else")];
    env.refused(
        &save_archive(&[l], &["t/mismatch:1"], Some(wrong)),
        "digest mismatch",
    )
    .await;
}

#[tokio::test]
async fn whiteouts_and_opaque_dirs_become_overlayfs_markers() {
    // Whiteouts are device nodes and trusted xattrs.
    if !need_root() {
        return;
    }
    let env = Env::new();
    let lower = layer(&[
        ("a/", Kind::Dir, b"", ""),
        ("a/gone", Kind::File, b"x", ""),
        ("b/", Kind::Dir, b"", ""),
        ("b/old", Kind::File, b"x", ""),
    ]);
    let upper = layer(&[
        ("a/", Kind::Dir, b"", ""),
        ("a/.wh.gone", Kind::File, b"", ""),
        ("b/", Kind::Dir, b"", ""),
        ("b/.wh..wh..opq", Kind::File, b"", ""),
        ("b/new", Kind::File, b"y", ""),
        ("c/.wh.deep", Kind::File, b"", ""),
        ("dev/null", Kind::Char, b"", ""),
    ]);
    env.load_ok(&save_archive(&[lower, upper], &["t/wh:1"], None))
        .await;
    let img = env.resolve("t/wh:1").await;
    let up = &img.layers[1];
    let m = match up.join("a/gone").symlink_metadata() {
        Ok(m) => m,
        Err(e) => panic!("a/gone whiteout: {e}"),
    };
    assert!(m.file_type().is_char_device() && m.rdev() == 0, "{m:?}");
    assert!(!up.join("a/.wh.gone").exists());
    assert!(
        up.join("c/deep")
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_char_device())
    );
    match xattr::get(up.join("b"), "trusted.overlay.opaque") {
        Ok(Some(v)) => assert_eq!(v, b"y"),
        other => panic!("b is not opaque: {other:?}"),
    }
    assert!(!up.join("b/.wh..wh..opq").exists());
    assert!(up.join("b/new").is_file());
    // Device nodes other than whiteouts are not created.
    assert!(up.join("dev/null").symlink_metadata().is_err());
    assert!(img.layers[0].join("a/gone").is_file());
}

#[tokio::test]
async fn a_dotdot_entry_is_refused_and_nothing_is_written_outside() {
    let env = Env::new();
    for (i, name) in ["../evil", "../../../../evil", "ok/../../../../../evil"]
        .iter()
        .enumerate()
    {
        let l = layer(&[
            ("fine", Kind::File, b"ok", ""),
            (name, Kind::File, b"pwned", ""),
        ]);
        env.refused(&save_archive(&[l], &[&format!("t/dotdot:{i}")], None), name)
            .await;
    }
    assert!(!env.path("evil").exists(), "a sentinel path was written");
    assert!(!env.path("store/evil").exists());
    assert!(!env.path("store/tmp/evil").exists());
}

#[tokio::test]
async fn an_absolute_path_is_refused() {
    let env = Env::new();
    let target = env.path("abs-evil");
    let name = target.to_string_lossy().into_owned();
    let l = layer(&[(&name, Kind::File, b"pwned", "")]);
    env.refused(&save_archive(&[l], &["t/abs:1"], None), "absolute path")
        .await;
    assert!(!target.exists());
}

#[tokio::test]
async fn writing_through_a_symlink_is_refused() {
    let env = Env::new();
    let outside = env.path("outside");
    if let Err(e) = std::fs::create_dir(&outside) {
        panic!("{e}");
    }
    let abs = outside.to_string_lossy().into_owned();
    for (i, target) in [abs.as_str(), "../../../../../../../../.."]
        .iter()
        .enumerate()
    {
        let l = layer(&[
            ("link", Kind::Symlink, b"", target),
            ("link/pwned", Kind::File, b"pwned", ""),
        ]);
        env.refused(
            &save_archive(&[l], &[&format!("t/sym:{i}")], None),
            "symlink",
        )
        .await;
    }
    // A directory replaced by a symlink in the same layer is not written through either.
    let l = layer(&[
        ("d/", Kind::Dir, b"", ""),
        ("d", Kind::Symlink, b"", &abs),
        ("d/pwned", Kind::File, b"pwned", ""),
    ]);
    env.refused(&save_archive(&[l], &["t/sym:2"], None), "symlink")
        .await;
    assert!(!outside.join("pwned").exists());
    assert!(std::fs::read_dir(&outside).is_ok_and(|mut d| d.next().is_none()));
}

#[tokio::test]
async fn a_directory_replaced_by_a_symlink_does_not_pass_its_mode_outside() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let outside = env.path("outside");
    if let Err(e) = std::fs::create_dir(&outside) {
        panic!("{e}");
    }
    let mode = |p: &std::path::Path| p.metadata().map(|m| m.permissions().mode() & 0o7777).ok();
    let before = mode(&outside);
    let abs = outside.to_string_lossy().into_owned();
    let parent = env.dir.path().to_string_lossy().into_owned();
    // The directory's metadata is applied at the end, after it became a symlink; the same for
    // a directory below one that became a symlink.
    let l = layer(&[
        ("d/", Kind::Dir, b"", ""),
        ("d", Kind::Symlink, b"", &abs),
        ("p/", Kind::Dir, b"", ""),
        ("p/outside/", Kind::Dir, b"", ""),
        ("p", Kind::Symlink, b"", &parent),
    ]);
    env.load_ok(&save_archive(&[l], &["t/dirsym:1"], None))
        .await;
    assert_eq!(mode(&outside), before, "a host directory's mode changed");
    let img = env.resolve("t/dirsym:1").await;
    assert!(
        img.layers[0]
            .join("d")
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
    );
}

#[tokio::test]
async fn a_hardlink_out_of_the_layer_is_refused() {
    let env = Env::new();
    let secret = write(env.dir.path(), "secret", b"host secret");
    let abs = secret.to_string_lossy().into_owned();
    let cases: [(&[Entry], &str); 3] = [
        (
            &[("h", Kind::Hardlink, b"", "../../../../../secret")],
            "hardlink",
        ),
        (&[("h", Kind::Hardlink, b"", &abs)], "hardlink"),
        (
            &[
                (
                    "s",
                    Kind::Symlink,
                    b"",
                    env.dir.path().to_str().unwrap_or("/"),
                ),
                ("h", Kind::Hardlink, b"", "s/secret"),
            ],
            "hardlink",
        ),
    ];
    for (i, (entries, needle)) in cases.iter().enumerate() {
        let l = layer(entries);
        env.refused(&save_archive(&[l], &[&format!("t/hl:{i}")], None), needle)
            .await;
    }
    let m = match secret.metadata() {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(m.nlink(), 1, "the host file gained a link");
}

#[tokio::test]
async fn a_hardlink_inside_the_layer_is_kept() {
    let env = Env::new();
    let l = layer(&[
        ("a", Kind::File, b"data", ""),
        ("dir/", Kind::Dir, b"", ""),
        ("dir/b", Kind::Hardlink, b"", "a"),
    ]);
    env.load_ok(&save_archive(&[l], &["t/hl-ok:1"], None)).await;
    let img = env.resolve("t/hl-ok:1").await;
    let m = match img.layers[0].join("dir/b").metadata() {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(m.nlink(), 2);
}

#[tokio::test]
async fn a_dotdot_entry_in_the_outer_archive_is_refused() {
    let env = Env::new();
    let mut out = Vec::new();
    entry(&mut out, "../../outer-evil", Kind::File, b"pwned", "");
    env.refused(&finish(out), "outer-evil").await;
    assert!(!env.path("outer-evil").exists());
}

#[tokio::test]
async fn truncated_and_corrupt_archives_are_refused() {
    let env = Env::new();
    let l = layer(&[("f", Kind::File, &[7u8; 5000], "")]);
    let whole = save_archive(
        &[l.clone(), layer(&[("g", Kind::File, b"g", "")])],
        &["t/c:1"],
        None,
    );
    // Cut inside the second layer's data, after the first layer is complete.
    let cut = 512 * 2 + l.len() + 512 * 2 + 100;
    // The tar reader's error is the cause, under what was being read.
    match env.load(&whole[..cut]).await {
        Err(e @ RuntimeError::Corrupt { .. }) => {
            let source = std::error::Error::source(&e).expect("the tar reader's error");
            assert!(
                source.downcast_ref::<std::io::Error>().is_some(),
                "{source:?}"
            );
            assert!(
                chain(&e).ends_with(&format!("corrupt tar archive: {source}")),
                "{}",
                chain(&e)
            );
        }
        other => panic!("a truncated archive: {other:?}"),
    }
    match env.store.list().await {
        Ok(l) => assert!(l.is_empty(), "{l:?}"),
        Err(e) => panic!("{e}"),
    }
    // A corrupt header checksum.
    let mut bad = whole.clone();
    bad[0] ^= 0x55;
    match env.load(&bad).await {
        Err(RuntimeError::InvalidImage(_) | RuntimeError::Corrupt { .. }) => {}
        other => panic!("a corrupt archive: {other:?}"),
    }
    // Not an archive at all, and a gzip stream cut short.
    env.refused(
        b"this is not a tar archive, just some bytes long enough..",
        "in.tar",
    )
    .await;
    let gz = gzip(&whole);
    match env.load(&gz[..gz.len() / 2]).await {
        Err(RuntimeError::InvalidImage(_) | RuntimeError::Corrupt { .. }) => {}
        other => panic!("a truncated gzip archive: {other:?}"),
    }
    // A truncated layer stream inside a complete outer archive.
    let short = save_archive(&[l[..3000].to_vec()], &["t/c:2"], Some(vec![sha256(&l)]));
    env.refused(&short, "layer").await;
    // A good layer before a bad one: the good one does not stay behind either.
    let good = layer(&[("ok", Kind::File, b"ok", "")]);
    let bad = layer(&[("x", Kind::File, &[1u8; 2000], "")]);
    let diff_ids = vec![sha256(&good), sha256(&bad)];
    env.refused(
        &save_archive(&[good, bad[..1000].to_vec()], &["t/c:3"], Some(diff_ids)),
        "layer",
    )
    .await;
    // Whatever the failures left unreferenced goes when the store is opened again.
    drop(env.store);
    match LocalImageStore::open(&env.dir.path().join("store"), Vec::new()) {
        Ok(_) => {}
        Err(e) => panic!("{e}"),
    }
    let layers: Vec<_> = std::fs::read_dir(env.dir.path().join("store/layers"))
        .map(|r| r.filter_map(|e| e.ok()).collect())
        .unwrap_or_default();
    assert!(layers.is_empty(), "{layers:?}");
}

#[tokio::test]
async fn remove_untags_then_deletes_and_collects_layers() {
    let env = Env::new();
    let shared = layer(&[("shared", Kind::File, b"s", "")]);
    let a = save_archive(std::slice::from_ref(&shared), &["t/a:1", "t/a:2"], None);
    let b = save_archive(
        &[shared, layer(&[("own", Kind::File, b"o", "")])],
        &["t/b:1"],
        None,
    );
    env.load_ok(&a).await;
    env.load_ok(&b).await;
    let ia = env.resolve("t/a:1").await;
    let ib = env.resolve("t/b:1").await;
    assert_eq!(ia.layers[0], ib.layers[0]);

    let rm = |r: &'static str, force: bool, used: Vec<String>| {
        let s = &env.store;
        async move { s.remove(r, force, &used).await }
    };
    // By ID while two tags point at it: refused without force.
    let short = ia.id.trim_start_matches("sha256:")[..12].to_string();
    let short: &'static str = Box::leak(short.into_boxed_str());
    match rm(short, false, vec![]).await {
        Err(e) => assert!(e.to_string().contains("multiple repositories"), "{e}"),
        Ok(v) => panic!("{v:?}"),
    }
    assert_eq!(
        rm("t/a:2", false, vec![]).await.ok(),
        Some(vec!["Untagged: t/a:2".to_string()])
    );
    // The last tag of an image a task uses: refused, then only untagged with force.
    match rm("t/a:1", false, vec![ia.id.clone()]).await {
        Err(e) => assert!(e.to_string().contains("must force"), "{e}"),
        Ok(v) => panic!("{v:?}"),
    }
    assert_eq!(
        rm("t/a:1", true, vec![ia.id.clone()]).await.ok(),
        Some(vec!["Untagged: t/a:1".to_string()])
    );
    assert!(ia.layers[0].exists());
    let list = env.store.list().await.unwrap_or_default();
    assert!(
        list.iter().any(|i| i.id == ia.id && i.repo_tags.is_empty()),
        "{list:?}"
    );
    // Once unused, by ID: deleted; its layer stays because b shares it.
    assert_eq!(
        rm(short, false, vec![]).await.ok(),
        Some(vec![format!("Deleted: {}", ia.id)])
    );
    assert!(ia.layers[0].exists());
    let out = match rm("t/b:1", false, vec![]).await {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(out[0], "Untagged: t/b:1");
    assert_eq!(out[1], format!("Deleted: {}", ib.id));
    assert_eq!(out.len(), 4, "{out:?}");
    assert!(!ib.layers[0].exists() && !ib.layers[1].exists());
    assert!(env.store.list().await.is_ok_and(|l| l.is_empty()));
    match rm("t/b:1", false, vec![]).await {
        Err(RuntimeError::ImageNotFound(_)) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_bad_reference_names_the_bad_part() {
    let env = Env::new();
    match env.store.pull("Busybox:latest").await {
        Err(e) => assert!(e.to_string().contains("lowercase"), "{e}"),
        Ok(i) => panic!("{i:?}"),
    }
    match env.store.resolve("busybox:bad tag", false).await {
        Err(RuntimeError::ImageNotFound(_)) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_loads_of_one_image_share_its_layers() {
    let Some(bytes) = busybox_archive() else {
        return;
    };
    let env = Env::new();
    let a = env.archive("a.tar", &bytes);
    let b = env.archive("b.tar", &gzip(&bytes));
    let (ra, rb) = tokio::join!(env.store.load(&a), env.store.load(&b));
    for r in [ra, rb] {
        match r {
            Ok(t) => assert_eq!(t, vec!["shoal-test/busybox:latest".to_string()]),
            Err(e) => panic!("{e}"),
        }
    }
    let img = env.resolve("shoal-test/busybox").await;
    assert!(find_in_layers(&img.layers, "bin/busybox").is_some());
    let layers = std::fs::read_dir(env.path("store/layers"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(layers, 4);
    let tmp = std::fs::read_dir(env.path("store/tmp"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(tmp, 0, "work files left behind");
}

#[tokio::test]
async fn old_docker_save_layer_symlinks_are_followed_inside_the_archive() {
    let env = Env::new();
    let l = layer(&[("f", Kind::File, b"f", "")]);
    let config = config_json(&[sha256(&l), sha256(&l)]);
    let config_name = format!("{}.json", hexof(&config));
    let manifest = serde_json::json!([{
        "Config": config_name, "RepoTags": ["t/old:1"], "Layers": ["l0/layer.tar", "l1/layer.tar"],
    }])
    .to_string();
    let mut out = Vec::new();
    entry(&mut out, "l0/layer.tar", Kind::File, &l, "");
    // Older Docker wrote a repeated layer once and linked to it.
    entry(
        &mut out,
        "l1/layer.tar",
        Kind::Symlink,
        b"",
        "../l0/layer.tar",
    );
    entry(&mut out, &config_name, Kind::File, &config, "");
    entry(
        &mut out,
        "manifest.json",
        Kind::File,
        manifest.as_bytes(),
        "",
    );
    env.load_ok(&finish(out.clone())).await;
    let img = env.resolve("t/old:1").await;
    assert_eq!(img.layers.len(), 2);
    assert_eq!(img.layers[0], img.layers[1]);

    // A link out of the archive is refused, whether or not anything names it.
    let env = Env::new();
    entry(
        &mut out,
        "l2/layer.tar",
        Kind::Symlink,
        b"",
        "../../../../etc/passwd",
    );
    env.refused(&finish(out), "l2/layer.tar").await;
}
