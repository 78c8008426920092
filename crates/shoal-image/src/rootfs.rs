//! A task's own root filesystem from an image's layers: an overlayfs mount (layers shared,
//! writes in the task's upper dir) where the kernel allows it, else a private copy of the
//! layers merged with overlayfs's own rules (whiteouts delete, opaque directories hide what is
//! below, a directory replaces a non-directory). The copy never follows a symlink. Blocking;
//! one caller per task directory.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use shoal_runtime::RuntimeError;

/// The kernel copies at most a page of mount options.
const MOUNT_DATA_MAX: usize = 4000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Overlayfs, falling back to a copy when the mount is refused.
    Auto,
    Overlay,
    Copy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    /// The directory to use as the task's root.
    pub path: PathBuf,
    pub overlay: bool,
}

fn io_err(context: String) -> impl FnOnce(io::Error) -> RuntimeError {
    move |source| RuntimeError::Io { context, source }
}

/// Builds the root filesystem for `layers` (lowest first) under `dir` (created; the task's own
/// directory) and returns where it is.
pub fn prepare(layers: &[PathBuf], dir: &Path, mode: Mode) -> Result<Rootfs, RuntimeError> {
    let merged = dir.join("merged");
    for d in [dir.to_path_buf(), merged.clone()] {
        fs::create_dir_all(&d).map_err(io_err(format!("creating {}", d.display())))?;
    }
    let repeated = layers
        .iter()
        .enumerate()
        .any(|(i, l)| layers[..i].contains(l));
    if mode == Mode::Overlay && repeated {
        return Err(RuntimeError::InvalidImage(
            "the image repeats a layer, which overlayfs cannot stack".into(),
        ));
    }
    if mode != Mode::Copy && !repeated {
        match mount_overlay(layers, dir, &merged) {
            Ok(()) => {
                return Ok(Rootfs {
                    path: merged,
                    overlay: true,
                });
            }
            Err(e) if mode == Mode::Overlay => {
                return Err(io_err(format!(
                    "mounting overlayfs on {}",
                    merged.display()
                ))(e));
            }
            Err(e) => {
                tracing::info!(error = %shoal_types::error::Chain(&e), "overlayfs refused; copying the image's layers instead");
            }
        }
    }
    for layer in layers {
        merge_dir(layer, &merged).map_err(io_err(format!(
            "copying layer {} into {}",
            layer.display(),
            merged.display()
        )))?;
    }
    Ok(Rootfs {
        path: merged,
        overlay: false,
    })
}

/// Undoes [`prepare`]: unmounts the overlay if there is one and removes `dir`.
pub fn release(dir: &Path) -> Result<(), RuntimeError> {
    let merged = dir.join("merged");
    match nix::mount::umount2(&merged, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            return Err(io_err(format!("unmounting {}", merged.display()))(e.into()));
        }
    }
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(io_err(format!("removing {}", dir.display()))(e))
        }
        _ => Ok(()),
    }
}

/// Overlayfs separates lower dirs with ':' and options with ','; both are escaped.
fn escape(p: &Path) -> String {
    let s = p.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, ':' | ',' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn mount_overlay(layers: &[PathBuf], dir: &Path, merged: &Path) -> io::Result<()> {
    let upper = dir.join("upper");
    let work = dir.join("work");
    let empty = dir.join("empty");
    for d in [&upper, &work, &empty] {
        fs::create_dir_all(d)?;
    }
    // The topmost layer comes first in lowerdir; an image with no layers gets an empty one.
    let mut lower: Vec<PathBuf> = layers.iter().rev().cloned().collect();
    if lower.is_empty() {
        lower.push(empty);
    }
    let options = |lower: &[PathBuf]| {
        let l: Vec<String> = lower.iter().map(|p| escape(p)).collect();
        format!(
            "lowerdir={},upperdir={},workdir={}",
            l.join(":"),
            escape(&upper),
            escape(&work)
        )
    };
    let mut opts = options(&lower);
    if opts.len() >= MOUNT_DATA_MAX {
        // Mount options fit in one page. Short symlinks to the layers (which overlayfs
        // follows when it looks lower dirs up) stretch that to many more layers, as Docker's
        // overlay2 does.
        let short = dir.join("l");
        fs::create_dir_all(&short)?;
        let mut links = Vec::with_capacity(lower.len());
        for (i, l) in lower.iter().enumerate() {
            let link = short.join(i.to_string());
            let _ = fs::remove_file(&link);
            std::os::unix::fs::symlink(l, &link)?;
            links.push(link);
        }
        opts = options(&links);
        if opts.len() >= MOUNT_DATA_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} layers are too many for one overlayfs mount",
                    lower.len()
                ),
            ));
        }
    }
    nix::mount::mount(
        Some("overlay"),
        merged,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(opts.as_str()),
    )
    .map_err(io::Error::from)
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn opaque(p: &Path) -> bool {
    matches!(xattr::get(p, "trusted.overlay.opaque"), Ok(Some(v)) if v == b"y")
}

/// Applies layer directory `src` over `dst` with overlayfs's rules.
fn merge_dir(src: &Path, dst: &Path) -> io::Result<()> {
    for e in fs::read_dir(src)? {
        let e = e?;
        let from = e.path();
        let to = dst.join(e.file_name());
        let m = fs::symlink_metadata(&from)?;
        let ft = m.file_type();
        if is_whiteout(&m) {
            remove_any(&to)?;
            continue;
        }
        if ft.is_dir() {
            match fs::symlink_metadata(&to) {
                Ok(t) if t.is_dir() && !opaque(&from) => {}
                Ok(_) => {
                    remove_any(&to)?;
                    fs::create_dir(&to)?;
                }
                Err(err) if err.kind() == io::ErrorKind::NotFound => fs::create_dir(&to)?,
                Err(err) => return Err(err),
            }
            merge_dir(&from, &to)?;
            own(&to, &m)?;
            fs::set_permissions(&to, fs::Permissions::from_mode(m.mode() & 0o7777))?;
            continue;
        }
        remove_any(&to)?;
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
            own(&to, &m)?;
        } else if ft.is_file() {
            fs::copy(&from, &to)?;
            own(&to, &m)?;
            fs::set_permissions(&to, fs::Permissions::from_mode(m.mode() & 0o7777))?;
        } else if ft.is_fifo() {
            nix::unistd::mkfifo(&to, nix::sys::stat::Mode::from_bits_truncate(0o600))
                .map_err(io::Error::from)?;
            own(&to, &m)?;
            fs::set_permissions(&to, fs::Permissions::from_mode(m.mode() & 0o7777))?;
        }
    }
    Ok(())
}

fn own(p: &Path, m: &fs::Metadata) -> io::Result<()> {
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::lchown(p, Some(m.uid()), Some(m.gid()))?;
    }
    Ok(())
}
