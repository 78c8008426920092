//! Helpers the fuzz targets share: splitting a selector byte off an input, and the check that an
//! unpacker wrote nothing outside the directory it was given.

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The first byte picks what a target feeds the rest to (one target covers several message
/// types), so the fuzzer can move an input between them by mutating one byte.
pub fn select(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(s, rest)| (*s, rest))
}

/// Every path under `root`, without following symlinks (a symlink is listed, never entered).
pub fn tree(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(p.clone());
            }
            out.insert(p);
        }
    }
    out
}

/// A scratch area for one unpack: `outer/` holds a sentinel file and the destination
/// `outer/dest/`, so anything written beside the destination (through `..`, a symlink or a
/// hardlink) shows up as a change of `outer/` outside `dest/`. Archives can name the sentinel
/// as `../sentinel`, which the seeds do to point the fuzzer at escapes.
pub struct Sandbox {
    pub outer: tempfile::TempDir,
    pub dest: PathBuf,
    before: BTreeSet<PathBuf>,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let outer = tempfile::Builder::new()
            .prefix("shoal-fuzz-")
            .tempdir()
            .expect("a temp dir for the fuzz target");
        let dest = outer.path().join("dest");
        std::fs::create_dir(&dest).expect("the destination dir");
        let sentinel = outer.path().join("sentinel");
        std::fs::write(&sentinel, b"untouched").expect("the sentinel");
        std::fs::set_permissions(&sentinel, std::fs::Permissions::from_mode(0o644))
            .expect("the sentinel's mode");
        let before = tree(outer.path());
        Sandbox {
            outer,
            dest,
            before,
        }
    }

    /// Panics (a fuzz finding) if anything beside `dest` appeared, vanished or changed.
    pub fn assert_nothing_outside(&self) {
        let outside: BTreeSet<PathBuf> = tree(self.outer.path())
            .into_iter()
            .filter(|p| !p.starts_with(&self.dest))
            .collect();
        let before: BTreeSet<PathBuf> = self
            .before
            .iter()
            .filter(|p| !p.starts_with(&self.dest))
            .cloned()
            .collect();
        assert_eq!(
            outside, before,
            "the unpacker wrote outside its destination"
        );
        let sentinel = self.outer.path().join("sentinel");
        let content = std::fs::read(&sentinel).unwrap_or_default();
        assert_eq!(
            content, b"untouched",
            "the sentinel beside the destination changed"
        );
        let meta = std::fs::symlink_metadata(&sentinel).expect("the sentinel is still there");
        assert_eq!(meta.nlink(), 1, "a hardlink to the sentinel was made");
        assert_eq!(
            meta.permissions().mode() & 0o7777,
            0o644,
            "the sentinel's mode changed"
        );
        let meta = std::fs::symlink_metadata(&self.dest).expect("the destination still exists");
        assert!(
            meta.is_dir(),
            "the destination was replaced by a non-directory"
        );
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

/// `msg` with every run of ASCII digits replaced by one `#`: how targets compare an error
/// message with the known shapes whatever numbers it carries.
pub fn digits_as_hash(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    for c in msg.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('#') {
            out.push('#');
        }
    }
    out
}
