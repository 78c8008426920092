//! The shim's side of attaching (see `attach` for the design and the protocol): the process's
//! stdin and terminal as the shim holds them, and the clients it serves.
//!
//! Everything here runs in the shim's single thread, driven by its `poll(2)` loop: every fd is
//! non-blocking, every client has its own output buffer, so no client and no full stdin pipe
//! ever stops the shim copying the process's output into the task log.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use shoal_runtime::LogStreamKind;
use shoal_types::Clock;
use shoal_types::clock::SystemClock;

use super::attach::{
    CLOSE_STDIN, EXIT, Frames, MAX_BEHIND, RESIZE, SOCKET, STDERR, STDIN, STDOUT, frame, open_dir,
    socket_path,
};

/// How long the shim keeps sending clients what they have not read yet, once the process is
/// gone and before it exits.
const FINISH_FLUSH: Duration = Duration::from_secs(2);

/// The streams the shim holds for the process, made before it starts.
pub(crate) struct TaskIo {
    /// The terminal's master, with `tty`.
    pub master: Option<OwnedFd>,
    /// The terminal's slave for a `host` task's process (the OCI runtime makes its own).
    pub slave: Option<OwnedFd>,
    /// The read end of the stdin pipe for the process, with `open_stdin` and no terminal.
    pub stdin_child: Option<OwnedFd>,
    /// Where attached clients' input goes: the pipe's write end, or the master.
    pub stdin: Option<File>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

fn nonblocking(fd: &impl AsFd) -> Result<(), String> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(|e| format!("fcntl: {e}"))?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags))
        .map(|_| ())
        .map_err(|e| format!("fcntl: {e}"))
}

impl TaskIo {
    /// The streams for a process with (or without) a terminal and stdin. A `host` task's
    /// terminal is made here; an image task's comes from the OCI runtime ([`receive_terminal`]).
    pub fn new(tty: bool, open_stdin: bool, make_terminal: bool) -> Result<TaskIo, String> {
        let mut io = TaskIo {
            master: None,
            slave: None,
            stdin_child: None,
            stdin: None,
        };
        if tty {
            if make_terminal {
                let p = nix::pty::openpty(None, None).map_err(|e| format!("openpty: {e}"))?;
                io.master = Some(p.master);
                io.slave = Some(p.slave);
            }
        } else if open_stdin {
            let (r, w) = pipe()?;
            nonblocking(&w)?;
            io.stdin_child = Some(r);
            io.stdin = Some(File::from(w));
        }
        Ok(io)
    }

    /// Takes the terminal the OCI runtime made; with `open_stdin`, input goes to it.
    pub fn set_master(&mut self, master: OwnedFd, open_stdin: bool) -> Result<(), String> {
        if open_stdin {
            let w = master.try_clone().map_err(|e| format!("dup: {e}"))?;
            nonblocking(&w)?;
            self.stdin = Some(File::from(w));
        }
        self.master = Some(master);
        Ok(())
    }

    /// For a terminal the shim made itself.
    pub fn master_input(&mut self, open_stdin: bool) -> Result<(), String> {
        if let (true, Some(m)) = (open_stdin, &self.master) {
            let w = m.try_clone().map_err(|e| format!("dup: {e}"))?;
            nonblocking(&w)?;
            self.stdin = Some(File::from(w));
        }
        Ok(())
    }
}

/// A unix socket listening in the task's directory, only root may connect.
pub(crate) fn listen(dir: &Path, name: &str) -> Result<(UnixListener, PathBuf, OwnedFd), String> {
    let dir_fd = open_dir(dir).map_err(|e| format!("opening {}: {e}", dir.display()))?;
    let path = socket_path(dir, name, dir_fd.as_raw_fd(), None);
    let _ = std::fs::remove_file(dir.join(name));
    // The shim is single-threaded: the umask is its own for the bind.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(&path);
    nix::sys::stat::umask(old);
    let l = bound.map_err(|e| format!("listening on {}: {e}", dir.join(name).display()))?;
    l.set_nonblocking(true)
        .map_err(|e| format!("listening on {}: {e}", dir.join(name).display()))?;
    Ok((l, path, dir_fd))
}

/// The terminal master the OCI runtime sent to the console socket during `create`.
pub(crate) fn receive_terminal(listener: &UnixListener) -> Result<OwnedFd, String> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let (conn, _) = listener
        .accept()
        .map_err(|e| format!("the OCI runtime handed over no terminal: {e}"))?;
    conn.set_nonblocking(false)
        .and_then(|()| conn.set_read_timeout(Some(Duration::from_secs(10))))
        .map_err(|e| format!("receiving the terminal: {e}"))?;
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("receiving the terminal: {e}"))?;
    let cmsgs = msg
        .cmsgs()
        .map_err(|e| format!("receiving the terminal: {e}"))?;
    for c in cmsgs {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(fd) = fds.first()
        {
            return Ok(owned(*fd));
        }
    }
    Err("the OCI runtime's message held no terminal".into())
}

#[allow(unsafe_code)]
fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: the kernel just installed `fd` in this process for this message
    // (SCM_RIGHTS); nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[allow(unsafe_code)]
pub(crate) fn set_size(fd: &OwnedFd, rows: u16, cols: u16) -> std::io::Result<()> {
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

struct Client {
    sock: UnixStream,
    /// Its messages end (it shut its writing half): it only reads from then on.
    read_done: bool,
    frames: Frames,
    out: Vec<u8>,
    sent: usize,
}

impl Client {
    fn behind(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Writes what it can; false when the client is gone.
    fn flush(&mut self) -> bool {
        while self.sent < self.out.len() {
            match self.sock.write(&self.out[self.sent..]) {
                Ok(0) => return false,
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        } else if self.sent > self.out.len() / 2 {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
        true
    }
}

/// What one of the hub's fds is, for the shim's poll loop.
#[derive(Clone, Copy, Debug)]
pub(crate) enum HubFd {
    Listener,
    Client(usize),
    Stdin,
}

pub(crate) struct Hub {
    listener: Option<UnixListener>,
    clients: Vec<Client>,
    stdin: Option<File>,
    stdin_buf: Vec<u8>,
    close_stdin: bool,
    /// The terminal's master, for resizes.
    master: Option<OwnedFd>,
    /// Input closes only the pipe: a terminal's master stays as long as the process's output.
    tty: bool,
}

impl Hub {
    pub fn new(
        listener: Option<UnixListener>,
        inherited: Vec<OwnedFd>,
        stdin: Option<File>,
        master: Option<OwnedFd>,
        tty: bool,
    ) -> Hub {
        let mut hub = Hub {
            listener,
            clients: Vec::new(),
            stdin,
            stdin_buf: Vec::new(),
            close_stdin: false,
            master,
            tty,
        };
        for fd in inherited {
            hub.add(UnixStream::from(fd));
        }
        hub
    }

    fn add(&mut self, sock: UnixStream) {
        if sock.set_nonblocking(true).is_err() {
            return;
        }
        self.clients.push(Client {
            sock,
            read_done: false,
            frames: Frames::default(),
            out: Vec::new(),
            sent: 0,
        });
    }

    /// The process wrote `data`: to every client.
    pub fn output(&mut self, kind: LogStreamKind, data: &[u8]) {
        if self.clients.is_empty() || data.is_empty() {
            return;
        }
        let k = match kind {
            LogStreamKind::Stdout => STDOUT,
            LogStreamKind::Stderr => STDERR,
        };
        let f = frame(k, data);
        self.clients.retain_mut(|c| {
            c.out.extend_from_slice(&f);
            c.flush() && c.behind() <= MAX_BEHIND
        });
    }

    /// The fds to poll and for what.
    pub fn poll_fds(&self) -> Vec<(HubFd, BorrowedFd<'_>, PollFlags)> {
        let mut v = Vec::new();
        if let Some(l) = &self.listener {
            v.push((HubFd::Listener, l.as_fd(), PollFlags::POLLIN));
        }
        for (i, c) in self.clients.iter().enumerate() {
            let mut f = PollFlags::empty();
            if !c.read_done {
                f |= PollFlags::POLLIN;
            }
            if c.behind() > 0 {
                f |= PollFlags::POLLOUT;
            }
            v.push((HubFd::Client(i), c.sock.as_fd(), f));
        }
        if let (Some(s), false) = (&self.stdin, self.stdin_buf.is_empty()) {
            v.push((HubFd::Stdin, s.as_fd(), PollFlags::POLLOUT));
        }
        v
    }

    /// Acts on what `poll` found ready. Clients are only dropped after a whole round, so the
    /// indices of one round stay valid.
    pub fn ready(&mut self, which: &[(HubFd, PollFlags)]) {
        let mut gone = vec![false; self.clients.len()];
        for (fd, revents) in which {
            match fd {
                HubFd::Listener => self.accept(),
                HubFd::Client(i) => {
                    if let Some(g) = gone.get_mut(*i) {
                        *g |= !self.client_ready(*i, *revents);
                    }
                }
                HubFd::Stdin => self.write_stdin(),
            }
        }
        let mut i = 0;
        self.clients.retain(|_| {
            let keep = !gone.get(i).copied().unwrap_or(false);
            i += 1;
            keep
        });
        self.write_stdin();
    }

    fn accept(&mut self) {
        let Some(l) = &self.listener else {
            return;
        };
        let mut new = Vec::new();
        loop {
            match l.accept() {
                Ok((s, _)) => new.push(s),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        for s in new {
            self.add(s);
        }
    }

    /// False when the client is gone. A client that only shut its writing half is not: it still
    /// reads. One closed altogether (`POLLHUP`, reported whatever is asked for) is, once what it
    /// wrote before is read.
    fn client_ready(&mut self, i: usize, revents: PollFlags) -> bool {
        let Some(c) = self.clients.get_mut(i) else {
            return true;
        };
        if revents.contains(PollFlags::POLLERR) {
            return false;
        }
        if revents.contains(PollFlags::POLLOUT) && !c.flush() {
            return false;
        }
        let mut msgs = Vec::new();
        if !c.read_done && revents.intersects(PollFlags::POLLIN | PollFlags::POLLHUP) {
            let mut buf = [0u8; 32 * 1024];
            match c.sock.read(&mut buf) {
                Ok(0) => c.read_done = true,
                Ok(n) => c.frames.push(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => return false,
            }
            loop {
                match c.frames.next_frame() {
                    Ok(Some(m)) => msgs.push(m),
                    Ok(None) => break,
                    // A client that does not speak the protocol.
                    Err(_) => return false,
                }
            }
        }
        let gone = c.read_done && revents.contains(PollFlags::POLLHUP);
        for (kind, payload) in msgs {
            match kind {
                STDIN if self.stdin.is_some() && !self.close_stdin => {
                    self.stdin_buf.extend_from_slice(&payload)
                }
                CLOSE_STDIN if !self.tty => self.close_stdin = true,
                RESIZE if payload.len() == 4 => {
                    if let Some(m) = &self.master {
                        let rows = u16::from_be_bytes([payload[0], payload[1]]);
                        let cols = u16::from_be_bytes([payload[2], payload[3]]);
                        let _ = set_size(m, rows, cols);
                    }
                }
                _ => {}
            }
        }
        !gone
    }

    fn write_stdin(&mut self) {
        let Some(s) = &mut self.stdin else {
            self.stdin_buf.clear();
            return;
        };
        while !self.stdin_buf.is_empty() {
            match s.write(&self.stdin_buf) {
                Ok(n) => {
                    self.stdin_buf.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // The process closed its stdin: nobody reads what is written any more.
                Err(_) => {
                    self.stdin = None;
                    self.stdin_buf.clear();
                    return;
                }
            }
        }
        if self.close_stdin {
            self.stdin = None;
        }
    }

    /// The process's exit code to every client, what they have not read yet for a moment more,
    /// then the end of their streams.
    pub fn finish(mut self, code: i64) {
        let f = frame(EXIT, &code.to_be_bytes());
        self.listener = None;
        self.stdin = None;
        self.clients.retain_mut(|c| {
            c.out.extend_from_slice(&f);
            c.flush()
        });
        let deadline = SystemClock.now().add(FINISH_FLUSH);
        while self.clients.iter().any(|c| c.behind() > 0) {
            let left = deadline.since(SystemClock.now());
            if left.is_zero() {
                break;
            }
            let mut fds: Vec<PollFd<'_>> = self
                .clients
                .iter()
                .filter(|c| c.behind() > 0)
                .map(|c| PollFd::new(c.sock.as_fd(), PollFlags::POLLOUT))
                .collect();
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let _ = poll(&mut fds, PollTimeout::from(ms));
            drop(fds);
            self.clients.retain_mut(|c| c.flush());
        }
    }
}

/// The path the shim listens on, removed once it is done.
pub(crate) fn socket_file(dir: &Path) -> PathBuf {
    dir.join(SOCKET)
}
