//! Exec into a running native task (`docker exec`). An image task's process is started by the
//! OCI runtime (`<runtime> exec --process FILE ID`: the bundle's process with the exec's argv,
//! environment, directory and user), which joins the container's namespaces and cgroup itself.
//! A `host` task's process is spawned here, joining the task's cgroups and namespaces through a
//! pidfd of its process before exec, as the health checker does.
//!
//! With a TTY the daemon opens a pseudo-terminal and gives its slave to the child as stdio and
//! controlling terminal: a `host` task's process uses it directly; runc and crun, run in the
//! foreground, put the container's own terminal in raw relay with it and follow its size
//! (SIGWINCH), so a resize is a `TIOCSWINSZ` on the master here. Without a TTY the child's
//! stdout and stderr are separate pipes.
//!
//! The child is this daemon's: its exit status (the OCI runtime passes the process's through,
//! 128+N for a signal) is the exec's exit code. Files of one exec (`exec-N.json`, `exec-N.pid`)
//! live in the task's directory and go when it exits, or with the task.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use shoal_runtime::exec::{ExecHandle, ExecOutput, ExecProcess, ExecSpec};
use shoal_runtime::{LogStreamKind, RuntimeError, RuntimeTaskState};
use shoal_types::Id;
use tokio::io::AsyncReadExt;

use super::layout::{self, Creds, ShimConfig, TaskDir};
use super::{NativeDriver, io, proc, rootfs, user};

static NEXT: AtomicU64 = AtomicU64::new(1);

fn invalid(field: &'static str, why: impl Into<String>) -> RuntimeError {
    RuntimeError::InvalidSpec {
        field,
        why: why.into(),
    }
}

/// `base` with `extra`'s `K=V` pairs overriding same-named ones.
pub(crate) fn merge_env(base: &[String], extra: &[String]) -> Vec<String> {
    let key = |kv: &str| kv.split_once('=').map_or(kv, |(k, _)| k).to_string();
    let mut out: Vec<String> = base
        .iter()
        .filter(|kv| !extra.iter().any(|e| key(e) == key(kv)))
        .cloned()
        .collect();
    out.extend(extra.iter().cloned());
    out
}

impl NativeDriver {
    pub(crate) async fn exec_in(
        &self,
        task_id: &Id,
        spec: ExecSpec,
    ) -> Result<ExecProcess, RuntimeError> {
        if spec.cmd.is_empty() {
            return Err(invalid("Cmd", "no command to run"));
        }
        let dir = TaskDir::new(&self.cfg.root, task_id.as_str());
        if !dir.exists() {
            return Err(RuntimeError::NotFound(task_id.clone()));
        }
        if !matches!(self.observe(&dir)?, RuntimeTaskState::Running { .. }) {
            return Err(RuntimeError::NotRunning(task_id.clone()));
        }
        let ctx = |e| io(format!("reading {}", dir.path().display()), e);
        let cfg = dir
            .config()
            .map_err(ctx)?
            .ok_or_else(|| RuntimeError::NotFound(task_id.clone()))?;
        let running = dir
            .running()
            .map_err(ctx)?
            .ok_or_else(|| RuntimeError::NotRunning(task_id.clone()))?;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nonce = format!("{}-{n}", std::process::id());
        let pty = if spec.tty {
            Some(Pty::open(spec.size)?)
        } else {
            None
        };
        let (mut cmd, pid_file, files) = match &cfg.oci {
            Some(oci) => {
                let process = oci_process(&dir, &cfg, &spec)?;
                let file = dir.file(&format!("exec-{nonce}.json"));
                let pid_file = dir.file(&format!("exec-{nonce}.pid"));
                layout::write_json_atomic(&file, &process)
                    .map_err(|e| io("writing the exec's process", e))?;
                let mut c = std::process::Command::new(&oci.runtime);
                c.arg("--root")
                    .arg(&oci.state_root)
                    .arg("exec")
                    .arg("--process")
                    .arg(&file)
                    .arg("--pid-file")
                    .arg(&pid_file)
                    .arg(&oci.container_id);
                (c, Some(pid_file.clone()), vec![file, pid_file])
            }
            None => {
                let creds = if spec.user.is_empty() {
                    cfg.creds.clone()
                } else {
                    Some(user::resolve_host(&spec.user, &[]).map_err(|e| invalid("User", e))?)
                };
                let dir_override = (!spec.workdir.is_empty()).then(|| PathBuf::from(&spec.workdir));
                let c = enter_task(
                    running.pid,
                    running.start_time,
                    &cfg,
                    &spec.cmd,
                    &merge_env(&cfg.env, &spec.env),
                    dir_override.as_deref().unwrap_or(&cfg.dir),
                    creds.as_ref(),
                    spec.tty,
                )
                .map_err(RuntimeError::StartFailed)?;
                (c, None, Vec::new())
            }
        };
        match &pty {
            Some(p) => {
                let (i, o, e) = p.slave_stdio()?;
                cmd.stdin(i).stdout(o).stderr(e);
                if cfg.oci.is_some() {
                    // runc and crun follow their controlling terminal's size.
                    set_controlling_tty(&mut cmd);
                }
            }
            None => {
                cmd.stdin(if spec.stdin {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            }
        }
        let mut child = tokio::process::Command::from(cmd)
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| {
                for f in &files {
                    let _ = std::fs::remove_file(f);
                }
                RuntimeError::StartFailed(format!("running {}: {e}", spec.cmd[0]))
            })?;
        let child_pid = child.id().map_or(0, i64::from);
        let (input, output, master) = match pty {
            Some(p) => {
                // The parent's copy of the slave must go, so the master reads EOF (EIO) once
                // the process and its children have closed theirs.
                let master = p.master;
                drop(p.slave);
                let read = std::fs::File::from(
                    master
                        .try_clone()
                        .map_err(|e| io("duplicating the terminal", e))?,
                );
                let write = std::fs::File::from(
                    master
                        .try_clone()
                        .map_err(|e| io("duplicating the terminal", e))?,
                );
                let input: Option<shoal_runtime::exec::ExecInput> = if spec.stdin {
                    Some(Box::pin(tokio::fs::File::from_std(write)))
                } else {
                    None
                };
                (
                    input,
                    reader_stream(tokio::fs::File::from_std(read), LogStreamKind::Stdout),
                    Some(master),
                )
            }
            None => {
                let input: Option<shoal_runtime::exec::ExecInput> = child
                    .stdin
                    .take()
                    .map(|s| Box::pin(s) as shoal_runtime::exec::ExecInput);
                let out = child
                    .stdout
                    .take()
                    .map(|s| reader_stream(s, LogStreamKind::Stdout));
                let err = child
                    .stderr
                    .take()
                    .map(|s| reader_stream(s, LogStreamKind::Stderr));
                let merged: ExecOutput = match (out, err) {
                    (Some(o), Some(e)) => futures::stream::select(o, e).boxed(),
                    (Some(o), None) => o,
                    (None, Some(e)) => e,
                    (None, None) => futures::stream::empty().boxed(),
                };
                (input, merged, None)
            }
        };
        let handle = Arc::new(NativeExec {
            child: tokio::sync::Mutex::new(Some(child)),
            exit: std::sync::OnceLock::new(),
            child_pid,
            pid_file,
            files,
            master,
        });
        Ok(ExecProcess {
            input,
            output,
            handle,
        })
    }
}

/// The bundle's process with the exec's argv, environment, directory, user and terminal.
fn oci_process(
    dir: &TaskDir,
    cfg: &ShimConfig,
    spec: &ExecSpec,
) -> Result<oci_spec::runtime::Process, RuntimeError> {
    let bundle: oci_spec::runtime::Spec =
        layout::read_json(&dir.file(layout::BUNDLE).join("config.json"))
            .map_err(|e| io("reading the task's bundle", e))?
            .ok_or_else(|| {
                io(
                    "reading the task's bundle",
                    std::io::Error::other("it is missing"),
                )
            })?;
    let mut p = bundle.process().clone().unwrap_or_default();
    p.set_args(Some(spec.cmd.clone()));
    p.set_env(Some(merge_env(
        p.env().as_deref().unwrap_or(&cfg.env),
        &spec.env,
    )));
    if !spec.workdir.is_empty() {
        if !spec.workdir.starts_with('/') {
            return Err(invalid(
                "WorkingDir",
                format!("{:?} is not an absolute path", spec.workdir),
            ));
        }
        p.set_cwd(PathBuf::from(&spec.workdir));
    }
    if !spec.user.is_empty() {
        let root = dir.file(layout::ROOTFS);
        let read =
            |f: &str| std::fs::read_to_string(rootfs::secure_join(&root, f)).unwrap_or_default();
        let Creds { uid, gid, groups } =
            user::resolve(&spec.user, &[], &read("/etc/passwd"), &read("/etc/group"))
                .map_err(|e| invalid("User", e))?;
        let mut u = oci_spec::runtime::User::default();
        u.set_uid(uid);
        u.set_gid(gid);
        u.set_additional_gids(Some(groups));
        p.set_user(u);
    }
    p.set_terminal(Some(spec.tty));
    if let (true, Some((rows, cols))) = (spec.tty, spec.size) {
        let b = oci_spec::runtime::BoxBuilder::default()
            .height(u64::from(rows))
            .width(u64::from(cols))
            .build()
            .map_err(|e| invalid("ConsoleSize", e.to_string()))?;
        p.set_console_size(Some(b));
    }
    Ok(p)
}

/// A command that runs `argv` inside a `host` task: in the task's cgroups and (through a pidfd
/// of its process) its mount, UTS, IPC, PID and network namespaces, as `creds`, in `dir`. With
/// `ctty` it leads a new session whose controlling terminal is its stdin.
#[allow(clippy::too_many_arguments)]
pub(crate) fn enter_task(
    pid: i32,
    start: u64,
    cfg: &ShimConfig,
    argv: &[String],
    env: &[String],
    dir: &Path,
    creds: Option<&Creds>,
    ctty: bool,
) -> Result<std::process::Command, String> {
    let (program, args) = argv.split_first().ok_or("no command to run")?;
    let pidfd = proc::PidFd::open_verified(pid, start)
        .map_err(|e| format!("opening the task's process: {e}"))?
        .ok_or("the task's process is gone")?;
    let mut procs = Vec::new();
    for p in &cfg.cgroup_procs {
        procs.push(
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .map_err(|e| format!("opening {}: {e}", p.display()))?,
        );
    }
    let ns = cfg.namespaces;
    let mut flags = nix::sched::CloneFlags::empty();
    flags.set(nix::sched::CloneFlags::CLONE_NEWNS, ns.mount);
    flags.set(nix::sched::CloneFlags::CLONE_NEWUTS, ns.uts);
    flags.set(nix::sched::CloneFlags::CLONE_NEWIPC, ns.ipc);
    flags.set(nix::sched::CloneFlags::CLONE_NEWPID, ns.pid);
    flags.set(nix::sched::CloneFlags::CLONE_NEWNET, cfg.netns.is_some());
    let creds = creds.map(|c| {
        (
            nix::unistd::Uid::from_raw(c.uid),
            nix::unistd::Gid::from_raw(c.gid),
            c.groups
                .iter()
                .map(|g| nix::unistd::Gid::from_raw(*g))
                .collect::<Vec<_>>(),
        )
    });
    let dir = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| "the working directory contains a NUL byte")?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().filter_map(|kv| kv.split_once('=')));
    if !ctty {
        cmd.process_group(0);
    }
    let setup = move || -> std::io::Result<()> {
        if ctty {
            take_terminal()?;
        }
        for f in &procs {
            nix::unistd::write(f, b"0")?;
        }
        if !flags.is_empty() {
            nix::sched::setns(pidfd.raw(), flags)?;
        }
        if let Some((uid, gid, groups)) = &creds {
            nix::unistd::setgroups(groups)?;
            nix::unistd::setgid(*gid)?;
            nix::unistd::setuid(*uid)?;
        }
        nix::unistd::chdir(dir.as_c_str())?;
        Ok(())
    };
    install(&mut cmd, setup);
    Ok(cmd)
}

/// Makes the child a session leader whose controlling terminal is its stdin.
fn set_controlling_tty(cmd: &mut std::process::Command) {
    install(cmd, take_terminal);
}

/// Makes the calling process (a child, before exec) a session leader whose controlling
/// terminal is its stdin.
#[allow(unsafe_code)]
pub(crate) fn take_terminal() -> std::io::Result<()> {
    nix::unistd::setsid()?;
    // SAFETY: TIOCSCTTY takes an int argument and touches no memory of ours; fd 0 is the
    // terminal's slave, set up by the caller.
    let r = unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[allow(unsafe_code)]
fn install(
    cmd: &mut std::process::Command,
    f: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static,
) {
    // SAFETY: the closure runs in the child between fork and exec. The daemon is multi-threaded,
    // so the closure may only make async-signal-safe calls: it makes raw syscalls (setsid,
    // ioctl, write, setns, setgroups, setgid, setuid, chdir) on values prepared before the fork
    // and allocates nothing.
    unsafe {
        cmd.pre_exec(f);
    }
}

/// A pseudo-terminal pair.
struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
}

impl Pty {
    fn open(size: Option<(u16, u16)>) -> Result<Pty, RuntimeError> {
        let ws = size.map(|(rows, cols)| nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        });
        let p = nix::pty::openpty(ws.as_ref(), None)
            .map_err(|e| io("opening a terminal", std::io::Error::from(e)))?;
        Ok(Pty {
            master: p.master,
            slave: p.slave,
        })
    }

    fn slave_stdio(&self) -> Result<(Stdio, Stdio, Stdio), RuntimeError> {
        let dup = || {
            self.slave
                .try_clone()
                .map(Stdio::from)
                .map_err(|e| io("duplicating the terminal", e))
        };
        Ok((dup()?, dup()?, dup()?))
    }
}

#[allow(unsafe_code)]
fn set_size(fd: &OwnedFd, rows: u16, cols: u16) -> std::io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` through the pointer, which lives for the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Chunks of `r` as they arrive, until EOF. A terminal's master reads EIO once the slave side
/// is closed everywhere: that is its EOF.
fn reader_stream<R>(r: R, kind: LogStreamKind) -> ExecOutput
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
{
    futures::stream::unfold(Some(r), move |r| async move {
        let mut r = r?;
        let mut buf = vec![0u8; 32 * 1024];
        match r.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok((kind, Bytes::from(buf))), Some(r)))
            }
            Err(e) if e.raw_os_error() == Some(libc::EIO) => None,
            Err(e) => Some((Err(io("reading the exec's output", e)), None)),
        }
    })
    .boxed()
}

struct NativeExec {
    child: tokio::sync::Mutex<Option<tokio::process::Child>>,
    exit: std::sync::OnceLock<i64>,
    child_pid: i64,
    /// Where the OCI runtime wrote the process's pid (image tasks).
    pid_file: Option<PathBuf>,
    files: Vec<PathBuf>,
    master: Option<OwnedFd>,
}

#[async_trait]
impl ExecHandle for NativeExec {
    fn pid(&self) -> i64 {
        match &self.pid_file {
            Some(f) => std::fs::read_to_string(f)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0),
            None => self.child_pid,
        }
    }

    async fn resize(&self, rows: u16, cols: u16) -> Result<(), RuntimeError> {
        let Some(m) = &self.master else {
            return Err(invalid(
                "tty",
                "the exec has no TTY to resize (it was started without one)",
            ));
        };
        set_size(m, rows, cols).map_err(|e| io("resizing the terminal", e))
    }

    async fn wait(&self) -> Result<i64, RuntimeError> {
        if let Some(c) = self.exit.get() {
            return Ok(*c);
        }
        let mut g = self.child.lock().await;
        if let Some(c) = self.exit.get() {
            return Ok(*c);
        }
        let Some(child) = g.as_mut() else {
            return Err(io(
                "waiting for the exec",
                std::io::Error::other("its process was lost"),
            ));
        };
        let status = child
            .wait()
            .await
            .map_err(|e| io("waiting for the exec", e))?;
        let code = match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(c), _) => i64::from(c),
            (None, Some(sig)) => 128 + i64::from(sig),
            (None, None) => -1,
        };
        // The pid file is read by `pid` while it runs; the process file is not needed after.
        for f in &self.files {
            if Some(f) != self.pid_file.as_ref() {
                let _ = std::fs::remove_file(f);
            }
        }
        *g = None;
        let _ = self.exit.set(code);
        Ok(code)
    }
}

impl Drop for NativeExec {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_env_overrides_the_tasks_by_name() {
        let base = vec!["PATH=/bin".to_string(), "A=1".to_string(), "B".to_string()];
        let extra = vec!["A=2".to_string(), "C=3".to_string()];
        assert_eq!(
            merge_env(&base, &extra),
            vec!["PATH=/bin", "B", "A=2", "C=3"]
        );
    }
}
