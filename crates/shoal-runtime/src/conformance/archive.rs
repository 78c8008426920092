//! A task's files as archives (`docker cp`): put, stat and get on running, created and exited
//! tasks, and what is refused.

use std::time::Duration;

use futures::StreamExt;

use super::cases::RUNS;
use super::{DEADLINE, Harness, output, start, task, until_output, wait};
use crate::archive::{ArchiveStream, PathStat};
use crate::exec::ExecSpec;
use crate::{RuntimeDriver, RuntimeError};

/// The modification time the suite's archives give their entries (2023-11-14).
const MTIME: u64 = 1_700_000_000;

/// One entry of an archive, as the suite writes and reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Item {
    Dir(&'static str, u32),
    File(&'static str, u32, &'static str),
    Link(&'static str, &'static str),
}

/// What an archive the driver gave holds: name (without a directory's trailing slash), kind
/// (`d`, `f`, `l`), permission bits, and content or link target.
type Got = Vec<(String, char, u32, String)>;

/// An archive of `items`, names written as given (even those a tar writer would refuse).
pub(super) fn archive_of(items: &[Item]) -> ArchiveStream {
    let mut b = tar::Builder::new(Vec::new());
    for item in items {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(MTIME);
        h.set_uid(0);
        h.set_gid(0);
        let (name, data): (&str, &[u8]) = match item {
            Item::Dir(name, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                (name, b"")
            }
            Item::File(name, mode, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                (name, data.as_bytes())
            }
            Item::Link(name, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                if let Err(e) = h.set_link_name_literal(target) {
                    panic!("the suite's symlink {name} -> {target}: {e}");
                }
                (name, b"")
            }
        };
        if let Some(g) = h.as_gnu_mut() {
            let n = name.len().min(g.name.len());
            g.name = [0; 100];
            g.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        }
        h.set_cksum();
        if let Err(e) = b.append(&h, data) {
            panic!("the suite's archive entry {name}: {e}");
        }
    }
    let bytes = match b.into_inner() {
        Ok(b) => b,
        Err(e) => panic!("the suite's archive: {e}"),
    };
    futures::stream::iter([Ok(bytes::Bytes::from(bytes))]).boxed()
}

/// Everything in an archive a driver gave.
async fn read_archive<H: Harness>(h: &H, mut s: ArchiveStream) -> Got {
    let name = h.name();
    let mut bytes = Vec::new();
    loop {
        match tokio::time::timeout(DEADLINE, s.next()).await {
            Err(_) => panic!("{name}: the archive did not end"),
            Ok(None) => break,
            Ok(Some(Err(e))) => panic!("{name}: reading the archive: {e}"),
            Ok(Some(Ok(b))) => bytes.extend_from_slice(&b),
        }
    }
    let mut a = tar::Archive::new(&bytes[..]);
    let mut out = Vec::new();
    let entries = a
        .entries()
        .unwrap_or_else(|e| panic!("{name}: not a tar archive: {e}"));
    for e in entries {
        let mut e = e.unwrap_or_else(|e| panic!("{name}: a broken archive entry: {e}"));
        let path = e
            .path()
            .unwrap_or_else(|e| panic!("{name}: an entry's name: {e}"))
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let mode = e.header().mode().unwrap_or(0) & 0o7777;
        let kind = e.header().entry_type();
        let (k, content) = if kind.is_dir() {
            ('d', String::new())
        } else if kind.is_symlink() {
            let t = e
                .link_name()
                .ok()
                .flatten()
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            ('l', t)
        } else {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut b)
                .unwrap_or_else(|err| panic!("{name}: reading {path} in the archive: {err}"));
            ('f', String::from_utf8_lossy(&b).into_owned())
        };
        out.push((path, k, mode, content));
    }
    out.sort();
    out
}

fn entry(name: &str, kind: char, mode: u32, content: &str) -> (String, char, u32, String) {
    (name.to_string(), kind, mode, content.to_string())
}

async fn stat<H: Harness>(h: &H, d: &H::Driver, id: &shoal_types::Id, path: &str) -> PathStat {
    match d.path_stat(id, path).await {
        Ok(s) => s,
        Err(e) => panic!("{}: stat of {path}: {e}", h.name()),
    }
}

async fn put<H: Harness>(h: &H, d: &H::Driver, id: &shoal_types::Id, dir: &str, items: &[Item]) {
    if let Err(e) = d.archive_put(id, dir, archive_of(items), false).await {
        panic!("{}: putting {items:?} into {dir}: {e}", h.name());
    }
}

async fn get<H: Harness>(
    h: &H,
    d: &H::Driver,
    id: &shoal_types::Id,
    path: &str,
) -> (PathStat, Got) {
    match d.archive_get(id, path).await {
        Ok((s, a)) => (s, read_archive(h, a).await),
        Err(e) => panic!("{}: archive of {path}: {e}", h.name()),
    }
}

fn is_path_not_found<T>(r: &Result<T, RuntimeError>, path: &str) -> bool {
    matches!(r, Err(RuntimeError::PathNotFound { path: p }) if p == path)
}

/// What one puts into a task (created, then running) the task sees, and it comes back out as
/// it went in: stat and archive of a file, a directory (with what is under it) and a symlink;
/// a missing path is `PathNotFound`, a missing task `NotFound`.
pub async fn archive_put_then_get<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let r = task(h, "archive", &format!("cat /tmp/before; {RUNS}"));
    let id = &r.task_id;
    d.prepare(&r).await.expect("prepare");
    put(
        h,
        &d,
        id,
        "/tmp",
        &[Item::File("before", 0o644, "put before the start\n")],
    )
    .await;
    start(h, &d, &r).await;
    until_output(h, &d, id, "ready").await;
    assert_eq!(
        output(h, &d, id).await.0,
        "put before the start\nready\n",
        "{name}: the task reads what was put into it before it started"
    );

    put(
        h,
        &d,
        id,
        "/tmp",
        &[
            Item::Dir("in/", 0o750),
            Item::File("in/f", 0o640, "hello\n"),
            Item::Link("in/l", "f"),
        ],
    )
    .await;
    let p = d
        .exec(
            id,
            ExecSpec {
                cmd: vec!["cat".into(), "/tmp/in/f".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: exec: {e}"));
    let mut seen = Vec::new();
    let mut out = p.output;
    while let Ok(Some(chunk)) = tokio::time::timeout(DEADLINE, out.next()).await {
        seen.extend_from_slice(&chunk.map(|(_, b)| b).unwrap_or_default());
    }
    assert_eq!(
        String::from_utf8_lossy(&seen),
        "hello\n",
        "{name}: the running task sees the file put into it"
    );

    let f = stat(h, &d, id, "/tmp/in/f").await;
    assert_eq!(
        (f.name.as_str(), f.size, f.mode, f.mtime.unix_nanos()),
        ("f", 6, 0o640, MTIME as i64 * 1_000_000_000),
        "{name}: the file's stat: {f:?}"
    );
    let dir = stat(h, &d, id, "/tmp/in/").await;
    assert!(
        dir.is_dir() && dir.mode & 0o7777 == 0o750 && dir.name == "in",
        "{name}: the directory's stat: {dir:?}"
    );
    let l = stat(h, &d, id, "/tmp/in/l").await;
    assert!(
        l.is_symlink() && l.link_target == "/tmp/in/f",
        "{name}: the symlink's stat: {l:?}"
    );

    let (s, got) = get(h, &d, id, "/tmp/in/f").await;
    assert_eq!(s, f, "{name}: the archive's stat is the path's");
    assert_eq!(
        got,
        vec![entry("f", 'f', 0o640, "hello\n")],
        "{name}: a file's archive"
    );
    let (_, got) = get(h, &d, id, "/tmp/in").await;
    assert_eq!(
        got,
        vec![
            entry("in", 'd', 0o750, ""),
            entry("in/f", 'f', 0o640, "hello\n"),
            entry("in/l", 'l', 0o777, "f"),
        ],
        "{name}: a directory's archive, named from its parent"
    );

    // The whole root: what was put is in it; the kernel's own files (a running task's /proc)
    // are not, only where they are mounted.
    let (root, got) = get(h, &d, id, "/").await;
    assert!(root.is_dir(), "{name}: the root's stat: {root:?}");
    let names: Vec<String> = got
        .iter()
        .map(|(n, ..)| {
            n.trim_start_matches('.')
                .trim_start_matches('/')
                .to_string()
        })
        .collect();
    assert!(
        names.iter().any(|n| n == "tmp/in/f") && !names.iter().any(|n| n.starts_with("proc/")),
        "{name}: the root's archive: {} entries, tmp: {:?}, proc: {:?}",
        names.len(),
        names
            .iter()
            .filter(|n| n.starts_with("tmp"))
            .collect::<Vec<_>>(),
        names
            .iter()
            .filter(|n| n.starts_with("proc"))
            .take(5)
            .collect::<Vec<_>>()
    );

    for path in ["/tmp/nothing", "/tmp/in/nothing/x"] {
        let missing = d.path_stat(id, path).await;
        assert!(
            is_path_not_found(&missing, path),
            "{name}: stat of {path}: {missing:?}"
        );
        if let Err(e) = &missing {
            assert_eq!(
                e.to_string(),
                format!("Could not find the file {path} in container"),
                "{name}: Docker's words"
            );
        }
        let missing = d.archive_get(id, path).await.map(|(s, _)| s);
        assert!(
            is_path_not_found(&missing, path),
            "{name}: archive of {path}: {missing:?}"
        );
    }
    let into_missing = d
        .archive_put(
            id,
            "/tmp/nowhere",
            archive_of(&[Item::File("f", 0o644, "x")]),
            false,
        )
        .await;
    assert!(
        is_path_not_found(&into_missing, "/tmp/nowhere"),
        "{name}: putting into a missing directory: {into_missing:?}"
    );
    let unknown = shoal_types::Id::from_raw(format!("nosuchtask-{}", h.unique()));
    assert!(
        matches!(
            d.path_stat(&unknown, "/").await,
            Err(RuntimeError::NotFound(_))
        ),
        "{name}: stat in an unknown task is NotFound"
    );
    assert!(
        matches!(
            d.archive_get(&unknown, "/tmp").await.map(|(s, _)| s),
            Err(RuntimeError::NotFound(_))
        ),
        "{name}: an archive of an unknown task is NotFound"
    );
    assert!(
        matches!(
            d.archive_put(&unknown, "/tmp", archive_of(&[]), false)
                .await,
            Err(RuntimeError::NotFound(_))
        ),
        "{name}: putting into an unknown task is NotFound"
    );
    d.stop(id, Duration::from_secs(1)).await.expect("stop");
    d.remove(id).await.expect("remove");
}

/// On an exited task: symlinks resolve inside its root (one climbing past the root stops
/// there, an absolute one starts there), a path or an archive entry that would leave the root
/// or the directory is refused naming it (and nothing of it is written), and Docker's
/// `noOverwriteDirNonDir` keeps a directory from becoming a file.
pub async fn archive_stays_in_the_task<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let r = task(
        h,
        "archivejail",
        "echo inside > /inroot; ln -s ../../../../../.. /tmp/up; ln -s / /tmp/abs",
    );
    let id = &r.task_id;
    start(h, &d, &r).await;
    let exit = wait(h, &d, id).await;
    assert_eq!(
        exit.code,
        0,
        "{name}: the task's script: {:?}",
        output(h, &d, id).await
    );

    let (_, got) = get(h, &d, id, "/tmp/up/inroot").await;
    assert_eq!(
        got,
        vec![entry("inroot", 'f', 0o644, "inside\n")],
        "{name}: a symlink past the root stops at the task's root"
    );
    let up = stat(h, &d, id, "/tmp/up").await;
    assert!(
        up.is_symlink() && up.link_target == "/",
        "{name}: where the climbing symlink leads: {up:?}"
    );
    let abs = stat(h, &d, id, "/tmp/abs/inroot").await;
    assert_eq!(
        abs.size, 7,
        "{name}: an absolute symlink starts at the task's root"
    );
    put(h, &d, id, "/tmp/up", &[Item::File("viaup", 0o600, "x")]).await;
    assert_eq!(
        stat(h, &d, id, "/viaup").await.size,
        1,
        "{name}: putting through the climbing symlink lands in the task's root"
    );

    let outside = "/tmp/../../etc";
    for r in [
        d.path_stat(id, outside).await.map(|_| ()),
        d.archive_get(id, outside).await.map(|_| ()),
        d.archive_put(id, outside, archive_of(&[]), false).await,
    ] {
        assert!(
            matches!(&r, Err(RuntimeError::InvalidSpec { why, .. }) if why.contains(outside)),
            "{name}: a path out of the root is refused naming it: {r:?}"
        );
    }
    for (bad, shown, written) in [
        (Item::File("../evil", 0o644, "x"), "../evil", "/evil"),
        (
            Item::File("/abs-evil", 0o644, "x"),
            "/abs-evil",
            "/tmp/abs-evil",
        ),
        (Item::Link("esc", "../../x"), "esc", "/tmp/esc"),
    ] {
        let r = d
            .archive_put(id, "/tmp", archive_of(std::slice::from_ref(&bad)), false)
            .await;
        assert!(
            matches!(&r, Err(RuntimeError::InvalidSpec { why, .. }) if why.contains(shown)),
            "{name}: the archive entry {bad:?} is refused naming it: {r:?}"
        );
        for p in [written, "/abs-evil"] {
            let left = d.path_stat(id, p).await;
            assert!(
                is_path_not_found(&left, p),
                "{name}: nothing of {bad:?} is written ({p}: {left:?})"
            );
        }
    }

    put(
        h,
        &d,
        id,
        "/tmp",
        &[Item::Dir("d/", 0o755), Item::File("d/x", 0o644, "x")],
    )
    .await;
    let r = d
        .archive_put(
            id,
            "/tmp",
            archive_of(&[Item::File("d", 0o644, "file")]),
            true,
        )
        .await;
    assert!(
        matches!(&r, Err(RuntimeError::InvalidSpec { why, .. }) if why.contains("/tmp/d")),
        "{name}: with noOverwriteDirNonDir a directory does not become a file: {r:?}"
    );
    assert!(
        stat(h, &d, id, "/tmp/d").await.is_dir(),
        "{name}: still a directory"
    );
    put(h, &d, id, "/tmp", &[Item::File("d", 0o644, "file")]).await;
    let now = stat(h, &d, id, "/tmp/d").await;
    assert!(
        !now.is_dir() && now.size == 4,
        "{name}: without the flag the directory is replaced: {now:?}"
    );
    let not_dir = d
        .archive_put(
            id,
            "/tmp/d",
            archive_of(&[Item::File("f", 0o644, "x")]),
            false,
        )
        .await;
    assert!(
        matches!(&not_dir, Err(RuntimeError::InvalidSpec { .. })),
        "{name}: putting into a file is refused: {not_dir:?}"
    );
    d.remove(id).await.expect("remove");
}
