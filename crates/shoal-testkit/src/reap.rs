//! Leaving nothing of a test behind: the processes, Docker containers and volumes, mounts and
//! cgroups that a test's daemon or driver made, found by what they carry of the test (its data
//! dir in their command line or mount point, its cgroup parent in their cgroup path, its owner
//! label on the engine). Tasks are built to outlive their daemon (a shim survives a daemon crash
//! and `--live-restore` keeps them across a stop), so stopping a test daemon is not enough; call
//! [`reap`] from the Drop of whatever started it, which also runs when the test panics.
//!
//! Every function here is best effort and idempotent: it reports nothing and never panics, so a
//! Drop during unwinding cannot abort the test process. Names made by [`scoped_name`] carry the
//! run's ID (`SHOAL_TEST_RUN`, set by `tests/run`) so the test command can tell its own
//! leftovers from those of anything else on the machine.
// Cleanup waits on the kernel in wall-clock time; no logic under test reads it.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The Docker label that names the shoal daemon (its data dir) owning a container or volume.
pub const OWNER_LABEL: &str = "com.shoal.owner";
/// The variable that names this test run; it goes into every cgroup name a test makes.
pub const RUN_VAR: &str = "SHOAL_TEST_RUN";

/// This run's ID: `SHOAL_TEST_RUN`, or `local` when the tests run outside `tests/run`.
pub fn run_id() -> String {
    std::env::var(RUN_VAR)
        .ok()
        .filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .unwrap_or_else(|| "local".into())
}

/// A name for what a test makes on the machine (a cgroup parent, a Docker owner label):
/// `shoal-test-<run>-<kind>-<unique>`, one path segment. Every such name starts
/// `shoal-test-<run>-`, which is how `tests/run` finds the leftovers of its own run.
pub fn scoped_name(kind: &str, unique: &str) -> String {
    let unique: String = unique
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("shoal-test-{}-{kind}-{unique}", run_id())
}

/// Everything a test daemon on `data_dir` made, under cgroup parent `cgroup_parent`: its
/// processes (the daemon too, if still alive), Docker containers and volumes labelled with it as
/// owner, mounts under the dir, and the cgroups. The dir itself is left for its `TempDir`.
pub fn reap(data_dir: &Path, cgroup_parent: &str) {
    kill_processes_of(data_dir, &[cgroup_parent]);
    remove_docker_objects(&owner_of(data_dir));
    unmount_under(data_dir);
    unmount_files_of(data_dir);
    remove_cgroup_tree(cgroup_parent);
}

/// Where drivers mount tasks' secret and config files (`shoal_runtime::files::FILES_ROOT`),
/// one directory per task named after the daemon's data dir with `/` as `_`.
const FILES_ROOT: &str = "/run/shoal/files";

/// Detaches the secret and config tmpfs mounts of the tasks of a daemon on `data_dir`, and
/// removes their directories.
pub fn unmount_files_of(data_dir: &Path) {
    let flat = |p: &Path| {
        p.to_string_lossy()
            .trim_start_matches('/')
            .replace('/', "_")
    };
    let mut prefixes = vec![flat(data_dir)];
    if let Ok(c) = data_dir.canonicalize() {
        prefixes.push(flat(&c));
    }
    let Ok(entries) = std::fs::read_dir(FILES_ROOT) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        if prefixes
            .iter()
            .any(|p| !p.is_empty() && name.starts_with(&format!("{p}_")))
        {
            let _ = nix::mount::umount2(&e.path(), nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The owner label value a daemon on `data_dir` uses (its canonical path).
pub fn owner_of(data_dir: &Path) -> String {
    data_dir
        .canonicalize()
        .unwrap_or_else(|_| data_dir.to_path_buf())
        .display()
        .to_string()
}

/// SIGKILLs every process whose command line mentions `dir` (a shim's task dir, a daemon's
/// `--data-dir`) or whose cgroup path passes through one of `cgroup_parents` (the tasks), and
/// waits up to 10s for them to go.
pub fn kill_processes_of(dir: &Path, cgroup_parents: &[&str]) {
    let dir = dir.to_string_lossy().into_owned();
    let canonical = owner_of(Path::new(&dir));
    let me = std::process::id() as i32;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids: Vec<i32> = all_pids()
            .into_iter()
            .filter(|p| *p != me)
            .filter(|p| {
                let by_dir = !dir.is_empty()
                    && cmdline(*p)
                        .iter()
                        .any(|a| names_dir(a, &dir) || names_dir(a, &canonical));
                by_dir || in_cgroups(*p, cgroup_parents)
            })
            .collect();
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        for p in pids {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a command-line argument names `dir` or a path under it (`/d`, `--data-dir=/d`,
/// `unix:///d/shoal.sock`), and not merely a sibling that shares its prefix (`/d2`).
fn names_dir(arg: &str, dir: &str) -> bool {
    arg.ends_with(dir) || arg.contains(&format!("{dir}/"))
}

/// Removes (force) the containers and volumes labelled `com.shoal.owner=<owner>`, when a Docker
/// Engine is there to ask.
pub fn remove_docker_objects(owner: &str) {
    if owner.is_empty() || !docker_reachable() {
        return;
    }
    let filter = format!("label={OWNER_LABEL}={owner}");
    let ids = lines(&["ps", "-aq", "--filter", &filter]);
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(ids.iter().map(String::as_str));
        let _ = docker(&args);
    }
    let vols = lines(&["volume", "ls", "-q", "--filter", &filter]);
    if !vols.is_empty() {
        let mut args = vec!["volume", "rm", "-f"];
        args.extend(vols.iter().map(String::as_str));
        let _ = docker(&args);
    }
}

/// Detaches every mount at or under `dir` in this mount namespace, deepest first.
pub fn unmount_under(dir: &Path) {
    let mut roots = vec![dir.to_path_buf()];
    if let Ok(c) = dir.canonicalize()
        && c != dir
    {
        roots.push(c);
    }
    let mut points: Vec<PathBuf> = mount_points()
        .into_iter()
        .filter(|m| roots.iter().any(|r| m.starts_with(r)))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Kills what is left in `<hierarchy>/<name>` and its descendants, in every cgroup hierarchy
/// (v1 and v2), and removes them, deepest first, retrying while the kernel lets go.
pub fn remove_cgroup_tree(name: &str) {
    if name.is_empty() || name.contains("..") {
        return;
    }
    for root in cgroup_roots() {
        let top = root.join(name.trim_start_matches('/'));
        if top.is_dir() {
            remove_cgroup_dir(&top);
        }
    }
}

fn remove_cgroup_dir(dir: &Path) {
    if let Ok(children) = std::fs::read_dir(dir) {
        for c in children.filter_map(Result::ok) {
            if c.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_dir(&c.path());
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `/sys/fs/cgroup` itself (v2, or the v2 part of a hybrid) and each v1 hierarchy under it.
pub fn cgroup_roots() -> Vec<PathBuf> {
    let base = PathBuf::from("/sys/fs/cgroup");
    let mut roots = vec![base.clone()];
    if let Ok(d) = std::fs::read_dir(&base) {
        roots.extend(
            d.filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path()),
        );
    }
    roots
}

fn in_cgroups(pid: i32, parents: &[&str]) -> bool {
    let parents: Vec<&str> = parents
        .iter()
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
        .collect();
    if parents.is_empty() {
        return false;
    }
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return false;
    };
    // Lines are `N:controllers:/path`; the parent is a prefix of the task cgroup's path.
    s.lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .any(|path| {
            let path = path.trim_start_matches('/');
            parents
                .iter()
                .any(|p| path == *p || path.starts_with(&format!("{p}/")))
        })
}

fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            c.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Mount points of this mount namespace (field 5 of mountinfo, octal escapes undone).
fn mount_points() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|s| {
            s.lines()
                .filter_map(|l| l.split(' ').nth(4))
                .map(|m| PathBuf::from(unescape(m)))
                .collect()
        })
        .unwrap_or_default()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn docker_reachable() -> bool {
    crate::need::find_tool("docker").is_some()
        && (std::env::var_os("DOCKER_HOST").is_some() || Path::new("/var/run/docker.sock").exists())
}

fn docker(args: &[&str]) -> Option<String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn lines(args: &[&str]) -> Vec<String> {
    docker(args)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_names_carry_the_run_and_stay_one_path_segment() {
        let n = scoped_name("it", ".tmp/Ab..c");
        assert!(
            n.starts_with(&format!("shoal-test-{}-it-", run_id())),
            "{n}"
        );
        assert!(!n.contains('/') && !n.contains('.'), "{n}");
    }

    #[test]
    fn a_dir_is_named_by_itself_and_its_paths_not_by_siblings() {
        assert!(names_dir("/tmp/d", "/tmp/d"));
        assert!(names_dir("--data-dir=/tmp/d", "/tmp/d"));
        assert!(names_dir("unix:///tmp/d/shoal.sock", "/tmp/d"));
        assert!(!names_dir("/tmp/d2/native/t1", "/tmp/d"));
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape(r"/tmp/x\"), r"/tmp/x\");
        assert_eq!(unescape("/plain"), "/plain");
    }

    #[test]
    fn a_child_naming_the_dir_is_killed() {
        let dir = std::env::temp_dir().join(format!("shoal-testkit-reap-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let log = dir.join("log");
        let _ = std::fs::write(&log, "");
        // `tail -f <dir>/log` runs until killed, with the dir in its command line as a shim has.
        let mut child = match Command::new("tail")
            .arg("-f")
            .arg(&log)
            .stdout(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => panic!("spawn sh: {e}"),
        };
        // Right after the fork the child still carries this test's command line: reap only once
        // it has exec'd `tail` (as a shim has long since when a test ends), else it is not ours
        // to find and the wait below would never end.
        let cmdline = format!("/proc/{}/cmdline", child.id());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !std::fs::read(&cmdline)
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&*dir.to_string_lossy()))
        {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("the child never showed the dir in its command line");
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        kill_processes_of(&dir, &[]);
        let status = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        match status {
            Ok(s) => assert!(!s.success(), "the child was not killed: {s:?}"),
            Err(e) => panic!("wait: {e}"),
        }
    }
}
