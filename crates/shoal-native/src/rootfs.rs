//! A task's root filesystem from an image's layers: an overlay mount (layers read-only below,
//! the task's own upper and work directories above) where the kernel and the filesystem under
//! the driver's root allow it (probed once), else a private copy of the layers with their
//! whiteouts applied. Also the path helpers the driver needs to look inside a rootfs without
//! following the image's symlinks out of it.
//!
//! Everything here is blocking filesystem work; async callers run it on a blocking thread.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

/// Mount option data is limited to one page; stay well under it.
const MAX_MOUNT_DATA: usize = 4000;

/// Whether an overlay with its upper directory under `root` can be mounted here.
pub(crate) fn probe_overlay(root: &Path) -> bool {
    // Unique per probe: two drivers in one process (tests, adoption) may probe at once.
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let base = root.join(format!(".overlay-probe-{}-{n}", std::process::id()));
    let (l, u, w, m) = (
        base.join("l"),
        base.join("u"),
        base.join("w"),
        base.join("m"),
    );
    let made = [&l, &u, &w, &m]
        .iter()
        .try_for_each(std::fs::create_dir_all);
    let ok = made.is_ok()
        && mount_overlay(std::slice::from_ref(&l), &u, &w, &m).is_ok()
        && unmount(&m).is_ok();
    let _ = std::fs::remove_dir_all(&base);
    ok
}

/// Mounts `layers` (lowest first) read-only under `upper`/`work` at `target`.
pub(crate) fn mount_overlay(
    layers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> io::Result<()> {
    let bad = |p: &Path| {
        let s = p.as_os_str().as_bytes();
        s.contains(&b',') || s.contains(&b':') || s.contains(&0)
    };
    if layers.is_empty() {
        return Err(io::Error::other("the image has no layers"));
    }
    if layers.iter().any(|p| bad(p)) || bad(upper) || bad(work) {
        return Err(io::Error::other("a layer path holds ',' or ':'"));
    }
    // overlayfs lists lower directories top first.
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    if data.len() > MAX_MOUNT_DATA {
        return Err(io::Error::other("too many layers for one overlay mount"));
    }
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(io::Error::from)
}

/// Unmounts `target` if something is mounted there.
pub(crate) fn unmount(target: &Path) -> io::Result<()> {
    match nix::mount::umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Whether `p` is a mount point (its device differs from its parent's, or /proc says so).
pub(crate) fn is_mount_point(p: &Path) -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = p.to_string_lossy();
    mountinfo
        .lines()
        .any(|l| l.split_whitespace().nth(4).is_some_and(|m| m == want))
}

/// Copies the layers (lowest first) into `target`, applying each layer's whiteouts (0/0
/// character devices delete what is below; an opaque directory hides what is below it).
pub(crate) fn copy_layers(layers: &[PathBuf], target: &Path) -> io::Result<()> {
    std::fs::create_dir_all(target)?;
    for layer in layers {
        apply_layer(layer, target)?;
    }
    Ok(())
}

fn is_whiteout(md: &std::fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn remove_any(p: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(md) if md.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
    }
}

fn apply_layer(src: &Path, dst: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let s = entry.path();
        let d = dst.join(entry.file_name());
        let md = std::fs::symlink_metadata(&s)?;
        if is_whiteout(&md) {
            remove_any(&d)?;
            continue;
        }
        if md.is_dir() {
            let keep = std::fs::symlink_metadata(&d).is_ok_and(|m| m.is_dir());
            if !keep || is_opaque(&s) {
                remove_any(&d)?;
                std::fs::create_dir(&d)?;
            }
            apply_layer(&s, &d)?;
            copy_attrs(&md, &d)?;
        } else {
            remove_any(&d)?;
            copy_entry(&s, &md, &d)?;
        }
    }
    Ok(())
}

/// Copies one non-directory entry, keeping its type, mode and owner.
pub(crate) fn copy_entry(s: &Path, md: &std::fs::Metadata, d: &Path) -> io::Result<()> {
    let ft = md.file_type();
    if ft.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(s)?, d)?;
        return std::os::unix::fs::lchown(d, Some(md.uid()), Some(md.gid()));
    }
    if ft.is_file() {
        std::fs::copy(s, d)?;
    } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
        let kind = if ft.is_char_device() {
            nix::sys::stat::SFlag::S_IFCHR
        } else if ft.is_block_device() {
            nix::sys::stat::SFlag::S_IFBLK
        } else {
            nix::sys::stat::SFlag::S_IFIFO
        };
        let perm = nix::sys::stat::Mode::from_bits_truncate(md.mode() & 0o7777);
        nix::sys::stat::mknod(d, kind, perm, md.rdev())?;
    } else {
        return Ok(()); // sockets are not copied
    }
    copy_attrs(md, d)
}

fn copy_attrs(md: &std::fs::Metadata, d: &Path) -> io::Result<()> {
    std::os::unix::fs::lchown(d, Some(md.uid()), Some(md.gid()))?;
    // After chown, which clears set-id bits.
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(md.mode() & 0o7777))
}

/// Copies the contents of directory `src` into directory `dst` (for filling a new volume from
/// the image), keeping types, modes and owners.
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let s = entry.path();
        let d = dst.join(entry.file_name());
        let md = std::fs::symlink_metadata(&s)?;
        if md.is_dir() {
            std::fs::create_dir_all(&d)?;
            copy_tree(&s, &d)?;
            copy_attrs(&md, &d)?;
        } else {
            copy_entry(&s, &md, &d)?;
        }
    }
    Ok(())
}

#[allow(unsafe_code)]
fn is_opaque(dir: &Path) -> bool {
    let Ok(path) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let name = c"trusted.overlay.opaque";
    let mut buf = [0u8; 4];
    // SAFETY: both strings are NUL-terminated and live across the call; the kernel writes at
    // most `buf.len()` bytes into `buf`, which we own.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

/// `path` (absolute, as the task sees it) resolved inside `root`, following symlinks as the
/// task would but never out of `root` (`..` and absolute links stop at it). Components that
/// do not exist are kept as they are.
pub(crate) fn secure_join(root: &Path, path: &str) -> PathBuf {
    let mut resolved = PathBuf::new(); // relative to root
    let mut pending: Vec<std::ffi::OsString> = Path::new(path)
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut links = 0;
    while let Some(c) = pending.pop() {
        if c == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&c);
        match std::fs::read_link(root.join(&candidate)) {
            Ok(target) if links < 40 => {
                links += 1;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                for comp in target.components().rev() {
                    match comp {
                        Component::Normal(n) => pending.push(n.to_os_string()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => resolved = candidate,
        }
    }
    root.join(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_join_stays_inside() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path();
        std::fs::create_dir_all(root.join("real/dir")).expect("mkdir");
        std::os::unix::fs::symlink("/real", root.join("abs")).expect("symlink");
        std::os::unix::fs::symlink("../../../..", root.join("real/up")).expect("symlink");
        std::os::unix::fs::symlink("/etc", root.join("etc")).expect("symlink");
        assert_eq!(secure_join(root, "/abs/dir"), root.join("real/dir"));
        assert_eq!(secure_join(root, "/real/up/x"), root.join("x"));
        assert_eq!(secure_join(root, "/../../x"), root.join("x"));
        // A link to /etc points at the rootfs's own etc, not the node's.
        assert_eq!(secure_join(root, "/etc/passwd"), root.join("etc/passwd"));
        assert_eq!(secure_join(root, "/new/path"), root.join("new/path"));
    }

    #[test]
    fn copies_layers_applying_whiteouts() {
        // Whiteouts are 0/0 character devices.
        if !shoal_testkit::need(&[shoal_testkit::Need::Root]) {
            return;
        }
        let t = tempfile::tempdir().expect("tempdir");
        let (l1, l2, out) = (t.path().join("l1"), t.path().join("l2"), t.path().join("o"));
        std::fs::create_dir_all(l1.join("d/sub")).expect("mkdir");
        std::fs::create_dir_all(l1.join("opq")).expect("mkdir");
        std::fs::write(l1.join("gone"), "x").expect("write");
        std::fs::write(l1.join("keep"), "1").expect("write");
        std::fs::write(l1.join("d/sub/f"), "f").expect("write");
        std::fs::write(l1.join("opq/old"), "old").expect("write");
        std::os::unix::fs::symlink("keep", l1.join("link")).expect("symlink");
        std::fs::create_dir_all(l2.join("opq")).expect("mkdir");
        std::fs::write(l2.join("opq/new"), "new").expect("write");
        std::fs::write(l2.join("keep"), "2").expect("write");
        let whiteout = |p: &Path| {
            nix::sys::stat::mknod(
                p,
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::from_bits_truncate(0),
                0,
            )
            .expect("mknod")
        };
        whiteout(&l2.join("gone"));
        whiteout(&l2.join("d"));
        let opq = CString::new(l2.join("opq").as_os_str().as_bytes()).expect("cstring");
        if !shoal_testkit::need(&[shoal_testkit::Need::Probed {
            key: "xattr",
            present: set_opaque(&opq),
            what: format!("trusted xattrs on {}", t.path().display()),
            fix: "point TMPDIR at a filesystem with trusted.* xattrs (ext4, xfs, tmpfs)".into(),
        }]) {
            return;
        }
        copy_layers(&[l1, l2], &out).expect("copy");
        assert!(!out.join("gone").exists());
        assert!(!out.join("d").exists());
        assert_eq!(
            std::fs::read_to_string(out.join("keep")).expect("read"),
            "2"
        );
        assert_eq!(
            std::fs::read_to_string(out.join("link")).expect("read"),
            "2"
        );
        assert!(out.join("opq/new").exists());
        assert!(
            !out.join("opq/old").exists(),
            "an opaque dir hides the layer below"
        );
    }

    #[allow(unsafe_code)]
    fn set_opaque(path: &CString) -> bool {
        // SAFETY: NUL-terminated strings and a one-byte value, all alive across the call.
        unsafe {
            libc::lsetxattr(
                path.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                b"y".as_ptr().cast(),
                1,
                0,
            ) == 0
        }
    }
}
