//! Whatever a layer holds, unpacking writes only inside its destination: random sequences of
//! files, directories, symlinks, hardlinks and whiteouts over paths made of `..`, `.`,
//! absolute prefixes and names of earlier symlinks, aimed at a sentinel directory beside the
//! destination.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Kind, entry, finish};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    File(String),
    Dir(String),
    Symlink(String, usize),
    Hardlink(String, String),
    Whiteout(String),
}

/// Mostly paths that unpack (a refused entry ends the layer), with escapes mixed in.
fn path() -> impl Strategy<Value = String> {
    let comp = prop_oneof![
        6 => prop::sample::select(vec!["a", "link", "x"]),
        1 => prop::sample::select(vec!["..", ".", "sentinel"]),
    ];
    (prop::bool::weighted(0.1), prop::collection::vec(comp, 1..4)).prop_map(|(abs, cs)| {
        let p = cs.join("/");
        if abs { format!("/{p}") } else { p }
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        path().prop_map(Op::File),
        path().prop_map(Op::Dir),
        (path(), 0usize..5).prop_map(|(p, t)| Op::Symlink(p, t)),
        (path(), path()).prop_map(|(p, t)| Op::Hardlink(p, t)),
        path().prop_map(Op::Whiteout),
    ]
}

fn snapshot(dir: &Path) -> Vec<(String, u32, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = p.symlink_metadata() else {
                continue;
            };
            out.push((p.display().to_string(), m.permissions().mode(), m.len()));
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn nothing_is_written_outside_the_destination(ops in prop::collection::vec(op(), 1..12)) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let sentinel = dir.path().join("sentinel");
        std::fs::create_dir(&sentinel).map_err(|e| TestCaseError::fail(e.to_string()))?;
        std::fs::write(sentinel.join("keep"), "keep").map_err(|e| TestCaseError::fail(e.to_string()))?;
        let dest = dir.path().join("layer").join("fs");
        std::fs::create_dir_all(&dest).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let sentinel_abs = sentinel.to_string_lossy().into_owned();
        let targets = [
            sentinel_abs.as_str(),
            "../../sentinel",
            "../../../../../../..",
            "/",
            "a",
        ];
        let mut tar = Vec::new();
        for op in &ops {
            match op {
                Op::File(p) => entry(&mut tar, p, Kind::File, b"pwned", ""),
                Op::Dir(p) => entry(&mut tar, p, Kind::Dir, b"", ""),
                Op::Symlink(p, t) => entry(&mut tar, p, Kind::Symlink, b"", targets[*t]),
                Op::Hardlink(p, t) => entry(&mut tar, p, Kind::Hardlink, b"", t),
                Op::Whiteout(p) => {
                    let (parent, name) = p.rsplit_once('/').unwrap_or(("", p));
                    let wh = if parent.is_empty() {
                        format!(".wh.{name}")
                    } else {
                        format!("{parent}/.wh.{name}")
                    };
                    entry(&mut tar, &wh, Kind::File, b"", "");
                }
            }
        }
        let tar = finish(tar);
        let mode = |p: &Path| p.metadata().map(|m| m.permissions().mode()).ok();
        let before_mode = mode(&sentinel);
        let before_sentinel = snapshot(&sentinel);
        let before_root = std::fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0);
        let _ = shoal_image::unpack::unpack_layer(tar.as_slice(), &dest, "prop layer");
        prop_assert_eq!(snapshot(&sentinel), before_sentinel, "the sentinel changed: {:?}", ops);
        let after_root = std::fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0);
        prop_assert_eq!(after_root, before_root, "something appeared beside the layer: {:?}", ops);
        let sibling = dir.path().join("layer");
        let siblings: Vec<_> = std::fs::read_dir(&sibling)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        prop_assert_eq!(siblings.len(), 1, "something appeared beside fs: {:?} {:?}", siblings, ops);
        prop_assert_eq!(mode(&sentinel), before_mode, "the sentinel's mode changed: {:?}", ops);
    }
}
