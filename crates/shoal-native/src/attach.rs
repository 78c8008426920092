//! Attaching to a task's own process (`docker attach`, `docker run -it`, `docker start -ai`).
//!
//! The shim holds the process's streams: its output pipes, or with `tty` the master of the
//! terminal it runs on (made by the shim for a `host` task, by the OCI runtime for an image
//! task, which hands it over through `--console-socket`); with `open_stdin` the write end of its
//! stdin pipe. It serves them to clients over a unix socket in the task's directory
//! (`attach.sock`, root's only), so attaching works the same after the daemon restarted: the
//! shim outlives it. The shim's side is `attach_hub`; this is the protocol and the daemon's side.
//!
//! A client attached before the process starts (the task is prepared, or exited and to be
//! started again) has no shim to connect to yet and must not miss the first bytes: the driver
//! makes a socket pair, keeps the shim's end in memory until the task's next `start`, which
//! hands every such end to the new shim as an inherited fd (`shoal shim DIR --attach-fd N`).
//! The shim has them before the process runs. (A client attached that way to a driver that then
//! goes away loses its attachment with the driver: nothing was started for it.)
//!
//! Frames, both ways: `[kind: u8][length: u32 BE][payload]`. From the shim: [`STDOUT`] and
//! [`STDERR`] chunks as the process writes them (a terminal's all on stdout), then [`EXIT`]
//! (the code, i64 BE) once `exit.json` is written, then the end of the stream. From a client:
//! [`STDIN`] data, [`CLOSE_STDIN`] (the pipe is closed once what came before is written; a
//! terminal stays open), [`RESIZE`] (rows, cols: u16 BE). A client that shuts down its writing
//! half still gets the output. The shim never waits for a client: one that falls
//! [`MAX_BEHIND`] bytes behind is dropped.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use shoal_runtime::exec::{ExecHandle, ExecInput, ExecOutput, ExecProcess};
use shoal_runtime::{LogStreamKind, RuntimeError, RuntimeTaskState};
use shoal_types::Id;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::layout::{self, TaskDir};
use super::{NativeDriver, io};

pub(crate) const STDIN: u8 = 0;
pub(crate) const STDOUT: u8 = 1;
pub(crate) const STDERR: u8 = 2;
pub(crate) const EXIT: u8 = 3;
pub(crate) const CLOSE_STDIN: u8 = 4;
pub(crate) const RESIZE: u8 = 5;

/// The largest frame either side sends or takes.
pub(crate) const MAX_FRAME: usize = 1 << 20;
/// How far a client may fall behind the output before the shim drops it.
pub(crate) const MAX_BEHIND: usize = 8 << 20;

/// The shim's socket in the task's directory.
pub(crate) const SOCKET: &str = "attach.sock";

/// The longest path a unix socket address holds (`sun_path` less its NUL).
const SUN_PATH_MAX: usize = 107;

pub(crate) fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(5 + payload.len());
    f.push(kind);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Frames out of a byte stream, as they complete.
#[derive(Default)]
pub(crate) struct Frames {
    buf: Vec<u8>,
}

impl Frames {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame; an error for one longer than [`MAX_FRAME`].
    pub fn next_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>, String> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_FRAME {
            return Err(format!("a frame of {len} bytes"));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let kind = self.buf[0];
        let payload = self.buf[5..5 + len].to_vec();
        self.buf.drain(..5 + len);
        Ok(Some((kind, payload)))
    }
}

/// A path for the unix socket `name` in `dir` that fits a socket address: the direct one, else
/// the same place through `/proc/<pid>/fd/<dir_fd>`, an fd of `dir` that process `pid` holds
/// (`None`: the caller, `self`). Task directories of standalone containers (64-character IDs)
/// under a long data directory do not fit.
pub(crate) fn socket_path(dir: &Path, name: &str, dir_fd: RawFd, pid: Option<u32>) -> PathBuf {
    let direct = dir.join(name);
    if direct.as_os_str().len() <= SUN_PATH_MAX {
        return direct;
    }
    match pid {
        Some(p) => PathBuf::from(format!("/proc/{p}/fd/{dir_fd}/{name}")),
        None => PathBuf::from(format!("/proc/self/fd/{dir_fd}/{name}")),
    }
}

/// An `O_PATH` fd of a directory, for [`socket_path`].
pub(crate) fn open_dir(dir: &Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)
        .map(OwnedFd::from)
}

impl NativeDriver {
    pub(crate) async fn attach_to(&self, task_id: &Id) -> Result<ExecProcess, RuntimeError> {
        let dir = self.known(task_id)?;
        let cfg = dir
            .config()
            .map_err(|e| io(format!("reading {}", dir.path().display()), e))?
            .ok_or_else(|| RuntimeError::NotFound(task_id.clone()))?;
        let stream = match self.observe(&dir)? {
            RuntimeTaskState::Running { .. } => match connect(&dir).await {
                Ok(s) => s,
                // Ended meanwhile: the next run's, then.
                Err(_) if !matches!(self.observe(&dir)?, RuntimeTaskState::Running { .. }) => {
                    self.pend(task_id)?
                }
                Err(e) => {
                    return Err(io(
                        format!(
                            "attaching to task {task_id}: its shim does not answer on {}",
                            dir.file(SOCKET).display()
                        ),
                        e,
                    ));
                }
            },
            _ => self.pend(task_id)?,
        };
        Ok(client(stream, cfg.tty, cfg.open_stdin, dir))
    }

    /// A client for the task's next start (see the module doc).
    fn pend(&self, task_id: &Id) -> Result<tokio::net::UnixStream, RuntimeError> {
        let ctx = |e| io(format!("attaching to task {task_id}"), e);
        let (ours, shims) = std::os::unix::net::UnixStream::pair().map_err(ctx)?;
        ours.set_nonblocking(true).map_err(ctx)?;
        let ours = tokio::net::UnixStream::from_std(ours).map_err(ctx)?;
        self.pending_attach()
            .entry(task_id.clone())
            .or_default()
            .push(OwnedFd::from(shims));
        Ok(ours)
    }

    /// The shim's ends of the clients waiting for the task's start.
    pub(crate) fn take_pending(&self, task_id: &Id) -> Vec<OwnedFd> {
        self.pending_attach().remove(task_id).unwrap_or_default()
    }
}

async fn connect(dir: &TaskDir) -> std::io::Result<tokio::net::UnixStream> {
    let fd = open_dir(dir.path())?;
    let path = socket_path(dir.path(), SOCKET, fd.as_raw_fd(), None);
    let s = tokio::net::UnixStream::connect(&path).await;
    drop(fd);
    s
}

/// An attachment over a connection to the shim (or to be handed to it).
fn client(
    stream: tokio::net::UnixStream,
    tty: bool,
    open_stdin: bool,
    dir: TaskDir,
) -> ExecProcess {
    let (mut rd, mut wr) = stream.into_split();
    let (out_tx, out_rx) = tokio::sync::mpsc::channel(64);
    let (exit_tx, exit_rx) = tokio::sync::watch::channel(None::<i64>);
    let (msg_tx, mut msg_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        let mut head = [0u8; 5];
        loop {
            if rd.read_exact(&mut head).await.is_err() {
                return;
            }
            let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            if len > MAX_FRAME {
                let _ = out_tx
                    .send(Err(io(
                        "reading the task's output",
                        std::io::Error::other(format!("the shim sent a frame of {len} bytes")),
                    )))
                    .await;
                return;
            }
            let mut payload = vec![0u8; len];
            if rd.read_exact(&mut payload).await.is_err() {
                return;
            }
            let kind = match head[0] {
                STDOUT => LogStreamKind::Stdout,
                STDERR => LogStreamKind::Stderr,
                EXIT => {
                    let mut code = [0u8; 8];
                    let n = payload.len().min(8);
                    code[8 - n..].copy_from_slice(&payload[..n]);
                    exit_tx.send_replace(Some(i64::from_be_bytes(code)));
                    continue;
                }
                _ => continue,
            };
            // A caller that dropped the output still waits for the exit: read on.
            let _ = out_tx.send(Ok((kind, Bytes::from(payload)))).await;
        }
    });
    tokio::spawn(async move {
        // Its end (every sender gone) shuts the writing half, which the shim takes for the
        // end of this client's messages only.
        while let Some(f) = msg_rx.recv().await {
            if wr.write_all(&f).await.is_err() {
                return;
            }
        }
    });
    let input = open_stdin.then(|| {
        let (theirs, mut ours) = tokio::io::duplex(64 * 1024);
        let tx = msg_tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match ours.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(frame(CLOSE_STDIN, &[]));
                        return;
                    }
                    Ok(n) => {
                        for chunk in buf[..n].chunks(MAX_FRAME) {
                            if tx.send(frame(STDIN, chunk)).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        Box::pin(theirs) as ExecInput
    });
    let output: ExecOutput = futures::stream::unfold(out_rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed();
    ExecProcess {
        input,
        output,
        handle: Arc::new(NativeAttach {
            msg: msg_tx,
            tty,
            exit: exit_rx,
            dir,
        }),
    }
}

struct NativeAttach {
    msg: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    tty: bool,
    exit: tokio::sync::watch::Receiver<Option<i64>>,
    dir: TaskDir,
}

#[async_trait]
impl ExecHandle for NativeAttach {
    fn pid(&self) -> i64 {
        match self.dir.running() {
            Ok(Some(r)) => i64::from(r.pid),
            _ => 0,
        }
    }

    async fn resize(&self, rows: u16, cols: u16) -> Result<(), RuntimeError> {
        if !self.tty {
            return Err(RuntimeError::InvalidSpec {
                field: "tty",
                why: "the task has no TTY to resize (its spec does not ask for one)".into(),
            });
        }
        let mut size = rows.to_be_bytes().to_vec();
        size.extend_from_slice(&cols.to_be_bytes());
        self.msg.send(frame(RESIZE, &size)).map_err(|_| {
            io(
                "resizing the task's terminal",
                std::io::Error::other("the attachment is closed"),
            )
        })
    }

    async fn wait(&self) -> Result<i64, RuntimeError> {
        let mut rx = self.exit.clone();
        if let Ok(code) = rx.wait_for(Option::is_some).await
            && let Some(c) = *code
        {
            return Ok(c);
        }
        // The shim went without saying (it was killed): its record, if it made one.
        match layout::read_json::<shoal_runtime::ExitInfo>(&self.dir.file(layout::EXIT)) {
            Ok(Some(e)) => Ok(e.code),
            Ok(None) => Err(RuntimeError::StartFailed(format!(
                "the attachment to {} ended before its process did",
                self.dir.path().display()
            ))),
            Err(e) => Err(io("reading the task's exit", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_pieces() {
        let mut bytes = frame(STDOUT, b"hello");
        bytes.extend(frame(EXIT, &7i64.to_be_bytes()));
        let mut f = Frames::default();
        let mut got = Vec::new();
        for b in bytes {
            f.push(&[b]);
            while let Ok(Some(fr)) = f.next_frame() {
                got.push(fr);
            }
        }
        assert_eq!(
            got,
            vec![
                (STDOUT, b"hello".to_vec()),
                (EXIT, 7i64.to_be_bytes().to_vec())
            ]
        );
        let mut huge = Frames::default();
        huge.push(&frame(STDIN, &[])[..1]);
        huge.push(&((MAX_FRAME as u32 + 1).to_be_bytes()));
        assert!(huge.next_frame().is_err());
    }

    #[test]
    fn long_directories_go_through_proc() {
        let short = Path::new("/var/lib/shoal/native/tasks/abc");
        assert_eq!(socket_path(short, SOCKET, 9, None), short.join(SOCKET));
        let long = PathBuf::from(format!(
            "/srv/cluster/node-1/shoal/native/tasks/{}",
            "a".repeat(64)
        ));
        assert_eq!(
            socket_path(&long, SOCKET, 9, None),
            PathBuf::from("/proc/self/fd/9/attach.sock")
        );
        assert_eq!(
            socket_path(&long, "console.sock", 9, Some(42)),
            PathBuf::from("/proc/42/fd/9/console.sock")
        );
    }
}
