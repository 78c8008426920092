//! Starting the task's process, run inside the shim: resolve the executable, then fork a child
//! that sets itself up before exec — joins its cgroups, unshares its mount/UTS/IPC namespaces,
//! makes mounts private and mounts a fresh `/proc` (it is PID 1 of the PID namespace the shim
//! unshared), sets the hostname, drops to the task's user and changes to its working directory.
//!
//! The order matters: cgroups first so everything is accounted; mounts and hostname while still
//! root; the user last but one; `chdir` last so the directory is checked with the task's own
//! permissions. When a step fails the child writes which step to a close-on-exec pipe before
//! failing, so the error names the step and not just an errno.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::unistd::{AccessFlags, Gid, Uid, access, chdir, setgid, setgroups, sethostname, setuid};

use super::layout::ShimConfig;
use super::prepare::DEFAULT_PATH;

/// Finds the executable as `execvp` would, with the task's own PATH; errors are runc's and name
/// the executable.
pub(crate) fn resolve_program(argv0: &str, env: &[String], dir: &Path) -> Result<PathBuf, String> {
    let is_exec = |p: &Path| p.is_file() && access(p, AccessFlags::X_OK).is_ok();
    if argv0.contains('/') {
        let p = dir.join(argv0);
        return match std::fs::metadata(&p) {
            Err(e) => Err(format!("exec: \"{argv0}\": stat {argv0}: {}", lower_io(&e))),
            Ok(m) if m.is_dir() => Err(format!("exec: \"{argv0}\": is a directory")),
            Ok(_) if !is_exec(&p) => Err(format!("exec: \"{argv0}\": permission denied")),
            Ok(_) => Ok(p),
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|d| {
            if d.is_empty() {
                dir.to_path_buf()
            } else {
                Path::new(d).to_path_buf()
            }
        })
        .map(|d| d.join(argv0))
        .find(|p| is_exec(p))
        .ok_or_else(|| format!("exec: \"{argv0}\": executable file not found in $PATH"))
}

/// "No such file or directory" as Go prints it: lower case, no errno suffix.
fn lower_io(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = s.split(" (os error").next().unwrap_or(&s).to_string();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => s,
    }
}

fn cstring(s: impl AsRef<std::ffi::OsStr>, what: &str) -> Result<CString, String> {
    CString::new(s.as_ref().as_bytes()).map_err(|_| format!("{what} contains a NUL byte"))
}

/// The task's process's stdio: pipes the shim reads (and its stdin's, with `open_stdin`), or
/// with `tty` the slave of the terminal the shim holds, which becomes its controlling terminal.
pub(crate) enum TaskStdio {
    Pipes { stdin: Option<OwnedFd> },
    Terminal(OwnedFd),
}

/// Everything the child's setup needs, prepared before fork so the child only makes syscalls.
struct ChildSetup {
    /// Leads a session of its own with its stdin as controlling terminal.
    ctty: bool,
    cgroup_procs: Vec<File>,
    unshare: CloneFlags,
    private_mounts: bool,
    mount_proc: bool,
    hostname: Option<CString>,
    creds: Option<(Uid, Gid, Vec<Gid>)>,
    dir: CString,
    dir_label: Vec<u8>,
    step_w: OwnedFd,
}

impl ChildSetup {
    /// Runs in the forked child. Each failing step names itself on `step_w` first.
    fn run(&self) -> std::io::Result<()> {
        let fail = |label: &[u8], e: nix::Error| -> std::io::Error {
            let _ = nix::unistd::write(&self.step_w, label);
            std::io::Error::from(e)
        };
        if self.ctty {
            super::exec::take_terminal().inspect_err(|_| {
                let _ = nix::unistd::write(&self.step_w, b"taking the terminal");
            })?;
        }
        for f in &self.cgroup_procs {
            nix::unistd::write(f, b"0").map_err(|e| fail(b"joining the task's cgroup", e))?;
        }
        if !self.unshare.is_empty() {
            unshare(self.unshare).map_err(|e| fail(b"creating namespaces", e))?;
        }
        if self.private_mounts {
            let flags = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
            mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
                .map_err(|e| fail(b"making mounts private", e))?;
        }
        if self.mount_proc {
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            mount(Some("proc"), "/proc", Some("proc"), flags, None::<&str>)
                .map_err(|e| fail(b"mounting /proc", e))?;
        }
        if let Some(h) = &self.hostname {
            sethostname(std::ffi::OsStr::from_bytes(h.as_bytes()))
                .map_err(|e| fail(b"setting the hostname", e))?;
        }
        if let Some((uid, gid, groups)) = &self.creds {
            setgroups(groups).map_err(|e| fail(b"setting supplementary groups", e))?;
            setgid(*gid).map_err(|e| fail(b"setting the group", e))?;
            setuid(*uid).map_err(|e| fail(b"setting the user", e))?;
        }
        chdir(self.dir.as_c_str()).map_err(|e| fail(&self.dir_label, e))?;
        Ok(())
    }
}

/// Starts the task's process on `stdio` (without stdin: /dev/null). The returned error is the
/// message reported to the agent (it names the executable or the failing step).
pub(crate) fn spawn_task(cfg: &ShimConfig, stdio: TaskStdio) -> Result<Child, String> {
    let argv0 = cfg.argv.first().ok_or("the task has no command")?;
    let program = resolve_program(argv0, &cfg.env, &cfg.dir)?;

    let mut cgroup_procs = Vec::new();
    for p in &cfg.cgroup_procs {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(p)
            .map_err(|e| format!("opening {}: {e}", p.display()))?;
        cgroup_procs.push(f);
    }
    let ns = cfg.namespaces;
    let mut flags = CloneFlags::empty();
    flags.set(CloneFlags::CLONE_NEWNS, ns.mount);
    flags.set(CloneFlags::CLONE_NEWUTS, ns.uts);
    flags.set(CloneFlags::CLONE_NEWIPC, ns.ipc);
    let (step_r, step_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let setup = ChildSetup {
        ctty: matches!(stdio, TaskStdio::Terminal(_)),
        cgroup_procs,
        unshare: flags,
        private_mounts: ns.mount,
        // A fresh /proc only shows the task when it is in its own PID namespace, and may only
        // be mounted privately.
        mount_proc: ns.mount && ns.pid && ns.proc,
        hostname: if ns.uts {
            Some(cstring(&cfg.hostname, "hostname")?)
        } else {
            None
        },
        creds: cfg.creds.as_ref().map(|c| {
            (
                Uid::from_raw(c.uid),
                Gid::from_raw(c.gid),
                c.groups.iter().map(|g| Gid::from_raw(*g)).collect(),
            )
        }),
        dir: cstring(cfg.dir.as_os_str(), "dir")?,
        dir_label: format!("changing to working directory {}", cfg.dir.display()).into_bytes(),
        step_w,
    };

    let mut cmd = Command::new(&program);
    cmd.arg0(argv0)
        .args(&cfg.argv[1..])
        .env_clear()
        .envs(cfg.env.iter().filter_map(|kv| kv.split_once('=')));
    match stdio {
        TaskStdio::Pipes { stdin } => {
            cmd.stdin(stdin.map_or_else(Stdio::null, Stdio::from))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
        }
        TaskStdio::Terminal(slave) => {
            let dup = |s: &OwnedFd| {
                s.try_clone()
                    .map(Stdio::from)
                    .map_err(|e| format!("duplicating the terminal: {e}"))
            };
            cmd.stdin(dup(&slave)?)
                .stdout(dup(&slave)?)
                .stderr(Stdio::from(slave));
        }
    }
    install_setup(&mut cmd, setup);
    let spawned = cmd.spawn();
    // Drop the command (and the parent's copy of the step pipe's write end) before reading it.
    drop(cmd);
    spawned.map_err(|e| {
        let mut step = String::new();
        let _ = File::from(step_r).read_to_string(&mut step);
        if step.is_empty() {
            format!("exec: \"{argv0}\": {}", lower_io(&e))
        } else {
            format!("{step}: {}", lower_io(&e))
        }
    })
}

#[allow(unsafe_code)]
fn install_setup(cmd: &mut Command, setup: ChildSetup) {
    // SAFETY: the closure runs in the child between fork and exec. The shim that forks is
    // single-threaded (no async runtime, no helper threads), so no lock can be held by another
    // thread at fork time; and the closure only makes syscalls on values prepared before the
    // fork (open fds, CStrings, ids) without allocating.
    unsafe {
        cmd.pre_exec(move || setup.run());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_like_execvp_and_names_the_executable() {
        let env = vec!["PATH=/usr/bin:/bin".to_string()];
        let root = Path::new("/");
        let sh = resolve_program("sh", &env, root).expect("sh is on PATH");
        assert!(sh.ends_with("sh"), "{}", sh.display());
        assert_eq!(
            resolve_program("no-such-tool-xyz", &env, root),
            Err("exec: \"no-such-tool-xyz\": executable file not found in $PATH".into())
        );
        assert_eq!(
            resolve_program("/no/such/bin", &env, root),
            Err("exec: \"/no/such/bin\": stat /no/such/bin: no such file or directory".into())
        );
        assert_eq!(
            resolve_program("/etc", &env, root),
            Err("exec: \"/etc\": is a directory".into())
        );
        let tmp = tempfile::tempdir().expect("tempdir");
        let plain = tmp.path().join("plain");
        std::fs::write(&plain, b"not a program").expect("write");
        let plain = plain.to_string_lossy().into_owned();
        assert_eq!(
            resolve_program(&plain, &env, root),
            Err(format!("exec: \"{plain}\": permission denied"))
        );
        // No PATH in the task's env: Docker's default PATH applies.
        assert!(resolve_program("sh", &[], root).is_ok());
    }
}
