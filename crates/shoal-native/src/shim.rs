//! The per-task shim (`shoal shim <task-dir>`), like containerd-shim: it detaches from the
//! daemon, starts the task's process, tells the daemon the pid (or why it failed) on its stdout,
//! then supervises the process: copies its output into the task log and, once it has exited and
//! its output is drained, records how it ended in `exit.json` and exits.
//!
//! Process tree: the daemon spawns the shim (A); A forks B and exits at once, so B is reparented
//! away from the daemon and survives the daemon being killed; B starts a new session, unshares a
//! PID namespace, and forks the task's process (C), which is PID 1 there. B is single-threaded
//! and never starts an async runtime: it blocks in `poll(2)` on C's two output pipes (or, with
//! `tty`, its terminal's master) and a pidfd, and on the clients attached to C (see `attach`:
//! those attached before the start are inherited as `--attach-fd N`, later ones connect to
//! `attach.sock`), whose input it writes to C's stdin when the task has `open_stdin`.
//!
//! An image task (`oci` in its config) is created and started by the OCI runtime instead (see
//! `crun`); its init becomes B's child all the same, and B supervises it the same way. With a
//! health check B also forks the checker (see `health`), and kills it when the task ends.
//!
//! `shoal shim --probe` instead reports, as JSON on stdout, which namespaces this node lets the
//! daemon create (probed in a throwaway process, since `unshare` changes the caller).

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, unshare};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};
use shoal_types::Clock;
use shoal_types::clock::SystemClock;

use super::attach_hub::{self, Hub, HubFd, TaskIo};
use super::cgroup::parse_oom_kills;
use super::layout::{self, HealthSpec, Namespaces, RunningInfo, ShimConfig, ShimReport, TaskDir};
use super::logs::{LineSplitter, LogWriter};
use super::{attach, crun, health, proc, spawn};
use shoal_runtime::{ExitInfo, LogStreamKind};

/// Where the OCI runtime hands over the terminal it made for a task with `tty`.
const CONSOLE: &str = "console.sock";

/// How long the shim keeps reading after the task's process exited while something it started
/// (possible only without a PID namespace) still holds its output open.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

pub fn main(args: &[OsString]) -> i32 {
    match args {
        [flag] if flag == "--probe" => probe_main(),
        [dir, rest @ ..] if !dir.to_string_lossy().starts_with("--") => match attach_fds(rest) {
            Ok(fds) => run(Path::new(dir), fds),
            Err(why) => {
                eprintln!("shoal shim: {why}");
                2
            }
        },
        _ => {
            eprintln!("usage: shoal shim <task-dir> [--attach-fd N]... | shoal shim --probe");
            2
        }
    }
}

/// The clients attached before the start (see `attach`), inherited from the daemon and named
/// `--attach-fd N`.
fn attach_fds(args: &[OsString]) -> Result<Vec<OwnedFd>, String> {
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a != "--attach-fd" {
            return Err(format!("unknown argument {a:?}"));
        }
        let n = it
            .next()
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<RawFd>().ok())
            .ok_or("--attach-fd takes an fd number")?;
        if fds.iter().any(|f| f.as_raw_fd() == n) {
            return Err(format!("--attach-fd {n} given twice"));
        }
        fds.push(inherited(n)?);
    }
    Ok(fds)
}

#[allow(unsafe_code)]
fn inherited(fd: RawFd) -> Result<OwnedFd, String> {
    // SAFETY: F_GETFD only reads the fd's flags; a number that is not open fails with EBADF.
    let open = fd > 2 && unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
    if !open {
        return Err(format!("--attach-fd {fd}: not an open fd"));
    }
    // SAFETY: the daemon handed this fd to us, open (checked above) and named once (checked by
    // the caller); nothing else in this process refers to it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // Neither the task's process nor the OCI runtime may inherit it.
    nix::fcntl::fcntl(
        &owned,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| format!("--attach-fd {fd}: {e}"))?;
    Ok(owned)
}

/// Writes the one-line report to the daemon (our stdout).
fn report(r: &ShimReport) {
    let mut line = serde_json::to_vec(r).unwrap_or_default();
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&line);
    let _ = out.flush();
}

fn fail(msg: String) -> i32 {
    eprintln!("shoal shim: {msg}");
    report(&ShimReport::Failed { error: msg });
    1
}

#[allow(unsafe_code)]
fn fork_single_threaded() -> nix::Result<ForkResult> {
    // SAFETY: only the shim calls this, and the shim never starts a thread (no async runtime,
    // no helper threads), so the child inherits no lock held by a thread that does not exist in
    // it, and may go on running ordinary Rust code.
    unsafe { nix::unistd::fork() }
}

fn run(dir: &Path, attach: Vec<OwnedFd>) -> i32 {
    let task = TaskDir::from_path(dir.to_path_buf());
    let cfg = match task.config() {
        Ok(Some(cfg)) => cfg,
        Ok(None) => return fail(format!("{}: no {}", dir.display(), layout::CONFIG)),
        Err(e) => return fail(format!("reading task config: {e}")),
    };
    match fork_single_threaded() {
        Err(e) => fail(format!("fork: {e}")),
        // A: the daemon reaps us; B carries on, reparented away from the daemon.
        Ok(ForkResult::Parent { .. }) => 0,
        Ok(ForkResult::Child) => supervise(&task, &cfg, attach),
    }
}

fn supervise(task: &TaskDir, cfg: &ShimConfig, attach: Vec<OwnedFd>) -> i32 {
    // Out of the daemon's session and process group: its terminal and group signals, and its
    // death, no longer reach us. Off its working directory too, which may go away.
    if let Err(e) = nix::unistd::setsid() {
        eprintln!("shoal shim: setsid: {e}");
    }
    let _ = std::env::set_current_dir("/");
    // Without a PID namespace the task's orphans would be reparented to init; as subreaper the
    // shim reaps them instead of leaving zombies. For an image task it is also what makes the
    // container's init our child once the OCI runtime's `create` has exited.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    // Forked before the PID namespace below, so the checker is not inside the task's namespace
    // and sees the task's pid as the node does; it learns the pid once the task runs.
    let attach_raw: Vec<RawFd> = attach.iter().map(|f| f.as_raw_fd()).collect();
    let mut checker = cfg
        .health
        .as_ref()
        .and_then(|h| fork_checker(task, cfg, h, &attach_raw));
    // The OCI runtime makes an image task's namespaces itself (and joins its network one);
    // a host task inherits the shim's, so the shim joins it first.
    if cfg.oci.is_none()
        && let Some(netns) = &cfg.netns
        && let Err(e) = std::fs::File::open(netns)
            .map_err(|e| e.to_string())
            .and_then(|f| nix::sched::setns(f, CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string()))
    {
        return fail(format!(
            "joining the network namespace {}: {e}",
            netns.display()
        ));
    }
    if cfg.oci.is_none()
        && cfg.namespaces.pid
        && let Err(e) = unshare(CloneFlags::CLONE_NEWPID)
    {
        return fail(format!("creating the PID namespace: {e}"));
    }
    // The process's terminal (a host task's made here, an image task's by the OCI runtime,
    // which sends it to `console.sock`) and stdin, which the shim holds for attached clients.
    let mut tio = match TaskIo::new(cfg.tty, cfg.open_stdin, cfg.oci.is_none()) {
        Ok(t) => t,
        Err(e) => return fail(format!("setting up the task's stdio: {e}")),
    };
    let console = match (&cfg.oci, cfg.tty) {
        (Some(_), true) => match attach_hub::listen(task.path(), CONSOLE) {
            Ok((l, _, dir_fd)) => Some((l, dir_fd)),
            Err(e) => return fail(e),
        },
        _ => None,
    };
    let spawned = match &cfg.oci {
        Some(oci) => crun::create(
            oci,
            task.path(),
            crun::CreateIo {
                stdin: tio.stdin_child.take(),
                console_socket: console.as_ref().map(|(_, dir_fd)| {
                    attach::socket_path(
                        task.path(),
                        CONSOLE,
                        dir_fd.as_raw_fd(),
                        Some(std::process::id()),
                    )
                }),
            },
        ),
        None => {
            let stdio = match tio.slave.take() {
                Some(slave) => spawn::TaskStdio::Terminal(slave),
                None => spawn::TaskStdio::Pipes {
                    stdin: tio.stdin_child.take(),
                },
            };
            spawn::spawn_task(cfg, stdio).map(|mut child| crun::Spawned {
                pid: child.id() as i32,
                stdout: child.stdout.take().map(|p| File::from(OwnedFd::from(p))),
                stderr: child.stderr.take().map(|p| File::from(OwnedFd::from(p))),
            })
        }
    };
    let mut spawned = match spawned {
        Ok(s) => s,
        Err(msg) => return fail(msg),
    };
    let pid = spawned.pid;
    let me = std::process::id() as i32;
    let abandon = |why: String| {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(Pid::from_raw(pid), None);
        if let Some(oci) = &cfg.oci {
            let _ = crun::delete(oci);
        }
        fail(why)
    };
    let terminal = match console {
        Some((l, _)) => {
            let received = attach_hub::receive_terminal(&l);
            let _ = std::fs::remove_file(task.file(CONSOLE));
            received.and_then(|m| tio.set_master(m, cfg.open_stdin))
        }
        None => tio.master_input(cfg.open_stdin),
    };
    if let Err(e) = terminal {
        return abandon(format!("the task's terminal: {e}"));
    }
    // A terminal's output is all on its master.
    if let Some(m) = &tio.master {
        match m.try_clone() {
            Ok(out) => {
                spawned.stdout = Some(File::from(out));
                spawned.stderr = None;
            }
            Err(e) => return abandon(format!("the task's terminal: {e}")),
        }
    }
    // Clients attaching from now on connect here; those attached before are in `attach`.
    let listener = match attach_hub::listen(task.path(), attach::SOCKET) {
        Ok((l, _, _)) => Some(l),
        Err(e) => {
            eprintln!("shoal shim: {e}; clients cannot attach after the start");
            None
        }
    };
    let mut hub = Hub::new(
        listener,
        attach,
        tio.stdin.take(),
        tio.master.take(),
        cfg.tty,
    );
    let (Some(st), Some(shim_st)) = (proc::stat(pid), proc::stat(me)) else {
        return abandon("the task's process vanished before it could be recorded".into());
    };
    let running = RunningInfo {
        pid,
        start_time: st.start_time,
        shim_pid: me,
        shim_start_time: shim_st.start_time,
    };
    if let Err(e) = layout::write_json_atomic(&task.file(layout::RUNNING), &running) {
        return abandon(format!("recording the task's pid: {e}"));
    }
    if let Some(oci) = &cfg.oci
        && let Err(e) = crun::start(oci, task.path())
    {
        // Back to "created": the driver may try again.
        let _ = std::fs::remove_file(task.file(layout::RUNNING));
        return abandon(e);
    }
    report(&ShimReport::Started {
        pid,
        start_time: st.start_time,
    });
    // Release the daemon's end: from now on we talk only through files.
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(null.as_fd());
    }
    if let Some((_, tell)) = checker.as_mut() {
        let mut msg = pid.to_le_bytes().to_vec();
        msg.extend_from_slice(&st.start_time.to_le_bytes());
        let _ = nix::unistd::write(&*tell, &msg);
    }
    let checker = checker.map(|(c, tell)| {
        drop(tell);
        c
    });

    let status = copy_output_until_exit(task, cfg, &mut spawned, st.start_time, &mut hub);
    if let Some(c) = checker {
        let _ = nix::sys::signal::kill(c, nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(c, None);
    }
    // Reap whatever else was reparented to us.
    while let Ok(s) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
    let (recorded, code) = record_exit(task, cfg, status);
    // After exit.json: a client whose stream ends finds the task exited.
    hub.finish(code);
    let _ = std::fs::remove_file(attach_hub::socket_file(task.path()));
    if recorded { 0 } else { 1 }
}

/// Forks the health checker (see `health`); it dies with us. It waits for the task's pid and
/// start time on the returned pipe (closing it unwritten makes it exit).
fn fork_checker(
    task: &TaskDir,
    cfg: &ShimConfig,
    spec: &HealthSpec,
    attach: &[RawFd],
) -> Option<(Pid, OwnedFd)> {
    let (r, w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("shoal shim: starting the health checker: {e}");
            return None;
        }
    };
    match fork_single_threaded() {
        Ok(ForkResult::Child) => {
            drop(w);
            // The attached clients' sockets are the shim's: a copy here would keep them open
            // after the shim closed them.
            for fd in attach {
                let _ = nix::unistd::close(*fd);
            }
            let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
            let mut buf = [0u8; 12];
            if File::from(r).read_exact(&mut buf).is_err() {
                std::process::exit(0);
            }
            let pid = i32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
            let mut st = [0u8; 8];
            st.copy_from_slice(&buf[4..]);
            let start = u64::from_le_bytes(st);
            let target = match &cfg.oci {
                Some(oci) => health::Target::Oci {
                    runtime: oci.runtime.clone(),
                    state_root: oci.state_root.clone(),
                    process: task.file(layout::HEALTH_PROCESS),
                    id: oci.container_id.clone(),
                },
                None => health::Target::Host {
                    pid,
                    start_time: start,
                    cfg: Box::new(cfg.clone()),
                },
            };
            health::run_checker(task, spec, &target, pid, start);
            std::process::exit(0)
        }
        Ok(ForkResult::Parent { child }) => Some((child, w)),
        Err(e) => {
            eprintln!("shoal shim: starting the health checker: {e}");
            None
        }
    }
}

/// Writes exit.json; whether it could, and the exit code.
fn record_exit(task: &TaskDir, cfg: &ShimConfig, status: WaitStatus) -> (bool, i64) {
    let oom_killed = cfg
        .oom
        .as_ref()
        .and_then(|o| std::fs::read_to_string(&o.path).ok())
        .is_some_and(|t| parse_oom_kills(&t) > 0);
    let (code, signal) = match status {
        WaitStatus::Exited(_, c) => (i64::from(c), None),
        WaitStatus::Signaled(_, s, _) => (128 + s as i64, Some(s as i32)),
        _ => (255, None),
    };
    let exit = ExitInfo {
        code,
        signal,
        oom_killed,
        finished_at: SystemClock.now(),
    };
    if let Err(e) = layout::write_json_atomic(&task.file(layout::EXIT), &exit) {
        eprintln!("shoal shim: recording the exit: {e}");
        return (false, code);
    }
    (true, code)
}

#[derive(Clone, Copy)]
enum Ready {
    Stdout,
    Stderr,
    Exit,
}

struct Stream<R> {
    pipe: Option<R>,
    kind: LogStreamKind,
    split: LineSplitter,
}

impl<R: Read + AsFd> Stream<R> {
    /// Reads once, into the log and to attached clients; closes the pipe at end of file (a
    /// terminal's master reads EIO once the process and its children closed the slave).
    fn pump(&mut self, buf: &mut [u8], log: &mut Option<LogWriter>, hub: &mut Hub) {
        let Some(pipe) = &mut self.pipe else {
            return;
        };
        let n = match pipe.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return,
            Err(_) => 0,
        };
        let kind = self.kind;
        let mut emit = |line: &[u8]| {
            if let Some(w) = log.as_mut()
                && let Err(e) = w.write(SystemClock.now(), kind, line)
            {
                eprintln!("shoal shim: writing the log: {e}");
            }
        };
        if n == 0 {
            self.split.finish(&mut emit);
            self.pipe = None;
            return;
        }
        hub.output(kind, &buf[..n]);
        self.split.push(&buf[..n], &mut emit);
    }
}

/// Copies the task's output into its log until the process has exited and both pipes are closed
/// (or `DRAIN_AFTER_EXIT` has passed since the exit); returns how the process ended.
fn copy_output_until_exit(
    task: &TaskDir,
    cfg: &ShimConfig,
    child: &mut crun::Spawned,
    start: u64,
    hub: &mut Hub,
) -> WaitStatus {
    let mut log = match LogWriter::open(&task.file(layout::LOG), cfg.log_max_bytes) {
        Ok(w) => Some(w),
        Err(e) => {
            eprintln!("shoal shim: opening the log: {e}; output is discarded");
            None
        }
    };
    let pid = child.pid;
    let mut out: Stream<File> = Stream {
        pipe: child.stdout.take(),
        kind: LogStreamKind::Stdout,
        split: LineSplitter::default(),
    };
    let mut err: Stream<File> = Stream {
        pipe: child.stderr.take(),
        kind: LogStreamKind::Stderr,
        split: LineSplitter::default(),
    };
    let pidfd = proc::PidFd::open_verified(pid, start).ok().flatten();
    let child_pid = Pid::from_raw(pid);
    let mut status: Option<WaitStatus> = None;
    let mut drain_deadline = None;
    let mut buf = vec![0u8; 64 * 1024];

    loop {
        if status.is_none() {
            match waitpid(child_pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(nix::Error::EINTR) => {}
                Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => status = Some(s),
                Ok(_) => {}
                // Not our child any more (cannot happen) or already reaped: treat as ended.
                Err(_) => status = Some(WaitStatus::Exited(child_pid, 255)),
            }
        }
        let open = out.pipe.is_some() || err.pipe.is_some();
        if let Some(s) = status {
            let now = SystemClock.now();
            let deadline = *drain_deadline.get_or_insert(now.add(DRAIN_AFTER_EXIT));
            if !open || now >= deadline {
                finish(&mut out.split, out.kind, &mut log);
                finish(&mut err.split, err.kind, &mut log);
                return s;
            }
        }
        // Both pipes closed and the process still running: the loop goes on for its exit (the
        // pidfd, or the periodic waitpid) and its attached clients.

        // Without a pidfd the exit is noticed by the periodic waitpid above.
        let watch_exit = status.is_none() && pidfd.is_some();
        let timeout = if watch_exit {
            PollTimeout::NONE
        } else {
            PollTimeout::from(200u16)
        };
        let (mut ids, mut fds) = (Vec::with_capacity(3), Vec::with_capacity(3));
        if let Some(p) = &out.pipe {
            ids.push(Ready::Stdout);
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
        }
        if let Some(p) = &err.pipe {
            ids.push(Ready::Stderr);
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
        }
        if let (true, Some(fd)) = (watch_exit, &pidfd) {
            ids.push(Ready::Exit);
            fds.push(PollFd::new(fd.raw(), PollFlags::POLLIN));
        }
        let hub_fds = hub.poll_fds();
        let hub_at = fds.len();
        for (_, fd, flags) in &hub_fds {
            fds.push(PollFd::new(*fd, *flags));
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => {
                eprintln!("shoal shim: poll: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let ready: Vec<Ready> = ids
            .into_iter()
            .zip(&fds)
            .filter(|(_, p)| p.revents().is_some_and(|r| !r.is_empty()))
            .map(|(i, _)| i)
            .collect();
        let hub_ready: Vec<(HubFd, PollFlags)> = hub_fds
            .iter()
            .zip(&fds[hub_at..])
            .filter_map(|((id, _, _), p)| p.revents().filter(|r| !r.is_empty()).map(|r| (*id, r)))
            .collect();
        drop(fds);
        drop(hub_fds);
        for r in ready {
            match r {
                Ready::Stdout => out.pump(&mut buf, &mut log, hub),
                Ready::Stderr => err.pump(&mut buf, &mut log, hub),
                // The next waitpid collects the status.
                Ready::Exit => {}
            }
        }
        hub.ready(&hub_ready);
    }
}

/// Writes out a last line that had no newline.
fn finish(split: &mut LineSplitter, kind: LogStreamKind, log: &mut Option<LogWriter>) {
    split.finish(|line| {
        if let Some(w) = log.as_mut() {
            let _ = w.write(SystemClock.now(), kind, line);
        }
    });
}

/// What `--probe` prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Probe {
    pub namespaces: Namespaces,
}

fn probe_main() -> i32 {
    let mut ns = Namespaces {
        pid: unshare(CloneFlags::CLONE_NEWPID).is_ok(),
        mount: unshare(CloneFlags::CLONE_NEWNS).is_ok()
            && nix::mount::mount(
                None::<&str>,
                "/",
                None::<&str>,
                nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .is_ok(),
        uts: unshare(CloneFlags::CLONE_NEWUTS).is_ok(),
        ipc: unshare(CloneFlags::CLONE_NEWIPC).is_ok(),
        proc: false,
    };
    if ns.pid && ns.mount {
        // Try the /proc mount for real, in a child that is PID 1 of the new namespace; our mounts
        // are private and die with this process.
        ns.proc = match fork_single_threaded() {
            Ok(ForkResult::Child) => {
                let flags = nix::mount::MsFlags::MS_NOSUID
                    | nix::mount::MsFlags::MS_NODEV
                    | nix::mount::MsFlags::MS_NOEXEC;
                let ok =
                    nix::mount::mount(Some("proc"), "/proc", Some("proc"), flags, None::<&str>)
                        .is_ok();
                std::process::exit(if ok { 0 } else { 1 })
            }
            Ok(ForkResult::Parent { child }) => {
                matches!(waitpid(child, None), Ok(WaitStatus::Exited(_, 0)))
            }
            Err(_) => false,
        };
    }
    let mut line = serde_json::to_vec(&Probe { namespaces: ns }).unwrap_or_default();
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    if out.write_all(&line).and_then(|()| out.flush()).is_err() {
        return 1;
    }
    0
}
