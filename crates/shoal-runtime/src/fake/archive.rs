//! The fake's file archives (`docker cp`). A task's filesystem is what its shell wrote (files
//! of its own, its volumes', its binds'), plus what this module keeps of it in `Task::meta`:
//! modes, times and owners, directories of their own (empty ones included) and symlinks. The
//! image's usual directories exist from `prepare` on ([`IMAGE_DIRS`]), a mount target is a
//! directory, and so is every parent of something.
//!
//! Every call builds that view of the task's files once ([`FakeDriver::view`]) and resolves paths
//! in it as a chrooted process would ([`resolve`]): symlinks followed, `..` stopping at the root.

use std::collections::BTreeMap;
use std::io::Read;

use bytes::Bytes;
use futures::StreamExt;
use shoal_types::{Id, Timestamp};

use super::proc::Place;
use super::{FakeDriver, Inner, Node};
use crate::RuntimeError;
use crate::archive::{
    ArchiveStream, MODE_DIR, MODE_SYMLINK, PathStat, base_name, check_symlink_target, clean_path,
    entry_components,
};

/// The directories every task's root has from the start, as an image's do.
pub(super) const IMAGE_DIRS: &[&str] = &["/bin", "/dev", "/etc", "/proc", "/run", "/sys", "/tmp"];

/// How many symlinks one resolution follows before it gives up, as Linux's limit.
const MAX_LINKS: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    File,
    Dir,
    Symlink(String),
}

/// What the fake keeps of a path beside a file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Meta {
    pub kind: Kind,
    /// Permission bits (with setuid, setgid and sticky).
    pub mode: u32,
    pub mtime: Timestamp,
    pub uid: u64,
    pub gid: u64,
}

impl Meta {
    pub(super) fn dir(mode: u32, mtime: Timestamp) -> Meta {
        Meta {
            kind: Kind::Dir,
            mode,
            mtime,
            uid: 0,
            gid: 0,
        }
    }

    pub(super) fn file(mode: u32, mtime: Timestamp) -> Meta {
        Meta {
            kind: Kind::File,
            ..Meta::dir(mode, mtime)
        }
    }
}

/// One path of the view: its metadata and, for a file, its content.
#[derive(Debug, Clone)]
struct Entry {
    meta: Meta,
    data: Bytes,
}

type View = BTreeMap<String, Entry>;

fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// `path` (absolute, clean) resolved in the view's root: symlinks followed (the last one only
/// with `follow_last`), `..` stopping at the root. `None` past [`MAX_LINKS`] symlinks.
fn resolve(view: &View, path: &str, follow_last: bool) -> Option<String> {
    let mut done: Vec<String> = Vec::new();
    let mut todo: std::collections::VecDeque<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        match c.as_str() {
            "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        done.push(c);
        let here = format!("/{}", done.join("/"));
        if let Some(Entry {
            meta:
                Meta {
                    kind: Kind::Symlink(target),
                    ..
                },
            ..
        }) = view.get(&here)
            && (follow_last || !todo.is_empty())
        {
            links += 1;
            if links > MAX_LINKS {
                return None;
            }
            done.pop();
            if target.starts_with('/') {
                done.clear();
            }
            for part in target.split('/').filter(|p| !p.is_empty()).rev() {
                todo.push_front(part.to_string());
            }
        }
    }
    Some(format!("/{}", done.join("/")))
}

fn not_found(path: &str) -> RuntimeError {
    RuntimeError::PathNotFound {
        path: path.to_string(),
    }
}

fn stat_of(view: &View, clean: &str, e: &Entry) -> PathStat {
    let (mode, link_target) = match &e.meta.kind {
        Kind::Dir => (MODE_DIR | e.meta.mode, String::new()),
        Kind::File => (e.meta.mode, String::new()),
        Kind::Symlink(_) => (
            MODE_SYMLINK | 0o777,
            resolve(view, clean, true).unwrap_or_default(),
        ),
    };
    PathStat {
        name: base_name(clean),
        size: match &e.meta.kind {
            Kind::File => e.data.len() as i64,
            Kind::Dir => 4096,
            Kind::Symlink(t) => t.len() as i64,
        },
        mode,
        mtime: e.meta.mtime,
        link_target,
    }
}

impl Node {
    /// The task's whole filesystem as its processes see it.
    fn view_of(g: &Inner, task: &Id) -> Option<View> {
        let t = g.tasks.get(task)?;
        let mut view = View::new();
        let dir = |mode| Entry {
            meta: Meta::dir(mode, Timestamp::ZERO),
            data: Bytes::new(),
        };
        view.insert("/".into(), dir(0o755));
        let mut files: Vec<(String, Bytes)> = t
            .files
            .iter()
            .map(|(p, b)| (p.clone(), b.clone()))
            .collect();
        if let Some(run) = &t.run {
            for m in &run.container.mounts {
                let target = m.target.trim_end_matches('/').to_string();
                if target.is_empty() {
                    continue;
                }
                view.insert(target.clone(), dir(0o755));
                let (source, prefix) = match t.place(&target).0 {
                    Place::Volume(v, _) => match g.volumes.get(&v) {
                        Some(vol) => (&vol.files, String::new()),
                        None => continue,
                    },
                    Place::Host(p) => (&g.host_files, p),
                    Place::Task(_) => continue,
                };
                for (p, b) in source {
                    if let Some(rest) = p.strip_prefix(&prefix)
                        && (rest.starts_with('/') || prefix.is_empty())
                    {
                        let rest = rest.trim_start_matches('/');
                        files.push((join(&target, rest), b.clone()));
                    }
                }
            }
        }
        for (p, data) in files {
            let meta = match t.meta.get(&p) {
                Some(m) if m.kind == Kind::File => m.clone(),
                _ => Meta::file(0o644, Timestamp::ZERO),
            };
            view.insert(p, Entry { meta, data });
        }
        for (p, m) in &t.meta {
            if m.kind != Kind::File {
                view.insert(
                    p.clone(),
                    Entry {
                        meta: m.clone(),
                        data: Bytes::new(),
                    },
                );
            }
        }
        // Every parent of something is a directory.
        let paths: Vec<String> = view.keys().cloned().collect();
        for p in paths {
            let mut at = parent_of(&p);
            while at != "/" && !view.contains_key(at) {
                view.insert(at.to_string(), dir(0o755));
                at = parent_of(at);
            }
        }
        Some(view)
    }
}

impl FakeDriver {
    fn view(&self, task_id: &Id) -> Result<View, RuntimeError> {
        Node::view_of(&self.lock(), task_id).ok_or_else(|| RuntimeError::NotFound(task_id.clone()))
    }

    /// The view, the cleaned path, and where it resolves (not following its last component).
    fn locate(&self, task_id: &Id, path: &str) -> Result<(View, String, String), RuntimeError> {
        let view = self.view(task_id)?;
        let clean = clean_path(path)?;
        let at = resolve(&view, &clean, false).ok_or_else(|| not_found(path))?;
        Ok((view, clean, at))
    }

    pub(super) fn stat_path(&self, task_id: &Id, path: &str) -> Result<PathStat, RuntimeError> {
        let (view, clean, at) = self.locate(task_id, path)?;
        let e = view.get(&at).ok_or_else(|| not_found(path))?;
        Ok(stat_of(&view, &clean, e))
    }

    pub(super) fn get_archive(
        &self,
        task_id: &Id,
        path: &str,
    ) -> Result<(PathStat, ArchiveStream), RuntimeError> {
        let (view, clean, at) = self.locate(task_id, path)?;
        let e = view.get(&at).ok_or_else(|| not_found(path))?;
        let stat = stat_of(&view, &clean, e);
        // The root's entries are `./…` (Docker writes `/…`, which tar writers refuse).
        let base = if stat.name == "/" {
            ".".to_string()
        } else {
            stat.name.clone()
        };
        let mut b = tar::Builder::new(Vec::new());
        let failed = |e: std::io::Error| RuntimeError::failed("writing the archive", e);
        let below = format!("{}/", at.trim_end_matches('/'));
        let all = std::iter::once((at.as_str(), e)).chain(
            view.range(below.clone()..)
                .take_while(|(p, _)| p.starts_with(&below))
                .filter(|_| matches!(e.meta.kind, Kind::Dir))
                .map(|(p, e)| (p.as_str(), e)),
        );
        for (p, e) in all {
            let name = match p.strip_prefix(&below) {
                Some(rest) => format!("{base}/{rest}"),
                None => base.clone(),
            };
            let mut h = tar::Header::new_gnu();
            h.set_mode(e.meta.mode);
            h.set_uid(e.meta.uid);
            h.set_gid(e.meta.gid);
            h.set_mtime(u64::try_from(e.meta.mtime.unix_nanos() / 1_000_000_000).unwrap_or(0));
            match &e.meta.kind {
                Kind::File => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(e.data.len() as u64);
                    b.append_data(&mut h, &name, &e.data[..]).map_err(failed)?;
                }
                Kind::Dir => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    b.append_data(&mut h, format!("{name}/"), std::io::empty())
                        .map_err(failed)?;
                }
                Kind::Symlink(target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, &name, target).map_err(failed)?;
                }
            }
        }
        let bytes = b.into_inner().map_err(failed)?;
        let stream = futures::stream::iter([Ok(Bytes::from(bytes))]).boxed();
        Ok((stat, stream))
    }

    pub(super) async fn put_archive(
        &self,
        task_id: &Id,
        dir: &str,
        mut archive: ArchiveStream,
        no_overwrite_dir_non_dir: bool,
    ) -> Result<(), RuntimeError> {
        let view = self.view(task_id)?;
        let clean = clean_path(dir)?;
        let at = resolve(&view, &clean, true).ok_or_else(|| not_found(dir))?;
        match view.get(&at).map(|e| &e.meta.kind) {
            None => return Err(not_found(dir)),
            Some(Kind::Dir) => {}
            Some(_) => {
                return Err(RuntimeError::InvalidSpec {
                    field: "path",
                    why: format!("extraction point {dir} is not a directory"),
                });
            }
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = archive.next().await {
            bytes.extend_from_slice(&chunk?);
        }
        let unreadable = |e: std::io::Error| RuntimeError::InvalidSpec {
            field: "archive",
            why: format!("not a readable tar archive: {e}"),
        };
        let now = self.node.now();
        let mut a = tar::Archive::new(&bytes[..]);
        for entry in a.entries().map_err(unreadable)? {
            let mut entry = entry.map_err(unreadable)?;
            let name = entry.path().map_err(unreadable)?.into_owned();
            let parts = entry_components(&name)?;
            let Some((last, parents)) = parts.split_last() else {
                continue;
            };
            let h = entry.header().clone();
            let kind = h.entry_type();
            let meta = |kind| Meta {
                kind,
                mode: h.mode().unwrap_or(0o644) & 0o7777,
                mtime: Timestamp::from_unix_nanos(
                    i64::try_from(h.mtime().unwrap_or(0))
                        .unwrap_or(0)
                        .saturating_mul(1_000_000_000),
                ),
                uid: h.uid().unwrap_or(0),
                gid: h.gid().unwrap_or(0),
            };
            let (new, data) = if kind.is_dir() {
                (meta(Kind::Dir), Bytes::new())
            } else if kind.is_symlink() {
                let target = entry
                    .link_name()
                    .map_err(unreadable)?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                check_symlink_target(&parts, std::path::Path::new(&target))?;
                (meta(Kind::Symlink(target)), Bytes::new())
            } else if kind.is_hard_link() {
                let target = entry.link_name().map_err(unreadable)?.unwrap_or_default();
                let from = join(&at, &entry_components(&target)?.join("/"));
                let view = self.view(task_id)?;
                let data = resolve(&view, &from, false)
                    .and_then(|p| view.get(&p).map(|e| e.data.clone()))
                    .ok_or_else(|| not_found(&target.display().to_string()))?;
                (meta(Kind::File), data)
            } else if kind.is_file() || kind == tar::EntryType::Continuous {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).map_err(unreadable)?;
                (meta(Kind::File), Bytes::from(data))
            } else {
                return Err(RuntimeError::InvalidSpec {
                    field: "archive",
                    why: format!(
                        "the archive entry {} is a device or a pipe, which this runtime does not make",
                        name.display()
                    ),
                });
            };
            self.put_entry(
                task_id,
                &at,
                parents,
                last,
                new,
                data,
                now,
                no_overwrite_dir_non_dir,
            )?;
        }
        Ok(())
    }

    /// Puts one entry at `dir`/`parents`/`last` (its parents resolved, and made where missing).
    #[allow(clippy::too_many_arguments)]
    fn put_entry(
        &self,
        task_id: &Id,
        dir: &str,
        parents: &[String],
        last: &str,
        new: Meta,
        data: Bytes,
        now: Timestamp,
        no_overwrite: bool,
    ) -> Result<(), RuntimeError> {
        let view = self.view(task_id)?;
        let mut parent = dir.to_string();
        for p in parents {
            let next = resolve(&view, &join(&parent, p), true)
                .ok_or_else(|| not_found(&join(&parent, p)))?;
            match view.get(&next).map(|e| &e.meta.kind) {
                Some(Kind::Dir) => {}
                None => self.set_meta(task_id, &next, Some(Meta::dir(0o755, now))),
                Some(_) => {
                    return Err(RuntimeError::InvalidSpec {
                        field: "archive",
                        why: format!("{next} is not a directory"),
                    });
                }
            }
            parent = next;
        }
        let target = join(&parent, last);
        let old = view.get(&target).map(|e| e.meta.kind.clone());
        let new_is_dir = new.kind == Kind::Dir;
        match old {
            Some(Kind::Dir) if new_is_dir => {}
            Some(Kind::Dir) => {
                if no_overwrite {
                    return Err(RuntimeError::InvalidSpec {
                        field: "noOverwriteDirNonDir",
                        why: format!("cannot overwrite directory {target} with non-directory"),
                    });
                }
                let below = format!("{target}/");
                for p in view.keys().filter(|p| p.starts_with(&below)) {
                    self.node.remove_file(task_id, p);
                    self.set_meta(task_id, p, None);
                }
                self.set_meta(task_id, &target, None);
            }
            Some(_) if new_is_dir && no_overwrite => {
                return Err(RuntimeError::InvalidSpec {
                    field: "noOverwriteDirNonDir",
                    why: format!("cannot overwrite non-directory {target} with directory"),
                });
            }
            Some(_) => {
                self.node.remove_file(task_id, &target);
                self.set_meta(task_id, &target, None);
            }
            None => {}
        }
        if new.kind == Kind::File {
            self.node
                .write_file(task_id, &target, &data, false)
                .map_err(|why| RuntimeError::Io {
                    context: format!("extracting {target}"),
                    source: std::io::Error::other(why),
                })?;
        }
        self.set_meta(task_id, &target, Some(new));
        Ok(())
    }

    fn set_meta(&self, task_id: &Id, path: &str, meta: Option<Meta>) {
        if let Some(t) = self.lock().tasks.get_mut(task_id) {
            match meta {
                Some(m) => t.meta.insert(path.to_string(), m),
                None => t.meta.remove(path),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_stays_in_the_root() {
        let mut view = View::new();
        let link = |t: &str| Entry {
            meta: Meta {
                kind: Kind::Symlink(t.into()),
                ..Meta::file(0o777, Timestamp::ZERO)
            },
            data: Bytes::new(),
        };
        view.insert("/tmp/up".into(), link("../../../.."));
        view.insert("/tmp/abs".into(), link("/etc"));
        view.insert("/loop".into(), link("/loop"));
        assert_eq!(resolve(&view, "/tmp/up/x", true).as_deref(), Some("/x"));
        assert_eq!(
            resolve(&view, "/tmp/abs/x", true).as_deref(),
            Some("/etc/x")
        );
        assert_eq!(
            resolve(&view, "/tmp/abs", false).as_deref(),
            Some("/tmp/abs")
        );
        assert_eq!(resolve(&view, "/tmp/abs", true).as_deref(), Some("/etc"));
        assert_eq!(resolve(&view, "/loop/x", true), None);
    }
}
